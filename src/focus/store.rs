//! The focus's sled trees: `focus.groups` (group id -> the [`Group`] as JSON: members, states,
//! delivery cursors, next sequence number; written at each membership change, and within a
//! second of a message or a delivery, whose sequence number the history itself keeps) and `focus.history` (group id, 0, sequence number
//! big-endian -> the message's CPIM as the sender's member leg got it, sender identity
//! enforced). A message is in the history, flushed, before its sender gets its MSRP 200; a
//! member's cursor says what it got, so what it missed goes out, in order, when it is back.

use crate::store::{GroupCommit, StoreError};

use super::group::Group;

/// The focus's persistent state.
#[derive(Clone)]
pub struct FocusStore {
    groups: sled::Tree,
    history: sled::Tree,
    commit: GroupCommit,
}

fn history_key(gid: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(gid.len() + 9);
    k.extend_from_slice(gid.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl FocusStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db, commit: GroupCommit) -> Result<FocusStore, sled::Error> {
        Ok(FocusStore {
            groups: db.open_tree("focus.groups")?,
            history: db.open_tree("focus.history")?,
            commit,
        })
    }

    /// Every group kept (at start-up).
    pub fn groups(&self) -> Vec<Group> {
        self.groups
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Writes `g` (not yet flushed: [`FocusStore::durable`]).
    pub fn put_group(&self, g: &Group) -> Result<(), StoreError> {
        let v = serde_json::to_vec(g).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.groups.insert(g.id.as_bytes(), v)?;
        Ok(())
    }

    /// Appends message `seq` of group `gid`.
    pub fn put_message(&self, gid: &str, seq: u64, cpim: &[u8]) -> Result<(), StoreError> {
        self.history.insert(history_key(gid, seq), cpim)?;
        Ok(())
    }

    /// The sequence number of group `gid`'s last message, if it has one.
    pub fn last_seq(&self, gid: &str) -> Option<u64> {
        let (k, _) = self
            .history
            .range(history_key(gid, 0)..=history_key(gid, u64::MAX))
            .next_back()?
            .ok()?;
        Some(u64::from_be_bytes(k.get(k.len() - 8..)?.try_into().ok()?))
    }

    /// Group `gid`'s messages after `after`, in order, at most `max`.
    pub fn messages_after(&self, gid: &str, after: u64, max: usize) -> Vec<(u64, Vec<u8>)> {
        let start = history_key(gid, after.saturating_add(1));
        let end = history_key(gid, u64::MAX);
        self.history
            .range(start..=end)
            .filter_map(Result::ok)
            .take(max)
            .filter_map(|(k, v)| {
                let seq = u64::from_be_bytes(k.get(k.len() - 8..)?.try_into().ok()?);
                Some((seq, v.to_vec()))
            })
            .collect()
    }

    /// Waits until everything written so far is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_comes_back_in_order_per_group_and_groups_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let st = FocusStore::open(&db, GroupCommit::new(&db)).unwrap();
            let g = Group::new(
                "g1",
                "sip:chat-g1@ims.lab",
                "sip:alice@ims.lab",
                &["sip:bob@ims.lab".into()],
                None,
                "c1",
                10,
            )
            .unwrap();
            st.put_group(&g).unwrap();
            for seq in [1u64, 2, 300] {
                st.put_message("g1", seq, format!("m{seq}").as_bytes())
                    .unwrap();
            }
            st.put_message("g10", 1, b"other group").unwrap();
            st.durable().await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let st = FocusStore::open(&db, GroupCommit::new(&db)).unwrap();
        assert_eq!(st.groups().len(), 1);
        let after1: Vec<u64> = st
            .messages_after("g1", 1, 10)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(after1, vec![2, 300]);
        assert_eq!(st.messages_after("g1", 0, 1)[0].1, b"m1".to_vec());
        assert_eq!(st.messages_after("g10", 0, 10).len(), 1);
        assert_eq!(st.last_seq("g1"), Some(300));
        assert_eq!(st.last_seq("g10"), Some(1));
        assert_eq!(st.last_seq("g2"), None);
    }
}
