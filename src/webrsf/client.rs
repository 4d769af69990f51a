//! A web client of the gateway, the way the paper's WebRSF client behaves (figures 4 and 5):
//! logs in, opens the chunked notification channel, and answers chat events. Labs and the
//! benchmark use it; the browser client in `web/` does the same in JavaScript.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Why a call to the gateway failed: no connection, a broken exchange, or an answer the
/// client did not want. Labs, `rcslab eval` and the benchmark print the text.
#[derive(Debug, thiserror::Error)]
pub enum WebClientError {
    /// No TCP connection to the gateway.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The gateway's address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The request does not build (a user name or path that is not valid in a URI).
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    /// The exchange broke: the connection closed before the answer, or while its body came.
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    /// The answer's body did not arrive within 10 s.
    #[error("body timed out")]
    BodyTimeout,
    /// `POST Session` refused the login (wrong password, unknown user, too many tries).
    #[error("login answered {status}: {body}")]
    Login {
        /// The user that tried.
        user: String,
        /// The HTTP status.
        status: u16,
        /// The JSON error body (`Null` when not JSON).
        body: Value,
    },
    /// `GET Chat/Media` did not answer 200.
    #[error("Chat/Media answered {status}")]
    Media {
        /// The HTTP status.
        status: u16,
    },
    /// `POST Notification/Streaming` did not answer 200 (the text has the reason phrase).
    #[error("channel answered {status}")]
    Channel {
        /// The HTTP status.
        status: hyper::StatusCode,
    },
    /// `PUT Chat/{id}` (a delivery report) did not answer 200.
    #[error("PUT answered {status}: {body}")]
    Report {
        /// The chat instance reported on.
        instance: String,
        /// The HTTP status.
        status: u16,
        /// The JSON error body (`Null` when not JSON).
        body: Value,
    },
}

/// A logged-in web user.
#[derive(Clone)]
pub struct WebClient {
    addr: SocketAddr,
    /// `{userId}` of the paths.
    pub user: String,
    /// Bearer token.
    pub token: String,
}

/// Reads a notification channel's body (one JSON event per line) into a receiver, keep-alives
/// left out; `keep` (the connection's sender) lives as long as the reader. Aborting the
/// returned task drops the connection.
pub fn read_events<K: Send + 'static>(
    mut body: hyper::body::Incoming,
    keep: K,
) -> (mpsc::UnboundedReceiver<Value>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let _keep = keep;
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    if v["type"] != "keepalive" && tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (rx, task)
}

/// One request on a new connection: status and JSON body (`Null` when not JSON).
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), WebClientError> {
    let (s, b) = request_raw(addr, method, path, token, body).await?;
    Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
}

/// [`request`] with the body as bytes.
pub async fn request_raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Vec<u8>), WebClientError> {
    let mut sender = crate::http_client::connect(addr)
        .await
        .map_err(|source| WebClientError::Connect { addr, source })?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(
        body.map(|b| b.to_string()).unwrap_or_default(),
    )))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .map_err(|_| WebClientError::BodyTimeout)??
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

impl WebClient {
    /// `POST /webrsf/v1/{user}/Session`.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<WebClient, WebClientError> {
        let (s, v) = request(
            addr,
            Method::POST,
            &format!("/webrsf/v1/{user}/Session"),
            None,
            Some(json!({ "password": password })),
        )
        .await?;
        if s != 200 {
            return Err(WebClientError::Login {
                user: user.to_string(),
                status: s,
                body: v,
            });
        }
        Ok(WebClient {
            addr,
            user: user.to_string(),
            token: v["token"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// A call under `/webrsf/v1/{user}` (`rest` starts with `/`).
    pub async fn call(
        &self,
        method: Method,
        rest: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), WebClientError> {
        request(
            self.addr,
            method,
            &format!("/webrsf/v1/{}{rest}", self.user),
            Some(&self.token),
            body,
        )
        .await
    }

    /// `GET Chat/Media`: the waiting messages.
    pub async fn media(&self) -> Result<Vec<Value>, WebClientError> {
        let (s, b) = request_raw(
            self.addr,
            Method::GET,
            &format!("/webrsf/v1/{}/Chat/Media", self.user),
            Some(&self.token),
            None,
        )
        .await?;
        if s != 200 {
            return Err(WebClientError::Media { status: s });
        }
        Ok(b.split(|&c| c == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// Opens `POST Notification/Streaming` from `cursor`; events (keep-alives left out) arrive
    /// on the receiver until the channel ends.
    pub async fn channel(
        &self,
        cursor: u64,
    ) -> Result<mpsc::UnboundedReceiver<Value>, WebClientError> {
        let addr = self.addr;
        let mut sender = crate::http_client::connect(addr)
            .await
            .map_err(|source| WebClientError::Connect { addr, source })?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/webrsf/v1/{}/Notification/Streaming?cursor={cursor}",
                self.user
            ))
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        if resp.status() != 200 {
            return Err(WebClientError::Channel {
                status: resp.status(),
            });
        }
        let (rx, _reader) = read_events(resp.into_body(), sender);
        Ok(rx)
    }

    /// Answers one event the way the paper's client does: a chat invitation is acknowledged
    /// (`PUT Chat/{id}` delivered, figure 4 steps 18-19); waiting data is fetched
    /// (`GET Chat/Media`, figure 5 steps 8-9) and acknowledged (steps 10-11). Returns the
    /// messages read.
    pub async fn answer(&self, ev: &Value) -> Result<Vec<Value>, WebClientError> {
        let instance = ev["instance"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        match (ev["type"].as_str(), ev["data"]["status"].as_str()) {
            (Some("chat"), Some("initiate")) => {
                let (s, v) = self
                    .call(
                        Method::PUT,
                        &format!("/Chat/{instance}"),
                        Some(
                            json!({"status": "delivered", "message_id": ev["data"]["message_id"]}),
                        ),
                    )
                    .await?;
                if s != 200 {
                    return Err(WebClientError::Report {
                        instance,
                        status: s,
                        body: v,
                    });
                }
                Ok(Vec::new())
            }
            (Some("messageNotification"), Some("waiting")) => {
                let got = self.media().await?;
                for m in &got {
                    let id = m["instance_id"].as_str().unwrap_or(&instance);
                    let (s, v) = self
                        .call(
                            Method::PUT,
                            &format!("/Chat/{id}"),
                            Some(json!({"status": "delivered", "message_id": m["message_id"]})),
                        )
                        .await?;
                    if s != 200 {
                        return Err(WebClientError::Report {
                            instance: id.to_string(),
                            status: s,
                            body: v,
                        });
                    }
                }
                Ok(got)
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labs and `rcslab eval` print these after the step or as the error line.
    #[test]
    fn errors_name_the_request_and_the_answer() {
        let cases = [
            (
                WebClientError::Login {
                    user: "w0".into(),
                    status: 401,
                    body: json!({"error": "unauthorized"}),
                },
                r#"login answered 401: {"error":"unauthorized"}"#,
            ),
            (
                WebClientError::Media { status: 404 },
                "Chat/Media answered 404",
            ),
            (
                WebClientError::Channel {
                    status: hyper::StatusCode::TOO_MANY_REQUESTS,
                },
                "channel answered 429 Too Many Requests",
            ),
            (
                WebClientError::Report {
                    instance: "i1".into(),
                    status: 409,
                    body: Value::Null,
                },
                "PUT answered 409: null",
            ),
            (WebClientError::BodyTimeout, "body timed out"),
            (
                WebClientError::Connect {
                    addr: "127.0.0.1:9".parse().unwrap(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                },
                "cannot connect to 127.0.0.1:9: connection refused",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[tokio::test]
    async fn no_gateway_is_a_connect_error_with_its_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        match request(addr, Method::GET, "/", None, None).await {
            Err(WebClientError::Connect { addr: a, .. }) => assert_eq!(a, addr),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
