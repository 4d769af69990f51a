//! O-IM and T-IM, the RCS instant-messaging application servers (OMA SIMPLE IM / CPM
//! participating functions, as the WebRSF paper draws them), reached over ISC by iFC
//! (TS 23.218, TS 24.229 §5.7).
//!
//! - **O-IM** (originating) stays a SIP proxy on the chat INVITE (TS 24.229 §5.7.4, record-
//!   routing so the dialog passes it) but terminates MSRP: it puts its own `a=path` into the
//!   offer towards T-IM and into the answer towards UE1, waits for UE1's binding SEND
//!   (figure 1 steps 11-12), then binds its leg towards T-IM and relays SENDs both ways.
//! - **T-IM** (terminating) is a back-to-back UA (§5.7.5): it answers the INVITE itself once it
//!   has stored the first message (steps 6-10), waits for the ACK and O-IM's binding, then
//!   INVITEs UE2 with the message (13-14); the IMDN UE2 sends in a SIP MESSAGE (15-16) goes
//!   back to UE1 over MSRP (17-20) before T-IM answers the MESSAGE (21-22). Messages for users
//!   who are away stay in sled ([`store`]) and go out, in order, when a third-party REGISTER
//!   says the user is back; IMDNs owed to a sender who is away wait the same way; messages
//!   nobody collects expire with an IMDN "failed" to their sender. A sender may revoke a
//!   message T-IM still holds (GSMA RCC.07, [`revoke`]).
//! - Both accept the third-party REGISTER their iFC asks for (§5.7.1.1): how they know who is
//!   online.

pub mod delivery;
mod ft;
mod grant;
pub mod history_api;
/// The RCS codec helpers moved down to [`crate::rcs`] (the UE shares them); kept here so
/// `im::rcs::…` paths still resolve.
pub use crate::rcs;
pub mod relay;
mod revoke;
pub mod store;
mod tim;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::cpim::ImdnStatus;
use crate::cscf::{
    creates_dialog, forward_ack, forward_copy, in_dialog, next_hop, pop_own_route, proxy_to,
    proxy_to_with, reject,
};
use crate::msrp::sdp::MsrpSdp;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Request};
use relay::{Hub, HubEvent, Side};
use store::ImStore;

/// Which side of a chat this AS serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImRole {
    /// Originating (O-IM).
    Originating,
    /// Terminating (T-IM).
    Terminating,
}

/// A chat session T-IM holds: the MSRP pair, who talks to whom, and the SIP dialogs.
#[derive(Debug, Clone)]
struct TimSession {
    pair: u64,
    from: String,
    to: String,
    contribution_id: String,
    conversation_id: String,
    /// Call-ID of the INVITE from the originating side (its ACK and BYE find us by it).
    up_call: Option<String>,
    acked: bool,
    /// The Route that takes a request on to the S-CSCF after our iFC step (odi).
    route_back: Vec<String>,
    /// Call-ID of our INVITE to the recipient once sent.
    down_call: Option<String>,
    /// When that INVITE went out (a leg that never comes up makes the record stale).
    down_at: Option<Instant>,
    /// When the session was opened.
    opened_at: Instant,
    /// True while stored messages are being flushed to the recipient's freshly bound leg.
    delivering: bool,
    /// The originating side's MSRP leg (from O-IM) went away.
    up_closed: bool,
}

impl TimSession {
    /// Both legs are gone and no flush is running: nothing will touch the session again
    /// (what it still owed is in the store and goes out with a new session).
    fn finished(&self) -> bool {
        (self.up_closed || self.up_call.is_none()) && self.down_call.is_none() && !self.delivering
    }
}

/// An instant-messaging AS node.
pub struct ImServer {
    ep: Endpoint,
    resolver: Resolver,
    role: ImRole,
    host: String,
    hub: Hub,
    store: Option<ImStore>,
    ttl: Duration,
    /// Users an S-CSCF told us are registered (third-party REGISTER): until when, and
    /// through which S-CSCF.
    online: Mutex<HashMap<String, Online>>,
    sessions: Mutex<HashMap<u64, TimSession>>,
    /// Call-IDs of requests T-IM originated (they come back to it through the callee's iFC).
    own_calls: Mutex<HashSet<String>>,
    /// O-IM: Call-ID of a proxied chat INVITE to its MSRP pair.
    proxied: Mutex<HashMap<String, u64>>,
    /// T-IM: Call-ID of a relayed MSRP file transfer (RFC 5547, [`ft`]) to its MSRP pair.
    ft_calls: Mutex<HashMap<String, u64>>,
    scscf: OnceLock<String>,
    /// T-IM: one delivery worker per recipient with something waiting ([`delivery`]).
    workers: Mutex<HashMap<String, delivery::Worker>>,
    /// T-IM: how it grants file recipients at the content server ([`grant`]).
    grants: OnceLock<crate::content::GrantClient>,
    /// T-IM: messages being revoked and those a delivery attempt carries ([`revoke`]).
    revocations: Arc<revoke::Revocations>,
}

/// A user a third-party REGISTER said is registered.
struct Online {
    until: Instant,
    /// The Route to the S-CSCF that registered them.
    scscf: Option<String>,
    /// The other identities of their registration set (on the registered identity's entry).
    set: Vec<String>,
}

/// A loose Route to the S-CSCF at `host:port` over the Mw transport.
fn scscf_route(host: &str, port: u16) -> String {
    format!("<sip:{host}:{port};transport=tcp;lr>")
}

/// Identities of one registration set a third-party REGISTER may make known beside its own.
const MAX_ALIASES: usize = 16;

/// Chat sessions T-IM holds at most; beyond, new chats get 503 (overload is answered).
pub(crate) const MAX_SESSIONS: usize = 20_000;

impl ImServer {
    /// An AS on `ep` whose SIP host name is `host` (e.g. `oim.ims.lab`), relaying MSRP on
    /// `hub`. T-IM gets a `store` and a time-to-live for undelivered messages.
    pub fn new(
        ep: Endpoint,
        resolver: Resolver,
        role: ImRole,
        host: &str,
        hub: Hub,
        store: Option<ImStore>,
        ttl: Duration,
    ) -> Arc<ImServer> {
        let s = Arc::new(ImServer {
            ep,
            resolver,
            role,
            host: host.to_string(),
            hub,
            store,
            ttl,
            online: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            own_calls: Mutex::new(HashSet::new()),
            proxied: Mutex::new(HashMap::new()),
            ft_calls: Mutex::new(HashMap::new()),
            scscf: OnceLock::new(),
            revocations: Arc::default(),
            workers: Mutex::new(HashMap::new()),
            grants: OnceLock::new(),
        });
        if role == ImRole::Terminating {
            let me = Arc::downgrade(&s);
            s.hub.set_keeper(Box::new(move |pair, from, ct, body| {
                // Written now (in arrival order); the 200 waits for the disk.
                let me = me.upgrade();
                let kept_for = me.as_ref().and_then(|me| me.keep(pair, from, ct, body));
                Box::pin(async move {
                    let (Some(me), Some(kept_for)) = (me, kept_for) else {
                        return false;
                    };
                    let Some(st) = me.store.as_ref() else {
                        return true;
                    };
                    if let Err(e) = st.durable().await {
                        tracing::error!(error = %e, "T-IM store: a kept message is not on disk");
                        return false;
                    }
                    // What was kept for a user who is online goes out now (their worker).
                    if let Some(user) = kept_for {
                        if me.is_online(&user) {
                            me.kick(&user, false);
                        }
                    }
                    true
                })
            }));
        }
        s
    }

    /// The role.
    pub fn role(&self) -> ImRole {
        self.role
    }

    /// Chat sessions T-IM holds (O-IM: proxied sessions), for tests and monitoring.
    pub fn sessions_open(&self) -> usize {
        match self.role {
            ImRole::Terminating => self.sessions.lock().map(|s| s.len()).unwrap_or(0),
            ImRole::Originating => self.proxied.lock().map(|s| s.len()).unwrap_or(0),
        }
    }

    /// What its MSRP relay holds now and what it dropped to stay bounded.
    pub fn msrp_stats(&self) -> crate::im::relay::MsrpStats {
        self.hub.stats()
    }

    /// Where its MSRP listener is.
    pub fn msrp_addr(&self) -> SocketAddr {
        self.hub.local_addr()
    }

    /// Tells T-IM how to reach the S-CSCF for requests it originates to a user no third-party
    /// REGISTER told it about (the first S-CSCF of the lab).
    pub fn set_scscf(&self, addr: SocketAddr, _domain: &str) {
        let host = match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let _ = self.scscf.set(scscf_route(&host, addr.port()));
    }

    /// The Route of a request T-IM originates towards `impu`: the S-CSCF whose third-party
    /// REGISTER said `impu` is registered (TS 24.229 §5.4.1.7: its Contact is that S-CSCF),
    /// so that with several S-CSCFs the request reaches the one that serves the user (any
    /// other would not find the registration and ask the HSS to serve an unregistered user
    /// it is not assigned); else the lab's first S-CSCF.
    pub(crate) fn scscf_route_for(&self, impu: &str) -> Option<String> {
        let serving = crate::store::canonical_identity(impu).ok().and_then(|k| {
            self.online
                .lock()
                .ok()
                .and_then(|m| m.get(&k).and_then(|o| o.scscf.clone()))
        });
        serving.or_else(|| self.scscf.get().cloned())
    }

    /// The message store (T-IM).
    pub fn store(&self) -> Option<&ImStore> {
        self.store.as_ref()
    }

    /// True when `a` and `b` name the same user: equal, or one is in the registration set
    /// the other's third-party REGISTER made known (`sip:bob@ims.lab` and `tel:+15550002`).
    pub(crate) fn same_user(&self, a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let Ok(m) = self.online.lock() else {
            return false;
        };
        let knows = |x: &str, y: &str| m.get(x).is_some_and(|o| o.set.iter().any(|s| s == y));
        knows(a, b) || knows(b, a)
    }

    /// `user` and the other identities of its registration set that a third-party REGISTER
    /// made known (`tel:+15550002` gives `sip:bob@ims.lab` too, and the other way round).
    pub(crate) fn registration_set(&self, user: &str) -> Vec<String> {
        let mut out = vec![user.to_string()];
        let Ok(m) = self.online.lock() else {
            return out;
        };
        for (k, o) in m.iter() {
            if k == user || o.set.iter().any(|s| s == user) {
                for id in std::iter::once(k).chain(o.set.iter()) {
                    if !out.contains(id) {
                        out.push(id.clone());
                    }
                }
            }
        }
        out
    }

    /// True when a third-party REGISTER said `impu` is registered.
    pub fn is_online(&self, impu: &str) -> bool {
        let Ok(k) = crate::store::canonical_identity(impu) else {
            return false;
        };
        self.online
            .lock()
            .ok()
            .and_then(|m| m.get(&k).map(|o| o.until))
            .is_some_and(|t| t > Instant::now())
    }

    /// Serves SIP requests and MSRP events until the endpoint closes.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut hub_rx: mpsc::UnboundedReceiver<HubEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                inc = rx.recv() => match inc {
                    Some(Incoming::Request(r)) => {
                        let me = self.clone();
                        tokio::spawn(async move { me.on_request(r).await });
                    }
                    Some(Incoming::StrayResponse { response, .. }) => {
                        // Detached: a TCP connect must not hold up the node's loop.
                        let ep = self.ep.clone();
                        tokio::spawn(async move { crate::cscf::forward_stray_response(&ep, response).await });
                    }
                    None => return,
                },
                ev = hub_rx.recv() => match ev {
                    Some(ev) => self.clone().on_hub(ev),
                    None => return,
                },
                _ = sweep.tick() => {
                    if self.role == ImRole::Terminating {
                        let me = self.clone();
                        tokio::spawn(async move { me.expire().await });
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// An IP literal, like every URI the lab hands to peers (a foreign P-CSCF need not resolve
    /// our lab names).
    fn record_route(&self) -> String {
        format!(
            "<{};lr>",
            crate::cscf::node_uri(&self.ep, None, crate::sip::Transport::Tcp)
        )
    }

    fn contact(&self) -> String {
        format!(
            "<sip:{}:{};transport=tcp>;{}",
            self.ep.local_addr().ip(),
            self.ep.local_addr().port(),
            rcs::CHAT_TAG
        )
    }

    async fn on_request(self: Arc<Self>, inc: IncomingRequest) {
        let call_id = inc.request.headers.get("Call-ID").unwrap_or("").to_string();
        match inc.request.method {
            Method::Register => self.third_party_register(inc),
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            Method::Ack if self.role == ImRole::Terminating && self.is_our_dialog(&call_id) => {
                self.on_ack(&call_id)
            }
            Method::Ack => forward_ack(&self.ep, &self.resolver, inc.request, &self.host).await,
            // A file transfer's end (RFC 5547): its legs go, the BYE goes on.
            Method::Bye if self.role == ImRole::Terminating && self.is_ft_call(&call_id) => {
                self.end_ft_call(&call_id);
                self.proxy_back(inc).await
            }
            // Our own delivery INVITE, back through the recipient's iFC: never a new chat.
            Method::Invite if self.role == ImRole::Terminating && self.is_down_call(&call_id) => {
                self.proxy_back(inc).await
            }
            // The recipient ends the leg we opened towards it: only that leg goes; the sender's
            // side stays, and what it sends next is kept for the recipient's return.
            Method::Bye if self.role == ImRole::Terminating && self.is_down_call(&call_id) => {
                self.on_down_bye(inc, &call_id)
            }
            _ if self.role == ImRole::Terminating && self.is_own_call(&call_id) => {
                // Our own request, back through the recipient's iFC: pass it on.
                self.proxy_back(inc).await
            }
            Method::Bye if self.role == ImRole::Terminating && self.is_our_dialog(&call_id) => {
                self.on_bye(inc, &call_id)
            }
            // An MSRP file transfer (RFC 5547): relayed, not stored, by both roles.
            Method::Invite if !in_dialog(&inc.request) && rcs::ft::is_file_invite(&inc.request) => {
                self.ft_invite(inc).await
            }
            Method::Invite
                if self.role == ImRole::Terminating
                    && !in_dialog(&inc.request)
                    && rcs::is_chat_invite(&inc.request) =>
            {
                self.tim_invite(inc).await
            }
            Method::Message if self.role == ImRole::Terminating => self.tim_message(inc).await,
            Method::Invite
                if self.role == ImRole::Originating
                    && !in_dialog(&inc.request)
                    && rcs::is_chat_invite(&inc.request) =>
            {
                self.oim_invite(inc).await
            }
            Method::Bye if self.role == ImRole::Originating => {
                if let Some(pair) = self
                    .proxied
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(&call_id))
                {
                    self.hub.remove_pair(pair);
                }
                self.proxy_back(inc).await
            }
            _ => self.proxy_back(inc).await,
        }
    }

    fn is_own_call(&self, call_id: &str) -> bool {
        self.own_calls.lock().is_ok_and(|s| s.contains(call_id))
    }

    fn is_down_call(&self, call_id: &str) -> bool {
        self.sessions
            .lock()
            .is_ok_and(|s| s.values().any(|t| t.down_call.as_deref() == Some(call_id)))
    }

    fn is_our_dialog(&self, call_id: &str) -> bool {
        self.sessions.lock().is_ok_and(|s| {
            s.values().any(|t| {
                t.up_call.as_deref() == Some(call_id) || t.down_call.as_deref() == Some(call_id)
            })
        })
    }

    /// TS 24.229 §5.7.1.1: the S-CSCF tells us the user's registration state. A user coming
    /// back gets what T-IM kept for them.
    fn third_party_register(self: Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let impu = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor());
        let expires: u64 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        // TS 24.229 §5.4.1.7: the Contact of the third-party REGISTER is the S-CSCF's URI.
        let scscf = req
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .and_then(|na| Some(scscf_route(na.uri.host()?, na.uri.port().unwrap_or(5060))));
        // The rest of the user's implicit registration set (P-Associated-URI of the 200 OK
        // the iFC's IncludeRegisterResponse gives us, TS 24.229 §5.4.1.7): a chat to
        // `tel:+15550002` is for the same registered user as one to `sip:bob@ims.lab`, and
        // what was stored for either goes out when they register.
        let mut names: Vec<String> = impu.iter().cloned().collect();
        for a in crate::sip::embedded::associated_uris(req) {
            if names.len() > MAX_ALIASES {
                break;
            }
            if !names.contains(&a) {
                names.push(a);
            }
        }
        if let Ok(mut m) = self.online.lock() {
            if expires == 0 {
                // A de-registration need not carry the set again: the one learnt goes too.
                let known = names.first().and_then(|n| m.get(n)).map(|o| o.set.clone());
                for a in known.unwrap_or_default() {
                    if !names.contains(&a) {
                        names.push(a);
                    }
                }
            }
            for name in &names {
                if expires == 0 {
                    m.remove(name);
                } else {
                    let until = Instant::now() + Duration::from_secs(expires);
                    let scscf = scscf.clone();
                    let set = if Some(name) == names.first() {
                        names[1..].to_vec()
                    } else {
                        Vec::new()
                    };
                    m.insert(name.clone(), Online { until, scscf, set });
                }
            }
            // Bounded: registrations that lapsed are forgotten by the sweep (`expire`, each
            // second), not here: a scan per REGISTER cost O(users) per registration.
        }
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        // The user's worker delivers what waits, retrying while they stay registered (the
        // S-CSCF may tell us before the REGISTER's 200 reached the P-CSCF: then the first
        // INVITE gets 480 and the retry one second later succeeds).
        if self.role == ImRole::Terminating {
            for user in &names {
                self.kick(user, expires > 0);
            }
        }
    }

    /// §5.7.4: proxy the request on along its Route (back to the S-CSCF).
    async fn proxy_back(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        pop_own_route(&mut req, &self.ep, &self.host);
        // An in-dialog request addressed to us with nowhere else to go is for a dialog we no
        // longer hold (a chat that fell back to pager mode, one already closed): sending it
        // "on" would send it to ourselves until Max-Forwards ran out (RFC 3261 §12.2.2: 481).
        if in_dialog(&req)
            && req.headers.get("Route").is_none()
            && crate::cscf::is_own_uri(&req.uri, &self.ep, &self.host)
        {
            self.ep
                .note(|| format!("{} for a dialog we do not hold: 481", req.method));
            inc.tx.respond(reject(
                &req,
                481,
                &self.host,
                "no such dialog here (it ended or fell back to pager mode)",
            ));
            return;
        }
        if creates_dialog(&req) {
            req.headers.push_front("Record-Route", self.record_route());
        }
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            inc.tx
                .respond(reject(&req, 404, &self.host, "no route back to the S-CSCF"));
            return;
        };
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
    }

    // ---- O-IM -------------------------------------------------------------------------

    /// Figure 1 steps 2-4 and the 200 of 8-9: proxy the chat INVITE with our MSRP path in the
    /// offer, and the 200 with our path in the answer.
    async fn oim_invite(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        pop_own_route(&mut req, &self.ep, &self.host);
        req.headers.push_front("Record-Route", self.record_route());
        let offer = match rcs::chat_body(req.headers.get("Content-Type"), &req.body) {
            Ok(b) => b,
            Err(why) => {
                inc.tx.respond(reject(&req, 488, &self.host, &why));
                return;
            }
        };
        let (pair, uri_a, uri_b) = self.hub.new_pair();
        if let Some(p) = offer.sdp.path.last() {
            self.hub.set_remote(pair, Side::A, p);
        }
        // UE1 binds leg A (figure 1 step 11).
        if let Some(u) = identity(&req, "P-Asserted-Identity").or_else(|| identity(&req, "From")) {
            self.hub.set_owner(pair, Side::A, &ue_name(&u));
        }
        let ip = self.hub.local_addr().ip().to_string();
        let port = self.hub.local_addr().port();
        let _ = rcs::rewrite_request_sdp(&mut req, &MsrpSdp::rcs_chat(&ip, port, &uri_b, "active"));
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            self.hub.remove_pair(pair);
            inc.tx
                .respond(reject(&req, 404, &self.host, "no route back to the S-CSCF"));
            return;
        };
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        let hub = self.hub.clone();
        let answer = MsrpSdp::rcs_chat(&ip, port, &uri_a, "passive");
        let fin = proxy_to_with(&self.ep, &inc.tx, fwd, dest, t, |resp| {
            if resp.is_success() && !resp.body.is_empty() {
                if let Ok(cb) = rcs::rewrite_response_sdp(resp, &answer) {
                    if let Some(p) = cb.sdp.path.last() {
                        hub.set_remote(pair, Side::B, p);
                    }
                }
            }
        })
        .await;
        if fin.is_some_and(|r| r.is_success()) {
            if let Ok(mut m) = self.proxied.lock() {
                m.insert(call_id, pair);
            }
        } else {
            self.hub.remove_pair(pair);
        }
    }

    // ---- T-IM -------------------------------------------------------------------------

    /// Figure 1 steps 5-6: T-IM stores the first message and answers 200 itself.
    async fn tim_invite(self: Arc<Self>, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        pop_own_route(&mut req, &self.ep, &self.host);
        let offer = match rcs::chat_body(req.headers.get("Content-Type"), &req.body) {
            Ok(b) => b,
            Err(why) => {
                inc.tx.respond(reject(&req, 488, &self.host, &why));
                return;
            }
        };
        let from = identity(&req, "P-Asserted-Identity").or_else(|| identity(&req, "From"));
        let to = crate::sip::Uri::parse(&req.uri).map(|u| u.aor()).ok();
        let (Some(from), Some(to)) = (from, to) else {
            inc.tx
                .respond(reject(&req, 400, &self.host, "no sender or recipient"));
            return;
        };
        if self.sessions.lock().map(|s| s.len()).unwrap_or(0) >= MAX_SESSIONS {
            let mut r = reject(&req, 503, &self.host, "too many chat sessions");
            r.headers.push("Retry-After", "5");
            inc.tx.respond(r);
            return;
        }
        let (pair, uri_a, _) = self.hub.new_pair();
        if let Some(p) = offer.sdp.path.last() {
            self.hub.set_remote(pair, Side::A, p);
        }
        // UE2 binds leg B (figure 1 step 25).
        self.hub.set_owner(pair, Side::B, &ue_name(&to));
        let contribution_id = req.headers.get("Contribution-ID").unwrap_or("").to_string();
        let conversation_id = req.headers.get("Conversation-ID").unwrap_or("").to_string();
        if let Some(first) = &offer.first {
            // A file's recipient may download it once T-IM has the message (RCC.07 §3.2.5).
            self.grant_if_file("message/cpim", first, &to).await;
            match self.take(&from, &to, first, &contribution_id, &conversation_id, true) {
                Err(why) => {
                    self.hub.remove_pair(pair);
                    inc.tx.respond(reject(&req, 500, &self.host, &why));
                    return;
                }
                Ok(m) => {
                    // The 200 promises the message: it goes out once the write is on disk.
                    if let Some(Err(e)) = match &self.store {
                        Some(st) => Some(st.durable().await),
                        None => None,
                    } {
                        self.hub.remove_pair(pair);
                        inc.tx
                            .respond(reject(&req, 500, &self.host, &format!("not stored: {e}")));
                        return;
                    }
                    let seq = m.map(|m| m.seq).unwrap_or(0);
                    self.ep.note(|| {
                        format!("stored the first message for {to} (seq {seq}, on disk) before answering 200")
                    });
                }
            }
        }
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        // The sender learns the recipient is away (RFC 3261 §20.43 Warning, code 399
        // "miscellaneous"): the message is stored, its status comes later as an IMDN.
        let stored_offline = offer.first.is_some() && !self.is_online(&to);
        let session = TimSession {
            pair,
            from,
            to,
            contribution_id,
            conversation_id,
            up_call: Some(call_id),
            acked: false,
            route_back: req
                .headers
                .values("Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            down_call: None,
            down_at: None,
            opened_at: Instant::now(),
            delivering: false,
            up_closed: false,
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(pair, session);
        }
        let ip = self.hub.local_addr().ip().to_string();
        let sdp = MsrpSdp::rcs_chat(&ip, self.hub.local_addr().port(), &uri_a, "passive");
        let mut ok = crate::sip::uas_response_with(
            &inc.request,
            200,
            &crate::sip::new_tag(),
            &self.contact(),
        );
        ok.headers.push("Supported", "timer");
        if stored_offline {
            ok.headers.push("Warning", stored_warning(&self.host));
        }
        rcs::set_chat_body(&mut ok.headers, &mut ok.body, &sdp, None);
        inc.tx.respond(ok);
    }

    fn session(&self, pair: u64) -> Option<TimSession> {
        self.sessions.lock().ok()?.get(&pair).cloned()
    }

    fn on_ack(self: Arc<Self>, call_id: &str) {
        let pair = self.sessions.lock().ok().and_then(|mut s| {
            let t = s
                .values_mut()
                .find(|t| t.up_call.as_deref() == Some(call_id))?;
            t.acked = true;
            Some(t.pair)
        });
        if let Some(pair) = pair {
            self.maybe_deliver(pair);
        }
    }

    fn on_down_bye(&self, inc: IncomingRequest, call_id: &str) {
        let mut ok = inc.request.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        let pair = self.sessions.lock().ok().and_then(|mut s| {
            let t = s
                .values_mut()
                .find(|t| t.down_call.as_deref() == Some(call_id))?;
            t.down_call = None;
            Some(t.pair)
        });
        if let Ok(mut own) = self.own_calls.lock() {
            own.remove(call_id);
        }
        if let Some(pair) = pair {
            self.hub.close_leg(pair, Side::B);
        }
    }

    fn on_bye(&self, inc: IncomingRequest, call_id: &str) {
        inc.tx.respond(inc.request.response(200, None));
        if let Ok(mut s) = self.sessions.lock() {
            let pairs: Vec<u64> = s
                .values()
                .filter(|t| {
                    t.up_call.as_deref() == Some(call_id) || t.down_call.as_deref() == Some(call_id)
                })
                .map(|t| t.pair)
                .collect();
            for p in pairs {
                s.remove(&p);
                self.hub.remove_pair(p);
            }
        }
    }

    fn on_hub(self: Arc<Self>, ev: HubEvent) {
        let Some(ev) = self.ft_hub(ev) else {
            return;
        };
        match ev {
            HubEvent::Bound { pair, side } => match (self.role, side) {
                // UE1 bound its leg at O-IM (step 11): bind ours towards T-IM.
                (ImRole::Originating, Side::A) => self.hub.connect_leg(pair, Side::B),
                (ImRole::Terminating, Side::A) => self.maybe_deliver(pair),
                // UE2 bound (step 25): what waited for it goes out, then the leg relays.
                (ImRole::Terminating, Side::B) => {
                    tokio::spawn(async move { self.flush(pair).await });
                }
                _ => {}
            },
            HubEvent::Message {
                pair,
                from,
                content_type,
                body,
                relayed,
            } if self.role == ImRole::Terminating && relayed => {
                self.relayed(pair, from, &content_type, &body)
            }
            HubEvent::Closed { pair, side } if self.role == ImRole::Terminating => {
                // A session both of whose legs are gone is forgotten (what it still owed is in
                // the store and goes out with a new session when the recipient is back).
                let done = self.sessions.lock().ok().and_then(|mut s| {
                    let t = s.get_mut(&pair)?;
                    match side {
                        Side::A => t.up_closed = true,
                        Side::B => {
                            if let (Some(c), Ok(mut own)) =
                                (t.down_call.take(), self.own_calls.lock())
                            {
                                own.remove(&c);
                            }
                        }
                    }
                    t.finished().then(|| s.remove(&pair))?
                });
                if done.is_some() {
                    self.hub.remove_pair(pair);
                }
            }
            HubEvent::Closed { pair, .. } if self.role == ImRole::Originating => {
                // O-IM relays only while both ends are there; the dialog's BYE may never come.
                if let Ok(mut m) = self.proxied.lock() {
                    m.retain(|_, p| *p != pair);
                }
                self.hub.remove_pair(pair);
            }
            _ => {}
        }
    }

    /// Delivery starts once the originating side's dialog is confirmed (ACK) and its MSRP leg
    /// is bound, so UE2's INVITE (step 13) follows UE1's binding (steps 11-12).
    fn maybe_deliver(self: Arc<Self>, pair: u64) {
        let ready = self.sessions.lock().ok().and_then(|s| {
            let t = s.get(&pair)?;
            Some(t.acked && t.down_call.is_none())
        }) == Some(true)
            && self.hub.is_ready(pair, Side::A);
        if ready {
            // The recipient's worker INVITEs within this session (and retries or falls back
            // to pager mode when that fails).
            if let Some(to) = self.session(pair).map(|s| s.to) {
                self.kick(&to, false);
            }
        }
    }
}

/// The Warning T-IM puts on its 200 OK when it stored the first message for a recipient who
/// is not registered (RFC 3261 §20.43; 399 is "miscellaneous warning").
pub fn stored_warning(host: &str) -> String {
    format!("399 {host} \"{STORED_WARNING}\"")
}

/// The text of [`stored_warning`], which clients look for (defined with the RCS codec
/// helpers, which the client shares).
pub use crate::rcs::STORED_WARNING;

/// How ladders name a user's client: `UE alice` for `sip:alice@ims.lab` (as
/// [`crate::lab::registered_names`] does).
fn ue_name(aor: &str) -> String {
    let u = aor.split_once(':').map(|(_, r)| r).unwrap_or(aor);
    format!("UE {}", u.split('@').next().unwrap_or(u))
}

fn identity(req: &Request, header: &str) -> Option<String> {
    req.headers
        .get(header)
        .and_then(|v| NameAddr::parse(v).ok())
        .map(|na| na.uri.aor())
}

fn status_word(s: ImdnStatus) -> &'static str {
    match s {
        ImdnStatus::Delivered => "delivered",
        ImdnStatus::Displayed => "displayed",
        ImdnStatus::Failed => "failed",
    }
}
