//! Calls through the IMS core (RFC 3261 dialogs over TS 24.229 routing): INVITE / 180 / 200 /
//! ACK, re-INVITE, BYE, and CANCEL before the answer. The SDP passes through untouched.

use std::time::Duration;

use rcslab::sip::Method;
use rcslab::ue::{audio_sdp, uas_response, AuthMode};
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

/// The ladder without 100 Trying (each hop sends its own, racing the forwarded INVITE).
fn no_trying(lab: &rcslab::Lab) -> Vec<String> {
    flow(lab)
        .into_iter()
        .filter(|l| !l.ends_with(" 100"))
        .collect()
}

fn hops(method: &str, path: &[&str]) -> Vec<String> {
    path.windows(2)
        .map(|w| format!("{} -> {} SIP {method}", w[0], w[1]))
        .collect()
}

#[tokio::test]
async fn call_setup_reinvite_and_teardown_follow_the_record_route() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    lab.trace.clear();
    let bob_contact = bob.contact();
    let callee = tokio::spawn(async move {
        let wait = Duration::from_secs(5);
        let inv = bob.next_request(wait).await.expect("INVITE");
        assert_eq!(inv.request.method, Method::Invite);
        assert_eq!(
            &inv.request.body[..],
            audio_sdp(4000).as_bytes(),
            "SDP untouched"
        );
        inv.tx
            .respond(uas_response(&inv.request, 180, "b1", &bob_contact, None));
        // Let the 180 reach alice before answering, so the ladder reads message by message.
        tokio::time::sleep(Duration::from_millis(200)).await;
        inv.tx.respond(uas_response(
            &inv.request,
            200,
            "b1",
            &bob_contact,
            Some(&audio_sdp(5000)),
        ));
        let ack = bob.next_request(wait).await.expect("ACK");
        assert_eq!(ack.request.method, Method::Ack);
        let re = bob.next_request(wait).await.expect("re-INVITE");
        assert_eq!(re.request.method, Method::Invite);
        re.tx.respond(uas_response(
            &re.request,
            200,
            "b1",
            &bob_contact,
            Some(&audio_sdp(5002)),
        ));
        let ack2 = bob.next_request(wait).await.expect("ACK of re-INVITE");
        assert_eq!(ack2.request.method, Method::Ack);
        let bye = bob.next_request(wait).await.expect("BYE");
        assert_eq!(bye.request.method, Method::Bye);
        bye.tx
            .respond(uas_response(&bye.request, 200, "b1", &bob_contact, None));
        bob
    });
    let (resp, dialog) = alice.invite("sip:bob@ims.lab", &audio_sdp(4000)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        &resp.body[..],
        audio_sdp(5000).as_bytes(),
        "answer SDP untouched"
    );
    let mut d = dialog.expect("dialog");
    // RFC 5658 double Record-Route at each P-CSCF: the UEs use UDP, the core TCP, so each
    // P-CSCF records one entry per side; the UE-facing one has the UE's transport.
    let p = lab.addrs.pcscf;
    let s = lab.addrs.scscf;
    assert_eq!(
        d.route_set,
        [
            format!("<sip:{p};lr>"),
            format!("<sip:{p};transport=tcp;lr>"),
            format!("<sip:orig@{s};transport=tcp;lr>"),
            format!("<sip:term@{s};transport=tcp;lr>"),
            format!("<sip:{p};transport=tcp;lr>"),
            format!("<sip:{p};lr>"),
        ],
        "P-CSCF (UE side, core side), S-CSCF orig, S-CSCF term, P-CSCF (core side, UE side)"
    );
    // Pauses let each ACK reach bob before the next request (the ACK has no response to wait for).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let re = alice.reinvite(&mut d, &audio_sdp(4002)).await;
    assert_eq!(re.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bye = alice.bye(&mut d).await;
    assert_eq!(bye.status, 200);
    let _bob = callee.await.unwrap();

    let initial = ["UE alice", "P-CSCF", "S-CSCF", "I-CSCF"];
    let mut expected = hops("INVITE", &initial);
    expected.push("I-CSCF -> HSS Diameter LIR".into());
    expected.push("HSS -> I-CSCF Diameter LIA".into());
    expected.extend(hops("INVITE", &["I-CSCF", "S-CSCF", "P-CSCF", "UE bob"]));
    let back = [
        "UE bob", "P-CSCF", "S-CSCF", "I-CSCF", "S-CSCF", "P-CSCF", "UE alice",
    ];
    expected.extend(hops("180", &back));
    expected.extend(hops("200", &back));
    // In-dialog requests follow the route set: the I-CSCF did not record-route.
    let there = ["UE alice", "P-CSCF", "S-CSCF", "P-CSCF", "UE bob"];
    let back_in_dialog = ["UE bob", "P-CSCF", "S-CSCF", "P-CSCF", "UE alice"];
    expected.extend(hops("ACK", &there));
    expected.extend(hops("INVITE", &there));
    expected.extend(hops("200", &back_in_dialog));
    expected.extend(hops("ACK", &there));
    expected.extend(hops("BYE", &there));
    expected.extend(hops("200", &back_in_dialog));
    assert_eq!(no_trying(&lab), expected);
    // Every hop answered the INVITE with its own 100 Trying.
    let tryings = flow(&lab).iter().filter(|l| l.ends_with(" 100")).count();
    assert!(
        tryings >= 7,
        "100 Trying from each hop of both INVITEs: {tryings}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn cancel_before_answer_ends_in_487_at_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    lab.trace.clear();
    let bob_contact = bob.contact();
    let callee = tokio::spawn(async move {
        let wait = Duration::from_secs(5);
        let inv = bob.next_request(wait).await.expect("INVITE");
        inv.tx
            .respond(uas_response(&inv.request, 180, "b2", &bob_contact, None));
        let cancel = bob.next_request(wait).await.expect("CANCEL");
        assert_eq!(cancel.request.method, Method::Cancel);
        cancel.tx.respond(cancel.request.response(200, None));
        inv.tx
            .respond(uas_response(&inv.request, 487, "b2", &bob_contact, None));
        // Keep the UE alive while its transaction ACKs settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        bob
    });
    let invite = alice.build_invite("sip:bob@ims.lab", &audio_sdp(4000));
    let mut tx = alice.send_tx(invite.clone());
    loop {
        let r = tx.next().await.expect("a response");
        if r.status == 180 {
            break;
        }
    }
    let c = alice.cancel(&invite).await;
    assert_eq!(c.status, 200, "CANCEL answered by the P-CSCF");
    let fin = tx.final_response().await;
    assert_eq!(fin.status, 487, "{fin:?}");
    let _bob = callee.await.unwrap();
    let f = no_trying(&lab);
    for hop in hops(
        "CANCEL",
        &[
            "UE alice", "P-CSCF", "S-CSCF", "I-CSCF", "S-CSCF", "P-CSCF", "UE bob",
        ],
    ) {
        assert!(f.contains(&hop), "missing {hop}: {f:#?}");
    }
    for hop in hops(
        "487",
        &[
            "UE bob", "P-CSCF", "S-CSCF", "I-CSCF", "S-CSCF", "P-CSCF", "UE alice",
        ],
    ) {
        assert!(f.contains(&hop), "missing {hop}: {f:#?}");
    }
    // Each hop ACKs the 487 it received (RFC 3261 §17.1.1.3).
    for hop in hops(
        "ACK",
        &[
            "UE alice", "P-CSCF", "S-CSCF", "I-CSCF", "S-CSCF", "P-CSCF", "UE bob",
        ],
    ) {
        assert!(f.contains(&hop), "missing {hop}: {f:#?}");
    }
    lab.shutdown().await;
}

/// Timer C (RFC 3261 §16.6 step 11, §16.8): the callee rings, then goes silent (it answers
/// nothing more, not even the CANCEL). The hop next to it CANCELs its branch when Timer C
/// fires, the caller gets 408, and every node's transactions and forwarded INVITEs are freed.
#[tokio::test]
async fn timer_c_a_callee_that_rings_then_goes_silent_gets_408_and_every_hop_frees_its_state() {
    let dir = tempfile::tempdir().unwrap();
    // Short timers: Timer C 1.5 s, 64*T1 = 3.2 s for the CANCEL that gets no answer.
    let lab = lab_with(
        dir.path(),
        "default_ifc = []\n[sip]\ntimer_c_ms = 1500\nt1_ms = 50\nt2_ms = 400\nt4_ms = 500\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let (stop_bob, bob_shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &bob_shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    lab.trace.clear();
    let bob_contact = bob.contact();
    let callee = tokio::spawn(async move {
        let inv = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("INVITE");
        inv.tx
            .respond(uas_response(&inv.request, 180, "b3", &bob_contact, None));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Silent from now on: its sockets stop reading; the INVITE's transaction is kept
        // (dropping it would answer 500).
        let _ = stop_bob.send(true);
        (bob, inv)
    });
    let t0 = std::time::Instant::now();
    let (resp, dialog) = alice.invite("sip:bob@ims.lab", &audio_sdp(4000)).await;
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(dialog.is_none());
    assert!(
        resp.headers
            .get("Reason")
            .is_some_and(|r| r.contains("Timer C")),
        "the 408 says why: {resp:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let _held = callee.await.unwrap();
    let f = no_trying(&lab);
    assert!(
        f.contains(&"P-CSCF -> UE bob SIP CANCEL".to_string()),
        "the hop next to the callee CANCELs: {f:#?}"
    );
    for hop in hops(
        "408",
        &["P-CSCF", "S-CSCF", "I-CSCF", "S-CSCF", "P-CSCF", "UE alice"],
    ) {
        assert!(f.contains(&hop), "missing {hop}: {f:#?}");
    }
    // Every hop frees its state: the abandoned INVITE and its CANCEL end 64*T1 later.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let busy: Vec<_> = lab
            .sip_stats()
            .into_iter()
            .filter(|(_, s)| *s != Default::default())
            .collect();
        if busy.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "state left behind: {busy:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.shutdown().await;
}
