//! The Resource List Server's subscriptions (RFC 4662), socket-free: one SUBSCRIBE to a list
//! URI stands for a subscription to each member's presence on the watcher's behalf (§4.4,
//! each member's own policy decides what the watcher sees), answered by NOTIFYs whose body is
//! the RLMI document with one PIDF per active member ([`super::rlmi::ListNotifier`]).
//!
//! ```text
//!   SUBSCRIBE list --> full state (version 0) ---------------------------+
//!                                                                        |
//!   member changed (PUBLISH, expiry, policy) --> partial: that member    |  active;expires=N
//!   list edited ------------------------------> partial: added, changed, |
//!                                               gone ones `deactivated`  |
//!   refresh SUBSCRIBE --> full state (RFC 4662 §5.2) --------------------+
//!   Expires: 0 / expiry --> final NOTIFY terminated;reason=timeout, full state
//! ```
//!
//! The list subscription itself is always active: only the list's owner may subscribe to it
//! (the node checks that). The NOTIFY's dialog (CSeq, Route set) is the node's.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::sip::Uri;

use super::rlmi::{member_state, ListBody, ListNotifier, MemberState, ResourceList};
use super::subscription::{
    DialogId, Notifier, PresenceDocuments, SubscribeError, Subscribed, SubscriptionLimits,
    SubscriptionState, TerminationReason,
};

/// The user-part parameter that makes a list URI (`sip:alice;pres-list=rcs@ims.lab`, the
/// GSMA RCS form: the owner's user part, the list's name as a parameter).
pub const LIST_PARAM: &str = "pres-list";
/// The list every user has (GSMA RCS: the RCS buddy list).
pub const DEFAULT_LIST: &str = "rcs";

/// `owner`'s list `name` as a URI: `sip:alice@ims.lab` + `rcs` -> `sip:alice;pres-list=rcs@ims.lab`.
pub fn list_uri(owner: &str, name: &str) -> Option<String> {
    let rest = owner.strip_prefix("sip:")?;
    let (user, host) = rest.split_once('@')?;
    Some(format!("sip:{user};{LIST_PARAM}={name}@{host}"))
}

/// The owner AOR and list name of a list URI (any URI parameters and case of the scheme
/// aside); `None` when `uri` is not one.
pub fn parse_list_uri(uri: &str) -> Option<(String, String)> {
    let u = Uri::parse(uri).ok()?;
    let aor = u.aor();
    let rest = aor.strip_prefix("sip:")?;
    let (userinfo, host) = rest.split_once('@')?;
    let mut parts = userinfo.split(';');
    let user = parts.next()?;
    let name = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case(LIST_PARAM).then(|| v.to_string())
    })?;
    if user.is_empty() || !valid_list_name(&name) {
        return None;
    }
    Some((format!("sip:{user}@{host}"), name))
}

/// A list name: 1-32 letters, digits, `-` or `_`.
pub fn valid_list_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A NOTIFY to send on a list subscription's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListNotify {
    /// The subscription's dialog.
    pub dialog: DialogId,
    /// The list URI.
    pub list: String,
    /// The watcher (the list's owner).
    pub watcher: String,
    /// The `Subscription-State` header.
    pub state: SubscriptionState,
    /// The `multipart/related` body (none in a final NOTIFY that shows nothing).
    pub body: Option<ListBody>,
}

#[derive(Debug)]
struct ListSub {
    watcher: String,
    list: String,
    members: Vec<String>,
    notifier: ListNotifier,
    expires_at: Instant,
}

/// Seconds left until `at`, rounded up.
fn left(now: Instant, at: Instant) -> u32 {
    let d = at.saturating_duration_since(now);
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// Every list subscription, indexed by dialog, by member and by list.
#[derive(Debug)]
pub struct ListSubscriptions {
    limits: SubscriptionLimits,
    domain: String,
    subs: HashMap<DialogId, ListSub>,
    by_member: HashMap<String, BTreeSet<DialogId>>,
    by_list: HashMap<String, BTreeSet<DialogId>>,
    timers: BTreeSet<(Instant, DialogId)>,
    out: VecDeque<ListNotify>,
}

impl ListSubscriptions {
    /// No list subscriptions yet; `domain` goes into the bodies' Content-IDs.
    pub fn new(limits: SubscriptionLimits, domain: &str) -> ListSubscriptions {
        ListSubscriptions {
            limits,
            domain: domain.to_string(),
            subs: HashMap::new(),
            by_member: HashMap::new(),
            by_list: HashMap::new(),
            timers: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    /// How many list subscriptions are alive.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Whether `dialog` is a live list subscription.
    pub fn contains(&self, dialog: &DialogId) -> bool {
        self.subs.contains_key(dialog)
    }

    /// An initial SUBSCRIBE by `watcher` to `list`: active at once with a full-state NOTIFY
    /// (RFC 4662 §5.2); with Expires 0 a fetch (one final NOTIFY with the full state).
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        watcher: &str,
        list: &ResourceList,
        expires: Option<u32>,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) -> Result<Subscribed, SubscribeError> {
        if self.subs.contains_key(dialog) {
            return self.refresh(now, dialog, expires, list, notifier, docs);
        }
        let granted = self.granted(expires)?;
        if granted != 0 && self.subs.len() >= self.limits.max_subscriptions {
            return Err(SubscribeError::TooManySubscriptions(
                self.limits.max_subscriptions,
            ));
        }
        let mut sub = ListSub {
            watcher: watcher.to_string(),
            list: list.uri().to_string(),
            members: list.members().to_vec(),
            notifier: ListNotifier::new(list.uri(), &self.domain),
            expires_at: now + Duration::from_secs(granted.into()),
        };
        if granted == 0 {
            let state = SubscriptionState::Terminated {
                reason: TerminationReason::Timeout,
            };
            let body = Self::full(&mut sub, notifier, docs);
            self.out.push_back(ListNotify {
                dialog: dialog.clone(),
                list: sub.list,
                watcher: sub.watcher,
                state,
                body: Some(body),
            });
            return Ok(Subscribed { expires: 0, state });
        }
        for m in &sub.members {
            self.by_member
                .entry(m.clone())
                .or_default()
                .insert(dialog.clone());
        }
        self.by_list
            .entry(sub.list.clone())
            .or_default()
            .insert(dialog.clone());
        self.timers.insert((sub.expires_at, dialog.clone()));
        self.subs.insert(dialog.clone(), sub);
        let state = self.queue_full(now, dialog, notifier, docs);
        Ok(Subscribed {
            expires: granted,
            state,
        })
    }

    /// A SUBSCRIBE in the dialog: a refresh (full state again, RFC 4662 §5.2) or, with
    /// Expires 0, the end (final NOTIFY with the full state). `list` is the list now.
    pub fn refresh(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        expires: Option<u32>,
        list: &ResourceList,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) -> Result<Subscribed, SubscribeError> {
        if !self.subs.contains_key(dialog) {
            return Err(SubscribeError::NoSuchSubscription);
        }
        let granted = self.granted(expires)?;
        if granted == 0 {
            self.terminate(dialog, TerminationReason::Timeout, notifier, docs);
            return Ok(Subscribed {
                expires: 0,
                state: SubscriptionState::Terminated {
                    reason: TerminationReason::Timeout,
                },
            });
        }
        self.set_members(dialog, list.members());
        if let Some(s) = self.subs.get_mut(dialog) {
            self.timers.remove(&(s.expires_at, dialog.clone()));
            s.expires_at = now + Duration::from_secs(granted.into());
            self.timers.insert((s.expires_at, dialog.clone()));
        }
        let state = self.queue_full(now, dialog, notifier, docs);
        Ok(Subscribed {
            expires: granted,
            state,
        })
    }

    /// Queues a full-state NOTIFY for `dialog` (the node dropped partial ones a slow watcher
    /// had not taken yet: RFC 4662 §5.2 lets the RLS send full state at any time).
    pub fn resync(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) {
        if self.subs.contains_key(dialog) {
            self.queue_full(now, dialog, notifier, docs);
        }
    }

    /// The list URI `dialog` subscribes to, if it is alive.
    pub fn list_of(&self, dialog: &DialogId) -> Option<&str> {
        self.subs.get(dialog).map(|s| s.list.as_str())
    }

    fn granted(&self, expires: Option<u32>) -> Result<u32, SubscribeError> {
        let requested = expires.unwrap_or(self.limits.default_expires);
        if requested != 0 && requested < self.limits.min_expires {
            return Err(SubscribeError::IntervalTooBrief {
                min_expires: self.limits.min_expires,
            });
        }
        Ok(requested.min(self.limits.max_expires))
    }

    fn states(
        sub: &ListSub,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) -> Vec<MemberState> {
        sub.members
            .iter()
            .map(|m| member_state(m, &sub.watcher, notifier, docs))
            .collect()
    }

    fn full(sub: &mut ListSub, notifier: &Notifier, docs: &dyn PresenceDocuments) -> ListBody {
        let states = Self::states(sub, notifier, docs);
        sub.notifier.full_state(&states)
    }

    fn queue_full(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) -> SubscriptionState {
        let Some(sub) = self.subs.get_mut(dialog) else {
            return SubscriptionState::Terminated {
                reason: TerminationReason::Noresource,
            };
        };
        let body = Self::full(sub, notifier, docs);
        let state = SubscriptionState::Active {
            expires: left(now, sub.expires_at),
        };
        self.out.push_back(ListNotify {
            dialog: dialog.clone(),
            list: sub.list.clone(),
            watcher: sub.watcher.clone(),
            state,
            body: Some(body),
        });
        state
    }

    /// `member`'s document or policy changed: a partial NOTIFY with that member to every
    /// list subscription holding it whose watcher sees a difference.
    pub fn member_changed(
        &mut self,
        now: Instant,
        member: &str,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) {
        let Some(dialogs) = self.by_member.get(member) else {
            return;
        };
        // The document is the same for every watcher allowed to see it: read it once.
        let doc = docs.document(member);
        let one = SingleDoc { member, doc };
        for d in dialogs {
            let Some(sub) = self.subs.get_mut(d) else {
                continue;
            };
            let state = member_state(member, &sub.watcher, notifier, &one);
            if let Some(body) = sub.notifier.changed(std::slice::from_ref(&state)) {
                self.out.push_back(ListNotify {
                    dialog: d.clone(),
                    list: sub.list.clone(),
                    watcher: sub.watcher.clone(),
                    state: SubscriptionState::Active {
                        expires: left(now, sub.expires_at),
                    },
                    body: Some(body),
                });
            }
        }
    }

    /// `list` was edited: each subscription to it gets the members now, and a partial NOTIFY
    /// with those added or changed and those gone (`terminated;reason=deactivated`).
    pub fn list_changed(
        &mut self,
        now: Instant,
        list: &ResourceList,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) {
        let dialogs: Vec<DialogId> = self
            .by_list
            .get(list.uri())
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for d in dialogs {
            self.set_members(&d, list.members());
            let Some(sub) = self.subs.get_mut(&d) else {
                continue;
            };
            let states = Self::states(sub, notifier, docs);
            if let Some(body) = sub.notifier.partial(&states) {
                self.out.push_back(ListNotify {
                    dialog: d.clone(),
                    list: sub.list.clone(),
                    watcher: sub.watcher.clone(),
                    state: SubscriptionState::Active {
                        expires: left(now, sub.expires_at),
                    },
                    body: Some(body),
                });
            }
        }
    }

    /// Gives `dialog` the members `members`, keeping the member index right.
    fn set_members(&mut self, dialog: &DialogId, members: &[String]) {
        let Some(sub) = self.subs.get_mut(dialog) else {
            return;
        };
        if sub.members == members {
            return;
        }
        for m in &sub.members {
            unindex(&mut self.by_member, m, dialog);
        }
        sub.members = members.to_vec();
        for m in members {
            self.by_member
                .entry(m.clone())
                .or_default()
                .insert(dialog.clone());
        }
    }

    fn remove(&mut self, dialog: &DialogId) -> Option<ListSub> {
        let s = self.subs.remove(dialog)?;
        self.timers.remove(&(s.expires_at, dialog.clone()));
        for m in &s.members {
            unindex(&mut self.by_member, m, dialog);
        }
        unindex(&mut self.by_list, &s.list, dialog);
        Some(s)
    }

    /// Ends `dialog`'s subscription with a final NOTIFY `terminated;reason=…`: with the full
    /// state when it ran out or was ended by its watcher (`timeout`), without otherwise.
    pub fn terminate(
        &mut self,
        dialog: &DialogId,
        reason: TerminationReason,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) {
        let Some(mut s) = self.remove(dialog) else {
            return;
        };
        let body =
            (reason == TerminationReason::Timeout).then(|| Self::full(&mut s, notifier, docs));
        self.out.push_back(ListNotify {
            dialog: dialog.clone(),
            list: s.list,
            watcher: s.watcher,
            state: SubscriptionState::Terminated { reason },
            body,
        });
    }

    /// Ends every list subscription (shutdown).
    pub fn terminate_all(
        &mut self,
        reason: TerminationReason,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) {
        let mut dialogs: Vec<DialogId> = self.subs.keys().cloned().collect();
        dialogs.sort();
        for d in dialogs {
            self.terminate(&d, reason, notifier, docs);
        }
    }

    /// Drops `dialog` without a NOTIFY (its watcher answered 481 or not at all: RFC 6665
    /// §4.2.2).
    pub fn forget(&mut self, dialog: &DialogId) -> bool {
        self.remove(dialog).is_some()
    }

    /// Ends the subscriptions whose time is up at `now` (final NOTIFY, `timeout`).
    pub fn expire(&mut self, now: Instant, notifier: &Notifier, docs: &dyn PresenceDocuments) {
        while let Some((at, d)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, d.clone()));
            self.terminate(&d, TerminationReason::Timeout, notifier, docs);
        }
    }

    /// The next NOTIFY to send.
    pub fn poll_notify(&mut self) -> Option<ListNotify> {
        self.out.pop_front()
    }
}

fn unindex(map: &mut HashMap<String, BTreeSet<DialogId>>, key: &str, dialog: &DialogId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(dialog);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// One member's document, read once for all the subscriptions that hold it.
struct SingleDoc<'a> {
    member: &'a str,
    doc: Option<super::pidf::Pidf>,
}

impl PresenceDocuments for SingleDoc<'_> {
    fn document(&self, entity: &str) -> Option<super::pidf::Pidf> {
        (entity == self.member).then(|| self.doc.clone()).flatten()
    }
}

#[cfg(test)]
mod tests;
