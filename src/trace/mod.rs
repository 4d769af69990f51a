//! Flight recorder: every message a node sends or receives, as it crossed the socket.
//!
//! Transports call [`Trace::record`] with the raw bytes; the recorder keeps time, direction,
//! protocol, both socket addresses, the first line (SIP/MSRP start line or the Diameter command
//! name) and the bytes. Rendering (ladders, pcap) maps addresses to node names with the lab's
//! address book, so the codecs and transports never need to know which node they belong to.
//!
//! The same record path feeds the live HEPv3 tap (`rcslab up --hep`, [`hep`]) when there is
//! one, with or without the ring: a trace with neither costs one branch per message.

pub mod filter;
pub mod hep;
pub mod redact;
pub mod source;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The protocol of a recorded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SIP over UDP.
    SipUdp,
    /// SIP over TCP.
    SipTcp,
    /// Diameter over TCP.
    Diameter,
    /// MSRP over TCP.
    Msrp,
    /// HTTP (WebRSF, admin API).
    Http,
    /// SMPP 3.4 over TCP (the SMSC).
    Smpp,
}

impl Protocol {
    /// Short label used in ladders.
    pub fn label(&self) -> &'static str {
        match self {
            Protocol::SipUdp | Protocol::SipTcp => "SIP",
            Protocol::Diameter => "Diameter",
            Protocol::Msrp => "MSRP",
            Protocol::Http => "HTTP",
            Protocol::Smpp => "SMPP",
        }
    }
}

/// Whether the recording node sent or received the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The node wrote these bytes to `remote`.
    Sent,
    /// The node read these bytes from `remote`.
    Received,
}

/// One recorded message.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    /// Monotonic time since the recorder was created.
    pub at: Duration,
    /// Wall-clock time (for pcap timestamps).
    pub wall: SystemTime,
    /// Sent or received by the recording socket.
    pub direction: Direction,
    /// Protocol of the bytes.
    pub protocol: Protocol,
    /// The recording node's socket address.
    pub local: SocketAddr,
    /// The other end's socket address.
    pub remote: SocketAddr,
    /// A one-line summary: SIP/MSRP start line, or the Diameter command ("UAR", "MAA"...).
    pub summary: String,
    /// The message bytes exactly as they crossed the socket.
    pub bytes: Vec<u8>,
}

impl TraceEvent {
    /// Source address of the message on the wire.
    pub fn src(&self) -> SocketAddr {
        match self.direction {
            Direction::Sent => self.local,
            Direction::Received => self.remote,
        }
    }
    /// Destination address of the message on the wire.
    pub fn dst(&self) -> SocketAddr {
        match self.direction {
            Direction::Sent => self.remote,
            Direction::Received => self.local,
        }
    }
}

/// A shared, cheap-to-clone handle to the recorder. A disabled trace records nothing and costs
/// one branch per message.
#[derive(Clone, Default)]
pub struct Trace {
    inner: Option<Arc<Inner>>,
}

/// A node's note on a decision it took (which iFC matched, which S-CSCF the HSS chose, why a
/// 401 was sent). Ladders show it next to the messages; pcap leaves it out.
#[derive(Debug, Clone)]
pub struct Note {
    /// Monotonic time since the recorder was created.
    pub at: Duration,
    /// The node that decided (its listening address).
    pub node: SocketAddr,
    /// What it decided, and why.
    pub text: String,
}

/// What the recorder keeps at most: the oldest messages (and notes) go first, counted.
#[derive(Debug, Clone, Copy)]
pub struct TraceLimits {
    /// Messages kept.
    pub capacity: usize,
    /// Message bytes kept.
    pub max_bytes: usize,
}

impl Default for TraceLimits {
    fn default() -> Self {
        TraceLimits {
            capacity: 100_000,
            max_bytes: 256 << 20,
        }
    }
}

/// Aliases kept at most (one per outgoing TCP connection); older ones go first.
const MAX_ALIASES: usize = 65_536;

#[derive(Default)]
struct Ring {
    events: std::collections::VecDeque<TraceEvent>,
    bytes: usize,
    dropped: u64,
}

struct Inner {
    start: Instant,
    limits: TraceLimits,
    /// Whether the ring keeps messages and notes (off when only the HEP tap is on).
    keep: bool,
    /// Live capture to a HEP collector.
    tap: Option<hep::HepTap>,
    events: Mutex<Ring>,
    notes: Mutex<std::collections::VecDeque<Note>>,
    /// Sockets that record their own sends (listeners and aliased connections): what they
    /// send is kept once, as sent, and not again as received at the other end.
    recorders: std::sync::RwLock<std::collections::HashSet<SocketAddr>>,
    /// Ephemeral address -> (since when, node address): a port is reused by later connections
    /// of other nodes, so an alias holds from when it was made.
    aliases: Mutex<std::collections::HashMap<SocketAddr, Vec<(Duration, SocketAddr)>>>,
    /// Names the nodes give the far ends they learn about (an MSRP relay names the connection
    /// a user bound their leg from): the last resort of a ladder's address book.
    peer_names: Mutex<std::collections::HashMap<SocketAddr, String>>,
}

impl Trace {
    /// A recorder that keeps the last messages (the default [`TraceLimits`]).
    pub fn enabled() -> Self {
        Self::with_limits(TraceLimits::default())
    }

    /// A recorder that keeps the last messages within `limits` (a ring: the oldest go first
    /// and are counted, see [`Trace::dropped`]).
    pub fn with_limits(limits: TraceLimits) -> Self {
        Self::with_ring_and_tap(Some(limits), None)
    }

    /// A recorder with a ring (`Some` limits), a live HEP tap, both, or neither (then it is
    /// [`Trace::disabled`]).
    pub fn with_ring_and_tap(ring: Option<TraceLimits>, tap: Option<hep::HepTap>) -> Self {
        if ring.is_none() && tap.is_none() {
            return Self::disabled();
        }
        Trace {
            inner: Some(Arc::new(Inner {
                start: Instant::now(),
                keep: ring.is_some(),
                limits: ring.unwrap_or(TraceLimits {
                    capacity: 1,
                    max_bytes: 1,
                }),
                tap,
                events: Mutex::new(Ring::default()),
                notes: Mutex::new(std::collections::VecDeque::new()),
                recorders: std::sync::RwLock::new(std::collections::HashSet::new()),
                aliases: Mutex::new(std::collections::HashMap::new()),
                peer_names: Mutex::new(std::collections::HashMap::new()),
            })),
        }
    }

    /// A recorder that drops everything.
    pub fn disabled() -> Self {
        Trace { inner: None }
    }

    /// True when messages are kept (the ring is on).
    pub fn is_enabled(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.keep)
    }

    /// Messages the HEP tap could not send so far (0 without a tap).
    pub fn hep_dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .and_then(|i| i.tap.as_ref())
            .map_or(0, |t| t.dropped())
    }

    /// Records one message. `summary` is computed lazily only when recording is on.
    pub fn record(
        &self,
        direction: Direction,
        protocol: Protocol,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        summary: impl FnOnce() -> String,
    ) {
        let Some(inner) = &self.inner else { return };
        if direction == Direction::Received
            && inner.recorders.read().is_ok_and(|r| r.contains(&remote))
        {
            // The sender recorded it already (exports show each message once).
            return;
        }
        if let Some(tap) = inner
            .tap
            .as_ref()
            .filter(|_| hep::HepTap::carries(protocol))
        {
            tap.offer(
                || hep::Captured {
                    wall: SystemTime::now(),
                    at: inner.start.elapsed(),
                    direction,
                    protocol,
                    local,
                    remote,
                    bytes: bytes.to_vec(),
                },
                bytes.len(),
            );
        }
        if !inner.keep {
            return;
        }
        let ev = TraceEvent {
            at: inner.start.elapsed(),
            wall: SystemTime::now(),
            direction,
            protocol,
            local,
            remote,
            summary: summary(),
            // Secrets (Digest-HA1, passwords, tokens) never enter the ring: see [`redact`].
            bytes: redact::redact(protocol, bytes).into_owned(),
        };
        if let Ok(mut r) = inner.events.lock() {
            r.bytes += ev.bytes.len();
            r.events.push_back(ev);
            while r.events.len() > inner.limits.capacity.max(1)
                || (r.bytes > inner.limits.max_bytes && r.events.len() > 1)
            {
                if let Some(old) = r.events.pop_front() {
                    r.bytes -= old.bytes.len();
                    r.dropped += 1;
                }
            }
        }
    }

    /// Messages dropped from the front of the ring so far.
    pub fn dropped(&self) -> u64 {
        match &self.inner {
            Some(inner) => inner.events.lock().map(|r| r.dropped).unwrap_or(0),
            None => 0,
        }
    }

    /// Declares a socket that records what it sends (a node's listener): messages from it are
    /// not recorded a second time by their receiver.
    pub fn recorder(&self, addr: SocketAddr) {
        if let Some(inner) = &self.inner {
            if let Ok(mut r) = inner.recorders.write() {
                r.insert(addr);
            }
        }
    }

    /// Records a node's note on a decision (computed only when recording is on).
    pub fn note(&self, node: SocketAddr, text: impl FnOnce() -> String) {
        let Some(inner) = self.inner.as_ref().filter(|i| i.keep) else {
            return;
        };
        let n = Note {
            at: inner.start.elapsed(),
            node,
            text: text(),
        };
        if let Ok(mut v) = inner.notes.lock() {
            v.push_back(n);
            while v.len() > inner.limits.capacity.max(1) {
                v.pop_front();
            }
        }
    }

    /// The notes recorded so far, in order.
    pub fn notes(&self) -> Vec<Note> {
        match &self.inner {
            Some(inner) => inner
                .notes
                .lock()
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Notes that `ephemeral` (the local end of an outgoing TCP connection) belongs to the node
    /// listening on `node`, so ladders name both the same.
    pub fn alias(&self, ephemeral: SocketAddr, node: SocketAddr) {
        if let Some(inner) = &self.inner {
            let at = inner.start.elapsed();
            if let Ok(mut a) = inner.aliases.lock() {
                if a.len() >= MAX_ALIASES && !a.contains_key(&ephemeral) {
                    // Bounded: the aliases no kept message refers to any more go first.
                    let oldest = inner
                        .events
                        .lock()
                        .ok()
                        .and_then(|r| r.events.front().map(|e| e.at))
                        .unwrap_or(at);
                    a.retain(|_, v| v.last().is_some_and(|(since, _)| *since >= oldest));
                    if a.len() >= MAX_ALIASES {
                        a.clear();
                    }
                }
                let v = a.entry(ephemeral).or_default();
                v.push((at, node));
                if v.len() > 16 {
                    v.remove(0);
                }
            }
            if let Ok(mut r) = inner.recorders.write() {
                r.insert(ephemeral);
            }
        }
    }

    /// The node address behind an address (itself when it is no alias), as of the latest alias.
    pub fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        match &self.inner {
            Some(inner) => inner
                .aliases
                .lock()
                .ok()
                .and_then(|a| a.get(&addr).and_then(|v| v.last()).map(|(_, n)| *n))
                .unwrap_or(addr),
            None => addr,
        }
    }

    /// The node address behind an address at time `at` (a message's time): the alias made
    /// last before it, so a port reused by another node's connection later is not confused.
    pub fn resolve_at(&self, addr: SocketAddr, at: Duration) -> SocketAddr {
        match &self.inner {
            Some(inner) => inner
                .aliases
                .lock()
                .ok()
                .and_then(|a| {
                    let v = a.get(&addr)?;
                    v.iter()
                        .rev()
                        .find(|(since, _)| *since <= at)
                        .or_else(|| v.first())
                        .map(|(_, n)| *n)
                })
                .unwrap_or(addr),
            None => addr,
        }
    }

    /// A copy of everything recorded so far, in recording order.
    pub fn events(&self) -> Vec<TraceEvent> {
        match &self.inner {
            Some(inner) => inner
                .events
                .lock()
                .map(|r| r.events.iter().cloned().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Forgets everything recorded so far; returns how many messages it dropped.
    pub fn clear(&self) -> usize {
        let mut n = 0;
        if let Some(inner) = &self.inner {
            if let Ok(mut r) = inner.events.lock() {
                n = r.events.len();
                r.events.clear();
                r.bytes = 0;
            }
            if let Ok(mut v) = inner.notes.lock() {
                v.clear();
            }
        }
        n
    }

    /// The recorder's time now (messages carry the time they were recorded at).
    pub fn elapsed(&self) -> Duration {
        self.inner
            .as_ref()
            .map(|i| i.start.elapsed())
            .unwrap_or_default()
    }

    /// Names a far end a node learnt about (`UE alice` for the connection alice bound her
    /// MSRP leg from). Ladders use it for addresses that have no name and no alias.
    pub fn name_peer(&self, addr: SocketAddr, name: &str) {
        if let Some(inner) = &self.inner {
            if let Ok(mut n) = inner.peer_names.lock() {
                if n.len() >= MAX_ALIASES && !n.contains_key(&addr) {
                    n.clear();
                }
                n.insert(addr, name.to_string());
            }
        }
    }

    /// The name a node gave a far end ([`Trace::name_peer`]).
    pub fn peer_name(&self, addr: SocketAddr) -> Option<String> {
        let inner = self.inner.as_ref()?;
        inner.peer_names.lock().ok()?.get(&addr).cloned()
    }
}

/// First line of a text protocol message (SIP, MSRP, HTTP), lossy and trimmed.
pub fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trace({})", if self.is_enabled() { "on" } else { "off" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_is_a_ring_that_counts_what_it_dropped() {
        let t = Trace::with_limits(TraceLimits {
            capacity: 3,
            max_bytes: 1 << 20,
        });
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        for i in 0..5 {
            t.record(Direction::Sent, Protocol::SipUdp, a, b, b"x", || {
                format!("m{i}")
            });
        }
        let kept: Vec<_> = t.events().into_iter().map(|e| e.summary).collect();
        assert_eq!(kept, ["m2", "m3", "m4"]);
        assert_eq!(t.dropped(), 2);
        let t = Trace::with_limits(TraceLimits {
            capacity: 100,
            max_bytes: 10,
        });
        for _ in 0..4 {
            t.record(Direction::Sent, Protocol::SipUdp, a, b, b"abcd", || {
                "m".into()
            });
        }
        assert_eq!(
            (t.events().len(), t.dropped()),
            (2, 2),
            "8 bytes of 10 kept"
        );
    }

    #[test]
    fn a_hep_tap_without_the_ring_gets_sip_and_diameter_once_and_keeps_nothing() {
        let (tap, mut queue) = hep::HepTap::channel();
        let t = Trace::with_ring_and_tap(None, Some(tap));
        assert!(!t.is_enabled(), "no ring: nothing kept");
        let node: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let ue: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        t.recorder(other);
        t.record(Direction::Sent, Protocol::SipUdp, node, other, b"A", || {
            unreachable!("summaries are for the ring")
        });
        // `other` records its own sends: its message is not captured again by the receiver.
        t.record(
            Direction::Received,
            Protocol::SipUdp,
            node,
            other,
            b"B",
            String::new,
        );
        t.record(
            Direction::Received,
            Protocol::SipTcp,
            node,
            ue,
            b"C",
            String::new,
        );
        t.record(
            Direction::Sent,
            Protocol::Diameter,
            node,
            other,
            b"D",
            String::new,
        );
        // HEP has no type for MSRP or HTTP.
        t.record(
            Direction::Sent,
            Protocol::Msrp,
            node,
            other,
            b"E",
            String::new,
        );
        t.record(
            Direction::Sent,
            Protocol::Http,
            node,
            other,
            b"F",
            String::new,
        );
        t.note(node, || unreachable!("notes are for the ring"));
        let got: Vec<_> = std::iter::from_fn(|| queue.try_recv())
            .map(|c| (c.direction, c.protocol, c.bytes))
            .collect();
        assert_eq!(
            got,
            [
                (Direction::Sent, Protocol::SipUdp, b"A".to_vec()),
                (Direction::Received, Protocol::SipTcp, b"C".to_vec()),
                (Direction::Sent, Protocol::Diameter, b"D".to_vec()),
            ]
        );
        assert!(t.events().is_empty() && t.notes().is_empty());
        assert!(!Trace::with_ring_and_tap(None, None).is_enabled());
    }
}
