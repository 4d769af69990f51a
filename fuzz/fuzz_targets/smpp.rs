//! SMPP 3.4 (src/smpp): framing a stream, decoding each PDU, the answer every decode error
//! calls for, and the Appendix B receipt parser. What decodes must encode and decode back to
//! the same value; every answer to a bad PDU must encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::smpp::{frame, DeliveryReceipt, Framing, Pdu};
use rcslab::smsc::esme::user_data_of;

fn check(bytes: &[u8]) {
    match Pdu::decode(bytes) {
        Ok(p) => {
            let wire = p.encode().expect("what decodes encodes");
            let again = Pdu::decode(&wire).expect("our own encoding decodes");
            assert_eq!(again, p, "encode/decode round trip");
        }
        Err(e) => {
            if let Some(reply) = e.reply() {
                let wire = reply.encode().expect("the answer encodes");
                assert_eq!(Pdu::decode(&wire).as_ref(), Ok(&reply));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Framing::Complete(n) = frame(buf, 64 * 1024) {
        assert!((16..=buf.len()).contains(&n));
        check(&buf[..n]);
        buf = &buf[n..];
    }
    check(data);
    // An application's payload as the centre reads it (first octets: data_coding, UDHI).
    if let [dc, flags, payload @ ..] = data {
        if let Ok((dcs, ud)) = user_data_of(*dc, flags & 1 == 1, payload) {
            let mut out = Vec::new();
            let _ = ud.encode(dcs, &mut out);
        }
    }
    if let Ok(r) = DeliveryReceipt::parse(data) {
        let _ = DeliveryReceipt::parse(r.build().as_bytes());
    }
});
