//! Push webhooks, a lab addition to the paper's notification channel (seed 000 §3): while a
//! web user has no channel open, each event is POSTed as JSON to the URL the lab file names
//! for them (`[webrsf] webhooks`), over plain HTTP/1.1 (RFC 9110 §9.3.3, RFC 9112).

use std::time::Duration;

use axum::http::{header, Method};
use bytes::Bytes;

/// Why a push webhook was not delivered (the gateway logs it; the event stays in the user's
/// log for the next channel). The texts are the ones the WARN line has always carried.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL of `[webrsf] webhooks` does not parse.
    #[error("bad URL: {0}")]
    BadUrl(#[from] axum::http::uri::InvalidUri),
    /// Not an `http://` URL (the gateway has no TLS client).
    #[error("only http:// webhooks are supported")]
    NotHttp,
    /// An `http://` URL without a host.
    #[error("URL without a host")]
    NoHost,
    /// The TCP connection or the HTTP/1.1 handshake failed.
    #[error(transparent)]
    Connect(#[from] std::io::Error),
    /// The request could not be built from the URL.
    #[error(transparent)]
    Request(#[from] axum::http::Error),
    /// The request failed on the connection.
    #[error(transparent)]
    Send(#[from] hyper::Error),
    /// No answer within the 5 s budget.
    #[error("webhook timed out")]
    Timeout,
}

/// POSTs a JSON body to an `http://` URL (push webhooks); 5 s budget. Returns the status the
/// receiver answered.
pub async fn post_json(url: &str, body: &str) -> Result<u16, WebhookError> {
    let uri: axum::http::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(WebhookError::NotHttp);
    }
    let host = uri.host().ok_or(WebhookError::NoHost)?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let fut = async {
        let mut sender = crate::http_client::connect((host.as_str(), port)).await?;
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, format!("{host}:{port}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))?;
        let resp = sender.send_request(req).await?;
        Ok::<u16, WebhookError>(resp.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| WebhookError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_keep_their_texts() {
        let e = post_json("https://example.invalid/hook", "{}").await;
        assert!(matches!(e, Err(WebhookError::NotHttp)));
        assert_eq!(
            e.unwrap_err().to_string(),
            "only http:// webhooks are supported"
        );
        let e = post_json("not a url", "{}").await.unwrap_err();
        assert!(matches!(e, WebhookError::BadUrl(_)));
        assert!(e.to_string().starts_with("bad URL: "), "{e}");
    }
}
