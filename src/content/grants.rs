//! `POST /grants`: who besides the uploader may download a file. RCC.07 leaves this to the
//! network; here the messaging servers that relay the file-info message to its recipients
//! (T-IM for one-to-one chat, CONF for a group) tell the content server, over this internal
//! API, authenticated by the lab's shared secret (`Authorization: Bearer SECRET`, the
//! `[content] grant_secret` or `grants.token`; no API returns it).
//!
//! ```text
//! POST /grants
//! Authorization: Bearer SECRET
//! Content-Type: application/json
//!
//! {"file": "<id, or the file's data URL>", "users": ["sip:bob@ims.lab", ...]}
//! ```
//! → 200 `{"file": id, "grants": [every user granted so far]}`; 401 without the secret; 400
//! malformed; 404 no such file; 413 more than `[content] max_grants_per_file` users. Users are
//! the identities recipients authenticate as (`sip:bob@ims.lab`), kept once each.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::header::AUTHORIZATION;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde_json::{json, Value};

use super::http::Reply;
use super::record::Capture;
use super::{ContentError, ContentServer};
use crate::http_server::{is_body_timeout, TimedBody};

/// The largest grant request body.
const MAX_BODY: usize = 64 * 1024;
/// The longest user identity.
const MAX_USER: usize = 256;

/// Compares without an early exit (a secret's prefix cannot be found by timing).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /grants`.
pub(super) async fn post(
    cs: &Arc<ContentServer>,
    parts: &Parts,
    mut body: TimedBody,
    capture: &mut Capture,
) -> Result<Reply, ContentError> {
    let given = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let secret = cs.settings.grant_secret.as_bytes();
    if !given.is_some_and(|g| !secret.is_empty() && same_secret(g.as_bytes(), secret)) {
        return Err(ContentError::BadSecret(
            "the grant API takes Authorization: Bearer with the lab's grant secret".into(),
        ));
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if is_body_timeout(&*e) {
                ContentError::Timeout("the body did not arrive in time".into())
            } else {
                ContentError::BadRequest("the connection was cut".into())
            }
        })?;
        if let Ok(d) = frame.into_data() {
            capture.add(&d);
            if buf.len() + d.len() > MAX_BODY {
                return Err(ContentError::TooLarge(format!(
                    "a grant request is at most {MAX_BODY} bytes"
                )));
            }
            buf.extend_from_slice(&d);
        }
    }
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| ContentError::BadRequest(format!("the body is not JSON: {e}")))?;
    let file = v.get("file").and_then(Value::as_str).ok_or_else(|| {
        ContentError::BadRequest("\"file\" (an id or a data URL) is missing".into())
    })?;
    let id = file
        .rsplit_once("/files/")
        .map(|(_, rest)| rest.trim_end_matches("/thumbnail"))
        .unwrap_or(file);
    let users: Vec<String> = v
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ContentError::BadRequest("\"users\" (an array of identities) is missing".into())
        })?
        .iter()
        .map(|u| {
            u.as_str()
                .map(str::trim)
                .filter(|u| {
                    u.len() <= MAX_USER
                        && (u.starts_with("sip:") || u.starts_with("tel:"))
                        && !u.contains(char::is_whitespace)
                })
                .map(str::to_string)
                .ok_or_else(|| {
                    ContentError::BadRequest(format!(
                        "each user is a sip: or tel: identity of at most {MAX_USER} characters"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    if users.len() > cs.settings.max_grants {
        return Err(ContentError::TooLarge(format!(
            "a file may be granted to at most {} users",
            cs.settings.max_grants
        )));
    }
    let mut rec = cs
        .index
        .get(id)
        .ok()
        .flatten()
        .ok_or_else(|| ContentError::NotFound(format!("no file {id}")))?;
    for u in users {
        if !rec.grants.iter().any(|g| g.eq_ignore_ascii_case(&u)) {
            rec.grants.push(u);
        }
    }
    if rec.grants.len() > cs.settings.max_grants {
        return Err(ContentError::TooLarge(format!(
            "a file may be granted to at most {} users",
            cs.settings.max_grants
        )));
    }
    cs.index
        .put(&rec)
        .map_err(|e| ContentError::Internal(e.to_string()))?;
    cs.index
        .durable()
        .await
        .map_err(|e| ContentError::Internal(e.to_string()))?;
    let grants = rec.grants.clone();
    cs.trace_note(|| format!("file {} granted to {}", rec.id, grants.join(", ")));
    Ok(Reply::bytes(
        StatusCode::OK,
        "application/json",
        json!({"file": rec.id, "grants": rec.grants}).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"ab", b"abc"));
    }
}
