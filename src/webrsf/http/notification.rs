//! The notification channel in its three forms (paper seed 000 §3, figure 4 steps 1-2):
//! `POST Notification/Streaming` (HTTP/1.1 chunked, RFC 9112 §7.1, one JSON event per chunk),
//! `GET Notification/SSE` (Server-Sent Events, WHATWG HTML §9.2, resumed with
//! `Last-Event-ID`) and `GET Notification/WebSocket` (RFC 6455, one event per text frame);
//! each replays the user's event log from a cursor, then follows it, with keep-alives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::record::ChunkRecorder;
use super::{authed, authed_channel, Gw, Query_};
use crate::http_server::ConnSlot;
use crate::webrsf::{ChannelGuard, Event, Gateway, WebError, WebUser};

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
pub(super) async fn streaming(
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
pub(super) async fn sse(
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
pub(super) async fn websocket(
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
