//! The transfer layer's PDUs (3GPP TS 23.040 §9.2.2): SMS-SUBMIT and SMS-DELIVER-REPORT from
//! the phone, SMS-DELIVER, SMS-SUBMIT-REPORT and SMS-STATUS-REPORT from the service centre.
//! TP-MTI alone does not say which PDU it is (00 is DELIVER towards the phone and
//! DELIVER-REPORT from it), so decoding takes the direction; a report's TP-FCS is there only
//! inside an RP-ERROR, so decoding a report takes that too.

use super::address::{Address, Timestamp};
use super::user_data::UserData;
use super::{Direction, SmsError};

/// TP-Status (TS 23.040 §9.2.3.15), the values the lab sends.
pub mod status {
    /// Short message received by the SME.
    pub const RECEIVED: u8 = 0x00;
    /// Temporary error, SC still trying: SME busy.
    pub const SME_BUSY: u8 = 0x21;
    /// Temporary error, SC still trying: no response from SME.
    pub const NO_RESPONSE: u8 = 0x22;
    /// Permanent error: validity period expired.
    pub const EXPIRED: u8 = 0x46;
    /// Permanent error: incompatible destination.
    pub const INCOMPATIBLE_DESTINATION: u8 = 0x41;
}

/// TP-VP (TS 23.040 §9.2.3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    None,
    /// Relative, coded (0..=143: (v+1)×5 min; ..=167: 12 h + (v-143)×30 min; ..=196: days;
    /// weeks after).
    Relative(u8),
    Absolute(Timestamp),
    /// The enhanced format, kept as its seven octets.
    Enhanced([u8; 7]),
}

impl Validity {
    /// The validity in seconds (None for absolute, enhanced or none).
    pub fn relative_secs(&self) -> Option<u64> {
        let Validity::Relative(v) = *self else {
            return None;
        };
        let v = u64::from(v);
        Some(match v {
            0..=143 => (v + 1) * 300,
            144..=167 => 12 * 3600 + (v - 143) * 1800,
            168..=196 => (v - 166) * 86_400,
            _ => (v - 192) * 7 * 86_400,
        })
    }
}

/// SMS-SUBMIT (TS 23.040 §9.2.2.2): a phone sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub reject_duplicates: bool,
    pub status_report_request: bool,
    pub reply_path: bool,
    /// TP-MR.
    pub message_ref: u8,
    pub destination: Address,
    pub pid: u8,
    pub dcs: u8,
    pub validity: Validity,
    pub user_data: UserData,
}

/// SMS-DELIVER (TS 23.040 §9.2.2.1): the service centre delivers a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// TP-MMS inverted: more messages are waiting at the centre.
    pub more_messages: bool,
    /// TP-SRI: a status report goes back to the sender.
    pub status_report_indication: bool,
    pub reply_path: bool,
    pub originator: Address,
    pub pid: u8,
    pub dcs: u8,
    /// TP-SCTS: when the centre got it.
    pub timestamp: Timestamp,
    pub user_data: UserData,
}

/// SMS-STATUS-REPORT (TS 23.040 §9.2.2.3): what became of a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub more_messages: bool,
    /// TP-SRQ: this reports on an SMS-COMMAND (false: on an SMS-SUBMIT).
    pub command: bool,
    /// TP-MR of the SMS-SUBMIT it is about.
    pub message_ref: u8,
    /// TP-RA: the recipient.
    pub recipient: Address,
    /// TP-SCTS of the submitted message.
    pub timestamp: Timestamp,
    /// TP-DT: when it was delivered (or the attempt that decided the status).
    pub discharge: Timestamp,
    /// TP-ST.
    pub status: u8,
}

/// SMS-SUBMIT-REPORT (TS 23.040 §9.2.2.2a), inside the RP-ACK (or RP-ERROR) to an RP-DATA
/// that carried an SMS-SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    /// TP-FCS, in an RP-ERROR only.
    pub failure: Option<u8>,
    pub timestamp: Timestamp,
}

/// SMS-DELIVER-REPORT (TS 23.040 §9.2.2.1a), inside the phone's RP-ACK (or RP-ERROR) to an
/// RP-DATA that carried an SMS-DELIVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverReport {
    /// TP-FCS, in an RP-ERROR only.
    pub failure: Option<u8>,
}

/// A TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    Submit(Submit),
    Deliver(Deliver),
    StatusReport(StatusReport),
    SubmitReport(SubmitReport),
    DeliverReport(DeliverReport),
}

const MTI_DELIVER: u8 = 0b00;
const MTI_SUBMIT: u8 = 0b01;
const MTI_STATUS: u8 = 0b10;
const UDHI: u8 = 0x40;
const RP_BIT: u8 = 0x80;

impl Tpdu {
    /// The octets.
    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        let mut out = Vec::with_capacity(176);
        match self {
            Tpdu::Submit(s) => {
                let vpf: u8 = match s.validity {
                    Validity::None => 0b00,
                    Validity::Enhanced(_) => 0b01,
                    Validity::Relative(_) => 0b10,
                    Validity::Absolute(_) => 0b11,
                };
                out.push(
                    MTI_SUBMIT
                        | u8::from(s.reject_duplicates) << 2
                        | vpf << 3
                        | u8::from(s.status_report_request) << 5
                        | u8::from(s.reply_path) << 7,
                );
                out.push(s.message_ref);
                s.destination.encode_tp(&mut out)?;
                out.push(s.pid);
                out.push(s.dcs);
                match s.validity {
                    Validity::None => {}
                    Validity::Relative(v) => out.push(v),
                    Validity::Absolute(t) => t.encode(&mut out),
                    Validity::Enhanced(e) => out.extend_from_slice(&e),
                }
                if s.user_data.encode(s.dcs, &mut out)? {
                    out[0] |= UDHI;
                }
            }
            Tpdu::Deliver(d) => {
                out.push(
                    MTI_DELIVER
                        | u8::from(!d.more_messages) << 2
                        | u8::from(d.status_report_indication) << 5
                        | u8::from(d.reply_path) << 7,
                );
                d.originator.encode_tp(&mut out)?;
                out.push(d.pid);
                out.push(d.dcs);
                d.timestamp.encode(&mut out);
                if d.user_data.encode(d.dcs, &mut out)? {
                    out[0] |= UDHI;
                }
            }
            Tpdu::StatusReport(r) => {
                out.push(MTI_STATUS | u8::from(!r.more_messages) << 2 | u8::from(r.command) << 5);
                out.push(r.message_ref);
                r.recipient.encode_tp(&mut out)?;
                r.timestamp.encode(&mut out);
                r.discharge.encode(&mut out);
                out.push(r.status);
            }
            Tpdu::SubmitReport(r) => {
                out.push(MTI_SUBMIT);
                if let Some(fcs) = r.failure {
                    out.push(fcs);
                }
                out.push(0); // TP-PI: no optional parameters
                r.timestamp.encode(&mut out);
            }
            Tpdu::DeliverReport(r) => {
                out.push(MTI_DELIVER);
                if let Some(fcs) = r.failure {
                    out.push(fcs);
                }
                out.push(0); // TP-PI
            }
        }
        Ok(out)
    }

    /// Decodes a TPDU going `dir`; `in_error` says a report came in an RP-ERROR (so it
    /// carries TP-FCS). SMS-COMMAND is not supported.
    pub fn decode(b: &[u8], dir: Direction, in_error: bool) -> Result<Tpdu, SmsError> {
        let first = *b.first().ok_or(SmsError::Short("TPDU"))?;
        let udhi = first & UDHI != 0;
        let mut at = 1;
        let t = match (dir, first & 0x03) {
            (Direction::MsToNetwork, MTI_SUBMIT) => {
                let message_ref = byte(b, &mut at, "TP-MR")?;
                let destination = Address::decode_tp(b, &mut at)?;
                let pid = byte(b, &mut at, "TP-PID")?;
                let dcs = byte(b, &mut at, "TP-DCS")?;
                let validity = match (first >> 3) & 0x03 {
                    0b00 => Validity::None,
                    0b10 => Validity::Relative(byte(b, &mut at, "TP-VP")?),
                    0b11 => Validity::Absolute(Timestamp::decode(b, &mut at)?),
                    _ => {
                        let e = b.get(at..at + 7).ok_or(SmsError::Short("TP-VP"))?;
                        at += 7;
                        let mut v = [0u8; 7];
                        v.copy_from_slice(e);
                        Validity::Enhanced(v)
                    }
                };
                Tpdu::Submit(Submit {
                    reject_duplicates: first & 0x04 != 0,
                    status_report_request: first & 0x20 != 0,
                    reply_path: first & RP_BIT != 0,
                    message_ref,
                    destination,
                    pid,
                    dcs,
                    validity,
                    user_data: UserData::decode(b, &mut at, dcs, udhi)?,
                })
            }
            (Direction::NetworkToMs, MTI_DELIVER) => {
                let originator = Address::decode_tp(b, &mut at)?;
                let pid = byte(b, &mut at, "TP-PID")?;
                let dcs = byte(b, &mut at, "TP-DCS")?;
                let timestamp = Timestamp::decode(b, &mut at)?;
                Tpdu::Deliver(Deliver {
                    more_messages: first & 0x04 == 0,
                    status_report_indication: first & 0x20 != 0,
                    reply_path: first & RP_BIT != 0,
                    originator,
                    pid,
                    dcs,
                    timestamp,
                    user_data: UserData::decode(b, &mut at, dcs, udhi)?,
                })
            }
            (Direction::NetworkToMs, MTI_STATUS) => {
                let message_ref = byte(b, &mut at, "TP-MR")?;
                let recipient = Address::decode_tp(b, &mut at)?;
                let timestamp = Timestamp::decode(b, &mut at)?;
                let discharge = Timestamp::decode(b, &mut at)?;
                let status = byte(b, &mut at, "TP-ST")?;
                // TP-PI and what it announces are optional; the lab reads no further.
                at = b.len();
                Tpdu::StatusReport(StatusReport {
                    more_messages: first & 0x04 == 0,
                    command: first & 0x20 != 0,
                    message_ref,
                    recipient,
                    timestamp,
                    discharge,
                    status,
                })
            }
            (Direction::NetworkToMs, MTI_SUBMIT) => {
                let failure = in_error.then(|| byte(b, &mut at, "TP-FCS")).transpose()?;
                let _pi = byte(b, &mut at, "TP-PI")?;
                let timestamp = Timestamp::decode(b, &mut at)?;
                at = b.len();
                Tpdu::SubmitReport(SubmitReport { failure, timestamp })
            }
            (Direction::MsToNetwork, MTI_DELIVER) => {
                let failure = in_error.then(|| byte(b, &mut at, "TP-FCS")).transpose()?;
                // TP-PI is mandatory, but phones are known to leave the whole report at
                // its first octet: read it when there.
                let _pi = b.get(at);
                at = b.len();
                Tpdu::DeliverReport(DeliverReport { failure })
            }
            (Direction::MsToNetwork, MTI_STATUS) => {
                return Err(SmsError::Unsupported("SMS-COMMAND".into()))
            }
            (_, mti) => {
                return Err(SmsError::Invalid(format!(
                    "TP-MTI {mti:02b} is reserved in this direction"
                )))
            }
        };
        if at != b.len() {
            return Err(SmsError::Invalid(format!(
                "{} octets after the TPDU",
                b.len() - at
            )));
        }
        Ok(t)
    }
}

fn byte(b: &[u8], at: &mut usize, what: &'static str) -> Result<u8, SmsError> {
    let v = *b.get(*at).ok_or(SmsError::Short(what))?;
    *at += 1;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::user_data::{Body, Ie, DCS_GSM7, DCS_UCS2};
    use super::*;

    fn ts() -> Timestamp {
        Timestamp {
            year: 26,
            month: 12,
            day: 2,
            hour: 10,
            minute: 40,
            second: 5,
            tz_quarters: 0,
        }
    }

    fn round(t: &Tpdu, dir: Direction, err: bool) -> Vec<u8> {
        let b = t.encode().unwrap();
        assert_eq!(&Tpdu::decode(&b, dir, err).unwrap(), t, "{b:02x?}");
        b
    }

    /// The classic SMS-SUBMIT: "hellohello" to +15550002, TP-MR 0, no validity:
    /// 01 00 08 91 51 55 00 20 00 00 0A E8 32 9B FD 46 97 D9 EC 37.
    #[test]
    fn sms_submit_byte_exact() {
        let s = Tpdu::Submit(Submit {
            reject_duplicates: false,
            status_report_request: false,
            reply_path: false,
            message_ref: 0,
            destination: Address::from_number("+15550002"),
            pid: 0,
            dcs: DCS_GSM7,
            validity: Validity::None,
            user_data: UserData::text("hellohello"),
        });
        assert_eq!(
            round(&s, Direction::MsToNetwork, false),
            [
                0x01, 0x00, 0x08, 0x91, 0x51, 0x55, 0x00, 0x20, 0x00, 0x00, 0x0a, 0xe8, 0x32, 0x9b,
                0xfd, 0x46, 0x97, 0xd9, 0xec, 0x37
            ]
        );
        // With a status report asked, a relative validity and a concatenation header.
        let s = Tpdu::Submit(Submit {
            reject_duplicates: true,
            status_report_request: true,
            reply_path: false,
            message_ref: 7,
            destination: Address::from_number("+15550002"),
            pid: 0,
            dcs: DCS_UCS2,
            validity: Validity::Relative(167),
            user_data: UserData {
                header: vec![Ie::Concat {
                    reference: 9,
                    total: 2,
                    seq: 1,
                    wide: false,
                }],
                body: Body::Text("안녕".into()),
            },
        });
        let b = round(&s, Direction::MsToNetwork, false);
        assert_eq!(b[0], 0x01 | 0x04 | 0x10 | 0x20 | 0x40);
        assert_eq!(Validity::Relative(167).relative_secs(), Some(24 * 3600));
        assert_eq!(Validity::Relative(0).relative_secs(), Some(300));
        assert_eq!(Validity::Relative(173).relative_secs(), Some(7 * 86_400));
    }

    #[test]
    fn sms_deliver_and_reports() {
        let d = Tpdu::Deliver(Deliver {
            more_messages: false,
            status_report_indication: true,
            reply_path: false,
            originator: Address::from_number("+15550001"),
            pid: 0,
            dcs: DCS_GSM7,
            timestamp: ts(),
            user_data: UserData::text("hi €"),
        });
        let b = round(&d, Direction::NetworkToMs, false);
        assert_eq!(b[0], 0x24, "MTI 00, TP-MMS (no more), TP-SRI");

        let r = Tpdu::StatusReport(StatusReport {
            more_messages: false,
            command: false,
            message_ref: 7,
            recipient: Address::from_number("+15550002"),
            timestamp: ts(),
            discharge: ts(),
            status: status::RECEIVED,
        });
        let b = round(&r, Direction::NetworkToMs, false);
        assert_eq!(&b[..3], &[0x06, 0x07, 0x08]);

        let ack = Tpdu::SubmitReport(SubmitReport {
            failure: None,
            timestamp: ts(),
        });
        assert_eq!(round(&ack, Direction::NetworkToMs, false).len(), 9);
        let err = Tpdu::SubmitReport(SubmitReport {
            failure: Some(0xc0),
            timestamp: ts(),
        });
        assert_eq!(round(&err, Direction::NetworkToMs, true)[1], 0xc0);
        let dr = Tpdu::DeliverReport(DeliverReport { failure: None });
        assert_eq!(round(&dr, Direction::MsToNetwork, false), [0x00, 0x00]);
        // A deliver report of its first octet only, as some phones send it.
        assert_eq!(
            Tpdu::decode(&[0x00], Direction::MsToNetwork, false).unwrap(),
            dr
        );
        let dre = Tpdu::DeliverReport(DeliverReport {
            failure: Some(0xd2),
        });
        round(&dre, Direction::MsToNetwork, true);
    }

    #[test]
    fn bad_tpdus_are_errors_not_panics() {
        assert!(Tpdu::decode(&[], Direction::MsToNetwork, false).is_err());
        assert!(matches!(
            Tpdu::decode(&[0x02], Direction::MsToNetwork, false),
            Err(SmsError::Unsupported(_))
        ));
        assert!(Tpdu::decode(&[0x03], Direction::NetworkToMs, false).is_err());
        // A SUBMIT cut in its address, in its user data; one with junk after it.
        assert!(Tpdu::decode(
            &[0x01, 0x00, 0x08, 0x91, 0x51],
            Direction::MsToNetwork,
            false
        )
        .is_err());
        let mut ok = Tpdu::Submit(Submit {
            reject_duplicates: false,
            status_report_request: false,
            reply_path: false,
            message_ref: 0,
            destination: Address::from_number("+1"),
            pid: 0,
            dcs: DCS_GSM7,
            validity: Validity::None,
            user_data: UserData::text("abc"),
        })
        .encode()
        .unwrap();
        ok.pop();
        assert!(Tpdu::decode(&ok, Direction::MsToNetwork, false).is_err());
        ok.extend_from_slice(&[0, 0, 0]);
        assert!(Tpdu::decode(&ok, Direction::MsToNetwork, false).is_err());
    }
}
