use super::*;

fn lab_notification() -> Notification {
    Notification {
        transaction_id: "m5-0".into(),
        version: VERSION_1_2,
        from: Some("+4100/TYPE=PLMN".into()),
        subject: Some("Sale".into()),
        class: MessageClass::Personal,
        size: 13,
        expiry: Expiry::Relative(86_400),
        content_location: "http://127.0.0.1:8084/ums/v1/media/ab".into(),
    }
}

/// Every octet, with the clause of OMA-TS-MMS_ENC-V1_3 that puts it there.
#[test]
fn a_notification_byte_for_byte() {
    let n = lab_notification();
    let b = n.encode().unwrap();
    let mut want: Vec<u8> = vec![
        // §7.3.30 X-Mms-Message-Type (0x0C|0x80) = m-notification-ind (130).
        0x8c, 0x82, // §7.3.63 X-Mms-Transaction-ID (0x18|0x80): Text-string "m5-0" NUL.
        0x98, b'm', b'5', b'-', b'0', 0x00,
        // §7.3.34 X-Mms-MMS-Version (0x0D|0x80): Short-integer 1.2 = 0x12|0x80.
        0x8d, 0x92,
        // §7.3.21 From (0x09|0x80): Value-length 17, Address-present-token 0x80, then the
        // Encoded-string-value as a Text-string (§7.2.9).
        0x89, 0x11, 0x80,
    ];
    want.extend_from_slice(b"+4100/TYPE=PLMN\0");
    // §7.3.58 Subject (0x16|0x80): Encoded-string-value, US-ASCII as a Text-string.
    want.push(0x96);
    want.extend_from_slice(b"Sale\0");
    // §7.3.27 X-Mms-Message-Class (0x0A|0x80) = Personal (128).
    want.extend_from_slice(&[0x8a, 0x80]);
    // §7.3.36 X-Mms-Message-Size (0x0E|0x80): Long-integer, Short-length 1, 13.
    want.extend_from_slice(&[0x8e, 0x01, 0x0d]);
    // §7.3.20 X-Mms-Expiry (0x08|0x80): Value-length 5, Relative-token 0x81, Delta-seconds as
    // a Long-integer: 3 octets, 86400 = 0x015180.
    want.extend_from_slice(&[0x88, 0x05, 0x81, 0x03, 0x01, 0x51, 0x80]);
    // §7.3.10 X-Mms-Content-Location (0x03|0x80): Uri-value, a Text-string.
    want.push(0x83);
    want.extend_from_slice(b"http://127.0.0.1:8084/ums/v1/media/ab\0");
    assert_eq!(b, want);
    assert_eq!(Notification::decode(&b).unwrap(), n);
    assert_eq!(n.from_number(), Some("+4100"));
}

/// A Korean subject: Value-length 9, Char-set UTF-8 (106 = 0x6A as a Short-integer, 0xEA),
/// then a Text-string: Quote 0x7F (its first octet is over 127, WAP-230 §8.4.2.1), the UTF-8
/// octets and NUL (§7.2.9). A From longer than 30 octets takes Length-quote 31 and
/// a uintvar (WAP-230 §8.4.2.2); MMS 1.3 is 0x93; no subject, no field.
#[test]
fn a_utf8_subject_a_long_from_and_version_1_3() {
    let mut n = lab_notification();
    n.subject = Some("세일".into());
    n.version = VERSION_1_3;
    n.from = Some(format!("+{}/TYPE=PLMN", "1".repeat(30)));
    let b = n.encode().unwrap();
    let at = b.iter().position(|x| *x == 0x96).unwrap();
    assert_eq!(
        &b[at..at + 12],
        &[0x96, 0x09, 0xea, 0x7f, 0xec, 0x84, 0xb8, 0xec, 0x9d, 0xbc, 0x00, 0x8a]
    );
    assert_eq!(&b[8..10], &[0x8d, 0x93]);
    // From: 0x89, 31, uintvar 43 (0x80, 31 + 11 octets of text, NUL).
    assert_eq!(&b[10..14], &[0x89, 0x1f, 0x2b, 0x80]);
    assert_eq!(Notification::decode(&b).unwrap(), n);
    n.subject = None;
    n.from = None;
    let b = n.encode().unwrap();
    assert!(!b.contains(&0x96) && !b.contains(&0x89));
    assert_eq!(Notification::decode(&b).unwrap(), n);
    n.subject = Some(String::new());
    assert_eq!(Notification::decode(&n.encode().unwrap()).unwrap(), n);
}

#[test]
fn unknown_fields_are_stepped_over_and_missing_ones_refused() {
    let n = lab_notification();
    let mut b = n.encode().unwrap();
    // X-Mms-Priority (0x8F) normal (0x81), Date (0x85) Long-integer, an application header.
    b.extend_from_slice(&[0x8f, 0x81, 0x85, 0x02, 0x12, 0x34]);
    b.extend_from_slice(b"X-Lab\0yes\0");
    assert_eq!(Notification::decode(&b).unwrap(), n);
    let full = n.encode().unwrap();
    // Without the Content-Location (the last field).
    let cut = full.iter().rposition(|x| *x == 0x83).unwrap();
    assert_eq!(
        Notification::decode(&full[..cut]),
        Err(MmsError::Invalid("X-Mms-Content-Location missing".into()))
    );
    assert!(Notification::decode(&[0x8c, 0x80]).is_err(), "m-send-req");
    assert!(Notification::decode(&[0x98, 0]).is_err());
    assert!(Notification::decode(&[]).is_err());
    for i in 0..full.len() {
        // Every prefix fails cleanly (no panic), as does a flipped octet.
        let _ = Notification::decode(&full[..i]);
        let mut f = full.clone();
        f[i] ^= 0xff;
        let _ = Notification::decode(&f);
    }
    let mut long = n.clone();
    long.content_location = "x".repeat(MAX_TEXT + 1);
    assert!(matches!(long.encode(), Err(MmsError::TooLong(_))));
    let mut nul = n;
    nul.transaction_id = "a\0b".into();
    assert!(nul.encode().is_err());
}

/// Writes the fuzz seeds (run with RCSLAB_WRITE_MMS_CORPUS=DIR): a notification alone, in
/// its push, and the push as SMS user data.
#[test]
fn fuzz_seeds() {
    let Ok(dir) = std::env::var("RCSLAB_WRITE_MMS_CORPUS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let n = lab_notification().encode().unwrap();
    let push = crate::mms::Push::mms(1, n.clone()).encode().unwrap();
    let mut k = lab_notification();
    k.subject = Some("세일".into());
    k.from = None;
    let kpush = crate::mms::Push::mms(2, k.encode().unwrap())
        .encode()
        .unwrap();
    std::fs::write(dir.join("notification"), &n).unwrap();
    std::fs::write(dir.join("push"), &push).unwrap();
    std::fs::write(dir.join("push-utf8-subject"), &kpush).unwrap();
    let parts = crate::mms::bearer::short_messages(&push, 7).unwrap();
    std::fs::write(dir.join("sms-part-1"), &parts[0]).unwrap();
}
