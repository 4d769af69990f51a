//! UMS, the unified-messaging gateway: a business registers a template, is refused until the
//! operator approves it, then sends to bob (delivered) and to a number nobody has (failed);
//! a plain text goes too; bob's reply to the short code 4100 reaches the business's webhook;
//! bad input gets its 4xx; no answer carries a token; `rcslab ums send` prints
//! `+15550002: delivered (sms)`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use rcslab::sms::rp::CONTENT_TYPE;
use rcslab::sms::Tpdu;
use rcslab::ue::{AuthMode, Ue};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::sms::{next_sms, send_rp_ack, submit_body, tpdu_of};
use crate::{eventually, lab_with, ue};

pub struct Api {
    addr: SocketAddr,
    business: String,
    operator: String,
    /// Every answer's body, to check that none carries a token.
    seen: Vec<String>,
}

impl Api {
    pub fn of(lab: &rcslab::Lab, dir: &Path) -> Api {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join("ums").join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        Api {
            addr: lab.ums.local_addr(),
            business: read("api.token"),
            operator: read("operator.token"),
            seen: Vec::new(),
        }
    }

    async fn call(
        &mut self,
        token: Option<&str>,
        m: Method,
        path: &str,
        body: &str,
    ) -> (u16, Value) {
        let mut b = Request::builder()
            .method(m)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.exchange(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
    }

    /// Sends `req` and reads the answer: status and JSON (every body kept in `seen`).
    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> (u16, Value) {
        let (s, body) = rcslab::http_client::send(self.addr, req, Duration::from_secs(10))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body).to_string();
        self.seen.push(text.clone());
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn business(&mut self, m: Method, path: &str, body: Value) -> (u16, Value) {
        let t = self.business.clone();
        self.call(Some(&t), m, path, &body.to_string()).await
    }

    /// `POST /ums/v1/media` with `bytes` of type `ct`, as the business: status and answer.
    pub async fn upload(&mut self, ct: &str, bytes: Vec<u8>) -> (u16, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/ums/v1/media")
            .header("host", self.addr.to_string())
            .header("content-type", ct)
            .header("authorization", format!("Bearer {}", self.business))
            .body(Full::new(Bytes::from(bytes)))
            .unwrap();
        self.exchange(req).await
    }

    pub async fn message(&mut self, id: &str) -> Value {
        self.business(Method::GET, &format!("/ums/v1/messages/{id}"), Value::Null)
            .await
            .1
    }

    /// The message once every recipient is final (within 15 s).
    async fn final_message(&mut self, id: &str) -> Value {
        for _ in 0..150 {
            let m = self.message(id).await;
            let done = m["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| matches!(r["status"].as_str(), Some("delivered" | "failed")));
            if done {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("message {id} not final: {}", self.message(id).await);
    }
}

/// A webhook receiver: each POSTed JSON body, answered 200.
pub(crate) async fn webhook() -> (SocketAddr, mpsc::Receiver<Value>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(100);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    if let Ok(v) = serde_json::from_slice(&body) {
                        let _ = tx.send(v).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// The webhook's events as they come, kept so that one can be looked for after others.
pub(crate) struct Events {
    pub(crate) rx: mpsc::Receiver<Value>,
    pub(crate) seen: Vec<Value>,
}

impl Events {
    /// The first event matching `f`, waiting for it (within 10 s).
    pub(crate) async fn find(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.seen.iter().find(|v| f(v)) {
                return v.clone();
            }
            let v = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no such webhook event in time; got {:?}", self.seen))
                .expect("webhook events");
            self.seen.push(v);
        }
    }
}

/// bob answers the next SMS: its text, from its originator.
async fn bob_gets(bob: &mut Ue) -> (String, String) {
    let (_, rp) = next_sms(bob).await;
    let Tpdu::Deliver(d) = tpdu_of(&rp) else {
        panic!("not an SMS-DELIVER")
    };
    send_rp_ack(bob, rp.mr()).await;
    (
        d.originator.value.clone(),
        d.user_data.as_text().unwrap_or_default().to_string(),
    )
}

async fn lab_and_bob(
    dir: &Path,
    extra: &str,
    shut: &tokio::sync::watch::Receiver<bool>,
) -> (rcslab::Lab, Ue) {
    let lab = lab_with(dir, extra).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, shut).await;
    bob.register(600).await.unwrap();
    eventually("the IP-SM-GW to know bob", || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered)
    })
    .await;
    eventually("the UMS to bind to the SMSC", || lab.ums.is_bound()).await;
    (lab, bob)
}

#[tokio::test]
async fn a_template_is_refused_until_approved_then_delivered_to_bob_and_failed_to_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, rx) = webhook().await;
    let mut events = Events {
        rx,
        seen: Vec::new(),
    };
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (lab, mut bob) = lab_and_bob(
        dir.path(),
        &format!("[ums]\nwebhook = \"http://{hook}/hook\"\n"),
        &shut,
    )
    .await;
    let mut api = Api::of(&lab, dir.path());

    let tpl = json!({"id": "otp", "text": "Your code is #{code}"}).to_string();
    let (s, v) = api
        .call(None, Method::POST, "/ums/v1/templates", &tpl)
        .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("token_needed")), "{v}");
    let (s, v) = api
        .call(Some("nope"), Method::POST, "/ums/v1/templates", &tpl)
        .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = api
        .business(
            Method::POST,
            "/ums/v1/templates",
            serde_json::from_str(&tpl).unwrap(),
        )
        .await;
    assert_eq!(
        (s, v["id"].as_str(), v["status"].as_str()),
        (201, Some("otp"), Some("pending")),
        "{v}"
    );
    let (s, _) = api
        .business(
            Method::POST,
            "/ums/v1/templates",
            serde_json::from_str(&tpl).unwrap(),
        )
        .await;
    assert_eq!(s, 409);

    let send = json!({
        "recipients": ["+15550002", "+15550099"],
        "template": {"id": "otp", "variables": {"code": "1234"}},
    });
    let (s, v) = api
        .business(Method::POST, "/ums/v1/messages", send.clone())
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("template_not_approved")),
        "{v}"
    );
    let (s, v) = api
        .business(Method::POST, "/ums/v1/templates/otp/approve", Value::Null)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("operator_only")),
        "{v}"
    );
    let op = api.operator.clone();
    let (s, v) = api
        .call(Some(&op), Method::POST, "/ums/v1/templates/otp/approve", "")
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");
    let (s, v) = api
        .business(Method::GET, "/ums/v1/templates/otp", Value::Null)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");

    let (s, v) = api.business(Method::POST, "/ums/v1/messages", send).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        v["recipients"],
        json!([
            {"to": "+15550002", "status": "accepted", "channel": "sms"},
            {"to": "+15550099", "status": "accepted", "channel": "sms"},
        ])
    );
    let (from, text) = bob_gets(&mut bob).await;
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("4100", "Your code is 1234")
    );
    let m = api.final_message(&id).await;
    let r = m["recipients"].as_array().unwrap();
    assert_eq!(
        (
            r[0]["to"].as_str(),
            r[0]["status"].as_str(),
            r[0]["channel"].as_str()
        ),
        (Some("+15550002"), Some("delivered"), Some("sms")),
        "{m}"
    );
    assert_eq!(
        (r[1]["to"].as_str(), r[1]["status"].as_str()),
        (Some("+15550099"), Some("failed")),
        "{m}"
    );
    assert!(!r[1]["detail"].as_str().unwrap().is_empty(), "{m}");
    let e = events.find(|e| e["status"] == "delivered").await;
    assert_eq!(
        (e["message_id"].as_str(), e["to"].as_str()),
        (Some(id.as_str()), Some("+15550002"))
    );
    events
        .find(|e| e["status"] == "failed" && e["to"] == "+15550099")
        .await;

    // A plain text, no template; a long one goes as LMS.
    let (s, v) = api
        .business(
            Method::POST,
            "/ums/v1/messages",
            json!({"recipients": ["+15550002"], "text": "Sale today"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(bob_gets(&mut bob).await.1, "Sale today");
    assert_eq!(
        api.final_message(&id).await["recipients"][0]["status"],
        "delivered"
    );

    // bob replies to the short code: the webhook gets it.
    let r = bob
        .message_with_body(
            "tel:+15559999",
            CONTENT_TYPE,
            &submit_body(1, 1, "4100", "YES"),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let _rp_ack = next_sms(&mut bob).await;
    let mo = events.find(|e| e["type"] == "mo").await;
    assert_eq!(
        mo,
        json!({"type": "mo", "from": "+15550002", "to": "4100", "text": "YES"})
    );

    // Bad input.
    for (body, status, error) in [
        (
            json!({"recipients": ["+15550002"], "text": "x", "template": {"id": "otp", "variables": {"code": "1"}}}),
            400,
            "text_and_template",
        ),
        (
            json!({"recipients": ["+15550002"], "template": {"id": "otp", "variables": {}}}),
            400,
            "missing_variable",
        ),
        (
            json!({"recipients": ["+15550002"], "template": {"id": "otp", "variables": {"code": "1", "x": "2"}}}),
            400,
            "unknown_variable",
        ),
        (
            json!({"recipients": ["+15550002"], "text": "a".repeat(2001)}),
            400,
            "text_too_long",
        ),
        (
            json!({"recipients": ["+15550002", "555-1234", "bob"], "text": "x"}),
            400,
            "bad_recipients",
        ),
        (json!({"recipients": [], "text": "x"}), 400, "no_recipients"),
        (
            json!({"recipients": ["+15550002"], "text": "x", "channel": "fax"}),
            400,
            "bad_channel",
        ),
        (
            json!({"recipients": ["+15550002"], "template": {"id": "nope"}}),
            404,
            "no_such_template",
        ),
    ] {
        let (s, v) = api
            .business(Method::POST, "/ums/v1/messages", body.clone())
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(error)),
            "{body}: {v}"
        );
        assert!(v["detail"].is_string(), "{v}");
    }
    let (s, v) = api
        .business(
            Method::POST,
            "/ums/v1/messages",
            json!({"recipients": ["+15550002", "555-1234", "bob"], "text": "x"}),
        )
        .await;
    let d = v["detail"].as_str().unwrap();
    assert!(
        s == 400 && d.contains("555-1234") && d.contains("bob"),
        "{v}"
    );
    let b = api.business.clone();
    let (s, v) = api
        .call(Some(&b), Method::POST, "/ums/v1/messages", "{not json")
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_json")), "{v}");
    let (s, _) = api
        .business(Method::GET, "/ums/v1/messages/m0", Value::Null)
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .business(Method::DELETE, "/ums/v1/messages", Value::Null)
        .await;
    assert_eq!(s, 405);
    let (s, _) = api
        .business(Method::GET, "/ums/v2/anything", Value::Null)
        .await;
    assert_eq!(s, 404);

    // No answer carried a token.
    for body in &api.seen {
        assert!(
            !body.contains(&api.business) && !body.contains(&api.operator),
            "{body}"
        );
    }
}

#[tokio::test]
async fn rcslab_ums_send_prints_each_recipient_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (_lab, mut bob) = lab_and_bob(dir.path(), "", &shut).await;
    let cli = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"));
        c.arg("ums")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    };
    let o = cli(&["template", "add", "otp", "Your code is #{code}"])
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "otp: pending (Your code is #{code})\n"
    );
    let o = cli(&["template", "approve", "otp"]).output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "otp: approved (Your code is #{code})\n"
    );
    let child = cli(&[
        "send",
        "--to",
        "+15550002",
        "--template",
        "otp",
        "--var",
        "code=42",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    assert_eq!(bob_gets(&mut bob).await.1, "Your code is 42");
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("rcslab ums send ends")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "+15550002: delivered (sms)\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success());
}
