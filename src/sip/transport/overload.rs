//! Refusing work at the socket when a node cannot keep up: the queueing delay between the
//! socket and the dispatcher marks the node as lagging, and while it lags (or its transaction
//! budget or inbound queue is full) a new out-of-dialog request over UDP is answered 503
//! (RFC 3261 §21.5.4, with Retry-After §20.33) from its bytes, before it is parsed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::SipTransport;
use crate::metrics::Dir as MetricDir;
use crate::sip::stateless;
use crate::trace::{first_line, Direction, Protocol};

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
    pub(super) fn overloaded(&self) -> bool {
        self.admission.is_full()
            || self.now_ms() < self.lagging_until.load(Ordering::Relaxed)
            || self.inbound.capacity() * 2 < self.limits.inbound_queue.max(1)
    }

    /// Answers an out-of-dialog request 503 from its bytes (see [`stateless::refusal`]); false
    /// when `data` is not one this can refuse (it then goes the normal way).
    pub(super) fn refuse_at_socket(&self, data: &[u8], source: SocketAddr) -> bool {
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
}
