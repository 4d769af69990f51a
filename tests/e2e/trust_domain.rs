//! The P-CSCF is the edge of the trust domain (TS 24.229 §4.4, §5.2): what comes from outside
//! the core and from no registered UE's flow does not reach anyone, and nothing is relayed to
//! the rest of the world.

use std::net::SocketAddr;
use std::time::Duration;

use rcslab::ue::AuthMode;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::{lab_with, lab_with_reg_sub, ue};

/// Sends `msg` from a fresh socket and returns the first final answer (None: no answer).
async fn send(to: SocketAddr, msg: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let msg = msg.replace("{me}", &s.local_addr().unwrap().to_string());
    s.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), s.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if text.starts_with("SIP/2.0 1") {
                    continue;
                }
                return Some(text);
            }
            _ => return None,
        }
    }
}

fn status(answer: &Option<String>) -> u16 {
    answer
        .as_deref()
        .and_then(|a| a.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reg_event_notify_is_refused_and_alice_stays_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with_reg_sub(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    crate::eventually("the P-CSCF's reg subscription", || {
        lab.pcscf.binding("sip:alice@ims.lab").is_some()
    })
    .await;
    let body = "<?xml version=\"1.0\"?>\r\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"1\" state=\"partial\">\
        <registration aor=\"sip:alice@ims.lab\" id=\"a\" state=\"terminated\">\
        <contact id=\"c\" state=\"terminated\" event=\"deactivated\"><uri>sip:alice@x</uri></contact>\
        </registration></reginfo>";
    let p = lab.addrs.pcscf;
    let notify = format!(
        "NOTIFY sip:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bKforged1\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@ims.lab>;tag=s1\r\nTo: <sip:pcscf.ims.lab>;tag=p1\r\nCall-ID: forged-notify@x\r\n\
         CSeq: 2 NOTIFY\r\nEvent: reg\r\nSubscription-State: active;expires=600\r\n\
         Content-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let a = send(p, &notify).await;
    assert_eq!(status(&a), 481, "{a:?}");
    assert!(
        lab.pcscf.binding("sip:alice@ims.lab").is_some(),
        "alice's binding is still there"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_reach_no_ue_with_a_forged_identity_and_nothing_is_relayed_out() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let p = lab.addrs.pcscf;
    let contact = format!("sip:alice@{}", alice.local_addr());
    lab.trace.clear();

    // Route to the P-CSCF's terminating entry, an asserted identity of the sender's making.
    let forged = format!(
        "MESSAGE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bKforged2\r\nMax-Forwards: 70\r\n\
         Route: <sip:term@{p};lr>\r\nFrom: <sip:bob@ims.lab>;tag=f1\r\nTo: <sip:alice@ims.lab>\r\n\
         Call-ID: forged-pai@x\r\nCSeq: 1 MESSAGE\r\nP-Asserted-Identity: <sip:bob@ims.lab>\r\n\
         Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
    let a = send(p, &forged).await;
    assert_eq!(status(&a), 403, "{a:?}");

    // A listener outside the network, and requests that try to reach it through the P-CSCF.
    let outside = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let o = outside.local_addr().unwrap();
    let in_dialog = format!(
        "MESSAGE sip:x@{o} SIP/2.0\r\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bKrelay1\r\nMax-Forwards: 70\r\n\
         Route: <sip:{o};lr>\r\nFrom: <sip:a@ims.lab>;tag=r1\r\nTo: <sip:x@elsewhere>;tag=r2\r\n\
         Call-ID: relay@x\r\nCSeq: 5 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    let a = send(p, &in_dialog).await;
    assert_eq!(status(&a), 403, "{a:?}");
    let ack = format!(
        "ACK sip:x@{o} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKrelay2\r\nMax-Forwards: 70\r\n\
         Route: <sip:{o};lr>\r\nFrom: <sip:a@ims.lab>;tag=r1\r\nTo: <sip:x@elsewhere>;tag=r2\r\n\
         Call-ID: relay-ack@x\r\nCSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = send(p, &ack).await;
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(Duration::from_millis(800), outside.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the P-CSCF relayed something out: {got:?}");

    // Alice got nothing from any of it.
    let to_alice: Vec<String> = crate::flow(&lab)
        .into_iter()
        .filter(|l| l.contains("-> UE alice"))
        .collect();
    assert!(to_alice.is_empty(), "{to_alice:?}");
    lab.shutdown().await;
}

/// What only the network may say, a UE cannot: its P-Asserted-Identity, P-Served-User and
/// charging headers are replaced or removed on the way in; bob sees alice as the P-CSCF
/// asserted her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ues_network_only_headers_do_not_enter_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();
    let send = alice.message_with(
        "sip:bob@ims.lab",
        "hi",
        &[
            ("P-Asserted-Identity", "<sip:carol@ims.lab>"),
            ("P-Served-User", "<sip:carol@ims.lab>;sescase=orig"),
            ("P-Charging-Vector", "icid-value=forged"),
        ],
    );
    let receive = async {
        let inc = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("the MESSAGE");
        let h = inc.request.headers.clone();
        inc.tx.respond(inc.request.response(200, None));
        h
    };
    let (r, h) = tokio::join!(send, receive);
    assert_eq!(r.status, 200, "{r:?}");
    let pai: Vec<&str> = h.values("P-Asserted-Identity");
    assert!(
        pai.iter().all(|v| !v.contains("carol")) && pai.iter().any(|v| v.contains("alice")),
        "{pai:?}"
    );
    assert!(!h
        .values("P-Served-User")
        .iter()
        .any(|v| v.contains("carol")));
    assert!(!h
        .values("P-Charging-Vector")
        .iter()
        .any(|v| v.contains("forged")));
    lab.shutdown().await;
}

/// The I-CSCF, the network's door for other networks, follows a Route only to nodes of the
/// network: no open relay there either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_i_cscf_relays_nothing_out() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let outside = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let o = outside.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:x@{o} SIP/2.0\r\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bKirelay1\r\nMax-Forwards: 70\r\n\
         Route: <sip:{o};lr>\r\nFrom: <sip:a@ims.lab>;tag=r1\r\nTo: <sip:x@elsewhere>;tag=r2\r\n\
         Call-ID: irelay@x\r\nCSeq: 5 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    let a = send(lab.addrs.icscf, &msg).await;
    assert_eq!(status(&a), 403, "{a:?}");
    let ack = format!(
        "ACK sip:x@{o} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKirelay2\r\nMax-Forwards: 70\r\n\
         Route: <sip:{o};lr>\r\nFrom: <sip:a@ims.lab>;tag=r1\r\nTo: <sip:x@elsewhere>;tag=r2\r\n\
         Call-ID: irelay-ack@x\r\nCSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = send(lab.addrs.icscf, &ack).await;
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(Duration::from_millis(800), outside.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the I-CSCF relayed something out: {got:?}");
    lab.shutdown().await;
}
