//! RCS 1-to-1 chat through O-IM and T-IM (paper figures 1 and 2), store and forward.

use std::time::Duration;

use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

/// A registered RCS client of the default lab.
pub async fn chat_ue(
    lab: &Lab,
    user: &str,
    shut: &watch::Receiver<bool>,
    opts: ChatOptions,
) -> ChatUe {
    let mut u = ue(lab, user, AuthMode::Digest, shut).await;
    u.register(600).await.expect("registers");
    ChatUe::start(u, lab.trace.clone(), opts)
}

/// The ladder from line `from` on, MSRP lines cut to method/status, 100 Trying left out.
pub fn chat_flow(lab: &Lab, from: usize) -> Vec<String> {
    flow(lab)
        .into_iter()
        .skip(from)
        .map(rcslab::lab::scenario::short_msrp)
        .filter(|l| !l.ends_with(" SIP 100"))
        .collect()
}

/// The next event within 5 s, session state changes and T-IM's "stored" notices skipped.
pub async fn next(ue: &mut ChatUe) -> ChatEvent {
    loop {
        match ue
            .next_event(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
        {
            ChatEvent::Session { .. } | ChatEvent::Stored { .. } => continue,
            ev => return ev,
        }
    }
}

/// Paper figure 1 as rcslab draws it (full view): the paper's step numbers on the right.
/// `~` lines run in a parallel lane (the ACK races UE1's MSRP binding); `!` waits for them.
pub const FIGURE_1: &[&str] = &[
    "UE alice -> P-CSCF SIP INVITE", // 1 (first message in CPIM)
    "P-CSCF -> S-CSCF SIP INVITE",   // 1
    "S-CSCF -> O-IM SIP INVITE",     // 2 originating iFC
    "O-IM -> S-CSCF SIP INVITE",     // 3
    "S-CSCF -> I-CSCF SIP INVITE",   // 4
    "I-CSCF -> HSS Diameter LIR",    // 4 (which S-CSCF serves bob)
    "HSS -> I-CSCF Diameter LIA",    // 4
    "I-CSCF -> S-CSCF SIP INVITE",   // 4
    "S-CSCF -> T-IM SIP INVITE",     // 5 terminating iFC
    "T-IM -> S-CSCF SIP 200",        // 6 (stored first)
    "S-CSCF -> I-CSCF SIP 200",      // 7
    "I-CSCF -> S-CSCF SIP 200",      // 7
    "S-CSCF -> O-IM SIP 200",        // 8
    "O-IM -> S-CSCF SIP 200",        // 9
    "S-CSCF -> P-CSCF SIP 200",      // 10
    "P-CSCF -> UE alice SIP 200",    // 10
    "~ UE alice -> P-CSCF SIP ACK",  // (RFC 3261 ACK)
    "~ P-CSCF -> S-CSCF SIP ACK",
    "~ S-CSCF -> O-IM SIP ACK",
    "~ O-IM -> S-CSCF SIP ACK",
    "~ S-CSCF -> T-IM SIP ACK",
    "UE alice -> O-IM MSRP SEND", // 11 empty SEND binds UE1
    "O-IM -> UE alice MSRP 200",  // 12
    "O-IM -> T-IM MSRP SEND",     // (O-IM binds its leg to T-IM)
    "T-IM -> O-IM MSRP 200",
    "! T-IM -> S-CSCF SIP INVITE", // 13 T-IM delivers with its own INVITE
    "S-CSCF -> P-CSCF SIP INVITE", // 13
    "P-CSCF -> UE bob SIP INVITE", // 14
    "UE bob -> P-CSCF SIP MESSAGE", // 15 IMDN delivered
    "P-CSCF -> S-CSCF SIP MESSAGE", // 15
    "S-CSCF -> T-IM SIP MESSAGE",  // 16 (iFC: +g.oma.sip-im)
    "T-IM -> O-IM MSRP SEND",      // 17 the IMDN over MSRP
    "O-IM -> UE alice MSRP SEND",  // 18
    "UE alice -> O-IM MSRP 200",   // 19
    "O-IM -> T-IM MSRP 200",       // 20
    "T-IM -> S-CSCF SIP 200",      // 21 200 for the MESSAGE
    "S-CSCF -> P-CSCF SIP 200",    // 21
    "P-CSCF -> UE bob SIP 200",    // 22
    "UE bob -> P-CSCF SIP 200",    // 23 200 for the INVITE
    "P-CSCF -> S-CSCF SIP 200",    // 23
    "S-CSCF -> T-IM SIP 200",      // 24
    "T-IM -> P-CSCF SIP ACK",      // (ACK along the route set)
    "P-CSCF -> UE bob SIP ACK",
    "UE bob -> T-IM MSRP SEND", // 25 empty SEND binds UE2
    "T-IM -> UE bob MSRP 200",  // 26
];

/// Paper figure 2: a later message and its IMDN, hop by hop. The 200s of steps 5-6 race
/// UE2's IMDN SEND (7-8) and only have to come before O-IM relays it to UE1 (9).
pub const FIGURE_2: &[&str] = &[
    "UE alice -> O-IM MSRP SEND",   // 1 (asks for delivered)
    "O-IM -> T-IM MSRP SEND",       // 2
    "T-IM -> UE bob MSRP SEND",     // 3
    "UE bob -> T-IM MSRP 200",      // 4
    "~ T-IM -> O-IM MSRP 200",      // 5
    "~ O-IM -> UE alice MSRP 200",  // 6
    "UE bob -> T-IM MSRP SEND",     // 7 IMDN delivered
    "T-IM -> O-IM MSRP SEND",       // 8
    "! O-IM -> UE alice MSRP SEND", // 9
    "UE alice -> O-IM MSRP 200",    // 10
    "O-IM -> T-IM MSRP 200",        // 11
    "T-IM -> UE bob MSRP 200",      // 12
];

fn check(expected: &[&str], got: &[String]) {
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    if let Some(d) = rcslab::lab::scenario::diff(&expected, got) {
        panic!("ladder differs:\n{d}");
    }
}

async fn delivered_only(lab: &Lab, shut: &watch::Receiver<bool>) -> (ChatUe, ChatUe) {
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let alice = chat_ue(lab, "alice", shut, opts.clone()).await;
    let bob = chat_ue(lab, "bob", shut, opts).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (alice, bob)
}

async fn expect_message(ue: &mut ChatUe, text: &str) -> String {
    match next(ue).await {
        ChatEvent::Message {
            text: t,
            message_id,
            ..
        } => {
            assert_eq!(t, text);
            message_id
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn expect_status(ue: &mut ChatUe, id: &str, status: ImdnStatus) {
    match next(ue).await {
        ChatEvent::Status {
            message_id,
            status: s,
            ..
        } => {
            assert_eq!(message_id, id);
            assert_eq!(s, status);
        }
        other => panic!("expected {status:?} for {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn figure_1_first_message_sets_up_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let (mut alice, mut bob) = delivered_only(&lab, &shut).await;
    let start = flow(&lab).len();
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
        other => panic!("{other:?}"),
    }
    expect_status(&mut alice, &id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    check(FIGURE_1, &chat_flow(&lab, start));
    // T-IM kept it, and knows it was delivered.
    let stored = lab.tim.store().unwrap().by_message_id(&id).unwrap();
    assert_eq!(stored.status, "delivered");
    // The roles view names each CSCF by the side it acts for.
    let roles: Vec<String> = lab
        .roles_ladder()
        .iter()
        .filter(|l| l.protocol == "SIP" && l.summary.starts_with("INVITE"))
        .map(|l| format!("{} -> {}", l.from, l.to))
        .collect();
    let tail: Vec<&str> = roles
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        vec![
            "UE alice -> P-CSCF orig",
            "P-CSCF orig -> S-CSCF orig",
            "S-CSCF orig -> O-IM",
            "O-IM -> S-CSCF orig",
            "S-CSCF orig -> I-CSCF term",
            "I-CSCF term -> S-CSCF term",
            "S-CSCF term -> T-IM",
            "T-IM -> S-CSCF term",
            "S-CSCF term -> P-CSCF term",
            "P-CSCF term -> UE bob",
        ]
    );
    // The same views through the running lab's API (`rcslab trace export --view`).
    let get = |q: &'static str| lab.admin.call(hyper::Method::GET, q, None);
    let (s, paper) = get("/trace?format=text&view=paper").await.unwrap();
    assert_eq!(s, 200);
    assert!(
        paper.contains("UE alice -> O-CSCF SIP INVITE")
            && paper.contains("O-CSCF -> T-CSCF SIP INVITE"),
        "{paper}"
    );
    let (s, roles) = get("/trace?format=text&view=roles").await.unwrap();
    assert_eq!(s, 200);
    assert!(roles.contains("S-CSCF term -> T-IM SIP INVITE"), "{roles}");
    let (s, html) = get("/trace?format=html").await.unwrap();
    assert_eq!(s, 200);
    assert!(html.contains("<svg") && html.contains(">UE alice</text>"));
    let (s, _) = get("/trace?format=pcap&view=paper").await.unwrap();
    assert_eq!(s, 400, "the views are ladders: text only");
    lab.shutdown().await;
}

#[tokio::test]
async fn figure_2_later_messages_go_over_msrp_with_imdns_back() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let (mut alice, mut bob) = delivered_only(&lab, &shut).await;
    let id = alice.send("sip:bob@ims.lab", "Hello?").await;
    expect_message(&mut bob, "Hello?").await;
    expect_status(&mut alice, &id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = flow(&lab).len();
    let id2 = alice.send("sip:bob@ims.lab", "Are you there?").await;
    assert_eq!(expect_message(&mut bob, "Are you there?").await, id2);
    expect_status(&mut alice, &id2, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    check(FIGURE_2, &chat_flow(&lab, start));
    // And back: bob answers in the same session; alice shows it (displayed is not asked for).
    let id3 = bob.send("sip:alice@ims.lab", "Yes!").await;
    assert_eq!(expect_message(&mut alice, "Yes!").await, id3);
    expect_status(&mut bob, &id3, ImdnStatus::Delivered).await;
    // Typing: is-composing crosses both servers.
    bob.composing("sip:alice@ims.lab", true);
    match next(&mut alice).await {
        ChatEvent::Composing { from, active } => {
            assert_eq!(from, "sip:bob@ims.lab");
            assert!(active);
        }
        other => panic!("{other:?}"),
    }
    // History: T-IM numbered the conversation.
    let h = lab
        .tim
        .store()
        .unwrap()
        .history("sip:alice@ims.lab", "sip:bob@ims.lab", 0, 100);
    let ids: Vec<&str> = h.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, [id.as_str(), id2.as_str(), id3.as_str()]);
    let after =
        lab.tim
            .store()
            .unwrap()
            .history("sip:bob@ims.lab", "sip:alice@ims.lab", h[0].seq, 100);
    assert_eq!(after.len(), 2);
    lab.shutdown().await;
}

#[tokio::test]
async fn displayed_when_shown_and_a_100_kb_message_is_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:bob@ims.lab", "Hello?").await;
    let got = expect_message(&mut bob, "Hello?").await;
    expect_status(&mut alice, &id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.displayed(&got);
    expect_status(&mut alice, &id, ImdnStatus::Displayed).await;
    // 100 KB: 50+ chunks on each of the three MSRP hops, reassembled byte for byte.
    let big: String = (0..100 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let start = flow(&lab).len();
    let id2 = alice.send("sip:bob@ims.lab", &big).await;
    assert_eq!(expect_message(&mut bob, &big).await, id2);
    expect_status(&mut alice, &id2, ImdnStatus::Delivered).await;
    let sends = chat_flow(&lab, start)
        .iter()
        .filter(|l| l.as_str() == "O-IM -> T-IM MSRP SEND")
        .count();
    assert!(
        sends >= 51,
        "chunked on the O-IM -> T-IM hop: {sends} SENDs"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn many_pairs_chat_at_once_and_every_message_arrives_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = String::new();
    let users: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    for u in &users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-pw\"\n"
        ));
    }
    let lab = lab_with(dir.path(), &extra).await;
    let (_stop, shut) = watch::channel(false);
    let mut tasks = Vec::new();
    for pair in users.chunks(2) {
        let opts = ChatOptions {
            disposition: "positive-delivery".into(),
            ..ChatOptions::default()
        };
        let mut a = chat_ue(&lab, &pair[0], &shut, opts.clone()).await;
        let mut b = chat_ue(&lab, &pair[1], &shut, opts).await;
        let to = format!("sip:{}@ims.lab", pair[1]);
        tasks.push(tokio::spawn(async move {
            const N: usize = 40;
            let mut sent = Vec::new();
            for i in 0..N {
                sent.push(a.send(&to, &format!("m{i}")).await);
            }
            let mut got = Vec::new();
            while got.len() < N {
                match b.next_event(Duration::from_secs(10)).await {
                    Some(ChatEvent::Message { text, .. }) => got.push(text),
                    Some(_) => {}
                    None => break,
                }
            }
            let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
            assert_eq!(got, want, "every message once, in order");
            let mut delivered = std::collections::HashSet::new();
            while delivered.len() < N {
                match a.next_event(Duration::from_secs(10)).await {
                    Some(ChatEvent::Status {
                        message_id,
                        status: ImdnStatus::Delivered,
                        ..
                    }) => {
                        assert!(delivered.insert(message_id), "one IMDN per message");
                    }
                    Some(ChatEvent::SendFailed { reason, .. }) => panic!("{reason}"),
                    Some(_) => {}
                    None => break,
                }
            }
            assert_eq!(delivered.len(), N);
            assert!(sent.iter().all(|id| delivered.contains(id)));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    lab.shutdown().await;
}

/// A lab in a child process, killed (SIGKILL) when dropped, also when a test fails.
struct LabProcess(std::process::Child);

impl LabProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_lab_process(cfg: &std::path::Path, data: &std::path::Path) -> LabProcess {
    // Its log next to the data dir: what a failed start said.
    let log = std::fs::File::create(data.with_extension("log")).expect("lab log");
    LabProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
            .args(["up", "--config"])
            .arg(cfg)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rcslab up starts"),
    )
}

/// Waits until `addr` takes connections; false when the lab process exited first (another
/// test took one of its ports between `free_port` and the bind) or 20 s passed.
async fn wait_listening(lab: &mut LabProcess, addr: std::net::SocketAddr) -> bool {
    for _ in 0..800 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        if matches!(lab.0.try_wait(), Ok(Some(_))) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A lab process on free ports (picked again when another test took one first).
async fn lab_process_on_free_ports(
    dir: &std::path::Path,
) -> (LabProcess, rcslab::LabConfig, std::path::PathBuf) {
    let names = [
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
        "ps",
        "conf",
        "conf_msrp",
        "ipsmgw",
        "smsc",
        "ums",
    ];
    let cfg_path = dir.join("lab.toml");
    let data = dir.join("data");
    for _ in 0..5 {
        let mut toml = String::from("[nodes]\n");
        for (n, p) in names.iter().zip(crate::stable_free_ports(names.len())) {
            toml.push_str(&format!("{n} = \"127.0.0.1:{p}\"\n"));
        }
        std::fs::write(&cfg_path, &toml).unwrap();
        let cfg = rcslab::LabConfig::from_toml_str(&toml).unwrap();
        let mut lab = start_lab_process(&cfg_path, &data);
        if wait_listening(&mut lab, cfg.nodes.pcscf).await {
            return (lab, cfg, cfg_path);
        }
        lab.kill();
    }
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    panic!("the lab process did not start:\n{log}");
}

async fn client_of(cfg: &rcslab::LabConfig, user: &str, shut: &watch::Receiver<bool>) -> ChatUe {
    let ue_cfg = rcslab::ue::UeConfig::from_lab(cfg, user, cfg.nodes.pcscf).unwrap();
    let mut u = rcslab::ue::Ue::start(ue_cfg, rcslab::trace::Trace::disabled(), shut.clone())
        .await
        .unwrap();
    u.register(600).await.expect("registers");
    ChatUe::start(u, rcslab::trace::Trace::disabled(), ChatOptions::default())
}

#[tokio::test]
async fn store_and_forward_survives_sigkill_of_the_lab_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_stop, shut) = watch::channel(false);

    let (mut lab, cfg, cfg_path) = lab_process_on_free_ports(dir.path()).await;
    let mut alice = client_of(&cfg, "alice", &shut).await;
    // bob is not registered: T-IM keeps the message (and answers 200 once it is on disk).
    let id = alice.send("sip:bob@ims.lab", "kept for you").await;
    let id2 = {
        tokio::time::sleep(Duration::from_millis(500)).await;
        alice.send("sip:bob@ims.lab", "and this one").await
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Some(early) = alice.next_event(Duration::from_millis(10)).await {
        assert!(
            matches!(early, ChatEvent::Session { .. } | ChatEvent::Stored { .. }),
            "no report yet, bob is away: {early:?}"
        );
    }
    lab.kill();

    let mut lab = start_lab_process(&cfg_path, &data);
    assert!(
        wait_listening(&mut lab, cfg.nodes.pcscf).await,
        "the lab did not start again on its ports: {}",
        std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
    );
    let mut alice = client_of(&cfg, "alice", &shut).await;
    let mut bob = client_of(&cfg, "bob", &shut).await;
    assert_eq!(expect_message(&mut bob, "kept for you").await, id);
    assert_eq!(expect_message(&mut bob, "and this one").await, id2);
    let mut delivered = std::collections::HashSet::new();
    while delivered.len() < 2 {
        match alice.next_event(Duration::from_secs(5)).await {
            Some(ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                ..
            }) => {
                delivered.insert(message_id);
            }
            Some(_) => {}
            None => panic!("the IMDNs did not reach alice: {delivered:?}"),
        }
    }
    assert!(delivered.contains(&id) && delivered.contains(&id2));
    lab.kill();
}

#[tokio::test]
async fn undelivered_messages_expire_with_a_failed_report() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[im]\nstore_ttl_secs = 1\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:carol@ims.lab", "nobody home").await;
    expect_status(&mut alice, &id, ImdnStatus::Failed).await;
    let m = lab.tim.store().unwrap().by_message_id(&id).unwrap();
    assert_eq!(m.status, "failed");
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("sip:carol@ims.lab")
        .is_empty());
    lab.shutdown().await;
}

/// Bad MSRP to the IM servers (RFC 4975 §7.3, §10): a SEND for a session nobody set up gets 481,
/// a message over `[im] max_message_size` gets 413 (the sender learns it), bytes that are not
/// MSRP close the connection; the lab goes on. Sessions are forgotten when the clients go.
#[tokio::test]
async fn bad_msrp_gets_481_413_or_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[im]\nmax_message_size = 4096\n").await;
    let (_stop, shut) = watch::channel(false);
    // Unknown session.
    let mut s = tokio::net::TcpStream::connect(lab.addrs.tim_msrp)
        .await
        .unwrap();
    let to = format!("msrp://{}/nosuchsession;tcp", lab.addrs.tim_msrp);
    let send = format!(
        "MSRP t1 SEND\r\nTo-Path: {to}\r\nFrom-Path: msrp://127.0.0.1:9/me;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------t1$\r\n"
    );
    s.write_all(send.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("MSRP t1 481"), "{answer}");
    // Garbage: the connection is closed.
    let mut g = tokio::net::TcpStream::connect(lab.addrs.oim_msrp)
        .await
        .unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), g.read(&mut buf))
        .await
        .expect("closed within 2 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "garbage closes the connection");
    // Too large, through a real session: the sender gets the 413.
    let (mut alice, mut bob) = delivered_only(&lab, &shut).await;
    let first = alice.send("sip:bob@ims.lab", "hello").await;
    expect_message(&mut bob, "hello").await;
    expect_status(&mut alice, &first, ImdnStatus::Delivered).await;
    let big = alice
        .send_typed("sip:bob@ims.lab", &vec![b'x'; 10_000], "text/plain")
        .await;
    match next(&mut alice).await {
        ChatEvent::SendFailed { message_id, reason } => {
            assert_eq!(message_id, big);
            assert!(reason.contains("413"), "{reason}");
        }
        other => panic!("expected the 413, got {other:?}"),
    }
    // The session still works after all that.
    let after = alice.send("sip:bob@ims.lab", "still here").await;
    expect_message(&mut bob, "still here").await;
    expect_status(&mut alice, &after, ImdnStatus::Delivered).await;
    assert_eq!(lab.tim.sessions_open(), 1);
    // Both clients go away: T-IM forgets the session.
    drop((alice, bob));
    crate::eventually("T-IM to forget the session", || {
        lab.tim.sessions_open() == 0
    })
    .await;
}

/// A chat to bob's number (`tel:+15550002`, as RCS clients address contacts): T-IM knows it is
/// bob from the registration set his third-party REGISTER carried (IncludeRegisterResponse:
/// P-Associated-URI), so what it stored for the number while he was away goes to him when he
/// registers, and his IMDN from `sip:bob@ims.lab` counts as the recipient's (not 403).
#[tokio::test]
async fn a_chat_to_a_tel_uri_is_stored_then_delivered_and_reported_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = watch::channel(false);
    let lab = lab_with(dir.path(), "").await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("tel:+15550002", "for your number").await;
    loop {
        match alice.next_event(Duration::from_secs(5)).await {
            Some(ChatEvent::Stored { message_id, .. }) => {
                assert_eq!(message_id, id);
                break;
            }
            Some(ChatEvent::Session { .. }) => continue,
            other => panic!("expected stored, got {other:?}"),
        }
    }
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    assert_eq!(expect_message(&mut bob, "for your number").await, id);
    expect_status(&mut alice, &id, ImdnStatus::Delivered).await;
    assert_eq!(
        lab.tim.store().unwrap().by_message_id(&id).unwrap().status,
        "delivered"
    );
    // Live now: a second one goes straight through.
    let id2 = alice.send("tel:+15550002", "and another").await;
    assert_eq!(expect_message(&mut bob, "and another").await, id2);
    expect_status(&mut alice, &id2, ImdnStatus::Delivered).await;
}
