//! The chat (media) requests of paper Table 1: `GET|POST Chat`, `GET Chat/Media` (figure 5
//! step 9: chunked NDJSON), `GET|PUT Chat/{id}`, `GET|POST Chat/{id}/Messages`,
//! `PUT Chat/{id}/Messages/{msgId}/Status` and `POST Chat/{id}/Composing`. What they do on the
//! user's chat UE is in `webrsf/chat.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::record::ChunkRecorder;
use super::{authed, body, json_body, json_response, Gw, Query_};
use crate::webrsf::WebError;

pub(super) async fn list_chats(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.list(&u)))
}

pub(super) async fn start_chat(
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

pub(super) async fn get_instance(
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

pub(super) async fn put_instance(
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

pub(super) async fn list_messages(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.messages(&u, &id)?))
}

pub(super) async fn post_message(
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

pub(super) async fn put_status(
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

pub(super) async fn composing(
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

/// `GET Chat/Media` (figure 5 step 9): chunked NDJSON, one waiting message per chunk.
pub(super) async fn media(
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
