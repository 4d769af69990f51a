//! How much a node's SIP endpoint takes on, and admission control when it is full.
//!
//! Overload control as SIP servers do it (RFC 7339's model, Kamailio's pike/ratelimit): each
//! endpoint admits a bounded number of server transactions at once. Past
//! [`SipLimits::max_transactions`] a new out-of-dialog request is answered `503 Service
//! Unavailable` with `Retry-After` at once, without a transaction, by the first node that sees
//! it; in-dialog requests (and CANCEL) keep flowing up to twice the budget, so calls and
//! sessions in progress are not cut; responses always flow. With
//! [`SipLimits::max_transactions_per_source`] (the P-CSCF, facing UEs) one source address
//! cannot hold more than its share, so one flooding client does not starve the others. The
//! nodes of the IMS domain are trusted (Kamailio's pike has the same whitelist): a request
//! whose top Via names one of them is not counted against its source.
//! Beyond the admission, the transport bounds its queues: datagrams past
//! [`SipLimits::inbound_queue`] are dropped, TCP readers wait (backpressure).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bounds of one node's SIP endpoint (the lab file's `[sip]` section).
#[derive(Debug, Clone, Copy)]
pub struct SipLimits {
    /// Server transactions in progress at once for out-of-dialog requests; in-dialog ones may
    /// use twice this.
    pub max_transactions: usize,
    /// Server transactions one source address (ip:port) may hold at once; 0: no limit.
    pub max_transactions_per_source: usize,
    /// The `Retry-After` of a 503 (seconds).
    pub retry_after_secs: u32,
    /// Messages read but not yet handled; datagrams beyond are dropped, TCP waits.
    pub inbound_queue: usize,
    /// Bytes of those messages at most (a flood of 60 KB datagrams must not fill the queue's
    /// count with gigabytes).
    pub inbound_bytes: usize,
    /// Open TCP connections (both directions); more accepted ones are closed at once.
    pub max_tcp_connections: usize,
    /// A TCP connection that carries nothing for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Once a message's first byte has arrived (or a connection was accepted) the whole
    /// message must be there within this, else the connection is closed.
    pub tcp_message_timeout: Duration,
    /// How long a TCP connect may take.
    pub tcp_connect_timeout: Duration,
    /// Messages queued for one TCP connection's writer; a send beyond fails (the peer does
    /// not read).
    pub tcp_write_queue: usize,
    /// Completed server transactions kept to answer retransmissions (Timer J, 32 s over UDP);
    /// past it the oldest go first.
    pub max_completed: usize,
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits {
            max_transactions: 2000,
            max_transactions_per_source: 0,
            retry_after_secs: 2,
            inbound_queue: 4096,
            inbound_bytes: 32 << 20,
            max_tcp_connections: 4096,
            tcp_idle_timeout: Duration::from_secs(600),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_connect_timeout: Duration::from_secs(3),
            tcp_write_queue: 1024,
            max_completed: 50_000,
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The node is at its budget.
    Busy,
    /// This source holds its whole share.
    SourceBusy,
}

/// Counts what an endpoint has admitted; hands out [`Permit`]s.
#[derive(Debug)]
pub struct Admission {
    limits: SipLimits,
    active: AtomicUsize,
    per_source: Mutex<HashMap<SocketAddr, usize>>,
    shed: AtomicU64,
    trusted: Mutex<Vec<SocketAddr>>,
}

/// One admitted server transaction; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    adm: Arc<Admission>,
    /// The source whose share it counts against (none for in-dialog and trusted requests).
    source: Option<SocketAddr>,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: SipLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            active: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            shed: AtomicU64::new(0),
            trusted: Mutex::new(Vec::new()),
        })
    }

    /// The IMS nodes (their SIP addresses) whose requests the per-source limit does not count.
    pub fn set_trusted(&self, nodes: Vec<SocketAddr>) {
        if let Ok(mut t) = self.trusted.lock() {
            *t = nodes;
        }
    }

    /// True when `sent_by` (a top Via's host:port) is a trusted node.
    pub fn is_trusted(&self, sent_by: &str) -> bool {
        let Ok(addr) = sent_by.parse::<SocketAddr>() else {
            return false;
        };
        self.trusted.lock().is_ok_and(|t| t.contains(&addr))
    }

    /// The limits in force.
    pub fn limits(&self) -> &SipLimits {
        &self.limits
    }

    /// Admits a request from `source` (`in_dialog`: a request inside a dialog, or a CANCEL;
    /// `trusted`: sent by an IMS node). The per-source limit counts neither.
    pub fn admit(
        self: &Arc<Self>,
        source: SocketAddr,
        in_dialog: bool,
        trusted: bool,
    ) -> Result<Permit, Shed> {
        let cap = if in_dialog {
            self.limits.max_transactions.saturating_mul(2)
        } else {
            self.limits.max_transactions
        };
        let per_source = self.limits.max_transactions_per_source;
        let mut map = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if self.active.load(Ordering::Relaxed) >= cap {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(Shed::Busy);
        }
        // Only what a source starts out of dialog counts against its share: a BYE or CANCEL
        // (or a trusted node's request) never locks the source out.
        let counted = !in_dialog && !trusted;
        if counted {
            let held = map.entry(source).or_insert(0);
            if per_source > 0 && *held >= per_source {
                self.shed.fetch_add(1, Ordering::Relaxed);
                return Err(Shed::SourceBusy);
            }
            *held += 1;
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            adm: self.clone(),
            source: counted.then_some(source),
        })
    }

    /// True when a new out-of-dialog request would be refused for the node's budget.
    pub fn is_full(&self) -> bool {
        self.active.load(Ordering::Relaxed) >= self.limits.max_transactions
    }

    /// Counts a request refused before it reached admission (at the socket).
    pub fn count_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Transactions admitted and not yet finished.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Requests answered 503 so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Sources holding at least one transaction.
    pub fn sources(&self) -> usize {
        self.per_source.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(source) = self.source {
            let mut map = self
                .adm
                .per_source
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&source);
                }
            }
        }
        self.adm.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_node_and_per_source_and_in_dialog_headroom() {
        let adm = Admission::new(SipLimits {
            max_transactions: 4,
            max_transactions_per_source: 2,
            ..SipLimits::default()
        });
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:3".parse().unwrap(),
        );
        let a1 = adm.admit(a, false, false).unwrap();
        let _a2 = adm.admit(a, false, false).unwrap();
        assert_eq!(adm.admit(a, false, false).unwrap_err(), Shed::SourceBusy);
        let _b1 = adm.admit(b, false, false).unwrap();
        let _b2 = adm.admit(b, false, false).unwrap();
        assert_eq!(adm.admit(c, false, false).unwrap_err(), Shed::Busy);
        // In-dialog requests still get in, up to twice the budget.
        let in_dialog: Vec<_> = (0..4).map(|_| adm.admit(a, true, false).unwrap()).collect();
        assert_eq!(adm.admit(c, true, false).unwrap_err(), Shed::Busy);
        assert_eq!(adm.shed(), 3);
        drop(in_dialog);
        drop(a1);
        assert_eq!(adm.active(), 3);
        let _c1 = adm.admit(c, false, false).unwrap();
        assert_eq!(adm.sources(), 3);
        // In-dialog requests in progress do not use up their source's share.
        let d: SocketAddr = "127.0.0.1:4".parse().unwrap();
        let _byes: Vec<_> = (0..2).map(|_| adm.admit(d, true, false).unwrap()).collect();
        assert_eq!(adm.sources(), 3);
    }

    #[test]
    fn the_source_map_empties_when_transactions_end() {
        let adm = Admission::new(SipLimits::default());
        let permits: Vec<_> = (0..100)
            .map(|i| {
                let s: SocketAddr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
                adm.admit(s, false, false).unwrap()
            })
            .collect();
        assert_eq!(adm.sources(), 100);
        drop(permits);
        assert_eq!((adm.sources(), adm.active()), (0, 0));
    }
}
