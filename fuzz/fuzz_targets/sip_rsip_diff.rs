//! Differential: the same bytes through our SIP parser (src/sip/) and through rsip 0.4, the
//! crate DESIGN.md names as our message model. Where both accept a message and both read a
//! field, they must agree on it. rsip is the reference for what it gets right; its measured
//! gaps (STYLE.md) are why `sip/` exists, and they are the exclusions below:
//!
//! - A head that does not end with a blank line (CRLF CRLF) is not compared: ours takes it
//!   all as head (datagram tolerance, bare-LF heads included), rsip's tokenizer then takes
//!   every header line after the first as body. Likewise a head with a bare LF line end: ours
//!   splits lines on LF (RFC 3261 §7.5 tolerance), rsip only on CRLF.
//! - Acceptance is not compared. Ours refuses what rsip takes (a request without Via, From,
//!   To, Call-ID or CSeq; a CSeq method that is not the request's; a Content-Length longer than
//!   the body; non-UTF-8 heads) and takes what rsip refuses (unknown methods, `tel:` URIs, IPv6
//!   hosts, compact names, folded lines).
//! - Compact names (`i: f: t: v: l:`) are unknown headers to rsip, and it does not unfold
//!   continuation lines: a field is compared only when its header appears exactly once, in its
//!   long form, and the raw values agree (else rsip cut the head differently: folding).
//! - Typed views (CSeq, From/To tag, Via branch) are compared only when both typed parsers
//!   succeed: rsip's fail on quoted Contact-style parameters and several values on one line.
//! - The Via branch is compared only when the line holds one hop (rsip does not split a Via
//!   line at commas, ours does: RFC 3261 §7.3.1), only when every Via parameter is
//!   `token[=token]` (rsip stops finding parameters after one that is not, ours keeps reading),
//!   and only when the branch is a token (RFC 3261 §20.42, §25.1): with other
//!   characters (`@`, say) rsip's Via parser reads the line differently and finds no branch,
//!   while ours keeps the value as written.
//! - The body: rsip has no framing and takes everything after the blank line, ours stops at
//!   Content-Length; ours must be a prefix of rsip's (equal when there is no Content-Length).
//!   Only when the bytes hold one blank line: with several, rsip 0.4 may end the head at a
//!   later one (ours ends it at the first, RFC 3261 §7.5).
//! - The Request-URI is compared on user, host and port for `sip:`/`sips:` only, and only when
//!   it has no `?` (URI headers, RFC 3261 §19.1.1: rsip 0.4 reads them as part of the host)
//!   nor when rsip lost a user part ours found (rsip 0.4 reads `sip:bosm.@ialbb` with no
//!   user), nor more than one `@` (an unescaped `@` in the user part: ours splits at the last, rsip at
//!   the first), and no `%` escapes (rsip keeps them, so do we; but rsip lowercases nothing and neither
//!   do we, so a difference there is a bug on one side).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::sip::{CSeq, NameAddr, SipMessage, Uri, Via};
use rsip::headers::{ToTypedHeader, UntypedHeader};
use rsip::message::HeadersExt;

/// The only header line (long form, as rsip sees it) named `name`, if there is exactly one and
/// no compact form of it.
fn only_long(ours: &SipMessage, name: &str) -> Option<String> {
    let all: Vec<&str> = ours.headers().get_all(name).collect();
    (all.len() == 1).then(|| all[0].to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let head = &data[..head_end];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        return;
    }
    let Ok(ours) = SipMessage::parse(data) else {
        return;
    };
    let Ok(theirs) = rsip::SipMessage::try_from(data) else {
        return;
    };
    // Kind, method, status.
    match (&ours, &theirs) {
        (SipMessage::Request(o), rsip::SipMessage::Request(t)) => {
            assert_eq!(o.method.as_str(), t.method.to_string(), "method");
            let rsip_uri = &t.uri;
            let lost_user = |u: &rcslab::sip::SipUri| u.user.is_some() && rsip_uri.user().is_none();
            if let (Ok(Uri::Sip(u)), false) = (
                Uri::parse(&o.uri),
                o.uri.contains(['%', '?']) || o.uri.matches('@').count() > 1,
            ) {
                if lost_user(&u) {
                    return;
                }
                assert_eq!(u.user.as_deref(), rsip_uri.user(), "Request-URI user");
                assert_eq!(u.host, rsip_uri.host().to_string(), "Request-URI host");
                assert_eq!(
                    u.port,
                    rsip_uri.port().map(|p| *p.value()),
                    "Request-URI port"
                );
            }
        }
        (SipMessage::Response(o), rsip::SipMessage::Response(t)) => {
            assert_eq!(o.status, t.status_code.code(), "status code");
        }
        _ => panic!("one parser saw a request, the other a response"),
    }
    // Call-ID.
    if let (Some(o), Ok(t)) = (only_long(&ours, "Call-ID"), theirs.call_id_header()) {
        same_raw(data, "Call-ID", &o, t.value());
    }
    // CSeq number and method.
    if let (Some(o), Ok(t)) = (only_long(&ours, "CSeq"), theirs.cseq_header()) {
        if let (Ok(oc), Ok(tc), true) = (
            CSeq::parse(&o),
            t.typed(),
            same_raw(data, "CSeq", &o, t.value()),
        ) {
            assert_eq!(oc.seq, tc.seq, "CSeq number");
            assert_eq!(oc.method.as_str(), tc.method.to_string(), "CSeq method");
        }
    }
    // From and To tags.
    if let (Some(o), Ok(t)) = (only_long(&ours, "From"), theirs.from_header()) {
        if let (Ok(on), Ok(tt), true) = (
            NameAddr::parse(&o),
            t.typed(),
            same_raw(data, "From", &o, t.value()),
        ) {
            assert_eq!(on.tag(), tt.tag().map(|t| t.value()), "From tag");
        }
    }
    if let (Some(o), Ok(t)) = (only_long(&ours, "To"), theirs.to_header()) {
        if let (Ok(on), Ok(tt), true) = (
            NameAddr::parse(&o),
            t.typed(),
            same_raw(data, "To", &o, t.value()),
        ) {
            assert_eq!(on.tag(), tt.tag().map(|t| t.value()), "To tag");
        }
    }
    // Top Via branch.
    if let (Some(o), Ok(t)) = (only_long(&ours, "Via"), theirs.via_header()) {
        let hops = rcslab::sip::split_list(&o);
        // Plain `name[=value]` tokens, each name once: a Via with two branches is ambiguous
        // (rsip answers none, we the first), not a field both understand.
        let plain_params = |v: &str| {
            let mut names = std::collections::HashSet::new();
            v.split(';').skip(1).all(|p| {
                let kv: Vec<&str> = p.trim().split('=').collect();
                kv.len() <= 2
                    && kv.iter().all(|x| !x.is_empty() && is_token(x))
                    && names.insert(kv[0].to_ascii_lowercase())
            })
        };
        let first = (hops.len() == 1 && plain_params(hops[0])).then(|| hops[0].to_string());
        if let (Some(first), Ok(tv), true) =
            (first, t.typed(), same_raw(data, "Via", &o, t.value()))
        {
            if let Ok(ov) = Via::parse(&first)
                .map_err(drop)
                .and_then(|v| v.branch().map_or(true, is_token).then_some(v).ok_or(()))
            {
                assert_eq!(ov.branch(), tv.branch().map(|b| b.value()), "Via branch");
            }
        }
    }
    // Body.
    if data.windows(4).filter(|w| w == b"\r\n\r\n").count() > 1 {
        return;
    }
    let (ob, tb) = (ours_body(&ours), theirs.body());
    if ours.headers().has("Content-Length") {
        assert!(tb.starts_with(ob), "body is not a prefix of rsip's");
    } else {
        assert_eq!(ob, &tb[..], "body");
    }
});

fn ours_body(m: &SipMessage) -> &[u8] {
    match m {
        SipMessage::Request(r) => &r.body,
        SipMessage::Response(r) => &r.body,
    }
}

/// Where `name` is written once, in its long form, and no line is folded, both parsers must
/// have read the same value (rsip's untrimmed); returns whether the header was comparable.
fn same_raw(data: &[u8], name: &str, ours: &str, theirs: &str) -> bool {
    let head = String::from_utf8_lossy(data);
    let head = head.split("\r\n\r\n").next().unwrap_or("");
    let long_lines = head
        .split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .count();
    if long_lines != 1 || head.contains("\n ") || head.contains("\n\t") {
        return false;
    }
    assert_eq!(ours, theirs.trim(), "raw {name} value");
    true
}

/// RFC 3261 §25.1 token.
fn is_token(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c))
}
