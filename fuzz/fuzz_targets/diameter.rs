//! Diameter (src/diameter/codec.rs) and the Cx commands on it (src/diameter/cx.rs, TS 29.229):
//! framing a stream, decoding a message and every grouped AVP, reading each Cx command. What
//! decodes must encode and decode back to the same; a Cx command read from a message must
//! survive `to_message` and `from_message` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::diameter::codec::{frame, Message};
use rcslab::diameter::cx::*;

macro_rules! cx_round_trip {
    ($m:expr, $($t:ty),*) => {$(
        if let Ok(x) = <$t>::from_message($m) {
            let again = <$t>::from_message(&x.to_message())
                .unwrap_or_else(|e| panic!("{} does not read back: {e}", stringify!($t)));
            assert_eq!(again, x, "{} round trip", stringify!($t));
        }
    )*};
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Ok(Some(n)) = frame(buf) {
        assert!(n >= 20 && n <= buf.len());
        let _ = Message::decode(&buf[..n]);
        buf = &buf[n..];
    }
    let Ok(m) = Message::decode(data) else {
        return;
    };
    let _ = (
        m.session_id(),
        m.origin_host(),
        m.origin_realm(),
        m.result_code(),
        m.command_name(),
        CxResult::from_message(&m),
    );
    for a in &m.avps {
        let _ = (a.as_u32(), a.as_u64(), a.as_str(), a.as_address());
        if let Ok(g) = a.as_grouped() {
            for b in &g {
                let _ = b.as_grouped();
            }
        }
    }
    let again = Message::decode(&m.encode()).expect("our own encoding decodes");
    assert_eq!(again, m, "encode/decode round trip");
    cx_round_trip!(
        &m,
        UserAuthorizationRequest,
        UserAuthorizationAnswer,
        MultimediaAuthRequest,
        MultimediaAuthAnswer,
        ServerAssignmentRequest,
        ServerAssignmentAnswer,
        LocationInfoRequest,
        LocationInfoAnswer,
        RegistrationTerminationRequest,
        PushProfileRequest
    );
});
