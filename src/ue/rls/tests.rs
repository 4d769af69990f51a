//! Tests of the watcher's list state and subscription lifecycle, with NOTIFY bodies built by
//! the RLS's own [`ListNotifier`] and a fake clock.

use super::*;
use crate::presence::pidf::{Basic, Person, Tuple};
use crate::presence::rlmi::{ListNotifier, MemberState};

const LIST: &str = "sip:alice;pres-list=rcs@ims.lab";
const BOB: &str = "sip:bob@ims.lab";
const CAROL: &str = "sip:carol@ims.lab";
const T0: u64 = 1_796_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0)
}

fn member(uri: &str, doc: Option<Pidf>) -> MemberState {
    MemberState {
        uri: uri.into(),
        state: InstanceState::Active,
        doc,
    }
}

fn open(uri: &str, activity: Option<Activity>, note: Option<&str>) -> Pidf {
    let mut d = Pidf::empty(uri);
    d.tuples.push(Tuple::new("rcslab-ue", Basic::Open));
    if activity.is_some() || note.is_some() {
        d.person = Some(Person {
            id: "p1".into(),
            activities: activity.into_iter().collect(),
            note: note.map(str::to_string),
            timestamp: None,
        });
    }
    d
}

/// The PS's "last seen" document (src/presence/publication.rs `document()`).
fn last_seen(uri: &str, stamp: &str) -> Pidf {
    let mut d = Pidf::empty(uri);
    let mut t = Tuple::new("last-seen", Basic::Closed);
    t.timestamp = Some(stamp.into());
    d.tuples.push(t);
    d
}

fn read(b: &crate::presence::rlmi::ListBody) -> ParsedListBody {
    parse_body(&b.content_type, &b.body, &RlmiLimits::default()).unwrap()
}

fn states(l: &BuddyList) -> Vec<(String, &'static str, Option<String>, Option<String>)> {
    l.buddies()
        .map(|b| {
            (
                b.uri.clone(),
                b.state.as_str(),
                b.note.clone(),
                b.last_seen.clone(),
            )
        })
        .collect()
}

#[test]
fn the_rcs_list_uri_of_an_identity() {
    assert_eq!(
        list_uri("sip:alice@ims.lab").as_deref(),
        Some("sip:alice;pres-list=rcs@ims.lab")
    );
    assert_eq!(list_uri("sip:ims.lab"), None);
    assert_eq!(list_uri("tel:+15551234"), None);
    assert_eq!(list_uri("sip:a;x=y@ims.lab"), None);
}

#[test]
fn full_state_then_partials_away_then_offline_with_last_seen() {
    let mut rls = ListNotifier::new(LIST, "ims.lab");
    let mut list = BuddyList::new(LIST, 16);
    let bob_open = member(BOB, Some(open(BOB, None, None)));
    let carol_pending = MemberState {
        uri: CAROL.into(),
        state: InstanceState::Pending,
        doc: None,
    };
    let full = rls.full_state(&[bob_open, carol_pending.clone()]);
    let c = list.apply(&read(&full), now()).unwrap();
    assert_eq!(c.changed.len(), 2);
    assert_eq!(
        states(&list),
        vec![
            (BOB.into(), "online", None, None),
            (CAROL.into(), "pending", None, None)
        ]
    );

    // bob: away "lunch" (a partial state with only bob).
    let bob_away = member(BOB, Some(open(BOB, Some(Activity::Away), Some("lunch"))));
    let p = rls
        .partial(&[bob_away.clone(), carol_pending.clone()])
        .unwrap();
    assert!(!p.rlmi.full_state);
    let c = list.apply(&read(&p), now()).unwrap();
    assert_eq!(c.changed.len(), 1, "{c:?}");
    assert_eq!(c.changed[0].state, BuddyState::Away);
    assert_eq!(c.changed[0].note.as_deref(), Some("lunch"));

    // bob: gone, the PS's last-seen document.
    let bob_gone = member(BOB, Some(last_seen(BOB, "2026-12-01T18:00:00Z")));
    let p = rls.partial(&[bob_gone, carol_pending]).unwrap();
    let c = list.apply(&read(&p), now()).unwrap();
    assert_eq!(
        c.changed,
        vec![Buddy {
            uri: BOB.into(),
            state: BuddyState::Offline,
            note: None,
            last_seen: Some("2026-12-01T18:00:00Z".into()),
        }]
    );
}

#[test]
fn closed_without_a_timestamp_is_last_seen_when_we_saw_it_go() {
    let mut rls = ListNotifier::new(LIST, "ims.lab");
    let mut list = BuddyList::new(LIST, 16);
    let mut closed = Pidf::empty(BOB);
    closed.tuples.push(Tuple::new("t", Basic::Closed));
    // Offline from the start: when is not known.
    let full = rls.full_state(&[member(BOB, Some(closed.clone()))]);
    list.apply(&read(&full), now()).unwrap();
    assert_eq!(states(&list), vec![(BOB.into(), "offline", None, None)]);
    let p = rls
        .partial(&[member(BOB, Some(open(BOB, Some(Activity::Busy), None)))])
        .unwrap();
    list.apply(&read(&p), now()).unwrap();
    assert_eq!(states(&list)[0].1, "busy");
    let p = rls.partial(&[member(BOB, Some(closed))]).unwrap();
    list.apply(&read(&p), now()).unwrap();
    assert_eq!(
        states(&list)[0].3.as_deref(),
        Some(timestamp(now()).as_str())
    );
}

#[test]
fn a_member_removed_from_the_list_goes_and_a_full_state_replaces_all() {
    let mut rls = ListNotifier::new(LIST, "ims.lab");
    let mut list = BuddyList::new(LIST, 16);
    let both = [
        member(BOB, Some(open(BOB, None, None))),
        member(CAROL, Some(open(CAROL, None, None))),
    ];
    list.apply(&read(&rls.full_state(&both)), now()).unwrap();
    // carol leaves the list: terminated;reason=deactivated.
    let p = rls.partial(&both[..1]).unwrap();
    let c = list.apply(&read(&p), now()).unwrap();
    assert_eq!(c.removed, vec![CAROL.to_string()]);
    assert!(c.changed.is_empty());
    // A new subscription: its full state (versions from 0) replaces everything.
    list.new_subscription();
    let mut rls2 = ListNotifier::new(LIST, "ims.lab");
    let c = list
        .apply(&read(&rls2.full_state(&both[1..])), now())
        .unwrap();
    assert_eq!(c.removed, vec![BOB.to_string()]);
    assert_eq!(states(&list), vec![(CAROL.into(), "online", None, None)]);
}

#[test]
fn a_lost_notify_is_a_version_gap_and_an_old_one_no_news() {
    let mut rls = ListNotifier::new(LIST, "ims.lab");
    let mut list = BuddyList::new(LIST, 16);
    let full = rls.full_state(&[member(BOB, Some(open(BOB, None, None)))]);
    list.apply(&read(&full), now()).unwrap();
    let v1 = rls
        .partial(&[member(BOB, Some(open(BOB, Some(Activity::Away), None)))])
        .unwrap();
    let v2 = rls
        .partial(&[member(BOB, Some(open(BOB, None, None)))])
        .unwrap();
    assert_eq!(
        list.apply(&read(&v2), now()),
        Err(ListError::VersionGap {
            had: Some(0),
            got: 2
        })
    );
    list.apply(&read(&v1), now()).unwrap();
    list.apply(&read(&v2), now()).unwrap();
    // v1 again (a retransmission): nothing.
    assert!(list.apply(&read(&v1), now()).unwrap().is_empty());
    // Another list's document.
    let mut other = ListNotifier::new("sip:x;pres-list=rcs@ims.lab", "ims.lab");
    assert!(matches!(
        list.apply(&read(&other.full_state(&[])), now()),
        Err(ListError::OtherList(_))
    ));
}

#[test]
fn the_list_is_capped() {
    let mut rls = ListNotifier::new(LIST, "ims.lab");
    let mut list = BuddyList::new(LIST, 1);
    let both = [member(BOB, None), member(CAROL, None)];
    assert_eq!(
        list.apply(&read(&rls.full_state(&both)), now()),
        Err(ListError::TooMany(1))
    );
    assert_eq!(list.buddies().count(), 0, "nothing half-applied");
}

#[test]
fn pidf_words_map_to_what_a_client_shows() {
    let st =
        |a: Activity| buddy_of(BOB, &InstanceState::Active, Some(&open(BOB, Some(a), None))).state;
    assert_eq!(st(Activity::Meeting), BuddyState::Busy);
    assert_eq!(st(Activity::OnThePhone), BuddyState::Busy);
    assert_eq!(st(Activity::Vacation), BuddyState::Away);
    assert_eq!(st(Activity::Token("sleeping".into())), BuddyState::Online);
    let term = InstanceState::Terminated {
        reason: Some("rejected".into()),
    };
    assert_eq!(buddy_of(BOB, &term, None).state, BuddyState::Offline);
    assert_eq!(
        buddy_of(BOB, &InstanceState::Active, None).state,
        BuddyState::Offline
    );
}

#[test]
fn subscription_state_values_read() {
    assert_eq!(
        SubState::parse("active;expires=3599"),
        Some(SubState::Active(Some(3599)))
    );
    assert_eq!(SubState::parse("Pending"), Some(SubState::Pending(None)));
    assert_eq!(
        SubState::parse("terminated;reason=probation;retry-after=20"),
        Some(SubState::Terminated {
            reason: Some("probation".into()),
            retry_after: Some(20)
        })
    );
    assert_eq!(SubState::parse("dancing"), None);
}

fn drain(s: &mut ListSubscription) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

#[test]
fn refreshed_at_half_life_and_made_again_after_481() {
    let t0 = Instant::now();
    let mut s = ListSubscription::new(600);
    s.start();
    assert_eq!(drain(&mut s), vec![Transmit::Subscribe(600)]);
    assert_eq!(s.status(), SubscriptionStatus::Subscribing);
    // The NOTIFY may come first (RFC 6665 §4.1.2.4).
    s.on_notify(t0, &SubState::Active(Some(600)));
    s.on_response(t0, 200, Some(600), None);
    assert_eq!(s.status(), SubscriptionStatus::Active);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    s.handle_timeout(t0 + Duration::from_secs(299));
    assert!(drain(&mut s).is_empty());
    let t1 = t0 + Duration::from_secs(300);
    s.handle_timeout(t1);
    assert_eq!(drain(&mut s), vec![Transmit::Refresh(600)]);
    // The RLS restarted: the dialog is gone; a new subscription at once.
    s.on_response(t1, 481, None, None);
    assert_eq!(drain(&mut s), vec![Transmit::Subscribe(600)]);
    // 423: again with Min-Expires.
    s.on_response(t1, 423, None, Some(1200));
    assert_eq!(drain(&mut s), vec![Transmit::Subscribe(1200)]);
    // No answer: wait, then try again.
    s.on_response(t1, 408, None, None);
    assert_eq!(s.status(), SubscriptionStatus::Retrying);
    assert_eq!(s.poll_timeout(), Some(t1 + RETRY));
    s.handle_timeout(t1 + RETRY);
    assert_eq!(drain(&mut s), vec![Transmit::Subscribe(1200)]);
    // Failures in a row wait longer each time, up to MAX_RETRY; a success resets it.
    let mut t = t1 + RETRY;
    for want in [60, 120, 240, 480, 600, 600] {
        s.on_response(t, 404, None, None);
        assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(want)));
        t += Duration::from_secs(want);
        s.handle_timeout(t);
        drain(&mut s);
    }
    s.on_response(t, 200, Some(1200), None);
    s.on_notify(
        t,
        &SubState::Terminated {
            reason: Some("giveup".into()),
            retry_after: None,
        },
    );
    s.handle_timeout(t + RETRY);
    s.on_response(t + RETRY, 500, None, None);
    assert_eq!(s.poll_timeout(), Some(t + RETRY + RETRY));
}

#[test]
fn a_terminated_notify_decides_whether_to_subscribe_again() {
    let t0 = Instant::now();
    let up = || {
        let mut s = ListSubscription::new(600);
        s.start();
        s.on_response(t0, 200, Some(600), None);
        drain(&mut s);
        s
    };
    let term = |r: &str, after: Option<u32>| SubState::Terminated {
        reason: Some(r.into()),
        retry_after: after,
    };
    let mut s = up();
    s.on_notify(t0, &term("deactivated", None));
    assert_eq!(drain(&mut s), vec![Transmit::Subscribe(600)]);
    let mut s = up();
    s.on_notify(t0, &term("probation", Some(20)));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    let mut s = up();
    s.on_notify(t0, &term("rejected", None));
    assert_eq!(s.status(), SubscriptionStatus::Failed);
    assert_eq!(s.poll_timeout(), None);
    // A shorter lifetime in a NOTIFY brings the refresh forward.
    let mut s = up();
    s.on_notify(t0, &SubState::Active(Some(60)));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.on_notify(t0, &SubState::Pending(None));
    assert_eq!(s.status(), SubscriptionStatus::Pending);
}

#[test]
fn stop_unsubscribes_and_ends_on_the_terminated_notify() {
    let t0 = Instant::now();
    let mut s = ListSubscription::new(600);
    s.start();
    s.on_response(t0, 200, Some(600), None);
    drain(&mut s);
    assert!(s.stop(true));
    assert_eq!(drain(&mut s), vec![Transmit::Unsubscribe]);
    s.on_response(t0, 200, Some(0), None);
    assert!(!s.is_ended(), "waits for the terminated NOTIFY");
    s.on_notify(
        t0,
        &SubState::Terminated {
            reason: Some("timeout".into()),
            retry_after: None,
        },
    );
    assert!(s.is_ended());
    assert!(drain(&mut s).is_empty());
    // Nothing up: nothing to send.
    let mut s = ListSubscription::new(600);
    s.start();
    s.on_response(t0, 404, None, None);
    assert!(!s.stop(false));
    assert!(s.is_ended());
}

// ---------------------------------------------------------------------------------------------
// The driver, against a fake RLS on loopback standing in for the P-CSCF and the core.

mod driver {
    use super::*;
    use crate::sip::endpoint::Incoming;
    use crate::sip::transaction::TimerConfig;
    use crate::sip::{Endpoint, Transport};
    use crate::trace::Trace;
    use crate::ue::{AuthMode, UeConfig};
    use tokio::sync::watch;

    const TAG: &str = "rls1";

    async fn next_request(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Incoming>,
    ) -> IncomingRequest {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Incoming::Request(r))) => return r,
                Ok(Some(_)) => continue,
                other => panic!("no request within 5 s: {other:?}"),
            }
        }
    }

    /// A NOTIFY in the dialog of `sub` from the fake RLS at `rls`.
    fn notify(
        rls: &Endpoint,
        sub: &Request,
        cseq: u32,
        state: &str,
        body: Option<&crate::presence::rlmi::ListBody>,
    ) -> Request {
        let contact = sub
            .headers
            .get("Contact")
            .unwrap()
            .trim_matches(['<', '>'])
            .to_string();
        let mut n = Request::new(Method::Notify, contact);
        n.headers.push("Via", rls.new_via(Transport::Udp));
        n.headers.push("Max-Forwards", "70");
        n.headers.push("From", format!("<{LIST}>;tag={TAG}"));
        n.headers.push("To", sub.headers.get("From").unwrap());
        n.headers
            .push("Call-ID", sub.headers.get("Call-ID").unwrap());
        n.headers.push("CSeq", format!("{cseq} NOTIFY"));
        n.headers
            .push("Contact", format!("<sip:rls@{}>", rls.local_addr()));
        n.headers.push("Event", "presence");
        n.headers.push("Subscription-State", state);
        if let Some(b) = body {
            n.headers.push("Require", "eventlist");
            n.headers.push("Content-Type", b.content_type.clone());
            n.body = bytes::Bytes::from(b.body.clone());
        }
        n
    }

    fn ok(req: &Request) -> Response {
        let mut r = req.response(200, None);
        let to = req.headers.get("To").unwrap().to_string();
        if !to.contains("tag=") {
            r.headers.set("To", format!("{to};tag={TAG}"));
        }
        r
    }

    async fn next_event(ev: &mut tokio::sync::mpsc::Receiver<ListEvent>) -> ListEvent {
        tokio::time::timeout(Duration::from_secs(5), ev.recv())
            .await
            .expect("an event within 5 s")
            .expect("the watcher runs")
    }

    async fn next_change(ev: &mut tokio::sync::mpsc::Receiver<ListEvent>) -> ListChange {
        loop {
            if let ListEvent::Changed(c) = next_event(ev).await {
                return c;
            }
        }
    }

    #[tokio::test]
    async fn subscribes_reads_full_and_partial_state_and_unsubscribes() {
        let (_stop, shut) = watch::channel(false);
        let lo = "127.0.0.1:0".parse().unwrap();
        let (rls, mut rls_rx) = Endpoint::bind(
            "RLS",
            lo,
            TimerConfig::default(),
            Trace::disabled(),
            shut.clone(),
        )
        .await
        .unwrap();
        let cfg = UeConfig {
            impu: "sip:alice@ims.lab".into(),
            impi: "alice@ims.lab".into(),
            password: String::new(),
            k: [0; 16],
            opc: [0; 16],
            sqn_ms: 0,
            pcscf: rls.local_addr(),
            transport: Transport::Udp,
            domain: "ims.lab".into(),
            auth: AuthMode::Digest,
            extra_tags: String::new(),
        };
        let mut ue = Ue::start(cfg, Trace::disabled(), shut.clone())
            .await
            .unwrap();
        let notifies = ue.split_presence_notifies();
        let (watcher, mut events) = ListWatcher::start(
            ue.endpoint().clone(),
            ue.cfg.clone(),
            ue.contact(),
            notifies,
            600,
        )
        .unwrap();
        assert_eq!(watcher.uri, LIST);

        let sub = next_request(&mut rls_rx).await;
        let s = &sub.request;
        assert_eq!(s.method, Method::Subscribe);
        assert_eq!(s.uri, LIST);
        assert_eq!(s.headers.get("Event"), Some("presence"));
        assert_eq!(s.headers.get("Supported"), Some("eventlist"));
        assert_eq!(s.headers.get("Accept"), Some(ACCEPT));
        assert_eq!(s.headers.get("Expires"), Some("600"));

        // The full state comes before the 200 (RFC 6665 §4.1.2.4).
        let mut notifier = ListNotifier::new(LIST, "ims.lab");
        let members = [member(BOB, Some(open(BOB, None, None)))];
        let full = notifier.full_state(&members);
        let n = notify(&rls, s, 1, "active;expires=600", Some(&full));
        let r = rls
            .send_request(n, ue.local_addr(), Transport::Udp)
            .final_response()
            .await;
        assert_eq!(r.status, 200);
        let mut answer = ok(s);
        answer
            .headers
            .push("Contact", format!("<sip:rls@{}>", rls.local_addr()));
        answer.headers.push("Expires", "600");
        answer.headers.push("Require", "eventlist");
        // The proxies record-routed the SUBSCRIBE (not the NOTIFY that came first).
        answer.headers.push("Record-Route", "<sip:scscf.test;lr>");
        answer.headers.push("Record-Route", "<sip:pcscf.test;lr>");
        sub.tx.respond(answer);
        assert!(watcher.settled(Duration::from_secs(5)).await);
        let c = next_change(&mut events).await;
        assert!(c.full_state);
        assert_eq!(c.changed[0].state, BuddyState::Online);

        // bob: away.
        let away = [member(
            BOB,
            Some(open(BOB, Some(Activity::Away), Some("lunch"))),
        )];
        let p = notifier.partial(&away).unwrap();
        let n = notify(&rls, s, 2, "active;expires=590", Some(&p));
        let r = rls
            .send_request(n, ue.local_addr(), Transport::Udp)
            .final_response()
            .await;
        assert_eq!(r.status, 200);
        let c = next_change(&mut events).await;
        assert!(!c.full_state);
        assert_eq!(c.changed[0].note.as_deref(), Some("lunch"));

        // A NOTIFY of a subscription the watcher does not have: 481.
        let mut stray = notify(&rls, s, 3, "active", None);
        stray.headers.set("Call-ID", "not-ours");
        let r = rls
            .send_request(stray, ue.local_addr(), Transport::Udp)
            .final_response()
            .await;
        assert_eq!(r.status, 481);

        // Logout: Expires 0 inside the dialog, then the terminated NOTIFY.
        let stopping = tokio::spawn(watcher.stop());
        let un = next_request(&mut rls_rx).await;
        let u = &un.request;
        assert_eq!(u.method, Method::Subscribe);
        assert_eq!(u.headers.get("Expires"), Some("0"));
        assert_eq!(u.headers.get("Call-ID"), s.headers.get("Call-ID"));
        assert!(u.headers.get("To").unwrap().contains(&format!("tag={TAG}")));
        assert!(
            u.uri.starts_with("sip:rls@"),
            "to the RLS's Contact: {}",
            u.uri
        );
        assert!(u.headers.get("CSeq").unwrap().starts_with("2 "));
        assert_eq!(
            u.headers.values("Route"),
            ["<sip:pcscf.test;lr>", "<sip:scscf.test;lr>"],
            "the 200's Record-Route, reversed"
        );
        un.tx.respond(ok(u));
        let n = notify(&rls, s, 4, "terminated;reason=timeout", None);
        let r = rls
            .send_request(n, ue.local_addr(), Transport::Udp)
            .final_response()
            .await;
        assert_eq!(r.status, 200);
        tokio::time::timeout(Duration::from_secs(2), stopping)
            .await
            .expect("stop returns once the subscription ended")
            .unwrap();
        drop(ue);
    }
}
