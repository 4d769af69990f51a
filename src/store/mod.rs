//! Persistent state in sled, behind typed wrappers so the engine could change in one place.
//!
//! Trees: `subscribers` (IMPI -> JSON [`Subscriber`]), `impu` (canonical public identity ->
//! IMPI), `hss_state` (IMPI -> JSON [`HssState`]: serving S-CSCF, registration state). Writes
//! that an answer depends on (AKA SQN, registration state, provisioning) are on disk before
//! that answer goes out: the writer awaits [`Store::durable`] ([`GroupCommit`]), which runs
//! the fsync off the async threads and shares it between everyone waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::sip::Uri;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// Another process holds the data dir's lock (sled takes an exclusive lock on open).
    #[error(
        "another rcslab is using {0} (it holds the store's lock): stop that lab, or give this \
         one another --data-dir. A running lab answers `rcslab subscriber` and `rcslab trace` \
         through its admin API, when given the same --data-dir"
    )]
    Locked(String),
    /// A stored value could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The input is not acceptable.
    #[error("invalid subscriber: {0}")]
    Invalid(String),
    /// A public identity already belongs to another private identity.
    #[error("{impu} already belongs to {impi}")]
    Conflict {
        /// The identity in question.
        impu: String,
        /// Its current owner.
        impi: String,
    },
}

/// AKA credentials (TS 33.102): K, OPc, AMF in hex and the HSS's SQN counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AkaCredentials {
    /// Subscriber key K, 32 hex digits.
    pub k: String,
    /// OPc, 32 hex digits.
    pub opc: String,
    /// Authentication management field, 4 hex digits.
    pub amf: String,
    /// The next SQN the HSS will use.
    pub sqn: u64,
}

/// One IMS subscription: a private identity with its public identities and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// Private identity (IMPI), e.g. `alice@ims.lab`.
    pub impi: String,
    /// Public identities (IMPUs), canonical form; the first is the default one. They form one
    /// implicit registration set.
    pub impus: Vec<String>,
    /// SIP Digest password.
    pub password: String,
    /// AKA credentials.
    pub aka: AkaCredentials,
    /// Initial filter criteria of the service profile (TS 29.228 Annex B), sent in SAA/PPR.
    #[serde(default)]
    pub ifcs: Vec<crate::profile::InitialFilterCriteria>,
}

/// Registration state of a subscription as the HSS sees it (TS 29.228 §6.1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HssState {
    /// The S-CSCF serving the user, if one is assigned.
    pub scscf: Option<String>,
    /// True while registered.
    pub registered: bool,
}

/// Canonical form of a public identity for lookups (`sip:user@host`, `tel:+number`).
pub fn canonical_identity(s: &str) -> Result<String, StoreError> {
    Uri::parse(s.trim())
        .map(|u| u.aor())
        .map_err(|e| StoreError::Invalid(format!("{s}: {e}")))
}

/// Derives `user@domain` from `sip:user@domain`.
pub fn default_impi(impu: &str) -> Result<String, StoreError> {
    let u = Uri::parse(impu.trim()).map_err(|e| StoreError::Invalid(format!("{impu}: {e}")))?;
    match (u.user(), u.host()) {
        (Some(user), Some(host)) => Ok(format!("{user}@{host}")),
        _ => Err(StoreError::Invalid(format!(
            "{impu}: cannot derive a private identity (need sip:user@domain, or give --impi)"
        ))),
    }
}

/// Group commit over one sled database. Writes go into sled at once (memory and its log
/// buffer); a caller whose answer promises them awaits [`GroupCommit::durable`]. One flush
/// (sled's fsync) runs at a time, on tokio's blocking pool, never on an async worker thread and
/// never under a node's lock; it covers every write made before it started, so callers that
/// arrive while one runs share the next one instead of queueing an fsync each.
///
/// ```text
///   write; ticket = asked+1 ──► flush lock ──► done >= ticket? ──yes──► on disk
///                                                  │ no
///                                  upto = asked; spawn_blocking(flush); done = upto
/// ```
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<CommitInner>,
}

struct CommitInner {
    db: sled::Db,
    /// Tickets handed out (one per durable() call, taken after the caller's writes).
    asked: AtomicU64,
    /// Every ticket up to this one is on disk.
    done: AtomicU64,
    /// Flushes run (for tests and monitoring: fewer than callers under load).
    flushes: AtomicU64,
    /// One flush at a time; a tokio mutex, so waiters yield instead of blocking a thread.
    running: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Group commit for `db`.
    pub fn new(db: &sled::Db) -> GroupCommit {
        GroupCommit {
            inner: Arc::new(CommitInner {
                db: db.clone(),
                asked: AtomicU64::new(0),
                done: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Returns once every write this task made before the call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let c = &self.inner;
        let ticket = c.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = c.running.lock().await;
        if c.done.load(Ordering::SeqCst) >= ticket {
            // A flush that started after our ticket covered us.
            return Ok(());
        }
        // Everyone holding a ticket up to here wrote before this flush starts.
        let upto = c.asked.load(Ordering::SeqCst);
        let db = c.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Corrupt(format!("flush task: {e}")))??;
        c.flushes.fetch_add(1, Ordering::Relaxed);
        c.done.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Flushes run so far.
    pub fn flushes(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }
}

/// The sled database of one lab.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    commit: GroupCommit,
    subscribers: sled::Tree,
    impu: sled::Tree,
    hss_state: sled::Tree,
    /// Decoded subscribers by private identity: the HSS reads one on every UAR, MAR, SAR and
    /// LIR, and decoding its JSON (profile and iFCs) each time was the HSS's largest cost
    /// under registration load. Every write through this type updates or drops the entry;
    /// nothing else writes the tree. Bounded by [`CACHE_MAX`].
    cache: Arc<Mutex<HashMap<String, Arc<Subscriber>>>>,
}

/// Subscribers kept decoded ([`Store`]); past it an arbitrary entry makes room.
const CACHE_MAX: usize = 100_000;

impl Store {
    /// Opens (or creates) the store under `dir`. Fails if another process holds it.
    pub fn open(dir: &std::path::Path) -> Result<Store, StoreError> {
        // sled's default page cache is 1 GiB; a lab's subscriber base needs a few MiB.
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| match &e {
                // sled 0.34 reports a held lock as an I/O error "could not acquire lock on
                // ...: Os { code: 11, kind: WouldBlock }" (flock with LOCK_NB).
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StoreError::Locked(dir.display().to_string())
                }
                _ => StoreError::Sled(e),
            })?;
        Ok(Store {
            subscribers: db.open_tree("subscribers")?,
            impu: db.open_tree("impu")?,
            hss_state: db.open_tree("hss_state")?,
            cache: Arc::default(),
            commit: GroupCommit::new(&db),
            db,
        })
    }

    /// The group commit of this database (T-IM's store shares it).
    pub fn commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Returns once every write made before the call is on disk ([`GroupCommit`]); for async
    /// callers about to answer.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }

    /// The underlying database (other nodes keep their own trees in it, e.g. T-IM's messages).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Writes everything to disk, blocking the calling thread (command-line tools, shutdown;
    /// async code awaits [`Store::durable`]).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Inserts or replaces a subscriber (not flushed: call [`Store::flush`]).
    pub fn put_subscriber(&self, sub: &Subscriber) -> Result<(), StoreError> {
        if sub.impus.is_empty() {
            return Err(StoreError::Invalid("no public identity".into()));
        }
        if sub.impi.is_empty() || sub.impi.contains(char::is_whitespace) {
            return Err(StoreError::Invalid(format!(
                "bad private identity '{}'",
                sub.impi
            )));
        }
        for hex_field in [
            (&sub.aka.k, 16, "k"),
            (&sub.aka.opc, 16, "opc"),
            (&sub.aka.amf, 2, "amf"),
        ] {
            match hex::decode(hex_field.0) {
                Ok(b) if b.len() == hex_field.1 => {}
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "{} must be {} hex digits",
                        hex_field.2,
                        hex_field.1 * 2
                    )))
                }
            }
        }
        let mut canon = Vec::with_capacity(sub.impus.len());
        for i in &sub.impus {
            let c = canonical_identity(i)?;
            if let Some(owner) = self.impu.get(c.as_bytes())? {
                let owner = String::from_utf8_lossy(&owner).to_string();
                if owner != sub.impi {
                    return Err(StoreError::Conflict {
                        impu: c,
                        impi: owner,
                    });
                }
            }
            canon.push(c);
        }
        let mut stored = sub.clone();
        stored.impus = canon;
        // Drop index entries of identities this subscriber no longer has.
        if let Some(old) = self.subscriber(&sub.impi)? {
            for i in old.impus.iter().filter(|i| !stored.impus.contains(i)) {
                self.impu.remove(i.as_bytes())?;
            }
        }
        let json = serde_json::to_vec(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write_record(&stored.impi, Some(json))?;
        for i in &stored.impus {
            self.impu.insert(i.as_bytes(), stored.impi.as_bytes())?;
        }
        Ok(())
    }

    /// A subscriber by private identity.
    pub fn subscriber(&self, impi: &str) -> Result<Option<Subscriber>, StoreError> {
        Ok(self.subscriber_shared(impi)?.map(|s| (*s).clone()))
    }

    /// A subscriber by private identity, shared with the cache (no copy: the HSS reads one
    /// per Cx request).
    pub fn subscriber_shared(&self, impi: &str) -> Result<Option<Arc<Subscriber>>, StoreError> {
        // Misses read the tree under the cache's lock, and writers hold it while they write,
        // so a reader cannot put back a value a writer has just replaced.
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| StoreError::Corrupt("cache lock".into()))?;
        if let Some(s) = cache.get(impi) {
            return Ok(Some(s.clone()));
        }
        match self.subscribers.get(impi.as_bytes())? {
            Some(v) => {
                let sub: Arc<Subscriber> = Arc::new(
                    serde_json::from_slice(&v)
                        .map_err(|e| StoreError::Corrupt(format!("{impi}: {e}")))?,
                );
                if cache.len() >= CACHE_MAX {
                    if let Some(k) = cache.keys().next().cloned() {
                        cache.remove(&k);
                    }
                }
                cache.insert(impi.to_string(), sub.clone());
                Ok(Some(sub))
            }
            None => Ok(None),
        }
    }

    /// Writes (Some) or removes (None) a subscriber's record, keeping the cache in step.
    fn write_record(&self, impi: &str, json: Option<Vec<u8>>) -> Result<(), StoreError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| StoreError::Corrupt("cache lock".into()))?;
        cache.remove(impi);
        match json {
            Some(j) => self.subscribers.insert(impi.as_bytes(), j)?,
            None => self.subscribers.remove(impi.as_bytes())?,
        };
        Ok(())
    }

    /// The private identity owning a public identity.
    pub fn impi_of(&self, impu: &str) -> Result<Option<String>, StoreError> {
        let Ok(c) = canonical_identity(impu) else {
            return Ok(None);
        };
        Ok(self
            .impu
            .get(c.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).to_string()))
    }

    /// A subscriber by private or public identity.
    pub fn find(&self, id: &str) -> Result<Option<Subscriber>, StoreError> {
        Ok(self.find_shared(id)?.map(|s| (*s).clone()))
    }

    /// [`Store::find`] without a copy.
    pub fn find_shared(&self, id: &str) -> Result<Option<Arc<Subscriber>>, StoreError> {
        if let Some(s) = self.subscriber_shared(id)? {
            return Ok(Some(s));
        }
        match self.impi_of(id)? {
            Some(impi) => self.subscriber_shared(&impi),
            None => Ok(None),
        }
    }

    /// All subscribers, ordered by private identity.
    pub fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let mut out = Vec::new();
        for kv in self.subscribers.iter() {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// Removes a subscriber (by private or public identity) and its state; returns it.
    pub fn remove(&self, id: &str) -> Result<Option<Subscriber>, StoreError> {
        let Some(sub) = self.find(id)? else {
            return Ok(None);
        };
        for i in &sub.impus {
            self.impu.remove(i.as_bytes())?;
        }
        self.write_record(&sub.impi, None)?;
        self.hss_state.remove(sub.impi.as_bytes())?;
        Ok(Some(sub))
    }

    /// Stores a new SQN for a subscriber (TS 33.102: never reuse an SQN). Not yet on disk: the
    /// caller awaits [`Store::durable`] before it hands out a vector built on it.
    pub fn set_sqn(&self, impi: &str, sqn: u64) -> Result<(), StoreError> {
        if let Some(mut s) = self.subscriber(impi)? {
            s.aka.sqn = sqn;
            let json = serde_json::to_vec(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.write_record(impi, Some(json))?;
        }
        Ok(())
    }

    /// Registration state of a subscription.
    pub fn hss_state(&self, impi: &str) -> Result<HssState, StoreError> {
        match self.hss_state.get(impi.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(HssState::default()),
        }
    }

    /// Updates the registration state of a subscription.
    pub fn set_hss_state(&self, impi: &str, st: &HssState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(st).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.hss_state.insert(impi.as_bytes(), json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(impi: &str, impus: &[&str]) -> Subscriber {
        Subscriber {
            impi: impi.into(),
            impus: impus.iter().map(|s| s.to_string()).collect(),
            password: "pw".into(),
            aka: AkaCredentials {
                k: "465b5ce8b199b49faa5f0a2ee238a6bc".into(),
                opc: "cd63cb71954a9f4e48a5994e37a02baf".into(),
                amf: "8000".into(),
                sqn: 32,
            },
            ifcs: Vec::new(),
        }
    }

    #[test]
    fn subscribers_survive_reopen_and_are_found_by_any_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let st = Store::open(dir.path()).expect("open");
            st.put_subscriber(&sub("u1@ims.lab", &["sip:u1@IMS.lab", "tel:+1-555-0001"]))
                .expect("put");
            st.flush().expect("flush");
        }
        let st = Store::open(dir.path()).expect("reopen");
        let s = st.find("sip:u1@ims.lab").expect("find").expect("present");
        assert_eq!(s.impi, "u1@ims.lab");
        assert_eq!(s.impus, ["sip:u1@ims.lab", "tel:+15550001"]);
        assert!(st.find("tel:+15550001").expect("find").is_some());
        assert!(st.remove("u1@ims.lab").expect("remove").is_some());
        assert!(st.find("sip:u1@ims.lab").expect("find").is_none());
    }

    #[test]
    fn reads_see_every_write_through_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Store::open(dir.path()).expect("open");
        st.put_subscriber(&sub("u1@ims.lab", &["sip:u1@ims.lab", "tel:+1"]))
            .expect("put");
        // Cached now (by IMPI, found by IMPU).
        assert!(st
            .find("tel:+1")
            .expect("find")
            .is_some_and(|s| s.aka.sqn != 42));
        st.set_sqn("u1@ims.lab", 42).expect("sqn");
        assert_eq!(
            st.find_shared("sip:u1@ims.lab")
                .expect("find")
                .map(|s| s.aka.sqn),
            Some(42)
        );
        // A changed identity set moves the index and the cached copy.
        st.put_subscriber(&sub("u1@ims.lab", &["sip:u1@ims.lab"]))
            .expect("put");
        assert!(st.find("tel:+1").expect("find").is_none());
        assert_eq!(
            st.subscriber("u1@ims.lab")
                .expect("get")
                .map(|s| s.impus.len()),
            Some(1)
        );
        // A clone of the store shares the cache: its removal is seen here.
        let other = st.clone();
        assert!(other.remove("u1@ims.lab").expect("remove").is_some());
        assert!(st.subscriber("u1@ims.lab").expect("get").is_none());
    }

    #[tokio::test]
    async fn group_commit_shares_flushes_and_what_it_acknowledged_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let st = Store::open(dir.path()).expect("open");
            for i in 0..64 {
                let impi = format!("g{i}@ims.lab");
                st.put_subscriber(&sub(&impi, &[&format!("sip:{impi}")]))
                    .expect("put");
            }
            // 64 callers at once: the first flushes alone, the other 63 share the second.
            let all = futures_util::future::join_all((0..64).map(|_| st.durable())).await;
            assert!(all.iter().all(|r| r.is_ok()));
            assert_eq!(st.commit().flushes(), 2);
        }
        let st = Store::open(dir.path()).expect("reopen");
        assert_eq!(st.subscribers().expect("list").len(), 64);
    }

    #[test]
    fn identity_conflicts_and_bad_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Store::open(dir.path()).expect("open");
        st.put_subscriber(&sub("a@ims.lab", &["sip:a@ims.lab"]))
            .expect("put");
        assert!(matches!(
            st.put_subscriber(&sub("b@ims.lab", &["sip:a@ims.lab"])),
            Err(StoreError::Conflict { .. })
        ));
        let mut bad = sub("c@ims.lab", &["sip:c@ims.lab"]);
        bad.aka.k = "zz".into();
        assert!(matches!(
            st.put_subscriber(&bad),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(default_impi("sip:u1@ims.lab").expect("impi"), "u1@ims.lab");
        assert!(default_impi("tel:+1555").is_err());
    }
}
