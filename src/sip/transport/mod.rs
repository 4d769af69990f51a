//! SIP transport over UDP and TCP (RFC 3261 §18).
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

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::metrics::{Dir as MetricDir, SipCounters};
use crate::sip::limits::{Admission, SipLimits};
use crate::sip::message::{frame, Frame, MAX_MESSAGE_SIZE};
use crate::sip::stateless;
use crate::trace::{first_line, Direction, Protocol, Trace};

/// The transport a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams; unreliable, so transactions retransmit.
    Udp,
    /// A byte stream framed by Content-Length; reliable.
    Tcp,
}

impl Transport {
    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
    /// Parses a Via transport token or a `transport=` URI parameter.
    pub fn parse(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
    /// The `;transport=` URI parameter for this transport (empty for UDP, the default).
    pub fn uri_param(&self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        }
    }
    /// True for stream transports (no retransmissions, RFC 3261 §17.1.1.2).
    pub fn is_reliable(&self) -> bool {
        matches!(self, Transport::Tcp)
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
}

#[derive(Default)]
struct Counters {
    tcp_connections: AtomicUsize,
    udp_dropped: AtomicU64,
    shed_at_socket: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_timed_out: AtomicU64,
    /// When a "cap reached" warning was last logged (ms since start), to log it rarely.
    last_cap_warning: AtomicU64,
}

/// Gives a connection's slot back when its reader ends.
struct ConnSlot(Arc<Counters>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    }
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
}

/// How long one observation of a lagging queue keeps the node refusing new requests.
pub const LAG_HOLD: std::time::Duration = std::time::Duration::from_millis(100);

/// Queueing delay between the socket and the node's dispatcher past which the node counts as
/// overloaded: new out-of-dialog requests arriving over UDP are then refused at the socket.
/// (A node that keeps up reads each message within a millisecond or two; when the CPU is
/// saturated the queue grows, and every request it admits only adds to everyone's delay.)
pub const QUEUE_DELAY_HIGH: std::time::Duration = std::time::Duration::from_millis(20);
/// The delay under which it counts as keeping up again.
pub const QUEUE_DELAY_LOW: std::time::Duration = std::time::Duration::from_millis(5);

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
        });
        tokio::spawn(udp_loop(t.clone()));
        tokio::spawn(accept_loop(t.clone(), tcp));
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

    /// The dispatcher took a message that waited `delay` since it was read.
    pub fn queued_for(&self, delay: std::time::Duration) {
        if delay > QUEUE_DELAY_HIGH {
            let until = self.now_ms() + LAG_HOLD.as_millis() as u64;
            if self.lagging_until.swap(until, Ordering::Relaxed) == 0 {
                tracing::debug!(node = %self.name, ?delay, "inbound queue lagging: refusing new requests at the socket");
            }
        } else if delay < QUEUE_DELAY_LOW {
            self.lagging_until.store(0, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// True when a new out-of-dialog request should be refused before it is parsed: the node
    /// is at its transaction budget, its inbound queue lags, or the queue is half full.
    fn overloaded(&self) -> bool {
        self.admission.is_full()
            || self.now_ms() < self.lagging_until.load(Ordering::Relaxed)
            || self.inbound.capacity() * 2 < self.limits.inbound_queue.max(1)
    }

    /// Answers an out-of-dialog request 503 from its bytes (see [`stateless::refusal`]); false
    /// when `data` is not one this can refuse (it then goes the normal way).
    fn refuse_at_socket(&self, data: &[u8], source: SocketAddr) -> bool {
        let retry = self.admission.limits().retry_after_secs.to_string();
        let warning = format!("399 {} \"overloaded\"", self.name);
        let Some((reply, dest)) = stateless::refusal(
            data,
            source,
            503,
            "Service Unavailable",
            &[("Retry-After", &retry), ("Warning", &warning)],
        ) else {
            return false;
        };
        self.counters.shed_at_socket.fetch_add(1, Ordering::Relaxed);
        self.admission.count_shed();
        self.trace.record(
            Direction::Sent,
            Protocol::SipUdp,
            self.local,
            dest,
            &reply,
            || first_line(&reply),
        );
        self.count(MetricDir::Sent, &reply);
        // Never wait here: if the socket's send buffer is full the 503 is lost, as the
        // request would have been.
        let _ = self.udp.try_send_to(&reply, dest);
        true
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
        }
    }

    /// One connect per destination at a time: whoever comes while it runs uses its result.
    async fn connect_once(&self, dest: SocketAddr) -> io::Result<mpsc::Sender<Bytes>> {
        let gate = self
            .connecting
            .lock()
            .ok()
            .map(|mut m| m.entry(dest).or_default().clone());
        let Some(gate) = gate else {
            return self.connect(dest).await;
        };
        let result = {
            let _turn = gate.lock().await;
            let open = self
                .conns
                .lock()
                .ok()
                .and_then(|c| c.get(&dest).cloned())
                .filter(|s| !s.is_closed());
            match open {
                Some(s) => Ok(s),
                None => self.connect(dest).await,
            }
        };
        if let Ok(mut m) = self.connecting.lock() {
            // Forgotten once nobody else waits on it (the map holds one Arc, we hold one).
            if m.get(&dest).is_some_and(|g| Arc::strong_count(g) <= 2) {
                m.remove(&dest);
            }
        }
        result
    }

    async fn connect(&self, dest: SocketAddr) -> io::Result<mpsc::Sender<Bytes>> {
        if self.counters.tcp_connections.load(Ordering::Relaxed) >= self.limits.max_tcp_connections
        {
            self.warn_rarely("SIP TCP connection cap reached: not connecting");
            return Err(io::Error::other("TCP connection cap reached"));
        }
        // From our own listening address (as Kamailio's tcp_reuse_port does): the peer sees
        // the address it knows us by, so it can tell a core node from anyone else on the host
        // (the P-CSCF's trust domain) and send its own requests back over this connection
        // (RFC 5923). Where that address cannot be used (a connection between the same two
        // addresses is still closing), an ephemeral port as before.
        let from_own = async {
            let s = shared_socket(self.local)?;
            s.bind(self.local)?;
            s.connect(dest).await
        };
        let timed = |e: tokio::time::error::Elapsed| {
            let _ = e;
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TCP connect to {dest} timed out"),
            )
        };
        let stream = match tokio::time::timeout(self.limits.tcp_connect_timeout, from_own)
            .await
            .map_err(timed)?
        {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                // Visible: a peer that knows us by address (the P-CSCF's trust domain) will
                // not recognise this connection.
                crate::warn_limited!("sip.tcp.ephemeral", local = %self.local, %dest, error = %e, "TCP connect from our own address failed; using an ephemeral port");
                tokio::time::timeout(self.limits.tcp_connect_timeout, TcpStream::connect(dest))
                    .await
                    .map_err(timed)??
            }
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        if let Ok(l) = stream.local_addr() {
            self.trace.alias(l, self.local);
        }
        Ok(self.adopt(stream, dest, false))
    }

    /// Registers a connected stream: starts its reader and writer, returns the writer's sender.
    /// `accepted`: the peer connected to us (its first message must come in time).
    fn adopt(&self, stream: TcpStream, remote: SocketAddr, accepted: bool) -> mpsc::Sender<Bytes> {
        self.counters
            .tcp_connections
            .fetch_add(1, Ordering::Relaxed);
        let slot = ConnSlot(self.counters.clone());
        let (rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(self.limits.tcp_write_queue.max(1));
        if let Ok(mut c) = self.conns.lock() {
            // Two sends that raced to connect to the same peer: the first connection stays the
            // one new sends use; the other lives on for the answers to what went over it.
            match c.get(&remote) {
                Some(existing) if !existing.is_closed() => {}
                _ => {
                    c.insert(remote, tx.clone());
                }
            }
        }
        // When the reader ends (peer closed, framing error, shutdown) the writer ends too, which
        // closes `tx`: the next send to this peer sees a closed sender and reconnects.
        let (closed_tx, mut closed_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    b = rx.recv() => match b {
                        Some(b) => {
                            // What queued up meanwhile goes out in the same write (one syscall
                            // and one segment for a burst instead of one per message).
                            let r = match rx.try_recv() {
                                Err(_) => wr.write_all(&b).await,
                                Ok(next) => {
                                    let mut batch = BytesMut::with_capacity(4 * b.len());
                                    batch.extend_from_slice(&b);
                                    batch.extend_from_slice(&next);
                                    while batch.len() < WRITE_BATCH {
                                        match rx.try_recv() {
                                            Ok(more) => batch.extend_from_slice(&more),
                                            Err(_) => break,
                                        }
                                    }
                                    wr.write_all(&batch).await
                                }
                            };
                            if r.is_err() {
                                break;
                            }
                        }
                        // No sender left (a duplicate connection nobody sends on): keep the
                        // socket open until the peer or the reader ends it, so responses to
                        // requests that went over it still arrive.
                        None => {
                            let _ = (&mut closed_rx).await;
                            break;
                        }
                    },
                    _ = &mut closed_rx => break,
                }
            }
        });
        let reader = Reader {
            remote,
            local: self.local,
            inbound: self.inbound.clone(),
            trace: self.trace.clone(),
            limits: self.limits,
            counters: self.counters.clone(),
            budget: self.budget.clone(),
            metrics: self.metrics.clone(),
        };
        let shutdown = self.shutdown.clone();
        let (conns, mine) = (self.conns.clone(), tx.clone());
        tokio::spawn(async move {
            reader.run(rd, shutdown, accepted).await;
            // The table forgets the connection (unless a newer one to the peer replaced it).
            if let Ok(mut c) = conns.lock() {
                if c.get(&remote).is_some_and(|s| s.same_channel(&mine)) {
                    c.remove(&remote);
                }
            }
            drop(mine);
            drop(slot);
            let _ = closed_tx.send(());
        });
        tx
    }
}

/// Binds UDP and TCP on the same port, retrying when port 0 gave a UDP port whose TCP twin is
/// taken.
/// The UDP receive buffer a node asks for. A burst (a flood, or many UEs re-registering at
/// once) then waits in the kernel for the moment the node needs to read it — and to refuse
/// what it cannot take with a 503 — instead of being dropped unseen. The kernel caps it at
/// `net.core.rmem_max` (4 MiB on most current distributions, 208 KiB on older ones).
pub const UDP_RECEIVE_BUFFER: usize = 4 << 20;

fn widen_receive_buffer(udp: &UdpSocket) {
    let sock = socket2::SockRef::from(udp);
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "cannot widen the SIP UDP receive buffer");
    }
}

/// Messages queued for one TCP connection are written together up to about this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

/// A TCP socket that may share its address: the listener, and the connections a node opens
/// from that same address (SO_REUSEADDR and SO_REUSEPORT; Linux lets only the same user share).
fn shared_socket(addr: SocketAddr) -> io::Result<tokio::net::TcpSocket> {
    let s = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    #[cfg(unix)]
    s.set_reuseport(true)?;
    Ok(s)
}

fn listen_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = shared_socket(addr)?;
    s.bind(addr)?;
    s.listen(1024)
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        widen_receive_buffer(&udp);
        let port = udp.local_addr()?.port();
        let mut tcp_addr = addr;
        tcp_addr.set_port(port);
        match listen_shared(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

async fn udp_loop(t: Arc<SipTransport>) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    let mut shutdown = t.shutdown.clone();
    loop {
        let r = tokio::select! {
            r = t.udp.recv_from(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        let (n, source) = match r {
            Ok(v) => v,
            // ICMP port unreachable surfaces as an error on some platforms: keep going.
            Err(_) => continue,
        };
        let data = &buf[..n];
        // RFC 5626 keep-alives: a datagram of CRLFs (or anything blank) carries no message.
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        t.trace.record(
            Direction::Received,
            Protocol::SipUdp,
            t.local,
            source,
            data,
            || first_line(data),
        );
        t.count(MetricDir::Received, data);
        // Overloaded: a new request is refused here, for the cost of reading its head, rather
        // than queued behind the work the node already cannot keep up with.
        if n <= MAX_MESSAGE_SIZE && t.overloaded() && t.refuse_at_socket(data, source) {
            continue;
        }
        // A datagram too large to take: its head goes up alone (the endpoint answers 513).
        let oversized = n > MAX_MESSAGE_SIZE;
        let bytes = if oversized {
            let head = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |p| p + 4);
            Bytes::copy_from_slice(&data[..head])
        } else {
            Bytes::copy_from_slice(data)
        };
        let len = bytes.len();
        let d = Datagram {
            bytes,
            source,
            transport: Transport::Udp,
            oversized,
            at: Instant::now(),
        };
        let room = t
            .budget
            .try_acquire_many(len as u32)
            .map(|p| p.forget())
            .is_ok();
        if !room || t.inbound.try_send(d).is_err() {
            if room {
                t.taken(len);
            }
            // Past the socket budget: dropped, as a full kernel buffer would.
            t.counters.udp_dropped.fetch_add(1, Ordering::Relaxed);
            t.warn_rarely("SIP inbound queue full: dropping datagrams");
        }
    }
}

async fn accept_loop(t: Arc<SipTransport>, listener: TcpListener) {
    let mut shutdown = t.shutdown.clone();
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match r {
            Ok((stream, remote)) => {
                if t.counters.tcp_connections.load(Ordering::Relaxed)
                    >= t.limits.max_tcp_connections
                {
                    // At the cap: closed at once, nothing read.
                    t.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    t.warn_rarely("SIP TCP connection cap reached: closing new connections");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                t.adopt(stream, remote, true);
            }
            Err(e) => {
                crate::warn_limited!("sip.accept", error = %e, "SIP TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One TCP connection's reader.
struct Reader {
    remote: SocketAddr,
    local: SocketAddr,
    inbound: mpsc::Sender<Datagram>,
    trace: Trace,
    limits: SipLimits,
    counters: Arc<Counters>,
    budget: Arc<tokio::sync::Semaphore>,
    metrics: Arc<std::sync::OnceLock<SipCounters>>,
}

impl Reader {
    /// Cuts messages out of the stream until the peer closes, the stream cannot be framed, a
    /// timeout passes, or the node shuts down.
    async fn run(
        self,
        mut rd: tokio::net::tcp::OwnedReadHalf,
        mut shutdown: watch::Receiver<bool>,
        accepted: bool,
    ) {
        let mut buf = BytesMut::with_capacity(8192);
        // Bytes of an oversized message still to throw away.
        let mut skip = 0usize;
        // When the message being read must be complete (an accepted connection owes its first
        // one at once), else when the connection counts as idle.
        let mut message_due =
            accepted.then(|| tokio::time::Instant::now() + self.limits.tcp_message_timeout);
        let mut last_activity = tokio::time::Instant::now();
        loop {
            if skip > 0 {
                let n = skip.min(buf.len());
                let _ = buf.split_to(n);
                skip -= n;
            }
            // Cut every whole message out of the buffer first.
            while skip == 0 {
                match frame(&buf) {
                    Ok(Frame::Message(len)) => {
                        let msg = buf.split_to(len).freeze();
                        message_due = None;
                        self.trace.record(
                            Direction::Received,
                            Protocol::SipTcp,
                            self.local,
                            self.remote,
                            &msg,
                            || first_line(&msg),
                        );
                        if let Some(m) = self.metrics.get() {
                            m.count(MetricDir::Received, &msg);
                        }
                        if !self.deliver(msg, false).await {
                            return;
                        }
                    }
                    Ok(Frame::KeepAlive(n)) => {
                        let _ = buf.split_to(n);
                    }
                    Ok(Frame::Oversized { head, total }) => {
                        tracing::debug!(remote = %self.remote, total, "skipping a SIP message larger than {MAX_MESSAGE_SIZE} bytes");
                        let h = buf.split_to(head).freeze();
                        skip = total - head;
                        if !self.deliver(h, true).await {
                            return;
                        }
                        let n = skip.min(buf.len());
                        let _ = buf.split_to(n);
                        skip -= n;
                    }
                    Ok(Frame::Incomplete) => break,
                    Err(e) => {
                        crate::warn_limited!("sip.framing", remote = %self.remote, error = %e, "closing SIP TCP connection: stream cannot be framed");
                        return;
                    }
                }
            }
            if (!buf.is_empty() || skip > 0) && message_due.is_none() {
                message_due = Some(tokio::time::Instant::now() + self.limits.tcp_message_timeout);
            }
            let deadline = message_due.unwrap_or(last_activity + self.limits.tcp_idle_timeout);
            let r = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                _ = tokio::time::sleep_until(deadline) => {
                    self.counters.tcp_timed_out.fetch_add(1, Ordering::Relaxed);
                    let why = if message_due.is_some() { "a message did not complete in time" } else { "idle" };
                    tracing::debug!(remote = %self.remote, "closing SIP TCP connection: {why}");
                    return;
                }
                _ = shutdown.changed() => return,
            };
            match r {
                Ok(0) | Err(_) => return,
                Ok(_) => last_activity = tokio::time::Instant::now(),
            }
        }
    }

    /// Hands a message up, waiting while the node's queue is full (backpressure).
    async fn deliver(&self, bytes: Bytes, oversized: bool) -> bool {
        let len = bytes.len();
        match self.budget.acquire_many(len as u32).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        let sent = self
            .inbound
            .send(Datagram {
                bytes,
                source: self.remote,
                transport: Transport::Tcp,
                oversized,
                at: Instant::now(),
            })
            .await
            .is_ok();
        if !sent {
            self.budget.add_permits(len);
        }
        sent
    }
}

impl Drop for SipTransport {
    fn drop(&mut self) {
        if let Ok(mut c) = self.conns.lock() {
            c.clear();
        }
    }
}
