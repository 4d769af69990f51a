//! SIP over UDP (RFC 3261 §18): the receive loop — one datagram is one message; blank
//! keep-alive datagrams (RFC 5626) are skipped, requests are refused at the socket when the
//! node lags, and a datagram too large to take goes up as its head alone (the endpoint answers
//! 513) — and the receive buffer the socket asks for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{Datagram, SipTransport, Transport};
use crate::metrics::Dir as MetricDir;
use crate::sip::message::MAX_MESSAGE_SIZE;
use crate::trace::{first_line, Direction, Protocol};

/// The UDP receive buffer a node asks for. A burst (a flood, or many UEs re-registering at
/// once) then waits in the kernel for the moment the node needs to read it — and to refuse
/// what it cannot take with a 503 — instead of being dropped unseen. The kernel caps it at
/// `net.core.rmem_max` (4 MiB on most current distributions, 208 KiB on older ones).
pub const UDP_RECEIVE_BUFFER: usize = 4 << 20;

pub(super) fn widen_receive_buffer(udp: &UdpSocket) {
    let sock = socket2::SockRef::from(udp);
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "cannot widen the SIP UDP receive buffer");
    }
}

pub(super) async fn udp_loop(t: Arc<SipTransport>) {
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
