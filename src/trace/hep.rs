//! Live capture over HEPv3 (HEP3/EEP, "HEP3 Network Protocol Specification", sipcapture, rev 12
//! and later): every message the transports record is also sent, as one UDP datagram, to a
//! collector such as `sngrep -L udp:HOST:PORT`, Homer or heplify-server (`rcslab up --hep`).
//!
//! A HEP3 packet is `"HEP3"`, a 16-bit total length, then chunks; each chunk is a 16-bit vendor
//! id (0 = generic), a 16-bit type, a 16-bit length that counts the 6-byte chunk header, and
//! the value, all in network byte order:
//!
//! ```text
//! +------+-----+---------------------------------------------------------------+
//! | HEP3 | len | 0001 family | 0002 ip proto | 0003/0005 src ip | 0004/0006 dst |
//! |      |     | 0007 sport | 0008 dport | 0009 ts sec | 000a ts usec            |
//! |      |     | 000b proto type | 000c capture id | [000e auth key]            |
//! |      |     | [0011 correlation id] | [0013 node name] | 000f payload         |
//! +------+-----+---------------------------------------------------------------+
//! ```
//!
//! Protocol types (chunk 0x000b) are those of the spec's table: SIP = 0x01, Diameter = 0x38.
//! The table has no type for MSRP or HTTP, so MSRP and the WebRSF's HTTP are not sent (a
//! collector would not know what to do with them). Chunk 0x0013 is the node name as Homer's
//! heplify-server reads it (`NodeName`); rcslab puts the capturing node's name there (`P-CSCF`,
//! `HSS`...). The correlation id (0x0011) is the SIP Call-ID, or the Diameter Session-Id.
//!
//! [`HepMessage::encode`] is pure (no sockets); [`HepTap`] is the bounded queue the record
//! path feeds, and [`run_sender`] the one task that owns the UDP socket.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::trace::{Direction, Protocol};

/// Chunk 0x0001: IP protocol family (2 = IPv4, 10 = IPv6).
pub const CHUNK_IP_FAMILY: u16 = 0x0001;
/// Chunk 0x0002: IP protocol id (17 = UDP, 6 = TCP).
pub const CHUNK_IP_PROTO: u16 = 0x0002;
/// Chunk 0x0003: IPv4 source address.
pub const CHUNK_IPV4_SRC: u16 = 0x0003;
/// Chunk 0x0004: IPv4 destination address.
pub const CHUNK_IPV4_DST: u16 = 0x0004;
/// Chunk 0x0005: IPv6 source address.
pub const CHUNK_IPV6_SRC: u16 = 0x0005;
/// Chunk 0x0006: IPv6 destination address.
pub const CHUNK_IPV6_DST: u16 = 0x0006;
/// Chunk 0x0007: source port.
pub const CHUNK_SRC_PORT: u16 = 0x0007;
/// Chunk 0x0008: destination port.
pub const CHUNK_DST_PORT: u16 = 0x0008;
/// Chunk 0x0009: timestamp, seconds since the Unix epoch.
pub const CHUNK_TS_SEC: u16 = 0x0009;
/// Chunk 0x000a: timestamp, microseconds within the second.
pub const CHUNK_TS_USEC: u16 = 0x000a;
/// Chunk 0x000b: protocol type of the payload ([`PROTO_SIP`], [`PROTO_DIAMETER`]).
pub const CHUNK_PROTO_TYPE: u16 = 0x000b;
/// Chunk 0x000c: capture agent id.
pub const CHUNK_CAPTURE_ID: u16 = 0x000c;
/// Chunk 0x000e: authentication key (plain text).
pub const CHUNK_AUTH_KEY: u16 = 0x000e;
/// Chunk 0x000f: the captured payload.
pub const CHUNK_PAYLOAD: u16 = 0x000f;
/// Chunk 0x0011: correlation id (Homer groups by it).
pub const CHUNK_CORRELATION_ID: u16 = 0x0011;
/// Chunk 0x0013: node name (heplify-server `NodeName`).
pub const CHUNK_NODE_NAME: u16 = 0x0013;

/// Protocol type 0x01: SIP.
pub const PROTO_SIP: u8 = 0x01;
/// Protocol type 0x38: Diameter.
pub const PROTO_DIAMETER: u8 = 0x38;

/// The capture agent id rcslab sends (the one captagent uses by default).
pub const CAPTURE_ID: u32 = 2001;

/// The largest UDP payload over IPv4 (65535 - 20 - 8): a HEP packet must fit one datagram.
pub const MAX_DATAGRAM: usize = 65_507;

/// Errors of the HEP codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    /// The packet would not fit its 16-bit length (or one UDP datagram).
    #[error("HEP packet of {0} bytes is too long for one datagram")]
    TooLong(usize),
    /// Not a HEP3 packet, or its lengths do not add up.
    #[error("malformed HEP3 packet: {0}")]
    Malformed(&'static str),
}

/// The transport the captured message used (chunk 0x0002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProto {
    /// UDP (17).
    Udp,
    /// TCP (6).
    Tcp,
}

/// One captured message to encode.
#[derive(Debug, Clone)]
pub struct HepMessage<'a> {
    /// UDP or TCP, as the message really went.
    pub transport: IpProto,
    /// Source socket address on the wire.
    pub src: SocketAddr,
    /// Destination socket address on the wire.
    pub dst: SocketAddr,
    /// When it crossed the socket.
    pub time: SystemTime,
    /// [`PROTO_SIP`], [`PROTO_DIAMETER`]...
    pub proto_type: u8,
    /// Capture agent id (chunk 0x000c).
    pub capture_id: u32,
    /// Authentication key (chunk 0x000e), when the collector wants one.
    pub auth_key: Option<&'a str>,
    /// Correlation id (chunk 0x0011): the SIP Call-ID.
    pub correlation_id: Option<&'a str>,
    /// Node name (chunk 0x0013): the node that captured the message.
    pub node_name: Option<&'a str>,
    /// The message bytes.
    pub payload: &'a [u8],
}

fn chunk(out: &mut Vec<u8>, kind: u16, value: &[u8]) -> Result<(), HepError> {
    let len = 6 + value.len();
    if len > u16::MAX as usize {
        return Err(HepError::TooLong(len));
    }
    out.extend_from_slice(&0u16.to_be_bytes()); // generic vendor
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

impl HepMessage<'_> {
    /// The HEP3 packet. Mixed address families are sent as IPv6 (IPv4-mapped).
    pub fn encode(&self) -> Result<Vec<u8>, HepError> {
        let mut out = Vec::with_capacity(self.payload.len() + 128);
        out.extend_from_slice(b"HEP3");
        out.extend_from_slice(&[0, 0]); // total length, filled in below
        let v6 = |ip: IpAddr| match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                chunk(&mut out, CHUNK_IP_FAMILY, &[2])?;
                chunk(&mut out, CHUNK_IP_PROTO, &[self.ip_proto()])?;
                chunk(&mut out, CHUNK_IPV4_SRC, &s.octets())?;
                chunk(&mut out, CHUNK_IPV4_DST, &d.octets())?;
            }
            (s, d) => {
                chunk(&mut out, CHUNK_IP_FAMILY, &[10])?;
                chunk(&mut out, CHUNK_IP_PROTO, &[self.ip_proto()])?;
                chunk(&mut out, CHUNK_IPV6_SRC, &v6(s).octets())?;
                chunk(&mut out, CHUNK_IPV6_DST, &v6(d).octets())?;
            }
        }
        chunk(&mut out, CHUNK_SRC_PORT, &self.src.port().to_be_bytes())?;
        chunk(&mut out, CHUNK_DST_PORT, &self.dst.port().to_be_bytes())?;
        let t = self.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        chunk(&mut out, CHUNK_TS_SEC, &(t.as_secs() as u32).to_be_bytes())?;
        chunk(&mut out, CHUNK_TS_USEC, &t.subsec_micros().to_be_bytes())?;
        chunk(&mut out, CHUNK_PROTO_TYPE, &[self.proto_type])?;
        chunk(&mut out, CHUNK_CAPTURE_ID, &self.capture_id.to_be_bytes())?;
        if let Some(k) = self.auth_key {
            chunk(&mut out, CHUNK_AUTH_KEY, k.as_bytes())?;
        }
        if let Some(c) = self.correlation_id {
            chunk(&mut out, CHUNK_CORRELATION_ID, c.as_bytes())?;
        }
        if let Some(n) = self.node_name {
            chunk(&mut out, CHUNK_NODE_NAME, n.as_bytes())?;
        }
        chunk(&mut out, CHUNK_PAYLOAD, self.payload)?;
        if out.len() > MAX_DATAGRAM {
            return Err(HepError::TooLong(out.len()));
        }
        let total = (out.len() as u16).to_be_bytes();
        out[4..6].copy_from_slice(&total);
        Ok(out)
    }

    fn ip_proto(&self) -> u8 {
        match self.transport {
            IpProto::Udp => 17,
            IpProto::Tcp => 6,
        }
    }
}

/// One chunk of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Vendor id (0 = generic).
    pub vendor: u16,
    /// Chunk type.
    pub kind: u16,
    /// The value (without the chunk header).
    pub value: &'a [u8],
}

/// The chunks of a HEP3 packet, checking its total and chunk lengths (the inverse of
/// [`HepMessage::encode`]).
pub fn decode(packet: &[u8]) -> Result<Vec<Chunk<'_>>, HepError> {
    if packet.len() < 6 || &packet[..4] != b"HEP3" {
        return Err(HepError::Malformed("no HEP3 header"));
    }
    let total = u16::from_be_bytes([packet[4], packet[5]]) as usize;
    if total != packet.len() {
        return Err(HepError::Malformed(
            "total length differs from the packet's",
        ));
    }
    let mut chunks = Vec::new();
    let mut at = 6;
    while at < total {
        let h = packet
            .get(at..at + 6)
            .ok_or(HepError::Malformed("truncated chunk header"))?;
        let len = u16::from_be_bytes([h[4], h[5]]) as usize;
        if len < 6 || at + len > total {
            return Err(HepError::Malformed("bad chunk length"));
        }
        chunks.push(Chunk {
            vendor: u16::from_be_bytes([h[0], h[1]]),
            kind: u16::from_be_bytes([h[2], h[3]]),
            value: &packet[at + 6..at + len],
        });
        at += len;
    }
    Ok(chunks)
}

/// The Call-ID of a SIP message (long or compact `i:` form, RFC 3261 §20.8), read from its
/// header lines only.
pub fn sip_call_id(msg: &[u8]) -> Option<&str> {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    let head = std::str::from_utf8(&msg[..end]).ok()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim())
    })
}

/// The Session-Id AVP (263, RFC 6733 §8.8) of a Diameter message, if it has one.
pub fn diameter_session_id(msg: &[u8]) -> Option<&str> {
    let mut at = 20; // RFC 6733 §3: the header is 20 bytes
    while at + 8 <= msg.len() {
        let code = u32::from_be_bytes(msg[at..at + 4].try_into().ok()?);
        let flags = msg[at + 4];
        let len = u32::from_be_bytes([0, msg[at + 5], msg[at + 6], msg[at + 7]]) as usize;
        let head = if flags & 0x80 != 0 { 12 } else { 8 };
        if len < head || at + len > msg.len() {
            return None;
        }
        if code == 263 {
            return std::str::from_utf8(&msg[at + head..at + len]).ok();
        }
        at += len.div_ceil(4) * 4;
    }
    None
}

/// Why a `--hep` target does not read; the text names what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected HOST:PORT (e.g. 127.0.0.1:9060), got '{given}': {why}")]
pub struct HepTargetError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

/// Reads `HOST:PORT` (an IP literal or a host name, resolved once) for `--hep`.
pub fn parse_target(s: &str) -> Result<SocketAddr, HepTargetError> {
    let bad = |why: String| HepTargetError {
        given: s.to_string(),
        why,
    };
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (_, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("no port".to_string()))?;
    port.parse::<u16>()
        .map_err(|_| bad(format!("'{port}' is not a port")))?;
    s.to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the host name has no address".to_string()))
}

/// A message on its way from the record path to the sender.
#[derive(Debug)]
pub struct Captured {
    /// When it crossed the socket.
    pub wall: SystemTime,
    /// Time since the recorder started (for the alias of an ephemeral socket).
    pub at: Duration,
    /// Sent or received by `local`.
    pub direction: Direction,
    /// SIP UDP/TCP or Diameter.
    pub protocol: Protocol,
    /// The capturing node's socket.
    pub local: SocketAddr,
    /// The other end.
    pub remote: SocketAddr,
    /// The bytes as they crossed the socket.
    pub bytes: Vec<u8>,
}

/// Messages waiting in the queue at most, and their bytes at most: past either, new messages
/// are dropped and counted, the nodes never wait for the collector.
const QUEUE_MESSAGES: usize = 4096;
const QUEUE_BYTES: usize = 16 << 20;

/// The record path's end of the HEP queue: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct HepTap {
    tx: mpsc::Sender<Captured>,
    queued_bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

/// The sender's end of the HEP queue ([`run_sender`]).
#[derive(Debug)]
pub struct HepQueue {
    rx: mpsc::Receiver<Captured>,
    queued_bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl HepQueue {
    /// The next queued message, if one is waiting (tests look at the queue with it).
    pub fn try_recv(&mut self) -> Option<Captured> {
        let c = self.rx.try_recv().ok()?;
        self.queued_bytes
            .fetch_sub(c.bytes.len(), Ordering::Relaxed);
        Some(c)
    }
}

impl HepTap {
    /// A bounded queue: the tap for [`crate::trace::Trace`], the queue for [`run_sender`].
    pub fn channel() -> (HepTap, HepQueue) {
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        (
            HepTap {
                tx,
                queued_bytes: queued_bytes.clone(),
                dropped: dropped.clone(),
            },
            HepQueue {
                rx,
                queued_bytes,
                dropped,
            },
        )
    }

    /// True for the protocols HEP has a type for (SIP, Diameter).
    pub fn carries(protocol: Protocol) -> bool {
        matches!(
            protocol,
            Protocol::SipUdp | Protocol::SipTcp | Protocol::Diameter
        )
    }

    /// Queues a message for the collector; when the queue is full the message is dropped and
    /// counted (a warning, rate-limited, says so).
    pub fn offer(&self, make: impl FnOnce() -> Captured, len: usize) {
        if self.tx.is_closed() {
            return; // the lab stopped and the sender with it
        }
        if len > MAX_DATAGRAM
            || self.queued_bytes.load(Ordering::Relaxed) + len > QUEUE_BYTES
            || self.tx.capacity() == 0
        {
            self.drop_one();
            return;
        }
        self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(make()) {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.drop_one();
            }
        }
    }

    fn drop_one(&self) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        crate::warn_limited!(
            "trace.hep.dropped",
            dropped = n,
            "HEP: queue to the collector full (or message too long), message not sent"
        );
    }

    /// Messages not sent so far (queue full, too long for a datagram, or the send failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Names a socket address after its node, or `None` outside the lab.
pub type Namer = Arc<dyn Fn(SocketAddr, Duration) -> Option<String> + Send + Sync>;

/// How long the sender goes on after the lab's shutdown: what the nodes say while they stop
/// (Diameter DPR/DPA) still reaches the collector.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// The one task that sends the queue to `target` as HEP3 over UDP until `shutdown` (and
/// [`SHUTDOWN_GRACE`] after it). Each
/// message goes once: a message received from another node of the lab was already sent by
/// that node (Diameter records both ends; SIP receivers skip recording senders, see
/// [`crate::trace::Trace::recorder`]). Secrets are masked as in the flight recorder
/// ([`crate::trace::redact`]).
pub async fn run_sender(
    mut queue: HepQueue,
    target: SocketAddr,
    name: Namer,
    mut shutdown: watch::Receiver<bool>,
) {
    let bind: SocketAddr = if target.is_ipv4() {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let sock = match tokio::net::UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "HEP: cannot open a UDP socket, live capture is off");
            return;
        }
    };
    tracing::info!(collector = %target, "HEP: sending every SIP and Diameter message");
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        let c = match until {
            None => tokio::select! {
                c = queue.rx.recv() => c,
                _ = shutdown.wait_for(|v| *v) => {
                    until = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                    continue;
                }
            },
            Some(t) => tokio::time::timeout_at(t, queue.rx.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(c) = c else { return };
        queue
            .queued_bytes
            .fetch_sub(c.bytes.len(), Ordering::Relaxed);
        if c.direction == Direction::Received
            && c.protocol == Protocol::Diameter
            && name(c.remote, c.at).is_some()
        {
            continue; // the node at the other end sent it already
        }
        let node = name(c.local, c.at);
        let bytes = crate::trace::redact::redact(c.protocol, &c.bytes);
        let (src, dst) = match c.direction {
            Direction::Sent => (c.local, c.remote),
            Direction::Received => (c.remote, c.local),
        };
        let (transport, proto_type, correlation_id) = match c.protocol {
            Protocol::SipUdp => (IpProto::Udp, PROTO_SIP, sip_call_id(&bytes)),
            Protocol::SipTcp => (IpProto::Tcp, PROTO_SIP, sip_call_id(&bytes)),
            _ => (IpProto::Tcp, PROTO_DIAMETER, diameter_session_id(&bytes)),
        };
        let msg = HepMessage {
            transport,
            src,
            dst,
            time: c.wall,
            proto_type,
            capture_id: CAPTURE_ID,
            auth_key: None,
            correlation_id,
            node_name: node.as_deref(),
            payload: &bytes,
        };
        let sent = match msg.encode() {
            Ok(p) => sock.send_to(&p, target).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            crate::warn_limited!("trace.hep.send", collector = %target, error = %e, "HEP: send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(payload: &'a [u8]) -> HepMessage<'a> {
        HepMessage {
            transport: IpProto::Udp,
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5070".parse().unwrap(),
            time: UNIX_EPOCH + Duration::new(0x6000_0001, 2_000),
            proto_type: PROTO_SIP,
            capture_id: 7,
            auth_key: None,
            correlation_id: Some("c1"),
            node_name: Some("P-CSCF"),
            payload,
        }
    }

    #[test]
    fn a_known_packet_has_exactly_these_bytes() {
        let p = sample(b"OPTIONS").encode().unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &b"HEP3"[..], &[0x00, 0x7e],
            &[0, 0, 0, 0x01, 0, 7, 2],                         // family IPv4
            &[0, 0, 0, 0x02, 0, 7, 17],                        // UDP
            &[0, 0, 0, 0x03, 0, 10, 10, 0, 0, 1],              // src ip
            &[0, 0, 0, 0x04, 0, 10, 10, 0, 0, 2],              // dst ip
            &[0, 0, 0, 0x07, 0, 8, 0x13, 0xc4],                // 5060
            &[0, 0, 0, 0x08, 0, 8, 0x13, 0xce],                // 5070
            &[0, 0, 0, 0x09, 0, 10, 0x60, 0, 0, 1],            // seconds
            &[0, 0, 0, 0x0a, 0, 10, 0, 0, 0, 2],               // microseconds
            &[0, 0, 0, 0x0b, 0, 7, 1],                         // SIP
            &[0, 0, 0, 0x0c, 0, 10, 0, 0, 0, 7],               // capture id
            &[0, 0, 0, 0x11, 0, 8], b"c1",                     // correlation id
            &[0, 0, 0, 0x13, 0, 12], b"P-CSCF",                // node name
            &[0, 0, 0, 0x0f, 0, 13], b"OPTIONS",               // payload
        ]
        .concat();
        assert_eq!(p, want);
        assert_eq!(p.len(), 0x7e);
    }

    #[test]
    fn decode_inverts_encode_and_ipv6_uses_chunks_5_and_6() {
        let mut m = sample(b"INVITE sip:b SIP/2.0\r\n\r\n");
        m.transport = IpProto::Tcp;
        m.src = "[::1]:5060".parse().unwrap();
        m.auth_key = Some("k");
        let p = m.encode().unwrap();
        let c = decode(&p).unwrap();
        let get = |k: u16| c.iter().find(|c| c.kind == k).map(|c| c.value);
        assert_eq!(get(CHUNK_IP_FAMILY), Some(&[10u8][..]));
        assert_eq!(get(CHUNK_IP_PROTO), Some(&[6u8][..]));
        assert_eq!(get(CHUNK_IPV6_SRC).map(|v| v.len()), Some(16));
        // The IPv4 destination goes IPv4-mapped.
        assert_eq!(
            get(CHUNK_IPV6_DST),
            Some(
                &"::ffff:10.0.0.2"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()[..]
            )
        );
        assert_eq!(get(CHUNK_IPV4_SRC), None);
        assert_eq!(get(CHUNK_AUTH_KEY), Some(&b"k"[..]));
        assert_eq!(
            get(CHUNK_PAYLOAD),
            Some(&b"INVITE sip:b SIP/2.0\r\n\r\n"[..])
        );
        assert!(c.iter().all(|c| c.vendor == 0));
        let sum: usize = c.iter().map(|c| 6 + c.value.len()).sum();
        assert_eq!(6 + sum, p.len());
    }

    #[test]
    fn too_long_and_malformed_packets_are_refused() {
        let big = vec![b'x'; MAX_DATAGRAM];
        assert!(matches!(sample(&big).encode(), Err(HepError::TooLong(_))));
        let mut p = sample(b"x").encode().unwrap();
        assert!(decode(&p[..p.len() - 1]).is_err());
        let n = p.len();
        p[n - 2] = 200; // the payload chunk (7 bytes) claims 200
        assert_eq!(decode(&p), Err(HepError::Malformed("bad chunk length")));
        assert!(decode(b"HEP2\0\x06").is_err());
    }

    #[test]
    fn call_id_long_and_compact_and_session_id() {
        let m = b"REGISTER sip:ims.lab SIP/2.0\r\nVia: x\r\nCall-ID:  abc@h \r\n\r\ni: body";
        assert_eq!(sip_call_id(m), Some("abc@h"));
        assert_eq!(sip_call_id(b"SIP/2.0 200 OK\r\ni: z\r\n\r\n"), Some("z"));
        assert_eq!(sip_call_id(b"SIP/2.0 200 OK\r\n\r\n"), None);
        // A Diameter header, then Session-Id (263, no vendor) "s;1" padded to 4.
        let mut d = vec![1u8; 20];
        d.extend_from_slice(&263u32.to_be_bytes());
        d.extend_from_slice(&[0x40, 0, 0, 11]);
        d.extend_from_slice(b"s;1\0");
        assert_eq!(diameter_session_id(&d), Some("s;1"));
        assert_eq!(diameter_session_id(&d[..20]), None);
    }

    #[test]
    fn targets_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_target("127.0.0.1:9060"),
            Ok("127.0.0.1:9060".parse().unwrap())
        );
        assert_eq!(parse_target("localhost:9060").map(|a| a.port()), Ok(9060));
        let e = parse_target("127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("HOST:PORT") && e.contains("no port"), "{e}");
        assert!(parse_target("host:99999")
            .unwrap_err()
            .to_string()
            .contains("not a port"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_never_waits() {
        let (tap, _queue) = HepTap::channel();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mk = || Captured {
            wall: SystemTime::now(),
            at: Duration::ZERO,
            direction: Direction::Sent,
            protocol: Protocol::SipUdp,
            local: a,
            remote: a,
            bytes: b"x".to_vec(),
        };
        for _ in 0..QUEUE_MESSAGES + 5 {
            tap.offer(mk, 1);
        }
        assert_eq!(tap.dropped(), 5);
        tap.offer(mk, MAX_DATAGRAM + 1);
        assert_eq!(tap.dropped(), 6);
    }
}
