//! The connectionless WAP Push PDU (WAP-230-WSP §8.2.4.1) and the WSP value encodings the
//! MMS encapsulation borrows (§8.1.2 uintvar, §8.4.2 basic rules: Short-integer,
//! Long-integer, Text-string, Value-length). Reading never panics: every length is checked
//! against what is there.
//!
//! ```text
//! Push PDU = TID (uint8) · PDU type 0x06 · HeadersLen (uintvar) · ContentType · Headers · Data
//!            └──────── HeadersLen counts ContentType and Headers ────────┘
//! ```

use super::{invalid, MmsError};

/// PDU type Push (WSP Table 34).
pub const PDU_PUSH: u8 = 0x06;
/// `application/vnd.wap.mms-message`: well-known content type 0x3E (WINA content types).
pub const CT_MMS_MESSAGE: u8 = 0x3E;
/// X-Wap-Application-Id: well-known header field 0x2F (WSP Table 39).
pub const HDR_APPLICATION_ID: u8 = 0x2F;
/// `x-wap-application:mms.ua`: push application id 4 (WINA push application ids).
pub const APP_MMS_UA: u64 = 0x04;

/// The largest uintvar read: 5 octets carry 32 bits (§8.1.2).
const MAX_UINTVAR_OCTETS: usize = 5;

/// Appends `v` as a uintvar: 7 bits an octet, most significant first, the continue bit
/// (0x80) on every octet but the last (§8.1.2).
pub fn put_uintvar(v: u32, out: &mut Vec<u8>) {
    let mut tmp = [0u8; MAX_UINTVAR_OCTETS];
    let mut n = 0;
    let mut x = v;
    loop {
        tmp[n] = (x & 0x7f) as u8;
        n += 1;
        x >>= 7;
        if x == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(tmp[i] | if i > 0 { 0x80 } else { 0 });
    }
}

/// Reads a uintvar at `b[*at..]` (at most 5 octets, 32 bits).
pub fn get_uintvar(b: &[u8], at: &mut usize) -> Result<u32, MmsError> {
    let mut v: u64 = 0;
    for i in 0..MAX_UINTVAR_OCTETS {
        let o = *b.get(*at).ok_or(MmsError::Short("a uintvar"))?;
        *at += 1;
        v = (v << 7) | u64::from(o & 0x7f);
        if o & 0x80 == 0 {
            return u32::try_from(v).map_err(|_| invalid("a uintvar over 32 bits"));
        }
        if i + 1 == MAX_UINTVAR_OCTETS {
            break;
        }
    }
    Err(invalid("a uintvar longer than 5 octets"))
}

/// Appends a Value-length (§8.4.2.2): Short-length (0-30) as one octet, else Length-quote
/// (31) and a uintvar.
pub fn put_value_length(n: usize, out: &mut Vec<u8>) -> Result<(), MmsError> {
    if n <= 30 {
        out.push(n as u8);
    } else {
        let n = u32::try_from(n).map_err(|_| MmsError::TooLong("a value length".into()))?;
        out.push(31);
        put_uintvar(n, out);
    }
    Ok(())
}

/// Reads a Value-length and returns the value it covers (the slice), leaving `*at` past it.
pub fn get_valued<'a>(b: &'a [u8], at: &mut usize) -> Result<&'a [u8], MmsError> {
    let first = *b.get(*at).ok_or(MmsError::Short("a value length"))?;
    let n = match first {
        0..=30 => {
            *at += 1;
            usize::from(first)
        }
        31 => {
            *at += 1;
            get_uintvar(b, at)? as usize
        }
        _ => return Err(invalid(format!("0x{first:02x} is not a value length"))),
    };
    let end = at
        .checked_add(n)
        .filter(|e| *e <= b.len())
        .ok_or(MmsError::Short("a value as long as its value length"))?;
    let v = &b[*at..end];
    *at = end;
    Ok(v)
}

/// Appends a Text-string (§8.4.2.1): the octets and an end-of-string NUL, with a Quote (127)
/// first when the first octet is 127 or more (so it does not read as a Short-integer).
pub fn put_text(s: &str, out: &mut Vec<u8>) -> Result<(), MmsError> {
    if s.as_bytes().contains(&0) {
        return Err(invalid("a text string holds a NUL"));
    }
    if s.as_bytes().first().is_some_and(|b| *b >= 0x7f) {
        out.push(0x7f);
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

/// Reads a Text-string's octets (a leading Quote dropped, the NUL consumed).
pub fn get_text_octets<'a>(b: &'a [u8], at: &mut usize) -> Result<&'a [u8], MmsError> {
    let rest = b.get(*at..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|c| *c == 0)
        .ok_or(MmsError::Short("the end of a text string"))?;
    let mut s = &rest[..end];
    *at += end + 1;
    if s.first() == Some(&0x7f) {
        s = &s[1..];
    }
    Ok(s)
}

/// Reads a Text-string as UTF-8 (anything else lossily).
pub fn get_text(b: &[u8], at: &mut usize) -> Result<String, MmsError> {
    Ok(String::from_utf8_lossy(get_text_octets(b, at)?).into_owned())
}

/// Appends a Long-integer (§8.4.2.1): Short-length and the big-endian octets, as few as
/// carry it (one at least).
pub fn put_long(v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take(7).take_while(|b| **b == 0).count();
    out.push((8 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Reads a Long-integer (at most 8 octets here).
pub fn get_long(b: &[u8], at: &mut usize) -> Result<u64, MmsError> {
    let n = usize::from(*b.get(*at).ok_or(MmsError::Short("a long integer"))?);
    if n == 0 || n > 8 {
        return Err(invalid(format!("a long integer of {n} octets")));
    }
    let v = b
        .get(*at + 1..*at + 1 + n)
        .ok_or(MmsError::Short("a long integer's octets"))?;
    *at += 1 + n;
    Ok(v.iter().fold(0u64, |acc, o| (acc << 8) | u64::from(*o)))
}

/// Reads an Integer-value: a Short-integer (one octet, 0x80 set) or a Long-integer.
pub fn get_integer(b: &[u8], at: &mut usize) -> Result<u64, MmsError> {
    match b.get(*at) {
        Some(o) if *o >= 0x80 => {
            *at += 1;
            Ok(u64::from(o & 0x7f))
        }
        Some(_) => get_long(b, at),
        None => Err(MmsError::Short("an integer")),
    }
}

/// Steps over a header value by its first octet (§8.4.1.2): 0-30 a Short-length value, 31 a
/// uintvar-length value, 32-127 a text string, 128-255 a one-octet Short-integer.
pub fn skip_value(b: &[u8], at: &mut usize) -> Result<(), MmsError> {
    match *b.get(*at).ok_or(MmsError::Short("a header value"))? {
        0..=31 => get_valued(b, at).map(|_| ()),
        32..=127 => get_text_octets(b, at).map(|_| ()),
        _ => {
            *at += 1;
            Ok(())
        }
    }
}

/// A push's content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// A well-known media type's number (0x3E: `application/vnd.wap.mms-message`).
    WellKnown(u8),
    /// Any other, as text.
    Text(String),
}

/// A WAP Push (connectionless, WSP §8.2.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The transaction id (one octet in connectionless WSP, §8.2.1).
    pub tid: u8,
    pub content_type: ContentType,
    /// X-Wap-Application-Id as a number (4: `mms.ua`); a URI-valued one is not kept.
    pub application_id: Option<u64>,
    /// What is pushed: the MMS PDU.
    pub body: Vec<u8>,
}

impl Push {
    /// The push of an MMS PDU to the MMS user agent.
    pub fn mms(tid: u8, pdu: Vec<u8>) -> Push {
        Push {
            tid,
            content_type: ContentType::WellKnown(CT_MMS_MESSAGE),
            application_id: Some(APP_MMS_UA),
            body: pdu,
        }
    }

    /// True when it carries an MMS PDU.
    pub fn is_mms(&self) -> bool {
        match &self.content_type {
            ContentType::WellKnown(n) => *n == CT_MMS_MESSAGE,
            ContentType::Text(t) => t.eq_ignore_ascii_case("application/vnd.wap.mms-message"),
        }
    }

    /// The PDU's octets.
    pub fn encode(&self) -> Result<Vec<u8>, MmsError> {
        let mut headers = Vec::new();
        // Content-Type (§8.4.2.24): a Constrained-media, a Short-integer or Extension-media.
        match &self.content_type {
            ContentType::WellKnown(n) if *n < 0x80 => headers.push(0x80 | n),
            ContentType::WellKnown(n) => {
                return Err(invalid(format!("well-known content type {n} over 127")))
            }
            ContentType::Text(t) => {
                if t.as_bytes().first().is_none_or(|c| *c < 0x20 || *c >= 0x7f) {
                    return Err(invalid("a content type that is not a token"));
                }
                put_text(t, &mut headers)?;
            }
        }
        // X-Wap-Application-Id (§8.4.2.54): field 0x2F as a Short-integer, an Integer-value.
        if let Some(id) = self.application_id {
            headers.push(0x80 | HDR_APPLICATION_ID);
            if id < 0x80 {
                headers.push(0x80 | id as u8);
            } else {
                put_long(id, &mut headers);
            }
        }
        let mut out = vec![self.tid, PDU_PUSH];
        put_uintvar(headers.len() as u32, &mut out);
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// Reads a Push PDU.
    pub fn decode(b: &[u8]) -> Result<Push, MmsError> {
        let tid = *b.first().ok_or(MmsError::Short("TID"))?;
        let ty = *b.get(1).ok_or(MmsError::Short("PDU type"))?;
        if ty != PDU_PUSH {
            return Err(invalid(format!("PDU type 0x{ty:02x} is not Push (0x06)")));
        }
        let mut at = 2;
        let hlen = get_uintvar(b, &mut at)? as usize;
        let end = at
            .checked_add(hlen)
            .filter(|e| *e <= b.len())
            .ok_or(MmsError::Short("headers as long as HeadersLen"))?;
        let h = &b[at..end];
        let mut i = 0;
        let content_type = match *h.first().ok_or(MmsError::Short("the content type"))? {
            c @ 0x80.. => {
                i = 1;
                ContentType::WellKnown(c & 0x7f)
            }
            0x20..=0x7f => ContentType::Text(get_text(h, &mut i)?),
            _ => {
                // Content-general-form: Value-length, then the media type and parameters.
                let v = get_valued(h, &mut i)?;
                let mut j = 0;
                match *v.first().ok_or(MmsError::Short("the media type"))? {
                    c @ 0x80.. => ContentType::WellKnown(c & 0x7f),
                    _ => {
                        let t = get_text(v, &mut j)?;
                        if t.as_bytes().first().is_none_or(|c| *c < 0x20 || *c >= 0x7f) {
                            return Err(invalid("a content type that is not a token"));
                        }
                        ContentType::Text(t)
                    }
                }
            }
        };
        if let ContentType::Text(t) = &content_type {
            if t.as_bytes().first().is_none_or(|c| *c < 0x20 || *c >= 0x7f) {
                return Err(invalid("a content type that is not a token"));
            }
        }
        let mut application_id = None;
        while i < h.len() {
            match h[i] {
                // Shift-delimiter and page (§8.4.2.70), Short-cut-shift-delimiter.
                0x7f => i += 2,
                0x01..=0x1f => i += 1,
                0x00 => return Err(invalid("a header name 0x00")),
                n @ 0x80.. => {
                    i += 1;
                    if n & 0x7f == HDR_APPLICATION_ID {
                        match h.get(i) {
                            Some(c) if *c >= 0x20 && *c < 0x80 => {
                                // A URI: stepped over, not kept.
                                get_text_octets(h, &mut i)?;
                            }
                            _ => application_id = Some(get_integer(h, &mut i)?),
                        }
                    } else {
                        skip_value(h, &mut i)?;
                    }
                }
                _ => {
                    // Application-header: Token-text, then a Text-string value.
                    get_text_octets(h, &mut i)?;
                    get_text_octets(h, &mut i)?;
                }
            }
        }
        Ok(Push {
            tid,
            content_type,
            application_id,
            body: b[end..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §8.1.2's examples: 0x7F is one octet, 0x80 is 81 00, 0x3FFF is FF 7F.
    #[test]
    fn uintvars_as_the_spec_writes_them() {
        for (v, want) in [
            (0u32, vec![0x00]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x00]),
            (0x3fff, vec![0xff, 0x7f]),
            (0x4000, vec![0x81, 0x80, 0x00]),
            (u32::MAX, vec![0x8f, 0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut b = Vec::new();
            put_uintvar(v, &mut b);
            assert_eq!(b, want, "{v:#x}");
            let mut at = 0;
            assert_eq!(get_uintvar(&b, &mut at), Ok(v));
            assert_eq!(at, b.len());
        }
        let mut at = 0;
        assert!(get_uintvar(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut at).is_err());
        let mut at = 0;
        assert!(get_uintvar(&[0x9f, 0xff, 0xff, 0xff, 0x7f], &mut at).is_err());
        let mut at = 0;
        assert!(get_uintvar(&[0x81], &mut at).is_err());
    }

    /// A push of `8C 82` to the MMS UA:
    /// 01 (TID) 06 (Push) 03 (HeadersLen) BE (0x3E | 0x80) AF 84 (X-Wap-Application-Id:
    /// mms.ua) 8C 82.
    #[test]
    fn an_mms_push_byte_for_byte() {
        let p = Push::mms(1, vec![0x8c, 0x82]);
        let b = p.encode().unwrap();
        assert_eq!(b, [0x01, 0x06, 0x03, 0xbe, 0xaf, 0x84, 0x8c, 0x82]);
        let d = Push::decode(&b).unwrap();
        assert_eq!(d, p);
        assert!(d.is_mms());
    }

    #[test]
    fn a_general_form_content_type_other_headers_and_bad_pushes() {
        // Value-length 3: BE and a parameter (Q 0x80 0x81) dropped; then an unknown header
        // with a short integer, and an application header "X-A: b".
        let b = [
            7, 0x06, 0x0a, 0x03, 0xbe, 0x80, 0x81, 0x8d, 0x81, b'X', 0, b'b', 0, 0xaa,
        ];
        let d = Push::decode(&b).unwrap();
        assert!(d.is_mms());
        assert_eq!((d.tid, d.application_id, d.body), (7, None, vec![0xaa]));
        assert!(Push::decode(&[1, 0x07, 0]).is_err(), "not Push");
        assert!(
            Push::decode(&[1, 0x06, 0x05, 0xbe]).is_err(),
            "short headers"
        );
        assert!(Push::decode(&[1, 0x06, 0x00]).is_err(), "no content type");
        assert!(Push::decode(&[1, 0x06, 0x02, 0xbe, 0x00]).is_err());
        let t = Push {
            tid: 2,
            content_type: ContentType::Text("text/plain".into()),
            application_id: Some(0x1234),
            body: vec![],
        };
        assert_eq!(Push::decode(&t.encode().unwrap()).unwrap(), t);
    }
}
