//! Several S-CSCFs behind one I-CSCF (issue 15; TS 29.228 §6.1.1, §6.1.2, §6.1.4, §6.5;
//! TS 29.229 §6.1; TS 24.229 §5.3.1.2): two rcslab S-CSCFs, four users spread across them,
//! each staying on its S-CSCF; a pager MESSAGE across them; a PPR to the serving one only.
//! Once with the HSS naming the S-CSCF (`[hss] assignment = "name"`, a hash of the IMPI) and
//! once with Server-Capabilities (`assignment = "capabilities"`, the I-CSCF chooses).

use std::net::SocketAddr;
use std::time::Duration;

use hyper::Method;
use rcslab::diameter::codec::Message;
use rcslab::diameter::cx;
use rcslab::ue::{AuthMode, Ue};
use rcslab::Lab;
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

/// Two S-CSCFs, four users, no iFC (exact ladders without the third-party REGISTER to T-IM).
/// The README's "Several S-CSCFs" shows this file.
const TWO_SCSCFS: &str = r#"
default_ifc = []

[scscf]
capabilities = [1]

[[scscfs]]
name = "scscf2.ims.lab"
address = "127.0.0.1:5082"
capabilities = [1, 2]

[[subscribers]]
impu = ["sip:alice@ims.lab"]
password = "alice-secret"

[[subscribers]]
impu = ["sip:bob@ims.lab"]
password = "bob-secret"

[[subscribers]]
impu = ["sip:carol@ims.lab"]
password = "carol-secret"

[[subscribers]]
impu = ["sip:dave@ims.lab"]
password = "dave-secret"
"#;

/// Who lands where, by `rcslab::hss::pick_by_key` over the IMPI (FNV-1a, modulo 2): alice and
/// dave on S-CSCF2, bob and carol on the first. With `assignment = "capabilities"` both
/// S-CSCFs offer the mandatory capability 1 and neither has an optional one the HSS asks
/// for, so the I-CSCF breaks the tie with the same hash: the same spread.
const SPREAD: [(&str, &str); 4] = [
    ("alice", "S-CSCF2"),
    ("bob", "S-CSCF"),
    ("carol", "S-CSCF"),
    ("dave", "S-CSCF2"),
];

/// One REGISTER round trip through P -> I -> `s` with the Cx exchange `s` makes.
fn round(user: &str, s: &str, cx: &str, status: &str) -> Vec<String> {
    let ans = format!("{}A", &cx[..2]);
    [
        format!("UE {user} -> P-CSCF SIP REGISTER"),
        "P-CSCF -> I-CSCF SIP REGISTER".into(),
        "I-CSCF -> HSS Diameter UAR".into(),
        "HSS -> I-CSCF Diameter UAA".into(),
        format!("I-CSCF -> {s} SIP REGISTER"),
        format!("{s} -> HSS Diameter {cx}"),
        format!("HSS -> {s} Diameter {ans}"),
        format!("{s} -> I-CSCF SIP {status}"),
        format!("I-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE {user} SIP {status}"),
    ]
    .into()
}

/// The UAAs the HSS sent since the trace was cleared, decoded.
fn uaas(lab: &Lab) -> Vec<cx::UserAuthorizationAnswer> {
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == rcslab::trace::Direction::Sent && e.summary == "UAA")
        .filter(|e| lab.name_of(e.local) == "HSS")
        .filter_map(|e| Message::decode(&e.bytes).ok())
        .map(|m| cx::UserAuthorizationAnswer::from_message(&m).expect("a UAA"))
        .collect()
}

/// The SIP address of the S-CSCF with this ladder name.
fn scscf_addr(lab: &Lab, label: &str) -> SocketAddr {
    if label == "S-CSCF" {
        return lab.addrs.scscf;
    }
    lab.more_scscfs
        .iter()
        .find(|s| s.label == label)
        .map(|s| s.addr)
        .expect("an S-CSCF of the lab")
}

/// The S-CSCF's Server-Name (TS 29.228 §6.3.4): its IP literal with the Mw transport.
fn server_name(lab: &Lab, label: &str) -> String {
    format!("sip:{};transport=tcp", scscf_addr(lab, label))
}

/// alice answers the next request she gets 200 (To tag `tag`), in a task; it yields the body.
fn answer_one_message(mut alice: Ue, tag: &'static str) -> tokio::task::JoinHandle<bytes::Bytes> {
    tokio::spawn(async move {
        let inc = alice
            .next_request(Duration::from_secs(5))
            .await
            .expect("alice gets the MESSAGE");
        let mut ok = inc.request.response(200, None);
        let to = ok.headers.get("To").unwrap_or("").to_string();
        ok.headers.set("To", format!("{to};tag={tag}"));
        inc.tx.respond(ok);
        inc.request.body.clone()
    })
}

/// Is `user` registered at the S-CSCF named `label`?
fn registered_at(lab: &Lab, label: &str, user: &str) -> bool {
    let aor = format!("sip:{user}@ims.lab");
    if label == "S-CSCF" {
        return lab.scscf.registration(&aor).is_some();
    }
    lab.more_scscfs
        .iter()
        .find(|s| s.label == label)
        .is_some_and(|s| s.scscf.registration(&aor).is_some())
}

/// The whole scenario; `by_capabilities` says which assignment the HSS uses.
async fn two_scscfs_with_users_spread_across_them(by_capabilities: bool) {
    let dir = tempfile::tempdir().unwrap();
    let hss = if by_capabilities {
        "[hss]\nassignment = \"capabilities\"\nserver_capabilities = { mandatory = [1] }\n"
    } else {
        "[hss]\nassignment = \"name\"\n"
    };
    let lab = lab_with(dir.path(), &format!("{TWO_SCSCFS}{hss}")).await;
    assert_eq!(lab.more_scscfs.len(), 1);
    assert_eq!(lab.more_scscfs[0].origin_host, "scscf2.ims.lab");
    // TS 29.229: each S-CSCF its own Diameter identity and its own connection to the HSS.
    let status = lab.status();
    let peers = serde_json::to_value(&status).unwrap()["diameter_peers"].to_string();
    assert!(
        peers.contains("scscf.ims.lab") && peers.contains("scscf2.ims.lab"),
        "both S-CSCFs are HSS peers: {peers}"
    );
    let (_stop, shut) = watch::channel(false);
    let mut ues: Vec<Ue> = Vec::new();

    // 1. First registrations: UAA 2001, and each REGISTER goes to the S-CSCF of SPREAD.
    for (user, s) in SPREAD {
        let mut u = ue(&lab, user, AuthMode::Digest, &shut).await;
        lab.trace.clear();
        u.register(600).await.expect("registers");
        let mut expected = round(user, s, "MAR", "401");
        expected.extend(round(user, s, "SAR", "200"));
        assert_eq!(flow(&lab), expected, "{user}'s registration");
        let a = uaas(&lab);
        assert_eq!(a.len(), 2);
        // The first UAR: nobody serves the user yet (TS 29.229 §6.1.2: 2001).
        assert_eq!(
            a[0].result,
            cx::CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION)
        );
        if by_capabilities {
            assert_eq!(a[0].server_name, None);
            let caps = a[0].server_capabilities.as_ref().expect("capabilities");
            assert_eq!(caps.mandatory, [1]);
        } else {
            assert_eq!(a[0].server_name, Some(server_name(&lab, s)));
        }
        // The second UAR (with credentials) came before the SAR: still 2001.
        assert_eq!(a[1].result, a[0].result);
        assert!(registered_at(&lab, s, user), "{user} at {s}");
        let other = if s == "S-CSCF" { "S-CSCF2" } else { "S-CSCF" };
        assert!(!registered_at(&lab, other, user), "{user} not at {other}");
        ues.push(u);
    }
    // Users are on both S-CSCFs.
    assert_eq!(lab.scscf.registrations(10).1, 2);
    assert_eq!(lab.more_scscfs[0].scscf.registrations(10).1, 2);
    // `rcslab status` lists every S-CSCF's users and says who serves whom.
    let regs = lab.status().registrations;
    assert_eq!(regs.count, 4);
    let by: Vec<(String, usize)> = regs
        .scscfs
        .iter()
        .map(|c| (c.node.clone(), c.count))
        .collect();
    assert_eq!(by, [("S-CSCF".into(), 2), ("S-CSCF2".into(), 2)]);
    for (user, s) in SPREAD {
        let u = regs
            .users
            .iter()
            .find(|u| u.impu == format!("sip:{user}@ims.lab"))
            .unwrap_or_else(|| panic!("{user} listed"));
        assert_eq!(u.scscf, s, "{user}");
    }
    let text = rcslab::lab::status::render(&lab.status());
    assert!(
        text.contains("  by S-CSCF: S-CSCF 2, S-CSCF2 2\n"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("  sip:alice@ims.lab  contact <") && l.ends_with("  at S-CSCF2")),
        "{text}"
    );

    // 2. A re-registration stays: UAA 2002 names the S-CSCF whose SAR assigned the user.
    for (i, (user, s)) in SPREAD.iter().enumerate() {
        lab.trace.clear();
        ues[i].register(600).await.expect("re-registers");
        let mut expected = round(user, s, "MAR", "401");
        expected.extend(round(user, s, "SAR", "200"));
        assert_eq!(flow(&lab), expected, "{user}'s re-registration");
        for a in uaas(&lab) {
            assert_eq!(
                a.result,
                cx::CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION)
            );
            assert_eq!(a.server_name, Some(server_name(&lab, s)));
            assert_eq!(a.server_capabilities, None);
        }
    }

    // 3. A pager MESSAGE from bob (first S-CSCF) to alice (S-CSCF2): the originating S-CSCF
    // hands it to the I-CSCF, whose LIR names S-CSCF2 (TS 29.228 §6.1.4), on to alice's P-CSCF.
    let alice = ues.remove(0);
    let mut bob = ues.remove(0);
    lab.trace.clear();
    let answer = answer_one_message(alice, "alice1");
    let resp = bob.message("sip:alice@ims.lab", "across").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(&answer.await.unwrap()[..], b"across");
    assert_eq!(
        flow(&lab),
        [
            "UE bob -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF2 SIP MESSAGE",
            "S-CSCF2 -> P-CSCF SIP MESSAGE",
            "P-CSCF -> UE alice SIP MESSAGE",
            "UE alice -> P-CSCF SIP 200",
            "P-CSCF -> S-CSCF2 SIP 200",
            "S-CSCF2 -> I-CSCF SIP 200",
            "I-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE bob SIP 200",
        ]
    );
    let lia = lab
        .trace
        .events()
        .into_iter()
        .find(|e| e.summary == "LIA")
        .and_then(|e| Message::decode(&e.bytes).ok())
        .map(|m| cx::LocationInfoAnswer::from_message(&m).expect("a LIA"))
        .expect("a LIA was recorded");
    assert_eq!(lia.server_name, Some(server_name(&lab, "S-CSCF2")));

    // 4. alice's profile changes (no iFC -> one iFC): the PPR (TS 29.228 §6.5.2) goes over
    // S-CSCF2's connection, the one her SAR came on, and nothing to the first S-CSCF.
    lab.trace.clear();
    let sub = lab.store.find("sip:alice@ims.lab").unwrap().unwrap();
    let ifc = serde_json::json!([{ "priority": 1, "server_name": "sip:tim.ims.lab",
        "spt": [{ "group": 0, "method": "MESSAGE" }] }]);
    let body = serde_json::json!({ "impu": sub.impus, "password": sub.password, "k": sub.aka.k,
        "opc": sub.aka.opc, "amf": sub.aka.amf, "sqn": sub.aka.sqn, "ifc": ifc });
    let (code, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(code, 201, "{text}");
    let cx_lines: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains("Diameter"))
        .collect();
    assert_eq!(
        cx_lines,
        ["HSS -> S-CSCF2 Diameter PPR", "S-CSCF2 -> HSS Diameter PPA"]
    );
    let reg = lab.more_scscfs[0]
        .scscf
        .registration("sip:alice@ims.lab")
        .expect("alice stays registered at S-CSCF2");
    let ifcs = reg.profile.expect("a profile").service_profiles[0]
        .ifcs
        .len();
    assert_eq!(ifcs, 1, "S-CSCF2 uses the pushed profile");

    // 5. After an HSS restart the connection a SAR came on is forgotten (only the Server-Name
    // is on disk): the HSS finds S-CSCF2's new connection by the Origin-Host the lab gave
    // that Server-Name, and the next PPR for alice goes there again, not to the first S-CSCF.
    lab.restart_hss(Duration::from_millis(100)).await.unwrap();
    let open = rcslab::diameter::client::PeerState::IOpen;
    crate::eventually("both S-CSCFs' Cx links to reopen", || {
        lab.hss_links()[0].1 == open && lab.more_scscfs[0].hss_link.state() == open
    })
    .await;
    lab.trace.clear();
    let body = serde_json::json!({ "impu": sub.impus, "password": sub.password, "k": sub.aka.k,
        "opc": sub.aka.opc, "amf": sub.aka.amf, "sqn": sub.aka.sqn, "ifc": [] });
    let (code, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(code, 201, "{text}");
    let cx_lines: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains("Diameter"))
        .collect();
    assert_eq!(
        cx_lines,
        ["HSS -> S-CSCF2 Diameter PPR", "S-CSCF2 -> HSS Diameter PPA"]
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn two_scscfs_chosen_by_server_name_keep_their_users() {
    two_scscfs_with_users_spread_across_them(false).await;
}

#[tokio::test]
async fn two_scscfs_chosen_by_the_icscf_from_server_capabilities_keep_their_users() {
    two_scscfs_with_users_spread_across_them(true).await;
}

/// The same two S-CSCFs as separate processes (`rcslab run scscf` and `rcslab run scscf2`),
/// with an I-CSCF, a P-CSCF and an HSS process each: the users spread as in [`SPREAD`]
/// (the Service-Route of each 200 OK names the S-CSCF that registered the user), a MESSAGE
/// crosses from one S-CSCF to the other, and `rcslab run scscf3` is refused when the lab
/// file lists one `[[scscfs]]` entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rcslab_run_scscf_processes_behind_one_icscf() {
    use crate::run_nodes::{free_port, run_node, stop};
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.0.3";
    let mut held = Vec::new();
    let mut port = || {
        let (p, h) = free_port(ip);
        held.push(h);
        format!("{ip}:{p}")
    };
    let (pcscf, icscf, scscf, scscf2, hss, admin) =
        (port(), port(), port(), port(), port(), port());
    let toml = TWO_SCSCFS.replace("127.0.0.1:5082", &scscf2)
        + &format!(
            "[nodes]\npcscf = \"{pcscf}\"\nicscf = \"{icscf}\"\nscscf = \"{scscf}\"\n\
             hss = \"{hss}\"\nadmin = \"{admin}\"\n[hss]\nassignment = \"name\"\n\
             [diameter]\nreconnect_min_ms = 200\nreconnect_max_ms = 500\n"
        );
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, &toml).unwrap();
    let config = rcslab::LabConfig::load(&file).expect("valid lab file");
    drop(held);
    let data = dir.path().join("data");
    let mut nodes = Vec::new();
    for n in ["hss", "icscf", "scscf", "scscf2", "pcscf"] {
        let (child, said) = run_node(n, &file, &data).await;
        if n == "scscf2" {
            let said = said.join("\n");
            assert!(said.contains("S-CSCF2 of lab 'ims.lab' running"), "{said}");
            assert!(said.contains(&scscf2), "{said}");
        }
        nodes.push((n, child));
    }
    let (_stop, shut) = watch::channel(false);
    let trace = rcslab::trace::Trace::disabled();
    let mut ues = Vec::new();
    for (user, s) in SPREAD {
        let mut cfg =
            rcslab::ue::UeConfig::from_lab(&config, user, config.nodes.pcscf).expect("a user");
        cfg.auth = AuthMode::Digest;
        let mut u = Ue::start(cfg, trace.clone(), shut.clone()).await.unwrap();
        // The Cx links come up in the background: retry while the lab answers 480.
        let mut reg = None;
        for _ in 0..50 {
            match u.register(600).await {
                Ok(r) => {
                    reg = Some(r);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let reg = reg.unwrap_or_else(|| panic!("{user} registers"));
        let at = if s == "S-CSCF" { &scscf } else { &scscf2 };
        assert_eq!(
            reg.service_route,
            [format!("<sip:orig@{at};transport=tcp;lr>")],
            "{user} is served by {s}"
        );
        ues.push(u);
    }
    let alice = ues.remove(0);
    let mut bob = ues.remove(0);
    let answer = answer_one_message(alice, "a");
    let resp = bob.message("sip:alice@ims.lab", "across processes").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(&answer.await.unwrap()[..], b"across processes");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
        .args(["run", "scscf3", "--config", &file.display().to_string()])
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("rcslab runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no scscf3"), "{err}");
    for (n, child) in nodes {
        stop(n, child).await;
    }
}

/// Store and forward across S-CSCFs (TS 24.229 §5.4.1.7, §5.7.3): bob, on the first S-CSCF,
/// sends a chat message to alice, on S-CSCF2, while she is offline; T-IM stores it. When alice
/// registers, S-CSCF2's third-party REGISTER tells T-IM she is back, and T-IM's delivery (bob
/// has closed the chat, so T-IM originates it)
/// goes to S-CSCF2 (the Contact of that REGISTER), which serves her, not to the lab's first
/// S-CSCF (which would not find her registration and would ask the HSS to serve her as an
/// unregistered user). Her IMDN "delivered" reaches bob, and no SAR other than her own
/// REGISTRATION one is sent.
#[tokio::test]
async fn a_message_stored_for_a_user_on_the_second_scscf_goes_out_through_it() {
    use crate::chat::chat_ue;
    use rcslab::cpim::ImdnStatus;
    use rcslab::ue::chat::{ChatEvent, ChatOptions, SessionStatus};

    let dir = tempfile::tempdir().unwrap();
    // The default iFC (third-party REGISTER to T-IM, chat through O-IM and T-IM).
    let toml = TWO_SCSCFS.replace("default_ifc = []\n", "") + "[hss]\nassignment = \"name\"\n";
    let lab = lab_with(dir.path(), &toml).await;
    let (_stop, shut) = watch::channel(false);
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let mut bob = chat_ue(&lab, "bob", &shut, opts.clone()).await;
    lab.trace.clear();
    assert!(registered_at(&lab, "S-CSCF", "bob"));
    let id = bob.send("sip:alice@ims.lab", "kept for you").await;
    // T-IM says it stored the message (Warning 399 on its 200) and the session is up.
    let (mut stored, mut up) = (false, false);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(stored && up) {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match bob.next_event(left).await {
            Some(ChatEvent::Stored { message_id, .. }) if message_id == id => stored = true,
            Some(ChatEvent::Session {
                status: SessionStatus::Accepted,
                ..
            }) => up = true,
            Some(ChatEvent::SendFailed { reason, .. }) => panic!("not stored: {reason}"),
            Some(_) => {}
            None => panic!("stored {stored}, session up {up}"),
        }
    }
    // bob ends the chat: the stored message no longer has a live session to follow (the odi
    // Route alice's S-CSCF gave T-IM), so T-IM originates its own delivery.
    bob.close("sip:alice@ims.lab");
    crate::eventually("T-IM to end bob's chat", || {
        flow(&lab).iter().any(|l| l == "T-IM -> S-CSCF2 SIP 200")
            && flow(&lab).iter().any(|l| l == "UE bob -> P-CSCF SIP BYE")
    })
    .await;
    lab.trace.clear();
    let mut alice = chat_ue(&lab, "alice", &shut, opts).await;
    assert!(registered_at(&lab, "S-CSCF2", "alice"));
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match alice.next_event(left).await {
            Some(ChatEvent::Message {
                from,
                text,
                message_id,
            }) => {
                assert_eq!(from, "sip:bob@ims.lab");
                assert_eq!(text, "kept for you");
                assert_eq!(message_id, id);
                break;
            }
            Some(_) => {}
            None => panic!("alice did not get the stored message"),
        }
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match bob.next_event(left).await {
            Some(ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                ..
            }) if message_id == id => break,
            Some(_) => {}
            None => panic!("bob did not get the IMDN delivered"),
        }
    }
    let lines = flow(&lab);
    let invites: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("T-IM -> ") && l.ends_with(" SIP INVITE"))
        .collect();
    assert!(!invites.is_empty(), "T-IM delivered by INVITE: {lines:#?}");
    assert!(
        invites
            .iter()
            .all(|l| l.as_str() == "T-IM -> S-CSCF2 SIP INVITE"),
        "every INVITE T-IM originated went to alice's S-CSCF: {lines:#?}"
    );
    let sars: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Diameter SAR"))
        .collect();
    assert_eq!(
        sars,
        ["S-CSCF2 -> HSS Diameter SAR"],
        "only alice's registration asked the HSS to assign: {lines:#?}"
    );
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("sip:alice@ims.lab")
        .is_empty());
    lab.shutdown().await;
}
