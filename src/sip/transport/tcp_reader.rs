//! A SIP TCP connection's reader (RFC 3261 §18.3): frames messages out of the stream by
//! Content-Length ([`crate::sip::message::frame`]), skips CRLF keep-alives (RFC 5626 §3.5.1)
//! and messages too large to take (their head goes up for a 513), hands messages up with
//! backpressure, and closes the connection when idle or when a message does not complete in
//! time.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::{Counters, Datagram, Transport};
use crate::metrics::{Dir as MetricDir, SipCounters};
use crate::sip::limits::SipLimits;
use crate::sip::message::{frame, Frame, MAX_MESSAGE_SIZE};
use crate::trace::{first_line, Direction, Protocol, Trace};

/// One TCP connection's reader.
pub(super) struct Reader {
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) inbound: mpsc::Sender<Datagram>,
    pub(super) trace: Trace,
    pub(super) limits: SipLimits,
    pub(super) counters: Arc<Counters>,
    pub(super) budget: Arc<tokio::sync::Semaphore>,
    pub(super) metrics: Arc<std::sync::OnceLock<SipCounters>>,
}

impl Reader {
    /// Cuts messages out of the stream until the peer closes, the stream cannot be framed, a
    /// timeout passes, or the node shuts down.
    pub(super) async fn run(
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
