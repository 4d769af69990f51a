//! Chat INVITEs in the core, with a fake clock: our INVITE given up after [`INVITE_WAIT`] or
//! answered in time (what waited for it then goes, in order); an incoming INVITE answered at
//! once, or held for the application and then accepted, declined, cancelled, replaced or
//! refused when the client closes.

use std::time::{Duration, Instant};

use super::super::tests::{
    core, dialog, drain, events, msrp_cpims, pending_invite, send, up, BOB, BOB_URI, ME, MY_URI,
};
use super::super::{ChatCore, Input, Output};
use super::{IncomingInvite, InviteInfo};
use crate::cpim::{Cpim, ImdnStatus};
use crate::rcs::{self, Content};
use crate::ue::chat::{ChatEvent, ChatOptions, SessionStatus, INVITE_WAIT};

/// Bob's first message, asking for both reports.
fn bobs_first(id: &str) -> Cpim {
    rcs::text_message(BOB, ME, id, "hi alice", Some("positive-delivery, display"))
}

fn invite(c: &mut ChatCore, now: Instant, tx: u64, call_id: &str, first: Option<Cpim>) {
    c.handle(
        now,
        Input::Invite {
            tx: IncomingInvite(tx),
            peer: BOB.into(),
            call_id: call_id.into(),
            first,
            info: InviteInfo {
                request_uri: ME.into(),
                subject: Some("hello".into()),
                conversation_id: Some("conv-1".into()),
                contribution_id: Some("contrib-1".into()),
            },
        },
    );
}

fn holding() -> ChatCore {
    core(ChatOptions {
        hold_invites: true,
        auto_delivered: false,
        ..ChatOptions::default()
    })
}

fn refused(tx: u64, status: u16, reason: &'static str) -> Output {
    Output::Refuse {
        tx: IncomingInvite(tx),
        status,
        reason,
    }
}

fn session(status: SessionStatus, reason: &str) -> Output {
    Output::Event(ChatEvent::Session {
        peer: BOB.into(),
        status,
        reason: reason.into(),
    })
}

#[test]
fn our_invite_never_answered_is_cancelled_after_invite_wait() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    send(&mut c, t0, "m2", "queued");
    let out = drain(&mut c);
    let [Output::Invite { invite, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    let invite = *invite;
    assert_eq!(c.poll_timeout(), Some(t0 + INVITE_WAIT));
    c.handle_timeout(t0 + INVITE_WAIT - Duration::from_millis(1));
    assert_eq!(drain(&mut c), Vec::new(), "not yet");
    c.handle_timeout(t0 + INVITE_WAIT);
    assert_eq!(
        drain(&mut c),
        vec![Output::CancelInvite {
            invite,
            reason: "No answer within 10s".into(),
        }]
    );
    assert_eq!(c.poll_timeout(), None, "given up once");
    c.handle_timeout(t0 + INVITE_WAIT * 2);
    assert_eq!(drain(&mut c), Vec::new());
    // The driver CANCELs and reports the 408 it ends with: the first message and the one
    // queued behind it fail, then the session.
    let reason = "INVITE answered 408 No answer within 10s".to_string();
    c.handle(
        t0 + INVITE_WAIT + Duration::from_secs(2),
        Input::SessionFailed {
            peer: BOB.into(),
            reason: reason.clone(),
            invite: Some(invite),
        },
    );
    let failed = |id: &str| {
        Output::Event(ChatEvent::SendFailed {
            message_id: id.into(),
            reason: reason.clone(),
        })
    };
    assert_eq!(
        drain(&mut c),
        vec![
            failed("m1"),
            failed("m2"),
            session(SessionStatus::Failed, &reason)
        ]
    );
    assert!(!c.is_up(BOB));
}

#[test]
fn our_invite_answered_in_time_flushes_what_waited_in_order() {
    let mut c = core(ChatOptions {
        auto_delivered: false,
        ..ChatOptions::default()
    });
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    // While the INVITE is out: two more messages, and a report on a message Bob sent us in a
    // SIP MESSAGE meanwhile.
    send(&mut c, t0 + Duration::from_secs(1), "m2", "second");
    send(&mut c, t0 + Duration::from_secs(2), "m3", "third");
    c.handle(
        t0,
        Input::Cpim {
            peer: BOB.into(),
            cpim: bobs_first("b1"),
        },
    );
    drain(&mut c);
    c.handle(
        t0 + Duration::from_secs(3),
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Delivered,
        },
    );
    assert_eq!(
        drain(&mut c),
        Vec::new(),
        "all held while the INVITE is out"
    );
    let t_up = t0 + Duration::from_secs(4);
    let out = up(&mut c, t_up);
    assert_eq!(
        events(&out),
        vec![ChatEvent::Session {
            peer: BOB.into(),
            status: SessionStatus::Accepted,
            reason: String::new(),
        }]
    );
    assert!(
        matches!(&out[0], Output::Event(_)),
        "accepted first: {out:?}"
    );
    let sent: Vec<(Option<String>, Content)> = msrp_cpims(&out)
        .iter()
        .map(|c| (c.message_id().map(str::to_string), rcs::content(c)))
        .collect();
    assert_eq!(sent.len(), 3, "{out:?}");
    assert_eq!(sent[0], (Some("m2".into()), Content::Text("second".into())));
    assert_eq!(sent[1], (Some("m3".into()), Content::Text("third".into())));
    let Content::Imdn(report) = &sent[2].1 else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (report.message_id.as_str(), report.status),
        ("b1", ImdnStatus::Delivered)
    );
    for o in &out[1..] {
        let Output::Msrp { peer, msg } = o else {
            panic!("{out:?}")
        };
        assert_eq!(peer, BOB);
        assert_eq!(
            (msg.header("To-Path"), msg.header("From-Path")),
            (Some(BOB_URI), Some(MY_URI))
        );
    }
    // Only the MSRP transactions' timer runs now: the INVITE's wait ended with its answer.
    assert_eq!(
        c.poll_timeout(),
        Some(t_up + crate::ue::chat::MSRP_TRANSACTION_TIMEOUT)
    );
    assert_eq!(pending_invite(&c), None);
    c.handle_timeout(t0 + INVITE_WAIT);
    assert_eq!(drain(&mut c), Vec::new(), "no CANCEL after the answer");
}

#[test]
fn an_invite_not_held_is_shown_and_answered_at_once() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    invite(&mut c, t0, 7, "call-b", Some(bobs_first("b1")));
    let out = drain(&mut c);
    assert_eq!(
        events(&out),
        vec![ChatEvent::Message {
            from: BOB.into(),
            text: "hi alice".into(),
            message_id: "b1".into(),
        }]
    );
    let [_, Output::Answer { tx, peer, imdn }] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!((*tx, peer.as_str()), (IncomingInvite(7), BOB));
    let (about, doc) = imdn.as_ref().expect("delivered, before the 200");
    assert_eq!(about, "b1");
    let Content::Imdn(i) = rcs::content(&Cpim::parse(doc).unwrap()) else {
        panic!()
    };
    assert_eq!(i.status, ImdnStatus::Delivered);
    assert_eq!(c.poll_timeout(), None, "an incoming INVITE arms no timer");
    // A message sent before the binding completes waits for it.
    send(&mut c, t0, "a1", "hello bob");
    assert_eq!(drain(&mut c), Vec::new());
    let out = up(&mut c, t0 + Duration::from_secs(1));
    assert_eq!(msrp_cpims(&out)[0].message_id(), Some("a1"));
}

#[test]
fn a_held_invite_waits_for_the_application_then_is_accepted() {
    let mut c = holding();
    let t0 = Instant::now();
    let first = bobs_first("b1");
    let datetime = first.header("DateTime").map(str::to_string);
    assert!(datetime.is_some());
    invite(&mut c, t0, 1, "call-b", Some(first));
    assert_eq!(
        drain(&mut c),
        vec![Output::Event(ChatEvent::Invited {
            from: BOB.into(),
            request_uri: ME.into(),
            subject: Some("hello".into()),
            message_id: "b1".into(),
            text: Some("hi alice".into()),
            datetime,
            conversation_id: Some("conv-1".into()),
            contribution_id: Some("contrib-1".into()),
        })],
        "held: no answer yet, no Message event"
    );
    assert_eq!(c.poll_timeout(), None, "held without a timer of ours");
    // Accepting someone else's does nothing.
    c.handle(
        t0,
        Input::Accept {
            peer: "sip:carol@ims.lab".into(),
            delivered: true,
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    c.handle(
        t0 + Duration::from_secs(5),
        Input::Accept {
            peer: BOB.into(),
            delivered: true,
        },
    );
    let out = drain(&mut c);
    let [Output::Answer { tx, imdn, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*tx, IncomingInvite(1));
    assert_eq!(imdn.as_ref().map(|(a, _)| a.as_str()), Some("b1"));
    // Accepted once: a second accept finds nothing held.
    c.handle(
        t0,
        Input::Accept {
            peer: BOB.into(),
            delivered: true,
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    // "displayed", asked before the session is up, waits for it.
    c.handle(
        t0,
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Displayed,
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    c.handle(
        t0,
        Input::SessionUp {
            peer: BOB.into(),
            invite: None,
            my_uri: MY_URI.into(),
            peer_uri: BOB_URI.into(),
            dialog: dialog(),
        },
    );
    let out = drain(&mut c);
    let reports: Vec<Content> = msrp_cpims(&out).iter().map(rcs::content).collect();
    assert!(
        matches!(&reports[..], [Content::Imdn(i)] if i.message_id == "b1" && i.status == ImdnStatus::Displayed),
        "{out:?}"
    );
}

#[test]
fn a_held_invite_declined_forgets_its_first_message() {
    let mut c = holding();
    let t0 = Instant::now();
    invite(&mut c, t0, 1, "call-b", Some(bobs_first("b1")));
    drain(&mut c);
    c.handle(t0, Input::Decline { peer: BOB.into() });
    assert_eq!(
        drain(&mut c),
        vec![
            refused(1, 603, "Decline"),
            session(SessionStatus::Declined, "603 Decline")
        ]
    );
    // Nothing is reported on a message of a declined session.
    c.handle(
        t0,
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Delivered,
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    c.handle(t0, Input::Decline { peer: BOB.into() });
    assert_eq!(drain(&mut c), Vec::new(), "declined once");
}

#[test]
fn a_held_invite_is_cancelled_replaced_or_refused_when_the_client_closes() {
    let mut c = holding();
    let t0 = Instant::now();
    invite(&mut c, t0, 1, "call-1", None);
    drain(&mut c);
    // A newer INVITE from the same peer replaces the one still waiting (487).
    invite(&mut c, t0, 2, "call-2", None);
    let out = drain(&mut c);
    assert!(
        matches!(&out[..], [Output::Event(ChatEvent::Invited { .. }), o] if *o == refused(1, 487, "Request Terminated")),
        "{out:?}"
    );
    // RFC 3261 §9.2: a CANCEL for another dialog changes nothing; one for the held INVITE
    // ends it with 487.
    c.handle(
        t0,
        Input::Cancel {
            call_id: "call-1".into(),
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    c.handle(
        t0,
        Input::Cancel {
            call_id: "call-2".into(),
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![
            refused(2, 487, "Request Terminated"),
            session(SessionStatus::Closed, "CANCEL")
        ]
    );
    // The client closes: what is still held gets 480.
    invite(&mut c, t0, 3, "call-3", None);
    drain(&mut c);
    assert!(c.close_all().is_empty());
    assert_eq!(
        drain(&mut c),
        vec![refused(3, 480, "Temporarily Unavailable")]
    );
    c.handle(t0, Input::Decline { peer: BOB.into() });
    assert_eq!(drain(&mut c), Vec::new(), "nothing held any more");
}
