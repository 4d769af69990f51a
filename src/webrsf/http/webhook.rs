//! Push webhooks: while a web user has no notification channel open, each event is POSTed
//! as JSON to the URL the lab file names for them (`[webrsf] webhooks`), over plain HTTP/1.1.

use std::time::Duration;

use axum::http::{header, Method};
use bytes::Bytes;

/// POSTs a JSON body to an `http://` URL (push webhooks); 5 s budget.
pub async fn post_json(url: &str, body: &str) -> Result<u16, String> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// webhooks are supported".into());
    }
    let host = uri.host().ok_or("URL without a host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let fut = async {
        let mut sender = crate::http_client::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, format!("{host}:{port}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<u16, String>(resp.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "webhook timed out".to_string())?
}
