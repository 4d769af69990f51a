//! The presence documents (src/presence/): PIDF (RFC 3863, with RPID and the OMA service
//! description), RLMI (RFC 4662 §5.3) and the multipart/related list body (RFC 4662 §5.1).
//! For the list body the first line of the input is the Content-Type, the rest the body.
//! What parses must print as something that parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::presence::pidf::{Pidf, PidfLimits};
use rcslab::presence::rlmi::{self, Rlmi, RlmiLimits};

fuzz_target!(|data: &[u8]| {
    let unbounded = PidfLimits {
        max_body: usize::MAX,
        max_tuples: usize::MAX,
    };
    if let Ok(p) = Pidf::parse(data, &PidfLimits::default()) {
        let again = Pidf::parse(p.to_xml().as_bytes(), &unbounded)
            .unwrap_or_else(|e| panic!("our own PIDF does not parse: {e}"));
        assert_eq!(again, p, "PIDF round trip");
    }
    let limits = RlmiLimits::default();
    if let Ok(r) = Rlmi::parse(data, &limits) {
        let big = RlmiLimits {
            max_body: usize::MAX,
            max_resources: usize::MAX,
            pidf: unbounded,
        };
        let again = Rlmi::parse(r.to_xml().as_bytes(), &big)
            .unwrap_or_else(|e| panic!("our own RLMI does not parse: {e}"));
        assert_eq!(again, r, "RLMI round trip");
    }
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).to_string(), &data[i + 1..]),
        None => (String::new(), data),
    };
    if let Ok(list) = rlmi::parse_body(&ct, body, &limits) {
        for (_, doc) in &list.documents {
            let _ = doc.to_xml();
        }
        let _ = list.rlmi.to_xml();
    }
});
