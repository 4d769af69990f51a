//! PS, the presence server (3GPP TS 24.141 §5.3, RFC 3856 §6): an application server the
//! S-CSCF reaches by iFC on the terminating side for `PUBLISH` / `SUBSCRIBE` of the `presence`
//! event package. A thin tokio driver over the socket-free cores of [`crate::presence`]:
//!
//! ```text
//!   PUBLISH ----> EventStateCompositor (RFC 3903) --poll_changed()--+
//!                                                                    v
//!   SUBSCRIBE --> Notifier (RFC 6665, RFC 3856 §6) <-- presentity_changed()
//!                    |  poll_notify()
//!                    v
//!                NOTIFY in the subscription dialog ([`sip::NotifyDialog`]) --> first Route
//! ```
//!
//! A tick each second runs both cores' `expire(now)`; what expires goes out as NOTIFYs too.
//! The PS is the UAS of every request it gets (it never proxies one back to the S-CSCF).
//! Watcher authorization comes from `[presence] buddy_groups` at start-up.

pub mod lists;
mod regwatch;
mod rls;
pub mod rules;
pub mod sip;

pub use rls::{RuleError, WatcherRules};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::PresenceSection;
use crate::cscf::{in_dialog, next_hop, reject};
use crate::presence::publication::{EventStateCompositor, PublicationLimits, PublishError};
use crate::presence::rls::ListSubscriptions;
use crate::presence::subscription::{
    DialogId, Notifier, SubscribeError, SubscriptionLimits, TerminationReason, WatcherPolicy,
};
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, Request, Response};
use crate::store::{GroupCommit, StoreError};
use sip::{NotifyDialog, PsRequestError};

/// NOTIFY transactions in flight at once; past it a NOTIFY is dropped (and logged): a watcher
/// that does not answer must not make the PS hold unbounded work.
const MAX_NOTIFYS_IN_FLIGHT: usize = 1024;

/// Partial list NOTIFYs waiting behind one in flight on a dialog; past it they are dropped
/// and the list subscription gets one full-state NOTIFY instead (RFC 4662 §5.2 lets the RLS
/// send full state at any time).
const MAX_LIST_BACKLOG: usize = 32;

/// The cores and the dialogs of their subscriptions, behind one lock.
struct State {
    esc: EventStateCompositor,
    notifier: Notifier,
    /// The list subscriptions of the RLS (RFC 4662).
    rls: ListSubscriptions,
    /// The lists they subscribe to.
    lists: lists::ListBook,
    /// Watcher rules written at run time, kept in the store.
    rules: rules::RuleStore,
    /// Our reg-event subscriptions, by presentity ([`regwatch`]); at most `max_presentities`,
    /// which bounds the watcher rules written at run time too.
    reg_watch: HashMap<String, regwatch::RegWatch>,
    max_presentities: usize,
    /// One per live subscription, presentity or list (and until its final NOTIFY is built):
    /// bounded by `max_dialogs`.
    dialogs: HashMap<DialogId, NotifyDialog>,
    max_dialogs: usize,
    /// Dialogs with a NOTIFY in flight, each with the NOTIFYs waiting behind it: one NOTIFY
    /// at a time per dialog, so that they arrive in CSeq order (RFC 3261 §12.2.2: a lower
    /// CSeq would be refused). A presence NOTIFY carries the whole state, so a newer one
    /// replaces those waiting; a list's partial NOTIFYs queue, up to [`MAX_LIST_BACKLOG`].
    /// Bounded by the dialogs (and their final NOTIFYs).
    sending: HashMap<DialogId, VecDeque<Request>>,
}

impl State {
    /// After any input: changed presentities to the notifier, then every queued NOTIFY as a
    /// request in its dialog (a terminated subscription's dialog goes with its final NOTIFY;
    /// a NOTIFY for a dialog we no longer hold is dropped).
    fn drain(&mut self, now: Instant, contact: &str) -> Vec<Request> {
        while let Some(entity) = self.esc.poll_changed() {
            self.notifier.presentity_changed(now, &entity, &self.esc);
            self.rls
                .member_changed(now, &entity, &self.notifier, &self.esc);
        }
        let mut out = Vec::new();
        while let Some(n) = self.notifier.poll_notify() {
            let last = sip::is_final(&n.state);
            let Some(d) = self.dialogs.get_mut(&n.dialog) else {
                continue;
            };
            out.push(d.notify_request(&n, contact));
            if last {
                self.dialogs.remove(&n.dialog);
            }
        }
        while let Some(n) = self.rls.poll_notify() {
            let last = sip::is_final(&n.state);
            let Some(d) = self.dialogs.get_mut(&n.dialog) else {
                continue;
            };
            out.push(d.list_notify_request(&n, contact));
            if last {
                self.dialogs.remove(&n.dialog);
            }
        }
        out
    }
}

/// The presence server node.
pub struct PresenceServer {
    ep: Endpoint,
    resolver: Resolver,
    /// Our SIP host name (`ps.<domain>`), as iFC name us.
    host: String,
    state: Mutex<State>,
    notifys: Arc<Semaphore>,
    /// The group commit of the store the lists are kept in (none: in memory).
    commit: Option<GroupCommit>,
    /// Ourselves, for NOTIFY tasks that report back a watcher that is gone.
    me: std::sync::Weak<PresenceServer>,
}

impl PresenceServer {
    /// A PS on `ep` named `host` (e.g. `ps.ims.lab`), with `[presence]` bounds, rules and
    /// lists; the lists written through it are kept in `store` (none: in memory only).
    pub fn new(
        ep: Endpoint,
        resolver: Resolver,
        host: &str,
        config: &PresenceSection,
        store: Option<(&sled::Db, GroupCommit)>,
    ) -> Result<Arc<PresenceServer>, StoreError> {
        let now = Instant::now();
        let esc = EventStateCompositor::new(
            PublicationLimits {
                min_expires: config.min_expires,
                max_expires: config.max_expires,
                max_presentities: config.max_presentities,
                pidf: crate::presence::pidf::PidfLimits {
                    max_body: config.max_document_bytes,
                    ..Default::default()
                },
                ..PublicationLimits::default()
            },
            now,
            SystemTime::now(),
        );
        let sub_limits = SubscriptionLimits {
            min_expires: config.min_expires,
            max_expires: config.max_expires,
            max_subscriptions: config.max_subscriptions,
            ..SubscriptionLimits::default()
        };
        let mut notifier = Notifier::new(sub_limits);
        let lists = lists::ListBook::open(
            store.as_ref().map(|(db, _)| *db),
            &config.initial_lists(),
            config.max_list_members,
            config.max_lists,
        )?;
        for (presentity, watchers) in config.allowed_watchers() {
            let mut p = WatcherPolicy::default();
            for w in &watchers {
                p.allow(w);
            }
            notifier.set_policy(now, &presentity, p, &esc);
        }
        // Rules written through the admin API replace the buddy groups' for their presentity.
        let rules = rules::RuleStore::open(store.as_ref().map(|(db, _)| *db))?;
        for (presentity, p) in rules.load()? {
            notifier.set_policy(now, &presentity, p, &esc);
        }
        Ok(Arc::new_cyclic(|me| PresenceServer {
            me: me.clone(),
            ep,
            resolver,
            host: host.to_string(),
            commit: store.map(|(_, c)| c),
            state: Mutex::new(State {
                esc,
                notifier,
                rls: ListSubscriptions::new(sub_limits, host),
                lists,
                rules,
                reg_watch: HashMap::new(),
                max_presentities: config.max_presentities,
                dialogs: HashMap::new(),
                sending: HashMap::new(),
                max_dialogs: config.max_subscriptions,
            }),
            notifys: Arc::new(Semaphore::new(MAX_NOTIFYS_IN_FLIGHT)),
        }))
    }

    /// Subscriptions held, to presentities and to lists (tests and status).
    pub fn subscriptions(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.notifier.len() + s.rls.len())
            .unwrap_or(0)
    }

    /// `entity`'s composed document now, if it has one (tests).
    pub fn document(&self, entity: &str) -> Option<crate::presence::pidf::Pidf> {
        self.state.lock().ok().and_then(|s| s.esc.document(entity))
    }

    /// Serves SIP requests and expires publications and subscriptions until shutdown.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                inc = rx.recv() => match inc {
                    Some(Incoming::Request(r)) => {
                        let me = self.clone();
                        tokio::spawn(async move { me.on_request(r).await });
                    }
                    Some(Incoming::StrayResponse { .. }) => {}
                    None => return,
                },
                _ = tick.tick() => {
                    self.expire(Instant::now());
                    self.renew_reg_watches(Instant::now());
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Our Contact: an IP literal over TCP, like every URI the lab hands to peers.
    fn contact(&self) -> String {
        format!(
            "<{}>",
            crate::cscf::node_uri(&self.ep, None, crate::sip::Transport::Tcp)
        )
    }

    async fn on_request(&self, inc: IncomingRequest) {
        match inc.request.method {
            Method::Publish => self.publish(inc).await,
            Method::Notify if regwatch::is_reg_notify(&inc.request) => self.on_reg_notify(inc),
            Method::Subscribe => self.subscribe(inc),
            // The only requests iFC send us are the two above; anything else (an OPTIONS
            // ping, a stray in-dialog request) gets a clear answer.
            Method::Options => {
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                ok.headers.push("Allow", "PUBLISH, SUBSCRIBE, OPTIONS");
                ok.headers.push("Allow-Events", sip::EVENT);
                inc.tx.respond(ok);
            }
            Method::Ack => {}
            _ => {
                let mut r = reject(
                    &inc.request,
                    405,
                    &self.host,
                    "the presence server takes PUBLISH and SUBSCRIBE",
                );
                r.headers.push("Allow", "PUBLISH, SUBSCRIBE, OPTIONS");
                inc.tx.respond(r);
            }
        }
    }

    /// A refusal with the reason in a Warning and the headers its status calls for.
    fn refuse(&self, req: &Request, e: &PsRequestError) -> Response {
        let mut r = reject(req, e.status_code(), &self.host, e);
        for (k, v) in e.extra_headers() {
            r.headers.push(k, v);
        }
        r
    }

    /// RFC 3903 §6: the ESC's processing of a PUBLISH, then NOTIFYs to whoever watches. The
    /// first accepted publication of a presentity waits for the PS's reg subscription
    /// ([`regwatch`]) before it is answered.
    async fn publish(&self, inc: IncomingRequest) {
        let req = &inc.request;
        if let Err(e) = sip::check_from_core(req, inc.source, self.ep.is_trusted(inc.source)) {
            crate::warn_limited!("ps.not_from_core", "{e}: refused with 403");
            inc.tx.respond(reject(req, 403, &self.host, &e));
            return;
        }
        let input = match sip::publish_input(req) {
            Ok(i) => i,
            Err(e) => {
                self.ep
                    .note(|| format!("PUBLISH refused {}: {e}", e.status_code()));
                inc.tx.respond(self.refuse(req, &e));
                return;
            }
        };
        let now = Instant::now();
        let (answer, notifys) = {
            let Ok(mut st) = self.state.lock() else {
                inc.tx
                    .respond(reject(req, 500, &self.host, "presence state unavailable"));
                return;
            };
            let doc = match &input.body {
                Some(b) => match st.esc.parse_body(b) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        drop(st);
                        inc.tx.respond(publish_error(req, &self.host, &e));
                        return;
                    }
                },
                None => None,
            };
            let outcome = st.esc.handle_publish(
                now,
                &input.presentity,
                input.if_match.as_deref(),
                input.expires,
                doc,
            );
            let answer = match outcome {
                Ok(p) => {
                    let mut ok = req.response(200, None);
                    ok.ensure_to_tag();
                    ok.headers.push("SIP-ETag", p.etag());
                    ok.headers.push("Expires", p.expires().to_string());
                    ok
                }
                Err(e) => publish_error(req, &self.host, &e),
            };
            let contact = self.contact();
            (answer, st.drain(now, &contact))
        };
        if answer.status == 200 {
            tracing::info!(presentity = %input.presentity, "PUBLISH accepted");
            if input.body.is_some() {
                self.watch_registration(&input.presentity, req).await;
            }
        }
        inc.tx.respond(answer);
        self.send_all(notifys);
    }

    /// RFC 6665 §4.2.1 / RFC 3856 §6: an initial SUBSCRIBE opens a dialog and a subscription
    /// (200, then the first NOTIFY at once, §4.2.1.2); one inside a dialog refreshes or, with
    /// Expires 0, ends it (final NOTIFY); a dialog we do not hold gets 481.
    fn subscribe(&self, inc: IncomingRequest) {
        let req = &inc.request;
        // A dialog's Call-ID and tags are no credential: whoever holds them could refresh or
        // end the subscription straight at our Contact, so a SUBSCRIBE inside a dialog must
        // come along its route set, through the core.
        if in_dialog(req) {
            let from_core = self.ep.is_trusted(inc.source);
            if let Err(e) = sip::check_from_core(req, inc.source, from_core) {
                crate::warn_limited!("ps.not_from_core", "{e}: refused with 403");
                inc.tx.respond(reject(req, 403, &self.host, &e));
                return;
            }
        }
        if let Err(e) = sip::check_event(req).and_then(|_| sip::check_accept(req)) {
            inc.tx.respond(self.refuse(req, &e));
            return;
        }
        let expires = match sip::expires_of(req) {
            Ok(x) => x,
            Err(e) => {
                inc.tx.respond(self.refuse(req, &e));
                return;
            }
        };
        let now = Instant::now();
        let contact = self.contact();
        let (answer, notifys) = {
            let Ok(mut st) = self.state.lock() else {
                inc.tx
                    .respond(reject(req, 500, &self.host, "presence state unavailable"));
                return;
            };
            let st = &mut *st;
            if in_dialog(req) {
                let id = sip::in_dialog_id(req);
                let refreshed = if st.rls.contains(&id) {
                    Self::list_refresh(st, now, &id, expires)
                } else {
                    st.notifier.refresh(now, &id, expires, &st.esc)
                };
                match refreshed {
                    Ok(s) => {
                        let mut ok = req.response(200, None);
                        ok.headers.push("Contact", contact.clone());
                        ok.headers.push("Expires", s.expires.to_string());
                        (ok, st.drain(now, &contact))
                    }
                    Err(e) => (subscribe_error(req, &self.host, &e), Vec::new()),
                }
            } else if let Some((owner, name)) = lists::parse_list_uri(&req.uri) {
                match self.initial_list_subscribe(st, req, (&owner, &name), expires, now, &contact)
                {
                    Ok(ok) => (ok, st.drain(now, &contact)),
                    Err(r) => (r, Vec::new()),
                }
            } else {
                match self.initial_subscribe(st, req, expires, now, &contact) {
                    Ok(ok) => (ok, st.drain(now, &contact)),
                    Err(r) => (r, Vec::new()),
                }
            }
        };
        inc.tx.respond(answer);
        self.send_all(notifys);
    }

    /// The checks and the new subscription of an initial SUBSCRIBE: its 200, or the refusal.
    fn initial_subscribe(
        &self,
        st: &mut State,
        req: &Request,
        expires: Option<u32>,
        now: Instant,
        contact: &str,
    ) -> Result<Response, Response> {
        let who = sip::presentity_of(req).and_then(|p| {
            let w = sip::watcher_of(req).ok_or(PsRequestError::NotAsserted)?;
            Ok((p, w))
        });
        let (presentity, watcher) = who.map_err(|e| self.refuse(req, &e))?;
        let tag = crate::sip::new_tag();
        let dialog = NotifyDialog::from_subscribe(req, &tag).map_err(|e| self.refuse(req, &e))?;
        if st.dialogs.len() >= st.max_dialogs {
            let e = SubscribeError::TooManySubscriptions(st.max_dialogs);
            return Err(subscribe_error(req, &self.host, &e));
        }
        let id = dialog.id.clone();
        let s = st
            .notifier
            .subscribe(now, &id, &watcher, &presentity, expires, &st.esc)
            .map_err(|e| subscribe_error(req, &self.host, &e))?;
        tracing::info!(%watcher, %presentity, state = %s.state, "presence subscription");
        self.ep
            .note(|| format!("{watcher} watches {presentity}: {}", s.state));
        let ok = sip::subscribe_ok(req, &dialog, contact, s.expires);
        st.dialogs.insert(id, dialog);
        Ok(ok)
    }

    /// The tick: publications and subscriptions whose time is up, and their NOTIFYs.
    fn expire(&self, now: Instant) {
        let notifys = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            let st = &mut *st;
            st.esc.expire(now);
            // Documents that lapsed go to watchers before their subscriptions expire.
            while let Some(entity) = st.esc.poll_changed() {
                st.notifier.presentity_changed(now, &entity, &st.esc);
                st.rls.member_changed(now, &entity, &st.notifier, &st.esc);
            }
            st.notifier.expire(now, &st.esc);
            st.rls.expire(now, &st.notifier, &st.esc);
            st.drain(now, &self.contact())
        };
        self.send_all(notifys);
    }

    /// Sends each NOTIFY towards its first Route (or its Request-URI), one client transaction
    /// at a time per dialog (see `State::sending`). A NOTIFY answered 481, or not at all, ends
    /// the subscription without another NOTIFY (RFC 6665 §4.2.2).
    fn send_all(&self, notifys: Vec<Request>) {
        let mut work: VecDeque<Request> = notifys.into();
        while let Some(n) = work.pop_front() {
            let id = sip::in_dialog_id_of_notify(&n);
            {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                if let Some(waiting) = st.sending.get_mut(&id) {
                    let list = sip::lists_option(&n, "Require", sip::EVENTLIST);
                    let last = n
                        .headers
                        .get("Subscription-State")
                        .is_some_and(|v| v.trim_start().starts_with("terminated"));
                    if !list || last {
                        // A presence NOTIFY has the whole state, and a final one ends the
                        // subscription: either replaces those waiting.
                        waiting.clear();
                        waiting.push_back(n);
                    } else if waiting.len() < MAX_LIST_BACKLOG {
                        waiting.push_back(n);
                    } else {
                        // The watcher lags: one full state replaces the backlog.
                        waiting.clear();
                        let st = &mut *st;
                        let now = Instant::now();
                        st.rls.resync(now, &id, &st.notifier, &st.esc);
                        for m in st.drain(now, &self.contact()) {
                            match st.sending.get_mut(&id) {
                                Some(w) if sip::in_dialog_id_of_notify(&m) == id => w.push_back(m),
                                _ => work.push_back(m),
                            }
                        }
                    }
                    continue;
                }
                let Ok(permit) = self.notifys.clone().try_acquire_owned() else {
                    crate::warn_limited!(
                        "ps.notify.overload",
                        "NOTIFY dropped: too many in flight"
                    );
                    continue;
                };
                st.sending.insert(id.clone(), VecDeque::new());
                let ep = self.ep.clone();
                let resolver = self.resolver.clone();
                let me = self.me.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut next = Some(n);
                    while let Some(n) = next.take() {
                        deliver(&ep, &resolver, &me, &id, n).await;
                        let Some(me) = me.upgrade() else { return };
                        let Ok(mut st) = me.state.lock() else { return };
                        match st.sending.get_mut(&id) {
                            Some(waiting) if !waiting.is_empty() => next = waiting.pop_front(),
                            _ => {
                                st.sending.remove(&id);
                            }
                        }
                    }
                });
            }
        }
    }

    /// Drops a subscription whose watcher is gone: its dialog first, so that the final NOTIFY
    /// the notifier queues goes nowhere.
    fn forget(&self, id: &DialogId) {
        if let Ok(mut st) = self.state.lock() {
            let st = &mut *st;
            st.dialogs.remove(id);
            if let Some(waiting) = st.sending.get_mut(id) {
                waiting.clear();
            }
            st.notifier
                .terminate(id, TerminationReason::Giveup, &st.esc);
            st.rls.forget(id);
            let contact = self.contact();
            let _ = st.drain(Instant::now(), &contact);
        }
    }
}

/// Sends one NOTIFY and waits for its final response; a watcher that answers 481 or not at
/// all is forgotten (RFC 6665 §4.2.2).
async fn deliver(
    ep: &Endpoint,
    resolver: &Resolver,
    me: &std::sync::Weak<PresenceServer>,
    id: &DialogId,
    mut n: Request,
) {
    let Some((dest, t)) = next_hop(resolver, &n).await else {
        tracing::warn!(uri = %n.uri, "NOTIFY has no resolvable next hop");
        return;
    };
    n.headers.push_front("Via", ep.new_via(t));
    let r = ep.send_request(n, dest, t).final_response().await;
    if matches!(r.status, 408 | 481) {
        tracing::info!(status = r.status, "NOTIFY failed: subscription removed");
        if let Some(me) = me.upgrade() {
            me.forget(id);
        }
    } else if r.status >= 300 {
        tracing::info!(status = r.status, "NOTIFY refused");
    }
}

/// A refused PUBLISH: its status, the reason, and Min-Expires / Retry-After where due.
fn publish_error(req: &Request, host: &str, e: &PublishError) -> Response {
    let mut r = reject(req, e.status_code(), host, e);
    match e {
        PublishError::IntervalTooBrief { min_expires } => {
            r.headers.push("Min-Expires", min_expires.to_string())
        }
        PublishError::TooManyPresentities(_) | PublishError::TooManyPublications { .. } => {
            r.headers.push("Retry-After", "60")
        }
        _ => {}
    }
    r
}

/// A refused SUBSCRIBE: its status, the reason, and Min-Expires / Retry-After where due.
fn subscribe_error(req: &Request, host: &str, e: &SubscribeError) -> Response {
    let mut r = reject(req, e.status_code(), host, e);
    match e {
        SubscribeError::IntervalTooBrief { min_expires } => {
            r.headers.push("Min-Expires", min_expires.to_string())
        }
        SubscribeError::TooManySubscriptions(_) => r.headers.push("Retry-After", "60"),
        SubscribeError::NoSuchSubscription => {}
    }
    r
}
