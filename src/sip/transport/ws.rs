//! SIP over WebSocket (RFC 7118) on a node's own listener (the P-CSCF's `[nodes] pcscf_ws`).
//!
//! The client opens the connection with an HTTP GET upgrade (RFC 6455 §4) on path `/` that
//! offers the `sip` subprotocol (RFC 7118 §4); anything else is refused with an HTTP 4xx and a
//! JSON body saying why. Each text or binary message carries one whole SIP message (RFC 7118
//! §5); a message larger than [`MAX_MESSAGE_SIZE`] closes that connection with close code 1009
//! and a reason, the others live on. Framing and masking are tungstenite's.
//!
//! Each connection is a flow (RFC 5626 §3): only the client can open one, so responses and
//! requests for that client go back over it (RFC 7118 §6), found by the client's socket
//! address in the flow table — the same key the P-CSCF's bindings hold for a UDP or TCP UE.
//! Connections count against [`SipLimits::max_tcp_connections`] with the TCP ones; the upgrade
//! must complete within [`SipLimits::tcp_message_timeout`]; the server pings every
//! [`WS_PING_EVERY`] and closes a connection that carried nothing (not even a pong) for
//! [`SipLimits::tcp_idle_timeout`]; each writer has a bounded queue
//! ([`SipLimits::tcp_write_queue`]) and every write a timeout.
//!
//! ```text
//!   accept ─> cap reached ──────────────────────────────> closed at once (counted refused)
//!          ─> upgrade: path / + subprotocol sip ─┬─ no ──> HTTP 4xx, closed
//!                                                └─ ok ──> Open (in the flow table)
//!   Open ─> text/binary frame ──> one SIP message up to the node (trace, metrics, budget)
//!        ─> frame too large ───> Close 1009 "…larger than 65535…"
//!        ─> idle / shutdown ───> Close 1001
//!        ─> peer Close / error ─> closed; the flow leaves the table
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{Counters, Datagram, SipTransport, Transport};
use crate::metrics::{Dir as MetricDir, SipCounters};
use crate::sip::limits::SipLimits;
use crate::sip::message::MAX_MESSAGE_SIZE;
use crate::trace::{first_line, Direction, Protocol, Trace};

/// The WebSocket subprotocol of SIP (RFC 7118 §4, IANA WebSocket Subprotocol Name Registry).
pub const WS_SUBPROTOCOL: &str = "sip";

/// How often the server pings an open connection (a browser answers by itself); the pong
/// keeps a live client from counting as idle.
pub const WS_PING_EVERY: Duration = Duration::from_secs(30);

/// What a connection's writer sends.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// One SIP message: a text frame (binary if it is not UTF-8, RFC 7118 §5).
    Sip(Bytes),
    /// A keep-alive ping.
    Ping,
    /// A close frame, then the writer ends.
    Close(CloseCode, String),
}

/// Gives a connection's slot back when it ends.
struct WsSlot(Arc<Counters>);

impl WsSlot {
    fn take(c: &Arc<Counters>) -> WsSlot {
        c.tcp_connections.fetch_add(1, Ordering::Relaxed);
        c.ws_connections.fetch_add(1, Ordering::Relaxed);
        WsSlot(c.clone())
    }
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        self.0.tcp_connections.fetch_sub(1, Ordering::Relaxed);
        self.0.ws_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Outgoing>>>>;

/// What one connection needs of its transport (not the transport itself: a connection must
/// not keep a stopped node alive).
struct Flow {
    remote: SocketAddr,
    /// The WebSocket listener's address (the recorder names it after the node).
    local: SocketAddr,
    inbound: mpsc::Sender<Datagram>,
    trace: Trace,
    limits: SipLimits,
    counters: Arc<Counters>,
    budget: Arc<tokio::sync::Semaphore>,
    metrics: Arc<std::sync::OnceLock<SipCounters>>,
    flows: Flows,
}

impl SipTransport {
    /// Listens for SIP over WebSocket on `addr` (port 0: any free port) and returns the bound
    /// address. Messages read go up with the UDP and TCP ones, as [`Transport::Ws`]; only one
    /// listener per transport.
    pub async fn listen_ws(self: &Arc<Self>, addr: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(a) = self.ws_local.get() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("this node already listens for SIP over WebSocket on {a}"),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let _ = self.ws_local.set(local);
        // Ladders name the WebSocket port after the node.
        self.trace.alias(local, self.local);
        tokio::spawn(accept_loop(self.clone(), listener, local));
        Ok(local)
    }

    /// The WebSocket listener's address, if this node has one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_local.get().copied()
    }

    /// Queues `bytes` on the WebSocket flow of the client at `dest`. There is no connecting
    /// out: a client that is not connected cannot be reached (RFC 7118 §5, RFC 5626 §5.3).
    pub(super) fn send_ws(&self, dest: SocketAddr, bytes: Bytes) -> io::Result<()> {
        let sender = self
            .ws_flows
            .lock()
            .ok()
            .and_then(|m| m.get(&dest).cloned())
            .filter(|s| !s.is_closed())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("no WebSocket connection from {dest} (the client must connect first)"),
                )
            })?;
        let local = self.ws_addr().unwrap_or(self.local);
        self.trace.record(
            Direction::Sent,
            Protocol::SipTcp,
            local,
            dest,
            &bytes,
            || first_line(&bytes),
        );
        self.count(MetricDir::Sent, &bytes);
        sender.try_send(Outgoing::Sip(bytes)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => io::Error::new(
                io::ErrorKind::WouldBlock,
                "WebSocket write queue full (the client does not read)",
            ),
            mpsc::error::TrySendError::Closed(_) => {
                io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket connection closed")
            }
        })
    }
}

async fn accept_loop(t: Arc<SipTransport>, listener: TcpListener, local: SocketAddr) {
    let mut shutdown = t.shutdown.clone();
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match r {
            Ok((stream, remote)) => {
                if t.counters.tcp_connections.load(Ordering::Relaxed)
                    >= t.limits.max_tcp_connections
                {
                    t.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    t.warn_rarely("SIP connection cap reached: closing new WebSocket connections");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let slot = WsSlot::take(&t.counters);
                let flow = Flow {
                    remote,
                    local,
                    inbound: t.inbound.clone(),
                    trace: t.trace.clone(),
                    limits: t.limits,
                    counters: t.counters.clone(),
                    budget: t.budget.clone(),
                    metrics: t.metrics.clone(),
                    flows: t.ws_flows.clone(),
                };
                let shutdown = t.shutdown.clone();
                tokio::spawn(async move {
                    flow.serve(stream, shutdown).await;
                    drop(slot);
                });
            }
            Err(e) => {
                crate::warn_limited!("sip.ws.accept", error = %e, "SIP WebSocket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// An HTTP refusal of the upgrade, with the JSON error body the lab's HTTP APIs use.
fn refuse(status: StatusCode, detail: &str) -> ErrorResponse {
    let body = serde_json::json!({
        "error": "not a SIP WebSocket upgrade",
        "detail": detail,
    })
    .to_string();
    let mut r = ErrorResponse::new(Some(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// RFC 7118 §4: the upgrade must be for `/` and offer the `sip` subprotocol, which the answer
/// then names.
// The shape tungstenite's handshake callback must have (its `Callback` trait).
#[allow(clippy::result_large_err)]
fn check_upgrade(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() != "/" {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            &format!(
                "SIP over WebSocket is served on path / only, not {}",
                req.uri().path()
            ),
        ));
    }
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !offered
        .iter()
        .any(|p| p.eq_ignore_ascii_case(WS_SUBPROTOCOL))
    {
        let got = if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        };
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            &format!("Sec-WebSocket-Protocol must offer 'sip' (RFC 7118 §4); offered: {got}"),
        ));
    }
    resp.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(WS_SUBPROTOCOL),
    );
    Ok(resp)
}

impl Flow {
    /// Upgrades the connection, then carries SIP messages both ways until either side closes,
    /// a limit is hit or the node shuts down.
    async fn serve(self, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_SIZE))
            .max_frame_size(Some(MAX_MESSAGE_SIZE));
        let upgrade =
            tokio_tungstenite::accept_hdr_async_with_config(stream, check_upgrade, Some(config));
        let ws = match tokio::time::timeout(self.limits.tcp_message_timeout, upgrade).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                tracing::debug!(remote = %self.remote, error = %e, "SIP WebSocket upgrade refused");
                return;
            }
            Err(_) => {
                self.counters.tcp_timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(remote = %self.remote, "SIP WebSocket upgrade did not complete in time");
                return;
            }
        };
        let (sink, mut read) = ws.split();
        let (tx, rx) = mpsc::channel::<Outgoing>(self.limits.tcp_write_queue.max(1));
        if let Ok(mut f) = self.flows.lock() {
            f.insert(self.remote, tx.clone());
        }
        let (done_tx, mut writer_done) = oneshot::channel::<()>();
        tokio::spawn(write_loop(
            sink,
            rx,
            self.limits.tcp_message_timeout,
            done_tx,
        ));
        let mut ping = tokio::time::interval(WS_PING_EVERY.min(self.limits.tcp_idle_timeout));
        ping.tick().await;
        let mut last_activity = tokio::time::Instant::now();
        loop {
            let idle_at = last_activity + self.limits.tcp_idle_timeout;
            tokio::select! {
                m = read.next() => match m {
                    None => break,
                    Some(Ok(msg)) => {
                        last_activity = tokio::time::Instant::now();
                        let data = match msg {
                            Message::Text(t) => Bytes::from(t),
                            Message::Binary(b) => b,
                            Message::Close(_) => break,
                            // tungstenite answers pings by itself.
                            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                        };
                        // A blank frame (a CRLF keep-alive some clients send) carries nothing.
                        if data.iter().all(|b| b.is_ascii_whitespace()) {
                            continue;
                        }
                        self.trace.record(Direction::Received, Protocol::SipTcp, self.local, self.remote, &data, || first_line(&data));
                        if let Some(m) = self.metrics.get() {
                            m.count(MetricDir::Received, &data);
                        }
                        if !self.deliver(data).await {
                            break;
                        }
                    }
                    Some(Err(WsError::Capacity(e))) => {
                        crate::warn_limited!("sip.ws.too_large", remote = %self.remote, error = %e, "closing SIP WebSocket connection: message too large");
                        let _ = tx.try_send(Outgoing::Close(
                            CloseCode::Size,
                            format!("SIP message larger than {MAX_MESSAGE_SIZE} bytes ({e})"),
                        ));
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(remote = %self.remote, error = %e, "SIP WebSocket connection ended");
                        break;
                    }
                },
                _ = ping.tick() => {
                    let _ = tx.try_send(Outgoing::Ping);
                }
                _ = tokio::time::sleep_until(idle_at) => {
                    self.counters.tcp_timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(remote = %self.remote, "closing SIP WebSocket connection: idle");
                    let _ = tx.try_send(Outgoing::Close(CloseCode::Away, "idle".into()));
                    break;
                }
                _ = shutdown.changed() => {
                    let _ = tx.try_send(Outgoing::Close(CloseCode::Away, "the node is shutting down".into()));
                    break;
                }
                _ = &mut writer_done => break,
            }
        }
        // The table forgets the flow (unless the client's address came back with a newer one).
        if let Ok(mut f) = self.flows.lock() {
            if f.get(&self.remote).is_some_and(|s| s.same_channel(&tx)) {
                f.remove(&self.remote);
            }
        }
        // Dropping the last sender lets the writer send what is queued (a close frame) and end.
        drop(tx);
    }

    /// Hands a message up, waiting while the node's queue is full (backpressure).
    async fn deliver(&self, bytes: Bytes) -> bool {
        let len = bytes.len();
        match self.budget.acquire_many(len as u32).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        let sent = self
            .inbound
            .send(Datagram {
                bytes,
                source: self.remote,
                transport: Transport::Ws,
                oversized: false,
                at: Instant::now(),
            })
            .await
            .is_ok();
        if !sent {
            self.budget.add_permits(len);
        }
        sent
    }
}

/// A connection's writer: one frame per queued item, each write within `write_timeout` (a
/// client that does not read is cut off rather than holding the writer).
async fn write_loop<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outgoing>,
    write_timeout: Duration,
    done: oneshot::Sender<()>,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    while let Some(out) = rx.recv().await {
        let (msg, last) = match out {
            Outgoing::Sip(b) => match Utf8Bytes::try_from(b.clone()) {
                Ok(t) => (Message::Text(t), false),
                Err(_) => (Message::Binary(b), false),
            },
            Outgoing::Ping => (Message::Ping(Bytes::new()), false),
            Outgoing::Close(code, reason) => (
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                true,
            ),
        };
        match tokio::time::timeout(write_timeout, sink.send(msg)).await {
            Ok(Ok(())) if !last => {}
            _ => break,
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    let _ = done.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(path: &str, protocol: Option<&str>) -> Request {
        let mut b = Request::builder()
            .uri(path)
            .header("Host", "127.0.0.1:5066")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(p) = protocol {
            b = b.header("Sec-WebSocket-Protocol", p);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_upgrade_needs_path_slash_and_the_sip_subprotocol() {
        let ok = check_upgrade(&upgrade("/", Some("chat, sip")), Response::default()).unwrap();
        assert_eq!(ok.headers()["Sec-WebSocket-Protocol"], "sip");
        let no = check_upgrade(&upgrade("/", None), Response::default()).unwrap_err();
        assert_eq!(no.status(), 400);
        assert!(no.body().as_deref().unwrap_or("").contains("offered: none"));
        let wrong = check_upgrade(&upgrade("/", Some("xmpp")), Response::default()).unwrap_err();
        assert!(wrong.body().as_deref().unwrap_or("").contains("xmpp"));
        let path = check_upgrade(&upgrade("/ws", Some("sip")), Response::default()).unwrap_err();
        assert_eq!(path.status(), 404);
    }
}
