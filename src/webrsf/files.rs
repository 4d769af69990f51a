//! Files for web users (GSMA RCC.07 §3.2.5 "File Transfer via HTTP", resource names after
//! OMA RESTful Network API for File Transfer 1.0): the gateway is the web user's RCS client
//! here too. A file the page sends is streamed to a temporary file under the gateway's data
//! directory (never held whole in memory, refused with 413 past the content server's
//! `max_file_size`), then the user's UE uploads it to CS with the user's own Digest
//! credentials, with a thumbnail for a JPEG or PNG, and sends the file-info as a chat
//! message (1-1 or to a group); the temporary file goes in every case.
//!
//! A file-info that arrives ([`crate::ue::chat::ChatEvent::FileOffered`]: the UE does not
//! download for web users) is remembered per user under a random id, and the page gets
//! its name, size, type and two gateway URLs, `FileTransfer/{fileId}` and
//! `FileTransfer/{fileId}/Thumbnail`, which stream from CS with the user's credentials (a
//! `Range` passed on). An id is only in the table of the user it was offered to (or who
//! sent it), so nobody else can name it (404); CS checks the grant once more.
//!
//! | SIP / MSRP / HTTP (IMS side) | web side |
//! |---|---|
//! | (client) `POST FileTransfer?to=PEER&name=NAME`, body = the file | upload to CS (Digest as the user), file-info as a chat message (INVITE or MSRP SEND) |
//! | (client) `POST Group/{id}/FileTransfer?name=NAME` | the same, to the group's conference URI |
//! | file-info message from a peer | event `messageNotification` `waiting` with `file`; `Chat/Media` has it |
//! | file-info message in a group | event `chatMessageNotification` with `file`; IMDN delivered by the UE |
//! | (client) `GET FileTransfer/{fileId}[/Thumbnail]` | `GET /files/ID[/thumbnail]` at CS, streamed back |
//! | IMDN about our file | event `messageStatusNotification`, as for a text |

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{Gateway, InstanceState, MessageRecord, WebError, WebUser};
use crate::fthttp::FileInfo;
use crate::im::rcs;
use crate::ue::ft::FtError;

/// Uploads one web user may have under way at once (one more: 429).
pub const MAX_UPLOADS_PER_USER: usize = 4;
/// Uploads the gateway has under way at once, over all users (one more: 503): with CS's
/// `max_file_size`, what its data dir may hold of them.
pub const MAX_UPLOADS: usize = 64;
/// Files (offered to the user or sent by them) whose URLs a user keeps; past it the oldest go.
pub(super) const KEEP_FILES: usize = super::limits::KEEP_OURS;

/// Where web users' files go: set by the lab ([`Gateway::set_files`]).
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// The content server (`http://HOST:PORT`), as the lab's UEs use it.
    pub content_server: String,
    /// The largest file: CS's `[content] max_file_size` (larger: 413).
    pub max_file_size: u64,
    /// Where uploads wait while they go on to CS (emptied at start).
    pub dir: PathBuf,
    /// How long a file upload's body may take (CS's `[content] body_timeout_secs`), in place
    /// of `[http] body_timeout_ms`.
    pub upload_timeout: std::time::Duration,
}

/// A user's files by id (the last segment of their `FileTransfer/{fileId}` URL).
#[derive(Debug, Default)]
pub(super) struct Files {
    by_id: HashMap<String, FileInfo>,
    order: VecDeque<String>,
}

impl Files {
    fn add(&mut self, info: FileInfo) -> String {
        let id = rcs::new_id()[..16].to_string();
        self.by_id.insert(id.clone(), info);
        self.order.push_back(id.clone());
        while self.order.len() > KEEP_FILES {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        id
    }
}

/// A file the page sent, on disk until it went on to CS: dropping it removes it.
pub(super) struct Upload {
    dir: PathBuf,
    path: PathBuf,
    size: u64,
    _slot: UploadSlot,
}

impl Upload {
    /// The file (named as the page named it, made safe).
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One of a user's [`MAX_UPLOADS_PER_USER`] upload slots and one of the gateway's
/// [`MAX_UPLOADS`]; dropping it frees both.
pub(super) struct UploadSlot(Arc<WebUser>, Arc<AtomicUsize>);

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.0.uploads.fetch_sub(1, Ordering::SeqCst);
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a failed upload to CS (or a failed send) means to the page.
fn ft_error(e: FtError) -> WebError {
    match e {
        FtError::Refused { status: 413, .. } | FtError::TooLarge { .. } => {
            WebError::TooLarge("the content server refused the file as too large".into())
        }
        FtError::Read { .. } | FtError::Save { .. } => {
            WebError::Unavailable(format!("the gateway could not keep the file: {e}"))
        }
        e => WebError::BadGateway(format!("the upload to the content server failed: {e}")),
    }
}

impl Gateway {
    /// Where web users' files go (the lab calls it at start); leftovers of an earlier run's
    /// uploads are removed.
    pub fn set_files(&self, s: FileSettings) {
        let _ = std::fs::remove_dir_all(&s.dir);
        if let Ok(mut g) = self.files.lock() {
            *g = Some(s);
        }
    }

    /// How long a file upload's body may take, once files are set up.
    pub fn upload_timeout(&self) -> Option<std::time::Duration> {
        self.files
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.upload_timeout))
    }

    fn file_settings(&self) -> Result<FileSettings, WebError> {
        self.files
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| {
                WebError::NotImplemented("this gateway has no content server for files".into())
            })
    }

    /// Takes the body of a `POST …FileTransfer` into a temporary file named `name` (made
    /// safe), within the content server's size limit (`declared`: the Content-Length, checked
    /// before anything is read) and [`MAX_UPLOADS_PER_USER`].
    pub(super) async fn receive_upload(
        &self,
        user: &Arc<WebUser>,
        name: &str,
        declared: Option<u64>,
        body: Body,
    ) -> Result<Upload, WebError> {
        let s = self.file_settings()?;
        let max = s.max_file_size;
        if declared.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        if user.uploads.fetch_add(1, Ordering::SeqCst) >= MAX_UPLOADS_PER_USER {
            user.uploads.fetch_sub(1, Ordering::SeqCst);
            return Err(WebError::Busy(format!(
                "{MAX_UPLOADS_PER_USER} uploads of yours are under way already"
            )));
        }
        if self.uploads.fetch_add(1, Ordering::SeqCst) >= MAX_UPLOADS {
            self.uploads.fetch_sub(1, Ordering::SeqCst);
            user.uploads.fetch_sub(1, Ordering::SeqCst);
            return Err(WebError::Unavailable(format!(
                "{MAX_UPLOADS} uploads are under way at the gateway; try again soon"
            )));
        }
        let slot = UploadSlot(user.clone(), self.uploads.clone());
        let dir = s.dir.join(&rcs::new_id()[..16]);
        let path = dir.join(crate::ue::ft::safe_file_name(name));
        let keep = |e: std::io::Error| {
            tracing::warn!(dir = %dir.display(), error = %e, "web upload cannot be kept");
            WebError::Unavailable("the gateway cannot keep the file now".into())
        };
        tokio::fs::create_dir_all(&dir).await.map_err(keep)?;
        // From here on the directory goes with `up`, whatever happens.
        let mut up = Upload {
            dir: dir.clone(),
            path: path.clone(),
            size: 0,
            _slot: slot,
        };
        let mut f = tokio::fs::File::create(&path).await.map_err(keep)?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if crate::http_server::is_body_timeout(&e) {
                    WebError::RequestTimeout("the file did not arrive in time".into())
                } else {
                    WebError::BadRequest(format!("the upload was cut: {e}"))
                }
            })?;
            up.size += chunk.len() as u64;
            if up.size > max {
                return Err(too_large(max));
            }
            f.write_all(&chunk).await.map_err(keep)?;
        }
        f.flush().await.map_err(keep)?;
        if declared.is_some_and(|n| n != up.size) {
            return Err(WebError::BadRequest(format!(
                "the upload has {} bytes where Content-Length said {}",
                up.size,
                declared.unwrap_or_default()
            )));
        }
        Ok(up)
    }

    /// Uploads `up` to CS as `user` and sends its file-info to `to` (a peer or a group's
    /// conference URI): the message id and the file-info.
    async fn send_upload(
        &self,
        user: &WebUser,
        to: &str,
        up: Upload,
    ) -> Result<(String, FileInfo), WebError> {
        let s = self.file_settings()?;
        let sent = user
            .chat
            .send_file(to, up.path(), &s.content_server)
            .await
            .map_err(ft_error)?;
        drop(up);
        if sent.message_id.is_empty() {
            return Err(WebError::Unavailable("the chat client stopped".into()));
        }
        Ok((sent.message_id, sent.info))
    }

    /// `POST FileTransfer?to=PEER`: the file to a peer, in the user's chat instance with them.
    /// The instance id, the message id and the file as the page sees it.
    pub(super) async fn send_file(
        &self,
        user: &WebUser,
        peer: &str,
        up: Upload,
    ) -> Result<(String, String, Value), WebError> {
        let id = user.instance_for(peer, InstanceState::Active);
        let inst = self.ready_to_send(user, &id)?;
        let (mid, info) = self.send_upload(user, &inst.peer, up).await?;
        let file = self.remember_file(user, info);
        let name = file["name"].as_str().unwrap_or_default().to_string();
        self.record_sent(user, &id, &mid, &name, Some(file.clone()));
        Ok((id, mid, file))
    }

    /// `POST Group/{id}/FileTransfer`: the file to a group.
    pub(super) async fn send_group_file(
        &self,
        user: &WebUser,
        group_id: &str,
        up: Upload,
    ) -> Result<(String, Value), WebError> {
        let g = self.group(user, group_id)?;
        let (mid, info) = self.send_upload(user, &g.uri, up).await?;
        let file = self.remember_file(user, info);
        let name = file["name"].as_str().unwrap_or_default().to_string();
        self.record_group_sent(user, group_id, &mid, &name, Some(file.clone()));
        Ok((mid, file))
    }

    /// Keeps `info` for `user` and answers the file as the page sees it.
    fn remember_file(&self, user: &WebUser, info: FileInfo) -> Value {
        let id = user.with(|s| s.files.add(info.clone()));
        self.file_json(user, &id, &info)
    }

    /// A file as the page sees it: `{"file_id","name","size","content_type","url","until",
    /// "thumbnail": {"url","size","content_type"} | null}`, the URLs the gateway's.
    pub(super) fn file_json(&self, user: &WebUser, id: &str, info: &FileInfo) -> Value {
        let url = format!("{}/FileTransfer/{id}", self.user_url(&user.user_id));
        json!({
            "file_id": id,
            "name": info.file.name,
            "size": info.file.size,
            "content_type": info.file.content_type,
            "until": info.file.until,
            "url": url,
            "thumbnail": info.thumbnail.as_ref().map(|t| json!({
                "url": format!("{url}/Thumbnail"),
                "size": t.size,
                "content_type": t.content_type,
            })),
        })
    }

    /// The file-info of `user`'s file `id` (404 when it is not theirs).
    pub(super) fn file_of(&self, user: &WebUser, id: &str) -> Result<FileInfo, WebError> {
        user.with(|s| s.files.by_id.get(id).cloned())
            .ok_or_else(|| WebError::NotFound(format!("no file '{id}'")))
    }

    /// A file offered to the user (the UE's `FileOffered`): 1-1 like a text (waiting in
    /// `Chat/Media`, delivered when the page acknowledges it), in a group on the channel at
    /// once (delivered by the gateway, as a group's text).
    pub(super) fn on_file_offered(
        &self,
        user: &WebUser,
        from: &str,
        group: Option<&str>,
        info: FileInfo,
        message_id: &str,
    ) {
        let file = self.remember_file(user, info);
        let name = file["name"].as_str().unwrap_or_default().to_string();
        if let Some(g) = group {
            self.on_group_message(user, g, from, &name, message_id, Some(file));
            if !message_id.is_empty() {
                user.chat.delivered(message_id);
            }
            return;
        }
        let id = user.instance_for(from, InstanceState::Active);
        let sender = self.web_id(from);
        user.add_incoming_file(&id, message_id, &sender, &name, file.clone());
        self.emit(
            user,
            "messageNotification",
            &id,
            json!({
                "status": "waiting",
                "message_id": message_id,
                "sender": sender,
                "content_type": crate::rcs::FT_HTTP_TYPE,
                "file": file,
            }),
        );
    }
}

impl WebUser {
    /// Records a received file in instance `id` and in `Chat/Media`.
    fn add_incoming_file(&self, id: &str, message_id: &str, sender: &str, name: &str, file: Value) {
        self.add_incoming_with(
            id,
            message_id,
            sender,
            name,
            None,
            crate::rcs::FT_HTTP_TYPE,
            Some(file),
        );
    }
}

/// A `MessageRecord` for a message of ours just sent.
pub(super) fn sent_record(
    user: &WebUser,
    mid: &str,
    text: &str,
    file: Option<Value>,
) -> MessageRecord {
    MessageRecord {
        message_id: mid.to_string(),
        incoming: false,
        sender: user.user_id.clone(),
        text: text.to_string(),
        status: "sent".into(),
        datetime: rcs::now_datetime(),
        file,
    }
}

fn too_large(max: u64) -> WebError {
    WebError::TooLarge(format!(
        "the file is larger than {max} bytes, the most the content server takes"
    ))
}
