//! The WebRTC media bridge (`rcslab::media`) with real sockets on loopback: a str0m client
//! plays the browser (full ICE, controlling; DTLS client when it offers; PCMU), a plain UDP
//! socket plays baresip (RTP/AVP, no ICE, no DTLS). Audio crosses the bridge both ways and is
//! checked packet by packet (payload bytes, sequence numbers, timestamps, payload type).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcslab::media::peer::{ReceivedRtp, WebRtcPeer};
use rcslab::media::rtp::{self, PlainPacket, RtpFields};
use rcslab::media::sdp::parse_plain;
use rcslab::media::{BridgeConfig, BridgeError, LegId, MediaBridge, G711};
use tokio::net::UdpSocket;

/// Packets sent each way per test.
pub(crate) const N: u16 = 40;
/// 20 ms of G.711 at 8 kHz.
pub(crate) const SAMPLES: u32 = 160;
/// The phone's first sequence number: N packets from it wrap past 65535.
pub(crate) const WRAP: u16 = 65_520;

fn bridge(max_calls: usize, idle: Duration) -> Arc<MediaBridge> {
    MediaBridge::new(BridgeConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port_min: 0,
        port_max: 0,
        max_calls,
        idle_timeout: idle,
    })
}

/// The browser: rcslab's [`WebRtcPeer`] (full ICE, controlling when it offers, PCMU, RTP
/// mode) on loopback, every call of it checked.
pub(crate) struct Browser {
    peer: WebRtcPeer,
}

impl Browser {
    pub(crate) async fn new() -> Browser {
        let peer = WebRtcPeer::new("127.0.0.1".parse().unwrap(), 10_000)
            .await
            .expect("a WebRTC peer on loopback");
        Browser { peer }
    }

    pub(crate) async fn offer(&mut self) -> String {
        self.peer.offer().await.expect("the browser's offer")
    }

    pub(crate) async fn accept_answer(&mut self, answer: &str) {
        self.peer
            .accept_answer(answer)
            .await
            .expect("str0m reads the bridge's answer");
    }

    pub(crate) async fn answer(&mut self, offer: &str) -> String {
        self.peer
            .answer(offer)
            .await
            .expect("str0m reads the bridge's offer")
    }

    /// What it received so far.
    pub(crate) fn got(&self) -> &[ReceivedRtp] {
        self.peer.received()
    }

    /// Runs the browser for `d` (or until `done` holds).
    pub(crate) async fn run(&mut self, d: Duration, done: impl Fn(&Browser) -> bool) {
        // `done` sees the browser; the peer's own closure gets the same view through `got`.
        let until = Instant::now() + d;
        while Instant::now() < until && !done(self) {
            let step = (until - Instant::now()).min(Duration::from_millis(10));
            self.peer
                .run(step, |_| false)
                .await
                .expect("the browser runs");
        }
    }

    /// Runs until both the browser and the bridge's side of call `id` are connected.
    pub(crate) async fn connect(&mut self, bridge: &MediaBridge, id: LegId) {
        self.run(Duration::from_secs(10), |b| b.peer.is_connected())
            .await;
        assert!(
            self.peer.is_connected(),
            "ICE + DTLS with the bridge within 10 s"
        );
        let until = Instant::now() + Duration::from_secs(5);
        while !bridge.stats(id).is_some_and(|s| s.web_connected) {
            assert!(Instant::now() < until, "the bridge saw DTLS complete");
            self.run(Duration::from_millis(10), |_| false).await;
        }
    }

    /// Sends one PCMU packet through SRTP (the marker on the first, seq 1000).
    pub(crate) async fn send(&mut self, seq: u16, ts: u32, payload: &[u8]) {
        self.peer
            .send(seq, ts, seq == 1000, payload)
            .await
            .expect("the browser sends");
    }
}

/// Audio frame `i`: 160 bytes that differ per packet.
pub(crate) fn frame(i: u16) -> Vec<u8> {
    (0..SAMPLES as u16)
        .map(|j| (i.wrapping_mul(7) ^ j) as u8)
        .collect()
}

/// baresip's answer/offer naming `port` on loopback, PCMU (and DTMF, which the bridge ignores).
pub(crate) fn phone_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The browser sends N frames; the phone must get each as plain PCMU RTP, bytes intact, with
/// the browser's sequence numbers and timestamps.
pub(crate) async fn browser_to_phone(b: &mut Browser, phone: &UdpSocket) -> u32 {
    let mut buf = [0u8; 2048];
    let mut got: Vec<(RtpFields, Vec<u8>)> = Vec::new();
    for i in 0..N {
        b.send(1000 + i, 5000 + u32::from(i) * SAMPLES, &frame(i))
            .await;
        b.run(Duration::from_millis(5), |_| false).await;
        while let Ok((n, _)) = phone.try_recv_from(&mut buf) {
            if let PlainPacket::Rtp(f, p) = rtp::read(&buf[..n]) {
                got.push((f, p.to_vec()));
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(2);
    while got.len() < usize::from(N) && Instant::now() < until {
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(50), phone.recv_from(&mut buf)).await
        {
            if let PlainPacket::Rtp(f, p) = rtp::read(&buf[..n]) {
                got.push((f, p.to_vec()));
            }
        }
    }
    assert_eq!(got.len(), usize::from(N), "every frame reaches the phone");
    let ssrc = got[0].0.ssrc;
    for (i, (f, payload)) in got.iter().enumerate() {
        let i = i as u16;
        assert_eq!(f.pt, 0, "PCMU on the plain side");
        assert_eq!(f.seq, 1000 + i, "sequence numbers kept, in order");
        assert_eq!(
            f.timestamp,
            5000 + u32::from(i) * SAMPLES,
            "timestamps kept"
        );
        assert_eq!(f.ssrc, ssrc, "one SSRC");
        assert_eq!(payload, &frame(i), "payload bytes survive DTLS-SRTP -> RTP");
    }
    assert!(got[0].0.marker, "the marker bit crosses");
    ssrc
}

/// The phone sends N frames from `from` to the bridge's IMS port; the browser must get each,
/// decrypted, with the phone's sequence numbers and timestamps and PCMU's payload type.
pub(crate) async fn phone_to_browser(
    b: &mut Browser,
    from: &UdpSocket,
    bridge_ims: SocketAddr,
    seq0: u16,
) {
    let before = b.got().len();
    // Timestamps go on with the sequence numbers from where the first batch started.
    let ts0 = 90_000 + u32::from(seq0.wrapping_sub(WRAP)) * SAMPLES;
    let mut pkt = Vec::new();
    for i in 0..N {
        let f = RtpFields {
            marker: i == 0,
            pt: 0,
            seq: seq0.wrapping_add(i),
            timestamp: ts0 + u32::from(i) * SAMPLES,
            ssrc: 0x5eed_0001,
        };
        rtp::write(&f, &frame(i + 100), &mut pkt);
        from.send_to(&pkt, bridge_ims).await.unwrap();
        b.run(Duration::from_millis(5), |_| false).await;
    }
    let want = before + usize::from(N);
    b.run(Duration::from_secs(2), |b| b.got().len() >= want)
        .await;
    let got = &b.got()[before..];
    assert_eq!(got.len(), usize::from(N), "every frame reaches the browser");
    for (i, r) in got.iter().enumerate() {
        let (seq, ts, pt, payload) = (&r.seq, &r.timestamp, &r.pt, &r.payload);
        let i = i as u16;
        assert_eq!(*pt, 0, "PCMU on the WebRTC side");
        assert_eq!(
            *seq,
            seq0.wrapping_add(i),
            "sequence numbers kept (across a wrap)"
        );
        assert_eq!(*ts, ts0 + u32::from(i) * SAMPLES, "timestamps kept");
        assert_eq!(
            payload,
            &frame(i + 100),
            "payload bytes survive RTP -> SRTP"
        );
    }
}

/// Waits until nothing answers on `port` any more: it can be bound again.
async fn port_is_free(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("port {port} still bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_calls_ims_audio_both_ways_then_close_frees_the_ports() {
    let bridge = bridge(10, Duration::from_secs(30));
    let mut b = Browser::new().await;
    let offer = b.offer().await;
    let (id, ims_offer) = bridge
        .web_offer(&offer)
        .await
        .expect("str0m's offer accepted");
    let plain = parse_plain(&ims_offer).expect("the IMS side gets plain SDP");
    assert_eq!(plain.g711(), [(G711::Pcmu, 0)]);
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();

    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let web_answer = bridge
        .ims_answer(id, &phone_sdp(phone_addr.port()))
        .await
        .unwrap();
    assert!(web_answer.contains("a=ice-lite"), "{web_answer}");
    assert!(
        web_answer.contains("a=setup:passive"),
        "the browser is the DTLS client"
    );
    b.accept_answer(&web_answer).await;
    b.connect(&bridge, id).await;
    let stats = bridge.stats(id).unwrap();
    assert!(stats.web_connected);
    assert_eq!(stats.codec, Some(G711::Pcmu));
    let web_port = stats.web_addr.unwrap().port();

    let ssrc = browser_to_phone(&mut b, &phone).await;
    phone_to_browser(&mut b, &phone, bridge_ims, WRAP).await;

    let s = bridge.stats(id).unwrap();
    let bytes = u64::from(N) * u64::from(SAMPLES);
    assert_eq!(
        (s.web.packets_in, s.web.bytes_in),
        (u64::from(N), bytes),
        "{s:?}"
    );
    assert_eq!(
        (s.ims.packets_out, s.ims.bytes_out),
        (u64::from(N), bytes),
        "{s:?}"
    );
    assert_eq!(
        (s.ims.packets_in, s.ims.bytes_in),
        (u64::from(N), bytes),
        "{s:?}"
    );
    assert_eq!(
        (s.web.packets_out, s.web.bytes_out),
        (u64::from(N), bytes),
        "{s:?}"
    );
    assert_eq!(s.ims_peer, Some(phone_addr));
    assert!(s.ims_latched);
    assert_ne!(ssrc, 0);

    bridge.close(id);
    assert_eq!(bridge.calls(), 0);
    assert!(bridge.stats(id).is_none());
    port_is_free(bridge_ims.port()).await;
    port_is_free(web_port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ims_calls_web_and_the_bridge_latches_the_phones_real_source() {
    let bridge = bridge(10, Duration::from_secs(30));
    // The phone's SDP names one socket but it sends from another (a NAT would do this).
    let phone_sdp_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ims_offer = phone_sdp(phone_sdp_sock.local_addr().unwrap().port());
    let (id, web_offer) = bridge.ims_offer(&ims_offer).await.unwrap();
    assert!(web_offer.contains("a=ice-lite") && web_offer.contains("a=setup:actpass"));

    let mut b = Browser::new().await;
    let answer = b.answer(&web_offer).await;
    let plain_answer = bridge
        .web_answer(id, &answer)
        .await
        .expect("the browser's answer");
    let plain = parse_plain(&plain_answer).unwrap();
    assert_eq!(plain.g711(), [(G711::Pcmu, 0)]);
    assert_eq!(plain.formats.len(), 1, "{plain_answer}");
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    assert_eq!(bridge.stats(id).unwrap().ims_addr, Some(bridge_ims));
    b.connect(&bridge, id).await;

    // The phone speaks first, from its real source; the bridge then answers there.
    phone_to_browser(&mut b, &phone, bridge_ims, WRAP).await;
    let s = bridge.stats(id).unwrap();
    assert_eq!(s.ims_peer, Some(phone.local_addr().unwrap()));
    browser_to_phone(&mut b, &phone).await;
    let mut buf = [0u8; 64];
    assert!(
        phone_sdp_sock.try_recv_from(&mut buf).is_err(),
        "nothing went to the SDP address after the latch"
    );
    // A stranger's packets to the IMS port are dropped, not relayed.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut pkt = Vec::new();
    let f = RtpFields {
        marker: false,
        pt: 0,
        seq: 7,
        timestamp: 7,
        ssrc: 7,
    };
    rtp::write(&f, &[0xff; 160], &mut pkt);
    stranger.send_to(&pkt, bridge_ims).await.unwrap();
    let before = b.got().len();
    b.run(Duration::from_millis(200), |_| false).await;
    assert_eq!(
        b.got().len(),
        before,
        "the stranger's packet was not relayed"
    );
    assert_eq!(bridge.stats(id).unwrap().ims.dropped, 1);
    bridge.close(id);
    port_is_free(bridge_ims.port()).await;
}

/// A browser calls a phone through `bridge` (web_offer, ims_answer) and connects.
async fn web_call(bridge: &MediaBridge) -> (Browser, UdpSocket, LegId, SocketAddr) {
    let mut b = Browser::new().await;
    let offer = b.offer().await;
    let (id, ims_offer) = bridge.web_offer(&offer).await.unwrap();
    let plain = parse_plain(&ims_offer).unwrap();
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = phone.local_addr().unwrap().port();
    let answer = bridge.ims_answer(id, &phone_sdp(port)).await.unwrap();
    b.accept_answer(&answer).await;
    b.connect(bridge, id).await;
    (b, phone, id, bridge_ims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_through_one_bridge_stay_apart() {
    let bridge = bridge(10, Duration::from_secs(30));
    let (mut b1, phone1, id1, ims1) = web_call(&bridge).await;
    let (mut b2, phone2, id2, ims2) = web_call(&bridge).await;
    assert_eq!(bridge.calls(), 2);
    assert_ne!(ims1, ims2);
    let mut buf = [0u8; 2048];
    // Each browser reaches its own phone only; each phone its own browser only.
    browser_to_phone(&mut b1, &phone1).await;
    assert!(
        phone2.try_recv_from(&mut buf).is_err(),
        "call 1 leaked to phone 2"
    );
    browser_to_phone(&mut b2, &phone2).await;
    assert!(
        phone1.try_recv_from(&mut buf).is_err(),
        "call 2 leaked to phone 1"
    );
    phone_to_browser(&mut b1, &phone1, ims1, WRAP).await;
    b2.run(Duration::from_millis(100), |_| false).await;
    assert!(b2.got().is_empty(), "phone 1 reached browser 2");
    phone_to_browser(&mut b2, &phone2, ims2, WRAP).await;
    assert_eq!(b1.got().len(), usize::from(N), "phone 2 reached browser 1");
    // Closing one leaves the other running.
    bridge.close(id1);
    assert_eq!(bridge.calls(), 1);
    phone_to_browser(&mut b2, &phone2, ims2, WRAP.wrapping_add(N)).await;
    assert_eq!(bridge.stats(id2).unwrap().web.packets_out, 2 * u64::from(N));
    // The phone restarts its stream: new SSRC, sequence numbers from 7. The browser still
    // gets every packet, numbered on from the last one (no SRTP replay drop).
    let before = b2.got().len();
    let mut pkt = Vec::new();
    for i in 0..N {
        let f = RtpFields {
            marker: i == 0,
            pt: 0,
            seq: 7 + i,
            timestamp: 1_000 + u32::from(i) * SAMPLES,
            ssrc: 0x5eed_0002,
        };
        rtp::write(&f, &frame(i), &mut pkt);
        phone2.send_to(&pkt, ims2).await.unwrap();
        b2.run(Duration::from_millis(5), |_| false).await;
    }
    let want = before + usize::from(N);
    b2.run(Duration::from_secs(2), |b| b.got().len() >= want)
        .await;
    let seqs: Vec<u16> = b2.got()[before..].iter().map(|g| g.seq).collect();
    let next = WRAP.wrapping_add(2 * N);
    let expected: Vec<u16> = (0..N).map(|i| next.wrapping_add(i)).collect();
    assert_eq!(
        seqs, expected,
        "numbering goes on across the phone's new SSRC"
    );
    assert_eq!(
        b2.got()[before].payload,
        frame(0),
        "payload of the new stream"
    );
}

#[tokio::test]
async fn max_calls_refuses_the_next_call() {
    let bridge = bridge(2, Duration::from_secs(30));
    let sdp = phone_sdp(4000);
    let (a, _) = bridge.ims_offer(&sdp).await.unwrap();
    let (_b, _) = bridge.ims_offer(&sdp).await.unwrap();
    let err = bridge.ims_offer(&sdp).await.unwrap_err();
    assert!(matches!(err, BridgeError::Full(2)), "{err}");
    let mut browser = Browser::new().await;
    let offer = browser.offer().await;
    assert!(matches!(
        bridge.web_offer(&offer).await,
        Err(BridgeError::Full(2))
    ));
    bridge.close(a);
    bridge
        .web_offer(&offer)
        .await
        .expect("room again after close");
    assert_eq!(bridge.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_calls_end_and_media_keeps_a_call_alive() {
    let idle = Duration::from_millis(800);
    let bridge = bridge(10, idle);
    // Offered, never answered.
    let (unanswered, _) = bridge.ims_offer(&phone_sdp(4000)).await.unwrap();
    // Answered and connected, with the phone talking for twice the idle timeout.
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (id, web_offer) = bridge
        .ims_offer(&phone_sdp(phone.local_addr().unwrap().port()))
        .await
        .unwrap();
    let mut b = Browser::new().await;
    let answer = b.answer(&web_offer).await;
    let plain = parse_plain(&bridge.web_answer(id, &answer).await.unwrap()).unwrap();
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    b.connect(&bridge, id).await;
    let started = Instant::now();
    let mut pkt = Vec::new();
    let mut i = 0u16;
    while started.elapsed() < idle * 2 {
        let f = RtpFields {
            marker: false,
            pt: 0,
            seq: i,
            timestamp: u32::from(i) * SAMPLES,
            ssrc: 9,
        };
        rtp::write(&f, &frame(i), &mut pkt);
        phone.send_to(&pkt, bridge_ims).await.unwrap();
        b.run(Duration::from_millis(20), |_| false).await;
        i += 1;
    }
    assert!(
        bridge.stats(unanswered).is_none(),
        "the unanswered call timed out"
    );
    assert!(
        bridge.stats(id).is_some(),
        "media kept the call alive past the idle timeout"
    );
    assert!(b.got().len() > 10, "media flowed: {}", b.got().len());
    // Silence: the call ends within the idle timeout (plus scheduling slack).
    let silent = Instant::now();
    while bridge.stats(id).is_some() {
        assert!(silent.elapsed() < idle * 3, "the idle call did not end");
        b.run(Duration::from_millis(20), |_| false).await;
    }
    assert!(silent.elapsed() >= idle - Duration::from_millis(50));
    assert_eq!(bridge.calls(), 0);
    port_is_free(bridge_ims.port()).await;
}

/// Chromium driven by node and playwright-core (as tests/browser/*.mjs are), talking JSON
/// lines: stdin in, stdout out.
struct Chromium {
    node: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    out: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Chromium {
    /// `mode` "offer": the page offers; "answer": it answers the bridge's offer.
    fn start(mode: &str) -> Chromium {
        use tokio::io::AsyncBufReadExt;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let pw = root.join("tests/browser/node_modules/playwright-core/package.json");
        assert!(
            std::path::Path::new("/usr/bin/chromium").exists() && pw.exists(),
            "Chromium or playwright-core is missing: run scripts/install-browser.sh"
        );
        let mut node = tokio::process::Command::new("node")
            .args(["--input-type=module", "-e", CHROMIUM_PAGE])
            .env("PW_PACKAGE_JSON", &pw)
            .env("BRIDGE_MODE", mode)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node: run scripts/install-browser.sh");
        let stdin = node.stdin.take();
        let out = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
        Chromium { node, stdin, out }
    }

    /// The next JSON line the page script prints.
    async fn read(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(40), self.out.next_line())
            .await
            .expect("node answers within 40 s")
            .unwrap()
            .expect("a line from node");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON from node");
        assert!(v.get("error").is_none(), "Chromium side: {v}");
        v
    }

    async fn write(&mut self, v: serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let line = v.to_string() + "\n";
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
    }

    async fn exit(mut self) {
        // The page script reads stdin until it closes.
        drop(self.stdin.take());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.node.wait()).await;
        assert!(
            exit.as_ref()
                .is_ok_and(|s| s.as_ref().is_ok_and(|s| s.success())),
            "node exits: {exit:?}"
        );
    }
}

/// The page side of the Chromium tests: a page served from loopback takes the fake microphone;
/// in "offer" mode it prints Chromium's own offer as a JSON line and reads the bridge's answer,
/// in "answer" mode it reads the bridge's offer and prints its answer; then it waits for
/// `connectionState == "connected"`, lets audio flow for 3 s and prints getStats().
const CHROMIUM_PAGE: &str = r#"
import { createRequire } from 'node:module';
import http from 'node:http';
import readline from 'node:readline';
const { chromium } = createRequire(process.env.PW_PACKAGE_JSON)('playwright-core');
const mode = process.env.BRIDGE_MODE;
const server = http.createServer((q, r) => {
  r.writeHead(200, { 'content-type': 'text/html' });
  r.end('<!doctype html><title>media bridge</title>');
});
await new Promise((res) => server.listen(0, '127.0.0.1', res));
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
  timeout: 30000,
});
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const read = async () => JSON.parse((await lines.next()).value);
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const local = await page.evaluate(async ([mode, remote]) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection();
    window.pc = pc;
    if (remote) await pc.setRemoteDescription({ type: 'offer', sdp: remote });
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    await pc.setLocalDescription(await (remote ? pc.createAnswer() : pc.createOffer()));
    await new Promise((res) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && res();
      if (pc.iceGatheringState === 'complete') res();
      setTimeout(res, 3000);
    });
    return pc.localDescription.sdp;
  }, [mode, mode === 'answer' ? (await read()).offer : null]);
  console.log(JSON.stringify({ [mode]: local }));
  const answer = mode === 'offer' ? (await read()).answer : null;
  const state = await page.evaluate(async (sdp) => {
    const pc = window.pc;
    if (sdp) await pc.setRemoteDescription({ type: 'answer', sdp });
    return await new Promise((res) => {
      const check = () => {
        if (pc.connectionState === 'connected' || pc.connectionState === 'failed') res(pc.connectionState);
      };
      pc.onconnectionstatechange = check;
      check();
      setTimeout(() => res(`${pc.connectionState}/${pc.iceConnectionState}`), 10000);
    });
  }, answer);
  await new Promise((res) => setTimeout(res, 3000));
  const stats = await page.evaluate(async () => {
    const out = { codecs: {} };
    (await window.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp') out.sent = s.packetsSent;
      if (s.type === 'inbound-rtp') { out.received = s.packetsReceived; out.codecId = s.codecId; }
      if (s.type === 'codec') out.codecs[s.id] = s.mimeType;
    });
    out.codec = out.codecs[out.codecId];
    return out;
  });
  console.log(JSON.stringify({ state, ...stats }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e) }));
} finally {
  await browser.close();
  server.close();
  process.stdin.destroy();
}
"#;

/// The phone's side of a Chromium call: it talks PCMU every 20 ms for 8 s from `phone` to the
/// bridge, and counts the PCMU it gets back until 2 s of silence after some (30 s at most).
fn phone_talks_and_listens(
    phone: Arc<UdpSocket>,
    bridge_ims: SocketAddr,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<u32>) {
    let talker = phone.clone();
    let talk = tokio::spawn(async move {
        let mut pkt = Vec::new();
        for i in 0..400u16 {
            let f = RtpFields {
                marker: i == 0,
                pt: 0,
                seq: i,
                timestamp: u32::from(i) * SAMPLES,
                ssrc: 0x0bad_cafe,
            };
            rtp::write(&f, &frame(i), &mut pkt);
            let _ = talker.send_to(&pkt, bridge_ims).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let listen = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut got = 0u32;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let r = tokio::time::timeout(Duration::from_secs(2), phone.recv_from(&mut buf)).await;
            match r {
                Ok(Ok((n, _))) => {
                    if let PlainPacket::Rtp(f, p) = rtp::read(&buf[..n]) {
                        assert_eq!((f.pt, p.len()), (0, 160), "20 ms of PCMU from Chromium");
                        got += 1;
                    }
                }
                // Silence after media: the call is over.
                Err(_) if got > 0 => break,
                _ => {}
            }
        }
        got
    });
    (talk, listen)
}

/// Chromium's getStats() after 3 s of audio, the bridge's counters and the phone's count all
/// show PCMU flowing both ways; then the call is closed.
async fn audio_flowed(
    chromium: Chromium,
    report: serde_json::Value,
    bridge: &MediaBridge,
    id: LegId,
    (talk, listen): (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<u32>),
) {
    talk.abort();
    assert_eq!(report["state"], "connected", "{report}");
    assert_eq!(report["codec"], "audio/PCMU", "{report}");
    assert!(
        report["received"].as_u64().unwrap_or(0) >= 50,
        "Chromium received: {report}"
    );
    assert!(
        report["sent"].as_u64().unwrap_or(0) >= 50,
        "Chromium sent: {report}"
    );
    let s = bridge.stats(id).unwrap();
    assert!(
        s.web_connected && s.ims.packets_out >= 50 && s.web.packets_out >= 50,
        "{s:?}"
    );
    bridge.close(id);
    let phone_got = listen.await.unwrap();
    assert!(
        phone_got >= 50,
        "the phone got {phone_got} packets from Chromium"
    );
    chromium.exit().await;
}

/// A real Chromium calls a plain phone through the bridge: Chromium's own offer (Opus, G.711,
/// BUNDLE, ...) goes in, the IMS side gets plain PCMU, Chromium connects to the bridge's host
/// candidate (ICE-lite, DTLS-SRTP with Chromium as DTLS client), and audio flows both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_calls_a_plain_phone_through_the_bridge() {
    let mut chromium = Chromium::start("offer");
    let offer = chromium.read().await["offer"].as_str().unwrap().to_string();
    assert!(
        offer.contains("a=group:BUNDLE") && offer.contains("opus/48000"),
        "{offer}"
    );

    let bridge = bridge(10, Duration::from_secs(30));
    let (id, ims_offer) = bridge.web_offer(&offer).await.expect("Chromium's offer");
    let plain = parse_plain(&ims_offer).unwrap();
    assert_eq!(
        plain.g711()[0].0,
        G711::Pcmu,
        "Chromium lists PCMU before PCMA"
    );
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let phone = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let phone_port = phone.local_addr().unwrap().port();
    let answer = bridge.ims_answer(id, &phone_sdp(phone_port)).await.unwrap();
    chromium
        .write(serde_json::json!({ "answer": answer }))
        .await;
    let phone = phone_talks_and_listens(phone, bridge_ims);
    let report = chromium.read().await;
    audio_flowed(chromium, report, &bridge, id, phone).await;
}

/// A plain phone calls a real Chromium through the bridge: the bridge offers (ICE-lite,
/// actpass, PCMU only), Chromium answers as the controlling full ICE agent, audio flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_phone_calls_chromium_through_the_bridge() {
    let bridge = bridge(10, Duration::from_secs(30));
    let phone = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let phone_port = phone.local_addr().unwrap().port();
    let (id, web_offer) = bridge.ims_offer(&phone_sdp(phone_port)).await.unwrap();
    let mut chromium = Chromium::start("answer");
    chromium
        .write(serde_json::json!({ "offer": web_offer }))
        .await;
    let answer = chromium.read().await["answer"]
        .as_str()
        .unwrap()
        .to_string();
    let plain_answer = bridge
        .web_answer(id, &answer)
        .await
        .expect("Chromium's answer");
    let plain = parse_plain(&plain_answer).unwrap();
    assert_eq!(plain.g711(), [(G711::Pcmu, 0)], "{plain_answer}");
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let phone = phone_talks_and_listens(phone, bridge_ims);
    let report = chromium.read().await;
    audio_flowed(chromium, report, &bridge, id, phone).await;
}

/// `rcslab bench bridge` in small: every packet of 5 calls crosses both ways, and its report
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_benchmark_carries_every_packet_of_a_few_calls() {
    let r = rcslab::lab::bench_bridge::bridge(5, 1)
        .await
        .expect("the benchmark runs");
    for d in [&r.phone_to_browser, &r.browser_to_phone] {
        assert_eq!((d.sent, d.received), (250, 250), "{r:?}");
    }
    let text = rcslab::lab::bench_bridge::report(&r, 1);
    assert!(text.contains("phone -> browser: 250/250 packets"), "{text}");
    assert!(text.contains("browser -> phone: 250/250 packets"), "{text}");
}
