//! What the IP-SM-GW reads from and writes into `application/vnd.3gpp.sms` bodies (TS 24.341
//! §5.3, TS 24.011 §7.3, TS 23.040 §9.2.2): a phone's RP-DATA with an SMS-SUBMIT becomes a
//! [`StoredSm`]; the RP-ACK (SMS-SUBMIT-REPORT) or RP-ERROR that answers it; the RP-DATA with
//! an SMS-DELIVER or an SMS-STATUS-REPORT the centre sends a phone. Pure functions.

use crate::sms::address::{TON_ALPHANUMERIC, TON_INTERNATIONAL};
use crate::sms::rp::cause;
use crate::sms::tpdu::{Deliver, StatusReport, Submit, SubmitReport};
use crate::sms::{Address, Direction, RpMessage, SmsError, Timestamp, Tpdu, UserData};

use super::store::{Origin, ReportOf, StoredSm};

/// An `application/vnd.3gpp.sms` body from a phone, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromPhone {
    /// RP-DATA with an SMS-SUBMIT: a message to send.
    Submit { rp_mr: u8, submit: Submit },
    /// RP-ACK: the phone took what we sent it with this RP-MR.
    Ack { rp_mr: u8 },
    /// RP-ERROR: it did not (cause, TS 24.011 §8.2.5.4).
    Error { rp_mr: u8, cause: u8 },
    /// RP-SMMA: it has room again.
    Smma { rp_mr: u8 },
}

/// Why a body from a phone is refused: the RP-MR to answer (if it could be read) and the RP
/// cause for the RP-ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rp_mr: Option<u8>,
    pub cause: u8,
    pub why: String,
}

/// Reads a phone's body.
pub fn read(body: &[u8]) -> Result<FromPhone, Refused> {
    let rp = RpMessage::decode(body).map_err(|e| Refused {
        rp_mr: body.get(1).copied(),
        cause: match &e {
            SmsError::Invalid(w) if w.contains("cause 97") => cause::MESSAGE_TYPE_NON_EXISTENT,
            _ => cause::INVALID_MANDATORY_INFORMATION,
        },
        why: e.to_string(),
    })?;
    match rp {
        RpMessage::Data {
            dir: Direction::MsToNetwork,
            mr,
            tpdu,
            ..
        } => match Tpdu::decode(&tpdu, Direction::MsToNetwork, false) {
            Ok(Tpdu::Submit(submit)) => Ok(FromPhone::Submit { rp_mr: mr, submit }),
            Ok(_) => Err(Refused {
                rp_mr: Some(mr),
                cause: cause::SEMANTICALLY_INCORRECT,
                why: "RP-DATA from a phone carries no SMS-SUBMIT".into(),
            }),
            Err(e) => Err(Refused {
                rp_mr: Some(mr),
                cause: cause::INVALID_MANDATORY_INFORMATION,
                why: format!("SMS-SUBMIT: {e}"),
            }),
        },
        RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr,
            ..
        } => Ok(FromPhone::Ack { rp_mr: mr }),
        RpMessage::Error {
            dir: Direction::MsToNetwork,
            mr,
            cause,
            ..
        } => Ok(FromPhone::Error { rp_mr: mr, cause }),
        RpMessage::Smma { mr } => Ok(FromPhone::Smma { rp_mr: mr }),
        other => Err(Refused {
            rp_mr: Some(other.mr()),
            cause: cause::MESSAGE_TYPE_NON_EXISTENT,
            why: format!("{} in the network-to-phone direction", other.name()),
        }),
    }
}

/// The message a phone's SUBMIT asks for: `id` from the store, `from` the sender's number
/// (or name), `now` and the validity in Unix seconds.
pub fn stored_from_submit(
    id: u64,
    impu: &str,
    from: &Address,
    submit: &Submit,
    now: u64,
    default_validity: u64,
    max_validity: u64,
) -> Result<StoredSm, Refused> {
    let mut ud = Vec::new();
    let udhi = submit
        .user_data
        .encode(submit.dcs, &mut ud)
        .map_err(|e| Refused {
            rp_mr: None,
            cause: cause::INVALID_MANDATORY_INFORMATION,
            why: format!("user data: {e}"),
        })?;
    let to = submit.destination.number();
    if to.trim_start_matches('+').is_empty() {
        return Err(Refused {
            rp_mr: None,
            cause: cause::UNASSIGNED_NUMBER,
            why: "the SMS-SUBMIT has no destination".into(),
        });
    }
    let validity = submit
        .validity
        .relative_secs()
        .unwrap_or(default_validity)
        .min(max_validity);
    Ok(StoredSm {
        id,
        origin: Origin::Phone {
            impu: impu.to_string(),
            tp_mr: submit.message_ref,
        },
        from: from.number(),
        from_toa: from.toa,
        to,
        pid: submit.pid,
        dcs: submit.dcs,
        udhi,
        ud,
        report: submit.status_report_request,
        received: now,
        expires: now.saturating_add(validity),
        attempts: 0,
        report_of: None,
        failure_only: false,
        given_id: None,
    })
}

/// The TP address of a sender: its tel number when known, else the user part of its SIP URI
/// (as a number when it is digits, else alphanumeric, at most 11 characters).
pub fn sender_address(number: Option<&str>, impu: &str) -> Address {
    if let Some(n) = number {
        return Address::from_number(n);
    }
    let user = crate::sip::Uri::parse(impu)
        .ok()
        .and_then(|u| u.user().map(str::to_string))
        .unwrap_or_default();
    if !user.is_empty()
        && user
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Address::from_number(&user);
    }
    let name: String = user
        .chars()
        .filter(|c| crate::sms::gsm7::septets_of(*c).is_some())
        .take(11)
        .collect();
    Address {
        toa: TON_ALPHANUMERIC,
        value: if name.is_empty() {
            "unknown".into()
        } else {
            name
        },
    }
}

/// The RP-ACK with an SMS-SUBMIT-REPORT (TS 23.040 §9.2.2.2a) the centre sends for a SUBMIT it
/// accepted at `now`.
pub fn submit_ack(rp_mr: u8, now: u64) -> Result<Vec<u8>, SmsError> {
    let report = Tpdu::SubmitReport(SubmitReport {
        failure: None,
        timestamp: Timestamp::from_unix(now),
    })
    .encode()?;
    RpMessage::Ack {
        dir: Direction::NetworkToMs,
        mr: rp_mr,
        tpdu: Some(report),
    }
    .encode()
}

/// An RP-ERROR with `cause` (no report TPDU).
pub fn rp_error(rp_mr: u8, cause: u8) -> Result<Vec<u8>, SmsError> {
    RpMessage::Error {
        dir: Direction::NetworkToMs,
        mr: rp_mr,
        cause,
        diagnostic: None,
        tpdu: None,
    }
    .encode()
}

/// The RP-DATA with the SMS-DELIVER of `m`, RP-OA the centre's number `sc`.
pub fn deliver(m: &StoredSm, rp_mr: u8, sc: &str) -> Result<Vec<u8>, SmsError> {
    let mut at = 0;
    let user_data = UserData::decode(&m.ud, &mut at, m.dcs, m.udhi)?;
    let tpdu = Tpdu::Deliver(Deliver {
        more_messages: false,
        status_report_indication: m.report,
        reply_path: false,
        originator: Address {
            toa: m.from_toa,
            value: if m.from_toa & 0x70 == 0x10 {
                m.from.trim_start_matches('+').to_string()
            } else {
                m.from.clone()
            },
        },
        pid: m.pid,
        dcs: m.dcs,
        timestamp: Timestamp::from_unix(m.received),
        user_data,
    })
    .encode()?;
    to_phone(rp_mr, sc, tpdu)
}

/// The RP-DATA with the SMS-STATUS-REPORT `r` (decided at `discharge`, Unix seconds).
pub fn status_report(
    r: &ReportOf,
    discharge: u64,
    rp_mr: u8,
    sc: &str,
) -> Result<Vec<u8>, SmsError> {
    let tpdu = Tpdu::StatusReport(StatusReport {
        more_messages: false,
        command: false,
        message_ref: r.tp_mr,
        recipient: Address::from_number(&r.recipient),
        timestamp: Timestamp::from_unix(r.received),
        discharge: Timestamp::from_unix(discharge),
        status: r.status,
    })
    .encode()?;
    to_phone(rp_mr, sc, tpdu)
}

/// RP-DATA from the centre `sc` to a phone, carrying `tpdu`.
fn to_phone(rp_mr: u8, sc: &str, tpdu: Vec<u8>) -> Result<Vec<u8>, SmsError> {
    RpMessage::Data {
        dir: Direction::NetworkToMs,
        mr: rp_mr,
        originator: Some(Address::from_number(sc)),
        destination: None,
        tpdu,
    }
    .encode()
}

/// The text of `m`'s user data (for logs and SMPP deliver_sm), if it is text.
pub fn text_of(m: &StoredSm) -> Option<String> {
    let mut at = 0;
    UserData::decode(&m.ud, &mut at, m.dcs, m.udhi)
        .ok()
        .and_then(|u| u.as_text().map(str::to_string))
}

/// Whether a number is international (`+…`), for its TON.
pub fn toa_of(number: &str) -> u8 {
    if number.starts_with('+') {
        TON_INTERNATIONAL
    } else {
        crate::sms::address::TON_UNKNOWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::tpdu::Validity;

    fn submit(text: &str, to: &str) -> Submit {
        Submit {
            reject_duplicates: false,
            status_report_request: true,
            reply_path: false,
            message_ref: 7,
            destination: Address::from_number(to),
            pid: 0,
            dcs: 0,
            validity: Validity::Relative(167),
            user_data: UserData::text(text),
        }
    }

    fn mo_body(s: &Submit) -> Vec<u8> {
        RpMessage::Data {
            dir: Direction::MsToNetwork,
            mr: 42,
            originator: None,
            destination: Some(Address::from_number("+15559999")),
            tpdu: Tpdu::Submit(s.clone()).encode().unwrap(),
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn a_submit_is_read_stored_and_delivered_with_the_same_text_and_the_senders_number() {
        let s = submit("hello", "+15550002");
        let FromPhone::Submit { rp_mr, submit: got } = read(&mo_body(&s)).unwrap() else {
            panic!("not a submit")
        };
        assert_eq!((rp_mr, &got), (42, &s));
        let from = sender_address(Some("+15550001"), "sip:alice@ims.lab");
        let m =
            stored_from_submit(9, "sip:alice@ims.lab", &from, &got, 1000, 3600, 86_400).unwrap();
        assert_eq!(m.to, "+15550002");
        assert_eq!(m.from, "+15550001");
        // Relative 167: 24 h, cut to the 86,400 s maximum.
        assert_eq!(m.expires, 1000 + 86_400);
        assert_eq!(text_of(&m).as_deref(), Some("hello"));
        let body = deliver(&m, 3, "+15559999").unwrap();
        let RpMessage::Data {
            mr,
            originator,
            tpdu,
            ..
        } = RpMessage::decode(&body).unwrap()
        else {
            panic!("not RP-DATA")
        };
        assert_eq!(mr, 3);
        assert_eq!(originator.unwrap().number(), "+15559999");
        let Tpdu::Deliver(d) = Tpdu::decode(&tpdu, Direction::NetworkToMs, false).unwrap() else {
            panic!("not a DELIVER")
        };
        assert_eq!(d.originator.number(), "+15550001");
        assert!(d.status_report_indication);
        assert_eq!(d.user_data.as_text(), Some("hello"));
        assert_eq!(d.timestamp, Timestamp::from_unix(1000));
    }

    #[test]
    fn a_korean_part_keeps_its_header_and_alphabet() {
        let mut s = submit("안녕하세요", "+15550002");
        s.dcs = crate::sms::user_data::DCS_UCS2;
        s.user_data.header = vec![crate::sms::user_data::Ie::Concat {
            reference: 5,
            total: 2,
            seq: 1,
            wide: false,
        }];
        let from = sender_address(None, "sip:alice@ims.lab");
        assert_eq!(from.toa, TON_ALPHANUMERIC);
        assert_eq!(from.value, "alice");
        let m = stored_from_submit(1, "sip:alice@ims.lab", &from, &s, 0, 60, 60).unwrap();
        assert!(m.udhi);
        let body = deliver(&m, 1, "+15559999").unwrap();
        let RpMessage::Data { tpdu, .. } = RpMessage::decode(&body).unwrap() else {
            panic!()
        };
        let Tpdu::Deliver(d) = Tpdu::decode(&tpdu, Direction::NetworkToMs, false).unwrap() else {
            panic!()
        };
        assert_eq!(d.user_data, s.user_data);
        assert_eq!(d.originator.value, "alice");
    }

    #[test]
    fn reports_and_answers_decode_as_the_phone_reads_them() {
        let ack = RpMessage::decode(&submit_ack(42, 0).unwrap()).unwrap();
        let RpMessage::Ack {
            dir: Direction::NetworkToMs,
            mr: 42,
            tpdu: Some(t),
        } = ack
        else {
            panic!("{ack:?}")
        };
        assert!(matches!(
            Tpdu::decode(&t, Direction::NetworkToMs, false).unwrap(),
            Tpdu::SubmitReport(SubmitReport { failure: None, .. })
        ));
        assert_eq!(
            RpMessage::decode(&rp_error(5, cause::CONGESTION).unwrap()).unwrap(),
            RpMessage::Error {
                dir: Direction::NetworkToMs,
                mr: 5,
                cause: cause::CONGESTION,
                diagnostic: None,
                tpdu: None
            }
        );
        let r = ReportOf {
            status: 0,
            tp_mr: 7,
            recipient: "+15550002".into(),
            received: 10,
            message_id: 1,
        };
        let body = status_report(&r, 20, 9, "+15559999").unwrap();
        let RpMessage::Data { mr: 9, tpdu, .. } = RpMessage::decode(&body).unwrap() else {
            panic!()
        };
        let Tpdu::StatusReport(r) = Tpdu::decode(&tpdu, Direction::NetworkToMs, false).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.message_ref, r.status), (7, 0));
        assert_eq!(r.recipient.number(), "+15550002");
        assert_eq!(r.discharge, Timestamp::from_unix(20));
    }

    #[test]
    fn what_a_phone_must_not_send_is_refused_with_a_cause() {
        assert_eq!(read(&[]).unwrap_err().rp_mr, None);
        let r = read(&[0x07, 3]).unwrap_err();
        assert_eq!(
            (r.rp_mr, r.cause),
            (Some(3), cause::MESSAGE_TYPE_NON_EXISTENT)
        );
        // An RP-ACK in the network's direction (RP-MTI 3) from a phone.
        let r = read(&[0x03, 4]).unwrap_err();
        assert_eq!(
            (r.rp_mr, r.cause),
            (Some(4), cause::MESSAGE_TYPE_NON_EXISTENT)
        );
        assert_eq!(read(&[0x02, 4]).unwrap(), FromPhone::Ack { rp_mr: 4 });
        assert_eq!(
            read(&[0x04, 4, 1, 22]).unwrap(),
            FromPhone::Error {
                rp_mr: 4,
                cause: 22
            }
        );
        assert_eq!(read(&[0x06, 1]).unwrap(), FromPhone::Smma { rp_mr: 1 });
        // RP-DATA whose user data is no SMS-SUBMIT.
        let body = RpMessage::Data {
            dir: Direction::MsToNetwork,
            mr: 8,
            originator: None,
            destination: Some(Address::from_number("+15559999")),
            tpdu: vec![0x01],
        }
        .encode()
        .unwrap();
        let r = read(&body).unwrap_err();
        assert_eq!(
            (r.rp_mr, r.cause),
            (Some(8), cause::INVALID_MANDATORY_INFORMATION)
        );
    }
}
