//! Bad input gets a clear answer, never a panic or a hang.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::lab_with;

async fn exchange(to: SocketAddr, msg: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(1500), s.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).to_string()),
        _ => None,
    }
}

fn register(extra: &str) -> String {
    format!(
        "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-err-{}\r\n\
         From: <sip:alice@ims.lab>;tag=1\r\nTo: <sip:alice@ims.lab>\r\nCall-ID: err@x\r\n\
         CSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n",
        rand_tag()
    )
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn max_forwards_zero_gets_483() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // rport makes the answer come back to our socket rather than to port 9.
    let msg = register("Max-Forwards: 0\r\n").replace("branch=", "rport;branch=");
    let r = exchange(lab.addrs.pcscf, &msg).await.expect("an answer");
    assert!(r.starts_with("SIP/2.0 483 Too Many Hops"), "{r}");
    lab.shutdown().await;
}

#[tokio::test]
async fn malformed_sip_gets_400_and_garbage_is_dropped_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let bad = register("Max-Forwards: 70\r\n")
        .replace("branch=", "rport;branch=")
        .replace("Content-Length: 0", "Content-Length: 999");
    let r = exchange(lab.addrs.pcscf, &bad).await.expect("a 400");
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    for junk in [
        "",
        "\u{0}\u{1}\u{2}",
        "INVITE\r\n\r\n",
        "SIP/2.0 200\r\n\r\n",
    ] {
        assert!(
            exchange(lab.addrs.pcscf, junk).await.is_none(),
            "no answer to {junk:?}"
        );
    }
    // Still serving.
    let ok = register("Max-Forwards: 0\r\n").replace("branch=", "rport;branch=");
    assert!(exchange(lab.addrs.pcscf, &ok).await.is_some());
    lab.shutdown().await;
}

/// RFC 3261 §8.2.2 / §16.3: a request missing Call-ID, CSeq or Via still gets a 400 (by its
/// Via, or to where it came from), with a To tag; over TCP the connection stays up.
#[tokio::test]
async fn requests_missing_call_id_cseq_or_via_get_400_over_udp_and_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let full = register("Max-Forwards: 70\r\n").replace("branch=", "rport;branch=");
    let without = |h: &str| -> String {
        full.split_inclusive("\r\n")
            .filter(|l| !l.starts_with(h))
            .collect()
    };
    for gone in ["Call-ID:", "CSeq:", "Via:"] {
        let r = exchange(lab.addrs.pcscf, &without(gone))
            .await
            .unwrap_or_else(|| panic!("no answer over UDP without {gone}"));
        assert!(r.starts_with("SIP/2.0 400"), "without {gone}: {r}");
        assert!(
            r.contains(&format!("missing {}", gone.trim_end_matches(':'))),
            "{r}"
        );
        let to = r.lines().find(|l| l.starts_with("To:")).unwrap_or("");
        assert!(to.contains("tag="), "a To tag without {gone}: {r}");
    }
    let mut tcp = tokio::net::TcpStream::connect(lab.addrs.pcscf)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    for gone in ["Call-ID:", "CSeq:", "Via:"] {
        let msg = without(gone).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        tcp.write_all(msg.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer over TCP without {gone}"))
            .unwrap();
        let r = String::from_utf8_lossy(&buf[..n]);
        assert!(r.starts_with("SIP/2.0 400"), "TCP without {gone}: {r}");
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn diameter_request_missing_a_mandatory_avp_gets_5005() {
    use rcslab::diameter::codec::{Avp, Message};
    use rcslab::diameter::cx;
    use rcslab::diameter::peer::{LocalPeer, Peer};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), crate::PROBE_PEER).await;
    let local = LocalPeer {
        origin_host: "probe.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        host_ip: "127.0.0.1".parse().unwrap(),
        product_name: "probe".into(),
        watchdog_interval: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
    };
    let peer = Peer::connect(
        lab.addrs.hss,
        local,
        std::sync::Arc::new(rcslab::cscf::scscf::CxClientHandler),
        lab.trace.clone(),
    )
    .await
    .expect("CER/CEA with the HSS");
    // A UAR without Public-Identity (TS 29.229 §6.1.1 makes it mandatory).
    let mut uar = Message::request(cx::CMD_USER_AUTHORIZATION, cx::APP_ID_CX);
    uar.push(Avp::utf8(263, None, true, "probe.ims.lab;1;1"));
    uar.push(Avp::u32(277, None, true, 1));
    uar.push(Avp::utf8(283, None, true, "ims.lab"));
    uar.push(Avp::utf8(1, None, true, "alice@ims.lab"));
    let ans = peer.request(uar).await.expect("an answer");
    assert_eq!(ans.result_code(), Some(5005));
    let failed = ans.avp(279, None).expect("Failed-AVP");
    let inner = failed.as_grouped().unwrap();
    assert_eq!(inner[0].code, 601, "Failed-AVP names Public-Identity");
    lab.shutdown().await;
}

/// A BYE (or any in-dialog request) reaching T-IM for a dialog it no longer holds — a chat
/// that fell back to pager mode, one already closed — gets 481 at once. T-IM used to send it
/// "on" to its own Request-URI, to itself, until Max-Forwards ran out (66 hops; seen with
/// JsSIP refusing the chat INVITE).
#[tokio::test]
async fn a_bye_for_a_dialog_tim_does_not_hold_gets_481_not_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    lab.trace.clear();
    let tim = lab.addrs.tim;
    let msg = format!(
        "BYE sip:{tim} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK-bye-{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@ims.lab>;tag=a1\r\nTo: <sip:bob@ims.lab>;tag=b1\r\n\
         Call-ID: gone-{}@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        rand_tag(),
        rand_tag()
    );
    let r = exchange(tim, &msg).await.expect("an answer");
    assert!(
        r.starts_with("SIP/2.0 481 Call/Transaction Does Not Exist"),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let looped = crate::flow(&lab)
        .iter()
        .filter(|l| l.starts_with("T-IM -> T-IM"))
        .count();
    assert_eq!(looped, 0, "{:#?}", crate::flow(&lab));
    lab.shutdown().await;
}
