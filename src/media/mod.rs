//! The WebRTC media bridge: the eIMS-AGW of 3GPP TS 24.371 / TS 23.228 annex U (the media
//! half of the P-CSCF's eIMS-ALG/AGW pair, what rtpengine is for Kamailio). A browser speaks
//! ICE (RFC 8445), DTLS-SRTP (RFC 5763/5764) with BUNDLE and rtcp-mux; a plain IMS phone
//! speaks RTP/AVP (RFC 3551) with no ICE and no encryption. The bridge terminates the first
//! with str0m and the second with a plain UDP socket, and relays G.711 audio between them
//! without transcoding.
//!
//! ```text
//!  browser                      MediaBridge (one call)                  IMS phone
//!    |  ICE-lite + DTLS-SRTP  +-----------+------------+  plain RTP        |
//!    |<======================>| web port  |  IMS port  |<=================>|
//!    |   str0m (sans-IO Rtc)  +-----------+------------+  latched peer     |
//!                                 one tokio task per call
//! ```
//!
//! # API
//! The signalling gateway (the eIMS-ALG, in the P-CSCF role) calls, per call:
//!
//! - web → IMS: [`MediaBridge::web_offer`] with the browser's offer gives a [`LegId`] and the
//!   plain RTP/AVP offer to put in the INVITE; [`MediaBridge::ims_answer`] with the IMS answer
//!   gives the WebRTC answer for the browser. Media flows from then on.
//! - IMS → web: [`MediaBridge::ims_offer`] with the IMS offer gives a [`LegId`] and a WebRTC
//!   offer for the browser; [`MediaBridge::web_answer`] with the browser's answer gives the plain
//!   answer for the IMS side.
//! - [`MediaBridge::close`] ends a call at once; [`MediaBridge::stats`] reads its counters;
//!   [`MediaBridge::calls`] counts the open ones.
//!
//! Every method returns a [`BridgeError`] whose Display says why (bad SDP, no common codec,
//! bridge full, no free port, unknown leg, leg in the wrong state, WebRTC negotiation failed);
//! none panics on any SDP.
//!
//! # What each side sees
//! - The browser gets an SDP written by str0m: `a=ice-lite`, a fresh ICE ufrag/pwd, the
//!   bridge's sha-256 certificate fingerprint, BUNDLE, rtcp-mux, exactly one audio codec (the
//!   chosen G.711 one), and one host candidate `<ip> <web port> typ host` (a browser on
//!   loopback connects only to a candidate it is given). As answerer to the browser's
//!   `a=setup:actpass` the bridge is `a=setup:passive` (the browser is the DTLS client).
//! - When the bridge offers to the browser (IMS → web) it is still ICE-lite (RFC 8445 §2.5: a
//!   lite agent is always controlled, and str0m supports a lite offerer) and offers
//!   `a=setup:actpass`; the browser, a full agent, is the controlling side.
//! - Both directions are checked with a real Chromium (156, headless, fake microphone) in
//!   `tests/e2e/media_bridge.rs`, besides an in-process str0m client.
//! - The IMS side gets `m=audio <IMS port> RTP/AVP <pts>` with `c=` the bridge's IP, the
//!   G.711 codecs only (static payload types 0/8 when the bridge offers), `a=sendrecv`.
//!
//! # Codec choice
//! Only PCMU and PCMA (G.711, RFC 3551 §4.5.14) are relayed; nothing is transcoded. web → IMS:
//! the IMS side is offered the browser's G.711 codecs in the browser's order and picks one;
//! the browser's answer carries only that one. IMS → web: the browser is offered the IMS
//! offer's first G.711 codec only, so the two sides cannot pick differently. No G.711 on
//! one side is [`BridgeError::NoCommonCodec`]. DTMF (telephone-event, RFC 4733), comfort noise
//! and Opus are not offered on either side.
//!
//! # Relaying
//! - browser → IMS: str0m (in RTP mode) decrypts SRTP and hands each RTP packet up; the bridge
//!   rewrites it as plain RTP with the same SSRC, sequence number, timestamp and marker, the
//!   IMS payload type, and no header extensions.
//! - IMS → browser: the plain packet's payload goes out through str0m's send stream with the
//!   same sequence number (extended to 64 bits for the SRTP rollover counter, RFC 3711 §3.3.1),
//!   timestamp and marker, and the browser's payload type; str0m's own SSRC (the one in its SDP).
//!   When the phone's SSRC changes (it restarted its stream), the numbering goes on from the
//!   last one sent, so that the browser's SRTP does not drop the new packets as replays.
//!   Before DTLS is up, packets from the IMS side are dropped, not queued.
//! - The IMS peer is the address in the IMS SDP (`c=` and `m=` port) until the first RTP packet
//!   arrives on the IMS port; its source is then latched for the rest of the call (symmetric RTP,
//!   RFC 4961; a phone behind NAT). Packets from other sources after that are dropped.
//! - RTCP: str0m writes its own SRTCP reports on the browser side; RTCP arriving on the IMS port
//!   is dropped and none is sent there (the IMS SDP offers no RTCP port; `port+1` is not bound).
//!
//! # Limits
//! Every socket binds to [`BridgeConfig::ip`], one UDP port per side per call from
//! `port_min..=port_max` (`port_min` 0: ports chosen by the OS). At most
//! [`BridgeConfig::max_calls`] calls; past that [`BridgeError::Full`]. Per call the only
//! queues are the command channel (two entries), str0m's bounded send buffer and the sockets'
//! kernel buffers; one receive buffer per side. A call ends on [`MediaBridge::close`], when no
//! RTP has crossed it either way for [`BridgeConfig::idle_timeout`] (counted from the offer
//! until media starts), when str0m's session dies, or when the bridge is dropped; its ports are
//! then released (asynchronously: the call's task closes its sockets as it ends).
//!
//! # A new browser for a running call
//! [`MediaBridge::web_reoffer`] / [`MediaBridge::web_reanswer`]: a reloaded page's new
//! RTCPeerConnection takes the call's browser side (a new str0m instance, ICE-lite, on the same
//! port; the numbering towards it starts again for its new SRTP context). A browser side that
//! dies does not end the call: the IMS side waits for a new one or the idle timeout.
//!
//! # Not done
//! No re-INVITE from either side (hold, a codec change, a browser's own new offer need a new
//! call). The IMS side always gets `a=sendrecv` whatever direction the
//! browser asked for. DTMF (RFC 4733) and RTCP on the plain side are not relayed. No
//! transcoding, so Opus-only browsers and non-G.711 phones are refused.
//!
//! The crypto backend is str0m's default, aws-lc-rs (DTLS by str0m's `dimpl`).

mod bridge;
mod call;
pub mod peer;
pub mod rtp;
pub mod sdp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use bridge::MediaBridge;
pub use sdp::{SdpError, G711};

/// Where and how much the bridge may bind and hold.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The address every media socket binds to and every SDP names.
    pub ip: IpAddr,
    /// Ports for media, inclusive; two per call. `port_min` 0: ephemeral ports (OS-chosen).
    pub port_min: u16,
    pub port_max: u16,
    /// Calls open at once (offered but unanswered ones count).
    pub max_calls: usize,
    /// A call with no RTP either way for this long ends.
    pub idle_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 30000,
            port_max: 30999,
            max_calls: 200,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// One call through the bridge (a web leg and an IMS leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(u64);

impl LegId {
    /// The number behind the id, for logs and maps outside this module.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "media-{}", self.0)
    }
}

/// Counters of one side of a call. Bytes are RTP payload bytes (headers excluded), so what
/// went in on one side can be compared with what came out on the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Datagrams received and not relayed (RTCP on the IMS side, foreign sources, unknown
    /// payload types, media before DTLS is up, malformed packets).
    pub dropped: u64,
}

/// What [`MediaBridge::stats`] reports for a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegStats {
    /// The codec relayed; `None` until the answer is in.
    pub codec: Option<G711>,
    /// The bridge's own media addresses: the browser side and the IMS side.
    pub web_addr: Option<SocketAddr>,
    pub ims_addr: Option<SocketAddr>,
    /// Where IMS RTP goes: the SDP address until the peer's source is latched.
    pub ims_peer: Option<SocketAddr>,
    /// Whether the peer's source address has been latched (symmetric RTP).
    pub ims_latched: bool,
    /// ICE and DTLS are up with the browser.
    pub web_connected: bool,
    pub web: SideStats,
    pub ims: SideStats,
}

/// Why the bridge refused a request.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("bad {side} SDP: {source}")]
    BadSdp {
        side: &'static str,
        #[source]
        source: SdpError,
    },
    #[error(
        "no common codec: the {side} side offers {offered}; the bridge relays only PCMU/PCMA \
         (G.711) and does not transcode"
    )]
    NoCommonCodec { side: &'static str, offered: String },
    #[error("bridge full: {0} calls open (max_calls)")]
    Full(usize),
    #[error("no free UDP port on {ip} in {min}-{max}")]
    NoPort { ip: IpAddr, min: u16, max: u16 },
    #[error("unknown media leg {0} (never opened, closed or timed out)")]
    UnknownLeg(LegId),
    #[error("media leg {id} is not waiting for {expected}")]
    WrongState { id: LegId, expected: &'static str },
    #[error("WebRTC negotiation failed: {0}")]
    WebRtc(#[from] str0m::RtcError),
    #[error("ICE candidate: {0}")]
    Ice(#[from] str0m::error::IceError),
    #[error("media socket: {0}")]
    Io(#[from] std::io::Error),
}

impl BridgeError {
    fn bad_web(source: SdpError) -> Self {
        BridgeError::BadSdp {
            side: "web",
            source,
        }
    }
    fn bad_ims(source: SdpError) -> Self {
        BridgeError::BadSdp {
            side: "IMS",
            source,
        }
    }
}
