//! The HSS provisioning REST API (in the spirit of PyHSS's), and its client.
//!
//! sled lets one process open a database, so while a lab runs, `rcslab subscriber ...` talks to
//! it through this API; the lab writes the API's address to `<data-dir>/admin.addr`.
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | GET | `/subscribers[?limit=N&after=IMPI]` | `[Subscriber]`, one page by IMPI, `Link: <...>; rel="next"` when more may follow |
//! | POST | `/subscribers` | one `SubscriberConfig` or an array of them -> 201 `[Subscriber]` |
//! | GET | `/subscribers/{id}` | `Subscriber` (id = IMPI or IMPU, percent-encoded) |
//! | DELETE | `/subscribers/{id}` | the removed `Subscriber` |
//!
//! Errors are JSON `{"error": "...", "detail": "..."}` with 400, 404, 408, 409, 413 or 500.
//!
//! `GET /subscribers` answers one page (default [`PAGE_DEFAULT`], at most [`PAGE_MAX`]): a
//! whole base in one answer was 32 MB for 10,000 subscribers. The answer stays the array it
//! always was; the next page's URL is in a `Link` header (RFC 8288, as GitHub's API pages),
//! and a page shorter than `limit` is the last.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::{IfcConfig, SubscriberConfig};
use crate::http_server::{HttpLimits, TimedBody};
use crate::store::{default_impi, AkaCredentials, Store, StoreError, Subscriber};

/// Largest request body accepted (a bulk import of ~20k subscribers fits).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Subscribers per page of `GET /subscribers` when the request names no `limit`.
pub const PAGE_DEFAULT: usize = 100;
/// Largest `limit` of `GET /subscribers`.
pub const PAGE_MAX: usize = 1000;

/// Builds a stored subscriber from its provisioning form: the IMPI defaults to `user@domain`,
/// missing AKA keys are generated at random, a missing `ifc` list means `default_ifc`.
pub fn build_subscriber(
    spec: &SubscriberConfig,
    default_ifc: &[IfcConfig],
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
            k: spec.k.clone().unwrap_or_else(random_hex),
            opc: spec.opc.clone().unwrap_or_else(random_hex),
            amf: spec.amf.clone().unwrap_or_else(|| "8000".into()),
            sqn: spec.sqn.unwrap_or(32),
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
        .map(|s| build_subscriber(s, default_ifc))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &subs {
        store.put_subscriber(s)?;
    }
    store.flush()?;
    Ok(subs)
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
fn query_param(req: &Request<TimedBody>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

/// `GET /subscribers?limit=N&after=IMPI`: one page, ordered by IMPI.
fn subscribers_page(store: &Store, req: &Request<TimedBody>) -> Response<Body> {
    let limit = match query_param(req, "limit") {
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
    let after = query_param(req, "after").unwrap_or_default();
    match page_after(store, &after, limit) {
        Ok((subs, next)) => {
            let mut r = json(StatusCode::OK, &subs);
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
async fn read_body(req: Request<TimedBody>) -> Result<Bytes, Response<Body>> {
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

async fn route(
    hss: Arc<crate::hss::Hss>,
    recorder: crate::lab::Recorder,
    default_ifc: Arc<Vec<IfcConfig>>,
    req: Request<TimedBody>,
) -> Result<Response<Body>, Infallible> {
    let store = hss.store().clone();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (method, segs.as_slice()) {
        (Method::GET, ["health"]) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        (Method::GET, ["trace"]) => {
            let format = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("format=")))
                .unwrap_or("text")
                .to_string();
            let view = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("view=")))
                .unwrap_or("full")
                .to_string();
            if !recorder.is_enabled() {
                return Ok(error(
                    StatusCode::CONFLICT,
                    "not recording",
                    "start the lab with `rcslab up --trace`",
                ));
            }
            let exported = match view.as_str() {
                "full" => recorder.export(&format),
                "paper" | "roles" if format == "text" => Some(recorder.view_text(&view)),
                _ => {
                    return Ok(error(
                        StatusCode::BAD_REQUEST,
                        "unknown view",
                        "view=full (any format), or view=paper / view=roles with format=text",
                    ))
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
        (Method::GET, ["subscribers"]) => subscribers_page(&store, &req),
        (Method::POST, ["subscribers"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            let specs: Vec<SubscriberConfig> =
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(v @ serde_json::Value::Array(_)) => match serde_json::from_value(v) {
                        Ok(s) => s,
                        Err(e) => {
                            return Ok(error(StatusCode::BAD_REQUEST, "invalid subscriber list", e))
                        }
                    },
                    Ok(v) => match serde_json::from_value(v) {
                        Ok(s) => vec![s],
                        Err(e) => {
                            return Ok(error(StatusCode::BAD_REQUEST, "invalid subscriber", e))
                        }
                    },
                    Err(e) => return Ok(error(StatusCode::BAD_REQUEST, "malformed JSON", e)),
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
            let st = store.clone();
            match tokio::task::spawn_blocking(move || add_subscribers(&st, &specs, &default_ifc))
                .await
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
                    json(StatusCode::CREATED, &v)
                }
                Ok(Err(e)) => store_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
            }
        }
        (Method::GET, ["subscribers", id]) => match store.find(&percent_decode(id)) {
            Ok(Some(s)) => json(StatusCode::OK, &s),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "no such subscriber",
                percent_decode(id),
            ),
            Err(e) => store_error(e),
        },
        (Method::DELETE, ["subscribers", id]) => {
            let state = store
                .find(&percent_decode(id))
                .ok()
                .flatten()
                .map(|s| store.hss_state(&s.impi).unwrap_or_default());
            match store.remove(&percent_decode(id)) {
                Ok(Some(s)) => {
                    if let Err(e) = store.durable().await {
                        return Ok(store_error(e));
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
                    json(StatusCode::OK, &s)
                }
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    "no such subscriber",
                    percent_decode(id),
                ),
                Err(e) => store_error(e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such resource", path),
    };
    Ok(resp)
}

/// Serves the API on `listener` until shutdown, within `limits` (timeouts, connection cap).
pub async fn serve(
    listener: TcpListener,
    limits: HttpLimits,
    hss: Arc<crate::hss::Hss>,
    recorder: crate::lab::Recorder,
    default_ifc: Vec<IfcConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let default_ifc = Arc::new(default_ifc);
    crate::http_server::serve(listener, limits, "admin", shutdown, move |_, _slot| {
        let (hss, ifc, rec) = (hss.clone(), default_ifc.clone(), recorder.clone());
        hyper::service::service_fn(move |req| route(hss.clone(), rec.clone(), ifc.clone(), req))
    })
    .await
}

/// Client side: every subscriber of a running lab, page by page.
pub async fn list_all(addr: SocketAddr) -> std::io::Result<Vec<Subscriber>> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!(
            "/subscribers?limit={PAGE_MAX}&after={}",
            percent_encode(&after)
        );
        let (status, body) = call(addr, Method::GET, &path, None).await?;
        if status != 200 {
            return Err(std::io::Error::other(format!(
                "GET /subscribers answered {status}: {body}"
            )));
        }
        let page: Vec<Subscriber> = serde_json::from_str(&body).map_err(std::io::Error::other)?;
        let last = (page.len() == PAGE_MAX)
            .then(|| page.last().map(|s| s.impi.clone()))
            .flatten();
        all.extend(page);
        match last {
            Some(n) => after = n,
            None => return Ok(all),
        }
    }
}

/// Client side: one request to a running lab's admin API. Returns status and body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<String>,
) -> std::io::Result<(u16, String)> {
    let (s, b) = call_bytes(addr, method, path, body).await?;
    Ok((s, String::from_utf8_lossy(&b).to_string()))
}

/// [`call`] returning the body as bytes (pcap exports).
pub async fn call_bytes(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<String>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}
