use super::super::{Limits, Message, SendRequest, UmsCore};
use super::*;

fn core(rcs: Option<u64>) -> UmsCore {
    let mut c = UmsCore::new(Limits {
        max_recipients: 10,
        max_templates: 2,
        max_messages: 10,
        max_pending: 100,
    });
    c.set_rcs(0, rcs);
    c
}

fn req(to: &[&str], channel: &str, suggestions: &[&str]) -> SendRequest {
    SendRequest {
        recipients: to.iter().map(|s| s.to_string()).collect(),
        text: Some("Your parcel arrives today".into()),
        channel: Some(channel.into()),
        suggestions: suggestions.iter().map(|s| s.to_string()).collect(),
        ..SendRequest::default()
    }
}

/// A core restored from message `id` of `c`, as after a restart.
fn restarted(c: &UmsCore, id: &str) -> UmsCore {
    let kept: Vec<Message> = vec![c.message(id).unwrap().clone()];
    UmsCore::restore(
        Limits {
            max_recipients: 10,
            max_templates: 2,
            max_messages: 10,
            max_pending: 100,
        },
        Vec::new(),
        kept,
    )
}

fn recipient(c: &UmsCore, id: &str, i: usize) -> super::super::Recipient {
    c.message(id).unwrap().recipients[i].clone()
}

fn statuses(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Webhook(v) => Some(v["status"].as_str().unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn auto_asks_rcs_first_and_a_phone_without_chat_gets_sms_at_once() {
    let mut c = core(Some(10));
    c.submit(1, "m1".into(), &req(&["+15550002"], "auto", &["Yes", "No"]))
        .unwrap();
    assert_eq!(recipient(&c, "m1", 0).channel, Channel::Rcs);
    assert_eq!(c.next_submission(), None, "nothing for the SMS centre yet");
    let job = c.next_rcs().unwrap();
    assert_eq!(job.to, "+15550002");
    assert_eq!(job.suggestions, ["Yes", "No"]);
    let out = c.rcs_unreachable(2, &job.key, "OPTIONS 480 Temporarily Unavailable".into());
    assert!(
        statuses(&out).is_empty(),
        "not a fallback: chat was never sent"
    );
    let r = recipient(&c, "m1", 0);
    assert_eq!(
        (r.channel, r.status, r.fell_back),
        (Channel::Sms, Status::Accepted, false)
    );
    assert_eq!(
        r.detail,
        "not reachable over RCS: OPTIONS 480 Temporarily Unavailable"
    );
    let s = c.next_submission().unwrap();
    assert_eq!(s.to, "+15550002");
}

#[test]
fn chat_not_reported_in_time_falls_back_once_and_a_late_report_changes_nothing() {
    let mut c = core(Some(10));
    c.submit(1, "m1".into(), &req(&["+15550003"], "auto", &[]))
        .unwrap();
    let job = c.next_rcs().unwrap();
    let out = c.rcs_sent(2, &job.key, "chat-1".into());
    assert_eq!(statuses(&out), ["sent"]);
    assert!(c.tick(11).is_empty(), "not yet: 2 + 10 s");
    assert_eq!(c.next_revoke(), None);
    // Due: the chat message is revoked first (no fallback yet).
    let out = c.tick(12);
    assert!(statuses(&out).is_empty(), "{out:?}");
    assert_eq!(
        c.next_revoke(),
        Some(("+15550003".to_string(), "chat-1".to_string()))
    );
    assert_eq!(c.next_revoke(), None, "asked once");
    let r = recipient(&c, "m1", 0);
    assert_eq!((r.channel, r.status), (Channel::Rcs, Status::Sent));
    assert_eq!(
        r.detail,
        "no RCS delivery report within 10 s: revoking the chat message"
    );
    let out = c.rcs_revoked(13, "chat-1", true);
    assert_eq!(statuses(&out), ["fell_back"]);
    let r = recipient(&c, "m1", 0);
    assert_eq!(
        (r.channel, r.status, r.fell_back, r.revoking_until),
        (Channel::Sms, Status::Accepted, true, None)
    );
    let why = "no RCS delivery report within 10 s; the chat message was revoked";
    assert_eq!(r.detail, why);
    assert!(c.tick(30).is_empty(), "the revocation's deadline is void");
    // The chat was delivered after all, late: the SMS is on its way, nothing changes.
    assert!(c.rcs_report(14, "chat-1", ImdnStatus::Delivered).is_empty());
    let s = c.next_submission().unwrap();
    c.submitted(15, &s.key, Ok("smsc-1".into()));
    c.receipt(16, "smsc-1", true, String::new());
    let r = recipient(&c, "m1", 0);
    assert_eq!(
        (r.channel, r.status, r.fell_back),
        (Channel::Sms, Status::Delivered, true)
    );
    assert_eq!(r.detail, why, "why it fell back is kept");
    assert_eq!(c.load(), (0, 0));
}

#[test]
fn a_chat_that_cannot_be_revoked_does_not_fall_back_and_its_imdn_still_counts() {
    let mut c = core(Some(10));
    c.submit(1, "m1".into(), &req(&["+15550003"], "auto", &[]))
        .unwrap();
    let job = c.next_rcs().unwrap();
    c.rcs_sent(2, &job.key, "chat-1".into());
    c.tick(12);
    assert!(c.next_revoke().is_some());
    let out = c.rcs_revoked(13, "chat-1", false);
    assert!(statuses(&out).is_empty());
    let r = recipient(&c, "m1", 0);
    assert_eq!(
        (r.channel, r.status, r.revoking_until),
        (Channel::Rcs, Status::Sent, None)
    );
    assert!(r.detail.contains("not revoked"), "{}", r.detail);
    assert!(c.tick(100).is_empty(), "no fallback for good");
    assert_eq!(c.next_submission(), None);
    assert_eq!(
        statuses(&c.rcs_report(101, "chat-1", ImdnStatus::Delivered)),
        ["delivered"]
    );
}

#[test]
fn a_revocation_without_an_outcome_or_not_taken_falls_back_anyway() {
    let mut c = core(Some(10));
    c.submit(
        1,
        "m1".into(),
        &req(&["+15550002", "+15550003"], "auto", &[]),
    )
    .unwrap();
    let (a, b) = (c.next_rcs().unwrap(), c.next_rcs().unwrap());
    c.rcs_sent(2, &a.key, "chat-a".into());
    c.rcs_sent(2, &b.key, "chat-b".into());
    c.tick(12);
    assert!(c.next_revoke().is_some() && c.next_revoke().is_some());
    // b's request got no 2xx: SMS now.
    assert_eq!(
        statuses(&c.rcs_revoke_unsent(13, "chat-b", "no 2xx to its MESSAGE")),
        ["fell_back"]
    );
    assert!(recipient(&c, "m1", 1).detail.contains("may still arrive"));
    // a's outcome never comes: SMS at 12 + REVOKE_WAIT_SECS.
    assert!(c.tick(12 + REVOKE_WAIT_SECS - 1).is_empty());
    assert_eq!(statuses(&c.tick(12 + REVOKE_WAIT_SECS)), ["fell_back"]);
    let r = recipient(&c, "m1", 0);
    assert_eq!((r.channel, r.fell_back), (Channel::Sms, true));
    assert!(
        r.detail.contains("no answer to the revocation"),
        "{}",
        r.detail
    );
    // A late outcome changes nothing.
    assert!(c.rcs_revoked(40, "chat-a", true).is_empty());
}

#[test]
fn delivered_then_read_over_rcs_and_a_failed_imdn_falls_back() {
    let mut c = core(Some(10));
    c.submit(
        1,
        "m1".into(),
        &req(&["+15550002", "+15550003"], "auto", &[]),
    )
    .unwrap();
    let a = c.next_rcs().unwrap();
    let b = c.next_rcs().unwrap();
    c.rcs_sent(2, &a.key, "chat-a".into());
    c.rcs_sent(2, &b.key, "chat-b".into());
    assert_eq!(
        statuses(&c.rcs_report(3, "chat-a", ImdnStatus::Delivered)),
        ["delivered"]
    );
    assert_eq!(c.load().0, 1, "delivered is final");
    assert_eq!(
        statuses(&c.rcs_report(4, "chat-a", ImdnStatus::Displayed)),
        ["read"]
    );
    assert_eq!(c.load().0, 1, "read does not count twice");
    assert!(!c.rcs_knows("chat-a"), "nothing more is expected about it");
    assert_eq!(
        statuses(&c.rcs_report(5, "chat-b", ImdnStatus::Failed)),
        ["fell_back"]
    );
    assert!(c.tick(100).is_empty(), "its deadline is void");
    assert_eq!(c.next_submission().unwrap().to, "+15550003");
}

#[test]
fn rcs_only_fails_without_chat_and_is_refused_while_rcs_is_off() {
    let mut c = core(None);
    let e = c
        .submit(1, "m1".into(), &req(&["+15550002"], "rcs", &[]))
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "channel_unavailable"));
    // Off, auto is SMS straight away.
    c.submit(1, "m1".into(), &req(&["+15550002"], "auto", &[]))
        .unwrap();
    assert_eq!(recipient(&c, "m1", 0).channel, Channel::Sms);
    c.set_rcs(2, Some(10));
    c.submit(3, "m2".into(), &req(&["+15550002"], "rcs", &[]))
        .unwrap();
    let job = c.next_rcs().unwrap();
    let out = c.rcs_unreachable(4, &job.key, "OPTIONS 404 Not Found".into());
    assert_eq!(statuses(&out), ["failed"]);
    // RCS-only sent chat never falls back.
    c.submit(5, "m3".into(), &req(&["+15550002"], "rcs", &[]))
        .unwrap();
    let job = c.next_rcs().unwrap();
    c.rcs_sent(6, &job.key, "chat-3".into());
    assert!(c.tick(1000).is_empty());
    assert_eq!(recipient(&c, "m3", 0).status, Status::Sent);
}

#[test]
fn rcs_going_off_sends_what_waits_as_sms() {
    let mut c = core(Some(10));
    c.submit(1, "m1".into(), &req(&["+15550002"], "auto", &[]))
        .unwrap();
    c.set_rcs(2, None);
    assert_eq!(c.rcs_waiting(), 0);
    let r = recipient(&c, "m1", 0);
    assert_eq!(
        (r.channel, r.detail.as_str()),
        (Channel::Sms, "not reachable over RCS: RCS is off")
    );
    assert!(c.next_submission().is_some());
}

#[test]
fn a_restart_keeps_waiting_chats_and_their_deadlines() {
    let mut c = core(Some(10));
    c.submit(
        1,
        "m1".into(),
        &req(&["+15550002", "+15550003"], "auto", &[]),
    )
    .unwrap();
    let a = c.next_rcs().unwrap();
    c.rcs_sent(2, &a.key, "chat-a".into());
    let mut c = restarted(&c, "m1");
    c.set_rcs(3, Some(10));
    assert!(c.rcs_knows("chat-a"));
    assert_eq!(c.next_rcs().unwrap().to, "+15550003", "asked again");
    c.tick(12);
    assert_eq!(c.next_revoke().map(|r| r.1).as_deref(), Some("chat-a"));
    // Restarted while revoking: the outcome is not awaited for longer than it would have been.
    let mut c = restarted(&c, "m1");
    c.set_rcs(13, Some(10));
    assert!(c.tick(12 + REVOKE_WAIT_SECS - 1).is_empty());
    assert_eq!(statuses(&c.tick(12 + REVOKE_WAIT_SECS)), ["fell_back"]);
}

#[test]
fn suggestions_are_bounded_as_rcc07_says() {
    let mut c = core(Some(10));
    let many: Vec<&str> = vec!["x"; 12];
    let e = c
        .submit(1, "m1".into(), &req(&["+15550002"], "auto", &many))
        .unwrap_err();
    assert_eq!(e.code(), "too_many_suggestions");
    let e = c
        .submit(
            1,
            "m1".into(),
            &req(
                &["+15550002"],
                "auto",
                &["a reply much longer than 25 chars"],
            ),
        )
        .unwrap_err();
    assert_eq!(e.code(), "bad_suggestion");
}

#[test]
fn a_delivered_chat_never_read_is_forgotten_with_its_message() {
    let mut c = UmsCore::new(Limits {
        max_recipients: 10,
        max_templates: 2,
        max_messages: 1,
        max_pending: 100,
    });
    c.set_rcs(0, Some(10));
    c.submit(1, "m1".into(), &req(&["+15550002"], "auto", &[]))
        .unwrap();
    let job = c.next_rcs().unwrap();
    c.rcs_sent(2, &job.key, "chat-1".into());
    c.rcs_report(3, "chat-1", ImdnStatus::Delivered);
    assert!(c.rcs_knows("chat-1"), "displayed may still come");
    c.submit(4, "m2".into(), &req(&["+15550002"], "auto", &[]))
        .unwrap();
    assert!(!c.rcs_knows("chat-1"), "gone with m1");
}

#[test]
fn media_go_as_a_file_transfer_first_and_as_mms_when_it_does_not_deliver() {
    let mut c = core(Some(10));
    let media = SendRequest {
        recipients: vec!["+15550002".into()],
        media: Some("img1".into()),
        ..SendRequest::default()
    };
    c.submit(1, "m1".into(), &media).unwrap();
    let r = recipient(&c, "m1", 0);
    assert_eq!((r.channel, r.fallback), (Channel::Rcs, Some(Channel::Mms)));
    let job = c.next_rcs().unwrap();
    assert_eq!(job.media.as_deref(), Some("img1"));
    c.rcs_sent(2, &job.key, "ft-1".into());
    c.tick(12);
    assert!(c.next_revoke().is_some());
    assert_eq!(statuses(&c.rcs_revoked(13, "ft-1", true)), ["fell_back"]);
    let s = c.next_submission().unwrap();
    assert_eq!(s.media.as_deref(), Some("img1"));
    assert_eq!(recipient(&c, "m1", 0).channel, Channel::Mms);
    // RCS only: no MMS behind it; RCS off: MMS at once.
    let only = SendRequest {
        channel: Some("rcs".into()),
        ..media.clone()
    };
    c.submit(3, "m2".into(), &only).unwrap();
    let r = recipient(&c, "m2", 0);
    assert_eq!((r.channel, r.fallback), (Channel::Rcs, None));
    let mut off = core(None);
    off.submit(1, "m3".into(), &media).unwrap();
    assert_eq!(recipient(&off, "m3", 0).channel, Channel::Mms);
}
