//! MMS notifications (src/mms/): a WAP Push PDU (WAP-230 WSP §8.2.4.1) and the
//! M-Notification.ind it carries (OMA-TS-MMS_ENC-V1_3), and SMS user data with the port
//! header. Nothing panics; what decodes encodes to octets that decode the same; a push cut
//! into SMS parts comes back whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::mms::bearer::{self, Reassembler};
use rcslab::mms::{Notification, Push};
use rcslab::sms::user_data::parse_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Push::decode(data) {
        if let Ok(b) = p.encode() {
            assert_eq!(Push::decode(&b).expect("our own push decodes"), p, "push round trip");
        }
        if let Ok(n) = Notification::decode(&p.body) {
            let b = n.encode().expect("what decodes encodes");
            assert_eq!(
                Notification::decode(&b).expect("our own notification decodes"),
                n,
                "notification round trip"
            );
        }
    }
    if let Ok(n) = Notification::decode(data) {
        let b = n.encode().expect("what decodes encodes");
        assert_eq!(Notification::decode(&b).expect("ours decodes"), n);
    }
    if let Ok(parts) = bearer::short_messages(data, data.first().copied().unwrap_or(0)) {
        let mut r = Reassembler::new(4, std::time::Duration::from_secs(60));
        let now = std::time::Instant::now();
        let mut whole = None;
        for p in parts.iter().rev() {
            assert!(p.len() <= 140);
            let n = usize::from(p[0]);
            let h = parse_header(&p[1..1 + n]).expect("our header parses");
            assert!(bearer::is_push(&h));
            whole = r.add(now, "x", &h, &p[1 + n..]);
        }
        assert_eq!(whole.as_deref(), Some(data), "the parts make the push");
    }
});
