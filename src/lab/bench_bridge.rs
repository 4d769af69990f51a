//! `rcslab bench bridge`: the WebRTC media bridge ([`crate::media`]) carrying `calls` audio
//! calls at once, each between a browser-like WebRTC peer ([`WebRtcPeer`]: ICE, DTLS-SRTP)
//! and a plain RTP phone (a UDP socket), all on loopback in this process. Every call sends one
//! 20 ms PCMU packet each way every 20 ms for `seconds` (50 packets/s per direction per call).
//!
//! Latency is measured per packet from its *scheduled* send time (the tick it was due, not
//! when a late task got round to sending it: no coordinated omission) to the moment the other
//! end read it, after SRTP decryption on the browser's side. That path is the phone's socket,
//! the bridge (latch, SRTP encrypt or decrypt, relay) and the peer's own socket and crypto:
//! an upper bound of what the bridge adds. The ticks of the calls are spread over the 20 ms
//! so the load is even. Lost packets (sent, never read before the end) are counted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::bench::rss_kib;
use crate::media::peer::{PeerError, WebRtcPeer};
use crate::media::rtp::{self, PlainPacket, RtpFields};
use crate::media::{BridgeConfig, BridgeError, LegId, MediaBridge};

/// 20 ms of G.711.
const PTIME: Duration = Duration::from_millis(20);
const SAMPLES: u32 = 160;
/// How long a call may take to connect (ICE + DTLS).
const CONNECT: Duration = Duration::from_secs(20);
/// After the last packet, how long late ones are still counted.
const DRAIN: Duration = Duration::from_millis(500);

/// Why the bridge benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BridgeBenchError {
    #[error("the bridge refused call {call}: {source}")]
    Bridge {
        call: usize,
        #[source]
        source: BridgeError,
    },
    #[error("the browser side of call {call}: {source}")]
    Peer {
        call: usize,
        #[source]
        source: PeerError,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{connected} of {calls} calls connected (ICE + DTLS) within {CONNECT:?}")]
    NotConnected { connected: usize, calls: usize },
}

/// Latencies of one direction.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    pub sent: usize,
    pub received: usize,
    /// p50, p99, max.
    pub latency: [Duration; 3],
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BridgeBench {
    pub calls: usize,
    /// From the first offer to the last call connected.
    pub setup: Duration,
    pub phone_to_browser: Direction,
    pub browser_to_phone: Direction,
    /// RSS after the calls were set up and after the load (KiB).
    pub rss_setup_kib: u64,
    pub rss_kib: u64,
    /// RSS before the bridge was made (KiB).
    pub rss_before_kib: u64,
}

/// The phone's SDP answer naming `port` on loopback (what baresip answers).
fn phone_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// A 160-byte frame carrying its tick number.
fn frame(tick: u64) -> Vec<u8> {
    let mut f = vec![0xffu8; SAMPLES as usize];
    f[..8].copy_from_slice(&tick.to_be_bytes());
    f
}

fn tick_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

/// The time tick `k` of a call whose ticks start at `t0` was due.
fn due(t0: Instant, k: u64) -> Instant {
    t0 + PTIME * u32::try_from(k).unwrap_or(u32::MAX)
}

fn pct(v: &mut [Duration]) -> [Duration; 3] {
    if v.is_empty() {
        return [Duration::ZERO; 3];
    }
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.50), at(0.99), v[v.len() - 1]]
}

struct Call {
    leg: LegId,
    peer: WebRtcPeer,
    phone: UdpSocket,
    bridge_ims: SocketAddr,
}

/// Sets up call `i`: the peer offers, the bridge answers for the phone.
async fn set_up(bridge: &MediaBridge, i: usize) -> Result<Call, BridgeBenchError> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let peer_err = |source| BridgeBenchError::Peer { call: i, source };
    let bridge_err = |source| BridgeBenchError::Bridge { call: i, source };
    let mut peer = WebRtcPeer::new(ip, 4096).await.map_err(peer_err)?;
    let offer = peer.offer().await.map_err(peer_err)?;
    let (leg, plain) = bridge.web_offer(&offer).await.map_err(bridge_err)?;
    let plain = crate::media::sdp::parse_plain(&plain).map_err(|e| BridgeBenchError::Bridge {
        call: i,
        source: BridgeError::BadSdp {
            side: "IMS",
            source: e,
        },
    })?;
    let bridge_ims = SocketAddr::new(plain.addr.unwrap_or(ip), plain.port);
    let phone = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let answer = bridge
        .ims_answer(leg, &phone_sdp(phone.local_addr()?.port()))
        .await
        .map_err(bridge_err)?;
    peer.accept_answer(&answer).await.map_err(peer_err)?;
    Ok(Call {
        leg,
        peer,
        phone,
        bridge_ims,
    })
}

/// The phone of one call: sends at its ticks, reads what the browser sent.
async fn phone_side(
    phone: UdpSocket,
    to: SocketAddr,
    t0: Instant,
    ticks: u64,
) -> (usize, Vec<Duration>) {
    let mut lat = Vec::with_capacity(ticks as usize);
    let (mut k, mut buf, mut pkt) = (0u64, [0u8; 2048], Vec::new());
    let end = due(t0, ticks) + DRAIN;
    loop {
        let next = if k < ticks { due(t0, k) } else { end };
        tokio::select! {
            r = phone.recv_from(&mut buf) => {
                let now = Instant::now();
                if let Ok((n, _)) = r {
                    if let PlainPacket::Rtp(_, p) = rtp::read(&buf[..n]) {
                        if let Some(tick) = tick_of(p) {
                            lat.push(now.saturating_duration_since(due(t0, tick)));
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next.into()) => {
                if k >= ticks {
                    return (k as usize, lat);
                }
                let f = RtpFields {
                    marker: k == 0,
                    pt: 0,
                    seq: k as u16,
                    timestamp: (k as u32).wrapping_mul(SAMPLES),
                    ssrc: 0x0b1d_0e00,
                };
                rtp::write(&f, &frame(k), &mut pkt);
                // A datagram the kernel refuses is a lost packet.
                let _ = phone.send_to(&pkt, to).await;
                k += 1;
            }
        }
    }
}

/// The browser of one call: sends at its ticks, reads what the phone sent.
async fn browser_side(
    mut peer: WebRtcPeer,
    t0: Instant,
    ticks: u64,
) -> Result<(usize, Vec<Duration>), PeerError> {
    let mut lat = Vec::with_capacity(ticks as usize);
    let mut k = 0u64;
    let end = due(t0, ticks) + DRAIN;
    loop {
        let next = if k < ticks { due(t0, k) } else { end };
        let now = Instant::now();
        if next > now {
            peer.run(next - now, |_| false).await?;
        }
        for r in peer.take_received() {
            if let Some(tick) = tick_of(&r.payload) {
                lat.push(r.at.saturating_duration_since(due(t0, tick)));
            }
        }
        if k >= ticks {
            return Ok((k as usize, lat));
        }
        peer.send(
            k as u16,
            (k as u32).wrapping_mul(SAMPLES),
            k == 0,
            &frame(k),
        )
        .await?;
        k += 1;
    }
}

/// Runs the benchmark: `calls` bridged calls, `seconds` of audio each way.
pub async fn bridge(calls: usize, seconds: u64) -> Result<BridgeBench, BridgeBenchError> {
    let rss_before_kib = rss_kib();
    let bridge = MediaBridge::new(BridgeConfig {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port_min: 0,
        port_max: 0,
        max_calls: calls,
        idle_timeout: Duration::from_secs(seconds + 30),
    });
    let started = Instant::now();
    let mut set = Vec::with_capacity(calls);
    for i in 0..calls {
        set.push(set_up(&bridge, i).await?);
    }
    // Every call connects (ICE + DTLS) in its own task.
    let mut connecting = Vec::with_capacity(calls);
    for mut c in set {
        connecting.push(tokio::spawn(async move {
            let r = c.peer.run(CONNECT, |p| p.is_connected()).await;
            (c, r)
        }));
    }
    let mut ready = Vec::with_capacity(calls);
    for h in connecting {
        if let Ok((c, Ok(()))) = h.await {
            if c.peer.is_connected() {
                ready.push(c);
            }
        }
    }
    if ready.len() < calls {
        return Err(BridgeBenchError::NotConnected {
            connected: ready.len(),
            calls,
        });
    }
    // The bridge's side of DTLS completes as the browser's does; give stragglers a moment.
    let until = Instant::now() + Duration::from_secs(5);
    while ready
        .iter()
        .any(|c| !bridge.stats(c.leg).is_some_and(|s| s.web_connected))
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup = started.elapsed();
    let rss_setup_kib = rss_kib();

    let ticks = seconds * 1000 / PTIME.as_millis() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let spread = PTIME.as_nanos() as u64 / calls.max(1) as u64;
    let (mut phones, mut browsers) = (Vec::new(), Vec::new());
    let legs: Vec<LegId> = ready.iter().map(|c| c.leg).collect();
    for (i, c) in ready.into_iter().enumerate() {
        let t0 = start + Duration::from_nanos(spread * i as u64);
        phones.push(tokio::spawn(phone_side(c.phone, c.bridge_ims, t0, ticks)));
        browsers.push(tokio::spawn(browser_side(c.peer, t0, ticks)));
    }
    let (mut p2b, mut b2p) = (Direction::default(), Direction::default());
    let (mut lat_p2b, mut lat_b2p) = (Vec::new(), Vec::new());
    for h in phones {
        if let Ok((sent, lat)) = h.await {
            p2b.sent += sent;
            b2p.received += lat.len();
            lat_b2p.extend(lat);
        }
    }
    for h in browsers {
        if let Ok(Ok((sent, lat))) = h.await {
            b2p.sent += sent;
            p2b.received += lat.len();
            lat_p2b.extend(lat);
        }
    }
    p2b.latency = pct(&mut lat_p2b);
    b2p.latency = pct(&mut lat_b2p);
    let rss_kib = rss_kib();
    for leg in legs {
        bridge.close(leg);
    }
    Ok(BridgeBench {
        calls,
        setup,
        phone_to_browser: p2b,
        browser_to_phone: b2p,
        rss_setup_kib,
        rss_kib,
        rss_before_kib,
    })
}

/// What `rcslab bench bridge` prints (two lines; scripts read them).
pub fn report(r: &BridgeBench, seconds: u64) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let dir = |name: &str, d: &Direction| {
        format!(
            "bridge: {name}: {}/{} packets, latency from scheduled send p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.received,
            d.sent,
            ms(d.latency[0]),
            ms(d.latency[1]),
            ms(d.latency[2])
        )
    };
    format!(
        "bridge: {} concurrent calls (WebRTC peer <-> bridge <-> plain RTP), PCMU 20 ms each way for {seconds} s; set up and connected in {:.1} s; RSS +{} KiB for the calls ({:.0} KiB each), {} MiB after the load\n{}\n{}",
        r.calls,
        r.setup.as_secs_f64(),
        r.rss_setup_kib.saturating_sub(r.rss_before_kib),
        r.rss_setup_kib.saturating_sub(r.rss_before_kib) as f64 / r.calls.max(1) as f64,
        r.rss_kib / 1024,
        dir("phone -> browser", &r.phone_to_browser),
        dir("browser -> phone", &r.browser_to_phone),
    )
}

/// The bench lost packets or went over 20 ms at p99 (what the script's exit status says).
pub fn met_target(r: &BridgeBench) -> bool {
    let ok = |d: &Direction| d.received == d.sent && d.latency[1] < Duration::from_millis(20);
    ok(&r.phone_to_browser) && ok(&r.browser_to_phone)
}
