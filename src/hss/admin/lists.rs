//! The admin API's presence routes. `/lists`: the resource lists the presence server serves
//! as RLS (RFC 4662), by owner: `GET /lists/{owner}` shows them, `PUT /lists/{owner}/{name}`
//! with `{"members": [...]}` writes one (on disk before the answer; subscribers to it get a
//! partial NOTIFY), `DELETE` empties it. `/presence/{presentity}/watchers`: who may watch
//! (RFC 3856 §6.6): `GET` shows `{"allow", "block", "pending"}`, `PUT` with
//! `{"allow": [...], "block": [...]}` replaces the rule (a pending watcher now allowed gets the
//! state at once). Identities are percent-encoded in the path (`sip%3Aalice%40ims.lab`).

use std::sync::Arc;

use axum::extract::State;
use hyper::{Response, StatusCode};

use super::super::admin_status::{lab, ListWriteError};
use super::{error, json, json_content, percent_decode, read_body, Api, Body};
use crate::presence::rls::list_uri;

/// The `{owner}` and `{name}` segments of `/lists/{owner}[/{name}]`, decoded.
fn segments(uri: &axum::http::Uri) -> (String, String) {
    let mut parts = uri.path().trim_matches('/').split('/').skip(1);
    let owner = percent_decode(parts.next().unwrap_or(""));
    let name = percent_decode(parts.next().unwrap_or(""));
    (owner, name)
}

/// `GET /lists/{owner}`.
pub(super) async fn lists_show(
    State(api): State<Arc<Api>>,
    uri: axum::http::Uri,
) -> Response<Body> {
    let (owner, _) = segments(&uri);
    let lab = match lab(&api.status) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    json(
        StatusCode::OK,
        &serde_json::json!({ "owner": owner, "lists": lab.lists(&owner) }),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    members: Vec<String>,
}

/// `PUT /lists/{owner}/{name}`.
pub(super) async fn list_put(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let (owner, name) = segments(req.uri());
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let list: ListBody = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid list", e),
    };
    write(&api, owner, name, list.members).await
}

/// `DELETE /lists/{owner}/{name}`: the list, emptied.
pub(super) async fn list_clear(
    State(api): State<Arc<Api>>,
    uri: axum::http::Uri,
) -> Response<Body> {
    let (owner, name) = segments(&uri);
    write(&api, owner, name, Vec::new()).await
}

async fn write(api: &Api, owner: String, name: String, members: Vec<String>) -> Response<Body> {
    let lab = match lab(&api.status) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let uri = list_uri(&owner, &name);
    match lab.put_list(owner.clone(), name.clone(), members).await {
        Ok(members) => json(
            StatusCode::OK,
            &serde_json::json!({ "owner": owner, "name": name, "uri": uri, "members": members }),
        ),
        Err(e @ ListWriteError::Invalid(_)) => error(StatusCode::BAD_REQUEST, "invalid list", e),
        Err(e @ ListWriteError::Store(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "store failure", e)
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    block: Vec<String>,
}

/// `GET /presence/{presentity}/watchers`.
pub(super) async fn watchers_show(
    State(api): State<Arc<Api>>,
    uri: axum::http::Uri,
) -> Response<Body> {
    let (presentity, _) = segments(&uri);
    match lab(&api.status) {
        Ok(l) => json(StatusCode::OK, &l.watchers(&presentity)),
        Err(r) => *r,
    }
}

/// `PUT /presence/{presentity}/watchers`.
pub(super) async fn watchers_put(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let (presentity, _) = segments(req.uri());
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let rules: RulesBody = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid rules", e),
    };
    let lab = match lab(&api.status) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    match lab.put_watchers(presentity, rules.allow, rules.block).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e @ ListWriteError::Invalid(_)) => error(StatusCode::BAD_REQUEST, "invalid rules", e),
        Err(e @ ListWriteError::Store(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "store failure", e)
        }
    }
}
