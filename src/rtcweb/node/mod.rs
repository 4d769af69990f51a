//! The RTCWeb gateway as a lab node (patent KR101499354B1, figure 5): a web server towards
//! browsers (its page at `/`, the patent's WebSocket protocol at `/ws`, [`ws`]) and an IMS
//! subscriber towards the core (one SIP endpoint; each web user is registered through the
//! P-CSCF with their own credentials, [`register`]). It drives the socket-free cores of
//! [`crate::rtcweb`]: a [`Call`] per call, a [`Subscription`] per presence subscription, the
//! [`RoutingTable`] `<sender, receiver, session-id>`.
//!
//! Everything the cores ask for comes out as [`Action`]s, collected under the state lock and
//! carried out after it is released: SIP requests in client transactions (their responses
//! go back to the core that sent them), ACKs stateless, responses in the server transaction
//! of their request (kept until its final response; retransmissions of a 2xx or a reliable
//! 1xx after it go by Via), frames to the page of the web user.
//!
//! A web→web call (a page calls a web user of this gateway) goes through the IMS core too:
//! the INVITE comes back to the gateway as the callee's incoming call, so the core's services
//! apply and both SDPs pass end to end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::call::{Call, CallConfig, CallOutput};
use super::message::{Kind, WebMessage};
use super::presence::Subscription;
use super::route::{Destination, Route, RoutingTable};
use crate::config::RtcwebSection;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, Method, Request, Response, ServerTx, Transport};
use crate::trace::Trace;

mod media;
mod register;
mod sip;
pub mod ws;

/// Frames queued to one page at most; a page that does not read them is disconnected.
const PAGE_QUEUE: usize = 256;
/// How often the timers of calls, subscriptions and registrations are looked at.
const TICK: Duration = Duration::from_millis(50);

/// Work for the driver, collected under the state lock.
enum Action {
    /// A request in a client transaction, from the core of `owner` (a session or a Call-ID).
    Send(Request),
    /// An ACK (no transaction).
    Ack(Request),
    /// A response: in its server transaction if one waits for it, else by Via.
    Respond(Response),
    /// A frame to `user`'s page.
    Web(String, WebMessage),
}

/// A page's connection.
struct Page {
    id: u64,
    /// Boxed: the queue's first block is allocated with the channel (32 slots), so a
    /// slot the size of a pointer keeps an idle page small.
    tx: mpsc::Sender<Box<WebMessage>>,
    closed: watch::Sender<bool>,
}

/// A web user: who registered them and which page is theirs.
struct WebUser {
    /// The page attached (None while it reloads).
    page: Option<Page>,
    /// The IMS registration.
    reg: register::Registration,
    /// When the user goes if no page attaches again.
    detached_since: Option<Instant>,
    /// Calls and subscriptions held.
    sessions: usize,
}

/// A session's core.
enum Core {
    Call(Box<Call>),
    Sub(Box<Subscription>),
}

struct Entry {
    user: String,
    core: Core,
}

#[derive(Default)]
struct State {
    users: HashMap<String, WebUser>,
    /// The user part of each registered Contact -> the user's AOR.
    contacts: HashMap<String, String>,
    /// Sessions by id (calls by their page's id, subscriptions by `sub-N`).
    sessions: HashMap<String, Entry>,
    /// Session ids by SIP Call-ID: two for a web-to-web call (its legs share the Call-ID
    /// at the gateway; our tag in each dialog tells them apart).
    by_call_id: HashMap<String, Vec<String>>,
    /// Server transactions waiting for a final response: `Call-ID|CSeq number|method`.
    txs: HashMap<String, ServerTx>,
    routes: Option<RoutingTable>,
    /// Calls whose media crosses the bridge, by session id ([`media`]).
    media: HashMap<String, media::MediaLeg>,
    next: u64,
}

/// Counters for `rcslab status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcwebStats {
    /// Web users attached or reloading.
    pub users: usize,
    /// Pages connected.
    pub pages: usize,
    /// Calls (any state until forgotten).
    pub calls: usize,
    /// Presence subscriptions.
    pub subscriptions: usize,
}

/// The gateway.
pub struct RtcwebGateway {
    cfg: RtcwebSection,
    domain: String,
    ep: Endpoint,
    resolver: Resolver,
    pcscf: SocketAddr,
    trace: Trace,
    http_addr: Mutex<Option<SocketAddr>>,
    /// Failed logins ([`register`]).
    logins: Mutex<register::LoginGuard>,
    /// The WebRTC media bridge for calls between pages and phones ([`media`]).
    bridge: Option<Arc<crate::media::MediaBridge>>,
    st: Mutex<State>,
    me: Weak<RtcwebGateway>,
}

impl RtcwebGateway {
    /// A gateway whose SIP endpoint is `ep`, registering its web users through the P-CSCF at
    /// `pcscf` in `domain`.
    pub fn new(
        cfg: RtcwebSection,
        domain: &str,
        ep: Endpoint,
        resolver: Resolver,
        pcscf: SocketAddr,
        trace: Trace,
    ) -> Arc<RtcwebGateway> {
        let routes = RoutingTable::new(cfg.max_sessions);
        let bridge = cfg
            .media_bridge
            .then(|| crate::media::MediaBridge::new(cfg.bridge_config(ep.local_addr().ip())));
        Arc::new_cyclic(|me| RtcwebGateway {
            bridge,
            cfg,
            domain: domain.to_string(),
            ep,
            resolver,
            pcscf,
            trace,
            http_addr: Mutex::new(None),
            logins: Mutex::new(register::LoginGuard::new()),
            st: Mutex::new(State {
                routes: Some(routes),
                ..State::default()
            }),
            me: me.clone(),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &RtcwebSection {
        &self.cfg
    }

    /// The IMS domain of its users.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Its SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.ep.local_addr()
    }

    /// Where the web listener is (once bound).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr.lock().ok().and_then(|a| *a)
    }

    /// Notes where the web listener is bound.
    pub fn set_http_addr(&self, addr: SocketAddr) {
        if let Ok(mut a) = self.http_addr.lock() {
            *a = Some(addr);
        }
    }

    /// The flight recorder.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// What it holds now.
    pub fn stats(&self) -> RtcwebStats {
        let Ok(st) = self.st.lock() else {
            return RtcwebStats::default();
        };
        let (mut calls, mut subscriptions) = (0, 0);
        for e in st.sessions.values() {
            match e.core {
                Core::Call(_) => calls += 1,
                Core::Sub(_) => subscriptions += 1,
            }
        }
        RtcwebStats {
            users: st.users.len(),
            pages: st.users.values().filter(|u| u.page.is_some()).count(),
            calls,
            subscriptions,
        }
    }

    /// The figure-7 state of a call, by session id (tests, `status`).
    pub fn call_state(&self, session: &str) -> Option<super::message::ClientState> {
        let st = self.st.lock().ok()?;
        match &st.sessions.get(session)?.core {
            Core::Call(c) => Some(c.state()),
            Core::Sub(_) => None,
        }
    }

    /// Serves SIP until the endpoint closes, and runs the timers.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                inc = rx.recv() => match inc {
                    Some(Incoming::Request(r)) => self.on_request(r),
                    Some(Incoming::StrayResponse { response, .. }) => self.on_response(&response),
                    None => return,
                },
                _ = tick.tick() => self.on_tick(Instant::now()),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The SIP side of a call or subscription of `user`: how the cores address the core.
    fn call_config(&self, user: &str) -> CallConfig {
        let t = self.ep.local_addr();
        let user_part = user_part(user);
        let mut c = CallConfig::new(
            "TCP",
            &t.to_string(),
            &format!("<sip:{user_part}@{t};transport=tcp>"),
        );
        c.outbound = Some(format!("<sip:{};transport=tcp;lr>", self.pcscf));
        c.answer_wait = Duration::from_secs(self.cfg.answer_wait_secs);
        c.ring_timeout = Duration::from_secs(self.cfg.ring_timeout_secs);
        c.reload_grace = Duration::from_secs(self.cfg.reload_grace_secs);
        c
    }

    // ----- the web side ---------------------------------------------------------------

    /// A page connected: its id and the receiver of its frames.
    fn page_opened(&self) -> u64 {
        self.st
            .lock()
            .map(|mut st| {
                st.next += 1;
                st.next
            })
            .unwrap_or(0)
    }

    /// A frame from page `page` (attached as `user`, if it registered).
    fn on_frame(&self, page: u64, user: Option<&str>, msg: WebMessage) {
        let now = Instant::now();
        let Some(user) = user else {
            return; // REGISTER is handled by the connection before anything else.
        };
        // A call taken back by a reloaded page: its media may need a new browser side.
        let mut reload = None;
        let mut acts = Vec::new();
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            if st
                .users
                .get(user)
                .and_then(|u| u.page.as_ref())
                .map(|p| p.id)
                != Some(page)
            {
                acts.push(Action::Web(
                    user.to_string(),
                    WebMessage::error(msg.session.as_deref(), Some(msg.kind), "not attached"),
                ));
            } else {
                if msg.kind == Kind::Reload && self.bridge.is_some() {
                    reload = msg.session.clone().filter(|id| {
                        matches!(st.sessions.get(id), Some(Entry { user: u, core: Core::Call(c) })
                            if u == user && c.state() == super::message::ClientState::Reloading)
                    });
                }
                let answer = match msg.session.as_deref() {
                    Some(id)
                        if msg.kind == Kind::Answer
                            && !st.media.is_empty()
                            && st.sessions.get(id).is_some_and(|e| e.user == user) =>
                    {
                        self.page_answer(st, id)
                    }
                    _ => media::PageAnswer::Direct,
                };
                match answer {
                    media::PageAnswer::Direct => self.frame_locked(st, now, user, &msg, &mut acts),
                    // A phone called: the page's answer goes through the bridge before the
                    // call sees it.
                    media::PageAnswer::Bridge(leg) => {
                        if let Some(me) = self.me.upgrade() {
                            tokio::spawn(me.bridge_page_answer(page, user.to_string(), leg, msg));
                        }
                    }
                    media::PageAnswer::Reattach(leg) => {
                        if let Some(me) = self.me.upgrade() {
                            tokio::spawn(me.media_reanswer(user.to_string(), leg, msg));
                        }
                    }
                    media::PageAnswer::Busy => acts.push(Action::Web(
                        user.to_string(),
                        WebMessage::error(
                            msg.session.as_deref(),
                            Some(msg.kind),
                            "ANSWER under way",
                        ),
                    )),
                }
            }
        }
        self.perform(acts);
        if let (Some(session), Some(me)) = (reload, self.me.upgrade()) {
            tokio::spawn(me.media_reattach(user.to_string(), session));
        }
    }

    fn frame_locked(
        &self,
        st: &mut State,
        now: Instant,
        user: &str,
        msg: &WebMessage,
        acts: &mut Vec<Action>,
    ) {
        let refuse = |acts: &mut Vec<Action>, why: &str| {
            acts.push(Action::Web(
                user.to_string(),
                WebMessage::error(msg.session.as_deref(), Some(msg.kind), why),
            ))
        };
        match msg.kind {
            Kind::Offer => {
                let Some(session) = msg.session.clone() else {
                    return refuse(acts, "OFFER needs session");
                };
                if st.sessions.contains_key(&session) {
                    return refuse(acts, "this session has a call already");
                }
                if !self.may_open(st, user) {
                    return refuse(acts, "too many calls and subscriptions");
                }
                match Call::offer(now, self.call_config(user), msg, user) {
                    Ok(call) => {
                        let to = msg.to.clone().unwrap_or_default();
                        let receiver = self.routes(st).destination(&to);
                        let to_web = matches!(receiver, Destination::Web(_));
                        let route = Route {
                            sender: Destination::Web(user.to_string()),
                            receiver,
                            session: session.clone(),
                            call_id: call.call_id().to_string(),
                        };
                        if let Err(e) = self.routes(st).insert(route) {
                            return refuse(acts, &e.to_string());
                        }
                        self.mark_outgoing_media(st, &session, to_web);
                        self.open(st, user, &session, Core::Call(Box::new(call)));
                        self.drain(st, &session, acts);
                    }
                    Err(e) => acts.push(Action::Web(user.to_string(), *e)),
                }
            }
            Kind::Subscribe => {
                let presentity = msg.to.clone().unwrap_or_default();
                // A later SUBSCRIBE for the same presentity (expires 0 ends it).
                let existing = st.sessions.iter().find_map(|(id, e)| match &e.core {
                    Core::Sub(s) if e.user == user && s.presentity() == presentity => {
                        Some(id.clone())
                    }
                    _ => None,
                });
                if let Some(id) = existing {
                    if let Some(Entry {
                        core: Core::Sub(s), ..
                    }) = st.sessions.get_mut(&id)
                    {
                        s.handle_web(now, msg);
                    }
                    return self.drain(st, &id, acts);
                }
                if msg.expires == Some(0) {
                    return refuse(acts, "no such subscription");
                }
                if !self.may_open(st, user) {
                    return refuse(acts, "too many calls and subscriptions");
                }
                match Subscription::subscribe(now, self.call_config(user), msg, user) {
                    Ok(sub) => {
                        st.next += 1;
                        let id = format!("sub-{}", st.next);
                        let route = Route {
                            sender: Destination::Web(user.to_string()),
                            receiver: Destination::Ims(presentity),
                            session: id.clone(),
                            call_id: sub.call_id().to_string(),
                        };
                        if let Err(e) = self.routes(st).insert(route) {
                            return refuse(acts, &e.to_string());
                        }
                        self.open(st, user, &id, Core::Sub(Box::new(sub)));
                        self.drain(st, &id, acts);
                    }
                    Err(e) => acts.push(Action::Web(user.to_string(), *e)),
                }
            }
            Kind::Register => refuse(acts, "already registered"),
            _ => {
                let Some(session) = msg.session.clone() else {
                    return refuse(acts, "needs session");
                };
                match st.sessions.get_mut(&session) {
                    // Another user's session is as unknown as one that never was.
                    Some(Entry {
                        user: owner,
                        core: Core::Call(c),
                    }) if owner == user => {
                        let was = c.state();
                        c.handle_web(now, msg);
                        if was == super::message::ClientState::Reloading
                            && c.state() == super::message::ClientState::InCall
                        {
                            self.ep.note(|| {
                                format!("{user}'s page is back (RELOAD): the call is InCall again, the IMS side saw nothing")
                            });
                        }
                    }
                    _ => return refuse(acts, "no such call"),
                }
                self.drain(st, &session, acts);
            }
        }
    }

    fn routes<'a>(&self, st: &'a mut State) -> &'a mut RoutingTable {
        st.routes
            .get_or_insert_with(|| RoutingTable::new(self.cfg.max_sessions))
    }

    fn may_open(&self, st: &State, user: &str) -> bool {
        st.sessions.len() < self.cfg.max_sessions
            && st
                .users
                .get(user)
                .is_some_and(|u| u.sessions < self.cfg.max_sessions_per_user)
    }

    fn open(&self, st: &mut State, user: &str, id: &str, core: Core) {
        let call_id = match &core {
            Core::Call(c) => c.call_id().to_string(),
            Core::Sub(s) => s.call_id().to_string(),
        };
        st.by_call_id
            .entry(call_id)
            .or_default()
            .push(id.to_string());
        if let Some(u) = st.users.get_mut(user) {
            u.sessions += 1;
        }
        st.sessions.insert(
            id.to_string(),
            Entry {
                user: user.to_string(),
                core,
            },
        );
    }

    /// Takes what session `id`'s core has to say; forgets it once it is finished.
    fn drain(&self, st: &mut State, id: &str, acts: &mut Vec<Action>) {
        let Some(e) = st.sessions.get_mut(id) else {
            return;
        };
        loop {
            let out = match &mut e.core {
                Core::Call(c) => c.poll_output(),
                Core::Sub(s) => s.poll_output(),
            };
            match out {
                Some(CallOutput::Request(r)) if r.method == Method::Ack => {
                    acts.push(Action::Ack(r))
                }
                Some(CallOutput::Request(r)) => acts.push(Action::Send(r)),
                Some(CallOutput::Response(r)) => acts.push(Action::Respond(r)),
                Some(CallOutput::Web(m)) => acts.push(Action::Web(e.user.clone(), m)),
                None => break,
            }
        }
        let finished = match &e.core {
            Core::Call(c) => c.is_finished(),
            Core::Sub(s) => s.is_finished(),
        };
        if finished {
            if let Some(e) = st.sessions.remove(id) {
                let call_id = match &e.core {
                    Core::Call(c) => c.call_id().to_string(),
                    Core::Sub(s) => s.call_id().to_string(),
                };
                if let Some(ids) = st.by_call_id.get_mut(&call_id) {
                    ids.retain(|x| x != id);
                    if ids.is_empty() {
                        st.by_call_id.remove(&call_id);
                    }
                }
                if let Some(u) = st.users.get_mut(&e.user) {
                    u.sessions = u.sessions.saturating_sub(1);
                }
            }
            self.routes(st).remove(id);
            self.forget_media(st, id);
        }
    }

    /// The page of `user` went away (closed, or replaced by another).
    fn page_closed(&self, user: &str, page: u64) {
        let now = Instant::now();
        let mut acts = Vec::new();
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            let Some(u) = st.users.get_mut(user) else {
                return;
            };
            if u.page.as_ref().map(|p| p.id) != Some(page) {
                return;
            }
            u.page = None;
            u.detached_since = Some(now);
            let ids: Vec<String> = st
                .sessions
                .iter()
                .filter(|(_, e)| e.user == user)
                .map(|(id, _)| id.clone())
                .collect();
            let mut reloading = 0;
            for id in ids {
                if let Some(e) = st.sessions.get_mut(&id) {
                    match &mut e.core {
                        Core::Call(c) => {
                            c.web_disconnected(now);
                            reloading +=
                                usize::from(c.state() == super::message::ClientState::Reloading);
                        }
                        Core::Sub(s) => s.web_disconnected(now),
                    }
                }
                self.drain(st, &id, &mut acts);
            }
            if reloading > 0 {
                let grace = self.cfg.reload_grace_secs;
                self.ep.note(|| {
                    format!("{user}'s page went away: its call is Reloading, the IMS dialog kept for {grace} s (figure 7)")
                });
            }
        }
        self.perform(acts);
    }
}

/// The transport the gateway reaches the P-CSCF over.
pub const TRANSPORT: Transport = Transport::Tcp;

pub(super) fn user_part(aor: &str) -> &str {
    let s = aor.split_once(':').map_or(aor, |(_, r)| r);
    s.split('@').next().unwrap_or(s)
}
