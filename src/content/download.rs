//! Downloads (RCC.07 §3.5.4.8.5): `GET /files/{id}` (and `/thumbnail`) streamed from disk,
//! with `Range` for a download that resumes (206, RFC 9110 §14); and the two documents of an
//! upload by its tid: `get_upload_info` (what arrived, for a resume) and `get_download_info`
//! (the file-info once whole).
//!
//! Who may download: the uploader and the users granted the file (`POST /grants`). Anyone
//! else gets 403 with [`NOT_SHARED`], whether the file exists or not, so a download reveals
//! nothing of files not shared with the asker. Those who may get 404 once it expired.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE};
use hyper::http::request::Parts;
use hyper::StatusCode;
use tokio::io::AsyncSeekExt;

use super::http::{authenticate, Reply, ReplyBody};
use super::index::{FileRecord, FileState};
use super::upload::valid_tid;
use super::{rfc3339, unix_now, ContentError, ContentServer};
use crate::fthttp::file_info::{self, FileDesc, FileInfo, ResumeInfo, Thumbnail};
use crate::fthttp::ByteRange;

/// The 403 detail for a file that is not shared with the asker, or does not exist.
pub const NOT_SHARED: &str = "no file of that id is shared with you";

/// The file-info document of a whole file.
pub(super) fn file_info(cs: &ContentServer, r: &FileRecord) -> FileInfo {
    let base = cs.base_url();
    let until = rfc3339(r.until);
    FileInfo {
        thumbnail: r.thumb.as_ref().map(|t| Thumbnail {
            size: t.size,
            content_type: t.content_type.clone(),
            url: format!("{base}/files/{}/thumbnail", r.id),
            until: until.clone(),
        }),
        file: FileDesc {
            size: r.size.unwrap_or(0),
            name: r.name.clone(),
            content_type: r.content_type.clone(),
            url: format!("{base}/files/{}", r.id),
            until,
            disposition: None,
        },
    }
}

/// 200 with the file-info document of `r`.
pub(super) fn file_info_reply(cs: &ContentServer, r: &FileRecord) -> Reply {
    Reply::bytes(
        StatusCode::OK,
        file_info::CONTENT_TYPE,
        file_info(cs, r).to_xml(),
    )
}

/// `GET /?tid=T&get_upload_info` or `&get_download_info`.
pub(super) async fn info(
    cs: &Arc<ContentServer>,
    remote: SocketAddr,
    parts: &Parts,
) -> Result<Reply, ContentError> {
    let owner = authenticate(cs, remote, parts).await?;
    let q = parts.uri.query().unwrap_or("");
    let mut tid = None;
    let (mut upload, mut download) = (false, false);
    for kv in q.split('&') {
        match kv.split_once('=') {
            Some(("tid", v)) => tid = Some(v),
            None if kv == "get_upload_info" => upload = true,
            None if kv == "get_download_info" => download = true,
            Some(("get_upload_info", _)) => upload = true,
            Some(("get_download_info", _)) => download = true,
            _ => {}
        }
    }
    let Some(tid) = tid.filter(|t| valid_tid(t)) else {
        return Err(ContentError::BadRequest(
            "GET / takes ?tid=TID&get_upload_info or ?tid=TID&get_download_info".into(),
        ));
    };
    if upload == download {
        return Err(ContentError::BadRequest(
            "say get_upload_info or get_download_info (one of them)".into(),
        ));
    }
    let rec = cs
        .index
        .by_tid(&owner, tid)
        .map_err(|e| ContentError::Internal(e.to_string()))?
        .filter(|r| r.state != FileState::Expired)
        .ok_or_else(|| ContentError::NotFound(format!("no upload of tid {tid}")))?;
    if download {
        return match rec.state {
            FileState::Ready => Ok(file_info_reply(cs, &rec)),
            _ => Err(ContentError::Conflict(format!(
                "the upload of tid {tid} is not complete: resume it (get_upload_info, then PUT)"
            ))),
        };
    }
    let received = match rec.state {
        FileState::Ready => rec.size.unwrap_or(0),
        _ => tokio::fs::metadata(cs.path_of(&rec.id, false))
            .await
            .map(|m| m.len())
            .unwrap_or(0),
    };
    let doc = ResumeInfo::received(received, &format!("{}/upload/{tid}", cs.base_url()));
    Ok(Reply::bytes(
        StatusCode::OK,
        file_info::CONTENT_TYPE,
        doc.to_xml(),
    ))
}

/// `GET /files/{id}` (`thumb`: `/files/{id}/thumbnail`), with `Range`.
pub(super) async fn file(
    cs: &Arc<ContentServer>,
    remote: SocketAddr,
    parts: &Parts,
    id: &str,
    thumb: bool,
) -> Result<Reply, ContentError> {
    let user = authenticate(cs, remote, parts).await?;
    let shown = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let rec = if shown {
        cs.index
            .get(id)
            .map_err(|e| ContentError::Internal(e.to_string()))?
    } else {
        None
    };
    let Some(rec) = rec.filter(|r| !cs.settings.auth || r.allows(&user)) else {
        return Err(ContentError::Forbidden(NOT_SHARED.into()));
    };
    match rec.state {
        FileState::Ready if rec.until > unix_now() => {}
        FileState::Ready | FileState::Expired => {
            return Err(ContentError::NotFound(format!(
                "the file expired at {}",
                rfc3339(rec.until.min(unix_now()))
            )))
        }
        FileState::Uploading => {
            return Err(ContentError::NotFound(
                "the upload of that file is not complete".into(),
            ))
        }
    }
    let (content_type, etag) = if thumb {
        match &rec.thumb {
            Some(t) => (t.content_type.clone(), t.sha256.clone()),
            None => return Err(ContentError::NotFound("that file has no thumbnail".into())),
        }
    } else {
        (
            rec.content_type.clone(),
            rec.sha256.clone().unwrap_or_default(),
        )
    };
    let path = cs.path_of(&rec.id, thumb);
    let mut f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ContentError::NotFound("the file is gone".into()))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| ContentError::Internal(e.to_string()))?
        .len();
    // A Range that does not read, or asks for several ranges, is ignored (RFC 9110 §14.2).
    let range = parts
        .headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ByteRange::parse(v).ok());
    let (status, first, last) = match range {
        Some(r) => match r.resolve(len) {
            Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
            None => {
                return Err(ContentError::RangeNotSatisfiable {
                    detail: format!("the file has {len} bytes"),
                    len,
                })
            }
        },
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { last - first + 1 };
    if first > 0 {
        f.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(|e| ContentError::Internal(e.to_string()))?;
    }
    let safe_name: String = rec
        .name
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut reply = Reply {
        status,
        headers: Default::default(),
        body: ReplyBody::File(f, count),
    }
    .with(CONTENT_TYPE, &content_type)
    .with(ACCEPT_RANGES, "bytes")
    .with(ETAG, &format!("\"{etag}\""))
    .with(
        CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{safe_name}\""),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        reply = reply.with(CONTENT_RANGE, &format!("bytes {first}-{last}/{len}"));
    }
    Ok(reply)
}
