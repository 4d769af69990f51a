//! The notifier side of the `presence` event package (RFC 3856 §6, RFC 6665 §4.2, TS 24.141),
//! socket-free: SUBSCRIBE in ([`Notifier::subscribe`], [`Notifier::refresh`]), the NOTIFYs it
//! calls for queued ([`Notifier::poll_notify`]), watcher authorization per presentity
//! ([`WatcherPolicy`], RFC 3856 §6.6), expiry through `poll_timeout()` / `expire(now)`.
//!
//! Subscription states (RFC 6665 §4.1.3); a terminated subscription is forgotten once its final
//! NOTIFY is queued:
//!
//! ```text
//!   SUBSCRIBE --+-- watcher allowed ------------------------> active ---+
//!               |                                              ^        |  expiry, Expires: 0,
//!               +-- watcher unknown --> pending ---------------+        |  policy change,
//!               |                         |  presentity allows him      |  presentity gone
//!               +-- watcher blocked ------+--------------------------> terminated;reason=…
//! ```
//!
//! The NOTIFY's dialog (CSeq, Route set) is the node's; this core says on which dialog, with
//! which `Subscription-State` and which body.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::pidf::{Pidf, CONTENT_TYPE as PIDF_CONTENT_TYPE};
use super::publication::EventStateCompositor;

/// A SIP dialog (RFC 3261 §12): Call-ID and the two tags, as the node keys them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of the SUBSCRIBE's response).
    pub local_tag: String,
    /// The watcher's tag (the From tag of the SUBSCRIBE).
    pub remote_tag: String,
}

impl DialogId {
    /// A dialog id from its three parts.
    pub fn new(call_id: &str, local_tag: &str, remote_tag: &str) -> DialogId {
        DialogId {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: remote_tag.to_string(),
        }
    }
}

/// What a presentity's policy says of a watcher (RFC 3856 §6.6; RFC 5025 names the actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// On the allow list: the subscription is active.
    Allow,
    /// Unknown: pending until the presentity decides ("confirm" in RFC 5025).
    Confirm,
    /// Blocked: the subscription is rejected.
    Block,
}

/// One presentity's authorization rules: an allow list and a block list of watcher URIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatcherPolicy {
    allow: BTreeSet<String>,
    block: BTreeSet<String>,
}

impl WatcherPolicy {
    /// Puts `watcher` on the allow list (and off the block list).
    pub fn allow(&mut self, watcher: &str) {
        self.block.remove(watcher);
        self.allow.insert(watcher.to_string());
    }

    /// Puts `watcher` on the block list (and off the allow list).
    pub fn block(&mut self, watcher: &str) {
        self.allow.remove(watcher);
        self.block.insert(watcher.to_string());
    }

    /// Takes `watcher` off both lists: unknown again.
    pub fn forget(&mut self, watcher: &str) {
        self.allow.remove(watcher);
        self.block.remove(watcher);
    }

    /// The watchers allowed, sorted.
    pub fn allowed(&self) -> Vec<String> {
        self.allow.iter().cloned().collect()
    }

    /// The watchers blocked, sorted.
    pub fn blocked(&self) -> Vec<String> {
        self.block.iter().cloned().collect()
    }

    /// The decision for `watcher` of `presentity`: a presentity may always watch itself
    /// (its other devices do).
    pub fn decide(&self, presentity: &str, watcher: &str) -> Authorization {
        if watcher == presentity || self.allow.contains(watcher) {
            Authorization::Allow
        } else if self.block.contains(watcher) {
            Authorization::Block
        } else {
            Authorization::Confirm
        }
    }
}

/// The `reason` of `Subscription-State: terminated` (RFC 6665 §4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// The subscriber should subscribe again at once (e.g. the server moves or shuts down).
    Deactivated,
    /// The subscriber may retry after a while.
    Probation,
    /// The policy no longer (or never) allows this watcher; do not retry.
    Rejected,
    /// The subscription ran out: not refreshed, or Expires: 0. RFC 6665 has no reason for an
    /// unsubscribe; `timeout` is what notifiers send, and the subscriber asked for the end.
    Timeout,
    /// The notifier could not decide in time.
    Giveup,
    /// The resource no longer exists.
    Noresource,
    /// The resource's state will never change.
    Invariant,
}

impl TerminationReason {
    /// The token.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Deactivated => "deactivated",
            TerminationReason::Probation => "probation",
            TerminationReason::Rejected => "rejected",
            TerminationReason::Timeout => "timeout",
            TerminationReason::Giveup => "giveup",
            TerminationReason::Noresource => "noresource",
            TerminationReason::Invariant => "invariant",
        }
    }
}

/// A `Subscription-State` header value (RFC 6665 §8.2.3); `Display` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// `active;expires=N`.
    Active {
        /// Seconds left.
        expires: u32,
    },
    /// `pending;expires=N`.
    Pending {
        /// Seconds left.
        expires: u32,
    },
    /// `terminated;reason=R`.
    Terminated {
        /// Why.
        reason: TerminationReason,
    },
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscriptionState::Active { expires } => write!(f, "active;expires={expires}"),
            SubscriptionState::Pending { expires } => write!(f, "pending;expires={expires}"),
            SubscriptionState::Terminated { reason } => {
                write!(f, "terminated;reason={}", reason.as_str())
            }
        }
    }
}

/// A NOTIFY to send on `dialog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The subscription's dialog.
    pub dialog: DialogId,
    /// The watched presentity.
    pub presentity: String,
    /// The watcher.
    pub watcher: String,
    /// The `Subscription-State` header.
    pub state: SubscriptionState,
    /// The `application/pidf+xml` body; `None` for a NOTIFY without body (pending, rejected:
    /// RFC 3856 §6.6.2 gives an unauthorized watcher no state).
    pub body: Option<Pidf>,
}

impl Notify {
    /// The body to send, as `(Content-Type, text)`, when there is one.
    pub fn content(&self) -> Option<(&'static str, String)> {
        self.body.as_ref().map(|d| (PIDF_CONTENT_TYPE, d.to_xml()))
    }
}

/// The bounds and timers of the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionLimits {
    /// The least Expires accepted, other than 0 (below: 423, RFC 6665 §4.2.1.1).
    pub min_expires: u32,
    /// Expires above this are shortened to it.
    pub max_expires: u32,
    /// Expires when the SUBSCRIBE has none (RFC 3856 §6.4: 3600).
    pub default_expires: u32,
    /// Most subscriptions held.
    pub max_subscriptions: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        SubscriptionLimits {
            min_expires: 60,
            max_expires: 3600 * 24,
            default_expires: 3600,
            max_subscriptions: 10_000,
        }
    }
}

/// A refused SUBSCRIBE, with the status to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// Expires below the minimum: 423 with `Min-Expires` (RFC 6665 §4.2.1.1).
    #[error("Expires below the minimum of {min_expires} s")]
    IntervalTooBrief {
        /// The `Min-Expires` to send.
        min_expires: u32,
    },
    /// The notifier holds as many subscriptions as it may: 503.
    #[error("the presence server holds its maximum of {0} subscriptions")]
    TooManySubscriptions(usize),
    /// An in-dialog SUBSCRIBE for no live subscription (it expired or ended): 481
    /// (RFC 6665 §4.1.2.2: the subscriber then starts a new one).
    #[error("no such subscription")]
    NoSuchSubscription,
}

impl SubscribeError {
    /// The SIP status of the answer.
    pub fn status_code(&self) -> u16 {
        match self {
            SubscribeError::IntervalTooBrief { .. } => 423,
            SubscribeError::TooManySubscriptions(_) => 503,
            SubscribeError::NoSuchSubscription => 481,
        }
    }
}

/// An accepted SUBSCRIBE: a 200 OK with this `Expires` (RFC 6665 deprecated 202); the state is that of the NOTIFY queued with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The granted Expires (0 when the subscription ended with this request).
    pub expires: u32,
    /// The state the first (or final) NOTIFY carries.
    pub state: SubscriptionState,
}

/// Where the notifier reads presentities' current documents.
pub trait PresenceDocuments {
    /// The composed document of `entity`, if it has one.
    fn document(&self, entity: &str) -> Option<Pidf>;
}

impl PresenceDocuments for EventStateCompositor {
    fn document(&self, entity: &str) -> Option<Pidf> {
        EventStateCompositor::document(self, entity)
    }
}

impl PresenceDocuments for HashMap<String, Pidf> {
    fn document(&self, entity: &str) -> Option<Pidf> {
        self.get(entity).cloned()
    }
}

/// The living states (terminated ones are removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    Pending,
    Active,
}

#[derive(Debug)]
struct Subscription {
    watcher: String,
    presentity: String,
    state: SubState,
    expires_at: Instant,
}

impl Subscription {
    /// pending -> active, the only move between living states (RFC 6665 §4.1.3).
    fn activate(&mut self) -> bool {
        match self.state {
            SubState::Pending => {
                self.state = SubState::Active;
                true
            }
            SubState::Active => false,
        }
    }
}

/// Seconds left until `at`, rounded up.
fn left(now: Instant, at: Instant) -> u32 {
    let d = at.saturating_duration_since(now);
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// The presence notifier: subscriptions by dialog, policies by presentity.
#[derive(Debug)]
pub struct Notifier {
    limits: SubscriptionLimits,
    subs: HashMap<DialogId, Subscription>,
    by_presentity: HashMap<String, BTreeSet<DialogId>>,
    timers: BTreeSet<(Instant, DialogId)>,
    policies: HashMap<String, WatcherPolicy>,
    out: VecDeque<Notify>,
}

impl Notifier {
    /// A notifier with no subscriptions and every watcher unknown.
    pub fn new(limits: SubscriptionLimits) -> Notifier {
        Notifier {
            limits,
            subs: HashMap::new(),
            by_presentity: HashMap::new(),
            timers: BTreeSet::new(),
            policies: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// How many subscriptions are alive.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The state `dialog`'s subscription is in at `now`, if it is alive.
    pub fn state(&self, now: Instant, dialog: &DialogId) -> Option<SubscriptionState> {
        self.subs.get(dialog).map(|s| Self::state_of(now, s))
    }

    fn state_of(now: Instant, s: &Subscription) -> SubscriptionState {
        let expires = left(now, s.expires_at);
        match s.state {
            SubState::Pending => SubscriptionState::Pending { expires },
            SubState::Active => SubscriptionState::Active { expires },
        }
    }

    /// What `presentity`'s policy says of `watcher` (an RLS asks it for each list member).
    pub fn authorize(&self, presentity: &str, watcher: &str) -> Authorization {
        self.decide(presentity, watcher)
    }

    fn decide(&self, presentity: &str, watcher: &str) -> Authorization {
        self.policies
            .get(presentity)
            .map(|p| p.decide(presentity, watcher))
            .unwrap_or_else(|| WatcherPolicy::default().decide(presentity, watcher))
    }

    /// Handles a SUBSCRIBE (initial or, on a known `dialog`, a refresh) for the presence of
    /// `presentity` by `watcher` (RFC 6665 §4.2.1). Every accepted SUBSCRIBE queues a NOTIFY
    /// with the current state (RFC 6665 §4.2.1.1, §4.2.1.2): active with the document, pending
    /// without, or terminated (Expires: 0 → `timeout`, a blocked watcher → `rejected`).
    pub fn subscribe(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        watcher: &str,
        presentity: &str,
        expires: Option<u32>,
        docs: &dyn PresenceDocuments,
    ) -> Result<Subscribed, SubscribeError> {
        self.expire(now, docs);
        let requested = expires.unwrap_or(self.limits.default_expires);
        if requested != 0 && requested < self.limits.min_expires {
            return Err(SubscribeError::IntervalTooBrief {
                min_expires: self.limits.min_expires,
            });
        }
        let granted = requested.min(self.limits.max_expires);
        // A refresh keeps its watcher and presentity; the dialog says who they are.
        let (watcher, presentity) = match self.subs.get(dialog) {
            Some(s) => (s.watcher.clone(), s.presentity.clone()),
            None => (watcher.to_string(), presentity.to_string()),
        };
        let auth = self.decide(&presentity, &watcher);
        let refresh = self.subs.contains_key(dialog);
        if !refresh && self.subs.len() >= self.limits.max_subscriptions && granted != 0 {
            return Err(SubscribeError::TooManySubscriptions(
                self.limits.max_subscriptions,
            ));
        }
        let reason = match (auth, granted) {
            (Authorization::Block, _) => Some(TerminationReason::Rejected),
            (_, 0) => Some(TerminationReason::Timeout),
            _ => None,
        };
        if let Some(reason) = reason {
            // A fetch (RFC 6665 §4.4.3) or an unsubscribe: the final NOTIFY has the state
            // when the watcher is allowed to see it.
            let allowed = auth == Authorization::Allow;
            self.remove(dialog);
            let state = SubscriptionState::Terminated { reason };
            self.out.push_back(Notify {
                dialog: dialog.clone(),
                presentity: presentity.clone(),
                watcher,
                state,
                body: allowed.then(|| Self::body(docs, &presentity)),
            });
            return Ok(Subscribed { expires: 0, state });
        }
        let expires_at = now + Duration::from_secs(granted.into());
        if let Some(s) = self.subs.get_mut(dialog) {
            self.timers.remove(&(s.expires_at, dialog.clone()));
            s.expires_at = expires_at;
            if auth == Authorization::Allow {
                s.activate();
            }
        } else {
            self.subs.insert(
                dialog.clone(),
                Subscription {
                    watcher,
                    presentity: presentity.clone(),
                    state: match auth {
                        Authorization::Allow => SubState::Active,
                        _ => SubState::Pending,
                    },
                    expires_at,
                },
            );
            self.by_presentity
                .entry(presentity)
                .or_default()
                .insert(dialog.clone());
        }
        self.timers.insert((expires_at, dialog.clone()));
        let state = self.queue_current(now, dialog, docs);
        Ok(Subscribed {
            expires: granted,
            state,
        })
    }

    /// Handles a SUBSCRIBE inside the subscription's dialog (RFC 6665 §4.1.2.2): a refresh,
    /// or with Expires 0 an unsubscribe, as [`Self::subscribe`] does for a known dialog. A
    /// dialog with no live subscription is a [`SubscribeError::NoSuchSubscription`].
    pub fn refresh(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        expires: Option<u32>,
        docs: &dyn PresenceDocuments,
    ) -> Result<Subscribed, SubscribeError> {
        self.expire(now, docs);
        let s = self
            .subs
            .get(dialog)
            .ok_or(SubscribeError::NoSuchSubscription)?;
        let (watcher, presentity) = (s.watcher.clone(), s.presentity.clone());
        self.subscribe(now, dialog, &watcher, &presentity, expires, docs)
    }

    fn body(docs: &dyn PresenceDocuments, presentity: &str) -> Pidf {
        docs.document(presentity)
            .unwrap_or_else(|| Pidf::empty(presentity))
    }

    /// Queues a NOTIFY with the current state of `dialog`'s subscription.
    fn queue_current(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        docs: &dyn PresenceDocuments,
    ) -> SubscriptionState {
        let s = &self.subs[dialog];
        let state = Self::state_of(now, s);
        self.out.push_back(Notify {
            dialog: dialog.clone(),
            presentity: s.presentity.clone(),
            watcher: s.watcher.clone(),
            state,
            body: (s.state == SubState::Active).then(|| Self::body(docs, &s.presentity)),
        });
        state
    }

    fn remove(&mut self, dialog: &DialogId) -> Option<Subscription> {
        let s = self.subs.remove(dialog)?;
        self.timers.remove(&(s.expires_at, dialog.clone()));
        if let Some(set) = self.by_presentity.get_mut(&s.presentity) {
            set.remove(dialog);
            if set.is_empty() {
                self.by_presentity.remove(&s.presentity);
            }
        }
        Some(s)
    }

    /// Ends `dialog`'s subscription with a final NOTIFY `terminated;reason=…` (with the
    /// document if it was active and the reason still lets the watcher see it).
    pub fn terminate(
        &mut self,
        dialog: &DialogId,
        reason: TerminationReason,
        docs: &dyn PresenceDocuments,
    ) {
        let Some(s) = self.remove(dialog) else {
            return;
        };
        let show = s.state == SubState::Active && reason != TerminationReason::Rejected;
        self.out.push_back(Notify {
            dialog: dialog.clone(),
            body: show.then(|| Self::body(docs, &s.presentity)),
            presentity: s.presentity,
            watcher: s.watcher,
            state: SubscriptionState::Terminated { reason },
        });
    }

    /// Ends every subscription to `presentity` (e.g. `Noresource` when the user is
    /// deprovisioned).
    pub fn terminate_presentity(
        &mut self,
        presentity: &str,
        reason: TerminationReason,
        docs: &dyn PresenceDocuments,
    ) {
        let dialogs: Vec<DialogId> = self
            .by_presentity
            .get(presentity)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for d in dialogs {
            self.terminate(&d, reason, docs);
        }
    }

    /// Ends every subscription (shutdown: `Deactivated` tells watchers to subscribe again).
    pub fn terminate_all(&mut self, reason: TerminationReason, docs: &dyn PresenceDocuments) {
        let mut dialogs: Vec<DialogId> = self.subs.keys().cloned().collect();
        dialogs.sort();
        for d in dialogs {
            self.terminate(&d, reason, docs);
        }
    }

    /// `presentity`'s document changed (after [`EventStateCompositor::poll_changed`]): a
    /// NOTIFY to each active watcher (RFC 6665 §4.2.2). Pending watchers learn nothing.
    pub fn presentity_changed(
        &mut self,
        now: Instant,
        presentity: &str,
        docs: &dyn PresenceDocuments,
    ) {
        let dialogs: Vec<DialogId> = self
            .by_presentity
            .get(presentity)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for d in dialogs {
            if self.subs[&d].state == SubState::Active {
                self.queue_current(now, &d, docs);
            }
        }
    }

    /// How many presentities have rules.
    pub fn policies(&self) -> usize {
        self.policies.len()
    }

    /// `presentity`'s authorization rules.
    pub fn policy(&self, presentity: &str) -> Option<&WatcherPolicy> {
        self.policies.get(presentity)
    }

    /// Replaces `presentity`'s rules and applies them to the subscriptions it has: a pending
    /// watcher now allowed turns active (NOTIFY with the document); a watcher now blocked, or
    /// an active one no longer allowed, is terminated with `rejected` (RFC 6665 §4.1.3: "due
    /// to change in authorization policy").
    pub fn set_policy(
        &mut self,
        now: Instant,
        presentity: &str,
        policy: WatcherPolicy,
        docs: &dyn PresenceDocuments,
    ) {
        self.policies.insert(presentity.to_string(), policy);
        let dialogs: Vec<DialogId> = self
            .by_presentity
            .get(presentity)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for d in dialogs {
            let s = &self.subs[&d];
            match (self.decide(presentity, &s.watcher), s.state) {
                (Authorization::Allow, SubState::Pending) => {
                    if let Some(s) = self.subs.get_mut(&d) {
                        s.activate();
                    }
                    self.queue_current(now, &d, docs);
                }
                (Authorization::Block, _) | (Authorization::Confirm, SubState::Active) => {
                    self.terminate(&d, TerminationReason::Rejected, docs)
                }
                (Authorization::Allow, SubState::Active)
                | (Authorization::Confirm, SubState::Pending) => {}
            }
        }
    }

    /// Edits `presentity`'s rules with `edit` and applies them (see [`Self::set_policy`]).
    pub fn update_policy(
        &mut self,
        now: Instant,
        presentity: &str,
        docs: &dyn PresenceDocuments,
        edit: impl FnOnce(&mut WatcherPolicy),
    ) {
        let mut p = self.policies.get(presentity).cloned().unwrap_or_default();
        edit(&mut p);
        self.set_policy(now, presentity, p, docs);
    }

    /// The watchers waiting for `presentity`'s decision (what a watcher-info view would show,
    /// RFC 3857).
    pub fn pending_watchers(&self, presentity: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_presentity
            .get(presentity)
            .into_iter()
            .flatten()
            .filter_map(|d| self.subs.get(d))
            .filter(|s| s.state == SubState::Pending)
            .map(|s| s.watcher.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// When the next subscription expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Ends the subscriptions whose time is up at `now`, each with a final NOTIFY
    /// `terminated;reason=timeout` (RFC 6665 §4.2.2 and §4.1.3).
    pub fn expire(&mut self, now: Instant, docs: &dyn PresenceDocuments) {
        while let Some((at, d)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.terminate(&d, TerminationReason::Timeout, docs);
            self.timers.remove(&(at, d));
        }
    }

    /// The next NOTIFY to send.
    pub fn poll_notify(&mut self) -> Option<Notify> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
