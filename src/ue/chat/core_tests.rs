//! The chat core driven with a fake clock (time passed in, no sockets, no tokio): what goes
//! into the INVITE, what goes over MSRP, how IMDNs (RFC 5438) update a message's status, what
//! a refused INVITE does, and the RFC 4975 §7.1.1 transaction timeout. Incoming INVITEs and
//! the wait for the answer to ours: `core/invites_tests.rs`, with the helpers here.

use std::time::{Duration, Instant};

use super::*;
use crate::ue::chat::INVITE_WAIT;

pub(super) const ME: &str = "sip:alice@ims.lab";
pub(super) const BOB: &str = "sip:bob@ims.lab";
pub(super) const MY_URI: &str = "msrp://127.0.0.1:9/alice1;tcp";
pub(super) const BOB_URI: &str = "msrp://127.0.0.1:2855/relay1;tcp";

pub(super) fn core(opts: ChatOptions) -> ChatCore {
    ChatCore::new(ME.into(), opts)
}

pub(super) fn drain(c: &mut ChatCore) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

pub(super) fn text(id: &str, body: &str) -> Vec<u8> {
    rcs::text_message(ME, BOB, id, body, Some("positive-delivery, display")).to_bytes()
}

pub(super) fn send(c: &mut ChatCore, now: Instant, id: &str, body: &str) {
    c.handle(
        now,
        Input::Send {
            peer: BOB.into(),
            id: id.into(),
            cpim: text(id, body),
            ids: SessionIds::default(),
        },
    );
}

pub(super) fn dialog() -> Dialog {
    Dialog {
        call_id: "call-1".into(),
        local: format!("<{ME}>;tag=a"),
        remote: format!("<{BOB}>;tag=b"),
        target: "sip:bob@127.0.0.1:5062".into(),
        routes: Vec::new(),
        cseq: 1,
        focus: false,
    }
}

/// Our INVITE to Bob still waiting for its answer.
pub(super) fn pending_invite(c: &ChatCore) -> Option<OutgoingInvite> {
    c.inviting
        .iter()
        .find(|(_, (p, _))| p == BOB)
        .map(|(k, _)| *k)
}

/// Bob's session comes up (after our INVITE, when one is out).
pub(super) fn up(c: &mut ChatCore, now: Instant) -> Vec<Output> {
    let invite = pending_invite(c);
    c.handle(
        now,
        Input::SessionUp {
            peer: BOB.into(),
            invite,
            my_uri: MY_URI.into(),
            peer_uri: BOB_URI.into(),
            dialog: dialog(),
        },
    );
    drain(c)
}

/// The CPIM documents of the MSRP SENDs among `out` (single-chunk ones).
pub(super) fn msrp_cpims(out: &[Output]) -> Vec<Cpim> {
    out.iter()
        .filter_map(|o| match o {
            Output::Msrp { msg, .. } if msg.method.as_deref() == Some("SEND") => {
                Cpim::parse(&msg.body).ok()
            }
            _ => None,
        })
        .collect()
}

pub(super) fn events(out: &[Output]) -> Vec<ChatEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// An MSRP SEND from Bob's side carrying `cpim`.
pub(super) fn from_bob(cpim: &Cpim) -> MsrpMessage {
    let mut chunks = chunk(
        MY_URI,
        BOB_URI,
        "bobmsg1",
        "message/cpim",
        &cpim.to_bytes(),
        CHUNK_SIZE,
        || "bobtid1".to_string(),
    );
    chunks.remove(0)
}

#[test]
fn first_message_rides_in_the_invite_as_cpim() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "hello");
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "{out:?}");
    let Output::Invite {
        peer, id, first, ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!((peer.as_str(), id.as_str()), (BOB, "m1"));
    let cpim = Cpim::parse(first).expect("the INVITE's first message is CPIM");
    assert_eq!(cpim.message_id(), Some("m1"));
    assert!(cpim.wants("positive-delivery") && cpim.wants("display"));
    assert_eq!(rcs::content(&cpim), Content::Text("hello".into()));
    // Nothing goes over MSRP before the session is bound, and no MSRP timer runs: only
    // the INVITE's own wait.
    assert_eq!(c.poll_timeout(), Some(t0 + INVITE_WAIT));
    assert!(!c.is_up(BOB));
}

#[test]
fn a_later_message_waits_for_the_session_then_goes_over_msrp() {
    let mut c = core(ChatOptions {
        report_acks: true,
        ..ChatOptions::default()
    });
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    send(&mut c, t0, "m2", "second");
    assert_eq!(drain(&mut c), Vec::new(), "queued while the INVITE is out");
    let out = up(&mut c, t0 + Duration::from_millis(50));
    assert_eq!(
        events(&out),
        vec![ChatEvent::Session {
            peer: BOB.into(),
            status: SessionStatus::Accepted,
            reason: String::new(),
        }]
    );
    let sent = msrp_cpims(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_id(), Some("m2"));
    // The SEND goes to the far end's path, from ours.
    let Output::Msrp { peer, msg } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(peer, BOB);
    assert_eq!(msg.header("To-Path"), Some(BOB_URI));
    assert_eq!(msg.header("From-Path"), Some(MY_URI));
    // A message once the session is up goes straight over MSRP; its 200 is the network's
    // acknowledgement.
    send(&mut c, t0 + Duration::from_secs(1), "m3", "third");
    let out = drain(&mut c);
    assert_eq!(msrp_cpims(&out)[0].message_id(), Some("m3"));
    let Output::Msrp { msg, .. } = &out[0] else {
        panic!("{out:?}")
    };
    c.handle(
        t0 + Duration::from_secs(2),
        Input::Msrp {
            peer: BOB.into(),
            msg: msg.response_to(200, "OK"),
        },
    );
    assert_eq!(
        events(&drain(&mut c)),
        vec![ChatEvent::Acked {
            message_id: "m3".into(),
            report: None
        }]
    );
}

#[test]
fn imdn_delivered_then_displayed_update_the_status_once_each() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "hello");
    drain(&mut c);
    up(&mut c, t0);
    let ours = Cpim::parse(&text("m1", "hello")).unwrap();
    for (i, status) in [ImdnStatus::Delivered, ImdnStatus::Displayed]
        .into_iter()
        .enumerate()
    {
        let report = rcs::imdn_message(BOB, ME, &ours, status);
        let at = t0 + Duration::from_secs(i as u64 + 1);
        c.handle(
            at,
            Input::Msrp {
                peer: BOB.into(),
                msg: from_bob(&report),
            },
        );
        let out = drain(&mut c);
        // RFC 4975 §7.2: the SEND gets its 200, then the application hears the status.
        assert!(matches!(&out[0], Output::Msrp { msg, .. } if msg.status == 200));
        assert_eq!(
            events(&out),
            vec![ChatEvent::Status {
                message_id: "m1".into(),
                status,
                from: BOB.into(),
                note: None,
            }]
        );
        // The same report again (a network that restarted) is acknowledged, not reported.
        c.handle(
            at,
            Input::Msrp {
                peer: BOB.into(),
                msg: from_bob(&report),
            },
        );
        let again = drain(&mut c);
        assert_eq!(events(&again), Vec::new());
        assert_eq!(again.len(), 1);
    }
}

#[test]
fn a_received_message_is_reported_delivered_over_msrp_and_displayed_on_request() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "hi");
    drain(&mut c);
    up(&mut c, t0);
    let theirs = rcs::text_message(BOB, ME, "b1", "hi back", Some("positive-delivery, display"));
    c.handle(
        t0,
        Input::Msrp {
            peer: BOB.into(),
            msg: from_bob(&theirs),
        },
    );
    let out = drain(&mut c);
    assert_eq!(
        events(&out),
        vec![ChatEvent::Message {
            from: BOB.into(),
            text: "hi back".into(),
            message_id: "b1".into(),
        }]
    );
    let reports = msrp_cpims(&out);
    assert_eq!(reports.len(), 1, "auto \"delivered\"");
    let Content::Imdn(i) = rcs::content(&reports[0]) else {
        panic!("{reports:?}")
    };
    assert_eq!(
        (i.message_id.as_str(), i.status),
        ("b1", ImdnStatus::Delivered)
    );
    c.handle(
        t0,
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Displayed,
        },
    );
    let Content::Imdn(i) = rcs::content(&msrp_cpims(&drain(&mut c))[0]) else {
        panic!()
    };
    assert_eq!(i.status, ImdnStatus::Displayed);
    // Asked twice, reported once.
    c.handle(
        t0,
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Displayed,
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
}

#[test]
fn a_report_without_a_session_goes_in_a_sip_message() {
    let mut c = core(ChatOptions {
        auto_delivered: false,
        ..ChatOptions::default()
    });
    let theirs = rcs::text_message(BOB, ME, "b1", "pager", Some("positive-delivery"));
    c.handle(
        Instant::now(),
        Input::Cpim {
            peer: BOB.into(),
            cpim: theirs,
        },
    );
    drain(&mut c);
    c.handle(
        Instant::now(),
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Delivered,
        },
    );
    let out = drain(&mut c);
    let [Output::ImdnMessage {
        peer,
        about,
        status,
        cpim,
    }] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!((peer.as_str(), about.as_str()), (BOB, "b1"));
    assert_eq!(*status, ImdnStatus::Delivered);
    assert!(matches!(
        rcs::content(&Cpim::parse(cpim).unwrap()),
        Content::Imdn(_)
    ));
}

/// A chat INVITE refused with 488, 415 or 500 (T-IM or the far end cannot take a session):
/// as before the split, the client reports the first and the queued messages failed and the
/// session failed; delivering them as pager-mode MESSAGEs is T-IM's fallback, not the UE's.
/// 603 and 486 count as declined.
#[test]
fn a_refused_chat_invite_fails_its_messages_and_the_session() {
    for (code, phrase, status) in [
        (488, "Not Acceptable Here", SessionStatus::Failed),
        (415, "Unsupported Media Type", SessionStatus::Failed),
        (500, "Server Internal Error", SessionStatus::Failed),
        (603, "Decline", SessionStatus::Declined),
        (486, "Busy Here", SessionStatus::Declined),
    ] {
        let mut c = core(ChatOptions::default());
        let t0 = Instant::now();
        send(&mut c, t0, "m1", "first");
        send(&mut c, t0, "m2", "queued");
        drain(&mut c);
        let reason = format!("INVITE answered {code} {phrase}");
        let invite = pending_invite(&c);
        assert!(invite.is_some());
        c.handle(
            t0,
            Input::SessionFailed {
                peer: BOB.into(),
                reason: reason.clone(),
                invite,
            },
        );
        assert_eq!(c.poll_timeout(), None, "the answer ends the INVITE's wait");
        let failed = |id: &str| ChatEvent::SendFailed {
            message_id: id.into(),
            reason: reason.clone(),
        };
        assert_eq!(
            events(&drain(&mut c)),
            vec![
                failed("m1"),
                failed("m2"),
                ChatEvent::Session {
                    peer: BOB.into(),
                    status,
                    reason: reason.clone(),
                }
            ],
            "{code}"
        );
        // The next message opens a new session.
        send(&mut c, t0, "m3", "again");
        assert!(matches!(&drain(&mut c)[..], [Output::Invite { id, .. }] if id == "m3"));
    }
}

#[test]
fn msrp_transaction_timeout_fails_the_message_after_30_s() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    up(&mut c, t0);
    // A message of three chunks (RFC 4975 §5.1), none answered.
    let big = "x".repeat(2 * CHUNK_SIZE + 10);
    send(&mut c, t0, "m2", &big);
    let chunks = drain(&mut c);
    assert_eq!(chunks.len(), 3);
    assert_eq!(c.poll_timeout(), Some(t0 + MSRP_TRANSACTION_TIMEOUT));
    c.handle_timeout(t0 + Duration::from_secs(29));
    assert_eq!(drain(&mut c), Vec::new());
    c.handle_timeout(t0 + MSRP_TRANSACTION_TIMEOUT);
    let out = drain(&mut c);
    assert_eq!(
        out.len(),
        1,
        "one failure per message, not per chunk: {out:?}"
    );
    assert!(matches!(
        &out[0],
        Output::Event(ChatEvent::SendFailed { message_id, reason })
            if message_id == "m2" && reason.contains("7.1.1")
    ));
    assert_eq!(c.poll_timeout(), None);
    // A late 200 for one of its chunks changes nothing.
    let Output::Msrp { msg, .. } = &chunks[0] else {
        panic!()
    };
    c.handle(
        t0 + Duration::from_secs(31),
        Input::Msrp {
            peer: BOB.into(),
            msg: msg.response_to(200, "OK"),
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
}

#[test]
fn an_answered_transaction_stops_its_timer_and_481_ends_the_session() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    up(&mut c, t0);
    send(&mut c, t0, "m2", "answered");
    let out = drain(&mut c);
    let Output::Msrp { msg, .. } = &out[0] else {
        panic!()
    };
    c.handle(
        t0 + Duration::from_secs(1),
        Input::Msrp {
            peer: BOB.into(),
            msg: msg.response_to(200, "OK"),
        },
    );
    assert_eq!(c.poll_timeout(), None);
    send(&mut c, t0, "m3", "refused");
    let out = drain(&mut c);
    let Output::Msrp { msg, .. } = &out[0] else {
        panic!()
    };
    c.handle(
        t0 + Duration::from_secs(2),
        Input::Msrp {
            peer: BOB.into(),
            msg: msg.response_to(481, "No Such Session"),
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Output::Event(ChatEvent::SendFailed {
                message_id: "m3".into(),
                reason: "MSRP 481 No Such Session".into(),
            }),
            Output::DropConn { peer: BOB.into() },
        ]
    );
    assert!(!c.is_up(BOB));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn close_sends_bye_in_the_dialog_and_close_all_fails_what_is_unsent() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    up(&mut c, t0);
    c.handle(t0, Input::Close { peer: BOB.into() });
    let mut d = dialog();
    d.cseq += 1;
    assert_eq!(
        drain(&mut c),
        vec![
            Output::Bye {
                dialog: d,
                away: false
            },
            Output::DropConn { peer: BOB.into() }
        ]
    );
    // A session still being set up: its first message has not been taken yet.
    send(&mut c, t0, "m2", "pending");
    drain(&mut c);
    let byes = c.close_all();
    assert!(byes.is_empty());
    assert!(matches!(
        &drain(&mut c)[..],
        [
            Output::CloseConn { peer },
            Output::Event(ChatEvent::SendFailed { message_id, .. }),
        ] if peer == BOB && message_id == "m2"
    ));
}

/// The client closes everything (it is going away) while our INVITE is still out: when the
/// session comes up after all, its BYE says the client goes away (a group focus then keeps
/// it a member), and until then the client counts it as still leaving.
#[test]
fn close_all_while_our_invite_is_out_ends_the_session_as_going_away() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    assert!(c.close_all().is_empty());
    drain(&mut c);
    assert_eq!(c.leaving(), 1);
    let out = up(&mut c, t0);
    let mut d = dialog();
    d.cseq += 1;
    assert_eq!(
        out[0],
        Output::Bye {
            dialog: d,
            away: true
        }
    );
    assert_eq!(c.leaving(), 0);
    // One that fails instead is no longer waited for either.
    send(&mut c, t0, "m2", "second");
    drain(&mut c);
    c.close_all();
    assert_eq!(c.leaving(), 1);
    let invite = pending_invite(&c);
    c.handle(
        t0,
        Input::SessionFailed {
            peer: BOB.into(),
            reason: "480".into(),
            invite,
        },
    );
    assert_eq!(c.leaving(), 0);
    assert!(!drain(&mut c)
        .iter()
        .any(|o| matches!(o, Output::Bye { .. })));
}

/// The application closes a chat while our INVITE is still out (the first message rides in
/// it): a later message that waited fails, and when the session comes up after all it is
/// ended at once with a BYE in its dialog instead of being kept open.
#[test]
fn close_while_our_invite_is_out_ends_the_session_when_it_comes_up() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    send(&mut c, t0, "m2", "queued");
    drain(&mut c);
    c.handle(t0, Input::Close { peer: BOB.into() });
    assert!(matches!(
        &drain(&mut c)[..],
        [
            Output::Event(ChatEvent::SendFailed { message_id, .. }),
            Output::DropConn { peer },
        ] if message_id == "m2" && peer == BOB
    ));
    let out = up(&mut c, t0);
    let mut d = dialog();
    d.cseq += 1;
    assert_eq!(
        out[0],
        Output::Bye {
            dialog: d,
            away: false
        }
    );
    assert_eq!(out[1], Output::DropConn { peer: BOB.into() });
    assert!(matches!(
        &out[2],
        Output::Event(ChatEvent::Session {
            status: SessionStatus::Closed,
            ..
        })
    ));
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(!c.sessions.contains_key(BOB), "nothing kept for bob");
    // A new message opens a new session as usual.
    send(&mut c, t0, "m3", "again");
    assert!(matches!(&drain(&mut c)[..], [Output::Invite { id, .. }] if id == "m3"));
}

#[test]
fn bye_from_the_far_end_closes_the_session() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    up(&mut c, t0);
    c.handle(
        t0,
        Input::Bye {
            call_id: "call-1".into(),
            reason: None,
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Output::DropConn { peer: BOB.into() },
            Output::Event(ChatEvent::Session {
                peer: BOB.into(),
                status: SessionStatus::Closed,
                reason: "BYE".into(),
            })
        ]
    );
}

#[test]
fn a_bye_with_a_reason_says_why() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    send(&mut c, t0, "m1", "first");
    drain(&mut c);
    up(&mut c, t0);
    c.handle(
        t0,
        Input::Bye {
            call_id: "call-1".into(),
            reason: Some("idle".into()),
        },
    );
    assert!(drain(&mut c).contains(&Output::Event(ChatEvent::Session {
        peer: BOB.into(),
        status: SessionStatus::Closed,
        reason: "idle".into(),
    })));
}

#[test]
fn a_reg_event_saying_our_registration_ended_is_reported() {
    let mut c = core(ChatOptions::default());
    let aors = [ME.to_string(), "tel:+15550001".to_string()];
    let contact = [("sip:alice@127.0.0.1:5062".to_string(), 0)];
    let active = crate::sip::reginfo::reginfo_xml(
        3,
        &aors,
        &contact,
        crate::sip::reginfo::ContactEvent::Refreshed,
    );
    c.handle(
        Instant::now(),
        Input::RegInfo {
            reginfo: active,
            subscription_state: "active;expires=7000".into(),
        },
    );
    assert_eq!(drain(&mut c), Vec::new());
    let ended = crate::sip::reginfo::reginfo_xml(
        4,
        &aors,
        &contact,
        crate::sip::reginfo::ContactEvent::Rejected,
    );
    c.handle(
        Instant::now(),
        Input::RegInfo {
            reginfo: ended,
            subscription_state: "terminated;reason=rejected".into(),
        },
    );
    assert_eq!(
        events(&drain(&mut c)),
        vec![ChatEvent::Deregistered {
            reason: "the network ended the registration (terminated;reason=rejected)".into()
        }]
    );
}

#[test]
fn a_plain_pager_message_is_shown_without_a_report() {
    let mut c = core(ChatOptions::default());
    c.handle(
        Instant::now(),
        Input::PagerText {
            peer: BOB.into(),
            text: "plain".into(),
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![Output::Event(ChatEvent::Message {
            from: BOB.into(),
            text: "plain".into(),
            message_id: String::new(),
        })]
    );
}

/// A report the application asked for while our INVITE to the same peer was still out is
/// held for the session; when the client closes everything before the session comes up (a
/// web user logging out), the report goes in a SIP MESSAGE instead of being lost.
#[test]
fn a_report_held_for_a_session_still_goes_when_the_client_closes() {
    let t0 = Instant::now();
    let mut c = core(ChatOptions {
        auto_delivered: false,
        ..ChatOptions::default()
    });
    send(&mut c, t0, "a1", "hello");
    drain(&mut c);
    let theirs = rcs::text_message(BOB, ME, "b1", "hi", Some("positive-delivery"));
    c.handle(
        t0,
        Input::Cpim {
            peer: BOB.into(),
            cpim: theirs,
        },
    );
    drain(&mut c);
    c.handle(
        t0,
        Input::Report {
            message_id: "b1".into(),
            status: ImdnStatus::Delivered,
        },
    );
    assert!(
        drain(&mut c).is_empty(),
        "held while the INVITE is out (as before)"
    );
    c.close_all();
    let out = drain(&mut c);
    let imdns: Vec<(&str, &str)> = out
        .iter()
        .filter_map(|o| match o {
            Output::ImdnMessage { peer, about, .. } => Some((peer.as_str(), about.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(imdns, vec![(BOB, "b1")], "{out:?}");
}
