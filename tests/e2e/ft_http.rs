//! File transfer via HTTP between RCS UEs (GSMA RCC.07 §3.2.5), end to end: alice uploads to
//! the content server CS (empty POST, Digest, multipart with tid, Thumbnail and File), sends
//! the file-info as a chat message through O-IM and T-IM; T-IM grants bob at CS before the
//! message goes on; bob downloads it (Digest as bob) and reports it delivered. Store and
//! forward for an offline recipient, a stranger refused, a group's members granted by CONF,
//! an upload cut and resumed, and the CLI's `sendfile` and `listen --files`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::Lab;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::chat::{chat_flow, chat_ue};
use crate::{flow, lab_with};

/// The next event within 10 s, session changes and T-IM's "stored" notices skipped.
async fn next(ue: &mut ChatUe) -> ChatEvent {
    loop {
        match ue
            .next_event(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
        {
            ChatEvent::Session { .. } | ChatEvent::Stored { .. } => continue,
            ev => return ev,
        }
    }
}

/// A JPEG photo of `w`×`h` (a colour gradient with some noise), written into `dir`.
fn photo(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let mut x = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(w, h, |i, j| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x & 0x1f) as u8;
        image::Rgb([
            ((i * 255 / w) as u8).wrapping_add(n),
            ((j * 255 / h) as u8).wrapping_add(n),
            (((i + j) * 127 / (w + h)) as u8).wrapping_add(n),
        ])
    });
    let p = dir.join(name);
    img.save(&p).expect("a JPEG");
    p
}

/// Deterministic bytes, `n` of them, in a file in `dir`.
pub(crate) fn blob(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

pub(crate) fn sha256_of(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn cs_url(lab: &Lab) -> String {
    format!("http://{}", lab.addrs.content)
}

/// The file id of a file-info URL (`…/files/ID`).
fn file_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// Client options: "delivered" asked for (the ladder shows that report alone), files saved
/// into `files`.
pub(crate) fn opts(files: Option<&Path>) -> ChatOptions {
    ChatOptions {
        disposition: "positive-delivery".into(),
        files: files.map(Path::to_path_buf),
        ..ChatOptions::default()
    }
}

pub(crate) fn check(expected: &[String], got: &[String]) {
    if let Some(d) = rcslab::lab::scenario::diff(expected, got) {
        panic!("ladder differs:\n{d}\nwhole ladder:\n{}", got.join("\n"));
    }
}

async fn expect_file(ue: &mut ChatUe) -> (String, Option<String>, PathBuf, u64, String, String) {
    match next(ue).await {
        ChatEvent::File {
            from,
            group,
            path,
            size,
            sha256,
            message_id,
            ..
        } => (from, group, path, size, sha256, message_id),
        other => panic!("expected a file, got {other:?}"),
    }
}

async fn expect_status(ue: &mut ChatUe, id: &str, status: ImdnStatus) {
    match next(ue).await {
        ChatEvent::Status {
            message_id,
            status: s,
            ..
        } => assert_eq!((message_id.as_str(), s), (id, status)),
        other => panic!("expected {status:?} for {id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_goes_over_http_with_its_thumbnail_and_the_exact_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let src = photo(files.path(), "photo.jpg", 800, 600);
    let want = sha256_of(&src);
    let size = std::fs::metadata(&src).unwrap().len();

    let start = flow(&lab).len();
    let sent = alice
        .send_file("sip:bob@ims.lab", &src, &cs_url(&lab))
        .await
        .expect("uploaded and sent");
    assert_eq!(sent.info.file.name, "photo.jpg");
    assert_eq!(sent.info.file.size, size);
    assert_eq!(sent.info.file.content_type, "image/jpeg");
    let (from, group, path, got_size, sha, mid) = expect_file(&mut bob).await;
    assert_eq!(from, "sip:alice@ims.lab");
    assert_eq!(group, None);
    assert_eq!(mid, sent.message_id);
    assert_eq!(path, bob_dir.join("photo.jpg"));
    assert_eq!((got_size, sha.as_str()), (size, want.as_str()));
    assert_eq!(
        sha256_of(&path),
        want,
        "the file bob has is the one alice sent"
    );
    expect_status(&mut alice, &sent.message_id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The thumbnail: made from the photo, a JPEG of at most 50 KiB within 128 px.
    let id = file_id(&sent.info.file.url);
    let rec = lab.content.record(&id).expect("CS has the file");
    let t = rec.thumb.clone().expect("a thumbnail came with the upload");
    assert_eq!(t.content_type, "image/jpeg");
    assert!(t.size <= 50 * 1024, "{}", t.size);
    let thumb = image::load_from_memory(&std::fs::read(lab.content.path_of(&id, true)).unwrap())
        .expect("the thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), (128, 96));
    assert_eq!(sent.info.thumbnail.as_ref().map(|t| t.size), Some(t.size));
    assert_eq!(rec.owner, "sip:alice@ims.lab");
    assert_eq!(
        rec.grants,
        ["sip:bob@ims.lab", "tel:+15550002"],
        "T-IM granted the recipient (his registration set)"
    );
    assert_eq!(rec.sha256.as_deref(), Some(want.as_str()));

    let id_line = |who: &str, to: &str, what: &str| format!("{who} -> {to} HTTP {what}");
    let get_file = format!("GET /files/{id}");
    let mut want_ladder: Vec<String> = vec![
        // RCC.07: the empty POST, its challenge, then the upload (CS asks the HSS for
        // alice's HA1 over Cx).
        id_line("UE alice", "CS", "POST /"),
        id_line("CS", "UE alice", "HTTP/1.1 401 Unauthorized"),
        "CS -> HSS Diameter MAR".into(),
        "HSS -> CS Diameter MAA".into(),
        id_line("UE alice", "CS", "POST /"),
        id_line("CS", "UE alice", "HTTP/1.1 200 OK"),
        // The file-info as the chat's first message (paper figure 1).
        "UE alice -> P-CSCF SIP INVITE".into(),
        "P-CSCF -> S-CSCF SIP INVITE".into(),
        "S-CSCF -> O-IM SIP INVITE".into(),
        "O-IM -> S-CSCF SIP INVITE".into(),
        "S-CSCF -> I-CSCF SIP INVITE".into(),
        "I-CSCF -> HSS Diameter LIR".into(),
        "HSS -> I-CSCF Diameter LIA".into(),
        "I-CSCF -> S-CSCF SIP INVITE".into(),
        "S-CSCF -> T-IM SIP INVITE".into(),
        // T-IM grants bob the file before it takes the message.
        id_line("T-IM", "CS", "POST /grants"),
        id_line("CS", "T-IM", "HTTP/1.1 200 OK"),
        "T-IM -> S-CSCF SIP 200".into(),
        "S-CSCF -> I-CSCF SIP 200".into(),
        "I-CSCF -> S-CSCF SIP 200".into(),
        "S-CSCF -> O-IM SIP 200".into(),
        "O-IM -> S-CSCF SIP 200".into(),
        "S-CSCF -> P-CSCF SIP 200".into(),
        "P-CSCF -> UE alice SIP 200".into(),
        "~ UE alice -> P-CSCF SIP ACK".into(),
        "~ P-CSCF -> S-CSCF SIP ACK".into(),
        "~ S-CSCF -> O-IM SIP ACK".into(),
        "~ O-IM -> S-CSCF SIP ACK".into(),
        "~ S-CSCF -> T-IM SIP ACK".into(),
        "UE alice -> O-IM MSRP SEND".into(),
        "O-IM -> UE alice MSRP 200".into(),
        "O-IM -> T-IM MSRP SEND".into(),
        "T-IM -> O-IM MSRP 200".into(),
        "! T-IM -> S-CSCF SIP INVITE".into(),
        "S-CSCF -> P-CSCF SIP INVITE".into(),
        "P-CSCF -> UE bob SIP INVITE".into(),
        // No IMDN before the 200: a file is "delivered" once downloaded.
        "UE bob -> P-CSCF SIP 200".into(),
        "P-CSCF -> S-CSCF SIP 200".into(),
        "S-CSCF -> T-IM SIP 200".into(),
        "T-IM -> P-CSCF SIP ACK".into(),
        "P-CSCF -> UE bob SIP ACK".into(),
        "UE bob -> T-IM MSRP SEND".into(),
        "T-IM -> UE bob MSRP 200".into(),
        // Bob downloads (Digest as bob), then reports over the session.
        id_line("UE bob", "CS", &get_file),
        id_line("CS", "UE bob", "HTTP/1.1 401 Unauthorized"),
        "CS -> HSS Diameter MAR".into(),
        "HSS -> CS Diameter MAA".into(),
        id_line("UE bob", "CS", &get_file),
        id_line("CS", "UE bob", "HTTP/1.1 200 OK"),
        "UE bob -> T-IM MSRP SEND".into(),
        "T-IM -> O-IM MSRP SEND".into(),
        "O-IM -> UE alice MSRP SEND".into(),
        "UE alice -> O-IM MSRP 200".into(),
        "O-IM -> T-IM MSRP 200".into(),
        "T-IM -> UE bob MSRP 200".into(),
    ];
    check(&want_ladder, &chat_flow(&lab, start));

    // A second file, in the session that is up: over MSRP, T-IM's grant holds the message
    // until CS answered; the nonces alice and bob hold spare them the 401s and the HSS.
    let text = blob(files.path(), "notes.txt", 20_000);
    let start = flow(&lab).len();
    let sent2 = alice
        .send_file("sip:bob@ims.lab", &text, &cs_url(&lab))
        .await
        .unwrap();
    assert!(
        sent2.info.thumbnail.is_none(),
        "no thumbnail for a text file"
    );
    let (_, _, path2, size2, sha2, _) = expect_file(&mut bob).await;
    assert_eq!(path2, bob_dir.join("notes.txt"));
    assert_eq!((size2, sha2), (20_000, sha256_of(&text)));
    expect_status(&mut alice, &sent2.message_id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let get2 = format!("GET /files/{}", file_id(&sent2.info.file.url));
    want_ladder = vec![
        id_line("UE alice", "CS", "POST /"),
        id_line("CS", "UE alice", "HTTP/1.1 204 No Content"),
        id_line("UE alice", "CS", "POST /"),
        id_line("CS", "UE alice", "HTTP/1.1 200 OK"),
        "UE alice -> O-IM MSRP SEND".into(),
        "O-IM -> T-IM MSRP SEND".into(),
        id_line("T-IM", "CS", "POST /grants"),
        id_line("CS", "T-IM", "HTTP/1.1 200 OK"),
        "T-IM -> UE bob MSRP SEND".into(),
        "UE bob -> T-IM MSRP 200".into(),
        "~ T-IM -> O-IM MSRP 200".into(),
        "~ O-IM -> UE alice MSRP 200".into(),
        id_line("UE bob", "CS", &get2),
        id_line("CS", "UE bob", "HTTP/1.1 200 OK"),
        "UE bob -> T-IM MSRP SEND".into(),
        "T-IM -> O-IM MSRP SEND".into(),
        "! O-IM -> UE alice MSRP SEND".into(),
        "UE alice -> O-IM MSRP 200".into(),
        "O-IM -> T-IM MSRP 200".into(),
        "T-IM -> UE bob MSRP 200".into(),
    ];
    check(&want_ladder, &chat_flow(&lab, start));
    // T-IM's history has both file messages.
    let h = lab
        .tim
        .store()
        .unwrap()
        .history("sip:alice@ims.lab", "sip:bob@ims.lab", 0, 10);
    assert_eq!(
        h.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(),
        [sent.message_id.as_str(), sent2.message_id.as_str()]
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_for_an_offline_user_is_granted_when_stored_and_downloaded_when_they_register() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let src = photo(files.path(), "away.png", 320, 200);
    // Bob is not registered: T-IM takes the message (and grants bob) and says it stored it.
    let sent = alice
        .send_file("sip:bob@ims.lab", &src, &cs_url(&lab))
        .await
        .unwrap();
    assert!(
        sent.info.thumbnail.is_some(),
        "a PNG gets a (JPEG) thumbnail"
    );
    let stored = loop {
        match alice.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::Stored { message_id, .. }) => break message_id,
            Some(ChatEvent::Session { .. }) => continue,
            other => panic!("expected stored, got {other:?}"),
        }
    };
    assert_eq!(stored, sent.message_id);
    let id = file_id(&sent.info.file.url);
    assert_eq!(
        lab.content.record(&id).unwrap().grants,
        ["sip:bob@ims.lab"],
        "granted when T-IM took the message"
    );
    assert_eq!(
        lab.tim
            .store()
            .unwrap()
            .pending_for("sip:bob@ims.lab")
            .len(),
        1
    );
    // Bob registers later: T-IM delivers the file-info, bob downloads it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    let (from, _, path, size, sha, mid) = expect_file(&mut bob).await;
    assert_eq!(
        (from.as_str(), mid.as_str()),
        ("sip:alice@ims.lab", sent.message_id.as_str())
    );
    assert_eq!(path, bob_dir.join("away.png"));
    assert_eq!(
        (size, sha),
        (std::fs::metadata(&src).unwrap().len(), sha256_of(&src))
    );
    expect_status(&mut alice, &sent.message_id, ImdnStatus::Delivered).await;
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("sip:bob@ims.lab")
        .is_empty());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_and_the_recipient_may_download_a_stranger_gets_403() {
    use rcslab::ue::ft::{FtClient, FtError};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let bob_dir = files.path().join("bob");
    std::fs::create_dir(&bob_dir).unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(&bob_dir))).await;
    let src = blob(files.path(), "secret.bin", 50_000);
    let sent = alice
        .send_file("sip:bob@ims.lab", &src, &cs_url(&lab))
        .await
        .unwrap();
    let (_, _, path, ..) = expect_file(&mut bob).await;
    assert_eq!(sha256_of(&path), sha256_of(&src));
    expect_status(&mut alice, &sent.message_id, ImdnStatus::Delivered).await;
    // Carol read the URL somewhere: she is neither the uploader nor a recipient.
    let carol = FtClient::new(
        "carol@ims.lab",
        "carol-secret",
        lab.trace.clone(),
        "UE carol",
    );
    let carol_dir = files.path().join("carol");
    std::fs::create_dir(&carol_dir).unwrap();
    match carol.download(&sent.info, &carol_dir, u64::MAX).await {
        Err(FtError::Refused { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (403, "forbidden"))
        }
        other => panic!("carol must be refused: {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(&carol_dir).unwrap().count(),
        0,
        "nothing is left of a refused download"
    );
    // A wrong password is refused too (401 again after the challenge).
    let wrong = FtClient::new("bob@ims.lab", "guess", lab.trace.clone(), "UE bob");
    match wrong.download(&sent.info, &carol_dir, u64::MAX).await {
        Err(FtError::Refused { status, .. }) => assert_eq!(status, 401),
        other => panic!("a wrong password must be refused: {other:?}"),
    }
    // The uploader may.
    let own = FtClient::new(
        "alice@ims.lab",
        "alice-secret",
        lab.trace.clone(),
        "UE alice",
    );
    let again = own
        .download(&sent.info, &carol_dir, u64::MAX)
        .await
        .unwrap();
    assert_eq!(again.sha256, sha256_of(&src));
    // A file over CS's limit (3 MiB by default) is refused with 413, said as such.
    let big = blob(files.path(), "big.bin", 3_500_000);
    match own.upload(&cs_url(&lab), &big).await {
        Err(FtError::Refused { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (413, "payload_too_large"))
        }
        other => panic!("an upload over the limit must get 413: {other:?}"),
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sendfile_prints_delivered_and_listen_saves_the_file_and_prints_its_line() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // A file of that name is there already: the one received is saved beside it.
    std::fs::write(inbox.join("photo.jpg"), b"older").unwrap();
    let src = photo(files.path(), "photo.jpg", 400, 300);
    let want = sha256_of(&src);
    let size = std::fs::metadata(&src).unwrap().len();
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
    let cs = cs_url(&lab);
    let out = crate::rcslab_ue(
        &lab,
        "alice",
        &[
            "sendfile",
            "sip:bob@ims.lab",
            src.to_str().unwrap(),
            "--content-server",
            &cs,
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
        Some(format!("sip:alice@ims.lab: FILE photo-1.jpg ({size} bytes, {want})").as_str())
    );
    assert_eq!(sha256_of(&inbox.join("photo-1.jpg")), want);
    assert_eq!(std::fs::read(inbox.join("photo.jpg")).unwrap(), b"older");
    let _ = listen.start_kill();

    // A file that is not there, a files directory that is not one: clear errors.
    let out = crate::rcslab_ue(&lab, "alice", &["sendfile", "bob", "/nonexistent/x.jpg"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sendfile: cannot read /nonexistent/x.jpg"),
        "{}",
        text(&out.stderr)
    );
    let out = crate::rcslab_ue(&lab, "bob", &["listen", "--files", src.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a directory"),
        "{}",
        text(&out.stderr)
    );
    lab.shutdown().await;
}

/// A TCP relay to `to` that cuts the first connection once `cut_after` bytes went up it;
/// later connections pass whole.
async fn cutting_proxy(to: std::net::SocketAddr, cut_after: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((client, _)) = l.accept().await {
            n += 1;
            let limit = if n == 2 { Some(cut_after) } else { None };
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut up = 0usize;
                loop {
                    let k = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => k,
                    };
                    let k = match limit {
                        Some(lim) if up + k >= lim => {
                            let _ = sw.write_all(&buf[..lim - up]).await;
                            // Cut: both directions go.
                            down.abort();
                            return;
                        }
                        _ => k,
                    };
                    if sw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    up += k;
                }
                let _ = sw.shutdown().await;
                let _ = down.await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_on_the_way_resumes_with_get_upload_info_and_put() {
    use rcslab::ue::ft::FtClient;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let files = tempfile::tempdir().unwrap();
    let src = blob(files.path(), "big.bin", 2_500_000);
    // The second connection is the multipart POST (the first is the empty one).
    let proxy = cutting_proxy(lab.addrs.content, 1_000_000).await;
    let alice = FtClient::new(
        "alice@ims.lab",
        "alice-secret",
        lab.trace.clone(),
        "UE alice",
    );
    let start = flow(&lab).len();
    let info = alice
        .upload(&format!("http://{proxy}"), &src)
        .await
        .expect("the upload resumes and completes");
    assert_eq!(info.file.size, 2_500_000);
    let id = file_id(&info.file.url);
    assert_eq!(
        lab.content.record(&id).unwrap().sha256.as_deref(),
        Some(sha256_of(&src).as_str()),
        "the same SHA-256 after the cut and the resume"
    );
    let got: Vec<String> = flow(&lab)
        .into_iter()
        .skip(start)
        .filter(|l| l.contains(" HTTP "))
        .collect();
    // The cut POST (CS answers 400 to a body that ends early, to nobody), what arrived, the
    // rest with PUT.
    let get_info = got
        .iter()
        .position(|l| l.starts_with("UE alice -> CS HTTP GET /"))
        .unwrap_or_else(|| panic!("no get_upload_info in {got:#?}"));
    let put = got
        .iter()
        .position(|l| l.starts_with("UE alice -> CS HTTP PUT /upload/"))
        .unwrap_or_else(|| panic!("no PUT in {got:#?}"));
    assert!(get_info < put, "{got:#?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some("CS -> UE alice HTTP HTTP/1.1 200 OK"),
        "{got:#?}"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_to_a_group_is_granted_to_every_member_by_conf_and_each_downloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let files = tempfile::tempdir().unwrap();
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut members = Vec::new();
    for who in ["bob", "carol"] {
        let d = files.path().join(who);
        std::fs::create_dir(&d).unwrap();
        let o = ChatOptions {
            files: Some(d.clone()),
            ..ChatOptions::default()
        };
        members.push((who, d, chat_ue(&lab, who, &shut, o).await));
    }
    let group = alice
        .create_group("Photos", &["bob", "carol"])
        .await
        .expect("the focus creates the group");
    crate::eventually("both members' MSRP legs bound", || {
        let f = chat_flow(&lab, 0);
        ["bob", "carol"]
            .iter()
            .all(|u| f.contains(&format!("CONF -> UE {u} MSRP 200")))
    })
    .await;
    let src = photo(files.path(), "team.jpg", 640, 480);
    let sent = alice
        .send_file(&group, &src, &cs_url(&lab))
        .await
        .expect("uploaded and sent to the group");
    for (who, d, ue) in members.iter_mut() {
        let (from, g, path, size, sha, mid) = expect_file(ue).await;
        assert_eq!(
            (from.as_str(), g.as_deref(), mid.as_str()),
            (
                "sip:alice@ims.lab",
                Some(group.as_str()),
                sent.message_id.as_str()
            ),
            "{who}"
        );
        assert_eq!(path, d.join("team.jpg"));
        assert_eq!((size, sha), (sent.info.file.size, sha256_of(&src)), "{who}");
    }
    // Each member reports delivered once the file is there.
    let mut reporters = Vec::new();
    while reporters.len() < 2 {
        match next(&mut alice).await {
            ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                from,
                ..
            } if message_id == sent.message_id => reporters.push(from),
            ChatEvent::Status { .. } => continue,
            other => panic!("{other:?}"),
        }
    }
    reporters.sort();
    assert_eq!(reporters, ["sip:bob@ims.lab", "sip:carol@ims.lab"]);
    let mut grants = lab
        .content
        .record(&file_id(&sent.info.file.url))
        .unwrap()
        .grants;
    grants.sort();
    assert_eq!(
        grants,
        ["sip:bob@ims.lab", "sip:carol@ims.lab"],
        "CONF granted every member but the sender"
    );
    assert!(
        flow(&lab).contains(&"CONF -> CS HTTP POST /grants".to_string()),
        "the grant is CONF's, on the wire"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_a_whole_file_transfer_with_nothing_malformed() {
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
    let mut alice = chat_ue(&lab, "alice", &shut, opts(None)).await;
    let mut bob = chat_ue(&lab, "bob", &shut, opts(Some(files.path()))).await;
    let src = photo(files.path(), "wire.png", 160, 120);
    let sent = alice
        .send_file("sip:bob@ims.lab", &src, &cs_url(&lab))
        .await
        .unwrap();
    expect_file(&mut bob).await;
    expect_status(&mut alice, &sent.message_id, ImdnStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pcap = dir.path().join("ft.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    let methods = run(&[
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.method",
    ]);
    for m in ["POST", "GET"] {
        assert!(methods.lines().any(|l| l == m), "{m} in {methods}");
    }
    let uris = run(&[
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.uri",
    ]);
    assert!(uris.lines().any(|l| l == "/grants"), "T-IM's grant: {uris}");
    let parts = run(&[
        "-Y",
        "mime_multipart",
        "-T",
        "fields",
        "-e",
        "mime_multipart.header.content-disposition",
    ]);
    for want in ["name=\"tid\"", "name=\"Thumbnail\"", "name=\"File\""] {
        assert!(parts.contains(want), "{want} in {parts}");
    }
    let auth = run(&[
        "-Y",
        "http.authorization",
        "-T",
        "fields",
        "-e",
        "http.authorization",
    ]);
    assert!(
        auth.lines()
            .any(|l| l.starts_with("Digest username=\"alice@ims.lab\""))
            && auth
                .lines()
                .any(|l| l.starts_with("Digest username=\"bob@ims.lab\"")),
        "{auth}"
    );
    let msrp = run(&["-Y", "msrp", "-T", "fields", "-e", "msrp.method"]);
    assert!(
        msrp.lines().filter(|l| *l == "SEND").count() >= 4,
        "MSRP SENDs decoded: {msrp}"
    );
    let types = run(&[
        "-Y",
        "http.response",
        "-T",
        "fields",
        "-e",
        "http.content_type",
    ]);
    for t in ["application/vnd.gsma.rcs-ft-http+xml", "application/json"] {
        assert!(types.lines().any(|l| l == t), "{t} in {types}");
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed packets:\n{bad}");
    lab.shutdown().await;
}
