//! SIP messages (src/sip/message/): stream framing, whole-message parsing, the 400 salvage,
//! and every header view a node reads. A message we parse must serialise into one that parses
//! back to the same thing (a proxy forwards what it parsed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::auth::digest::{Challenge, Credentials};
use rcslab::sip::stateless::refusal;
use rcslab::sip::{frame, salvage_request, CSeq, Frame, NameAddr, SipMessage, Uri, Via};

fuzz_target!(|data: &[u8]| {
    // Framing a stream: consume every whole message and keep-alive at the front.
    let mut buf = data;
    while let Ok(f) = frame(buf) {
        match f {
            Frame::Message(n) | Frame::KeepAlive(n) => {
                assert!(n > 0 && n <= buf.len(), "frame {n} of {}", buf.len());
                if let Frame::Message(n) = f {
                    let _ = SipMessage::parse(&buf[..n]);
                }
                buf = &buf[n..];
            }
            Frame::Oversized { head, total } => {
                // The reader skips `total` bytes; the head alone goes up (for a 513).
                assert!(head > 0 && head <= buf.len() && total > head, "{head} {total}");
                let _ = salvage_request(&buf[..head]);
                if total > buf.len() {
                    break;
                }
                buf = &buf[total..];
            }
            Frame::Incomplete => break,
        }
    }
    let _ = salvage_request(data);
    // The 503 built from the raw bytes (overload shedding at the socket) never panics; for a
    // request we parse it is a response we parse, to the same Call-ID and CSeq.
    let src: std::net::SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let refused = refusal(data, src, 503, "Service Unavailable", &[("Retry-After", "2")]);
    let Ok(m) = SipMessage::parse(data) else {
        return;
    };
    if let (Some((bytes, _)), SipMessage::Request(req)) = (&refused, &m) {
        match SipMessage::parse(bytes) {
            Ok(SipMessage::Response(r)) => {
                assert_eq!(r.status, 503);
                assert_eq!(r.headers.get("Call-ID"), req.headers.get("Call-ID"));
            }
            other => panic!("the refusal of a request we parse does not parse: {other:?}"),
        }
    }
    let h = m.headers();
    let _ = (m.call_id(), m.cseq(), m.top_via());
    for v in h.values("Via") {
        let _ = Via::parse(v).map(|v| (v.branch().map(str::len), v.rport(), v.sent_by()));
    }
    for name in [
        "From",
        "To",
        "Contact",
        "Route",
        "Record-Route",
        "Path",
        "Service-Route",
        "P-Asserted-Identity",
        "P-Associated-URI",
    ] {
        for v in h.values(name) {
            let _ = NameAddr::parse(v).map(|n| (n.tag().map(str::len), n.uri.aor()));
        }
    }
    for name in ["Authorization", "Proxy-Authorization"] {
        for v in h.get_all(name) {
            let _ = Credentials::parse(v);
        }
    }
    for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
        for v in h.get_all(name) {
            let _ = Challenge::parse(v);
        }
    }
    if let Some(c) = h.get("CSeq") {
        let _ = CSeq::parse(c);
    }
    if let SipMessage::Request(r) = &m {
        let _ = (Uri::parse(&r.uri), r.max_forwards());
        let _ = r.response(400, None).to_bytes();
    }
    let bytes = m.to_bytes();
    let again = SipMessage::parse(&bytes)
        .unwrap_or_else(|e| panic!("our own serialisation does not parse: {e}"));
    assert_eq!(without_content_length(again), without_content_length(m));
});

/// Content-Length is rewritten (and moved last) by `to_bytes`.
fn without_content_length(mut m: SipMessage) -> SipMessage {
    m.headers_mut().remove("Content-Length");
    m
}
