//! S-CSCF: registrar and authenticator (TS 24.229 §5.4.1) and session routing with the iFC
//! chain (§5.4.3). This module is the driver: it owns the SIP endpoint, the Diameter client
//! towards the HSS and the timers, and translates between them and the socket-free cores:
//!
//! | message                          | core                                   |
//! |----------------------------------|----------------------------------------|
//! | REGISTER: answer, 401 or go on   | [`register`]                           |
//! | REGISTER: MAA -> 401, the check  | [`auth`] (Digest, AKA, decoys, blocks) |
//! | REGISTER: 200 / 423 / expiry     | [`registrar`]                          |
//! | initial requests through ASes    | [`ifc_chain`] (odi, default handling)  |
//! | third-party REGISTER to ASes     | [`third_party`]                        |
//! | RTR / PPR from the HSS           | [`push`]                               |
//! | SUBSCRIBE / NOTIFY `reg` events  | [`notify`]                             |
//!
//! Session routing (`routing.rs`) is driver code: it forwards, forks and waits on the AS
//! legs, asking [`ifc_chain::AsLeg`] what each answer means.
//!
//! A REGISTER without valid credentials gets a Cx Multimedia-Auth-Request (TS 29.229 §6.1.8)
//! and a 401 carrying a SIP Digest (RFC 2617, qop=auth) or an AKAv1-MD5 (RFC 3310) challenge.
//! The second REGISTER is checked; on success a Server-Assignment-Request (§6.1.2) downloads
//! the user profile and the 200 OK carries the bindings, the Path echoed (RFC 3327),
//! Service-Route (RFC 3608) and P-Associated-URI (RFC 3455). `Expires: 0` de-registers
//! (SAR USER_DEREGISTRATION); bindings that lapse are removed by a timer
//! (SAR TIMEOUT_DEREGISTRATION).
//!
//! Every authentication failure is logged with the reason a person can act on: unknown IMPI,
//! wrong password, RES mismatch, MAC failure reported by the UE (K/OPc differ), SQN
//! re-synchronisation, stale or unknown nonce.

pub mod auth;
pub mod ifc_chain;
pub mod notify;
pub mod push;
pub mod register;
pub mod registrar;
mod routing;
pub mod third_party;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use self::auth::{Authenticator, ChallengeError, AUTH_FAILED};
use self::ifc_chain::AsContexts;
use self::register::RegisterStep;
use self::registrar::RegistrarCore;
use super::regevent::{ContactEvent, RegSubTable};
use super::{forward_ack, forward_stray_response};
use crate::config::Registrar;
use crate::diameter::client::DiameterClient;
use crate::diameter::codec::DiameterError;
use crate::diameter::cx::{
    self, CxResult, MultimediaAuthAnswer, MultimediaAuthRequest, ServerAssignmentAnswer,
    ServerAssignmentRequest, ServerAssignmentType, SipAuthDataItem,
};
use crate::profile::ImsSubscription;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, Request, Response, Transport};

pub use self::push::{CxClientHandler, ScscfCx};
pub use self::registrar::{Binding, Registration};

/// SIP-Authentication-Scheme values of TS 29.229 §6.3.9 as real HSSes use them.
pub const SCHEME_DIGEST: &str = "SIP Digest";
/// AKAv1-MD5 (RFC 3310).
pub const SCHEME_AKA: &str = "Digest-AKAv1-MD5";
/// Let the HSS choose.
pub const SCHEME_UNKNOWN: &str = "Unknown";

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
    /// Registrations by implicit set, and profiles of unregistered users served.
    regs: Mutex<RegistrarCore>,
    /// Outstanding challenges and failed authentications per IMPI and per UE address.
    auth: Mutex<Authenticator>,
    /// Requests out at application servers, by `odi` token.
    as_ctx: Mutex<AsContexts>,
    /// Subscriptions to the reg event package (RFC 3680), by Call-ID.
    reg_subs: Mutex<RegSubTable>,
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

/// A table's lock; a poisoned one is still used (every table is consistent between calls).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one way the S-CSCF refuses a request: `code` with `reason` (None: the standard
/// phrase), a To tag, and `Warning: 399 scscf "why"` (RFC 3261 §20.43).
fn reject(req: &Request, code: u16, reason: Option<&str>, why: &str) -> Response {
    let mut r = req.response(code, reason);
    r.ensure_to_tag();
    r.headers.push(
        "Warning",
        format!("399 scscf \"{}\"", why.replace('"', "'")),
    );
    r
}

/// 403 for a blocked identity or address, with Retry-After (RFC 3261 §20.33).
fn blocked(req: &Request, d: Duration) -> Response {
    let mut r = reject(req, 403, Some("Forbidden"), AUTH_FAILED);
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
            auth: Mutex::new(Authenticator::new(&domain, auth)),
            regs: Mutex::new(RegistrarCore::new(registrar.clone())),
            domain,
            origin_host,
            registrar,
            default_scheme,
            mw,
            resolver,
            icscf: OnceLock::new(),
            as_wait: OnceLock::new(),
            as_ctx: Mutex::new(AsContexts::default()),
            reg_subs: Mutex::new(RegSubTable::default()),
            session_seq: AtomicU64::new(1),
            after_ok: Mutex::new(HashMap::new()),
        })
    }

    /// Our SIP URI as the HSS knows it (Server-Name), with the Mw transport: an IP literal, so
    /// a foreign I-CSCF (Kamailio's cannot use /etc/hosts) reaches us as written.
    pub fn server_name(ep: &Endpoint, _domain: &str, mw: Transport) -> String {
        super::node_uri(ep, None, mw)
    }

    /// Our own SIP URI, with a user part (`orig`, `term`) or none: the one place it is made
    /// (Server-Name, Contact, From of third-party REGISTERs, Record-Route, Service-Route, the
    /// Route back from an AS).
    fn uri(&self, user: Option<&str>) -> String {
        super::node_uri(&self.ep, user, self.mw)
    }

    /// One of our URIs as a loose route (`<…;lr>`), with optional extra parameters.
    fn route_uri(&self, user: Option<&str>, extra: &str) -> String {
        format!("<{};lr{extra}>", self.uri(user))
    }

    /// Our Contact header value.
    fn contact(&self) -> String {
        format!("<{}>", self.uri(None))
    }

    /// The Service-Route of a 200 OK to REGISTER (RFC 3608): the `orig` route marks the
    /// originating case when the UE's requests come back.
    fn service_route(&self) -> String {
        self.route_uri(Some("orig"), "")
    }

    /// Our Record-Route for the originating (`orig`) or terminating (`term`) case.
    fn record_route(&self, case: &str) -> String {
        self.route_uri(Some(case), "")
    }

    /// The registration a public identity belongs to, if registered.
    pub fn registration(&self, impu: &str) -> Option<Registration> {
        lock(&self.regs).get(impu).cloned()
    }

    /// Whether `impu` is registered here (without copying its registration and profile, as
    /// routing asks it of every request).
    fn is_registered(&self, impu: &str) -> bool {
        lock(&self.regs).get(impu).is_some()
    }

    /// Up to `limit` registrations (by default IMPU, sorted) and how many there are in all
    /// (`rcslab status`). The table is locked while the entries are copied.
    pub fn registrations(&self, limit: usize) -> (Vec<Registration>, usize) {
        lock(&self.regs).list(limit)
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
                // What an AS with IncludeRegisterResponse gets (TS 24.229 §5.4.1.7).
                let ok = (resp.status == 200).then(|| resp.clone());
                inc.tx.respond(resp);
                // TS 24.229 §5.4.1.7 / §5.4.2.1.2: third-party REGISTERs and NOTIFYs follow
                // the 200 OK, so an AS that reacts at once (T-IM delivering stored messages)
                // finds the UE's P-CSCF already knowing it.
                let key = register_key(&inc.request);
                let after = lock(&self.after_ok).remove(&key);
                if let Some(a) = after {
                    let register = ok.as_ref().map(|ok| (&inc.request, ok));
                    self.third_party_register(&a.reg, &a.impu, a.expires, register);
                    self.notify_all(&a.reg, a.event);
                }
            }
            Method::Ack => forward_ack(&self.ep, &self.resolver, inc.request, &self.name()).await,
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            _ => self.route(inc).await,
        }
    }

    /// Its host name (its Diameter Origin-Host: `scscf.<domain>` for the lab's first S-CSCF,
    /// the `[[scscfs]]` name for the others), which a Route may use for it.
    fn name(&self) -> String {
        self.origin_host.clone()
    }

    /// How many entries each of the S-CSCF's tables holds (registrations, outstanding
    /// challenges, AS contexts, reg-event subscriptions): tests and `rcslab status` check that
    /// none grows without bound.
    pub fn table_sizes(&self) -> ScscfTables {
        ScscfTables {
            registrations: lock(&self.regs).len(),
            challenges: lock(&self.auth).challenges(),
            as_contexts: lock(&self.as_ctx).len(),
            reg_subscriptions: lock(&self.reg_subs).len(),
        }
    }

    /// Tells the S-CSCF where the home network's I-CSCF is (set once the lab has bound it).
    pub fn set_icscf(&self, addr: SocketAddr) {
        let _ = self.icscf.set(addr);
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

    fn session_id(&self) -> String {
        let n = self.session_seq.fetch_add(1, Ordering::Relaxed);
        format!("{};{};{}", self.origin_host, std::process::id(), n)
    }

    /// TS 24.229 §5.4.1.2: the whole REGISTER procedure ([`register::on_register`] decides,
    /// the Cx exchanges happen here); returns the response to send.
    async fn register(&self, req: &Request) -> Response {
        let step =
            register::on_register(Instant::now(), req, &self.registrar, &mut lock(&self.auth));
        match step {
            RegisterStep::Reply { response, note } => {
                if let Some(n) = note {
                    self.ep.note(|| n);
                }
                response
            }
            RegisterStep::Challenge {
                impi,
                impu,
                hint,
                stale,
                resync,
            } => {
                self.challenge(req, &impi, &impu, hint.as_deref(), stale, resync)
                    .await
            }
            RegisterStep::Authenticated {
                impi,
                impu,
                expires,
                deregister,
            } => {
                if deregister {
                    self.deregister(req, &impi, &impu).await
                } else {
                    self.save(req, &impi, &impu, expires).await
                }
            }
        }
    }

    /// Sends a MAR and builds the 401 (TS 24.229 §5.4.1.2.1, TS 29.228 §6.1.8).
    async fn challenge(
        &self,
        req: &Request,
        impi: &str,
        impu: &str,
        hint: Option<&str>,
        stale: bool,
        resync: Option<Vec<u8>>,
    ) -> Response {
        let scheme = auth::scheme_for(hint, &self.default_scheme);
        let mar = MultimediaAuthRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            user_name: impi.to_string(),
            public_identity: impu.to_string(),
            server_name: self.uri(None),
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
                return reject(
                    req,
                    500,
                    Some("Server Internal Error"),
                    "unusable answer from the HSS",
                );
            }
            Err(e) => {
                let why = super::hss_unreachable("MAR", impi, &e);
                return reject(req, 480, Some("Temporarily Unavailable"), &why);
            }
        };
        // Identities the HSS does not know (or that do not belong together) get a decoy
        // challenge, the same as a real one: the reason goes to the log and the trace only.
        match maa.result {
            CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN) => {
                crate::warn_limited!("scscf.auth.unknown_impi", %impi, %impu, "authentication failed: unknown IMPI (the HSS has no private identity '{impi}'); answering with a decoy challenge");
            }
            CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITIES_DONT_MATCH) => {
                crate::warn_limited!("scscf.auth.identities", %impi, %impu, "authentication failed: IMPI '{impi}' does not own IMPU '{impu}'; answering with a decoy challenge");
            }
            CxResult::Experimental(cx::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED) => {
                crate::warn_limited!("scscf.auth.scheme", %impi, scheme, "authentication failed: the HSS does not support scheme {scheme} for this user; answering with a decoy challenge");
            }
            _ => {}
        }
        let built = match auth::build_challenge(maa, scheme, &self.domain, stale) {
            Ok(b) => b,
            Err(ChallengeError::Refused(other)) => {
                tracing::warn!(%impi, result = ?other, "MAA refused the authentication");
                return reject(req, 403, Some("Forbidden"), AUTH_FAILED);
            }
            Err(e) => return reject(req, 500, Some("Server Internal Error"), &e.to_string()),
        };
        if let Some(why) = built.decoy {
            self.ep
                .note(|| format!("401 (decoy): {impi} / {impu}: {why}"));
        }
        lock(&self.auth).issue(Instant::now(), impi, impu, &built);
        let mut r = req.response(401, Some("Unauthorized"));
        if built.decoy.is_none() {
            let is_aka = auth::is_aka(&built.challenge);
            self.ep.note(|| {
                format!(
                    "401: {impi} has no valid credentials yet; MAR brought a {} vector{}",
                    if is_aka { "AKA" } else { "Digest" },
                    if stale { " (stale nonce)" } else { "" }
                )
            });
        }
        r.headers
            .push("WWW-Authenticate", built.challenge.to_string());
        r.ensure_to_tag();
        r
    }

    /// Server-Assignment-Request (TS 29.228 §6.1.2) for `impus`.
    async fn sar(
        &self,
        impi: Option<&str>,
        impus: Vec<String>,
        kind: ServerAssignmentType,
        have_profile: bool,
    ) -> Result<ServerAssignmentAnswer, DiameterError> {
        let sar = ServerAssignmentRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            public_identities: impus,
            user_name: impi.map(str::to_string),
            server_name: self.uri(None),
            assignment_type: kind,
            user_data_already_available: if have_profile {
                cx::UserDataAlreadyAvailable::UserDataAlreadyAvailable
            } else {
                cx::UserDataAlreadyAvailable::UserDataNotAvailable
            },
        };
        let answer = self.hss.request(sar.to_message()).await?;
        ServerAssignmentAnswer::from_message(&answer)
    }

    /// Registration or re-registration accepted (TS 24.229 §5.4.1.2.2): SAR, store the
    /// bindings, 200 OK.
    async fn save(&self, req: &Request, impi: &str, impu: &str, expires: u32) -> Response {
        let existing = self.registration(impu);
        let kind = if existing.is_some() {
            ServerAssignmentType::ReRegistration
        } else {
            ServerAssignmentType::Registration
        };
        let have_profile = existing.as_ref().is_some_and(|r| r.profile.is_some());
        let saa = match self
            .sar(Some(impi), vec![impu.to_string()], kind, have_profile)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%impi, error = %e, "SAR failed");
                return reject(
                    req,
                    480,
                    Some("Temporarily Unavailable"),
                    &format!("no server assignment from the HSS (SAR): {e}"),
                );
            }
        };
        if !saa.result.is_success() {
            tracing::warn!(%impi, result = ?saa.result, "SAA refused the registration");
            return reject(
                req,
                403,
                Some("Forbidden"),
                "HSS refused the server assignment",
            );
        }
        let profile = match saa.user_data.as_deref().map(ImsSubscription::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                tracing::warn!(%impi, error = %e, "SAA User-Data is not a valid IMSSubscription");
                return reject(
                    req,
                    500,
                    Some("Server Internal Error"),
                    "invalid user profile from the HSS",
                );
            }
            None => None,
        };
        let saved = lock(&self.regs).save(Instant::now(), req, impi, impu, existing, profile);
        let reg = match saved {
            Ok(reg) => reg,
            Err(e) => return reject(req, 400, Some("Bad Request"), &e.to_string()),
        };
        tracing::info!(%impi, %impu, contacts = reg.bindings.len(), "registered");
        let event = if kind == ServerAssignmentType::Registration {
            ContactEvent::Registered
        } else {
            ContactEvent::Refreshed
        };
        self.defer(req, &reg, impu, expires, event);
        registrar::ok_response(req, Some(&reg), Instant::now(), &self.service_route())
    }

    /// User-initiated de-registration (TS 24.229 §5.4.1.4).
    async fn deregister(&self, req: &Request, impi: &str, impu: &str) -> Response {
        let left = lock(&self.regs).without_contacts(req, impu);
        let Some(reg) = left else {
            // Nothing to remove: RFC 3261 §10.3 still answers 200 with no contacts.
            return registrar::ok_response(req, None, Instant::now(), "");
        };
        if reg.bindings.is_empty() {
            if let Err(e) = self
                .sar(
                    Some(impi),
                    vec![impu.to_string()],
                    ServerAssignmentType::UserDeregistration,
                    true,
                )
                .await
            {
                tracing::warn!(%impi, error = %e, "SAR (user de-registration) failed");
            }
            lock(&self.regs).remove(&reg);
            self.defer(req, &reg, impu, 0, ContactEvent::Unregistered);
            tracing::info!(%impi, %impu, "de-registered");
        } else {
            lock(&self.regs).store(reg.clone());
        }
        registrar::ok_response(req, Some(&reg), Instant::now(), &self.service_route())
    }

    fn defer(
        &self,
        req: &Request,
        reg: &Registration,
        impu: &str,
        expires: u32,
        event: ContactEvent,
    ) {
        lock(&self.after_ok).insert(
            register_key(req),
            AfterRegister {
                reg: reg.clone(),
                impu: impu.to_string(),
                expires,
                event,
            },
        );
    }

    /// The timer (every second): lapsed challenges, failure counts, AS contexts and
    /// reg-event subscriptions are forgotten; sets whose bindings all lapsed are
    /// de-registered at the HSS with SAR TIMEOUT_DEREGISTRATION (TS 24.229 §5.4.1.5).
    async fn expire(&self) {
        let now = Instant::now();
        lock(&self.auth).sweep(now);
        lock(&self.as_ctx).sweep(now);
        // RFC 6665 §4.1.2.4: a subscription not refreshed in time is over.
        lock(&self.reg_subs).expire(now);
        let lapsed = lock(&self.regs).sweep(now);
        for reg in lapsed {
            if let Some(i) = reg.impus.first() {
                self.third_party_register(&reg, i, 0, None);
            }
            self.notify_all(&reg, ContactEvent::Expired);
            tracing::info!(impi = %reg.impi, impu = ?reg.impus.first(), "registration expired");
            if let Err(e) = self
                .sar(
                    Some(&reg.impi),
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

    /// The served user's iFC in evaluation order.
    fn ifcs_of(&self, served: &str) -> Vec<crate::profile::InitialFilterCriteria> {
        // Ordered from the profile held, not from a copy of the whole subscription: this
        // runs for every request the S-CSCF routes.
        let core = lock(&self.regs);
        match core.get(served) {
            Some(reg) => reg.profile.as_ref(),
            None => core.unregistered_profile(served),
        }
        .map(ifc_chain::ordered_ifcs)
        .unwrap_or_default()
    }

    /// TS 24.229 §5.4.1.7: after a registration change, a third-party REGISTER to each AS
    /// whose iFC matches REGISTER; `register` is the user's REGISTER and our 200 OK to it
    /// when one caused the change (for an AS whose iFC asks for them in the body).
    fn third_party_register(
        &self,
        reg: &Registration,
        impu: &str,
        expires: u32,
        register: Option<(&Request, &Response)>,
    ) {
        let ordered = self.ifcs_of(impu);
        let ordered = if ordered.is_empty() {
            reg.profile
                .as_ref()
                .map(ifc_chain::ordered_ifcs)
                .unwrap_or_default()
        } else {
            ordered
        };
        let me = self.uri(None);
        for asrv in third_party::targets(&ordered, &self.domain, expires) {
            let body = third_party::body(&asrv, register);
            let server = asrv.server_name;
            let ep = self.ep.clone();
            let resolver = self.resolver.clone();
            let me = me.clone();
            let impu = impu.to_string();
            tokio::spawn(async move {
                let Some((dest, t)) = resolver.resolve_str(&server).await else {
                    return;
                };
                let ids = third_party::Ids {
                    via: ep.new_via(t),
                    tag: crate::sip::new_tag(),
                    call_id: crate::sip::new_call_id(&ep.local_addr().ip().to_string()),
                };
                let mut r = third_party::register_request(&server, &me, &impu, expires, ids);
                if let Some((ct, b)) = body {
                    r.headers.push("Content-Type", ct);
                    r.body = b.into();
                }
                let resp = ep.send_request(r, dest, t).final_response().await;
                if resp.status >= 300 {
                    tracing::warn!(%server, status = resp.status, "third-party REGISTER refused");
                }
            });
        }
    }
}
