//! The admin API's read-only view of the running lab: `GET /status`, `GET /registrations`
//! and `GET /metrics` ([`super::admin`] routes them on its axum router; its guard asks the
//! Bearer token first).
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/status` | [`crate::status::Status`] as JSON |
//! | GET | `/registrations` | [`crate::status::Registrations`] as JSON |
//! | GET | `/metrics` | Prometheus text format 0.0.4; OpenMetrics 1.0 when `Accept` asks for `application/openmetrics-text` |
//!
//! The API starts before the nodes it reports on, so it holds a [`StatusSlot`] that the lab
//! fills once every node runs; until then these answer 503. The HSS side knows the lab only
//! through the [`LabStatus`] trait.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::status::{Registrations, Status};

/// What the lab offers the admin API.
pub trait LabStatus: Send + Sync {
    /// The whole snapshot.
    fn snapshot(&self) -> Status;
    /// The registrations alone.
    fn registrations(&self) -> Registrations;
    /// The metrics, Prometheus 0.0.4 text (or OpenMetrics text when `openmetrics`).
    fn metrics(&self, openmetrics: bool) -> String;
    /// `owner`'s resource lists at the presence server: name -> members.
    fn lists(&self, owner: &str) -> std::collections::BTreeMap<String, Vec<String>>;
    /// Writes `owner`'s resource list `name` at the presence server (on disk before the
    /// future ends); the members now.
    fn put_list(
        &self,
        owner: String,
        name: String,
        members: Vec<String>,
    ) -> crate::diameter::peer::BoxFuture<'static, Result<Vec<String>, ListWriteError>>;
    /// `presentity`'s watcher rules at the presence server, and who waits.
    fn watchers(&self, presentity: &str) -> WatchersView;
    /// Replaces `presentity`'s watcher rules (on disk before the future ends).
    fn put_watchers(
        &self,
        presentity: String,
        allow: Vec<String>,
        block: Vec<String>,
    ) -> crate::diameter::peer::BoxFuture<'static, Result<WatchersView, ListWriteError>>;
}

/// A presentity's watcher rules, as `GET /presence/{presentity}/watchers` shows them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WatchersView {
    /// Watchers who see the presentity's state.
    pub allow: Vec<String>,
    /// Watchers refused.
    pub block: Vec<String>,
    /// Watchers subscribed and waiting for a decision.
    pub pending: Vec<String>,
}

/// Why a resource list was not written.
#[derive(Debug, thiserror::Error)]
pub enum ListWriteError {
    /// The list, its owner or a member is not acceptable: 400.
    #[error("{0}")]
    Invalid(String),
    /// The store failed: 500.
    #[error("{0}")]
    Store(String),
}

/// Where the lab puts its [`LabStatus`] once every node runs.
pub type StatusSlot = Arc<OnceLock<Arc<dyn LabStatus>>>;

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json(v: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(v) {
        Ok(b) => respond(StatusCode::OK, "application/json", b),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
    }
}

fn error(status: StatusCode, error: &str, detail: impl std::fmt::Display) -> Response<Body> {
    let body = serde_json::json!({ "error": error, "detail": detail.to_string() });
    respond(
        status,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The lab's status, or 503 while the lab is still starting.
pub(super) fn lab(slot: &StatusSlot) -> Result<Arc<dyn LabStatus>, Box<Response<Body>>> {
    slot.get().cloned().ok_or_else(|| {
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "lab starting",
            "the nodes are not all running yet",
        ))
    })
}

/// Runs `f` on the lab's status off the async threads (it takes the nodes' locks and reads
/// the store's keys), or answers 503 while the lab is still starting.
async fn with_lab<T: Send + 'static>(
    slot: &StatusSlot,
    f: impl FnOnce(&dyn LabStatus) -> T + Send + 'static,
) -> Result<T, Response<Body>> {
    let Some(lab) = slot.get().cloned() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "lab starting",
            "the nodes are not all running yet",
        ));
    };
    tokio::task::spawn_blocking(move || f(&*lab))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e))
}

/// `GET /status`.
pub async fn status(slot: &StatusSlot) -> Response<Body> {
    match with_lab(slot, |l| l.snapshot()).await {
        Ok(s) => json(&s),
        Err(r) => r,
    }
}

/// `GET /registrations`.
pub async fn registrations(slot: &StatusSlot) -> Response<Body> {
    match with_lab(slot, |l| l.registrations()).await {
        Ok(r) => json(&r),
        Err(r) => r,
    }
}

/// `GET /metrics`: OpenMetrics when the scraper's `Accept` names it, else Prometheus 0.0.4.
pub async fn metrics(slot: &StatusSlot, headers: &hyper::HeaderMap) -> Response<Body> {
    let openmetrics = headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match with_lab(slot, move |l| l.metrics(openmetrics)).await {
        Ok(text) => respond(
            StatusCode::OK,
            if openmetrics {
                crate::metrics::OPENMETRICS_CONTENT_TYPE
            } else {
                crate::metrics::PROMETHEUS_CONTENT_TYPE
            },
            text.into_bytes(),
        ),
        Err(r) => r,
    }
}
