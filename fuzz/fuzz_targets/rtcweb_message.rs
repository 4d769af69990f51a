//! The RTCWeb gateway's web protocol (src/rtcweb/message.rs): any frame a page sends. What
//! parses must print as a frame that parses back the same and prints the same bytes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::rtcweb::message::WebMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = WebMessage::parse(data) else {
        return;
    };
    let printed = m.to_json();
    let again = WebMessage::parse(printed.as_bytes())
        .unwrap_or_else(|e| panic!("our own frame does not parse: {e}: {printed}"));
    assert_eq!(again, m, "web message round trip");
    assert_eq!(again.to_json(), printed, "printing is byte-stable");
});
