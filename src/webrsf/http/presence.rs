//! The presence requests: `GET Buddies` (the user's buddy list as the RLS last told it: each
//! buddy's state, note and last seen) and `GET Buddies/{buddy}` (one of them); seed 001
//! figure 9. What they read is in `webrsf/presence.rs`; changes come as `presence` events.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{authed, json_response, Gw, Query_};
use crate::webrsf::WebError;

/// `GET Buddies` -> `{"list","subscription","buddies":[{"user","uri","state","note","last_seen"}]}`.
pub(super) async fn buddies(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.buddies(&u)))
}

/// `GET Buddies/{buddy}` -> `{"user","uri","state","note","last_seen"}`; 404 when not listed.
pub(super) async fn buddy(
    State(gw): State<Gw>,
    Path((user, buddy)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.buddy(&u, &buddy)?))
}
