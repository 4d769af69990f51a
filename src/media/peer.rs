//! A WebRTC endpoint as a browser is one, for labs, benchmarks and tests: str0m as a full ICE
//! agent (controlling when it offers), DTLS-SRTP, BUNDLE and rtcp-mux, PCMU only, in RTP mode
//! (packets in and out, no jitter buffer), on its own UDP socket. It is what plays the page's
//! media when no real browser is at hand; a real Chromium is checked in the e2e tests.
//!
//! Driving it: [`WebRtcPeer::offer`] / [`WebRtcPeer::accept_answer`] or
//! [`WebRtcPeer::answer`], then [`WebRtcPeer::run`] (the socket and str0m's timers) until
//! [`WebRtcPeer::is_connected`]; [`WebRtcPeer::send`] writes one RTP packet through SRTP;
//! what arrives is in [`WebRtcPeer::received`], each packet with the time it was read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig, RtcError};
use tokio::net::UdpSocket;

/// One RTP packet the peer received (SRTP decrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRtp {
    pub seq: u16,
    pub timestamp: u32,
    pub pt: u8,
    pub payload: Vec<u8>,
    /// When the datagram carrying it was read.
    pub at: Instant,
}

/// Why the peer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("WebRTC: {0}")]
    Rtc(#[from] RtcError),
    #[error("unreadable SDP: {0}")]
    Sdp(String),
    #[error("no audio m-line negotiated")]
    NoAudio,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A browser-like WebRTC endpoint (see the module).
pub struct WebRtcPeer {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    received: Vec<ReceivedRtp>,
    /// Received packets kept at most (older ones are dropped first).
    keep: usize,
}

impl WebRtcPeer {
    /// A peer on a new UDP socket of `ip` (an ephemeral port) keeping at most `keep`
    /// received packets.
    pub async fn new(ip: IpAddr, keep: usize) -> Result<WebRtcPeer, PeerError> {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = sock.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_pcmu(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").map_err(RtcError::from)?);
        let mut p = WebRtcPeer {
            rtc,
            sock,
            addr,
            mid: None,
            pending: None,
            connected: false,
            received: Vec::new(),
            keep,
        };
        p.drain().await?;
        Ok(p)
    }

    /// Its media address (its one host candidate).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// What it received so far, oldest first.
    pub fn received(&self) -> &[ReceivedRtp] {
        &self.received
    }

    /// Takes what it received so far.
    pub fn take_received(&mut self) -> Vec<ReceivedRtp> {
        std::mem::take(&mut self.received)
    }

    /// An offer with one sendrecv audio m-line.
    pub async fn offer(&mut self) -> Result<String, PeerError> {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or(PeerError::NoAudio)?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        self.drain().await?;
        Ok(offer.to_sdp_string())
    }

    /// The answer to [`WebRtcPeer::offer`]'s offer.
    pub async fn accept_answer(&mut self, answer: &str) -> Result<(), PeerError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(PeerError::NoAudio)?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.drain().await?;
        Ok(())
    }

    /// Answers a remote offer.
    pub async fn answer(&mut self, offer: &str) -> Result<String, PeerError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        self.drain().await?;
        Ok(answer.to_sdp_string())
    }

    /// Runs the peer (its socket and timers) for `d`, or until `done` holds.
    pub async fn run(
        &mut self,
        d: Duration,
        done: impl Fn(&WebRtcPeer) -> bool,
    ) -> Result<(), PeerError> {
        let until = Instant::now() + d;
        let mut buf = vec![0u8; 2048];
        loop {
            let next = self.drain().await?;
            if done(self) || Instant::now() >= until {
                return Ok(());
            }
            let wake = tokio::time::Instant::from_std(next.min(until));
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.addr, &buf[..n]) {
                        // A datagram str0m refuses (a stray) changes nothing.
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
            }
        }
    }

    /// Sends one PCMU packet (payload type 0) through SRTP.
    pub async fn send(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), PeerError> {
        let mid = self.mid.ok_or(PeerError::NoAudio)?;
        let mut api = self.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).ok_or(PeerError::NoAudio)?;
        let w = RtpWrite::new(
            Pt::from(0),
            u64::from(seq).into(),
            timestamp,
            Instant::now(),
            payload,
        )
        .marker(marker);
        tx.write_rtp(w);
        self.drain().await?;
        Ok(())
    }

    /// Drains str0m; gives its next timeout.
    async fn drain(&mut self) -> Result<Instant, PeerError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // A datagram the kernel refuses is a lost packet, as on a network.
                    let _ = self.sock.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => {
                    self.mid.get_or_insert(m.mid);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    if self.received.len() >= self.keep.max(1) {
                        // The oldest half goes at once: amortised O(1) per packet.
                        let half = self.received.len().div_ceil(2);
                        self.received.drain(..half);
                    }
                    self.received.push(ReceivedRtp {
                        seq: p.header.sequence_number,
                        timestamp: p.header.timestamp,
                        pt: *p.header.payload_type,
                        payload: p.payload.to_vec(),
                        at: Instant::now(),
                    });
                }
                Output::Event(_) => {}
            }
        }
    }
}
