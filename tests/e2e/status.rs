//! `rcslab status`, `GET /status`, `GET /registrations` and `GET /metrics` against a lab that
//! holds a registration, a chat and a message stored for an offline user.

use std::collections::HashMap;
use std::time::Duration;

use hyper::Method;
use rcslab::lab::status::{Registrations, Status, UserCount};
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::watch;

use crate::{lab_with, ue};

/// A registered chat client and the contact it registered.
async fn client(lab: &Lab, user: &str, shut: &watch::Receiver<bool>) -> (ChatUe, String) {
    let mut u = ue(lab, user, AuthMode::Digest, shut).await;
    u.register(600).await.expect("registers");
    let contact = u.contact();
    (
        ChatUe::start(u, lab.trace.clone(), ChatOptions::default()),
        contact,
    )
}

/// Waits for an event matching `pred` (others skipped) within 5 s.
async fn wait_for(ue: &mut ChatUe, what: &str, pred: impl Fn(&ChatEvent) -> bool) -> ChatEvent {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match ue.next_event(left).await {
            Some(ev) if pred(&ev) => return ev,
            Some(_) => {}
            None => panic!("no {what} within 5 s"),
        }
    }
}

/// A Prometheus 0.0.4 exposition, checked line by line: `# HELP name text`, `# TYPE name
/// type` (each family typed once, before its samples, samples named after it), and samples
/// `name{label="value",...} value`. Returns each sample's value by its `name{labels}` text.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name), "HELP names a bad metric: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "bad TYPE line: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type: {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "typed twice: {line}"
            );
            current = Some(name.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "0.0.4 has no such comment: {line}");
        if line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad sample name: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                for pair in inner.split("\",") {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label: {line}"));
                    assert!(valid_name(k), "bad label name: {line}");
                    assert!(
                        !v.trim_end_matches('"').contains('"'),
                        "bad label value: {line}"
                    );
                }
            }
        }
        assert_eq!(
            Some(name),
            current.as_deref(),
            "sample outside its family: {line}"
        );
        samples.insert(series.to_string(), value);
    }
    assert!(!samples.is_empty(), "no samples");
    samples
}

/// How many lines of the lab's ladder go `from -> to` with a summary starting `what`.
fn ladder_count(lab: &Lab, from: &str, to: &str, what: &str) -> f64 {
    lab.ladder()
        .iter()
        .filter(|l| l.from == from && l.to == to && l.summary.starts_with(what))
        .count() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_reflect_a_registration_a_chat_and_a_stored_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);

    // Registrations and a chat: alice's first message sets the session up, the second goes
    // over MSRP through O-IM and T-IM.
    let (mut alice, alice_contact) = client(&lab, "alice", &shut).await;
    let (mut bob, bob_contact) = client(&lab, "bob", &shut).await;
    alice.send("sip:bob@ims.lab", "Hello?").await;
    wait_for(
        &mut bob,
        "the first message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "Hello?"),
    )
    .await;
    alice.send("sip:bob@ims.lab", "over MSRP").await;
    wait_for(
        &mut bob,
        "the second message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "over MSRP"),
    )
    .await;
    // A message for carol, who is offline: T-IM stores it.
    alice.send("sip:carol@ims.lab", "kept for carol").await;
    wait_for(&mut alice, "the stored notice", |e| {
        matches!(e, ChatEvent::Stored { .. })
    })
    .await;

    // GET /status with the token.
    let (code, body) = lab.admin.call(Method::GET, "/status", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let s: Status = serde_json::from_str(&body).expect("a Status");
    let r = &s.registrations;
    assert_eq!((r.count, r.pcscf_bindings, r.truncated), (2, 2, false));
    let impus: Vec<&str> = r.users.iter().map(|u| u.impu.as_str()).collect();
    assert_eq!(impus, ["sip:alice@ims.lab", "sip:bob@ims.lab"]);
    for (u, contact, impi) in [
        (&r.users[0], &alice_contact, "alice@ims.lab"),
        (&r.users[1], &bob_contact, "bob@ims.lab"),
    ] {
        assert_eq!(u.impi, impi);
        assert_eq!((u.contacts_total, u.pcscf_bindings), (1, 1));
        assert_eq!(&u.contacts[0].contact, contact);
        let left = u.contacts[0].expires_in_secs;
        assert!((590..=600).contains(&left), "expires in {left} s");
        assert_eq!(u.contacts[0].path.len(), 1, "the P-CSCF's Path");
    }
    // Two chats are held by O-IM (proxied) and T-IM (its sessions), one MSRP pair each:
    // alice -> bob, and alice -> carol, whose messages T-IM keeps.
    let count = |v: &[rcslab::lab::status::NodeCount], node: &str| {
        v.iter().find(|c| c.node == node).map(|c| c.count).unwrap()
    };
    for node in ["O-IM", "T-IM"] {
        assert_eq!(count(&s.sessions.chat, node), 2, "{:?}", s.sessions);
        assert_eq!(count(&s.sessions.msrp_pairs, node), 2, "{:?}", s.sessions);
    }
    // The last ACKs and 200s may still be on their way on a loaded machine: the INVITE
    // transactions end within a moment.
    let mut settled = s.sessions.invites_in_progress.iter().all(|c| c.count == 0);
    for _ in 0..50 {
        if settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, body) = lab.admin.call(Method::GET, "/status", None).await.unwrap();
        let again: Status = serde_json::from_str(&body).expect("a Status");
        settled = again
            .sessions
            .invites_in_progress
            .iter()
            .all(|c| c.count == 0);
    }
    assert!(settled, "INVITEs still in progress: {:?}", s.sessions);
    assert_eq!(
        s.stored_messages.per_user,
        [UserCount {
            user: "sip:carol@ims.lab".into(),
            count: 1
        }]
    );
    assert_eq!(
        (s.stored_messages.total, s.stored_messages.truncated),
        (1, false)
    );
    // Diameter: the HSS has both CSCFs connected; both CSCFs' links are up.
    let peer = |node: &str, host: &str| {
        s.diameter_peers
            .iter()
            .find(|p| p.node == node && p.origin_host == host)
            .unwrap_or_else(|| panic!("no {node} peer {host}: {:?}", s.diameter_peers))
    };
    for host in ["scscf.ims.lab", "icscf.ims.lab"] {
        let p = peer("HSS", host);
        assert_eq!((p.direction.as_str(), p.state.as_str()), ("accepted", "up"));
    }
    for node in ["S-CSCF", "I-CSCF"] {
        let p = peer(node, &lab.config.hss.origin_host);
        assert_eq!((p.direction.as_str(), p.state.as_str()), ("connects", "up"));
        assert_eq!(p.address, lab.addrs.hss.to_string());
    }
    let nodes: Vec<&str> = s.queues.iter().map(|q| q.node.as_str()).collect();
    assert_eq!(
        nodes,
        ["P-CSCF", "I-CSCF", "S-CSCF", "O-IM", "T-IM", "PS", "CONF", "IP-SM-GW", "RTCWeb"]
    );
    assert!(s.queues.iter().all(|q| q.sip_inbound_capacity > 0));

    // GET /registrations: the same registrations.
    let (code, body) = lab
        .admin
        .call(Method::GET, "/registrations", None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let regs: Registrations = serde_json::from_str(&body).expect("Registrations");
    assert_eq!(regs.count, 2);
    let contacts: Vec<&str> = regs
        .users
        .iter()
        .map(|u| u.contacts[0].contact.as_str())
        .collect();
    assert_eq!(contacts, [alice_contact.as_str(), bob_contact.as_str()]);

    // GET /metrics: Prometheus text, its counters as the ladder counts the same messages.
    let req = hyper::Request::builder()
        .uri("/metrics")
        .header("host", lab.addrs.admin.to_string())
        .header("authorization", lab.admin.bearer())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (code, raw) = rcslab::hss::admin_client::send(lab.addrs.admin, req)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8(raw).unwrap();
    let m = parse_prometheus(&text);
    let get = |series: &str| m.get(series).copied().unwrap_or(0.0);
    let registers = ladder_count(&lab, "I-CSCF", "S-CSCF", "REGISTER");
    assert_eq!(registers, 4.0, "two users, each challenged once");
    assert_eq!(
        get(r#"rcslab_sip_requests_total{node="S-CSCF",direction="received",method="REGISTER"}"#),
        registers
    );
    assert_eq!(
        get(
            r#"rcslab_sip_responses_total{node="S-CSCF",direction="sent",method="REGISTER",code="401"}"#
        ),
        ladder_count(&lab, "S-CSCF", "I-CSCF", "SIP/2.0 401")
    );
    assert_eq!(
        get(
            r#"rcslab_sip_responses_total{node="S-CSCF",direction="sent",method="REGISTER",code="200"}"#
        ),
        2.0
    );
    assert_eq!(
        get(r#"rcslab_sip_requests_total{node="P-CSCF",direction="received",method="INVITE"}"#),
        // alice's two chat INVITEs (bob, carol) and T-IM's delivery INVITE to bob
        ladder_count(&lab, "UE alice", "P-CSCF", "INVITE")
            + ladder_count(&lab, "S-CSCF", "P-CSCF", "INVITE")
    );
    // Diameter at the HSS, by command and result: UAR 2001 (first registration), MAR and SAR
    // 2001 (success), as many as the ladder shows.
    // The same requests counted by the CSCF that sent them: UAR by the I-CSCF, MAR and SAR
    // by the S-CSCF, each answered.
    for (cmd, sender) in [("UAR", "I-CSCF"), ("MAR", "S-CSCF"), ("SAR", "S-CSCF")] {
        let seen = ladder_count(&lab, sender, "HSS", cmd);
        let counted = get(&format!(
            r#"rcslab_diameter_requests_total{{node="HSS",command="{cmd}",result="2001"}}"#
        ));
        let sent = get(&format!(
            r#"rcslab_diameter_sent_requests_total{{node="{sender}",command="{cmd}",result="2001",error=""}}"#
        ));
        assert!(seen >= 2.0, "{cmd} on the ladder: {seen}");
        assert_eq!((counted, sent), (seen, seen), "{cmd} counted with 2001");
    }
    // LIR: bob is registered (2001); carol is not but has services for the unregistered
    // state (DIAMETER_UNREGISTERED_SERVICE 2003).
    assert_eq!(
        get(r#"rcslab_diameter_requests_total{node="HSS",command="LIR",result="2001"}"#),
        1.0
    );
    assert_eq!(
        get(r#"rcslab_diameter_requests_total{node="HSS",command="LIR",result="2003"}"#),
        1.0
    );
    assert_eq!(get("rcslab_registrations"), 2.0);
    assert_eq!(get("rcslab_registered_contacts"), 2.0);
    assert_eq!(get("rcslab_stored_messages"), 1.0);
    assert_eq!(
        get(r#"rcslab_stored_messages_by_user{user="sip:carol@ims.lab"}"#),
        1.0
    );
    assert!(
        get(r#"rcslab_msrp_messages_total{node="O-IM"}"#) >= 1.0,
        "the MSRP message"
    );
    assert!(
        get(r#"rcslab_msrp_messages_total{node="T-IM"}"#) >= 1.0,
        "the MSRP message"
    );
    assert_eq!(get(r#"rcslab_chat_sessions{node="T-IM"}"#), 2.0);
    assert_eq!(get(r#"rcslab_diameter_peers_up{node="HSS"}"#), 2.0);
    assert!(m.contains_key(r#"rcslab_sip_transactions_in_flight{node="S-CSCF"}"#));
    assert!(m.contains_key("rcslab_webrsf_channels"));

    // Without the token: 401, for all three.
    for path in ["/status", "/registrations", "/metrics"] {
        let req = hyper::Request::builder()
            .uri(path)
            .header("host", lab.addrs.admin.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let (code, _) = rcslab::hss::admin_client::send(lab.addrs.admin, req)
            .await
            .unwrap();
        assert_eq!(code, 401, "{path} without a token");
    }

    // The real binary, against this lab's data dir.
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("rcslab runs")
    };
    let data_dir = dir.path().display().to_string();
    let out = run(vec!["status".into(), "--data-dir".into(), data_dir.clone()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("registrations: 2 (P-CSCF bindings: 2)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  sip:alice@ims.lab  contact <{alice_contact}>  expires in "
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "  sip:bob@ims.lab  contact <{bob_contact}>  expires in "
    )));
    assert!(
        stdout.contains("stored messages: 1  sip:carol@ims.lab 1\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  HSS <- scscf.ims.lab "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  S-CSCF -> {} {} up\n",
            lab.config.hss.origin_host, lab.addrs.hss
        )),
        "{stdout}"
    );
    let out = run(vec![
        "status".into(),
        "--json".into(),
        "--data-dir".into(),
        data_dir,
    ])
    .await;
    assert!(out.status.success());
    let js: Status = serde_json::from_slice(&out.stdout).expect("--json prints the Status");
    assert_eq!(js.registrations.count, 2);
    assert_eq!(js.stored_messages.per_user, s.stored_messages.per_user);

    // No lab on a data dir: exit code 1, a clear error, and the dir is not created.
    let none = dir.path().join("no-lab-here");
    let out = run(vec![
        "status".into(),
        "--data-dir".into(),
        none.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no lab is running on"), "{stderr}");
    assert!(!none.exists(), "rcslab status created the data dir");

    // A web user with a notification channel open: the WebRSF part and its gauge.
    let token = crate::web::login(&lab, "bob", "bob-secret").await;
    let ch = crate::web::Channel::open(&lab, "bob", &token, 0).await;
    assert_eq!(ch.status, 200);
    crate::eventually("the channel counted", || {
        lab.status().sessions.webrsf_channels == 1
    })
    .await;
    let (code, body) = lab.admin.call(Method::GET, "/status", None).await.unwrap();
    assert_eq!(code, 200);
    let s: Status = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s.sessions.webrsf_users, s.sessions.webrsf_channels),
        (1, 1)
    );
    // The gateway registered bob's web client beside his chat client.
    assert_eq!(s.registrations.users[1].contacts_total, 2);
    let (_, text) = lab.admin.call(Method::GET, "/metrics", None).await.unwrap();
    let m = parse_prometheus(&text);
    assert_eq!(m.get("rcslab_webrsf_channels"), Some(&1.0));
    assert_eq!(m.get("rcslab_registered_contacts"), Some(&3.0));
    drop(ch);

    lab.shutdown().await;
}
