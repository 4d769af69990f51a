//! The S-CSCF's registrar core (TS 24.229 §5.4.1.2 – §5.4.1.5, RFC 3261 §10.3): the
//! registration state of each implicit registration set — its contacts, their expiry, the Path
//! they were registered along (RFC 3327) — and the decisions on a REGISTER once it is
//! authenticated: which expiry is granted (423 below the minimum), what a registration or
//! re-registration stores, what a de-registration removes, which sets lapse at `now`, and
//! what the 200 OK carries. No sockets and no clock: time is passed in, the driver
//! ([`super::Scscf`]) talks to the HSS (SAR) and sends the answers.
//!
//! One set's life, as the driver moves it:
//! ```text
//!                 REGISTER (authenticated), SAR REGISTRATION
//!   (not registered) ─────────────────────────────────────────> Registered
//!          ^                                                   │  │  │
//!          │   Expires: 0 / Contact: * removes the last        │  │  │ REGISTER again:
//!          ├── contact (SAR USER_DEREGISTRATION, §5.4.1.4) <───┘  │  │ SAR RE_REGISTRATION,
//!          │                                                      │  │ contacts refreshed
//!          ├── every contact lapsed at `sweep(now)`  <────────────┘  └──> Registered
//!          │   (SAR TIMEOUT_DEREGISTRATION, §5.4.1.5)
//!          └── RTR from the HSS (TS 29.228 §6.1.3)
//! ```

use crate::shrink::ShrinkWhenSparse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::Registrar as Limits;
use crate::profile::ImsSubscription;
use crate::sip::{NameAddr, Request, Response};

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

/// Why a REGISTER is refused by the registrar itself (not by authentication or the HSS).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    /// RFC 3261 §10.3 step 7: the expiry asked for is below the minimum (423 with
    /// Min-Expires).
    #[error("Interval Too Brief")]
    IntervalTooBrief {
        /// What the 423 names as Min-Expires.
        min: u32,
    },
    /// A Contact that does not parse (400).
    #[error("unparsable Contact")]
    BadContact,
}

/// Registrations by default IMPU, every IMPU of a set pointing at the set's key, and the
/// profiles of unregistered users served (SAR UNREGISTERED_USER, TS 24.229 §5.4.3.3).
#[derive(Debug)]
pub struct RegistrarCore {
    limits: Limits,
    /// Default IMPU (canonical) -> registration.
    regs: HashMap<String, Registration>,
    /// Any IMPU of a set (canonical) -> the set's key.
    aliases: HashMap<String, String>,
    unreg_profiles: HashMap<String, ImsSubscription>,
}

impl RegistrarCore {
    /// An empty registrar with the lab's `[registrar]` limits.
    pub fn new(limits: Limits) -> RegistrarCore {
        RegistrarCore {
            limits,
            regs: HashMap::new(),
            aliases: HashMap::new(),
            unreg_profiles: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Registered sets.
    pub fn len(&self) -> usize {
        self.regs.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }

    /// The registration a public identity belongs to, if registered.
    pub fn get(&self, impu: &str) -> Option<&Registration> {
        let key = crate::store::canonical_identity(impu).ok()?;
        let key = self.aliases.get(&key)?;
        self.regs.get(key)
    }

    /// Up to `limit` registrations by default IMPU, sorted, and how many there are in all.
    pub fn list(&self, limit: usize) -> (Vec<Registration>, usize) {
        let mut keys: Vec<&String> = self.regs.keys().collect();
        keys.sort();
        let out = keys
            .into_iter()
            .take(limit)
            .filter_map(|k| self.regs.get(k).cloned())
            .collect();
        (out, self.regs.len())
    }

    /// The expiry granted to a REGISTER (RFC 3261 §10.3 steps 7–8): the one asked for (the
    /// first Contact's `expires`, else Expires, else the default), cut to the maximum; below
    /// the minimum (and not 0) it is refused.
    pub fn granted_expires(&self, req: &Request) -> Result<u32, RegistrarError> {
        granted_expires(&self.limits, req)
    }

    /// Registration or re-registration (TS 24.229 §5.4.1.2.2): the set `existing` (as it was
    /// when the SAR went out) with the REGISTER's contacts added or refreshed — each for its
    /// own `expires` parameter, else the Expires header, else the default, cut to the maximum
    /// (RFC 3261 §10.3 step 7); a contact with 0 is removed — recorded
    /// with the REGISTER's Path, Call-ID and CSeq. `profile` is the SAA's (None keeps the
    /// one held). Stored and returned; a Contact that does not parse stores nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn save(
        &mut self,
        now: Instant,
        req: &Request,
        impi: &str,
        impu: &str,
        existing: Option<Registration>,
        profile: Option<ImsSubscription>,
    ) -> Result<Registration, RegistrarError> {
        let profile = profile.or_else(|| existing.as_ref().and_then(|r| r.profile.clone()));
        let impus = implicit_set(profile.as_ref(), impu);
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
                return Err(RegistrarError::BadContact);
            };
            // Each contact its own expiry: its parameter, else the Expires header, else the
            // default (RFC 3261 §10.3 step 7).
            let exp = crate::cscf::contact_expires(c, crate::cscf::header_expires(req))
                .unwrap_or(self.limits.default_expires);
            let exp = exp.min(self.limits.max_expires);
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
        for i in &impus {
            self.aliases.insert(i.clone(), key.clone());
            self.unreg_profiles.remove(i);
        }
        self.regs.insert(key, reg.clone());
        Ok(reg)
    }

    /// User-initiated de-registration (TS 24.229 §5.4.1.4): the set of `impu` with the
    /// REGISTER's contacts removed (all of them for `Contact: *`). Nothing is stored: the
    /// driver drops the set when it is left empty (after SAR USER_DEREGISTRATION) or stores
    /// what is left. None when `impu` is not registered.
    pub fn without_contacts(&self, req: &Request, impu: &str) -> Option<Registration> {
        let mut reg = self.get(impu)?.clone();
        let contacts = req.headers.values("Contact");
        if contacts.iter().any(|c| c.trim() == "*") {
            reg.bindings.clear();
        } else {
            for c in contacts {
                if let Ok(na) = NameAddr::parse(c) {
                    let uri = na.uri.to_string();
                    reg.bindings.retain(|b| b.contact != uri);
                }
            }
        }
        Some(reg)
    }

    /// Stores a set under its default IMPU (the aliases are left as they are).
    pub fn store(&mut self, reg: Registration) {
        if let Some(key) = reg.impus.first().cloned() {
            self.regs.insert(key, reg);
        }
    }

    /// Forgets a set and every alias of it.
    pub fn remove(&mut self, reg: &Registration) {
        if let Some(k) = reg.impus.first() {
            self.regs.remove(k);
        }
        for i in &reg.impus {
            self.aliases.remove(i);
        }
    }

    /// Network-initiated expiry (TS 24.229 §5.4.1.5): removes the contacts that lapsed by
    /// `now`; the sets left without any are removed and returned (the driver sends SAR
    /// TIMEOUT_DEREGISTRATION, third-party REGISTERs and NOTIFYs for them).
    pub fn sweep(&mut self, now: Instant) -> Vec<Registration> {
        let mut lapsed = Vec::new();
        for reg in self.regs.values_mut() {
            reg.bindings.retain(|b| b.expires_at > now);
            if reg.bindings.is_empty() {
                lapsed.push(reg.clone());
            }
        }
        for reg in &lapsed {
            self.remove(reg);
        }
        self.regs.shrink_when_sparse();
        lapsed
    }

    /// Registrations of a private identity, or of any of the listed public identities
    /// (RTR and PPR, TS 29.228 §6.1.3, §6.1.4).
    pub fn of(&self, impi: &str, impus: &[String]) -> Vec<Registration> {
        let wanted: Vec<String> = impus
            .iter()
            .filter_map(|i| crate::store::canonical_identity(i).ok())
            .collect();
        self.regs
            .values()
            .filter(|r| {
                if impus.is_empty() {
                    r.impi.eq_ignore_ascii_case(impi)
                } else {
                    wanted.iter().any(|i| r.impus.contains(i))
                }
            })
            .cloned()
            .collect()
    }

    /// The profile of an unregistered user fetched with SAR UNREGISTERED_USER, if held.
    pub fn unregistered_profile(&self, impu: &str) -> Option<&ImsSubscription> {
        self.unreg_profiles.get(impu)
    }

    /// Keeps the profile of an unregistered user.
    pub fn keep_unregistered_profile(&mut self, impu: &str, p: ImsSubscription) {
        self.unreg_profiles.insert(impu.to_string(), p);
    }
}

/// The expiry granted to a REGISTER under `limits` ([`RegistrarCore::granted_expires`]).
/// RFC 3261 §10.3 step 7: any contact asking for a non-zero expiry below the minimum gets
/// the whole REGISTER a 423 (Interval Too Brief).
pub fn granted_expires(limits: &Limits, req: &Request) -> Result<u32, RegistrarError> {
    let header = crate::cscf::header_expires(req);
    let too_brief = |e: u32| e != 0 && e < limits.min_expires;
    let contacts = req.headers.values("Contact");
    if header.is_some_and(too_brief)
        || contacts
            .iter()
            .filter_map(|c| crate::cscf::contact_expires(c, header))
            .any(too_brief)
    {
        return Err(RegistrarError::IntervalTooBrief {
            min: limits.min_expires,
        });
    }
    let expires = crate::cscf::requested_expires(req).unwrap_or(limits.default_expires);
    Ok(expires.min(limits.max_expires))
}

/// The implicit registration set of `impu` (TS 29.228 §6.1.2): the unbarred identities of
/// the service profile that holds it, with `impu` first when the profile does not name it.
pub fn implicit_set(profile: Option<&ImsSubscription>, impu: &str) -> Vec<String> {
    let mut impus: Vec<String> = profile
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
    impus
}

/// The 200 OK to a REGISTER (TS 24.229 §5.4.1.2.2 step 8, RFC 3261 §10.3 step 8): every
/// binding with the seconds it has left at `now`, the Path echoed with `Require: path`
/// (RFC 3327), our `Service-Route` (RFC 3608), P-Associated-URI (RFC 3455).
pub fn ok_response(
    req: &Request,
    reg: Option<&Registration>,
    now: Instant,
    service_route: &str,
) -> Response {
    let mut r = req.response(200, Some("OK"));
    r.ensure_to_tag();
    let Some(reg) = reg else { return r };
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
    // RFC 5626 §6: the registration kept its outbound flow (reg-id through an `ob` Path,
    // or 439 before this).
    let outbound = req
        .headers
        .values("Contact")
        .iter()
        .filter_map(|c| NameAddr::parse(c).ok())
        .any(|na| na.params.has("reg-id"));
    if outbound {
        r.headers.push("Require", "outbound");
    }
    r.headers.push("Service-Route", service_route);
    let assoc: Vec<String> = reg.impus.iter().map(|i| format!("<{i}>")).collect();
    if !assoc.is_empty() {
        r.headers.push("P-Associated-URI", assoc.join(", "));
    }
    r.headers.push("Supported", "path");
    r
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::cscf::scscf) fn parse(text: &str) -> Request {
        let text = text.replace('\n', "\r\n");
        match crate::sip::SipMessage::parse(text.as_bytes()) {
            Ok(crate::sip::SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    pub(in crate::cscf::scscf) fn register(contacts: &[&str], expires: Option<u32>) -> Request {
        let mut t = String::from(
            "REGISTER sip:ims.lab SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKreg1\n\
             From: <sip:alice@ims.lab>;tag=a1\n\
             To: <sip:alice@ims.lab>\n\
             Call-ID: reg-1\n\
             CSeq: 7 REGISTER\n\
             Path: <sip:term@127.0.0.1:5060;lr>\n",
        );
        for c in contacts {
            t.push_str(&format!("Contact: {c}\n"));
        }
        if let Some(e) = expires {
            t.push_str(&format!("Expires: {e}\n"));
        }
        t.push_str("Content-Length: 0\n\n");
        parse(&t)
    }

    fn limits() -> Limits {
        Limits {
            default_expires: 600,
            min_expires: 60,
            max_expires: 3600,
        }
    }

    const ALICE: &str = "sip:alice@ims.lab";

    fn saved(core: &mut RegistrarCore, now: Instant, req: &Request) -> Registration {
        core.granted_expires(req).unwrap();
        let existing = core.get(ALICE).cloned();
        core.save(now, req, "alice@ims.lab", ALICE, existing, None)
            .unwrap()
    }

    #[test]
    fn a_contact_lapses_at_its_expiry_and_a_reregistration_refreshes_it() {
        let t0 = Instant::now();
        let mut core = RegistrarCore::new(limits());
        let req = register(&["<sip:alice@10.0.0.1:5062>"], Some(600));
        let reg = saved(&mut core, t0, &req);
        assert_eq!(reg.bindings.len(), 1);
        assert_eq!(reg.bindings[0].expires_at, t0 + Duration::from_secs(600));
        assert_eq!(reg.bindings[0].path, vec!["<sip:term@127.0.0.1:5060;lr>"]);
        assert_eq!(
            (reg.bindings[0].call_id.as_str(), reg.bindings[0].cseq),
            ("reg-1", 7)
        );

        // One second before its expiry it is still there; at its expiry it lapses.
        assert!(core.sweep(t0 + Duration::from_secs(599)).is_empty());
        assert!(core.get(ALICE).is_some());

        // Re-registered at t0+500: now good until t0+1100, still one binding.
        let t1 = t0 + Duration::from_secs(500);
        let reg = saved(&mut core, t1, &req);
        assert_eq!(reg.bindings.len(), 1);
        assert_eq!(reg.bindings[0].updated, t1);
        assert!(core.sweep(t0 + Duration::from_secs(600)).is_empty());
        assert!(core.sweep(t0 + Duration::from_secs(1099)).is_empty());

        let lapsed = core.sweep(t0 + Duration::from_secs(1100));
        assert_eq!(lapsed.len(), 1);
        assert_eq!(lapsed[0].impus, vec![ALICE.to_string()]);
        assert!(core.get(ALICE).is_none());
        assert_eq!(core.len(), 0);
    }

    #[test]
    fn each_contact_lapses_on_its_own() {
        let t0 = Instant::now();
        let mut core = RegistrarCore::new(limits());
        let req = register(
            &[
                "<sip:alice@10.0.0.2:5062>;expires=600",
                "<sip:alice@10.0.0.1:5062>;expires=120",
            ],
            Some(600),
        );
        saved(&mut core, t0, &req);
        assert!(core.sweep(t0 + Duration::from_secs(120)).is_empty());
        let left = &core.get(ALICE).unwrap().bindings;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].contact, "sip:alice@10.0.0.2:5062");
    }

    #[test]
    fn expires_zero_removes_the_contact_and_an_empty_set_is_for_the_driver_to_drop() {
        let t0 = Instant::now();
        let mut core = RegistrarCore::new(limits());
        saved(
            &mut core,
            t0,
            &register(
                &["<sip:alice@10.0.0.1:5062>", "<sip:alice@10.0.0.2:5062>"],
                None,
            ),
        );
        let dereg = register(&["<sip:alice@10.0.0.1:5062>"], Some(0));
        assert_eq!(core.granted_expires(&dereg), Ok(0));
        let left = core.without_contacts(&dereg, ALICE).unwrap();
        assert_eq!(left.bindings.len(), 1);
        core.store(left);
        assert_eq!(core.get(ALICE).unwrap().bindings.len(), 1);

        let all = register(&["*"], Some(0));
        let left = core.without_contacts(&all, ALICE).unwrap();
        assert!(left.bindings.is_empty());
        core.remove(&left);
        assert!(core.get(ALICE).is_none());
        assert!(core.without_contacts(&all, ALICE).is_none());
    }

    #[test]
    fn a_contact_with_expires_zero_in_a_registration_is_removed() {
        let t0 = Instant::now();
        let mut core = RegistrarCore::new(limits());
        saved(
            &mut core,
            t0,
            &register(&["<sip:alice@10.0.0.1:5062>"], None),
        );
        let req = register(
            &[
                "<sip:alice@10.0.0.9:5062>;expires=600",
                "<sip:alice@10.0.0.1:5062>;expires=0",
            ],
            Some(600),
        );
        let reg = saved(&mut core, t0, &req);
        let contacts: Vec<&str> = reg.bindings.iter().map(|b| b.contact.as_str()).collect();
        assert_eq!(contacts, vec!["sip:alice@10.0.0.9:5062"]);
        // A Contact without a parameter gets the Expires header (RFC 3261 §10.3 step 7), not
        // another Contact's parameter: this REGISTER keeps one binding and drops the other.
        let req = register(
            &[
                "<sip:alice@10.0.0.9:5062>",
                "<sip:alice@10.0.0.1:5062>;expires=0",
            ],
            Some(600),
        );
        assert_eq!(core.granted_expires(&req), Ok(600));
        assert!(!crate::cscf::is_deregistration(&req));
        let reg = saved(&mut core, t0, &req);
        let kept: Vec<(&str, Instant)> = reg
            .bindings
            .iter()
            .map(|b| (b.contact.as_str(), b.expires_at))
            .collect();
        assert_eq!(
            kept,
            vec![("sip:alice@10.0.0.9:5062", t0 + Duration::from_secs(600))]
        );
        // Every contact asking 0 is a de-registration.
        let req = register(
            &[
                "<sip:alice@10.0.0.9:5062>;expires=0",
                "<sip:alice@10.0.0.1:5062>",
            ],
            Some(0),
        );
        assert!(crate::cscf::is_deregistration(&req));
    }

    #[test]
    fn expiry_is_granted_within_the_limits() {
        let core = RegistrarCore::new(limits());
        let c = ["<sip:alice@10.0.0.1:5062>"];
        assert_eq!(core.granted_expires(&register(&c, None)), Ok(600));
        assert_eq!(core.granted_expires(&register(&c, Some(99_999))), Ok(3600));
        assert_eq!(
            core.granted_expires(&register(&c, Some(30))),
            Err(RegistrarError::IntervalTooBrief { min: 60 })
        );
        // The contact's own expires wins over the header.
        let c = ["<sip:alice@10.0.0.1:5062>;expires=30"];
        assert_eq!(
            core.granted_expires(&register(&c, Some(600))),
            Err(RegistrarError::IntervalTooBrief { min: 60 })
        );
    }

    #[test]
    fn an_unparsable_contact_stores_nothing() {
        let mut core = RegistrarCore::new(limits());
        let req = register(&["<not a uri"], Some(600));
        assert_eq!(
            core.save(Instant::now(), &req, "alice@ims.lab", ALICE, None, None)
                .unwrap_err(),
            RegistrarError::BadContact
        );
        assert_eq!(core.len(), 0);
    }

    #[test]
    fn the_200_ok_carries_the_time_left_path_service_route_and_associated_uris() {
        let t0 = Instant::now();
        let mut core = RegistrarCore::new(limits());
        let req = register(&["<sip:alice@10.0.0.1:5062>;+g.oma.sip-im"], Some(600));
        let reg = saved(&mut core, t0, &req);
        let ok = ok_response(
            &req,
            Some(&reg),
            t0 + Duration::from_millis(100_500),
            "<sip:orig@127.0.0.1:5080;lr>",
        );
        assert_eq!(ok.status, 200);
        assert!(ok.headers.get("To").unwrap().contains("tag="));
        assert_eq!(
            ok.headers.get("Contact"),
            Some("<sip:alice@10.0.0.1:5062>;+g.oma.sip-im;expires=500")
        );
        assert_eq!(ok.headers.get("Path"), Some("<sip:term@127.0.0.1:5060;lr>"));
        assert_eq!(ok.headers.get("Require"), Some("path"));
        assert_eq!(
            ok.headers.get("Service-Route"),
            Some("<sip:orig@127.0.0.1:5080;lr>")
        );
        assert_eq!(
            ok.headers.get("P-Associated-URI"),
            Some("<sip:alice@ims.lab>")
        );
        assert_eq!(ok.headers.get("Supported"), Some("path"));
        // Nothing registered: a bare 200.
        let bare = ok_response(&req, None, t0, "<x>");
        assert!(bare.headers.get("Service-Route").is_none());
    }
}
