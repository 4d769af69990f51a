//! The relay layer (3GPP TS 24.011 §7.3, §8.2): RP-DATA, RP-ACK, RP-ERROR and RP-SMMA, the
//! body of an SMS-over-IP SIP MESSAGE (`application/vnd.3gpp.sms`, TS 24.341 §5.3). Every RP
//! message carries the RP-Message Reference its answer echoes; the TPDU rides in RP-User-Data
//! (a plain length-value in RP-DATA, IEI 0x41 in RP-ACK and RP-ERROR).

use super::address::Address;
use super::{Direction, SmsError};

/// The content type of an RP message in a SIP MESSAGE (TS 24.341 §7.2).
pub const CONTENT_TYPE: &str = "application/vnd.3gpp.sms";

/// RP-User-Data holds at most this many octets (TS 24.011 §8.2.5.3).
pub const MAX_RP_UD: usize = 233;

/// The RP-User-Data element's IEI in RP-ACK and RP-ERROR.
const IEI_USER_DATA: u8 = 0x41;

/// RP-Cause values (TS 24.011 §8.2.5.4, Table 8.4) the lab sends.
pub mod cause {
    /// Unassigned (unallocated) number.
    pub const UNASSIGNED_NUMBER: u8 = 1;
    /// Short message transfer rejected.
    pub const SM_TRANSFER_REJECTED: u8 = 21;
    /// Memory capacity exceeded (MT: the phone's store is full).
    pub const MEMORY_CAPACITY_EXCEEDED: u8 = 22;
    /// Destination out of order.
    pub const DESTINATION_OUT_OF_ORDER: u8 = 27;
    /// Unidentified subscriber.
    pub const UNIDENTIFIED_SUBSCRIBER: u8 = 28;
    /// Unknown subscriber.
    pub const UNKNOWN_SUBSCRIBER: u8 = 30;
    /// Network out of order.
    pub const NETWORK_OUT_OF_ORDER: u8 = 38;
    /// Temporary failure.
    pub const TEMPORARY_FAILURE: u8 = 41;
    /// Congestion.
    pub const CONGESTION: u8 = 42;
    /// Semantically incorrect message.
    pub const SEMANTICALLY_INCORRECT: u8 = 95;
    /// Invalid mandatory information.
    pub const INVALID_MANDATORY_INFORMATION: u8 = 96;
    /// Message type non-existent or not implemented.
    pub const MESSAGE_TYPE_NON_EXISTENT: u8 = 97;
    /// Protocol error, unspecified.
    pub const PROTOCOL_ERROR: u8 = 111;
}

/// An RP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpMessage {
    /// RP-DATA: a TPDU (SMS-SUBMIT from the phone; SMS-DELIVER or SMS-STATUS-REPORT to it).
    /// From the phone the destination is the service centre and the originator empty; to
    /// the phone the originator is the service centre and the destination empty.
    Data {
        dir: Direction,
        mr: u8,
        originator: Option<Address>,
        destination: Option<Address>,
        tpdu: Vec<u8>,
    },
    /// RP-ACK, with the report TPDU if any.
    Ack {
        dir: Direction,
        mr: u8,
        tpdu: Option<Vec<u8>>,
    },
    /// RP-ERROR: a cause (and diagnostic), with the report TPDU if any.
    Error {
        dir: Direction,
        mr: u8,
        cause: u8,
        diagnostic: Option<u8>,
        tpdu: Option<Vec<u8>>,
    },
    /// RP-SMMA: the phone has room again (memory available).
    Smma { mr: u8 },
}

impl RpMessage {
    /// The RP-Message Reference.
    pub fn mr(&self) -> u8 {
        match self {
            RpMessage::Data { mr, .. }
            | RpMessage::Ack { mr, .. }
            | RpMessage::Error { mr, .. }
            | RpMessage::Smma { mr } => *mr,
        }
    }

    /// The message's name, as a trace shows it.
    pub fn name(&self) -> &'static str {
        match self {
            RpMessage::Data { .. } => "RP-DATA",
            RpMessage::Ack { .. } => "RP-ACK",
            RpMessage::Error { .. } => "RP-ERROR",
            RpMessage::Smma { .. } => "RP-SMMA",
        }
    }

    /// The octets.
    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        let mut out = Vec::with_capacity(256);
        let up = |d: &Direction, v: u8| match d {
            Direction::MsToNetwork => v,
            Direction::NetworkToMs => v + 1,
        };
        match self {
            RpMessage::Data {
                dir,
                mr,
                originator,
                destination,
                tpdu,
            } => {
                out.push(up(dir, 0));
                out.push(*mr);
                Address::encode_rp(originator.as_ref(), &mut out)?;
                Address::encode_rp(destination.as_ref(), &mut out)?;
                check_ud(tpdu)?;
                out.push(tpdu.len() as u8);
                out.extend_from_slice(tpdu);
            }
            RpMessage::Ack { dir, mr, tpdu } => {
                out.push(up(dir, 2));
                out.push(*mr);
                push_ud(tpdu.as_deref(), &mut out)?;
            }
            RpMessage::Error {
                dir,
                mr,
                cause,
                diagnostic,
                tpdu,
            } => {
                out.push(up(dir, 4));
                out.push(*mr);
                match diagnostic {
                    Some(d) => out.extend_from_slice(&[2, *cause & 0x7f, *d]),
                    None => out.extend_from_slice(&[1, *cause & 0x7f]),
                }
                push_ud(tpdu.as_deref(), &mut out)?;
            }
            RpMessage::Smma { mr } => {
                out.push(6);
                out.push(*mr);
            }
        }
        Ok(out)
    }

    /// Decodes an RP message (its direction is in its RP-MTI).
    pub fn decode(b: &[u8]) -> Result<RpMessage, SmsError> {
        let mti = *b.first().ok_or(SmsError::Short("RP-MTI"))? & 0x07;
        let mr = *b.get(1).ok_or(SmsError::Short("RP-Message Reference"))?;
        let dir = if mti % 2 == 0 {
            Direction::MsToNetwork
        } else {
            Direction::NetworkToMs
        };
        let mut at = 2;
        let m = match mti {
            0 | 1 => {
                let originator = Address::decode_rp(b, &mut at)?;
                let destination = Address::decode_rp(b, &mut at)?;
                let n = *b.get(at).ok_or(SmsError::Short("RP-User-Data length"))? as usize;
                let tpdu = b
                    .get(at + 1..at + 1 + n)
                    .ok_or(SmsError::Short("RP-User-Data"))?
                    .to_vec();
                check_ud(&tpdu)?;
                at += 1 + n;
                RpMessage::Data {
                    dir,
                    mr,
                    originator,
                    destination,
                    tpdu,
                }
            }
            2 | 3 => RpMessage::Ack {
                dir,
                mr,
                tpdu: read_ud(b, &mut at)?,
            },
            4 | 5 => {
                let n = *b.get(at).ok_or(SmsError::Short("RP-Cause length"))? as usize;
                let c = b
                    .get(at + 1..at + 1 + n)
                    .ok_or(SmsError::Short("RP-Cause"))?;
                let cause = *c
                    .first()
                    .ok_or(SmsError::Invalid("an empty RP-Cause".into()))?
                    & 0x7f;
                let diagnostic = c.get(1).copied();
                at += 1 + n;
                RpMessage::Error {
                    dir,
                    mr,
                    cause,
                    diagnostic,
                    tpdu: read_ud(b, &mut at)?,
                }
            }
            6 => RpMessage::Smma { mr },
            _ => {
                return Err(SmsError::Invalid(format!(
                    "RP-MTI {mti} is reserved (cause 97)"
                )))
            }
        };
        if at != b.len() {
            return Err(SmsError::Invalid(format!(
                "{} octets after the {}",
                b.len() - at,
                m.name()
            )));
        }
        Ok(m)
    }
}

fn check_ud(tpdu: &[u8]) -> Result<(), SmsError> {
    if tpdu.len() > MAX_RP_UD {
        return Err(SmsError::TooLong(format!(
            "RP-User-Data of {} octets (at most {MAX_RP_UD})",
            tpdu.len()
        )));
    }
    Ok(())
}

fn push_ud(tpdu: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), SmsError> {
    if let Some(t) = tpdu {
        check_ud(t)?;
        out.push(IEI_USER_DATA);
        out.push(t.len() as u8);
        out.extend_from_slice(t);
    }
    Ok(())
}

fn read_ud(b: &[u8], at: &mut usize) -> Result<Option<Vec<u8>>, SmsError> {
    match b.get(*at) {
        None => Ok(None),
        Some(&IEI_USER_DATA) => {
            let n = *b
                .get(*at + 1)
                .ok_or(SmsError::Short("RP-User-Data length"))? as usize;
            let t = b
                .get(*at + 2..*at + 2 + n)
                .ok_or(SmsError::Short("RP-User-Data"))?
                .to_vec();
            check_ud(&t)?;
            *at += 2 + n;
            Ok(Some(t))
        }
        Some(iei) => Err(SmsError::Invalid(format!(
            "unknown information element {iei:02x} (cause 99)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(m: &RpMessage) -> Vec<u8> {
        let b = m.encode().unwrap();
        assert_eq!(&RpMessage::decode(&b).unwrap(), m, "{b:02x?}");
        b
    }

    /// An MO RP-DATA as TS 24.011 lays it out: MTI 0, MR, an empty originator, the service
    /// centre as destination, the SMS-SUBMIT as length-value.
    #[test]
    fn rp_data_both_ways_byte_exact() {
        let tpdu = vec![0x01, 0x00, 0x01, 0x91, 0xf1, 0x00, 0x00, 0x01, 0x61];
        let mo = RpMessage::Data {
            dir: Direction::MsToNetwork,
            mr: 0x2a,
            originator: None,
            destination: Some(Address::from_number("+15559999")),
            tpdu: tpdu.clone(),
        };
        let b = round(&mo);
        assert_eq!(
            &b[..9],
            &[0x00, 0x2a, 0x00, 0x05, 0x91, 0x51, 0x55, 0x99, 0x99]
        );
        assert_eq!(b[9] as usize, tpdu.len());
        let mt = RpMessage::Data {
            dir: Direction::NetworkToMs,
            mr: 0x01,
            originator: Some(Address::from_number("+15559999")),
            destination: None,
            tpdu,
        };
        let b = round(&mt);
        assert_eq!(b[0], 0x01);
        assert_eq!(b[8], 0x00, "the empty destination");
    }

    #[test]
    fn ack_error_and_smma() {
        let ack = RpMessage::Ack {
            dir: Direction::NetworkToMs,
            mr: 0x2a,
            tpdu: Some(vec![0x01, 0x00]),
        };
        assert_eq!(round(&ack), [0x03, 0x2a, 0x41, 0x02, 0x01, 0x00]);
        let bare = RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr: 5,
            tpdu: None,
        };
        assert_eq!(round(&bare), [0x02, 0x05]);
        let err = RpMessage::Error {
            dir: Direction::NetworkToMs,
            mr: 0x2a,
            cause: cause::UNKNOWN_SUBSCRIBER,
            diagnostic: None,
            tpdu: None,
        };
        assert_eq!(round(&err), [0x05, 0x2a, 0x01, 30]);
        let err2 = RpMessage::Error {
            dir: Direction::MsToNetwork,
            mr: 1,
            cause: cause::MEMORY_CAPACITY_EXCEEDED,
            diagnostic: Some(3),
            tpdu: Some(vec![0x00, 0xd3, 0x00]),
        };
        round(&err2);
        assert_eq!(round(&RpMessage::Smma { mr: 9 }), [0x06, 0x09]);
        assert_eq!(err2.mr(), 1);
        assert_eq!(err2.name(), "RP-ERROR");
    }

    #[test]
    fn bad_rp_messages_are_errors() {
        for b in [
            &[][..],
            &[0x00],
            &[0x07, 0x01],
            &[0x00, 0x01, 0x00, 0x00, 0x05, 0x01],
            &[0x03, 0x01, 0x42, 0x00],
            &[0x05, 0x01, 0x00],
            &[0x02, 0x01, 0x41, 0x09, 0x00],
            &[0x06, 0x01, 0x00],
            &[0x00, 0x01, 0x0c, 0x91],
        ] {
            assert!(RpMessage::decode(b).is_err(), "{b:02x?}");
        }
        let big = RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr: 1,
            tpdu: Some(vec![0; 234]),
        };
        assert!(matches!(big.encode(), Err(SmsError::TooLong(_))));
    }
}
