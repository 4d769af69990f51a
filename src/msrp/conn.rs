//! MSRP connections over TCP (RFC 4975 §6): framing on read, one writer per connection, every
//! message recorded in the flight recorder. A stream that cannot be framed is closed
//! (§7.1 leaves no way to resynchronise).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::msrp::limits::MsrpLimits;
use crate::msrp::{frame, Frame, MsrpMessage};
use crate::trace::{first_line, Direction, Protocol, Trace};

/// Messages waiting for the writer (the byte budget, [`MsrpLimits::max_queued_bytes`], is
/// what usually bounds the queue).
const OUT_QUEUE: usize = 4096;
/// Events waiting for the connection's owner; when full the reader stops reading (TCP
/// backpressure on the peer).
const EVENT_QUEUE: usize = 256;

/// What a connection delivers.
#[derive(Debug)]
pub enum MsrpEvent {
    /// A whole message.
    Message(MsrpMessage),
    /// The connection ended (peer closed, or a framing error: the reason).
    Closed(Option<String>),
}

/// The receiving half: events of one connection.
pub type MsrpEvents = mpsc::Receiver<MsrpEvent>;

/// The sending half of an MSRP connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MsrpConn {
    out: mpsc::Sender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Set to a reason to drop the connection at once (a peer that does not read).
    kill: Arc<watch::Sender<Option<String>>>,
    local: SocketAddr,
    remote: SocketAddr,
    trace: Trace,
}

/// Counts a listener's live connections; the slot frees when the connection's reader ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MsrpConn {
    /// Connects to an MSRP endpoint or relay (default limits).
    pub async fn connect(
        addr: SocketAddr,
        trace: Trace,
    ) -> std::io::Result<(MsrpConn, MsrpEvents)> {
        Self::connect_with(addr, trace, &MsrpLimits::default()).await
    }

    /// Connects, with a send queue bounded by `limits`.
    pub async fn connect_with(
        addr: SocketAddr,
        trace: Trace,
        limits: &MsrpLimits,
    ) -> std::io::Result<(MsrpConn, MsrpEvents)> {
        let s = tokio::time::timeout(std::time::Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "MSRP connect timed out")
            })??;
        Ok(Self::adopt_in(s, trace, limits.max_queued_bytes, None))
    }

    /// Wraps an accepted or connected stream (default limits).
    pub fn adopt(stream: TcpStream, trace: Trace) -> (MsrpConn, MsrpEvents) {
        Self::adopt_in(stream, trace, MsrpLimits::default().max_queued_bytes, None)
    }

    fn adopt_in(
        stream: TcpStream,
        trace: Trace,
        max_queued: usize,
        slot: Option<Slot>,
    ) -> (MsrpConn, MsrpEvents) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let remote = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (mut rd, mut wr) = stream.into_split();
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        // `kill` fires only when set; `changed()` also errs once every handle is dropped,
        // which is not a kill (the writer then ends when its queue closes), hence `Ok(())`.
        let (kill, mut kill_w) = watch::channel(None::<String>);
        let mut kill_r = kill.subscribe();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        tokio::spawn(async move {
            // Whatever queued while the last write ran goes out in one write (one syscall for
            // a burst of relayed chunks and their 200s). An empty buffer is `close()`.
            let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
            'writer: loop {
                let b = tokio::select! {
                    b = out_rx.recv() => b,
                    Ok(()) = kill_w.changed() => break 'writer,
                };
                let Some(b) = b else { break };
                if b.is_empty() {
                    break;
                }
                batch.clear();
                batch.extend_from_slice(&b);
                let mut closing = false;
                while batch.len() < 64 * 1024 {
                    match out_rx.try_recv() {
                        Ok(more) if more.is_empty() => {
                            closing = true;
                            break;
                        }
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                let written = tokio::select! {
                    r = wr.write_all(&batch) => r.is_ok(),
                    Ok(()) = kill_w.changed() => false,
                };
                q.fetch_sub(batch.len(), Ordering::Relaxed);
                if !written || closing {
                    break 'writer;
                }
            }
            let _ = wr.shutdown().await;
        });
        let tr = trace.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = BytesMut::with_capacity(8192);
            let reason = loop {
                match frame(&buf) {
                    Ok(Frame::Message(n)) => {
                        let raw = buf.split_to(n);
                        tr.record(
                            Direction::Received,
                            Protocol::Msrp,
                            local,
                            remote,
                            &raw,
                            || first_line(&raw),
                        );
                        match MsrpMessage::parse(&raw) {
                            Ok(m) => {
                                if ev_tx.send(MsrpEvent::Message(m)).await.is_err() {
                                    break None;
                                }
                            }
                            Err(e) => break Some(e.to_string()),
                        }
                        continue;
                    }
                    Ok(Frame::Incomplete) => {}
                    Err(e) => break Some(e.to_string()),
                }
                tokio::select! {
                    r = rd.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => break None,
                        Ok(_) => {}
                    },
                    Ok(()) = kill_r.changed() => break kill_r.borrow().clone(),
                }
            };
            if let Some(r) = &reason {
                tracing::warn!(%remote, error = %r, "closing MSRP connection");
            }
            let _ = ev_tx.send(MsrpEvent::Closed(reason)).await;
        });
        (
            MsrpConn {
                out,
                queued,
                max_queued,
                kill: Arc::new(kill),
                local,
                remote,
                trace,
            },
            ev_rx,
        )
    }

    /// Sends one message. Fails when the connection is gone, or when the peer has not read
    /// what was sent before (over the queue budget): then the connection is dropped at once,
    /// its owner sees `Closed` with the reason, and the caller answers as for a closed leg.
    pub fn send(&self, m: &MsrpMessage) -> Result<(), crate::msrp::MsrpError> {
        let bytes = m.to_bytes();
        let n = bytes.len();
        let closed = || crate::msrp::MsrpError::Malformed("connection closed".into());
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_queued && before > 0 {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.overflow(before);
            return Err(closed());
        }
        self.trace.record(
            Direction::Sent,
            Protocol::Msrp,
            self.local,
            self.remote,
            &bytes,
            || first_line(&bytes),
        );
        match self.out.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                self.overflow(before);
                Err(closed())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                Err(closed())
            }
        }
    }

    fn overflow(&self, queued: usize) {
        if self.kill.borrow().is_some() {
            return;
        }
        let reason = format!(
            "peer does not read: {queued} bytes queued for it (limit {}), dropping the connection",
            self.max_queued
        );
        tracing::warn!(remote = %self.remote, "{reason}");
        let _ = self.kill.send(Some(reason));
    }

    /// Drops the connection at once (nothing more is written), with the reason its owner
    /// sees in `Closed` and the log shows.
    pub fn abort(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::info!(remote = %self.remote, "{reason}");
        let _ = self.kill.send(Some(reason));
    }

    /// Bytes queued for the peer and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Closes the connection (after what was already queued): our side sends FIN, the peer
    /// closes, and both readers end.
    pub fn close(&self) {
        if self.out.try_send(Vec::new()).is_err() {
            let _ = self.kill.send(Some("closed".into()));
        }
    }

    /// Our end.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    /// True when both handles are the same TCP connection.
    pub fn same(&self, other: &MsrpConn) -> bool {
        self.local == other.local && self.remote == other.remote
    }
}

/// Accepts MSRP connections, handing each to `on_conn`. At most `limits.max_connections` at
/// once (`live` counts them): one more is closed as soon as it is accepted.
pub async fn accept_loop(
    listener: TcpListener,
    trace: Trace,
    mut shutdown: watch::Receiver<bool>,
    limits: MsrpLimits,
    live: Arc<AtomicUsize>,
    on_conn: impl Fn(MsrpConn, MsrpEvents) + Send + 'static,
) {
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let Ok((s, from)) = r else {
            // EMFILE and the like: do not spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if live.load(Ordering::Relaxed) >= limits.max_connections {
            tracing::warn!(%from, max = limits.max_connections, "MSRP connection limit reached; closing the new connection");
            drop(s);
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (c, rx) = MsrpConn::adopt_in(
            s,
            trace.clone(),
            limits.max_queued_bytes,
            Some(Slot(live.clone())),
        );
        on_conn(c, rx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msrp::{chunk, Reassembly, CHUNK_SIZE};

    #[tokio::test]
    async fn a_chunked_message_crosses_a_connection_and_each_chunk_gets_its_200() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_stop, shut) = tokio::sync::watch::channel(false);
        // The far end: reassembles and answers every SEND with 200 (Failure-Report: yes).
        tokio::spawn(accept_loop(
            l,
            Trace::disabled(),
            shut,
            MsrpLimits::default(),
            Arc::default(),
            |conn, mut rx| {
                tokio::spawn(async move {
                    let mut r = Reassembly::default();
                    while let Some(MsrpEvent::Message(m)) = rx.recv().await {
                        let _ = conn.send(&m.response_to(200, "OK"));
                        if let Ok(Some(body)) = r.add(&m, 1 << 20) {
                            let mut done = MsrpMessage::request(
                                "SEND",
                                "done1",
                                "msrp://a:1/x;tcp",
                                "msrp://b:2/y;tcp",
                            );
                            done.headers.push((
                                "Byte-Range".into(),
                                format!("1-{}/{}", body.len(), body.len()),
                            ));
                            let _ = conn.send(&done);
                        }
                    }
                });
            },
        ));
        let trace = Trace::enabled();
        let (c, mut rx) = MsrpConn::connect(addr, trace.clone()).await.unwrap();
        let body: Vec<u8> = (0..100 * 1024).map(|i| (i % 253) as u8).collect();
        let mut n = 0;
        let chunks = chunk(
            "msrp://b:2/y;tcp",
            "msrp://a:1/x;tcp",
            "m1",
            "message/cpim",
            &body,
            CHUNK_SIZE,
            || {
                n += 1;
                format!("c{n}")
            },
        );
        for ch in &chunks {
            c.send(ch).unwrap();
        }
        let mut oks = 0;
        let mut total = None;
        while total.is_none() || oks < chunks.len() {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
                Ok(Some(MsrpEvent::Message(m))) if m.status == 200 => oks += 1,
                Ok(Some(MsrpEvent::Message(m))) => total = m.byte_range().and_then(|b| b.total),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(oks, 50);
        assert_eq!(
            total,
            Some(100 * 1024),
            "reassembled byte for byte on the far side"
        );
        assert!(trace
            .events()
            .iter()
            .any(|e| e.protocol == Protocol::Msrp && e.summary.starts_with("MSRP c1 SEND")));
    }

    #[tokio::test]
    async fn garbage_closes_the_connection() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, mut closed) = mpsc::unbounded_channel();
        let (_stop, shut) = tokio::sync::watch::channel(false);
        tokio::spawn(accept_loop(
            l,
            Trace::disabled(),
            shut,
            MsrpLimits::default(),
            Arc::default(),
            move |_conn, mut rx| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        if let MsrpEvent::Closed(r) = ev {
                            let _ = tx.send(r);
                        }
                    }
                });
            },
        ));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let reason = tokio::time::timeout(std::time::Duration::from_secs(5), closed.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(reason.unwrap_or_default().contains("not MSRP"));
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_dropped_not_buffered_for() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_stop, shut) = tokio::sync::watch::channel(false);
        let (tx, mut got) = mpsc::unbounded_channel();
        let limits = MsrpLimits {
            max_queued_bytes: 64 * 1024,
            ..MsrpLimits::default()
        };
        tokio::spawn(accept_loop(
            l,
            Trace::disabled(),
            shut,
            limits,
            Arc::default(),
            move |conn, rx| {
                let _ = tx.send((conn, rx));
            },
        ));
        // Connects and never reads.
        let _deaf = TcpStream::connect(addr).await.unwrap();
        let (conn, mut rx) = got.recv().await.unwrap();
        let mut m = MsrpMessage::request("SEND", "t", "msrp://a:1/x;tcp", "msrp://b:2/y;tcp");
        m.body = bytes::Bytes::from(vec![b'z'; 16 * 1024]);
        let mut sent = 0usize;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while conn.send(&m).is_ok() {
            sent += 1;
            assert!(tokio::time::Instant::now() < deadline, "never refused");
            assert!(conn.queued_bytes() <= 64 * 1024 + 17 * 1024);
            tokio::task::yield_now().await;
        }
        assert!(sent > 0);
        let reason = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
                Ok(Some(MsrpEvent::Closed(r))) => break r,
                Ok(Some(_)) => continue,
                other => panic!("expected Closed, got {other:?}"),
            }
        };
        assert!(reason.unwrap_or_default().contains("does not read"));
    }
}
