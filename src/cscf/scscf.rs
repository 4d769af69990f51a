//! S-CSCF: registrar and authenticator (TS 24.229 §5.4.1).
//!
//! A REGISTER without valid credentials gets a Cx Multimedia-Auth-Request (TS 29.229 §6.1.8)
//! and a 401 carrying a SIP Digest (RFC 2617, qop=auth) or an AKAv1-MD5 (RFC 3310) challenge.
//! The second REGISTER is checked here; on success a Server-Assignment-Request (§6.1.2)
//! downloads the user profile and the 200 OK carries the bindings, the Path echoed (RFC 3327),
//! Service-Route (RFC 3608) and P-Associated-URI (RFC 3455). `Expires: 0` de-registers
//! (SAR USER_DEREGISTRATION); bindings that lapse are removed by a timer
//! (SAR TIMEOUT_DEREGISTRATION).
//!
//! Every authentication failure is logged with the reason a person can act on: unknown IMPI,
//! wrong password, RES mismatch, MAC failure reported by the UE (K/OPc differ), SQN
//! re-synchronisation, stale or unknown nonce.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::ifc::{self, SessionCase};
use super::nonces::NonceTable;
use super::regevent::{reginfo_xml, ContactEvent, RegSubTable, RegSubscription};
use super::{
    authorization_username, creates_dialog, forward_ack, forward_copy, forward_stray_response,
    in_dialog, next_hop, pop_own_route, proxy_to, reject, requested_expires,
};
use crate::auth::digest::{self, Challenge, Credentials};
use crate::config::Registrar;
use crate::diameter::client::DiameterClient;
use crate::diameter::cx::{
    self, CxResult, MultimediaAuthAnswer, MultimediaAuthRequest, ServerAssignmentAnswer,
    ServerAssignmentRequest, ServerAssignmentType, SipAuthDataItem,
};
use crate::profile::ImsSubscription;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Request, Response, Transport};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// SIP-Authentication-Scheme values of TS 29.229 §6.3.9 as real HSSes use them.
pub const SCHEME_DIGEST: &str = "SIP Digest";
/// AKAv1-MD5 (RFC 3310).
pub const SCHEME_AKA: &str = "Digest-AKAv1-MD5";
/// Let the HSS choose.
pub const SCHEME_UNKNOWN: &str = "Unknown";

/// How long a challenge stays valid, and how long a digest nonce may be reused.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Challenges outstanding per private identity: a new one past this replaces the oldest, so a
/// client that REGISTERs over and over without answering cannot grow the nonce table.
const MAX_NONCES_PER_IMPI: usize = 8;
/// Reg-event subscriptions at most per identity and in all (more get 503).
const MAX_REG_SUBS_PER_AOR: usize = 16;
const MAX_REG_SUBS: usize = 100_000;

/// One registered contact of a public identity.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The Contact URI.
    pub contact: String,
    /// The Contact header value as registered (with its feature tags), without expires.
    pub contact_header: String,
    /// When it lapses.
    pub expires_at: Instant,
    /// When it was last registered or refreshed ("most recent" for terminating requests).
    pub updated: Instant,
    /// Path recorded at registration (RFC 3327): terminating requests follow it.
    pub path: Vec<String>,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261 §10.3 step 6).
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
}

/// The registration of one implicit registration set.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Private identity that registered.
    pub impi: String,
    /// Public identities of the set, default first (from the profile).
    pub impus: Vec<String>,
    /// Current bindings.
    pub bindings: Vec<Binding>,
    /// The user profile from SAA User-Data.
    pub profile: Option<ImsSubscription>,
}

#[derive(Debug, Clone)]
enum Vector {
    Digest {
        ha1: String,
    },
    Aka {
        rand: [u8; 16],
        xres: Vec<u8>,
    },
    /// The challenge sent for an identity the HSS does not know (or an IMPU that is not the
    /// IMPI's): it looks like any other, and no answer to it is right, so an unknown user gets
    /// the same 401, 401, 403 as a known one with a wrong password (TS 33.203 §6.1: the
    /// answer must not tell which users exist).
    Decoy,
}

impl super::nonces::Challenge for PendingAuth {
    fn impi(&self) -> &str {
        &self.impi
    }
    fn created(&self) -> Instant {
        self.created
    }
}

#[derive(Debug, Clone)]
struct PendingAuth {
    impi: String,
    impu: String,
    vector: Vector,
    /// The realm and algorithm the challenge named (the answer is held to them).
    realm: String,
    algorithm: &'static str,
    created: Instant,
    /// Highest nc seen with this nonce (digest nonce reuse, RFC 2617 §3.2.2).
    last_nc: u64,
    /// Authenticated at least once (the nonce may be reused for re-registration).
    authenticated: bool,
}

/// What an S-CSCF is configured with.
pub struct ScscfSettings {
    /// Home domain.
    pub domain: String,
    /// Diameter Origin-Host.
    pub origin_host: String,
    /// Registrar limits.
    pub registrar: Registrar,
    /// `digest` or `aka` when the UE gives no hint.
    pub default_scheme: String,
    /// Transport towards the other CSCFs.
    pub mw: Transport,
    /// Next-hop resolution.
    pub resolver: Resolver,
    /// Failed-authentication limits.
    pub auth: super::auth_guard::AuthLimits,
}

/// The S-CSCF node.
pub struct Scscf {
    ep: Endpoint,
    hss: DiameterClient,
    domain: String,
    origin_host: String,
    registrar: Registrar,
    default_scheme: String,
    mw: Transport,
    resolver: Resolver,
    icscf: OnceLock<SocketAddr>,
    /// How long a non-INVITE request waits for an AS's final answer ([`Scscf::set_as_wait`]).
    as_wait: OnceLock<Duration>,
    /// Public identity (canonical) -> registration; every IMPU of a set points to one shared
    /// registration key (the default IMPU).
    regs: Mutex<HashMap<String, Registration>>,
    aliases: Mutex<HashMap<String, String>>,
    pending: Mutex<NonceTable<PendingAuth>>,
    as_ctx: Mutex<HashMap<String, AsContext>>,
    /// Profiles of unregistered users we serve (SAR UNREGISTERED_USER), by canonical IMPU.
    unreg_profiles: Mutex<HashMap<String, ImsSubscription>>,
    /// Subscriptions to the reg event package (RFC 3680), by Call-ID.
    reg_subs: Mutex<RegSubTable>,
    /// Failed authentications per IMPI and per UE address ([`super::auth_guard`]).
    guard: Mutex<super::auth_guard::AuthGuard>,
    session_seq: AtomicU64,
    /// What a REGISTER changed that others must hear about once its 200 OK is out (third-party
    /// REGISTER, reg-event NOTIFY), by the REGISTER's Call-ID and CSeq; taken right after the
    /// answer is sent, so it holds at most the REGISTERs in progress.
    after_ok: Mutex<HashMap<String, AfterRegister>>,
}

/// Sizes of the S-CSCF's tables ([`Scscf::table_sizes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScscfTables {
    /// Registered identity sets.
    pub registrations: usize,
    /// Outstanding authentication challenges (nonces).
    pub challenges: usize,
    /// Requests out at application servers.
    pub as_contexts: usize,
    /// Reg-event subscriptions.
    pub reg_subscriptions: usize,
}

/// The notifications a registration change owes, sent after the REGISTER's 200 OK.
struct AfterRegister {
    reg: Registration,
    impu: String,
    expires: u32,
    event: ContactEvent,
}

impl Scscf {
    /// An S-CSCF on `ep` using `hss` for Cx.
    pub fn new(ep: Endpoint, hss: DiameterClient, settings: ScscfSettings) -> Arc<Scscf> {
        let ScscfSettings {
            domain,
            origin_host,
            registrar,
            default_scheme,
            mw,
            resolver,
            auth,
        } = settings;
        Arc::new(Scscf {
            ep,
            hss,
            domain,
            origin_host,
            registrar,
            default_scheme,
            mw,
            resolver,
            icscf: OnceLock::new(),
            as_wait: OnceLock::new(),
            regs: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            pending: Mutex::new(NonceTable::default()),
            as_ctx: Mutex::new(HashMap::new()),
            reg_subs: Mutex::new(RegSubTable::default()),
            unreg_profiles: Mutex::new(HashMap::new()),
            guard: Mutex::new(super::auth_guard::AuthGuard::new(auth)),
            session_seq: AtomicU64::new(1),
            after_ok: Mutex::new(HashMap::new()),
        })
    }

    /// Our SIP URI as the HSS knows it (Server-Name), with the Mw transport: an IP literal, so
    /// a foreign I-CSCF (Kamailio's cannot use /etc/hosts) reaches us as written.
    pub fn server_name(ep: &Endpoint, _domain: &str, mw: Transport) -> String {
        super::node_uri(ep, None, mw)
    }

    /// One of our URIs with a user part (`orig`, `term`) and optional extra parameters, as a
    /// loose route (`<…;lr>`).
    fn route_uri(&self, user: Option<&str>, extra: &str) -> String {
        format!("<{};lr{extra}>", super::node_uri(&self.ep, user, self.mw))
    }

    /// The registration a public identity belongs to, if registered.
    pub fn registration(&self, impu: &str) -> Option<Registration> {
        let key = crate::store::canonical_identity(impu).ok()?;
        let key = self.aliases.lock().ok()?.get(&key).cloned()?;
        self.regs.lock().ok()?.get(&key).cloned()
    }

    /// Up to `limit` registrations (by default IMPU, sorted) and how many there are in all
    /// (`rcslab status`). The table is locked while the entries are copied.
    pub fn registrations(&self, limit: usize) -> (Vec<Registration>, usize) {
        let Ok(regs) = self.regs.lock() else {
            return (Vec::new(), 0);
        };
        let total = regs.len();
        let mut keys: Vec<&String> = regs.keys().collect();
        keys.sort();
        let out = keys
            .into_iter()
            .take(limit)
            .filter_map(|k| regs.get(k).cloned())
            .collect();
        (out, total)
    }

    /// Serves requests until the endpoint closes; also runs the expiry timer.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let me = self.clone();
        let mut shutdown2 = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => me.expire().await,
                    _ = shutdown2.changed() => return,
                }
            }
        });
        loop {
            let inc = tokio::select! {
                i = rx.recv() => match i { Some(i) => i, None => return },
                _ = shutdown.changed() => return,
            };
            match inc {
                Incoming::Request(r) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.on_request(r).await });
                }
                Incoming::StrayResponse { response, .. } => {
                    // Detached: a TCP connect must not hold up the node's loop.
                    let ep = self.ep.clone();
                    tokio::spawn(async move { forward_stray_response(&ep, response).await });
                }
            }
        }
    }

    async fn on_request(&self, inc: IncomingRequest) {
        let req = &inc.request;
        if self.ep.is_looping(req) {
            inc.tx.respond(req.response(482, Some("Loop Detected")));
            return;
        }
        match req.method {
            Method::Register => {
                let resp = self.register(&inc.request).await;
                inc.tx.respond(resp);
                // TS 24.229 §5.4.1.7 / §5.4.2.1.2: third-party REGISTERs and NOTIFYs follow
                // the 200 OK, so an AS that reacts at once (T-IM delivering stored messages)
                // finds the UE's P-CSCF already knowing it.
                let key = register_key(&inc.request);
                if let Some(a) = self.after_ok.lock().ok().and_then(|mut m| m.remove(&key)) {
                    self.third_party_register(&a.reg, &a.impu, a.expires);
                    self.notify_all(&a.reg, a.event);
                }
            }
            Method::Ack => forward_ack(&self.ep, &self.resolver, inc.request, &self.name()).await,
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            _ => self.route(inc).await,
        }
    }

    fn name(&self) -> String {
        format!("scscf.{}", self.domain)
    }

    /// How many entries each of the S-CSCF's tables holds (registrations, outstanding
    /// challenges, AS contexts, reg-event subscriptions): tests and `rcslab status` check that
    /// none grows without bound.
    pub fn table_sizes(&self) -> ScscfTables {
        let n = |r: Result<usize, ()>| r.unwrap_or(0);
        ScscfTables {
            registrations: n(self.regs.lock().map(|m| m.len()).map_err(|_| ())),
            challenges: n(self.pending.lock().map(|m| m.len()).map_err(|_| ())),
            as_contexts: n(self.as_ctx.lock().map(|m| m.len()).map_err(|_| ())),
            reg_subscriptions: n(self.reg_subs.lock().map(|m| m.len()).map_err(|_| ())),
        }
    }

    /// Tells the S-CSCF where the home network's I-CSCF is (set once the lab has bound it).
    pub fn set_icscf(&self, addr: SocketAddr) {
        let _ = self.icscf.set(addr);
    }

    fn record_route(&self, case: &str) -> String {
        self.route_uri(Some(case), "")
    }

    /// Session routing (TS 24.229 §5.4.3): the `orig` route of the Service-Route marks the
    /// originating case, anything else arriving from the I-CSCF is terminating.
    async fn route(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        let popped = pop_own_route(&mut req, &self.ep, &self.name());
        if req.method == Method::Subscribe && is_reg_event(&req) {
            // TS 24.229 §5.4.2.1: we are the notifier for the registration state of our users.
            if in_dialog(&req) && super::is_own_uri(&req.uri, &self.ep, &self.name()) {
                self.reg_refresh(inc, &req);
                return;
            }
            let target = crate::sip::Uri::parse(&req.uri)
                .map(|u| u.aor())
                .unwrap_or_default();
            if !in_dialog(&req) && self.registration(&target).is_some() {
                self.reg_subscribe(inc, &req, &target);
                return;
            }
        }
        if in_dialog(&req) {
            // Subsequent requests follow the route set the dialog recorded.
            let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
                inc.tx.respond(reject(&req, 404, "scscf", "no route"));
                return;
            };
            let fwd = forward_copy(&self.ep, &inc.request, &req, t);
            proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
            return;
        }
        let popped = popped.as_deref().and_then(|r| NameAddr::parse(r).ok());
        // Back from an AS: the odi parameter names where the iFC chain stopped.
        let resumed = popped
            .as_ref()
            .and_then(|na| na.uri.param("odi").flatten().map(str::to_string))
            .and_then(|token| self.as_ctx.lock().ok()?.remove(&token));
        if let Some(ctx) = resumed {
            tracing::debug!(served = %ctx.served, case = ctx.case.token(), next = ctx.next, "request back from the AS");
            match ctx.case {
                SessionCase::Originating | SessionCase::OriginatingUnregistered => {
                    self.originating(inc, req, Some(ctx)).await
                }
                _ => self.terminating(inc, req, Some(ctx)).await,
            }
            return;
        }
        let originating = popped
            .as_ref()
            .is_some_and(|na| na.uri.user() == Some("orig"));
        if originating {
            self.originating(inc, req, None).await
        } else {
            self.terminating(inc, req, None).await
        }
    }

    /// TS 24.229 §5.4.3.3 for a callee that is not registered: fetch the profile with SAR
    /// UNREGISTERED_USER (once), run the iFC for TERMINATING_UNREGISTERED (an AS such as T-IM
    /// may take the request, e.g. to store it), else 480.
    async fn terminating_unregistered(
        &self,
        inc: IncomingRequest,
        req: Request,
        target: &str,
        resumed: Option<AsContext>,
    ) {
        if resumed.is_none()
            && !self
                .unreg_profiles
                .lock()
                .is_ok_and(|m| m.contains_key(target))
        {
            match self
                .sar_for(
                    None,
                    vec![target.to_string()],
                    ServerAssignmentType::UnregisteredUser,
                    false,
                )
                .await
            {
                Ok(saa) if saa.result.is_success() => {
                    if let Some(p) = saa
                        .user_data
                        .as_deref()
                        .and_then(|x| ImsSubscription::parse(x).ok())
                    {
                        if let Ok(mut m) = self.unreg_profiles.lock() {
                            m.insert(target.to_string(), p);
                        }
                    }
                }
                Ok(saa) => {
                    tracing::info!(%target, result = ?saa.result, "SAR UNREGISTERED_USER refused")
                }
                Err(e) => tracing::warn!(%target, error = %e, "SAR UNREGISTERED_USER failed"),
            }
        }
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(
                &inc,
                &req,
                SessionCase::TerminatingUnregistered,
                target,
                from,
            )
            .await
        {
            return;
        }
        tracing::info!(%target, "terminating request for a user that is not registered");
        inc.tx
            .respond(reject(&req, 480, "scscf", "callee not registered"));
    }

    /// The served user's iFC in evaluation order.
    fn ifcs_of(&self, served: &str) -> Vec<crate::profile::InitialFilterCriteria> {
        let profile = match self.registration(served) {
            Some(reg) => reg.profile,
            None => self
                .unreg_profiles
                .lock()
                .ok()
                .and_then(|m| m.get(served).cloned()),
        };
        let Some(p) = profile else { return Vec::new() };
        let all: Vec<_> = p
            .service_profiles
            .iter()
            .flat_map(|sp| sp.ifcs.iter().cloned())
            .collect();
        ifc::ordered(&all)
    }

    /// Sets how long a non-INVITE request sent to an AS waits for its final answer before
    /// the iFC's default handling applies: 32*T1 (half the Timer F of the hop before us).
    pub fn set_as_wait(&self, wait: Duration) {
        let _ = self.as_wait.set(wait);
    }

    fn as_wait(&self) -> Duration {
        self.as_wait
            .get()
            .copied()
            .unwrap_or(Duration::from_secs(16))
    }

    /// TS 23.218 §6.4 / TS 24.229 §5.4.3.2 step 4: sends the request to the next AS whose iFC
    /// matches, with a Route back to us carrying an `odi` token. Returns true when an AS took
    /// the request (its responses are relayed here); false when no (further) iFC matches or
    /// every matching AS failed under SESSION_CONTINUED, and routing goes on.
    async fn via_application_servers(
        &self,
        inc: &IncomingRequest,
        req: &Request,
        case: SessionCase,
        served: &str,
        from: usize,
    ) -> bool {
        let ordered = self.ifcs_of(served);
        let mut idx = from;
        while let Some((n, ifc)) = ifc::next_match(&ordered, idx, req, case) {
            idx = n + 1;
            let server = ifc.application_server.server_name.clone();
            let token = format!("{}{}", crate::sip::new_tag(), crate::sip::new_tag());
            if let Ok(mut m) = self.as_ctx.lock() {
                m.insert(
                    token.clone(),
                    AsContext {
                        case,
                        served: served.to_string(),
                        next: idx,
                        created: Instant::now(),
                    },
                );
            }
            let mut to_as = req.clone();
            to_as
                .headers
                .push_front("Route", self.route_uri(None, &format!(";odi={token}")));
            to_as.headers.push_front("Route", format!("<{server};lr>"));
            // RFC 5502: whom the AS serves, and in which session case.
            to_as.headers.remove("P-Served-User");
            to_as.headers.push(
                "P-Served-User",
                format!(
                    "<{served}>;sescase={};regstate={}",
                    if matches!(
                        case,
                        SessionCase::Originating | SessionCase::OriginatingUnregistered
                    ) {
                        "orig"
                    } else {
                        "term"
                    },
                    if matches!(
                        case,
                        SessionCase::TerminatingUnregistered | SessionCase::OriginatingUnregistered
                    ) {
                        "unreg"
                    } else {
                        "reg"
                    }
                ),
            );
            tracing::info!(%served, case = case.token(), priority = ifc.priority, %server, "iFC matched: request goes to the AS");
            self.ep.note(|| {
                format!(
                    "{} {}: iFC priority {} matched -> {server}",
                    if case.token() == "orig" {
                        "originating"
                    } else {
                        "terminating"
                    },
                    served,
                    ifc.priority
                )
            });
            let continue_on_failure = ifc.application_server.default_handling == 0;
            let Some((dest, t)) = self.resolver.resolve_str(&server).await else {
                tracing::warn!(%server, "AS name does not resolve");
                if continue_on_failure {
                    continue;
                }
                inc.tx
                    .respond(reject(req, 500, "scscf", "application server unreachable"));
                return true;
            };
            let fwd = forward_copy(&self.ep, &inc.request, &to_as, t);
            let mut client = self.ep.send_request(fwd, dest, t);
            let mut relayed_any = false;
            let mut failed = false;
            // A non-INVITE gets no 100 upstream, so the hop before us gives up at its own
            // Timer F (64*T1): waiting for ours would lose the race and default handling
            // could never continue. The AS gets half that (RFC 4320 §2 on the 408 race);
            // an INVITE was answered 100 and waits for Timer B.
            let mut deadline = (req.method != Method::Invite)
                .then(|| tokio::time::Instant::now() + self.as_wait());
            loop {
                let next = match deadline {
                    Some(d) => tokio::time::timeout_at(d, client.next()).await,
                    None => Ok(client.next().await),
                };
                let mut resp = match next {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    // The AS sent it back to us (its odi token is used up): it is alive and
                    // the request is on its way; wait for the answer as any proxy would.
                    Err(_) if !self.as_ctx.lock().is_ok_and(|m| m.contains_key(&token)) => {
                        deadline = None;
                        continue;
                    }
                    Err(_) if continue_on_failure && !relayed_any => {
                        tracing::warn!(%server, "AS did not answer in time; default handling SESSION_CONTINUED");
                        failed = true;
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(%server, "AS did not answer in time; default handling SESSION_TERMINATED");
                        inc.tx.respond(reject(
                            req,
                            408,
                            "scscf",
                            "application server did not answer",
                        ));
                        break;
                    }
                };
                if resp.status == 100 {
                    continue;
                }
                // TS 24.229 §5.4.3.3 / TS 23.218 §6.4.4: default handling is for an AS that
                // fails itself. One that sent the request back to us (its odi token is used
                // up) is alive, and an error it relays came from further on.
                let came_back = !self.as_ctx.lock().is_ok_and(|m| m.contains_key(&token));
                let as_failure = (resp.status == 408 || resp.status >= 500) && !came_back;
                if resp.status >= 200 && as_failure && continue_on_failure && !relayed_any {
                    // SESSION_CONTINUED (TS 23.218 §6.4.4): go on as if the AS had returned it.
                    tracing::warn!(%server, status = resp.status, "AS failed; default handling SESSION_CONTINUED");
                    failed = true;
                    break;
                }
                resp.headers.pop_first_value("Via");
                relayed_any = true;
                let final_ = resp.status >= 200;
                inc.tx.respond(resp);
                if final_ {
                    break;
                }
            }
            if !failed {
                return true;
            }
            if let Ok(mut m) = self.as_ctx.lock() {
                m.remove(&token);
            }
        }
        false
    }

    /// TS 24.229 §5.4.1.7: after a registration change, a third-party REGISTER to each AS
    /// whose iFC matches REGISTER.
    fn third_party_register(&self, reg: &Registration, impu: &str, expires: u32) {
        let ordered = self.ifcs_of(impu);
        let ordered = if ordered.is_empty() {
            reg.profile
                .as_ref()
                .map(|p| {
                    ifc::ordered(
                        &p.service_profiles
                            .iter()
                            .flat_map(|sp| sp.ifcs.iter().cloned())
                            .collect::<Vec<_>>(),
                    )
                })
                .unwrap_or_default()
        } else {
            ordered
        };
        let me = self.server_uri();
        let mut probe = Request::new(Method::Register, format!("sip:{}", self.domain));
        probe.headers.push("Expires", expires.to_string());
        let mut idx = 0;
        while let Some((n, ifc)) = ifc::next_match(&ordered, idx, &probe, SessionCase::Originating)
        {
            idx = n + 1;
            let server = ifc.application_server.server_name.clone();
            let ep = self.ep.clone();
            let resolver = self.resolver.clone();
            let me = me.clone();
            let impu = impu.to_string();
            tokio::spawn(async move {
                let Some((dest, t)) = resolver.resolve_str(&server).await else {
                    return;
                };
                let mut r = Request::new(Method::Register, server.clone());
                r.headers.push("Via", ep.new_via(t));
                r.headers.push("Max-Forwards", "70");
                r.headers
                    .push("From", format!("<{me}>;tag={}", crate::sip::new_tag()));
                r.headers.push("To", format!("<{impu}>"));
                r.headers.push(
                    "Call-ID",
                    crate::sip::new_call_id(&ep.local_addr().ip().to_string()),
                );
                r.headers.push("CSeq", "1 REGISTER");
                r.headers.push("Contact", format!("<{me}>"));
                r.headers.push("Expires", expires.to_string());
                let resp = ep.send_request(r, dest, t).final_response().await;
                if resp.status >= 300 {
                    tracing::warn!(%server, status = resp.status, "third-party REGISTER refused");
                }
            });
        }
    }

    /// §5.4.3.2: originating case for the served user (P-Asserted-Identity).
    async fn originating(
        &self,
        inc: IncomingRequest,
        mut req: Request,
        resumed: Option<AsContext>,
    ) {
        let served = req
            .headers
            .get("P-Asserted-Identity")
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|na| na.uri.aor());
        let served = resumed.as_ref().map(|c| c.served.clone()).or(served);
        let Some(served) = served.filter(|s| self.registration(s).is_some()) else {
            inc.tx.respond(reject(
                &req,
                403,
                "scscf",
                "originating user is not registered here",
            ));
            return;
        };
        if creates_dialog(&req) && resumed.is_none() {
            req.headers
                .push_front("Record-Route", self.record_route("orig"));
        }
        tracing::debug!(%served, method = %req.method, "originating request");
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(&inc, &req, SessionCase::Originating, &served, from)
            .await
        {
            return;
        }
        // Towards the callee: home users and tel URIs go to the I-CSCF (which asks the HSS with
        // LIR); other domains are resolved from the Request-URI.
        let home = crate::sip::Uri::parse(&req.uri)
            .map(|u| {
                matches!(u, crate::sip::Uri::Tel(_))
                    || u.host()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&self.domain))
            })
            .unwrap_or(false);
        let target = if home {
            self.icscf.get().map(|a| (*a, self.mw))
        } else {
            next_hop(&self.resolver, &req).await
        };
        let Some((dest, t)) = target else {
            inc.tx
                .respond(reject(&req, 404, "scscf", "no route towards the callee"));
            return;
        };
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
    }

    /// §5.4.3.3: terminating case: retarget to the callee's newest contact along its Path.
    async fn terminating(
        &self,
        inc: IncomingRequest,
        mut req: Request,
        resumed: Option<AsContext>,
    ) {
        let target = match &resumed {
            Some(c) => c.served.clone(),
            None => crate::sip::Uri::parse(&req.uri)
                .map(|u| u.aor())
                .unwrap_or_default(),
        };
        let Some(reg) = self.registration(&target) else {
            self.terminating_unregistered(inc, req, &target, resumed)
                .await;
            return;
        };
        if reg.bindings.is_empty() {
            inc.tx
                .respond(reject(&req, 480, "scscf", "callee has no contact"));
            return;
        }
        if creates_dialog(&req) && resumed.is_none() {
            req.headers
                .push_front("Record-Route", self.record_route("term"));
        }
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(
                &inc,
                &req,
                SessionCase::TerminatingRegistered,
                &target,
                from,
            )
            .await
        {
            return;
        }
        // Every registered contact, in parallel (RFC 3261 §16.6 / §16.7), newest first; each
        // along the Path its registration recorded.
        let mut bindings = reg.bindings.clone();
        bindings.sort_by_key(|b| std::cmp::Reverse(b.updated));
        let mut branches = Vec::new();
        for b in &bindings {
            let mut r = req.clone();
            r.uri = b.contact.clone();
            for p in b.path.iter().rev() {
                r.headers.push_front("Route", p.clone());
            }
            let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
                tracing::warn!(contact = %b.contact, "callee's P-CSCF does not resolve");
                continue;
            };
            let request = forward_copy(&self.ep, &inc.request, &r, t);
            branches.push(super::fork::Branch {
                request,
                dest,
                transport: t,
            });
        }
        if branches.is_empty() {
            inc.tx.respond(reject(
                &req,
                480,
                "scscf",
                "callee's P-CSCF does not resolve",
            ));
            return;
        }
        if branches.len() > 1 {
            self.ep.note(|| {
                format!(
                    "{target} has {} contacts: forking in parallel",
                    branches.len()
                )
            });
        }
        super::fork::fork(&self.ep, &inc.tx, branches).await;
    }

    fn session_id(&self) -> String {
        let n = self.session_seq.fetch_add(1, Ordering::Relaxed);
        format!("{};{};{}", self.origin_host, std::process::id(), n)
    }

    fn server_uri(&self) -> String {
        Self::server_name(&self.ep, &self.domain, self.mw)
    }

    /// TS 24.229 §5.4.1.2: the whole REGISTER procedure; returns the response to send.
    async fn register(&self, req: &Request) -> Response {
        let Some(impu) = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor())
        else {
            return warn(req, 400, "Bad Request", "unparsable To header");
        };
        let impi = authorization_username(req)
            .or_else(|| crate::store::default_impi(&impu).ok())
            .unwrap_or_else(|| impu.trim_start_matches("sip:").to_string());
        let source = ue_source(req);
        let block = self
            .guard
            .lock()
            .ok()
            .and_then(|g| g.blocked(&self.guard_key(&impi), source, Instant::now()));
        if let Some(d) = block {
            self.ep.note(|| {
                format!(
                    "403: {impi} (from {}) is blocked for {} s after failed authentications",
                    source.map_or("?".to_string(), |s| s.to_string()),
                    d.as_secs().max(1)
                )
            });
            return blocked(req, d);
        }
        let expires = requested_expires(req).unwrap_or(self.registrar.default_expires);
        if expires != 0 && expires < self.registrar.min_expires {
            let mut r = req.response(423, Some("Interval Too Brief"));
            r.headers
                .push("Min-Expires", self.registrar.min_expires.to_string());
            return r;
        }
        let expires = expires.min(self.registrar.max_expires);

        let creds = req.headers.get("Authorization").map(Credentials::parse);
        let creds = match creds {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                crate::warn_limited!("scscf.bad_authorization", %impi, error = %e, "unparsable Authorization header; challenging again");
                None
            }
            None => None,
        };
        let hint = creds.as_ref().and_then(|c| c.algorithm.clone());
        if let Some(c) = creds
            .as_ref()
            .filter(|c| !c.response.is_empty() && !c.nonce.is_empty())
        {
            match self.check_credentials(req, &impi, &impu, c, source).await {
                AuthOutcome::Ok => {}
                AuthOutcome::Challenge { stale } => {
                    return self
                        .challenge(req, &impi, &impu, hint.as_deref(), stale, None)
                        .await
                }
                AuthOutcome::Resync { rand, auts } => {
                    let mut authorization = rand.to_vec();
                    authorization.extend_from_slice(&auts);
                    return self
                        .challenge(
                            req,
                            &impi,
                            &impu,
                            Some("AKAv1-MD5"),
                            false,
                            Some(authorization),
                        )
                        .await;
                }
                AuthOutcome::Reject(why) => {
                    self.ep.note(|| format!("403: {impi}: {why}"));
                    return warn(req, 403, "Forbidden", AUTH_FAILED);
                }
                AuthOutcome::Blocked(d) => {
                    self.ep.note(|| {
                        format!(
                            "403: {impi} failed again: blocked for {} s (per IMPI and per address)",
                            d.as_secs().max(1)
                        )
                    });
                    return blocked(req, d);
                }
            }
        } else {
            return self
                .challenge(req, &impi, &impu, hint.as_deref(), false, None)
                .await;
        }

        // Authenticated.
        if let Ok(mut g) = self.guard.lock() {
            g.success(&self.guard_key(&impi));
        }
        if crate::cscf::is_deregistration(req) {
            self.deregister(req, &impi, &impu).await
        } else {
            self.save(req, &impi, &impu, expires).await
        }
    }

    /// Sends a MAR and builds the 401 (TS 24.229 §5.4.1.2.1).
    async fn challenge(
        &self,
        req: &Request,
        impi: &str,
        impu: &str,
        hint: Option<&str>,
        stale: bool,
        resync: Option<Vec<u8>>,
    ) -> Response {
        let scheme = match hint.map(|h| h.to_ascii_lowercase()) {
            Some(h) if h.starts_with("akav1") => SCHEME_AKA,
            Some(h) if h == "md5" => SCHEME_DIGEST,
            _ => match self.default_scheme.as_str() {
                "aka" => SCHEME_AKA,
                "digest" => SCHEME_DIGEST,
                _ => SCHEME_UNKNOWN,
            },
        };
        let mar = MultimediaAuthRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            user_name: impi.to_string(),
            public_identity: impu.to_string(),
            server_name: self.server_uri(),
            number_auth_items: 1,
            auth_data: SipAuthDataItem {
                scheme: scheme.to_string(),
                authorization: resync,
                ..Default::default()
            },
        };
        let maa = match self
            .hss
            .request(mar.to_message())
            .await
            .map(|m| MultimediaAuthAnswer::from_message(&m))
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!(%impi, error = %e, "unusable MAA");
                return warn(
                    req,
                    500,
                    "Server Internal Error",
                    "unusable answer from the HSS",
                );
            }
            Err(e) => {
                let why = super::hss_unreachable("MAR", impi, &e);
                return warn(req, 480, "Temporarily Unavailable", &why);
            }
        };
        // Identities the HSS does not know (or that do not belong together) get a decoy
        // challenge, the same as a real one: the reason goes to the log and the trace only.
        let decoy = match maa.result {
            CxResult::Base(2001) => None,
            CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN) => {
                crate::warn_limited!("scscf.auth.unknown_impi", %impi, %impu, "authentication failed: unknown IMPI (the HSS has no private identity '{impi}'); answering with a decoy challenge");
                Some("the HSS does not know this private identity")
            }
            CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITIES_DONT_MATCH) => {
                crate::warn_limited!("scscf.auth.identities", %impi, %impu, "authentication failed: IMPI '{impi}' does not own IMPU '{impu}'; answering with a decoy challenge");
                Some("the private identity does not own the public one")
            }
            CxResult::Experimental(cx::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED) => {
                crate::warn_limited!("scscf.auth.scheme", %impi, scheme, "authentication failed: the HSS does not support scheme {scheme} for this user; answering with a decoy challenge");
                Some("the HSS does not support this scheme for the user")
            }
            other => {
                tracing::warn!(%impi, result = ?other, "MAA refused the authentication");
                return warn(req, 403, "Forbidden", AUTH_FAILED);
            }
        };
        let item = if decoy.is_some() {
            None
        } else {
            match maa.items.into_iter().next() {
                Some(i) => Some(i),
                None => {
                    return warn(
                        req,
                        500,
                        "Server Internal Error",
                        "MAA without SIP-Auth-Data-Item",
                    )
                }
            }
        };
        let nonce;
        let mut ch;
        let vector;
        let aka_wanted = scheme == SCHEME_AKA;
        if let Some(why) = decoy {
            // As real as the real ones: the realm, the nonce's form and the algorithm of the
            // scheme asked for.
            if aka_wanted {
                nonce = digest::aka_nonce(&rand::random(), &rand::random());
            } else {
                nonce = digest::new_nonce();
            }
            ch = Challenge {
                realm: self.domain.clone(),
                nonce: nonce.clone(),
                algorithm: Some(if aka_wanted { "AKAv1-MD5" } else { "MD5" }.into()),
                qop: Some("auth".into()),
                opaque: None,
                stale,
                ck: aka_wanted.then(|| hex::encode(rand::random::<[u8; 16]>())),
                ik: aka_wanted.then(|| hex::encode(rand::random::<[u8; 16]>())),
            };
            vector = Vector::Decoy;
            self.ep
                .note(|| format!("401 (decoy): {impi} / {impu}: {why}"));
        } else if let Some(d) = item.as_ref().and_then(|i| i.digest.clone()) {
            nonce = digest::new_nonce();
            ch = Challenge {
                realm: d.realm.clone(),
                nonce: nonce.clone(),
                algorithm: Some("MD5".into()),
                qop: Some(d.qop.clone().unwrap_or_else(|| "auth".into())),
                opaque: None,
                stale,
                ck: None,
                ik: None,
            };
            vector = Vector::Digest { ha1: d.ha1 };
        } else {
            let Some(item) = item else {
                return warn(req, 500, "Server Internal Error", "no MAA item");
            };
            let (Some(auth), Some(xres)) = (item.authenticate, item.authorization) else {
                return warn(
                    req,
                    500,
                    "Server Internal Error",
                    "MAA item has neither digest nor AKA data",
                );
            };
            if auth.len() != 32 {
                return warn(
                    req,
                    500,
                    "Server Internal Error",
                    "SIP-Authenticate is not RAND||AUTN",
                );
            }
            let mut rand = [0u8; 16];
            let mut autn = [0u8; 16];
            rand.copy_from_slice(&auth[..16]);
            autn.copy_from_slice(&auth[16..]);
            nonce = digest::aka_nonce(&rand, &autn);
            ch = Challenge {
                realm: self.domain.clone(),
                nonce: nonce.clone(),
                algorithm: Some("AKAv1-MD5".into()),
                qop: Some("auth".into()),
                opaque: None,
                stale,
                ck: item.confidentiality_key.as_ref().map(hex::encode),
                ik: item.integrity_key.as_ref().map(hex::encode),
            };
            vector = Vector::Aka { rand, xres };
        }
        if ch.realm.is_empty() {
            ch.realm = self.domain.clone();
        }
        let is_aka = ch
            .algorithm
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("AKAv1-MD5"));
        let is_decoy = matches!(vector, Vector::Decoy);
        if let Ok(mut p) = self.pending.lock() {
            let now = Instant::now();
            p.insert(
                nonce,
                PendingAuth {
                    impi: impi.to_string(),
                    impu: impu.to_string(),
                    vector,
                    realm: ch.realm.clone(),
                    algorithm: if is_aka { "AKAv1-MD5" } else { "MD5" },
                    created: now,
                    last_nc: 0,
                    authenticated: false,
                },
                MAX_NONCES_PER_IMPI,
            );
        }
        let mut r = req.response(401, Some("Unauthorized"));
        if !is_decoy {
            self.ep.note(|| {
                format!(
                    "401: {impi} has no valid credentials yet; MAR brought a {} vector{}",
                    if is_aka { "AKA" } else { "Digest" },
                    if stale { " (stale nonce)" } else { "" }
                )
            });
        }
        r.headers.push("WWW-Authenticate", ch.to_string());
        r.ensure_to_tag();
        r
    }

    /// Checks the second REGISTER's credentials against the stored challenge. A failed answer
    /// spends its nonce (one guess per challenge) and counts against the IMPI and `source`.
    async fn check_credentials(
        &self,
        req: &Request,
        impi: &str,
        impu: &str,
        c: &Credentials,
        source: Option<std::net::SocketAddr>,
    ) -> AuthOutcome {
        let pending = self
            .pending
            .lock()
            .ok()
            .and_then(|p| p.get(&c.nonce).cloned());
        let Some(p) = pending else {
            tracing::info!(%impi, "nonce unknown or expired (stale); sending a fresh challenge");
            return AuthOutcome::Challenge { stale: true };
        };
        if Instant::now().duration_since(p.created) > NONCE_LIFETIME {
            tracing::info!(%impi, "nonce expired (stale); sending a fresh challenge");
            return AuthOutcome::Challenge { stale: true };
        }
        if p.impi != impi || p.impu != impu {
            crate::warn_limited!("scscf.foreign_nonce", %impi, %impu, "credentials answer a challenge issued to {} / {}", p.impi, p.impu);
            return AuthOutcome::Challenge { stale: true };
        }
        let method = req.method.as_str();
        let issued = digest::Issued {
            realm: &p.realm,
            algorithm: p.algorithm,
            qop: Some("auth"),
        };
        // An AKA re-synchronisation answers with AUTS and no usable response (RFC 3310 §3.4).
        let resync = matches!(p.vector, Vector::Aka { .. }) && c.auts.is_some();
        if !resync {
            if let Err(why) = digest::conformance(c, &issued, &req.uri.to_string(), &ue_entry(req))
            {
                self.remove_nonce(&c.nonce);
                return self.fail(
                    impi,
                    source,
                    &format!("the answer does not fit its challenge: {why}"),
                );
            }
        }
        match &p.vector {
            Vector::Decoy => {
                self.remove_nonce(&c.nonce);
                // The same work as a real check, then the same failure.
                let _ = digest::verify(c, &digest::ha1_hex(&c.username, &c.realm, b""), method);
                self.fail(impi, source, "no such user (decoy challenge answered)")
            }
            Vector::Digest { ha1 } => {
                let nc =
                    c.nc.as_deref()
                        .and_then(|n| u64::from_str_radix(n, 16).ok())
                        .unwrap_or(0);
                if p.authenticated && nc <= p.last_nc {
                    tracing::info!(%impi, "digest nonce count replayed; sending a fresh challenge");
                    return AuthOutcome::Challenge { stale: true };
                }
                if digest::verify(c, ha1, method) {
                    self.mark_used(&c.nonce, nc, false);
                    AuthOutcome::Ok
                } else {
                    self.remove_nonce(&c.nonce);
                    self.fail(
                        impi,
                        source,
                        "wrong password (SIP Digest response does not match the HA1 from the HSS)",
                    )
                }
            }
            Vector::Aka { rand, xres } => {
                if let Some(auts) = c.auts.as_deref() {
                    self.remove_nonce(&c.nonce);
                    return match digest::decode_auts(auts) {
                        Ok(a) => {
                            tracing::warn!(%impi, "UE reports SQN out of range (sync failure); re-synchronising SQN with the HSS using AUTS");
                            AuthOutcome::Resync {
                                rand: *rand,
                                auts: a,
                            }
                        }
                        Err(e) => {
                            crate::warn_limited!("scscf.bad_auts", %impi, error = %e, "UE sent an unusable AUTS");
                            AuthOutcome::Challenge { stale: false }
                        }
                    };
                }
                let ha1 = digest::ha1_hex(&c.username, &c.realm, xres);
                if digest::verify(c, &ha1, method) {
                    // AKA vectors are single use (TS 33.203 §6.1).
                    self.remove_nonce(&c.nonce);
                    return AuthOutcome::Ok;
                }
                let empty = digest::ha1_hex(&c.username, &c.realm, b"");
                self.remove_nonce(&c.nonce);
                if digest::verify(c, &empty, method) {
                    // RFC 3310 §3.3: the UE could not verify AUTN and answered with an empty
                    // password.
                    crate::warn_limited!("scscf.auth.mac_failure", %impi, "authentication failed: the UE rejected the network's AUTN (MAC mismatch: K or OPc differ between UE and HSS)");
                    return AuthOutcome::Reject("UE reported MAC failure".into());
                }
                self.fail(impi, source, "RES mismatch (the UE's AKA response does not match XRES: wrong K/OPc on one side)")
            }
        }
    }

    /// The IMPI as failures are counted: `alice`, `Alice` and `alice@ims.lab` are one
    /// identity to the HSS, so they share one count (svcrack sends the bare user part).
    fn guard_key(&self, impi: &str) -> String {
        let i = impi.trim().to_ascii_lowercase();
        if i.contains('@') {
            i
        } else {
            format!("{i}@{}", self.domain.to_ascii_lowercase())
        }
    }

    /// A failed answer: counted per IMPI and per address ([`super::auth_guard`]); one more
    /// challenge, a 403, or a block.
    fn fail(&self, impi: &str, source: Option<std::net::SocketAddr>, why: &str) -> AuthOutcome {
        let verdict = self
            .guard
            .lock()
            .map(|mut g| g.failure(&self.guard_key(impi), source, Instant::now()))
            .unwrap_or(super::auth_guard::Verdict::Reject);
        let from = source.map_or("?".to_string(), |s| s.to_string());
        match verdict {
            super::auth_guard::Verdict::Rechallenge => {
                crate::warn_limited!("scscf.auth.rechallenge", %impi, %from, "authentication failed: {why}; challenging once more");
                AuthOutcome::Challenge { stale: false }
            }
            super::auth_guard::Verdict::Reject => {
                crate::warn_limited!("scscf.auth.rejected", %impi, %from, "authentication failed: {why}; 403");
                AuthOutcome::Reject(format!(
                    "authentication failed: {}",
                    why.split(" (").next().unwrap_or(why)
                ))
            }
            super::auth_guard::Verdict::Blocked(d) => {
                crate::warn_limited!("scscf.auth.blocked", %impi, %from, secs = d.as_secs(), "authentication failed: {why}; blocked (403 with Retry-After)");
                AuthOutcome::Blocked(d)
            }
        }
    }

    fn mark_used(&self, nonce: &str, nc: u64, _aka: bool) {
        if let Ok(mut p) = self.pending.lock() {
            if let Some(e) = p.get_mut(nonce) {
                e.authenticated = true;
                e.last_nc = nc;
            }
        }
    }

    fn remove_nonce(&self, nonce: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(nonce);
        }
    }

    async fn sar(
        &self,
        impi: &str,
        impus: Vec<String>,
        kind: ServerAssignmentType,
        have_profile: bool,
    ) -> Result<ServerAssignmentAnswer, String> {
        self.sar_for(Some(impi), impus, kind, have_profile).await
    }

    async fn sar_for(
        &self,
        impi: Option<&str>,
        impus: Vec<String>,
        kind: ServerAssignmentType,
        have_profile: bool,
    ) -> Result<ServerAssignmentAnswer, String> {
        let sar = ServerAssignmentRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            public_identities: impus,
            user_name: impi.map(str::to_string),
            server_name: self.server_uri(),
            assignment_type: kind,
            user_data_already_available: if have_profile {
                cx::UserDataAlreadyAvailable::UserDataAlreadyAvailable
            } else {
                cx::UserDataAlreadyAvailable::UserDataNotAvailable
            },
        };
        match self.hss.request(sar.to_message()).await {
            Ok(m) => ServerAssignmentAnswer::from_message(&m).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Registration or re-registration accepted: SAR, store the binding, 200 OK.
    async fn save(&self, req: &Request, impi: &str, impu: &str, expires: u32) -> Response {
        let existing = self.registration(impu);
        let kind = if existing.is_some() {
            ServerAssignmentType::ReRegistration
        } else {
            ServerAssignmentType::Registration
        };
        let have_profile = existing.as_ref().is_some_and(|r| r.profile.is_some());
        let saa = match self
            .sar(impi, vec![impu.to_string()], kind, have_profile)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%impi, error = %e, "SAR failed");
                return warn(
                    req,
                    480,
                    "Temporarily Unavailable",
                    &format!("no server assignment from the HSS (SAR): {e}"),
                );
            }
        };
        if !saa.result.is_success() {
            tracing::warn!(%impi, result = ?saa.result, "SAA refused the registration");
            return warn(req, 403, "Forbidden", "HSS refused the server assignment");
        }
        let profile = match saa.user_data.as_deref().map(ImsSubscription::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                tracing::warn!(%impi, error = %e, "SAA User-Data is not a valid IMSSubscription");
                return warn(
                    req,
                    500,
                    "Server Internal Error",
                    "invalid user profile from the HSS",
                );
            }
            None => existing.as_ref().and_then(|r| r.profile.clone()),
        };
        // The implicit registration set: the service profile that holds this IMPU.
        let mut impus: Vec<String> = profile
            .as_ref()
            .and_then(|p| {
                p.service_profiles.iter().find(|sp| {
                    sp.public_identities.iter().any(|pi| {
                        crate::store::canonical_identity(&pi.identity)
                            .ok()
                            .as_deref()
                            == Some(impu)
                    })
                })
            })
            .map(|sp| {
                sp.public_identities
                    .iter()
                    .filter(|pi| !pi.barring)
                    .filter_map(|pi| crate::store::canonical_identity(&pi.identity).ok())
                    .collect()
            })
            .unwrap_or_default();
        if !impus.iter().any(|i| i == impu) {
            impus.insert(0, impu.to_string());
        }
        let path: Vec<String> = req
            .headers
            .values("Path")
            .iter()
            .map(|s| s.to_string())
            .collect();
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let now = Instant::now();
        let mut reg = existing.unwrap_or(Registration {
            impi: impi.to_string(),
            impus: impus.clone(),
            bindings: Vec::new(),
            profile: None,
        });
        reg.impus = impus.clone();
        reg.profile = profile;
        for c in req.headers.values("Contact") {
            let Ok(mut na) = NameAddr::parse(c) else {
                return warn(req, 400, "Bad Request", "unparsable Contact");
            };
            let exp = na
                .params
                .value("expires")
                .and_then(|e| e.trim().parse::<u32>().ok())
                .unwrap_or(expires);
            let exp = exp.min(self.registrar.max_expires);
            na.params.remove("expires");
            let uri = na.uri.to_string();
            reg.bindings.retain(|b| b.contact != uri);
            if exp > 0 {
                reg.bindings.push(Binding {
                    contact: uri,
                    contact_header: na.to_string(),
                    expires_at: now + Duration::from_secs(exp.into()),
                    updated: now,
                    path: path.clone(),
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        let key = impus[0].clone();
        if let (Ok(mut regs), Ok(mut aliases)) = (self.regs.lock(), self.aliases.lock()) {
            for i in &impus {
                aliases.insert(i.clone(), key.clone());
            }
            regs.insert(key, reg.clone());
        }
        if let Ok(mut m) = self.unreg_profiles.lock() {
            for i in &impus {
                m.remove(i);
            }
        }
        tracing::info!(%impi, %impu, contacts = reg.bindings.len(), "registered");
        let event = if kind == ServerAssignmentType::Registration {
            ContactEvent::Registered
        } else {
            ContactEvent::Refreshed
        };
        self.defer(req, &reg, impu, expires, event);
        let mut r = req.response(200, Some("OK"));
        r.ensure_to_tag();
        self.fill_ok(&mut r, req, &reg);
        r
    }

    fn fill_ok(&self, r: &mut Response, req: &Request, reg: &Registration) {
        let now = Instant::now();
        for b in &reg.bindings {
            // Round up: a binding granted 600 s ago by a few microseconds still has 600 s.
            let left = b
                .expires_at
                .saturating_duration_since(now)
                .as_millis()
                .div_ceil(1000);
            r.headers
                .push("Contact", format!("{};expires={left}", b.contact_header));
        }
        for p in req.headers.get_all("Path") {
            r.headers.push("Path", p.to_string());
        }
        if req.headers.has("Path") {
            r.headers.push("Require", "path");
        }
        r.headers
            .push("Service-Route", self.route_uri(Some("orig"), ""));
        let assoc: Vec<String> = reg.impus.iter().map(|i| format!("<{i}>")).collect();
        if !assoc.is_empty() {
            r.headers.push("P-Associated-URI", assoc.join(", "));
        }
        r.headers.push("Supported", "path");
    }

    /// User-initiated de-registration (TS 24.229 §5.4.1.4).
    async fn deregister(&self, req: &Request, impi: &str, impu: &str) -> Response {
        let Some(mut reg) = self.registration(impu) else {
            // Nothing to remove: RFC 3261 §10.3 still answers 200 with no contacts.
            let mut r = req.response(200, Some("OK"));
            r.ensure_to_tag();
            return r;
        };
        let wildcard = req
            .headers
            .values("Contact")
            .iter()
            .any(|c| c.trim() == "*");
        if wildcard {
            reg.bindings.clear();
        } else {
            for c in req.headers.values("Contact") {
                if let Ok(na) = NameAddr::parse(c) {
                    let uri = na.uri.to_string();
                    reg.bindings.retain(|b| b.contact != uri);
                }
            }
        }
        if reg.bindings.is_empty() {
            if let Err(e) = self
                .sar(
                    impi,
                    vec![impu.to_string()],
                    ServerAssignmentType::UserDeregistration,
                    true,
                )
                .await
            {
                tracing::warn!(%impi, error = %e, "SAR (user de-registration) failed");
            }
            self.drop_registration(&reg);
            self.defer(req, &reg, impu, 0, ContactEvent::Unregistered);
            tracing::info!(%impi, %impu, "de-registered");
        } else {
            self.store_registration(reg.clone());
        }
        let mut r = req.response(200, Some("OK"));
        r.ensure_to_tag();
        self.fill_ok(&mut r, req, &reg);
        r
    }

    fn defer(
        &self,
        req: &Request,
        reg: &Registration,
        impu: &str,
        expires: u32,
        event: ContactEvent,
    ) {
        if let Ok(mut m) = self.after_ok.lock() {
            m.insert(
                register_key(req),
                AfterRegister {
                    reg: reg.clone(),
                    impu: impu.to_string(),
                    expires,
                    event,
                },
            );
        }
    }

    fn store_registration(&self, reg: Registration) {
        if let Some(key) = reg.impus.first().cloned() {
            if let Ok(mut regs) = self.regs.lock() {
                regs.insert(key, reg);
            }
        }
    }

    fn drop_registration(&self, reg: &Registration) {
        if let (Ok(mut regs), Ok(mut aliases)) = (self.regs.lock(), self.aliases.lock()) {
            if let Some(k) = reg.impus.first() {
                regs.remove(k);
            }
            for i in &reg.impus {
                aliases.remove(i);
            }
        }
    }

    /// Removes lapsed bindings; a set left without bindings is de-registered at the HSS with
    /// SAR TIMEOUT_DEREGISTRATION (TS 24.229 §5.4.1.5).
    async fn expire(&self) {
        let now = Instant::now();
        if let Ok(mut p) = self.pending.lock() {
            p.expire(now, NONCE_LIFETIME);
        }
        if let Ok(mut g) = self.guard.lock() {
            g.sweep(now);
        }
        if let Ok(mut c) = self.as_ctx.lock() {
            // An AS that never sent the request back: forget it after the transaction limit.
            c.retain(|_, v| now.duration_since(v.created) < Duration::from_secs(64));
        }
        if let Ok(mut m) = self.reg_subs.lock() {
            // RFC 6665 §4.1.2.4: a subscription not refreshed in time is over.
            m.expire(now);
        }
        let mut lapsed = Vec::new();
        if let Ok(mut regs) = self.regs.lock() {
            for reg in regs.values_mut() {
                reg.bindings.retain(|b| b.expires_at > now);
                if reg.bindings.is_empty() {
                    lapsed.push(reg.clone());
                }
            }
        }
        for reg in lapsed {
            self.drop_registration(&reg);
            if let Some(i) = reg.impus.first() {
                self.third_party_register(&reg, i, 0);
            }
            self.notify_all(&reg, ContactEvent::Expired);
            tracing::info!(impi = %reg.impi, impu = ?reg.impus.first(), "registration expired");
            if let Err(e) = self
                .sar(
                    &reg.impi,
                    reg.impus.clone(),
                    ServerAssignmentType::TimeoutDeregistration,
                    true,
                )
                .await
            {
                tracing::warn!(impi = %reg.impi, error = %e, "SAR (timeout de-registration) failed");
            }
        }
    }
}

/// Where the iFC chain of one request stopped while an AS has it (TS 24.229 §5.4.3.4: the
/// S-CSCF recognises the request coming back by the `odi` value in its Route).
#[derive(Debug, Clone)]
struct AsContext {
    case: SessionCase,
    served: String,
    next: usize,
    created: Instant,
}

enum AuthOutcome {
    Ok,
    Challenge {
        stale: bool,
    },
    Resync {
        rand: [u8; 16],
        auts: [u8; 14],
    },
    /// 403; the reason goes to the log and the trace, never to the client.
    Reject(String),
    /// 403 with Retry-After.
    Blocked(Duration),
}

/// What every refused authentication says to the client, whatever the reason: the reason
/// would tell an attacker which users exist and what went wrong.
const AUTH_FAILED: &str = "authentication failed";

/// The UE's address as the P-CSCF saw it: the bottom Via's `received` and `rport` (or its
/// sent-by when the P-CSCF had no need to add them). The P-CSCF is in the trust domain and
/// stamps them.
fn ue_source(req: &Request) -> Option<std::net::SocketAddr> {
    let vias = req.headers.values("Via");
    let bottom = crate::sip::Via::parse(vias.last()?).ok()?;
    let ip: std::net::IpAddr = bottom
        .params
        .value("received")
        .and_then(|r| r.trim_matches(['[', ']']).parse().ok())
        .or_else(|| bottom.host.trim_matches(['[', ']']).parse().ok())?;
    let port = bottom
        .params
        .value("rport")
        .and_then(|p| p.parse().ok())
        .or(bottom.port)
        .unwrap_or(5060);
    Some(std::net::SocketAddr::new(ip, port))
}

/// The address the UE sent its REGISTER to, as `sip:host:port`: the P-CSCF's Path entry
/// nearest the UE (RFC 3327; our P-CSCF writes the address and transport the UE used).
fn ue_entry(req: &Request) -> Vec<String> {
    let paths = req.headers.values("Path");
    paths
        .last()
        .and_then(|p| NameAddr::parse(p).ok())
        .and_then(|na| match na.uri {
            crate::sip::Uri::Sip(u) => Some(match u.port {
                Some(port) => format!("sip:{}:{port}", u.host),
                None => format!("sip:{}", u.host),
            }),
            _ => None,
        })
        .into_iter()
        .collect()
}

/// 403 for a blocked identity or address, with Retry-After (RFC 3261 §20.33).
fn blocked(req: &Request, d: Duration) -> Response {
    let mut r = warn(req, 403, "Forbidden", AUTH_FAILED);
    r.headers
        .push("Retry-After", d.as_secs().max(1).to_string());
    r
}

/// A REGISTER transaction's identity for [`Scscf::after_ok`].
fn register_key(req: &Request) -> String {
    format!(
        "{} {}",
        req.headers.get("Call-ID").unwrap_or(""),
        req.headers.get("CSeq").unwrap_or("")
    )
}

fn warn(req: &Request, code: u16, reason: &str, why: &str) -> Response {
    let mut r = req.response(code, Some(reason));
    r.ensure_to_tag();
    r.headers.push(
        "Warning",
        format!("399 scscf \"{}\"", why.replace('"', "'")),
    );
    r
}

/// Handles requests the HSS sends to a CSCF over Cx. Registration-Termination and
/// Push-Profile (TS 29.229 §6.1.3, §6.1.7) are not implemented yet: they are answered with
/// DIAMETER_COMMAND_UNSUPPORTED so the HSS sees a clear refusal rather than silence.
pub struct CxClientHandler;

impl crate::diameter::peer::DiameterHandler for CxClientHandler {
    fn handle(
        &self,
        _from: crate::diameter::peer::PeerInfo,
        request: crate::diameter::codec::Message,
    ) -> crate::diameter::peer::BoxFuture<'static, crate::diameter::codec::Message> {
        Box::pin(async move {
            crate::diameter::codec::Message::error_answer(
                &request,
                crate::diameter::codec::DIAMETER_COMMAND_UNSUPPORTED,
                None,
                Some("not supported by this CSCF yet"),
            )
        })
    }
}

/// The S-CSCF's handler for HSS-initiated Cx requests: Registration-Termination (TS 29.229
/// §6.1.9, the user is de-registered now) and Push-Profile (§6.1.11, the profile changed).
/// It is created before the S-CSCF it serves, which is attached with [`ScscfCx::attach`].
#[derive(Clone, Default)]
pub struct ScscfCx {
    scscf: Arc<OnceLock<std::sync::Weak<Scscf>>>,
}

impl ScscfCx {
    /// Points the handler at its S-CSCF.
    pub fn attach(&self, scscf: &Arc<Scscf>) {
        let _ = self.scscf.set(Arc::downgrade(scscf));
    }
}

impl crate::diameter::peer::DiameterHandler for ScscfCx {
    fn handle(
        &self,
        _from: crate::diameter::peer::PeerInfo,
        request: crate::diameter::codec::Message,
    ) -> crate::diameter::peer::BoxFuture<'static, crate::diameter::codec::Message> {
        let scscf = self.scscf.get().and_then(|w| w.upgrade());
        Box::pin(async move {
            use crate::diameter::codec::{
                DiameterError, Message, DIAMETER_COMMAND_UNSUPPORTED, DIAMETER_MISSING_AVP,
            };
            let Some(s) = scscf else {
                return Message::error_answer(
                    &request,
                    crate::diameter::codec::DIAMETER_UNABLE_TO_COMPLY,
                    None,
                    None,
                );
            };
            let r = match request.command_code {
                cx::CMD_REGISTRATION_TERMINATION => s.on_rtr(&request).await,
                cx::CMD_PUSH_PROFILE => s.on_ppr(&request),
                _ => {
                    return Message::error_answer(
                        &request,
                        DIAMETER_COMMAND_UNSUPPORTED,
                        None,
                        None,
                    )
                }
            };
            match r {
                Ok(a) => a,
                Err(DiameterError::MissingAvp { code, vendor_id }) => Message::error_answer(
                    &request,
                    DIAMETER_MISSING_AVP,
                    Some(crate::diameter::codec::Avp::new(
                        code,
                        vendor_id,
                        true,
                        Vec::<u8>::new(),
                    )),
                    None,
                ),
                Err(e) => Message::error_answer(
                    &request,
                    crate::diameter::codec::DIAMETER_UNABLE_TO_COMPLY,
                    None,
                    Some(&e.to_string()),
                ),
            }
        })
    }
}

impl Scscf {
    /// Registrations of a private identity (or of the listed public identities).
    fn registrations_of(&self, impi: &str, impus: &[String]) -> Vec<Registration> {
        let Ok(regs) = self.regs.lock() else {
            return Vec::new();
        };
        regs.values()
            .filter(|r| {
                if impus.is_empty() {
                    r.impi.eq_ignore_ascii_case(impi)
                } else {
                    impus
                        .iter()
                        .filter_map(|i| crate::store::canonical_identity(i).ok())
                        .any(|i| r.impus.contains(&i))
                }
            })
            .cloned()
            .collect()
    }

    async fn on_rtr(
        &self,
        req: &crate::diameter::codec::Message,
    ) -> Result<crate::diameter::codec::Message, crate::diameter::codec::DiameterError> {
        let rtr = cx::RegistrationTerminationRequest::from_message(req)?;
        let regs = self.registrations_of(&rtr.user_name, &rtr.public_identities);
        for reg in &regs {
            self.drop_registration(reg);
            if let Some(i) = reg.impus.first() {
                self.third_party_register(reg, i, 0);
            }
            self.notify_all(reg, ContactEvent::Rejected);
            tracing::info!(
                impi = %reg.impi,
                reason = ?rtr.reason.code,
                info = rtr.reason.info.as_deref().unwrap_or(""),
                "registration terminated by the HSS (RTR)"
            );
        }
        Ok(cx::simple_answer(
            req,
            CxResult::Base(2001),
            &self.origin_host,
            &self.domain,
        ))
    }

    fn on_ppr(
        &self,
        req: &crate::diameter::codec::Message,
    ) -> Result<crate::diameter::codec::Message, crate::diameter::codec::DiameterError> {
        let ppr = cx::PushProfileRequest::from_message(req)?;
        let regs = self.registrations_of(&ppr.user_name, &[]);
        if regs.is_empty() {
            return Ok(cx::simple_answer(
                req,
                CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN),
                &self.origin_host,
                &self.domain,
            ));
        }
        if let Some(xml) = &ppr.user_data {
            let profile = ImsSubscription::parse(xml).map_err(|_| {
                crate::diameter::codec::DiameterError::InvalidAvp {
                    code: cx::AVP_USER_DATA,
                    why: "User-Data is not a valid IMSSubscription",
                }
            })?;
            for mut reg in regs {
                reg.profile = Some(profile.clone());
                tracing::info!(impi = %reg.impi, "new user profile from the HSS (PPR)");
                self.store_registration(reg);
            }
        }
        Ok(cx::simple_answer(
            req,
            CxResult::Base(2001),
            &self.origin_host,
            &self.domain,
        ))
    }
}

/// True for `Event: reg` (RFC 3680 §4.1).
fn is_reg_event(req: &Request) -> bool {
    req.headers.get("Event").is_some_and(|e| {
        e.split(';')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("reg"))
    })
}

impl Scscf {
    fn own_contact(&self) -> String {
        format!("<{}>", self.server_uri())
    }

    /// A new subscription to a registered user's state: 200 OK, then the full state.
    /// RFC 3680 §5.2 / TS 24.229 §5.4.2.1.1: who may watch a registration: the user (an
    /// identity of its implicit set, as the P-CSCF asserted it) or a P-CSCF the user registered
    /// through (on a binding's Path). Anyone else learnt other users' contact addresses.
    fn may_watch(&self, req: &Request, reg: &Registration) -> bool {
        let Some(asserted) = req
            .headers
            .get("P-Asserted-Identity")
            .and_then(|v| NameAddr::parse(v).ok())
        else {
            return false;
        };
        if reg.impus.contains(&asserted.uri.aor()) {
            return true;
        }
        let host_port = |u: &crate::sip::Uri| match u {
            crate::sip::Uri::Sip(s) => Some((s.host.to_ascii_lowercase(), s.port.unwrap_or(5060))),
            _ => None,
        };
        let Some(watcher) = host_port(&asserted.uri) else {
            return false;
        };
        reg.bindings.iter().flat_map(|b| b.path.iter()).any(|p| {
            NameAddr::parse(p)
                .ok()
                .and_then(|na| host_port(&na.uri))
                .is_some_and(|hp| hp == watcher)
        })
    }

    fn reg_subscribe(&self, inc: IncomingRequest, req: &Request, aor: &str) {
        if let Some(reg) = self.registration(aor) {
            if !self.may_watch(req, &reg) {
                let who = req.headers.get("P-Asserted-Identity").unwrap_or("nobody");
                crate::warn_limited!("scscf.reg_sub.forbidden", %aor, %who, "reg-event SUBSCRIBE refused: only the user or its P-CSCF may watch a registration");
                self.ep
                    .note(|| format!("403: {who} may not watch {aor}'s registration"));
                inc.tx.respond(warn(
                    req,
                    403,
                    "Forbidden",
                    "only the user or its P-CSCF may watch this registration",
                ));
                return;
            }
        }
        let (all, mine) = self
            .reg_subs
            .lock()
            .map(|m| (m.len(), m.count_for(aor)))
            .unwrap_or((0, 0));
        if all >= MAX_REG_SUBS || mine >= MAX_REG_SUBS_PER_AOR {
            let mut r = warn(
                req,
                503,
                "Service Unavailable",
                "too many reg-event subscriptions",
            );
            r.headers.push("Retry-After", "60");
            inc.tx.respond(r);
            return;
        }
        let expires: u32 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(self.registrar.default_expires)
            .min(self.registrar.max_expires);
        let tag = crate::sip::new_tag();
        let mut ok = req.response(200, None);
        let to = ok.headers.get("To").unwrap_or("").to_string();
        ok.headers.set("To", format!("{to};tag={tag}"));
        for rr in req.headers.get_all("Record-Route") {
            ok.headers.push("Record-Route", rr.to_string());
        }
        ok.headers.push("Contact", self.own_contact());
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        let remote_target = req
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .unwrap_or_default();
        let sub = RegSubscription {
            aor: aor.to_string(),
            call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
            local: format!("{to};tag={tag}"),
            remote: req.headers.get("From").unwrap_or("").to_string(),
            remote_target,
            route_set: req
                .headers
                .values("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cseq: 0,
            version: 0,
            expires_at: Instant::now() + Duration::from_secs(expires.into()),
        };
        tracing::info!(%aor, expires, "reg event subscription");
        // Stored first: `notify` moves its CSeq and version on in the table.
        if expires > 0 {
            if let Ok(mut m) = self.reg_subs.lock() {
                m.insert(sub.clone());
            }
        }
        if let Some(reg) = self.registration(aor) {
            self.notify(sub, &reg, ContactEvent::Registered, expires > 0);
        }
    }

    /// A refresh or an unsubscribe (Expires: 0) inside the subscription dialog.
    fn reg_refresh(&self, inc: IncomingRequest, req: &Request) {
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let expires: u32 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(self.registrar.default_expires)
            .min(self.registrar.max_expires);
        let existing = self.reg_subs.lock().ok().and_then(|mut m| {
            if expires == 0 {
                m.remove(&call_id)
            } else {
                let s = m.get_mut(&call_id)?;
                s.expires_at = Instant::now() + Duration::from_secs(expires.into());
                Some(s.clone())
            }
        });
        let Some(sub) = existing else {
            inc.tx
                .respond(reject(req, 481, "scscf", "no such subscription"));
            return;
        };
        let mut ok = req.response(200, None);
        ok.headers.push("Contact", self.own_contact());
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        if let Some(reg) = self.registration(&sub.aor) {
            self.notify(sub, &reg, ContactEvent::Refreshed, expires > 0);
        }
    }

    /// Tells every subscriber to one of `reg`'s identities what happened (RFC 3680 §5).
    fn notify_all(&self, reg: &Registration, event: ContactEvent) {
        let subs: Vec<RegSubscription> = match self.reg_subs.lock() {
            Ok(m) => m.watching(&reg.impus),
            Err(_) => return,
        };
        let keep = matches!(event, ContactEvent::Registered | ContactEvent::Refreshed);
        for s in subs {
            if !keep {
                if let Ok(mut m) = self.reg_subs.lock() {
                    m.remove(&s.call_id);
                }
            }
            self.notify(s, reg, event, keep);
        }
    }

    /// Sends one NOTIFY in the subscription dialog and records the new CSeq/version.
    fn notify(
        &self,
        mut sub: RegSubscription,
        reg: &Registration,
        event: ContactEvent,
        active: bool,
    ) {
        sub.cseq += 1;
        sub.version += 1;
        if let Ok(mut m) = self.reg_subs.lock() {
            if let Some(s) = m.get_mut(&sub.call_id) {
                s.cseq = sub.cseq;
                s.version = sub.version;
            }
        }
        let now = Instant::now();
        let contacts: Vec<(String, u64)> = reg
            .bindings
            .iter()
            .map(|b| {
                let left = match event {
                    ContactEvent::Registered | ContactEvent::Refreshed => {
                        b.expires_at.saturating_duration_since(now).as_secs()
                    }
                    _ => 0,
                };
                (b.contact.clone(), left)
            })
            .collect();
        let body = reginfo_xml(sub.version - 1, &reg.impus, &contacts, event);
        let mut n = Request::new(Method::Notify, sub.remote_target.clone());
        n.headers.push("Max-Forwards", "70");
        n.headers.push("From", sub.local.clone());
        n.headers.push("To", sub.remote.clone());
        n.headers.push("Call-ID", sub.call_id.clone());
        n.headers.push("CSeq", format!("{} NOTIFY", sub.cseq));
        for r in &sub.route_set {
            n.headers.push("Route", r.clone());
        }
        n.headers.push("Contact", self.own_contact());
        n.headers.push("Event", "reg");
        let left = sub.expires_at.saturating_duration_since(now).as_secs();
        if active && left > 0 {
            n.headers
                .push("Subscription-State", format!("active;expires={left}"));
        } else {
            n.headers
                .push("Subscription-State", "terminated;reason=noresource");
        }
        n.headers.push("Content-Type", "application/reginfo+xml");
        n.body = bytes::Bytes::from(body);
        let ep = self.ep.clone();
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let Some((dest, t)) = next_hop(&resolver, &n).await else {
                return;
            };
            n.headers.push_front("Via", ep.new_via(t));
            let r = ep.send_request(n, dest, t).final_response().await;
            if r.status >= 300 {
                tracing::info!(status = r.status, "reg event NOTIFY refused");
            }
        });
    }
}
