//! Chat message revocation (GSMA RCC.07): a sender takes back a message T-IM still holds for
//! its recipient. The request is a SIP MESSAGE to the recipient (CPIM carrying
//! `application/vnd.gsma.rcsrevoke+xml`) that T-IM answers 200; the outcome comes back in a
//! MESSAGE from the recipient's side. Revoked, the message never reaches the recipient and
//! leaves the history; a delivered one is not revoked; only its sender may revoke it.

use std::time::Duration;

use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};

use crate::chat::{chat_flow, chat_ue};
use crate::{flow, lab_with};

const BOB: &str = "sip:bob@ims.lab";

/// The next `Revoked` event (other events skipped), within 15 s.
async fn revoked(ue: &mut ChatUe) -> (String, String, bool) {
    loop {
        match ue.next_event(Duration::from_secs(15)).await {
            Some(ChatEvent::Revoked {
                from,
                message_id,
                revoked,
            }) => return (from, message_id, revoked),
            Some(_) => continue,
            None => panic!("no revocation outcome"),
        }
    }
}

/// Texts `ue` receives within `wait`.
async fn texts(ue: &mut ChatUe, wait: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + wait;
    while let Some(ev) = ue
        .next_event(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if let ChatEvent::Message { text, .. } = ev {
            got.push(text);
        }
    }
    got
}

#[tokio::test]
async fn a_message_waiting_for_an_offline_user_is_revoked_and_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let lab = lab_with(dir.path(), "").await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let first = alice.send(BOB, "see you at 8").await;
    let oops = alice.send(BOB, "wrong chat, sorry").await;
    let tim = lab.tim.store().unwrap();
    crate::eventually("both kept for bob", || tim.pending_for(BOB).len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = flow(&lab).len();
    assert!(alice.revoke(BOB, &oops, Duration::from_secs(5)).await);
    assert_eq!(
        revoked(&mut alice).await,
        (BOB.to_string(), oops.clone(), true)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The request through alice's originating iFC (O-IM) and bob's terminating one (T-IM,
    // which answers it); the outcome from T-IM to alice through her S-CSCF, past T-IM again
    // (her terminating iFC) to her P-CSCF. T-IM sends the outcome as soon as it answered:
    // the 200 travels back beside it (`~`).
    let expected: Vec<String> = [
        "UE alice -> P-CSCF SIP MESSAGE",
        "P-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> O-IM SIP MESSAGE",
        "O-IM -> S-CSCF SIP MESSAGE",
        "S-CSCF -> I-CSCF SIP MESSAGE",
        "I-CSCF -> HSS Diameter LIR",
        "HSS -> I-CSCF Diameter LIA",
        "I-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> T-IM SIP MESSAGE",
        "T-IM -> S-CSCF SIP 200",
        "~ S-CSCF -> I-CSCF SIP 200",
        "~ I-CSCF -> S-CSCF SIP 200",
        "~ S-CSCF -> O-IM SIP 200",
        "~ O-IM -> S-CSCF SIP 200",
        "~ S-CSCF -> P-CSCF SIP 200",
        "~ P-CSCF -> UE alice SIP 200",
        "T-IM -> S-CSCF SIP MESSAGE",
        "S-CSCF -> T-IM SIP MESSAGE",
        "T-IM -> S-CSCF SIP MESSAGE",
        "S-CSCF -> P-CSCF SIP MESSAGE",
        "P-CSCF -> UE alice SIP MESSAGE",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> T-IM SIP 200",
        "T-IM -> S-CSCF SIP 200",
        "S-CSCF -> T-IM SIP 200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = chat_flow(&lab, from);
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!("ladder differs:\n{d}");
    }
    // tshark reads every frame of it, the revocation documents inside the CPIM included.
    let pcap = dir.path().join("revoke.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    let bodies = run(&["-Y", "sip.Method == \"MESSAGE\"", "-V"]);
    for part in [
        "application/vnd.gsma.rcsrevoke+xml",
        "<Message-ID>",
        "<result>success</result>",
    ] {
        assert!(bodies.contains(part), "{part} in the decoded MESSAGEs");
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed packets:\n{bad}");
    // Gone from the store and the history; the other one still waits.
    assert!(tim.by_message_id(&oops).is_none());
    assert_eq!(
        tim.pending_for(BOB)
            .iter()
            .map(|m| m.message_id.as_str())
            .collect::<Vec<_>>(),
        [first.as_str()]
    );
    // bob comes online: only the message that was not revoked arrives.
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    assert_eq!(
        texts(&mut bob, Duration::from_secs(4)).await,
        ["see you at 8"]
    );
    // A second request for the same message: nothing left to revoke.
    assert!(alice.revoke(BOB, &oops, Duration::from_secs(5)).await);
    assert!(!revoked(&mut alice).await.2, "nothing left to revoke");
}

#[tokio::test]
async fn a_delivered_message_is_not_revoked_and_only_its_sender_may_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let lab = lab_with(dir.path(), "").await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;

    // bob is away: carol cannot revoke what alice sent him.
    let id = alice.send(BOB, "meet at the station").await;
    let tim = lab.tim.store().unwrap();
    crate::eventually("kept for bob", || tim.pending_for(BOB).len() == 1).await;
    assert!(carol.revoke(BOB, &id, Duration::from_secs(5)).await);
    assert_eq!(
        revoked(&mut carol).await,
        (BOB.to_string(), id.clone(), false)
    );
    assert_eq!(tim.pending_for(BOB).len(), 1, "still kept");

    // bob comes and gets it; once delivered, alice cannot take it back.
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    assert_eq!(
        texts(&mut bob, Duration::from_secs(3)).await,
        ["meet at the station"]
    );
    crate::eventually("reported delivered", || {
        tim.by_message_id(&id)
            .is_some_and(|m| m.status == "delivered" || m.status == "displayed")
    })
    .await;
    assert!(alice.revoke(BOB, &id, Duration::from_secs(5)).await);
    assert_eq!(
        revoked(&mut alice).await,
        (BOB.to_string(), id.clone(), false)
    );
    assert!(tim.by_message_id(&id).is_some(), "kept in the history");
}
