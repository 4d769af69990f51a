//! The group chat requests (OMA RESTful Network API for Chat 1.0 §5.7 group chat resources,
//! under WebRSF's `/webrsf/v1/{userId}` and with its bearer tokens): `GET|POST Group`,
//! `GET|DELETE Group/{id}`, `GET|POST Group/{id}/Messages`,
//! `PUT Group/{id}/Messages/{msgId}/Status`, `GET|POST Group/{id}/Participants` and
//! `DELETE Group/{id}/Participants/{participant}`. What they do on the user's chat UE is in
//! `webrsf/group.rs`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{authed, body, json_body, json_response, Gw, Query_};
use crate::webrsf::WebError;

pub(super) async fn list_groups(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.groups(&u)))
}

/// `POST Group`: 201 with the group (OMA's `groupChatSessionInformation` with `resourceURL`).
pub(super) async fn create_group(
    State(gw): State<Gw>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let b = body::create_group(&v)?;
    let g = gw.create_group(&u, &b.subject, &b.participants).await?;
    let url = gw.group_url(&u.user_id, &g.id);
    let mut r = gw.group_json(&u, &g);
    r["groupChatSessionInformation"] = json!({
        "subject": g.subject,
        "participant": g
            .participants
            .keys()
            .filter(|a| **a != u.aor)
            .map(|a| json!({ "address": a }))
            .collect::<Vec<_>>(),
        "resourceURL": url,
        "sessionId": g.id,
    });
    let mut resp = json_response(StatusCode::CREATED, &r);
    if let Ok(h) = axum::http::HeaderValue::from_str(&url) {
        resp.headers_mut().insert(axum::http::header::LOCATION, h);
    }
    Ok(resp)
}

pub(super) async fn get_group(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let g = gw.group(&u, &id)?;
    Ok(json_response(StatusCode::OK, &gw.group_json(&u, &g)))
}

/// `DELETE Group/{id}`: leave the group.
pub(super) async fn leave_group(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.leave_group(&u, &id)?))
}

pub(super) async fn list_group_messages(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(StatusCode::OK, &gw.group_messages(&u, &id)?))
}

pub(super) async fn post_group_message(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let text = body::group_message(&v)?;
    let mid = gw.send_group(&u, &id, text).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "message_id": mid, "group_id": id }),
    ))
}

pub(super) async fn put_group_status(
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
        &gw.group_message_status(&u, &id, &mid, status)?,
    ))
}

pub(super) async fn list_participants(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let g = gw.group(&u, &id)?;
    Ok(json_response(StatusCode::OK, &gw.participants_json(&g)))
}

/// `POST Group/{id}/Participants` `{"participants": [...]}`: checked, then 501 until the UE
/// can REFER members in.
pub(super) async fn add_participants(
    State(gw): State<Gw>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: Query_,
    body: Body,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    let v = json_body(&gw, body).await?;
    let add = body::participants(&v)?;
    if add.is_empty() {
        return Err(WebError::BadRequest(
            "'participants' must name at least one member".into(),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &gw.change_participants(&u, &id, &add, None).await?,
    ))
}

/// `DELETE Group/{id}/Participants/{participant}`: checked, then 501 until the UE can REFER
/// members out.
pub(super) async fn remove_participant(
    State(gw): State<Gw>,
    Path((user, id, who)): Path<(String, String, String)>,
    headers: HeaderMap,
    q: Query_,
) -> Result<Response, WebError> {
    let u = authed(&gw, &headers, &q, &user)?;
    Ok(json_response(
        StatusCode::OK,
        &gw.change_participants(&u, &id, &[], Some(&who)).await?,
    ))
}
