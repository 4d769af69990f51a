//! A user registered from several clients (RFC 3261 §10, §16.6-§16.7): the terminating
//! S-CSCF forks to every contact in parallel, relays the first answer and CANCELs the other
//! INVITE branches; a client that vanished without de-registering does not swallow traffic.

use std::time::Duration;

use rcslab::sip::Method;
use rcslab::ue::{audio_sdp, uas_response, AuthMode, Ue};
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

async fn bob_twice(lab: &rcslab::Lab, shut: &watch::Receiver<bool>) -> (Ue, Ue) {
    let mut b1 = ue(lab, "bob", AuthMode::Digest, shut).await;
    let mut b2 = ue(lab, "bob", AuthMode::Digest, shut).await;
    lab.name_addr(b1.local_addr(), "UE bob1");
    lab.name_addr(b2.local_addr(), "UE bob2");
    b1.register(600).await.unwrap();
    let reg = b2.register(600).await.unwrap();
    assert_eq!(reg.contacts.len(), 2, "both contacts registered: {reg:?}");
    (b1, b2)
}

#[tokio::test]
async fn a_message_and_a_call_reach_both_contacts_of_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let (mut b1, mut b2) = bob_twice(&lab, &shut).await;
    lab.trace.clear();

    // MESSAGE: both clients get it; alice gets one 200.
    let wait = Duration::from_secs(5);
    let answer = |mut b: Ue, tag: &'static str| {
        tokio::spawn(async move {
            let inc = b.next_request(wait).await.expect("the MESSAGE");
            assert_eq!(inc.request.method, Method::Message);
            let contact = b.contact();
            inc.tx
                .respond(uas_response(&inc.request, 200, tag, &contact, None));
            (String::from_utf8_lossy(&inc.request.body).to_string(), b)
        })
    };
    let h1 = answer(b1, "b1");
    let h2 = answer(b2, "b2");
    let r = alice.message("sip:bob@ims.lab", "to both").await;
    assert_eq!(r.status, 200);
    let (t1, b1_back) = h1.await.unwrap();
    let (t2, b2_back) = h2.await.unwrap();
    assert_eq!((t1.as_str(), t2.as_str()), ("to both", "to both"));
    b1 = b1_back;
    b2 = b2_back;
    let f = flow(&lab);
    for hop in [
        "P-CSCF -> UE bob1 SIP MESSAGE",
        "P-CSCF -> UE bob2 SIP MESSAGE",
        "UE bob1 -> P-CSCF SIP 200",
        "UE bob2 -> P-CSCF SIP 200",
    ] {
        assert!(f.contains(&hop.to_string()), "missing {hop}: {f:#?}");
    }
    assert_eq!(
        f.iter()
            .filter(|l| *l == "P-CSCF -> UE alice SIP 200")
            .count(),
        1,
        "one answer for alice: {f:#?}"
    );

    // INVITE: both ring; bob2 answers; bob1's branch is CANCELled and ends in 487.
    lab.trace.clear();
    let c1 = b1.contact();
    let ringing = tokio::spawn(async move {
        let inv = b1.next_request(wait).await.expect("INVITE on bob1");
        assert_eq!(inv.request.method, Method::Invite);
        inv.tx
            .respond(uas_response(&inv.request, 180, "r1", &c1, None));
        let cancel = b1.next_request(wait).await.expect("CANCEL on bob1");
        assert_eq!(cancel.request.method, Method::Cancel);
        cancel.tx.respond(cancel.request.response(200, None));
        inv.tx
            .respond(uas_response(&inv.request, 487, "r1", &c1, None));
        tokio::time::sleep(Duration::from_millis(300)).await;
        b1
    });
    let c2 = b2.contact();
    let answering = tokio::spawn(async move {
        let inv = b2.next_request(wait).await.expect("INVITE on bob2");
        assert_eq!(inv.request.method, Method::Invite);
        inv.tx
            .respond(uas_response(&inv.request, 180, "a2", &c2, None));
        tokio::time::sleep(Duration::from_millis(200)).await;
        inv.tx.respond(uas_response(
            &inv.request,
            200,
            "a2",
            &c2,
            Some(&audio_sdp(5000)),
        ));
        let ack = b2.next_request(wait).await.expect("ACK on bob2");
        assert_eq!(ack.request.method, Method::Ack);
        let bye = b2.next_request(wait).await.expect("BYE on bob2");
        assert_eq!(bye.request.method, Method::Bye);
        bye.tx
            .respond(uas_response(&bye.request, 200, "a2", &c2, None));
        b2
    });
    let (resp, dialog) = alice.invite("sip:bob@ims.lab", &audio_sdp(4000)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let mut d = dialog.expect("dialog");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alice.bye(&mut d).await.status, 200);
    let _b1 = ringing.await.unwrap();
    let _b2 = answering.await.unwrap();
    let f = flow(&lab);
    for hop in [
        "P-CSCF -> UE bob1 SIP INVITE",
        "P-CSCF -> UE bob2 SIP INVITE",
        "UE bob2 -> P-CSCF SIP 200",
        "P-CSCF -> UE bob1 SIP CANCEL",
        "UE bob1 -> P-CSCF SIP 487",
        "P-CSCF -> UE bob2 SIP ACK",
        "P-CSCF -> UE bob2 SIP BYE",
    ] {
        assert!(f.contains(&hop.to_string()), "missing {hop}: {f:#?}");
    }
    assert!(
        !f.iter().any(|l| l.ends_with("UE alice SIP 487")),
        "the caller sees only the answer: {f:#?}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn a_client_that_vanished_does_not_swallow_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let (dead, mut live) = bob_twice(&lab, &shut).await;
    // Like a killed `rcslab ue send`: gone without a de-registration.
    drop(dead);
    let contact = live.contact();
    let h = tokio::spawn(async move {
        let inc = live
            .next_request(Duration::from_secs(5))
            .await
            .expect("the live client gets it");
        inc.tx
            .respond(uas_response(&inc.request, 200, "l", &contact, None));
        live
    });
    // The live client's answer is relayed at once; the dead branch times out on its own.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        alice.message("sip:bob@ims.lab", "anyone?"),
    )
    .await
    .expect("the answer does not wait for the dead contact");
    assert_eq!(r.status, 200);
    let _live = h.await.unwrap();
    lab.shutdown().await;
}
