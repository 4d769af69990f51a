//! SMS over IP through the IP-SM-GW (TS 24.341, TS 24.011, TS 23.040), the phones played by
//! the test with the lab's own SMS codecs, so every RP and TP field is checked where it lands:
//! the exact ladder of an MO SMS with its separate RP-ACK MESSAGE, the MT delivery with the
//! phone's own RP-ACK MESSAGE, the status report; store and forward to a phone that was away.

mod away;
mod cli;
mod esme;
mod flows;
mod mms;

use std::time::Duration;

use rcslab::sip::IncomingRequest;
use rcslab::sms::rp::CONTENT_TYPE;
use rcslab::sms::tpdu::{Submit, Validity};
use rcslab::sms::{Address, Direction, RpMessage, Tpdu, UserData};
use rcslab::ue::Ue;

/// The RP-DATA (MS→N) with an SMS-SUBMIT of `text` to `to`, RP-MR `rp_mr`, TP-MR `tp_mr`,
/// a status report asked for.
pub fn submit_body(rp_mr: u8, tp_mr: u8, to: &str, text: &str) -> Vec<u8> {
    let tpdu = Tpdu::Submit(Submit {
        reject_duplicates: false,
        status_report_request: true,
        reply_path: false,
        message_ref: tp_mr,
        destination: Address::from_number(to),
        pid: 0,
        dcs: if rcslab::sms::gsm7::fits(text) { 0 } else { 8 },
        validity: Validity::Relative(167),
        user_data: UserData::text(text),
    })
    .encode()
    .unwrap();
    RpMessage::Data {
        dir: Direction::MsToNetwork,
        mr: rp_mr,
        originator: None,
        destination: Some(Address::from_number("+15559999")),
        tpdu,
    }
    .encode()
    .unwrap()
}

/// The phone's RP-ACK (MS→N) for RP-MR `mr`.
pub fn rp_ack(mr: u8) -> Vec<u8> {
    RpMessage::Ack {
        dir: Direction::MsToNetwork,
        mr,
        tpdu: None,
    }
    .encode()
    .unwrap()
}

/// The phone `ue` sends its RP-ACK for RP-MR `mr` to the service centre; the centre's 200.
pub async fn send_rp_ack(ue: &mut Ue, mr: u8) {
    let r = ue
        .message_with_body("tel:+15559999", CONTENT_TYPE, &rp_ack(mr), &[])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// The next request to `ue` (within 10 s): an SMS MESSAGE, answered 200; its RP message.
pub async fn next_sms(ue: &mut Ue) -> (IncomingRequest, RpMessage) {
    let inc = ue
        .next_request(Duration::from_secs(10))
        .await
        .expect("an SMS MESSAGE comes");
    assert_eq!(inc.request.method, rcslab::sip::Method::Message);
    assert_eq!(inc.request.headers.get("Content-Type"), Some(CONTENT_TYPE));
    let rp = RpMessage::decode(&inc.request.body).expect("an RP message");
    let ok = rcslab::ue::uas_response(&inc.request, 200, "ph1", &ue.contact(), None);
    inc.tx.respond(ok);
    (inc, rp)
}

/// The TPDU of an RP-DATA from the network.
pub fn tpdu_of(rp: &RpMessage) -> Tpdu {
    match rp {
        RpMessage::Data { tpdu, .. } => {
            Tpdu::decode(tpdu, Direction::NetworkToMs, false).expect("a TPDU")
        }
        other => panic!("not RP-DATA: {other:?}"),
    }
}
