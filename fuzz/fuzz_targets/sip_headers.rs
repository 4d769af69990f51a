//! Single SIP header values and URIs (src/sip/headers.rs, uri.rs, src/auth/digest.rs): the
//! parsers every node runs on From/To/Contact/Via/CSeq/Authorization. What parses must print
//! as something that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::auth::digest::{parse_aka_nonce, Challenge, Credentials};
use rcslab::sip::{split_list, CSeq, NameAddr, Params, Uri, Via};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = Uri::parse(s) {
        let _ = (u.aor(), u.user(), u.host(), u.port(), u.param("transport"));
        let again = Uri::parse(&u.to_string())
            .unwrap_or_else(|e| panic!("printed URI '{u}' does not parse: {e}"));
        assert_eq!(again, u);
    }
    if let Ok(n) = NameAddr::parse(s) {
        let _ = n.tag();
        let again = NameAddr::parse(&n.to_string())
            .unwrap_or_else(|e| panic!("printed name-addr '{n}' does not parse: {e}"));
        assert_eq!(again.uri, n.uri);
    }
    if let Ok(v) = Via::parse(s) {
        let _ = (v.branch(), v.received(), v.rport());
        let again = Via::parse(&v.to_string())
            .unwrap_or_else(|e| panic!("printed Via '{v}' does not parse: {e}"));
        assert_eq!((again.host, again.port), (v.host.clone(), v.port));
    }
    if let Ok(c) = CSeq::parse(s) {
        assert_eq!(CSeq::parse(&c.to_string()), Ok(c));
    }
    let p = Params::parse(s);
    let _ = (p.value("tag"), p.to_string());
    for item in split_list(s) {
        let _ = NameAddr::parse(item);
    }
    if let Ok(c) = Challenge::parse(s) {
        let _ = c.to_string();
        let _ = parse_aka_nonce(&c.nonce);
    }
    if let Ok(c) = Credentials::parse(s) {
        let _ = c.to_string();
    }
});
