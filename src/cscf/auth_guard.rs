//! Failed-authentication bookkeeping of the S-CSCF, per private identity and per source
//! address (what svcrack and its faster cousins run into). Socket-free and clock-injected.
//!
//! Every failed answer to a challenge counts against the IMPI and against the UE's address.
//! A failure is answered as a registrar always did here: the first of a pair gets one more
//! challenge, the second a 403. The count does not restart at the 403 (it did: a guesser got
//! two tries per 403 for ever); when either count reaches `max_failures` inside `window`, the
//! IMPI or the address is blocked for `backoff`, doubling at each block up to `max_backoff`,
//! (an address has a higher limit, `max_failures_per_address`: UEs share addresses)
//! and every REGISTER from it gets 403 with Retry-After without a challenge, so a blocked
//! guesser learns nothing. A success clears the IMPI's count (not the address's: an attacker
//! with an account of their own could clear it between guesses on others).
//!
//! The tables are bounded: a full one drops to 90 % of `max_entries`, quiet entries first,
//! blocked ones last.

use crate::shrink::ShrinkWhenSparse;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Limits, from the lab file's `[auth]`: plain data, defined in `config` (below the nodes).
pub use crate::config::AuthLimits;

/// What to answer a failed attempt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 401 with a fresh challenge.
    Rechallenge,
    /// 403.
    Reject,
    /// 403 with Retry-After: blocked for this long.
    Blocked(Duration),
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    first: Instant,
    last: Instant,
    blocked_until: Option<Instant>,
    blocks: u32,
}

struct Table<K> {
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            map: HashMap::new(),
        }
    }

    fn blocked(&self, k: &K, now: Instant) -> Option<Duration> {
        let until = self.map.get(k)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns (failures now, blocked for).
    fn fail(&mut self, k: &K, now: Instant, l: &AuthLimits, max: u32) -> (u32, Option<Duration>) {
        if !self.map.contains_key(k) && self.map.len() >= l.max_entries.max(1) {
            self.make_room(now, l);
        }
        let e = self.map.entry(k.clone()).or_insert(Entry {
            failures: 0,
            first: now,
            last: now,
            blocked_until: None,
            blocks: 0,
        });
        if now.duration_since(e.first) > l.window {
            // A quiet window forgets the failures (and, after one without a block, the blocks).
            if e.blocked_until
                .is_none_or(|u| now.duration_since(u) > l.window)
            {
                e.blocks = 0;
            }
            e.failures = 0;
            e.first = now;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= max.max(1) {
            let d = l
                .backoff
                .saturating_mul(1u32 << e.blocks.min(16))
                .min(l.max_backoff);
            e.blocks += 1;
            e.failures = 0;
            e.first = now;
            e.blocked_until = Some(now + d);
            return (max, Some(d));
        }
        (e.failures, None)
    }

    /// A full table drops to 90 %: first what is quiet and not blocked, then what is not
    /// blocked, then anything. One pass for many inserts (a flood of new identities must not
    /// cost a scan each).
    fn make_room(&mut self, now: Instant, l: &AuthLimits) {
        let target = l.max_entries.max(1) * 9 / 10;
        self.sweep(now, l.window);
        for pass in 0..2 {
            if self.map.len() <= target {
                return;
            }
            let mut excess = self.map.len() - target;
            self.map.retain(|_, e| {
                let blocked = e.blocked_until.is_some_and(|u| u > now);
                if excess > 0 && (pass == 1 || !blocked) {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }

    /// Drops entries quiet for longer than `keep` and not blocked.
    fn sweep(&mut self, now: Instant, keep: Duration) {
        self.map.retain(|_, e| {
            e.blocked_until.is_some_and(|u| u > now) || now.duration_since(e.last) <= keep
        });
        self.map.shrink_when_sparse();
    }
}

/// What an address counts under: its IP; on loopback, its IP and port (everyone on the lab's
/// machine shares 127.0.0.1, and one student's typos must not lock the whole class out; a tool
/// like svcrack keeps its socket and is counted all the same).
fn source_key(s: SocketAddr) -> SocketAddr {
    if s.ip().is_loopback() {
        s
    } else {
        SocketAddr::new(s.ip(), 0)
    }
}

/// The S-CSCF's failed-authentication tables.
pub struct AuthGuard {
    limits: AuthLimits,
    by_impi: Table<String>,
    by_source: Table<SocketAddr>,
}

impl AuthGuard {
    /// Empty tables with these limits.
    pub fn new(limits: AuthLimits) -> AuthGuard {
        AuthGuard {
            limits,
            by_impi: Table::new(),
            by_source: Table::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> AuthLimits {
        self.limits
    }

    /// How long this IMPI or address stays blocked, if it is.
    pub fn blocked(
        &self,
        impi: &str,
        source: Option<SocketAddr>,
        now: Instant,
    ) -> Option<Duration> {
        let a = self.by_impi.blocked(&impi.to_string(), now);
        let b = source.and_then(|s| self.by_source.blocked(&source_key(s), now));
        a.max(b)
    }

    /// Counts a failed attempt and says how to answer it.
    pub fn failure(&mut self, impi: &str, source: Option<SocketAddr>, now: Instant) -> Verdict {
        let l = self.limits;
        let (n, blocked_impi) = self
            .by_impi
            .fail(&impi.to_string(), now, &l, l.max_failures);
        let blocked_source = source.and_then(|s| {
            self.by_source
                .fail(&source_key(s), now, &l, l.max_failures_per_address)
                .1
        });
        match blocked_impi.max(blocked_source) {
            Some(d) => Verdict::Blocked(d),
            None if n % 2 == 1 => Verdict::Rechallenge,
            None => Verdict::Reject,
        }
    }

    /// A successful authentication: the IMPI's count starts again.
    pub fn success(&mut self, impi: &str) {
        self.by_impi.clear(&impi.to_string());
    }

    /// Forgets what is quiet for longer than the window (call now and then).
    pub fn sweep(&mut self, now: Instant) {
        let keep = self.limits.window.max(self.limits.max_backoff);
        self.by_impi.sweep(now, keep);
        self.by_source.sweep(now, keep);
    }

    /// Entries held (IMPIs, addresses).
    pub fn sizes(&self) -> (usize, usize) {
        (self.by_impi.map.len(), self.by_source.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse::<IpAddr>().unwrap(), 5060))
    }

    #[test]
    fn a_pair_of_failures_is_a_challenge_then_403_and_the_count_goes_on_to_a_block() {
        let mut g = AuthGuard::new(AuthLimits::default());
        let t = Instant::now();
        let src = ip("192.0.2.1");
        assert_eq!(g.failure("alice@ims.lab", src, t), Verdict::Rechallenge);
        assert_eq!(g.failure("alice@ims.lab", src, t), Verdict::Reject);
        // The 403 does not start the count again.
        assert_eq!(g.failure("alice@ims.lab", src, t), Verdict::Rechallenge);
        assert_eq!(
            g.failure("alice@ims.lab", src, t),
            Verdict::Blocked(Duration::from_secs(30))
        );
        assert_eq!(
            g.blocked("alice@ims.lab", None, t + Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            g.blocked("alice@ims.lab", None, t + Duration::from_secs(31)),
            None
        );
        // Each further block doubles, up to the longest.
        let mut t2 = t + Duration::from_secs(31);
        let mut blocks = Vec::new();
        for _ in 0..7 {
            let mut v = Verdict::Reject;
            for _ in 0..4 {
                v = g.failure("alice@ims.lab", src, t2);
            }
            let Verdict::Blocked(d) = v else {
                panic!("{v:?}")
            };
            blocks.push(d.as_secs());
            t2 += d + Duration::from_secs(1);
        }
        assert_eq!(blocks, [60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn one_address_guessing_many_users_is_blocked_by_its_address() {
        let mut g = AuthGuard::new(AuthLimits::default());
        let t = Instant::now();
        let src = ip("198.51.100.7");
        let mut last = Verdict::Reject;
        for i in 0..16 {
            last = g.failure(&format!("user{i}@ims.lab"), src, t);
        }
        assert_eq!(last, Verdict::Blocked(Duration::from_secs(30)));
        assert!(g.blocked("someone-else@ims.lab", src, t).is_some());
        assert!(g
            .blocked("someone-else@ims.lab", ip("198.51.100.8"), t)
            .is_none());
    }

    #[test]
    fn success_clears_the_identity_not_the_address_and_quiet_windows_forget() {
        let mut g = AuthGuard::new(AuthLimits {
            max_failures_per_address: 4,
            ..AuthLimits::default()
        });
        let t = Instant::now();
        let src = ip("192.0.2.9");
        g.failure("bob@ims.lab", src, t);
        g.failure("bob@ims.lab", src, t);
        g.failure("bob@ims.lab", src, t);
        g.success("bob@ims.lab");
        assert_eq!(
            g.failure("bob@ims.lab", None, t),
            Verdict::Rechallenge,
            "bob starts again"
        );
        // The address still has its three, the fourth blocks it.
        assert!(matches!(
            g.failure("carol@ims.lab", src, t),
            Verdict::Blocked(_)
        ));
        // Eleven quiet minutes later the counts are gone.
        let later = t + Duration::from_secs(660);
        assert_eq!(
            g.failure("dave@ims.lab", ip("192.0.2.10"), later),
            Verdict::Rechallenge
        );
        g.sweep(later + Duration::from_secs(1000));
        assert_eq!(g.sizes(), (0, 0));
    }

    #[test]
    fn the_tables_are_bounded() {
        let mut g = AuthGuard::new(AuthLimits {
            max_entries: 100,
            ..AuthLimits::default()
        });
        let t = Instant::now();
        for i in 0..1000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            g.failure(
                &format!("u{i}"),
                Some(SocketAddr::new(IpAddr::V4(a), 5060)),
                t + Duration::from_millis(i.into()),
            );
        }
        let (a, b) = g.sizes();
        assert!(
            (90..=100).contains(&a) && (90..=100).contains(&b),
            "{a} {b}"
        );
    }

    #[test]
    fn on_loopback_an_address_is_its_port_too() {
        let mut g = AuthGuard::new(AuthLimits {
            max_failures_per_address: 2,
            ..AuthLimits::default()
        });
        let t = Instant::now();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        g.failure("x@ims.lab", Some(a), t);
        assert!(matches!(
            g.failure("y@ims.lab", Some(a), t),
            Verdict::Blocked(_)
        ));
        assert!(
            g.blocked("z@ims.lab", Some(b), t).is_none(),
            "another client on the host"
        );
        let r1: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let r2: SocketAddr = "192.0.2.1:2000".parse().unwrap();
        g.failure("x2@ims.lab", Some(r1), t);
        assert!(
            matches!(g.failure("y2@ims.lab", Some(r2), t), Verdict::Blocked(_)),
            "elsewhere: the IP"
        );
    }
}
