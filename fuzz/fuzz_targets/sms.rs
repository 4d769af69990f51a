//! SMS over IP bodies (src/sms/): an RP message (TS 24.011) and the TPDU it carries
//! (TS 23.040) in either direction, as reports too. What decodes must encode to octets that
//! decode the same; a text must survive being cut into concatenated parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::sms::concat::split;
use rcslab::smsc::pdus::{self, FromPhone};
use rcslab::sms::{Address, Direction, RpMessage, Tpdu};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = RpMessage::decode(data) {
        let again = RpMessage::decode(&m.encode().expect("what decodes encodes"))
            .expect("our own RP message decodes");
        assert_eq!(again, m, "RP round trip");
    }
    for dir in [Direction::MsToNetwork, Direction::NetworkToMs] {
        for in_error in [false, true] {
            if let Ok(t) = Tpdu::decode(data, dir, in_error) {
                // Text that came with unknown extension escapes or lossy UCS-2 may not
                // encode to the same octets; it must encode to something that decodes to
                // the same values.
                if let Ok(b) = t.encode() {
                    let again = Tpdu::decode(&b, dir, in_error).expect("our own TPDU decodes");
                    assert_eq!(again, t, "TPDU round trip");
                }
            }
        }
    }
    // The IP-SM-GW's view: a phone's SUBMIT it accepts must become a DELIVER the recipient
    // can read, with the same user data.
    if let Ok(FromPhone::Submit { submit, .. }) = pdus::read(data) {
        let from = Address::from_number("+15550001");
        if let Ok(m) = pdus::stored_from_submit(1, "sip:a@x", &from, &submit, 0, 60, 60) {
            let body = pdus::deliver(&m, 1, "+15559999").expect("a stored SMS delivers");
            let Ok(RpMessage::Data { tpdu, .. }) = RpMessage::decode(&body) else {
                panic!("our RP-DATA decodes")
            };
            let Ok(Tpdu::Deliver(d)) = Tpdu::decode(&tpdu, Direction::NetworkToMs, false) else {
                panic!("our SMS-DELIVER decodes")
            };
            let mut again = Vec::new();
            d.user_data.encode(d.dcs, &mut again).expect("its user data encodes");
            assert_eq!(again, m.ud, "the user data goes through unchanged");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = split(text, 255) {
            assert_eq!(s.parts.concat(), text, "the parts make the text");
        }
    }
});
