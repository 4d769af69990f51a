//! The socket-free session core driven with a fake clock: binds, state rules, submissions and
//! their window, deliveries, timers.

use std::time::{Duration, Instant, SystemTime};

use super::session::{BindKind, CloseReason, Session, SessionConfig, SessionEvent};
use super::DeliverError;
use crate::smpp::{
    Address, Bind, Body, CommandId, CommandStatus, DataSm, DestAddress, MessageIdResp, Pdu, Sm,
    SmParams, SubmitMulti, Tlv,
};

fn config() -> SessionConfig {
    SessionConfig {
        window: 4,
        bind_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
        response_timeout: Duration::from_secs(10),
    }
}

struct Harness {
    s: Session,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        Harness {
            s: Session::new(config(), now),
            now,
        }
    }

    fn input(&mut self, pdu: Pdu) {
        let bytes = pdu.encode().expect("test PDU encodes");
        self.s.handle_frame(self.now, SystemTime::now(), &bytes);
    }

    fn sent(&mut self) -> Vec<Pdu> {
        std::iter::from_fn(|| self.s.poll_transmit())
            .map(|t| Pdu::decode(&t.bytes).expect("the core sends valid PDUs"))
            .collect()
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
    }

    /// Binds as `kind` and answers the bind with Ok.
    fn bound(kind: BindKind) -> Self {
        let mut h = Harness::new();
        h.input(Pdu::new(1, bind_body(kind, "esme")));
        let ev = h.events();
        assert!(matches!(ev[..], [SessionEvent::Bind { sequence: 1, .. }]));
        h.s.bind_answer(h.now, 1, Ok("esme".into()));
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].status.is_ok());
        h
    }
}

fn bind_body(kind: BindKind, system_id: &str) -> Body {
    let b = Bind {
        system_id: system_id.into(),
        password: "pw".into(),
        interface_version: 0x34,
        ..Bind::default()
    };
    match kind {
        BindKind::Transmitter => Body::BindTransmitter(b),
        BindKind::Receiver => Body::BindReceiver(b),
        BindKind::Transceiver => Body::BindTransceiver(b),
    }
}

fn sm(dest: &str, text: &[u8]) -> Sm {
    Sm {
        source: Address::international("4915100000001"),
        dest: Address::international(dest),
        params: SmParams {
            short_message: text.to_vec(),
            ..SmParams::default()
        },
        ..Sm::default()
    }
}

#[test]
fn bind_ok_answers_with_the_interface_version() {
    let mut h = Harness::new();
    h.input(Pdu::new(7, bind_body(BindKind::Transceiver, "esme")));
    h.s.bind_answer(h.now, 7, Ok("esme".into()));
    let sent = h.sent();
    let Body::BindTransceiverResp(r) = &sent[0].body else {
        panic!("{sent:?}")
    };
    assert_eq!(sent[0].sequence, 7);
    assert_eq!(r.tlvs, [Tlv::ScInterfaceVersion(0x34)]);
    assert_eq!(h.s.bound(), Some(("esme", BindKind::Transceiver)));
}

#[test]
fn an_old_esme_gets_no_interface_version() {
    let mut h = Harness::new();
    let Body::BindTransmitter(mut b) = bind_body(BindKind::Transmitter, "esme") else {
        unreachable!()
    };
    b.interface_version = 0x33;
    h.input(Pdu::new(1, Body::BindTransmitter(b)));
    h.s.bind_answer(h.now, 1, Ok("esme".into()));
    let Body::BindTransmitterResp(r) = &h.sent()[0].body else {
        panic!()
    };
    assert!(r.tlvs.is_empty());
}

#[test]
fn a_refused_bind_leaves_the_session_open_for_another() {
    let mut h = Harness::new();
    h.input(Pdu::new(1, bind_body(BindKind::Receiver, "esme")));
    h.s.bind_answer(h.now, 1, Err(CommandStatus::BindFail));
    let sent = h.sent();
    assert_eq!(sent[0].status, CommandStatus::BindFail);
    assert_eq!(sent[0].command_id(), CommandId::BindReceiverResp);
    assert_eq!(h.s.bound(), None);
    h.input(Pdu::new(2, bind_body(BindKind::Receiver, "esme")));
    assert!(matches!(
        h.events()[..],
        [_, SessionEvent::Bind { sequence: 2, .. }]
    ));
}

#[test]
fn second_bind_is_already_bound() {
    let mut h = Harness::bound(BindKind::Transmitter);
    h.input(Pdu::new(2, bind_body(BindKind::Receiver, "esme")));
    let sent = h.sent();
    assert_eq!(sent[0].status, CommandStatus::AlyBnd);
    assert_eq!(sent[0].command_id(), CommandId::BindReceiverResp);
    assert!(h.events().is_empty());
}

#[test]
fn commands_before_bind_get_invbndsts() {
    let mut h = Harness::new();
    h.input(Pdu::new(1, Body::SubmitSm(sm("491", b"x"))));
    h.input(Pdu::new(2, Body::Unbind));
    h.input(Pdu::new(3, Body::QuerySm(Default::default())));
    h.input(Pdu::new(4, Body::AlertNotification(Default::default())));
    h.input(Pdu::new(5, Body::EnquireLink));
    let got: Vec<_> = h
        .sent()
        .iter()
        .map(|p| (p.sequence, p.command_id(), p.status))
        .collect();
    assert_eq!(
        got,
        [
            (1, CommandId::SubmitSmResp, CommandStatus::InvBndSts),
            (2, CommandId::UnbindResp, CommandStatus::InvBndSts),
            (3, CommandId::QuerySmResp, CommandStatus::InvBndSts),
            (4, CommandId::GenericNack, CommandStatus::InvBndSts),
            (5, CommandId::EnquireLinkResp, CommandStatus::Ok),
        ]
    );
    assert!(h.s.closed().is_none());
}

#[test]
fn a_receiver_may_not_submit() {
    let mut h = Harness::bound(BindKind::Receiver);
    h.input(Pdu::new(2, Body::SubmitSm(sm("491", b"x"))));
    assert_eq!(h.sent()[0].status, CommandStatus::InvBndSts);
    assert!(h.events().is_empty());
}

#[test]
fn submit_goes_to_the_sc_and_the_resp_carries_its_id() {
    let mut h = Harness::bound(BindKind::Transmitter);
    let mut m = sm("4917600000002", b"hello");
    m.params.validity_period = "000000010000000R".into();
    m.params.registered_delivery.0 = 1;
    h.input(Pdu::new(9, Body::SubmitSm(m)));
    assert!(h.sent().is_empty(), "no resp before the SC stored it");
    let ev = h.events();
    let [SessionEvent::Submit {
        token, messages, ..
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(messages[0].system_id, "esme");
    assert_eq!(messages[0].payload, b"hello");
    assert_eq!(messages[0].validity_secs, Some(3600));
    assert_eq!(messages[0].registered_delivery, 1);
    h.s.submitted(*token, vec![Ok("m-1".into())]);
    let sent = h.sent();
    assert_eq!(sent[0].sequence, 9);
    assert_eq!(
        sent[0].body,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "m-1".into(),
            tlvs: vec![]
        })
    );
}

#[test]
fn submit_checks_before_the_sc() {
    let mut h = Harness::bound(BindKind::Transceiver);
    let mut sched = sm("491", b"x");
    sched.params.schedule_delivery_time = "000000010000000R".into();
    let mut expiry = sm("491", b"x");
    expiry.params.validity_period = "garbage".into();
    let mut both = sm("491", b"x");
    both.tlvs.push(Tlv::MessagePayload(b"y".to_vec()));
    for (i, (m, want)) in [
        (sm("", b"x"), CommandStatus::InvDstAdr),
        (sched, CommandStatus::InvSched),
        (expiry, CommandStatus::InvExpiry),
        (both, CommandStatus::InvMsgLen),
    ]
    .into_iter()
    .enumerate()
    {
        h.input(Pdu::new(i as u32 + 10, Body::SubmitSm(m)));
        let sent = h.sent();
        assert_eq!(sent[0].status, want);
    }
    assert!(h.events().is_empty());
    // An empty message is allowed (sm_length 0), and message_payload alone is the payload.
    h.input(Pdu::new(20, Body::SubmitSm(sm("491", b""))));
    let mut long = sm("491", b"");
    long.tlvs.push(Tlv::MessagePayload(vec![b'z'; 300]));
    h.input(Pdu::new(21, Body::SubmitSm(long)));
    let ev = h.events();
    let payloads: Vec<usize> = ev
        .iter()
        .map(|e| match e {
            SessionEvent::Submit { messages, .. } => messages[0].payload.len(),
            _ => usize::MAX,
        })
        .collect();
    assert_eq!(payloads, [0, 300]);
}

#[test]
fn data_sm_uses_message_payload_and_qos_time_to_live() {
    let mut h = Harness::bound(BindKind::Transmitter);
    let d = DataSm {
        source: Address::international("4915100000001"),
        dest: Address::international("4917600000002"),
        tlvs: vec![
            Tlv::MessagePayload(b"data".to_vec()),
            Tlv::QosTimeToLive(600),
        ],
        ..DataSm::default()
    };
    h.input(Pdu::new(3, Body::DataSm(d)));
    let ev = h.events();
    let [SessionEvent::Submit {
        token, messages, ..
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(messages[0].payload, b"data");
    assert_eq!(messages[0].validity_secs, Some(600));
    h.s.submitted(*token, vec![Err(CommandStatus::MsgQFul)]);
    let sent = h.sent();
    assert_eq!(
        (sent[0].command_id(), sent[0].status),
        (CommandId::DataSmResp, CommandStatus::MsgQFul)
    );
}

#[test]
fn submit_multi_is_split_and_failures_listed() {
    let mut h = Harness::bound(BindKind::Transmitter);
    let m = SubmitMulti {
        source: Address::international("4915100000001"),
        dests: vec![
            DestAddress::Sme(Address::international("4917600000002")),
            DestAddress::DistributionList("friends".into()),
            DestAddress::Sme(Address::international("")),
            DestAddress::Sme(Address::international("4917600000003")),
        ],
        params: SmParams {
            short_message: b"hi all".to_vec(),
            ..SmParams::default()
        },
        ..SubmitMulti::default()
    };
    h.input(Pdu::new(4, Body::SubmitMulti(m)));
    let ev = h.events();
    let [SessionEvent::Submit {
        token, messages, ..
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    let dests: Vec<&str> = messages.iter().map(|m| m.dest.addr.as_str()).collect();
    assert_eq!(dests, ["4917600000002", "4917600000003"]);
    h.s.submitted(
        *token,
        vec![Ok("m-7".into()), Err(CommandStatus::InvDstTon)],
    );
    let sent = h.sent();
    let Body::SubmitMultiResp(r) = &sent[0].body else {
        panic!("{sent:?}")
    };
    assert!(sent[0].status.is_ok());
    assert_eq!(r.message_id, "m-7");
    let failed: Vec<(&str, CommandStatus)> = r
        .unsuccess
        .iter()
        .map(|u| (u.dest.addr.as_str(), u.error_status))
        .collect();
    assert_eq!(
        failed,
        [
            ("friends", CommandStatus::CntSubDl),
            ("", CommandStatus::InvDstAdr),
            ("4917600000003", CommandStatus::InvDstTon),
        ]
    );
}

#[test]
fn unsupported_commands_fail_with_their_own_status() {
    let mut h = Harness::bound(BindKind::Transmitter);
    h.input(Pdu::new(2, Body::QuerySm(Default::default())));
    h.input(Pdu::new(3, Body::CancelSm(Default::default())));
    h.input(Pdu::new(4, Body::ReplaceSm(Default::default())));
    h.input(Pdu::new(5, Body::DeliverSm(sm("491", b"x"))));
    let got: Vec<_> = h.sent().iter().map(|p| p.status).collect();
    assert_eq!(
        got,
        [
            CommandStatus::QueryFail,
            CommandStatus::CancelFail,
            CommandStatus::ReplaceFail,
            CommandStatus::InvCmdId,
        ]
    );
}

#[test]
fn the_window_stops_reading_and_answers_go_in_completion_order() {
    let mut h = Harness::bound(BindKind::Transmitter);
    for seq in 10..14 {
        assert!(h.s.can_read());
        h.input(Pdu::new(seq, Body::SubmitSm(sm("491", b"x"))));
    }
    assert!(!h.s.can_read(), "window of 4 full");
    let tokens: Vec<u64> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Submit { token, .. } => Some(token),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 4);
    h.s.submitted(tokens[2], vec![Ok("c".into())]);
    assert!(h.s.can_read());
    h.s.submitted(tokens[0], vec![Ok("a".into())]);
    let seqs: Vec<u32> = h.sent().iter().map(|p| p.sequence).collect();
    assert_eq!(seqs, [12, 10]);
}

#[test]
fn a_malformed_body_gets_its_resp_and_the_session_goes_on() {
    let mut h = Harness::bound(BindKind::Transmitter);
    let mut bytes = Pdu::new(5, Body::SubmitSm(sm("491", b"x")))
        .encode()
        .unwrap();
    bytes.truncate(bytes.len() - 3);
    let len = bytes.len() as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    h.s.handle_frame(h.now, SystemTime::now(), &bytes);
    let sent = h.sent();
    assert_eq!(
        (sent[0].sequence, sent[0].command_id()),
        (5, CommandId::SubmitSmResp)
    );
    assert!(!sent[0].status.is_ok());
    h.input(Pdu::new(6, Body::EnquireLink));
    assert_eq!(h.sent()[0].command_id(), CommandId::EnquireLinkResp);
    assert!(h.s.closed().is_none());
}

#[test]
fn deliver_and_its_outcomes() {
    let mut h = Harness::bound(BindKind::Receiver);
    let a = h.s.deliver(h.now, sm("491", b"mo")).unwrap();
    let b = h.s.deliver(h.now, sm("491", b"mo")).unwrap();
    let c = h.s.deliver(h.now, sm("491", b"mo")).unwrap();
    let sent = h.sent();
    assert!(sent.iter().all(|p| p.command_id() == CommandId::DeliverSm));
    h.input(Pdu::new(a, Body::DeliverSmResp(MessageIdResp::default())));
    h.input(Pdu {
        status: CommandStatus::RxTAppn,
        sequence: b,
        body: Body::DeliverSmResp(MessageIdResp::default()),
    });
    h.advance(Duration::from_secs(10));
    let outcomes: Vec<(u32, Result<(), DeliverError>)> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Delivered { sequence, result } => Some((sequence, result)),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (a, Ok(())),
            (b, Err(DeliverError::Refused(CommandStatus::RxTAppn))),
            (c, Err(DeliverError::Timeout)),
        ]
    );
}

#[test]
fn deliver_never_goes_to_a_transmitter_and_close_fails_the_rest() {
    let mut h = Harness::bound(BindKind::Transmitter);
    assert_eq!(
        h.s.deliver(h.now, sm("491", b"x")),
        Err(DeliverError::NotBound)
    );
    let mut h = Harness::bound(BindKind::Transceiver);
    let seq = h.s.deliver(h.now, sm("491", b"x")).unwrap();
    h.input(Pdu::new(50, Body::Unbind));
    let sent = h.sent();
    assert_eq!(
        sent.last().map(|p| p.command_id()),
        Some(CommandId::UnbindResp)
    );
    let ev = h.events();
    assert!(matches!(
        ev[..],
        [
            SessionEvent::Delivered {
                sequence: _,
                result: Err(DeliverError::Closed)
            },
            SessionEvent::Closed(CloseReason::Unbound)
        ]
    ));
    assert!(matches!(ev[0], SessionEvent::Delivered { sequence, .. } if sequence == seq));
    assert_eq!(
        h.s.deliver(h.now, sm("491", b"x")),
        Err(DeliverError::Closed)
    );
}

#[test]
fn no_bind_in_time_closes() {
    let mut h = Harness::new();
    h.advance(Duration::from_secs(9));
    assert!(h.s.closed().is_none());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.s.closed(), Some(CloseReason::BindTimeout));
}

#[test]
fn quiet_link_gets_enquire_link_then_closes_without_answer() {
    let mut h = Harness::bound(BindKind::Transceiver);
    h.advance(Duration::from_secs(30));
    let sent = h.sent();
    assert_eq!(sent[0].command_id(), CommandId::EnquireLink);
    // Answered: the link lives, and the next one comes a quarter idle later.
    h.input(Pdu::new(sent[0].sequence, Body::EnquireLinkResp));
    h.advance(Duration::from_secs(29));
    assert!(h.sent().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.sent()[0].command_id(), CommandId::EnquireLink);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.s.closed(), Some(CloseReason::NoLinkResponse));
}

#[test]
fn shutdown_unbinds_and_closes_on_unbind_resp() {
    let mut h = Harness::bound(BindKind::Transmitter);
    h.s.unbind(h.now);
    let sent = h.sent();
    assert_eq!(sent[0].command_id(), CommandId::Unbind);
    assert!(h.s.closed().is_none());
    h.input(Pdu::new(sent[0].sequence, Body::UnbindResp));
    assert_eq!(h.s.closed(), Some(CloseReason::Shutdown));
}

#[test]
fn bad_framing_nacks_and_closes() {
    let mut h = Harness::bound(BindKind::Transmitter);
    let header = crate::smpp::Header {
        command_length: 8,
        command_id: 4,
        command_status: 0,
        sequence_number: 77,
    };
    h.s.bad_framing(&header);
    let sent = h.sent();
    assert_eq!(
        (sent[0].command_id(), sent[0].status, sent[0].sequence),
        (CommandId::GenericNack, CommandStatus::InvCmdLen, 77)
    );
    assert_eq!(h.s.closed(), Some(CloseReason::BadFraming));
}

#[test]
fn summaries_name_command_sequence_and_status() {
    let ok = Pdu::new(3, Body::SubmitSm(sm("491", b"x")))
        .encode()
        .unwrap();
    assert_eq!(super::session::summary(&ok), "submit_sm seq=3");
    let nack = Pdu {
        status: CommandStatus::InvBndSts,
        sequence: 4,
        body: Body::GenericNack,
    }
    .encode()
    .unwrap();
    assert_eq!(
        super::session::summary(&nack),
        "generic_nack seq=4 ESME_RINVBNDSTS"
    );
}
