//! Tables keyed by what the network sends give memory back after a burst. A `HashMap` or
//! `VecDeque` keeps its largest capacity for good: a table that once held a spike (a load
//! peak, a stall that let completed transactions pile up for Timer J) would hold that memory
//! for the rest of the lab's life, and RSS would climb in steps with each new peak. The sweeps
//! call [`ShrinkWhenSparse::shrink_when_sparse`] after they removed what expired.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Capacity below which a table is left alone (shrinking small tables saves nothing).
const SMALL: usize = 1024;

/// Shrinks a collection to twice its length once it uses under a quarter of its capacity
/// (so a table that hovers around a size is not reallocated at every sweep).
pub trait ShrinkWhenSparse {
    /// See the trait.
    fn shrink_when_sparse(&mut self);
}

fn sparse(len: usize, capacity: usize) -> bool {
    capacity > SMALL && len.saturating_mul(4) < capacity
}

impl<K: Eq + Hash, V, S: BuildHasher> ShrinkWhenSparse for HashMap<K, V, S> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len().saturating_mul(2));
        }
    }
}

impl<T> ShrinkWhenSparse for VecDeque<T> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len().saturating_mul(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_that_held_a_spike_gives_the_memory_back_and_a_steady_one_is_left_alone() {
        let mut m: HashMap<u32, u32> = (0..100_000).map(|i| (i, i)).collect();
        let peak = m.capacity();
        m.retain(|k, _| *k < 1_000);
        m.shrink_when_sparse();
        assert!(m.capacity() < peak / 16, "{} of {peak}", m.capacity());
        assert_eq!(m.len(), 1_000);
        // Half full: not sparse, not touched.
        let mut m: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        m.retain(|k, _| *k < 5_000);
        let cap = m.capacity();
        m.shrink_when_sparse();
        assert_eq!(m.capacity(), cap);
        let mut q: VecDeque<u32> = (0..50_000).collect();
        q.drain(..49_900);
        q.shrink_when_sparse();
        assert!(q.capacity() < 1_000);
        assert_eq!(q.len(), 100);
    }
}
