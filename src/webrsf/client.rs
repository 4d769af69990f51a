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
) -> Result<(u16, Value), String> {
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
) -> Result<(u16, Vec<u8>), String> {
    let mut sender = crate::http_client::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
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
    let req = req
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .map_err(|_| "body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

impl WebClient {
    /// `POST /webrsf/v1/{user}/Session`.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Result<WebClient, String> {
        let (s, v) = request(
            addr,
            Method::POST,
            &format!("/webrsf/v1/{user}/Session"),
            None,
            Some(json!({ "password": password })),
        )
        .await?;
        if s != 200 {
            return Err(format!("login answered {s}: {v}"));
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
    ) -> Result<(u16, Value), String> {
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
    pub async fn media(&self) -> Result<Vec<Value>, String> {
        let (s, b) = request_raw(
            self.addr,
            Method::GET,
            &format!("/webrsf/v1/{}/Chat/Media", self.user),
            Some(&self.token),
            None,
        )
        .await?;
        if s != 200 {
            return Err(format!("Chat/Media answered {s}"));
        }
        Ok(b.split(|&c| c == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// Opens `POST Notification/Streaming` from `cursor`; events (keep-alives left out) arrive
    /// on the receiver until the channel ends.
    pub async fn channel(&self, cursor: u64) -> Result<mpsc::UnboundedReceiver<Value>, String> {
        let mut sender = crate::http_client::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/webrsf/v1/{}/Notification/Streaming?cursor={cursor}",
                self.user
            ))
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("channel answered {}", resp.status()));
        }
        let (rx, _reader) = read_events(resp.into_body(), sender);
        Ok(rx)
    }

    /// Answers one event the way the paper's client does: a chat invitation is acknowledged
    /// (`PUT Chat/{id}` delivered, figure 4 steps 18-19); waiting data is fetched
    /// (`GET Chat/Media`, figure 5 steps 8-9) and acknowledged (steps 10-11). Returns the
    /// messages read.
    pub async fn answer(&self, ev: &Value) -> Result<Vec<Value>, String> {
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
                    return Err(format!("PUT answered {s}: {v}"));
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
                        return Err(format!("PUT answered {s}: {v}"));
                    }
                }
                Ok(got)
            }
            _ => Ok(Vec::new()),
        }
    }
}
