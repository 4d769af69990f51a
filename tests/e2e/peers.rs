//! Interop with tools nobody here wrote: sipp registers many users with digest auth through the
//! P-CSCF, and tshark decodes the Cx messages of a registration cleanly.
//! Both are installed by `scripts/install-peers.sh` (run by `scripts/test.sh` and CI).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rcslab::ue::AuthMode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::{lab_with, tshark_on, ue};

fn require(tool: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/install-peers.sh (scripts/test.sh does)"
    );
}

fn users_toml(n: usize) -> String {
    let mut s = String::new();
    for i in 1..=n {
        s.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:u{i:04}@ims.lab\"]\npassword = \"pw{i:04}\"\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_100_users_with_digest_through_the_p_cscf() {
    require("sipp");
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml(100)).await;
    let csv = dir.path().join("users.csv");
    let mut text = String::from("SEQUENTIAL\n");
    for i in 1..=100 {
        text.push_str(&format!(
            "u{i:04};ims.lab;[authentication username=u{i:04}@ims.lab password=pw{i:04}]\n"
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/register_digest.xml");
    let run = Command::new("sipp")
        .arg(lab.addrs.pcscf.to_string())
        .args(["-sf", scenario.to_str().unwrap()])
        .args(["-inf", csv.to_str().unwrap()])
        // A fixed address of its own: with `-p 0` sipp takes 5060 or the next free port, which
        // a sipp of another test may hold or free at the same moment.
        .args(["-i", "127.0.0.12", "-p", "47390"])
        .args(["-m", "100", "-r", "50", "-l", "20"])
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("sipp finishes in time")
        .expect("sipp runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    // sipp exits 0 only when every call succeeded.
    assert_eq!(
        out.status.code(),
        Some(0),
        "sipp reported failed calls:\n{screen}"
    );
    let done = (1..=100)
        .filter(|i| {
            lab.scscf
                .registration(&format!("sip:u{i:04}@ims.lab"))
                .is_some()
        })
        .count();
    assert_eq!(done, 100, "all 100 sipp users registered");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_the_cx_messages_of_a_registration() {
    require("tshark");
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), crate::PROBE_PEER).await;
    let port = lab.addrs.hss.port();
    let pcap = dir.path().join("cx.pcap");
    let mut cap = Command::new("tshark")
        .args([
            "-i",
            "lo",
            "-f",
            &format!("tcp port {port}"),
            "-w",
            pcap.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tshark starts");
    // Wait until it captures.
    let mut err = BufReader::new(cap.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = err.next_line().await {
            if l.contains("Capturing on") {
                break;
            }
        }
    })
    .await
    .expect("tshark reports it is capturing");
    // "Capturing on" comes a moment before packets are really taken.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A fresh peer: CER/CEA now, DPR/DPA at the end.
    let probe = rcslab::diameter::peer::Peer::connect(
        lab.addrs.hss,
        rcslab::diameter::peer::LocalPeer {
            origin_host: "probe.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            product_name: "probe".into(),
            watchdog_interval: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
        },
        std::sync::Arc::new(rcslab::cscf::scscf::CxClientHandler),
        lab.trace.clone(),
    )
    .await
    .expect("CER/CEA");
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut bob = ue(&lab, "bob", AuthMode::Aka, &shut).await;
    bob.register(600).await.unwrap();
    // Carol's USIM is ahead of the HSS: MAR with RAND||AUTS.
    let mut carol = ue(&lab, "carol", AuthMode::Aka, &shut).await;
    carol.cfg.sqn_ms = 1 << 30;
    carol.register(600).await.unwrap();
    alice.register(0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await; // a watchdog round
    probe.disconnect().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-INT", &cap.id().unwrap().to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), cap.wait()).await;

    let decode = |fields: &'static [&'static str]| {
        let pcap = pcap.clone();
        async move {
            let mut c = Command::new("tshark");
            c.args([
                "-r",
                pcap.to_str().unwrap(),
                "-d",
                &format!("tcp.port=={port},diameter"),
            ]);
            c.args(fields);
            let o = c.output().await.unwrap();
            String::from_utf8_lossy(&o.stdout).to_string()
        }
    };
    let cmds = decode(&[
        "-Y",
        "diameter",
        "-T",
        "fields",
        "-e",
        "diameter.cmd.code",
        "-e",
        "diameter.flags.request",
    ])
    .await;
    let seq: Vec<String> = cmds
        .lines()
        .flat_map(|l| {
            // One frame may carry several messages: fields come comma-separated.
            let mut it = l.split('\t');
            let codes: Vec<String> = it
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            let reqs: Vec<String> = it
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            codes
                .into_iter()
                .zip(reqs)
                .map(|(c, r)| format!("{c}{}", if r == "1" || r == "True" { "R" } else { "A" }))
                .collect::<Vec<_>>()
        })
        .collect();
    for needed in [
        "257R", "257A", "280R", "280A", "282R", "282A", "300R", "300A", "303R", "303A", "301R",
        "301A",
    ] {
        assert!(
            seq.iter().any(|c| c == needed),
            "tshark saw no {needed}: {seq:?}"
        );
    }
    let malformed = decode(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]).await;
    assert!(
        malformed.trim().is_empty(),
        "malformed or erroneous packets:\n{malformed}"
    );
    let verbose = decode(&["-Y", "diameter", "-V"]).await;
    let unknown: Vec<&str> = verbose
        .lines()
        .filter(|l| {
            l.contains("Unknown AVP") || l.contains("AVP Code: Unknown") || l.contains("Unknown-")
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "tshark does not know these AVPs:\n{}",
        unknown.join("\n")
    );
    lab.shutdown().await;
}

async fn sipp(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let run = Command::new("sipp")
        .args(args)
        .args([
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
            "-trace_err",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("sipp finishes in time")
        .expect("sipp runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_and_callee_exchange_a_message_and_a_call_through_the_chain() {
    require("sipp");
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let p = lab.addrs.pcscf.to_string();
    let reg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/register_digest.xml");
    let uac_msg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_message.xml");
    let uac_call = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_call.xml");
    let uas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_message_call.xml");
    let csv = |user: &str, peer: &str| {
        let f = dir.path().join(format!("{user}.csv"));
        std::fs::write(
            &f,
            format!("SEQUENTIAL\n{user};ims.lab;[authentication username={user}@ims.lab password={user}-secret];{peer}\n"),
        )
        .unwrap();
        f
    };
    let (alice_csv, bob_csv) = (csv("alice", "bob"), csv("bob", "alice"));
    // Each sipp first registers on the port it will then use (the P-CSCF knows UEs by flow).
    let (code, screen) = sipp(
        &[
            &p,
            "-sf",
            reg.to_str().unwrap(),
            "-inf",
            bob_csv.to_str().unwrap(),
            "-p",
            "35099",
            "-m",
            "1",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "bob registers:\n{screen}");
    let uas_dir = dir.path().to_path_buf();
    let uas_path = uas.clone();
    let callee = tokio::spawn(async move {
        sipp(
            &["-sf", uas_path.to_str().unwrap(), "-p", "35099", "-m", "2"],
            &uas_dir,
        )
        .await
    });
    let (code, screen) = sipp(
        &[
            &p,
            "-sf",
            reg.to_str().unwrap(),
            "-inf",
            alice_csv.to_str().unwrap(),
            "-p",
            "35098",
            "-m",
            "1",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "alice registers:\n{screen}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.trace.clear();
    let (code, screen) = sipp(
        &[
            &p,
            "-sf",
            uac_msg.to_str().unwrap(),
            "-inf",
            alice_csv.to_str().unwrap(),
            "-p",
            "35098",
            "-m",
            "1",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "the sipp sender saw no failure:\n{screen}");
    let (code, screen) = sipp(
        &[
            &p,
            "-sf",
            uac_call.to_str().unwrap(),
            "-inf",
            alice_csv.to_str().unwrap(),
            "-p",
            "35098",
            "-m",
            "1",
        ],
        dir.path(),
    )
    .await;
    if code != Some(0) {
        for l in lab.ladder() {
            eprintln!("{l}");
        }
        for e in lab
            .trace
            .events()
            .iter()
            .filter(|e| e.remote.port() == 35099 && e.summary.contains("INVITE"))
            .take(1)
        {
            eprintln!("{:?}\n{}", e.direction, String::from_utf8_lossy(&e.bytes));
        }
    }
    assert_eq!(code, Some(0), "the sipp caller saw no failure:\n{screen}");
    let (code, screen) = callee.await.unwrap();
    assert_eq!(code, Some(0), "the sipp callee saw no failure:\n{screen}");
    let f = crate::flow(&lab);
    for l in [
        "P-CSCF -> S-CSCF SIP MESSAGE",
        "I-CSCF -> HSS Diameter LIR",
        "S-CSCF -> P-CSCF SIP MESSAGE",
        "S-CSCF -> P-CSCF SIP INVITE",
        "S-CSCF -> P-CSCF SIP 180",
        "S-CSCF -> P-CSCF SIP ACK",
        "S-CSCF -> P-CSCF SIP BYE",
    ] {
        assert!(f.contains(&l.to_string()), "missing {l}: {f:#?}");
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_pcap_opens_in_tshark_with_sip_and_diameter_decoded() {
    require("tshark");
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Aka, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    let callee = tokio::spawn(async move {
        if let Some(inc) = bob.next_request(Duration::from_secs(5)).await {
            let mut ok = inc.request.response(200, None);
            let to = ok.headers.get("To").unwrap_or("").to_string();
            ok.headers.set("To", format!("{to};tag=b"));
            inc.tx.respond(ok);
        }
        bob
    });
    assert_eq!(
        alice.message("sip:bob@ims.lab", "pcap me").await.status,
        200
    );
    let _bob = callee.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pcap = dir.path().join("lab.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = tshark_on(&lab, &pcap);
    let sip = run(&[
        "-Y",
        "sip",
        "-T",
        "fields",
        "-e",
        "sip.Method",
        "-e",
        "sip.Status-Code",
    ]);
    let dia = run(&["-Y", "diameter", "-T", "fields", "-e", "diameter.cmd.code"]);
    assert!(
        sip.lines().filter(|l| l.contains("REGISTER")).count() >= 6,
        "{sip}"
    );
    assert!(sip.lines().any(|l| l.contains("MESSAGE")), "{sip}");
    for code in ["300", "301", "302", "303"] {
        assert!(
            dia.lines().any(|l| l.split(',').any(|c| c.trim() == code)),
            "no Cx {code}: {dia}"
        );
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(
        bad.trim().is_empty(),
        "malformed packets in the export:\n{bad}"
    );
    let text = String::from_utf8(lab.export("text").unwrap()).unwrap();
    assert!(text.contains("UE alice") && text.contains("LIR"), "{text}");
    lab.shutdown().await;
}

/// The export of an RCS chat to a web client (paper figure 4: SIP, Diameter, MSRP and HTTP)
/// opens in tshark with every protocol decoded and nothing malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_pcap_of_a_web_chat_decodes_msrp_and_http() {
    use hyper::Method;
    use rcslab::ue::chat::ChatOptions;
    require("tshark");
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = crate::chat::chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let token = crate::web::login(&lab, "bob", "bob-secret").await;
    let mut ch = crate::web::Channel::open(&lab, "bob", &token, 0).await;
    let first = alice.send("sip:bob@ims.lab", "Hello?").await;
    let ev = ch.next().await;
    let inst = ev["instance"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // The web client acknowledges a message (PUT Chat/{id} delivered).
    let ack = |mid: &str| {
        let (w, path, token) = (
            lab.addrs.webrsf,
            format!("/webrsf/v1/bob/Chat/{inst}"),
            token.clone(),
        );
        let body = serde_json::json!({"status": "delivered", "message_id": mid});
        async move {
            let (s, _) = crate::web::call(w, Method::PUT, &path, Some(&token), Some(body)).await;
            assert_eq!(s, 200);
        }
    };
    ack(&first).await;
    let _ = crate::chat::next(&mut alice).await;
    let later = alice.send("sip:bob@ims.lab", "later").await;
    let _ = ch.next().await;
    let _ = ch.next().await;
    let media = crate::web::call_raw(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/bob/Chat/Media",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(media.0, 200);
    ack(&later).await;
    let _ = crate::chat::next(&mut alice).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pcap = dir.path().join("web.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    std::fs::write(dir.path().join("web.html"), lab.export("html").unwrap()).unwrap();
    let run = tshark_on(&lab, &pcap);
    let msrp = run(&[
        "-Y",
        "msrp",
        "-T",
        "fields",
        "-e",
        "msrp.method",
        "-e",
        "msrp.status.code",
    ]);
    assert!(
        msrp.lines().filter(|l| l.contains("SEND")).count() >= 6,
        "MSRP SENDs: {msrp}"
    );
    assert!(msrp.lines().any(|l| l.contains("200")), "MSRP 200s: {msrp}");
    let http = run(&[
        "-Y",
        "http",
        "-T",
        "fields",
        "-e",
        "http.request.method",
        "-e",
        "http.response.code",
    ]);
    for m in ["POST", "PUT", "GET"] {
        assert!(http.lines().any(|l| l.contains(m)), "HTTP {m}: {http}");
    }
    assert!(http.lines().any(|l| l.contains("200")), "HTTP 200: {http}");
    let sip = run(&["-Y", "sip", "-T", "fields", "-e", "sip.Method"]);
    assert!(sip.lines().any(|l| l.contains("INVITE")), "{sip}");
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(
        bad.trim().is_empty(),
        "malformed packets in the export:\n{bad}"
    );
    let html = String::from_utf8(lab.export("html").unwrap()).unwrap();
    assert!(html.contains(">WebRSF</text>") && html.contains("chunk chat initiate"));
    lab.shutdown().await;
}
