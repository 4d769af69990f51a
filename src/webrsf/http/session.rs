//! The session requests: `POST {userId}/Session` (log in: a REGISTER to IMS, then a bearer
//! token), `PUT Session` (a new token for this one), `POST Session/Ticket` (a single-use
//! ticket for a browser's channel) and `DELETE Session` (log out: a de-REGISTER); paper
//! seed 000 §3. What they do is in `webrsf/session.rs`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{authed, bearer, body, json_body, json_response, Gw, Query_};
use crate::webrsf::WebError;

pub(super) async fn login(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Body,
) -> Result<Response, WebError> {
    let v = json_body(&gw, body).await?;
    let b = body::login(&v)?;
    let u = gw.login(&user, b.password, b.impi, Some(remote)).await?;
    let (token, expires) = gw.issue_token(&u);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "token": token, "user": u.aor, "expires": expires }),
    ))
}

/// `PUT /Session` with a valid token: a new token (same answer as login); the old one ends.
pub(super) async fn refresh(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let old = bearer(&headers).unwrap_or_default();
    let (token, expires) = gw.refresh_token(&u, &old);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "token": token, "user": u.aor, "expires": expires }),
    ))
}

/// `POST /Session/Ticket`: a single-use ticket (30 s) for one notification channel opened by
/// a browser's EventSource or WebSocket, which cannot send Authorization.
pub(super) async fn ticket(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let (ticket, expires) = gw.issue_ticket(&u);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "ticket": ticket, "expires": expires }),
    ))
}

pub(super) async fn logout(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let ok = gw.logout(&u).await;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "status": "deregistered", "ims": if ok { "200 OK" } else { "no answer" } }),
    ))
}
