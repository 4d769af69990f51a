//! The centre's side of SMPP (SMPP 3.4): what an application submits becomes stored short
//! messages (a text longer than one SMS is cut into concatenated parts, one id and one receipt
//! for the whole), what phones send to a short code and the receipts an application asked for
//! go to it as deliver_sm. The SMPP sessions themselves are [`super::smpp`]'s.

use std::sync::{Arc, Weak};

use crate::smpp::{
    Address as SmppAddress, CommandStatus, DataCoding, DeliveryReceipt, EsmClass, MessageState,
    RegisteredDelivery, Sm, SmParams, Tlv,
};
use crate::sms::address::{TON_ALPHANUMERIC, TON_INTERNATIONAL, TON_UNKNOWN};
use crate::sms::concat;
use crate::sms::tpdu::status;
use crate::sms::user_data::{self, Alphabet, Body, Ie, UserData, DCS_GSM7, DCS_OCTET, DCS_UCS2};
use crate::sms::{gsm7, Timestamp};

use super::mt::Outcome;
use super::smpp::{BoxFut, DeliverError, ServiceCentre, Submitted};
use super::store::{Origin, StoredSm};
use super::{lock, unix_now, Smsc};

/// The service centre as the SMPP server sees it (a weak handle: the server is the centre's).
pub struct ScHandle(pub(super) Weak<Smsc>);

impl ServiceCentre for ScHandle {
    fn submit(&self, m: Submitted) -> BoxFut<Result<String, CommandStatus>> {
        let sc = self.0.upgrade();
        Box::pin(async move {
            match sc {
                Some(sc) => sc.submit_from_application(m).await,
                None => Err(CommandStatus::SysErr),
            }
        })
    }

    fn bound(&self, system_id: &str) {
        if let Some(sc) = self.0.upgrade() {
            let mut dests = vec![format!("esme:{system_id}")];
            dests.extend(
                sc.settings
                    .short_codes
                    .iter()
                    .filter(|(_, s)| *s == system_id)
                    .map(|(c, _)| c.clone()),
            );
            for d in dests {
                lock(&sc.queue).wake(&d);
                sc.kick(&d);
            }
        }
    }
}

/// An SMPP address as the centre writes it: `+digits` for an international number.
pub fn number_of(a: &SmppAddress) -> (String, u8) {
    match a.ton {
        1 => (
            format!("+{}", a.addr.trim_start_matches('+')),
            TON_INTERNATIONAL,
        ),
        5 => (a.addr.clone(), TON_ALPHANUMERIC),
        _ if a.addr.starts_with('+') => (a.addr.clone(), TON_INTERNATIONAL),
        _ => (a.addr.clone(), TON_UNKNOWN),
    }
}

/// The SMPP address of a number the centre wrote.
pub fn smpp_address(number: &str, toa: u8) -> SmppAddress {
    if toa == TON_ALPHANUMERIC {
        SmppAddress::alphanumeric(number)
    } else if let Some(d) = number.strip_prefix('+') {
        SmppAddress::international(d)
    } else {
        SmppAddress {
            ton: 0,
            npi: 1,
            addr: number.to_string(),
        }
    }
}

/// The user data of an application's payload (SMPP §5.2.19): the SMSC default alphabet and
/// IA5 as GSM 7-bit (one septet an octet), Latin-1, UCS-2, or octets; with its UDH when
/// esm_class says UDHI. Texts come back as text, in GSM 7-bit when they fit, else UCS-2.
pub fn user_data_of(
    data_coding: u8,
    udhi: bool,
    payload: &[u8],
) -> Result<(u8, UserData), CommandStatus> {
    let (header, rest) = if udhi {
        let n = usize::from(*payload.first().ok_or(CommandStatus::InvMsgLen)?);
        let h = payload.get(1..1 + n).ok_or(CommandStatus::InvMsgLen)?;
        let ies = user_data::parse_header(h).map_err(|_| CommandStatus::InvMsgLen)?;
        (ies, &payload[1 + n..])
    } else {
        (Vec::new(), payload)
    };
    let text = match data_coding {
        0x00 => Some(gsm7::decode(rest)),
        0x01 => Some(rest.iter().map(|b| char::from(b & 0x7f)).collect()),
        0x03 => Some(rest.iter().map(|b| char::from(*b)).collect()),
        0x08 => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        dc if user_data::alphabet(dc) == Alphabet::Ucs2 => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        dc if user_data::alphabet(dc) == Alphabet::Octet => None,
        _ => Some(gsm7::decode(rest)),
    };
    Ok(match text {
        Some(t) => (
            if gsm7::fits(&t) { DCS_GSM7 } else { DCS_UCS2 },
            UserData {
                header,
                body: Body::Text(t),
            },
        ),
        None => (
            DCS_OCTET,
            UserData {
                header,
                body: Body::Octets(rest.to_vec()),
            },
        ),
    })
}

/// A stored message's user data as deliver_sm carries it: (data_coding, esm_class UDHI bit,
/// short_message).
pub fn payload_of(m: &StoredSm) -> (u8, u8, Vec<u8>) {
    let mut at = 0;
    let Ok(ud) = UserData::decode(&m.ud, &mut at, m.dcs, m.udhi) else {
        return (m.dcs, 0, Vec::new());
    };
    let mut out = ud.header_bytes().unwrap_or_default();
    let udhi = if out.is_empty() { 0 } else { EsmClass::UDHI };
    let dc = match &ud.body {
        Body::Text(t) => match gsm7::encode(t) {
            Some(septets) if user_data::alphabet(m.dcs) == Alphabet::Gsm7 => {
                out.extend_from_slice(&septets);
                0x00
            }
            _ => {
                out.extend(t.encode_utf16().flat_map(|u| u.to_be_bytes()));
                0x08
            }
        },
        Body::Octets(d) => {
            out.extend_from_slice(d);
            0x04
        }
    };
    (dc, udhi, out)
}

/// `YYMMDDhhmm` of a Unix time, as receipts write dates.
fn receipt_date(unix: u64) -> String {
    let t = Timestamp::from_unix(unix);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The deliver_sm for `m`: a phone's message to a short code, or a receipt.
pub fn deliver_sm(m: &StoredSm, now: u64) -> Sm {
    if let Some(r) = &m.report_of {
        let (stat, err) = match r.status {
            status::RECEIVED => (MessageState::Delivered, "000"),
            status::EXPIRED => (MessageState::Expired, "000"),
            _ => (MessageState::Undeliverable, "001"),
        };
        let id = r.message_id.to_string();
        let text = DeliveryReceipt {
            id: id.clone(),
            sub: 1,
            dlvrd: u16::from(r.status == status::RECEIVED),
            submit_date: receipt_date(r.received),
            done_date: receipt_date(m.received.min(now)),
            stat,
            err: err.into(),
            text: String::new(),
        }
        .build();
        return Sm {
            service_type: String::new(),
            source: smpp_address(&r.recipient, crate::smsc::pdus::toa_of(&r.recipient)),
            dest: smpp_address(&m.from, m.from_toa),
            params: SmParams {
                esm_class: EsmClass(EsmClass::DELIVERY_RECEIPT),
                data_coding: DataCoding(0),
                short_message: text.into_bytes(),
                ..SmParams::default()
            },
            tlvs: vec![
                Tlv::ReceiptedMessageId(id),
                Tlv::MessageStateTlv(stat.code()),
            ],
        };
    }
    let (dc, udhi, payload) = payload_of(m);
    Sm {
        service_type: String::new(),
        source: smpp_address(&m.from, m.from_toa),
        dest: smpp_address(&m.to, crate::smsc::pdus::toa_of(&m.to)),
        params: SmParams {
            esm_class: EsmClass(udhi),
            protocol_id: m.pid,
            registered_delivery: RegisteredDelivery(0),
            data_coding: DataCoding(dc),
            short_message: payload,
            ..SmParams::default()
        },
        tlvs: Vec::new(),
    }
}

impl Smsc {
    /// The system_id a destination belongs to: `esme:ID` (receipts) or a short code.
    pub(super) fn application_of(&self, dest: &str) -> Option<String> {
        if let Some(id) = dest.strip_prefix("esme:") {
            return Some(id.to_string());
        }
        self.settings
            .short_codes
            .get(dest.trim_start_matches('+'))
            .cloned()
    }

    /// One attempt to hand `m` to the application `system_id`.
    pub(super) async fn to_application(&self, system_id: &str, m: &StoredSm) -> Outcome {
        let Some(server) = self.smpp.get() else {
            return Outcome::Later("no SMPP listener".into());
        };
        match server.deliver(system_id, deliver_sm(m, unix_now())).await {
            Ok(()) => Outcome::Delivered,
            Err(DeliverError::Refused(s)) if s == CommandStatus::MsgQFul => {
                Outcome::Later(format!("{system_id} is full ({s})"))
            }
            Err(DeliverError::Refused(s)) => Outcome::Failed(
                status::INCOMPATIBLE_DESTINATION,
                format!("{system_id} refused it ({s})"),
            ),
            Err(e) => Outcome::Later(format!("{system_id}: {e}")),
        }
    }

    /// submit_sm / data_sm: stored (cut into parts when it is longer than one SMS), flushed,
    /// then the id.
    async fn submit_from_application(
        self: Arc<Self>,
        s: Submitted,
    ) -> Result<String, CommandStatus> {
        let (to, _) = number_of(&s.dest);
        if to.trim_start_matches('+').is_empty() {
            return Err(CommandStatus::InvDstAdr);
        }
        let (from, from_toa) = number_of(&s.source);
        let udhi = s.esm_class & EsmClass::UDHI != 0;
        let (dcs, ud) = user_data_of(s.data_coding, udhi, &s.payload)?;
        // One SMS, or the parts of a long text (LMS) with a concatenation header each.
        let mut probe = Vec::new();
        let parts: Vec<UserData> = match ud.encode(dcs, &mut probe) {
            Ok(_) => vec![ud],
            Err(_) if !udhi => match &ud.body {
                Body::Text(t) => {
                    let split = concat::split(t, self.settings.max_parts)
                        .map_err(|_| CommandStatus::InvMsgLen)?;
                    let reference =
                        (unix_now() as u16) ^ (self.store.next_id().unwrap_or(0) as u16);
                    let total = split.parts.len() as u8;
                    split
                        .parts
                        .iter()
                        .enumerate()
                        .map(|(i, p)| UserData {
                            header: if total > 1 {
                                vec![Ie::Concat {
                                    reference: reference & 0xff,
                                    total,
                                    seq: i as u8 + 1,
                                    wide: false,
                                }]
                            } else {
                                Vec::new()
                            },
                            body: Body::Text(p.clone()),
                        })
                        .collect()
                }
                Body::Octets(_) => return Err(CommandStatus::InvMsgLen),
            },
            Err(_) => return Err(CommandStatus::InvMsgLen),
        };
        let now = unix_now();
        let validity = s
            .validity_secs
            .unwrap_or(self.settings.validity.as_secs())
            .min(self.settings.max_validity.as_secs());
        let rd = s.registered_delivery & 0x03;
        let n = parts.len();
        let mut stored = Vec::with_capacity(n);
        let mut first = None;
        for (i, p) in parts.into_iter().enumerate() {
            let dcs = if let Body::Text(t) = &p.body {
                if gsm7::fits(t) && dcs == DCS_GSM7 {
                    DCS_GSM7
                } else if dcs == DCS_OCTET {
                    DCS_OCTET
                } else {
                    DCS_UCS2
                }
            } else {
                DCS_OCTET
            };
            let mut bytes = Vec::new();
            let has_udh = p
                .encode(dcs, &mut bytes)
                .map_err(|_| CommandStatus::InvMsgLen)?;
            let id = self.store.next_id().map_err(|_| CommandStatus::SysErr)?;
            let first_id = *first.get_or_insert(id);
            stored.push(StoredSm {
                id,
                origin: Origin::Esme {
                    system_id: s.system_id.clone(),
                },
                from: from.clone(),
                from_toa,
                to: to.clone(),
                pid: 0,
                dcs,
                udhi: has_udh,
                ud: bytes,
                // One receipt for the whole text, when its last part has gone.
                report: rd != 0 && i + 1 == n,
                received: now,
                expires: now.saturating_add(validity),
                attempts: 0,
                report_of: None,
                failure_only: rd == 2,
                given_id: (id != first_id).then_some(first_id),
            });
        }
        {
            let mut q = lock(&self.queue);
            if q.len() + stored.len() > self.settings.max_stored.saturating_mul(2) || q.is_full() {
                return Err(CommandStatus::MsgQFul);
            }
            for m in &stored {
                q.push(m.clone());
            }
        }
        let kept: Result<(), crate::store::StoreError> = async {
            for m in &stored {
                self.store.put(m)?;
            }
            self.store.durable().await
        }
        .await;
        if let Err(e) = kept {
            tracing::warn!(error = %e, "SMSC: cannot store a submit_sm");
            let mut q = lock(&self.queue);
            for m in &stored {
                q.remove(&m.to, m.id);
            }
            return Err(CommandStatus::SysErr);
        }
        self.kick(&to);
        Ok(first.unwrap_or(0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_in_each_coding_and_come_back_the_same_way() {
        // SMSC default alphabet: GSM 7-bit, one septet an octet.
        let (dcs, ud) = user_data_of(0, false, b"hello").unwrap();
        assert_eq!((dcs, ud.as_text()), (DCS_GSM7, Some("hello")));
        // UCS-2 Korean.
        let k: Vec<u8> = "안녕"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        let (dcs, ud) = user_data_of(8, false, &k).unwrap();
        assert_eq!((dcs, ud.as_text()), (DCS_UCS2, Some("안녕")));
        // Latin-1 that fits GSM 7-bit goes as GSM 7-bit.
        let (dcs, ud) = user_data_of(3, false, &[0xe9]).unwrap();
        assert_eq!((dcs, ud.as_text()), (DCS_GSM7, Some("é")));
        // A UDH in the payload.
        let (_, ud) = user_data_of(0, true, &[5, 0, 3, 9, 2, 1, b'h', b'i']).unwrap();
        assert_eq!(ud.concat(), Some((9, 2, 1)));
        assert_eq!(ud.as_text(), Some("hi"));
        assert_eq!(
            user_data_of(0, true, &[9, 0]).unwrap_err(),
            CommandStatus::InvMsgLen
        );
        let (dcs, ud) = user_data_of(4, false, &[1, 2]).unwrap();
        assert_eq!((dcs, ud.body), (DCS_OCTET, Body::Octets(vec![1, 2])));
    }

    /// A WAP Push part (MMS notification) as the UMS submits it: 8-bit data with the
    /// concatenation and 16-bit port elements, kept as they are for the SMS-DELIVER.
    #[test]
    fn eight_bit_data_with_a_port_header_goes_through_unchanged() {
        let mut sm = vec![
            0x0b, 0x00, 0x03, 0x42, 0x02, 0x01, 0x05, 0x04, 0x0b, 0x84, 0x23, 0xf0,
        ];
        sm.extend_from_slice(&[0x01, 0x06, 0x03, 0xbe, 0xaf, 0x84, 0x8c, 0x82]);
        let (dcs, ud) = user_data_of(0x04, true, &sm).unwrap();
        assert_eq!(dcs, DCS_OCTET);
        assert!(crate::mms::bearer::is_push(&ud.header));
        assert_eq!(ud.concat(), Some((0x42, 2, 1)));
        let mut b = Vec::new();
        assert!(ud.encode(dcs, &mut b).unwrap(), "TP-UDHI");
        assert_eq!(b[0] as usize, sm.len(), "TP-UDL in octets");
        assert_eq!(&b[1..], &sm[..]);
    }

    fn stored(text: &str) -> StoredSm {
        let (dcs, ud) = user_data_of(0, false, text.as_bytes()).unwrap();
        let mut b = Vec::new();
        ud.encode(dcs, &mut b).unwrap();
        StoredSm {
            id: 7,
            origin: Origin::Phone {
                impu: "sip:alice@ims.lab".into(),
                tp_mr: 1,
            },
            from: "+15550001".into(),
            from_toa: TON_INTERNATIONAL,
            to: "4000".into(),
            pid: 0,
            dcs,
            udhi: false,
            ud: b,
            report: false,
            received: 0,
            expires: 1,
            attempts: 0,
            report_of: None,
            failure_only: false,
            given_id: None,
        }
    }

    #[test]
    fn a_phones_message_and_a_receipt_as_deliver_sm() {
        let sm = deliver_sm(&stored("STOP"), 0);
        assert_eq!(sm.source, SmppAddress::international("15550001"));
        assert_eq!(sm.dest.addr, "4000");
        assert_eq!(sm.params.short_message, b"STOP");
        assert_eq!(sm.params.data_coding.0, 0);
        let mut r = stored("x");
        r.from = "4000".into();
        r.from_toa = TON_UNKNOWN;
        r.to = "esme:app".into();
        r.report_of = Some(crate::smsc::store::ReportOf {
            status: 0,
            tp_mr: 0,
            recipient: "+15550002".into(),
            received: 86_400,
            message_id: 42,
        });
        let sm = deliver_sm(&r, 0);
        assert_eq!(sm.params.esm_class.0, EsmClass::DELIVERY_RECEIPT);
        let rc = DeliveryReceipt::parse(&sm.params.short_message).unwrap();
        assert_eq!(
            (rc.id.as_str(), rc.stat, rc.dlvrd),
            ("42", MessageState::Delivered, 1)
        );
        assert_eq!(rc.submit_date, "7001020000");
        assert_eq!(sm.source, SmppAddress::international("15550002"));
        assert_eq!(sm.dest.addr, "4000");
        assert!(sm.tlvs.contains(&Tlv::ReceiptedMessageId("42".into())));
    }
}
