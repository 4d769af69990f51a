//! Answers sent outside any transaction: where a response goes (RFC 3261 §18.2.2, RFC 3581
//! §4), and a refusal built straight from a request's bytes, before the request is parsed.
//!
//! The refusal is what overload shedding at the socket sends (RFC 7339's model: the first
//! node that sees an out-of-dialog request it cannot take answers `503` with `Retry-After`).
//! It must cost far less than the work it saves, so it reads only the start line and the
//! five headers a response copies (Via, From, To, Call-ID, CSeq — §8.2.6.2) and writes the
//! response without building a message. Pure: no I/O, never panics, fuzzed with the parser.

use std::net::SocketAddr;

use crate::sip::headers::{split_list, NameAddr, Via};
use crate::sip::message::new_tag;
use crate::sip::transport::Transport;

/// Where the responses to a request with top Via `via` go, `source` being where it came from:
/// over TCP or WebSocket back on the connection (its source); with `rport` (RFC 3581 §4) to the source
/// address and port; else to `received` (or the sent-by host) and the sent-by port.
pub fn response_destination(
    via: &Via,
    source: Option<SocketAddr>,
) -> Option<(SocketAddr, Transport)> {
    let transport = Transport::parse(&via.transport).unwrap_or(Transport::Udp);
    if let (Some(src), Transport::Tcp | Transport::Ws) = (source, transport) {
        return Some((src, transport));
    }
    if let (Some(src), Some(_)) = (source, via.rport()) {
        return Some((src, transport));
    }
    let host = via.received().unwrap_or(&via.host);
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((SocketAddr::new(ip, port), transport))
}

/// Notes on the top Via where the request really came from (RFC 3261 §18.2.1, RFC 3581 §4):
/// `received` when the sent-by host is not the source address (or rport was asked for), and
/// the source port in `rport` when asked for.
pub fn stamp_via(via: &mut Via, source: SocketAddr) {
    let src_ip = source.ip().to_string();
    if via.host.trim_start_matches('[').trim_end_matches(']') != src_ip || via.rport().is_some() {
        via.params.set("received", Some(src_ip));
    }
    if via.rport().is_some() {
        via.params.set("rport", Some(source.port().to_string()));
    }
}

/// A final response `status reason` to the request in `raw` (one whole message) that came
/// from `source`, with `extra` headers, and where to send it — or None when `raw` is not an
/// out-of-dialog request this may refuse: a response, an ACK or CANCEL, a request whose To
/// has a tag (in a dialog), or one without a usable Via, From, To, Call-ID and CSeq (the
/// full parser then deals with it).
pub fn refusal(
    raw: &[u8],
    source: SocketAddr,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
) -> Option<(Vec<u8>, SocketAddr)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    // Lines end in CRLF and nothing else; no other control characters (a bare LF, which the
    // lenient full parser reads as a line end, would otherwise be copied into a header).
    let b = head.as_bytes();
    let clean = b.iter().enumerate().all(|(i, &c)| match c {
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && b[i - 1] == b'\r',
        b'\t' => true,
        c => c >= 0x20 && c != 0x7f,
    });
    if !clean {
        return None;
    }
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut parts = start.split(' ');
    let method = parts.next()?;
    let (uri, version) = (parts.next()?, parts.next()?);
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
        || uri.is_empty()
        || version != "SIP/2.0"
        || parts.next().is_some()
        || method == "ACK"
        || method == "CANCEL"
    {
        return None;
    }
    // The five headers a response copies, in order; a folded line (§7.3.1) continues the one
    // before it.
    let mut vias: Vec<String> = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    let mut last: Option<(&'static str, String)> = None;
    let mut flush = |h: Option<(&'static str, String)>| -> Option<()> {
        let Some((name, value)) = h else {
            return Some(());
        };
        let slot = match name {
            "Via" => {
                vias.push(value);
                return Some(());
            }
            "From" => &mut from,
            "To" => &mut to,
            "Call-ID" => &mut call_id,
            _ => &mut cseq,
        };
        if slot.is_some() {
            return None; // twice: not a request to answer from its bytes
        }
        *slot = Some(value);
        Some(())
    };
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = last.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        flush(last.take())?;
        let (name, value) = line.split_once(':')?;
        let name = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => "Via",
            "from" | "f" => "From",
            "to" | "t" => "To",
            "call-id" | "i" => "Call-ID",
            "cseq" => "CSeq",
            _ => continue,
        };
        last = Some((name, value.trim().to_string()));
    }
    flush(last.take())?;
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if NameAddr::parse(&to).ok()?.tag().is_some() || vias.is_empty() {
        return None;
    }
    let (cseq_no, cseq_method) = cseq.split_once(|c: char| c.is_ascii_whitespace())?;
    if cseq_no.parse::<u32>().is_err() || cseq_method.trim() != method {
        return None;
    }
    // The top Via, stamped with where the request came from; the others as they were.
    let first = vias.first()?.clone();
    let elems = split_list(&first);
    let mut via = Via::parse(elems.first()?).ok()?;
    stamp_via(&mut via, source);
    let (dest, _) = response_destination(&via, Some(source))?;

    let mut out = Vec::with_capacity(256 + head.len() / 2);
    out.extend_from_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
    let mut push = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    push("Via", &via.to_string());
    for rest in &elems[1..] {
        push("Via", rest);
    }
    for v in &vias[1..] {
        push("Via", v);
    }
    push("From", &from);
    push("To", &format!("{to};tag={}", new_tag()));
    push("Call-ID", &call_id);
    push("CSeq", &cseq);
    for (name, value) in extra {
        push(name, value);
    }
    push("Content-Length", "0");
    out.extend_from_slice(b"\r\n");
    Some((out, dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;

    fn src() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    const MSG: &str = "MESSAGE sip:bob@ims.lab SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\n\
        Via: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKx\r\n\
        Max-Forwards: 70\r\n\
        f: <sip:alice@ims.lab>;tag=a1\r\n\
        To: <sip:bob@ims.lab>\r\n\
        i: c1@host\r\n\
        CSeq: 7\r\n  MESSAGE\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 2\r\n\r\nhi";

    #[test]
    fn a_503_copies_what_a_response_must_and_parses_back() {
        let (bytes, dest) = refusal(
            MSG.as_bytes(),
            src(),
            503,
            "Service Unavailable",
            &[("Retry-After", "2")],
        )
        .unwrap();
        // rport: back to the source address and port.
        assert_eq!(dest, src());
        let SipMessage::Response(r) = SipMessage::parse(&bytes).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(r.status, 503);
        let vias: Vec<&str> = r.headers.values("Via");
        assert_eq!(vias.len(), 3, "{vias:?}");
        let top = Via::parse(vias[0]).unwrap();
        assert_eq!(top.received(), Some("127.0.0.1"));
        assert_eq!(top.rport(), Some(Some(40000)));
        assert_eq!(top.params.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(vias[1], "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0");
        assert_eq!(r.headers.get("From"), Some("<sip:alice@ims.lab>;tag=a1"));
        assert!(NameAddr::parse(r.headers.get("To").unwrap())
            .unwrap()
            .tag()
            .is_some());
        assert_eq!(r.headers.get("Call-ID"), Some("c1@host"));
        assert_eq!(r.headers.get("CSeq"), Some("7 MESSAGE"));
        assert_eq!(r.headers.get("Retry-After"), Some("2"));
    }

    #[test]
    fn without_rport_the_answer_goes_to_the_sent_by_port() {
        let raw = MSG.replace(";rport", "");
        let (_, dest) = refusal(raw.as_bytes(), src(), 503, "x", &[]).unwrap();
        assert_eq!(dest, "127.0.0.1:5062".parse().unwrap());
    }

    #[test]
    fn what_it_leaves_to_the_full_parser() {
        let none = |raw: String| refusal(raw.as_bytes(), src(), 503, "x", &[]).is_none();
        // In a dialog, ACK, CANCEL, responses.
        assert!(none(MSG.replace(
            "To: <sip:bob@ims.lab>",
            "To: <sip:bob@ims.lab>;tag=b"
        )));
        assert!(none(
            MSG.replace("MESSAGE sip:", "ACK sip:")
                .replace("7\r\n  MESSAGE", "7 ACK")
        ));
        assert!(none(
            MSG.replace("MESSAGE sip:", "CANCEL sip:")
                .replace("7\r\n  MESSAGE", "7 CANCEL")
        ));
        assert!(none("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n".into()));
        // Missing or doubled headers, a CSeq of another method, no blank line.
        assert!(none(MSG.replace("i: c1@host\r\n", "")));
        assert!(none(
            MSG.replace("i: c1@host\r\n", "i: c1@host\r\nCall-ID: c2\r\n")
        ));
        assert!(none(MSG.replace("v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\nVia: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKx\r\n", "")));
        assert!(none(MSG.replace("7\r\n  MESSAGE", "7 INVITE")));
        assert!(none(MSG.replace("\r\n\r\nhi", "")));
        assert!(none("\r\n\r\n".into()));
        assert!(none("MESSAGE  SIP/2.0\r\n\r\n".into()));
        // A bare LF or another control character in the head.
        assert!(none(
            MSG.replace("i: c1@host\r\n", "i: c1@host\nContent-Length: 9\r\n")
        ));
        assert!(none(MSG.replace("c1@host", "c1\u{19}@host")));
    }

    #[test]
    fn responses_go_where_rfc_3581_says() {
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(
            response_destination(&v, Some(src)),
            Some((src, Transport::Udp))
        );
        let v = Via::parse("SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKx").unwrap();
        assert_eq!(
            response_destination(&v, None)
                .map(|d| d.0.to_string())
                .as_deref(),
            Some("127.0.0.2:5062")
        );
        let v = Via::parse("SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKx").unwrap();
        assert_eq!(
            response_destination(&v, Some(src)),
            Some((src, Transport::Tcp))
        );
    }
}
