//! The SMPP server over real TCP on 127.0.0.1, with our own codec as the ESME and fake
//! service centres.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::session::BindKind;
use super::{
    BoxFut, DeliverError, ServiceCentre, SmppAccount, SmppServer, SmppSettings, Submitted,
};
use crate::smpp::{
    frame, Address, Bind, Body, CommandId, CommandStatus, Framing, MessageIdResp, Pdu, Sm,
    SmParams, Tlv, DEFAULT_MAX_PDU,
};

/// Waits in tests are bounded by this (a hung server fails the test, it does not hang it).
const LIMIT: Duration = Duration::from_secs(10);

/// Records submissions; with `gate`, each submit waits until `gate` are in flight at once.
#[derive(Default)]
struct FakeSc {
    got: Mutex<Vec<Submitted>>,
    bound: Mutex<Vec<String>>,
    gate: Option<usize>,
    in_flight: AtomicUsize,
    all_in: Notify,
}

impl FakeSc {
    fn gated(n: usize) -> Self {
        FakeSc {
            gate: Some(n),
            ..FakeSc::default()
        }
    }
}

impl ServiceCentre for Arc<FakeSc> {
    fn submit(&self, m: Submitted) -> BoxFut<Result<String, CommandStatus>> {
        let me = self.clone();
        Box::pin(async move {
            let n = {
                let mut got = me.got.lock().unwrap();
                got.push(m);
                got.len()
            };
            if let Some(gate) = me.gate {
                let now_in = me.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                if now_in >= gate {
                    me.all_in.notify_waiters();
                } else {
                    let notified = me.all_in.notified();
                    if me.in_flight.load(Ordering::SeqCst) < gate {
                        // Not all in flight at once within the limit: the server serialised.
                        if tokio::time::timeout(LIMIT / 2, notified).await.is_err() {
                            return Err(CommandStatus::SysErr);
                        }
                    }
                }
            }
            Ok(format!("id-{n}"))
        })
    }

    fn bound(&self, system_id: &str) {
        self.bound.lock().unwrap().push(system_id.to_string());
    }
}

fn settings() -> SmppSettings {
    SmppSettings {
        accounts: vec![SmppAccount {
            system_id: "esme".into(),
            password: "secret".into(),
        }],
        ..SmppSettings::default()
    }
}

struct Lab {
    server: Arc<SmppServer>,
    sc: Arc<FakeSc>,
    addr: SocketAddr,
    shut: watch::Sender<bool>,
    run: tokio::task::JoinHandle<()>,
}

async fn start(settings: SmppSettings, sc: FakeSc) -> Lab {
    start_traced(settings, sc, None).await
}

async fn start_traced(
    settings: SmppSettings,
    sc: FakeSc,
    trace: Option<crate::trace::Trace>,
) -> Lab {
    let sc = Arc::new(sc);
    let server = SmppServer::new(settings, Arc::new(sc.clone()), trace);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shut, rx) = watch::channel(false);
    let run = tokio::spawn(server.clone().run(listener, rx));
    Lab {
        server,
        sc,
        addr,
        shut,
        run,
    }
}

/// An ESME made of our codec.
struct Esme {
    stream: TcpStream,
    buf: BytesMut,
    seq: u32,
}

impl Esme {
    async fn connect(addr: SocketAddr) -> Esme {
        Esme {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            seq: 0,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a request with the next sequence number; returns it.
    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        let seq = self.seq;
        self.send_raw(&Pdu::new(seq, body).encode().unwrap()).await;
        seq
    }

    async fn answer(&mut self, pdu: Pdu) {
        self.send_raw(&pdu.encode().unwrap()).await;
    }

    /// The next PDU, or None on EOF.
    async fn recv(&mut self) -> Option<Pdu> {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let Framing::Complete(n) = frame(&self.buf, DEFAULT_MAX_PDU) {
                    let b = self.buf.split_to(n);
                    return Some(Pdu::decode(&b).expect("the server sends valid PDUs"));
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("the server answers in time")
    }

    /// A request and its answer.
    async fn call(&mut self, body: Body) -> Pdu {
        let seq = self.send(body).await;
        let p = self.recv().await.expect("an answer");
        assert_eq!(p.sequence, seq, "{p:?}");
        p
    }

    async fn bind(&mut self, kind: BindKind, system_id: &str, password: &str) -> Pdu {
        self.call(bind_body(kind, system_id, password)).await
    }

    async fn bound(addr: SocketAddr, kind: BindKind) -> Esme {
        let mut e = Esme::connect(addr).await;
        let r = e.bind(kind, "esme", "secret").await;
        assert_eq!(r.status, CommandStatus::Ok, "{r:?}");
        e
    }

    /// True when the server closed the connection (EOF, after anything still in flight).
    async fn closed(&mut self) -> bool {
        while self.recv().await.is_some() {}
        true
    }
}

fn bind_body(kind: BindKind, system_id: &str, password: &str) -> Body {
    let b = Bind {
        system_id: system_id.into(),
        password: password.into(),
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

/// Polls `f` until true (bounded by LIMIT).
async fn eventually(f: impl Fn() -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition reached in time");
}

#[tokio::test]
async fn bind_ok_for_each_bind_type() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut held = Vec::new();
    for (kind, resp) in [
        (BindKind::Transmitter, CommandId::BindTransmitterResp),
        (BindKind::Receiver, CommandId::BindReceiverResp),
        (BindKind::Transceiver, CommandId::BindTransceiverResp),
    ] {
        let mut e = Esme::connect(lab.addr).await;
        let r = e.bind(kind, "esme", "secret").await;
        assert_eq!((r.command_id(), r.status), (resp, CommandStatus::Ok));
        let (Body::BindTransmitterResp(b)
        | Body::BindReceiverResp(b)
        | Body::BindTransceiverResp(b)) = r.body
        else {
            unreachable!()
        };
        assert_eq!(b.system_id, super::SMSC_SYSTEM_ID);
        assert_eq!(b.tlvs, [Tlv::ScInterfaceVersion(0x34)]);
        held.push(e);
    }
    assert_eq!(lab.server.sessions(), 3);
    assert!(lab.server.is_bound("esme"));
    // The SC hears of the receiver and the transceiver, not the transmitter.
    assert_eq!(*lab.sc.bound.lock().unwrap(), ["esme", "esme"]);
}

#[tokio::test]
async fn bad_password_then_throttled_even_with_the_right_one() {
    let lab = start(
        SmppSettings {
            max_bind_failures: 2,
            bind_block: Duration::from_secs(60),
            ..settings()
        },
        FakeSc::default(),
    )
    .await;
    let mut e = Esme::connect(lab.addr).await;
    for _ in 0..2 {
        let r = e.bind(BindKind::Transmitter, "esme", "wrong").await;
        assert_eq!(r.status, CommandStatus::BindFail);
    }
    let r = e.bind(BindKind::Transmitter, "esme", "secret").await;
    assert_eq!(r.status, CommandStatus::BindFail, "blocked");
    assert!(!lab.server.is_bound("esme"));
    // The block holds for a new connection too.
    let mut e2 = Esme::connect(lab.addr).await;
    let r = e2.bind(BindKind::Transmitter, "esme", "secret").await;
    assert_eq!(r.status, CommandStatus::BindFail);
}

#[tokio::test]
async fn unknown_system_id_answers_like_a_bad_password() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut raw = Vec::new();
    for (id, pw) in [("esme", "wrong"), ("nobody", "secret")] {
        let mut e = Esme::connect(lab.addr).await;
        e.send_raw(
            &Pdu::new(1, bind_body(BindKind::Transceiver, id, pw))
                .encode()
                .unwrap(),
        )
        .await;
        let r = e.recv().await.unwrap();
        assert_eq!(r.status, CommandStatus::BindFail);
        raw.push(r.encode().unwrap());
    }
    assert_eq!(raw[0], raw[1], "the same bytes on the wire");
}

#[tokio::test]
async fn commands_before_bind_double_bind_and_submit_on_receiver() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::connect(lab.addr).await;
    let r = e.call(Body::SubmitSm(sm("4917600000002", b"x"))).await;
    assert_eq!(r.status, CommandStatus::InvBndSts);
    let r = e.call(Body::EnquireLink).await;
    assert_eq!(
        (r.command_id(), r.status),
        (CommandId::EnquireLinkResp, CommandStatus::Ok)
    );
    let r = e.bind(BindKind::Receiver, "esme", "secret").await;
    assert!(r.status.is_ok());
    let r = e.bind(BindKind::Transceiver, "esme", "secret").await;
    assert_eq!(r.status, CommandStatus::AlyBnd);
    let r = e.call(Body::SubmitSm(sm("4917600000002", b"x"))).await;
    assert_eq!(r.status, CommandStatus::InvBndSts);
    assert!(lab.sc.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn submit_reaches_the_sc_and_the_resp_has_its_id() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transmitter).await;
    let r = e.call(Body::SubmitSm(sm("4917600000002", b"hello"))).await;
    assert_eq!(
        r.body,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "id-1".into(),
            tlvs: vec![]
        })
    );
    let got = lab.sc.got.lock().unwrap().clone();
    assert_eq!(got[0].system_id, "esme");
    assert_eq!(got[0].payload, b"hello");
    assert_eq!(got[0].dest.addr, "4917600000002");
}

#[tokio::test]
async fn twenty_pipelined_submits_are_all_outstanding_at_once() {
    let lab = start(
        SmppSettings {
            window: 20,
            ..settings()
        },
        FakeSc::gated(20),
    )
    .await;
    let mut e = Esme::bound(lab.addr, BindKind::Transceiver).await;
    for i in 0..20 {
        e.send(Body::SubmitSm(sm(
            "4917600000002",
            format!("m{i}").as_bytes(),
        )))
        .await;
    }
    let mut seqs = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = e.recv().await.unwrap();
        assert_eq!(r.status, CommandStatus::Ok, "the SC saw all 20 at once");
        let Body::SubmitSmResp(m) = r.body else {
            panic!("{r:?}")
        };
        ids.insert(m.message_id);
        seqs.push(r.sequence);
    }
    seqs.sort();
    assert_eq!(seqs, (2..22).collect::<Vec<u32>>(), "bind was 1");
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn deliver_to_receiver_and_transceiver_ok_and_refused() {
    let lab = start(settings(), FakeSc::default()).await;
    for kind in [BindKind::Receiver, BindKind::Transceiver] {
        let mut e = Esme::bound(lab.addr, kind).await;
        for status in [CommandStatus::Ok, CommandStatus::RxPAppn] {
            let server = lab.server.clone();
            let d =
                tokio::spawn(
                    async move { server.deliver("esme", sm("4915100000001", b"mo")).await },
                );
            let p = e.recv().await.unwrap();
            let Body::DeliverSm(got) = &p.body else {
                panic!("{p:?}")
            };
            assert_eq!(got.params.short_message, b"mo");
            e.answer(Pdu {
                status,
                sequence: p.sequence,
                body: Body::DeliverSmResp(MessageIdResp::default()),
            })
            .await;
            let want = if status.is_ok() {
                Ok(())
            } else {
                Err(DeliverError::Refused(status))
            };
            assert_eq!(d.await.unwrap(), want);
        }
        e.call(Body::Unbind).await;
        assert!(e.closed().await);
        eventually(|| !lab.server.is_bound("esme")).await;
    }
}

#[tokio::test]
async fn deliver_not_bound_and_timeout() {
    let lab = start(
        SmppSettings {
            response_timeout: Duration::from_millis(300),
            ..settings()
        },
        FakeSc::default(),
    )
    .await;
    let sm1 = || sm("4915100000001", b"mo");
    assert_eq!(
        lab.server.deliver("esme", sm1()).await,
        Err(DeliverError::NotBound)
    );
    let _tx = Esme::bound(lab.addr, BindKind::Transmitter).await;
    assert_eq!(
        lab.server.deliver("esme", sm1()).await,
        Err(DeliverError::NotBound),
        "never to a transmitter"
    );
    let mut rx = Esme::bound(lab.addr, BindKind::Receiver).await;
    assert_eq!(
        lab.server.deliver("esme", sm1()).await,
        Err(DeliverError::Timeout)
    );
    let p = rx.recv().await.unwrap();
    assert_eq!(p.command_id(), CommandId::DeliverSm, "it was sent");
}

#[tokio::test]
async fn enquire_link_both_ways_and_idle_close() {
    let lab = start(
        SmppSettings {
            // enquire_link after 500 ms of quiet, closed 1 s after an unanswered one.
            idle_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            ..settings()
        },
        FakeSc::default(),
    )
    .await;
    let mut e = Esme::bound(lab.addr, BindKind::Transceiver).await;
    let r = e.call(Body::EnquireLink).await;
    assert_eq!(r.command_id(), CommandId::EnquireLinkResp);
    // The server asks after a quiet spell; answered, the session lives on.
    let p = e.recv().await.unwrap();
    assert_eq!(p.command_id(), CommandId::EnquireLink);
    e.answer(Pdu::new(p.sequence, Body::EnquireLinkResp)).await;
    let p = e.recv().await.unwrap();
    assert_eq!(p.command_id(), CommandId::EnquireLink, "asked again");
    // Not answered: closed.
    assert!(e.closed().await);
    eventually(|| lab.server.sessions() == 0).await;
}

#[tokio::test]
async fn unbind_answers_and_closes() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transmitter).await;
    assert_eq!(lab.server.sessions(), 1);
    let r = e.call(Body::Unbind).await;
    assert_eq!(
        (r.command_id(), r.status),
        (CommandId::UnbindResp, CommandStatus::Ok)
    );
    assert!(e.closed().await);
    eventually(|| lab.server.sessions() == 0).await;
}

#[tokio::test]
async fn malformed_body_gets_its_resp_and_the_session_goes_on() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transmitter).await;
    // submit_sm whose sm_length says more than the body holds.
    let mut bytes = Pdu::new(9, Body::SubmitSm(sm("4917600000002", b"hello")))
        .encode()
        .unwrap();
    let cut = bytes.len() - 2;
    bytes.truncate(cut);
    bytes[..4].copy_from_slice(&(cut as u32).to_be_bytes());
    e.send_raw(&bytes).await;
    let r = e.recv().await.unwrap();
    assert_eq!(
        (r.sequence, r.command_id(), r.status),
        (9, CommandId::SubmitSmResp, CommandStatus::InvMsgLen)
    );
    let r = e.call(Body::SubmitSm(sm("4917600000002", b"ok"))).await;
    assert!(r.status.is_ok(), "{r:?}");
}

#[tokio::test]
async fn bad_command_length_gets_generic_nack_and_close() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transmitter).await;
    let mut header = Vec::new();
    for w in [8u32, 4, 0, 33] {
        header.extend_from_slice(&w.to_be_bytes());
    }
    e.send_raw(&header).await;
    let r = e.recv().await.unwrap();
    assert_eq!(
        (r.command_id(), r.status, r.sequence),
        (CommandId::GenericNack, CommandStatus::InvCmdLen, 33)
    );
    assert!(e.closed().await);
    drop(lab);
}

#[tokio::test]
async fn connections_over_the_cap_are_closed() {
    let lab = start(
        SmppSettings {
            max_connections: 2,
            ..settings()
        },
        FakeSc::default(),
    )
    .await;
    let _a = Esme::bound(lab.addr, BindKind::Transmitter).await;
    let _b = Esme::bound(lab.addr, BindKind::Transmitter).await;
    let mut c = Esme::connect(lab.addr).await;
    c.send(bind_body(BindKind::Transmitter, "esme", "secret"))
        .await;
    assert!(c.recv().await.is_none(), "closed without an answer");
}

#[tokio::test]
async fn shutdown_unbinds_bound_sessions() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transceiver).await;
    lab.shut.send(true).unwrap();
    let p = e.recv().await.unwrap();
    assert_eq!(p.command_id(), CommandId::Unbind);
    e.answer(Pdu::new(p.sequence, Body::UnbindResp)).await;
    assert!(e.closed().await);
    tokio::time::timeout(LIMIT, lab.run)
        .await
        .expect("run returns")
        .unwrap();
}

#[tokio::test]
async fn the_trace_records_pdus_without_the_password() {
    let trace = crate::trace::Trace::enabled();
    let lab = start_traced(settings(), FakeSc::default(), Some(trace.clone())).await;
    let mut e = Esme::bound(lab.addr, BindKind::Transmitter).await;
    e.call(Body::SubmitSm(sm("4917600000002", b"x"))).await;
    let events = trace.events();
    let lines: Vec<&str> = events.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        lines,
        [
            "bind_transmitter seq=1",
            "bind_transmitter_resp seq=1",
            "submit_sm seq=2",
            "submit_sm_resp seq=2",
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.protocol == crate::trace::Protocol::Smpp));
    let bind = &events[0].bytes;
    assert!(!bind.windows(6).any(|w| w == b"secret"));
}

#[tokio::test]
async fn a_system_id_holds_at_most_eight_sessions() {
    let lab = start(settings(), FakeSc::default()).await;
    let mut held = Vec::new();
    for _ in 0..super::MAX_SESSIONS_PER_SYSTEM_ID {
        held.push(Esme::bound(lab.addr, BindKind::Receiver).await);
    }
    let mut e = Esme::connect(lab.addr).await;
    let r = e.bind(BindKind::Receiver, "esme", "secret").await;
    assert_eq!(r.status, CommandStatus::BindFail);
    // One leaves: there is room again.
    held[0].call(Body::Unbind).await;
    eventually(|| lab.server.sessions() == super::MAX_SESSIONS_PER_SYSTEM_ID - 1).await;
    let r = e.bind(BindKind::Receiver, "esme", "secret").await;
    assert_eq!(r.status, CommandStatus::Ok);
}
