//! The window of recent imdn.Message-IDs (and reports) a client remembers, so it drops the
//! copies a restarted network sends again (at-least-once delivery from a store) and still
//! acknowledges them.

use std::collections::{HashSet, VecDeque};

/// A bounded set of recent ids: the oldest goes when it is full.
pub(super) struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    pub(super) fn new(cap: usize) -> RecentIds {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// True when `id` is new (and now remembered).
    pub(super) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_refused_and_the_oldest_id_goes_first() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c")); // "a" goes
        assert!(r.insert("a"));
        assert!(!r.insert("c"));
    }
}
