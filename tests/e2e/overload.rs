//! Overload control and transport bounds (issue 12): a node past its transaction budget
//! answers 503 with Retry-After at once while in-dialog traffic keeps flowing; one source
//! cannot hold more than its share at the P-CSCF; TCP connections are capped and closed when
//! idle or when a message never completes; a message too large to take gets 513 and does not
//! cost other users the connection they share.

use std::time::Duration;

use rcslab::sip::{ClientTx, Method, Request, Response};
use rcslab::ue::{audio_sdp, uas_response, AuthMode, Ue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::{lab_with, ue};

/// Bob's phone rings for every INVITE and never answers; a CANCEL gets 200 and the INVITE 487.
fn ring_forever(mut bob: Ue) -> tokio::task::JoinHandle<()> {
    let contact = bob.contact();
    tokio::spawn(async move {
        let mut ringing = Vec::new();
        while let Some(inc) = bob.next_request(Duration::from_secs(30)).await {
            match inc.request.method {
                Method::Invite => {
                    inc.tx
                        .respond(uas_response(&inc.request, 180, "ring", &contact, None));
                    ringing.push(inc);
                }
                Method::Cancel => {
                    inc.tx.respond(inc.request.response(200, None));
                    let cid = inc.request.headers.get("Call-ID").map(str::to_string);
                    ringing.retain(|r| {
                        if r.request.headers.get("Call-ID").map(str::to_string) == cid {
                            r.tx.respond(uas_response(&r.request, 487, "ring", &contact, None));
                            false
                        } else {
                            true
                        }
                    });
                }
                Method::Ack => {}
                _ => inc.tx.respond(inc.request.response(200, None)),
            }
        }
    })
}

/// Starts a call from `ue` to bob and waits for its 180 (or its final answer).
async fn ring(ue: &mut Ue) -> (Request, ClientTx, Response) {
    let inv = ue.build_invite("sip:bob@ims.lab", &audio_sdp(4000));
    let mut tx = ue.send_tx(inv.clone());
    loop {
        let r = tx.next().await.expect("an answer");
        if r.status >= 180 {
            return (inv, tx, r);
        }
    }
}

#[tokio::test]
async fn past_the_budget_new_calls_get_503_with_retry_after_and_calls_in_progress_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // Each ringing call holds two server transactions at the P-CSCF (caller's leg and
    // callee's leg): a budget of 10 takes 5 ringing calls.
    let lab = lab_with(
        dir.path(),
        "default_ifc = []\n[sip]\nmax_transactions = 10\nmax_transactions_per_source = 0\nretry_after_secs = 7\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut carol = ue(&lab, "carol", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    carol.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    // A call carol and bob set up before the flood (bob answers the first INVITE).
    let bob_contact = bob.contact();
    let first = tokio::spawn(async move {
        let inv = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("INVITE");
        inv.tx.respond(uas_response(
            &inv.request,
            200,
            "talk",
            &bob_contact,
            Some(&audio_sdp(5000)),
        ));
        bob
    });
    let (ok, dialog) = carol.invite("sip:bob@ims.lab", &audio_sdp(4002)).await;
    assert_eq!(ok.status, 200);
    let mut dialog = dialog.unwrap();
    let bob = first.await.unwrap();
    let bob_task = ring_forever(bob);

    let mut calls = Vec::new();
    for i in 0..5 {
        let (inv, tx, r) = ring(&mut alice).await;
        assert_eq!(r.status, 180, "call {i} rings: {r:?}");
        calls.push((inv, tx));
    }
    // The budget is full: the next out-of-dialog request is refused at once by the P-CSCF.
    let t0 = std::time::Instant::now();
    let (_, _, r) = ring(&mut alice).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.headers.get("Retry-After"), Some("7"));
    assert!(
        r.headers
            .get("Warning")
            .is_some_and(|w| w.contains("P-CSCF") && w.contains("overloaded")),
        "{r:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "at once: {:?}",
        t0.elapsed()
    );
    let shed: u64 = lab.sip_load().iter().map(|(_, l)| l.shed).sum();
    assert!(shed >= 1);
    // In-dialog requests go on: the established call's BYE and the CANCELs of the ringing
    // calls get through the full node.
    let bye = carol.bye(&mut dialog).await;
    assert_eq!(bye.status, 200, "BYE in a full node: {bye:?}");
    for (inv, tx) in calls {
        let c = alice.cancel(&inv).await;
        assert_eq!(c.status, 200, "CANCEL in a full node");
        assert_eq!(tx.final_response().await.status, 487);
    }
    // The budget frees up: calls get through again.
    crate::eventually("the P-CSCF's transactions are freed", || {
        lab.sip_load().iter().all(|(_, l)| l.admitted == 0)
    })
    .await;
    let (inv, tx, r) = ring(&mut alice).await;
    assert_eq!(r.status, 180, "{r:?}");
    alice.cancel(&inv).await;
    assert_eq!(tx.final_response().await.status, 487);
    bob_task.abort();
    lab.shutdown().await;
}

/// A full node refuses a burst of new requests at its socket, before parsing them: every one
/// gets its 503 with Retry-After (none is dropped silently), each answer matches its request
/// (Call-ID, CSeq, the Via with `received` and `rport` filled in), and in-dialog requests still
/// reach the node.
#[tokio::test]
async fn a_burst_at_a_full_node_is_refused_at_the_socket_with_503_for_every_request() {
    let dir = tempfile::tempdir().unwrap();
    // One ringing call holds both of the P-CSCF's transactions.
    let lab = lab_with(
        dir.path(),
        "default_ifc = []\n[sip]\nmax_transactions = 2\nmax_transactions_per_source = 0\nretry_after_secs = 3\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    let bob_task = ring_forever(bob);
    let (inv, tx, r) = ring(&mut alice).await;
    assert_eq!(r.status, 180, "{r:?}");
    let before: u64 = lab
        .sip_load()
        .iter()
        .map(|(_, l)| l.transport.shed_at_socket)
        .sum();

    let s = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let me = s.local_addr().unwrap();
    const N: usize = 200;
    // Read while sending: 200 answers left unread would overflow the socket's buffer.
    let rx = s.clone();
    let reader = tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let mut buf = vec![0u8; 65536];
        while seen.len() < N {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("only {} of {N} answered", seen.len()))
                .unwrap();
            let Ok(rcslab::sip::SipMessage::Response(r)) =
                rcslab::sip::SipMessage::parse(&buf[..n])
            else {
                panic!("not a response")
            };
            assert_eq!(r.status, 503, "{r:?}");
            assert_eq!(r.headers.get("Retry-After"), Some("3"));
            let cid = r.headers.get("Call-ID").unwrap().to_string();
            let i: usize = cid["burst-".len()..cid.len() - 2].parse().unwrap();
            assert_eq!(r.headers.get("CSeq"), Some(format!("{i} MESSAGE").as_str()));
            let via = rcslab::sip::Via::parse(r.headers.first_value("Via").unwrap()).unwrap();
            assert_eq!(via.received(), Some("127.0.0.1"), "{via}");
            assert_eq!(via.rport(), Some(Some(me.port())), "{via}");
            assert!(seen.insert(i), "one answer per request");
        }
    });
    for i in 0..N {
        let m = format!(
            "MESSAGE sip:bob@ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKb{i}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@ims.lab>;tag=f{i}\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: burst-{i}@x\r\nCSeq: {i} MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
        s.send_to(m.as_bytes(), lab.addrs.pcscf).await.unwrap();
        if i % 20 == 19 {
            // Bursts of 20: the node's socket buffer is the kernel's, not ours, to overflow.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    reader.await.unwrap();
    let after: u64 = lab
        .sip_load()
        .iter()
        .map(|(_, l)| l.transport.shed_at_socket)
        .sum();
    assert_eq!(after - before, N as u64, "refused at the socket");
    // In dialog: the ringing call is cancelled through the full node.
    assert_eq!(alice.cancel(&inv).await.status, 200);
    assert_eq!(tx.final_response().await.status, 487);
    bob_task.abort();
    lab.shutdown().await;
}

/// Completed UDP transactions (kept 32 s for Timer J to answer retransmissions) are capped per
/// node, oldest first; a retransmission of a recent request still gets the same answer.
#[tokio::test]
async fn completed_udp_transactions_are_capped_and_still_answer_retransmissions() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n[sip]\nmax_completed = 100\n").await;
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let reg = |i: usize| {
        format!(
            "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKcap{i}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@ims.lab>;tag={i}\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: cap-{i}@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut buf = vec![0u8; 65536];
    let mut first_answer = Vec::new();
    for i in 0..300 {
        s.send_to(reg(i).as_bytes(), lab.addrs.pcscf).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            buf.starts_with(b"SIP/2.0 401 "),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        if i == 299 {
            first_answer = buf[..n].to_vec();
        }
    }
    let pcscf = lab
        .sip_stats()
        .into_iter()
        .find(|(name, _)| *name == "P-CSCF")
        .unwrap()
        .1;
    assert!(
        pcscf.completed_server_transactions <= 100,
        "capped: {pcscf:?}"
    );
    assert!(pcscf.completed_server_transactions >= 50, "{pcscf:?}");
    // The newest is still there: its retransmission gets the very same 401 (same nonce).
    s.send_to(reg(299).as_bytes(), lab.addrs.pcscf)
        .await
        .unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("the answer again")
        .unwrap();
    assert_eq!(&buf[..n], &first_answer[..]);
    lab.shutdown().await;
}

#[tokio::test]
async fn one_source_cannot_hold_more_than_its_share_at_the_p_cscf() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "default_ifc = []\n[sip]\nmax_transactions = 100\nmax_transactions_per_source = 3\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut carol = ue(&lab, "carol", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    carol.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    let bob_task = ring_forever(bob);
    let mut calls = Vec::new();
    for _ in 0..3 {
        let (inv, tx, r) = ring(&mut alice).await;
        assert_eq!(r.status, 180);
        calls.push((inv, tx));
    }
    let (_, _, r) = ring(&mut alice).await;
    assert_eq!(r.status, 503, "alice's fourth call: {r:?}");
    assert!(
        r.headers
            .get("Warning")
            .is_some_and(|w| w.contains("from this source")),
        "{r:?}"
    );
    // Another user is not starved (the legs towards bob come from the S-CSCF, a trusted node
    // the per-source limit does not count).
    let (inv, tx, r) = ring(&mut carol).await;
    assert_eq!(r.status, 180, "carol still gets through: {r:?}");
    calls.push((inv.clone(), tx));
    for (inv, tx) in calls {
        let c = if inv.headers.get("From").is_some_and(|f| f.contains("carol")) {
            carol.cancel(&inv).await
        } else {
            alice.cancel(&inv).await
        };
        assert_eq!(c.status, 200);
        assert_eq!(tx.final_response().await.status, 487);
    }
    bob_task.abort();
    lab.shutdown().await;
}

/// Reads whatever comes within `wait`; None when the peer closed the connection.
async fn read_some(s: &mut TcpStream, wait: Duration) -> Option<Option<String>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(n)) => Some(Some(String::from_utf8_lossy(&buf[..n]).to_string())),
        Err(_) => Some(None),
    }
}

#[tokio::test]
async fn idle_and_incomplete_tcp_connections_are_closed_and_the_cap_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[sip]\ntcp_idle_timeout_secs = 2\ntcp_message_timeout_ms = 700\nmax_tcp_connections = 8\n",
    )
    .await;
    let p = lab.addrs.pcscf;
    // A connection that never sends anything is closed once its first message is overdue.
    let mut silent = TcpStream::connect(p).await.unwrap();
    assert!(
        read_some(&mut silent, Duration::from_secs(3))
            .await
            .is_none(),
        "closed"
    );
    // A Content-Length longer than the body does not hold a connection.
    let mut partial = TcpStream::connect(p).await.unwrap();
    partial
        .write_all(b"OPTIONS sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKpart\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:ims.lab>\r\nCall-ID: part@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 500\r\n\r\nshort")
        .await
        .unwrap();
    assert!(
        read_some(&mut partial, Duration::from_secs(3))
            .await
            .is_none(),
        "closed"
    );
    // One that sent a whole message stays until it has been idle for 2 s.
    let mut idle = TcpStream::connect(p).await.unwrap();
    idle.write_all(b"\r\n\r\n").await.unwrap();
    idle.write_all(b"OPTIONS sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKidle\r\nMax-Forwards: 0\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:ims.lab>\r\nCall-ID: idle@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_some(&mut idle, Duration::from_secs(2)).await;
    assert!(
        matches!(&answer, Some(Some(a)) if a.starts_with("SIP/2.0 ")),
        "{answer:?}"
    );
    assert!(
        matches!(
            read_some(&mut idle, Duration::from_millis(1200)).await,
            Some(None)
        ),
        "still open before the idle timeout"
    );
    assert!(
        read_some(&mut idle, Duration::from_secs(3)).await.is_none(),
        "closed when idle"
    );
    // The cap: past 8 open connections, new ones are closed at once.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(p).await.unwrap();
        s.write_all(b"\r\n\r\n").await.unwrap();
        held.push(s);
    }
    let mut over = TcpStream::connect(p).await.unwrap();
    assert!(
        read_some(&mut over, Duration::from_secs(1)).await.is_none(),
        "refused"
    );
    let load = lab.sip_load();
    let pcscf = load.iter().find(|(n, _)| *n == "P-CSCF").unwrap().1;
    assert!(pcscf.transport.tcp_refused >= 1, "{pcscf:?}");
    assert!(pcscf.transport.tcp_timed_out >= 3, "{pcscf:?}");
    drop(held);
    // Room again once they are gone.
    crate::eventually("connections released", || {
        let load = lab.sip_load();
        load.iter()
            .find(|(n, _)| *n == "P-CSCF")
            .unwrap()
            .1
            .transport
            .tcp_connections
            < 8
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test]
async fn an_oversized_message_gets_513_and_the_shared_mw_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let icscf_conns = |lab: &rcslab::Lab| {
        lab.sip_load()
            .iter()
            .find(|(n, _)| *n == "I-CSCF")
            .unwrap()
            .1
            .transport
            .tcp_connections
    };
    let before = icscf_conns(&lab);
    // A REGISTER of almost 64 KB over UDP: it would outgrow 64 KB at the next hop.
    let pad = "x".repeat(64_000);
    let big = format!(
        "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKbig\r\nMax-Forwards: 70\r\nFrom: <sip:bob@ims.lab>;tag=1\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: big@x\r\nCSeq: 1 REGISTER\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n"
    );
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..5 {
        s.send_to(big.as_bytes(), lab.addrs.pcscf).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let r = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(r.starts_with("SIP/2.0 513 Message Too Large"), "{r}");
    }
    // Over TCP, a message larger than 64 KB is skipped and the same connection goes on.
    let mut tcp = TcpStream::connect(lab.addrs.pcscf).await.unwrap();
    let huge = big
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("X-Pad: ", "Content-Type: text/plain\r\nX-Pad: ")
        .replace("Content-Length: 0\r\n\r\n", "Content-Length: 70000\r\n\r\n")
        + &"y".repeat(70_000);
    tcp.write_all(huge.as_bytes()).await.unwrap();
    let r = read_some(&mut tcp, Duration::from_secs(2))
        .await
        .flatten()
        .unwrap_or_default();
    assert!(r.starts_with("SIP/2.0 513"), "{r}");
    tcp.write_all(b"OPTIONS sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKafter\r\nMax-Forwards: 0\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:ims.lab>\r\nCall-ID: after@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let r = read_some(&mut tcp, Duration::from_secs(2))
        .await
        .flatten()
        .unwrap_or_default();
    assert!(
        r.starts_with("SIP/2.0 ") && r.contains("z9hG4bKafter"),
        "the connection still works: {r}"
    );
    // Other users are unaffected: 50 registrations, none fails, over the same Mw connection.
    for _ in 0..50 {
        alice.register(600).await.expect("registers");
    }
    assert_eq!(
        icscf_conns(&lab),
        before,
        "the P-CSCF -> I-CSCF connection was kept"
    );
    lab.shutdown().await;
}

/// Tables keyed by what the network sends stay bounded: REGISTERs that never answer their
/// challenge keep at most 8 nonces per private identity; reg-event subscriptions are capped
/// per identity (503 past it) and forgotten when they expire.
#[tokio::test]
async fn unanswered_challenges_and_reg_event_subscriptions_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "default_ifc = []\n[registrar]\nmin_expires = 1\n",
    )
    .await;
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..30 {
        let reg = format!(
            "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKn{i}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@ims.lab>;tag={i}\r\nTo: <sip:alice@ims.lab>\r\nCall-ID: nonce-{i}@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
        );
        s.send_to(reg.as_bytes(), lab.addrs.pcscf).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), s.recv_from(&mut buf))
            .await
            .expect("a 401")
            .unwrap();
        assert!(
            buf[..n].starts_with(b"SIP/2.0 401"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let t = lab.scscf.table_sizes();
    assert!(t.challenges <= 8, "{t:?}");

    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    for i in 0..16 {
        let (r, _) = alice.subscribe_reg(2).await;
        assert_eq!(r.status, 200, "subscription {i}");
    }
    let (r, _) = alice.subscribe_reg(2).await;
    assert_eq!(r.status, 503, "the 17th: {r:?}");
    assert!(r.headers.get("Retry-After").is_some());
    assert_eq!(lab.scscf.table_sizes().reg_subscriptions, 16);
    // Not refreshed: gone once they expire.
    crate::eventually("expired subscriptions forgotten", || {
        lab.scscf.table_sizes().reg_subscriptions == 0
    })
    .await;
    lab.shutdown().await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A REGISTER flood from 8 sources, sent as fast as the sockets take it (20,000 requests, each
/// costing UAR and MAR when admitted): every answer is a 401 or a 503, memory stays bounded,
/// and a normal registration works right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_flood_gets_401_or_503_memory_stays_bounded_and_service_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let before = rss_kib();
    let pcscf = lab.addrs.pcscf;
    let mut tasks = Vec::new();
    for src in 0..8 {
        tasks.push(tokio::spawn(async move {
            let s = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            let rx = s.clone();
            let reader = tokio::spawn(async move {
                let (mut ok401, mut busy, mut other) = (0u32, 0u32, Vec::new());
                let mut buf = vec![0u8; 65536];
                while let Ok(Ok((n, _))) =
                    tokio::time::timeout(Duration::from_secs(5), rx.recv_from(&mut buf)).await
                {
                    match &buf[..12.min(n)] {
                        b"SIP/2.0 401 " => ok401 += 1,
                        b"SIP/2.0 503 " => busy += 1,
                        b"SIP/2.0 100 " => {}
                        x => other.push(String::from_utf8_lossy(x).to_string()),
                    }
                }
                (ok401, busy, other)
            });
            for i in 0..2500 {
                let reg = format!(
                    "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKf{src}x{i}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@ims.lab>;tag={i}\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: flood-{src}-{i}@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.send_to(reg.as_bytes(), pcscf).await;
            }
            reader.await.unwrap()
        }));
    }
    let (mut ok401, mut busy) = (0, 0);
    for t in tasks {
        let (a, b, other) = t.await.unwrap();
        assert!(other.is_empty(), "only 401 or 503: {other:?}");
        ok401 += a;
        busy += b;
    }
    let grew = rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "flood: {ok401} x 401, {busy} x 503 of 20000, RSS +{grew} MiB; {:?}",
        lab.sip_load()
    );
    assert!(ok401 + busy > 0, "answered");
    assert!(grew < 256, "RSS grew by {grew} MiB");
    // Service right after (the flood's answers have all been read).
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice
        .register(600)
        .await
        .expect("registers after the flood");
    let t = lab.scscf.table_sizes();
    assert!(t.challenges <= 8 + 1, "{t:?}");
    lab.shutdown().await;
}

/// A flood of 60 KB datagrams (each just under the size that gets 513): the inbound queue is
/// bounded in bytes as well as in count, so memory stays bounded and service resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_60_kb_datagrams_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[trace]\nmax_bytes = 16777216\n").await;
    let before = rss_kib();
    let pad = "x".repeat(60_000);
    let mut tasks = Vec::new();
    for src in 0..4 {
        let (pcscf, pad) = (lab.addrs.pcscf, pad.clone());
        tasks.push(tokio::spawn(async move {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            for i in 0..1000 {
                let m = format!(
                    "OPTIONS sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb{src}x{i}\r\nMax-Forwards: 0\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:ims.lab>\r\nCall-ID: big-{src}-{i}@x\r\nCSeq: 1 OPTIONS\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.send_to(m.as_bytes(), pcscf).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grew = rss_kib().saturating_sub(before) / 1024;
    eprintln!("60 KB flood: RSS +{grew} MiB, {:?}", lab.sip_load()[0]);
    assert!(grew < 200, "RSS grew by {grew} MiB");
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice
        .register(600)
        .await
        .expect("registers after the flood");
    lab.shutdown().await;
}
