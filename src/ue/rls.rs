//! The watcher's side of a presence list subscription: one SUBSCRIBE to the user's buddy list
//! at the Resource List Server (RFC 4662 event lists over RFC 6665, the GSMA RCS list URI
//! `sip:<user>;pres-list=rcs@<domain>`), its NOTIFYs (`multipart/related` with RLMI and one
//! PIDF per active member, read by [`crate::presence::rlmi::parse_body`]) kept as a list of
//! buddies, refreshed before it expires and made again when the RLS loses it (481, a
//! `terminated` NOTIFY, a version gap).
//!
//! Split the quinn way (STYLE.md §1): [`BuddyList`] (what the NOTIFYs say) and
//! [`ListSubscription`] (when to SUBSCRIBE, with the time passed in) hold no sockets;
//! [`ListWatcher`] is the tokio driver on the UE's own SIP endpoint, whose presence NOTIFYs
//! [`Ue::split_presence_notifies`] sets apart from what the rest of the client serves.
//!
//! ```text
//!  start         2xx / NOTIFY active|pending        refresh due (half the granted Expires)
//! ------> [Subscribing] -------------------> [Up] -------------------> [Refreshing]
//!            |    ^    non-2xx, no answer     | ^          2xx            |
//!            |    |                           | +-------------------------+
//!            |    +--- 481, version gap ------+-+----- 481 ---------------+
//!            v         (new dialog, at once)  |  terminated (deactivated, timeout: at once;
//!        [Waiting] <-- retry due -------------+   probation, giveup: after Retry-After)
//!            (RETRY)                          |  terminated (rejected, noresource) -> [Failed]
//!  any --stop--> [Ending] (Expires: 0) --answer or terminated NOTIFY--> [Ended]
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::{Ue, UeConfig};
use crate::presence::pidf::{timestamp, Activity, Pidf};
use crate::presence::rlmi::{parse_body, InstanceState, ParsedListBody, RlmiLimits};
use crate::sip::endpoint::Incoming;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Request, Response};

/// The name of the RCS buddy list every user has at the RLS.
pub const LIST_NAME: &str = crate::presence::rls::DEFAULT_LIST;
/// What the list SUBSCRIBE accepts (RFC 4662 §4.1, RFC 3856 §6.5).
pub const ACCEPT: &str = "application/pidf+xml, application/rlmi+xml, multipart/related";
/// Wait before a new subscription after one failed or was given up by the RLS; it doubles
/// with each failure in a row, up to [`MAX_RETRY`].
pub const RETRY: Duration = Duration::from_secs(30);
/// The longest wait between attempts (a user with no list at the RLS costs one SUBSCRIBE per
/// ten minutes).
pub const MAX_RETRY: Duration = Duration::from_secs(600);
/// The Expires the watcher asks for.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// How long ending the subscription (Expires: 0, then the terminated NOTIFY) may take.
pub const END_WAIT: Duration = Duration::from_secs(3);

/// The RCS list URI of `aor` (`sip:alice@ims.lab` -> `sip:alice;pres-list=rcs@ims.lab`, as
/// the RLS spells it: [`crate::presence::rls::list_uri`]); `None` for an identity without a
/// plain user part.
pub fn list_uri(aor: &str) -> Option<String> {
    let (user, host) = aor.strip_prefix("sip:")?.split_once('@')?;
    if user.is_empty() || host.is_empty() || user.contains(';') {
        return None;
    }
    crate::presence::rls::list_uri(aor, LIST_NAME)
}

// ---------------------------------------------------------------------------------------------
// What the NOTIFYs say.

/// A buddy's state as a client shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuddyState {
    /// Open, no activity that says otherwise.
    Online,
    /// Open, RPID `away` (RFC 4480), or on a meal or vacation.
    Away,
    /// Open, RPID `busy`, `on-the-phone` or `meeting`.
    Busy,
    /// Closed, no state, or the RLS's subscription to them ended.
    Offline,
    /// The buddy has not authorized us yet (RFC 4662 §5 `pending`).
    Pending,
}

impl BuddyState {
    /// The lower-case word (`online`, ...), as the WebRSF API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuddyState::Online => "online",
            BuddyState::Away => "away",
            BuddyState::Busy => "busy",
            BuddyState::Offline => "offline",
            BuddyState::Pending => "pending",
        }
    }
}

/// One member of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buddy {
    /// The member's URI (`sip:bob@ims.lab`).
    pub uri: String,
    /// What to show.
    pub state: BuddyState,
    /// The person's note (RFC 4479 `<dm:note>`), else a tuple's or the document's.
    pub note: Option<String>,
    /// When they were last seen (RFC 3339 UTC), for a buddy offline: the newest `<timestamp>`
    /// of the closed document (the PS's "last seen" tuples), else when we saw them go.
    pub last_seen: Option<String>,
}

/// A buddy from one RLMI resource: its instance state and, when active, its PIDF.
pub fn buddy_of(uri: &str, state: &InstanceState, doc: Option<&Pidf>) -> Buddy {
    let mut b = Buddy {
        uri: uri.to_string(),
        state: BuddyState::Offline,
        note: None,
        last_seen: None,
    };
    match (state, doc) {
        (InstanceState::Pending, _) => b.state = BuddyState::Pending,
        (InstanceState::Active, Some(d)) => {
            let person = d.person.as_ref();
            b.note = person
                .and_then(|p| p.note.clone())
                .or_else(|| d.tuples.iter().find_map(|t| t.notes.first().cloned()))
                .or_else(|| d.notes.first().cloned());
            if d.is_open() {
                let acts = person.map(|p| p.activities.as_slice()).unwrap_or(&[]);
                b.state = if acts
                    .iter()
                    .any(|a| matches!(a, Activity::Busy | Activity::OnThePhone | Activity::Meeting))
                {
                    BuddyState::Busy
                } else if acts
                    .iter()
                    .any(|a| matches!(a, Activity::Away | Activity::Meal | Activity::Vacation))
                {
                    BuddyState::Away
                } else {
                    BuddyState::Online
                };
            } else {
                b.last_seen = d
                    .tuples
                    .iter()
                    .filter_map(|t| t.timestamp.clone())
                    .chain(person.and_then(|p| p.timestamp.clone()))
                    .max();
            }
        }
        // Active without a document (no state yet) or terminated: nothing to show as online.
        _ => {}
    }
    b
}

/// Why a list NOTIFY could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// A partial state whose version is not the next one (RFC 4662 §5: a NOTIFY was lost;
    /// the state is unknown until a full state comes).
    #[error("list version {got} after {had:?}: a notification was lost")]
    VersionGap {
        /// The last version applied.
        had: Option<u32>,
        /// The version received.
        got: u32,
    },
    /// The RLMI names another list.
    #[error("the RLMI is about {0}, not our list")]
    OtherList(String),
    /// More members than the watcher keeps.
    #[error("more than {0} members")]
    TooMany(usize),
}

/// What one NOTIFY changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChange {
    /// Buddies new or changed, in RLMI order.
    pub changed: Vec<Buddy>,
    /// Members gone from the list (`terminated;reason=deactivated`, or left out of a full
    /// state).
    pub removed: Vec<String>,
    /// It came with a full state (the whole list is known from now on).
    pub full_state: bool,
}

impl ListChange {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The watcher's copy of the list (RFC 4662 §5): a full state replaces it, a partial state
/// updates the members it names, versions go up by one within a subscription.
#[derive(Debug, Clone)]
pub struct BuddyList {
    uri: String,
    version: Option<u32>,
    buddies: BTreeMap<String, Buddy>,
    max: usize,
}

impl BuddyList {
    /// An empty copy of list `uri`, keeping at most `max` members.
    pub fn new(uri: &str, max: usize) -> BuddyList {
        BuddyList {
            uri: uri.to_string(),
            version: None,
            buddies: BTreeMap::new(),
            max,
        }
    }

    /// The members, by URI.
    pub fn buddies(&self) -> impl Iterator<Item = &Buddy> {
        self.buddies.values()
    }

    /// A new subscription starts: its versions start again (the members stay until its
    /// full state replaces them).
    pub fn new_subscription(&mut self) {
        self.version = None;
    }

    /// Applies a NOTIFY body received at `now`.
    pub fn apply(
        &mut self,
        body: &ParsedListBody,
        now: SystemTime,
    ) -> Result<ListChange, ListError> {
        let rlmi = &body.rlmi;
        if !same_list(&rlmi.uri, &self.uri) {
            return Err(ListError::OtherList(rlmi.uri.clone()));
        }
        if !rlmi.full_state && self.version.and_then(|v| v.checked_add(1)) != Some(rlmi.version) {
            // An old copy (a retransmission answered already) is no news.
            if self.version.is_some_and(|v| rlmi.version <= v) {
                return Ok(ListChange::default());
            }
            return Err(ListError::VersionGap {
                had: self.version,
                got: rlmi.version,
            });
        }
        let mut next = if rlmi.full_state {
            BTreeMap::new()
        } else {
            self.buddies.clone()
        };
        let mut change = ListChange {
            full_state: rlmi.full_state,
            ..ListChange::default()
        };
        for r in &rlmi.resources {
            // One instance per resource from our RLS; the last one wins otherwise.
            let Some(inst) = r.instances.last() else {
                continue;
            };
            if matches!(&inst.state, InstanceState::Terminated { reason: Some(x) } if x == "deactivated")
            {
                next.remove(&r.uri);
                continue;
            }
            let doc = inst.cid.as_deref().and_then(|cid| {
                body.documents
                    .iter()
                    .find(|(c, _)| c == cid)
                    .map(|(_, d)| d)
            });
            let mut b = buddy_of(&r.uri, &inst.state, doc);
            let old = self.buddies.get(&r.uri);
            if b.state == BuddyState::Offline && b.last_seen.is_none() {
                b.last_seen = match old {
                    // Seen going: now is when they were last seen.
                    Some(o)
                        if matches!(
                            o.state,
                            BuddyState::Online | BuddyState::Away | BuddyState::Busy
                        ) =>
                    {
                        Some(timestamp(now))
                    }
                    Some(o) => o.last_seen.clone(),
                    None => None,
                };
            }
            if next.len() >= self.max && !next.contains_key(&r.uri) {
                return Err(ListError::TooMany(self.max));
            }
            next.insert(r.uri.clone(), b);
        }
        for (uri, b) in &next {
            if self.buddies.get(uri) != Some(b) {
                change.changed.push(b.clone());
            }
        }
        change.removed = self
            .buddies
            .keys()
            .filter(|u| !next.contains_key(*u))
            .cloned()
            .collect();
        self.buddies = next;
        self.version = Some(rlmi.version);
        Ok(change)
    }
}

/// The RLMI's list URI names our list (owner and name, whatever else the URI carries).
fn same_list(a: &str, b: &str) -> bool {
    use crate::presence::rls::parse_list_uri;
    match (parse_list_uri(a), parse_list_uri(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

// ---------------------------------------------------------------------------------------------
// When to SUBSCRIBE.

/// The subscription's state as an application shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// A SUBSCRIBE is out and nothing came back yet.
    Subscribing,
    /// The RLS accepted it and is waiting for authorization.
    Pending,
    /// Up.
    Active,
    /// It failed or was ended; a new one comes after a while.
    Retrying,
    /// The RLS refused it for good (`rejected`, `noresource`).
    Failed,
    /// Ended by us.
    Ended,
}

impl SubscriptionStatus {
    /// The lower-case word (`active`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Subscribing => "subscribing",
            SubscriptionStatus::Pending => "pending",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Retrying => "retrying",
            SubscriptionStatus::Failed => "failed",
            SubscriptionStatus::Ended => "ended",
        }
    }
}

/// A `Subscription-State` value, read (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// `active;expires=N`.
    Active(Option<u32>),
    /// `pending;expires=N`.
    Pending(Option<u32>),
    /// `terminated;reason=R;retry-after=S`.
    Terminated {
        /// The reason.
        reason: Option<String>,
        /// Seconds before a new subscription.
        retry_after: Option<u32>,
    },
}

impl SubState {
    /// Reads a header value; `None` when the state is not one of the three.
    pub fn parse(v: &str) -> Option<SubState> {
        let mut it = v.split(';').map(str::trim);
        let word = it.next()?.to_ascii_lowercase();
        let mut params = BTreeMap::new();
        for p in it {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            params.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
        let num = |k: &str| params.get(k).and_then(|v| v.parse().ok());
        match word.as_str() {
            "active" => Some(SubState::Active(num("expires"))),
            "pending" => Some(SubState::Pending(num("expires"))),
            "terminated" => Some(SubState::Terminated {
                reason: params.get("reason").map(|r| r.to_ascii_lowercase()),
                retry_after: num("retry-after"),
            }),
            _ => None,
        }
    }
}

/// A request the subscription wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// An initial SUBSCRIBE (a new dialog) with this Expires.
    Subscribe(u32),
    /// A refresh inside the dialog with this Expires.
    Refresh(u32),
    /// `Expires: 0` inside the dialog.
    Unsubscribe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Subscribing,
    Up { pending: bool },
    Refreshing { pending: bool },
    Waiting,
    Failed,
    Ending,
    Ended,
}

/// Half of a lifetime in seconds (at least one second): when a refresh is due.
fn half_life(secs: u32) -> Duration {
    Duration::from_millis(u64::from(secs.max(2)) * 500)
}

/// The subscription's lifecycle without sockets (the diagram of this module): inputs are the
/// answers, the NOTIFYs' `Subscription-State` and the time; out come [`Transmit`]s and the
/// next timeout.
#[derive(Debug)]
pub struct ListSubscription {
    phase: Phase,
    expires: u32,
    timer: Option<Instant>,
    out: VecDeque<Transmit>,
    /// Failed attempts in a row (the back-off).
    failures: u32,
}

impl ListSubscription {
    /// A subscription that will ask for `expires` seconds.
    pub fn new(expires: u32) -> ListSubscription {
        ListSubscription {
            phase: Phase::Idle,
            expires: expires.max(1),
            timer: None,
            out: VecDeque::new(),
            failures: 0,
        }
    }

    /// Sends the initial SUBSCRIBE (from idle or waiting).
    pub fn start(&mut self) {
        if matches!(
            self.phase,
            Phase::Idle
                | Phase::Waiting
                | Phase::Up { .. }
                | Phase::Refreshing { .. }
                | Phase::Subscribing
        ) {
            self.phase = Phase::Subscribing;
            self.timer = None;
            self.out.push_back(Transmit::Subscribe(self.expires));
        }
    }

    fn wait(&mut self, now: Instant, d: Duration) {
        self.phase = Phase::Waiting;
        self.timer = Some(now + d);
    }

    /// The final answer to the last SUBSCRIBE sent.
    pub fn on_response(
        &mut self,
        now: Instant,
        status: u16,
        granted: Option<u32>,
        min_expires: Option<u32>,
    ) {
        match self.phase {
            Phase::Subscribing | Phase::Refreshing { .. } => {}
            // The 2xx: the terminated NOTIFY that follows ends it (RFC 6665 §4.1.2.3).
            Phase::Ending if status < 300 => return,
            Phase::Ending => {
                self.phase = Phase::Ended;
                self.timer = None;
                return;
            }
            _ => return,
        }
        let refreshing = matches!(self.phase, Phase::Refreshing { .. });
        match status {
            200..=299 => {
                self.failures = 0;
                let pending = match self.phase {
                    Phase::Refreshing { pending } => pending,
                    _ => status == 202,
                };
                // Granted 0: the RLS ends it at once; its terminated NOTIFY says why.
                let secs = granted.unwrap_or(self.expires);
                self.phase = Phase::Up { pending };
                self.timer = Some(now + half_life(secs));
            }
            // RFC 6665 §4.1.2.1: ask again with at least Min-Expires.
            423 if min_expires.is_some_and(|m| m > self.expires && m <= 86_400) => {
                self.expires = min_expires.unwrap_or(self.expires);
                self.out.push_back(if refreshing {
                    Transmit::Refresh(self.expires)
                } else {
                    Transmit::Subscribe(self.expires)
                });
            }
            // RFC 6665 §4.1.2.2: the RLS lost the dialog; a new subscription.
            481 if refreshing => self.start(),
            _ => {
                let backoff = RETRY.saturating_mul(1 << self.failures.min(5));
                self.failures = self.failures.saturating_add(1);
                self.wait(now, backoff.min(MAX_RETRY));
            }
        }
    }

    /// A NOTIFY of this subscription arrived with `state`.
    pub fn on_notify(&mut self, now: Instant, state: &SubState) {
        match (self.phase, state) {
            (Phase::Ending, SubState::Terminated { .. }) => {
                self.phase = Phase::Ended;
                self.timer = None;
            }
            (Phase::Ending | Phase::Ended | Phase::Failed | Phase::Idle, _) => {}
            (
                _,
                SubState::Terminated {
                    reason,
                    retry_after,
                },
            ) => match reason.as_deref() {
                Some("rejected") | Some("noresource") | Some("invariant") => {
                    self.phase = Phase::Failed;
                    self.timer = None;
                }
                // RFC 6665 §4.1.3: a new subscription at once for these.
                Some("deactivated") | Some("timeout") if retry_after.is_none() => self.start(),
                _ => {
                    let d = retry_after.map_or(RETRY, |s| Duration::from_secs(u64::from(s)));
                    self.wait(now, d);
                }
            },
            (Phase::Waiting, _) => {}
            (phase, SubState::Active(exp) | SubState::Pending(exp)) => {
                let pending = matches!(state, SubState::Pending(_));
                self.phase = match phase {
                    Phase::Refreshing { .. } => Phase::Refreshing { pending },
                    _ => Phase::Up { pending },
                };
                // A shorter lifetime than granted: refresh before it ends.
                if let Some(e) = exp {
                    let due = now + half_life(*e);
                    if matches!(self.phase, Phase::Up { .. }) && self.timer.is_none_or(|t| t > due)
                    {
                        self.timer = Some(due);
                    }
                }
            }
        }
    }

    /// The state is no longer known (a version gap): a new subscription gets a full state.
    pub fn resync(&mut self) {
        if matches!(
            self.phase,
            Phase::Up { .. } | Phase::Refreshing { .. } | Phase::Subscribing
        ) {
            self.start();
        }
    }

    /// Ends it: `Expires: 0` when a dialog may exist; true when a request goes out.
    pub fn stop(&mut self, has_dialog: bool) -> bool {
        self.timer = None;
        match self.phase {
            Phase::Up { .. } | Phase::Refreshing { .. } | Phase::Subscribing if has_dialog => {
                self.phase = Phase::Ending;
                self.out.push_back(Transmit::Unsubscribe);
                true
            }
            _ => {
                self.phase = Phase::Ended;
                false
            }
        }
    }

    /// Time passed: a refresh or a new attempt may be due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_none_or(|t| t > now) {
            return;
        }
        self.timer = None;
        match self.phase {
            Phase::Up { pending } => {
                self.phase = Phase::Refreshing { pending };
                self.out.push_back(Transmit::Refresh(self.expires));
            }
            Phase::Waiting => self.start(),
            _ => {}
        }
    }

    /// When [`Self::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// What to show.
    pub fn status(&self) -> SubscriptionStatus {
        match self.phase {
            Phase::Idle | Phase::Subscribing => SubscriptionStatus::Subscribing,
            Phase::Up { pending: true } | Phase::Refreshing { pending: true } => {
                SubscriptionStatus::Pending
            }
            Phase::Up { .. } | Phase::Refreshing { .. } => SubscriptionStatus::Active,
            Phase::Waiting => SubscriptionStatus::Retrying,
            Phase::Failed => SubscriptionStatus::Failed,
            Phase::Ending | Phase::Ended => SubscriptionStatus::Ended,
        }
    }

    /// Ended, nothing more to do.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }
}

#[cfg(test)]
mod tests;

mod watcher;
pub use watcher::{ListEvent, ListWatcher};
