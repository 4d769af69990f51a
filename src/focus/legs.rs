//! The focus's member legs, by id and by group: a message to a group goes to its own legs
//! without a look at anyone else's.

use std::collections::{HashMap, HashSet};

use super::Leg;

/// Member legs, indexed by leg id and by group.
#[derive(Debug, Default)]
pub(super) struct Legs {
    by_id: HashMap<String, Leg>,
    by_group: HashMap<String, HashSet<String>>,
}

impl Legs {
    pub(super) fn insert(&mut self, id: String, leg: Leg) {
        self.by_group
            .entry(leg.gid.clone())
            .or_default()
            .insert(id.clone());
        if let Some(old) = self.by_id.insert(id.clone(), leg) {
            self.unindex(&id, &old.gid);
            // The new one may share the group: index it again.
            if let Some(l) = self.by_id.get(&id) {
                let gid = l.gid.clone();
                self.by_group.entry(gid).or_default().insert(id);
            }
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<&Leg> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Leg> {
        self.by_id.get_mut(id)
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Leg> {
        let leg = self.by_id.remove(id)?;
        self.unindex(id, &leg.gid);
        Some(leg)
    }

    /// The legs of group `gid`, with their ids.
    pub(super) fn of_group<'a>(&'a self, gid: &str) -> impl Iterator<Item = (&'a String, &'a Leg)> {
        self.by_group
            .get(gid)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get_key_value(id))
    }

    fn unindex(&mut self, id: &str, gid: &str) {
        if let Some(set) = self.by_group.get_mut(gid) {
            set.remove(id);
            if set.is_empty() {
                self.by_group.remove(gid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(gid: &str, member: &str) -> Leg {
        Leg {
            gid: gid.into(),
            member: member.into(),
            local: String::new(),
            remote: None,
            conn: None,
        }
    }

    #[test]
    fn legs_are_found_by_group_and_leave_no_index_behind() {
        let mut l = Legs::default();
        l.insert("a".into(), leg("g1", "alice"));
        l.insert("b".into(), leg("g1", "bob"));
        l.insert("c".into(), leg("g2", "carol"));
        let mut g1: Vec<&str> = l.of_group("g1").map(|(_, x)| x.member.as_str()).collect();
        g1.sort();
        assert_eq!(g1, ["alice", "bob"]);
        assert_eq!(l.remove("a").map(|x| x.member), Some("alice".into()));
        assert_eq!(l.of_group("g1").count(), 1);
        l.remove("b");
        l.remove("c");
        assert!(l.by_group.is_empty() && l.by_id.is_empty());
        assert_eq!(l.of_group("g1").count(), 0);
        // The same id again, in another group: only there.
        l.insert("x".into(), leg("g1", "dave"));
        l.insert("x".into(), leg("g2", "dave"));
        assert_eq!(l.of_group("g1").count(), 0);
        assert_eq!(l.of_group("g2").count(), 1);
    }
}
