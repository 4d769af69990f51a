//! SIP transport over UDP and TCP (RFC 3261 §18).
//!
//! One [`SipTransport`] per node binds a UDP socket and a TCP listener on the same port. TCP
//! streams are framed by Content-Length ([`crate::sip::message::frame`]); connections are reused
//! in both directions (a response or a request to a peer that connected to us goes back over
//! that connection, RFC 3261 §18.2.2 and RFC 5626 flows). Whole messages are handed up through
//! an mpsc channel; bytes that cannot be framed close the connection, a datagram that does not
//! parse is logged and dropped (a 400 is built by the endpoint where possible).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::sip::message::{frame, Frame, MAX_MESSAGE_SIZE};
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
}

/// A node's SIP sockets: UDP and TCP on one address.
pub struct SipTransport {
    local: SocketAddr,
    udp: Arc<UdpSocket>,
    /// Open TCP connections by remote address: a sender to that connection's writer task.
    conns: Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>>,
    inbound: mpsc::UnboundedSender<Datagram>,
    trace: Trace,
    shutdown: watch::Receiver<bool>,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both) and starts the
    /// receive loops. Every message read is sent to the returned receiver.
    pub async fn bind(
        addr: SocketAddr,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<(Arc<SipTransport>, mpsc::UnboundedReceiver<Datagram>)> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        trace.recorder(local);
        let (tx, rx) = mpsc::unbounded_channel();
        let t = Arc::new(SipTransport {
            local,
            udp: Arc::new(udp),
            conns: Mutex::new(HashMap::new()),
            inbound: tx,
            trace,
            shutdown,
        });
        tokio::spawn(udp_loop(t.clone()));
        tokio::spawn(accept_loop(t.clone(), tcp));
        Ok((t, rx))
    }

    /// The flight recorder this transport writes to.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one serialised message. TCP reuses an open connection to `dest` or opens one.
    pub async fn send(
        &self,
        transport: Transport,
        dest: SocketAddr,
        bytes: Bytes,
    ) -> io::Result<()> {
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
                self.udp.send_to(&bytes, dest).await.map(|_| ())
            }
            Transport::Tcp => {
                let existing = self.conns.lock().ok().and_then(|c| c.get(&dest).cloned());
                let sender = match existing {
                    Some(s) if !s.is_closed() => s,
                    _ => self.connect(dest).await?,
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
                sender.send(bytes).map_err(|_| {
                    io::Error::new(io::ErrorKind::BrokenPipe, "TCP connection closed")
                })?;
                Ok(())
            }
        }
    }

    async fn connect(
        self: &SipTransport,
        dest: SocketAddr,
    ) -> io::Result<mpsc::UnboundedSender<Bytes>> {
        let stream = TcpStream::connect(dest).await?;
        stream.set_nodelay(true)?;
        if let Ok(l) = stream.local_addr() {
            self.trace.alias(l, self.local);
        }
        Ok(self.adopt(stream, dest))
    }

    /// Registers a connected stream: starts its reader and writer, returns the writer's sender.
    fn adopt(&self, stream: TcpStream, remote: SocketAddr) -> mpsc::UnboundedSender<Bytes> {
        let (rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
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
                            if wr.write_all(&b).await.is_err() {
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
        let inbound = self.inbound.clone();
        let trace = self.trace.clone();
        let local = self.local;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tcp_read_loop(rd, remote, local, inbound, trace, shutdown).await;
            let _ = closed_tx.send(());
        });
        tx
    }
}

/// Binds UDP and TCP on the same port, retrying when port 0 gave a UDP port whose TCP twin is
/// taken.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        let mut tcp_addr = addr;
        tcp_addr.set_port(port);
        match TcpListener::bind(tcp_addr).await {
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
        let _ = t.inbound.send(Datagram {
            bytes: Bytes::copy_from_slice(data),
            source,
            transport: Transport::Udp,
        });
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
                let _ = stream.set_nodelay(true);
                t.adopt(stream, remote);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_read_loop(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    remote: SocketAddr,
    local: SocketAddr,
    inbound: mpsc::UnboundedSender<Datagram>,
    trace: Trace,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        // Cut every whole message out of the buffer first.
        loop {
            match frame(&buf) {
                Ok(Frame::Message(len)) => {
                    let msg = buf.split_to(len).freeze();
                    trace.record(
                        Direction::Received,
                        Protocol::SipTcp,
                        local,
                        remote,
                        &msg,
                        || first_line(&msg),
                    );
                    let _ = inbound.send(Datagram {
                        bytes: msg,
                        source: remote,
                        transport: Transport::Tcp,
                    });
                }
                Ok(Frame::KeepAlive(n)) => {
                    let _ = buf.split_to(n);
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "closing SIP TCP connection: stream cannot be framed");
                    return;
                }
            }
        }
        let r = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        match r {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl Drop for SipTransport {
    fn drop(&mut self) {
        if let Ok(mut c) = self.conns.lock() {
            c.clear();
        }
    }
}
