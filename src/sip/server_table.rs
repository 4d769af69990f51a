//! An endpoint's server transactions by key (RFC 3261 §17.2.3): live ones (the input of the
//! task that runs them) and completed non-INVITE ones waiting out Timer J, of which only the
//! final response is kept, to resend when the request is retransmitted (§17.2.2).
//!
//! Timer J is 64·T1 (32 s) over UDP, so at a few thousand requests a second the completed
//! entries outnumber everything else a node holds. They are bounded: they expire in the order
//! they were made (Timer J is one constant per endpoint), with no scan of the table, and past
//! [`ServerTable::new`]'s cap the oldest goes first. A retransmission comes within T2 (4 s)
//! of a lost response, so an entry evicted early costs nothing in practice; at worst a very
//! late copy of a request is taken as new, as after a restart. Socket-free.

use crate::shrink::ShrinkWhenSparse;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::sip::transport::Transport;

/// A completed transaction's final response and where it went.
#[derive(Clone, Debug)]
pub struct Completed {
    /// The final response as sent.
    pub response: Bytes,
    /// Where.
    pub dest: SocketAddr,
    /// How.
    pub transport: Transport,
    /// When Timer J fires.
    pub until: Instant,
}

/// One server transaction.
pub enum Slot<A> {
    /// Running: its task's input.
    Active(A),
    /// Completed, waiting out Timer J.
    Completed(Completed),
}

/// Server transactions by key, the completed ones bounded.
pub struct ServerTable<A> {
    map: HashMap<String, Slot<A>>,
    /// Completed entries in the order they were made: (key, until). An entry whose key has
    /// since been replaced or removed is skipped when it reaches the front.
    order: VecDeque<(String, Instant)>,
    completed: usize,
    max_completed: usize,
}

impl<A> ServerTable<A> {
    /// An empty table keeping at most `max_completed` completed transactions (at least 1).
    pub fn new(max_completed: usize) -> Self {
        ServerTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            completed: 0,
            max_completed: max_completed.max(1),
        }
    }

    /// The transaction under `key`.
    pub fn get(&self, key: &str) -> Option<&Slot<A>> {
        self.map.get(key)
    }

    /// Starts (or replaces) a live transaction.
    pub fn insert_active(&mut self, key: String, input: A) {
        if let Some(Slot::Completed(_)) = self.map.insert(key, Slot::Active(input)) {
            self.completed -= 1;
        }
    }

    /// Turns the transaction under `key` into a completed entry, evicting the oldest completed
    /// one when the table holds its cap.
    pub fn complete(&mut self, key: String, c: Completed) {
        let until = c.until;
        if !matches!(
            self.map.insert(key.clone(), Slot::Completed(c)),
            Some(Slot::Completed(_))
        ) {
            self.completed += 1;
        }
        self.order.push_back((key, until));
        while self.completed > self.max_completed && !self.order.is_empty() {
            self.pop_oldest();
        }
    }

    /// Forgets the transaction under `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some(Slot::Completed(_)) = self.map.remove(key) {
            self.completed -= 1;
        }
    }

    /// Forgets the completed transactions whose Timer J has fired by `now`.
    pub fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(_, until)| *until <= now) {
            self.pop_oldest();
        }
        // Keys replaced many times leave stale order entries: rebuild when they dominate.
        if self.order.len() > 2 * self.completed + 1024 {
            let map = &self.map;
            self.order.retain(
                |(k, until)| matches!(map.get(k), Some(Slot::Completed(c)) if c.until == *until),
            );
        }
        self.map.shrink_when_sparse();
        self.order.shrink_when_sparse();
    }

    /// Pops the front of the order; true when it removed a completed entry.
    fn pop_oldest(&mut self) -> bool {
        let Some((key, until)) = self.order.pop_front() else {
            return false;
        };
        match self.map.get(&key) {
            Some(Slot::Completed(c)) if c.until == until => {
                self.map.remove(&key);
                self.completed -= 1;
                true
            }
            _ => false,
        }
    }

    /// Live transactions.
    pub fn active(&self) -> usize {
        self.map.len() - self.completed
    }

    /// Completed transactions waiting out Timer J.
    pub fn completed(&self) -> usize {
        self.completed
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.completed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn done(until: Instant) -> Completed {
        Completed {
            response: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
            dest: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            until,
        }
    }

    #[test]
    fn completed_entries_expire_in_order_and_the_cap_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut t: ServerTable<u32> = ServerTable::new(3);
        for i in 0..3 {
            t.insert_active(format!("k{i}"), i);
        }
        assert_eq!((t.active(), t.completed()), (3, 0));
        for i in 0..3 {
            t.complete(format!("k{i}"), done(t0 + Duration::from_secs(i + 1)));
        }
        assert_eq!((t.active(), t.completed()), (0, 3));
        // A fourth completed one: the oldest goes.
        t.insert_active("k3".into(), 3);
        t.complete("k3".into(), done(t0 + Duration::from_secs(4)));
        assert!(t.get("k0").is_none());
        assert_eq!(t.completed(), 3);
        // Timer J: expired ones go, the others stay.
        t.expire(t0 + Duration::from_secs(2));
        assert!(t.get("k1").is_none());
        assert!(matches!(t.get("k2"), Some(Slot::Completed(_))));
        assert_eq!(t.completed(), 2);
        t.expire(t0 + Duration::from_secs(10));
        assert_eq!((t.active(), t.completed()), (0, 0));
    }

    #[test]
    fn a_key_reused_or_removed_leaves_no_stale_eviction() {
        let t0 = Instant::now();
        let mut t: ServerTable<u32> = ServerTable::new(10);
        t.complete("a".into(), done(t0 + Duration::from_secs(1)));
        // The same key starts again (a new request with a reused branch) and completes later.
        t.insert_active("a".into(), 1);
        assert_eq!((t.active(), t.completed()), (1, 0));
        t.complete("a".into(), done(t0 + Duration::from_secs(5)));
        // The first entry's expiry must not take the second.
        t.expire(t0 + Duration::from_secs(2));
        assert!(matches!(t.get("a"), Some(Slot::Completed(_))));
        t.remove("a");
        assert_eq!((t.active(), t.completed()), (0, 0));
        t.expire(t0 + Duration::from_secs(9));
        assert_eq!(t.completed(), 0);
        // Many replacements of one key do not grow the order without bound.
        for i in 0..5000u64 {
            t.complete("b".into(), done(t0 + Duration::from_secs(20 + i)));
        }
        t.expire(t0);
        assert_eq!(t.completed(), 1);
        assert!(t.order.len() <= 2 * t.completed() + 1024);
    }
}
