//! The TS 29.228 User-Data XML (IMSSubscription) the HSS sends in SAA and PPR
//! (src/profile/), and iFC evaluation on what it yields (src/cscf/ifc.rs): the regexes of a
//! trigger point come from the document. A profile that parses must print as XML that parses
//! back to the same profile.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rcslab::cscf::ifc::{matches, next_match, ordered, SessionCase};
use rcslab::profile::ImsSubscription;
use rcslab::sip::{Method, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = ImsSubscription::parse(xml) else {
        return;
    };
    let again = ImsSubscription::parse(&p.to_xml())
        .unwrap_or_else(|e| panic!("our own User-Data does not parse: {e}"));
    assert_eq!(again, p, "User-Data round trip");
    let mut req = Request::new(Method::Invite, "sip:bob@ims.lab");
    req.headers.push(
        "Accept-Contact",
        "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"",
    );
    req.headers.push("Content-Type", "application/sdp");
    req.body = Bytes::from_static(b"v=0\r\nm=message 9 TCP/MSRP *\r\n");
    for sp in &p.service_profiles {
        let ifcs = ordered(&sp.ifcs);
        for case in [
            SessionCase::Originating,
            SessionCase::TerminatingRegistered,
            SessionCase::TerminatingUnregistered,
            SessionCase::OriginatingUnregistered,
        ] {
            for ifc in &ifcs {
                let _ = matches(ifc, &req, case);
            }
            let _ = next_match(&ifcs, 0, &req, case);
        }
    }
});
