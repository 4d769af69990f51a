//! The admin API's `/trace` routes: `GET /trace` exports the flight recorder (text, mermaid,
//! html or pcap; `view=paper|roles`; filtered by [`crate::trace::filter`]) as `rcslab trace
//! export` asks, `DELETE /trace` clears it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{error, json, query_param, Api, Body};

/// `GET /trace?format=F&view=V[&call_id=&user=&since=]`.
pub(super) async fn trace_export(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
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
pub(super) async fn trace_clear(State(api): State<Arc<Api>>) -> Response<Body> {
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
