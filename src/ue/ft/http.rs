//! The client's HTTP/1.1 to the content server (GSMA RCC.07 §3.5.4.8.2): `http://` URLs,
//! HTTP Digest (RFC 7616, MD5, `qop=auth`) with the user's IMS private identity and password
//! (the nonce kept and its count raised request by request, a `stale` or new challenge
//! learnt), one connection per request, and bounds on every wait: the connection within
//! [`CONNECT_WAIT`], and no request may sit without a byte moving either way for
//! [`IDLE_WAIT`] (a 100 MB upload is not cut for being long, only for stalling).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response};
use tokio::net::TcpStream;

use super::FtError;
use crate::auth::digest::{self, Challenge, Credentials};
use crate::trace::Trace;

/// How long a connection to the content server may take to open.
pub(super) const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long a request may go without a byte moving (sent or received).
pub(super) const IDLE_WAIT: Duration = Duration::from_secs(30);
/// The largest answer read whole (a file-info or error document).
pub(super) const MAX_SMALL_BODY: usize = 64 * 1024;

/// A request body: streamed (an upload read from disk) or small.
pub(super) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// No body.
pub(super) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An `http://HOST[:PORT]/PATH?QUERY` URL (the content server's and the ones it hands out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HttpUrl {
    /// Host name or IP literal (brackets kept for IPv6).
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path and query, `/` at least.
    pub path: String,
}

impl HttpUrl {
    /// Parses `url`; only `http` is spoken here (an `https` content server is refused with a
    /// clear error, not contacted in the clear).
    pub fn parse(url: &str) -> Result<HttpUrl, FtError> {
        let url = url.trim();
        let bad = |why: &str| FtError::Url(format!("{url}: {why}"));
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!("{scheme}:// is not supported (http:// only)")))
            }
            None => return Err(bad("not an http:// URL")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(bad("user information in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed IPv6 literal"))?;
            (format!("[{h}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => 80,
        };
        if host.is_empty()
            || host.contains(char::is_whitespace)
            || path.contains(char::is_whitespace)
        {
            return Err(bad("no host, or spaces in it"));
        }
        Ok(HttpUrl { host, port, path })
    }

    /// `HOST:PORT`, for the Host header and to connect to.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> HttpUrl {
        HttpUrl {
            path: path.to_string(),
            ..self.clone()
        }
    }
}

/// When a request last moved a byte, shared by its body stream and whoever waits for it.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A byte moved now.
    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    /// Waits for `fut` as long as bytes keep moving (`what` names it in the error).
    pub async fn watch<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, FtError> {
        self.touch();
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => return Ok(r),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if self.idle() >= IDLE_WAIT {
                        return Err(FtError::Stalled { what: what.to_string(), secs: IDLE_WAIT.as_secs() });
                    }
                }
            }
        }
    }
}

/// A Digest nonce in use and its count (RFC 7616 §3.4).
#[derive(Debug)]
struct Nonce {
    challenge: Challenge,
    nc: u32,
}

/// The user's HTTP side: credentials, the nonce in use, and how ladders name its connections.
#[derive(Debug)]
pub(super) struct Http {
    impi: String,
    password: String,
    nonce: Mutex<Option<Nonce>>,
    trace: Trace,
    /// `UE alice`.
    name: String,
}

impl Http {
    pub fn new(impi: &str, password: &str, trace: Trace, name: &str) -> Http {
        Http {
            impi: impi.to_string(),
            password: password.to_string(),
            nonce: Mutex::new(None),
            trace,
            name: name.to_string(),
        }
    }

    /// The Authorization value for `method` on `uri`, from the nonce we hold (none yet: the
    /// server's 401 brings one).
    fn authorization(&self, method: &Method, uri: &str) -> Option<String> {
        let mut g = self.nonce.lock().ok()?;
        let n = g.as_mut()?;
        n.nc += 1;
        let nc = format!("{:08x}", n.nc);
        let cnonce = digest::new_cnonce();
        let c = &n.challenge;
        let ha1 = digest::ha1_hex(&self.impi, &c.realm, self.password.as_bytes());
        let response = digest::response_hex(
            &ha1,
            &c.nonce,
            Some(&nc),
            Some(&cnonce),
            Some("auth"),
            method.as_str(),
            uri,
        );
        Some(
            Credentials {
                username: self.impi.clone(),
                realm: c.realm.clone(),
                nonce: c.nonce.clone(),
                uri: uri.to_string(),
                response,
                algorithm: Some("MD5".into()),
                cnonce: Some(cnonce),
                nc: Some(nc),
                qop: Some("auth".into()),
                opaque: c.opaque.clone(),
                auts: None,
            }
            .to_string(),
        )
    }

    /// Learns a 401's Digest challenge; false when it has none we can answer.
    pub fn learn(&self, resp: &Response<Incoming>) -> bool {
        let Some(c) = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
            .find_map(|v| Challenge::parse(v).ok())
        else {
            return false;
        };
        let md5 = c
            .algorithm
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
        if !md5 {
            return false;
        }
        if let Ok(mut g) = self.nonce.lock() {
            *g = Some(Nonce {
                challenge: c,
                nc: 0,
            });
        }
        true
    }

    /// Opens a connection to `url`'s server, named after us in the ladders.
    async fn connect(
        &self,
        url: &HttpUrl,
    ) -> Result<hyper::client::conn::http1::SendRequest<Body>, FtError> {
        let target = url.authority();
        let io_err = |source: io::Error| FtError::Io {
            what: format!("content server {target}"),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(target.as_str()))
            .await
            .map_err(|_| FtError::Stalled {
                what: format!("connecting to {target}"),
                secs: CONNECT_WAIT.as_secs(),
            })?
            .map_err(io_err)?;
        if let Ok(local) = stream.local_addr() {
            self.trace.name_peer(local, &self.name);
        }
        crate::http_client::handshake(stream).await.map_err(io_err)
    }

    /// One request on a new connection; `progress` watches it (its body stream touches it
    /// too). The answer's head, its body still to read.
    pub async fn send(
        &self,
        method: &Method,
        url: &HttpUrl,
        headers: &[(HeaderName, String)],
        body: Body,
        progress: &Progress,
    ) -> Result<Response<Incoming>, FtError> {
        let mut sender = progress.watch("connecting", self.connect(url)).await??;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url.path.as_str());
        req = req.header(HOST, url.authority());
        if let Some(a) = self.authorization(method, &url.path) {
            req = req.header(AUTHORIZATION, a);
        }
        for (k, v) in headers {
            let v = HeaderValue::from_str(v)
                .map_err(|_| FtError::Url(format!("header {k} cannot carry {v:?}")))?;
            req = req.header(k, v);
        }
        let req = req
            .body(body)
            .map_err(|e| FtError::Url(format!("{} {}: {e}", method, url.path)))?;
        let what = format!("{method} {}", url.path);
        let io_err = |e: hyper::Error| FtError::Io {
            what: what.clone(),
            source: io::Error::other(e),
        };
        progress
            .watch(&what, async {
                sender.ready().await.map_err(io_err)?;
                sender.send_request(req).await.map_err(io_err)
            })
            .await?
    }

    /// [`Http::send`] answering a Digest challenge: a 401 with one (a first request, a stale
    /// nonce) is learnt and the request sent once more with a new body from `body`.
    pub async fn send_authed(
        &self,
        method: &Method,
        url: &HttpUrl,
        headers: &[(HeaderName, String)],
        mut body: impl FnMut() -> Result<Body, FtError>,
    ) -> Result<Response<Incoming>, FtError> {
        let progress = Progress::new();
        let resp = self.send(method, url, headers, body()?, &progress).await?;
        if resp.status() != 401 || !self.learn(&resp) {
            return Ok(resp);
        }
        drop(resp);
        self.send(method, url, headers, body()?, &progress).await
    }
}

/// Reads a small answer whole (at most [`MAX_SMALL_BODY`]), as long as it keeps coming.
pub(super) async fn read_small(resp: Response<Incoming>) -> Result<Bytes, FtError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(IDLE_WAIT, body.frame())
            .await
            .map_err(|_| FtError::Stalled {
                what: "reading the answer".into(),
                secs: IDLE_WAIT.as_secs(),
            })?;
        let Some(frame) = frame else {
            return Ok(Bytes::from(out));
        };
        let frame = frame.map_err(|e| FtError::Io {
            what: "reading the answer".into(),
            source: io::Error::other(e),
        })?;
        if let Ok(d) = frame.into_data() {
            if out.len() + d.len() > MAX_SMALL_BODY {
                return Err(FtError::Protocol(format!(
                    "the content server's answer is larger than {MAX_SMALL_BODY} bytes"
                )));
            }
            out.extend_from_slice(&d);
        }
    }
}

/// The error an answer other than the one expected comes to: its status and the content
/// server's JSON `{"error", "detail"}` when it has one.
pub(super) async fn refused(resp: Response<Incoming>) -> FtError {
    let status = resp.status().as_u16();
    let body = read_small(resp).await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    FtError::Refused {
        status,
        error: text("error").unwrap_or_else(|| {
            hyper::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace(' ', "_")
        }),
        detail: text("detail")
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_the_content_server() {
        let u = HttpUrl::parse("http://127.0.0.1:8083/files/ab?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8083, "/files/ab?x=1")
        );
        assert_eq!(u.authority(), "127.0.0.1:8083");
        let u = HttpUrl::parse("http://cs.ims.lab").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = HttpUrl::parse("http://[::1]:8083?tid=t&get_upload_info").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 8083, "/?tid=t&get_upload_info")
        );
        assert_eq!(u.with_path("/upload/t").path, "/upload/t");
        for bad in [
            "https://cs/",
            "ftp://x/",
            "cs.ims.lab/files",
            "http://:80/",
            "http://u:p@cs/",
            "http://cs:99999/",
            "http://cs/a b",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        let e = HttpUrl::parse("https://cs/").unwrap_err().to_string();
        assert!(e.contains("http:// only"), "{e}");
    }
}
