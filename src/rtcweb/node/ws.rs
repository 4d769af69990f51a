//! The gateway's web server (patent figure 5, web server module and WebSocket module): its
//! page at `/` and the patent's protocol at `/ws` (HTTP GET with `Upgrade: websocket` ->
//! 101, RFC 6455), one JSON message per text frame ([`crate::rtcweb::message`]).
//!
//! A connection's first message must be `REGISTER`; a frame the codec refuses, one in the
//! wrong state, or one too large (up to [`MAX_WS_MESSAGE`]) gets `ERROR` with the reason and
//! changes nothing else. Larger messages end the connection (close 1009). A page that sends
//! nothing for `[rtcweb] idle_secs` (our pings keep a live browser talking) is disconnected.
//! Every frame is recorded in the flight recorder (a `password` as `***`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower_service::Service;

use super::{RtcwebGateway, PAGE_QUEUE};
use crate::http_server::{ConnSlot, HttpLimits, TimedBody};
use crate::rtcweb::message::{Kind, WebMessage, MAX_FRAME};
use crate::trace::{Direction, Protocol};

/// The largest WebSocket message read: past [`MAX_FRAME`] a message gets `ERROR`, past this
/// the connection ends.
pub const MAX_WS_MESSAGE: usize = 4 * MAX_FRAME;

/// How much of a page's socket is read at a time, and the read buffer a connection starts
/// with. tungstenite's default (128 KiB) is allocated per connection and zero-filled before
/// the first read, so it was resident for every idle page (128 of the 160 KiB each cost,
/// issue 17). Our frames are small JSON (an SDP offer is a few KiB); a larger frame grows
/// the buffer to its length when its header is read, up to [`MAX_WS_MESSAGE`].
const READ_CHUNK: usize = 4 * 1024;

const INDEX: &str = include_str!("../web/index.html");

type Gw = Arc<RtcwebGateway>;

/// Serves the page and the WebSocket on `listener` until the lab stops.
pub async fn serve(
    gw: Gw,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: watch::Receiver<bool>,
) {
    if let Ok(a) = listener.local_addr() {
        gw.set_http_addr(a);
    }
    let ping = Duration::from_secs((gw.settings().idle_secs / 3).max(1));
    let limits = HttpLimits {
        max_connections: gw.settings().max_connections,
        idle_timeout: limits.idle_timeout.max(3 * ping),
        ..limits
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/ws", get(upgrade))
        .with_state(gw);
    crate::http_server::serve(listener, limits, "RTCWeb", shutdown, move |remote, slot| {
        let app = app.clone();
        hyper::service::service_fn(move |mut req: axum::http::Request<TimedBody>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            req.extensions_mut().insert(slot.clone());
            let mut app = app.clone();
            async move { app.call(req.map(Body::new)).await }
        })
    })
    .await
}

async fn index(State(gw): State<Gw>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX.replace("{{DOMAIN}}", gw.domain()),
    )
        .into_response()
}

async fn upgrade(
    State(gw): State<Gw>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    slot: Option<axum::Extension<ConnSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
    let rec = Recorder {
        gw: gw.clone(),
        remote,
    };
    rec.http(Direction::Received, "GET /ws", || {
        let mut h = String::from("GET /ws HTTP/1.1\r\n");
        for (k, v) in &headers {
            h.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
        }
        h + "\r\n"
    });
    rec.http(Direction::Sent, "101 Switching Protocols", || {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_string()
    });
    ws.read_buffer_size(READ_CHUNK)
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        // The connection's future is the upgrade task's, held for the page's life: passed as
        // is (no wrapping `async` block keeping a second copy of the socket).
        .on_upgrade(move |socket| connection(gw, socket, rec, slot))
}

/// Records what crosses a page's connection.
struct Recorder {
    gw: Gw,
    remote: SocketAddr,
}

impl Recorder {
    fn http(&self, dir: Direction, summary: &str, bytes: impl FnOnce() -> String) {
        let (Some(local), true) = (self.gw.http_addr(), self.gw.trace().is_enabled()) else {
            return;
        };
        let b = bytes();
        self.gw.trace().record(
            dir,
            Protocol::Http,
            local,
            self.remote,
            b.as_bytes(),
            || summary.to_string(),
        );
    }

    /// One frame (its payload as an unmasked frame, so a capture decodes it).
    fn frame(&self, dir: Direction, m: &WebMessage) {
        let (Some(local), true) = (self.gw.http_addr(), self.gw.trace().is_enabled()) else {
            return;
        };
        let mut shown = m.clone();
        if shown.password.is_some() {
            shown.password = Some("***".into());
        }
        let wire = frame_bytes(shown.to_json().as_bytes());
        self.gw
            .trace()
            .record(dir, Protocol::Http, local, self.remote, &wire, || {
                format!("ws {}", summary(m))
            });
    }
}

/// What a ladder shows of a frame: its type, and what it is for.
fn summary(m: &WebMessage) -> String {
    match (m.kind, m.of, &m.state) {
        (Kind::Ok | Kind::Error, Some(of), _) => format!("{} ({})", m.kind.as_str(), of.as_str()),
        (Kind::State, _, Some(s)) => format!("STATE {}", s.as_str()),
        _ => m.kind.as_str().to_string(),
    }
}

/// An unmasked text frame (RFC 6455 §5.2).
fn frame_bytes(payload: &[u8]) -> Vec<u8> {
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

/// One page's connection, until it closes. `_slot` keeps it counted against
/// `max_connections`.
async fn connection(
    gw: Gw,
    mut socket: WebSocket,
    rec: Recorder,
    _slot: Option<axum::Extension<ConnSlot>>,
) {
    let id = gw.page_opened();
    let (tx, mut rx) = mpsc::channel::<Box<WebMessage>>(PAGE_QUEUE);
    let (closed_tx, mut closed) = watch::channel(false);
    let idle = Duration::from_secs(gw.settings().idle_secs.max(1));
    let mut ping = tokio::time::interval((idle / 3).max(Duration::from_millis(100)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let mut user: Option<String> = None;
    let mut closed_tx = Some(closed_tx);
    loop {
        tokio::select! {
            m = socket.recv() => {
                let text = match m {
                    Some(Ok(WsMessage::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                        last_heard = tokio::time::Instant::now();
                        continue;
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                };
                last_heard = tokio::time::Instant::now();
                let msg = match WebMessage::parse(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        let err = e.to_web();
                        rec.frame(Direction::Sent, &err);
                        if send(&mut socket, &err).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                rec.frame(Direction::Received, &msg);
                match (&user, msg.kind) {
                    (None, Kind::Register) => {
                        let aor = msg.from.clone().unwrap_or_default();
                        let aor = crate::rtcweb::route::normalize(&aor);
                        let secret = msg.password.clone().unwrap_or_default();
                        let Some(ctx) = closed_tx.clone() else { break };
                        // Boxed: the login (an IMS registration) lives only while it runs;
                        // inline, every idle page's future kept room for it (240 B).
                        let login = Box::pin(gw.attach(id, rec.remote, &aor, &secret, tx.clone(), ctx));
                        let answer = match login.await {
                            Ok(token) => {
                                user = Some(aor.clone());
                                let mut ok = WebMessage::ok(None, Kind::Register);
                                ok.from = Some(aor);
                                ok.body = Some(token);
                                ok
                            }
                            Err(e) => WebMessage::error(None, Some(Kind::Register), e.to_string()),
                        };
                        // Sent through the queue, so that it comes before any frame of a call
                        // that re-attached.
                        if tx.try_send(Box::new(answer)).is_err() {
                            break;
                        }
                    }
                    (None, k) => {
                        let err = WebMessage::error(msg.session.as_deref(), Some(k), "REGISTER first");
                        rec.frame(Direction::Sent, &err);
                        if send(&mut socket, &err).await.is_err() {
                            break;
                        }
                    }
                    (Some(u), _) => gw.on_frame(id, Some(u), msg),
                }
            }
            Some(out) = rx.recv() => {
                rec.frame(Direction::Sent, &out);
                if send(&mut socket, &out).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle {
                    break;
                }
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = closed.changed() => {
                let _ = socket.send(WsMessage::Close(None)).await;
                break;
            }
        }
    }
    closed_tx.take();
    if let Some(u) = user {
        gw.page_closed(&u, id);
    }
}

async fn send(socket: &mut WebSocket, m: &WebMessage) -> Result<(), axum::Error> {
    tokio::time::timeout(
        Duration::from_secs(10),
        socket.send(WsMessage::Text(m.to_json().into())),
    )
    .await
    .map_err(axum::Error::new)?
}
