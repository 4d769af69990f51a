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

use crate::config::{IfcConfig, SubscriberConfig};
use crate::http_server::{HttpLimits, TimedBody};
use crate::store::{default_impi, AkaCredentials, Store, StoreError, Subscriber};
use crate::trace::source::TraceSource;

/// Largest request body accepted (a bulk import of ~20k subscribers fits).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Subscribers per page of `GET /subscribers` when the request names no `limit`.
pub const PAGE_DEFAULT: usize = 100;
/// Largest `limit` of `GET /subscribers`.
pub const PAGE_MAX: usize = 1000;

/// Builds a stored subscriber from its provisioning form: the IMPI defaults to `user@domain`,
/// missing AKA keys are generated at random, a missing `ifc` list means `default_ifc`.
///
/// `existing`: the stored subscriber this spec updates, whose K, OPc, AMF and SQN stay when
/// the spec does not give them.
pub fn build_subscriber(
    spec: &SubscriberConfig,
    default_ifc: &[IfcConfig],
    existing: Option<&Subscriber>,
) -> Result<Subscriber, StoreError> {
    let first = spec
        .impu
        .first()
        .ok_or_else(|| StoreError::Invalid("at least one public identity is needed".into()))?;
    let impi = match &spec.impi {
        Some(i) if !i.is_empty() => i.clone(),
        _ => default_impi(first)?,
    };
    let impus = spec
        .impu
        .iter()
        .map(|i| crate::store::canonical_identity(i))
        .collect::<Result<Vec<_>, _>>()?;
    let random_hex = || hex::encode(rand::random::<[u8; 16]>());
    let ifcs = spec
        .ifc
        .as_deref()
        .unwrap_or(default_ifc)
        .iter()
        .map(|i| i.to_profile())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(Subscriber {
        impi,
        impus,
        password: spec.password.clone(),
        aka: AkaCredentials {
            k: spec
                .k
                .clone()
                .or_else(|| existing.map(|e| e.aka.k.clone()))
                .unwrap_or_else(random_hex),
            opc: spec
                .opc
                .clone()
                .or_else(|| existing.map(|e| e.aka.opc.clone()))
                .unwrap_or_else(random_hex),
            amf: spec
                .amf
                .clone()
                .or_else(|| existing.map(|e| e.aka.amf.clone()))
                .unwrap_or_else(|| "8000".into()),
            sqn: spec
                .sqn
                .or_else(|| existing.map(|e| e.aka.sqn))
                .unwrap_or(32),
        },
        ifcs,
    })
}

/// Validates and stores many subscribers with one flush; nothing is written if one is invalid.
pub fn add_subscribers(
    store: &Store,
    specs: &[SubscriberConfig],
    default_ifc: &[IfcConfig],
) -> Result<Vec<Subscriber>, StoreError> {
    let subs = specs
        .iter()
        .map(|s| {
            let id = s.impi.clone().or_else(|| s.impu.first().cloned());
            let existing = match id {
                Some(id) => store.find(&id)?,
                None => None,
            };
            build_subscriber(s, default_ifc, existing.as_ref())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for s in &subs {
        store.put_subscriber(s)?;
    }
    store.flush()?;
    Ok(subs)
}

/// A subscriber as the API shows it: everything but the secrets, and whether each is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriberView {
    /// Private identity.
    pub impi: String,
    /// Public identities, the default one first.
    pub impus: Vec<String>,
    /// A SIP Digest password is set.
    pub password_set: bool,
    /// AKA: whether K and OPc are set, and AMF and the next SQN.
    pub aka: AkaView,
    /// Initial filter criteria.
    #[serde(default)]
    pub ifcs: Vec<crate::profile::InitialFilterCriteria>,
}

/// The AKA part of [`SubscriberView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AkaView {
    /// K is set.
    pub k_set: bool,
    /// OPc is set.
    pub opc_set: bool,
    /// Authentication management field.
    pub amf: String,
    /// The next SQN the HSS will use.
    pub sqn: u64,
}

impl From<&Subscriber> for SubscriberView {
    fn from(s: &Subscriber) -> Self {
        SubscriberView {
            impi: s.impi.clone(),
            impus: s.impus.clone(),
            password_set: !s.password.is_empty(),
            aka: AkaView {
                k_set: !s.aka.k.is_empty(),
                opc_set: !s.aka.opc.is_empty(),
                amf: s.aka.amf.clone(),
                sqn: s.aka.sqn,
            },
            ifcs: s.ifcs.clone(),
        }
    }
}

fn views<'a>(subs: impl IntoIterator<Item = &'a Subscriber>) -> Vec<SubscriberView> {
    subs.into_iter().map(SubscriberView::from).collect()
}

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

/// `GET /subscribers?limit=N&after=IMPI`: one page, ordered by IMPI.
fn subscribers_page(store: &Store, uri: &Uri) -> Response<Body> {
    let limit = match query_param(uri, "limit") {
        None => PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad limit",
                    format!("limit must be 1..={PAGE_MAX}, not '{l}'"),
                )
            }
        },
    };
    let after = query_param(uri, "after").unwrap_or_default();
    match page_after(store, &after, limit) {
        Ok((subs, next)) => {
            let mut r = json(StatusCode::OK, &views(&subs));
            if let Some(n) = next {
                let link = format!(
                    "</subscribers?limit={limit}&after={}>; rel=\"next\"",
                    percent_encode(&n)
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&link) {
                    r.headers_mut().insert(hyper::header::LINK, v);
                }
            }
            r
        }
        Err(e) => store_error(e),
    }
}

/// Up to `limit` subscribers whose IMPI sorts after `after` (all from the start when empty),
/// and the IMPI to continue after when there may be more.
///
/// It reads the store's `subscribers` tree (IMPI -> JSON) with a range scan, so a page costs
/// its own size and not the whole base. It belongs in `store` as `Store::subscribers_page`; it
/// lives here until the store's owners take it.
fn page_after(
    store: &Store,
    after: &str,
    limit: usize,
) -> Result<(Vec<Subscriber>, Option<String>), StoreError> {
    use std::ops::Bound;
    let tree = store.db().open_tree("subscribers")?;
    let start = if after.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(after.as_bytes().to_vec())
    };
    let mut out = Vec::with_capacity(limit.min(PAGE_MAX));
    let mut more = false;
    for kv in tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
        let (_, v) = kv?;
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(
            serde_json::from_slice::<Subscriber>(&v)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
    }
    let next = more.then(|| out.last().map(|s| s.impi.clone())).flatten();
    Ok((out, next))
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

/// The `{id}` of `/subscribers/{id}[/ifc]`, percent-decoded by [`percent_decode`] (which
/// keeps a malformed escape as it is, where axum's `Path` would refuse it).
fn subscriber_id(uri: &Uri) -> String {
    percent_decode(uri.path().trim_matches('/').split('/').nth(1).unwrap_or(""))
}

/// `GET /health`.
async fn health() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /trace?format=F&view=V[&call_id=&user=&since=]`.
async fn trace_export(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    let recorder = &api.recorder;
    let raw = |name: &str| {
        uri.query()
            .and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            })
            .map(str::to_string)
    };
    let format = raw("format").unwrap_or_else(|| "text".into());
    let view = raw("view").unwrap_or_else(|| "full".into());
    if !recorder.is_enabled() {
        return error(
            StatusCode::CONFLICT,
            "not recording",
            "start the lab with `rcslab up --trace`",
        );
    }
    // `rcslab trace export --call-id/--user/--since` (crate::trace::filter).
    let filter = match crate::trace::filter::TraceFilter::from_params(
        query_param(&uri, "call_id"),
        query_param(&uri, "user"),
        query_param(&uri, "since").as_deref(),
        recorder.elapsed(),
    ) {
        Ok(f) => f,
        Err(why) => return error(StatusCode::BAD_REQUEST, "bad filter", &why),
    };
    let exported = match view.as_str() {
        "full" => recorder.export_filtered(&format, &filter),
        "paper" | "roles" if !filter.is_empty() => {
            return error(
                StatusCode::BAD_REQUEST,
                "filters need view=full",
                "call_id, user and since filter the full view",
            )
        }
        "paper" | "roles" if format == "text" => Some(recorder.view_text(&view)),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown view",
                "view=full (any format), or view=paper / view=roles with format=text",
            )
        }
    };
    match exported {
        Some(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(
                "content-type",
                if format == "pcap" {
                    "application/vnd.tcpdump.pcap"
                } else if format == "html" {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                },
            )
            .body(Full::new(Bytes::from(bytes)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        None => error(
            StatusCode::BAD_REQUEST,
            "unknown format",
            "text, mermaid, html or pcap",
        ),
    }
}

/// `DELETE /trace` (`rcslab trace clear`): forget what was recorded, say how much.
async fn trace_clear(State(api): State<Arc<Api>>) -> Response<Body> {
    if !api.recorder.is_enabled() {
        return error(
            StatusCode::CONFLICT,
            "not recording",
            "start the lab with `rcslab up --trace`",
        );
    }
    json(
        StatusCode::OK,
        &serde_json::json!({"dropped": api.recorder.clear()}),
    )
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

/// `GET /subscribers[?limit=N&after=IMPI]`.
async fn subscribers_list(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    subscribers_page(api.hss.store(), &uri)
}

/// `POST /subscribers`: one subscriber or an array of them; tells the serving S-CSCF what
/// changed for those registered.
async fn subscribers_add(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let hss = &api.hss;
    let store = hss.store().clone();
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let specs: Vec<SubscriberConfig> = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v @ serde_json::Value::Array(_)) => match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid subscriber list", e),
        },
        Ok(v) => match serde_json::from_value(v) {
            Ok(s) => vec![s],
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid subscriber", e),
        },
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed JSON", e),
    };
    // What each subscriber was before, to tell the serving S-CSCF about changes.
    let before: Vec<Option<(Subscriber, crate::store::HssState)>> = specs
        .iter()
        .map(|s| {
            let id = s
                .impi
                .clone()
                .or_else(|| s.impu.first().cloned())
                .unwrap_or_default();
            let old = store.find(&id).ok().flatten()?;
            let st = store.hss_state(&old.impi).unwrap_or_default();
            Some((old, st))
        })
        .collect();
    let (st, api2) = (store.clone(), api.clone());
    match tokio::task::spawn_blocking(move || add_subscribers(&st, &specs, &api2.default_ifc)).await
    {
        Ok(Ok(v)) => {
            for (new, old) in v.iter().zip(before) {
                let Some((old, state)) = old else { continue };
                if state.scscf.is_none() {
                    continue;
                }
                if old.password != new.password
                    || old.aka.k != new.aka.k
                    || old.aka.opc != new.aka.opc
                {
                    hss.terminate_registration(
                        new,
                        &state,
                        crate::diameter::cx::ReasonCode::PermanentTermination,
                        "credentials changed",
                    )
                    .await;
                } else if old.ifcs != new.ifcs || old.impus != new.impus {
                    hss.push_profile(new, &state).await;
                }
            }
            json(StatusCode::CREATED, &views(&v))
        }
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
    }
}

/// `GET /subscribers/{id}`.
async fn subscriber_show(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    let id = subscriber_id(&uri);
    match api.hss.store().find(&id) {
        Ok(Some(s)) => json(StatusCode::OK, &SubscriberView::from(&s)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => store_error(e),
    }
}

/// `DELETE /subscribers/{id}`: removes it, durably, and ends its registration.
async fn subscriber_remove(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    let id = subscriber_id(&uri);
    let (hss, store) = (&api.hss, api.hss.store());
    let state = store
        .find(&id)
        .ok()
        .flatten()
        .map(|s| store.hss_state(&s.impi).unwrap_or_default());
    match store.remove(&id) {
        Ok(Some(s)) => {
            if let Err(e) = store.durable().await {
                return store_error(e);
            }
            if let Some(st) = state.filter(|st| st.scscf.is_some()) {
                hss.terminate_registration(
                    &s,
                    &st,
                    crate::diameter::cx::ReasonCode::PermanentTermination,
                    "subscription removed",
                )
                .await;
            }
            json(StatusCode::OK, &SubscriberView::from(&s))
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => store_error(e),
    }
}

/// `PUT /subscribers/{id}/ifc`: the body is `[IfcConfig]`.
async fn subscriber_ifc(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let id = subscriber_id(req.uri());
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let ifc: Vec<IfcConfig> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid iFC list", e),
    };
    set_ifc(&api.hss, &id, ifc).await
}

/// `PUT /subscribers/{id}/ifc`: replaces the iFCs (nothing else), tells the serving S-CSCF.
async fn set_ifc(hss: &crate::hss::Hss, id: &str, ifc: Vec<IfcConfig>) -> Response<Body> {
    let store = hss.store().clone();
    let current = match store.find(id) {
        Ok(Some(s)) => s,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => return store_error(e),
    };
    let ifcs = match ifc
        .iter()
        .map(|i| i.to_profile())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid iFC", e),
    };
    let mut new = current.clone();
    new.ifcs = ifcs;
    let st = store.clone();
    let written = new.clone();
    match tokio::task::spawn_blocking(move || st.put_subscriber(&written).and_then(|_| st.flush()))
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return store_error(e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
    }
    let state = store.hss_state(&new.impi).unwrap_or_default();
    if state.scscf.is_some() && current.ifcs != new.ifcs {
        hss.push_profile(&new, &state).await;
    }
    json(StatusCode::OK, &SubscriberView::from(&new))
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
