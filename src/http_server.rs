//! HTTP/1.1 serving with the limits a listener facing the network needs (RFC 9112 §9.8: a
//! server may close idle connections), shared by WebRSF and the HSS admin API:
//!
//! - a cap on connections served at once per listener; one more is answered `503` with a JSON
//!   body and `Connection: close`, and closed;
//! - a header read timeout (hyper's, on a tokio timer): it runs from the moment a connection
//!   waits for a request head — a new connection, or a keep-alive one after its last
//!   response — so it is also the keep-alive idle timeout;
//! - an idle timeout: no byte moved either way for that long closes the connection (a
//!   stalled upload, a client that stops reading, a silent WebSocket after the upgrade);
//! - a body read timeout: the whole request body must arrive within it ([`TimedBody`]; the
//!   service sees an error it can answer with 408).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::HttpSection;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// See [`HttpSection::header_timeout_ms`].
    pub header_timeout: Duration,
    /// See [`HttpSection::idle_timeout_ms`].
    pub idle_timeout: Duration,
    /// See [`HttpSection::body_timeout_ms`].
    pub body_timeout: Duration,
    /// See [`HttpSection::max_connections`].
    pub max_connections: usize,
}

impl From<&HttpSection> for HttpLimits {
    fn from(s: &HttpSection) -> Self {
        HttpLimits {
            header_timeout: Duration::from_millis(s.header_timeout_ms),
            idle_timeout: Duration::from_millis(s.idle_timeout_ms),
            body_timeout: Duration::from_millis(s.body_timeout_ms),
            max_connections: s.max_connections.max(1),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::from(&HttpSection::default())
    }
}

/// One of a listener's connection slots. Requests carry a clone in their extensions, so a
/// handler that takes the connection over (a WebSocket upgrade) keeps it counted.
#[derive(Clone)]
pub struct ConnSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Serves HTTP/1.1 on `listener` until `shutdown`: `make(remote, slot)` builds the service of
/// one connection; request bodies come as [`TimedBody`]. `what` names the listener in logs.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    limits: HttpLimits,
    what: &'static str,
    mut shutdown: watch::Receiver<bool>,
    make: F,
) where
    F: Fn(SocketAddr, ConnSlot) -> S,
    S: hyper::service::Service<Request<TimedBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are answered by tasks too; a flood past the cap must not grow them unbounded.
    let refusals = Arc::new(Semaphore::new(64));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, remote) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors (EMFILE) and the like: back off, don't spin.
                crate::warn_limited!("http.accept", listener = what, error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            crate::warn_limited!(
                "http.conn_cap",
                listener = what,
                %remote,
                max = limits.max_connections,
                "HTTP connection refused: too many connections"
            );
            if let Ok(p) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        let slot = ConnSlot(Arc::new(permit));
        let inner = make(remote, slot.clone());
        let body_timeout = limits.body_timeout;
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            inner.call(req.map(|b| TimedBody::new(b, body_timeout)))
        });
        let mut shut = shutdown.clone();
        tokio::spawn(async move {
            // The slot is free once the connection ends (or whoever took it over lets go).
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = b.serve_connection(io, svc).with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = stopped(&mut shut) => {}
            }
        });
    }
}

/// Resolves once `rx` says true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Answers a connection past the cap with `503` and closes it, reading what the client sent
/// for a moment first (closing with unread bytes would reset the connection, and the client
/// could lose the answer).
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"service_unavailable","detail":"too many connections, retry later"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let work = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), work).await;
}

/// A socket that fails with `TimedOut` once no byte moved either way for `idle` while it is
/// being waited on.
pub struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, idle: Duration) -> IdleIo<T> {
        let now = Instant::now();
        IdleIo {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Called when an operation is pending: `Ready(err)` once idle for too long. The timer
    /// is re-armed lazily from the last activity, so traffic costs no timer updates.
    fn check<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            let due = self.last + self.idle;
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            ready!(self.timer.as_mut().poll(cx));
            if self.last + self.idle <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP connection idle for too long",
                )));
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.check(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The body read timeout ran out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether `e` (or one of its sources) is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A request body that must arrive whole before a deadline set when its head arrived.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    expired: bool,
}

impl TimedBody {
    /// `inner`, due within `timeout` from now.
    pub fn new(inner: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired: false,
        }
    }

    /// The body is now due within `timeout` from now instead (a file upload, which may take
    /// longer than a JSON body; the connection's idle timeout still ends one that stalls).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + timeout);
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.expired = true;
                Poll::Ready(Some(Err(Box::new(BodyTimeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn idle_io_times_out_only_without_traffic() {
        let idle = Duration::from_millis(200);
        let (a, mut b) = duplex(64);
        let mut io = IdleIo::new(a, idle);
        let mut buf = [0u8; 8];
        // Traffic every 120 ms keeps it open well past 200 ms.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(120)).await;
            b.write_all(b"x").await.expect("write");
            assert_eq!(io.read(&mut buf).await.expect("read"), 1);
        }
        let t0 = Instant::now();
        let e = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = Instant::now() - t0;
        assert!(
            waited >= idle - Duration::from_millis(5) && waited < idle * 5,
            "{waited:?}"
        );
    }

    #[test]
    fn body_timeout_is_found_among_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrap(#[source] BodyTimeout);
        assert!(is_body_timeout(&Wrap(BodyTimeout)));
        assert!(!is_body_timeout(&io::Error::other("x")));
    }
}
