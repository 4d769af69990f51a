//! The content server's index, in sled: `content.files` (file id -> [`FileRecord`] as JSON)
//! and `content.tids` (uploader NUL tid -> file id: RCC.07's transaction id is the uploader's
//! own, so one user's tid never reaches another's upload). The bytes live on disk beside it
//! ([`super::ContentServer`]); a record is flushed before the answer that reports it.

use serde::{Deserialize, Serialize};

use crate::store::{GroupCommit, StoreError};

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Bytes are arriving, or a cut upload waits to be resumed (until `until`).
    Uploading,
    /// Whole: downloadable until `until`.
    Ready,
    /// Expired and deleted; the record stays until `until` so that those who had it get 404
    /// (everyone else 403).
    Expired,
}

/// The thumbnail of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbRecord {
    /// Bytes.
    pub size: u64,
    /// Its Content-Type.
    pub content_type: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// One uploaded (or uploading) file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// 128 random bits, hex: the file's name on disk and in its URL.
    pub id: String,
    /// The uploader's transaction id.
    pub tid: String,
    /// The uploader's identity (`sip:alice@ims.lab`; `anonymous` with auth off).
    pub owner: String,
    /// The file name the client gave.
    pub name: String,
    /// Its Content-Type.
    pub content_type: String,
    /// Where it is in its life.
    pub state: FileState,
    /// Its whole size, once known (the multipart part ended, or a PUT's Content-Range said).
    pub size: Option<u64>,
    /// Lowercase hex SHA-256 of the whole file, once it is whole.
    pub sha256: Option<String>,
    /// The thumbnail, if one came whole.
    pub thumb: Option<ThumbRecord>,
    /// Who besides the uploader may download it (`POST /grants`).
    pub grants: Vec<String>,
    /// Unix seconds: when the upload began.
    pub created: u64,
    /// Unix seconds: Uploading — resume until then; Ready — the file-info's `until`;
    /// Expired — the record goes then.
    pub until: u64,
}

impl FileRecord {
    /// Whether `user` may download it: its uploader or one it was granted to.
    pub fn allows(&self, user: &str) -> bool {
        self.owner.eq_ignore_ascii_case(user)
            || self.grants.iter().any(|g| g.eq_ignore_ascii_case(user))
    }
}

/// The two trees.
#[derive(Clone)]
pub struct Index {
    files: sled::Tree,
    tids: sled::Tree,
    commit: GroupCommit,
}

fn tid_key(owner: &str, tid: &str) -> Vec<u8> {
    [owner.as_bytes(), &[0], tid.as_bytes()].concat()
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Index {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db, commit: GroupCommit) -> Result<Index, StoreError> {
        Ok(Index {
            files: db.open_tree("content.files")?,
            tids: db.open_tree("content.tids")?,
            commit,
        })
    }

    /// The record of `id`.
    pub fn get(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        match self.files.get(id.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// The record of `owner`'s transaction `tid`.
    pub fn by_tid(&self, owner: &str, tid: &str) -> Result<Option<FileRecord>, StoreError> {
        match self.tids.get(tid_key(owner, tid))? {
            Some(id) => self.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Writes `r` (not yet flushed: [`Index::durable`]).
    pub fn put(&self, r: &FileRecord) -> Result<(), StoreError> {
        let v = serde_json::to_vec(r).map_err(corrupt)?;
        self.files.insert(r.id.as_bytes(), v)?;
        self.tids
            .insert(tid_key(&r.owner, &r.tid), r.id.as_bytes())?;
        Ok(())
    }

    /// Removes `r` and its tid.
    pub fn remove(&self, r: &FileRecord) -> Result<(), StoreError> {
        self.files.remove(r.id.as_bytes())?;
        if self
            .tids
            .get(tid_key(&r.owner, &r.tid))?
            .is_some_and(|v| v.as_ref() == r.id.as_bytes())
        {
            self.tids.remove(tid_key(&r.owner, &r.tid))?;
        }
        Ok(())
    }

    /// Every record (the sweep, start-up counts).
    pub fn all(&self) -> impl Iterator<Item = FileRecord> + '_ {
        self.files
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
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
    async fn records_by_id_and_by_tid_and_their_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let ix = Index::open(store.db(), store.commit().clone()).unwrap();
        let r = FileRecord {
            id: "ab".into(),
            tid: "t1".into(),
            owner: "sip:alice@ims.lab".into(),
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            state: FileState::Ready,
            size: Some(3),
            sha256: Some("00".into()),
            thumb: None,
            grants: vec!["sip:bob@ims.lab".into()],
            created: 1,
            until: 2,
        };
        ix.put(&r).unwrap();
        ix.durable().await.unwrap();
        assert_eq!(ix.get("ab").unwrap().as_ref(), Some(&r));
        assert_eq!(
            ix.by_tid("sip:alice@ims.lab", "t1").unwrap().as_ref(),
            Some(&r)
        );
        assert_eq!(ix.by_tid("sip:bob@ims.lab", "t1").unwrap(), None);
        assert!(r.allows("sip:BOB@ims.lab") && r.allows("sip:alice@ims.lab"));
        assert!(!r.allows("sip:carol@ims.lab"));
        assert_eq!(ix.all().count(), 1);
        ix.remove(&r).unwrap();
        assert_eq!(ix.get("ab").unwrap(), None);
        assert_eq!(ix.by_tid("sip:alice@ims.lab", "t1").unwrap(), None);
    }
}
