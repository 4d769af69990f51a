//! The SMS over IP codecs (src/sms/) against Wireshark: RP messages (TS 24.011) carrying
//! TPDUs (TS 23.040), each in the body of a SIP MESSAGE (`application/vnd.3gpp.sms`, TS
//! 24.341), written to a pcap and read back by tshark's GSM A-I/F RP and GSM SMS dissectors:
//! every message type, GSM 7-bit and UCS-2 text, a concatenation header, a status report and
//! an RP-ERROR decode with the values we put in and nothing malformed.

use rcslab::sms::address::{Address, Timestamp};
use rcslab::sms::concat::split;
use rcslab::sms::rp::{cause, CONTENT_TYPE};
use rcslab::sms::tpdu::{status, Deliver, DeliverReport, StatusReport, Submit, SubmitReport};
use rcslab::sms::tpdu::{Tpdu, Validity};
use rcslab::sms::user_data::{Body, Ie, UserData, DCS_GSM7};
use rcslab::sms::{Direction, RpMessage};

/// IPv4 + UDP around `payload` (checksums left to tshark, which does not check them).
fn ip_udp(payload: &[u8], from: [u8; 4], to: [u8; 4]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut p = Vec::with_capacity(20 + udp_len);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&from);
    p.extend_from_slice(&to);
    p.extend_from_slice(&5070u16.to_be_bytes());
    p.extend_from_slice(&5060u16.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A pcap (link type 228: raw IPv4) of `packets`.
fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&228u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(1 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

/// A SIP MESSAGE carrying `rp`.
fn message(n: usize, rp: &RpMessage) -> Vec<u8> {
    let body = rp.encode().expect("encodes");
    let mut m = format!(
        "MESSAGE sip:ipsmgw.ims.lab SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-sms-{n}\r\n\
         From: <sip:+15550001@ims.lab>;tag=t{n}\r\n\
         To: <sip:ipsmgw.ims.lab>\r\n\
         Call-ID: sms-{n}\r\n\
         CSeq: {n} MESSAGE\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: {CONTENT_TYPE}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m
}

fn ts() -> Timestamp {
    Timestamp::from_unix(1_796_208_005)
}

#[test]
fn tshark_decodes_every_rp_message_and_tpdu_we_write() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let sc = Address::from_number("+15559999");
    let submit = Tpdu::Submit(Submit {
        reject_duplicates: false,
        status_report_request: true,
        reply_path: false,
        message_ref: 7,
        destination: Address::from_number("+15550002"),
        pid: 0,
        dcs: DCS_GSM7,
        validity: Validity::Relative(167),
        user_data: UserData::text("hello from rcslab {€}"),
    });
    let korean = "안녕하세요 ".repeat(14);
    let parts = split(&korean, 10).unwrap();
    assert_eq!(parts.parts.len(), 2);
    let deliver = |i: usize, text: &str| {
        Tpdu::Deliver(Deliver {
            more_messages: i == 0,
            status_report_indication: false,
            reply_path: false,
            originator: Address::from_number("+15550001"),
            pid: 0,
            dcs: parts.dcs,
            timestamp: ts(),
            user_data: UserData {
                header: vec![Ie::Concat {
                    reference: 0x5a,
                    total: 2,
                    seq: i as u8 + 1,
                    wide: false,
                }],
                body: Body::Text(text.to_string()),
            },
        })
    };
    let mut rps = vec![
        RpMessage::Data {
            dir: Direction::MsToNetwork,
            mr: 0x2a,
            originator: None,
            destination: Some(sc.clone()),
            tpdu: submit.encode().unwrap(),
        },
        RpMessage::Ack {
            dir: Direction::NetworkToMs,
            mr: 0x2a,
            tpdu: Some(
                Tpdu::SubmitReport(SubmitReport {
                    failure: None,
                    timestamp: ts(),
                })
                .encode()
                .unwrap(),
            ),
        },
    ];
    for (i, p) in parts.parts.iter().enumerate() {
        rps.push(RpMessage::Data {
            dir: Direction::NetworkToMs,
            mr: 0x10 + i as u8,
            originator: Some(sc.clone()),
            destination: None,
            tpdu: deliver(i, p).encode().unwrap(),
        });
        rps.push(RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr: 0x10 + i as u8,
            tpdu: Some(
                Tpdu::DeliverReport(DeliverReport { failure: None })
                    .encode()
                    .unwrap(),
            ),
        });
    }
    rps.push(RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: 0x20,
        originator: Some(sc.clone()),
        destination: None,
        tpdu: Tpdu::StatusReport(StatusReport {
            more_messages: false,
            command: false,
            message_ref: 7,
            recipient: Address::from_number("+15550002"),
            timestamp: ts(),
            discharge: ts(),
            status: status::RECEIVED,
        })
        .encode()
        .unwrap(),
    });
    rps.push(RpMessage::Error {
        dir: Direction::NetworkToMs,
        mr: 0x2b,
        cause: cause::UNKNOWN_SUBSCRIBER,
        diagnostic: None,
        tpdu: None,
    });
    rps.push(RpMessage::Smma { mr: 0x2c });
    let packets: Vec<Vec<u8>> = rps
        .iter()
        .enumerate()
        .map(|(i, rp)| ip_udp(&message(i + 1, rp), [127, 0, 0, 1], [127, 0, 0, 2]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sms.pcap");
    std::fs::write(&file, pcap(&packets)).unwrap();
    let run = |extra: &[&str]| {
        let o = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&file)
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let rows = run(&[
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "gsm_a.rp.msg_type",
        "-e",
        "gsm_sms.tp-mti",
        "-e",
        "gsm_sms.sms_text",
    ]);
    let rows: Vec<&str> = rows.lines().collect();
    // RP message types (TS 24.011 Table 8.3): 0 RP-DATA MS→N, 3 RP-ACK N→MS, 1 RP-DATA N→MS,
    // 2 RP-ACK MS→N, 5 RP-ERROR N→MS, 6 RP-SMMA; TP-MTI 1 SUBMIT, 0 DELIVER, 2 STATUS-REPORT.
    let types: Vec<&str> = rows
        .iter()
        .map(|r| r.split('|').next().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        ["0x00", "0x03", "0x01", "0x02", "0x01", "0x02", "0x01", "0x05", "0x06"],
        "{rows:#?}"
    );
    assert!(
        rows[0].starts_with("0x00|1|hello from rcslab {€}"),
        "{}",
        rows[0]
    );
    assert!(rows[2].contains(&parts.parts[0]), "{}", rows[2]);
    assert!(rows[4].contains(&parts.parts[1]), "{}", rows[4]);
    assert!(rows[6].starts_with("0x01|2"), "{}", rows[6]);
    let fields = run(&[
        "-T",
        "fields",
        "-e",
        "gsm_a.rp.cause",
        "-e",
        "gsm_sms.tp-mr",
    ]);
    // The SUBMIT's and the status report's TP-MR 7, the RP-ERROR's cause 30.
    assert_eq!(
        fields.lines().filter(|l| *l == "\t7").count(),
        2,
        "{fields}"
    );
    assert!(fields.lines().any(|l| l == "30\t"), "{fields}");
    let report = run(&["-Y", "gsm_sms.tp-mti == 2", "-V"]);
    assert!(
        report.contains("Short message received by the SME"),
        "{report}"
    );
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed frames: {bad}");
}
