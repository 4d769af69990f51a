//! MMS as a link-based notification (issue 20): a business uploads media to the UMS and sends
//! it to bob; the UMS submits the M-Notification.ind in a WAP Push as 8-bit SMS parts with
//! the port header, the SMS centre delivers each part as an SMS-DELIVER, bob's phone (the
//! lab's SMS client) acknowledges each, decodes the notification and fetches the exact bytes
//! from its Content-Location; the receipt makes bob `delivered (mms)` and the webhook hears
//! `mms_retrieved`; `rcslab ue listen` prints it in one line. tshark decodes the MT MESSAGEs
//! down to the MMS PDU. Bad input: media over the size limit (413), an unknown media id (404),
//! media with channel sms (400).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use rcslab::ue::sms::{SmsEvent, SmsOptions, SmsUe};
use rcslab::ue::AuthMode;
use serde_json::{json, Value};

use crate::ums::{webhook, Events};
use crate::{eventually, flow, lab_with, ue};

/// The media bob gets: 300 bytes that are not text.
fn picture() -> Vec<u8> {
    (0..300u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// One call to the UMS API: status and JSON answer.
async fn call(
    addr: SocketAddr,
    token: Option<&str>,
    m: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut b = Request::builder()
        .method(m)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", content_type);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b.body(Full::new(Bytes::from(body))).unwrap();
    let (s, body) = rcslab::http_client::send(addr, req, Duration::from_secs(10))
        .await
        .unwrap();
    (s, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ums").join("api.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The lab (with `extra` config) and bob's phone with its SMS client, registered and known
/// to the IP-SM-GW, the UMS bound.
async fn lab_and_bob(
    dir: &Path,
    extra: &str,
    shut: &tokio::sync::watch::Receiver<bool>,
) -> (rcslab::Lab, rcslab::ue::Ue, SmsUe) {
    let lab = lab_with(dir, extra).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, shut).await;
    let sms = SmsUe::start(&mut bob, SmsOptions::default());
    bob.register(600).await.unwrap();
    eventually("the IP-SM-GW to know bob", || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered)
    })
    .await;
    eventually("the UMS to bind to the SMSC", || lab.ums.is_bound()).await;
    (lab, bob, sms)
}

/// Uploads the picture and sends it to bob as MMS with subject `subject`: the media's id and
/// URL, and the message id.
async fn send_picture(lab: &rcslab::Lab, tok: &str, subject: &str) -> (String, String, String) {
    let addr = lab.ums.local_addr();
    let (s, up) = call(
        addr,
        Some(tok),
        Method::POST,
        "/ums/v1/media",
        "image/png",
        picture(),
    )
    .await;
    assert_eq!(s, 201, "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "128 bits in hex: {up}");
    let url = format!("http://{addr}/ums/v1/media/{id}");
    assert_eq!(
        up,
        json!({"id": id, "url": url, "content_type": "image/png", "size": 300})
    );
    let send = json!({"recipients": ["+15550002"], "text": subject, "media": id});
    let (s, v) = call(
        addr,
        Some(tok),
        Method::POST,
        "/ums/v1/messages",
        "application/json",
        send.to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        v["recipients"],
        json!([{"to": "+15550002", "status": "accepted", "channel": "mms"}])
    );
    (id, url, v["id"].as_str().unwrap().to_string())
}

/// bob's next MMS event (within 15 s).
async fn bob_gets_mms(sms: &mut SmsUe) -> SmsEvent {
    for _ in 0..30 {
        match sms.next_event(Duration::from_millis(500)).await {
            Some(e @ SmsEvent::Mms { .. }) => return e,
            Some(other) => panic!("bob got {other:?}, not an MMS"),
            None => {}
        }
    }
    panic!("no MMS for bob");
}

/// The recipient once final (within 15 s).
async fn final_recipient(lab: &rcslab::Lab, tok: &str, id: &str) -> Value {
    for _ in 0..150 {
        let (_, m) = call(
            lab.ums.local_addr(),
            Some(tok),
            Method::GET,
            &format!("/ums/v1/messages/{id}"),
            "application/json",
            Vec::new(),
        )
        .await;
        let r = m["recipients"][0].clone();
        if matches!(r["status"].as_str(), Some("delivered" | "failed")) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {id} not final");
}

#[tokio::test]
async fn an_mms_notification_reaches_bob_in_parts_he_fetches_the_media_and_it_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, rx) = webhook().await;
    let mut events = Events {
        rx,
        seen: Vec::new(),
    };
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (lab, _bob, mut sms) = lab_and_bob(
        dir.path(),
        &format!("[ums]\nwebhook = \"http://{hook}/hook\"\n"),
        &shut,
    )
    .await;
    let tok = token(dir.path());
    lab.trace.clear();
    let (_, url, msg) = send_picture(&lab, &tok, "Your summer sale picture").await;

    let e = bob_gets_mms(&mut sms).await;
    let SmsEvent::Mms {
        from,
        notification: n,
        fetched,
    } = &e
    else {
        unreachable!()
    };
    let location = format!("{url}?m={msg}&i=0");
    assert_eq!(from, "tel:4100");
    assert_eq!(n.content_location, location);
    assert_eq!(n.subject.as_deref(), Some("Your summer sale picture"));
    assert_eq!(n.from_number(), Some("4100"));
    assert_eq!(
        (n.size, n.transaction_id.as_str()),
        (300, &*format!("{msg}-0"))
    );
    let f = fetched.as_ref().expect("bob fetched the media");
    assert_eq!(f.content_type, "image/png");
    assert_eq!(f.body, picture(), "the exact bytes");
    assert_eq!(
        e.received_line().unwrap(),
        format!("tel:4100: [MMS] Your summer sale picture (image/png, 300 bytes) {location}")
    );

    let r = final_recipient(&lab, &tok, &msg).await;
    assert_eq!(
        (
            r["status"].as_str(),
            r["channel"].as_str(),
            r["detail"].as_str()
        ),
        (
            Some("delivered"),
            Some("mms"),
            Some("notification delivered")
        ),
        "{r}"
    );
    let got = events.find(|e| e["type"] == "mms_retrieved").await;
    assert_eq!(
        got,
        json!({"type": "mms_retrieved", "message_id": msg, "to": "+15550002"})
    );
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The MT part: two SMS-DELIVERs (the notification takes two SMS), each answered 200 and
    // then acknowledged by bob's own RP-ACK MESSAGE.
    let mut expected: Vec<String> = Vec::new();
    for _ in 0..2 {
        expected.extend(
            [
                "IP-SM-GW -> I-CSCF SIP MESSAGE",
                "I-CSCF -> HSS Diameter LIR",
                "HSS -> I-CSCF Diameter LIA",
                "I-CSCF -> S-CSCF SIP MESSAGE",
                "S-CSCF -> P-CSCF SIP MESSAGE",
                "P-CSCF -> UE bob SIP MESSAGE",
                "UE bob -> P-CSCF SIP 200",
                "~ P-CSCF -> S-CSCF SIP 200",
                "~ S-CSCF -> I-CSCF SIP 200",
                "~ I-CSCF -> IP-SM-GW SIP 200",
                "UE bob -> P-CSCF SIP MESSAGE",
                "P-CSCF -> S-CSCF SIP MESSAGE",
                "S-CSCF -> IP-SM-GW SIP MESSAGE",
                "IP-SM-GW -> S-CSCF SIP 200",
                "~ S-CSCF -> P-CSCF SIP 200",
                "~ P-CSCF -> UE bob SIP 200",
            ]
            .map(String::from),
        );
    }
    let got: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains(" SIP ") || l.contains(" Diameter "))
        .collect();
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!(
            "MMS ladder differs:\n{d}\n{}\nwhole flow:\n{}",
            got.join("\n"),
            flow(&lab).join("\n")
        );
    }
    // The UMS's side on SMPP: a submit_sm per part, then the receipt of the last.
    let mut smpp: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains(" SMPP "))
        .map(|l| l.split(" seq=").next().unwrap_or_default().to_string())
        .collect();
    smpp.sort();
    assert_eq!(
        smpp,
        [
            "SMSC -> UMS SMPP deliver_sm",
            "SMSC -> UMS SMPP submit_sm_resp",
            "SMSC -> UMS SMPP submit_sm_resp",
            "UMS -> SMSC SMPP deliver_sm_resp",
            "UMS -> SMSC SMPP submit_sm",
            "UMS -> SMSC SMPP submit_sm",
        ]
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn tshark_decodes_the_mt_messages_down_to_the_mms_notification() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (lab, _bob, mut sms) = lab_and_bob(dir.path(), "", &shut).await;
    let tok = token(dir.path());
    let (_, url, msg) = send_picture(&lab, &tok, "Sale, in two SMS with this subject").await;
    bob_gets_mms(&mut sms).await;
    final_recipient(&lab, &tok, &msg).await;
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    let pcap = dir.path().join("mms.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    // SIP MESSAGE -> RP-DATA -> SMS-DELIVER (two parts, reassembled) -> WSP Push -> MMSE;
    // and the UMS's submit_sm parts on SMPP the same way.
    let want = format!("0x82|{msg}-0|1.2|Sale, in two SMS with this subject|{url}?m={msg}&i=0");
    for carrier in ["sip", "smpp"] {
        let filter = format!("{carrier} && wsp.pdu_type == 0x06 && mmse");
        let fields = run(&[
            "-Y",
            &filter,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "mmse.message_type",
            "-e",
            "mmse.transaction_id",
            "-e",
            "mmse.mms_version",
            "-e",
            "mmse.subject",
            "-e",
            "mmse.content_location",
        ]);
        let lines: Vec<&str> = fields.lines().collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| *l == want),
            "{carrier}: {fields}\nwanted {want}\nall frames:\n{}",
            run(&[])
        );
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed frames: {bad}");
    lab.shutdown().await;
}

/// Bad input gets its 4xx in JSON; `rcslab ums send --media FILE` uploads, sends and prints
/// `+15550002: delivered (mms)`.
#[tokio::test]
async fn bad_media_is_refused_and_rcslab_ums_send_media_prints_delivered_mms() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (lab, _bob, mut sms) =
        lab_and_bob(dir.path(), "[ums]\nmax_media_size = 1000\n", &shut).await;
    let tok = token(dir.path());
    let addr = lab.ums.local_addr();
    let upload = |token: Option<String>, ct: &'static str, body: Vec<u8>| async move {
        call(
            addr,
            token.as_deref(),
            Method::POST,
            "/ums/v1/media",
            ct,
            body,
        )
        .await
    };
    let t = Some(tok.clone());
    let (s, v) = upload(t.clone(), "image/png", vec![7; 1001]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (413, Some("media_too_large")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("1000"), "{v}");
    let (s, v) = upload(None, "image/png", vec![7; 10]).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = upload(t.clone(), "", vec![7; 10]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("bad_content_type")),
        "{v}"
    );
    let (s, v) = upload(t.clone(), "image/png", Vec::new()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("no_media")), "{v}");
    let (s, v) = upload(t.clone(), "image/png", vec![7; 1000]).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let get =
        |path: String| async move { call(addr, None, Method::GET, &path, "", Vec::new()).await };
    let (s, v) = get(format!("/ums/v1/media/{}", "0".repeat(32))).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("no_such_media")),
        "{v}"
    );
    for (body, status, error) in [
        (
            json!({"recipients": ["+15550002"], "media": "f".repeat(32)}),
            404,
            "no_such_media",
        ),
        (
            json!({"recipients": ["+15550002"], "text": "x", "media": id, "channel": "sms"}),
            400,
            "media_needs_mms",
        ),
        (
            json!({"recipients": ["+15550002"], "text": "x", "media": id, "channel": "lms"}),
            400,
            "media_needs_mms",
        ),
        (
            json!({"recipients": ["+15550002"], "text": "x", "channel": "mms"}),
            400,
            "no_media",
        ),
        (
            json!({"recipients": ["+15550002"], "text": "a".repeat(101), "media": id}),
            400,
            "subject_too_long",
        ),
    ] {
        let (s, v) = call(
            addr,
            t.as_deref(),
            Method::POST,
            "/ums/v1/messages",
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(error)),
            "{body}: {v}"
        );
        assert!(v["detail"].is_string(), "{v}");
    }
    // Deleted media is gone for the phone too.
    let (s, _) = call(
        addr,
        t.as_deref(),
        Method::DELETE,
        &format!("/ums/v1/media/{id}"),
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = get(format!("/ums/v1/media/{id}")).await;
    assert_eq!(s, 404);

    let file = dir.path().join("sale.png");
    std::fs::write(&file, picture()).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
        .args([
            "ums",
            "send",
            "--to",
            "+15550002",
            "--text",
            "Sale",
            "--media",
        ])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let SmsEvent::Mms {
        fetched,
        notification,
        ..
    } = bob_gets_mms(&mut sms).await
    else {
        unreachable!()
    };
    assert_eq!(notification.subject.as_deref(), Some("Sale"));
    let f = fetched.unwrap();
    assert_eq!((f.content_type.as_str(), f.body), ("image/png", picture()));
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("rcslab ums send ends")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "+15550002: delivered (mms)\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success());
    lab.shutdown().await;
}

/// `rcslab ue --user bob listen` prints the MMS once, as `FROM: [MMS] SUBJECT (TYPE, N bytes)
/// URL`, after fetching it.
#[tokio::test]
async fn listen_prints_the_mms_line_once_fetched() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let mut listen = crate::rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    let mut out = BufReader::new(listen.stdout.take().unwrap()).lines();
    eventually("bob to be known to the IP-SM-GW", || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered && u.smsip)
    })
    .await;
    eventually("the UMS to bind to the SMSC", || lab.ums.is_bound()).await;
    let tok = token(dir.path());
    let (_, url, msg) = send_picture(&lab, &tok, "Summer sale: 30% off today").await;
    let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("bob prints it")
        .unwrap()
        .unwrap();
    assert_eq!(
        line,
        format!(
            "tel:4100: [MMS] Summer sale: 30% off today (image/png, 300 bytes) {url}?m={msg}&i=0"
        )
    );
    assert_eq!(
        final_recipient(&lab, &tok, &msg).await["status"],
        "delivered"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), out.next_line())
            .await
            .is_err(),
        "bob printed more"
    );
    let _ = listen.kill().await;
    lab.shutdown().await;
}
