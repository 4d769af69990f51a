//! MMS in the simulated UE, link-based: an SMS-DELIVER to the WAP Push port (2948, TS 23.040
//! §9.2.3.24.4) carries an M-Notification.ind (OMA-TS-MMS_ENC-V1_3 §6.2; [`crate::mms`]);
//! its parts are put together in [`super::mt::Inbox::push`], and the phone then fetches the
//! message from X-Mms-Content-Location with an HTTP GET (OMA-TS-MMS_CTR §6.3 — here the
//! gateway serves the media itself), bounded in size and time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use tokio::net::TcpStream;

/// The largest message fetched.
pub const MAX_FETCH: usize = 4 * 1024 * 1024;
/// How long a fetch may take, connecting and reading included.
pub const FETCH_WAIT: Duration = Duration::from_secs(10);

/// What a fetch brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The answer's Content-Type (empty without one).
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Why a fetch brought nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not an http:// URL: {0}")]
    Url(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Io(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("over {MAX_FETCH} bytes")]
    TooLarge,
}

/// GETs `url` (http:// only), its body at most [`MAX_FETCH`] bytes, within [`FETCH_WAIT`].
pub async fn fetch(url: &str) -> Result<Fetched, FetchError> {
    tokio::time::timeout(FETCH_WAIT, get(url))
        .await
        .map_err(|_| FetchError::Timeout(FETCH_WAIT))?
}

async fn get(url: &str) -> Result<Fetched, FetchError> {
    let bad = || FetchError::Url(url.chars().take(200).collect());
    let uri: hyper::Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    let port = uri.port_u16().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?;
    let mut sender = crate::http_client::handshake(stream)
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let req = Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Full::new(Bytes::new()))
        .map_err(|_| bad())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = Limited::new(resp.into_body(), MAX_FETCH)
        .collect()
        .await
        .map_err(|_| FetchError::TooLarge)?
        .to_bytes()
        .to_vec();
    Ok(Fetched { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fetch_reads_type_and_body_and_refuses_what_it_cannot_reach() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in [
                &b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 3\r\n\r\nPNG"[..],
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            ] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"GET /m/1?x=2 HTTP/1.1\r\n"));
                s.write_all(answer).await.unwrap();
            }
        });
        let url = format!("http://{addr}/m/1?x=2");
        assert_eq!(
            fetch(&url).await.unwrap(),
            Fetched {
                content_type: "image/png".into(),
                body: b"PNG".to_vec()
            }
        );
        assert_eq!(fetch(&url).await, Err(FetchError::Status(404)));
        assert!(matches!(
            fetch("https://x/y").await,
            Err(FetchError::Url(_))
        ));
    }
}
