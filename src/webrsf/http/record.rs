//! The flight-recorder hook of the HTTP surface: every request and response head (and
//! every chunk of a streamed one, as the HTTP/1.1 chunk it becomes on the wire, RFC 9112
//! §7.1) goes into the same ladders and pcap as SIP and MSRP, tokens masked; web clients are
//! named `Web <user>`. Not in the paper: it is how the lab shows figure 4 and 5 as ladders.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{read_body, Gw};
use crate::trace::{Direction, Protocol};
use crate::webrsf::Gateway;

/// Records the chunks of a streamed response as they are produced.
#[derive(Clone)]
pub(super) struct ChunkRecorder {
    trace: crate::trace::Trace,
    local: Option<SocketAddr>,
    remote: SocketAddr,
}

impl ChunkRecorder {
    pub(super) fn new(gw: &Gateway, remote: SocketAddr) -> Self {
        ChunkRecorder {
            trace: gw.trace().clone(),
            local: gw.http_addr(),
            remote,
        }
    }

    /// Records `data` as one HTTP/1.1 chunk (`size CRLF data CRLF`, the bytes hyper writes).
    pub(super) fn chunk(&self, data: &[u8], summary: impl FnOnce() -> String) {
        let Some(local) = self.local else { return };
        if !self.trace.is_enabled() {
            return;
        }
        let mut wire = format!("{:x}\r\n", data.len()).into_bytes();
        wire.extend_from_slice(data);
        wire.extend_from_slice(b"\r\n");
        self.trace.record(
            Direction::Sent,
            Protocol::Http,
            local,
            self.remote,
            &wire,
            summary,
        );
    }
}

fn redact(s: &str) -> String {
    match s.find("token=") {
        Some(i) => {
            let end = s[i..].find('&').map(|e| i + e).unwrap_or(s.len());
            format!("{}token=***{}", &s[..i], &s[end..])
        }
        None => s.to_string(),
    }
}

/// Middleware: records each request as received and each response head (with its body when
/// it is not a stream) as sent, and names the client `Web <user>` in ladders.
pub(super) async fn record(
    State(gw): State<Gw>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (trace, local) = (gw.trace().clone(), gw.http_addr());
    let (true, Some(local)) = (trace.is_enabled(), local) else {
        let mut resp = next.run(req).await;
        resp.headers_mut().remove(super::files::FILE_BODY);
        return resp;
    };
    let path = req.uri().path().to_string();
    if let Some(user) = path
        .strip_prefix("/webrsf/v1/")
        .and_then(|r| r.split('/').next())
    {
        let user = percent_decode(user);
        gw.name(
            remote,
            &format!(
                "Web {}",
                gw.web_id(&gw.aor_of(&user).unwrap_or(user.clone()))
            ),
        );
    }
    let (parts, body) = req.into_parts();
    // A file upload is streamed to disk by its handler: its head alone is recorded.
    let upload = parts.method == axum::http::Method::POST && path.ends_with("/FileTransfer");
    let (bytes, body) = if upload {
        (axum::body::Bytes::new(), Some(body))
    } else {
        match read_body(&gw, body).await {
            Ok(b) => (b, None),
            Err(e) => return e.into_response(),
        }
    };
    let target = redact(
        &parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or(path.clone()),
    );
    let mut head = format!("{} {target} HTTP/1.1\r\n", parts.method);
    for (k, v) in &parts.headers {
        let v = if k == header::AUTHORIZATION {
            "Bearer ***".to_string()
        } else {
            v.to_str().unwrap_or("").to_string()
        };
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&bytes);
    let method = parts.method.clone();
    trace.record(
        Direction::Received,
        Protocol::Http,
        local,
        remote,
        &wire,
        || format!("{method} {path}"),
    );
    let body = body.unwrap_or_else(|| Body::from(bytes));
    let resp = next.run(Request::from_parts(parts, body)).await;
    let file = resp.headers().contains_key(super::files::FILE_BODY);
    let streamed = resp.headers().contains_key("x-webrsf-stream")
        || resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"))
        || resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let status = resp.status();
    let line = format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove("x-webrsf-stream");
    parts.headers.remove(super::files::FILE_BODY);
    let mut head = format!("{line}\r\n");
    for (k, v) in &parts.headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    if file {
        // A file streamed from CS: its head is recorded, its bytes go by.
        head.push_str("\r\n");
        trace.record(
            Direction::Sent,
            Protocol::Http,
            local,
            remote,
            head.as_bytes(),
            || line,
        );
        return Response::from_parts(parts, body);
    }
    if streamed {
        if status != StatusCode::SWITCHING_PROTOCOLS {
            head.push_str("transfer-encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        trace.record(
            Direction::Sent,
            Protocol::Http,
            local,
            remote,
            head.as_bytes(),
            || line,
        );
        return Response::from_parts(parts, body);
    }
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if !parts.headers.contains_key(header::CONTENT_LENGTH) {
        head.push_str(&format!("content-length: {}\r\n", bytes.len()));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&bytes);
    trace.record(
        Direction::Sent,
        Protocol::Http,
        local,
        remote,
        &wire,
        || line,
    );
    Response::from_parts(parts, Body::from(bytes))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}
