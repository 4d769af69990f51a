//! What the flight recorder must not keep: secrets that work as credentials. Pure code.
//!
//! The recorder is read through the admin API (`GET /trace`, `rcslab trace`), exported to pcap
//! and shown to a class. It keeps what teaches (Digest nonces and responses, AKA RAND/AUTN, the
//! hashes in Authorization headers) and overwrites, byte for byte so lengths, Content-Length
//! and the Diameter framing stay valid (tshark still decodes the capture):
//!
//! - Diameter: the value of every `Digest-HA1` AVP (RFC 4590, code 121; TS 29.229 carries it
//!   in the MAA's SIP-Digest-Authenticate). HA1 = MD5(user:realm:password) answers any
//!   challenge of the realm, so it is as good as the password.
//! - HTTP: the value of `Authorization: Bearer ...` (a WebRSF or admin token), and in a body
//!   the string values of the JSON members `password`, `old_password`, `new_password`, `k`,
//!   `opc` and `token` (WebRSF login and its answer, admin provisioning), the same names in a
//!   form body or in the query of the request line (`?token=`).
//!
//! SIP and MSRP are kept as they are: a SIP Digest response is a one-time hash over a nonce.

use std::borrow::Cow;

use super::Protocol;

/// The byte secrets are overwritten with.
pub const MASK: u8 = b'*';

/// `bytes` with the secrets of `protocol` overwritten (borrowed when there were none).
pub fn redact(protocol: Protocol, bytes: &[u8]) -> Cow<'_, [u8]> {
    match protocol {
        Protocol::Diameter => {
            let mut spans = Vec::new();
            digest_ha1_spans(bytes, &mut spans);
            mask(bytes, &spans)
        }
        Protocol::Http => mask(bytes, &http_spans(bytes)),
        Protocol::Smpp => mask(bytes, &smpp_password_span(bytes)),
        Protocol::SipUdp | Protocol::SipTcp | Protocol::Msrp => Cow::Borrowed(bytes),
    }
}

fn mask<'a>(bytes: &'a [u8], spans: &[(usize, usize)]) -> Cow<'a, [u8]> {
    if spans.is_empty() {
        return Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for &(a, b) in spans {
        if let Some(s) = out.get_mut(a..b) {
            s.fill(MASK);
        }
    }
    Cow::Owned(out)
}

/// The password of an SMPP bind_* or outbind (SMPP 3.4 §4.1: header of 16 octets, then the
/// C-Octet Strings system_id and password).
fn smpp_password_span(pdu: &[u8]) -> Vec<(usize, usize)> {
    let id = pdu
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if !matches!(id, Some(0x1 | 0x2 | 0x9 | 0xB)) {
        return Vec::new();
    }
    let nul = |from: usize| {
        pdu.get(from..)?
            .iter()
            .position(|&b| b == 0)
            .map(|i| from + i)
    };
    match nul(16).and_then(|end_id| Some((end_id + 1, nul(end_id + 1)?))) {
        Some(span) => vec![span],
        None => vec![(16, pdu.len())],
    }
}

/// RFC 4590 Digest-HA1.
const AVP_DIGEST_HA1: u32 = 121;
/// Grouped AVPs an HA1 travels in: SIP-Auth-Data-Item (612) and SIP-Digest-Authenticate
/// (635) of TS 29.229, and RFC 4740's SIP-Auth-Data-Item (376) and SIP-Authenticate (379).
const GROUPED: [u32; 4] = [612, 635, 376, 379];

/// Data ranges of the Digest-HA1 AVPs of one Diameter message (header of 20 bytes, then AVPs).
fn digest_ha1_spans(msg: &[u8], out: &mut Vec<(usize, usize)>) {
    if msg.len() >= 20 {
        walk_avps(msg, 20, msg.len(), 0, out);
    }
}

fn walk_avps(buf: &[u8], mut at: usize, end: usize, depth: u8, out: &mut Vec<(usize, usize)>) {
    while at + 8 <= end {
        let code = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let vendor = buf[at + 4] & 0x80 != 0;
        let len = u32::from_be_bytes([0, buf[at + 5], buf[at + 6], buf[at + 7]]) as usize;
        let head = if vendor { 12 } else { 8 };
        if len < head || at + len > end {
            return;
        }
        let data = (at + head, at + len);
        if code == AVP_DIGEST_HA1 && !vendor {
            out.push(data);
        } else if GROUPED.contains(&code) && depth < 4 {
            walk_avps(buf, data.0, data.1, depth + 1, out);
        }
        at += len.div_ceil(4) * 4;
    }
}

/// JSON members whose string values are secrets.
const SECRET_MEMBERS: [&str; 6] = [
    "password",
    "old_password",
    "new_password",
    "k",
    "opc",
    "token",
];

fn http_spans(msg: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    // The request line's query: `?token=...&...`.
    let first_end = msg[..head_end]
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head_end);
    let first = &msg[..first_end];
    if let Some(q) = first.iter().position(|&c| c == b'?') {
        let query_end = first[q..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(first.len(), |p| q + p);
        form_secret_spans(&first[q + 1..query_end], q + 1, &mut spans);
    }
    // Authorization: Bearer <token>
    let mut line_start = 0;
    while line_start < head_end {
        let line_end = msg[line_start..head_end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head_end, |p| line_start + p);
        let line = &msg[line_start..line_end];
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            if line[..colon].eq_ignore_ascii_case(b"authorization") {
                let value = &line[colon + 1..];
                let lead = value.iter().take_while(|c| **c == b' ').count();
                let v = &value[lead..];
                if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
                    spans.push((line_start + colon + 1 + lead + 7, line_end));
                }
            }
        }
        line_start = line_end + 2;
    }
    if head_end + 4 <= msg.len() {
        let body_at = head_end + 4;
        json_secret_spans(&msg[body_at..], body_at, &mut spans);
        form_secret_spans(&msg[body_at..], body_at, &mut spans);
    }
    spans
}

/// `"name" : "value"` for a secret member name: the span of the value's characters. A
/// lexical scan (the body may be cut, or not JSON at all), which skips escaped quotes.
fn json_secret_spans(body: &[u8], base: usize, out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(q) = body[i..].iter().position(|&c| c == b'"') {
        let start = i + q + 1;
        let Some(close) = string_end(body, start) else {
            return;
        };
        let name = &body[start..close];
        i = close + 1;
        let is_secret = SECRET_MEMBERS
            .iter()
            .any(|m| name.eq_ignore_ascii_case(m.as_bytes()));
        // A member name is followed by a colon.
        let mut j = i;
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        if body.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        if body.get(j) != Some(&b'"') {
            i = j;
            continue;
        }
        let vstart = j + 1;
        let vend = string_end(body, vstart).unwrap_or(body.len());
        if is_secret {
            out.push((base + vstart, base + vend));
        }
        i = (vend + 1).min(body.len());
    }
}

/// The index of the quote closing a JSON string whose characters start at `from`.
fn string_end(b: &[u8], from: usize) -> Option<usize> {
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 2,
            b'"' => return Some(k),
            _ => k += 1,
        }
    }
    None
}

/// `password=...` in an `application/x-www-form-urlencoded` body.
fn form_secret_spans(body: &[u8], base: usize, out: &mut Vec<(usize, usize)>) {
    if body.first() == Some(&b'{') || body.first() == Some(&b'[') {
        return;
    }
    let mut at = 0;
    for part in body.split(|&c| c == b'&') {
        if let Some(eq) = part.iter().position(|&c| c == b'=') {
            let name = &part[..eq];
            if SECRET_MEMBERS
                .iter()
                .any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
            {
                out.push((base + at + eq + 1, base + at + part.len()));
            }
        }
        at += part.len() + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diameter::codec::{Avp, Message};

    #[test]
    fn smpp_bind_password_is_masked() {
        let mut pdu = vec![0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1];
        pdu.extend_from_slice(b"esme\0s3cret\0\0\x34\0\0\0");
        let red = redact(Protocol::Smpp, &pdu);
        assert_eq!(&red[16..], b"esme\0******\0\0\x34\0\0\0");
        // A submit_sm is left alone; a cut bind masks all after the header.
        pdu[7] = 4;
        assert_eq!(redact(Protocol::Smpp, &pdu), &pdu[..]);
        pdu[7] = 2;
        assert_eq!(&redact(Protocol::Smpp, &pdu[..22])[16..], b"******");
    }

    #[test]
    fn digest_ha1_is_masked_and_the_maa_still_decodes() {
        let mut m = Message::request(303, 16777216);
        m.push(Avp::utf8(1, None, true, "alice@ims.lab"));
        m.push(Avp::grouped(
            612,
            Some(10415),
            true,
            vec![
                Avp::utf8(608, Some(10415), true, "SIP Digest"),
                Avp::grouped(
                    635,
                    Some(10415),
                    false,
                    vec![
                        Avp::utf8(104, None, true, "ims.lab"),
                        Avp::utf8(121, None, true, "0123456789abcdef0123456789abcdef"),
                    ],
                ),
            ],
        ));
        let raw = m.encode();
        let red = redact(Protocol::Diameter, &raw);
        assert_eq!(red.len(), raw.len());
        let text = String::from_utf8_lossy(&red);
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains(&"*".repeat(32)) && text.contains("ims.lab"));
        let d = Message::decode(&red).expect("still a Diameter message");
        assert_eq!(d.avps.len(), m.avps.len());
        // Nothing to hide: the same bytes, not a copy.
        let plain = Message::request(300, 16777216).encode();
        assert!(matches!(
            redact(Protocol::Diameter, &plain),
            Cow::Borrowed(_)
        ));
        for i in 0..raw.len() {
            let _ = redact(Protocol::Diameter, &raw[..i]);
        }
    }

    #[test]
    fn http_passwords_keys_and_bearer_tokens_are_masked_in_place() {
        let body = r#"{"password" : "carol-secret", "to":"bob", "k":"00112233", "text":"my \"password\": \"no\""}"#;
        let raw = format!(
            "POST /webrsf/v1/carol/Session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let red = redact(Protocol::Http, raw.as_bytes());
        let text = String::from_utf8(red.to_vec()).unwrap();
        assert_eq!(text.len(), raw.len());
        assert!(
            !text.contains("carol-secret")
                && !text.contains("tok-123")
                && !text.contains("00112233")
        );
        assert!(text.contains(r#""password" : "************""#), "{text}");
        assert!(text.contains("Authorization: Bearer *******\r\n"));
        assert!(
            text.contains(r#""text":"my \"password\": \"no\"""#),
            "a message that mentions a password is kept: {text}"
        );
        let query = "GET /webrsf/v1/carol/Notification?x=1&token=abc HTTP/1.1\r\n\r\n";
        assert_eq!(
            std::str::from_utf8(&redact(Protocol::Http, query.as_bytes())).unwrap(),
            "GET /webrsf/v1/carol/Notification?x=1&token=*** HTTP/1.1\r\n\r\n"
        );
        let form = "POST /x HTTP/1.1\r\n\r\nuser=carol&password=hunter2&x=1";
        let red = redact(Protocol::Http, form.as_bytes());
        assert_eq!(
            std::str::from_utf8(&red).unwrap(),
            "POST /x HTTP/1.1\r\n\r\nuser=carol&password=*******&x=1"
        );
        for i in 0..raw.len() {
            let _ = redact(Protocol::Http, &raw.as_bytes()[..i]);
        }
        let sip = b"REGISTER sip:ims.lab SIP/2.0\r\nAuthorization: Digest response=\"abc\"\r\n\r\n";
        assert!(matches!(redact(Protocol::SipUdp, sip), Cow::Borrowed(_)));
    }
}
