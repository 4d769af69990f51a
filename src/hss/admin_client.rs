//! Client side of the admin API ([`super::admin`]): what `rcslab subscriber`, `rcslab trace`,
//! the lab runner and the tests use to talk to a running lab. It carries the lab's token
//! ([`super::admin_auth`]), read from the data directory.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};

use super::admin::{percent_encode, SubscriberView, PAGE_MAX};

/// How long one request may take before the client gives up.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running lab's admin API and its token.
#[derive(Clone)]
pub struct AdminClient {
    /// The API's address.
    pub addr: SocketAddr,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: it stays out of logs and panics.
        f.debug_struct("AdminClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// The API at `addr`, with `token`.
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> AdminClient {
        AdminClient {
            addr,
            token: token.into(),
        }
    }

    /// The API of the lab using `data_dir` (its `admin.addr` and `admin.token`), if both are
    /// there. It may not answer: see [`AdminClient::health`].
    pub fn from_data_dir(data_dir: &Path) -> Option<AdminClient> {
        let addr = std::fs::read_to_string(data_dir.join("admin.addr"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let token = super::admin_auth::read_token(data_dir)?;
        Some(AdminClient::new(addr, token))
    }

    /// The `Authorization` header value the API expects (tests write raw requests with it).
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// True when the API answers `/health`.
    pub async fn health(&self) -> bool {
        matches!(self.call(Method::GET, "/health", None).await, Ok((200, _)))
    }

    /// One request. Returns status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> std::io::Result<(u16, String)> {
        let (s, b) = self.call_bytes(method, path, body).await?;
        Ok((s, String::from_utf8_lossy(&b).to_string()))
    }

    /// [`AdminClient::call`] returning the body as bytes (pcap exports).
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", self.bearer())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(std::io::Error::other)?;
        send(self.addr, req).await
    }

    /// Every subscriber, page by page (secrets are never part of the answer).
    pub async fn list_all(&self) -> std::io::Result<Vec<SubscriberView>> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!(
                "/subscribers?limit={PAGE_MAX}&after={}",
                percent_encode(&after)
            );
            let (status, body) = self.call(Method::GET, &path, None).await?;
            if status != 200 {
                return Err(std::io::Error::other(format!(
                    "GET /subscribers answered {status}: {body}"
                )));
            }
            let page: Vec<SubscriberView> =
                serde_json::from_str(&body).map_err(std::io::Error::other)?;
            let last = (page.len() == PAGE_MAX)
                .then(|| page.last().map(|s| s.impi.clone()))
                .flatten();
            all.extend(page);
            match last {
                Some(n) => after = n,
                None => return Ok(all),
            }
        }
    }
}

/// Sends one HTTP/1.1 request as it is (tests use it to send what a browser or an attacker
/// would: other Host, Origin, no token) and returns status and body ([`crate::http_client`]).
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> std::io::Result<(u16, Vec<u8>)> {
    crate::http_client::send(addr, req, TIMEOUT)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "admin API timed out")
            }
            _ => e,
        })
}
