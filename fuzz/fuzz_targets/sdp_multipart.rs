//! The body of a chat INVITE and its 200 (src/im/rcs.rs `chat_body`): SDP with MSRP media
//! (src/msrp/sdp.rs, RFC 4975 §8) alone or in a multipart/mixed (src/sip/multipart.rs,
//! RFC 2046 §5.1) with the first CPIM message. The first line of the input is the
//! Content-Type, the rest the body. What parses must print as something that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::im::rcs::chat_body;
use rcslab::msrp::sdp::MsrpSdp;
use rcslab::sip::multipart;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).to_string(),
            &data[i + 1..],
        ),
        None => (String::new(), data),
    };
    let _ = chat_body(Some(&ct), body);
    if let Ok(parts) = multipart::parse(&ct, body) {
        if let Some(b) = multipart::boundary(&ct) {
            if !b.is_empty() && parts.iter().all(|p| !contains(&p.body, b.as_bytes())) {
                let (ct2, body2) = multipart::build(&b, &parts);
                let again = multipart::parse(&ct2, &body2)
                    .unwrap_or_else(|e| panic!("our own multipart does not parse: {e}"));
                assert_eq!(again.len(), parts.len(), "multipart round trip");
            }
        }
    }
    if let Ok(sdp) = MsrpSdp::parse(&String::from_utf8_lossy(data)) {
        let _ = sdp.endpoint();
        let again = MsrpSdp::parse(&sdp.to_sdp())
            .unwrap_or_else(|e| panic!("our own SDP does not parse: {e}"));
        assert_eq!(again.path, sdp.path, "SDP round trip");
    }
});

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
