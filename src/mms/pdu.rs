//! M-Notification.ind, the MMS encapsulation's notification of a message waiting at a URL
//! (OMA-TS-MMS_ENC-V1_3 §6.2 Table 3, binary encoding §7): a header block of field numbers
//! (§7.4, Table 25 with 0x80 set) and values in the WSP encodings (§7.2, WAP-230 §8.4.2).
//! X-Mms-Message-Type, X-Mms-Transaction-ID and X-Mms-MMS-Version come first, in that order
//! (§7.1); the other fields follow in the order of Table 3. Fields a notification does not
//! use are stepped over when read.

use super::wsp::{
    get_integer, get_long, get_text, get_text_octets, get_valued, put_long, put_text,
    put_value_length, skip_value,
};
use super::{invalid, MmsError};

/// Field numbers (§7.4 Table 25), as they go on the wire (0x80 set).
pub mod field {
    pub const CONTENT_LOCATION: u8 = 0x83;
    pub const EXPIRY: u8 = 0x88;
    pub const FROM: u8 = 0x89;
    pub const MESSAGE_CLASS: u8 = 0x8a;
    pub const MESSAGE_TYPE: u8 = 0x8c;
    pub const MMS_VERSION: u8 = 0x8d;
    pub const MESSAGE_SIZE: u8 = 0x8e;
    pub const SUBJECT: u8 = 0x96;
    pub const TRANSACTION_ID: u8 = 0x98;
}

/// X-Mms-Message-Type m-notification-ind (§7.3.30).
pub const M_NOTIFICATION_IND: u8 = 0x82;
/// X-Mms-MMS-Version 1.2 and 1.3 (§7.3.34: major in bits 6-4, minor in 3-0).
pub const VERSION_1_2: u8 = 0x12;
pub const VERSION_1_3: u8 = 0x13;
/// Address-present-token and Insert-address-token of From (§7.3.21).
const ADDRESS_PRESENT: u8 = 0x80;
const INSERT_ADDRESS: u8 = 0x81;
/// Absolute-token and Relative-token of X-Mms-Expiry (§7.3.20).
const ABSOLUTE: u8 = 0x80;
const RELATIVE: u8 = 0x81;
/// Char-set UTF-8 (IANA MIBenum 106) as a Short-integer, for an Encoded-string-value (§7.2.9).
const CHARSET_UTF8: u8 = 0x80 | 106;
/// The longest text field read or written (a URL, a subject).
pub const MAX_TEXT: usize = 1024;

/// X-Mms-Message-Class (§7.3.27).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageClass {
    /// 128.
    Personal,
    /// 129.
    Advertisement,
    /// 130.
    Informational,
    /// 131.
    Auto,
    /// A Token-text class.
    Other(String),
}

/// X-Mms-Expiry (§7.3.20): seconds from now, or a date (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Relative(u64),
    Absolute(u64),
}

/// An M-Notification.ind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// X-Mms-Transaction-ID: what the phone's M-NotifyResp.ind names.
    pub transaction_id: String,
    /// X-Mms-MMS-Version, major << 4 | minor ([`VERSION_1_2`], [`VERSION_1_3`]).
    pub version: u8,
    /// From: the sender's address (`+4100/TYPE=PLMN`), None when the relay inserts it.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub class: MessageClass,
    /// X-Mms-Message-Size: the message's size in octets.
    pub size: u64,
    pub expiry: Expiry,
    /// X-Mms-Content-Location: where the phone fetches the message.
    pub content_location: String,
}

/// Appends an Encoded-string-value (§7.2.9): a plain Text-string when the text is printable
/// US-ASCII, else Value-length, Char-set UTF-8 and the text.
fn put_encoded_string(s: &str, out: &mut Vec<u8>) -> Result<(), MmsError> {
    // An empty Text-string (a lone NUL) would read as Value-length 0: it takes the long form.
    if !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return put_text(s, out);
    }
    let mut v = vec![CHARSET_UTF8];
    put_text(s, &mut v)?;
    put_value_length(v.len(), out)?;
    out.extend_from_slice(&v);
    Ok(())
}

/// Reads an Encoded-string-value; a charset other than UTF-8 or US-ASCII is read as Latin-1
/// when it is ISO 8859-1 (4), else as UTF-8, lossily.
fn get_encoded_string(b: &[u8], at: &mut usize) -> Result<String, MmsError> {
    match b.get(*at) {
        Some(0..=31) => {
            let v = get_valued(b, at)?;
            let mut i = 0;
            let charset = get_integer(v, &mut i)?;
            let octets = get_text_octets(v, &mut i)?;
            Ok(if charset == 4 {
                octets.iter().map(|c| char::from(*c)).collect()
            } else {
                String::from_utf8_lossy(octets).into_owned()
            })
        }
        Some(_) => get_text(b, at),
        None => Err(MmsError::Short("an encoded string")),
    }
}

fn bounded(what: &str, s: String) -> Result<String, MmsError> {
    if s.len() > MAX_TEXT {
        return Err(MmsError::TooLong(format!("{what} over {MAX_TEXT} octets")));
    }
    Ok(s)
}

impl Notification {
    /// The header block's octets.
    pub fn encode(&self) -> Result<Vec<u8>, MmsError> {
        for (what, s) in [
            ("X-Mms-Transaction-ID", Some(&self.transaction_id)),
            ("From", self.from.as_ref()),
            ("Subject", self.subject.as_ref()),
            ("X-Mms-Content-Location", Some(&self.content_location)),
        ] {
            if s.is_some_and(|s| s.len() > MAX_TEXT) {
                return Err(MmsError::TooLong(format!("{what} over {MAX_TEXT} octets")));
            }
        }
        if self.version >= 0x80 {
            return Err(invalid("an MMS version over 0x7f"));
        }
        let mut o = vec![field::MESSAGE_TYPE, M_NOTIFICATION_IND];
        // Text-string (§7.3.63).
        o.push(field::TRANSACTION_ID);
        put_text(&self.transaction_id, &mut o)?;
        // Short-integer (§7.3.34).
        o.extend_from_slice(&[field::MMS_VERSION, 0x80 | self.version]);
        if let Some(from) = &self.from {
            // Value-length (Address-present-token Encoded-string-value) (§7.3.21).
            let mut v = vec![ADDRESS_PRESENT];
            put_encoded_string(from, &mut v)?;
            o.push(field::FROM);
            put_value_length(v.len(), &mut o)?;
            o.extend_from_slice(&v);
        }
        if let Some(s) = &self.subject {
            // Encoded-string-value (§7.3.58).
            o.push(field::SUBJECT);
            put_encoded_string(s, &mut o)?;
        }
        // Class-identifier or Token-text (§7.3.27).
        o.push(field::MESSAGE_CLASS);
        match &self.class {
            MessageClass::Personal => o.push(0x80),
            MessageClass::Advertisement => o.push(0x81),
            MessageClass::Informational => o.push(0x82),
            MessageClass::Auto => o.push(0x83),
            MessageClass::Other(t) => {
                if t.as_bytes().first().is_none_or(|c| *c < 0x20 || *c >= 0x7f) {
                    return Err(invalid("a message class that is not a token"));
                }
                put_text(t, &mut o)?;
            }
        }
        // Long-integer (§7.3.36).
        o.push(field::MESSAGE_SIZE);
        put_long(self.size, &mut o);
        // Value-length (Absolute-token Date-value | Relative-token Delta-seconds-value), both
        // Long-integers (§7.3.20).
        let (token, secs) = match self.expiry {
            Expiry::Absolute(s) => (ABSOLUTE, s),
            Expiry::Relative(s) => (RELATIVE, s),
        };
        let mut v = vec![token];
        put_long(secs, &mut v);
        o.push(field::EXPIRY);
        put_value_length(v.len(), &mut o)?;
        o.extend_from_slice(&v);
        // Uri-value, a Text-string (§7.3.10).
        o.push(field::CONTENT_LOCATION);
        put_text(&self.content_location, &mut o)?;
        Ok(o)
    }

    /// Reads an M-Notification.ind: the message type first, then the fields in any order; a
    /// field it does not use is stepped over. Every mandatory field must be there.
    pub fn decode(b: &[u8]) -> Result<Notification, MmsError> {
        match b {
            [field::MESSAGE_TYPE, M_NOTIFICATION_IND, ..] => {}
            [field::MESSAGE_TYPE, t, ..] => {
                return Err(invalid(format!(
                    "X-Mms-Message-Type 0x{t:02x} is not m-notification-ind"
                )))
            }
            _ => return Err(invalid("no X-Mms-Message-Type first")),
        }
        let mut at = 2;
        let (mut tid, mut version, mut from, mut subject) = (None, None, None, None);
        let (mut class, mut size, mut expiry, mut location) = (None, None, None, None);
        while at < b.len() {
            let name = b[at];
            at += 1;
            match name {
                field::TRANSACTION_ID => {
                    tid = Some(bounded("X-Mms-Transaction-ID", get_text(b, &mut at)?)?)
                }
                field::MMS_VERSION => match b.get(at) {
                    Some(v) if *v >= 0x80 => {
                        version = Some(v & 0x7f);
                        at += 1;
                    }
                    _ => return Err(invalid("X-Mms-MMS-Version is not a short integer")),
                },
                field::FROM => {
                    let v = get_valued(b, &mut at)?;
                    from = match v.first() {
                        Some(&ADDRESS_PRESENT) => {
                            let mut i = 1;
                            Some(bounded("From", get_encoded_string(v, &mut i)?)?)
                        }
                        Some(&INSERT_ADDRESS) => None,
                        _ => return Err(invalid("From without an address token")),
                    };
                }
                field::SUBJECT => {
                    subject = Some(bounded("Subject", get_encoded_string(b, &mut at)?)?)
                }
                field::MESSAGE_CLASS => {
                    class = Some(match b.get(at) {
                        Some(c @ 0x80..=0x83) => {
                            at += 1;
                            [
                                MessageClass::Personal,
                                MessageClass::Advertisement,
                                MessageClass::Informational,
                                MessageClass::Auto,
                            ][usize::from(c - 0x80)]
                            .clone()
                        }
                        Some(0x20..=0x7e) => {
                            MessageClass::Other(bounded("a class", get_text(b, &mut at)?)?)
                        }
                        _ => return Err(invalid("X-Mms-Message-Class unknown")),
                    })
                }
                field::MESSAGE_SIZE => size = Some(get_long(b, &mut at)?),
                field::EXPIRY => {
                    let v = get_valued(b, &mut at)?;
                    let mut i = 1;
                    expiry = Some(match v.first() {
                        Some(&ABSOLUTE) => Expiry::Absolute(get_long(v, &mut i)?),
                        Some(&RELATIVE) => Expiry::Relative(get_long(v, &mut i)?),
                        _ => return Err(invalid("X-Mms-Expiry without a token")),
                    });
                }
                field::CONTENT_LOCATION => {
                    location = Some(bounded("X-Mms-Content-Location", get_text(b, &mut at)?)?)
                }
                field::MESSAGE_TYPE => return Err(invalid("X-Mms-Message-Type twice")),
                0x80.. => skip_value(b, &mut at)?,
                _ => {
                    // An application header: Token-text name, Text-string value (§7.1).
                    at -= 1;
                    get_text_octets(b, &mut at)?;
                    get_text_octets(b, &mut at)?;
                }
            }
        }
        let need = |what: &'static str| invalid(format!("{what} missing"));
        let class = class.ok_or_else(|| need("X-Mms-Message-Class"))?;
        if let MessageClass::Other(t) = &class {
            if t.as_bytes().first().is_none_or(|c| *c < 0x20 || *c >= 0x7f) {
                return Err(invalid("a message class that is not a token"));
            }
        }
        Ok(Notification {
            transaction_id: tid.ok_or_else(|| need("X-Mms-Transaction-ID"))?,
            version: version.ok_or_else(|| need("X-Mms-MMS-Version"))?,
            from,
            subject,
            class,
            size: size.ok_or_else(|| need("X-Mms-Message-Size"))?,
            expiry: expiry.ok_or_else(|| need("X-Mms-Expiry"))?,
            content_location: location.ok_or_else(|| need("X-Mms-Content-Location"))?,
        })
    }

    /// The sender as a number: From's `+4100/TYPE=PLMN` without its type (§8 address
    /// encoding).
    pub fn from_number(&self) -> Option<&str> {
        let f = self.from.as_deref()?;
        Some(f.split_once("/TYPE=").map_or(f, |(n, _)| n))
    }
}

#[cfg(test)]
#[path = "pdu_tests.rs"]
mod tests;
