//! Parsing one whole SIP message (RFC 3261 §7, §7.3.1 folding, the mandatory headers of
//! §8.1.1), without panicking on any input, and salvaging enough of a broken request to answer
//! it 400 (§8.2.2, §16.3).

use bytes::Bytes;

use super::framing::{content_length_of, find_head_end};
use super::header_lines::canonical_name;
use super::{
    malformed, Headers, Method, Request, Response, SipError, SipMessage, MAX_MESSAGE_SIZE,
};
use crate::sip::headers::{CSeq, Via};

/// Head lines with folding undone (RFC 3261 §7.3.1).
fn unfolded_lines(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
                continue;
            }
        }
        out.push(line.to_string());
    }
    out
}

fn parse_headers(lines: &[String]) -> Result<Headers, SipError> {
    let mut h = Headers::default();
    for l in lines {
        let (name, value) = l.split_once(':').ok_or_else(|| {
            malformed(format!(
                "header line without ':' ({})",
                l.chars().take(60).collect::<String>()
            ))
        })?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed(format!("bad header name '{name}'")));
        }
        h.entries
            .push((canonical_name(name), value.trim().to_string()));
    }
    Ok(h)
}

fn check_required(h: &Headers, names: &[&str]) -> Result<(), SipError> {
    for n in names {
        if !h.has(n) {
            return Err(malformed(format!("missing {n}")));
        }
    }
    Ok(())
}

impl SipMessage {
    /// Parses one whole message.
    pub fn parse(buf: &[u8]) -> Result<SipMessage, SipError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(SipError::TooLarge);
        }
        let start = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = &buf[start..];
        let head_len = find_head_end(buf).unwrap_or(buf.len());
        let head =
            std::str::from_utf8(&buf[..head_len]).map_err(|_| malformed("head is not UTF-8"))?;
        let lines = unfolded_lines(head);
        let first = lines.first().ok_or_else(|| malformed("empty message"))?;
        let headers = parse_headers(&lines[1..])?;
        let rest = &buf[head_len.min(buf.len())..];
        let body = match content_length_of(head)? {
            Some(n) if n > rest.len() => {
                return Err(malformed(format!(
                    "Content-Length {n} but only {} body bytes",
                    rest.len()
                )))
            }
            Some(n) => Bytes::copy_from_slice(&rest[..n]),
            None => Bytes::copy_from_slice(rest),
        };
        if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let (code, reason) = match rest.split_once(' ') {
                Some((c, r)) => (c, r),
                None => (rest, ""),
            };
            let status: u16 = code
                .trim()
                .parse()
                .ok()
                .filter(|s| (100..700).contains(s))
                .ok_or_else(|| malformed(format!("bad status code '{code}'")))?;
            check_required(&headers, &["Via", "From", "To", "Call-ID", "CSeq"])?;
            return Ok(SipMessage::Response(Response {
                status,
                reason: reason.to_string(),
                headers,
                body,
            }));
        }
        let mut parts = first.split(' ');
        let (Some(m), Some(uri), Some(ver), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(format!(
                "bad start line '{}'",
                first.chars().take(80).collect::<String>()
            )));
        };
        if ver != "SIP/2.0" {
            return Err(malformed(format!("unsupported version '{ver}'")));
        }
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        {
            return Err(malformed(format!("bad method '{m}'")));
        }
        if uri.is_empty() || !uri.contains(':') {
            return Err(malformed(format!("bad Request-URI '{uri}'")));
        }
        check_required(&headers, &["Via", "From", "To", "Call-ID", "CSeq"])?;
        let method = Method::parse(m);
        if let Some(c) = headers.get("CSeq") {
            let cs = CSeq::parse(c)?;
            if cs.method != method && !(method == Method::Ack && cs.method == Method::Ack) {
                return Err(malformed("CSeq method does not match the request method"));
            }
        }
        Via::parse(headers.first_value("Via").unwrap_or(""))?;
        Ok(SipMessage::Request(Request {
            method,
            uri: uri.to_string(),
            headers,
            body,
        }))
    }
}

/// For a message that failed to parse: a request with just the headers a 400 needs, if the
/// start line is a request line and they can be found.
pub fn salvage_request(buf: &[u8]) -> Option<Request> {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_MESSAGE_SIZE)]);
    let head = text.split("\r\n\r\n").next()?;
    let lines = unfolded_lines(head);
    let first = lines.first()?;
    let mut parts = first.split(' ');
    let (Some(m), Some(uri), Some("SIP/2.0")) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut req = Request::new(Method::parse(m), uri);
    for l in &lines[1..] {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let n = canonical_name(n.trim());
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&n.as_str()) {
            req.headers.push(&n, v.trim());
        }
    }
    // RFC 3261 §8.2.2 / §16.3: whatever else is missing, the 400 goes back by the top Via when
    // there is a usable one, else to the packet's source (which the endpoint knows).
    if let Some(v) = req.headers.first_value("Via") {
        if Via::parse(v).is_err() {
            req.headers.remove("Via");
        }
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::{frame, SIPP_REGISTER};
    use super::*;

    #[test]
    fn compact_headers_expand_and_round_trip() {
        let m = SipMessage::parse(SIPP_REGISTER.as_bytes()).unwrap();
        let SipMessage::Request(r) = &m else {
            panic!("request")
        };
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.headers.get("Call-ID"), Some("1-2@127.0.0.1"));
        assert_eq!(r.headers.get("i"), Some("1-2@127.0.0.1"));
        assert_eq!(r.max_forwards(), Some(70));
        let again = SipMessage::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
        assert!(String::from_utf8_lossy(&m.to_bytes()).contains("Call-ID: 1-2@127.0.0.1\r\n"));
    }

    #[test]
    fn ims_401_and_200_with_lists() {
        let t = "SIP/2.0 401 Unauthorized - Challenging the UE\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP c:3;branch=z9hG4bK3\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"a,b\", algorithm=AKAv1-MD5\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=MD5\r\nPath: <sip:term@p;lr>, <sip:q;lr>\r\nContent-Length: 0\r\n\r\n";
        let m = SipMessage::parse(t.as_bytes()).unwrap();
        let SipMessage::Response(r) = &m else {
            panic!()
        };
        assert_eq!(r.reason, "Unauthorized - Challenging the UE");
        assert_eq!(r.headers.values("Via").len(), 3);
        assert_eq!(r.headers.get_all("WWW-Authenticate").count(), 2);
        assert_eq!(r.headers.values("Path"), ["<sip:term@p;lr>", "<sip:q;lr>"]);
        assert_eq!(SipMessage::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn invite_with_body_folding_tel_and_unknown_method() {
        let t = "INVITE tel:+15550002 SIP/2.0\r\nVia: SIP/2.0/TCP h:5060;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nTo: <tel:+15550002>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nSubject: a\r\n  folded\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\nEXTRA";
        let SipMessage::Request(r) = SipMessage::parse(t.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.uri, "tel:+15550002");
        assert_eq!(&r.body[..], b"v=0\r\n");
        assert_eq!(r.headers.get("Subject"), Some("a folded"));
        let foo = SIPP_REGISTER
            .replace("REGISTER sip", "FOO sip")
            .replace("1 REGISTER", "1 FOO");
        let SipMessage::Request(f) = SipMessage::parse(foo.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(f.method, Method::Other("FOO".into()));
        let empty_reason = "SIP/2.0 200\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let SipMessage::Response(e) = SipMessage::parse(empty_reason.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!((e.status, e.reason.as_str()), (200, ""));
    }

    #[test]
    fn no_panic_on_any_prefix_or_mutation() {
        let samples = [SIPP_REGISTER.as_bytes().to_vec()];
        let mut rng = rand::thread_rng();
        for s in &samples {
            for i in 0..=s.len() {
                let _ = SipMessage::parse(&s[..i]);
                let _ = frame(&s[..i]);
                let _ = salvage_request(&s[..i]);
            }
            for _ in 0..10_000 {
                let mut m = s.clone();
                for _ in 0..rng.gen_range(1..8) {
                    let at = rng.gen_range(0..m.len());
                    m[at] = rng.gen();
                }
                let _ = SipMessage::parse(&m);
                let _ = frame(&m);
                let text = String::from_utf8_lossy(&m);
                let _ = crate::sip::NameAddr::parse(&text);
                let _ = crate::sip::Via::parse(&text);
                let _ = crate::sip::Uri::parse(&text);
            }
        }
    }
}
