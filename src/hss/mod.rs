//! HSS: the subscriber database answering Diameter Cx (TS 29.228 procedures, TS 29.229
//! messages) over real Diameter (RFC 6733).
//!
//! UAR -> which S-CSCF (§6.1.1), MAR -> authentication vectors (§6.3: SIP Digest HA1 or
//! Milenage AKA vectors with SQN handling and AUTS re-synchronisation), SAR -> assignment and
//! the user profile as TS 29.228 IMSSubscription XML (§6.1.2), LIR -> where a callee is
//! registered (§6.1.4). Requests missing a mandatory AVP get DIAMETER_MISSING_AVP (5005) with
//! Failed-AVP. Subscribers live in sled ([`crate::store`]); the provisioning REST API is in
//! [`admin`].
//!
//! The HSS serves foreign CSCFs as well as the lab's own: the S-CSCF named for a first
//! registration comes from configuration ([`ScscfSelection`]), the S-CSCF that registered a user
//! is the one its SAR named (kept in sled), and pushes (RTR, PPR) go over the Diameter
//! connection that S-CSCF used, so two S-CSCFs sharing one Origin-Host never get each other's.
//! With several S-CSCFs of its own (`[[scscfs]]`, `[hss] assignment = "name"`) a user's first
//! registration gets one of them by a hash of the IMPI ([`pick_by_key`]).

pub mod admin;
pub mod admin_auth;
pub mod admin_client;
pub mod admin_status;

use std::sync::Arc;

use crate::auth::aka;
use crate::auth::digest;
use crate::diameter::codec::Message;
use crate::diameter::cx::{
    self, CxError, CxMessage, CxResult, LocationInfoAnswer, LocationInfoRequest,
    MultimediaAuthAnswer, MultimediaAuthRequest, ServerAssignmentAnswer, ServerAssignmentRequest,
    ServerAssignmentType, SipAuthDataItem, SipDigestAuthenticate, UserAuthorizationAnswer,
    UserAuthorizationRequest, UserAuthorizationType,
};
use crate::diameter::peer::{BoxFuture, ConnId, DiameterHandler, Peer, PeerInfo, PeerTable};
use crate::profile::{ImsSubscription, PublicIdentity, ServiceProfile};
use crate::store::{HssState, Store, Subscriber};

pub use crate::config::ScscfSelection;
pub use crate::diameter::cx::pick_by_key;

/// Most users whose serving Diameter connection is remembered (one entry per registered user).
const MAX_SERVING: usize = 100_000;

/// The HSS's Cx logic.
pub struct Hss {
    store: Store,
    /// Open Diameter connections, to reach the S-CSCFs (RTR, PPR).
    peers: PeerTable,
    session_seq: std::sync::atomic::AtomicU64,
    origin_host: String,
    origin_realm: String,
    /// Named in UAA/LIA when no S-CSCF is assigned yet.
    selection: ScscfSelection,
    /// The lab's own S-CSCFs: (Server-Name, Diameter Origin-Host), to find a serving
    /// S-CSCF's connection by its name when the SAR's connection is not known.
    own_scscfs: Vec<(String, String)>,
    /// IMPI (lowercase) -> the Diameter connection its S-CSCF sent SAR on; pushes for the user
    /// go there. In memory only: connections do not survive a restart (the Server-Name does).
    serving: std::sync::Mutex<std::collections::HashMap<String, ConnId>>,
    /// Serialises read-modify-write of SQNs and registration state. Never held across an
    /// fsync: writers drop it, then await [`Store::durable`].
    lock: tokio::sync::Mutex<()>,
}

impl Hss {
    /// An HSS over `store`.
    pub fn new(
        store: Store,
        peers: PeerTable,
        origin_host: &str,
        origin_realm: &str,
        selection: ScscfSelection,
        own_scscfs: Vec<(String, String)>,
    ) -> Arc<Hss> {
        Arc::new(Hss {
            store,
            peers,
            session_seq: std::sync::atomic::AtomicU64::new(1),
            origin_host: origin_host.into(),
            origin_realm: origin_realm.into(),
            selection,
            own_scscfs,
            serving: Default::default(),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The store behind this HSS.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn new_session(&self) -> String {
        let n = self
            .session_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{};{};{}", self.origin_host, std::process::id(), n)
    }

    /// Remembers that `impi`'s S-CSCF talks to us over `conn` (its SAR came on it).
    fn set_serving(&self, impi: &str, conn: Option<ConnId>) {
        let Ok(mut m) = self.serving.lock() else {
            return;
        };
        let key = impi.to_ascii_lowercase();
        let Some(conn) = conn else {
            m.remove(&key);
            return;
        };
        if m.len() >= MAX_SERVING && !m.contains_key(&key) {
            m.retain(|_, c| self.peers.by_conn(*c).is_some());
            if m.len() >= MAX_SERVING {
                tracing::warn!(%impi, "serving-connection table full: pushes will go by Server-Name");
                return;
            }
        }
        m.insert(key, conn);
    }

    /// The open Diameter connection to the S-CSCF serving `impi`: the connection its SAR came
    /// on; failing that (e.g. the HSS restarted) the only peer whose Origin-Host is the host of
    /// `server_name`, as in the lab where an S-CSCF is named after its Diameter identity.
    fn serving_peer(&self, impi: &str, server_name: &str) -> Option<Peer> {
        let conn = self
            .serving
            .lock()
            .ok()
            .and_then(|m| m.get(&impi.to_ascii_lowercase()).copied());
        if let Some(p) = conn.and_then(|c| self.peers.by_conn(c)) {
            return Some(p);
        }
        let host = crate::sip::Uri::parse(server_name)
            .ok()?
            .host()?
            .to_string();
        let mut candidates = self.peers.by_origin_host(&host);
        let own = self
            .own_scscfs
            .iter()
            .find(|(name, _)| name == server_name)
            .map(|(_, origin_host)| origin_host.clone())
            .or_else(|| {
                matches!(&self.selection, ScscfSelection::ServerName(n) if n == server_name)
                    .then(|| format!("scscf.{}", self.origin_realm))
            });
        if let (true, Some(origin_host)) = (candidates.is_empty(), own) {
            // The lab's own S-CSCFs name themselves by IP literal; their Origin-Hosts differ.
            candidates = self.peers.by_origin_host(&origin_host);
        }
        if candidates.len() > 1 {
            tracing::warn!(%impi, %server_name, peers = candidates.len(), "several Diameter peers present the serving S-CSCF's host as Origin-Host and none is known to serve this user: not guessing");
            return None;
        }
        candidates.pop()
    }

    /// TS 29.228 §6.5.1: Registration-Termination-Request to the serving S-CSCF, which drops
    /// the user's registration. `state` is the user's state before the change.
    pub async fn terminate_registration(
        &self,
        sub: &Subscriber,
        state: &HssState,
        code: crate::diameter::cx::ReasonCode,
        why: &str,
    ) -> Option<CxResult> {
        let server = state.scscf.as_deref()?;
        let peer = self.serving_peer(&sub.impi, server);
        // The change applies in the HSS whether or not the S-CSCF can be told.
        let _ = self.store.set_hss_state(&sub.impi, &HssState::default());
        self.set_serving(&sub.impi, None);
        let Some(peer) = peer else {
            tracing::warn!(impi = %sub.impi, %server, "no Diameter connection to the serving S-CSCF: RTR not sent ({why})");
            return None;
        };
        let rtr = crate::diameter::cx::RegistrationTerminationRequest {
            session_id: self.new_session(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            destination_host: peer.remote().origin_host.clone(),
            destination_realm: self.origin_realm.clone(),
            user_name: sub.impi.clone(),
            public_identities: sub.impus.clone(),
            reason: crate::diameter::cx::DeregistrationReason {
                code,
                info: Some(why.to_string()),
            },
        };
        match peer.request(rtr.to_message()).await {
            Ok(a) => {
                let r = CxResult::from_message(&a);
                tracing::info!(impi = %sub.impi, peer = %peer.remote().addr, result = ?r, "RTR answered: {why}");
                r
            }
            Err(e) => {
                tracing::warn!(impi = %sub.impi, error = %e, "RTR failed");
                None
            }
        }
    }

    /// TS 29.228 §6.5.2: Push-Profile-Request with the new user profile to the serving S-CSCF.
    pub async fn push_profile(&self, sub: &Subscriber, state: &HssState) -> Option<CxResult> {
        let server = state.scscf.as_deref()?;
        let Some(peer) = self.serving_peer(&sub.impi, server) else {
            tracing::warn!(impi = %sub.impi, %server, "no Diameter connection to the serving S-CSCF: PPR not sent (the new profile is stored)");
            return None;
        };
        let ppr = crate::diameter::cx::PushProfileRequest {
            session_id: self.new_session(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            destination_host: peer.remote().origin_host.clone(),
            destination_realm: self.origin_realm.clone(),
            user_name: sub.impi.clone(),
            user_data: Some(profile_of(sub).to_xml()),
        };
        match peer.request(ppr.to_message()).await {
            Ok(a) => {
                let r = CxResult::from_message(&a);
                tracing::info!(impi = %sub.impi, peer = %peer.remote().addr, result = ?r, "PPR answered");
                r
            }
            Err(e) => {
                tracing::warn!(impi = %sub.impi, error = %e, "PPR failed");
                None
            }
        }
    }

    /// Answers one Cx request that came from `from`.
    pub async fn answer(&self, from: &PeerInfo, req: Message) -> Message {
        let r = match req.command_code {
            cx::CMD_USER_AUTHORIZATION => self.uar(&req).await,
            cx::CMD_MULTIMEDIA_AUTH => self.mar(&req).await,
            cx::CMD_SERVER_ASSIGNMENT => self.sar(from, &req).await,
            cx::CMD_LOCATION_INFO => self.lir(&req).await,
            _ => {
                return Message::error_answer(
                    &req,
                    crate::diameter::codec::DIAMETER_COMMAND_UNSUPPORTED,
                    None,
                    Some("command not supported by this HSS"),
                )
            }
        };
        let mut ans = match r {
            Ok(a) => a,
            Err(e) => {
                // TS 29.229 §6.2 / RFC 6733 §7.1.5: the decoding error becomes the answer.
                tracing::warn!(command = %req.command_name(), error = %e, "unusable Cx request");
                e.to_answer(&req)
            }
        };
        ans.hop_by_hop = req.hop_by_hop;
        ans.end_to_end = req.end_to_end;
        ans
    }

    fn lookup(&self, impi: &str, impu: &str) -> Result<Arc<Subscriber>, CxResult> {
        let by_impu = self.store.find_shared(impu).ok().flatten();
        let Some(sub) = by_impu else {
            return Err(CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN));
        };
        // A UE that sends only the user part ("alice") as username is tolerated.
        let impi_ok = impi.is_empty()
            || sub.impi.eq_ignore_ascii_case(impi)
            || (!impi.contains('@') && sub.impi.split('@').next() == Some(impi));
        if !impi_ok {
            return Err(CxResult::Experimental(
                cx::DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
            ));
        }
        Ok(sub)
    }

    fn store_failed(&self, e: impl std::fmt::Display) -> CxResult {
        tracing::error!(error = %e, "HSS store failure");
        CxResult::Base(crate::diameter::codec::DIAMETER_UNABLE_TO_COMPLY)
    }

    /// Server-Name or Server-Capabilities for `impi`, whom no S-CSCF serves yet (TS 29.228
    /// §6.1.1.1, §6.1.4.1).
    fn selection(&self, impi: &str) -> (Option<String>, Option<cx::ServerCapabilities>) {
        match &self.selection {
            ScscfSelection::ServerName(n) => (Some(n.clone()), None),
            ScscfSelection::Capabilities(c) => (None, Some(c.clone())),
            ScscfSelection::ByImpi(names) => {
                (names.get(pick_by_key(impi, names.len())).cloned(), None)
            }
        }
    }

    /// TS 29.228 §6.1.1.1.
    async fn uar(&self, req: &Message) -> Result<Message, CxError> {
        let uar = UserAuthorizationRequest::decode(req)?;
        let mut ans = UserAuthorizationAnswer {
            session_id: uar.session_id.clone(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            result: CxResult::Base(2001),
            server_name: None,
            server_capabilities: None,
        };
        match self.lookup(&uar.user_name, &uar.public_identity) {
            Err(r) => {
                tracing::info!(impu = %uar.public_identity, impi = %uar.user_name, result = ?r, "UAR refused");
                ans.result = r;
            }
            Ok(sub) => {
                let st = self.store.hss_state(&sub.impi).unwrap_or_default();
                let dereg = uar.authorization_type == Some(UserAuthorizationType::DeRegistration);
                match (&st.scscf, dereg) {
                    // §6.1.1.1: de-registration of a user with an S-CSCF: DIAMETER_SUCCESS
                    // and its name.
                    (Some(name), true) => ans.server_name = Some(name.clone()),
                    // An S-CSCF is assigned: the name it gave in its SAR.
                    (Some(name), false) => {
                        ans.result = CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION);
                        ans.server_name = Some(name.clone());
                    }
                    (None, true) => {
                        ans.result =
                            CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED);
                    }
                    // §6.1.1.1 / TS 29.229 §6.1.2: no S-CSCF assigned: the HSS names one, or
                    // gives capabilities for the I-CSCF to choose by. Once the chosen S-CSCF's
                    // SAR names it, later UARs take the branch above (2002): the user stays.
                    (None, false) => {
                        ans.result = CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION);
                        (ans.server_name, ans.server_capabilities) = self.selection(&sub.impi);
                    }
                }
            }
        }
        Ok(ans.to_message())
    }

    /// TS 29.228 §6.3.1: vectors. Digest -> HA1 (TS 29.229 §6.3.35 SIP-Digest-Authenticate);
    /// AKA -> RAND||AUTN, XRES, CK, IK from Milenage with the next SQN; a SIP-Authorization
    /// of RAND||AUTS re-synchronises the SQN first (TS 33.102 §6.3.5).
    async fn mar(&self, req: &Message) -> Result<Message, CxError> {
        let mar = MultimediaAuthRequest::decode(req)?;
        let mut ans = MultimediaAuthAnswer {
            session_id: mar.session_id.clone(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            result: CxResult::Base(2001),
            user_name: Some(mar.user_name.clone()),
            public_identity: Some(mar.public_identity.clone()),
            number_auth_items: Some(1),
            items: Vec::new(),
        };
        let sub = match self.lookup(&mar.user_name, &mar.public_identity) {
            Ok(s) => s,
            Err(r) => {
                tracing::info!(impi = %mar.user_name, impu = %mar.public_identity, result = ?r, "MAR refused");
                ans.result = r;
                ans.number_auth_items = None;
                return Ok(ans.to_message());
            }
        };
        let scheme = mar.auth_data.scheme.clone();
        let s = scheme.to_ascii_lowercase();
        let item = if s.contains("aka") {
            // The SQN moves under the lock; the fsync that makes it stick runs after, outside
            // it and off the async threads, and the vector goes out only once it is done
            // (TS 33.102 §6.3.2: an SQN handed out must never be handed out again).
            let v = {
                let _g = self.lock.lock().await;
                self.aka_vector(&sub, mar.auth_data.authorization.as_deref())
            };
            match v {
                Ok(v) => match self.store.durable().await {
                    Ok(()) => v,
                    Err(e) => {
                        ans.result = self.store_failed(e);
                        ans.number_auth_items = None;
                        return Ok(ans.to_message());
                    }
                },
                Err(r) => {
                    ans.result = r;
                    ans.number_auth_items = None;
                    return Ok(ans.to_message());
                }
            }
        } else if s.contains("digest") || s.contains("md5") || s.is_empty() || s == "unknown" {
            let ha1 = digest::ha1_hex(&mar.user_name, &self.origin_realm, sub.password.as_bytes());
            SipAuthDataItem {
                item_number: Some(1),
                scheme: "SIP Digest".into(),
                digest: Some(SipDigestAuthenticate {
                    realm: self.origin_realm.clone(),
                    qop: Some("auth".into()),
                    ha1,
                    algorithm: Some("MD5".into()),
                }),
                ..Default::default()
            }
        } else {
            tracing::info!(impi = %sub.impi, %scheme, "MAR asks for an authentication scheme this HSS does not offer");
            ans.result = CxResult::Experimental(cx::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED);
            ans.number_auth_items = None;
            return Ok(ans.to_message());
        };
        ans.items.push(item);
        Ok(ans.to_message())
    }

    fn aka_vector(
        &self,
        sub: &Subscriber,
        resync: Option<&[u8]>,
    ) -> Result<SipAuthDataItem, CxResult> {
        let (Ok(k), Ok(opc), Ok(amf)) = (
            hex16(&sub.aka.k),
            hex16(&sub.aka.opc),
            hex::decode(&sub.aka.amf)
                .ok()
                .and_then(|a| <[u8; 2]>::try_from(a).ok())
                .ok_or(()),
        ) else {
            tracing::warn!(impi = %sub.impi, "subscriber has unusable AKA credentials");
            return Err(CxResult::Experimental(
                cx::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
            ));
        };
        // Re-read the SQN under the lock: it may have moved since `sub` was read.
        let mut sqn = self
            .store
            .subscriber(&sub.impi)
            .ok()
            .flatten()
            .map(|s| s.aka.sqn)
            .unwrap_or(sub.aka.sqn);
        if let Some(ra) = resync {
            if ra.len() == 30 {
                let mut rand = [0u8; 16];
                let mut auts = [0u8; 14];
                rand.copy_from_slice(&ra[..16]);
                auts.copy_from_slice(&ra[16..]);
                match aka::verify_auts(&k, &opc, &rand, &auts) {
                    Ok(sqn_ms) => {
                        tracing::info!(impi = %sub.impi, hss_sqn = sqn, ue_sqn = sqn_ms, "AKA SQN re-synchronised from AUTS");
                        sqn = aka::next_sqn(sqn_ms);
                    }
                    Err(e) => {
                        tracing::warn!(impi = %sub.impi, error = %e, "AUTS rejected (MAC-S mismatch): K/OPc differ between UE and HSS");
                        return Err(CxResult::Base(
                            crate::diameter::codec::DIAMETER_UNABLE_TO_COMPLY,
                        ));
                    }
                }
            } else {
                tracing::warn!(impi = %sub.impi, len = ra.len(), "SIP-Authorization for resync is not RAND||AUTS");
            }
        }
        let rand = aka::random_rand();
        let v = aka::generate_vector(&k, &opc, &amf, sqn, &rand);
        self.store
            .set_sqn(&sub.impi, aka::next_sqn(sqn))
            .map_err(|e| self.store_failed(e))?;
        let mut authenticate = v.rand.to_vec();
        authenticate.extend_from_slice(&v.autn);
        Ok(SipAuthDataItem {
            item_number: Some(1),
            scheme: "Digest-AKAv1-MD5".into(),
            authenticate: Some(authenticate),
            authorization: Some(v.xres.to_vec()),
            confidentiality_key: Some(v.ck.to_vec()),
            integrity_key: Some(v.ik.to_vec()),
            digest: None,
        })
    }

    /// TS 29.228 §6.1.2.1.
    async fn sar(&self, from: &PeerInfo, req: &Message) -> Result<Message, CxError> {
        let sar = ServerAssignmentRequest::decode(req)?;
        let mut ans = ServerAssignmentAnswer {
            session_id: sar.session_id.clone(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            result: CxResult::Base(2001),
            user_name: None,
            user_data: None,
        };
        let impu = sar.public_identities.first().cloned().unwrap_or_default();
        let found = if impu.is_empty() {
            sar.user_name
                .as_deref()
                .and_then(|n| self.store.subscriber_shared(n).ok().flatten())
        } else {
            self.store.find_shared(&impu).ok().flatten()
        };
        let Some(sub) = found else {
            ans.result = CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN);
            return Ok(ans.to_message());
        };
        ans.user_name = Some(sub.impi.clone());
        let g = self.lock.lock().await;
        let mut st = self.store.hss_state(&sub.impi).unwrap_or_default();
        use ServerAssignmentType as T;
        let mut send_profile = false;
        match sar.assignment_type {
            T::Registration | T::ReRegistration => {
                st = HssState {
                    scscf: Some(sar.server_name.clone()),
                    registered: true,
                };
                send_profile = sar.user_data_already_available
                    != cx::UserDataAlreadyAvailable::UserDataAlreadyAvailable
                    || sar.assignment_type == T::Registration;
            }
            T::UnregisteredUser => {
                st = HssState {
                    scscf: Some(sar.server_name.clone()),
                    registered: false,
                };
                send_profile = true;
            }
            T::NoAssignment | T::AaaUserDataRequest => send_profile = true,
            T::TimeoutDeregistration
            | T::UserDeregistration
            | T::AdministrativeDeregistration
            | T::AuthenticationFailure
            | T::AuthenticationTimeout
            | T::DeregistrationTooMuchData => st = HssState::default(),
            T::TimeoutDeregistrationStoreServerName | T::UserDeregistrationStoreServerName => {
                st.registered = false;
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        // §6.1.2.1: the Server-Name of the SAR is the serving S-CSCF, kept in sled (on disk
        // before the SAA: a restarted HSS still knows where its users are); the connection it
        // came on is where pushes for this user go. The fsync runs outside the lock.
        let written = self.store.set_hss_state(&sub.impi, &st);
        if written.is_ok() {
            self.set_serving(&sub.impi, st.scscf.as_ref().map(|_| from.conn));
        }
        drop(g);
        if let Err(e) = written {
            ans.result = self.store_failed(e);
            return Ok(ans.to_message());
        }
        if let Err(e) = self.store.durable().await {
            ans.result = self.store_failed(e);
            return Ok(ans.to_message());
        }
        if send_profile {
            ans.user_data = Some(profile_of(&sub).to_xml());
        }
        Ok(ans.to_message())
    }

    /// TS 29.228 §6.1.4.1.
    async fn lir(&self, req: &Message) -> Result<Message, CxError> {
        let lir = LocationInfoRequest::decode(req)?;
        let mut ans = LocationInfoAnswer {
            session_id: lir.session_id.clone(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.origin_realm.clone(),
            result: CxResult::Base(2001),
            server_name: None,
            server_capabilities: None,
        };
        match self.store.find_shared(&lir.public_identity).ok().flatten() {
            None => ans.result = CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN),
            Some(sub) => {
                let st = self.store.hss_state(&sub.impi).unwrap_or_default();
                match (st.registered, st.scscf) {
                    (true, Some(s)) => ans.server_name = Some(s),
                    (false, Some(s)) => {
                        ans.result = CxResult::Experimental(cx::DIAMETER_UNREGISTERED_SERVICE);
                        ans.server_name = Some(s);
                    }
                    (_, None) if has_unregistered_services(&sub) => {
                        // TS 29.228 §6.1.4.1: services for the unregistered user: name an
                        // S-CSCF, which will fetch the profile with SAR UNREGISTERED_USER.
                        ans.result = CxResult::Experimental(cx::DIAMETER_UNREGISTERED_SERVICE);
                        (ans.server_name, ans.server_capabilities) = self.selection(&sub.impi);
                    }
                    (_, None) => {
                        ans.result =
                            CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
                    }
                }
            }
        }
        Ok(ans.to_message())
    }
}

/// The TS 29.228 user profile of a subscriber: one service profile holding all its public
/// identities (one implicit registration set).
pub fn profile_of(sub: &Subscriber) -> ImsSubscription {
    ImsSubscription {
        private_id: sub.impi.clone(),
        service_profiles: vec![ServiceProfile {
            public_identities: sub
                .impus
                .iter()
                .map(|i| PublicIdentity {
                    identity: i.clone(),
                    barring: false,
                    identity_type: None,
                    display_name: None,
                })
                .collect(),
            ifcs: sub.ifcs.clone(),
        }],
    }
}

/// True when some iFC of the subscriber serves the unregistered state (SessionCase
/// TERMINATING_UNREGISTERED, or ProfilePartIndicator UNREGISTERED).
fn has_unregistered_services(sub: &Subscriber) -> bool {
    sub.ifcs.iter().any(|i| {
        i.profile_part_indicator == Some(1)
            || i.trigger_point.as_ref().is_some_and(|tp| {
                tp.spts.iter().any(|s| {
                    s.kind == crate::profile::SptKind::SessionCase(2) && !s.condition_negated
                })
            })
    })
}

fn hex16(s: &str) -> Result<[u8; 16], ()> {
    hex::decode(s)
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or(())
}

/// Adapter from the Diameter peer layer to the HSS logic.
pub struct CxServer(pub Arc<Hss>);

impl DiameterHandler for CxServer {
    fn handle(&self, from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        let hss = self.0.clone();
        Box::pin(async move { hss.answer(&from, request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::pick_by_key;

    #[test]
    fn pick_by_key_is_fixed_case_blind_and_spreads() {
        // Written down: README "Several S-CSCFs" and tests/e2e/multi_scscf.rs rely on these.
        let picks: Vec<usize> = [
            "alice@ims.lab",
            "bob@ims.lab",
            "carol@ims.lab",
            "dave@ims.lab",
        ]
        .iter()
        .map(|k| pick_by_key(k, 2))
        .collect();
        assert_eq!(picks, [1, 0, 0, 1]);
        assert_eq!(pick_by_key("ALICE@ims.lab", 2), picks[0]);
        assert!(picks.contains(&0) && picks.contains(&1));
        assert_eq!(pick_by_key("x", 0), 0);
    }
}
