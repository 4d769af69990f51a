//! The SMSC's SMPP 3.4 listener against an SMPP client nobody here wrote: Python's smpplib
//! (PyPI, pinned in tests/smpp/requirements.txt, installed into tests/smpp/venv by
//! `scripts/install-peers.sh`) runs tests/smpp/interop.py as the application `lab-app`.
//! bob listens with the real CLI (`rcslab ue --user bob listen`), alice texts the short code
//! with `rcslab ue --user alice sms 4000 STOP`. What it proves:
//! - a wrong bind password is refused with ESME_RBINDFAIL, as smpplib reads it;
//! - submit_sm of a GSM text, a UCS-2 Korean text (data_coding 8) and a long text that smpplib
//!   itself cut into UDH-concatenated parts (esm_class 0x40) each get an id, reach bob (the long
//!   one reassembled and shown once) and come back as a DELIVRD receipt (esm_class 0x04, the
//!   Appendix B text, receipted_message_id = the submit_sm_resp's message_id);
//! - a phone's SMS to 4000 reaches the bound application as deliver_sm from 15550001;
//! - tshark decodes the run's SMPP frames and the SIP MESSAGEs' RP/TPDU bodies (its GSM A-I/F
//!   RP and GSM SMS dissectors take `application/vnd.3gpp.sms` without a decode-as) with
//!   nothing malformed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::{lab_with, rcslab_ue};

/// SMPP 3.4 §5.1.3: ESME_RBINDFAIL.
const RBINDFAIL: u64 = 0x0d;

/// The Python that has smpplib: tests/smpp/venv's (scripts/install-peers.sh), else `python3`
/// on PATH when it imports smpplib.
fn smpplib_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smpp/venv/bin/python3");
    [venv, PathBuf::from("python3")].into_iter().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import smpplib.client, smpplib.gsm"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A peer is missing: the test skips and says so, unless `RCSLAB_REQUIRE_PEERS` is set
/// (scripts/test.sh sets it after installing them), when it fails.
pub(crate) fn peer_missing(what: &str) {
    let msg = format!("{what} is not installed: run scripts/install-peers.sh");
    assert!(std::env::var_os("RCSLAB_REQUIRE_PEERS").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
}

/// Every line `child`'s stdout prints, collected as it comes.
pub(crate) fn collect_lines(child: &mut tokio::process::Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let l = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// Polls `f` every 50 ms for at most `secs` seconds.
pub(crate) async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out ({secs} s) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What bob's `listen` printed with TEXT after `FROM: `.
fn shown(lines: &Mutex<Vec<String>>, text: &str) -> usize {
    let suffix = format!(": {text}");
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.ends_with(&suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpplib_submits_gsm_ucs2_and_concatenated_texts_gets_receipts_and_a_phones_mo() {
    let Some(python) = smpplib_python() else {
        peer_missing("python3 with smpplib");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let mut bob = rcslab_ue(&lab, "bob", &["listen"]).spawn().expect("bob");
    let bob_lines = collect_lines(&mut bob);
    wait_until("bob to register with the IP-SM-GW", 30, || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered)
    })
    .await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smpp/interop.py");
    let mut app = Command::new(&python)
        .arg(&script)
        .arg(lab.addrs.smsc.ip().to_string())
        .arg(lab.addrs.smsc.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let app_lines = collect_lines(&mut app);
    let mut app_err = BufReader::new(app.stderr.take().expect("stderr"));
    let app_stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut app_err, &mut s).await;
        s
    });
    let ready = |l: &Mutex<Vec<String>>| l.lock().unwrap().iter().any(|l| l == "READY_FOR_MO");
    let exited = |app: &mut tokio::process::Child| app.try_wait().ok().flatten().is_some();
    wait_until("smpplib's submits and receipts", 60, || {
        ready(&app_lines) || exited(&mut app)
    })
    .await;
    if !ready(&app_lines) {
        let out = app_lines.lock().unwrap().join("\n");
        panic!(
            "interop.py ended early:\n{out}\n{}",
            app_stderr.await.unwrap()
        );
    }

    // alice texts the application's short code.
    let alice = tokio::time::timeout(
        Duration::from_secs(60),
        rcslab_ue(&lab, "alice", &["sms", "4000", "STOP"]).output(),
    )
    .await
    .expect("alice's sms ends")
    .expect("alice runs");
    assert_eq!(
        String::from_utf8_lossy(&alice.stdout).trim(),
        "delivered",
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let status = tokio::time::timeout(Duration::from_secs(60), app.wait())
        .await
        .expect("interop.py ends")
        .expect("wait");
    let stderr = app_stderr.await.unwrap();
    assert!(status.success(), "interop.py failed:\n{stderr}");
    let last = app_lines
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    let s: serde_json::Value = serde_json::from_str(&last).expect("the JSON summary");

    // The wrong password: ESME_RBINDFAIL, through smpplib's PDUError.
    assert_eq!(s["bad_bind"]["status"].as_u64(), Some(RBINDFAIL), "{s}");

    // Four submit_sm (the long text in two parts, cut by smpplib with a UDH), each with an id;
    // the centre handles a session's requests at once, so responses may come out of order.
    let mut submitted = s["submitted"].as_array().expect("submitted").clone();
    submitted.sort_by_key(|m| m["seq"].as_u64());
    let what: Vec<(String, u64, u64, u64)> = submitted
        .iter()
        .map(|m| {
            let w = &m["what"];
            (
                w["name"].as_str().unwrap().to_string(),
                w["part"].as_u64().unwrap(),
                w["esm_class"].as_u64().unwrap(),
                w["data_coding"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            ("gsm".into(), 1, 0, 0),
            ("ucs2".into(), 1, 0, 8),
            ("long".into(), 1, 0x40, 0),
            ("long".into(), 2, 0x40, 0)
        ],
        "{s}"
    );
    assert!(submitted.iter().all(|m| m["status"] == 0), "{s}");
    let ids: BTreeSet<String> = submitted
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4, "ids not distinct: {s}");
    assert!(!ids.contains(""), "{s}");

    // One DELIVRD receipt per id: esm_class 0x04, the Appendix B text, receipted_message_id.
    let receipts = s["receipts"].as_array().expect("receipts");
    assert_eq!(receipts.len(), 4, "{s}");
    let mut receipted = BTreeSet::new();
    for r in receipts {
        let id = r["receipted_message_id"]
            .as_str()
            .expect("receipted_message_id");
        let text = r["text"].as_str().unwrap();
        assert_eq!(r["esm_class"].as_u64().map(|e| e & 0x3c), Some(0x04), "{r}");
        assert!(text.starts_with(&format!("id:{id} ")), "{r}");
        assert!(text.contains(" stat:DELIVRD "), "{r}");
        assert_eq!(r["message_state"].as_u64(), Some(2), "DELIVERED: {r}");
        assert_eq!(r["source"].as_str(), Some("15550002"), "{r}");
        receipted.insert(id.to_string());
    }
    assert_eq!(receipted, ids, "receipts are not for the ids given: {s}");

    // alice's STOP, to the application as deliver_sm from her number.
    let mo = s["mo"].as_array().expect("mo");
    assert_eq!(mo.len(), 1, "{s}");
    assert_eq!(mo[0]["source"].as_str(), Some("15550001"), "{s}");
    assert_eq!(mo[0]["source_ton"].as_u64(), Some(1), "{s}");
    assert_eq!(mo[0]["destination"].as_str(), Some("4000"), "{s}");
    assert_eq!(mo[0]["text"].as_str(), Some("STOP"), "{s}");

    // bob showed each text once, the long one whole (its two parts reassembled).
    let texts = &s["texts"];
    for name in ["gsm", "ucs2", "long"] {
        let text = texts[name].as_str().expect("text");
        wait_until(&format!("bob to show the {name} text"), 10, || {
            shown(&bob_lines, text) > 0
        })
        .await;
        assert_eq!(
            shown(&bob_lines, text),
            1,
            "{:#?}",
            bob_lines.lock().unwrap()
        );
    }
    assert_eq!(
        bob_lines.lock().unwrap().len(),
        3,
        "bob showed something else: {:#?}",
        bob_lines.lock().unwrap()
    );

    tshark_decodes_the_run(&lab, dir.path(), &ids, texts);
}

/// tshark on the lab's pcap: every SMPP PDU of the run decodes (decode-as the SMSC's port),
/// receipts carry the ids given, the MESSAGEs' SMS-DELIVERs carry the texts; nothing
/// malformed.
fn tshark_decodes_the_run(
    lab: &rcslab::Lab,
    dir: &Path,
    ids: &BTreeSet<String>,
    texts: &serde_json::Value,
) {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        peer_missing("tshark");
        return;
    }
    let pcap = dir.join("smpp-interop.pcap");
    std::fs::write(&pcap, lab.export("pcap").expect("pcap")).unwrap();
    let run = crate::tshark_on(lab, &pcap);
    let fields = |filter: &str, field: &str| -> Vec<String> {
        run(&[
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-e",
            field,
        ])
        .lines()
        .flat_map(|l| l.split('|').map(String::from).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect()
    };
    // SMPP command_ids (§5.1.2.1) as tshark read them, on smpplib's sessions: the lab's own
    // UMS is an SMPP application of the SMSC too (its TCP stream is left out).
    let ums_streams = fields("smpp.system_id == \"ums\"", "tcp.stream");
    let apps = ums_streams.iter().fold("smpp".to_string(), |f, s| {
        format!("{f} && tcp.stream != {s}")
    });
    let commands = fields(&apps, "smpp.command_id");
    let count = |id: &str| commands.iter().filter(|c| *c == id).count();
    let frames = || run(&["-Y", "smpp"]);
    // Two bind_transceiver (the wrong password, then lab-app), four submit_sm, five
    // deliver_sm (four receipts, alice's STOP), each answered; one unbind.
    for (id, n) in [
        ("0x00000009", 2),
        ("0x80000009", 2),
        ("0x00000004", 4),
        ("0x80000004", 4),
        ("0x00000005", 5),
        ("0x80000005", 5),
        ("0x00000006", 1),
    ] {
        assert_eq!(count(id), n, "command_id {id}:\n{}", frames());
    }
    let receipted: BTreeSet<String> = fields("smpp", "smpp.receipted_message_id")
        .into_iter()
        .collect();
    assert_eq!(&receipted, ids, "{}", frames());
    // The SMS-DELIVERs bob got (GSM SMS TPDU in RP-DATA, in SIP MESSAGE bodies).
    let sms_texts = fields("gsm_sms.tp-mti == 0", "gsm_sms.sms_text");
    for name in ["gsm", "ucs2"] {
        let text = texts[name].as_str().unwrap();
        assert!(
            sms_texts.iter().any(|t| t == text),
            "no SMS-DELIVER with {text:?} in {sms_texts:#?}"
        );
    }
    // The long text in the two parts smpplib cut (each MESSAGE is there once a hop).
    let long = texts["long"].as_str().unwrap();
    let parts: BTreeSet<&String> = sms_texts.iter().filter(|t| long.contains(*t)).collect();
    let whole = parts
        .iter()
        .any(|a| parts.iter().any(|b| format!("{a}{b}") == long));
    assert!(
        parts.len() == 2 && whole,
        "the long text's parts: {parts:#?}"
    );
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed in tshark:\n{bad}");
}
