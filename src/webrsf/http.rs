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
//! | GET | `/History[?limit=N]` | the user's conversations, newest first, each with its newest message |
//! | GET | `/History/{peer}?after=SEQ&limit=N` | T-IM's numbered conversation after SEQ |
//! | GET | `/History/{peer}?last=N` | its newest N messages |
//!
//! Every call but `POST /Session` carries `Authorization: Bearer TOKEN`; tokens end after
//! `[webrsf] token_lifetime_secs`. The SSE and WebSocket channels also take `?ticket=`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::http_server::{ConnSlot, HttpLimits, TimedBody};

use super::{body, ChannelGuard, Event, Gateway, WebError, WebUser};
use crate::trace::{Direction, Protocol};

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
            hyper::service::service_fn(move |mut req: Request<TimedBody>| {
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
        .route("/History", get(conversations))
        .route("/History/{peer}", get(history));
    Router::new()
        .nest("/webrsf/v1/{user}", api)
        .route("/", get(|| async { static_file("text/html; charset=utf-8", INDEX) }))
        .route(
            "/app.js",
            get(|| async { static_file("text/javascript; charset=utf-8", APP_JS) }),
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
const STYLE: &str = include_str!("web/style.css");

fn static_file(ct: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

// ---------------------------------------------------------------------------------------------
// Authentication and bodies.

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

// ---------------------------------------------------------------------------------------------
// Handlers.

async fn login(
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
async fn refresh(
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
async fn ticket(
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

async fn logout(
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

async fn list_chats(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.list(&u)))
}

async fn start_chat(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let b = body::start_chat(&v)?;
    let (id, mid) = gw.start_chat(&u, b.to, b.text, b.ids).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "instance": gw.instance_url(&u.user_id, &id),
            "instance_id": id,
            "message_id": mid,
        }),
    ))
}

async fn get_instance(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let i = gw.instance(&u, &id)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "instance": gw.instance_url(&u.user_id, &id),
            "instance_id": id,
            "peer": gw.web_id(&i.peer),
            "state": i.state.as_str(),
            "conversation_id": i.conversation_id,
            "contribution_id": i.contribution_id,
        }),
    ))
}

async fn put_instance(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let b = body::instance_update(&v)?;
    Ok(json_response(
        StatusCode::OK,
        &gw.update(&u, &id, b.status, b.message_id)?,
    ))
}

async fn list_messages(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.messages(&u, &id)?))
}

async fn post_message(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let b = body::post_message(&v)?;
    let mid = gw.send(&u, &id, b.text, b.ids).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "message_id": mid }),
    ))
}

async fn put_status(
    State(gw): State<Gw>,
    Path((user, id, mid)): Path<(String, String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let status = body::message_status(&v)?;
    Ok(json_response(
        StatusCode::OK,
        &gw.message_status(&u, &id, &mid, status)?,
    ))
}

async fn composing(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let active = body::composing(&v)?;
    Ok(json_response(
        StatusCode::OK,
        &gw.composing(&u, &id, active)?,
    ))
}

/// `GET History/{peer}?after=SEQ&limit=N` (T-IM's numbered conversation).
async fn history(
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
async fn conversations(
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

/// `GET Chat/Media` (figure 5 step 9): chunked NDJSON, one waiting message per chunk.
async fn media(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let items = gw.media(&u);
    let rec = ChunkRecorder::new(&gw, remote);
    let chunks = items.into_iter().map(move |m| {
        let line = Bytes::from(format!("{m}\n"));
        rec.chunk(&line, || {
            format!(
                "chunk message {}",
                m.get("message_id").and_then(Value::as_str).unwrap_or("")
            )
        });
        Ok::<_, Infallible>(line)
    });
    let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Notification channels.

/// The replay cursor: `Last-Event-ID` (what an EventSource sends when it reconnects by itself,
/// repeating its original URL) wins over `?cursor=`.
fn cursor_of(headers: &HeaderMap, q: &Query_) -> Result<u64, WebError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
        .or_else(|| q.get("cursor").cloned());
    match raw {
        None => Ok(0),
        Some(s) if s.trim().is_empty() => Ok(0),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| WebError::BadRequest(format!("bad cursor '{s}'"))),
    }
}

/// One item of a channel: an event, or a keep-alive when nothing happened for a while.
enum Item {
    Event(Event),
    KeepAlive,
}

/// The events of `user` after `cursor`, then each new one as it comes, with keep-alives; ends
/// on logout or lab shutdown. Holds the channel guard while it lives.
fn channel(
    gw: &Gateway,
    user: Arc<WebUser>,
    cursor: u64,
    guard: ChannelGuard,
) -> impl futures_util::Stream<Item = Item> + Send + 'static {
    struct St {
        user: Arc<WebUser>,
        cursor: u64,
        pending: std::collections::VecDeque<Event>,
        newest: tokio::sync::watch::Receiver<u64>,
        closed: tokio::sync::watch::Receiver<bool>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        keepalive: Duration,
        /// `[webrsf] channel_max_secs` from the opening: then the channel ends and the client
        /// reconnects from its cursor.
        until: tokio::time::Instant,
        _guard: ChannelGuard,
    }
    let st = St {
        newest: user.watch_events(),
        closed: user.watch_closed(),
        shutdown: gw.shutdown(),
        keepalive: Duration::from_secs(gw.settings().keepalive_secs.max(1)),
        until: tokio::time::Instant::now()
            + Duration::from_secs(gw.settings().channel_max_secs.max(1)),
        user,
        cursor,
        pending: Default::default(),
        _guard: guard,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                st.cursor = ev.id;
                return Some((Item::Event(ev), st));
            }
            if *st.closed.borrow()
                || *st.shutdown.borrow()
                || tokio::time::Instant::now() >= st.until
            {
                return None;
            }
            if *st.newest.borrow_and_update() > st.cursor {
                st.pending = st.user.events_after(st.cursor).into();
                if st.pending.is_empty() {
                    // The log moved past a cursor newer than the newest event: nothing to do.
                    st.cursor = *st.newest.borrow();
                }
                continue;
            }
            tokio::select! {
                r = st.newest.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep(st.keepalive) => return Some((Item::KeepAlive, st)),
                _ = st.closed.changed() => return None,
                _ = st.shutdown.changed() => return None,
                _ = tokio::time::sleep_until(st.until) => return None,
            }
        }
    })
}

fn open(gw: &Gateway, u: &Arc<WebUser>) -> Result<ChannelGuard, WebError> {
    let max = gw.settings().max_channels_per_user;
    u.open_channel(max).ok_or_else(|| {
        WebError::TooMany(format!(
            "{} has {max} notification channels open already",
            u.user_id
        ))
    })
}

fn summary_of(ev: &Event) -> String {
    match ev.json["data"].get("status").and_then(Value::as_str) {
        Some(s) => format!("{} {s}", ev.kind),
        None => ev.kind.clone(),
    }
}

/// A notification channel as a streamed response: each item encoded by `encode` (bytes, and
/// the ladder summary of the chunk), recorded as the chunk it becomes, after `preamble`.
#[allow(clippy::too_many_arguments)]
fn channel_response(
    gw: &Gateway,
    user: Arc<WebUser>,
    cursor: u64,
    guard: ChannelGuard,
    remote: SocketAddr,
    content_type: &'static str,
    preamble: &'static [u8],
    encode: fn(Item) -> (Bytes, String),
) -> Response {
    let rec = ChunkRecorder::new(gw, remote);
    let events = futures_util::StreamExt::map(channel(gw, user, cursor, guard), move |item| {
        let (bytes, summary) = encode(item);
        rec.chunk(&bytes, || summary);
        Ok::<_, Infallible>(bytes)
    });
    let first = futures_util::stream::iter(
        (!preamble.is_empty()).then(|| Ok::<_, Infallible>(Bytes::from_static(preamble))),
    );
    let mut r = Response::new(Body::from_stream(futures_util::StreamExt::chain(
        first, events,
    )));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-webrsf-stream", HeaderValue::from_static("1"));
    r
}

/// `POST Notification/Streaming` (figure 4 steps 1-2): `200 OK`, chunked, one JSON event per
/// chunk (newline-terminated), `{"type":"keepalive"}` when idle.
async fn streaming(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let cursor = cursor_of(&headers, &q)?;
    let guard = open(&gw, &u)?;
    Ok(channel_response(
        &gw,
        u,
        cursor,
        guard,
        remote,
        "application/json",
        b"",
        |item| match item {
            Item::Event(ev) => (
                Bytes::from(format!("{}\n", ev.json)),
                format!("chunk {}", summary_of(&ev)),
            ),
            Item::KeepAlive => (
                Bytes::from_static(b"{\"type\":\"keepalive\"}\n"),
                "chunk keepalive".into(),
            ),
        },
    ))
}

/// `GET Notification/SSE`: the same events as Server-Sent Events (`id:` is the cursor, so a
/// browser's EventSource resumes with `Last-Event-ID` by itself).
async fn sse(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed_channel(&gw, &headers, &q, &user)?;
    let cursor = cursor_of(&headers, &q)?;
    let guard = open(&gw, &u)?;
    Ok(channel_response(
        &gw,
        u,
        cursor,
        guard,
        remote,
        "text/event-stream",
        b"retry: 2000\n\n",
        |item| match item {
            Item::Event(ev) => (
                Bytes::from(format!(
                    "id: {}\nevent: {}\ndata: {}\n\n",
                    ev.id, ev.kind, ev.json
                )),
                format!("event {}", summary_of(&ev)),
            ),
            Item::KeepAlive => (
                Bytes::from_static(b": keepalive\n\n"),
                "event keepalive".into(),
            ),
        },
    ))
}

/// `GET Notification/WebSocket`: one JSON event per text frame.
async fn websocket(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Query_,
    slot: Option<axum::Extension<ConnSlot>>,
    ws: WebSocketUpgrade,
) -> Result<Response, WebError> {
    let u = authed_channel(&gw, &headers, &q, &user)?;
    let cursor = cursor_of(&headers, &q)?;
    let guard = open(&gw, &u)?;
    let rec = ChunkRecorder::new(&gw, remote);
    let events = channel(&gw, u, cursor, guard);
    // The client only ever sends control frames and closes: nothing big to read.
    let max = gw.settings().max_body;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            // The upgraded connection still counts against the listener's cap.
            let _slot = slot;
            ws_loop(socket, events, rec).await
        }))
}

async fn ws_loop(
    mut socket: WebSocket,
    events: impl futures_util::Stream<Item = Item> + Send + 'static,
    rec: ChunkRecorder,
) {
    let mut events = Box::pin(events);
    loop {
        tokio::select! {
            item = futures_util::StreamExt::next(&mut events) => {
                let Some(item) = item else {
                    let _ = socket.send(WsMessage::Close(None)).await;
                    return;
                };
                let (text, summary) = match item {
                    Item::Event(ev) => (ev.json.to_string(), summary_of(&ev)),
                    Item::KeepAlive => ("{\"type\":\"keepalive\"}".to_string(), "keepalive".into()),
                };
                rec.chunk(&ws_frame(text.as_bytes()), || format!("ws {summary}"));
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return,
                _ => {}
            },
        }
    }
}

/// An unmasked server text frame (RFC 6455 §5.2), as it goes on the wire (for the pcap).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    let n = payload.len();
    if n < 126 {
        f.push(n as u8);
    } else if n < 65_536 {
        f.push(126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

// ---------------------------------------------------------------------------------------------
// Flight recorder.

/// Records the chunks of a streamed response as they are produced.
#[derive(Clone)]
struct ChunkRecorder {
    trace: crate::trace::Trace,
    local: Option<SocketAddr>,
    remote: SocketAddr,
}

impl ChunkRecorder {
    fn new(gw: &Gateway, remote: SocketAddr) -> Self {
        ChunkRecorder {
            trace: gw.trace().clone(),
            local: gw.http_addr(),
            remote,
        }
    }

    /// Records `data` as one HTTP/1.1 chunk (`size CRLF data CRLF`, the bytes hyper writes).
    fn chunk(&self, data: &[u8], summary: impl FnOnce() -> String) {
        let Some(local) = self.local else { return };
        if !self.trace.is_enabled() {
            return;
        }
        let mut wire = format!("{:x}\r\n", data.len()).into_bytes();
        wire.extend_from_slice(data);
        wire.extend_from_slice(b"\r\n");
        self.trace.record(
            Direction::Sent,
            Protocol::Http,
            local,
            self.remote,
            &wire,
            summary,
        );
    }
}

fn redact(s: &str) -> String {
    match s.find("token=") {
        Some(i) => {
            let end = s[i..].find('&').map(|e| i + e).unwrap_or(s.len());
            format!("{}token=***{}", &s[..i], &s[end..])
        }
        None => s.to_string(),
    }
}

/// Middleware: records each request as received and each response head (with its body when
/// it is not a stream) as sent, and names the client `Web <user>` in ladders.
async fn record(
    State(gw): State<Gw>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (trace, local) = (gw.trace().clone(), gw.http_addr());
    let (true, Some(local)) = (trace.is_enabled(), local) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    if let Some(user) = path
        .strip_prefix("/webrsf/v1/")
        .and_then(|r| r.split('/').next())
    {
        let user = percent_decode(user);
        gw.name(
            remote,
            &format!(
                "Web {}",
                gw.web_id(&gw.aor_of(&user).unwrap_or(user.clone()))
            ),
        );
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&gw, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let target = redact(
        &parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or(path.clone()),
    );
    let mut head = format!("{} {target} HTTP/1.1\r\n", parts.method);
    for (k, v) in &parts.headers {
        let v = if k == header::AUTHORIZATION {
            "Bearer ***".to_string()
        } else {
            v.to_str().unwrap_or("").to_string()
        };
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&bytes);
    let method = parts.method.clone();
    trace.record(
        Direction::Received,
        Protocol::Http,
        local,
        remote,
        &wire,
        || format!("{method} {path}"),
    );
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let streamed = resp.headers().contains_key("x-webrsf-stream")
        || resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"))
        || resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let status = resp.status();
    let line = format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove("x-webrsf-stream");
    let mut head = format!("{line}\r\n");
    for (k, v) in &parts.headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    if streamed {
        if status != StatusCode::SWITCHING_PROTOCOLS {
            head.push_str("transfer-encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        trace.record(
            Direction::Sent,
            Protocol::Http,
            local,
            remote,
            head.as_bytes(),
            || line,
        );
        return Response::from_parts(parts, body);
    }
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if !parts.headers.contains_key(header::CONTENT_LENGTH) {
        head.push_str(&format!("content-length: {}\r\n", bytes.len()));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&bytes);
    trace.record(
        Direction::Sent,
        Protocol::Http,
        local,
        remote,
        &wire,
        || line,
    );
    Response::from_parts(parts, Body::from(bytes))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

// ---------------------------------------------------------------------------------------------
// Push webhooks.

/// POSTs a JSON body to an `http://` URL (push webhooks); 5 s budget.
pub async fn post_json(url: &str, body: &str) -> Result<u16, String> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// webhooks are supported".into());
    }
    let host = uri.host().ok_or("URL without a host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let fut = async {
        let mut sender = crate::http_client::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, format!("{host}:{port}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<u16, String>(resp.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "webhook timed out".to_string())?
}
