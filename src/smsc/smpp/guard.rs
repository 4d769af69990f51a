//! Throttling of failed binds (a defence SMPP 3.4 leaves to the SMSC): after `max_failures`
//! failed binds within [`BIND_FAILURE_WINDOW`] for one system_id, or from one peer IP, every
//! bind for it is refused with ESME_RBINDFAIL for a block, without checking the password. The
//! first block lasts `block`, each next one of the same key twice as long, up to
//! [`MAX_BIND_BLOCK`]; a successful bind forgets the system_id's and the IP's history.
//!
//! Socket-free and clock-free: every call takes `now`. The table is bounded
//! ([`MAX_GUARD_KEYS`]): stale keys go first, then the least recently seen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{BIND_FAILURE_WINDOW, MAX_BIND_BLOCK};

/// Keys (system_ids and IPs) the guard remembers at most.
pub const MAX_GUARD_KEYS: usize = 4096;

/// What is throttled: a system_id or a peer IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardKey {
    /// The system_id a bind named (known or not).
    SystemId(String),
    /// The peer's address.
    Peer(IpAddr),
}

impl std::fmt::Display for GuardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardKey::SystemId(s) => write!(f, "system_id {s:?}"),
            GuardKey::Peer(ip) => write!(f, "peer {ip}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Failures in the current window and when it started.
    failures: u32,
    window_start: Instant,
    /// The end of the current block, if any.
    blocked_until: Option<Instant>,
    /// Blocks so far (the next one lasts `block * 2^blocks`).
    blocks: u32,
    last_seen: Instant,
}

/// A block that has just started: log it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// What is blocked.
    pub key: GuardKey,
    /// For how long.
    pub duration: Duration,
}

/// The failed-bind table.
#[derive(Debug)]
pub struct BindGuard {
    max_failures: u32,
    block: Duration,
    entries: HashMap<GuardKey, Entry>,
}

impl BindGuard {
    /// A guard that blocks after `max_failures` (at least 1) failures, first for `block`.
    pub fn new(max_failures: u32, block: Duration) -> Self {
        BindGuard {
            max_failures: max_failures.max(1),
            block,
            entries: HashMap::new(),
        }
    }

    /// Whether a bind for `system_id` from `ip` is refused without looking at it.
    pub fn is_blocked(&self, system_id: &str, ip: IpAddr, now: Instant) -> bool {
        [
            GuardKey::SystemId(system_id.to_string()),
            GuardKey::Peer(ip),
        ]
        .iter()
        .any(|k| {
            self.entries
                .get(k)
                .and_then(|e| e.blocked_until)
                .is_some_and(|until| now < until)
        })
    }

    /// Counts a failed bind; returns the blocks it starts (at most one per key).
    pub fn failed(&mut self, system_id: &str, ip: IpAddr, now: Instant) -> Vec<Blocked> {
        let mut started = Vec::new();
        for key in [
            GuardKey::SystemId(system_id.to_string()),
            GuardKey::Peer(ip),
        ] {
            self.make_room(&key, now);
            let e = self.entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                window_start: now,
                blocked_until: None,
                blocks: 0,
                last_seen: now,
            });
            e.last_seen = now;
            if e.blocked_until.is_some_and(|u| now < u) {
                continue;
            }
            if now.duration_since(e.window_start) >= BIND_FAILURE_WINDOW {
                e.failures = 0;
                e.window_start = now;
            }
            e.failures += 1;
            if e.failures >= self.max_failures {
                let factor = 1u32 << e.blocks.min(16);
                let duration = self.block.saturating_mul(factor).min(MAX_BIND_BLOCK);
                e.blocked_until = Some(now + duration);
                e.blocks = e.blocks.saturating_add(1);
                e.failures = 0;
                e.window_start = now;
                started.push(Blocked { key, duration });
            }
        }
        started
    }

    /// A successful bind: forgets both keys.
    pub fn succeeded(&mut self, system_id: &str, ip: IpAddr) {
        self.entries
            .remove(&GuardKey::SystemId(system_id.to_string()));
        self.entries.remove(&GuardKey::Peer(ip));
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room for `key`: drop stale entries, then the least recently seen one.
    fn make_room(&mut self, key: &GuardKey, now: Instant) {
        if self.entries.len() < MAX_GUARD_KEYS || self.entries.contains_key(key) {
            return;
        }
        // Stale: no block running and the window (and a max block of memory) long gone.
        self.entries.retain(|_, e| {
            e.blocked_until.is_some_and(|u| now < u)
                || now.duration_since(e.last_seen) < BIND_FAILURE_WINDOW.max(MAX_BIND_BLOCK)
        });
        if self.entries.len() >= MAX_GUARD_KEYS {
            let oldest = self
                .entries
                .iter()
                .filter(|(_, e)| e.blocked_until.is_none_or(|u| now >= u))
                .min_by_key(|(_, e)| e.last_seen)
                .or_else(|| self.entries.iter().min_by_key(|(_, e)| e.last_seen))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn blocks_after_max_failures_then_lets_go() {
        let t0 = Instant::now();
        let mut g = BindGuard::new(3, Duration::from_secs(30));
        assert!(g.failed("esme", ip(), t0).is_empty());
        assert!(g.failed("esme", ip(), t0).is_empty());
        assert!(!g.is_blocked("esme", ip(), t0));
        let started = g.failed("esme", ip(), t0);
        assert_eq!(started.len(), 2, "both the system_id and the IP");
        assert!(g.is_blocked("esme", ip(), t0));
        // The IP is blocked for any system_id, the system_id from any IP.
        assert!(g.is_blocked("other", ip(), t0));
        assert!(g.is_blocked("esme", "192.0.2.8".parse().unwrap(), t0));
        assert!(!g.is_blocked("other", "192.0.2.8".parse().unwrap(), t0));
        // Failures while blocked start no second block (one WARN per block).
        assert!(g.failed("esme", ip(), t0).is_empty());
        assert!(!g.is_blocked("esme", ip(), t0 + Duration::from_secs(30)));
    }

    #[test]
    fn blocks_double_up_to_the_maximum() {
        let mut now = Instant::now();
        let mut g = BindGuard::new(1, Duration::from_secs(30));
        let mut seen = Vec::new();
        for _ in 0..8 {
            let b = g.failed("esme", ip(), now);
            seen.push(b[0].duration.as_secs());
            now += b[0].duration;
        }
        assert_eq!(seen, [30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut g = BindGuard::new(2, Duration::from_secs(30));
        g.failed("esme", ip(), t0);
        assert!(g.failed("esme", ip(), t0 + BIND_FAILURE_WINDOW).is_empty());
    }

    #[test]
    fn success_forgets() {
        let t0 = Instant::now();
        let mut g = BindGuard::new(2, Duration::from_secs(30));
        g.failed("esme", ip(), t0);
        g.succeeded("esme", ip());
        assert!(g.is_empty());
        assert!(g.failed("esme", ip(), t0).is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut g = BindGuard::new(5, Duration::from_secs(30));
        for i in 0..(MAX_GUARD_KEYS + 100) {
            g.failed(&format!("id{i}"), ip(), t0);
        }
        assert!(g.len() <= MAX_GUARD_KEYS);
        // The IP key, hit every time, is still there and blocked.
        assert!(g.is_blocked("anyone", ip(), t0));
    }
}
