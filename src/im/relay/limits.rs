//! The hub's bounds (RFC 4975 §7.1.1, §7.1.2, §10): each connection's partial messages, the
//! idle sweep for connections that bind no session, the transactions of a pair that ends, and
//! the counters tests read ([`MsrpStats`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use super::{answer_when_kept, finish_local, Hub, Side, St, Tx};
use crate::msrp::conn::MsrpConn;
use crate::msrp::limits::{timeout_report, Added, MsrpLimits, Partials};
use crate::msrp::MsrpMessage;

/// A TCP connection by its two ends.
pub(super) type ConnKey = (SocketAddr, SocketAddr);

pub(super) fn key(c: &MsrpConn) -> ConnKey {
    (c.local_addr(), c.peer_addr())
}

/// One served connection.
pub(super) struct ConnEntry {
    conn: MsrpConn,
    /// Partial messages by (pair, leg, Message-ID).
    pub(super) partials: Partials<(u64, usize, String)>,
    /// Since when no leg uses it (`None` while one does).
    unbound_since: Option<Instant>,
    closing: bool,
}

/// What the hub has done to stay bounded.
#[derive(Default)]
pub(super) struct Counters {
    expired: AtomicU64,
    refused: AtomicU64,
    idle_closed: AtomicU64,
}

/// What a hub holds now, and what it dropped to stay bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsrpStats {
    /// Connections being served (accepted and our own).
    pub connections: usize,
    /// Accepted connections (what `max_connections` counts).
    pub accepted: usize,
    /// Pairs of legs (sessions).
    pub pairs: usize,
    /// Leg ids (two per pair).
    pub ids: usize,
    /// Transactions waiting for an answer.
    pub txs: usize,
    /// Partial messages held, over all connections.
    pub partials: usize,
    /// Their bytes.
    pub partial_bytes: u64,
    /// Messages queued for legs not yet up.
    pub leg_queued: usize,
    /// Partial messages dropped for getting no chunk in time.
    pub expired_partials: u64,
    /// Chunks refused with 413 (too large, too many partial messages, byte budget).
    pub refused_chunks: u64,
    /// Connections closed for binding no session.
    pub idle_closed: u64,
}

/// Removes the transactions of `pair` (its session ended: no answer will come for them).
pub(super) fn take_txs_of(st: &mut St, pair: u64) -> Vec<Tx> {
    st.txs.take_where(|t| match t {
        Tx::Relay { pair: p, .. } | Tx::Local { pair: p, .. } => *p == pair,
    })
}

/// Answers the transactions of an ended pair: 481, as for any request on a gone session.
pub(super) fn end_txs(txs: Vec<Tx>) {
    for t in txs {
        match t {
            Tx::Relay {
                upstream, request, ..
            } => {
                let _ = upstream.send(&request.response_to(481, "Session Does Not Exist"));
            }
            Tx::Local { waiter, .. } => finish_local(&waiter, 481),
        }
    }
}

/// Body bytes queued for a leg.
pub(super) fn queued_bytes(q: &[(MsrpConn, MsrpMessage)]) -> usize {
    q.iter().map(|(_, m)| m.body.len()).sum()
}

impl Hub {
    pub(super) fn conn_opened(&self, conn: &MsrpConn) {
        let limits: MsrpLimits = self.inner.limits;
        if let Ok(mut st) = self.inner.st.lock() {
            st.conns.insert(
                key(conn),
                ConnEntry {
                    conn: conn.clone(),
                    partials: Partials::new(limits),
                    unbound_since: Some(Instant::now()),
                    closing: false,
                },
            );
        }
    }

    /// Adds a SEND chunk to its connection's partial messages. `None`: answered (413) or the
    /// pair is gone, stop here; `Some(None)`: more to come; `Some(Some(..))`: the whole message.
    pub(super) fn reassemble(
        &self,
        conn: &MsrpConn,
        pair: u64,
        side: Side,
        m: &MsrpMessage,
    ) -> Option<Option<(String, Bytes)>> {
        let mid = m.header("Message-ID").unwrap_or("").to_string();
        let added = {
            let mut st = self.inner.st.lock().ok()?;
            if !st.pairs.contains_key(&pair) {
                return None;
            }
            let limits = self.inner.limits;
            let e = st.conns.entry(key(conn)).or_insert_with(|| ConnEntry {
                conn: conn.clone(),
                partials: Partials::new(limits),
                unbound_since: None,
                closing: false,
            });
            e.partials
                .add(Instant::now(), (pair, side.idx(), mid.clone()), m)
        };
        let refuse = |comment: &str| {
            self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(remote = %conn.peer_addr(), message_id = %mid, "MSRP chunk refused: {comment}");
            let _ = conn.send(&m.response_to(413, comment));
            None
        };
        match added {
            Added::Whole(ct, body) => Some(Some((ct, body))),
            Added::Partial | Added::Aborted => Some(None),
            Added::TooLarge => refuse("Message Too Large"),
            Added::TooMany => refuse("Too Many Partial Messages"),
        }
    }

    /// Once a second: partial messages that stopped arriving are dropped (their sender gets
    /// the §7.1.2 failure REPORT when it asked for one); connections no leg has used for the
    /// idle timeout are closed.
    pub(super) fn sweep_conns(&self, now: Instant) {
        let idle_after = self.inner.limits.idle_timeout;
        let mut reports = Vec::new();
        let mut idle = Vec::new();
        if let Ok(mut st) = self.inner.st.lock() {
            let used: HashSet<ConnKey> = st
                .pairs
                .values()
                .flat_map(|p| p.legs.iter().filter_map(|l| l.conn.as_ref().map(key)))
                .collect();
            for (k, e) in st.conns.iter_mut() {
                for x in e.partials.expire(now) {
                    self.inner.counters.expired.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(remote = %k.1, message_id = ?x.first.header("Message-ID"), had = x.had, "MSRP partial message timed out");
                    let tid = &crate::im::rcs::new_id()[..16];
                    if let Some(r) = timeout_report(&x.first, x.had, tid) {
                        reports.push((e.conn.clone(), r));
                    }
                }
                if used.contains(k) {
                    e.unbound_since = None;
                    continue;
                }
                let since = *e.unbound_since.get_or_insert(now);
                if !e.closing && now.saturating_duration_since(since) >= idle_after {
                    e.closing = true;
                    idle.push(e.conn.clone());
                }
            }
        }
        for (c, r) in reports {
            let _ = c.send(&r);
        }
        for c in idle {
            self.inner
                .counters
                .idle_closed
                .fetch_add(1, Ordering::Relaxed);
            c.abort(format!(
                "no session bound for {} s",
                idle_after.as_secs_f32()
            ));
        }
    }

    /// What the hub holds now and what it dropped.
    pub fn stats(&self) -> MsrpStats {
        let c = &self.inner.counters;
        let mut s = MsrpStats {
            accepted: self.inner.live.load(Ordering::Relaxed),
            expired_partials: c.expired.load(Ordering::Relaxed),
            refused_chunks: c.refused.load(Ordering::Relaxed),
            idle_closed: c.idle_closed.load(Ordering::Relaxed),
            ..MsrpStats::default()
        };
        if let Ok(st) = self.inner.st.lock() {
            s.connections = st.conns.len();
            s.pairs = st.pairs.len();
            s.ids = st.ids.len();
            s.txs = st.txs.len();
            s.partials = st.conns.values().map(|e| e.partials.len()).sum();
            s.partial_bytes = st.conns.values().map(|e| e.partials.bytes()).sum();
            s.leg_queued = st
                .pairs
                .values()
                .flat_map(|p| p.legs.iter().map(|l| l.queued.len()))
                .sum();
        }
        s
    }

    /// Transactions unanswered for the RFC 4975 §7.1.1 30 s at `now` (the session core's
    /// table decides): the sender gets 408 (or, at T-IM, the message is kept,
    /// `keep_after_failure`).
    pub(super) fn expire_txs(&self, now: Instant) {
        let old: Vec<Tx> = {
            let Ok(mut st) = self.inner.st.lock() else {
                return;
            };
            st.txs.handle_timeout(now)
        };
        for t in old {
            match t {
                Tx::Relay {
                    upstream,
                    request,
                    pair,
                    onward,
                    ..
                } => {
                    let timeout = request.response_to(408, "Request Timeout");
                    match self.keep_after_failure(pair, onward, &request) {
                        Some(kept) => answer_when_kept(
                            kept,
                            upstream,
                            request.response_to(200, "OK"),
                            timeout,
                        ),
                        None => {
                            let _ = upstream.send(&timeout);
                        }
                    }
                }
                Tx::Local { waiter, .. } => finish_local(&waiter, 408),
            }
        }
    }
}
