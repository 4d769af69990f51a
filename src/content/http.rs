//! The content server's HTTP surface: routing (the table in [`super`]), Digest
//! authentication against the HSS, error answers as JSON, responses (small ones whole, files
//! streamed from disk in bounded reads) and the flight-recorder hook ([`super::record`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::digest::Check;
use super::record::{self, Capture, TRACE_BODY_MAX};
use super::{download, mono_now, upload, ContentError, ContentServer};
use crate::auth::digest::Credentials;
use crate::http_server::TimedBody;

/// What a handler answers with.
pub(super) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Reads of a file being downloaded.
const READ_CHUNK: usize = 256 * 1024;

/// A response before it goes out (and into the recorder).
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

/// A reply's body.
pub(super) enum ReplyBody {
    /// Small, whole.
    Bytes(Bytes),
    /// `len` bytes of an open file from where it is positioned.
    File(tokio::fs::File, u64),
}

impl Reply {
    /// A whole body of `content_type`.
    pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply {
            status,
            headers,
            body: ReplyBody::Bytes(body.into()),
        }
    }

    /// No body.
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: ReplyBody::Bytes(Bytes::new()),
        }
    }

    /// Adds a header (values we build are always valid; one that is not is left out).
    pub fn with(mut self, name: hyper::header::HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

/// Serves one request.
pub(super) async fn handle(
    cs: Arc<ContentServer>,
    remote: SocketAddr,
    req: Request<TimedBody>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut capture = Capture::new(cs.trace.is_enabled());
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let result = route(&cs, remote, &parts, body, &mut capture).await;
    record::request(
        &cs.trace,
        cs.local_addr(),
        remote,
        (parts.method.as_str(), &target),
        &parts.headers,
        &capture,
    );
    let reply = match result {
        Ok(r) => r,
        Err(e) => error_reply(&cs, &e),
    };
    respond(&cs, remote, reply)
}

async fn route(
    cs: &Arc<ContentServer>,
    remote: SocketAddr,
    parts: &Parts,
    body: TimedBody,
    capture: &mut Capture,
) -> Result<Reply, ContentError> {
    let path = parts.uri.path();
    let m = &parts.method;
    match path {
        "/" if m == Method::POST => upload::post(cs, remote, parts, body, capture).await,
        "/" if m == Method::GET => download::info(cs, remote, parts).await,
        "/grants" if m == Method::POST => super::grants::post(cs, parts, body, capture).await,
        p if p.starts_with("/upload/") && m == Method::PUT => {
            let tid = &p["/upload/".len()..];
            upload::put(cs, remote, parts, body, capture, tid).await
        }
        p if p.starts_with("/files/") && m == Method::GET => {
            let rest = &p["/files/".len()..];
            let (id, thumb) = match rest.strip_suffix("/thumbnail") {
                Some(id) => (id, true),
                None => (rest, false),
            };
            download::file(cs, remote, parts, id, thumb).await
        }
        "/" | "/grants" => Err(ContentError::MethodNotAllowed(format!(
            "{path} does not take {m}"
        ))),
        p if p.starts_with("/upload/") || p.starts_with("/files/") => Err(
            ContentError::MethodNotAllowed(format!("{path} does not take {m}")),
        ),
        _ => Err(ContentError::NotFound(
            "no such resource: uploads go to POST /, downloads are under /files/".into(),
        )),
    }
}

/// The user a request authenticates as (its public identity, `sip:alice@ims.lab`), by HTTP
/// Digest against the HSS; `anonymous` when `[content] auth` is off.
pub(super) async fn authenticate(
    cs: &ContentServer,
    remote: SocketAddr,
    parts: &Parts,
) -> Result<String, ContentError> {
    if !cs.settings.auth {
        return Ok("anonymous".into());
    }
    let creds = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Credentials::parse(v).ok())
        .ok_or(ContentError::Unauthorized { stale: false })?;
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let targets = [pq.clone(), format!("{}{pq}", cs.base_url())];
    let method = parts.method.as_str();
    let first = match cs.digest.lock() {
        Ok(mut d) => d.check(mono_now(), &creds, method, &targets),
        Err(_) => return Err(ContentError::Internal("digest state poisoned".into())),
    };
    let verdict = match first {
        Check::NeedHa1(user) => {
            let ha1 = cs.ha1_of(&user).await?;
            match cs.digest.lock() {
                Ok(mut d) => d.complete(&creds, method, ha1.as_deref()),
                Err(_) => return Err(ContentError::Internal("digest state poisoned".into())),
            }
        }
        other => other,
    };
    match verdict {
        Check::Ok(user) => {
            let id = super::identity_of(&user, &cs.settings.domain);
            let short = id
                .trim_start_matches("sip:")
                .split('@')
                .next()
                .unwrap_or(&id)
                .to_string();
            cs.trace.name_peer(remote, &format!("UE {short}"));
            Ok(id)
        }
        Check::Stale => Err(ContentError::Unauthorized { stale: true }),
        Check::NeedHa1(_) => Err(ContentError::Unauthorized { stale: false }),
        Check::Fail(why) => {
            crate::warn_limited!("cs.auth", user = %creds.username, %remote, "content server: authentication failed: {why}");
            cs.trace_note(|| format!("401 to {}: {why}", creds.username));
            Err(ContentError::Unauthorized { stale: false })
        }
    }
}

/// A request's Content-Length, if it has a valid one.
pub(super) fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn error_reply(cs: &ContentServer, e: &ContentError) -> Reply {
    let code = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = Reply::bytes(code, "application/json", e.body().to_string())
        // The request's body may be unread: the connection cannot carry another request.
        .with(CONNECTION, "close");
    match e {
        ContentError::Unauthorized { stale } => {
            let ch = match cs.digest.lock() {
                Ok(mut d) => d.challenge(mono_now(), *stale),
                Err(_) => String::new(),
            };
            r = r.with(hyper::header::WWW_AUTHENTICATE, &ch);
        }
        ContentError::RangeNotSatisfiable { len, .. } => {
            r = r.with(hyper::header::CONTENT_RANGE, &format!("bytes */{len}"));
        }
        ContentError::Unavailable(_) => {
            r = r.with(hyper::header::RETRY_AFTER, "5");
        }
        _ => {}
    }
    r
}

fn respond(cs: &ContentServer, remote: SocketAddr, reply: Reply) -> Response<Body> {
    let Reply {
        status,
        mut headers,
        body,
    } = reply;
    let (body, len, recorded): (Body, u64, Bytes) = match body {
        ReplyBody::Bytes(b) => {
            let len = b.len() as u64;
            let rec = if b.len() <= TRACE_BODY_MAX {
                b.clone()
            } else {
                Bytes::new()
            };
            (
                Full::new(b).map_err(|never| match never {}).boxed_unsync(),
                len,
                rec,
            )
        }
        ReplyBody::File(f, len) => (file_body(f, len), len, Bytes::new()),
    };
    if status != StatusCode::NO_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
            headers.insert(CONTENT_LENGTH, v);
        }
    }
    record::response(
        &cs.trace,
        cs.local_addr(),
        remote,
        status,
        &headers,
        &recorded,
        len,
    );
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// `len` bytes of `file`, read in [`READ_CHUNK`]s as the client takes them.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let stream = futures_util::stream::unfold((file, len), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(READ_CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        match f.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its record",
                )),
                (f, 0),
            )),
            Ok(k) => {
                buf.truncate(k);
                Some((Ok(Frame::data(Bytes::from(buf))), (f, left - k as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    StreamBody::new(stream).boxed_unsync()
}
