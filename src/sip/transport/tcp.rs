//! SIP over TCP (RFC 3261 §18.1.2, §18.2.2, RFC 5923 connection reuse): the connection table
//! (one connection per peer, reused in both directions), connects (one at a time per peer,
//! from our own listening address, with a timeout), accepts, the connection cap, and each
//! connection's writer (a bounded queue, writes batched).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::tcp_reader::Reader;
use super::{Counters, SipTransport};

/// Gives a connection's slot back when its reader ends.
struct ConnSlot(Arc<Counters>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SipTransport {
    /// One connect per destination at a time: whoever comes while it runs uses its result.
    pub(super) async fn connect_once(&self, dest: SocketAddr) -> io::Result<mpsc::Sender<Bytes>> {
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

pub(super) fn listen_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = shared_socket(addr)?;
    s.bind(addr)?;
    s.listen(1024)
}

pub(super) async fn accept_loop(t: Arc<SipTransport>, listener: TcpListener) {
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
