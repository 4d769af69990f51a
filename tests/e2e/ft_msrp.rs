//! MSRP file transfer (RFC 5547) between RCS UEs, end to end: alice offers a file in an
//! INVITE of its own (`a=sendonly`, `a=file-selector`, `a=file-transfer-id`), O-IM and T-IM
//! proxy it with their own `a=path` and the file attributes passed on, bob answers
//! `a=recvonly`; the file goes UE alice → O-IM → T-IM → UE bob in MSRP chunks with
//! Byte-Range, each 200 back hop by hop; bob's 200 for the last chunk (the file saved, size
//! and SHA-1 checked) is the delivery report, then alice's BYE. A file declined, a file over
//! the relays' limit (`[im] max_file_size`), an offline recipient, the CLI's `sendfile --msrp`
//! and `listen --files`, tshark reading the frames, and a 20 MiB file streamed through both
//! relays in bounded memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatUe};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::chat::{chat_flow, chat_ue};
use crate::ft_http::{blob, check, opts, sha256_of};
use crate::{flow, lab_with};

/// The next event within 20 s, session changes skipped.
async fn next(ue: &mut ChatUe) -> ChatEvent {
    next_within(ue, Duration::from_secs(20)).await
}

/// The next event within `wait`, session changes skipped.
async fn next_within(ue: &mut ChatUe, wait: Duration) -> ChatEvent {
    loop {
        match ue.next_event(wait).await.expect("an event in time") {
            ChatEvent::Session { .. } | ChatEvent::Stored { .. } => continue,
            ev => return ev,
        }
    }
}

async fn expect_file(ue: &mut ChatUe) -> (String, String, PathBuf, u64, String, String) {
    match next(ue).await {
        ChatEvent::File {
            from,
            name,
            path,
            size,
            sha256,
            message_id,
            ..
        } => (from, name, path, size, sha256, message_id),
        other => panic!("expected a file, got {other:?}"),
    }
}

async fn expect_delivered(ue: &mut ChatUe, id: &str) {
    match next(ue).await {
        ChatEvent::Status {
            message_id, status, ..
        } => assert_eq!((message_id.as_str(), status), (id, ImdnStatus::Delivered)),
        other => panic!("expected delivered for {id}, got {other:?}"),
    }
}

async fn expect_failed(ue: &mut ChatUe, id: &str) -> String {
    match next(ue).await {
        ChatEvent::SendFailed { message_id, reason } => {
            assert_eq!(message_id, id);
            reason
        }
        other => panic!("expected a failure for {id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_over_msrp_in_chunks_with_the_exact_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Three chunks: 10240 + 10240 + 4520.
    let src = blob(files.path(), "notes.txt", 25_000);
    let want = sha256_of(&src);

    let start = flow(&lab).len();
    let sent = alice
        .send_file_msrp("sip:bob@ims.lab", &src)
        .await
        .expect("offered");
    assert_eq!((sent.name.as_str(), sent.size), ("notes.txt", 25_000));
    assert_eq!(sent.content_type, "text/plain");
    let (from, name, path, size, sha, mid) = expect_file(&mut bob).await;
    assert_eq!(
        (from.as_str(), name.as_str()),
        ("sip:alice@ims.lab", "notes.txt")
    );
    assert_eq!(
        mid, sent.message_id,
        "the file-transfer-id names it on both sides"
    );
    assert_eq!(path, bob_dir.join("notes.txt"));
    assert_eq!((size, sha.as_str()), (25_000, want.as_str()));
    assert_eq!(sha256_of(&path), want);
    expect_delivered(&mut alice, &sent.message_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut want_ladder: Vec<String> = [
        // The offer, proxied by O-IM and T-IM (each record-routes and puts its own a=path in).
        "UE alice -> P-CSCF SIP INVITE",
        "P-CSCF -> S-CSCF SIP INVITE",
        "S-CSCF -> O-IM SIP INVITE",
        "O-IM -> S-CSCF SIP INVITE",
        "S-CSCF -> I-CSCF SIP INVITE",
        "I-CSCF -> HSS Diameter LIR",
        "HSS -> I-CSCF Diameter LIA",
        "I-CSCF -> S-CSCF SIP INVITE",
        "S-CSCF -> T-IM SIP INVITE",
        "T-IM -> S-CSCF SIP INVITE",
        "S-CSCF -> P-CSCF SIP INVITE",
        "P-CSCF -> UE bob SIP INVITE",
        // Bob's client answers a=recvonly at once.
        "UE bob -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> T-IM SIP 200",
        "T-IM -> S-CSCF SIP 200",
        "S-CSCF -> I-CSCF SIP 200",
        "I-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> O-IM SIP 200",
        "O-IM -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE alice SIP 200",
        // Two lanes meet at T-IM: the ACK, then bob's binding; alice's binding, her
        // first chunk, and O-IM binding its leg to T-IM and relaying the chunk (T-IM holds
        // it until bob is bound).
        "~ UE alice -> P-CSCF SIP ACK",
        "~ P-CSCF -> S-CSCF SIP ACK",
        "~ S-CSCF -> O-IM SIP ACK",
        "~ O-IM -> S-CSCF SIP ACK",
        "~ S-CSCF -> T-IM SIP ACK",
        "~ T-IM -> P-CSCF SIP ACK",
        "~ P-CSCF -> UE bob SIP ACK",
        "~ UE bob -> T-IM MSRP SEND",
        "~ T-IM -> UE bob MSRP 200",
        "UE alice -> O-IM MSRP SEND",
        "O-IM -> UE alice MSRP 200",
        "~ UE alice -> O-IM MSRP SEND",
        "~ O-IM -> T-IM MSRP SEND",
        "~ T-IM -> O-IM MSRP 200",
        "~ O-IM -> T-IM MSRP SEND",
        // Chunk 1 (bytes 1-10240) reaches bob; its 200 goes back hop by hop.
        "! T-IM -> UE bob MSRP SEND",
        "UE bob -> T-IM MSRP 200",
        "T-IM -> O-IM MSRP 200",
        "O-IM -> UE alice MSRP 200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Chunks 2 and 3, each sent when the one before got its 200; bob answers the last one
    // only once the file is saved and its SHA-1 checked: that 200 is alice's "delivered".
    for _ in 0..2 {
        for l in [
            "UE alice -> O-IM MSRP SEND",
            "O-IM -> T-IM MSRP SEND",
            "T-IM -> UE bob MSRP SEND",
            "UE bob -> T-IM MSRP 200",
            "T-IM -> O-IM MSRP 200",
            "O-IM -> UE alice MSRP 200",
        ] {
            want_ladder.push(l.into());
        }
    }
    // Alice ends the session (RFC 5547 §8, rcsjta).
    for l in [
        "UE alice -> P-CSCF SIP BYE",
        "P-CSCF -> S-CSCF SIP BYE",
        "S-CSCF -> O-IM SIP BYE",
        "O-IM -> S-CSCF SIP BYE",
        "S-CSCF -> T-IM SIP BYE",
        "T-IM -> P-CSCF SIP BYE",
        "P-CSCF -> UE bob SIP BYE",
        "UE bob -> P-CSCF SIP 200",
        "P-CSCF -> T-IM SIP 200",
        "T-IM -> S-CSCF SIP 200",
        "S-CSCF -> O-IM SIP 200",
        "O-IM -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE alice SIP 200",
    ] {
        want_ladder.push(l.into());
    }
    check(&want_ladder, &chat_flow(&lab, start));
    // Both relays forgot the transfer.
    assert_eq!(lab.oim.sessions_open(), 0);
    assert_eq!(lab.oim.msrp_stats().pairs, 0);
    assert_eq!(lab.tim.msrp_stats().pairs, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_a_few_hundred_kb_arrives_whole_and_a_second_one_of_that_name_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 300 KB: 30 chunks of 10 KiB (and a bit).
    let src = blob(files.path(), "big.bin", 300_000);
    let want = sha256_of(&src);
    let start = flow(&lab).len();
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    assert_eq!(sent.content_type, "application/octet-stream");
    let (_, _, path, size, sha, _) = expect_file(&mut bob).await;
    assert_eq!((size, sha.as_str()), (300_000, want.as_str()));
    assert_eq!(sha256_of(&path), want);
    expect_delivered(&mut alice, &sent.message_id).await;
    let sends = chat_flow(&lab, start)
        .iter()
        .filter(|l| *l == "T-IM -> UE bob MSRP SEND")
        .count();
    assert_eq!(sends, 30, "30 chunks: {sends}");
    // The same name again: saved beside the first, nothing overwritten; no part file left.
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    let (_, _, path2, _, sha2, _) = expect_file(&mut bob).await;
    assert_eq!(path2, bob_dir.join("big-1.bin"));
    assert_eq!(sha2, want);
    expect_delivered(&mut alice, &sent.message_id).await;
    let names: Vec<String> = std::fs::read_dir(&bob_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_files_directory_declines_and_the_sender_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let _bob = chat_ue(&lab, "bob", &shut, opts(None)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let src = blob(files.path(), "x.bin", 5_000);
    let start = flow(&lab).len();
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    let why = expect_failed(&mut alice, &sent.message_id).await;
    assert!(
        why.contains("603") && why.contains("takes no files"),
        "{why}"
    );
    let got = chat_flow(&lab, start);
    assert!(
        got.iter().any(|l| l == "UE bob -> P-CSCF SIP 603"),
        "{}",
        got.join("\n")
    );
    assert!(
        !got.iter().any(|l| l.contains("MSRP")),
        "{}",
        got.join("\n")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lab.tim.msrp_stats().pairs, 0);
    assert_eq!(lab.oim.msrp_stats().pairs, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_relays_limit_is_refused_with_413_and_an_offline_recipient_with_480() {
    let dir = tempfile::tempdir().unwrap();
    // The file limit is its own: chat's max_message_size (1000 here) does not bound files.
    let lab = lab_with(
        dir.path(),
        "[im]\nmax_message_size = 1000\nmax_file_size = 100000\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("bob");
    std::fs::create_dir(&inbox).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&inbox))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Under the file limit (and far over the chat one): streamed through, delivered.
    let fits = blob(files.path(), "fits.bin", 100_000);
    let sent = alice
        .send_file_msrp("sip:bob@ims.lab", &fits)
        .await
        .unwrap();
    let (_, _, _, size, sha, _) = expect_file(&mut bob).await;
    assert_eq!((size, sha), (100_000, sha256_of(&fits)));
    expect_delivered(&mut alice, &sent.message_id).await;
    let src = blob(files.path(), "huge.bin", 150_000);
    let start = flow(&lab).len();
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    let why = expect_failed(&mut alice, &sent.message_id).await;
    assert!(
        why.contains("413") && why.contains("takes files of up to 100000 bytes"),
        "{why}"
    );
    // O-IM refuses it before anything goes further.
    check(
        &[
            "UE alice -> P-CSCF SIP INVITE",
            "P-CSCF -> S-CSCF SIP INVITE",
            "S-CSCF -> O-IM SIP INVITE",
            "O-IM -> S-CSCF SIP 413",
            "~ S-CSCF -> O-IM SIP ACK",
            "S-CSCF -> P-CSCF SIP 413",
            "~ P-CSCF -> S-CSCF SIP ACK",
            "P-CSCF -> UE alice SIP 413",
            "~ UE alice -> P-CSCF SIP ACK",
        ]
        .map(String::from),
        &chat_flow(&lab, start),
    );
    // carol is not registered: T-IM answers 480 (no store and forward for MSRP).
    let small = blob(files.path(), "small.bin", 1_000);
    let sent = alice
        .send_file_msrp("sip:carol@ims.lab", &small)
        .await
        .unwrap();
    let why = expect_failed(&mut alice, &sent.message_id).await;
    assert!(why.contains("480") && why.contains("not stored"), "{why}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lab.tim.msrp_stats().pairs, 0);
    assert_eq!(lab.oim.msrp_stats().pairs, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sendfile_msrp_prints_delivered_and_listen_prints_the_line() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let src = blob(files.path(), "report.pdf", 40_000);
    let want = sha256_of(&src);
    let mut listen = crate::rcslab_ue(&lab, "bob", &["listen", "--files", inbox.to_str().unwrap()])
        .spawn()
        .unwrap();
    let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(l)) = err.next_line().await {
            if l.contains("registered, listening") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready.ok(), Some(true), "bob's listen did not register");
    let out = crate::rcslab_ue(
        &lab,
        "alice",
        &[
            "sendfile",
            "--msrp",
            "--timeout",
            "20",
            "sip:bob@ims.lab",
            src.to_str().unwrap(),
        ],
    )
    .output()
    .await
    .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    assert_eq!(
        (out.status.code(), text(&out.stdout).trim()),
        (Some(0), "delivered"),
        "{}",
        text(&out.stderr)
    );
    let mut lines = BufReader::new(listen.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("bob prints the file")
        .unwrap();
    assert_eq!(
        line.as_deref(),
        Some(format!("sip:alice@ims.lab: FILE report.pdf (40000 bytes, {want})").as_str())
    );
    assert_eq!(sha256_of(&inbox.join("report.pdf")), want);
    let _ = listen.start_kill();
    // Nobody listens as carol: failed, exit 1.
    let out = crate::rcslab_ue(
        &lab,
        "alice",
        &["sendfile", "--msrp", "carol", src.to_str().unwrap()],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("failed: INVITE answered 480"),
        "{}",
        text(&out.stdout)
    );
    // A file that is not there: a clear error before anything is sent.
    let out = crate::rcslab_ue(
        &lab,
        "alice",
        &["sendfile", "--msrp", "bob", "/nonexistent/x"],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read /nonexistent/x"),
        "{}",
        text(&out.stderr)
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_the_sip_and_msrp_of_a_file_transfer_with_nothing_malformed() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let src = blob(files.path(), "wire name.jpg", 25_000);
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    expect_file(&mut bob).await;
    expect_delivered(&mut alice, &sent.message_id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pcap = dir.path().join("ft.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    let malformed = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(
        malformed.trim().is_empty(),
        "malformed frames:\n{malformed}"
    );
    let methods = run(&["-Y", "msrp", "-T", "fields", "-e", "msrp.method"]);
    // Bindings (alice, O-IM, bob) and three chunks on each of three hops.
    assert!(
        methods.lines().filter(|l| *l == "SEND").count() >= 3 + 9,
        "MSRP SENDs decoded: {methods}"
    );
    let ranges = run(&[
        "-Y",
        "msrp.byte.range",
        "-T",
        "fields",
        "-e",
        "msrp.byte.range",
    ]);
    for r in ["1-10240/25000", "10241-20480/25000", "20481-25000/25000"] {
        assert_eq!(
            ranges.lines().filter(|l| *l == r).count(),
            3,
            "{r} on every hop: {ranges}"
        );
    }
    // The SDP every hop sees: the file's attributes passed on, each relay's own path.
    let attrs = run(&[
        "-Y",
        "sdp",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-e",
        "sdp.media_attr",
    ]);
    let selector = "file-selector:name:\"wire name.jpg\" type:image/jpeg size:25000 hash:sha-1:";
    let with_selector = attrs.lines().filter(|l| l.contains(selector)).count();
    // The INVITE and its 200 on each of their SIP hops (INVITE 9, 200 10 when the
    // I-CSCF is on the way back).
    assert!(with_selector >= 12, "{with_selector}:\n{attrs}");
    assert!(attrs.lines().any(|l| l.contains("sendonly")), "{attrs}");
    assert!(attrs.lines().any(|l| l.contains("recvonly")), "{attrs}");
    assert!(
        attrs.contains(&format!("file-transfer-id:{}", sent.message_id)),
        "{attrs}"
    );
    assert!(attrs.contains("file-disposition:render"), "{attrs}");
    lab.shutdown().await;
}

/// Deterministic bytes, `n` of them, written to a file in `dir` 64 KiB at a time; returns the
/// path and the SHA-256 (never holding the file in memory).
fn big_blob(dir: &Path, name: &str, n: usize) -> (PathBuf, String) {
    use std::io::Write as _;
    let p = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    let mut h = Sha256::new();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len());
        for b in &mut buf[..k] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        f.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        left -= k;
    }
    f.flush().unwrap();
    (p, hex::encode(h.finalize()))
}

/// SHA-256 of a file, read 64 KiB at a time.
fn sha256_streamed(p: &Path) -> String {
    use std::io::Read as _;
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return hex::encode(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// This process's resident set (the lab's nodes and both UEs run in it), in bytes.
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// Set in the process [`a_20_mib_file_streams_through_both_relays_in_bounded_memory`] starts
/// to do the transfer.
const RSS_CHILD: &str = "RCSLAB_TEST_FT_RSS_CHILD";

/// A 20 MiB file, UE → O-IM → T-IM → UE: same SHA-256, and the process's VmRSS grows by less
/// than 32 MiB while it passes (each relay holds the chunk in flight, never the file). The
/// transfer runs in a process of its own (this test binary again, this test only), so the
/// labs of tests running beside it do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_file_streams_through_both_relays_in_bounded_memory() {
    if std::env::var_os(RSS_CHILD).is_some() {
        return twenty_mib_in_bounded_memory().await;
    }
    let name = "ft_msrp::a_20_mib_file_streams_through_both_relays_in_bounded_memory";
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(RSS_CHILD, "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), child)
        .await
        .expect("the transfer's process ends within 90 s")
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the transfer's process failed:\n{stdout}\n{stderr}"
    );
}

async fn twenty_mib_in_bounded_memory() {
    const SIZE: usize = 20 << 20;
    let dir = tempfile::tempdir().unwrap();
    // The flight recorder keeps a copy of what it records, up to [trace] max_bytes (256 MiB
    // by default): 4 MiB here, so what is measured is what the relays and the UEs hold.
    let lab = lab_with(dir.path(), "[trace]\nmax_bytes = 4194304\n").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (src, want) = big_blob(files.path(), "clip.mp4", SIZE);

    // VmRSS before, then its highest value sampled every 50 ms while the file moves.
    let before = vm_rss();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (stop, oim, tim) = (stop.clone(), lab.oim.clone(), lab.tim.clone());
        move || {
            // The highest VmRSS, and the most partial-message bytes either relay held.
            let (mut max, mut partial) = (vm_rss(), 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                max = max.max(vm_rss());
                partial = partial
                    .max(oim.msrp_stats().partial_bytes)
                    .max(tim.msrp_stats().partial_bytes);
            }
            (max, partial)
        }
    });
    let t0 = std::time::Instant::now();
    let sent = alice.send_file_msrp("sip:bob@ims.lab", &src).await.unwrap();
    assert_eq!(sent.size, SIZE as u64);
    let wait = Duration::from_secs(55);
    let (path, size, sha) = match next_within(&mut bob, wait).await {
        ChatEvent::File {
            path, size, sha256, ..
        } => (path, size, sha256),
        other => panic!("expected the file, got {other:?}"),
    };
    match next_within(&mut alice, wait).await {
        ChatEvent::Status {
            message_id, status, ..
        } => assert_eq!(
            (message_id, status),
            (sent.message_id.clone(), ImdnStatus::Delivered)
        ),
        other => panic!("expected delivered, got {other:?}"),
    }
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, partial) = sampler.join().unwrap();
    let grew = peak.saturating_sub(before);
    eprintln!(
        "20 MiB over MSRP UE -> O-IM -> T-IM -> UE: {:.2} s ({:.1} MiB/s), VmRSS {} MiB before, \
         peak {} MiB, grew {:.1} MiB",
        took.as_secs_f64(),
        20.0 / took.as_secs_f64(),
        before >> 20,
        peak >> 20,
        grew as f64 / f64::from(1 << 20)
    );
    assert_eq!((size, sha.as_str()), (SIZE as u64, want.as_str()));
    assert_eq!(sha256_streamed(&path), want);
    assert!(
        grew < 32 << 20,
        "VmRSS grew by {grew} bytes while 20 MiB passed: the relays hold the file"
    );
    // The relays streamed it: nothing of it reassembled, nothing left behind.
    assert_eq!(partial, 0, "a relay reassembled file chunks");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for hub in [lab.oim.msrp_stats(), lab.tim.msrp_stats()] {
        assert_eq!(
            (hub.partials, hub.partial_bytes, hub.pairs),
            (0, 0, 0),
            "{hub:?}"
        );
    }
    lab.shutdown().await;
}
