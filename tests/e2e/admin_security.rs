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
