//! Watcher authorization rules kept across restarts (RFC 3856 §6.6, the lab's stand-in for
//! XCAP presence rules): a presentity's allow and block lists, written through the admin API
//! (`PUT /presence/{presentity}/watchers`), kept in the sled tree `presence_rules` (key the
//! presentity, value JSON `{"allow": [...], "block": [...]}`). A stored rule replaces what
//! `[presence] buddy_groups` gives that presentity.

use crate::presence::subscription::WatcherPolicy;
use crate::store::StoreError;

/// The sled tree of stored rules.
const TREE: &str = "presence_rules";

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    allow: Vec<String>,
    block: Vec<String>,
}

/// The stored rules (none: nothing is kept across restarts).
pub struct RuleStore {
    tree: Option<sled::Tree>,
}

impl RuleStore {
    /// The rules in `db` (`None`: in memory only).
    pub fn open(db: Option<&sled::Db>) -> Result<RuleStore, StoreError> {
        Ok(RuleStore {
            tree: db.map(|d| d.open_tree(TREE)).transpose()?,
        })
    }

    /// Every stored rule: (presentity, policy).
    pub fn load(&self) -> Result<Vec<(String, WatcherPolicy)>, StoreError> {
        let Some(tree) = &self.tree else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let who = String::from_utf8_lossy(&k).to_string();
            let s: Stored = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("presence rule of {who}: {e}")))?;
            let mut p = WatcherPolicy::default();
            for w in &s.allow {
                p.allow(w);
            }
            for w in &s.block {
                p.block(w);
            }
            out.push((who, p));
        }
        Ok(out)
    }

    /// Writes `presentity`'s rule (the caller awaits the store's `durable()` before it
    /// answers).
    pub fn put(&self, presentity: &str, p: &WatcherPolicy) -> Result<(), StoreError> {
        let Some(tree) = &self.tree else {
            return Ok(());
        };
        let v = serde_json::to_vec(&Stored {
            allow: p.allowed(),
            block: p.blocked(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tree.insert(presentity.as_bytes(), v)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let r = RuleStore::open(Some(&db)).unwrap();
            let mut p = WatcherPolicy::default();
            p.allow("sip:carol@ims.lab");
            p.block("sip:eve@ims.lab");
            r.put("sip:alice@ims.lab", &p).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let got = RuleStore::open(Some(&db)).unwrap().load().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "sip:alice@ims.lab");
        assert_eq!(got[0].1.allowed(), ["sip:carol@ims.lab"]);
        assert_eq!(got[0].1.blocked(), ["sip:eve@ims.lab"]);
        assert!(RuleStore::open(None).unwrap().load().unwrap().is_empty());
    }
}
