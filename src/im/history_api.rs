//! T-IM's history endpoint: the conversations T-IM stored (seed 004), read by the WebRSF
//! gateway over HTTP/1.1 (RFC 9112) on its own socket (`[nodes] tim_http`), so that the
//! gateway never opens T-IM's store and the two can run as separate processes or hosts
//! (issue 15: nodes talk only through sockets).
//!
//! Why HTTP and not SIP: history is a read of stored data with paging, not a session or a
//! page-mode message; OMA CPM's Message Storage Server is reached over IMAP/REST for the same
//! reason. A small JSON API keeps T-IM's SIP side unchanged.
//!
//! Authentication: every request carries `Authorization: Bearer <token>` (RFC 6750 §2.1); the
//! token is 256 random bits that T-IM keeps in `<its data dir>/history.token` (mode 0600).
//! Without it, or with another one: 401 and nothing about any message. `rcslab up` hands the
//! token to its gateway in-process; `rcslab run webrsf` reads the same file from
//! `<data dir>/tim/` (the T-IM's sub-directory), so on another host copy that file there.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/history?a=AOR&b=AOR&after=SEQ&limit=N` | the conversation of `a` and `b` after `SEQ`, oldest first |
//! | GET | `/history?a=AOR&b=AOR&last=N` | its newest N messages, oldest first |
//! | GET | `/conversations?user=AOR&limit=N` | `user`'s conversations, newest first, each with its newest message |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use super::store::{ImStore, StoredMessage};
use crate::http_server::HttpLimits;

/// The token's file in T-IM's data directory.
pub const TOKEN_FILE: &str = "history.token";

/// Most messages or conversations one answer holds.
const MAX_ITEMS: usize = 1000;

/// One conversation of `GET /conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// The other party (AoR).
    pub peer: String,
    /// The conversation's newest sequence number.
    pub last_seq: u64,
    /// Its newest message.
    pub last: Option<StoredMessage>,
}

/// Why a history request failed (the gateway answers the web client 502 or 404 with it).
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// T-IM could not be reached.
    #[error("T-IM's history endpoint {addr} does not answer: {source}")]
    Unreachable {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No token to present (T-IM's `history.token` is not where the gateway looks).
    #[error(
        "no history token in {0} (T-IM writes it when it starts; copy it there on another host)"
    )]
    NoToken(String),
    /// T-IM answered with an error status.
    #[error("T-IM's history endpoint answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The answer was not the JSON expected.
    #[error("T-IM's history answer is not valid JSON: {0}")]
    Invalid(serde_json::Error),
}

/// Serves the history endpoint on `listener` until `shutdown`, with the listener limits every
/// HTTP server of the lab shares ([`crate::http_server`]).
pub async fn serve(
    listener: TcpListener,
    limits: HttpLimits,
    store: ImStore,
    token: String,
    shutdown: watch::Receiver<bool>,
) {
    let app = router(store, token);
    crate::http_server::serve(listener, limits, "T-IM history", shutdown, move |_, _| {
        let app = app.clone();
        hyper::service::service_fn(move |req: Request<crate::http_server::TimedBody>| {
            let mut app = app.clone();
            async move { app.call(req.map(axum::body::Body::new)).await }
        })
    })
    .await
}

/// What the handlers share.
#[derive(Clone)]
struct Endpoint {
    store: ImStore,
    token: Arc<str>,
}

/// The routes, behind the token: a request without it gets 401 whatever it asks, then a
/// method other than GET 405, then an unknown path 404.
fn router(store: ImStore, token: String) -> Router {
    let ep = Endpoint {
        store,
        token: token.into(),
    };
    Router::new()
        // axum would answer HEAD with the GET handler; this endpoint has always been GET only.
        .route("/history", get(history).head(method_not_allowed))
        .route(
            "/conversations",
            get(conversations).head(method_not_allowed),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(ep.clone(), bearer))
        .with_state(ep)
}

/// The token first (RFC 6750 §2.1), before the method and the path.
async fn bearer(
    State(ep): State<Endpoint>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<axum::body::Body> {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::hss::admin_auth::same(presented.as_bytes(), ep.token.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization: Bearer <T-IM's history.token> required",
        )
        .map(axum::body::Body::new);
    }
    next.run(req).await
}

fn get_only() -> Response<Full<Bytes>> {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        "GET only",
    )
}

async fn method_not_allowed() -> Response<Full<Bytes>> {
    get_only()
}

/// An unknown path: 405 for a method other than GET (as on a known one), else 404.
async fn not_found(method: Method) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return get_only();
    }
    refused(Refusal::NotFound)
}

fn refused(r: Refusal) -> Response<Full<Bytes>> {
    match r {
        Refusal::BadParameter(d) => error(StatusCode::BAD_REQUEST, "bad parameter", &d),
        Refusal::NotFound => error(StatusCode::NOT_FOUND, "not found", "no such resource"),
    }
}

/// `GET /history`: the conversation of `a` and `b` after `after` (or its `last` N).
async fn history(State(ep): State<Endpoint>, uri: Uri) -> Response<Full<Bytes>> {
    let read = || -> Result<Vec<StoredMessage>, Refusal> {
        let limit = limit(&uri)?;
        let (Some(a), Some(b)) = (param(&uri, "a"), param(&uri, "b")) else {
            return Err(Refusal::BadParameter(
                "a and b (the two AoRs) are required".into(),
            ));
        };
        Ok(match number(&uri, "last")? {
            Some(n) => ep
                .store
                .history_tail(&a, &b, (n as usize).clamp(1, MAX_ITEMS)),
            None => ep
                .store
                .history(&a, &b, number(&uri, "after")?.unwrap_or(0), limit),
        })
    };
    match read() {
        Ok(items) => json(StatusCode::OK, &items),
        Err(r) => refused(r),
    }
}

/// `GET /conversations`: `user`'s conversations, newest first, each with its newest message.
async fn conversations(State(ep): State<Endpoint>, uri: Uri) -> Response<Full<Bytes>> {
    let read = || -> Result<Vec<ConversationView>, Refusal> {
        let limit = limit(&uri)?;
        let Some(user) = param(&uri, "user") else {
            return Err(Refusal::BadParameter("user (an AoR) is required".into()));
        };
        Ok(ep
            .store
            .conversations(&user, limit)
            .into_iter()
            .map(|(peer, last_seq)| ConversationView {
                last: ep.store.history_tail(&user, &peer, 1).into_iter().next(),
                peer,
                last_seq,
            })
            .collect())
    };
    match read() {
        Ok(items) => json(StatusCode::OK, &items),
        Err(r) => refused(r),
    }
}

fn json(status: StatusCode, v: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, error: &str, detail: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({ "error": error, "detail": detail }),
    )
}

fn param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| crate::hss::admin::percent_decode(v))
    })
}

/// A request the endpoint cannot serve.
#[derive(Debug)]
enum Refusal {
    /// 400: a parameter is missing or not a number.
    BadParameter(String),
    /// 404: no such resource.
    NotFound,
}

fn number(uri: &Uri, name: &str) -> Result<Option<u64>, Refusal> {
    match param(uri, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Refusal::BadParameter(format!("{name} must be a number"))),
    }
}

/// `limit`: 100 unless given, within 1..=[`MAX_ITEMS`].
fn limit(uri: &Uri) -> Result<usize, Refusal> {
    Ok(number(uri, "limit")?
        .unwrap_or(100)
        .clamp(1, MAX_ITEMS as u64) as usize)
}

/// Where the client finds the token.
#[derive(Clone)]
pub enum HistoryToken {
    /// Known (`rcslab up`: the gateway and T-IM share a process).
    Given(String),
    /// Read at each request from `DIR/history.token` (`rcslab run webrsf`: T-IM may start later).
    File(PathBuf),
}

/// The gateway's side: asks T-IM's history endpoint.
#[derive(Clone)]
pub struct HistoryClient {
    /// The endpoint.
    pub addr: SocketAddr,
    token: HistoryToken,
}

impl std::fmt::Debug for HistoryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: it stays out of logs.
        f.debug_struct("HistoryClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long one history request may take (connect, send, whole answer).
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl HistoryClient {
    /// A client of the endpoint at `addr`.
    pub fn new(addr: SocketAddr, token: HistoryToken) -> HistoryClient {
        HistoryClient { addr, token }
    }

    fn token(&self) -> Result<String, HistoryError> {
        match &self.token {
            HistoryToken::Given(t) => Ok(t.clone()),
            HistoryToken::File(dir) => crate::hss::admin_auth::read_token_file(dir, TOKEN_FILE)
                .ok_or_else(|| HistoryError::NoToken(dir.join(TOKEN_FILE).display().to_string())),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: String) -> Result<T, HistoryError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token()?))
            .body(Full::new(Bytes::new()))
            .map_err(|e| HistoryError::Unreachable {
                addr: self.addr,
                source: std::io::Error::other(e),
            })?;
        let (status, body) = crate::http_client::send(self.addr, req, CLIENT_TIMEOUT)
            .await
            .map_err(|source| HistoryError::Unreachable {
                addr: self.addr,
                source,
            })?;
        if status != 200 {
            return Err(HistoryError::Refused {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(HistoryError::Invalid)
    }

    /// The conversation of `a` and `b` after `after`, at most `limit` messages.
    pub async fn history(
        &self,
        a: &str,
        b: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        let e = crate::hss::admin::percent_encode;
        self.get(format!(
            "/history?a={}&b={}&after={after}&limit={limit}",
            e(a),
            e(b)
        ))
        .await
    }

    /// The newest `last` messages of the conversation of `a` and `b`.
    pub async fn history_tail(
        &self,
        a: &str,
        b: &str,
        last: usize,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        let e = crate::hss::admin::percent_encode;
        self.get(format!("/history?a={}&b={}&last={last}", e(a), e(b)))
            .await
    }

    /// `user`'s conversations, newest first.
    pub async fn conversations(
        &self,
        user: &str,
        limit: usize,
    ) -> Result<Vec<ConversationView>, HistoryError> {
        let e = crate::hss::admin::percent_encode;
        self.get(format!("/conversations?user={}&limit={limit}", e(user)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn message(from: &str, to: &str, id: &str) -> StoredMessage {
        StoredMessage {
            seq: 0,
            from: from.into(),
            to: to.into(),
            message_id: id.into(),
            cpim_b64: String::new(),
            stored_at_ms: 0,
            contribution_id: String::new(),
            conversation_id: String::new(),
            status: "sent".into(),
        }
    }

    async fn call(
        store: &ImStore,
        method: Method,
        auth: Option<&str>,
        uri: &str,
    ) -> (u16, serde_json::Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let mut app = router(store.clone(), "t0ken".into());
        let r = app
            .call(b.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        // A HEAD answer has no body.
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn get(store: &ImStore, auth: Option<&str>, uri: &str) -> (u16, serde_json::Value) {
        call(store, Method::GET, auth, uri).await
    }

    #[tokio::test]
    async fn only_the_token_holder_reads_history_and_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = ImStore::open(&db, crate::store::GroupCommit::new(&db)).unwrap();
        for id in ["m1", "m2", "m3"] {
            store.put(message("sip:a@x", "sip:b@x", id), false).unwrap();
        }
        let q = "/history?a=sip%3Aa%40x&b=sip:b@x";
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("t0ken"),
            Some("Basic t0ken"),
        ] {
            let (s, v) = get(&store, auth, q).await;
            assert_eq!(s, 401, "{auth:?}");
            assert!(!v.to_string().contains("m1"), "{v}");
        }
        let ok = Some("Bearer t0ken");
        let (s, v) = get(&store, ok, q).await;
        assert_eq!(s, 200);
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["m1", "m2", "m3"]);
        let first = v[0]["seq"].as_u64().unwrap();
        let (_, after) = get(&store, ok, &format!("{q}&after={first}&limit=1")).await;
        assert_eq!(after[0]["message_id"], "m2");
        assert_eq!(after.as_array().unwrap().len(), 1);
        let (_, tail) = get(&store, ok, &format!("{q}&last=1")).await;
        assert_eq!(tail[0]["message_id"], "m3");
        let (s, c) = get(&store, ok, "/conversations?user=sip:b@x").await;
        assert_eq!(s, 200);
        assert_eq!(c[0]["peer"], "sip:a@x");
        assert_eq!(c[0]["last"]["message_id"], "m3");
        let (s, e) = get(&store, ok, &format!("{q}&after=x")).await;
        assert_eq!((s, e["error"].as_str()), (400, Some("bad parameter")));
        assert_eq!(get(&store, ok, "/history?a=sip:a@x").await.0, 400);
        assert_eq!(get(&store, ok, "/subscribers").await.0, 404);
        // The token before the method, the method before the path; JSON errors throughout.
        let (s, e) = call(&store, Method::POST, None, "/history").await;
        assert_eq!((s, e["error"].as_str()), (401, Some("unauthorized")));
        let (s, e) = call(&store, Method::POST, ok, "/history").await;
        assert_eq!((s, e["error"].as_str()), (405, Some("method not allowed")));
        let (s, _) = call(&store, Method::HEAD, ok, q).await;
        assert_eq!(s, 405);
        let (s, e) = call(&store, Method::DELETE, ok, "/nothing").await;
        assert_eq!((s, e["error"].as_str()), (405, Some("method not allowed")));
        let (s, e) = call(&store, Method::GET, None, "/nothing").await;
        assert_eq!((s, e["error"].as_str()), (401, Some("unauthorized")));
        let (s, e) = get(&store, ok, "/nothing").await;
        assert_eq!((s, e["error"].as_str()), (404, Some("not found")));
    }
}
