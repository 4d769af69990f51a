//! The business REST API (JSON over HTTP/1.1, Bearer tokens), in the manner of the AlimTalk
//! and RBM sending APIs:
//!
//! | method | path | who | body -> answer |
//! |---|---|---|---|
//! | POST | `/ums/v1/templates` | business | `{"id","text"}` -> 201 template, `pending` |
//! | GET | `/ums/v1/templates/{id}` | business, operator | -> 200 template |
//! | POST | `/ums/v1/templates/{id}/approve` | operator | -> 200 template, `approved` |
//! | POST | `/ums/v1/messages` | business | `{"recipients", "text" \| "template": {"id","variables"}, "channel"?, "suggestions"?, "media"?}` -> 202 `{"id","recipients":[{"to","status"}]}` |
//! | GET | `/ums/v1/messages/{id}` | business | -> 200 `{"id","text","template","suggestions","recipients":[{"to","status","channel","fell_back","detail"}]}` |
//! | POST | `/ums/v1/media` | business | the bytes, their Content-Type -> 201 `{"id","url","content_type","size"}` |
//! | GET | `/ums/v1/media/{id}` | anyone (the id is the capability) | -> 200 the bytes |
//! | DELETE | `/ums/v1/media/{id}` | business | -> 204 |
//!
//! A send naming `"media"` goes as MMS ([`super::mms`]).
//!
//! Errors are `{"error": "...", "detail": "..."}` with 400, 401 (no or a wrong token), 403,
//! 404, 405, 408, 409, 413 or 429. No answer carries a token.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::core::{Message, SendRequest, UmsError};
use super::template::Template;
use super::{unix_now, Ums};
use crate::http_server::TimedBody;

/// Largest request body (1,000 recipients and a 2,000-character text fit).
const MAX_BODY: usize = 256 * 1024;

type Body = Full<Bytes>;

pub(super) async fn serve(ums: Arc<Ums>, listener: TcpListener, shut: watch::Receiver<bool>) {
    let limits = ums.settings.http;
    crate::http_server::serve(
        listener,
        limits,
        "UMS",
        shut,
        move |_remote: SocketAddr, _slot| {
            let ums = ums.clone();
            hyper::service::service_fn(move |req: Request<TimedBody>| {
                let ums = ums.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&ums, req).await) }
            })
        },
    )
    .await;
}

pub(super) fn json(status: u16, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn error(status: u16, error: &str, detail: impl std::fmt::Display) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"error": error, "detail": detail.to_string()}),
    )
}

fn refused(e: &UmsError) -> Response<Body> {
    error(e.status(), e.code(), e)
}

/// A refusal before the request reaches the core: status, `error`, `detail`.
struct Refusal(u16, &'static str, String);

impl Refusal {
    fn answer(self) -> Response<Body> {
        error(self.0, self.1, self.2)
    }
}

/// Who a request's Bearer token says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Business,
    Operator,
}

/// Compares without stopping at the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn caller<B>(ums: &Ums, req: &Request<B>) -> Result<Caller, Refusal> {
    let token = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|a| {
            a.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .map(|_| a[7..].trim())
        });
    let Some(t) = token else {
        return Err(Refusal(
            401,
            "token_needed",
            "send Authorization: Bearer <the business token, DIR/ums/api.token>".into(),
        ));
    };
    if same(t.as_bytes(), ums.settings.token.as_bytes()) {
        Ok(Caller::Business)
    } else if same(t.as_bytes(), ums.settings.operator_token.as_bytes()) {
        Ok(Caller::Operator)
    } else {
        Err(Refusal(
            401,
            "bad_token",
            "the token is not this gateway's".into(),
        ))
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(body: TimedBody) -> Result<T, Refusal> {
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if crate::http_server::is_body_timeout(&*e) => {
            return Err(Refusal(
                408,
                "timeout",
                "the body did not arrive in time".into(),
            ))
        }
        Err(e) => return Err(Refusal(413, "body_too_large", e.to_string())),
    };
    serde_json::from_slice(&bytes).map_err(|e| Refusal(400, "bad_json", e.to_string()))
}

fn template_view(t: &Template) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "text": t.text,
        "status": t.status,
        "variables": t.variables,
    })
}

fn message_view(m: &Message) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "text": m.text,
        "template": m.template,
        "media": m.media,
        "created": m.created,
        "recipients": m.recipients.iter().map(|r| serde_json::json!({
            "to": r.to,
            "status": r.status,
            "channel": r.channel,
            "fell_back": r.fell_back,
            "detail": r.detail,
        })).collect::<Vec<_>>(),
        "suggestions": m.suggestions,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTemplate {
    id: String,
    text: String,
}

async fn handle(ums: &Arc<Ums>, req: Request<TimedBody>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let m = req.method().clone();
    let Some(rest) = path.strip_prefix("/ums/v1/") else {
        return error(404, "not_found", "the API is under /ums/v1/");
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let known = matches!(
        segs.as_slice(),
        ["templates"]
            | ["templates", _]
            | ["templates", _, "approve"]
            | ["messages"]
            | ["messages", _]
            | ["media"]
            | ["media", _]
    );
    if !known {
        return error(404, "not_found", format!("no resource {path}"));
    }
    if let (["media", id], &Method::GET) = (segs.as_slice(), &m) {
        return super::mms::fetch(ums, id, req.uri().query());
    }
    let who = match caller(ums, &req) {
        Ok(c) => c,
        Err(r) => return r.answer(),
    };
    let business_only = || {
        error(
            403,
            "business_only",
            "this takes the business token, not the operator's",
        )
    };
    match (segs.as_slice(), &m) {
        (["templates"], &Method::POST) => {
            if who != Caller::Business {
                return business_only();
            }
            let t: NewTemplate = match read_json(req.into_body()).await {
                Ok(t) => t,
                Err(r) => return r.answer(),
            };
            let added = ums.lock().add_template(unix_now(), &t.id, &t.text).cloned();
            match added {
                Ok(t) => persist_template(ums, t, 201).await,
                Err(e) => refused(&e),
            }
        }
        (["templates", id], &Method::GET) => match ums.lock().template(id) {
            Ok(t) => json(200, &template_view(t)),
            Err(e) => refused(&e),
        },
        (["templates", id, "approve"], &Method::POST) => {
            if who != Caller::Operator {
                return error(
                    403,
                    "operator_only",
                    "templates are approved with the operator's token",
                );
            }
            let t = ums.lock().approve(id).cloned();
            match t {
                Ok(t) => persist_template(ums, t, 200).await,
                Err(e) => refused(&e),
            }
        }
        (["messages"], &Method::POST) => {
            if who != Caller::Business {
                return business_only();
            }
            let r: SendRequest = match read_json(req.into_body()).await {
                Ok(r) => r,
                Err(r) => return r.answer(),
            };
            send(ums, r).await
        }
        (["media"], &Method::POST) => {
            if who != Caller::Business {
                return business_only();
            }
            super::mms::upload(ums, req).await
        }
        (["media", id], &Method::DELETE) => {
            if who != Caller::Business {
                return business_only();
            }
            super::mms::delete(ums, id).await
        }
        (["messages", id], &Method::GET) => {
            if who != Caller::Business {
                return business_only();
            }
            match ums.lock().message(id) {
                Ok(m) => json(200, &message_view(m)),
                Err(e) => refused(&e),
            }
        }
        _ => error(
            405,
            "method_not_allowed",
            format!("{path} does not take {m}"),
        ),
    }
}

async fn persist_template(ums: &Ums, t: Template, status: u16) -> Response<Body> {
    let kept = match ums.store.put_template(&t) {
        Ok(()) => ums.store.durable().await,
        Err(e) => Err(e),
    };
    match kept {
        Ok(()) => json(status, &template_view(&t)),
        Err(e) => error(500, "store", e),
    }
}

async fn send(ums: &Arc<Ums>, r: SendRequest) -> Response<Body> {
    if let Some(media) = r.media.as_deref() {
        if ums.media.meta(media).is_none() {
            return error(
                404,
                "no_such_media",
                format!(
                    "no media '{}': upload it first (POST /ums/v1/media)",
                    media.chars().take(64).collect::<String>()
                ),
            );
        }
    }
    let id = match ums.store.next_id() {
        Ok(n) => format!("m{n}"),
        Err(e) => return error(500, "store", e),
    };
    let taken = {
        let mut core = ums.lock();
        core.submit(unix_now(), id, &r).map(|(m, outs)| {
            let answer = serde_json::json!({
                "id": m.id,
                "recipients": m.recipients.iter().map(|x| serde_json::json!({
                    "to": x.to, "status": x.status, "channel": x.channel,
                })).collect::<Vec<_>>(),
            });
            (answer, outs)
        })
    };
    let (answer, outs) = match taken {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    ums.apply(outs);
    if let Err(e) = ums.store.durable().await {
        return error(500, "store", e);
    }
    ums.wake.notify_one();
    ums.rcs_wake.notify_one();
    json(202, &answer)
}
