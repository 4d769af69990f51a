//! `rcslab ue sms` (issue 20) against a fake network: until the lab has its IP-SM-GW, an
//! endpoint of the test plays the P-CSCF and the service centre behind it (TS 24.341
//! §5.3.1.2: 202 to the MESSAGE, then RP-ACK and the status report in MESSAGEs of its own)
//! and the command's exact output lines are checked, with the REGISTER that goes first
//! (`+g.3gpp.smsip`) and the de-registration after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use rcslab::sip::endpoint::Incoming;
use rcslab::sip::transaction::TimerConfig;
use rcslab::sip::{Endpoint, IncomingRequest, Method, Transport};
use rcslab::sms::address::{Address, Timestamp};
use rcslab::sms::rp::{RpMessage, CONTENT_TYPE};
use rcslab::sms::tpdu::{StatusReport, SubmitReport, Tpdu};
use rcslab::sms::Direction;
use rcslab::trace::Trace;

const WAIT: Duration = Duration::from_secs(10);

/// The fake network: REGISTERs answered 200 (their Contact and Expires kept for the test),
/// MESSAGEs handed to the test, anything else answered 200.
struct Network {
    ep: Endpoint,
    requests: mpsc::UnboundedReceiver<IncomingRequest>,
    registers: Arc<Mutex<Vec<(String, String)>>>,
    _stop: watch::Sender<bool>,
}

impl Network {
    async fn start() -> Network {
        let (stop, shut) = watch::channel(false);
        let (ep, mut rx) = Endpoint::bind(
            "network",
            "127.0.0.1:0".parse().unwrap(),
            TimerConfig::default(),
            Trace::disabled(),
            shut,
        )
        .await
        .unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let registers = Arc::new(Mutex::new(Vec::new()));
        let regs = registers.clone();
        tokio::spawn(async move {
            while let Some(inc) = rx.recv().await {
                let Incoming::Request(inc) = inc else {
                    continue;
                };
                if inc.request.method == Method::Message {
                    let _ = tx.send(inc);
                    continue;
                }
                if inc.request.method != Method::Register {
                    // `listen`'s PUBLISH: taken.
                    let mut ok = inc.request.response(200, None);
                    ok.ensure_to_tag();
                    inc.tx.respond(ok);
                    continue;
                }
                let contact = inc.request.headers.get("Contact").unwrap_or("").to_string();
                let expires = inc.request.headers.get("Expires").unwrap_or("").to_string();
                regs.lock()
                    .unwrap()
                    .push((contact.clone(), expires.clone()));
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                if expires != "0" {
                    ok.headers.push("Contact", contact);
                }
                inc.tx.respond(ok);
            }
        });
        Network {
            ep,
            requests,
            registers,
            _stop: stop,
        }
    }

    /// The next MESSAGE.
    async fn next(&mut self) -> IncomingRequest {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request in time")
            .expect("the network runs")
    }

    /// The UE's next SMS MESSAGE, answered `status`: its RP message and where it came from.
    async fn sms_from_ue(&mut self, status: u16) -> (RpMessage, std::net::SocketAddr) {
        let inc = self.next().await;
        let r = &inc.request;
        assert_eq!(
            (r.method.clone(), r.uri.as_str()),
            (Method::Message, "tel:+15559999")
        );
        assert_eq!(r.headers.get("Content-Type"), Some(CONTENT_TYPE));
        let rp = RpMessage::decode(&r.body).expect("an RP message");
        let mut answer = r.response(status, None);
        answer.ensure_to_tag();
        inc.tx.respond(answer);
        (rp, inc.source)
    }

    /// A MESSAGE from the service centre to the UE at `ue`, answered 200.
    async fn sms_to_ue(&self, ue: std::net::SocketAddr, rp: RpMessage) {
        let mut r = self.ep.new_request(
            Method::Message,
            &format!("sip:alice@{ue}"),
            "tel:+15559999",
            1,
            Transport::Udp,
        );
        r.headers.push("Content-Type", CONTENT_TYPE);
        r.body = rp.encode().unwrap().into();
        let answer = self
            .ep
            .send_request(r, ue, Transport::Udp)
            .final_response()
            .await;
        assert_eq!(answer.status, 200);
    }
}

fn ue_sms(net: &Network, args: &[&str]) -> tokio::process::Command {
    let mut all = vec!["sms"];
    all.extend_from_slice(args);
    ue_cmd(net, &all)
}

fn ue_cmd(net: &Network, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"));
    c.args(["ue", "--user", "alice", "--lab"])
        .arg(net.ep.local_addr().to_string())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

fn ts() -> Timestamp {
    Timestamp::from_unix(1_796_000_000)
}

fn submit_report() -> Option<Vec<u8>> {
    let r = Tpdu::SubmitReport(SubmitReport {
        failure: None,
        timestamp: ts(),
    });
    Some(r.encode().unwrap())
}

/// RP-DATA `mr`, MO, and its SMS-SUBMIT's TP-MR.
fn mo_refs(rp: &RpMessage) -> (u8, u8) {
    let RpMessage::Data { mr, tpdu, .. } = rp else {
        panic!("not RP-DATA: {rp:?}")
    };
    match Tpdu::decode(tpdu, Direction::MsToNetwork, false).unwrap() {
        Tpdu::Submit(s) => (*mr, s.message_ref),
        other => panic!("not a SUBMIT: {other:?}"),
    }
}

#[tokio::test]
async fn ue_sms_prints_delivered_once_the_status_report_says_so() {
    let mut net = Network::start().await;
    let cli = ue_sms(&net, &["tel:+15550002", "hi"]).spawn().unwrap();

    let (rp, ue) = net.sms_from_ue(202).await;
    let (mr, tp_mr) = mo_refs(&rp);
    let ack = RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr,
        tpdu: submit_report(),
    };
    net.sms_to_ue(ue, ack).await;
    let report = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 0x77,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: Tpdu::StatusReport(StatusReport {
            more_messages: false,
            command: false,
            message_ref: tp_mr,
            recipient: Address::from_number("+15550002"),
            timestamp: ts(),
            discharge: ts(),
            status: 0x00,
        })
        .encode()
        .unwrap(),
    };
    net.sms_to_ue(ue, report).await;
    // The UE acknowledges the report in RP.
    let (rp, _) = net.sms_from_ue(200).await;
    assert!(
        matches!(
            rp,
            RpMessage::Ack {
                dir: Direction::MsToNetwork,
                mr: 0x77,
                ..
            }
        ),
        "{rp:?}"
    );

    let out = tokio::time::timeout(WAIT, cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "delivered\n");
    let regs = net.registers.lock().unwrap().clone();
    assert_eq!(regs.len(), 2, "registered, then de-registered: {regs:?}");
    assert!(regs[0].0.contains(";+g.3gpp.smsip"), "{}", regs[0].0);
    assert_eq!(regs[1].1, "0");
}

#[tokio::test]
async fn ue_sms_prints_the_rp_error_and_exits_1() {
    let mut net = Network::start().await;
    let cli = ue_sms(&net, &["+15550002", "hi"]).spawn().unwrap();
    let (rp, ue) = net.sms_from_ue(202).await;
    let (mr, _) = mo_refs(&rp);
    let err = RpMessage::Error {
        dir: Direction::NetworkToMs,
        mr,
        cause: 30,
        diagnostic: None,
        tpdu: None,
    };
    net.sms_to_ue(ue, err).await;
    let out = tokio::time::timeout(WAIT, cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "failed: RP-ERROR cause 30 (unknown subscriber)\n"
    );
}

#[tokio::test]
async fn ue_sms_pending_when_no_report_comes_and_too_long_refused_before_sending() {
    let mut net = Network::start().await;
    let cli = ue_sms(&net, &["--timeout", "1", "tel:+15550002", "hi"])
        .spawn()
        .unwrap();
    let (rp, ue) = net.sms_from_ue(202).await;
    let (mr, _) = mo_refs(&rp);
    let ack = RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr,
        tpdu: submit_report(),
    };
    net.sms_to_ue(ue, ack).await;
    let out = tokio::time::timeout(WAIT, cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pending: no delivery report within 1 s (the service centre took the message and reports by status report)\n"
    );

    let long = "x".repeat(2001);
    let out = ue_sms(&net, &["tel:+15550002", &long])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "rcslab: sms: the text has 2001 characters (at most 2000)"
    );
    assert_eq!(
        net.registers.lock().unwrap().len(),
        2,
        "the long text did not even register"
    );
}

fn deliver(mr: u8, second: u64, user_data: rcslab::sms::UserData) -> RpMessage {
    use rcslab::sms::tpdu::Deliver;
    let d = Tpdu::Deliver(Deliver {
        more_messages: false,
        status_report_indication: false,
        reply_path: false,
        originator: Address::from_number("+15550002"),
        pid: 0,
        dcs: if rcslab::sms::gsm7::fits(user_data.as_text().unwrap_or("")) {
            0x00
        } else {
            0x08
        },
        timestamp: Timestamp::from_unix(1_796_000_000 + second),
        user_data,
    });
    RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: d.encode().unwrap(),
    }
}

async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("a line")
}

/// The network sends `rp` to the UE at `ue`, which answers 200 and then RP-ACKs it.
async fn exchange(net: &mut Network, ue: std::net::SocketAddr, rp: RpMessage) {
    let mr = rp.mr();
    net.sms_to_ue(ue, rp).await;
    let (ack, _) = net.sms_from_ue(200).await;
    assert!(
        matches!(ack, RpMessage::Ack { .. }) && ack.mr() == mr,
        "{ack:?}"
    );
}

/// `listen` prints each short message once, whole (its parts put together), as `FROM:
/// TEXT`; a copy sent again and a status report are acknowledged and not printed.
#[tokio::test]
async fn ue_listen_prints_each_sms_once_whole() {
    use rcslab::sms::user_data::{Body, Ie, UserData};
    use tokio::io::AsyncBufReadExt;
    let mut net = Network::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cli = ue_cmd(&net, &["listen", "--files", dir.path().to_str().unwrap()])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(cli.stdout.take().unwrap()).lines();
    let ue = loop {
        let contact = net.registers.lock().unwrap().first().map(|r| r.0.clone());
        if let Some(c) = contact {
            let na = rcslab::sip::NameAddr::parse(&c).unwrap();
            let u = na.uri.as_sip().unwrap();
            break format!("{}:{}", u.host, u.port.unwrap()).parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    exchange(&mut net, ue, deliver(1, 0, UserData::text("hello"))).await;
    assert_eq!(next_line(&mut lines).await, "tel:+15550002: hello");
    exchange(&mut net, ue, deliver(1, 0, UserData::text("hello"))).await;
    let part = |seq: u8, text: &str| UserData {
        header: vec![Ie::Concat {
            reference: 5,
            total: 2,
            seq,
            wide: false,
        }],
        body: Body::Text(text.into()),
    };
    exchange(&mut net, ue, deliver(2, 1, part(2, "세계"))).await;
    exchange(&mut net, ue, deliver(3, 1, part(1, "안녕 "))).await;
    exchange(&mut net, ue, deliver(3, 1, part(1, "안녕 "))).await;
    assert_eq!(next_line(&mut lines).await, "tel:+15550002: 안녕 세계");
    let report = RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 4,
        originator: Some(Address::from_number("+15559999")),
        destination: None,
        tpdu: Tpdu::StatusReport(StatusReport {
            more_messages: false,
            command: false,
            message_ref: 9,
            recipient: Address::from_number("+15550002"),
            timestamp: ts(),
            discharge: ts(),
            status: 0,
        })
        .encode()
        .unwrap(),
    };
    exchange(&mut net, ue, report).await;
    exchange(&mut net, ue, deliver(5, 2, UserData::text("end"))).await;
    assert_eq!(
        next_line(&mut lines).await,
        "tel:+15550002: end",
        "nothing printed in between"
    );
    let _ = cli.start_kill();
}
