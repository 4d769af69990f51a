//! The messaging servers' side of CS's grant API (`POST /grants`, see [`super`]): the node
//! that delivers a file-info message to a recipient (T-IM for a 1-1 chat, CONF for a group)
//! tells CS that the recipient may download the file, before the message goes on (GSMA
//! RCC.07 §3.2.5 leaves access control to the content server; ours checks the uploader and
//! the users granted).
//!
//! Bounded: one request on its own connection, [`GrantClient::wait`] for the whole exchange;
//! the caller forwards the message whatever the outcome (a recipient that could not be
//! granted gets 403 at download, which its client reports). The lab's bearer secret goes only
//! to the content server of the lab's configuration, never to a host a file-info document
//! names: a URL elsewhere is [`GrantError::Foreign`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::net::TcpStream;

use crate::trace::Trace;

/// How long a grant may take by default (then the message goes on without it).
pub const GRANT_WAIT: Duration = Duration::from_secs(2);

/// Why a grant did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The file's URL is not on the lab's content server (the secret is not sent there).
    #[error("{0} is not a file of the lab's content server {1}")]
    Foreign(String, String),
    /// The content server could not be reached or cut the connection.
    #[error("content server {addr}: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No answer within the wait.
    #[error("content server {0}: no answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// The content server answered with an error (status, its JSON body).
    #[error("content server answered {0}: {1}")]
    Refused(u16, String),
}

/// Where the lab's content server is and the secret of its grant API.
#[derive(Debug, Clone)]
pub struct GrantSettings {
    /// CS's HTTP address.
    pub addr: SocketAddr,
    /// The base of the URLs CS hands out (`[content] public_url`, else `http://<addr>`).
    pub base_url: String,
    /// The bearer secret of `POST /grants`.
    pub secret: String,
    /// How long one grant may take.
    pub wait: Duration,
}

/// A messaging server's client of the grant API.
#[derive(Debug, Clone)]
pub struct GrantClient {
    settings: GrantSettings,
    trace: Trace,
    /// How ladders name our connections (`T-IM`, `CONF`).
    name: String,
}

impl GrantClient {
    /// A client for `settings`, naming its connections `name` in `trace`'s ladders.
    pub fn new(settings: GrantSettings, trace: Trace, name: &str) -> GrantClient {
        let mut settings = settings;
        settings.base_url = settings.base_url.trim_end_matches('/').to_string();
        GrantClient {
            settings,
            trace,
            name: name.to_string(),
        }
    }

    /// How long one grant may take.
    pub fn wait(&self) -> Duration {
        self.settings.wait
    }

    /// True when `url` is a file of our content server (`BASE/files/…`).
    pub fn serves(&self, url: &str) -> bool {
        url.strip_prefix(&self.settings.base_url)
            .is_some_and(|rest| rest.starts_with("/files/"))
    }

    /// Grants `users` the file at `url` (`POST /grants`), within [`GrantClient::wait`].
    pub async fn grant(&self, url: &str, users: &[String]) -> Result<(), GrantError> {
        if !self.serves(url) {
            return Err(GrantError::Foreign(
                url.to_string(),
                self.settings.base_url.clone(),
            ));
        }
        let addr = self.settings.addr;
        let body = serde_json::json!({ "file": url, "users": users }).to_string();
        let req = Request::post("/grants")
            .header(hyper::header::HOST, addr.to_string())
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.settings.secret),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONTENT_LENGTH, body.len().to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| GrantError::Io {
                addr,
                source: std::io::Error::other(e),
            })?;
        let go = async {
            let stream = TcpStream::connect(addr).await?;
            if let Ok(local) = stream.local_addr() {
                self.trace.name_peer(local, &self.name);
            }
            let mut sender = crate::http_client::handshake(stream).await?;
            crate::http_client::exchange(&mut sender, req).await
        };
        let (status, body) = tokio::time::timeout(self.settings.wait, go)
            .await
            .map_err(|_| GrantError::Timeout(addr, self.settings.wait))?
            .map_err(|source| GrantError::Io { addr, source })?;
        if status == 200 {
            return Ok(());
        }
        Err(GrantError::Refused(
            status,
            String::from_utf8_lossy(&body).chars().take(300).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: SocketAddr, wait: Duration) -> GrantClient {
        GrantClient::new(
            GrantSettings {
                addr,
                base_url: format!("http://{addr}/"),
                secret: "s3cret".into(),
                wait,
            },
            Trace::disabled(),
            "T-IM",
        )
    }

    #[tokio::test]
    async fn grants_go_only_to_our_server_with_the_secret_and_a_silent_one_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (seen_tx, seen) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let _ = seen_tx.send(String::from_utf8_lossy(&buf[..n]).to_string());
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            // The second connection is never answered.
            let (mut s2, _) = l.accept().await.unwrap();
            let _ = s2.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let c = client(addr, Duration::from_millis(500));
        let url = format!("http://{addr}/files/ab12");
        assert!(c.serves(&url));
        c.grant(&url, &["sip:bob@ims.lab".into()]).await.unwrap();
        let req = seen.await.unwrap();
        assert!(req.starts_with("POST /grants HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("authorization: Bearer s3cret\r\n"), "{req}");
        assert!(req.contains("\"users\":[\"sip:bob@ims.lab\"]"), "{req}");
        let e = c
            .grant("http://203.0.113.9/files/ab12", &["sip:bob@ims.lab".into()])
            .await
            .unwrap_err();
        assert!(matches!(e, GrantError::Foreign(..)), "{e}");
        assert!(!c.serves(&format!("http://{addr}/upload/x")));
        let t0 = std::time::Instant::now();
        let e = c
            .grant(&url, &["sip:bob@ims.lab".into()])
            .await
            .unwrap_err();
        assert!(matches!(e, GrantError::Timeout(..)), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        server.abort();
    }
}
