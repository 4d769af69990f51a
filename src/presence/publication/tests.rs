//! Tests of the Event State Compositor (RFC 3903).

use super::*;
use crate::presence::pidf::{Activity, Person};
use std::time::UNIX_EPOCH;

const ALICE: &str = "sip:alice@ims.rcslab.test";

/// A fake clock: `t0` stands for 2026-12-01T12:00:00Z.
fn esc() -> (EventStateCompositor, Instant) {
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_796_126_400);
    (
        EventStateCompositor::new(PublicationLimits::default(), t0, wall),
        t0,
    )
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn doc(tuple: &str, basic: Basic) -> Pidf {
    let mut d = Pidf::empty(ALICE);
    d.tuples.push(Tuple::new(tuple, basic));
    d
}

fn changed(e: &mut EventStateCompositor) -> Vec<String> {
    std::iter::from_fn(|| e.poll_changed()).collect()
}

#[test]
fn initial_publish_needs_a_body_and_gets_an_etag() {
    let (mut e, t0) = esc();
    let r = e.handle_publish(t0, ALICE, None, None, None);
    assert_eq!(r, Err(PublishError::MissingBody));
    assert_eq!(r.unwrap_err().status_code(), 400);
    let r = e
        .handle_publish(t0, ALICE, None, Some(600), Some(doc("t1", Basic::Open)))
        .unwrap();
    assert!(matches!(r, Published::Created { expires: 600, .. }));
    assert!(!r.etag().is_empty());
    assert_eq!(changed(&mut e), [ALICE]);
    assert_eq!(
        e.document(ALICE).unwrap().tuples[0].basic,
        Some(Basic::Open)
    );
    assert_eq!(e.poll_timeout(), Some(t0 + secs(600)));
}

#[test]
fn refresh_extends_with_a_fresh_etag_and_changes_nothing() {
    let (mut e, t0) = esc();
    let first = e
        .handle_publish(t0, ALICE, None, Some(600), Some(doc("t1", Basic::Open)))
        .unwrap();
    changed(&mut e);
    let r = e
        .handle_publish(t0 + secs(500), ALICE, Some(first.etag()), Some(600), None)
        .unwrap();
    assert!(matches!(r, Published::Refreshed { expires: 600, .. }));
    assert_ne!(r.etag(), first.etag());
    assert!(changed(&mut e).is_empty(), "a refresh notifies nobody");
    assert_eq!(e.poll_timeout(), Some(t0 + secs(1100)));
    // The old tag is spent (RFC 3903 §4.3: each success replaces it).
    let stale = e.handle_publish(t0 + secs(501), ALICE, Some(first.etag()), None, None);
    assert_eq!(stale.unwrap_err().status_code(), 412);
    e.expire(t0 + secs(1000));
    assert_eq!(e.publications(ALICE), 1);
}

#[test]
fn modify_replaces_the_document() {
    let (mut e, t0) = esc();
    let first = e
        .handle_publish(t0, ALICE, None, None, Some(doc("t1", Basic::Open)))
        .unwrap();
    assert_eq!(first.expires(), 3600);
    changed(&mut e);
    let r = e
        .handle_publish(
            t0 + secs(1),
            ALICE,
            Some(first.etag()),
            None,
            Some(doc("t1", Basic::Closed)),
        )
        .unwrap();
    assert!(matches!(r, Published::Modified { .. }));
    assert_eq!(changed(&mut e), [ALICE]);
    assert!(!e.document(ALICE).unwrap().is_open());
    // The same document again is no change for watchers.
    e.handle_publish(
        t0 + secs(2),
        ALICE,
        Some(r.etag()),
        None,
        Some(doc("t1", Basic::Closed)),
    )
    .unwrap();
    assert!(changed(&mut e).is_empty());
}

#[test]
fn withdraw_removes_every_device_and_leaves_last_seen() {
    let (mut e, t0) = esc();
    e.handle_publish(t0, ALICE, None, None, Some(doc("t1", Basic::Open)))
        .unwrap();
    e.handle_publish(t0, ALICE, None, None, Some(doc("t2", Basic::Open)))
        .unwrap();
    changed(&mut e);
    assert_eq!(e.withdraw(t0 + secs(30), ALICE), 2);
    assert_eq!(changed(&mut e), [ALICE]);
    assert_eq!(e.publications(ALICE), 0);
    assert!(e.last_seen(ALICE).is_some());
    assert!(!e.document(ALICE).unwrap().is_open());
    assert_eq!(e.withdraw(t0 + secs(31), ALICE), 0);
    assert!(changed(&mut e).is_empty());
}

#[test]
fn remove_leaves_a_last_seen_document() {
    let (mut e, t0) = esc();
    let mut d = doc("t1", Basic::Open);
    d.tuples[0].notes.push("here".into());
    let first = e.handle_publish(t0, ALICE, None, None, Some(d)).unwrap();
    changed(&mut e);
    let r = e
        .handle_publish(t0 + secs(90), ALICE, Some(first.etag()), Some(0), None)
        .unwrap();
    assert!(matches!(r, Published::Removed { .. }));
    assert_eq!(r.expires(), 0);
    assert_eq!(changed(&mut e), [ALICE]);
    assert_eq!(e.publications(ALICE), 0);
    let seen = UNIX_EPOCH + Duration::from_secs(1_796_126_490);
    assert_eq!(e.last_seen(ALICE), Some(seen));
    let d = e.document(ALICE).unwrap();
    assert_eq!(d.tuples.len(), 1);
    assert_eq!(d.tuples[0].id, "t1");
    assert_eq!(d.tuples[0].basic, Some(Basic::Closed));
    assert!(d.tuples[0].notes.is_empty());
    assert_eq!(
        d.tuples[0].timestamp.as_deref(),
        Some("2026-12-01T12:01:30Z")
    );
    assert_eq!(e.poll_timeout(), None);
    // The removed tag is gone too.
    let again = e.handle_publish(t0 + secs(91), ALICE, Some(r.etag()), None, None);
    assert!(matches!(again, Err(PublishError::UnknownEtag(_))));
}

#[test]
fn unknown_or_foreign_etag_is_412() {
    let (mut e, t0) = esc();
    let r = e.handle_publish(t0, ALICE, Some("nope"), None, None);
    assert_eq!(r, Err(PublishError::UnknownEtag("nope".into())));
    assert_eq!(r.unwrap_err().status_code(), 412);
    let bob = e
        .handle_publish(t0, "sip:bob@x", None, None, Some(doc("b", Basic::Open)))
        .unwrap();
    let r = e.handle_publish(t0, ALICE, Some(bob.etag()), None, None);
    assert!(matches!(r, Err(PublishError::UnknownEtag(_))));
}

#[test]
fn expires_below_the_minimum_is_423_and_above_the_maximum_is_capped() {
    let (mut e, t0) = esc();
    let r = e.handle_publish(t0, ALICE, None, Some(30), Some(doc("t", Basic::Open)));
    assert_eq!(r, Err(PublishError::IntervalTooBrief { min_expires: 60 }));
    assert_eq!(r.unwrap_err().status_code(), 423);
    let r = e
        .handle_publish(t0, ALICE, None, Some(u32::MAX), Some(doc("t", Basic::Open)))
        .unwrap();
    assert_eq!(r.expires(), 86_400);
}

#[test]
fn publications_expire_on_the_clock_and_leave_last_seen() {
    let (mut e, t0) = esc();
    let r = e
        .handle_publish(t0, ALICE, None, Some(60), Some(doc("t1", Basic::Open)))
        .unwrap();
    changed(&mut e);
    e.expire(t0 + secs(59));
    assert_eq!(e.publications(ALICE), 1);
    assert!(changed(&mut e).is_empty());
    let at = e.poll_timeout().unwrap();
    assert_eq!(at, t0 + secs(60));
    e.expire(at);
    assert_eq!(e.publications(ALICE), 0);
    assert_eq!(changed(&mut e), [ALICE]);
    let d = e.document(ALICE).unwrap();
    assert_eq!(
        d.tuples[0].timestamp.as_deref(),
        Some("2026-12-01T12:01:00Z")
    );
    // An expired tag is a 412 (RFC 3903 §6).
    let late = e.handle_publish(t0 + secs(61), ALICE, Some(r.etag()), None, None);
    assert_eq!(late.unwrap_err().status_code(), 412);
    // Coming back online hides "last seen".
    e.handle_publish(
        t0 + secs(70),
        ALICE,
        None,
        None,
        Some(doc("t1", Basic::Open)),
    )
    .unwrap();
    assert_eq!(e.last_seen(ALICE), None);
    assert!(e.document(ALICE).unwrap().is_open());
}

#[test]
fn two_devices_compose_into_one_document() {
    let (mut e, t0) = esc();
    let mut phone = doc("t1", Basic::Open);
    phone.person = Some(Person {
        id: "p".into(),
        activities: vec![Activity::Busy],
        note: None,
        timestamp: None,
    });
    let a = e
        .handle_publish(t0, ALICE, None, None, Some(phone))
        .unwrap();
    // The second device uses the same tuple id, as two copies of one client would.
    let mut laptop = doc("t1", Basic::Closed);
    laptop.person = Some(Person {
        id: "p".into(),
        activities: vec![Activity::Away],
        note: None,
        timestamp: None,
    });
    let b = e
        .handle_publish(t0 + secs(1), ALICE, None, None, Some(laptop))
        .unwrap();
    let d = e.document(ALICE).unwrap();
    let ids: Vec<&str> = d.tuples.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "t1");
    assert_ne!(ids[1], "t1");
    assert!(d.is_open());
    assert_eq!(
        d.person.unwrap().activities,
        [Activity::Away],
        "newest person"
    );
    // Modifying the first device makes its person the newest.
    let mut phone2 = doc("t1", Basic::Open);
    phone2.person = Some(Person {
        id: "p".into(),
        activities: vec![Activity::OnThePhone],
        note: None,
        timestamp: None,
    });
    e.handle_publish(t0 + secs(2), ALICE, Some(a.etag()), None, Some(phone2))
        .unwrap();
    let d = e.document(ALICE).unwrap();
    assert_eq!(d.person.unwrap().activities, [Activity::OnThePhone]);
    // One device leaving is no "last seen".
    e.handle_publish(t0 + secs(3), ALICE, Some(b.etag()), Some(0), None)
        .unwrap();
    assert_eq!(e.last_seen(ALICE), None);
    assert_eq!(e.document(ALICE).unwrap().tuples.len(), 1);
}

#[test]
fn bounds_are_typed_refusals() {
    let t0 = Instant::now();
    let limits = PublicationLimits {
        max_presentities: 2,
        max_publications_per_presentity: 1,
        ..PublicationLimits::default()
    };
    let mut e = EventStateCompositor::new(limits, t0, UNIX_EPOCH);
    let d = || Some(doc("t", Basic::Open));
    let a = e.handle_publish(t0, "sip:a@x", None, None, d()).unwrap();
    e.handle_publish(t0, "sip:b@x", None, None, d()).unwrap();
    let r = e.handle_publish(t0, "sip:a@x", None, None, d());
    assert!(matches!(
        r,
        Err(PublishError::TooManyPublications { limit: 1, .. })
    ));
    assert_eq!(r.unwrap_err().status_code(), 503);
    let r = e.handle_publish(t0, "sip:c@x", None, None, d());
    assert_eq!(r, Err(PublishError::TooManyPresentities(2)));
    // A presentity that is only "last seen" gives way to a new one.
    e.handle_publish(t0, "sip:a@x", Some(a.etag()), Some(0), None)
        .unwrap();
    assert!(e.last_seen("sip:a@x").is_some());
    e.handle_publish(t0, "sip:c@x", None, None, d()).unwrap();
    assert!(e.document("sip:a@x").is_none());
    // Bodies above the cap are a 413 before they reach the compositor.
    let big = vec![b' '; e.limits().pidf.max_body + 1];
    assert_eq!(e.parse_body(&big).unwrap_err().status_code(), 413);
    assert_eq!(e.parse_body(b"<x/>").unwrap_err().status_code(), 400);
}
