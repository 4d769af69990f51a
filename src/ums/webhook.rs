//! The business's webhook: status changes and MO replies POSTed as JSON to `[ums] webhook`
//! over plain HTTP/1.1 (RFC 9110 §9.3.3). A bounded queue (a full one drops the event, and
//! says so in the log), 5 s a try, three tries with backoff; a 2xx is delivered.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Method, Request};
use tokio::sync::{mpsc, watch};

use crate::http_server::stopped;

const TRY_TIMEOUT: Duration = Duration::from_secs(5);
const TRIES: u32 = 3;

/// Why one POST failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("bad URL: {0}")]
    BadUrl(#[from] hyper::http::uri::InvalidUri),
    #[error("only http:// webhooks are supported")]
    NotHttp,
    #[error("URL without a host")]
    NoHost,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    #[error("answered {0}")]
    Status(u16),
}

/// POSTs `body` to `url` once, within [`TRY_TIMEOUT`].
pub async fn post(url: &str, body: &[u8]) -> Result<(), WebhookError> {
    let uri: hyper::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(WebhookError::NotHttp);
    }
    let host = uri.host().ok_or(WebhookError::NoHost)?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, format!("{host}:{port}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))?;
    let go = async {
        let mut sender = crate::http_client::connect((host.as_str(), port)).await?;
        crate::http_client::exchange(&mut sender, req).await
    };
    let (status, _) = tokio::time::timeout(TRY_TIMEOUT, go)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "webhook timed out"))??;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(WebhookError::Status(status))
    }
}

/// Posts what comes on `rx` to `url`, one at a time, until `shut`.
pub(super) async fn run(
    url: String,
    mut rx: mpsc::Receiver<serde_json::Value>,
    mut shut: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = stopped(&mut shut) => return,
        };
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=TRIES {
            match post(&url, &body).await {
                Ok(()) => break,
                Err(e) if attempt == TRIES => {
                    crate::warn_limited!("ums.webhook", %url, error = %e, "UMS: webhook failed {TRIES} times; event dropped");
                }
                Err(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped(&mut shut) => return,
                    }
                    wait *= 2;
                }
            }
        }
    }
}
