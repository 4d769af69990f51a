//! The WebRSF HTTP surface (axum on hyper): the paper's REST interface under
//! `/webrsf/v1/{userId}`, the three forms of the notification channel, the browser client at
//! `/`, and the flight-recorder hook that puts HTTP into the same ladders as SIP and MSRP.
//!
//! | method | path (under `/webrsf/v1/{userId}`) | what |
//! |---|---|---|
//! | POST | `/Session` `{"password"}` | log in (REGISTER to IMS) -> `{"token","user","expires"}` |
//! | PUT | `/Session` | a new token for this one (which ends) -> `{"token","user","expires"}` |
//! | POST | `/Session/Ticket` | a single-use ticket (30 s) for a browser channel -> `{"ticket","expires"}` |
//! | DELETE | `/Session` | log out (de-REGISTER) |
//! | POST | `/Notification/Streaming[?cursor=N]` | chunked channel, one JSON event per chunk |
//! | GET | `/Notification/SSE[?ticket=T&cursor=N]` | the same as Server-Sent Events (`Last-Event-ID`) |
//! | GET | `/Notification/WebSocket[?ticket=T&cursor=N]` | the same over a WebSocket |
//! | GET, POST | `/Chat` | list instances; start a chat `{"to","text"}` |
//! | GET | `/Chat/Media` | waiting messages, chunked NDJSON (figure 5 step 9) |
//! | GET, PUT | `/Chat/{id}` | an instance; acknowledge / accept / decline / close it |
//! | GET, POST | `/Chat/{id}/Messages` | the conversation; send `{"text"}` |
//! | PUT | `/Chat/{id}/Messages/{msgId}/Status` | `{"status":"displayed"}` |
//! | POST | `/Chat/{id}/Composing` | `{"active":true}` |
//! | GET, POST | `/Group` | list group chats; create one `{"subject","participants":["bob",..]}` (or OMA's `groupChatSessionInformation`) -> 201 |
//! | GET, DELETE | `/Group/{id}` | a group (subject, state, participants); leave it |
//! | GET, POST | `/Group/{id}/Messages` | the conversation with `read_by` per message of ours; send `{"text"}` (or `{"chatMessage":{"text"}}`) |
//! | PUT | `/Group/{id}/Messages/{msgId}/Status` | `{"status":"displayed"}` |
//! | GET, POST | `/Group/{id}/Participants` | the roster; add `{"participants":[..]}` (501 until the UE can REFER) |
//! | DELETE | `/Group/{id}/Participants/{participant}` | remove one (501 until the UE can REFER) |
//! | POST | `/FileTransfer?to=PEER&name=NAME` | send a file to a peer: the body is the file (at most CS's `max_file_size`, else 413) -> 201 `{"instance","instance_id","message_id","file"}` |
//! | POST | `/Group/{id}/FileTransfer?name=NAME` | send a file to a group -> 201 `{"group_id","message_id","file"}` |
//! | GET | `/FileTransfer/{fileId}`, `/FileTransfer/{fileId}/Thumbnail` | a file offered to (or sent by) the user, or its thumbnail, streamed from CS (`Range` passed on) |
//! | GET | `/History[?limit=N]` | the user's conversations, newest first, each with its newest message |
//! | GET | `/History/{peer}?after=SEQ&limit=N` | T-IM's numbered conversation after SEQ |
//! | GET | `/History/{peer}?last=N` | its newest N messages |
//! | GET | `/Buddies` | the buddy list: `{"list","subscription","buddies":[{"user","uri","state","note","last_seen"}]}` |
//! | GET | `/Buddies/{buddy}` | one buddy: `{"user","uri","state","note","last_seen"}` |
//!
//! Every call but `POST /Session` carries `Authorization: Bearer TOKEN`; tokens end after
//! `[webrsf] token_lifetime_secs`. The SSE and WebSocket channels also take `?ticket=`.
//!
//! This file is the server plumbing (serving, routes, authentication, bodies, error
//! answers); the handlers live by request family in `http/`: `session.rs`, `chat.rs`, `group.rs`,
//! `files.rs` (file transfer),
//! `history.rs`, `presence.rs` (buddies), `notification.rs` (the three channels), `record.rs`
//! (flight recorder) and
//! `webhook.rs` (push webhooks).

mod chat;
mod files;
mod group;
mod history;
mod notification;
mod presence;
mod record;
mod session;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::http_server::{HttpLimits, TimedBody};

use super::{body, Gateway, WebError, WebUser};
use chat::{
    composing, get_instance, list_chats, list_messages, media, post_message, put_instance,
    put_status, start_chat,
};
use files::{get_file, get_thumbnail, send_file, send_group_file};
use group::{
    add_participants, create_group, get_group, leave_group, list_group_messages, list_groups,
    list_participants, post_group_message, put_group_status, remove_participant,
};
use history::{conversations, history};
use notification::{sse, streaming, websocket};
use presence::{buddies, buddy};
use record::record;
use session::{login, logout, refresh, ticket};
pub use webhook::{post_json, WebhookError};

type Gw = Arc<Gateway>;
type Query_ = Query<std::collections::HashMap<String, String>>;

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = json_response(code, &self.body());
        if let WebError::RateLimited(_, secs) = self {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves the gateway on `listener` until the lab shuts down, within `limits` (timeouts,
/// connection cap: [`crate::http_server`]).
pub async fn serve(gw: Gw, listener: TcpListener, limits: HttpLimits) {
    if let Ok(a) = listener.local_addr() {
        gw.set_http_addr(a);
    }
    let app = router(gw.clone());
    tokio::spawn(super::limits::sweep(gw.clone()));
    // Keep-alive chunks must come before the idle timeout, or idle channels are cut.
    let keepalive = Duration::from_secs(gw.settings().keepalive_secs.max(1));
    let limits = HttpLimits {
        idle_timeout: limits.idle_timeout.max(2 * keepalive),
        ..limits
    };
    crate::http_server::serve(
        listener,
        limits,
        "WebRSF",
        gw.shutdown(),
        move |remote, slot| {
            let app = app.clone();
            let gw = gw.clone();
            hyper::service::service_fn(move |mut req: Request<TimedBody>| {
                // A file upload may take longer than `[http] body_timeout_ms` (CS's own
                // `body_timeout_secs` then applies); it is streamed to disk, not buffered.
                if req.method() == hyper::Method::POST
                    && req.uri().path().ends_with("/FileTransfer")
                {
                    if let Some(t) = gw.upload_timeout() {
                        req.body_mut().set_timeout(t);
                    }
                }
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(slot.clone());
                let mut app = app.clone();
                async move { app.call(req.map(Body::new)).await }
            })
        },
    )
    .await
}

/// The routes.
pub fn router(gw: Gw) -> Router {
    let api = Router::new()
        .route("/Session", post(login).delete(logout).put(refresh))
        .route("/Session/Ticket", post(ticket))
        .route("/Notification/Streaming", post(streaming))
        .route("/Notification/SSE", get(sse))
        .route("/Notification/WebSocket", get(websocket))
        .route("/Chat", get(list_chats).post(start_chat))
        .route("/Chat/Media", get(media))
        .route("/Chat/{id}", get(get_instance).put(put_instance))
        .route("/Chat/{id}/Messages", get(list_messages).post(post_message))
        .route("/Chat/{id}/Messages/{mid}/Status", put(put_status))
        .route("/Chat/{id}/Composing", post(composing))
        .route("/Group", get(list_groups).post(create_group))
        .route("/Group/{id}", get(get_group).delete(leave_group))
        .route(
            "/Group/{id}/Messages",
            get(list_group_messages).post(post_group_message),
        )
        .route("/Group/{id}/Messages/{mid}/Status", put(put_group_status))
        .route("/Group/{id}/FileTransfer", post(send_group_file))
        .route("/FileTransfer", post(send_file))
        .route("/FileTransfer/{id}", get(get_file))
        .route("/FileTransfer/{id}/Thumbnail", get(get_thumbnail))
        .route(
            "/Group/{id}/Participants",
            get(list_participants).post(add_participants),
        )
        .route(
            "/Group/{id}/Participants/{participant}",
            delete(remove_participant),
        )
        .route("/History", get(conversations))
        .route("/History/{peer}", get(history))
        .route("/Buddies", get(buddies))
        .route("/Buddies/{buddy}", get(buddy));
    Router::new()
        .nest("/webrsf/v1/{user}", api)
        .route("/", get(|| async { static_file("text/html; charset=utf-8", INDEX) }))
        .route(
            "/app.js",
            get(|| async { static_file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/files.js",
            get(|| async { static_file("text/javascript; charset=utf-8", FILES_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { static_file("text/css; charset=utf-8", STYLE) }),
        )
        .fallback(|| async {
            WebError::NotFound("no such resource (the API lives under /webrsf/v1/{userId}/)".into())
        })
        .method_not_allowed_fallback(|| async {
            json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed", "detail": "this resource does not take that method"}),
            )
        })
        .layer(axum::middleware::from_fn_with_state(gw.clone(), record))
        .with_state(gw)
}

const INDEX: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const FILES_JS: &str = include_str!("web/files.js");
const STYLE: &str = include_str!("web/style.css");

fn static_file(ct: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

// ---------------------------------------------------------------------------------------------
// Authentication and bodies, for the request handlers in `http/`.

/// The bearer token of a request's Authorization header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The user a request's token belongs to, checked against the path's `{userId}`. The token is
/// taken from `Authorization: Bearer` only: one in the URL ends up in logs and histories.
fn authed(
    gw: &Gateway,
    headers: &HeaderMap,
    q: &Query_,
    user: &str,
) -> Result<Arc<WebUser>, WebError> {
    let Some(token) = bearer(headers) else {
        return Err(WebError::Unauthorized(if q.contains_key("token") {
            "a token goes in Authorization: Bearer, not in the URL (the browser's channels use a ticket from POST Session/Ticket)".into()
        } else {
            "missing token (Authorization: Bearer TOKEN)".into()
        }));
    };
    let u = gw
        .user_by_token(&token)
        .ok_or_else(|| WebError::Unauthorized("unknown or expired token".into()))?;
    if u.aor != gw.aor_of(user)? {
        return Err(WebError::Forbidden(format!("the token is not {user}'s")));
    }
    Ok(u)
}

/// [`authed`] for the notification channels a browser opens: a bearer token, or a single-use
/// `?ticket=` from `POST Session/Ticket`.
fn authed_channel(
    gw: &Gateway,
    headers: &HeaderMap,
    q: &Query_,
    user: &str,
) -> Result<Arc<WebUser>, WebError> {
    let Some(ticket) = q.get("ticket") else {
        return authed(gw, headers, q, user);
    };
    let u = gw
        .user_by_ticket(ticket)
        .ok_or_else(|| WebError::Unauthorized("unknown, used or expired ticket".into()))?;
    if u.aor != gw.aor_of(user)? {
        return Err(WebError::Forbidden(format!("the ticket is not {user}'s")));
    }
    Ok(u)
}

/// A JSON object body (an empty body is `{}`); 413 over the limit, 400 when malformed.
async fn json_body(gw: &Gateway, body: Body) -> Result<Value, WebError> {
    let bytes = read_body(gw, body).await?;
    body::json_object(&bytes)
}

/// The whole body within `[webrsf] max_body` (else 413) and `[http] body_timeout_ms` (else 408).
async fn read_body(gw: &Gateway, body: Body) -> Result<Bytes, WebError> {
    let max = gw.settings().max_body;
    to_bytes(body, max).await.map_err(|e| {
        if crate::http_server::is_body_timeout(&e) {
            WebError::RequestTimeout("the body did not arrive in time".into())
        } else {
            WebError::TooLarge(format!("the body is larger than {max} bytes"))
        }
    })
}
