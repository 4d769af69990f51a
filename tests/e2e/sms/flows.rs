//! MO, MT and the status report, exactly as they cross the wire.

use std::time::Duration;

use rcslab::sms::rp::CONTENT_TYPE;
use rcslab::sms::{Direction, RpMessage, Tpdu};
use rcslab::ue::AuthMode;

use super::{next_sms, send_rp_ack, submit_body, tpdu_of};
use crate::{eventually, flow, lab_with, ue};

#[tokio::test]
async fn an_mo_sms_gets_202_then_its_own_rp_ack_and_bob_gets_it_and_alice_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    // The third-party REGISTERs told the IP-SM-GW each user's tel URI.
    eventually("the IP-SM-GW to know both numbers", || {
        ["sip:alice@ims.lab", "sip:bob@ims.lab"].iter().all(|u| {
            lab.smsc
                .user(u)
                .is_some_and(|i| i.number.is_some() && i.registered)
        })
    })
    .await;
    assert_eq!(
        lab.smsc.user("sip:bob@ims.lab").unwrap().number.as_deref(),
        Some("+15550002")
    );
    lab.trace.clear();

    // MO: RP-DATA with the SMS-SUBMIT to the service centre's tel URI.
    let r = alice
        .message_with_body(
            "tel:+15559999",
            CONTENT_TYPE,
            &submit_body(42, 7, "+15550002", "hello bob"),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    // Its answer comes in a MESSAGE of its own: RP-ACK with the SMS-SUBMIT-REPORT.
    let (inc, rp) = next_sms(&mut alice).await;
    assert!(inc
        .request
        .headers
        .get("From")
        .unwrap()
        .contains("tel:+15559999"));
    let RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr: 42,
        tpdu: Some(report),
    } = &rp
    else {
        panic!("not the RP-ACK: {rp:?}")
    };
    assert!(matches!(
        Tpdu::decode(report, Direction::NetworkToMs, false).unwrap(),
        Tpdu::SubmitReport(_)
    ));

    // MT: bob gets RP-DATA with the SMS-DELIVER, answers 200, then his own RP-ACK.
    let (inc, rp) = next_sms(&mut bob).await;
    assert!(inc.request.uri.contains("+15550002") || inc.request.uri.contains("bob"));
    let RpMessage::Data { mr, originator, .. } = &rp else {
        panic!("not RP-DATA: {rp:?}")
    };
    assert_eq!(originator.as_ref().unwrap().number(), "+15559999");
    let Tpdu::Deliver(d) = tpdu_of(&rp) else {
        panic!("not an SMS-DELIVER")
    };
    assert_eq!(d.originator.number(), "+15550001");
    assert_eq!(d.user_data.as_text(), Some("hello bob"));
    assert!(d.status_report_indication);
    send_rp_ack(&mut bob, *mr).await;

    // The status report: RP-DATA with SMS-STATUS-REPORT, TP-MR 7, delivered.
    let (_, rp) = next_sms(&mut alice).await;
    let Tpdu::StatusReport(sr) = tpdu_of(&rp) else {
        panic!("not a status report: {rp:?}")
    };
    assert_eq!((sr.message_ref, sr.status), (7, 0));
    assert_eq!(sr.recipient.number(), "+15550002");
    send_rp_ack(&mut alice, rp.mr()).await;
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The whole exchange. `~` lines are answers on their way back while the next request
    // goes out (each may come anywhere after the line above it).
    let expected: Vec<String> = [
        // MO: to the IP-SM-GW by the originating iFC (Content-Type application/vnd.3gpp.sms).
        "UE alice -> P-CSCF SIP MESSAGE",
        "P-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> IP-SM-GW SIP MESSAGE",
        "IP-SM-GW -> S-CSCF SIP 202",
        "~ S-CSCF -> P-CSCF SIP 202",
        "~ P-CSCF -> UE alice SIP 202",
        // The RP-ACK in a MESSAGE of its own, through the I-CSCF (LIR finds her S-CSCF).
        "IP-SM-GW -> I-CSCF SIP MESSAGE",
        "I-CSCF -> HSS Diameter LIR",
        "HSS -> I-CSCF Diameter LIA",
        "I-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> P-CSCF SIP MESSAGE",
        "P-CSCF -> UE alice SIP MESSAGE",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> I-CSCF SIP 200",
        "I-CSCF -> IP-SM-GW SIP 200",
        // MT: the SMS-DELIVER to tel:+15550002.
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
        // bob's RP-ACK, to the IP-SM-GW by his originating iFC.
        "UE bob -> P-CSCF SIP MESSAGE",
        "P-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> IP-SM-GW SIP MESSAGE",
        "IP-SM-GW -> S-CSCF SIP 200",
        "~ S-CSCF -> P-CSCF SIP 200",
        "~ P-CSCF -> UE bob SIP 200",
        // The status report to alice, and her RP-ACK.
        "IP-SM-GW -> I-CSCF SIP MESSAGE",
        "I-CSCF -> HSS Diameter LIR",
        "HSS -> I-CSCF Diameter LIA",
        "I-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> P-CSCF SIP MESSAGE",
        "P-CSCF -> UE alice SIP MESSAGE",
        "UE alice -> P-CSCF SIP 200",
        "~ P-CSCF -> S-CSCF SIP 200",
        "~ S-CSCF -> I-CSCF SIP 200",
        "~ I-CSCF -> IP-SM-GW SIP 200",
        "UE alice -> P-CSCF SIP MESSAGE",
        "P-CSCF -> S-CSCF SIP MESSAGE",
        "S-CSCF -> IP-SM-GW SIP MESSAGE",
        "IP-SM-GW -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE alice SIP 200",
    ]
    .map(String::from)
    .to_vec();
    let got = flow(&lab);
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!("SMS ladder differs:\n{d}\n{}", got.join("\n"));
    }
}
