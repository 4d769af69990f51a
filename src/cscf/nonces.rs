//! The S-CSCF's outstanding authentication challenges (nonces), by nonce, with an index by
//! private identity so capping one IMPI's challenges (an attacker asking for nonce after
//! nonce for the same user) costs a lookup, not a scan of every challenge in the table.
//! Socket-free: the S-CSCF owns one behind a mutex.

use crate::shrink::ShrinkWhenSparse;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the table needs to know about a challenge.
pub trait Challenge {
    /// The private identity it was issued to (the index key: never changes).
    fn impi(&self) -> &str;
    /// When it was issued.
    fn created(&self) -> Instant;
}

/// Challenges by nonce; each IMPI's nonces oldest first.
#[derive(Debug)]
pub struct NonceTable<V> {
    by_nonce: HashMap<String, V>,
    by_impi: HashMap<String, VecDeque<String>>,
}

impl<V> Default for NonceTable<V> {
    fn default() -> Self {
        NonceTable {
            by_nonce: HashMap::new(),
            by_impi: HashMap::new(),
        }
    }
}

impl<V: Challenge> NonceTable<V> {
    /// Challenges held.
    pub fn len(&self) -> usize {
        self.by_nonce.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.by_nonce.is_empty()
    }

    /// Stores a new challenge; past `per_impi` for its IMPI, that IMPI's oldest goes.
    pub fn insert(&mut self, nonce: String, v: V, per_impi: usize) {
        self.remove(&nonce);
        let q = self.by_impi.entry(v.impi().to_string()).or_default();
        while q.len() >= per_impi.max(1) {
            match q.pop_front() {
                Some(old) => {
                    self.by_nonce.remove(&old);
                }
                None => break,
            }
        }
        q.push_back(nonce.clone());
        self.by_nonce.insert(nonce, v);
    }

    /// The challenge behind a nonce.
    pub fn get(&self, nonce: &str) -> Option<&V> {
        self.by_nonce.get(nonce)
    }

    /// The challenge behind a nonce, to update (not its IMPI).
    pub fn get_mut(&mut self, nonce: &str) -> Option<&mut V> {
        self.by_nonce.get_mut(nonce)
    }

    /// Takes a challenge out.
    pub fn remove(&mut self, nonce: &str) -> Option<V> {
        let v = self.by_nonce.remove(nonce)?;
        if let Some(q) = self.by_impi.get_mut(v.impi()) {
            q.retain(|n| n != nonce);
            if q.is_empty() {
                self.by_impi.remove(v.impi());
            }
        }
        Some(v)
    }

    /// Drops challenges older than `lifetime`.
    pub fn expire(&mut self, now: Instant, lifetime: Duration) {
        let old: Vec<String> = self
            .by_nonce
            .iter()
            .filter(|(_, v)| now.saturating_duration_since(v.created()) >= lifetime)
            .map(|(n, _)| n.clone())
            .collect();
        for n in old {
            self.remove(&n);
        }
        self.by_nonce.shrink_when_sparse();
        self.by_impi.shrink_when_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct C(&'static str, Instant);
    impl Challenge for C {
        fn impi(&self) -> &str {
            self.0
        }
        fn created(&self) -> Instant {
            self.1
        }
    }

    #[test]
    fn each_impi_keeps_its_newest_challenges_and_old_ones_lapse() {
        let mut t = NonceTable::default();
        let t0 = Instant::now();
        for i in 0..5 {
            t.insert(format!("a{i}"), C("alice", t0 + Duration::from_secs(i)), 3);
        }
        t.insert("b0".into(), C("bob", t0), 3);
        assert_eq!(t.len(), 4);
        assert!(t.get("a0").is_none() && t.get("a1").is_none());
        assert!(t.get("a2").is_some() && t.get("a4").is_some());
        assert_eq!(t.remove("a3").map(|c| c.0), Some("alice"));
        assert_eq!(t.by_impi["alice"], ["a2", "a4"]);
        t.expire(t0 + Duration::from_secs(5), Duration::from_secs(3));
        assert!(t.get("b0").is_none() && t.get("a2").is_none());
        assert!(!t.by_impi.contains_key("bob"));
        assert_eq!(t.len(), 1);
        t.expire(t0 + Duration::from_secs(100), Duration::from_secs(3));
        assert!(t.is_empty() && t.by_impi.is_empty());
    }
}
