//! CONF, the group-chat conference focus (OMA SIMPLE IM 1.0 §7 "Controlling Function", GSMA
//! RCC.07 §3.4 group chat, RFC 4579 / RFC 4575 / RFC 5366): an application server the S-CSCF
//! reaches by iFC for the conference factory `sip:chat-factory@DOMAIN` and for each group's
//! conference URI `sip:chat-GID@DOMAIN` (TS 24.229 §5.7.3: it answers them itself).
//!
//! - **Create** ([`create`]): an INVITE to the factory with `multipart/mixed` (the MSRP SDP and
//!   a `resource-lists` part with `Content-Disposition: recipient-list`, RFC 5366) makes a
//!   group: the creator is its chairman, the list its invited members (at most
//!   `[group] max_members` in all: 403 past it; a malformed list 400; a list body over 32 KiB
//!   413). The 200 carries a Contact with `isfocus` (RFC 4579 §3.3) naming the group, and the
//!   focus INVITEs each member through the S-CSCF (From: the group, `Referred-By`: the
//!   creator, the same Subject and Contribution-ID).
//! - **MSRP** ([`relay`]): each member has its own leg (its own `a=path` URI on the focus's
//!   listener); the member connects and binds it with a first SEND. A message a member sends
//!   is given the next sequence number, written to the history in sled and flushed, then
//!   answered 200 and sent to every member whose leg is up, with the CPIM `From` set to the
//!   sender's identity. IMDNs go to the member the CPIM `To` names (per-recipient reporting,
//!   as RCC.07 allows); is-composing goes to everyone else. A member whose leg is down gets
//!   what it missed, in order, when it binds again.
//! - **Roster** ([`notify`]): a member's `SUBSCRIBE Event: conference` to the group's URI gets
//!   a full `conference-info` (RFC 4575), then a partial one at each join and leave.
//! - **Leave**: a member's BYE ends its membership (departed, notified); a BYE saying the
//!   device goes away (`Reason: SIP;cause=480`) keeps it a member, away, and invites it back
//!   when it registers, or at once on another device it is still registered on ([`away`]).

mod away;
mod create;
mod dialog;
pub mod group;
mod idle;
mod legs;
mod notify;
mod refer;
mod relay;
pub mod store;

pub use away::REJOIN_AFTER;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::cscf::{in_dialog, reject};
use crate::msrp::conn::MsrpConn;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, Request};
use crate::store::GroupCommit;
use crate::trace::Trace;
use group::{Group, MemberState};
use store::FocusStore;

/// How the focus behaves (`[group]` in the lab file).
#[derive(Debug, Clone)]
pub struct FocusSettings {
    /// Members a group may have, its creator included (RCC.07's default 100).
    pub max_members: usize,
    /// The conference factory's user part (`chat-factory`).
    pub factory: String,
    /// The largest message relayed (MSRP, bytes).
    pub max_message_size: u64,
    /// How long a group may carry no message before the focus ends its sessions (`None`:
    /// never).
    pub idle_timeout: Option<std::time::Duration>,
}

impl Default for FocusSettings {
    fn default() -> Self {
        FocusSettings {
            max_members: 100,
            factory: "chat-factory".into(),
            max_message_size: 1 << 20,
            idle_timeout: Some(std::time::Duration::from_secs(600)),
        }
    }
}

/// Why the focus could not start.
#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    /// Its sled trees could not be opened.
    #[error("group store: {0}")]
    Store(#[from] sled::Error),
}

/// How long a new member leg may wait for its binding SEND.
const UNBOUND_LEG: std::time::Duration = std::time::Duration::from_secs(60);
/// Messages sent to members whose MSRP 200 is awaited, at most (past it a delivery is not
/// tracked: the member's cursor stays, and it gets the message again when it rebinds, which
/// its client drops by Message-ID).
const MAX_TRACKED: usize = 100_000;

/// Reports held while their member's 200 is awaited ([`Tracked::held`]), in bytes at most;
/// past it, and for a report larger than [`MAX_HELD_REPORT`], a report goes through the
/// history as a message does.
const MAX_HELD_BYTES: usize = 16 << 20;
const MAX_HELD_REPORT: usize = 8 << 10;

/// Groups the focus holds at most (beyond, creation gets 503).
const MAX_GROUPS: usize = 100_000;

/// One member's MSRP leg.
#[derive(Debug)]
struct Leg {
    gid: String,
    member: String,
    /// Our `a=path` URI for it.
    local: String,
    /// The member's, from its SDP.
    remote: Option<String>,
    /// Its connection once bound.
    conn: Option<MsrpConn>,
}

/// A message sent to a member whose MSRP 200 is awaited (its cursor moves on with it).
#[derive(Debug, Clone)]
struct Tracked {
    gid: String,
    member: String,
    seq: u64,
    /// The leg it went on (forgotten with it).
    leg: String,
    /// A disposition report sent straight to its member, not through the history (its
    /// sender asked for no answer): put in the history if the member does not take it.
    held: Option<bytes::Bytes>,
}

/// An INVITE dialog with a member (theirs to us, or ours to them), by Call-ID.
#[derive(Debug, Clone)]
struct MemberDialog {
    gid: String,
    member: String,
    leg: String,
    /// Set once the dialog is up (our 200 sent, or their 200 in).
    dialog: Option<dialog::Dialog>,
}

/// The focus node.
pub struct Focus {
    ep: Endpoint,
    resolver: Resolver,
    host: String,
    domain: String,
    settings: FocusSettings,
    store: FocusStore,
    trace: Trace,
    msrp_addr: SocketAddr,
    msrp: Mutex<Option<TcpListener>>,
    scscf: OnceLock<String>,
    groups: Mutex<HashMap<String, Group>>,
    legs: Mutex<legs::Legs>,
    dialogs: Mutex<HashMap<String, MemberDialog>>,
    subs: Mutex<HashMap<String, notify::Subscription>>,
    /// MSRP transactions of messages we sent a member, by transaction id (at most
    /// [`MAX_TRACKED`]).
    sent: Mutex<HashMap<String, Tracked>>,
    /// Bytes of the reports held in `sent` (at most [`MAX_HELD_BYTES`]).
    held_bytes: std::sync::atomic::AtomicUsize,
    /// Per group: the lock that puts its messages and its legs' bindings in one order.
    order: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// (group, member) being invited back after a registration ([`away`]) or a restart.
    returning: Mutex<std::collections::HashSet<String>>,
    /// Users registered, as the third-party REGISTERs said, and until when ([`away`]).
    registered: Mutex<away::Registered>,
    /// Groups whose sequence number or delivery cursors changed since they were last written.
    dirty: Mutex<std::collections::HashSet<String>>,
    /// Groups with sessions, and when each last carried something ([`idle`]).
    active: Mutex<HashMap<String, std::time::Instant>>,
    /// How it grants the members a file sent to their group (RCC.07 §3.2.5, the content
    /// server's `POST /grants`).
    grants: OnceLock<crate::content::GrantClient>,
}

/// The SIP cause of a request's `Reason` header (RFC 3326: `SIP;cause=480;text="…"`).
fn sip_cause(req: &Request) -> Option<u16> {
    req.headers.values("Reason").iter().find_map(|r| {
        let mut parts = r.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case("SIP") {
            return None;
        }
        parts.find_map(|p| p.strip_prefix("cause=").and_then(|c| c.trim().parse().ok()))
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Focus {
    /// A focus on `ep` whose host name is `host` (`conf.ims.lab`), taking its members' MSRP
    /// connections on `msrp`, keeping groups and their history in `db` (flushed through
    /// `commit` before anything is acknowledged).
    pub fn new(
        ep: Endpoint,
        resolver: Resolver,
        host: &str,
        msrp: TcpListener,
        trace: Trace,
        store: (&sled::Db, GroupCommit),
        settings: FocusSettings,
    ) -> Result<Arc<Focus>, FocusError> {
        let st = FocusStore::open(store.0, store.1)?;
        let mut groups = HashMap::new();
        for mut g in st.groups() {
            // The history has the last sequence number (the group is written lazily).
            if let Some(last) = st.last_seq(&g.id) {
                g.next_seq = g.next_seq.max(last + 1);
            }
            // After a restart nobody is in a session: everyone left is away until they bind.
            for m in g.members.iter_mut() {
                if m.state != MemberState::Departed {
                    m.state = MemberState::Away;
                }
            }
            groups.insert(g.id.clone(), g);
        }
        let msrp_addr = msrp.local_addr().unwrap_or_else(|_| ep.local_addr());
        let domain = host.split_once('.').map(|(_, d)| d).unwrap_or(host);
        Ok(Arc::new(Focus {
            resolver,
            host: host.to_string(),
            domain: domain.to_string(),
            settings,
            store: st,
            trace,
            msrp_addr,
            msrp: Mutex::new(Some(msrp)),
            scscf: OnceLock::new(),
            groups: Mutex::new(groups),
            legs: Mutex::new(legs::Legs::default()),
            dialogs: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            held_bytes: std::sync::atomic::AtomicUsize::new(0),
            order: Mutex::new(HashMap::new()),
            returning: Mutex::new(std::collections::HashSet::new()),
            registered: Mutex::new(away::Registered::default()),
            active: Mutex::new(HashMap::new()),
            dirty: Mutex::new(std::collections::HashSet::new()),
            grants: OnceLock::new(),
            ep,
        }))
    }

    /// Where requests it originates (the INVITEs to members) go: the S-CSCF at `addr`.
    pub fn set_scscf(&self, addr: SocketAddr) {
        let uri = crate::cscf::node_uri_at(addr, None, crate::sip::Transport::Tcp);
        let _ = self.scscf.set(format!("<{uri};lr>"));
    }

    /// From now on, a file sent to a group (a file-info message, RCC.07 §3.2.5) is granted
    /// to every current member at the content server before it goes out.
    pub fn set_grants(&self, client: crate::content::GrantClient) {
        let _ = self.grants.set(client);
    }

    /// Where its MSRP listener is.
    pub fn msrp_addr(&self) -> SocketAddr {
        self.msrp_addr
    }

    /// Groups it holds.
    pub fn groups(&self) -> usize {
        lock(&self.groups).len()
    }

    /// A copy of group `gid` (tests, the lab's views).
    pub fn group(&self, gid: &str) -> Option<Group> {
        lock(&self.groups).get(gid).cloned()
    }

    /// The conference URI of group `gid`.
    pub fn group_uri(&self, gid: &str) -> String {
        format!("sip:chat-{gid}@{}", self.domain)
    }

    /// Serves SIP requests and MSRP connections until the endpoint closes or `shutdown` fires.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if let Some(l) = lock(&self.msrp).take() {
            tokio::spawn(relay::accept(self.clone(), l, shutdown.clone()));
        }
        tokio::spawn(self.clone().idle_sweep(shutdown.clone()));
        tokio::spawn(self.clone().write_dirty(shutdown.clone()));
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
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The group a conference URI (`sip:chat-GID@…`) names, if we hold it.
    fn gid_of(&self, uri: &str) -> Option<String> {
        let u = crate::sip::Uri::parse(uri).ok()?;
        let gid = u.user()?.strip_prefix("chat-")?;
        lock(&self.groups)
            .contains_key(gid)
            .then(|| gid.to_string())
    }

    fn is_factory(&self, uri: &str) -> bool {
        crate::sip::Uri::parse(uri)
            .ok()
            .and_then(|u| {
                u.user()
                    .map(|x| x.eq_ignore_ascii_case(&self.settings.factory))
            })
            .unwrap_or(false)
    }

    /// Our Contact for group `gid`: its URI at our address, a focus (RFC 4579 §3.3).
    fn contact(&self, gid: &str) -> String {
        let a = self.ep.local_addr();
        format!(
            "<sip:chat-{gid}@{}:{};transport=tcp>;isfocus;{}",
            a.ip(),
            a.port(),
            crate::rcs::CHAT_TAG
        )
    }

    async fn on_request(self: Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        match req.method {
            Method::Ack => {}
            Method::Register => self.third_party_register(inc),
            Method::Invite if !in_dialog(req) && self.is_factory(&req.uri) => {
                self.create(inc).await
            }
            Method::Invite if !in_dialog(req) => match self.gid_of(&req.uri) {
                Some(gid) => self.rejoin(inc, &gid).await,
                None => self.refuse(inc, 404, "no such group"),
            },
            Method::Bye => self.on_bye(inc, &call_id).await,
            Method::Subscribe => self.on_subscribe(inc).await,
            Method::Refer => self.on_refer(inc).await,
            Method::Options => {
                let r = crate::sip::uas_response_with(req, 200, &crate::sip::new_tag(), "");
                inc.tx.respond(r);
            }
            _ if in_dialog(req) => self.refuse(inc, 481, "no such dialog here"),
            _ => self.refuse(
                inc,
                405,
                "the group focus takes INVITE, BYE, SUBSCRIBE and REFER",
            ),
        }
    }

    fn refuse(&self, inc: IncomingRequest, code: u16, why: &str) {
        inc.tx.respond(reject(&inc.request, code, &self.host, why));
    }

    /// The member who sent `req` (P-Asserted-Identity, which the P-CSCF set, else From).
    fn sender(req: &Request) -> String {
        let h = req
            .headers
            .get("P-Asserted-Identity")
            .or_else(|| req.headers.get("From"))
            .unwrap_or("");
        crate::sip::NameAddr::parse(h)
            .map(|na| na.uri.aor())
            .unwrap_or_default()
    }

    /// A member's BYE (RFC 4579 §5.8; its leg closes): it leaves the group, unless the BYE
    /// says the session ends for another reason than the member's wish (`Reason: SIP;cause=`
    /// other than 200, e.g. 480 when the client de-registers): then it stays a member, away,
    /// and what is said waits for it.
    async fn on_bye(self: &Arc<Self>, inc: IncomingRequest, call_id: &str) {
        let d = lock(&self.dialogs).remove(call_id);
        let Some(d) = d else {
            self.refuse(inc, 481, "no such dialog here");
            return;
        };
        let leaves = match sip_cause(&inc.request) {
            Some(cause) => cause == 200,
            None => true,
        };
        let ok = crate::sip::uas_response_with(&inc.request, 200, &crate::sip::new_tag(), "");
        inc.tx.respond(ok);
        self.close_leg(&d.leg);
        // Another device of the member may still be in the session.
        let elsewhere = lock(&self.legs)
            .of_group(&d.gid)
            .any(|(_, x)| x.member == d.member && x.conn.is_some());
        let mut gone_away = false;
        let changed = {
            let mut groups = lock(&self.groups);
            groups.get_mut(&d.gid).and_then(|g| {
                let moved = if leaves {
                    g.set_state(&d.member, MemberState::Departed, Some("departed"))
                } else {
                    gone_away = g.is_member(&d.member)
                        && !elsewhere
                        && g.set_state(&d.member, MemberState::Away, None);
                    gone_away
                };
                // One device of several leaving the session changes nothing in the roster.
                moved.then(|| g.clone())
            })
        };
        if let Some(g) = changed {
            self.persist(&g).await;
            self.roster_changed(&d.gid, std::slice::from_ref(&d.member))
                .await;
        }
        if gone_away {
            // The device went away; the user may still be registered on another one.
            self.back_if_registered(&d.gid, &d.member);
        }
    }

    /// Writes the groups whose cursors moved, once a second, until `shutdown` (then once
    /// more). A cursor that lags after a crash only sends a member again what its client
    /// already has (and drops by Message-ID).
    async fn write_dirty(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
                _ = shutdown.changed() => true,
            };
            let gids: Vec<String> = lock(&self.dirty).drain().collect();
            for gid in gids {
                let groups = lock(&self.groups);
                if let Some(g) = groups.get(&gid) {
                    if let Err(e) = self.store.put_group(g) {
                        tracing::error!(%gid, error = %e, "group store: write failed");
                    }
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Group `gid`'s sequence number or cursors moved: it is written within a second.
    fn mark_dirty(&self, gid: &str) {
        let mut d = lock(&self.dirty);
        if !d.contains(gid) {
            d.insert(gid.to_string());
        }
    }

    /// Writes `g` and waits for the disk.
    async fn persist(&self, g: &Group) -> bool {
        // What is true now, under the lock: two writers of one group cannot put an older
        // state on disk after a newer one.
        let written = {
            let groups = lock(&self.groups);
            self.store.put_group(groups.get(&g.id).unwrap_or(g))
        };
        if let Err(e) = written {
            tracing::error!(gid = %g.id, error = %e, "group store: write failed");
            return false;
        }
        match self.store.durable().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(gid = %g.id, error = %e, "group store: flush failed");
                false
            }
        }
    }

    /// A new leg for `member` of `gid`: its id and local path URI. A leg nobody binds within
    /// [`UNBOUND_LEG`] (the member's client never connected) goes as a lost one does.
    fn new_leg(
        self: &Arc<Self>,
        gid: &str,
        member: &str,
        remote: Option<String>,
    ) -> (String, String) {
        let id = crate::rcs::new_id()[..16].to_string();
        let a = self.msrp_addr;
        let local = format!("msrp://{}:{}/{id};tcp", a.ip(), a.port());
        lock(&self.legs).insert(
            id.clone(),
            Leg {
                gid: gid.to_string(),
                member: member.to_string(),
                local: local.clone(),
                remote,
                conn: None,
            },
        );
        let (me, leg) = (self.clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(UNBOUND_LEG).await;
            let unbound = lock(&me.legs).get(&leg).is_some_and(|l| l.conn.is_none());
            if unbound {
                tracing::debug!(%leg, "member leg never bound: lost");
                me.leg_lost(&leg).await;
            }
        });
        (id, local)
    }

    fn close_leg(self: &Arc<Self>, leg: &str) {
        if let Some(l) = lock(&self.legs).remove(leg) {
            self.forget_sent(leg);
            if let Some(c) = l.conn {
                c.close();
            }
        }
    }

    /// Reserves room for a held report of `n` bytes; false past [`MAX_HELD_BYTES`] or for a
    /// report over [`MAX_HELD_REPORT`].
    fn hold(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        n <= MAX_HELD_REPORT
            && self
                .held_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                    (h + n <= MAX_HELD_BYTES).then_some(h + n)
                })
                .is_ok()
    }

    /// A held report of `n` bytes is no longer held.
    fn held_released(&self, n: usize) {
        self.held_bytes
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The 200s a leg that is gone will never send: no longer awaited. The reports sent
    /// straight to it go into the history, for the member's next leg.
    fn forget_sent(self: &Arc<Self>, leg: &str) {
        let mut held = Vec::new();
        lock(&self.sent).retain(|_, t| {
            if t.leg != leg {
                return true;
            }
            if let Some(b) = t.held.take() {
                self.held_released(b.len());
                held.push((t.gid.clone(), t.member.clone(), b));
            }
            false
        });
        if !held.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                for (gid, member, report) in held {
                    me.keep_report(&gid, &member, &report).await;
                }
            });
        }
    }
}
