//! WebRSF: the web gateway (paper figures 4 and 5, Table 1), the web-to-RCS direction, the
//! notification channels and bad input.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatOptions};
use rcslab::Lab;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::chat::{chat_flow, chat_ue, next, FIGURE_1};
use crate::lab_with;

/// One HTTP request to the gateway on a new connection; status and JSON body (`Null` when
/// the body is not JSON).
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, b) = call_raw(addr, method, path, token, body.map(|b| b.to_string())).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// [`call`] with a raw body, returning raw bytes.
pub async fn call_raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
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
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("body within 5 s")
        .expect("body")
        .to_bytes();
    (status, bytes.to_vec())
}

/// Logs `user` in; returns the token.
pub async fn login(lab: &Lab, user: &str, password: &str) -> String {
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::POST,
        &format!("/webrsf/v1/{user}/Session"),
        None,
        Some(json!({ "password": password })),
    )
    .await;
    assert_eq!(s, 200, "login of {user}: {v}");
    v["token"].as_str().expect("token").to_string()
}

/// An open `POST Notification/Streaming` channel: its status, headers and events as they come.
pub struct Channel {
    /// HTTP status.
    pub status: u16,
    /// Transfer-Encoding header.
    pub transfer_encoding: Option<String>,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Channel {
    /// Opens the channel of `user` from `cursor`.
    pub async fn open(lab: &Lab, user: &str, token: &str, cursor: u64) -> Channel {
        let addr = lab.addrs.webrsf;
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/webrsf/v1/{user}/Notification/Streaming?cursor={cursor}"
            ))
            .header("host", addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let transfer_encoding = resp
            .headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = resp.into_body();
        tokio::spawn(async move {
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
        Channel {
            status,
            transfer_encoding,
            events: rx,
        }
    }

    /// The next event (keep-alives skipped) within 5 s.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("channel open")
    }

    /// The next event if one comes within `wait`.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The ladder from `from` on with instance ids and HTTP status lines made stable.
fn web_flow(lab: &Lab, from: usize, instance: &str) -> Vec<String> {
    chat_flow(lab, from)
        .into_iter()
        .map(|l| {
            let l = if instance.is_empty() {
                l
            } else {
                l.replace(instance, "{id}")
            };
            l.replace(" HTTP HTTP/1.1 ", " HTTP ")
        })
        .collect()
}

fn check(expected: &[String], got: &[String]) {
    if let Some(d) = rcslab::lab::scenario::diff(expected, got) {
        panic!("ladder differs:\n{d}\n\nwhole ladder:\n{}", got.join("\n"));
    }
}

/// Paper figure 4 (31 steps): an RCS UE's first message to a WebRSF client.
pub fn figure_4() -> Vec<String> {
    let mut f: Vec<String> = vec![
        "Web bob -> WebRSF HTTP POST /webrsf/v1/bob/Notification/Streaming".into(), // 1
        "WebRSF -> Web bob HTTP 200 OK".into(),                                     // 2
    ];
    // 3-14: figure 1 steps 1-12, then T-IM's INVITE (15-16) reaches WebRSF in UE2's place.
    let upto = FIGURE_1
        .iter()
        .position(|l| l.contains("P-CSCF -> UE bob SIP INVITE"))
        .expect("figure 1 has step 14");
    f.extend(FIGURE_1[..upto].iter().map(|s| s.to_string()));
    f.extend([
        "P-CSCF -> WebRSF SIP INVITE".to_string(),           // 16
        "WebRSF -> Web bob HTTP chunk chat initiate".into(), // 17 Table 1
        "Web bob -> WebRSF HTTP PUT /webrsf/v1/bob/Chat/{id}".into(), // 18
        "~ WebRSF -> Web bob HTTP 200 OK".into(),            // 19
    ]);
    // 20-31: figure 1 steps 15-26 with WebRSF as UE2.
    let rest = FIGURE_1
        .iter()
        .position(|l| l.contains("UE bob -> P-CSCF SIP MESSAGE"))
        .expect("figure 1 has step 15");
    f.extend(FIGURE_1[rest..].iter().enumerate().map(|(i, s)| {
        let s = s.replace("UE bob", "WebRSF");
        // The HTTP answer only has to come before the gateway's 200 for the INVITE.
        if i == 0 {
            s
        } else if s.starts_with("WebRSF -> P-CSCF SIP 200") {
            format!("! {s}")
        } else {
            s
        }
    }));
    // (Not in the paper: the client learns the session is up.)
    f.push("WebRSF -> Web bob HTTP chunk chatEvent accepted".into());
    f
}

/// Paper figure 5 (17 steps): a later message to a WebRSF client.
pub fn figure_5() -> Vec<String> {
    [
        "UE alice -> O-IM MSRP SEND",                               // 1
        "O-IM -> T-IM MSRP SEND",                                   // 2
        "T-IM -> WebRSF MSRP SEND",                                 // 3
        "WebRSF -> T-IM MSRP 200",                                  // 4
        "~ T-IM -> O-IM MSRP 200",                                  // 5
        "~ O-IM -> UE alice MSRP 200",                              // 6
        "WebRSF -> Web bob HTTP chunk messageNotification waiting", // 7 data waiting
        "Web bob -> WebRSF HTTP GET /webrsf/v1/bob/Chat/Media",     // 8
        "WebRSF -> Web bob HTTP 200 OK",                            // 9
        "WebRSF -> Web bob HTTP chunk message {mid}",               // 9 (the message, chunked)
        "Web bob -> WebRSF HTTP PUT /webrsf/v1/bob/Chat/{id}",      // 10
        "~ WebRSF -> Web bob HTTP 200 OK",                          // 11
        "WebRSF -> T-IM MSRP SEND",                                 // 12 IMDN delivered
        "T-IM -> O-IM MSRP SEND",                                   // 13
        "! O-IM -> UE alice MSRP SEND",                             // 14
        "UE alice -> O-IM MSRP 200",                                // 15
        "O-IM -> T-IM MSRP 200",                                    // 16
        "T-IM -> WebRSF MSRP 200",                                  // 17
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn instance_id(ev: &Value) -> String {
    ev["instance"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .expect("instance URL")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_4_and_5_rcs_ue_to_web_client() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let token = login(&lab, "bob", "bob-secret").await;
    assert!(
        lab.scscf.registration("sip:bob@ims.lab").is_some(),
        "the gateway registered bob to IMS"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = crate::flow(&lab).len();

    // Figure 4.
    let mut ch = Channel::open(&lab, "bob", &token, 0).await;
    assert_eq!(ch.status, 200);
    assert_eq!(ch.transfer_encoding.as_deref(), Some("chunked"));
    let first = alice.send("sip:bob@ims.lab", "Hello?").await;
    let ev = ch.next().await;
    let id = instance_id(&ev);
    let want = json!({
        "id": 1,
        "type": "chat",
        "instance": format!("https://{}/webrsf/v1/bob/Chat/{id}", lab.addrs.webrsf),
        "data": {"status": "initiate", "subject": "Hello?", "message_id": first, "sender": "alice"},
    });
    assert_eq!(ev, want, "paper Table 1");
    // The text waits at Chat/Media until acknowledged.
    let (s, media) = call_raw(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/bob/Chat/Media",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let media: Value = serde_json::from_slice(&media).expect("one NDJSON line");
    assert_eq!(media["text"], "Hello?");
    assert_eq!(media["message_id"], first.as_str());
    // (The Media fetch is taken out of the ladder below: the paper's client only reads the
    // subject.)
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::PUT,
        &format!("/webrsf/v1/bob/Chat/{id}"),
        Some(&token),
        Some(json!({"status": "delivered", "message_id": first})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    match next(&mut alice).await {
        ChatEvent::Status {
            message_id, status, ..
        } => {
            assert_eq!(message_id, first);
            assert_eq!(status, ImdnStatus::Delivered);
        }
        other => panic!("expected the IMDN, got {other:?}"),
    }
    crate::eventually("the session up event", || {
        crate::flow(&lab)
            .last()
            .is_some_and(|l| l.ends_with("chunk chatEvent accepted"))
    })
    .await;
    assert_eq!(ch.next().await["data"]["status"], "accepted");
    let mut got = web_flow(&lab, start, &id);
    // Drop the Media round trip (made between steps 17 and 18 to check the text).
    let media_at = got
        .iter()
        .position(|l| l.contains("GET /webrsf/v1/bob/Chat/Media"))
        .expect("the Media fetch");
    got.drain(media_at..media_at + 3);
    check(&figure_4(), &got);

    // Figure 5.
    let start = crate::flow(&lab).len();
    let later = alice.send("sip:bob@ims.lab", "Are you there?").await;
    let ev = ch.next().await;
    assert_eq!(ev["type"], "messageNotification");
    assert_eq!(ev["data"]["status"], "waiting");
    assert_eq!(ev["data"]["message_id"], later.as_str());
    assert_eq!(ev["data"]["sender"], "alice");
    assert_eq!(instance_id(&ev), id, "one instance per peer");
    let (s, media) = call_raw(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/bob/Chat/Media",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let media: Value = serde_json::from_slice(&media).expect("one NDJSON line");
    assert_eq!(media["text"], "Are you there?");
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::PUT,
        &format!("/webrsf/v1/bob/Chat/{id}"),
        Some(&token),
        Some(json!({"status": "delivered", "message_id": later})),
    )
    .await;
    assert_eq!(s, 200);
    match next(&mut alice).await {
        ChatEvent::Status {
            message_id, status, ..
        } => {
            assert_eq!(message_id, later);
            assert_eq!(status, ImdnStatus::Delivered);
        }
        other => panic!("expected the IMDN, got {other:?}"),
    }
    crate::eventually("the IMDN's last 200", || {
        crate::flow(&lab)
            .last()
            .is_some_and(|l| l.starts_with("T-IM -> WebRSF MSRP"))
    })
    .await;
    let got: Vec<String> = web_flow(&lab, start, &id)
        .into_iter()
        .map(|l| l.replace(&later, "{mid}"))
        .collect();
    check(&figure_5(), &got);
    assert_eq!(
        ch.try_next(Duration::from_millis(100)).await,
        None,
        "no event beyond the figures"
    );
}
