//! An application on SMPP 3.4 (the lab's own codec as the ESME): its submit_sm reaches a phone
//! as SMS over IP and its receipt comes back as deliver_sm; a phone's SMS to the application's
//! short code comes to it as deliver_sm; bad input gets the SMPP status it calls for.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rcslab::smpp::{
    frame, Address, Bind, Body, CommandStatus, DataCoding, DeliveryReceipt, EsmClass, Framing,
    MessageIdResp, MessageState, Pdu, RegisteredDelivery, Sm, SmParams, Tlv, DEFAULT_MAX_PDU,
};
use rcslab::sms::rp::CONTENT_TYPE;
use rcslab::sms::Tpdu;
use rcslab::ue::AuthMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{next_sms, send_rp_ack, submit_body, tpdu_of};
use crate::{eventually, lab_with, ue};

/// A bound ESME.
struct Esme {
    stream: TcpStream,
    buf: BytesMut,
    seq: u32,
}

impl Esme {
    async fn bind(addr: SocketAddr, system_id: &str, password: &str) -> (Esme, Pdu) {
        let mut e = Esme {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            seq: 0,
        };
        let r = e
            .call(Body::BindTransceiver(Bind {
                system_id: system_id.into(),
                password: password.into(),
                interface_version: 0x34,
                ..Bind::default()
            }))
            .await;
        (e, r)
    }

    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        let p = Pdu::new(self.seq, body).encode().unwrap();
        self.stream.write_all(&p).await.unwrap();
        self.seq
    }

    async fn recv(&mut self) -> Pdu {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Framing::Complete(n) = frame(&self.buf, DEFAULT_MAX_PDU) {
                    let b = self.buf.split_to(n);
                    return Pdu::decode(&b).expect("the SMSC sends valid PDUs");
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "the SMSC closed the connection");
            }
        })
        .await
        .expect("a PDU in time")
    }

    async fn call(&mut self, body: Body) -> Pdu {
        let seq = self.send(body).await;
        let p = self.recv().await;
        assert_eq!(p.sequence, seq, "{p:?}");
        p
    }

    /// The next deliver_sm, answered deliver_sm_resp.
    async fn deliver_sm(&mut self) -> Sm {
        let p = self.recv().await;
        let Body::DeliverSm(sm) = &p.body else {
            panic!("not a deliver_sm: {p:?}")
        };
        let resp = Pdu {
            body: Body::DeliverSmResp(MessageIdResp::default()),
            ..p.clone()
        };
        let mut resp = resp;
        resp.status = CommandStatus::Ok;
        self.stream
            .write_all(&resp.encode().unwrap())
            .await
            .unwrap();
        sm.clone()
    }
}

fn submit(to: &str, data_coding: u8, text: &[u8], receipt: bool) -> Body {
    Body::SubmitSm(Sm {
        service_type: String::new(),
        source: Address {
            ton: 0,
            npi: 1,
            addr: "4000".into(),
        },
        dest: Address::international(to),
        params: SmParams {
            registered_delivery: RegisteredDelivery(u8::from(receipt)),
            data_coding: DataCoding(data_coding),
            short_message: text.to_vec(),
            ..SmParams::default()
        },
        tlvs: Vec::new(),
    })
}

#[tokio::test]
async fn an_applications_sms_reaches_the_phone_and_its_receipt_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();
    eventually("the IP-SM-GW to know bob", || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered)
    })
    .await;
    let (mut app, r) = Esme::bind(lab.addrs.smsc, "lab-app", "app-pw").await;
    assert_eq!(r.status, CommandStatus::Ok, "{r:?}");

    // GSM 7-bit: the SMSC default alphabet, one septet an octet.
    let r = app
        .call(submit("15550002", 0, b"Your code is 1234", true))
        .await;
    assert_eq!(r.status, CommandStatus::Ok, "{r:?}");
    let Body::SubmitSmResp(MessageIdResp { message_id, .. }) = r.body else {
        panic!("{r:?}")
    };
    let (_, rp) = next_sms(&mut bob).await;
    let Tpdu::Deliver(d) = tpdu_of(&rp) else {
        panic!("not an SMS-DELIVER")
    };
    assert_eq!(d.originator.value, "4000");
    assert_eq!(d.user_data.as_text(), Some("Your code is 1234"));
    send_rp_ack(&mut bob, rp.mr()).await;
    let receipt = app.deliver_sm().await;
    assert_eq!(
        receipt.params.esm_class.0 & EsmClass::DELIVERY_RECEIPT,
        EsmClass::DELIVERY_RECEIPT
    );
    let rc = DeliveryReceipt::parse(&receipt.params.short_message).unwrap();
    assert_eq!(rc.id, message_id);
    assert_eq!(rc.stat, MessageState::Delivered);
    assert!(receipt
        .tlvs
        .contains(&Tlv::ReceiptedMessageId(message_id.clone())));
    assert_eq!(receipt.source, Address::international("15550002"));

    // A long Korean text (UCS-2): the centre cuts it into concatenated parts, bob gets each
    // with its UDH, and the application one receipt for its one id.
    let long = "안녕하세요, 밥! ".repeat(20);
    let ucs2: Vec<u8> = long.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let mut sm = submit("15550002", 8, &[], true);
    if let Body::SubmitSm(s) = &mut sm {
        s.tlvs.push(Tlv::MessagePayload(ucs2));
    }
    let r = app.call(sm).await;
    assert_eq!(r.status, CommandStatus::Ok, "{r:?}");
    let Body::SubmitSmResp(MessageIdResp { message_id, .. }) = r.body else {
        panic!("{r:?}")
    };
    let mut parts = Vec::new();
    loop {
        let (_, rp) = next_sms(&mut bob).await;
        let Tpdu::Deliver(d) = tpdu_of(&rp) else {
            panic!("not an SMS-DELIVER")
        };
        send_rp_ack(&mut bob, rp.mr()).await;
        let (_, total, seq) = d.user_data.concat().expect("a concatenation header");
        parts.push(d.user_data.as_text().unwrap().to_string());
        assert_eq!(seq as usize, parts.len());
        if seq == total {
            break;
        }
    }
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert_eq!(parts.concat(), long);
    let rc = DeliveryReceipt::parse(&app.deliver_sm().await.params.short_message).unwrap();
    assert_eq!((rc.id, rc.stat), (message_id, MessageState::Delivered));

    // bob texts the short code: the application gets it as deliver_sm.
    let r = bob
        .message_with_body(
            "tel:+15559999",
            CONTENT_TYPE,
            &submit_body(1, 1, "4000", "STOP"),
            &[],
        )
        .await;
    assert_eq!(r.status, 202);
    let (_, ack) = next_sms(&mut bob).await;
    assert_eq!(ack.mr(), 1);
    let mo = app.deliver_sm().await;
    assert_eq!(mo.params.esm_class.0, 0);
    assert_eq!(mo.source, Address::international("15550002"));
    assert_eq!(mo.dest.addr, "4000");
    assert_eq!(mo.params.short_message, b"STOP");
    // The application took it (deliver_sm_resp): bob's status report says delivered.
    let (_, rp) = next_sms(&mut bob).await;
    let Tpdu::StatusReport(sr) = tpdu_of(&rp) else {
        panic!("not a status report: {rp:?}")
    };
    assert_eq!((sr.message_ref, sr.status), (1, 0));
    send_rp_ack(&mut bob, rp.mr()).await;
    eventually("the centre to hold nothing", || lab.smsc.held() == 0).await;
    lab.shutdown().await;
}

#[tokio::test]
async fn what_an_application_must_not_send_gets_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[smsc]\nmax_parts = 3\n").await;
    // A wrong password: ESME_RBINDFAIL.
    let (_, r) = Esme::bind(lab.addrs.smsc, "lab-app", "wrong").await;
    assert_eq!(r.status, CommandStatus::BindFail, "{r:?}");
    let (mut app, r) = Esme::bind(lab.addrs.smsc, "lab-app", "app-pw").await;
    assert_eq!(r.status, CommandStatus::Ok, "{r:?}");
    // Longer than the parts the centre may cut it into: ESME_RINVMSGLEN, nothing stored.
    let mut sm = submit("15550002", 0, &[], false);
    if let Body::SubmitSm(s) = &mut sm {
        s.tlvs.push(Tlv::MessagePayload(vec![b'x'; 153 * 3 + 1]));
    }
    let r = app.call(sm).await;
    assert_eq!(r.status, CommandStatus::InvMsgLen, "{r:?}");
    // No destination: ESME_RINVDSTADR.
    let r = app.call(submit("", 0, b"x", false)).await;
    assert_eq!(r.status, CommandStatus::InvDstAdr, "{r:?}");
    assert_eq!(lab.smsc.held(), 0);
    // A header that says more than is there: the PDU's own answer with its status, and the
    // session goes on.
    let mut bad = Pdu::new(77, submit("15550002", 0, b"x", false))
        .encode()
        .unwrap();
    let n = bad.len();
    bad[n - 2] = 9; // sm_length 9, one octet follows
    app.stream.write_all(&bad).await.unwrap();
    let r = app.recv().await;
    assert_eq!(r.sequence, 77);
    assert_ne!(r.status, CommandStatus::Ok, "{r:?}");
    let r = app.call(Body::EnquireLink).await;
    assert_eq!(r.body, Body::EnquireLinkResp);
    lab.shutdown().await;
}
