//! The UMS's sled trees: `ums.templates` (template id -> [`Template`] as JSON) and
//! `ums.messages` (message id -> [`Message`] as JSON, with every recipient's state). A
//! template or message is on disk, flushed, before the 201/202 that tells of it.

use crate::store::{GroupCommit, StoreError};

use super::core::Message;
use super::template::Template;

/// The gateway's persistent state.
#[derive(Clone)]
pub struct UmsStore {
    templates: sled::Tree,
    messages: sled::Tree,
    db: sled::Db,
    commit: GroupCommit,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl UmsStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db, commit: GroupCommit) -> Result<UmsStore, StoreError> {
        Ok(UmsStore {
            templates: db.open_tree("ums.templates")?,
            messages: db.open_tree("ums.messages")?,
            db: db.clone(),
            commit,
        })
    }

    /// A fresh number for a message id (never reused, even after a crash).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?.saturating_add(1))
    }

    /// Every template and message kept (at start-up); records that do not decode are skipped.
    pub fn load(&self) -> (Vec<Template>, Vec<Message>) {
        let t = self
            .templates
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        let m = self
            .messages
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        (t, m)
    }

    /// Writes a template (not yet flushed).
    pub fn put_template(&self, t: &Template) -> Result<(), StoreError> {
        self.templates
            .insert(t.id.as_bytes(), serde_json::to_vec(t).map_err(corrupt)?)?;
        Ok(())
    }

    /// Writes a message (not yet flushed).
    pub fn put_message(&self, m: &Message) -> Result<(), StoreError> {
        self.messages
            .insert(m.id.as_bytes(), serde_json::to_vec(m).map_err(corrupt)?)?;
        Ok(())
    }

    /// Forgets a message.
    pub fn remove_message(&self, id: &str) -> Result<(), StoreError> {
        self.messages.remove(id.as_bytes())?;
        Ok(())
    }

    /// Returns once every write made before the call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }
}
