//! The RCS chat payloads: message/cpim (src/cpim/, RFC 3862) with its content decoded and
//! classified (src/im/rcs.rs), IMDN (RFC 5438) and is-composing (RFC 3994) XML. What parses
//! must serialise into something that parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::cpim::{Cpim, Imdn, IsComposing};
use rcslab::im::rcs;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Cpim::parse(data) {
        let _ = (
            c.message_id(),
            c.from_uri(),
            c.content_type(),
            c.wants("display"),
            c.decoded_body(),
        );
        let _ = rcs::content(&c);
        let again = Cpim::parse(&c.to_bytes())
            .unwrap_or_else(|e| panic!("our own CPIM does not parse: {e}"));
        assert_eq!(again.headers, c.headers, "CPIM headers round trip");
    }
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(i) = Imdn::parse(xml) {
        let again =
            Imdn::parse(&i.to_xml()).unwrap_or_else(|e| panic!("our own IMDN does not parse: {e}"));
        assert_eq!(again, i, "IMDN round trip");
    }
    if let Ok(c) = IsComposing::parse(xml) {
        let again = IsComposing::parse(&c.to_xml())
            .unwrap_or_else(|e| panic!("our own is-composing does not parse: {e}"));
        assert_eq!(again, c, "is-composing round trip");
    }
});
