//! The admin API is the lab's keys: what a local user without the token, a web page the
//! developer visits (CSRF, DNS rebinding) and a reader of the trace can and cannot do.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use rcslab::hss::admin_client::send;
use rcslab::ue::AuthMode;
use serde_json::Value;
use tokio::sync::watch;

use crate::web::login;
use crate::{lab_with, ue};

/// A raw request to the admin API with these headers.
async fn raw(
    lab: &rcslab::Lab,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let (s, b) = send(lab.addrs.admin, req).await.expect("the API answers");
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_from_another_host_or_origin_nothing_is_read_or_changed() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let host = ("host", lab.addrs.admin.to_string());
    let auth = ("authorization", lab.admin.bearer());
    let json_ct = ("content-type", "application/json".to_string());
    let carol_before = lab.store.find("sip:carol@ims.lab").unwrap().unwrap();
    let change = r#"{"impu":["sip:carol@ims.lab"],"password":"owned"}"#;

    // The token is in the data dir, readable by its owner only.
    let token_file = dir.path().join("admin.token");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600);

    // No token: 401 with a challenge, for reads, the trace and writes alike.
    for (m, path, body) in [
        (Method::GET, "/subscribers", ""),
        (Method::GET, "/subscribers/alice%40ims.lab", ""),
        (Method::GET, "/trace", ""),
        (Method::POST, "/subscribers", change),
        (Method::DELETE, "/subscribers/alice%40ims.lab", ""),
    ] {
        let (s, v) = raw(
            &lab,
            m.clone(),
            path,
            &[host.clone(), json_ct.clone()],
            body,
        )
        .await;
        assert_eq!(s, 401, "{m} {path}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let wrong = ("authorization", format!("Bearer {}", "0".repeat(64)));
    let (s, _) = raw(
        &lab,
        Method::GET,
        "/subscribers",
        &[host.clone(), wrong],
        "",
    )
    .await;
    assert_eq!(s, 401);
    // /health tells only that a lab runs.
    let (s, v) = raw(
        &lab,
        Method::GET,
        "/health",
        std::slice::from_ref(&host),
        "",
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));

    // DNS rebinding: the right port reached through a name the attacker controls.
    let evil_host = ("host", format!("evil.example:{}", lab.addrs.admin.port()));
    let (s, v) = raw(
        &lab,
        Method::GET,
        "/subscribers",
        &[evil_host, auth.clone()],
        "",
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("host not allowed")));

    // CSRF: a page elsewhere posts with the browser's (here: the right) credentials.
    let evil_origin = ("origin", "http://evil.example".to_string());
    let (s, v) = raw(
        &lab,
        Method::POST,
        "/subscribers",
        &[host.clone(), auth.clone(), json_ct.clone(), evil_origin],
        change,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("cross-site request refused"))
    );
    let fetch = ("sec-fetch-site", "cross-site".to_string());
    let (s, _) = raw(
        &lab,
        Method::POST,
        "/subscribers",
        &[host.clone(), auth.clone(), json_ct.clone(), fetch],
        change,
    )
    .await;
    assert_eq!(s, 403);
    // A "simple" cross-site request (no preflight) is text/plain: refused as not JSON.
    let text = ("content-type", "text/plain".to_string());
    let (s, v) = raw(
        &lab,
        Method::POST,
        "/subscribers",
        &[host.clone(), auth.clone(), text],
        change,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (415, Some("JSON needed")));
    assert_eq!(
        lab.store.find("sip:carol@ims.lab").unwrap().unwrap(),
        carol_before,
        "carol is as she was"
    );

    // The same origin with the token works.
    let same = ("origin", format!("http://{}", lab.addrs.admin));
    let (s, v) = raw(
        &lab,
        Method::GET,
        "/subscribers/carol%40ims.lab",
        &[host, auth, same],
        "",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_write_only_and_an_update_keeps_the_sim_keys() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let before = lab.store.find("sip:carol@ims.lab").unwrap().unwrap();
    let secrets = [
        before.password.clone(),
        before.aka.k.clone(),
        before.aka.opc.clone(),
    ];
    let (s, one) = lab
        .admin
        .call(Method::GET, "/subscribers/carol%40ims.lab", None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{one}");
    let (s, page) = lab
        .admin
        .call(Method::GET, "/subscribers", None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    for answer in [&one, &page] {
        for secret in &secrets {
            assert!(!answer.contains(secret.as_str()), "a secret in {answer}");
        }
    }
    let v: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["password_set"], true);
    assert_eq!(
        (v["aka"]["k_set"].as_bool(), v["aka"]["opc_set"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(v.get("password").is_none() && v["aka"].get("k").is_none());

    // A new password, nothing said about K and OPc: the SIM keys stay.
    let (s, created) = lab
        .admin
        .call(
            Method::POST,
            "/subscribers",
            Some(r#"{"impu":["sip:carol@ims.lab"],"password":"new-carol"}"#.into()),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{created}");
    assert!(!created.contains("new-carol"));
    let after = lab.store.find("sip:carol@ims.lab").unwrap().unwrap();
    assert_eq!(after.password, "new-carol");
    assert_eq!(
        (&after.aka.k, &after.aka.opc, after.aka.sqn),
        (&before.aka.k, &before.aka.opc, before.aka.sqn)
    );

    // iFCs alone change through their own resource.
    let (s, v) = lab
        .admin
        .call(
            Method::PUT,
            "/subscribers/carol%40ims.lab/ifc",
            Some("[]".into()),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let after_ifc = lab.store.find("sip:carol@ims.lab").unwrap().unwrap();
    assert!(after_ifc.ifcs.is_empty());
    assert_eq!(
        (after_ifc.password, after_ifc.aka),
        (after.password, after.aka)
    );
    let (s, _) = lab
        .admin
        .call(
            Method::PUT,
            "/subscribers/nobody%40ims.lab/ifc",
            Some("[]".into()),
        )
        .await
        .unwrap();
    assert_eq!(s, 404);
    lab.shutdown().await;
}

/// The trace keeps what teaches and masks what works as a credential: the WebRSF login's
/// password, the Bearer token, the MAA's Digest-HA1 (which answers any challenge of the realm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_masks_passwords_tokens_and_digest_ha1() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let token = login(&lab, "carol", "carol-secret").await;
    let ha1 = rcslab::auth::digest::ha1_hex("alice@ims.lab", "ims.lab", b"alice-secret");
    let (s, text) = lab
        .admin
        .call(Method::GET, "/trace?format=text", None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert!(text.contains("MAA"), "the MAA is there: {text}");
    // The exports that hold the bytes: HTML (each message opens) and pcap.
    let mut exports = Vec::new();
    for format in ["html", "pcap"] {
        let (s, bytes) = lab
            .admin
            .call_bytes(Method::GET, &format!("/trace?format={format}"), None)
            .await
            .unwrap();
        assert_eq!(s, 200);
        exports.push(String::from_utf8_lossy(&bytes).to_string());
    }
    for export in &exports {
        assert!(
            export.contains("response="),
            "SIP digest responses stay: they teach"
        );
        assert!(export.contains("/Session"), "the login is there");
        assert!(export.contains(&"*".repeat(12)), "masked, same length");
        for secret in ["carol-secret", "alice-secret", token.as_str(), ha1.as_str()] {
            assert!(!export.contains(secret), "'{secret}' in the trace");
        }
    }
    lab.shutdown().await;
}

/// `rcslab subscriber` and `rcslab trace` reach a running lab with the token from its data
/// directory, and what they print holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uses_the_token_of_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let data = dir.path().to_path_buf();
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .output()
            .expect("rcslab runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let run = |args: Vec<&'static str>| {
        let cli = cli.clone();
        tokio::task::spawn_blocking(move || cli(&args))
    };
    let (ok, out) = run(vec![
        "subscriber",
        "add",
        "sip:dave@ims.lab",
        "--password",
        "dave-pw",
    ])
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        lab.store.find("sip:dave@ims.lab").unwrap().is_some(),
        "added through the API"
    );
    let (ok, out) = run(vec!["subscriber", "show", "sip:dave@ims.lab"])
        .await
        .unwrap();
    assert!(
        ok && out.contains("password_set") && !out.contains("dave-pw"),
        "{out}"
    );
    let (ok, out) = run(vec!["subscriber", "list"]).await.unwrap();
    assert!(
        ok && out.contains("dave@ims.lab") && out.contains("alice@ims.lab"),
        "{out}"
    );
    let (ok, out) = run(vec!["trace", "export", "--format", "text"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    // Without the token file the lab cannot be used.
    std::fs::remove_file(dir.path().join("admin.token")).unwrap();
    let (ok, out) = run(vec!["trace", "export", "--format", "text"])
        .await
        .unwrap();
    assert!(!ok, "{out}");
    lab.shutdown().await;
}

/// One answer read off the wire: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` as bytes, with
/// `Connection: close`, and reads the whole answer. `declared`: a Content-Length larger than
/// `body` to leave the body unfinished.
async fn wire(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    declared: Option<usize>,
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let len = declared.unwrap_or(body.len());
    let req = format!("{head}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let text = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// What scripts and the CLI rely on, request by request: the status, the JSON `error`, and
/// the headers that matter (challenge, paging, content types). It pins the API's routing
/// quirks too: any number of leading or trailing slashes is fine, a known path with another
/// method is 404 "no such resource" (never 405), the guard answers before the path is looked
/// at, ids are percent-decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_scripts_expect() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[http]\nbody_timeout_ms = 500\n").await;
    let addr = lab.addrs.admin;
    let host = format!("host: {addr}");
    let auth = format!("authorization: {}", lab.admin.bearer());
    let ok = format!("{host}\r\n{auth}");
    let js = "content-type: application/json";
    const CT_JSON: &str = "application/json";
    const CT_TEXT: &str = "text/plain; charset=utf-8";
    // (method and path, extra headers, body, status, JSON `error` or "" when none is
    // checked, Content-Type or "" when none is checked)
    let cases: Vec<(&str, String, &str, u16, &str, &str)> = vec![
        ("GET /health", host.clone(), "", 200, "", CT_JSON),
        // `/health` is open only as exactly that path; its other spellings need the token.
        (
            "GET //health//",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        ("GET //health//", ok.clone(), "", 200, "", CT_JSON),
        (
            "GET /health",
            format!("{host}\r\nauthorization: Bearer x"),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /health/",
            format!("{host}\r\nauthorization: Bearer x"),
            "",
            401,
            "bad token",
            CT_JSON,
        ),
        (
            "GET /health",
            "host: evil.example".into(),
            "",
            403,
            "host not allowed",
            CT_JSON,
        ),
        (
            "GET /health",
            format!("host: localhost:{}", addr.port()),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /health",
            format!("{host}\r\norigin: http://evil.example"),
            "",
            403,
            "cross-site request refused",
            CT_JSON,
        ),
        (
            "POST /health",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        (
            "POST /health",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        ("HEAD /health", ok.clone(), "", 404, "", CT_JSON),
        (
            "GET /subscribers",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        (
            "GET /nowhere",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        (
            "GET /subscribers",
            format!("{host}\r\nauthorization: Bearer {}", "0".repeat(64)),
            "",
            401,
            "bad token",
            CT_JSON,
        ),
        (
            "GET /subscribers",
            format!("{ok}\r\norigin: http://evil.example"),
            "",
            403,
            "cross-site request refused",
            CT_JSON,
        ),
        (
            "GET /subscribers",
            format!("{ok}\r\nsec-fetch-site: cross-site"),
            "",
            403,
            "cross-site request refused",
            CT_JSON,
        ),
        (
            "GET /subscribers",
            format!("{ok}\r\norigin: http://{addr}"),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /subscribers",
            format!("host: evil.example:{}\r\n{auth}", addr.port()),
            "",
            403,
            "host not allowed",
            CT_JSON,
        ),
        ("GET /", ok.clone(), "", 404, "no such resource", CT_JSON),
        (
            "GET /nowhere",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        ("GET /subscribers/", ok.clone(), "", 200, "", CT_JSON),
        ("GET ///subscribers//", ok.clone(), "", 200, "", CT_JSON),
        (
            "GET /subscribers//alice%40ims.lab",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "GET /subscribers?limit=0",
            ok.clone(),
            "",
            400,
            "bad limit",
            CT_JSON,
        ),
        (
            "GET /subscribers?limit=1001",
            ok.clone(),
            "",
            400,
            "bad limit",
            CT_JSON,
        ),
        (
            "GET /subscribers/alice%40ims.lab",
            ok.clone(),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /subscribers/sip%3Aalice%40ims.lab/",
            ok.clone(),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /subscribers/alice@ims.lab",
            ok.clone(),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /subscribers/nobody%40ims.lab",
            ok.clone(),
            "",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "GET /subscribers/alice%40ims.lab/x",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "PUT /subscribers",
            format!("{ok}\r\n{js}"),
            "{}",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "PATCH /subscribers/alice%40ims.lab",
            format!("{ok}\r\n{js}"),
            "{}",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "POST /subscribers/alice%40ims.lab",
            format!("{ok}\r\n{js}"),
            "{}",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "GET /subscribers/alice%40ims.lab/ifc",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            ok.clone(),
            "{}",
            415,
            "JSON needed",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{ok}\r\ncontent-type: text/plain"),
            "{}",
            415,
            "JSON needed",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{host}\r\ncontent-type: text/plain"),
            "{}",
            401,
            "token needed",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{ok}\r\n{js}"),
            "{",
            400,
            "malformed JSON",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{ok}\r\n{js}"),
            "{}",
            400,
            "invalid subscriber",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{ok}\r\n{js}"),
            "[{}]",
            400,
            "invalid subscriber list",
            CT_JSON,
        ),
        (
            "POST /subscribers",
            format!("{ok}\r\n{js}"),
            r#"{"impu":[],"password":"x"}"#,
            400,
            "invalid subscriber",
            CT_JSON,
        ),
        (
            "POST /subscribers/",
            format!("{ok}\r\ncontent-type: Application/JSON; charset=utf-8"),
            r#"{"impu":["sip:dave@ims.lab"],"password":"pw"}"#,
            201,
            "",
            CT_JSON,
        ),
        (
            "PUT /subscribers/dave%40ims.lab/ifc",
            format!("{ok}\r\ncontent-type: text/plain"),
            "[]",
            415,
            "JSON needed",
            CT_JSON,
        ),
        (
            "PUT /subscribers/dave%40ims.lab/ifc",
            format!("{ok}\r\n{js}"),
            "{",
            400,
            "invalid iFC list",
            CT_JSON,
        ),
        (
            "PUT /subscribers/nobody%40ims.lab/ifc",
            format!("{ok}\r\n{js}"),
            "[]",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "PUT /subscribers/dave%40ims.lab/ifc/",
            format!("{ok}\r\n{js}"),
            "[]",
            200,
            "",
            CT_JSON,
        ),
        (
            "DELETE /subscribers/nobody%40ims.lab",
            ok.clone(),
            "",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "DELETE /subscribers/sip%3Adave%40ims.lab",
            ok.clone(),
            "",
            200,
            "",
            CT_JSON,
        ),
        (
            "GET /subscribers/dave%40ims.lab",
            ok.clone(),
            "",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        ("GET /trace", host.clone(), "", 401, "token needed", CT_JSON),
        ("GET /trace", ok.clone(), "", 200, "", CT_TEXT),
        (
            "GET /trace/?format=text&view=full",
            ok.clone(),
            "",
            200,
            "",
            CT_TEXT,
        ),
        (
            "GET /trace?format=mermaid",
            ok.clone(),
            "",
            200,
            "",
            CT_TEXT,
        ),
        (
            "GET /trace?format=html",
            ok.clone(),
            "",
            200,
            "",
            "text/html; charset=utf-8",
        ),
        (
            "GET /trace?format=pcap",
            ok.clone(),
            "",
            200,
            "",
            "application/vnd.tcpdump.pcap",
        ),
        (
            "GET /trace?format=bogus",
            ok.clone(),
            "",
            400,
            "unknown format",
            CT_JSON,
        ),
        (
            "GET /trace?view=bogus",
            ok.clone(),
            "",
            400,
            "unknown view",
            CT_JSON,
        ),
        ("GET /trace?view=paper", ok.clone(), "", 200, "", CT_TEXT),
        (
            "GET /trace?view=roles&format=text",
            ok.clone(),
            "",
            200,
            "",
            CT_TEXT,
        ),
        (
            "GET /trace?view=paper&format=html",
            ok.clone(),
            "",
            400,
            "unknown view",
            CT_JSON,
        ),
        (
            "GET /trace?view=paper&user=alice",
            ok.clone(),
            "",
            400,
            "filters need view=full",
            CT_JSON,
        ),
        (
            "GET /trace?since=soon",
            ok.clone(),
            "",
            400,
            "bad filter",
            CT_JSON,
        ),
        (
            "GET /trace?call_id=abc%40x&user=sip%3Aalice%40ims.lab&since=60",
            ok.clone(),
            "",
            200,
            "",
            CT_TEXT,
        ),
        (
            "POST /trace",
            format!("{ok}\r\n{js}"),
            "{}",
            404,
            "no such resource",
            CT_JSON,
        ),
        ("GET /status", ok.clone(), "", 200, "", CT_JSON),
        ("GET /status//", ok.clone(), "", 200, "", CT_JSON),
        (
            "GET /status",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        (
            "DELETE /status",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        ("GET /registrations", ok.clone(), "", 200, "", CT_JSON),
        (
            "GET /metrics",
            ok.clone(),
            "",
            200,
            "",
            rcslab::metrics::PROMETHEUS_CONTENT_TYPE,
        ),
        (
            "GET /metrics",
            format!("{ok}\r\naccept: application/openmetrics-text; version=1.0.0"),
            "",
            200,
            "",
            rcslab::metrics::OPENMETRICS_CONTENT_TYPE,
        ),
        (
            "GET /metrics",
            format!("{ok}\r\naccept: text/plain"),
            "",
            200,
            "",
            rcslab::metrics::PROMETHEUS_CONTENT_TYPE,
        ),
        (
            "DELETE /trace",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
        ("DELETE /trace/", ok.clone(), "", 200, "", CT_JSON),
    ];
    let edges: Vec<(&str, String, &str, u16, &str, &str)> = vec![
        (
            "GET /subscribers/%FF",
            ok.clone(),
            "",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "GET /subscribers/a%2Fb%",
            ok.clone(),
            "",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "PUT /subscribers//ifc",
            format!("{ok}\r\n{js}"),
            "[]",
            404,
            "no such subscriber",
            CT_JSON,
        ),
        (
            "OPTIONS /subscribers",
            ok.clone(),
            "",
            404,
            "no such resource",
            CT_JSON,
        ),
        (
            "OPTIONS /nowhere",
            host.clone(),
            "",
            401,
            "token needed",
            CT_JSON,
        ),
    ];
    let cases: Vec<_> = cases.into_iter().chain(edges).collect();
    let mut wrong = Vec::new();
    for (line, headers, body, status, error, ct) in &cases {
        let a = wire(
            addr,
            &format!("{line} HTTP/1.1\r\n{headers}"),
            body.as_bytes(),
            None,
        )
        .await;
        let v = a.json();
        let got_error = v["error"].as_str().unwrap_or("");
        let got_ct = a.header("content-type").unwrap_or("");
        let want_error = if error.is_empty() { got_error } else { error };
        let want_ct = if ct.is_empty() { got_ct } else { ct };
        if a.status != *status || got_error != want_error || got_ct != want_ct {
            wrong.push(format!(
                "{line} [{headers}]: {} {got_error:?} {got_ct:?}, expected {status} {error:?} {ct:?}",
                a.status
            ));
            continue;
        }
        if *status >= 400 && !line.starts_with("HEAD") {
            assert!(v["detail"].is_string(), "{line}: detail in {v}");
        }
        // A refusal for want of the token carries the Bearer challenge (RFC 6750 §3).
        let challenge = a.header("www-authenticate");
        if *status == 401 {
            assert_eq!(challenge, Some("Bearer realm=\"rcslab admin\""), "{line}");
        } else {
            assert_eq!(challenge, None, "{line}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The detail of a 404 names what was asked for, decoded.
    let a = wire(
        addr,
        &format!("GET /subscribers/nobody%40ims.lab HTTP/1.1\r\n{ok}"),
        b"",
        None,
    )
    .await;
    assert_eq!(a.json()["detail"], "nobody@ims.lab");
    let a = wire(addr, &format!("GET /nowhere/ HTTP/1.1\r\n{ok}"), b"", None).await;
    assert_eq!(a.json()["detail"], "/nowhere/");
    let a = wire(
        addr,
        &format!("GET /subscribers/sip%3Aalice%40ims.lab HTTP/1.1\r\n{ok}"),
        b"",
        None,
    )
    .await;
    assert_eq!(a.json()["impi"], "alice@ims.lab");
    let a = wire(addr, &format!("DELETE /trace HTTP/1.1\r\n{ok}"), b"", None).await;
    assert!(a.json()["dropped"].is_u64(), "{}", a.json());

    // Paging: a page as long as `limit` names the next one in `Link` (RFC 8288); the last
    // page does not.
    let a = wire(
        addr,
        &format!("GET /subscribers?limit=1 HTTP/1.1\r\n{ok}"),
        b"",
        None,
    )
    .await;
    let first = a.json()[0]["impi"]
        .as_str()
        .expect("one subscriber")
        .to_string();
    assert_eq!(
        a.header("link"),
        Some(
            format!(
                "</subscribers?limit=1&after={}>; rel=\"next\"",
                first.replace('+', "%2B")
            )
            .as_str()
        ),
        "{:?}",
        a.headers
    );
    let all = wire(
        addr,
        &format!("GET /subscribers?limit=1000 HTTP/1.1\r\n{ok}"),
        b"",
        None,
    )
    .await;
    assert_eq!(all.header("link"), None);
    let n = all.json().as_array().map(Vec::len).unwrap_or(0);
    let a = wire(
        addr,
        &format!("GET /subscribers?limit={n}&after= HTTP/1.1\r\n{ok}"),
        b"",
        None,
    )
    .await;
    assert_eq!(
        a.header("link"),
        None,
        "a page that holds the last subscriber names no next one"
    );
    assert_eq!(a.json().as_array().map(Vec::len), Some(n));

    // A body that does not arrive within the body timeout: 408.
    let a = wire(
        addr,
        &format!("POST /subscribers HTTP/1.1\r\n{ok}\r\n{js}"),
        b"[{\"impu\":",
        Some(100),
    )
    .await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (408, Some("request timeout"))
    );
    let a = wire(
        addr,
        &format!("PUT /subscribers/alice%40ims.lab/ifc HTTP/1.1\r\n{ok}\r\n{js}"),
        b"[",
        Some(100),
    )
    .await;
    assert_eq!(a.status, 408);
}
