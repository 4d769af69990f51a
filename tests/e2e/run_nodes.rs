//! Issue 15: a lab of seven separate `rcslab run NODE` processes, spread over three loopback
//! addresses as over three hosts (the HSS started last, so the CSCFs' Cx links must reconnect
//! by themselves, RFC 6733 §5.6), passes the registration, routing and chat ladders as the
//! UEs see them: digest registration (RFC 3261 §22, TS 24.229
//! §5.1.1), a pager MESSAGE (RFC 3428), an RCS chat message with its IMDN (RFC 5438), a
//! message stored by T-IM for an offline user and delivered when the user registers, and
//! WebRSF's History read from T-IM over its history endpoint. Each process exits cleanly on
//! SIGTERM. An unknown node name is refused with the valid ones, and `rcslab up` wires the
//! gateway to T-IM's token-protected history endpoint the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper::Method;
use rcslab::cpim::ImdnStatus;
use rcslab::trace::{Trace, TraceLimits};
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::{AuthMode, Ue, UeConfig};
use rcslab::LabConfig;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_rcslab");

/// The `[nodes]` keys a lab file of separate processes sets (T-IM's history endpoint too).
const KEYS: [&str; 17] = [
    "pcscf",
    "icscf",
    "scscf",
    "hss",
    "admin",
    "oim",
    "tim",
    "oim_msrp",
    "tim_msrp",
    "webrsf",
    "tim_http",
    "ps",
    "conf",
    "conf_msrp",
    "ipsmgw",
    "smsc",
    "ums",
];

/// A free port (UDP and TCP both free) on `ip`, and the sockets holding it until all are
/// picked.
pub(crate) fn free_port(ip: &str) -> (u16, (std::net::TcpListener, std::net::UdpSocket)) {
    loop {
        let t = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let p = t.local_addr().expect("addr").port();
        if let Ok(u) = std::net::UdpSocket::bind((ip, p)) {
            return (p, (t, u));
        }
    }
}

/// The "hosts" of the lab: Linux routes all of 127.0.0.0/8 to loopback, so each address
/// stands for a machine. The P-CSCF and WebRSF on one, the I-CSCF, S-CSCF and HSS on
/// another, the application servers on a third (issue 15: a lab can span hosts).
fn host_of(key: &str) -> &'static str {
    match key {
        "pcscf" | "webrsf" => "127.0.0.2",
        "icscf" | "scscf" | "hss" | "admin" => "127.0.0.3",
        _ => "127.0.0.4",
    }
}

/// A lab file on free ports, the nodes spread over three loopback addresses, with a fourth
/// user, dave (offline until late), and a short Cx reconnect backoff so the CSCFs find the
/// late HSS quickly.
fn lab_toml() -> String {
    let mut t = String::from("[nodes]\n");
    let mut held = Vec::new();
    for k in KEYS {
        let ip = host_of(k);
        let (p, h) = free_port(ip);
        held.push(h);
        t.push_str(&format!("{k} = \"{ip}:{p}\"\n"));
    }
    t.push_str("[diameter]\nreconnect_min_ms = 200\nreconnect_max_ms = 500\n");
    for u in ["alice", "bob", "carol", "dave"] {
        t.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-secret\"\n"
        ));
    }
    t
}

/// `rcslab run NODE` in the background; returns once it printed that it runs, with what it
/// printed.
pub(crate) async fn run_node(node: &str, config: &Path, data: &Path) -> (Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args([
            "run",
            node,
            "--config",
            &config.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rcslab run starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l.clone());
            if l.contains("Ctrl-C stops it") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "rcslab run {node} did not start: {seen:?}");
    // Keep draining stdout so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, seen)
}

/// Stops a node with SIGTERM; asserts it exits 0 and said it shut down.
pub(crate) async fn stop(node: &str, mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(st.success());
    let mut stderr = child.stderr.take().expect("stderr");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{node} did not stop on SIGTERM"))
        .expect("wait");
    let mut err = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
    assert!(status.success(), "{node} exited with {status}: {err}");
    assert!(
        err.contains("terminated: shutting down"),
        "{node} did not shut down cleanly: {err}"
    );
}

/// What the UEs saw, as `FROM -> TO PROTO SUMMARY` with the nodes and UEs named, SIP start
/// lines cut to method/status, 100 Trying left out.
fn ue_view(trace: &Trace, names: &HashMap<SocketAddr, String>) -> Vec<String> {
    rcslab::lab::ladder_of(trace, |a| {
        names.get(&a).cloned().unwrap_or_else(|| a.to_string())
    })
    .into_iter()
    .map(|l| {
        let s = &l.summary;
        let summary = match s.strip_prefix("SIP/2.0 ") {
            Some(rest) => rest.split_whitespace().next().unwrap_or("").to_string(),
            None if l.protocol == "SIP" => s.split_whitespace().next().unwrap_or("").to_string(),
            None => s.clone(),
        };
        format!("{} -> {} {} {}", l.from, l.to, l.protocol, summary)
    })
    .map(rcslab::lab::scenario::short_msrp)
    .filter(|l| !l.ends_with(" SIP 100"))
    .collect()
}

/// Paper figure 1 (`tests/e2e/chat.rs` `FIGURE_1`) as the two UEs see it: every line of it
/// that a UE sends or receives, step numbers on the right, the same `~` (parallel lane) and
/// `!` (barrier) markers.
const FIGURE_1_AT_THE_UES: &[&str] = &[
    "UE alice -> P-CSCF SIP INVITE", // 1
    "P-CSCF -> UE alice SIP 200",    // 10
    "~ UE alice -> P-CSCF SIP ACK",  // (RFC 3261 ACK)
    "UE alice -> O-IM MSRP SEND",    // 11 empty SEND binds UE1
    "O-IM -> UE alice MSRP 200",     // 12
    "! P-CSCF -> UE bob SIP INVITE", // 14 T-IM delivers with its own INVITE
    "UE bob -> P-CSCF SIP MESSAGE",  // 15 IMDN delivered
    "O-IM -> UE alice MSRP SEND",    // 18 the IMDN over MSRP
    "UE alice -> O-IM MSRP 200",     // 19
    "P-CSCF -> UE bob SIP 200",      // 22 200 for the MESSAGE
    "UE bob -> P-CSCF SIP 200",      // 23 200 for the INVITE
    "P-CSCF -> UE bob SIP ACK",      // (ACK along the route set)
    "UE bob -> T-IM MSRP SEND",      // 25 empty SEND binds UE2
    "T-IM -> UE bob MSRP 200",       // 26
];

/// A UE of the lab file towards the P-CSCF process, named `UE <user>` in `names`.
async fn ue(
    config: &LabConfig,
    user: &str,
    trace: &Trace,
    shut: &watch::Receiver<bool>,
    names: &mut HashMap<SocketAddr, String>,
) -> Ue {
    let mut cfg = UeConfig::from_lab(config, user, config.nodes.pcscf).expect("user in lab");
    cfg.auth = AuthMode::Digest;
    let ue = Ue::start(cfg, trace.clone(), shut.clone())
        .await
        .expect("UE binds");
    names.insert(ue.local_addr(), format!("UE {user}"));
    ue
}

/// The next event that is no session state change, within 10 s.
async fn next(ue: &mut ChatUe) -> ChatEvent {
    loop {
        match ue
            .next_event(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
        {
            ChatEvent::Session { .. } => continue,
            ev => return ev,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_rcslab_run_processes_register_route_and_chat() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("lab.toml");
    let toml = lab_toml();
    std::fs::write(&cfg_path, &toml).unwrap();
    let config = LabConfig::from_toml_str(&toml).expect("valid lab file");
    let data = dir.path().join("data");
    let n = config.nodes.clone();

    // Every node but the HSS first: the CSCFs' Cx links keep trying until it is there.
    let mut nodes = Vec::new();
    for node in ["pcscf", "icscf", "scscf", "oim", "tim", "webrsf"] {
        let (child, said) = run_node(node, &cfg_path, &data).await;
        nodes.push((node, child, said));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (hss, said) = run_node("hss", &cfg_path, &data).await;
    nodes.push(("hss", hss, said));
    let printed = |node: &str| {
        nodes
            .iter()
            .find(|(n, _, _)| *n == node)
            .map(|(_, _, s)| s.join("\n"))
            .unwrap_or_default()
    };
    assert!(
        printed("hss").contains(&n.hss.to_string()),
        "{}",
        printed("hss")
    );
    assert!(printed("hss").contains(&format!("data in {}", data.join("hss").display())));
    assert!(printed("tim").contains(&format!("data in {}", data.join("tim").display())));
    assert!(printed("tim").contains(&n.tim_http.unwrap().to_string()));
    assert!(printed("pcscf").contains(&n.pcscf.to_string()));
    assert!(
        !printed("pcscf").contains("data in"),
        "the P-CSCF keeps no data"
    );
    // Each storing node has its own sled db, in its own sub-directory.
    assert!(data.join("hss").join("admin.token").exists());
    assert!(data.join("tim").join("history.token").exists());

    let trace = Trace::with_limits(TraceLimits::default());
    let (_stop, shut) = watch::channel(false);
    let mut names: HashMap<SocketAddr, String> = [
        (n.pcscf, "P-CSCF"),
        (n.oim_msrp, "O-IM"),
        (n.tim_msrp, "T-IM"),
    ]
    .into_iter()
    .map(|(a, s)| (a, s.to_string()))
    .collect();

    // The HSS came last: the first REGISTER may meet a Cx link still reconnecting (480).
    let mut alice = ue(&config, "alice", &trace, &shut, &mut names).await;
    let mut registered = false;
    for _ in 0..40 {
        if alice.register(600).await.is_ok() {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        registered,
        "alice never registered: the CSCFs did not reach the late HSS"
    );

    // Registration as the UE sees it, from a clean trace: challenge, then 200 OK.
    let mut carol = ue(&config, "carol", &trace, &shut, &mut names).await;
    trace.clear();
    carol.register(600).await.expect("carol registers");
    assert_eq!(
        ue_view(&trace, &names),
        [
            "UE carol -> P-CSCF SIP REGISTER",
            "P-CSCF -> UE carol SIP 401",
            "UE carol -> P-CSCF SIP REGISTER",
            "P-CSCF -> UE carol SIP 200",
        ]
    );

    // Routing: a pager MESSAGE alice -> carol through P-CSCF, S-CSCF, I-CSCF (LIR), S-CSCF.
    trace.clear();
    let answer = tokio::spawn(async move {
        let inc = carol
            .next_request(Duration::from_secs(10))
            .await
            .expect("carol gets the MESSAGE");
        let req = inc.request.clone();
        let mut ok = req.response(200, None);
        let to = ok.headers.get("To").unwrap_or("").to_string();
        ok.headers.set("To", format!("{to};tag=carol1"));
        inc.tx.respond(ok);
        (req, carol)
    });
    let resp = alice.message("sip:carol@ims.lab", "Hello carol").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let (got, _carol) = answer.await.unwrap();
    assert_eq!(got.method.to_string(), "MESSAGE");
    assert_eq!(String::from_utf8_lossy(&got.body), "Hello carol");
    assert!(got
        .headers
        .get("From")
        .unwrap_or("")
        .contains("sip:alice@ims.lab"));
    assert_eq!(
        ue_view(&trace, &names),
        [
            "UE alice -> P-CSCF SIP MESSAGE",
            "P-CSCF -> UE carol SIP MESSAGE",
            "UE carol -> P-CSCF SIP 200",
            "P-CSCF -> UE alice SIP 200",
        ]
    );

    // Chat: alice's RCS message reaches bob through O-IM and T-IM, the IMDN comes back.
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let mut alice = ChatUe::start(alice, trace.clone(), opts.clone());
    let mut bob_ue = ue(&config, "bob", &trace, &shut, &mut names).await;
    bob_ue.register(600).await.expect("bob registers");
    let mut bob = ChatUe::start(bob_ue, trace.clone(), opts.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    trace.clear();
    let id = alice.send("sip:bob@ims.lab", "Hello?").await;
    match next(&mut bob).await {
        ChatEvent::Message {
            from,
            text,
            message_id,
        } => {
            assert_eq!(from, "sip:alice@ims.lab");
            assert_eq!(text, "Hello?");
            assert_eq!(message_id, id, "imdn.Message-ID survives O-IM and T-IM");
        }
        other => panic!("bob expected the chat message, got {other:?}"),
    }
    match next(&mut alice).await {
        ChatEvent::Status {
            message_id, status, ..
        } => {
            assert_eq!(message_id, id);
            assert_eq!(status, ImdnStatus::Delivered);
        }
        other => panic!("alice expected the IMDN, got {other:?}"),
    }
    // Bob's binding SEND (figure 1 step 25) is the last thing the UEs see.
    for _ in 0..100 {
        if ue_view(&trace, &names).last().map(String::as_str) == Some("T-IM -> UE bob MSRP 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: Vec<String> = FIGURE_1_AT_THE_UES.iter().map(|l| l.to_string()).collect();
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &ue_view(&trace, &names)) {
        panic!("chat as the UEs saw it differs:\n{d}");
    }

    // Store and forward: dave is offline; T-IM keeps the message and delivers it when dave
    // registers.
    let later = alice.send("sip:dave@ims.lab", "when you are back").await;
    match next(&mut alice).await {
        ChatEvent::Stored { message_id, .. } => assert_eq!(message_id, later),
        other => panic!("alice expected 'stored', got {other:?}"),
    }
    let mut dave_ue = ue(&config, "dave", &trace, &shut, &mut names).await;
    dave_ue.register(600).await.expect("dave registers");
    let mut dave = ChatUe::start(dave_ue, trace.clone(), opts);
    match next(&mut dave).await {
        ChatEvent::Message {
            from,
            text,
            message_id,
        } => {
            assert_eq!(from, "sip:alice@ims.lab");
            assert_eq!(text, "when you are back");
            assert_eq!(message_id, later);
        }
        other => panic!("dave expected the stored message, got {other:?}"),
    }
    match next(&mut alice).await {
        ChatEvent::Status {
            message_id, status, ..
        } => {
            assert_eq!(message_id, later);
            assert_eq!(status, ImdnStatus::Delivered);
        }
        other => panic!("alice expected dave's IMDN, got {other:?}"),
    }

    // WebRSF's History, which the gateway process reads from the T-IM process over T-IM's
    // history endpoint (with the token from data/tim/history.token).
    let (s, v) = rcslab::webrsf::client::request(
        n.webrsf,
        Method::POST,
        "/webrsf/v1/bob/Session",
        None,
        Some(json!({ "password": "bob-secret" })),
    )
    .await
    .expect("the gateway answers");
    assert_eq!(s, 200, "bob logs in to WebRSF: {v}");
    let token = v["token"].as_str().expect("token").to_string();
    let (s, h) = rcslab::webrsf::client::request(
        n.webrsf,
        Method::GET,
        "/webrsf/v1/bob/History/alice",
        Some(&token),
        None,
    )
    .await
    .expect("the gateway answers");
    assert_eq!(s, 200, "{h}");
    let texts: Vec<&str> = h
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hello?"], "{h}");
    assert_eq!(h[0]["message_id"], id.as_str());
    // The endpoint itself gives nothing without T-IM's token.
    let (s, body) = rcslab::hss::admin_client::send(
        n.tim_http.unwrap(),
        hyper::Request::get("/history?a=sip:alice@ims.lab&b=sip:bob@ims.lab")
            .header("host", n.tim_http.unwrap().to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await
    .expect("T-IM's history endpoint answers");
    assert_eq!(s, 401);
    assert!(!String::from_utf8_lossy(&body).contains("Hello"));

    // Every process stops cleanly on SIGTERM.
    drop((alice, bob, dave));
    for (node, child, _) in nodes {
        stop(node, child).await;
    }
}

#[tokio::test]
async fn an_unknown_node_is_refused_with_the_valid_names() {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(BIN)
            .args(["run", "bgcf"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("rcslab run bgcf finishes")
    .expect("rcslab runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown node 'bgcf'"), "{err}");
    for n in [
        "pcscf", "icscf", "scscf", "hss", "oim", "tim", "webrsf", "ps", "conf", "rtcweb",
    ] {
        assert!(err.contains(n), "{err}");
    }
}

/// `rcslab run conf`: the group-chat focus alone, as its own process would start it: its SIP
/// endpoint and its MSRP listener bound (the one at the address the focus says), its store in
/// `DIR/conf`.
#[tokio::test]
async fn rcslab_run_conf_listens_on_sip_and_msrp_with_its_own_store() {
    use rcslab::lab::run::{start, Node};
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::from_toml_str("").unwrap().with_ephemeral_ports();
    assert_eq!("conf".parse::<Node>(), Ok(Node::Conf));
    let node = start(Node::Conf, &cfg, dir.path(), rcslab::LabOptions::default())
        .await
        .expect("CONF starts");
    let l = &node.listening;
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!((l[0].0, l[0].2), ("CONF", "SIP (ISC, group chat focus)"));
    assert_eq!((l[1].0, l[1].2), ("CONF", "MSRP (TCP)"));
    assert_ne!(l[0].1.port(), 0);
    tokio::net::TcpStream::connect(l[0].1)
        .await
        .expect("CONF's SIP TCP listener accepts");
    // Bound here and handed to the focus (whose MSRP relay serves it).
    assert_ne!(l[1].1.port(), 0);
    assert!(dir.path().join("conf").is_dir(), "its sled db in DIR/conf");
    node.shutdown().await;
}

/// `rcslab up` starts CONF beside the others: its SIP and MSRP addresses bound and named
/// `CONF` in ladders, `conf.ims.lab` in the S-CSCF's view.
#[tokio::test]
async fn in_up_conf_is_bound_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let lab = crate::lab_with(dir.path(), "").await;
    let a = lab.addrs;
    assert_ne!(a.conf.port(), 0);
    assert_ne!(a.conf_msrp.port(), 0);
    assert_eq!(lab.conf.msrp_addr(), a.conf_msrp);
    assert_eq!(lab.conf.groups(), 0);
    let r = lab.recorder();
    assert_eq!(r.name_of(a.conf), "CONF");
    assert_eq!(r.name_of(a.conf_msrp), "CONF");
    assert!(lab.sip_stats().iter().any(|(n, _)| *n == "CONF"));
    lab.shutdown().await;
}

/// `rcslab up` wires WebRSF to T-IM the same way: the gateway's History comes from T-IM's
/// history endpoint over a socket, which answers only with T-IM's token (the one kept in the
/// data dir's `history.token`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_up_the_gateway_reads_history_from_t_im_over_its_token_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let lab = crate::lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let mut alice = crate::chat::chat_ue(&lab, "alice", &shut, opts.clone()).await;
    let mut bob = crate::chat::chat_ue(&lab, "bob", &shut, opts).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = alice.send("sip:bob@ims.lab", "kept by T-IM").await;
    assert!(matches!(next(&mut bob).await, ChatEvent::Message { .. }));
    assert!(matches!(next(&mut alice).await, ChatEvent::Status { .. }));

    let token = crate::web::login(&lab, "bob", "bob-secret").await;
    let (s, h) = crate::web::call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/bob/History/alice",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h[0]["message_id"], id.as_str());
    assert_eq!(h[0]["text"], "kept by T-IM");

    let t = lab.addrs.tim_http;
    let get = |auth: Option<String>| {
        let mut b = hyper::Request::get("/history?a=sip:alice@ims.lab&b=sip:bob@ims.lab")
            .header("host", t.to_string());
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        rcslab::hss::admin_client::send(
            t,
            b.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
    };
    let (s, body) = get(None).await.expect("T-IM's history endpoint answers");
    assert_eq!(s, 401);
    assert!(!String::from_utf8_lossy(&body).contains("kept by"));
    let (s, _) = get(Some(lab.admin.bearer())).await.unwrap();
    assert_eq!(s, 401, "the admin token is not T-IM's");
    let kept = std::fs::read_to_string(dir.path().join("history.token")).unwrap();
    let (s, body) = get(Some(format!("Bearer {}", kept.trim()))).await.unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains(&id));
    lab.shutdown().await;
}
