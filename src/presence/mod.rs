//! Presence (3GPP TS 24.141, RFC 3856): the socket-free layers a presence server node sits on.
//!
//! - [`pidf`]: the presence document (PIDF, RFC 3863) with RPID activities (RFC 4480) and the
//!   OMA/RCS service description, parsed and printed.
//! - [`publication`]: the Event State Compositor of RFC 3903 (PUBLISH: SIP-ETag, SIP-If-Match,
//!   expiry, several devices composed into one document, "last seen").
//! - [`subscription`]: the notifier side of the `presence` event package (RFC 6665, RFC 3856
//!   §6): watcher authorization, subscription states and the NOTIFYs they call for.
//! - [`rls`]: the Resource List Server's list subscriptions (RFC 4662): full state, then
//!   partial NOTIFYs as members or the list change.
//! - [`rlmi`]: the Resource List Server pieces of RFC 4662 (RLMI documents, the
//!   `multipart/related` NOTIFY body, full and partial state).
//!
//! Nothing here owns a socket or reads a clock: every entry point takes `now`, and work comes
//! out as values (outcomes, queued NOTIFYs, `poll_timeout()`), as STYLE.md §1 asks.
//! The presence server node that drives them over SIP is [`crate::ps`].

pub mod pidf;
pub mod publication;
pub mod rlmi;
pub mod rls;
pub mod subscription;
pub(crate) mod xml;

/// The cores together, as the presence server node will drive them: PUBLISH into the
/// compositor, its changes into the notifier, NOTIFYs out.
#[cfg(test)]
mod tests {
    use super::pidf::{Basic, Pidf, Tuple};
    use super::publication::{EventStateCompositor, PublicationLimits};
    use super::subscription::{DialogId, Notifier, Notify, SubscriptionLimits};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    const ALICE: &str = "sip:alice@ims.rcslab.test";
    const BOB: &str = "sip:bob@ims.rcslab.test";

    /// What the node's loop does after each input: changed presentities -> NOTIFYs.
    fn drain(esc: &mut EventStateCompositor, n: &mut Notifier, now: Instant) -> Vec<Notify> {
        while let Some(entity) = esc.poll_changed() {
            n.presentity_changed(now, &entity, esc);
        }
        std::iter::from_fn(|| n.poll_notify()).collect()
    }

    #[test]
    fn a_watcher_is_allowed_then_sees_alice_come_and_go() {
        let t0 = Instant::now();
        let wall: SystemTime = UNIX_EPOCH + Duration::from_secs(1_796_126_400);
        let mut esc = EventStateCompositor::new(PublicationLimits::default(), t0, wall);
        let mut n = Notifier::new(SubscriptionLimits::default());
        let d = DialogId::new("c1", "ps", "bob");

        n.subscribe(t0, &d, BOB, ALICE, None, &esc).unwrap();
        let out = drain(&mut esc, &mut n, t0);
        assert_eq!(out[0].state.to_string(), "pending;expires=3600");

        let mut doc = Pidf::empty(ALICE);
        doc.tuples.push(Tuple::new("t1", Basic::Open));
        esc.handle_publish(t0, ALICE, None, Some(120), Some(doc))
            .unwrap();
        assert!(drain(&mut esc, &mut n, t0).is_empty(), "bob is pending");

        n.update_policy(t0, ALICE, &esc, |p| p.allow(BOB));
        let out = drain(&mut esc, &mut n, t0);
        assert_eq!(out[0].state.to_string(), "active;expires=3600");
        assert!(out[0].body.as_ref().unwrap().is_open());

        // Alice's phone stops refreshing: bob sees her closed, with the time she was last seen.
        let at = esc.poll_timeout().unwrap();
        esc.expire(at);
        let out = drain(&mut esc, &mut n, at);
        let body = out[0].body.as_ref().unwrap();
        assert!(!body.is_open());
        assert_eq!(
            body.tuples[0].timestamp.as_deref(),
            Some("2026-12-01T12:02:00Z")
        );
    }
}
