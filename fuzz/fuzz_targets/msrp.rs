//! MSRP (src/msrp/, RFC 4975): the stream framer, the message parser, Byte-Range and MSRP
//! URIs, and reassembly of the SEND chunks found in the stream. A parsed message must
//! serialise into bytes that frame and parse back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::msrp::{frame, ByteRange, Frame, MsrpMessage, MsrpUri, Reassembly};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut whole = Reassembly::default();
    while let Ok(Frame::Message(n)) = frame(buf) {
        assert!(n > 0 && n <= buf.len(), "frame {n} of {}", buf.len());
        if let Ok(m) = MsrpMessage::parse(&buf[..n]) {
            check(&m);
            if m.method.as_deref() == Some("SEND") {
                let _ = whole.add(&m, 1 << 16);
            }
        }
        buf = &buf[n..];
    }
    let _ = (whole.content_type(), whole.aborted());
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = ByteRange::parse(s) {
            assert_eq!(ByteRange::parse(&r.to_string()), Ok(r));
        }
        if let Ok(u) = MsrpUri::parse(s) {
            let _ = u.authority();
        }
    }
});

fn check(m: &MsrpMessage) {
    let _ = (m.byte_range(), m.is_request());
    for p in ["To-Path", "From-Path"] {
        for uri in m.header(p).unwrap_or("").split_whitespace() {
            let _ = MsrpUri::parse(uri);
        }
    }
    if m.is_request() {
        let _ = m.response_to(200, "OK").to_bytes();
    }
    let bytes = m.to_bytes();
    assert_eq!(
        frame(&bytes),
        Ok(Frame::Message(bytes.len())),
        "own bytes frame"
    );
    let again = MsrpMessage::parse(&bytes)
        .unwrap_or_else(|e| panic!("our own serialisation does not parse: {e}"));
    assert_eq!(&again, m, "round trip");
}
