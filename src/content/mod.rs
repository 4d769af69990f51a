//! CS, the FT content server (GSMA RCC.07 §3.5.4.8 "File Transfer via HTTP", the server
//! rcsjta's HttpUploadManager and HttpDownloadManager talk to): clients upload a file (and
//! its thumbnail) with `multipart/form-data`, get back a file-info document
//! ([`crate::fthttp::file_info`]) to put in a chat message, and recipients download from the
//! URL in it, with `Range` to resume; a cut upload resumes with `get_upload_info` and a PUT
//! with `Content-Range`. Its own HTTP port (`[nodes] content`, 8083), its own bounds
//! (`[content]`).
//!
//! | method | path | what | answers |
//! |---|---|---|---|
//! | POST | `/` (empty body) | RCC.07's first, empty POST | 401 Digest challenge; 204 once authenticated (or with `[content] auth = false`) |
//! | POST | `/` `multipart/form-data` `tid`, `Thumbnail`?, `File` | upload | 200 file-info XML; 400 bad multipart; 413 over a limit; 503 too many uploads; 507 no room |
//! | GET | `/?tid=T&get_upload_info` | what arrived of upload T | 200 `file-resume-info`; 404 no such tid (of this user) |
//! | GET | `/?tid=T&get_download_info` | the file-info of upload T | 200 file-info; 409 not complete; 404 |
//! | PUT | `/upload/{tid}` + `Content-Range: bytes N-M/TOTAL` | the rest of a cut upload | 200 file-info when whole, 204 when more is due; 416 a gap; 404 |
//! | GET | `/files/{id}`, `/files/{id}/thumbnail` (+ `Range`) | download | 200 / 206; 403 not the uploader nor a recipient, or no such file; 404 expired; 416 |
//! | POST | `/grants` `{"file","users":[..]}` + `Authorization: Bearer SECRET` | who may download (the messaging servers call it) | 200 `{"file","grants"}`; 401; 404 |
//!
//! Authentication (RCC.07 §3.5.4.8.2): HTTP Digest (RFC 7616, MD5, qop=auth) with the IMS
//! private identity and password, realm the home domain; the HA1 comes from the HSS over Cx
//! (MAR, SIP Digest scheme, as the S-CSCF asks it), as `content.<domain>`. An unknown user and
//! a wrong password get the same 401. Access: the uploader and the users granted through
//! `POST /grants`; anyone else gets 403 with one body whether or not the file exists.
//!
//! Storage: the bytes in `<dir>/<id>` (and `<id>.thumb`), streamed in and out through bounded
//! buffers; the index in sled ([`index`]), flushed before the answer that depends on it;
//! SHA-256 per file. Expiry: each file's `until`; the sweep deletes expired files and leaves
//! a tombstone (404 for those who had access) that goes after another validity period.

mod digest;
mod download;
mod error;
pub mod grant_client;
mod grants;
mod http;
pub mod index;
mod record;
mod upload;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ContentSection;
use crate::diameter::client::DiameterClient;
use crate::diameter::codec::{Message, DIAMETER_COMMAND_UNSUPPORTED};
use crate::diameter::peer::{BoxFuture, DiameterHandler, PeerInfo};
use crate::http_server::HttpLimits;
use crate::store::{GroupCommit, StoreError};
use crate::trace::Trace;

pub use error::ContentError;
pub use grant_client::{GrantClient, GrantError, GrantSettings};
pub use index::{FileRecord, FileState};

use digest::DigestCore;
use index::Index;

/// Opens the content server's Cx link to the HSS. Called at the first request that needs an
/// HA1, not at start: a lab whose users never send files sees no Diameter traffic from CS.
pub type HssConnector = Box<dyn Fn() -> DiameterClient + Send + Sync>;

/// How long a request waits for the Cx link to open (bounded like a Diameter connect).
const HSS_CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The token file of the grant secret when `[content] grant_secret` is empty.
pub const GRANT_TOKEN_FILE: &str = "grants.token";

/// The content server's settings (from `[content]`).
#[derive(Debug, Clone)]
pub struct ContentSettings {
    /// The home domain: the Digest realm, and where bare usernames belong.
    pub domain: String,
    /// Our Diameter Origin-Host (MAR's).
    pub origin_host: String,
    /// See [`ContentSection::auth`].
    pub auth: bool,
    /// See [`ContentSection::max_file_size`].
    pub max_file_size: u64,
    /// See [`ContentSection::max_thumbnail_size`].
    pub max_thumbnail_size: u64,
    /// See [`ContentSection::validity_secs`].
    pub validity: Duration,
    /// See [`ContentSection::sweep_secs`].
    pub sweep: Duration,
    /// See [`ContentSection::pending_secs`].
    pub pending: Duration,
    /// See [`ContentSection::max_files`].
    pub max_files: usize,
    /// See [`ContentSection::max_pending_uploads`].
    pub max_pending: usize,
    /// See [`ContentSection::max_grants_per_file`].
    pub max_grants: usize,
    /// See [`ContentSection::max_nonces`].
    pub max_nonces: usize,
    /// See [`ContentSection::nonce_secs`].
    pub nonce_lifetime: Duration,
    /// The bearer secret of `POST /grants`.
    pub grant_secret: String,
    /// See [`ContentSection::public_url`].
    pub public_url: String,
}

impl ContentSettings {
    /// From `[content]`, for `domain`, with the grant secret decided by the caller.
    pub fn from_section(s: &ContentSection, domain: &str, grant_secret: String) -> Self {
        ContentSettings {
            domain: domain.to_string(),
            origin_host: format!("content.{domain}"),
            auth: s.auth,
            max_file_size: s.max_file_size,
            max_thumbnail_size: s.max_thumbnail_size,
            validity: Duration::from_secs(s.validity_secs),
            sweep: Duration::from_secs(s.sweep_secs),
            pending: Duration::from_secs(s.pending_secs),
            max_files: s.max_files,
            max_pending: s.max_pending_uploads,
            max_grants: s.max_grants_per_file,
            max_nonces: s.max_nonces,
            nonce_lifetime: Duration::from_secs(s.nonce_secs),
            grant_secret,
            public_url: s.public_url.trim_end_matches('/').to_string(),
        }
    }
}

/// Why the content server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ContentStartError {
    /// The files directory cannot be made.
    #[error("cannot make the content directory {dir}: {source}")]
    Dir {
        /// Which.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The index cannot be opened.
    #[error("cannot open the content index: {0}")]
    Store(#[from] StoreError),
}

/// The running content server.
pub struct ContentServer {
    settings: ContentSettings,
    dir: PathBuf,
    index: Index,
    connect_hss: Option<HssConnector>,
    hss: OnceLock<DiameterClient>,
    digest: Mutex<DigestCore>,
    /// Files in the index (every state): bounded by `max_files`.
    records: AtomicUsize,
    /// Uploads not yet whole (being written or waiting to be resumed): bounded by `max_pending`.
    pending: Mutex<HashSet<String>>,
    /// Files a request is writing right now (one writer per file).
    active: Mutex<HashSet<String>>,
    trace: Trace,
    local: OnceLock<SocketAddr>,
    session_seq: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An RFC 3339 UTC date-time for unix seconds (the file-info's `until`).
pub(crate) fn rfc3339(secs: u64) -> String {
    crate::presence::pidf::timestamp(UNIX_EPOCH + Duration::from_secs(secs))
}

impl ContentServer {
    /// A content server keeping files in `dir` and its index in `db`; `connect_hss` opens its
    /// Cx link (needed when `settings.auth`) when it is first needed.
    pub fn new(
        settings: ContentSettings,
        dir: &Path,
        db: &sled::Db,
        commit: GroupCommit,
        connect_hss: Option<HssConnector>,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<ContentServer>, ContentStartError> {
        std::fs::create_dir_all(dir).map_err(|source| ContentStartError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
        let index = Index::open(db, commit)?;
        let mut records = 0;
        let mut pending = HashSet::new();
        for r in index.all() {
            records += 1;
            if r.state == FileState::Uploading {
                pending.insert(r.id.clone());
            }
        }
        Ok(Arc::new(ContentServer {
            digest: Mutex::new(DigestCore::new(
                &settings.domain,
                settings.max_nonces,
                settings.nonce_lifetime,
            )),
            settings,
            dir: dir.to_path_buf(),
            index,
            connect_hss,
            hss: OnceLock::new(),
            records: AtomicUsize::new(records),
            pending: Mutex::new(pending),
            active: Mutex::new(HashSet::new()),
            trace,
            local: OnceLock::new(),
            session_seq: AtomicU64::new(0),
            shutdown,
        }))
    }

    /// Serves HTTP on `listener` until shutdown, within `limits`, and runs the sweep.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, limits: HttpLimits) {
        if let Ok(a) = listener.local_addr() {
            let _ = self.local.set(a);
        }
        tokio::spawn(self.clone().sweeper());
        let cs = self.clone();
        crate::http_server::serve(listener, limits, "CS", self.shutdown.clone(), move |remote, _slot| {
            let cs = cs.clone();
            hyper::service::service_fn(move |req| {
                let cs = cs.clone();
                async move { Ok::<_, std::convert::Infallible>(http::handle(cs, remote, req).await) }
            })
        })
        .await
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ContentSettings {
        &self.settings
    }

    /// Where it listens (once serving).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local.get().copied()
    }

    /// The base of the URLs it hands out: `[content] public_url`, else `http://<address>`.
    pub fn base_url(&self) -> String {
        if !self.settings.public_url.is_empty() {
            return self.settings.public_url.clone();
        }
        match self.local_addr() {
            Some(a) => format!("http://{a}"),
            None => "http://127.0.0.1".into(),
        }
    }

    /// Files in the index (whole, uploading, or expired tombstones).
    pub fn file_count(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Digest nonces outstanding.
    pub fn nonce_count(&self) -> usize {
        self.digest.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Uploads not yet whole.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// The record of a file (tests, status).
    pub fn record(&self, id: &str) -> Option<FileRecord> {
        self.index.get(id).ok().flatten()
    }

    /// Where a file's bytes are on disk (its thumbnail's with `thumb`).
    pub fn path_of(&self, id: &str, thumb: bool) -> PathBuf {
        if thumb {
            self.dir.join(format!("{id}.thumb"))
        } else {
            self.dir.join(id)
        }
    }

    fn session_id(&self) -> String {
        let n = self.session_seq.fetch_add(1, Ordering::Relaxed);
        format!("{};{};{}", self.settings.origin_host, std::process::id(), n)
    }

    /// The HA1 of `username` from the HSS (Cx MAR, SIP Digest); `None` when the HSS knows no
    /// such user (or the identities do not belong together).
    async fn ha1_of(&self, username: &str) -> Result<Option<String>, ContentError> {
        use crate::diameter::cx::{
            CxResult, MultimediaAuthAnswer, MultimediaAuthRequest, SipAuthDataItem,
        };
        let Some(connect) = &self.connect_hss else {
            return Err(ContentError::Unavailable(
                "no HSS link to check credentials with".into(),
            ));
        };
        let hss = self.hss.get_or_init(connect);
        if hss.state() != crate::diameter::client::PeerState::IOpen {
            // A link just made (or reconnecting) is given the time of a connection attempt.
            let _ = hss.wait_open(HSS_CONNECT_WAIT).await;
        }
        let mar = MultimediaAuthRequest {
            session_id: self.session_id(),
            origin_host: self.settings.origin_host.clone(),
            origin_realm: self.settings.domain.clone(),
            destination_realm: self.settings.domain.clone(),
            destination_host: None,
            user_name: username.to_string(),
            public_identity: identity_of(username, &self.settings.domain),
            server_name: format!("sip:{}", self.settings.origin_host),
            number_auth_items: 1,
            auth_data: SipAuthDataItem {
                scheme: "SIP Digest".into(),
                ..Default::default()
            },
        };
        let maa = hss
            .request(mar.to_message())
            .await
            .map_err(|e| {
                crate::warn_limited!("cs.hss", error = %e, "content server: MAR failed");
                ContentError::Unavailable("the HSS cannot be reached to check credentials".into())
            })
            .and_then(|m| {
                MultimediaAuthAnswer::from_message(&m).map_err(|e| {
                    ContentError::Unavailable(format!("unusable answer from the HSS: {e}"))
                })
            })?;
        if maa.result != CxResult::Base(2001) {
            return Ok(None);
        }
        Ok(maa
            .items
            .into_iter()
            .find_map(|i| i.digest)
            .map(|d| d.ha1.to_ascii_lowercase()))
    }

    /// Deletes what expired, every `sweep` interval, until shutdown.
    async fn sweeper(self: Arc<Self>) {
        let mut shut = self.shutdown.clone();
        let mut tick = tokio::time::interval(self.settings.sweep);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::http_server::stopped(&mut shut) => return,
            }
            let n = self.sweep(unix_now()).await;
            if n > 0 {
                tracing::info!(changed = n, "content server: sweep");
            }
        }
    }

    /// One sweep at `now` (unix seconds): expired files are deleted (their records become
    /// tombstones), old tombstones and abandoned uploads go. Returns how many records changed.
    pub async fn sweep(&self, now: u64) -> usize {
        let busy: HashSet<String> = self.active.lock().map(|a| a.clone()).unwrap_or_default();
        let mut changed = 0;
        let due: Vec<FileRecord> = self
            .index
            .all()
            .filter(|r| r.until <= now && !busy.contains(&r.id))
            .collect();
        for mut r in due {
            self.delete_bytes(&r.id).await;
            let ok = match r.state {
                FileState::Ready => {
                    r.state = FileState::Expired;
                    r.until = now.saturating_add(self.settings.validity.as_secs());
                    self.index.put(&r).is_ok()
                }
                FileState::Expired | FileState::Uploading => self.forget(&r),
            };
            if ok {
                changed += 1;
            }
            self.trace_note(|| format!("file {} ({}) expired: deleted", r.id, r.name));
        }
        if changed > 0 {
            if let Err(e) = self.index.durable().await {
                tracing::error!(error = %e, "content index flush failed");
            }
        }
        changed
    }

    /// Removes a record (and its count, and its pending mark).
    fn forget(&self, r: &FileRecord) -> bool {
        if self.index.remove(r).is_err() {
            return false;
        }
        self.records.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&r.id);
        }
        true
    }

    async fn delete_bytes(&self, id: &str) {
        let _ = tokio::fs::remove_file(self.path_of(id, false)).await;
        let _ = tokio::fs::remove_file(self.path_of(id, true)).await;
    }

    fn trace_note(&self, text: impl FnOnce() -> String) {
        if let Some(a) = self.local_addr() {
            self.trace.note(a, text);
        }
    }
}

/// The public identity of a Digest username: `alice@ims.lab` is `sip:alice@ims.lab`, a bare
/// `alice` is `sip:alice@<domain>`.
pub fn identity_of(username: &str, domain: &str) -> String {
    let u = username.trim();
    if u.starts_with("sip:") || u.starts_with("tel:") {
        u.to_string()
    } else if u.contains('@') {
        format!("sip:{u}")
    } else {
        format!("sip:{u}@{domain}")
    }
}

/// The content server's handler for requests the HSS sends over its Cx link: none are
/// expected (it registers nobody), so each is refused as unsupported.
pub struct CxRefuser;

impl DiameterHandler for CxRefuser {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        Box::pin(async move {
            Message::error_answer(
                &request,
                DIAMETER_COMMAND_UNSUPPORTED,
                None,
                Some("the content server serves no HSS requests"),
            )
        })
    }
}

/// A time for nonces (the digest core's clock).
pub(crate) fn mono_now() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_usernames() {
        assert_eq!(identity_of("alice@ims.lab", "ims.lab"), "sip:alice@ims.lab");
        assert_eq!(identity_of("bob", "ims.lab"), "sip:bob@ims.lab");
        assert_eq!(identity_of("sip:carol@x", "ims.lab"), "sip:carol@x");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
