//! The HSS provisioning REST API (in the spirit of PyHSS's).
//!
//! sled lets one process open a database, so while a lab runs, `rcslab subscriber ...` talks to
//! it through this API ([`super::admin_client`]); the lab writes the API's address to
//! `<data-dir>/admin.addr` and its token to `<data-dir>/admin.token` (0600).
//!
//! Every request but `GET /health` needs `Authorization: Bearer <token>`; Host must be an IP
//! literal or localhost on the API's port, cross-site Origins are refused, and bodies are
//! `application/json` (see [`super::admin_auth`]). Secrets are write-only: an answer says
//! whether a password, K and OPc are set (`password_set`, `k_set`, `opc_set`), never what
//! they are.
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | GET | `/health` | `{"status":"ok"}` (no token needed) |
//! | GET | `/subscribers[?limit=N&after=IMPI]` | `[SubscriberView]`, one page by IMPI, `Link: <...>; rel="next"` when more may follow |
//! | POST | `/subscribers` | one `SubscriberConfig` or an array of them -> 201 `[SubscriberView]` |
//! | GET | `/subscribers/{id}` | `SubscriberView` (id = IMPI or IMPU, percent-encoded) |
//! | PUT | `/subscribers/{id}/ifc` | `[IfcConfig]` -> 200 `SubscriberView` |
//! | DELETE | `/subscribers/{id}` | the removed `SubscriberView` |
//! | GET | `/trace?format=F&view=V` | the flight recorder (passwords, tokens and Digest-HA1 masked); `&call_id=`, `&user=`, `&since=SECONDS` filter it ([`crate::trace::filter`]) |
//! | DELETE | `/trace` | forgets what was recorded: `{"dropped": N}` messages |
//! | GET | `/status`, `/registrations`, `/metrics` | what the lab holds ([`super::admin_status`]) |
//! | GET | `/lists/{owner}` | `{"owner", "lists": {name: [members]}}`: the owner's resource lists at the RLS |
//! | PUT | `/lists/{owner}/{name}` | `{"members": [...]}` -> 200 `{"owner", "name", "uri", "members"}`, on disk first; subscribers to it get a partial NOTIFY |
//! | DELETE | `/lists/{owner}/{name}` | empties it (kept empty, so the buddy group's default does not return) |
//! | GET | `/presence/{presentity}/watchers` | `{"allow", "block", "pending"}`: who may watch (RFC 3856 §6.6) and who waits |
//! | PUT | `/presence/{presentity}/watchers` | `{"allow": [...], "block": [...]}` -> 200 as GET, on disk first; a pending watcher now allowed gets the state at once |
//!
//! A POST for a subscriber that exists replaces what it names: its password (required), its
//! identities and iFCs; K, OPc, AMF and SQN keep their stored values unless given (they were
//! replaced by random ones, which silently broke the subscriber's SIM).
//!
//! Errors are JSON `{"error": "...", "detail": "..."}` with 400, 401, 403, 404, 408, 409, 413,
//! 415 or 500.
//!
//! It is an axum [`Router`] served by [`crate::http_server::serve`], as WebRSF and T-IM's
//! history are; the guard is a middleware before every route and fallback. Its older quirks
//! stay, since scripts rely on them: leading and trailing slashes are trimmed before routing,
//! a known path with another method (HEAD included) is 404 "no such resource", never 405.
//!
//! `GET /subscribers` answers one page (default [`PAGE_DEFAULT`], at most [`PAGE_MAX`]): a
//! whole base in one answer was 32 MB for 10,000 subscribers. The answer stays the array it
//! always was; the next page's URL is in a `Link` header (RFC 8288, as GitHub's API pages),
//! and a page shorter than `limit` is the last.
//!
//! One file per resource: `/subscribers...` (provisioning, paging, the iFC PUT) in
//! `admin/subscribers.rs`, `/trace` in `admin/trace.rs`, `/status`, `/registrations` and
//! `/metrics` in [`super::admin_status`]; this file holds the router, the guard and the
//! plumbing they share (JSON answers, errors, bodies, query parameters).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, put};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use crate::config::IfcConfig;
use crate::http_server::{HttpLimits, TimedBody};
use crate::store::StoreError;
use crate::trace::source::TraceSource;

mod lists;
mod subscribers;
mod trace;

use lists::{list_clear, list_put, lists_show, watchers_put, watchers_show};
pub use subscribers::{
    add_subscribers, build_subscriber, AkaView, SubscriberView, PAGE_DEFAULT, PAGE_MAX,
};
use subscribers::{
    subscriber_ifc, subscriber_remove, subscriber_show, subscribers_add, subscribers_list,
};
use trace::{trace_clear, trace_export};

/// Largest request body accepted (a bulk import of ~20k subscribers fits).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

type Body = Full<Bytes>;

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, error: &str, detail: impl std::fmt::Display) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": error, "detail": detail.to_string() }),
    )
}

fn store_error(e: StoreError) -> Response<Body> {
    match e {
        StoreError::Invalid(_) => error(StatusCode::BAD_REQUEST, "invalid subscriber", e),
        StoreError::Conflict { .. } => error(StatusCode::CONFLICT, "identity conflict", e),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "store failure", e),
    }
}

/// Percent-decodes a path segment.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hexval = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One query parameter, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

/// Reads a request body within [`MAX_BODY`] and the body timeout.
async fn read_body(req: axum::extract::Request) -> Result<Bytes, Response<Body>> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if crate::http_server::is_body_timeout(&*e) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request timeout",
            "the body did not arrive in time",
        )),
        Err(e) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large or unreadable",
            e,
        )),
    }
}

/// What the API serves with.
struct Api {
    hss: Arc<crate::hss::Hss>,
    /// The flight recorder behind `/trace`.
    recorder: Arc<dyn TraceSource>,
    default_ifc: Vec<IfcConfig>,
    token: String,
    bound: SocketAddr,
    /// The lab's status, once every node runs.
    status: super::admin_status::StatusSlot,
}

/// The guard of [`super::admin_auth`] on a request.
fn guard<B>(api: &Api, req: &Request<B>) -> Result<(), Box<Response<Body>>> {
    let h = |name: hyper::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let presented = super::admin_auth::Presented {
        host: h(hyper::header::HOST),
        origin: h(hyper::header::ORIGIN),
        fetch_site: req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok()),
        authorization: h(hyper::header::AUTHORIZATION),
    };
    // Open as exactly `/health`, as asked: its other spellings need the token.
    let asked = req
        .extensions()
        .get::<AskedPath>()
        .map_or(req.uri().path(), |p| p.0.as_str());
    let open = req.method() == hyper::Method::GET && asked == "/health";
    super::admin_auth::check(presented, api.bound, &api.token, !open).map_err(|r| {
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut resp = error(status, r.error, r.detail);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"rcslab admin\""),
            );
        }
        Box::new(resp)
    })
}

/// A body-carrying request must say it is JSON: a cross-site page can send `text/plain` or a
/// form without asking, not `application/json`.
fn json_content<B>(req: &Request<B>) -> Result<(), Box<Response<Body>>> {
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "JSON needed",
            format!("Content-Type must be application/json, not '{ct}'"),
        )))
    }
}

/// The path as the client spelled it, before [`normalise`] trimmed its slashes: the guard's
/// `/health` test and the detail of a 404 read it.
#[derive(Debug, Clone)]
struct AskedPath(String);

/// Any number of leading and trailing slashes name the same resource (`//subscribers/` is
/// `/subscribers`), as the API has always answered; a doubled slash inside a path does not.
/// This runs before routing, which sees only the trimmed path.
fn normalise<B>(mut req: Request<B>) -> Request<B> {
    let asked = req.uri().path().to_string();
    let trimmed = format!("/{}", asked.trim_matches('/'));
    if trimmed != asked {
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse::<PathAndQuery>() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(AskedPath(asked));
    req
}

/// The routes, behind the guard ([`guard_layer`]): an unknown path and a known path with
/// another method both answer 404 "no such resource" (the API never answered 405), and HEAD
/// is no GET here.
fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/health", get(health).head(no_such_resource))
        .route(
            "/trace",
            get(trace_export).head(no_such_resource).delete(trace_clear),
        )
        .route("/status", get(status).head(no_such_resource))
        .route("/registrations", get(registrations).head(no_such_resource))
        .route("/metrics", get(metrics).head(no_such_resource))
        .route(
            "/subscribers",
            get(subscribers_list)
                .head(no_such_resource)
                .post(subscribers_add),
        )
        .route(
            "/subscribers/{id}",
            get(subscriber_show)
                .head(no_such_resource)
                .delete(subscriber_remove),
        )
        .route("/subscribers/{id}/ifc", put(subscriber_ifc))
        .route("/lists/{owner}", get(lists_show).head(no_such_resource))
        .route("/lists/{owner}/{name}", put(list_put).delete(list_clear))
        .route(
            "/presence/{presentity}/watchers",
            get(watchers_show).head(no_such_resource).put(watchers_put),
        )
        .fallback(no_such_resource)
        .method_not_allowed_fallback(no_such_resource)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            guard_layer,
        ))
        .with_state(api)
}

/// [`guard`] before any route or fallback answers.
async fn guard_layer(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match guard(&api, &req) {
        Ok(()) => next.run(req).await,
        Err(refused) => axum::response::IntoResponse::into_response(*refused),
    }
}

/// 404 for whatever the routes do not name, with the path as asked.
async fn no_such_resource(req: axum::extract::Request) -> Response<Body> {
    let asked = req
        .extensions()
        .get::<AskedPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.0.clone());
    error(StatusCode::NOT_FOUND, "no such resource", asked)
}

/// `GET /health`.
async fn health() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /status`.
async fn status(State(api): State<Arc<Api>>) -> Response<Body> {
    super::admin_status::status(&api.status).await
}

/// `GET /registrations`.
async fn registrations(State(api): State<Arc<Api>>) -> Response<Body> {
    super::admin_status::registrations(&api.status).await
}

/// `GET /metrics`.
async fn metrics(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response<Body> {
    super::admin_status::metrics(&api.status, &headers).await
}

/// Serves the API on `listener` until shutdown, within `limits` (timeouts, connection cap).
/// Requests must carry `token` ([`super::admin_auth`]). `status` is filled by the lab once
/// its nodes run.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    limits: HttpLimits,
    hss: Arc<crate::hss::Hss>,
    recorder: impl TraceSource + 'static,
    default_ifc: Vec<IfcConfig>,
    token: String,
    status: super::admin_status::StatusSlot,
    shutdown: watch::Receiver<bool>,
) {
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "admin API: no local address; not serving");
            return;
        }
    };
    if !bound.ip().is_loopback() {
        tracing::warn!(
            addr = %bound,
            "the admin API listens beyond this machine: anyone who can reach it and holds the token can change subscribers; bind it to 127.0.0.1 unless you mean it"
        );
    }
    let api = Arc::new(Api {
        hss,
        recorder: Arc::new(recorder),
        default_ifc,
        token,
        bound,
        status,
    });
    let app = router(api);
    crate::http_server::serve(listener, limits, "admin", shutdown, move |_, _slot| {
        let app = app.clone();
        hyper::service::service_fn(move |req: Request<TimedBody>| {
            let mut app = app.clone();
            async move { app.call(normalise(req.map(axum::body::Body::new))).await }
        })
    })
    .await
}
