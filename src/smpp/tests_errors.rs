//! Every decode error path of the SMPP codec, and the answer each calls for (module table in
//! `mod.rs`).

use super::tests::every_command;
use super::*;

/// `body` behind a header of `command_id` with sequence 77 and the right length.
fn pdu(command_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((16 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command_id.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 77]);
    v.extend_from_slice(body);
    v
}

/// Decodes `bytes`, expects an error, returns it with the answer it calls for.
fn fails(bytes: &[u8]) -> (SmppError, Option<Pdu>) {
    let e = Pdu::decode(bytes).expect_err("must not decode");
    let reply = e.reply();
    (e, reply)
}

/// The answer is `command`'s response with `status` and sequence 77.
fn answered(bytes: &[u8], command: CommandId, status: CommandStatus) {
    let (e, reply) = fails(bytes);
    let reply = reply.unwrap_or_else(|| panic!("no answer to {e}"));
    assert_eq!(
        (reply.command_id(), reply.status, reply.sequence),
        (command, status, 77),
        "{e}"
    );
    assert_eq!(e.status(), status);
    // What we answer with encodes, and our own decoder reads it.
    let wire = reply.encode().expect("the answer encodes");
    assert_eq!(Pdu::decode(&wire), Ok(reply));
}

/// A submit_sm body up to (not including) sm_length.
fn submit_head() -> Vec<u8> {
    b"\x00\x01\x01123\x00\x01\x01456\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec()
}

#[test]
fn short_buffer_and_bad_lengths_get_generic_nack_rinvcmdlen() {
    let (e, reply) = fails(&[0, 0, 0, 16, 0, 0]);
    assert_eq!(e, SmppError::Short(6));
    let reply = reply.expect("answered");
    assert_eq!(
        (reply.body, reply.status),
        (Body::GenericNack, CommandStatus::InvCmdLen)
    );
    // command_length says 20, 16 octets given.
    let mut b = pdu(0x15, &[]);
    b[3] = 20;
    answered(&b, CommandId::GenericNack, CommandStatus::InvCmdLen);
    // command_length below the header.
    let mut b = pdu(0x15, &[]);
    b[3] = 8;
    answered(&b, CommandId::GenericNack, CommandStatus::InvCmdLen);
    // Each proper prefix of a good PDU fails, never panics.
    for p in every_command() {
        let wire = p.encode().unwrap();
        for n in 0..wire.len() {
            assert!(Pdu::decode(&wire[..n]).is_err());
            assert_eq!(frame(&wire[..n], DEFAULT_MAX_PDU), Framing::Incomplete);
        }
    }
}

#[test]
fn unknown_command_id_gets_generic_nack_rinvcmdid() {
    for id in [
        0x0000_0000,
        0x0000_000A,
        0x0000_0099,
        0x8000_0015 + 1,
        0x0000_0104,
    ] {
        answered(
            &pdu(id, &[]),
            CommandId::GenericNack,
            CommandStatus::InvCmdId,
        );
    }
}

#[test]
fn over_long_c_strings_get_the_fields_status() {
    // system_id of 16 octets without NUL (max 15 + NUL).
    let mut body = b"ABCDEFGHIJKLMNOP".to_vec();
    body.extend_from_slice(b"\x00pw\x00\x00\x34\x00\x00\x00");
    answered(
        &pdu(0x02, &body),
        CommandId::BindTransmitterResp,
        CommandStatus::InvSysId,
    );
    // password of 9 characters.
    answered(
        &pdu(0x09, b"sys\x00123456789\x00\x00\x34\x00\x00\x00"),
        CommandId::BindTransceiverResp,
        CommandStatus::InvPaswd,
    );
    // source_addr of 21 characters.
    let mut body = b"\x00\x01\x01".to_vec();
    body.extend_from_slice(&[b'1'; 21]);
    body.extend_from_slice(&[0; 30]);
    answered(
        &pdu(0x04, &body),
        CommandId::SubmitSmResp,
        CommandStatus::InvSrcAdr,
    );
    // destination_addr of 21 characters.
    let mut body = b"\x00\x01\x01123\x00\x01\x01".to_vec();
    body.extend_from_slice(&[b'1'; 21]);
    body.extend_from_slice(&[0; 30]);
    answered(
        &pdu(0x05, &body),
        CommandId::DeliverSmResp,
        CommandStatus::InvDstAdr,
    );
    // message_id of 65 characters in query_sm.
    let mut body = vec![b'9'; 65];
    body.extend_from_slice(&[0; 4]);
    answered(
        &pdu(0x03, &body),
        CommandId::QuerySmResp,
        CommandStatus::InvMsgId,
    );
    // service_type of 6 characters.
    answered(
        &pdu(0x04, b"ABCDEF\x00\x00\x00\x00"),
        CommandId::SubmitSmResp,
        CommandStatus::InvSerTyp,
    );
    // validity_period of 17 characters.
    let mut body = b"\x00\x01\x01123\x00\x01\x01456\x00\x00\x00\x00\x00".to_vec();
    body.extend_from_slice(&[b'0'; 17]);
    body.extend_from_slice(&[0; 8]);
    answered(
        &pdu(0x04, &body),
        CommandId::SubmitSmResp,
        CommandStatus::InvExpiry,
    );
}

#[test]
fn a_body_cut_short_gets_rinvcmdlen_in_the_response() {
    // system_id's NUL missing at the end of the body.
    answered(
        &pdu(0x01, b"abc"),
        CommandId::BindReceiverResp,
        CommandStatus::InvCmdLen,
    );
    // submit_sm ending before sm_length.
    answered(
        &pdu(0x04, &submit_head()),
        CommandId::SubmitSmResp,
        CommandStatus::InvCmdLen,
    );
    // A header-only command with a body.
    answered(
        &pdu(0x15, b"x"),
        CommandId::EnquireLinkResp,
        CommandStatus::InvCmdLen,
    );
    answered(
        &pdu(0x06, b"\x00"),
        CommandId::UnbindResp,
        CommandStatus::InvCmdLen,
    );
    // Octets after the last field of a command without TLVs.
    answered(
        &pdu(0x08, b"\x00\x00\x01\x01a\x00\x01\x01b\x00\x00\x05\x00\x01x"),
        CommandId::CancelSmResp,
        CommandStatus::InvCmdLen,
    );
}

#[test]
fn sm_length_past_the_body_or_above_254_gets_rinvmsglen() {
    let mut body = submit_head();
    body.extend_from_slice(b"\x0ahello");
    answered(
        &pdu(0x04, &body),
        CommandId::SubmitSmResp,
        CommandStatus::InvMsgLen,
    );
    let mut body = submit_head();
    body.push(255);
    body.extend_from_slice(&[b'x'; 255]);
    answered(
        &pdu(0x04, &body),
        CommandId::SubmitSmResp,
        CommandStatus::InvMsgLen,
    );
    // replace_sm too.
    answered(
        &pdu(0x07, b"42\x00\x01\x01123\x00\x00\x00\x00\x00\x09abc"),
        CommandId::ReplaceSmResp,
        CommandStatus::InvMsgLen,
    );
}

#[test]
fn bad_tlvs_get_the_tlv_statuses() {
    let with = |tlv: &[u8]| {
        let mut body = submit_head();
        body.extend_from_slice(b"\x02hi");
        body.extend_from_slice(tlv);
        pdu(0x04, &body)
    };
    // sar_msg_ref_num is 2 octets, not 3.
    answered(
        &with(b"\x02\x0c\x00\x03\x00\x01\x02"),
        CommandId::SubmitSmResp,
        CommandStatus::RINVTLVLEN,
    );
    // A length that runs past the body.
    answered(
        &with(b"\x04\x24\x00\x10abc"),
        CommandId::SubmitSmResp,
        CommandStatus::RINVTLVSTREAM,
    );
    // Two stray octets: no room for a TLV header.
    answered(
        &with(b"\x04\x24"),
        CommandId::SubmitSmResp,
        CommandStatus::InvOptParStream,
    );
    // callback_num shorter than its 4-octet minimum.
    answered(
        &with(b"\x03\x81\x00\x01\x00"),
        CommandId::SubmitSmResp,
        CommandStatus::InvParLen,
    );
    // receipted_message_id with a NUL inside.
    answered(
        &with(b"\x00\x1e\x00\x04a\x00b\x00"),
        CommandId::SubmitSmResp,
        CommandStatus::InvOptParamVal,
    );
    // alert_on_message_delivery carries no value.
    answered(
        &with(b"\x13\x0c\x00\x01\x00"),
        CommandId::SubmitSmResp,
        CommandStatus::InvParLen,
    );
    // A receipted_message_id without its NUL is accepted; an unknown tag is kept raw.
    let p = Pdu::decode(&with(b"\x00\x1e\x00\x0242\x30\x00\x00\x02\xab\xcd")).expect("decodes");
    let Body::SubmitSm(s) = p.body else {
        panic!("not submit_sm");
    };
    assert_eq!(
        s.tlvs,
        vec![
            Tlv::ReceiptedMessageId("42".into()),
            Tlv::Raw {
                tag: 0x3000,
                value: vec![0xab, 0xcd]
            }
        ]
    );
    assert_eq!(
        find_tlv(&s.tlvs, |t| match t {
            Tlv::ReceiptedMessageId(id) => Some(id.clone()),
            _ => None,
        }),
        Some("42".to_string())
    );
}

#[test]
fn submit_multi_destination_faults() {
    let head = b"\x00\x01\x01123\x00".to_vec();
    let mut body = head.clone();
    body.extend_from_slice(b"\x01\x03\x01\x01456\x00");
    answered(
        &pdu(0x21, &body),
        CommandId::SubmitMultiResp,
        CommandStatus::InvDestFlag,
    );
    let mut body = head.clone();
    body.push(255);
    answered(
        &pdu(0x21, &body),
        CommandId::SubmitMultiResp,
        CommandStatus::InvNumDests,
    );
    let mut body = head;
    body.extend_from_slice(b"\x01\x02");
    body.extend_from_slice(&[b'd'; 21]);
    answered(
        &pdu(0x21, &body),
        CommandId::SubmitMultiResp,
        CommandStatus::InvDlName,
    );
}

#[test]
fn bad_bodies_without_a_response_of_their_own() {
    // A bad response, outbind or alert_notification: generic_nack with the status.
    answered(
        &pdu(0x8000_0004, b"abc"),
        CommandId::GenericNack,
        CommandStatus::InvCmdLen,
    );
    answered(
        &pdu(0x0B, b"abc"),
        CommandId::GenericNack,
        CommandStatus::InvCmdLen,
    );
    answered(
        &pdu(0x102, b"\x01"),
        CommandId::GenericNack,
        CommandStatus::InvCmdLen,
    );
    // A bad generic_nack: nothing, so two peers never nack each other's nacks.
    let (e, reply) = fails(&pdu(0x8000_0000, b"x"));
    assert_eq!(e.status(), CommandStatus::InvCmdLen);
    assert_eq!(reply, None);
}

#[test]
fn encoding_refuses_what_a_peer_would_refuse() {
    let enc = |body: Body| Pdu::new(1, body).encode().expect_err("must not encode");
    let long = Bind {
        system_id: "sixteen-chars-xx".into(),
        ..Bind::default()
    };
    assert!(matches!(
        enc(Body::BindTransmitter(long)),
        SmppError::Encode {
            field: "system_id",
            ..
        }
    ));
    let nul = Bind {
        password: "a\0b".into(),
        ..Bind::default()
    };
    assert!(matches!(
        enc(Body::BindReceiver(nul)),
        SmppError::Encode {
            field: "password",
            ..
        }
    ));
    let mut big = Sm::default();
    big.params.short_message = vec![0; 255];
    assert!(matches!(
        enc(Body::SubmitSm(big)),
        SmppError::Encode {
            field: "short_message",
            ..
        }
    ));
    let many = SubmitMulti {
        dests: vec![DestAddress::DistributionList("x".into()); 255],
        ..SubmitMulti::default()
    };
    assert!(matches!(
        enc(Body::SubmitMulti(many)),
        SmppError::Encode {
            field: "number_of_dests",
            ..
        }
    ));
    let huge = Sm {
        tlvs: vec![Tlv::Raw {
            tag: 0x1400,
            value: vec![0; 70_000],
        }],
        ..Sm::default()
    };
    assert!(matches!(
        enc(Body::DeliverSm(huge)),
        SmppError::Encode { .. }
    ));
    let cb = DataSm {
        tlvs: vec![Tlv::CallbackNum(vec![1])],
        ..DataSm::default()
    };
    assert!(matches!(
        enc(Body::DataSm(cb)),
        SmppError::Encode {
            field: "callback_num",
            ..
        }
    ));
}
