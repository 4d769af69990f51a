//! Tests of the list subscriptions (RFC 4662): full state, partial per member, list edits,
//! refresh, unsubscribe, expiry and the bounds.

use super::*;
use crate::presence::pidf::{Basic, Pidf, Tuple};
use crate::presence::rlmi::{parse_body, InstanceState, ParsedListBody, RlmiLimits};

const LIST: &str = "sip:alice;pres-list=rcs@ims.rcslab.test";
const ALICE: &str = "sip:alice@ims.rcslab.test";
const BOB: &str = "sip:bob@ims.rcslab.test";
const CAROL: &str = "sip:carol@ims.rcslab.test";
const DAVE: &str = "sip:dave@ims.rcslab.test";

fn doc(uri: &str, basic: Basic) -> Pidf {
    let mut d = Pidf::empty(uri);
    d.tuples.push(Tuple::new("t", basic));
    d
}

fn read(n: &ListNotify) -> ParsedListBody {
    let b = n.body.as_ref().expect("a body");
    parse_body(&b.content_type, &b.body, &RlmiLimits::default()).unwrap()
}

/// Alice may watch bob and carol; dave does not know her (pending).
fn world(t0: Instant) -> (Notifier, HashMap<String, Pidf>, ResourceList) {
    let docs = HashMap::from([(BOB.to_string(), doc(BOB, Basic::Open))]);
    let mut n = Notifier::new(SubscriptionLimits::default());
    n.update_policy(t0, BOB, &docs, |p| p.allow(ALICE));
    n.update_policy(t0, CAROL, &docs, |p| p.allow(ALICE));
    let mut list = ResourceList::new(LIST, 8);
    for m in [BOB, CAROL, DAVE] {
        list.add(m).unwrap();
    }
    (n, docs, list)
}

fn drain(r: &mut ListSubscriptions) -> Vec<ListNotify> {
    std::iter::from_fn(|| r.poll_notify()).collect()
}

fn states(p: &ParsedListBody) -> Vec<(String, InstanceState)> {
    p.rlmi
        .resources
        .iter()
        .map(|r| (r.uri.clone(), r.instances[0].state.clone()))
        .collect()
}

#[test]
fn full_state_then_one_member_changes_then_refresh_and_unsubscribe() {
    let t0 = Instant::now();
    let (n, mut docs, list) = world(t0);
    let mut r = ListSubscriptions::new(SubscriptionLimits::default(), "ims.rcslab.test");
    let d = DialogId::new("c1", "ps", "alice");
    let s = r
        .subscribe(t0, &d, ALICE, &list, Some(600), &n, &docs)
        .unwrap();
    assert_eq!(s.expires, 600);
    assert_eq!(s.state.to_string(), "active;expires=600");

    let out = drain(&mut r);
    assert_eq!(out.len(), 1);
    let full = read(&out[0]);
    assert!(full.rlmi.full_state);
    assert_eq!(full.rlmi.version, 0);
    assert_eq!(full.rlmi.uri, LIST);
    assert_eq!(
        states(&full),
        [
            (BOB.to_string(), InstanceState::Active),
            (CAROL.to_string(), InstanceState::Active),
            (DAVE.to_string(), InstanceState::Pending),
        ]
    );
    // Bob and carol's documents (carol has none yet: an empty one), none for dave.
    assert_eq!(full.documents.len(), 2);
    assert!(full.documents[0].1.is_open());

    // Carol comes online: a partial NOTIFY with her alone.
    docs.insert(CAROL.into(), doc(CAROL, Basic::Open));
    r.member_changed(t0 + Duration::from_secs(5), CAROL, &n, &docs);
    let out = drain(&mut r);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state.to_string(), "active;expires=595");
    let p = read(&out[0]);
    assert!(!p.rlmi.full_state);
    assert_eq!(p.rlmi.version, 1);
    assert_eq!(states(&p), [(CAROL.to_string(), InstanceState::Active)]);
    assert!(p.documents[0].1.is_open());
    // The same instance id as in the full state (RFC 4662 §5).
    assert_eq!(
        p.rlmi.resources[0].instances[0].id,
        full.rlmi.resources[1].instances[0].id
    );

    // Dave publishes: alice still may not see him, nothing changes for her.
    docs.insert(DAVE.into(), doc(DAVE, Basic::Open));
    r.member_changed(t0, DAVE, &n, &docs);
    assert!(drain(&mut r).is_empty());
    // Nor does a member nobody lists.
    r.member_changed(t0, "sip:eve@x", &n, &docs);
    assert!(drain(&mut r).is_empty());

    // A refresh: full state again (RFC 4662 §5.2), version 2.
    let s = r
        .subscribe(t0, &d, ALICE, &list, Some(900), &n, &docs)
        .unwrap();
    assert_eq!(s.expires, 900);
    let out = drain(&mut r);
    let again = read(&out[0]);
    assert!(again.rlmi.full_state);
    assert_eq!(again.rlmi.version, 2);

    // Expires 0: the final NOTIFY, with the full state.
    let s = r.refresh(t0, &d, Some(0), &list, &n, &docs).unwrap();
    assert_eq!(s.expires, 0);
    let out = drain(&mut r);
    assert_eq!(out[0].state.to_string(), "terminated;reason=timeout");
    assert!(read(&out[0]).rlmi.full_state);
    assert!(r.is_empty());
    r.member_changed(t0, BOB, &n, &docs);
    assert!(drain(&mut r).is_empty(), "nothing is left indexed");
    assert_eq!(
        r.refresh(t0, &d, Some(60), &list, &n, &docs),
        Err(SubscribeError::NoSuchSubscription)
    );
}

#[test]
fn a_pending_member_who_allows_the_watcher_turns_active() {
    let t0 = Instant::now();
    let (mut n, docs, list) = world(t0);
    let mut r = ListSubscriptions::new(SubscriptionLimits::default(), "h");
    let d = DialogId::new("c1", "ps", "alice");
    r.subscribe(t0, &d, ALICE, &list, None, &n, &docs).unwrap();
    drain(&mut r);
    n.update_policy(t0, DAVE, &docs, |p| p.allow(ALICE));
    r.member_changed(t0, DAVE, &n, &docs);
    let out = drain(&mut r);
    assert_eq!(
        states(&read(&out[0])),
        [(DAVE.to_string(), InstanceState::Active)]
    );
    // Then he blocks her: terminated;reason=rejected, no document.
    n.update_policy(t0, DAVE, &docs, |p| p.block(ALICE));
    r.member_changed(t0, DAVE, &n, &docs);
    let p = read(&drain(&mut r)[0]);
    assert_eq!(
        states(&p),
        [(
            DAVE.to_string(),
            InstanceState::Terminated {
                reason: Some("rejected".into())
            }
        )]
    );
    assert!(p.documents.is_empty());
}

#[test]
fn editing_the_list_sends_who_came_and_who_went() {
    let t0 = Instant::now();
    let (n, docs, mut list) = world(t0);
    let mut r = ListSubscriptions::new(SubscriptionLimits::default(), "h");
    let d = DialogId::new("c1", "ps", "alice");
    r.subscribe(t0, &d, ALICE, &list, None, &n, &docs).unwrap();
    drain(&mut r);
    list.remove(CAROL);
    list.add("sip:erin@ims.rcslab.test").unwrap();
    r.list_changed(t0, &list, &n, &docs);
    let p = read(&drain(&mut r)[0]);
    assert!(!p.rlmi.full_state);
    assert_eq!(
        states(&p),
        [
            (
                "sip:erin@ims.rcslab.test".to_string(),
                InstanceState::Pending
            ),
            (
                CAROL.to_string(),
                InstanceState::Terminated {
                    reason: Some("deactivated".into())
                }
            ),
        ]
    );
    // Carol is no longer indexed for this subscription; erin is.
    r.member_changed(t0, CAROL, &n, &docs);
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.list_of(&d), Some(LIST));
}

#[test]
fn subscriptions_expire_fetches_are_one_notify_and_the_bound_holds() {
    let t0 = Instant::now();
    let (n, docs, list) = world(t0);
    let limits = SubscriptionLimits {
        max_subscriptions: 1,
        ..SubscriptionLimits::default()
    };
    let mut r = ListSubscriptions::new(limits, "h");
    let d1 = DialogId::new("c1", "ps", "alice");
    let d2 = DialogId::new("c2", "ps", "alice");
    assert_eq!(
        r.subscribe(t0, &d1, ALICE, &list, Some(10), &n, &docs),
        Err(SubscribeError::IntervalTooBrief { min_expires: 60 })
    );
    r.subscribe(t0, &d1, ALICE, &list, Some(60), &n, &docs)
        .unwrap();
    assert_eq!(
        r.subscribe(t0, &d2, ALICE, &list, Some(60), &n, &docs),
        Err(SubscribeError::TooManySubscriptions(1))
    );
    // A fetch (Expires 0) is answered even at the bound, and holds nothing.
    let s = r
        .subscribe(t0, &d2, ALICE, &list, Some(0), &n, &docs)
        .unwrap();
    assert_eq!(s.expires, 0);
    assert_eq!(r.len(), 1);
    drain(&mut r);

    r.expire(t0 + Duration::from_secs(59), &n, &docs);
    assert!(drain(&mut r).is_empty());
    r.expire(t0 + Duration::from_secs(60), &n, &docs);
    let out = drain(&mut r);
    assert_eq!(out[0].state.to_string(), "terminated;reason=timeout");
    assert!(r.is_empty());
    // A watcher gone (481): forgotten without a NOTIFY.
    r.subscribe(t0, &d1, ALICE, &list, None, &n, &docs).unwrap();
    drain(&mut r);
    assert!(r.forget(&d1));
    assert!(!r.forget(&d1));
    assert!(drain(&mut r).is_empty());
}
