//! The history requests: `GET History[?limit=N]` (the user's conversations) and
//! `GET History/{peer}` with `?after=SEQ&limit=N` or `?last=N` (seed 004: T-IM's numbered
//! conversation). What they read is in `webrsf/history.rs`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{authed, json_response, Gw, Query_};
use crate::webrsf::WebError;

/// `GET History/{peer}?after=SEQ&limit=N` (T-IM's numbered conversation).
pub(super) async fn history(
    State(gw): State<Gw>,
    Path((user, peer)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let num = |k: &str, d: u64| -> Result<u64, WebError> {
        q.get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| WebError::BadRequest(format!("bad {k} '{v}'")))
            })
            .unwrap_or(Ok(d))
    };
    if q.contains_key("last") {
        let last = num("last", 100)? as usize;
        return Ok(json_response(
            StatusCode::OK,
            &gw.history_last(&u, &peer, last).await?,
        ));
    }
    let after = num("after", 0)?;
    let limit = num("limit", 100)? as usize;
    Ok(json_response(
        StatusCode::OK,
        &gw.history(&u, &peer, after, limit).await?,
    ))
}

/// `GET History[?limit=N]`: the user's conversations, newest first.
pub(super) async fn conversations(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let limit = match q.get("limit") {
        Some(v) => v
            .parse()
            .map_err(|_| WebError::BadRequest(format!("bad limit '{v}'")))?,
        None => 50,
    };
    Ok(json_response(
        StatusCode::OK,
        &gw.conversations(&u, limit).await?,
    ))
}
