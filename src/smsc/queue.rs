//! The messages the centre holds, by destination, oldest first: a destination's messages go
//! one at a time and in order (as an SMS-SC delivers to one MSISDN), one that could not be
//! reached waits for its retry time or its registration. Socket-free, clock passed in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use super::store::StoredSm;

/// Messages by destination, with their retry times.
#[derive(Debug, Default)]
pub struct Queue {
    by_dest: HashMap<String, BTreeMap<u64, StoredSm>>,
    /// Destinations whose last attempt failed: not before this.
    retry_at: HashMap<String, Instant>,
    /// Destinations woken (their phone registered) since their current attempt began: when
    /// that attempt fails they are tried again at once, not at their retry time.
    woken: HashSet<String>,
    /// Messages held (reports included).
    total: usize,
    /// Messages (not reports) held.
    messages: usize,
    max: usize,
}

impl Queue {
    /// A queue that holds at most `max` messages (reports on them do not count: each message
    /// has at most one, so they are bounded too).
    pub fn new(max: usize) -> Queue {
        Queue {
            max,
            ..Queue::default()
        }
    }

    /// No room for another message.
    pub fn is_full(&self) -> bool {
        self.messages >= self.max
    }

    /// Messages and reports held.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Destinations with something waiting.
    pub fn destinations(&self) -> usize {
        self.by_dest.len()
    }

    /// Adds `m` (false when it is a message and the queue is full).
    pub fn push(&mut self, m: StoredSm) -> bool {
        let report = m.report_of.is_some();
        if !report && self.is_full() {
            return false;
        }
        let q = self.by_dest.entry(m.to.clone()).or_default();
        if q.insert(m.id, m).is_none() {
            self.total += 1;
            if !report {
                self.messages += 1;
            }
        }
        true
    }

    /// The oldest message for `dest`.
    pub fn first(&self, dest: &str) -> Option<&StoredSm> {
        self.by_dest.get(dest)?.values().next()
    }

    /// The oldest `n` messages for `dest`, oldest first.
    pub fn oldest(&self, dest: &str, n: usize) -> Vec<StoredSm> {
        self.by_dest
            .get(dest)
            .map(|q| q.values().take(n).cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces the held copy of `m` (its attempts).
    pub fn update(&mut self, m: &StoredSm) {
        if let Some(held) = self.by_dest.get_mut(&m.to).and_then(|q| q.get_mut(&m.id)) {
            *held = m.clone();
        }
    }

    /// Takes message `id` of `dest` out.
    pub fn remove(&mut self, dest: &str, id: u64) -> Option<StoredSm> {
        let q = self.by_dest.get_mut(dest)?;
        let m = q.remove(&id)?;
        if q.is_empty() {
            self.by_dest.remove(dest);
            self.retry_at.remove(dest);
            self.woken.remove(dest);
        }
        self.total -= 1;
        if m.report_of.is_none() {
            self.messages -= 1;
        }
        Some(m)
    }

    /// An attempt for `dest` begins (what woke it before is spent).
    pub fn begin_attempt(&mut self, dest: &str) {
        self.woken.remove(dest);
    }

    /// `dest` is tried again at `at` (or earlier, when it registers); false when it was
    /// woken while its attempt ran, and must be tried again now.
    pub fn defer(&mut self, dest: &str, at: Instant) -> bool {
        if self.woken.remove(dest) {
            return false;
        }
        if self.by_dest.contains_key(dest) {
            self.retry_at.insert(dest.to_string(), at);
        }
        true
    }

    /// Whether `dest` waits for a retry time still to come.
    pub fn deferred(&self, dest: &str, now: Instant) -> bool {
        self.retry_at.get(dest).is_some_and(|t| *t > now)
    }

    /// Forgets `dest`'s retry time (it registered: try now); an attempt running now that
    /// fails is tried again at once.
    pub fn wake(&mut self, dest: &str) {
        self.retry_at.remove(dest);
        if self.by_dest.contains_key(dest) {
            self.woken.insert(dest.to_string());
        }
    }

    /// Destinations whose retry time has come (their times are forgotten).
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .retry_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for d in &due {
            self.retry_at.remove(d);
        }
        due
    }

    /// Messages waiting for `dest`.
    pub fn waiting(&self, dest: &str) -> usize {
        self.by_dest.get(dest).map_or(0, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smsc::store::{Origin, ReportOf};
    use std::time::Duration;

    fn sm(id: u64, to: &str) -> StoredSm {
        StoredSm {
            id,
            origin: Origin::Esme {
                system_id: "app".into(),
            },
            from: "4000".into(),
            from_toa: 0x81,
            to: to.into(),
            pid: 0,
            dcs: 0,
            udhi: false,
            ud: vec![0],
            report: false,
            received: 0,
            expires: 10,
            attempts: 0,
            report_of: None,
            failure_only: false,
            given_id: None,
        }
    }

    #[test]
    fn a_destination_goes_oldest_first_and_the_bound_counts_messages_not_reports() {
        let mut q = Queue::new(2);
        assert!(q.push(sm(5, "+1")));
        assert!(q.push(sm(3, "+1")));
        assert!(q.is_full());
        assert!(!q.push(sm(7, "+2")));
        let mut r = sm(8, "+2");
        r.report_of = Some(ReportOf {
            status: 0,
            tp_mr: 1,
            recipient: "+1".into(),
            received: 0,
            message_id: 3,
        });
        assert!(q.push(r));
        assert_eq!(q.len(), 3);
        assert_eq!(q.first("+1").unwrap().id, 3);
        let ids: Vec<u64> = q.oldest("+1", 5).iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 5]);
        assert_eq!(q.oldest("+1", 1).len(), 1);
        assert!(q.oldest("+9", 4).is_empty());
        assert_eq!(q.remove("+1", 3).unwrap().id, 3);
        assert!(!q.is_full());
        assert_eq!(q.first("+1").unwrap().id, 5);
        assert_eq!(q.destinations(), 2);
        q.remove("+1", 5);
        q.remove("+2", 8);
        assert!(q.is_empty());
        assert_eq!(q.destinations(), 0);
    }

    #[test]
    fn a_deferred_destination_comes_due_or_wakes() {
        let t0 = Instant::now();
        let mut q = Queue::new(10);
        q.push(sm(1, "+1"));
        q.push(sm(2, "+2"));
        q.defer("+1", t0 + Duration::from_secs(60));
        q.defer("+2", t0 + Duration::from_secs(5));
        q.defer("+3", t0);
        assert!(q.deferred("+1", t0));
        assert!(q.due(t0).is_empty());
        assert_eq!(q.due(t0 + Duration::from_secs(5)), vec!["+2".to_string()]);
        q.wake("+1");
        assert!(!q.deferred("+1", t0));
        assert!(q.due(t0 + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn a_wake_during_an_attempt_makes_its_failure_try_again_at_once() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        let mut q = Queue::new(10);
        q.push(sm(1, "+1"));
        q.begin_attempt("+1");
        // The phone registers while the attempt is under way; the attempt then fails.
        q.wake("+1");
        assert!(!q.defer("+1", later), "try again now");
        assert!(!q.deferred("+1", t0));
        // The next failure, with no wake in between, waits.
        q.begin_attempt("+1");
        assert!(q.defer("+1", later));
        assert!(q.deferred("+1", t0));
        // A wake before an attempt begins is spent by it.
        q.wake("+1");
        q.begin_attempt("+1");
        assert!(q.defer("+1", later));
        // A destination with nothing waiting is not remembered.
        q.wake("+9");
        assert!(q.defer("+9", later));
    }
}
