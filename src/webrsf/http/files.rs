//! The file requests (RCC.07 file transfer via HTTP for web users, names after OMA RESTful
//! Network API for File Transfer): `POST FileTransfer?to=PEER&name=NAME` and
//! `POST Group/{id}/FileTransfer?name=NAME` (the body is the file, streamed to disk), and
//! `GET FileTransfer/{fileId}` / `GET FileTransfer/{fileId}/Thumbnail`, streamed from the
//! content server with the user's credentials (`Range` passed on both ways). What they do
//! on the user's UE is in `webrsf/files.rs`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{authed, json_response, Gw, Query_};
use crate::ue::ft::FtError;
use crate::webrsf::WebError;

/// Marks a response whose body is a file: the flight recorder records its head only.
pub(super) const FILE_BODY: &str = "x-webrsf-file";

/// The `name` query parameter, checked before any byte of the body is read.
fn file_name(q: &Query_) -> Result<String, WebError> {
    let name = q.get("name").map(|n| n.trim()).unwrap_or_default();
    if name.is_empty() {
        return Err(WebError::BadRequest(
            "'name' (the file's name) is missing: ?name=photo.jpg".into(),
        ));
    }
    if name.chars().count() > 255 {
        return Err(WebError::BadRequest(
            "'name' is longer than 255 characters".into(),
        ));
    }
    Ok(name.to_string())
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, WebError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| WebError::BadRequest("bad Content-Length".into())),
    }
}

/// `POST FileTransfer?to=PEER&name=NAME`: 201 `{"instance","instance_id","message_id","file"}`.
pub(super) async fn send_file(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let to = q
        .get("to")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| WebError::BadRequest("'to' (the peer) is missing: ?to=bob".into()))?;
    let peer = gw.aor_of(to)?;
    if peer == u.aor {
        return Err(WebError::BadRequest(
            "cannot send a file to yourself".into(),
        ));
    }
    let name = file_name(&q)?;
    let up = gw
        .receive_upload(&u, &name, content_length(&headers)?, body)
        .await?;
    let (id, mid, file) = gw.send_file(&u, &peer, up).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "instance": gw.instance_url(&u.user_id, &id),
            "instance_id": id,
            "message_id": mid,
            "file": file,
        }),
    ))
}

/// `POST Group/{id}/FileTransfer?name=NAME`: 201 `{"group_id","message_id","file"}`.
pub(super) async fn send_group_file(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    gw.group(&u, &id)?;
    let name = file_name(&q)?;
    let up = gw
        .receive_upload(&u, &name, content_length(&headers)?, body)
        .await?;
    let (mid, file) = gw.send_group_file(&u, &id, up).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "group_id": id, "message_id": mid, "file": file }),
    ))
}

/// `GET FileTransfer/{fileId}`: the file.
pub(super) async fn get_file(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    fetch(gw, user, id, headers, q, false).await
}

/// `GET FileTransfer/{fileId}/Thumbnail`: its thumbnail (404 when it has none).
pub(super) async fn get_thumbnail(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    fetch(gw, user, id, headers, q, true).await
}

/// Streams the file (or its thumbnail) from CS as the user: CS's status, length, range and
/// type passed on; its refusals as the gateway's JSON errors.
async fn fetch(
    gw: Gw,
    user: String,
    id: String,
    headers: HeaderMap,
    q: Query_,
    thumbnail: bool,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let info = gw.file_of(&u, &id)?;
    let (url, content_type) = if thumbnail {
        let t = info
            .thumbnail
            .as_ref()
            .ok_or_else(|| WebError::NotFound(format!("the file '{id}' has no thumbnail")))?;
        (t.url.clone(), t.content_type.clone())
    } else {
        (info.file.url.clone(), info.file.content_type.clone())
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = u
        .chat
        .file_client()
        .get(&url, range.as_deref())
        .await
        .map_err(|e| match e {
            FtError::Url(why) => WebError::BadGateway(format!("the file's URL: {why}")),
            e => WebError::BadGateway(format!("the content server: {e}")),
        })?;
    let status = resp.status().as_u16();
    match status {
        200 | 206 => {}
        403 => {
            return Err(WebError::Forbidden(
                "the content server does not let you have this file".into(),
            ))
        }
        404 | 410 => {
            return Err(WebError::NotFound(
                "the file is no longer on the content server (expired)".into(),
            ))
        }
        416 => {
            return Ok(json_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &json!({"error": "range_not_satisfiable", "detail": "the range is outside the file"}),
            ))
        }
        s => {
            return Err(WebError::BadGateway(format!(
                "the content server answered {s}"
            )))
        }
    }
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = out.headers_mut();
    for k in [header::CONTENT_LENGTH, header::CONTENT_RANGE] {
        if let Some(v) = resp.headers().get(&k) {
            h.insert(k, v.clone());
        }
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, served_type(&content_type));
    // The type came from the sender: nothing served here runs as a page of the gateway.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition(if thumbnail {
            None
        } else {
            Some(&info.file.name)
        }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(FILE_BODY, HeaderValue::from_static("1"));
    *out.body_mut() = Body::new(resp.into_body());
    Ok(out)
}

/// The Content-Type a file is served with: the file-info's for media (images but SVG,
/// audio, video), else `application/octet-stream` (the sender names the type; HTML or
/// script must not come back as the gateway's own).
fn served_type(ct: &str) -> HeaderValue {
    let t = ct.trim().to_ascii_lowercase();
    let media = (t.starts_with("image/") && !t.starts_with("image/svg"))
        || t.starts_with("audio/")
        || t.starts_with("video/");
    let ok = media
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/.+-".contains(&b));
    if ok {
        HeaderValue::from_str(&t).unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static("application/octet-stream")
    }
}

/// `Content-Disposition`: `attachment` with the sender's name (RFC 6266, RFC 8187
/// `filename*`), or `inline` for a thumbnail.
fn disposition(name: Option<&str>) -> HeaderValue {
    let Some(name) = name else {
        return HeaderValue::from_static("inline");
    };
    let safe = crate::ue::ft::safe_file_name(name);
    let ascii: String = safe
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut enc = String::new();
    for b in safe.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{enc}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_carry_a_safe_name() {
        assert_eq!(
            disposition(Some("photo 1.jpg")),
            "attachment; filename=\"photo 1.jpg\"; filename*=UTF-8''photo%201.jpg"
        );
        assert_eq!(
            disposition(Some("../é\".png")),
            "attachment; filename=\"____.png\"; filename*=UTF-8''__%C3%A9%22.png"
        );
        assert_eq!(disposition(None), "inline");
    }

    #[test]
    fn only_media_keep_their_type() {
        assert_eq!(served_type("image/jpeg"), "image/jpeg");
        assert_eq!(served_type("Video/MP4"), "video/mp4");
        for t in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "image/png; x=<",
        ] {
            assert_eq!(served_type(t), "application/octet-stream", "{t}");
        }
    }
}
