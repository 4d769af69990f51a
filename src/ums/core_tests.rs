use super::*;

fn limits() -> Limits {
    Limits {
        max_recipients: 3,
        max_templates: 2,
        max_messages: 2,
        max_pending: 4,
    }
}

fn text(to: &[&str], t: &str) -> SendRequest {
    SendRequest {
        recipients: to.iter().map(|s| s.to_string()).collect(),
        text: Some(t.into()),
        ..SendRequest::default()
    }
}

fn templated(to: &str, id: &str, vars: &[(&str, &str)]) -> SendRequest {
    SendRequest {
        recipients: vec![to.into()],
        template: Some(TemplateRef {
            id: id.into(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
        ..SendRequest::default()
    }
}

fn webhooks(out: &[Output]) -> Vec<serde_json::Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Webhook(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_template_is_used_only_once_approved_and_only_with_its_variables() {
    let mut c = UmsCore::new(limits());
    c.add_template(1, "otp", "Your code is #{code}").unwrap();
    assert_eq!(
        c.add_template(1, "otp", "again").unwrap_err(),
        UmsError::Exists("otp".into())
    );
    let e = c
        .submit(
            2,
            "m1".into(),
            &templated("+15550002", "otp", &[("code", "1")]),
        )
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (403, "template_not_approved"));
    let e = c
        .submit(2, "m1".into(), &templated("+15550002", "nope", &[]))
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (404, "no_such_template"));
    assert_eq!(c.approve("otp").unwrap().status, TemplateStatus::Approved);
    for vars in [&[][..], &[("code", "1"), ("x", "2")][..]] {
        let e = c
            .submit(2, "m1".into(), &templated("+15550002", "otp", vars))
            .unwrap_err();
        assert_eq!(e.status(), 400, "{e:?}");
    }
    let mut both = templated("+15550002", "otp", &[("code", "1")]);
    both.text = Some("Your code is 1".into());
    assert_eq!(
        c.submit(2, "m1".into(), &both).unwrap_err().code(),
        "text_and_template"
    );
    let (m, out) = c
        .submit(
            2,
            "m1".into(),
            &templated("+15550002", "otp", &[("code", "1234")]),
        )
        .unwrap();
    assert_eq!(m.text, "Your code is 1234");
    assert_eq!(m.template.as_deref(), Some("otp"));
    assert_eq!(m.recipients[0].status, Status::Accepted);
    assert_eq!(out, vec![Output::Store("m1".into())]);
    c.add_template(1, "b", "b").unwrap();
    assert_eq!(c.add_template(1, "c", "c").unwrap_err().status(), 429);
}

#[test]
fn a_recipient_goes_accepted_sent_delivered_and_another_fails() {
    let mut c = UmsCore::new(limits());
    c.submit(1, "m1".into(), &text(&["+15550002", "+15550099"], "hi"))
        .unwrap();
    let a = c.next_submission().unwrap();
    let b = c.next_submission().unwrap();
    assert!(c.next_submission().is_none());
    assert_eq!((a.to.as_str(), a.text.as_str()), ("+15550002", "hi"));
    let out = c.submitted(2, &a.key, Ok("100".into()));
    assert_eq!(webhooks(&out)[0]["status"], "sent");
    c.submitted(2, &b.key, Ok("101".into()));
    // A second submit_sm_resp for the same recipient changes nothing.
    assert!(c.submitted(2, &a.key, Ok("102".into())).is_empty());
    let out = c.receipt(3, "100", true, String::new());
    let w = webhooks(&out);
    assert_eq!(w[0]["to"], "+15550002");
    assert_eq!(w[0]["status"], "delivered");
    assert_eq!(w[0]["channel"], "sms");
    c.receipt(3, "101", false, "stat:UNDELIV err:001".into());
    // A receipt once final, or for an id nobody waits on, is ignored.
    assert!(c.receipt(4, "100", false, "late".into()).is_empty());
    assert!(c.receipt(4, "999", true, String::new()).is_empty());
    let m = c.message("m1").unwrap();
    assert_eq!(m.recipients[0].status, Status::Delivered);
    assert_eq!(m.recipients[1].status, Status::Failed);
    assert_eq!(m.recipients[1].detail, "stat:UNDELIV err:001");
    assert!(m.is_final());
    assert_eq!(c.load(), (0, 0));
}

#[test]
fn a_refusal_fails_a_throttle_retries_and_a_lost_session_requeues() {
    let mut c = UmsCore::new(limits());
    c.submit(1, "m1".into(), &text(&["+15550002", "+15550003"], "hi"))
        .unwrap();
    let a = c.next_submission().unwrap();
    let out = c.submitted(2, &a.key, Err((false, "ESME_RINVDSTADR".into())));
    assert_eq!(webhooks(&out)[0]["status"], "failed");
    let b = c.next_submission().unwrap();
    for _ in 0..MAX_ATTEMPTS - 1 {
        assert!(c
            .submitted(2, &b.key, Err((true, "throttled".into())))
            .is_empty());
        assert_eq!(c.next_submission().unwrap().key, b.key);
    }
    c.connection_lost();
    assert_eq!(c.next_submission().unwrap().key, b.key);
    let out = c.submitted(2, &b.key, Err((true, "throttled".into())));
    assert_eq!(webhooks(&out)[0]["detail"], "throttled");
    assert!(c.message("m1").unwrap().is_final());
}

#[test]
fn bad_input_and_bounds_are_refused() {
    let mut c = UmsCore::new(limits());
    let e = c
        .submit(1, "m".into(), &text(&["+15550002", "12345", "bob"], "x"))
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(
        e.to_string().contains("'12345'") && e.to_string().contains("'bob'"),
        "{e}"
    );
    assert!(!e.to_string().contains("15550002"), "{e}");
    assert_eq!(
        c.submit(1, "m".into(), &text(&["+1", "+2", "+3", "+4"], "x"))
            .unwrap_err()
            .code(),
        "too_many_recipients"
    );
    assert_eq!(
        c.submit(1, "m".into(), &text(&["+1"], &"a".repeat(2001)))
            .unwrap_err()
            .code(),
        "text_too_long"
    );
    let mut r = text(&["+1"], &"a".repeat(161));
    r.channel = Some("sms".into());
    assert_eq!(
        c.submit(1, "m".into(), &r).unwrap_err().code(),
        "too_long_for_sms"
    );
    r.channel = Some("rcs".into());
    assert_eq!(
        c.submit(1, "m".into(), &r).unwrap_err().code(),
        "channel_unavailable"
    );
    r.channel = Some("fax".into());
    assert_eq!(
        c.submit(1, "m".into(), &r).unwrap_err().code(),
        "bad_channel"
    );
    // Channel by length: 160 GSM 7-bit characters are one SMS, 161 an LMS; 70 UCS-2 / 71.
    r.channel = None;
    let (m, _) = c.submit(1, "l".into(), &r).unwrap();
    assert_eq!(m.recipients[0].channel, Channel::Lms);
    assert!(fits_one_sms(&"a".repeat(160)));
    assert!(fits_one_sms(&"가".repeat(70)) && !fits_one_sms(&"가".repeat(71)));
    assert!(
        !fits_one_sms(&"€".repeat(81)),
        "an extension character takes two septets"
    );
    assert!(!valid_number("+0123") && !valid_number("+1234567890123456"));
    // Pending bound: 1 waiting, 4 at most.
    assert_eq!(
        c.submit(1, "p".into(), &text(&["+1", "+2", "+2"], "x"))
            .map(|(m, _)| m.recipients.len()),
        Ok(2),
        "duplicates count once"
    );
    assert_eq!(
        c.submit(1, "q".into(), &text(&["+5", "+6"], "x"))
            .unwrap_err()
            .code(),
        "too_many_pending"
    );
}

#[test]
fn the_oldest_final_message_goes_and_a_restore_requeues_what_was_not_sent() {
    let mut c = UmsCore::new(limits());
    c.submit(1, "m1".into(), &text(&["+1"], "a")).unwrap();
    c.submit(2, "m2".into(), &text(&["+2"], "b")).unwrap();
    let s = c.next_submission().unwrap();
    c.submitted(3, &s.key, Ok("7".into()));
    c.receipt(4, "7", true, String::new());
    let (_, out) = c.submit(5, "m3".into(), &text(&["+3"], "c")).unwrap();
    assert!(out.contains(&Output::Forget("m1".into())), "{out:?}");
    assert!(c.message("m1").is_err());
    let s = c.next_submission().unwrap();
    assert_eq!(s.key.message, "m2");
    c.submitted(6, &s.key, Ok("8".into()));
    let kept = vec![
        c.message("m2").unwrap().clone(),
        c.message("m3").unwrap().clone(),
    ];
    let mut r = UmsCore::restore(limits(), Vec::new(), kept);
    assert_eq!(r.load(), (2, 1));
    assert_eq!(r.next_submission().unwrap().key.message, "m3");
    let out = r.receipt(7, "8", true, String::new());
    assert_eq!(webhooks(&out)[0]["message_id"], "m2");
}
