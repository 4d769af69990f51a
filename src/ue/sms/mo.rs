//! What the UE sends (mobile originated, 3GPP TS 24.341 §5.3.1.2): the recipient read from a
//! URI, the text cut into parts (TS 23.040 §9.2.3.24.1) and each part as an SMS-SUBMIT
//! (TS 23.040 §9.2.2.2) asking for a status report, to go in an RP-DATA (TS 24.011 §7.3.1.2)
//! addressed to the service centre.

use crate::sms::address::Address;
use crate::sms::concat;
use crate::sms::rp::RpMessage;
use crate::sms::tpdu::{Submit, Tpdu, Validity};
use crate::sms::user_data::{Ie, UserData};
use crate::sms::Direction;

use super::SmsSendError;

/// The longest text sent (the LMS: a long message in up to this many characters).
pub const MAX_SMS_CHARS: usize = 2000;

/// TP-VP, relative: one day (TS 23.040 §9.2.3.12.1: 167 is 12 h + 24 × 30 min).
pub const VALIDITY_ONE_DAY: u8 = 167;

/// The number in `to`: `tel:+15550002` (visual separators dropped, RFC 3966 §5.1.1), a bare
/// `+15550002`, or `sip:+15550002@ims.lab;user=phone` (RFC 3261 §19.1.6).
pub fn recipient_number(to: &str) -> Result<String, SmsSendError> {
    let bad = || SmsSendError::Recipient(to.to_string());
    let t = to.trim();
    let raw = if let Some(n) = strip_scheme(t, "tel:") {
        n.split(';').next().unwrap_or("")
    } else if let Some(rest) = strip_scheme(t, "sip:").or_else(|| strip_scheme(t, "sips:")) {
        let (user, hostpart) = rest.split_once('@').ok_or_else(bad)?;
        let phone = hostpart
            .split(';')
            .skip(1)
            .any(|p| p.trim().eq_ignore_ascii_case("user=phone"));
        if !phone && !user.starts_with('+') {
            return Err(bad());
        }
        user.split(';').next().unwrap_or("")
    } else {
        t
    };
    let number: String = raw.chars().filter(|c| !"-.() ".contains(*c)).collect();
    let digits = number.strip_prefix('+').unwrap_or(&number);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(number)
}

fn strip_scheme<'a>(s: &'a str, scheme: &str) -> Option<&'a str> {
    let head = s.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &s[scheme.len()..])
}

/// The SMS-SUBMITs of one text (not yet numbered: TP-MR is set as each part is built).
#[derive(Debug, Clone)]
pub struct Parts {
    /// The recipient's address (TP-DA).
    pub recipient: Address,
    /// TP-DCS of every part: 0x00 GSM 7-bit when the text fits, else 0x08 UCS-2.
    pub dcs: u8,
    /// The parts' texts.
    pub texts: Vec<String>,
}

/// Checks `to` and `text` and cuts the text: what can be refused before anything is sent.
pub fn prepare(to: &str, text: &str) -> Result<Parts, SmsSendError> {
    let number = recipient_number(to)?;
    let n = text.chars().count();
    if n > MAX_SMS_CHARS {
        return Err(SmsSendError::TooLong(n));
    }
    let split = concat::split(text, 255).map_err(|e| SmsSendError::Encode(e.to_string()))?;
    Ok(Parts {
        recipient: Address::from_number(&number),
        dcs: split.dcs,
        texts: split.parts,
    })
}

impl Parts {
    /// Part `i` (0-based) as an SMS-SUBMIT with TP-MR `tp_mr`; several parts carry the
    /// concatenation element with `reference` (8-bit, IEI 00).
    pub fn submit(&self, i: usize, tp_mr: u8, reference: u8) -> Result<Vec<u8>, SmsSendError> {
        let text = self.texts.get(i).map(String::as_str).unwrap_or("");
        let mut user_data = UserData::text(text);
        if self.texts.len() > 1 {
            user_data.header.push(Ie::Concat {
                reference: u16::from(reference),
                total: self.texts.len() as u8,
                seq: i as u8 + 1,
                wide: false,
            });
        }
        Tpdu::Submit(Submit {
            reject_duplicates: false,
            status_report_request: true,
            reply_path: false,
            message_ref: tp_mr,
            destination: self.recipient.clone(),
            pid: 0,
            dcs: self.dcs,
            validity: Validity::Relative(VALIDITY_ONE_DAY),
            user_data,
        })
        .encode()
        .map_err(|e| SmsSendError::Encode(e.to_string()))
    }
}

/// The RP-DATA (MS→N) carrying `tpdu` to service centre `smsc`: no RP-OA, RP-DA the centre.
pub fn rp_data(rp_mr: u8, smsc: &str, tpdu: Vec<u8>) -> Result<Vec<u8>, SmsSendError> {
    RpMessage::Data {
        dir: Direction::MsToNetwork,
        mr: rp_mr,
        originator: None,
        destination: Some(Address::from_number(smsc)),
        tpdu,
    }
    .encode()
    .map_err(|e| SmsSendError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_in_every_form_and_refusals() {
        for ok in [
            "tel:+15550002",
            "+15550002",
            "sip:+15550002@ims.lab;user=phone",
            "tel:+1-555-0002",
            "TEL:+15550002;phone-context=ims.lab",
        ] {
            assert_eq!(recipient_number(ok).unwrap(), "+15550002", "{ok}");
        }
        assert_eq!(recipient_number("5550002").unwrap(), "5550002");
        for bad in [
            "",
            "tel:",
            "sip:bob@ims.lab",
            "bob",
            "tel:+1555abc",
            "+123456789012345678901",
        ] {
            assert!(recipient_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn too_long_is_refused_before_sending() {
        assert!(prepare("tel:+15550002", &"x".repeat(2000)).is_ok());
        assert!(matches!(
            prepare("tel:+15550002", &"x".repeat(2001)),
            Err(SmsSendError::TooLong(2001))
        ));
    }
}
