//! T-IM's message store in sled (seed 004: offline store, history with sequence numbers):
//!
//! - `im.history`: every message of a conversation, key `conv \0 seq`, so a client fetches
//!   everything after the last sequence number it saw;
//! - `im.pending`: messages not yet delivered, key `recipient \0 seq`, delivered in order when
//!   the recipient registers;
//! - `im.owed`: disposition notifications (IMDNs) owed to a user who was away, key
//!   `recipient \0 seq`;
//! - `im.msgid`: imdn.Message-ID to history key, to apply the IMDNs that come back.
//!
//! Sequence numbers come from sled's monotonic id generator, so they survive restarts. The
//! writes themselves do not wait for the disk: whoever is about to promise something (a 200 to
//! the INVITE carrying a message, the MSRP 200 for a message kept, the 200 to an IMDN in a SIP
//! MESSAGE) awaits [`ImStore::durable`] first, a group commit shared with the HSS
//! ([`crate::store::GroupCommit`]). Taking a message off the queue is made durable the same
//! way by the delivery paths, so a restart does not send again what was delivered (and if the
//! crash comes between delivery and fsync, the receiver drops the copy by its Message-ID).

use serde::{Deserialize, Serialize};

use crate::store::{GroupCommit, StoreError};

/// A chat message as T-IM keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in the conversation (increasing, survives restarts).
    pub seq: u64,
    /// Sender (AoR).
    pub from: String,
    /// Recipient (AoR).
    pub to: String,
    /// imdn.Message-ID.
    pub message_id: String,
    /// The whole CPIM document, base64.
    pub cpim_b64: String,
    /// Unix milliseconds when T-IM took it.
    pub stored_at_ms: u64,
    /// Contribution-ID of the session it came in.
    #[serde(default)]
    pub contribution_id: String,
    /// Conversation-ID.
    #[serde(default)]
    pub conversation_id: String,
    /// `pending`, `sent`, `delivered`, `displayed` or `failed`.
    pub status: String,
}

impl StoredMessage {
    /// The CPIM bytes.
    pub fn cpim(&self) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.cpim_b64)
            .unwrap_or_default()
    }
}

/// An IMDN waiting for its recipient (the original sender) to come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedReport {
    /// Who reports (the original recipient).
    pub from: String,
    /// Who it is for (the original sender).
    pub to: String,
    /// The CPIM document carrying the IMDN, base64.
    pub cpim_b64: String,
}

impl OwedReport {
    /// The CPIM bytes.
    pub fn cpim(&self) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.cpim_b64)
            .unwrap_or_default()
    }
}

/// Base64 of bytes (for the JSON records).
pub fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The message trees.
#[derive(Clone)]
pub struct ImStore {
    db: sled::Db,
    history: sled::Tree,
    pending: sled::Tree,
    owed: sled::Tree,
    msgid: sled::Tree,
    /// `user NUL peer` -> the newest sequence number of their conversation: a user's
    /// conversations without a scan of every history (the web client's list after login).
    peers: sled::Tree,
    commit: GroupCommit,
    /// Messages kept per conversation (0: all); see [`ImStore::with_history_cap`].
    history_cap: usize,
}

/// A conversation's history is trimmed to its cap on about one write in this many (2^6; the
/// writes are picked by a hash of their sequence number), so it may pass its cap by about this
/// much.
const TRIM_EVERY: u64 = 64;

fn key(prefix: &str, seq: u64) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn prefix(p: &str) -> Vec<u8> {
    let mut k = p.as_bytes().to_vec();
    k.push(0);
    k
}

/// The key of a conversation between two users (order does not matter).
pub fn conversation(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}|{b}")
    } else {
        format!("{b}|{a}")
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ImStore {
    /// Opens the trees in `db`; `commit` makes writes durable (the lab shares the HSS's).
    pub fn open(db: &sled::Db, commit: GroupCommit) -> Result<ImStore, StoreError> {
        let s = ImStore {
            commit,
            history: db.open_tree("im.history")?,
            pending: db.open_tree("im.pending")?,
            owed: db.open_tree("im.owed")?,
            msgid: db.open_tree("im.msgid")?,
            peers: db.open_tree("im.peers")?,
            db: db.clone(),
            history_cap: 0,
        };
        // A store written before the index existed: build it once from the histories.
        if s.peers.is_empty() && !s.history.is_empty() {
            for kv in s.history.iter() {
                let (_, v) = kv?;
                if let Ok(m) = serde_json::from_slice::<StoredMessage>(&v) {
                    s.index_peers(&m)?;
                }
            }
        }
        Ok(s)
    }

    fn index_peers(&self, m: &StoredMessage) -> Result<(), StoreError> {
        let seq = m.seq.to_be_bytes();
        for (a, b) in [(&m.from, &m.to), (&m.to, &m.from)] {
            let mut k = prefix(a);
            k.extend_from_slice(b.as_bytes());
            self.peers.insert(k, &seq)?;
        }
        Ok(())
    }

    /// The users `user` has a conversation with, and the newest sequence number of each,
    /// newest conversation first (at most `limit`).
    pub fn conversations(&self, user: &str, limit: usize) -> Vec<(String, u64)> {
        let p = prefix(user);
        let mut v: Vec<(String, u64)> = self
            .peers
            .scan_prefix(&p)
            .filter_map(|r| r.ok())
            .filter_map(|(k, seq)| {
                let peer = String::from_utf8(k[p.len()..].to_vec()).ok()?;
                let seq = u64::from_be_bytes(<[u8; 8]>::try_from(&seq[..]).ok()?);
                Some((peer, seq))
            })
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.1));
        v.truncate(limit);
        v
    }

    /// The newest `n` messages of a conversation, oldest first.
    pub fn history_tail(&self, a: &str, b: &str, n: usize) -> Vec<StoredMessage> {
        let conv = conversation(a, b);
        let mut v: Vec<StoredMessage> = self
            .history
            .scan_prefix(prefix(&conv))
            .rev()
            .filter_map(|r| r.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .take(n)
            .collect();
        v.reverse();
        v
    }

    /// Keeps at most about `cap` messages per conversation (0: all): the oldest delivered ones
    /// go, with their Message-ID entries; messages still pending stay. A history nobody trims
    /// grows with every message, and sled's memory grows with its tree (the 30-minute soak
    /// grew 20 % from it).
    pub fn with_history_cap(mut self, cap: usize) -> ImStore {
        self.history_cap = cap;
        self
    }

    /// Returns once every write made before the call is on disk (group commit, fsync off the
    /// async threads). Await it before answering for what was written.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }

    /// Takes a message into the store: history always, the pending queue when `pending`.
    /// Assigns and returns its sequence number. Not yet on disk: see [`ImStore::durable`].
    pub fn put(&self, mut m: StoredMessage, pending: bool) -> Result<StoredMessage, StoreError> {
        // Sequence numbers start at 1, so "after 0" means "everything".
        m.seq = self.db.generate_id()? + 1;
        m.status = if pending { "pending" } else { "sent" }.to_string();
        let conv = conversation(&m.from, &m.to);
        let hk = key(&conv, m.seq);
        let json = serde_json::to_vec(&m).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.history.insert(&hk, json)?;
        self.msgid.insert(m.message_id.as_bytes(), hk.clone())?;
        if pending {
            self.pending.insert(key(&m.to, m.seq), hk)?;
        }
        self.index_peers(&m)?;
        // One write in TRIM_EVERY, picked by a hash of the sequence number: `seq % N` would
        // never pick a conversation whose writes alternate with another's.
        if self.history_cap > 0
            && m.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TRIM_EVERY.trailing_zeros()) == 0
        {
            self.trim(&conv)?;
        }
        Ok(m)
    }

    /// Drops a conversation's oldest messages past the cap (pending ones stay). Returns how
    /// many went.
    pub fn trim(&self, conv: &str) -> Result<usize, StoreError> {
        if self.history_cap == 0 {
            return Ok(0);
        }
        let mut gone = 0;
        for kv in self
            .history
            .scan_prefix(prefix(conv))
            .rev()
            .skip(self.history_cap)
        {
            let (k, v) = kv?;
            let Ok(m) = serde_json::from_slice::<StoredMessage>(&v) else {
                continue;
            };
            if m.status == "pending" {
                continue;
            }
            if self.msgid.get(m.message_id.as_bytes())?.as_deref() == Some(&k[..]) {
                self.msgid.remove(m.message_id.as_bytes())?;
            }
            self.history.remove(&k)?;
            gone += 1;
        }
        Ok(gone)
    }

    /// Undelivered messages for `recipient`, oldest first.
    pub fn pending_for(&self, recipient: &str) -> Vec<StoredMessage> {
        self.pending
            .scan_prefix(prefix(recipient))
            .filter_map(|r| r.ok())
            .filter_map(|(_, hk)| self.history.get(hk).ok().flatten())
            .filter_map(|v| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Pending messages per recipient (`rcslab status`), reading keys only: at most
    /// `max_keys` keys are looked at and `max_users` recipients listed; the flag says the
    /// counts stopped short.
    pub fn pending_counts(
        &self,
        max_users: usize,
        max_keys: usize,
    ) -> (std::collections::BTreeMap<String, u64>, bool) {
        let mut out = std::collections::BTreeMap::new();
        let mut truncated = false;
        for (i, k) in self.pending.iter().keys().enumerate() {
            if i == max_keys {
                truncated = true;
                break;
            }
            let Ok(k) = k else { continue };
            // key = recipient 0x00 seq (8 bytes)
            let Some(cut) = k.len().checked_sub(9) else {
                continue;
            };
            let user = String::from_utf8_lossy(&k[..cut]).to_string();
            if !out.contains_key(&user) && out.len() == max_users {
                truncated = true;
                continue;
            }
            *out.entry(user).or_insert(0) += 1;
        }
        (out, truncated)
    }

    /// Every pending message of every recipient (for the expiry sweep).
    pub fn all_pending(&self) -> Vec<StoredMessage> {
        self.pending
            .iter()
            .filter_map(|r| r.ok())
            .filter_map(|(_, hk)| self.history.get(hk).ok().flatten())
            .filter_map(|v| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Takes a message off the pending queue (delivered or expired) and records its status.
    pub fn unqueue(&self, m: &StoredMessage, status: &str) -> Result<(), StoreError> {
        self.pending.remove(key(&m.to, m.seq))?;
        self.set_status(&m.message_id, status)?;
        Ok(())
    }

    /// Takes a revoked message out: off the pending queue and out of the history and the
    /// Message-ID index, so neither delivery nor a history fetch ever shows it.
    pub fn revoke(&self, m: &StoredMessage) -> Result<(), StoreError> {
        self.pending.remove(key(&m.to, m.seq))?;
        let hk = key(&conversation(&m.from, &m.to), m.seq);
        if self.msgid.get(m.message_id.as_bytes())?.as_deref() == Some(&hk[..]) {
            self.msgid.remove(m.message_id.as_bytes())?;
        }
        self.history.remove(&hk)?;
        Ok(())
    }

    /// The stored message with this imdn.Message-ID.
    pub fn by_message_id(&self, id: &str) -> Option<StoredMessage> {
        let hk = self.msgid.get(id.as_bytes()).ok().flatten()?;
        let v = self.history.get(hk).ok().flatten()?;
        serde_json::from_slice(&v).ok()
    }

    /// Records what an IMDN said (never moving back from displayed to delivered). Atomic
    /// (sled's compare-and-swap loop): a "sent" written as the message leaves the pending
    /// queue can race with the recipient's "delivered" and must never overwrite it.
    pub fn set_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        let Some(hk) = self.msgid.get(id.as_bytes())? else {
            return Ok(());
        };
        let rank = |s: &str| match s {
            "pending" => 0,
            "sent" => 1,
            "delivered" => 2,
            "displayed" => 3,
            _ => 4,
        };
        self.history.fetch_and_update(&hk, |old| {
            let old = old?;
            let Ok(mut m) = serde_json::from_slice::<StoredMessage>(old) else {
                return Some(old.to_vec());
            };
            if rank(status) <= rank(&m.status) {
                return Some(old.to_vec());
            }
            m.status = status.to_string();
            Some(serde_json::to_vec(&m).unwrap_or_else(|_| old.to_vec()))
        })?;
        Ok(())
    }

    /// A conversation's messages after sequence number `after`, oldest first.
    pub fn history(&self, a: &str, b: &str, after: u64, limit: usize) -> Vec<StoredMessage> {
        let conv = conversation(a, b);
        self.history
            .range(key(&conv, after.saturating_add(1))..key(&conv, u64::MAX))
            .filter_map(|r| r.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .take(limit)
            .collect()
    }

    /// Keeps an IMDN for a user who is away (durable after [`ImStore::durable`]).
    pub fn owe(&self, r: &OwedReport) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        let json = serde_json::to_vec(r).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.owed.insert(key(&r.to, seq), json)?;
        Ok(seq)
    }

    /// IMDNs owed to `user`, oldest first, with their sequence numbers.
    pub fn owed_to(&self, user: &str) -> Vec<(u64, OwedReport)> {
        self.owed
            .scan_prefix(prefix(user))
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| {
                let seq = u64::from_be_bytes(k[k.len() - 8..].try_into().ok()?);
                Some((seq, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    /// Forgets an owed IMDN once delivered.
    pub fn paid(&self, user: &str, seq: u64) -> Result<(), StoreError> {
        self.owed.remove(key(user, seq))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, to: &str, id: &str) -> StoredMessage {
        StoredMessage {
            seq: 0,
            from: from.into(),
            to: to.into(),
            message_id: id.into(),
            cpim_b64: b64(b"cpim"),
            stored_at_ms: now_ms(),
            contribution_id: String::new(),
            conversation_id: String::new(),
            status: String::new(),
        }
    }

    #[test]
    fn a_users_conversations_newest_first_and_a_conversations_tail() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
        s.put(msg("sip:a@x", "sip:b@x", "1"), false).unwrap();
        s.put(msg("sip:c@x", "sip:a@x", "2"), true).unwrap();
        s.put(msg("sip:b@x", "sip:a@x", "3"), false).unwrap();
        s.put(msg("sip:b@x", "sip:c@x", "4"), false).unwrap();
        let peers: Vec<String> = s
            .conversations("sip:a@x", 10)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(peers, ["sip:b@x", "sip:c@x"]);
        assert_eq!(s.conversations("sip:a@x", 1).len(), 1);
        let tail: Vec<String> = s
            .history_tail("sip:a@x", "sip:b@x", 1)
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(tail, ["3"]);
        assert_eq!(s.history_tail("sip:b@x", "sip:a@x", 10).len(), 2);
        // A store from before the index: the index is rebuilt on open.
        drop(s);
        db.drop_tree("im.peers").unwrap();
        let s = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
        assert_eq!(s.conversations("sip:c@x", 10).len(), 2);
    }

    #[test]
    fn history_is_trimmed_to_its_cap_keeping_pending_messages() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = ImStore::open(&db, GroupCommit::new(&db))
            .unwrap()
            .with_history_cap(10);
        let first = s.put(msg("sip:a@x", "sip:b@x", "p0"), true).unwrap();
        for i in 1..500 {
            s.put(msg("sip:a@x", "sip:b@x", &format!("m{i}")), false)
                .unwrap();
            s.put(msg("sip:c@x", "sip:d@x", &format!("o{i}")), false)
                .unwrap();
        }
        s.trim(&conversation("sip:a@x", "sip:b@x")).unwrap();
        let h = s.history("sip:a@x", "sip:b@x", 0, usize::MAX);
        assert_eq!(h.len(), 11, "the last ten and the pending one");
        assert_eq!(h[0].message_id, "p0", "a pending message stays");
        assert_eq!(h[10].message_id, "m499");
        assert!(
            s.by_message_id("m1").is_none(),
            "its Message-ID entry went with it"
        );
        assert_eq!(
            s.by_message_id("m499").map(|m| m.to),
            Some("sip:b@x".into())
        );
        assert_eq!(s.pending_for("sip:b@x"), vec![first]);
        let other = s.history("sip:c@x", "sip:d@x", 0, usize::MAX).len();
        assert!(
            other <= 10 + 4 * TRIM_EVERY as usize,
            "trimmed as it goes: {other}"
        );
        // Uncapped: everything stays.
        let all = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
        all.put(msg("sip:e@x", "sip:f@x", "e1"), false).unwrap();
        assert_eq!(all.trim(&conversation("sip:e@x", "sip:f@x")).unwrap(), 0);
    }

    #[test]
    fn pending_history_and_owed_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let s = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
            let a = s.put(msg("sip:a@x", "sip:b@x", "m1"), true).unwrap();
            s.put(msg("sip:a@x", "sip:b@x", "m2"), true).unwrap();
            s.put(msg("sip:b@x", "sip:a@x", "m3"), false).unwrap();
            s.unqueue(&a, "delivered").unwrap();
            s.owe(&OwedReport {
                from: "sip:b@x".into(),
                to: "sip:a@x".into(),
                cpim_b64: b64(b"imdn"),
            })
            .unwrap();
            db.flush().unwrap();
        }
        let db = reopen(dir.path());
        let s = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
        let p = s.pending_for("sip:b@x");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].message_id, "m2");
        let h = s.history("sip:b@x", "sip:a@x", 0, 100);
        assert_eq!(
            h.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(),
            ["m1", "m2", "m3"]
        );
        assert_eq!(h[0].status, "delivered");
        let after = s.history("sip:a@x", "sip:b@x", h[1].seq, 100);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].message_id, "m3");
        let owed = s.owed_to("sip:a@x");
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].1.cpim(), b"imdn");
        s.paid("sip:a@x", owed[0].0).unwrap();
        assert!(s.owed_to("sip:a@x").is_empty());
        s.set_status("m1", "sent").unwrap();
        assert_eq!(s.by_message_id("m1").unwrap().status, "delivered");
    }

    /// "sent" (the message left the pending queue) and "delivered" (the recipient's IMDN)
    /// written at once from two threads: "delivered" always stays (the lost update that left
    /// a delivered message "sent" in History).
    #[test]
    fn a_revoked_message_leaves_the_queue_the_history_and_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = reopen(dir.path());
        let st = ImStore::open(&db, GroupCommit::new(&db)).unwrap();
        let kept = st
            .put(msg("sip:ums@ims.lab", "tel:+1", "m1"), true)
            .unwrap();
        let other = st
            .put(msg("sip:ums@ims.lab", "tel:+1", "m2"), true)
            .unwrap();
        st.revoke(&kept).unwrap();
        assert_eq!(st.pending_for("tel:+1"), vec![other.clone()]);
        assert!(st.by_message_id("m1").is_none());
        let hist = st.history("sip:ums@ims.lab", "tel:+1", 0, 10);
        assert_eq!(
            hist.iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m2"]
        );
    }

    #[test]
    fn a_racing_sent_never_overwrites_delivered() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = std::sync::Arc::new(ImStore::open(&db, GroupCommit::new(&db)).unwrap());
        for i in 0..200 {
            let id = format!("r{i}");
            s.put(msg("sip:a@x", "sip:b@x", &id), true).unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = ["sent", "delivered"]
                .into_iter()
                .map(|st| {
                    let (s, b, id) = (s.clone(), barrier.clone(), id.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        s.set_status(&id, st).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(s.by_message_id(&id).unwrap().status, "delivered", "{id}");
        }
    }

    /// sled's background flusher may hold the directory's lock a moment after the last `Db`
    /// is dropped: a reopen right away can fail with "could not acquire lock" (seen in
    /// parallel test runs), so it is retried for up to 2 s.
    fn reopen(dir: &std::path::Path) -> sled::Db {
        for _ in 0..40 {
            if let Ok(db) = sled::open(dir) {
                return db;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        sled::open(dir).unwrap()
    }
}
