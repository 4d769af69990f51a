//! The SMS client on a real SIP endpoint against a fake network: a second endpoint plays the
//! P-CSCF and the service centre behind it, with real UDP datagrams both ways.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{SmsEvent, SmsOptions, SmsUe};
use crate::sip::endpoint::Incoming;
use crate::sip::transaction::TimerConfig;
use crate::sip::{Endpoint, IncomingRequest, Method, Request, Transport};
use crate::sms::address::{Address, Timestamp};
use crate::sms::rp::{RpMessage, CONTENT_TYPE};
use crate::sms::tpdu::{Deliver, StatusReport, SubmitReport, Tpdu};
use crate::sms::user_data::{UserData, DCS_UCS2};
use crate::sms::Direction;
use crate::trace::Trace;
use crate::ue::{AuthMode, Ue, UeConfig};

const WAIT: Duration = Duration::from_secs(5);

fn ts() -> Timestamp {
    Timestamp::from_unix(1_796_000_000)
}

async fn next_request(rx: &mut mpsc::UnboundedReceiver<Incoming>) -> IncomingRequest {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(Incoming::Request(r))) => return r,
            Ok(Some(_)) => continue,
            other => panic!("no request: {other:?}"),
        }
    }
}

async fn next_event(sms: &mut SmsUe) -> SmsEvent {
    sms.next_event(WAIT).await.expect("an SMS event")
}

/// A fake network and a UE whose P-CSCF it is, with the SMS client started.
async fn setup(
    shut: &watch::Receiver<bool>,
) -> (Endpoint, mpsc::UnboundedReceiver<Incoming>, Ue, SmsUe) {
    let lo = "127.0.0.1:0".parse().unwrap();
    let (net, net_rx) = Endpoint::bind(
        "network",
        lo,
        TimerConfig::default(),
        Trace::disabled(),
        shut.clone(),
    )
    .await
    .unwrap();
    let cfg = UeConfig {
        impu: "sip:alice@ims.lab".into(),
        impi: "alice@ims.lab".into(),
        password: String::new(),
        k: [0; 16],
        opc: [0; 16],
        sqn_ms: 0,
        pcscf: net.local_addr(),
        transport: Transport::Udp,
        domain: "ims.lab".into(),
        auth: AuthMode::Digest,
        extra_tags: String::new(),
    };
    let mut ue = Ue::start(cfg, Trace::disabled(), shut.clone())
        .await
        .unwrap();
    let sms = SmsUe::start(&mut ue, SmsOptions::default());
    (net, net_rx, ue, sms)
}

/// The network's MESSAGE to the UE, from the service centre, carrying `rp`.
fn to_ue(net: &Endpoint, ue: &Ue, rp: &RpMessage) -> Request {
    let mut r = net.new_request(
        Method::Message,
        &ue.contact(),
        "tel:+15559999",
        1,
        Transport::Udp,
    );
    r.headers.push("Content-Type", CONTENT_TYPE);
    r.body = rp.encode().unwrap().into();
    r
}

async fn send_to_ue(net: &Endpoint, ue: &Ue, rp: &RpMessage) -> u16 {
    let req = to_ue(net, ue, rp);
    net.send_request(req, ue.local_addr(), Transport::Udp)
        .final_response()
        .await
        .status
}

/// The UE's next MESSAGE: checked as TS 24.341 wants it, answered `status`, its RP message.
async fn from_ue(rx: &mut mpsc::UnboundedReceiver<Incoming>, status: u16) -> RpMessage {
    let inc = next_request(rx).await;
    let r = &inc.request;
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.uri, "tel:+15559999");
    assert_eq!(r.headers.get("To"), Some("<tel:+15559999>"));
    assert!(r
        .headers
        .get("From")
        .is_some_and(|f| f.starts_with("<sip:alice@ims.lab>;tag=")));
    assert_eq!(r.headers.get("Content-Type"), Some(CONTENT_TYPE));
    let rp = RpMessage::decode(&r.body).unwrap();
    // An RP answer to the network's RP-DATA names the MESSAGE that carried it; our RP-DATA
    // answers nothing.
    assert_eq!(
        r.headers.get("In-Reply-To").is_some(),
        matches!(rp, RpMessage::Ack { .. }),
        "{rp:?}"
    );
    let mut answer = r.response(status, None);
    answer.ensure_to_tag();
    inc.tx.respond(answer);
    rp
}

#[tokio::test]
async fn submit_ack_report_and_a_message_back_over_sip() {
    let (_stop, shut) = watch::channel(false);
    let (net, mut net_rx, mut ue, mut sms) = setup(&shut).await;

    let id = sms.send("tel:+15550002", "hi").await.unwrap();
    let RpMessage::Data { mr, tpdu, .. } = from_ue(&mut net_rx, 202).await else {
        panic!("not RP-DATA")
    };
    let Tpdu::Submit(submit) = Tpdu::decode(&tpdu, Direction::MsToNetwork, false).unwrap() else {
        panic!("not a SUBMIT")
    };
    assert_eq!(submit.destination.number(), "+15550002");
    let ack = RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr,
        tpdu: Some(
            Tpdu::SubmitReport(SubmitReport {
                failure: None,
                timestamp: ts(),
            })
            .encode()
            .unwrap(),
        ),
    };
    assert_eq!(send_to_ue(&net, &ue, &ack).await, 200);
    assert_eq!(
        next_event(&mut sms).await,
        SmsEvent::Submitted { id, parts: 1 }
    );

    // The status report: 200, then the UE's RP-ACK in a MESSAGE of its own.
    let report = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 0x40,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: Tpdu::StatusReport(StatusReport {
            more_messages: false,
            command: false,
            message_ref: submit.message_ref,
            recipient: Address::from_number("+15550002"),
            timestamp: ts(),
            discharge: ts(),
            status: 0x00,
        })
        .encode()
        .unwrap(),
    };
    assert_eq!(send_to_ue(&net, &ue, &report).await, 200);
    let rp = from_ue(&mut net_rx, 200).await;
    assert!(
        matches!(
            rp,
            RpMessage::Ack {
                dir: Direction::MsToNetwork,
                mr: 0x40,
                ..
            }
        ),
        "{rp:?}"
    );
    assert_eq!(next_event(&mut sms).await, SmsEvent::Delivered { id });

    // bob answers: an SMS-DELIVER to alice.
    let deliver = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 0x41,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: Tpdu::Deliver(Deliver {
            more_messages: false,
            status_report_indication: false,
            reply_path: false,
            originator: Address::from_number("+15550002"),
            pid: 0,
            dcs: DCS_UCS2,
            timestamp: ts(),
            user_data: UserData::text("안녕"),
        })
        .encode()
        .unwrap(),
    };
    assert_eq!(send_to_ue(&net, &ue, &deliver).await, 200);
    let rp = from_ue(&mut net_rx, 200).await;
    assert!(matches!(rp, RpMessage::Ack { mr: 0x41, .. }), "{rp:?}");
    assert_eq!(
        next_event(&mut sms).await,
        SmsEvent::Received {
            from: "tel:+15550002".into(),
            text: "안녕".into()
        }
    );

    // What is not SMS goes on to whoever serves the rest of the UE.
    let mut text = net.new_request(
        Method::Message,
        &ue.contact(),
        "sip:bob@ims.lab",
        1,
        Transport::Udp,
    );
    text.headers.push("Content-Type", "text/plain");
    text.body = "not an SMS".into();
    let pending = net.send_request(text, ue.local_addr(), Transport::Udp);
    let inc = ue.next_request(WAIT).await.expect("passed on to the Ue");
    assert_eq!(&inc.request.body[..], b"not an SMS");
    inc.tx.respond(inc.request.response(200, None));
    assert_eq!(pending.final_response().await.status, 200);
}

#[tokio::test]
async fn a_refused_message_is_a_failure() {
    let (_stop, shut) = watch::channel(false);
    let (_net, mut net_rx, _ue, mut sms) = setup(&shut).await;
    let id = sms.send("+15550002", "x").await.unwrap();
    from_ue(&mut net_rx, 403).await;
    assert_eq!(
        next_event(&mut sms).await,
        SmsEvent::Failed {
            id,
            reason: "MESSAGE answered 403 Forbidden".into()
        }
    );
    assert!(sms.send("bob", "x").await.is_err());
}

#[tokio::test]
async fn an_rp_ack_refused_as_overloaded_goes_again_after_its_retry_after() {
    let (_stop, shut) = watch::channel(false);
    let (net, mut net_rx, ue, mut sms) = setup(&shut).await;
    let deliver = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 0x17,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: Tpdu::Deliver(Deliver {
            more_messages: false,
            status_report_indication: false,
            reply_path: false,
            originator: Address::from_number("+15550002"),
            pid: 0,
            dcs: 0,
            timestamp: ts(),
            user_data: UserData::text("again"),
        })
        .encode()
        .unwrap(),
    };
    assert_eq!(send_to_ue(&net, &ue, &deliver).await, 200);
    // The P-CSCF sheds the RP-ACK: 503, Retry-After 0.
    let inc = next_request(&mut net_rx).await;
    let first = inc.request.clone();
    let mut busy = inc.request.response(503, None);
    busy.headers.push("Retry-After", "0");
    inc.tx.respond(busy);
    // The same RP-ACK comes again, in a MESSAGE of its own.
    let inc = next_request(&mut net_rx).await;
    assert_eq!(inc.request.body, first.body);
    assert!(matches!(
        RpMessage::decode(&inc.request.body).unwrap(),
        RpMessage::Ack { mr: 0x17, .. }
    ));
    assert_eq!(inc.request.headers.get("CSeq"), Some("2 MESSAGE"));
    assert_eq!(
        inc.request.headers.get("In-Reply-To"),
        first.headers.get("In-Reply-To")
    );
    inc.tx.respond(inc.request.response(200, None));
    assert!(matches!(
        next_event(&mut sms).await,
        SmsEvent::Received { .. }
    ));
    // A submission refused so is the sender's to decide on: it is not sent again.
    let id = sms.send("+15550002", "x").await.unwrap();
    let inc = next_request(&mut net_rx).await;
    let mut busy = inc.request.response(503, None);
    busy.headers.push("Retry-After", "0");
    inc.tx.respond(busy);
    assert!(matches!(next_event(&mut sms).await, SmsEvent::Failed { id: i, .. } if i == id));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), next_request(&mut net_rx))
            .await
            .is_err()
    );
}

#[test]
fn retry_after_is_read_from_a_503_only_and_capped() {
    let req = Request::new(Method::Message, "tel:+15559999");
    let mut r = req.response(503, None);
    assert_eq!(super::driver::retry_after(&r), None);
    r.headers.push("Retry-After", "2 (busy);duration=60");
    assert_eq!(super::driver::retry_after(&r), Some(Duration::from_secs(2)));
    let mut long = req.response(503, None);
    long.headers.push("Retry-After", "3600");
    assert_eq!(
        super::driver::retry_after(&long),
        Some(Duration::from_secs(5))
    );
    let mut other = req.response(480, None);
    other.headers.push("Retry-After", "1");
    assert_eq!(super::driver::retry_after(&other), None);
}
