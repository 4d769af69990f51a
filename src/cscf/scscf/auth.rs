//! The S-CSCF's authentication core (TS 24.229 §5.4.1.2.1, TS 33.203 §6.1): which scheme a
//! Multimedia-Auth-Request asks for (TS 29.228 §6.3.9 SIP-Authentication-Scheme), the 401
//! challenge built from the MAA — SIP Digest (RFC 2617, qop=auth), AKAv1-MD5 (RFC 3310), or a
//! decoy for an identity the HSS does not know — and the check of the answer against the
//! stored challenge: ok, challenge again (stale nonce, or a first wrong answer), AKA
//! re-synchronisation, 403, or a block. No sockets and no clock: `now` is passed in; the
//! driver sends the MAR and the responses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::auth::digest::{self, Challenge, Credentials};
use crate::cscf::auth_guard::{AuthGuard, AuthLimits, Verdict};
use crate::cscf::nonces::NonceTable;
use crate::diameter::cx::{self, CxResult, MultimediaAuthAnswer};
use crate::sip::{NameAddr, Request};

use super::{SCHEME_AKA, SCHEME_DIGEST, SCHEME_UNKNOWN};

/// How long a challenge stays valid, and how long a digest nonce may be reused.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Challenges outstanding per private identity: a new one past this replaces the oldest, so a
/// client that REGISTERs over and over without answering cannot grow the nonce table.
const MAX_NONCES_PER_IMPI: usize = 8;

/// What every refused authentication says to the client, whatever the reason: the reason
/// would tell an attacker which users exist and what went wrong.
pub const AUTH_FAILED: &str = "authentication failed";

/// The secret behind a challenge.
#[derive(Debug, Clone)]
pub enum Vector {
    /// SIP Digest: H(A1) from the HSS.
    Digest {
        /// Lowercase hex.
        ha1: String,
    },
    /// AKA: the RAND sent and the XRES expected.
    Aka {
        /// RAND.
        rand: [u8; 16],
        /// XRES.
        xres: Vec<u8>,
    },
    /// The challenge sent for an identity the HSS does not know (or an IMPU that is not the
    /// IMPI's): it looks like any other, and no answer to it is right, so an unknown user gets
    /// the same 401, 401, 403 as a known one with a wrong password (TS 33.203 §6.1: the
    /// answer must not tell which users exist).
    Decoy,
}

/// A challenge sent and not yet answered (or a digest nonce that may be reused).
#[derive(Debug, Clone)]
pub struct PendingAuth {
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

impl crate::cscf::nonces::Challenge for PendingAuth {
    fn impi(&self) -> &str {
        &self.impi
    }
    fn created(&self) -> Instant {
        self.created
    }
}

/// The verdict on a REGISTER's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated.
    Ok,
    /// 401 with a new challenge (`stale=true` when only the nonce was at fault).
    Challenge {
        /// RFC 2617 §3.2.1 stale.
        stale: bool,
    },
    /// AKA re-synchronisation: a new MAR carrying RAND||AUTS (TS 33.203 §6.1.2).
    Resync {
        /// The RAND of the challenge answered.
        rand: [u8; 16],
        /// The UE's AUTS.
        auts: [u8; 14],
    },
    /// 403; the reason goes to the log and the trace, never to the client.
    Reject(String),
    /// 403 with Retry-After.
    Blocked(Duration),
}

/// Why no 401 can be built from an MAA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The HSS refused with a result other than the ones a decoy answers (403).
    #[error("{AUTH_FAILED}")]
    Refused(CxResult),
    /// Success without any SIP-Auth-Data-Item (500).
    #[error("MAA without SIP-Auth-Data-Item")]
    NoItem,
    /// An item with neither Digest nor AKA data (500).
    #[error("MAA item has neither digest nor AKA data")]
    NoVector,
    /// SIP-Authenticate is not the 32 octets RAND||AUTN (500).
    #[error("SIP-Authenticate is not RAND||AUTN")]
    BadAuthenticate,
}

/// The SIP-Authentication-Scheme a MAR asks for: the algorithm the UE named, else the lab's
/// default (`aka`, `digest`), else "let the HSS choose".
pub fn scheme_for(hint: Option<&str>, default_scheme: &str) -> &'static str {
    match hint.map(|h| h.to_ascii_lowercase()) {
        Some(h) if h.starts_with("akav1") => SCHEME_AKA,
        Some(h) if h == "md5" => SCHEME_DIGEST,
        _ => match default_scheme {
            "aka" => SCHEME_AKA,
            "digest" => SCHEME_DIGEST,
            _ => SCHEME_UNKNOWN,
        },
    }
}

/// A challenge built from an MAA, with what a decoy is for (log and trace only).
#[derive(Debug, Clone)]
pub struct Built {
    /// The WWW-Authenticate to send.
    pub challenge: Challenge,
    /// What the answer is checked against.
    pub vector: Vector,
    /// Why it is a decoy, if it is one.
    pub decoy: Option<&'static str>,
}

/// Builds the 401's challenge from the MAA (TS 24.229 §5.4.1.2.1, TS 29.228 §6.3.13): a
/// Digest challenge in the HSS's realm, an AKA one with RAND||AUTN as nonce and CK/IK, or —
/// for an IMPI the HSS does not know, identities that do not belong together or a scheme it
/// refuses — a decoy as real as the real ones.
pub fn build_challenge(
    maa: MultimediaAuthAnswer,
    scheme: &str,
    domain: &str,
    stale: bool,
) -> Result<Built, ChallengeError> {
    let decoy = match maa.result {
        CxResult::Base(2001) => None,
        CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN) => {
            Some("the HSS does not know this private identity")
        }
        CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITIES_DONT_MATCH) => {
            Some("the private identity does not own the public one")
        }
        CxResult::Experimental(cx::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED) => {
            Some("the HSS does not support this scheme for the user")
        }
        other => return Err(ChallengeError::Refused(other)),
    };
    let aka_wanted = scheme == SCHEME_AKA;
    let mut built = if let Some(why) = decoy {
        // As real as the real ones: the realm, the nonce's form and the algorithm of the
        // scheme asked for.
        let nonce = if aka_wanted {
            digest::aka_nonce(&rand::random(), &rand::random())
        } else {
            digest::new_nonce()
        };
        Built {
            challenge: Challenge {
                realm: domain.to_string(),
                nonce,
                algorithm: Some(if aka_wanted { "AKAv1-MD5" } else { "MD5" }.into()),
                qop: Some("auth".into()),
                opaque: None,
                stale,
                ck: aka_wanted.then(|| hex::encode(rand::random::<[u8; 16]>())),
                ik: aka_wanted.then(|| hex::encode(rand::random::<[u8; 16]>())),
            },
            vector: Vector::Decoy,
            decoy: Some(why),
        }
    } else {
        let item = maa.items.into_iter().next().ok_or(ChallengeError::NoItem)?;
        if let Some(d) = item.digest.clone() {
            Built {
                challenge: Challenge {
                    realm: d.realm.clone(),
                    nonce: digest::new_nonce(),
                    algorithm: Some("MD5".into()),
                    qop: Some(d.qop.clone().unwrap_or_else(|| "auth".into())),
                    opaque: None,
                    stale,
                    ck: None,
                    ik: None,
                },
                vector: Vector::Digest { ha1: d.ha1 },
                decoy: None,
            }
        } else {
            let (Some(auth), Some(xres)) = (item.authenticate, item.authorization) else {
                return Err(ChallengeError::NoVector);
            };
            if auth.len() != 32 {
                return Err(ChallengeError::BadAuthenticate);
            }
            let mut rand = [0u8; 16];
            let mut autn = [0u8; 16];
            rand.copy_from_slice(&auth[..16]);
            autn.copy_from_slice(&auth[16..]);
            Built {
                challenge: Challenge {
                    realm: domain.to_string(),
                    nonce: digest::aka_nonce(&rand, &autn),
                    algorithm: Some("AKAv1-MD5".into()),
                    qop: Some("auth".into()),
                    opaque: None,
                    stale,
                    ck: item.confidentiality_key.as_ref().map(hex::encode),
                    ik: item.integrity_key.as_ref().map(hex::encode),
                },
                vector: Vector::Aka { rand, xres },
                decoy: None,
            }
        }
    };
    if built.challenge.realm.is_empty() {
        built.challenge.realm = domain.to_string();
    }
    Ok(built)
}

/// True when a challenge is AKAv1-MD5.
pub fn is_aka(ch: &Challenge) -> bool {
    ch.algorithm
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case("AKAv1-MD5"))
}

/// Outstanding challenges and failure counts.
pub struct Authenticator {
    domain: String,
    pending: NonceTable<PendingAuth>,
    guard: AuthGuard,
}

impl Authenticator {
    /// For the home `domain`, with the lab's failure limits.
    pub fn new(domain: &str, limits: AuthLimits) -> Authenticator {
        Authenticator {
            domain: domain.to_string(),
            pending: NonceTable::default(),
            guard: AuthGuard::new(limits),
        }
    }

    /// Outstanding challenges.
    pub fn challenges(&self) -> usize {
        self.pending.len()
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

    /// How long this IMPI or address stays blocked, if it is.
    pub fn blocked(
        &self,
        impi: &str,
        source: Option<SocketAddr>,
        now: Instant,
    ) -> Option<Duration> {
        self.guard.blocked(&self.guard_key(impi), source, now)
    }

    /// An authenticated REGISTER: the IMPI's failure count starts again.
    pub fn success(&mut self, impi: &str) {
        let k = self.guard_key(impi);
        self.guard.success(&k);
    }

    /// Remembers a challenge sent at `now` to `impi` / `impu`.
    pub fn issue(&mut self, now: Instant, impi: &str, impu: &str, built: &Built) {
        self.pending.insert(
            built.challenge.nonce.clone(),
            PendingAuth {
                impi: impi.to_string(),
                impu: impu.to_string(),
                vector: built.vector.clone(),
                realm: built.challenge.realm.clone(),
                algorithm: if is_aka(&built.challenge) {
                    "AKAv1-MD5"
                } else {
                    "MD5"
                },
                created: now,
                last_nc: 0,
                authenticated: false,
            },
            MAX_NONCES_PER_IMPI,
        );
    }

    /// Forgets lapsed challenges and quiet failure counts.
    pub fn sweep(&mut self, now: Instant) {
        self.pending.expire(now, NONCE_LIFETIME);
        self.guard.sweep(now);
    }

    /// Checks a REGISTER's credentials against the stored challenge (TS 24.229 §5.4.1.2.1,
    /// RFC 2617 §3.2.2, RFC 3310 §3.3–3.4). A failed answer spends its nonce (one guess per
    /// challenge) and counts against the IMPI and `source`.
    pub fn check(
        &mut self,
        now: Instant,
        req: &Request,
        impi: &str,
        impu: &str,
        c: &Credentials,
        source: Option<SocketAddr>,
    ) -> AuthOutcome {
        let Some(p) = self.pending.get(&c.nonce).cloned() else {
            tracing::info!(%impi, "nonce unknown or expired (stale); sending a fresh challenge");
            return AuthOutcome::Challenge { stale: true };
        };
        if now.duration_since(p.created) > NONCE_LIFETIME {
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
                self.pending.remove(&c.nonce);
                return self.fail(
                    now,
                    impi,
                    source,
                    &format!("the answer does not fit its challenge: {why}"),
                );
            }
        }
        match &p.vector {
            Vector::Decoy => {
                self.pending.remove(&c.nonce);
                // The same work as a real check, then the same failure.
                let _ = digest::verify(c, &digest::ha1_hex(&c.username, &c.realm, b""), method);
                self.fail(now, impi, source, "no such user (decoy challenge answered)")
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
                    if let Some(e) = self.pending.get_mut(&c.nonce) {
                        e.authenticated = true;
                        e.last_nc = nc;
                    }
                    AuthOutcome::Ok
                } else {
                    self.pending.remove(&c.nonce);
                    self.fail(
                        now,
                        impi,
                        source,
                        "wrong password (SIP Digest response does not match the HA1 from the HSS)",
                    )
                }
            }
            Vector::Aka { rand, xres } => {
                if let Some(auts) = c.auts.as_deref() {
                    self.pending.remove(&c.nonce);
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
                    self.pending.remove(&c.nonce);
                    return AuthOutcome::Ok;
                }
                let empty = digest::ha1_hex(&c.username, &c.realm, b"");
                self.pending.remove(&c.nonce);
                if digest::verify(c, &empty, method) {
                    // RFC 3310 §3.3: the UE could not verify AUTN and answered with an empty
                    // password.
                    crate::warn_limited!("scscf.auth.mac_failure", %impi, "authentication failed: the UE rejected the network's AUTN (MAC mismatch: K or OPc differ between UE and HSS)");
                    return AuthOutcome::Reject("UE reported MAC failure".into());
                }
                self.fail(now, impi, source, "RES mismatch (the UE's AKA response does not match XRES: wrong K/OPc on one side)")
            }
        }
    }

    /// A failed answer: counted per IMPI and per address ([`crate::cscf::auth_guard`]); one
    /// more challenge, a 403, or a block.
    fn fail(
        &mut self,
        now: Instant,
        impi: &str,
        source: Option<SocketAddr>,
        why: &str,
    ) -> AuthOutcome {
        let key = self.guard_key(impi);
        let verdict = self.guard.failure(&key, source, now);
        let from = source.map_or("?".to_string(), |s| s.to_string());
        match verdict {
            Verdict::Rechallenge => {
                crate::warn_limited!("scscf.auth.rechallenge", %impi, %from, "authentication failed: {why}; challenging once more");
                AuthOutcome::Challenge { stale: false }
            }
            Verdict::Reject => {
                crate::warn_limited!("scscf.auth.rejected", %impi, %from, "authentication failed: {why}; 403");
                AuthOutcome::Reject(format!(
                    "authentication failed: {}",
                    why.split(" (").next().unwrap_or(why)
                ))
            }
            Verdict::Blocked(d) => {
                crate::warn_limited!("scscf.auth.blocked", %impi, %from, secs = d.as_secs(), "authentication failed: {why}; blocked (403 with Retry-After)");
                AuthOutcome::Blocked(d)
            }
        }
    }
}

/// The UE's address as the P-CSCF saw it: the bottom Via's `received` and `rport` (or its
/// sent-by when the P-CSCF had no need to add them). The P-CSCF is in the trust domain and
/// stamps them.
pub fn ue_source(req: &Request) -> Option<SocketAddr> {
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
    Some(SocketAddr::new(ip, port))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cscf::scscf::registrar::tests::register;
    use crate::diameter::cx::{SipAuthDataItem, SipDigestAuthenticate};

    const IMPI: &str = "alice@ims.lab";
    const IMPU: &str = "sip:alice@ims.lab";
    const PASSWORD: &[u8] = b"alice-secret";

    fn maa(result: CxResult, items: Vec<SipAuthDataItem>) -> MultimediaAuthAnswer {
        MultimediaAuthAnswer {
            session_id: "s".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            result,
            user_name: None,
            public_identity: None,
            number_auth_items: None,
            items,
        }
    }

    fn digest_maa() -> MultimediaAuthAnswer {
        maa(
            CxResult::Base(2001),
            vec![SipAuthDataItem {
                scheme: SCHEME_DIGEST.into(),
                digest: Some(SipDigestAuthenticate {
                    realm: "ims.lab".into(),
                    qop: Some("auth".into()),
                    ha1: digest::ha1_hex(IMPI, "ims.lab", PASSWORD),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
    }

    fn answer(ch: &Challenge, password: &[u8], nc: &str) -> Credentials {
        let uri = "sip:ims.lab";
        let ha1 = digest::ha1_hex(IMPI, &ch.realm, password);
        let response = digest::response_hex(
            &ha1,
            &ch.nonce,
            Some(nc),
            Some("c0ffee"),
            Some("auth"),
            "REGISTER",
            uri,
        );
        Credentials {
            username: IMPI.into(),
            realm: ch.realm.clone(),
            nonce: ch.nonce.clone(),
            uri: uri.into(),
            response,
            algorithm: Some("MD5".into()),
            cnonce: Some("c0ffee".into()),
            nc: Some(nc.into()),
            qop: Some("auth".into()),
            opaque: None,
            auts: None,
        }
    }

    fn challenged(a: &mut Authenticator, now: Instant) -> Challenge {
        let built = build_challenge(digest_maa(), SCHEME_DIGEST, "ims.lab", false).unwrap();
        a.issue(now, IMPI, IMPU, &built);
        built.challenge
    }

    #[test]
    fn a_right_digest_answer_authenticates_and_its_nonce_may_be_reused_with_a_higher_nc() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let ch = challenged(&mut a, t0);
        let req = register(&["<sip:alice@10.0.0.1:5062>"], None);
        let ok = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, PASSWORD, "00000001"),
            None,
        );
        assert_eq!(ok, AuthOutcome::Ok);
        let again = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, PASSWORD, "00000002"),
            None,
        );
        assert_eq!(again, AuthOutcome::Ok);
        // A replayed nonce count gets a fresh challenge, stale.
        let replay = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, PASSWORD, "00000002"),
            None,
        );
        assert_eq!(replay, AuthOutcome::Challenge { stale: true });
    }

    #[test]
    fn a_wrong_answer_gets_one_more_challenge_then_403() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let req = register(&["<sip:alice@10.0.0.1:5062>"], None);
        let ch = challenged(&mut a, t0);
        let first = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, b"wrong", "00000001"),
            None,
        );
        assert_eq!(first, AuthOutcome::Challenge { stale: false });
        // The failed nonce is spent: the same answer again is only stale.
        let spent = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, b"wrong", "00000001"),
            None,
        );
        assert_eq!(spent, AuthOutcome::Challenge { stale: true });
        let ch = challenged(&mut a, t0);
        let second = a.check(
            t0,
            &req,
            IMPI,
            IMPU,
            &answer(&ch, b"wrong", "00000001"),
            None,
        );
        assert_eq!(
            second,
            AuthOutcome::Reject("authentication failed: wrong password".into())
        );
    }

    #[test]
    fn repeated_failures_block_the_impi_until_the_backoff_passes() {
        let t0 = Instant::now();
        let limits = AuthLimits::default();
        let mut a = Authenticator::new("ims.lab", limits);
        let req = register(&["<sip:alice@10.0.0.1:5062>"], None);
        let mut last = AuthOutcome::Ok;
        for _ in 0..limits.max_failures {
            let ch = challenged(&mut a, t0);
            last = a.check(
                t0,
                &req,
                IMPI,
                IMPU,
                &answer(&ch, b"wrong", "00000001"),
                None,
            );
        }
        assert_eq!(last, AuthOutcome::Blocked(limits.backoff));
        // Counted under one key whatever the spelling of the IMPI.
        assert_eq!(a.blocked("ALICE", None, t0), Some(limits.backoff));
        assert_eq!(a.blocked(IMPI, None, t0 + limits.backoff), None);
    }

    #[test]
    fn a_nonce_past_its_lifetime_or_unknown_is_stale() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let req = register(&["<sip:alice@10.0.0.1:5062>"], None);
        let ch = challenged(&mut a, t0);
        let late = t0 + NONCE_LIFETIME + Duration::from_secs(1);
        let c = answer(&ch, PASSWORD, "00000001");
        assert_eq!(
            a.check(late, &req, IMPI, IMPU, &c, None),
            AuthOutcome::Challenge { stale: true }
        );
        // Swept at that time, it is unknown: still stale, never a failure.
        a.sweep(late);
        assert_eq!(a.challenges(), 0);
        assert_eq!(
            a.check(late, &req, IMPI, IMPU, &c, None),
            AuthOutcome::Challenge { stale: true }
        );
        // A nonce issued to someone else is stale too.
        let ch = challenged(&mut a, t0);
        let c = answer(&ch, PASSWORD, "00000001");
        assert_eq!(
            a.check(t0, &req, IMPI, "sip:bob@ims.lab", &c, None),
            AuthOutcome::Challenge { stale: true }
        );
    }

    #[test]
    fn an_unknown_user_gets_a_decoy_that_no_answer_passes() {
        let t0 = Instant::now();
        let unknown = maa(
            CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN),
            vec![],
        );
        let built = build_challenge(unknown, SCHEME_DIGEST, "ims.lab", false).unwrap();
        assert!(matches!(built.vector, Vector::Decoy));
        assert!(built.decoy.is_some());
        assert_eq!(built.challenge.realm, "ims.lab");
        assert_eq!(built.challenge.algorithm.as_deref(), Some("MD5"));
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        a.issue(t0, IMPI, IMPU, &built);
        let req = register(&["<sip:alice@10.0.0.1:5062>"], None);
        let c = answer(&built.challenge, PASSWORD, "00000001");
        assert_eq!(
            a.check(t0, &req, IMPI, IMPU, &c, None),
            AuthOutcome::Challenge { stale: false }
        );
    }

    #[test]
    fn maa_results_map_to_typed_errors_and_schemes_to_hints() {
        let refused = maa(CxResult::Base(5012), vec![]);
        assert_eq!(
            build_challenge(refused, SCHEME_DIGEST, "ims.lab", false).unwrap_err(),
            ChallengeError::Refused(CxResult::Base(5012))
        );
        let empty = maa(CxResult::Base(2001), vec![]);
        let e = build_challenge(empty, SCHEME_DIGEST, "ims.lab", false).unwrap_err();
        assert_eq!(e.to_string(), "MAA without SIP-Auth-Data-Item");
        assert_eq!(scheme_for(Some("AKAv1-MD5"), "digest"), SCHEME_AKA);
        assert_eq!(scheme_for(Some("MD5"), "aka"), SCHEME_DIGEST);
        assert_eq!(scheme_for(None, "aka"), SCHEME_AKA);
        assert_eq!(scheme_for(None, "whatever"), SCHEME_UNKNOWN);
    }
}
