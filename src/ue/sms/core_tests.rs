//! The SMS core against a fake network: what the UE puts in each MESSAGE, decoded back, and
//! what it makes of every answer the network may give (STYLE.md: socket-free, time passed in).

use std::time::{Duration, Instant};

use super::core::{Input, Origin, Output, SmsCore, MAX_SUBMISSIONS, RP_ACK_WAIT};
use super::mt::MAX_REASSEMBLY;
use super::{SmsEvent, SmsId, DEFAULT_SMSC};
use crate::sms::address::{Address, Timestamp, TON_ALPHANUMERIC};
use crate::sms::rp::RpMessage;
use crate::sms::tpdu::{Deliver, StatusReport, Submit, SubmitReport, Tpdu, Validity};
use crate::sms::user_data::{Body, Ie, UserData, DCS_GSM7, DCS_UCS2};
use crate::sms::Direction;

const SC: &str = "tel:+15559999";

fn ts(second: u8) -> Timestamp {
    Timestamp {
        year: 26,
        month: 12,
        day: 2,
        hour: 12,
        minute: 0,
        second,
        tz_quarters: 0,
    }
}

/// One MESSAGE the UE sent: where to, its RP message, the submission it is about, the
/// network's MESSAGE it answers.
#[derive(Debug)]
struct Sent {
    to: String,
    rp: RpMessage,
    about: Option<(SmsId, u8)>,
    in_reply_to: Option<String>,
}

/// The network's MESSAGEs come from the service centre, Call-ID `net-1`.
fn sc() -> Origin {
    Origin {
        uri: SC.into(),
        call_id: "net-1".into(),
    }
}

/// What the core put out since the last call: MESSAGEs and events.
fn drain(c: &mut SmsCore) -> (Vec<Sent>, Vec<SmsEvent>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = c.poll_output() {
        match o {
            Output::Message {
                to,
                body,
                about,
                in_reply_to,
            } => sent.push(Sent {
                to,
                rp: RpMessage::decode(&body).expect("the UE's RP message decodes"),
                about,
                in_reply_to,
            }),
            Output::Event(e) => events.push(e),
            // The driver fetches; here the notification is only seen.
            Output::Mms { from, notification } => events.push(SmsEvent::Mms {
                from,
                notification,
                fetched: Err(super::mms::FetchError::Io("not fetched here".into())),
            }),
        }
    }
    (sent, events)
}

/// The SMS-SUBMIT in an MO RP-DATA, checking the relay layer on the way.
fn submit_of(s: &Sent) -> (u8, Submit) {
    let RpMessage::Data {
        dir: Direction::MsToNetwork,
        mr,
        originator: None,
        destination: Some(da),
        tpdu,
    } = &s.rp
    else {
        panic!("not an MO RP-DATA: {:?}", s.rp)
    };
    assert_eq!(da.number(), DEFAULT_SMSC, "RP-DA is the service centre");
    assert_eq!(s.to, SC, "the Request-URI is the service centre");
    assert_eq!(s.about.map(|a| a.1), Some(*mr));
    assert_eq!(s.in_reply_to, None);
    match Tpdu::decode(tpdu, Direction::MsToNetwork, false).unwrap() {
        Tpdu::Submit(sub) => (*mr, sub),
        other => panic!("not a SUBMIT: {other:?}"),
    }
}

fn from_network(c: &mut SmsCore, now: Instant, rp: RpMessage) {
    c.handle(
        now,
        Input::Message {
            from: sc(),
            body: rp.encode().unwrap(),
        },
    );
}

fn rp_ack(mr: u8) -> RpMessage {
    let report = Tpdu::SubmitReport(SubmitReport {
        failure: None,
        timestamp: ts(0),
    });
    RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr,
        tpdu: Some(report.encode().unwrap()),
    }
}

fn status_report(mr: u8, tp_mr: u8, to: &str, status: u8) -> RpMessage {
    let r = Tpdu::StatusReport(StatusReport {
        more_messages: false,
        command: false,
        message_ref: tp_mr,
        recipient: Address::from_number(to),
        timestamp: ts(0),
        discharge: ts(1),
        status,
    });
    RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr,
        originator: Some(Address::from_number(DEFAULT_SMSC)),
        destination: None,
        tpdu: r.encode().unwrap(),
    }
}

fn deliver(mr: u8, oa: Address, stamp: Timestamp, dcs: u8, user_data: UserData) -> RpMessage {
    let d = Tpdu::Deliver(Deliver {
        more_messages: false,
        status_report_indication: false,
        reply_path: false,
        originator: oa,
        pid: 0,
        dcs,
        timestamp: stamp,
        user_data,
    });
    RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr,
        originator: Some(Address::from_number(DEFAULT_SMSC)),
        destination: None,
        tpdu: d.encode().unwrap(),
    }
}

/// The UE's RP-ACK (MS→N) for RP-DATA `mr`, sent to the service centre.
fn assert_acked(sent: &[Sent], mr: u8) {
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, SC);
    assert_eq!(sent[0].about, None);
    assert_eq!(sent[0].in_reply_to.as_deref(), Some("net-1"));
    match &sent[0].rp {
        RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr: m,
            tpdu: Some(t),
        } => {
            assert_eq!(*m, mr);
            assert!(matches!(
                Tpdu::decode(t, Direction::MsToNetwork, false).unwrap(),
                Tpdu::DeliverReport(_)
            ));
        }
        other => panic!("not an RP-ACK: {other:?}"),
    }
}

#[test]
fn mo_message_body_decodes_to_what_was_meant() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(41);
    let id = c.submit(t0, "tel:+15550002", "hi", DEFAULT_SMSC).unwrap();
    let (sent, ev) = drain(&mut c);
    assert!(ev.is_empty());
    assert_eq!(sent.len(), 1);
    let (mr, s) = submit_of(&sent[0]);
    assert_eq!(sent[0].about, Some((id, mr)));
    assert!(s.status_report_request, "TP-SRR");
    assert!(!s.reject_duplicates);
    assert_eq!(s.destination, Address::from_number("+15550002"));
    assert_eq!(s.dcs, DCS_GSM7);
    assert_eq!(s.validity, Validity::Relative(167));
    assert_eq!(s.validity.relative_secs(), Some(86_400));
    assert_eq!(s.user_data, UserData::text("hi"));
    // Byte for byte: RP-MTI 0, MR, no RP-OA, RP-DA +15559999, then the SUBMIT: SRR, VPF
    // relative (0x31), TP-MR, TP-DA 8 digits international.
    let RpMessage::Data { tpdu, .. } = &sent[0].rp else {
        unreachable!()
    };
    let body = sent[0].rp.encode().unwrap();
    assert_eq!(
        &body[..9],
        &[0x00, mr, 0x00, 0x05, 0x91, 0x51, 0x55, 0x99, 0x99]
    );
    assert_eq!(
        &tpdu[..7],
        &[0x31, s.message_ref, 0x08, 0x91, 0x51, 0x55, 0x00]
    );
    assert_eq!(c.pending(), 1);

    // A second message gets fresh references.
    c.submit(t0, "+15550002", "again", DEFAULT_SMSC).unwrap();
    let (sent, _) = drain(&mut c);
    let (mr2, s2) = submit_of(&sent[0]);
    assert_ne!(mr2, mr);
    assert_ne!(s2.message_ref, s.message_ref);
}

#[test]
fn korean_goes_in_ucs2() {
    let mut c = SmsCore::new(0);
    c.submit(
        Instant::now(),
        "sip:+15550002@ims.lab;user=phone",
        "안녕하세요",
        DEFAULT_SMSC,
    )
    .unwrap();
    let (sent, _) = drain(&mut c);
    let (_, s) = submit_of(&sent[0]);
    assert_eq!(s.dcs, DCS_UCS2);
    assert_eq!(s.user_data.as_text(), Some("안녕하세요"));
    assert!(s.user_data.header.is_empty());
}

/// Two parts, one after the other: the second goes after the first's RP-ACK; both carry the
/// same concatenation reference; reports for both make it delivered.
#[test]
fn a_long_text_goes_in_parts_each_after_the_last_ones_rp_ack() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(250);
    let text = "a".repeat(153) + "bcdefghijk";
    let id = c.submit(t0, "tel:+15550002", &text, DEFAULT_SMSC).unwrap();
    let (sent, _) = drain(&mut c);
    assert_eq!(sent.len(), 1, "only the first part goes now");
    let (mr1, s1) = submit_of(&sent[0]);
    let Some((reference, 2, 1)) = s1.user_data.concat() else {
        panic!("{:?}", s1.user_data)
    };
    assert_eq!(s1.user_data.as_text(), Some("a".repeat(153).as_str()));

    // The 202 changes nothing; the RP-ACK sends part 2.
    c.handle(
        t0,
        Input::Answered {
            id,
            rp_mr: mr1,
            status: 202,
            reason: "Accepted".into(),
        },
    );
    assert!(drain(&mut c).0.is_empty());
    from_network(&mut c, t0, rp_ack(mr1));
    let (sent, ev) = drain(&mut c);
    assert!(ev.is_empty(), "{ev:?}");
    let (mr2, s2) = submit_of(&sent[0]);
    assert_ne!(mr2, mr1);
    assert_ne!(s2.message_ref, s1.message_ref);
    assert_eq!(s2.user_data.concat(), Some((reference, 2, 2)));
    assert_eq!(s2.user_data.as_text(), Some("bcdefghijk"));

    // Part 1's report comes before part 2's RP-ACK: still waiting.
    from_network(
        &mut c,
        t0,
        status_report(7, s1.message_ref, "+15550002", 0x00),
    );
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 7);
    assert!(ev.is_empty(), "{ev:?}");
    from_network(&mut c, t0, rp_ack(mr2));
    assert_eq!(drain(&mut c).1, [SmsEvent::Submitted { id, parts: 2 }]);
    from_network(
        &mut c,
        t0,
        status_report(8, s2.message_ref, "+15550002", 0x00),
    );
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 8);
    assert_eq!(ev, [SmsEvent::Delivered { id }]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn rp_error_fails_and_an_rp_ack_of_nothing_is_ignored() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(9);
    let id = c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
    let (sent, _) = drain(&mut c);
    let (mr, _) = submit_of(&sent[0]);
    from_network(&mut c, t0, rp_ack(mr.wrapping_add(100)));
    assert_eq!(drain(&mut c).1, []);
    let err = RpMessage::Error {
        dir: Direction::NetworkToMs,
        mr,
        cause: 30,
        diagnostic: None,
        tpdu: Some(
            Tpdu::SubmitReport(SubmitReport {
                failure: Some(0xc5),
                timestamp: ts(0),
            })
            .encode()
            .unwrap(),
        ),
    };
    from_network(&mut c, t0, err);
    let (sent, ev) = drain(&mut c);
    assert!(sent.is_empty(), "an RP-ERROR is not answered in RP");
    assert_eq!(
        ev,
        [SmsEvent::Failed {
            id,
            reason: "RP-ERROR cause 30 (unknown subscriber)".into()
        }]
    );
    assert_eq!(c.pending(), 0);
    // A late RP-ACK for it is nobody's.
    from_network(&mut c, t0, rp_ack(mr));
    assert_eq!(drain(&mut c).1, []);
}

#[test]
fn a_refused_message_fails() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(9);
    let id = c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
    let (sent, _) = drain(&mut c);
    let (mr, _) = submit_of(&sent[0]);
    c.handle(
        t0,
        Input::Answered {
            id,
            rp_mr: mr,
            status: 403,
            reason: "Forbidden".into(),
        },
    );
    assert_eq!(
        drain(&mut c).1,
        [SmsEvent::Failed {
            id,
            reason: "MESSAGE answered 403 Forbidden".into()
        }]
    );
}

#[test]
fn status_reports_delivered_temporary_and_failed() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    let sent_one = |c: &mut SmsCore| {
        let id = c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
        let (sent, _) = drain(c);
        let (mr, s) = submit_of(&sent[0]);
        from_network(c, t0, rp_ack(mr));
        assert_eq!(drain(c).1, [SmsEvent::Submitted { id, parts: 1 }]);
        (id, s.message_ref)
    };
    // Still trying (SME busy), then received.
    let (id, tp_mr) = sent_one(&mut c);
    from_network(&mut c, t0, status_report(1, tp_mr, "+15550002", 0x21));
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 1);
    assert!(ev.is_empty(), "still trying is no outcome: {ev:?}");
    from_network(&mut c, t0, status_report(2, tp_mr, "+15550002", 0x00));
    assert_eq!(drain(&mut c).1, [SmsEvent::Delivered { id }]);
    // Expired.
    let (id, tp_mr) = sent_one(&mut c);
    from_network(&mut c, t0, status_report(3, tp_mr, "+15550002", 0x46));
    assert_eq!(
        drain(&mut c).1,
        [SmsEvent::Failed {
            id,
            reason: "TP-ST 0x46 (SM validity period expired)".into()
        }]
    );
    // A report about another recipient, or nothing we sent: acked, nothing told.
    let (_, tp_mr) = sent_one(&mut c);
    from_network(&mut c, t0, status_report(4, tp_mr, "+15550003", 0x00));
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 4);
    assert!(ev.is_empty());
    assert_eq!(c.pending(), 1);
}

#[test]
fn no_rp_ack_in_time_fails_and_reports_are_not_awaited_forever() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    let id = c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0 + RP_ACK_WAIT));
    c.handle_timeout(t0 + RP_ACK_WAIT - Duration::from_millis(1));
    assert_eq!(drain(&mut c).1, []);
    c.handle_timeout(t0 + RP_ACK_WAIT);
    assert_eq!(
        drain(&mut c).1,
        [SmsEvent::Failed {
            id,
            reason: "no RP-ACK within 30 s".into()
        }]
    );
    assert_eq!(c.poll_timeout(), None);

    // Acked, then no report: forgotten a day later, silently.
    c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
    let (sent, _) = drain(&mut c);
    let (mr, _) = submit_of(&sent[0]);
    from_network(&mut c, t0, rp_ack(mr));
    drain(&mut c);
    let due = c.poll_timeout().unwrap();
    assert!(due >= t0 + Duration::from_secs(86_400));
    c.handle_timeout(due);
    assert_eq!(drain(&mut c).1, []);
    assert_eq!(c.pending(), 0);
}

#[test]
fn submissions_held_are_bounded() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    for _ in 0..MAX_SUBMISSIONS + 10 {
        c.submit(t0, "+15550002", "x", DEFAULT_SMSC).unwrap();
    }
    assert_eq!(c.pending(), MAX_SUBMISSIONS);
}

#[test]
fn refused_before_sending() {
    let mut c = SmsCore::new(1);
    let t0 = Instant::now();
    assert!(c.submit(t0, "bob", "x", DEFAULT_SMSC).is_err());
    assert!(c
        .submit(t0, "+15550002", &"가".repeat(2001), DEFAULT_SMSC)
        .is_err());
    assert!(c.submit(t0, "+15550002", "x", "sc").is_err());
    assert!(drain(&mut c).0.is_empty());
}

#[test]
fn mt_deliver_is_acked_with_its_mr_and_shown_once() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    let d = deliver(
        0x33,
        Address::from_number("+15550001"),
        ts(5),
        DCS_GSM7,
        UserData::text("hello"),
    );
    from_network(&mut c, t0, d.clone());
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 0x33);
    assert_eq!(
        ev,
        [SmsEvent::Received {
            from: "tel:+15550001".into(),
            text: "hello".into()
        }]
    );
    // The same again (the network did not get our RP-ACK): acked again, not shown again.
    from_network(&mut c, t0 + Duration::from_secs(2), d);
    let (sent, ev) = drain(&mut c);
    assert_acked(&sent, 0x33);
    assert!(ev.is_empty());
    // The same text later (another time stamp) is another message.
    let d = deliver(
        0x34,
        Address::from_number("+15550001"),
        ts(9),
        DCS_GSM7,
        UserData::text("hello"),
    );
    from_network(&mut c, t0, d);
    assert_eq!(drain(&mut c).1.len(), 1);
    // An alphanumeric sender, in UCS-2.
    let oa = Address {
        toa: TON_ALPHANUMERIC,
        value: "Bank".into(),
    };
    from_network(
        &mut c,
        t0,
        deliver(1, oa, ts(1), DCS_UCS2, UserData::text("잔액")),
    );
    assert_eq!(
        drain(&mut c).1,
        [SmsEvent::Received {
            from: "Bank".into(),
            text: "잔액".into()
        }]
    );
}

#[test]
fn mt_parts_are_shown_once_whole() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    let part = |seq: u8, text: &str| {
        deliver(
            10 + seq,
            Address::from_number("+15550001"),
            ts(seq),
            DCS_GSM7,
            UserData {
                header: vec![Ie::Concat {
                    reference: 77,
                    total: 3,
                    seq,
                    wide: false,
                }],
                body: Body::Text(text.into()),
            },
        )
    };
    for (i, (seq, text)) in [(3, "c"), (1, "a"), (1, "a"), (2, "b")].iter().enumerate() {
        from_network(&mut c, t0, part(*seq, text));
        let (sent, ev) = drain(&mut c);
        assert_acked(&sent, 10 + seq);
        if i < 3 {
            assert!(ev.is_empty(), "part {seq}: {ev:?}");
        } else {
            assert_eq!(
                ev,
                [SmsEvent::Received {
                    from: "tel:+15550001".into(),
                    text: "abc".into()
                }]
            );
        }
    }
    assert_eq!(c.reassembling(), 0);
    // Part 3 again after the message was shown: acked, not shown.
    from_network(&mut c, t0, part(3, "c"));
    assert!(drain(&mut c).1.is_empty());

    // Parts that never complete are bounded.
    for r in 0..100u16 {
        let d = deliver(
            1,
            Address::from_number("+15550001"),
            ts(0),
            DCS_GSM7,
            UserData {
                header: vec![Ie::Concat {
                    reference: 1000 + r,
                    total: 2,
                    seq: 1,
                    wide: true,
                }],
                body: Body::Text("x".into()),
            },
        );
        from_network(&mut c, t0, d);
    }
    assert_eq!(c.reassembling(), MAX_REASSEMBLY);
}

#[test]
fn what_does_not_read_gets_rp_error() {
    let t0 = Instant::now();
    let mut c = SmsCore::new(1);
    let cause_of = |c: &mut SmsCore, body: Vec<u8>| {
        c.handle(t0, Input::Message { from: sc(), body });
        let (sent, ev) = drain(c);
        assert!(ev.is_empty());
        match sent.as_slice() {
            [] => None,
            [Sent {
                rp:
                    RpMessage::Error {
                        dir: Direction::MsToNetwork,
                        mr,
                        cause,
                        ..
                    },
                ..
            }] => Some((*mr, *cause)),
            other => panic!("{other:?}"),
        }
    };
    // The RP layer reads, the TPDU does not: 111.
    let bad_tpdu = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 5,
        originator: Some(Address::from_number(DEFAULT_SMSC)),
        destination: None,
        tpdu: vec![0x04, 0x0b],
    };
    assert_eq!(cause_of(&mut c, bad_tpdu.encode().unwrap()), Some((5, 111)));
    // An RP-DATA cut short: 96.
    assert_eq!(cause_of(&mut c, vec![0x01, 6, 0x05]), Some((6, 96)));
    // A reserved type: 97; an RP-SMMA sent to a phone: 97.
    assert_eq!(cause_of(&mut c, vec![0x07, 7]), Some((7, 97)));
    assert_eq!(cause_of(&mut c, vec![0x06, 8]), Some((8, 97)));
    // Nothing to answer.
    assert_eq!(cause_of(&mut c, vec![0x01]), None);
    assert_eq!(cause_of(&mut c, vec![]), None);
    // An SMS-SUBMIT sent to a phone in RP-DATA reads as a SUBMIT-REPORT and is not one
    // the phone takes: 111.
    let odd = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 9,
        originator: None,
        destination: None,
        tpdu: Tpdu::SubmitReport(SubmitReport {
            failure: None,
            timestamp: ts(0),
        })
        .encode()
        .unwrap(),
    };
    assert_eq!(cause_of(&mut c, odd.encode().unwrap()), Some((9, 111)));
}

/// An MMS notification in two SMS parts (8-bit, concatenation and WAP Push port headers):
/// each part is acknowledged with its RP-ACK, a copy of a part is acknowledged and dropped,
/// and the notification comes once, whole, from the SMS sender.
#[test]
fn an_mms_notification_in_two_parts_is_acknowledged_and_comes_once() {
    use crate::mms::{bearer, Expiry, MessageClass, Notification, Push};
    let mut c = SmsCore::new(1);
    let now = Instant::now();
    let n = Notification {
        transaction_id: "m1-0".into(),
        version: crate::mms::pdu::VERSION_1_2,
        from: Some("4100/TYPE=PLMN".into()),
        subject: Some("A rather long subject that makes this notification take two SMS".into()),
        class: MessageClass::Personal,
        size: 5,
        expiry: Expiry::Relative(60),
        content_location: "http://127.0.0.1:8084/ums/v1/media/0123456789abcdef0123456789abcdef"
            .into(),
    };
    let push = Push::mms(3, n.encode().unwrap()).encode().unwrap();
    let parts = bearer::short_messages(&push, 9).unwrap();
    assert_eq!(parts.len(), 2);
    let part = |i: usize| {
        let p = &parts[i];
        let h = crate::sms::user_data::parse_header(&p[1..1 + p[0] as usize]).unwrap();
        UserData {
            header: h,
            body: Body::Octets(p[1 + p[0] as usize..].to_vec()),
        }
    };
    let oa = Address::from_number("+15554100");
    for (mr, i) in [(1u8, 0usize), (2, 0), (3, 1)] {
        from_network(&mut c, now, deliver(mr, oa.clone(), ts(5), 0x04, part(i)));
        let (sent, events) = drain(&mut c);
        assert_eq!(sent.len(), 1, "one RP-ACK for RP-DATA {mr}");
        assert!(matches!(sent[0].rp, RpMessage::Ack { mr: m, .. } if m == mr));
        if mr < 3 {
            assert!(events.is_empty(), "{events:?}");
        } else {
            let [SmsEvent::Mms {
                from, notification, ..
            }] = &events[..]
            else {
                panic!("{events:?}")
            };
            assert_eq!((from.as_str(), notification), ("tel:+15554100", &n));
        }
    }
}
