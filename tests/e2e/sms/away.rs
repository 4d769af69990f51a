//! Store and forward (TS 23.040 §3.2.5): a phone that is away keeps its messages, in order,
//! until it registers; a number nobody has ends with a failure report; what the centre
//! accepted survives a restart of the lab.

use std::time::Duration;

use rcslab::sms::rp::CONTENT_TYPE;
use rcslab::sms::tpdu::status;
use rcslab::sms::{RpMessage, Tpdu};
use rcslab::ue::{AuthMode, Ue};

use super::{next_sms, send_rp_ack, submit_body, tpdu_of};
use crate::{eventually, flow, lab_with, ue};

/// alice sends `text` to `to`: 202, then the RP-ACK (answered).
async fn send(alice: &mut Ue, rp_mr: u8, tp_mr: u8, to: &str, text: &str) {
    let r = alice
        .message_with_body(
            "tel:+15559999",
            CONTENT_TYPE,
            &submit_body(rp_mr, tp_mr, to, text),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let (_, rp) = next_sms(alice).await;
    assert!(
        matches!(rp, RpMessage::Ack { mr, .. } if mr == rp_mr),
        "{rp:?}"
    );
}

/// The next SMS-DELIVER to `ue`, acknowledged with its RP-ACK; its text.
async fn receive(ue: &mut Ue) -> String {
    let (_, rp) = next_sms(ue).await;
    let Tpdu::Deliver(d) = tpdu_of(&rp) else {
        panic!("not an SMS-DELIVER: {rp:?}")
    };
    send_rp_ack(ue, rp.mr()).await;
    d.user_data.as_text().unwrap().to_string()
}

/// The next status report to `ue`, acknowledged: (TP-MR, TP-ST).
async fn report(ue: &mut Ue) -> (u8, u8) {
    let (_, rp) = next_sms(ue).await;
    let Tpdu::StatusReport(sr) = tpdu_of(&rp) else {
        panic!("not a status report: {rp:?}")
    };
    send_rp_ack(ue, rp.mr()).await;
    (sr.message_ref, sr.status)
}

#[tokio::test]
async fn messages_to_a_phone_that_is_away_wait_in_order_and_go_when_it_registers() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    eventually("the IP-SM-GW to know alice's number", || {
        lab.smsc
            .user("sip:alice@ims.lab")
            .is_some_and(|u| u.number.is_some())
    })
    .await;
    lab.trace.clear();
    send(&mut alice, 1, 11, "+15550002", "one").await;
    // The first attempt: bob is not registered, his S-CSCF answers 480, the SMS stays.
    eventually("the first attempt to fail", || {
        flow(&lab).contains(&"S-CSCF -> I-CSCF SIP 480".to_string())
    })
    .await;
    let first_try: Vec<String> = flow(&lab);
    let mt: Vec<&String> = first_try
        .iter()
        .skip_while(|l| *l != "I-CSCF -> IP-SM-GW SIP 200")
        .skip(1)
        .collect();
    assert_eq!(
        mt,
        [
            "IP-SM-GW -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> HSS Diameter SAR",
            "HSS -> S-CSCF Diameter SAA",
            "S-CSCF -> I-CSCF SIP 480",
            "I-CSCF -> IP-SM-GW SIP 480",
        ]
    );
    send(&mut alice, 2, 12, "+15550002", "two").await;
    send(&mut alice, 3, 13, "+15550002", "three").await;
    assert_eq!(lab.smsc.held(), 3);
    // No report yet: nothing was delivered.
    assert!(alice
        .next_request(Duration::from_millis(300))
        .await
        .is_none());

    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();
    // His third-party REGISTER wakes the queue: all three, in order, each after the last
    // one's RP-ACK.
    assert_eq!(receive(&mut bob).await, "one");
    assert_eq!(receive(&mut bob).await, "two");
    assert_eq!(receive(&mut bob).await, "three");
    let mut reports = vec![
        report(&mut alice).await,
        report(&mut alice).await,
        report(&mut alice).await,
    ];
    reports.sort();
    assert_eq!(
        reports,
        [
            (11, status::RECEIVED),
            (12, status::RECEIVED),
            (13, status::RECEIVED)
        ]
    );
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    lab.shutdown().await;
}

#[tokio::test]
async fn a_number_nobody_has_ends_with_a_failure_report() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    send(&mut alice, 4, 21, "+15550099", "anyone?").await;
    let (tp_mr, st) = report(&mut alice).await;
    assert_eq!(tp_mr, 21);
    assert_eq!(st, status::INCOMPATIBLE_DESTINATION);
    assert!(
        flow(&lab).contains(&"I-CSCF -> IP-SM-GW SIP 404".to_string()),
        "{:?}",
        flow(&lab)
    );
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    lab.shutdown().await;
}

#[tokio::test]
async fn what_the_centre_accepted_survives_a_restart_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let lab = lab_with(dir.path(), "").await;
        let (_stop, shut) = tokio::sync::watch::channel(false);
        let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
        alice.register(600).await.unwrap();
        send(&mut alice, 5, 31, "+15550002", "kept over a restart").await;
        assert_eq!(lab.smsc.held(), 1);
        lab.shutdown().await;
    }
    // sled lets the directory go when the last handle does; give it a moment.
    let mut again = None;
    let mut last = None;
    for _ in 0..150 {
        let cfg = rcslab::LabConfig::from_toml_str(
            "[pcscf]\nsubscribe_reg = false\n[ums]\nrcs_user = \"\"\n",
        )
        .unwrap()
        .with_ephemeral_ports();
        let opts = rcslab::LabOptions {
            trace: true,
            timers: None,
            hep: None,
        };
        match rcslab::Lab::start(cfg, dir.path(), opts).await {
            Ok(l) => {
                again = Some(l);
                break;
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    }
    let lab = again.unwrap_or_else(|| panic!("the lab restarts on the same data dir: {last:?}"));
    assert_eq!(lab.smsc.held(), 1, "the SMS is back from the store");
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();
    assert_eq!(receive(&mut bob).await, "kept over a restart");
    assert!(
        bob.next_request(Duration::from_millis(500)).await.is_none(),
        "delivered once"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn what_is_no_sms_gets_a_clear_answer() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    // Not even an RP-MR: 400 with the reason.
    let r = alice
        .message_with_body("tel:+15559999", CONTENT_TYPE, &[0x00], &[])
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.headers.get("Warning").unwrap_or("").contains("RP"),
        "{r:?}"
    );
    // RP-DATA whose user data is no SMS-SUBMIT: 202, then RP-ERROR cause 96.
    let body = RpMessage::Data {
        dir: rcslab::sms::Direction::MsToNetwork,
        mr: 9,
        originator: None,
        destination: Some(rcslab::sms::Address::from_number("+15559999")),
        tpdu: vec![0x01, 0x00],
    }
    .encode()
    .unwrap();
    let r = alice
        .message_with_body("tel:+15559999", CONTENT_TYPE, &body, &[])
        .await;
    assert_eq!(r.status, 202);
    let (_, rp) = next_sms(&mut alice).await;
    assert!(
        matches!(
            rp,
            RpMessage::Error {
                mr: 9,
                cause: 96,
                ..
            }
        ),
        "{rp:?}"
    );
    assert_eq!(lab.smsc.held(), 0);
    // Straight to the IP-SM-GW, past the core: anyone could claim to be alice, so 403.
    let cfg = rcslab::ue::UeConfig::from_lab(&lab.config, "alice", lab.addrs.ipsmgw).unwrap();
    let mut forger = Ue::start(cfg, lab.trace.clone(), shut.clone())
        .await
        .unwrap();
    let r = forger
        .message_with_body(
            "tel:+15559999",
            CONTENT_TYPE,
            &submit_body(1, 1, "+15550002", "forged"),
            &[("P-Asserted-Identity", "<sip:alice@ims.lab>")],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(lab.smsc.held(), 0);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_client_without_sms_over_ip_refuses_the_sms_and_the_sender_hears_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    // bob runs a chat client only: an SMS body is nothing it can show.
    let _bob = crate::chat::chat_ue(&lab, "bob", &shut, Default::default()).await;
    send(&mut alice, 6, 41, "+15550002", "anyone?").await;
    let (tp_mr, st) = report(&mut alice).await;
    assert_eq!((tp_mr, st), (41, status::INCOMPATIBLE_DESTINATION));
    assert!(
        flow(&lab).contains(&"UE bob -> P-CSCF SIP 415".to_string()),
        "{:?}",
        flow(&lab)
    );
    lab.shutdown().await;
}
