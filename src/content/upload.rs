//! Uploads (RCC.07 §3.5.4.8.3): the `multipart/form-data` POST (`tid`, then optionally
//! `Thumbnail`, then `File`) streamed through [`crate::fthttp::multipart`] to disk, and the
//! resume PUT with `Content-Range` (§3.5.4.8.4).
//!
//! What stays when an upload does not end well:
//! - the connection is cut, the body times out, or the body ends before its closing boundary:
//!   what arrived of the File part stays, written and synced, for the client to resume
//!   (`get_upload_info`, then PUT) within `[content] pending_secs` (the last two get 408 and
//!   400 as well);
//! - malformed multipart before the File part: 400, nothing stays;
//! - over a size limit (413), out of room or a write error (507): nothing stays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::header::{CONTENT_RANGE, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::download::file_info_reply;
use super::http::{authenticate, content_length, Reply};
use super::index::{FileRecord, FileState, ThumbRecord};
use super::record::Capture;
use super::{unix_now, ContentError, ContentServer};
use crate::fthttp::multipart::{boundary_of, MultipartLimits, MultipartParser, PartEvent};
use crate::fthttp::ContentRange;
use crate::http_server::{is_body_timeout, TimedBody};

/// What a multipart body may carry besides the file and the thumbnail (boundaries, part
/// headers, the tid).
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// The longest transaction id.
pub(super) const MAX_TID: usize = 128;
/// The write buffer of one upload.
const WRITE_BUF: usize = 256 * 1024;

/// A tid as it may appear in a URL path and a query unescaped: 1 to [`MAX_TID`] of
/// `A-Z a-z 0-9 - . _ ~` (rcsjta sends a UUID).
pub(super) fn valid_tid(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TID
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn io_error(e: std::io::Error) -> ContentError {
    ContentError::InsufficientStorage(format!("the file cannot be written: {e}"))
}

fn store_error(e: crate::store::StoreError) -> ContentError {
    ContentError::Internal(format!("the index cannot be written: {e}"))
}

/// Marks a file as being written by one request; the mark goes when the request ends.
pub(super) struct Writing {
    cs: Arc<ContentServer>,
    id: String,
}

impl Writing {
    pub(super) fn take(cs: &Arc<ContentServer>, id: &str) -> Result<Writing, ContentError> {
        let mut a = cs
            .active
            .lock()
            .map_err(|_| ContentError::Internal("state poisoned".into()))?;
        if !a.insert(id.to_string()) {
            return Err(ContentError::Conflict(
                "an upload of this tid is under way on another connection".into(),
            ));
        }
        Ok(Writing {
            cs: cs.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Ok(mut a) = self.cs.active.lock() {
            a.remove(&self.id);
        }
    }
}

/// A file being written, hashed and counted.
struct Sink {
    w: BufWriter<tokio::fs::File>,
    hash: Sha256,
    n: u64,
}

impl Sink {
    async fn create(path: &PathBuf) -> Result<Sink, ContentError> {
        let f = tokio::fs::File::create(path).await.map_err(io_error)?;
        Ok(Sink {
            w: BufWriter::with_capacity(WRITE_BUF, f),
            hash: Sha256::new(),
            n: 0,
        })
    }

    async fn write(&mut self, d: &[u8]) -> Result<(), ContentError> {
        self.w.write_all(d).await.map_err(io_error)?;
        self.hash.update(d);
        self.n += d.len() as u64;
        Ok(())
    }

    /// Flushes and syncs: what was counted is on disk.
    async fn sync(&mut self) -> Result<(), ContentError> {
        self.w.flush().await.map_err(io_error)?;
        self.w.get_ref().sync_data().await.map_err(io_error)
    }
}

/// The SHA-256 of a file on disk, read in bounded chunks off the async threads.
async fn sha256_file(path: PathBuf) -> Result<String, ContentError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok::<_, std::io::Error>(hex::encode(h.finalize()))
    })
    .await
    .map_err(|e| ContentError::Internal(e.to_string()))?
    .map_err(io_error)
}

/// Writes a record and waits until it is on disk.
async fn save(cs: &ContentServer, r: &FileRecord) -> Result<(), ContentError> {
    cs.index.put(r).map_err(store_error)?;
    cs.index.durable().await.map_err(store_error)
}

/// Makes `rec` a whole file: state, hash, expiry, flushed; no longer pending.
async fn finish(
    cs: &ContentServer,
    rec: &mut FileRecord,
    size: u64,
    sha256: String,
) -> Result<(), ContentError> {
    rec.state = FileState::Ready;
    rec.size = Some(size);
    rec.sha256 = Some(sha256);
    rec.until = unix_now().saturating_add(cs.settings.validity.as_secs());
    save(cs, rec).await?;
    if let Ok(mut p) = cs.pending.lock() {
        p.remove(&rec.id);
    }
    cs.trace_note(|| {
        format!(
            "stored {} ({} bytes, sha256 {}) from {}",
            rec.name,
            size,
            rec.sha256.as_deref().unwrap_or(""),
            rec.owner
        )
    });
    Ok(())
}

/// The most of a refused upload's body read away before the refusal, and for how long.
const MAX_DRAIN: u64 = 16 * 1024 * 1024;
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what comes of `body`, at most `max` bytes and for at most `wait` (a
/// lingering close, as HTTP servers do before refusing a body they will not take).
async fn drain(mut body: TimedBody, max: u64, wait: std::time::Duration) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(wait, async {
        let mut n = 0u64;
        while n < max {
            match body.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}

/// `POST /`: RCC.07's empty first POST (204 once authenticated), or the upload.
pub(super) async fn post(
    cs: &Arc<ContentServer>,
    remote: SocketAddr,
    parts: &Parts,
    body: TimedBody,
    capture: &mut Capture,
) -> Result<Reply, ContentError> {
    let owner = authenticate(cs, remote, parts).await?;
    let len = content_length(parts);
    let chunked = parts.headers.contains_key(TRANSFER_ENCODING);
    if len == Some(0) || (len.is_none() && !chunked) {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    }
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
    {
        return Err(ContentError::UnsupportedType(
            "an upload is multipart/form-data with the parts tid, Thumbnail (optional) and File"
                .into(),
        ));
    }
    let boundary = boundary_of(ct).map_err(|e| ContentError::BadRequest(e.to_string()))?;
    let s = &cs.settings;
    let most = s.max_file_size + s.max_thumbnail_size + MULTIPART_OVERHEAD;
    if let Some(l) = len.filter(|l| *l > most) {
        // The client is still sending it: read it away first (bounded), so it reads the
        // 413 instead of a broken pipe when the connection closes under its writes.
        drain(body, l.min(MAX_DRAIN), DRAIN_WAIT).await;
        return Err(ContentError::TooLarge(format!(
            "the upload is {l} bytes; this server takes files of up to {} bytes with thumbnails of up to {} bytes",
            s.max_file_size, s.max_thumbnail_size
        )));
    }
    let mut up = Upload {
        cs: cs.clone(),
        owner,
        tid: None,
        tid_buf: Vec::new(),
        part: Part::None,
        id: None,
        thumb: None,
        thumb_done: None,
        file: None,
        file_done: false,
        rec: None,
        writing: None,
    };
    match up
        .run(
            MultipartParser::new(&boundary, MultipartLimits::default()),
            body,
            capture,
        )
        .await
    {
        Ok(r) => Ok(r),
        Err(e) => Err(up.fail(e).await),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    None,
    Tid,
    Thumb,
    File,
    Skip,
}

/// One multipart upload under way.
struct Upload {
    cs: Arc<ContentServer>,
    owner: String,
    tid: Option<String>,
    tid_buf: Vec<u8>,
    part: Part,
    id: Option<String>,
    thumb: Option<(Sink, String)>,
    thumb_done: Option<ThumbRecord>,
    file: Option<Sink>,
    file_done: bool,
    rec: Option<FileRecord>,
    writing: Option<Writing>,
}

/// Why the body stopped coming.
enum Stop {
    Cut,
    Timeout,
}

impl Upload {
    async fn run(
        &mut self,
        mut parser: MultipartParser,
        mut body: TimedBody,
        capture: &mut Capture,
    ) -> Result<Reply, ContentError> {
        loop {
            let frame = match body.frame().await {
                None => break,
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    let why = if is_body_timeout(&*e) {
                        Stop::Timeout
                    } else {
                        Stop::Cut
                    };
                    return Err(self.stopped(why));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            capture.add(&data);
            parser
                .push(&data)
                .map_err(|e| ContentError::BadRequest(e.to_string()))?;
            while let Some(ev) = parser
                .next_event()
                .map_err(|e| ContentError::BadRequest(e.to_string()))?
            {
                self.on_event(ev).await?;
            }
        }
        if let Err(e) = parser.finish() {
            return Err(ContentError::BadRequest(format!(
                "{e}: what arrived of the file is kept for GET ?tid=…&get_upload_info and a PUT"
            )));
        }
        if !self.file_done {
            return Err(ContentError::BadRequest(
                "the upload has no File part (RCC.07: tid, Thumbnail, File)".into(),
            ));
        }
        let (Some(mut rec), Some(sink)) = (self.rec.take(), self.file.take()) else {
            return Err(ContentError::Internal(
                "file part without its record".into(),
            ));
        };
        rec.thumb = self.thumb_done.take();
        let size = sink.n;
        finish(&self.cs, &mut rec, size, hex::encode(sink.hash.finalize())).await?;
        Ok(file_info_reply(&self.cs, &rec))
    }

    fn id(&mut self) -> String {
        self.id
            .get_or_insert_with(|| hex::encode(rand::random::<[u8; 16]>()))
            .clone()
    }

    async fn on_event(&mut self, ev: PartEvent) -> Result<(), ContentError> {
        let s = self.cs.settings.clone();
        match ev {
            PartEvent::Start(h) => {
                let name = h.name.to_ascii_lowercase();
                self.part = match name.as_str() {
                    "tid" => Part::Tid,
                    "thumbnail" | "file" if self.tid.is_none() => {
                        return Err(ContentError::BadRequest(
                            "the tid part must come before Thumbnail and File".into(),
                        ))
                    }
                    "thumbnail" if self.thumb.is_some() || self.thumb_done.is_some() => {
                        return Err(ContentError::BadRequest("two Thumbnail parts".into()))
                    }
                    "file" if self.rec.is_some() => {
                        return Err(ContentError::BadRequest("two File parts".into()))
                    }
                    "thumbnail" => {
                        let id = self.id();
                        let sink = Sink::create(&self.cs.path_of(&id, true)).await?;
                        let ct = h
                            .content_type
                            .unwrap_or_else(|| "application/octet-stream".into());
                        self.thumb = Some((sink, ct));
                        Part::Thumb
                    }
                    "file" => {
                        self.start_file(
                            h.filename.unwrap_or_else(|| "file".into()),
                            h.content_type
                                .unwrap_or_else(|| "application/octet-stream".into()),
                        )
                        .await?;
                        Part::File
                    }
                    _ => Part::Skip,
                };
            }
            PartEvent::Data(d) => match self.part {
                Part::Tid => {
                    self.tid_buf.extend_from_slice(&d);
                    if self.tid_buf.len() > MAX_TID {
                        return Err(ContentError::BadRequest(format!(
                            "the tid is longer than {MAX_TID} characters"
                        )));
                    }
                }
                Part::Thumb => {
                    if let Some((sink, _)) = &mut self.thumb {
                        if sink.n + d.len() as u64 > s.max_thumbnail_size {
                            return Err(ContentError::TooLarge(format!(
                                "the thumbnail is larger than {} bytes",
                                s.max_thumbnail_size
                            )));
                        }
                        sink.write(&d).await?;
                    }
                }
                Part::File => {
                    if let Some(sink) = &mut self.file {
                        if sink.n + d.len() as u64 > s.max_file_size {
                            return Err(ContentError::TooLarge(format!(
                                "the file is larger than {} bytes, this server's limit",
                                s.max_file_size
                            )));
                        }
                        sink.write(&d).await?;
                    }
                }
                Part::None | Part::Skip => {}
            },
            PartEvent::End => {
                match self.part {
                    Part::Tid => {
                        let t = String::from_utf8_lossy(&self.tid_buf).trim().to_string();
                        if !valid_tid(&t) {
                            return Err(ContentError::BadRequest(format!(
                                "the tid must be 1 to {MAX_TID} of A-Z a-z 0-9 - . _ ~"
                            )));
                        }
                        self.tid = Some(t);
                    }
                    Part::Thumb => {
                        if let Some((mut sink, ct)) = self.thumb.take() {
                            sink.sync().await?;
                            self.thumb_done = Some(ThumbRecord {
                                size: sink.n,
                                content_type: ct,
                                sha256: hex::encode(sink.hash.finalize()),
                            });
                        }
                    }
                    Part::File => {
                        if let Some(sink) = &mut self.file {
                            sink.sync().await?;
                        }
                        self.file_done = true;
                    }
                    Part::None | Part::Skip => {}
                }
                self.part = Part::None;
            }
            PartEvent::Done => {}
        }
        Ok(())
    }

    /// The File part starts: the record (Uploading) goes into the index, within the bounds.
    async fn start_file(&mut self, name: String, content_type: String) -> Result<(), ContentError> {
        let cs = self.cs.clone();
        let tid = self.tid.clone().unwrap_or_default();
        if let Some(old) = cs.index.by_tid(&self.owner, &tid).map_err(store_error)? {
            match old.state {
                FileState::Uploading => {
                    // The client starts over: the old attempt goes (unless it is being written).
                    let _w = Writing::take(&cs, &old.id)?;
                    cs.delete_bytes(&old.id).await;
                    cs.forget(&old);
                }
                _ => {
                    return Err(ContentError::Conflict(format!(
                        "the tid {tid} was used for another upload: each transfer has its own"
                    )))
                }
            }
        }
        if cs.file_count() >= cs.settings.max_files {
            return Err(ContentError::InsufficientStorage(format!(
                "the content server holds {} files, its limit",
                cs.settings.max_files
            )));
        }
        let id = self.id();
        {
            let mut p = cs
                .pending
                .lock()
                .map_err(|_| ContentError::Internal("state poisoned".into()))?;
            if p.len() >= cs.settings.max_pending {
                return Err(ContentError::Unavailable(format!(
                    "{} uploads are under way or waiting to resume: retry later",
                    p.len()
                )));
            }
            p.insert(id.clone());
        }
        cs.records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writing = Some(Writing::take(&cs, &id)?);
        let now = unix_now();
        let rec = FileRecord {
            id: id.clone(),
            tid,
            owner: self.owner.clone(),
            name: name.chars().take(255).collect(),
            content_type: content_type.chars().take(255).collect(),
            state: FileState::Uploading,
            size: None,
            sha256: None,
            thumb: None,
            grants: Vec::new(),
            created: now,
            until: now.saturating_add(cs.settings.pending.as_secs()),
        };
        // The record exists before any byte: a cut upload can be found by its tid.
        self.rec = Some(rec.clone());
        save(&cs, &rec).await?;
        self.file = Some(Sink::create(&cs.path_of(&id, false)).await?);
        Ok(())
    }

    /// Keeps what arrived of the File part for a resume (synced, recorded); nothing when it
    /// never started.
    async fn keep(&mut self) -> Result<(), ContentError> {
        let Some(mut rec) = self.rec.take() else {
            self.discard().await;
            return Ok(());
        };
        if let Some(sink) = &mut self.file {
            sink.sync().await?;
        }
        rec.thumb = self.thumb_done.take();
        rec.until = unix_now().saturating_add(self.cs.settings.pending.as_secs());
        save(&self.cs, &rec).await?;
        let got = self.file.as_ref().map_or(0, |s| s.n);
        self.cs.trace_note(|| {
            format!(
                "upload {} of {} cut after {got} bytes: kept for resume",
                rec.tid, rec.owner
            )
        });
        self.file = None;
        Ok(())
    }

    /// The body stopped: the error that says so ([`Upload::fail`] keeps what arrived).
    fn stopped(&self, why: Stop) -> ContentError {
        match why {
            Stop::Timeout => ContentError::Timeout(
                "the body did not arrive in time; what arrived is kept for resume".into(),
            ),
            Stop::Cut => ContentError::BadRequest("the connection was cut".into()),
        }
    }

    /// Decides what stays after `e`: nothing after 413/507/500, what arrived of the file
    /// otherwise.
    async fn fail(&mut self, e: ContentError) -> ContentError {
        let keep = !matches!(e.status(), 413 | 500 | 503 | 507 | 409) && self.rec.is_some();
        if keep {
            if let Err(e2) = self.keep().await {
                self.discard().await;
                return e2;
            }
        } else {
            self.discard().await;
        }
        e
    }

    /// Nothing of this upload stays.
    async fn discard(&mut self) {
        self.file = None;
        self.thumb = None;
        if let Some(id) = self.id.clone() {
            self.cs.delete_bytes(&id).await;
        }
        if let Some(rec) = self.rec.take() {
            self.cs.forget(&rec);
            let _ = self.cs.index.durable().await;
        }
    }
}

/// `PUT /upload/{tid}` with `Content-Range: bytes FIRST-LAST/TOTAL`: the rest of a cut upload.
pub(super) async fn put(
    cs: &Arc<ContentServer>,
    remote: SocketAddr,
    parts: &Parts,
    mut body: TimedBody,
    capture: &mut Capture,
    tid: &str,
) -> Result<Reply, ContentError> {
    let owner = authenticate(cs, remote, parts).await?;
    if !valid_tid(tid) {
        return Err(ContentError::BadRequest(format!(
            "the tid must be 1 to {MAX_TID} of A-Z a-z 0-9 - . _ ~"
        )));
    }
    let mut rec = cs
        .index
        .by_tid(&owner, tid)
        .map_err(store_error)?
        .ok_or_else(|| ContentError::NotFound(format!("no upload of tid {tid}")))?;
    match rec.state {
        FileState::Ready => return Ok(file_info_reply(cs, &rec)),
        FileState::Expired => {
            return Err(ContentError::NotFound(format!(
                "the file of tid {tid} expired"
            )))
        }
        FileState::Uploading => {}
    }
    let _w = Writing::take(cs, &rec.id)?;
    let cr = parts
        .headers
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ContentError::BadRequest(
                "a resumed upload needs Content-Range: bytes FIRST-LAST/TOTAL".into(),
            )
        })
        .and_then(|v| {
            ContentRange::parse(v).map_err(|e| ContentError::BadRequest(e.to_string()))
        })?;
    let total = cr.complete.ok_or_else(|| {
        ContentError::BadRequest("the Content-Range must give the file's whole length".into())
    })?;
    if total > cs.settings.max_file_size {
        return Err(ContentError::TooLarge(format!(
            "the file is {total} bytes, larger than this server's limit of {}",
            cs.settings.max_file_size
        )));
    }
    if rec.size.is_some_and(|s| s != total) {
        return Err(ContentError::BadRequest(format!(
            "the upload was announced as {} bytes, not {total}",
            rec.size.unwrap_or(0)
        )));
    }
    if let Some(l) = content_length(parts).filter(|l| *l != cr.len()) {
        return Err(ContentError::BadRequest(format!(
            "Content-Length {l} does not match the Content-Range's {} bytes",
            cr.len()
        )));
    }
    let path = cs.path_of(&rec.id, false);
    let have = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if cr.first > have {
        return Err(ContentError::RangeNotSatisfiable {
            detail: format!("the server holds {have} bytes of this upload: send from byte {have}"),
            len: have,
        });
    }
    let f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(io_error)?;
    f.set_len(cr.first).await.map_err(io_error)?;
    let mut w = BufWriter::with_capacity(WRITE_BUF, f);
    w.seek(std::io::SeekFrom::Start(cr.first))
        .await
        .map_err(io_error)?;
    rec.size = Some(total);
    let mut written = 0u64;
    let mut stop = None;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                stop = Some(if is_body_timeout(&*e) {
                    ContentError::Timeout(
                        "the body did not arrive in time; what arrived is kept".into(),
                    )
                } else {
                    ContentError::BadRequest("the connection was cut".into())
                });
                break;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        capture.add(&data);
        if written + data.len() as u64 > cr.len() {
            stop = Some(ContentError::BadRequest(
                "the body is longer than its Content-Range".into(),
            ));
            break;
        }
        w.write_all(&data).await.map_err(io_error)?;
        written += data.len() as u64;
    }
    w.flush().await.map_err(io_error)?;
    w.get_ref().sync_data().await.map_err(io_error)?;
    if stop.is_none() && written < cr.len() {
        stop = Some(ContentError::BadRequest(
            "the body is shorter than its Content-Range; what arrived is kept".into(),
        ));
    }
    if let Some(e) = stop {
        rec.until = unix_now().saturating_add(cs.settings.pending.as_secs());
        save(cs, &rec).await?;
        return Err(e);
    }
    if cr.last + 1 == total {
        let sha = sha256_file(path).await?;
        finish(cs, &mut rec, total, sha).await?;
        return Ok(file_info_reply(cs, &rec));
    }
    save(cs, &rec).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_are_url_safe_and_bounded() {
        assert!(valid_tid("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
        assert!(valid_tid("a.b_c~d"));
        for bad in ["", "a b", "a/b", "a?b", "é", &"x".repeat(MAX_TID + 1)] {
            assert!(!valid_tid(bad), "{bad}");
        }
    }
}
