//! Tests of the presence notifier (RFC 6665, RFC 3856) with a fake clock.

use super::*;
use crate::presence::pidf::{Basic, Tuple};

const ALICE: &str = "sip:alice@ims.rcslab.test";
const BOB: &str = "sip:bob@ims.rcslab.test";
const EVE: &str = "sip:eve@ims.rcslab.test";

fn docs() -> HashMap<String, Pidf> {
    let mut d = Pidf::empty(ALICE);
    d.tuples.push(Tuple::new("t1", Basic::Open));
    HashMap::from([(ALICE.to_string(), d)])
}

fn dialog(n: u32) -> DialogId {
    DialogId::new(&format!("call-{n}"), "ps", &format!("w{n}"))
}

fn notifies(n: &mut Notifier) -> Vec<Notify> {
    std::iter::from_fn(|| n.poll_notify()).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn an_allowed_watcher_is_active_at_once_and_sees_changes() {
    let (t0, docs) = (Instant::now(), docs());
    let mut n = Notifier::new(SubscriptionLimits::default());
    n.update_policy(t0, ALICE, &docs, |p| p.allow(BOB));
    let r = n
        .subscribe(t0, &dialog(1), BOB, ALICE, Some(600), &docs)
        .unwrap();
    assert_eq!(r.expires, 600);
    assert_eq!(r.state.to_string(), "active;expires=600");
    let out = notifies(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dialog, dialog(1));
    assert_eq!(out[0].body.as_ref().unwrap().tuples[0].id, "t1");
    let (ct, xml) = out[0].content().unwrap();
    assert_eq!(ct, "application/pidf+xml");
    assert!(xml.contains("<tuple id=\"t1\">"), "{xml}");
    n.presentity_changed(t0 + secs(100), ALICE, &docs);
    let out = notifies(&mut n);
    assert_eq!(out[0].state.to_string(), "active;expires=500");
    assert!(out[0].body.is_some());
}

#[test]
fn an_unknown_watcher_waits_pending_until_allowed() {
    let (t0, docs) = (Instant::now(), docs());
    let mut n = Notifier::new(SubscriptionLimits::default());
    let r = n
        .subscribe(t0, &dialog(1), BOB, ALICE, None, &docs)
        .unwrap();
    assert_eq!(r.state, SubscriptionState::Pending { expires: 3600 });
    let out = notifies(&mut n);
    assert_eq!(out[0].state.to_string(), "pending;expires=3600");
    assert_eq!(out[0].body, None, "a pending watcher sees no state");
    assert_eq!(out[0].content(), None);
    assert_eq!(n.pending_watchers(ALICE), [BOB]);
    // Changes reach no pending watcher.
    n.presentity_changed(t0, ALICE, &docs);
    assert!(notifies(&mut n).is_empty());
    // The presentity allows him: pending -> active with the document.
    n.update_policy(t0 + secs(10), ALICE, &docs, |p| p.allow(BOB));
    let out = notifies(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state.to_string(), "active;expires=3590");
    assert!(out[0].body.is_some());
    assert!(n.pending_watchers(ALICE).is_empty());
    // Withdrawing the permission ends the subscription as rejected.
    n.update_policy(t0 + secs(20), ALICE, &docs, |p| p.forget(BOB));
    let out = notifies(&mut n);
    assert_eq!(out[0].state.to_string(), "terminated;reason=rejected");
    assert_eq!(out[0].body, None);
    assert!(n.is_empty());
}

#[test]
fn a_blocked_watcher_is_rejected() {
    let (t0, docs) = (Instant::now(), docs());
    let mut n = Notifier::new(SubscriptionLimits::default());
    n.update_policy(t0, ALICE, &docs, |p| p.block(EVE));
    let r = n
        .subscribe(t0, &dialog(1), EVE, ALICE, None, &docs)
        .unwrap();
    assert_eq!(r.expires, 0);
    let out = notifies(&mut n);
    assert_eq!(out[0].state.to_string(), "terminated;reason=rejected");
    assert_eq!(out[0].body, None);
    assert!(n.is_empty());
    // Blocking a pending watcher ends him the same way.
    n.subscribe(t0, &dialog(2), BOB, ALICE, None, &docs)
        .unwrap();
    notifies(&mut n);
    n.update_policy(t0, ALICE, &docs, |p| p.block(BOB));
    assert_eq!(
        notifies(&mut n)[0].state,
        SubscriptionState::Terminated {
            reason: TerminationReason::Rejected
        }
    );
}

#[test]
fn refresh_unsubscribe_and_expiry() {
    let (t0, docs) = (Instant::now(), docs());
    let mut n = Notifier::new(SubscriptionLimits::default());
    // Watching oneself needs no permission.
    n.subscribe(t0, &dialog(1), ALICE, ALICE, Some(60), &docs)
        .unwrap();
    assert_eq!(n.poll_timeout(), Some(t0 + secs(60)));
    notifies(&mut n);
    // A refresh (in the dialog) sends the current state again.
    let r = n
        .refresh(t0 + secs(50), &dialog(1), Some(120), &docs)
        .unwrap();
    assert_eq!(r.state, SubscriptionState::Active { expires: 120 });
    assert_eq!(notifies(&mut n).len(), 1);
    assert_eq!(n.poll_timeout(), Some(t0 + secs(170)));
    // Expires: 0 ends it with a final NOTIFY that still carries the state.
    let r = n
        .refresh(t0 + secs(60), &dialog(1), Some(0), &docs)
        .unwrap();
    assert_eq!(r.expires, 0);
    let out = notifies(&mut n);
    assert_eq!(out[0].state.to_string(), "terminated;reason=timeout");
    assert!(out[0].body.is_some());
    assert_eq!(n.poll_timeout(), None);
    // The dialog has no subscription left: a 481.
    let r = n.refresh(t0 + secs(61), &dialog(1), None, &docs);
    assert_eq!(r, Err(SubscribeError::NoSuchSubscription));
    assert_eq!(r.unwrap_err().status_code(), 481);
    // Expiry on the clock.
    n.subscribe(t0, &dialog(2), BOB, ALICE, Some(60), &docs)
        .unwrap();
    notifies(&mut n);
    n.expire(t0 + secs(59), &docs);
    assert_eq!(n.len(), 1);
    n.expire(n.poll_timeout().unwrap(), &docs);
    let out = notifies(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state.to_string(), "terminated;reason=timeout");
    assert_eq!(out[0].body, None, "it was pending");
    assert!(n.is_empty());
}

#[test]
fn bounds_and_brief_intervals_are_refused() {
    let (t0, docs) = (Instant::now(), docs());
    let limits = SubscriptionLimits {
        max_subscriptions: 1,
        ..SubscriptionLimits::default()
    };
    let mut n = Notifier::new(limits);
    let r = n.subscribe(t0, &dialog(1), BOB, ALICE, Some(10), &docs);
    assert_eq!(r, Err(SubscribeError::IntervalTooBrief { min_expires: 60 }));
    assert_eq!(r.unwrap_err().status_code(), 423);
    n.subscribe(t0, &dialog(1), BOB, ALICE, Some(u32::MAX), &docs)
        .unwrap();
    assert_eq!(
        n.state(t0, &dialog(1)),
        Some(SubscriptionState::Pending { expires: 86_400 })
    );
    let r = n.subscribe(t0, &dialog(2), EVE, ALICE, None, &docs);
    assert_eq!(r, Err(SubscribeError::TooManySubscriptions(1)));
    assert_eq!(r.unwrap_err().status_code(), 503);
    // A refresh of the one there is still fits.
    assert!(n.subscribe(t0, &dialog(1), BOB, ALICE, None, &docs).is_ok());
}

#[test]
fn gone_presentities_and_shutdown_terminate_with_their_reasons() {
    let (t0, docs) = (Instant::now(), docs());
    let mut n = Notifier::new(SubscriptionLimits::default());
    n.update_policy(t0, ALICE, &docs, |p| p.allow(BOB));
    n.subscribe(t0, &dialog(1), BOB, ALICE, None, &docs)
        .unwrap();
    n.subscribe(t0, &dialog(2), ALICE, BOB, None, &docs)
        .unwrap();
    notifies(&mut n);
    n.terminate_presentity(ALICE, TerminationReason::Noresource, &docs);
    let out = notifies(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state.to_string(), "terminated;reason=noresource");
    n.terminate_all(TerminationReason::Deactivated, &docs);
    let out = notifies(&mut n);
    assert_eq!(out[0].dialog, dialog(2));
    assert_eq!(out[0].state.to_string(), "terminated;reason=deactivated");
    assert!(n.is_empty());
}
