//! SIP transport over UDP and TCP (RFC 3261 §18), and WebSocket (RFC 7118) where a node
//! listens for it ([`SipTransport::listen_ws`], the P-CSCF).
//!
//! One [`SipTransport`] per node binds a UDP socket and a TCP listener on the same port. TCP
//! streams are framed by Content-Length ([`crate::sip::message::frame`]); connections are reused
//! in both directions (a response or a request to a peer that connected to us goes back over
//! that connection, RFC 3261 §18.2.2 and RFC 5626 flows). Whole messages are handed up through
//! a bounded channel ([`SipLimits::inbound_queue`]): datagrams beyond it are dropped, TCP
//! readers wait. Bytes that cannot be framed close the connection; a message too large to
//! take (more than [`MAX_MESSAGE_SIZE`]) is skipped with its head handed up (the endpoint
//! answers 513) and the connection lives on, since other users share it.
//!
//! TCP connections are capped ([`SipLimits::max_tcp_connections`]), closed when idle
//! ([`SipLimits::tcp_idle_timeout`]) or when a message does not complete in time
//! ([`SipLimits::tcp_message_timeout`]: a Content-Length longer than the body); connects time
//! out; each writer has a bounded queue.
//!
//! Where things are: the UDP receive loop in `udp`; TCP connections (connect, accept, the cap,
//! the connection table and each connection's writer) in `tcp`; a connection's reader (framing,
//! oversized messages, idle and message timeouts) in `tcp_reader`; SIP over WebSocket (the
//! upgrade, one message per frame, pings, the flow table) in `ws`; refusing requests at the
//! socket when the node lags in `overload`. Sending, binding and the counters are here.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::metrics::{Dir as MetricDir, SipCounters};
use crate::sip::limits::{Admission, SipLimits};
use crate::sip::message::MAX_MESSAGE_SIZE;
use crate::trace::{first_line, Direction, Protocol, Trace};

mod overload;
mod tcp;
mod tcp_reader;
mod udp;
mod ws;

pub use overload::{LAG_HOLD, QUEUE_DELAY_HIGH, QUEUE_DELAY_LOW};
pub use udp::UDP_RECEIVE_BUFFER;
pub use ws::{WS_PING_EVERY, WS_SUBPROTOCOL};

/// The transport a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams; unreliable, so transactions retransmit.
    Udp,
    /// A byte stream framed by Content-Length; reliable.
    Tcp,
    /// WebSocket (RFC 7118): one message per frame over a connection the client opened;
    /// reliable. Only the client connects, so messages to it go back over its connection.
    Ws,
}

impl Transport {
    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Ws => "WS",
        }
    }
    /// Parses a Via transport token or a `transport=` URI parameter.
    pub fn parse(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("ws") || s.eq_ignore_ascii_case("wss") {
            // `wss` too (RFC 7118 §5.2): a browser behind a TLS front names the transport it
            // used there; towards us the flow is what counts, and it is a WebSocket.
            Some(Transport::Ws)
        } else {
            None
        }
    }
    /// The `;transport=` URI parameter for this transport (empty for UDP, the default).
    pub fn uri_param(&self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Ws => ";transport=ws",
        }
    }
    /// True for stream transports (no retransmissions, RFC 3261 §17.1.1.2).
    pub fn is_reliable(&self) -> bool {
        matches!(self, Transport::Tcp | Transport::Ws)
    }
}

/// Raw bytes of one SIP message as they arrived.
#[derive(Debug)]
pub struct Datagram {
    /// The message bytes (one whole message).
    pub bytes: Bytes,
    /// Where they came from.
    pub source: SocketAddr,
    /// Which transport.
    pub transport: Transport,
    /// Only the head of a message too large to take arrived (its body was skipped).
    pub oversized: bool,
    /// When it was read off the socket (the dispatcher measures how long it queued).
    pub at: Instant,
}

/// What a transport has refused or dropped so far, and its open connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// TCP connections open now.
    pub tcp_connections: usize,
    /// Datagrams dropped because the inbound queue was full.
    pub udp_dropped: u64,
    /// Requests refused with 503 at the socket, before parsing (the node was overloaded).
    pub shed_at_socket: u64,
    /// Accepted TCP connections closed at once (the cap was reached).
    pub tcp_refused: u64,
    /// TCP connections closed for idleness or an incomplete message.
    pub tcp_timed_out: u64,
    /// WebSocket connections open now (also counted in `tcp_connections`).
    pub ws_connections: usize,
}

#[derive(Default)]
struct Counters {
    tcp_connections: AtomicUsize,
    udp_dropped: AtomicU64,
    shed_at_socket: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_timed_out: AtomicU64,
    ws_connections: AtomicUsize,
    /// When a "cap reached" warning was last logged (ms since start), to log it rarely.
    last_cap_warning: AtomicU64,
}

/// A node's SIP sockets: UDP and TCP on one address.
pub struct SipTransport {
    local: SocketAddr,
    udp: Arc<UdpSocket>,
    /// Open TCP connections by remote address: a sender to that connection's writer task.
    conns: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>>,
    /// Connects in progress, by destination: sends racing to a peer wait for one connect
    /// instead of each opening a connection of its own.
    connecting: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    inbound: mpsc::Sender<Datagram>,
    trace: Trace,
    shutdown: watch::Receiver<bool>,
    limits: SipLimits,
    counters: Arc<Counters>,
    started: Instant,
    /// Bytes the inbound queue may still take ([`SipLimits::inbound_bytes`]); the dispatcher
    /// gives them back with [`SipTransport::taken`].
    budget: Arc<tokio::sync::Semaphore>,
    /// The node's name (the agent of a 503's Warning).
    name: String,
    /// The node's admission control (its transactions in progress).
    admission: Arc<Admission>,
    /// Until when (ms since `started`) the node counts as lagging: set [`LAG_HOLD`] ahead each
    /// time a message waited longer than [`QUEUE_DELAY_HIGH`] between the socket and the
    /// dispatcher, cleared when one waited less than [`QUEUE_DELAY_LOW`]. It lapses by itself,
    /// so that once requests are refused at the socket (and so no longer measured) some are
    /// let through again to probe the queue.
    lagging_until: AtomicU64,
    /// Message counters (`/metrics`), set once by [`SipTransport::set_metrics`]; shared with
    /// the TCP readers.
    metrics: Arc<std::sync::OnceLock<SipCounters>>,
    /// Open WebSocket flows by the client's address: a sender to that connection's writer.
    ws_flows: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<ws::Outgoing>>>>,
    /// Where the WebSocket listener is bound, once [`SipTransport::listen_ws`] ran.
    ws_local: std::sync::OnceLock<SocketAddr>,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both) and starts the
    /// receive loops. Every message read is sent to the returned receiver.
    pub async fn bind(
        name: &str,
        addr: SocketAddr,
        limits: SipLimits,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<(Arc<SipTransport>, mpsc::Receiver<Datagram>)> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        trace.recorder(local);
        let (tx, rx) = mpsc::channel(limits.inbound_queue.max(1));
        let t = Arc::new(SipTransport {
            local,
            udp: Arc::new(udp),
            conns: Arc::new(Mutex::new(HashMap::new())),
            connecting: Mutex::new(HashMap::new()),
            inbound: tx,
            trace,
            shutdown,
            limits,
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
            budget: Arc::new(tokio::sync::Semaphore::new(
                limits
                    .inbound_bytes
                    .clamp(MAX_MESSAGE_SIZE + 1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            name: name.to_string(),
            admission: Admission::new(limits),
            lagging_until: AtomicU64::new(0),
            metrics: Arc::new(std::sync::OnceLock::new()),
            ws_flows: Arc::new(Mutex::new(HashMap::new())),
            ws_local: std::sync::OnceLock::new(),
        });
        tokio::spawn(udp::udp_loop(t.clone()));
        tokio::spawn(tcp::accept_loop(t.clone(), tcp));
        Ok((t, rx))
    }

    /// Counts every message this transport sends and reads from now on (the first call wins).
    pub fn set_metrics(&self, counters: SipCounters) {
        let _ = self.metrics.set(counters);
    }

    /// Messages waiting in the inbound queue for the node's dispatcher, and the queue's size.
    pub fn inbound_depth(&self) -> (usize, usize) {
        let cap = self.inbound.max_capacity();
        (cap.saturating_sub(self.inbound.capacity()), cap)
    }

    fn count(&self, dir: MetricDir, bytes: &[u8]) {
        if let Some(m) = self.metrics.get() {
            m.count(dir, bytes);
        }
    }

    /// The node's admission control.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The flight recorder this transport writes to.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The node took a message of `n` bytes off the inbound queue: its bytes are free again.
    pub fn taken(&self, n: usize) {
        self.budget.add_permits(n);
    }

    /// Open connections and what was dropped or refused.
    pub fn stats(&self) -> TransportStats {
        let c = &self.counters;
        TransportStats {
            tcp_connections: c.tcp_connections.load(Ordering::Relaxed),
            udp_dropped: c.udp_dropped.load(Ordering::Relaxed),
            shed_at_socket: c.shed_at_socket.load(Ordering::Relaxed),
            tcp_refused: c.tcp_refused.load(Ordering::Relaxed),
            tcp_timed_out: c.tcp_timed_out.load(Ordering::Relaxed),
            ws_connections: c.ws_connections.load(Ordering::Relaxed),
        }
    }

    /// Logs `what` at most once every 10 s (an attacker must not set how fast logs grow).
    fn warn_rarely(&self, what: &str) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.counters.last_cap_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .counters
                .last_cap_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let s = self.stats();
            tracing::warn!(local = %self.local, connections = s.tcp_connections, refused = s.tcp_refused, udp_dropped = s.udp_dropped, "{what}");
        }
    }

    /// Sends one serialised message. TCP reuses an open connection to `dest` or opens one
    /// (within [`SipLimits::tcp_connect_timeout`]). A message larger than
    /// [`MAX_MESSAGE_SIZE`] is refused: no peer could take it.
    pub async fn send(
        &self,
        transport: Transport,
        dest: SocketAddr,
        bytes: Bytes,
    ) -> io::Result<()> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message of {} bytes is larger than {MAX_MESSAGE_SIZE}",
                    bytes.len()
                ),
            ));
        }
        match transport {
            Transport::Udp => {
                self.trace.record(
                    Direction::Sent,
                    Protocol::SipUdp,
                    self.local,
                    dest,
                    &bytes,
                    || first_line(&bytes),
                );
                self.count(MetricDir::Sent, &bytes);
                self.udp.send_to(&bytes, dest).await.map(|_| ())
            }
            Transport::Tcp => {
                let existing = self.conns.lock().ok().and_then(|c| c.get(&dest).cloned());
                let sender = match existing {
                    Some(s) if !s.is_closed() => s,
                    _ => self.connect_once(dest).await?,
                };
                // Recorded before the bytes are queued, so the ladder never shows the next hop
                // reacting before this send.
                self.trace.record(
                    Direction::Sent,
                    Protocol::SipTcp,
                    self.local,
                    dest,
                    &bytes,
                    || first_line(&bytes),
                );
                self.count(MetricDir::Sent, &bytes);
                sender.try_send(bytes).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "TCP write queue full (the peer does not read)",
                    ),
                    mpsc::error::TrySendError::Closed(_) => {
                        io::Error::new(io::ErrorKind::BrokenPipe, "TCP connection closed")
                    }
                })?;
                Ok(())
            }
            Transport::Ws => self.send_ws(dest, bytes),
        }
    }
}

/// Binds UDP and TCP on the same port, retrying when port 0 gave a UDP port whose TCP twin is
/// taken.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        udp::widen_receive_buffer(&udp);
        let port = udp.local_addr()?.port();
        let mut tcp_addr = addr;
        tcp_addr.set_port(port);
        match tcp::listen_shared(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

impl Drop for SipTransport {
    fn drop(&mut self) {
        if let Ok(mut c) = self.conns.lock() {
            c.clear();
        }
        if let Ok(mut c) = self.ws_flows.lock() {
            c.clear();
        }
    }
}
