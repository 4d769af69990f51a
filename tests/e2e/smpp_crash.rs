//! The SMSC's durability promise (issue 20): a submit_sm's message_id goes out only once the
//! message is stored and flushed. The real `rcslab up` runs as a child process; an application
//! (an ESME on our own codec, `rcslab::smpp`) submits 20 texts to bob, who is not registered,
//! each asking for a receipt; once it holds all 20 submit_sm_resp the lab is SIGKILLed and
//! started again on the same data directory. Then bob registers (`rcslab ue --user bob
//! listen`) and the application binds again: bob must show each of the 20 texts exactly once,
//! and the application must get exactly one DELIVRD receipt for each of the 20 ids it was
//! given, and no other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use rcslab::smpp::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::crash::{nodes_toml, sigkill, start_fresh_lab_with, start_lab};
use crate::smpp_interop::{collect_lines, wait_until};

const MESSAGES: usize = 20;

/// The lab file: free ports, the default subscribers (bob is tel:+15550002), and a retry
/// every second so that a message the centre wrongly kept after delivering it would come
/// again within the quiet window at the end.
fn lab_toml() -> String {
    format!("{}[smsc]\nretry_secs = 1\n", nodes_toml())
}

/// An application bound to the SMSC over one TCP connection, on our SMPP codec.
struct Esme {
    sock: TcpStream,
    buf: Vec<u8>,
    seq: u32,
}

impl Esme {
    /// Connects and binds as a transceiver (lab-app, the default account).
    async fn bind(addr: SocketAddr) -> Esme {
        let sock = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .expect("connect within 10 s")
            .expect("connect");
        let mut esme = Esme {
            sock,
            buf: Vec::new(),
            seq: 0,
        };
        esme.send(Body::BindTransceiver(Bind {
            system_id: "lab-app".into(),
            password: "app-pw".into(),
            system_type: String::new(),
            interface_version: INTERFACE_VERSION,
            address_range: Address::default(),
        }))
        .await;
        let resp = esme.next().await;
        assert_eq!(
            (resp.command_id(), resp.status),
            (CommandId::BindTransceiverResp, CommandStatus::Ok),
            "{resp:?}"
        );
        esme
    }

    /// Sends a request with the next sequence number; returns that number.
    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        self.write(&Pdu::new(self.seq, body)).await;
        self.seq
    }

    async fn write(&mut self, p: &Pdu) {
        let bytes = p.encode().expect("encodes");
        self.sock.write_all(&bytes).await.expect("write");
    }

    /// The next PDU (within 30 s).
    async fn next(&mut self) -> Pdu {
        loop {
            match frame(&self.buf, DEFAULT_MAX_PDU) {
                Framing::Complete(n) => {
                    let p = Pdu::decode(&self.buf[..n]).expect("decodes");
                    self.buf.drain(..n);
                    return p;
                }
                Framing::BadLength(h) => panic!("bad length {h:?}"),
                Framing::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let n =
                        tokio::time::timeout(Duration::from_secs(30), self.sock.read(&mut chunk))
                            .await
                            .expect("a PDU within 30 s")
                            .expect("read");
                    assert!(n > 0, "the SMSC closed the connection");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// The next request from the SMSC, answered (enquire_link too); deliver_sm is returned.
    async fn next_deliver(&mut self) -> Sm {
        loop {
            let p = self.next().await;
            if let Some(resp) = p.response(CommandStatus::Ok) {
                self.write(&resp).await;
            }
            match p.body {
                Body::DeliverSm(sm) => return sm,
                Body::EnquireLink => {}
                other => panic!("unexpected from the SMSC: {other:?}"),
            }
        }
    }
}

fn text(i: usize) -> String {
    format!("crash test message {i:02} of {MESSAGES}")
}

fn submit(i: usize) -> Body {
    Body::SubmitSm(Sm {
        source: Address::international("4000"),
        dest: Address::international("15550002"),
        params: SmParams {
            registered_delivery: RegisteredDelivery(RegisteredDelivery::ON_FINAL),
            data_coding: DataCoding::DEFAULT,
            short_message: text(i).into_bytes(),
            ..SmParams::default()
        },
        ..Sm::default()
    })
}

/// The receipt's id, once its text and TLVs agree that it says DELIVRD.
fn delivered_id(sm: &Sm) -> String {
    assert!(
        sm.params.esm_class.is_delivery_receipt(),
        "not a receipt: {sm:?}"
    );
    let r = DeliveryReceipt::parse(&sm.params.short_message).expect("Appendix B text");
    assert_eq!(r.stat, MessageState::Delivered, "{r:?}");
    assert!(
        sm.tlvs.contains(&Tlv::ReceiptedMessageId(r.id.clone())),
        "receipted_message_id is not {}: {sm:?}",
        r.id
    );
    r.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_submit_sm_resp_loses_no_message_and_delivers_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("lab.toml"), dir.path().join("data"));
    let (cfg, mut lab) = start_fresh_lab_with(&config, &data, lab_toml).await;

    // 20 submit_sm to bob, who is away: each stored and flushed before its id comes back.
    let mut esme = Esme::bind(cfg.nodes.smsc).await;
    let mut sent = BTreeMap::new();
    for i in 0..MESSAGES {
        sent.insert(esme.send(submit(i)).await, i);
    }
    let mut ids = BTreeSet::new();
    while ids.len() < MESSAGES {
        let p = esme.next().await;
        let Body::SubmitSmResp(r) = &p.body else {
            panic!("not a submit_sm_resp: {p:?}");
        };
        assert_eq!(p.status, CommandStatus::Ok, "{p:?}");
        assert!(
            sent.remove(&p.sequence).is_some(),
            "unknown sequence: {p:?}"
        );
        assert!(ids.insert(r.message_id.clone()), "id given twice: {p:?}");
    }

    // Killed with every id out and nothing delivered; started again on the same directory.
    sigkill(&lab);
    lab.wait().await.expect("the lab ends");
    drop(esme);
    let lab = start_lab(&config, &data).await;

    // bob registers: the centre delivers what it kept, once each.
    let mut bob = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"))
        .args(["ue", "--user", "bob", "--lab"])
        .arg(cfg.nodes.pcscf.to_string())
        .arg("listen")
        .env("RUST_LOG", "warn")
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("bob");
    let bob_lines = collect_lines(&mut bob);
    let texts: BTreeSet<String> = (0..MESSAGES).map(text).collect();
    let shown = || -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for l in bob_lines.lock().unwrap().iter() {
            let t = l.split_once(": ").map_or(l.as_str(), |(_, t)| t);
            *n.entry(t.to_string()).or_insert(0) += 1;
        }
        n
    };
    wait_until("bob to show the 20 texts", 60, || {
        texts.iter().all(|t| shown().contains_key(t))
    })
    .await;

    // The application binds again: its 20 receipts, which waited for it.
    let mut esme = Esme::bind(cfg.nodes.smsc).await;
    let mut receipts: BTreeMap<String, usize> = BTreeMap::new();
    while receipts.values().sum::<usize>() < MESSAGES {
        let sm = tokio::time::timeout(Duration::from_secs(60), esme.next_deliver())
            .await
            .expect("20 receipts within 60 s");
        *receipts.entry(delivered_id(&sm)).or_insert(0) += 1;
    }

    // A quiet window: with retries every second, a message or receipt the centre kept after
    // handing it over would come again here. The enquire_link's answer comes after anything
    // the centre had already sent us.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let probe = esme.send(Body::EnquireLink).await;
    loop {
        let p = esme.next().await;
        if p.command_id() == CommandId::EnquireLinkResp && p.sequence == probe {
            break;
        }
        if let Some(resp) = p.response(CommandStatus::Ok) {
            esme.write(&resp).await;
        }
        if let Body::DeliverSm(sm) = &p.body {
            *receipts.entry(delivered_id(sm)).or_insert(0) += 1;
        }
    }

    let got = shown();
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        texts,
        "bob showed other texts: {got:#?}"
    );
    assert!(got.values().all(|n| *n == 1), "shown twice: {got:#?}");
    assert_eq!(
        receipts.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "receipts are not for the ids given"
    );
    assert!(
        receipts.values().all(|n| *n == 1),
        "receipt twice: {receipts:#?}"
    );
    drop((bob, lab));
}
