//! The first decision on a REGISTER at the S-CSCF (TS 24.229 §5.4.1.2): answer at once
//! (400, 423, 403, 403 with Retry-After), send a MAR and challenge (401, §5.4.1.2.1, also
//! again after a stale nonce or a first wrong answer, and for AKA re-synchronisation), or go
//! on as authenticated to the SAR and the 200 (§5.4.1.2.2) or the de-registration
//! (§5.4.1.4). Socket-free: `now` is passed in; the driver does the Cx exchanges.
//!
//! ```text
//!   REGISTER ─> To unparsable ──────────────────────────────> Reply 400
//!            ─> IMPI or UE address blocked ─────────────────> Reply 403 + Retry-After
//!            ─> Expires below the minimum ──────────────────> Reply 423 + Min-Expires
//!            ─> no usable credentials ──────────────────────> Challenge (MAR, 401)
//!            ─> credentials checked ─┬─ stale / 1st failure ─> Challenge (stale=…)
//!                                    ├─ AUTS ────────────────> Challenge (MAR with AUTS)
//!                                    ├─ 2nd failure, MAC ────> Reply 403
//!                                    ├─ too many failures ───> Reply 403 + Retry-After
//!                                    └─ ok ──────────────────> Authenticated (SAR)
//! ```

use std::time::Instant;

use super::auth::{self, AuthOutcome, Authenticator, AUTH_FAILED};
use super::registrar::{self, RegistrarError};
use super::{blocked, reject};
use crate::auth::digest::Credentials;
use crate::config::Registrar as Limits;
use crate::sip::{NameAddr, Request, Response};

/// What the driver does with a REGISTER.
#[derive(Debug)]
pub enum RegisterStep {
    /// Send this answer; `note` goes to the trace.
    Reply {
        /// The response.
        response: Response,
        /// What the trace says about it.
        note: Option<String>,
    },
    /// Send a MAR for `impi` / `impu` and answer 401 with the challenge it brings.
    Challenge {
        /// Private identity.
        impi: String,
        /// Public identity.
        impu: String,
        /// The algorithm the UE named, if any.
        hint: Option<String>,
        /// RFC 2617 §3.2.1 stale.
        stale: bool,
        /// RAND||AUTS for an AKA re-synchronisation (TS 29.228 §6.3.13 SIP-Authorization).
        resync: Option<Vec<u8>>,
    },
    /// Authenticated: SAR, then the 200.
    Authenticated {
        /// Private identity.
        impi: String,
        /// Public identity.
        impu: String,
        /// The expiry granted.
        expires: u32,
        /// `Expires: 0` or `Contact: *` (TS 24.229 §5.4.1.4).
        deregister: bool,
    },
}

fn reply(response: Response, note: Option<String>) -> RegisterStep {
    RegisterStep::Reply { response, note }
}

/// RFC 5626 §6: a REGISTER whose Contact asks for an outbound flow (`reg-id`) must come
/// through a first hop that keeps flows: the Path value nearest the UA (the last one) must
/// carry `ob`. Without one the registrar answers 439 (the UE may register without outbound).
/// The trace note says why.
fn lacks_outbound(req: &Request) -> Option<String> {
    let wants = req
        .headers
        .values("Contact")
        .iter()
        .filter_map(|c| NameAddr::parse(c).ok())
        .any(|na| na.params.has("reg-id"));
    if !wants {
        return None;
    }
    let paths = req.headers.values("Path");
    let first_hop = paths.last()?;
    let ob = NameAddr::parse(first_hop)
        .ok()
        .is_some_and(|na| na.uri.param("ob").is_some());
    (!ob).then(|| {
        format!("439: the Contact has reg-id (RFC 5626 outbound) but the first hop's Path {first_hop} has no ;ob")
    })
}

/// The decision on `req` at `now` (TS 24.229 §5.4.1.2). A successful check resets the
/// IMPI's failure count.
pub fn on_register(
    now: Instant,
    req: &Request,
    limits: &Limits,
    auth: &mut Authenticator,
) -> RegisterStep {
    let Some(impu) = req
        .headers
        .get("To")
        .and_then(|t| NameAddr::parse(t).ok())
        .map(|na| na.uri.aor())
    else {
        return reply(
            reject(req, 400, Some("Bad Request"), "unparsable To header"),
            None,
        );
    };
    let impi = crate::cscf::authorization_username(req)
        .or_else(|| crate::store::default_impi(&impu).ok())
        .unwrap_or_else(|| impu.trim_start_matches("sip:").to_string());
    let source = auth::ue_source(req);
    if let Some(d) = auth.blocked(&impi, source, now) {
        let note = format!(
            "403: {impi} (from {}) is blocked for {} s after failed authentications",
            source.map_or("?".to_string(), |s| s.to_string()),
            d.as_secs().max(1)
        );
        return reply(blocked(req, d), Some(note));
    }
    let expires = match registrar::granted_expires(limits, req) {
        Ok(e) => e,
        Err(RegistrarError::IntervalTooBrief { min }) => {
            let mut r = req.response(423, Some("Interval Too Brief"));
            r.headers.push("Min-Expires", min.to_string());
            return reply(r, None);
        }
        Err(e @ RegistrarError::BadContact) => {
            return reply(reject(req, 400, Some("Bad Request"), &e.to_string()), None)
        }
    };
    if let Some(note) = lacks_outbound(req) {
        let mut r = reject(
            req,
            439,
            Some("First Hop Lacks Outbound Support"),
            "reg-id in Contact, but the first hop's Path has no ;ob",
        );
        r.headers.push("Supported", "outbound");
        return reply(r, Some(note));
    }
    let creds = match req.headers.get("Authorization").map(Credentials::parse) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            crate::warn_limited!("scscf.bad_authorization", %impi, error = %e, "unparsable Authorization header; challenging again");
            None
        }
        None => None,
    };
    let hint = creds.as_ref().and_then(|c| c.algorithm.clone());
    let challenge = |impi: String, impu: String, stale: bool| RegisterStep::Challenge {
        impi,
        impu,
        hint: hint.clone(),
        stale,
        resync: None,
    };
    let Some(c) = creds
        .as_ref()
        .filter(|c| !c.response.is_empty() && !c.nonce.is_empty())
    else {
        return challenge(impi, impu, false);
    };
    match auth.check(now, req, &impi, &impu, c, source) {
        AuthOutcome::Ok => {
            auth.success(&impi);
            RegisterStep::Authenticated {
                deregister: crate::cscf::is_deregistration(req),
                impi,
                impu,
                expires,
            }
        }
        AuthOutcome::Challenge { stale } => challenge(impi, impu, stale),
        AuthOutcome::Resync { rand, auts } => {
            let mut authorization = rand.to_vec();
            authorization.extend_from_slice(&auts);
            RegisterStep::Challenge {
                impi,
                impu,
                hint: Some("AKAv1-MD5".into()),
                stale: false,
                resync: Some(authorization),
            }
        }
        AuthOutcome::Reject(why) => reply(
            reject(req, 403, Some("Forbidden"), AUTH_FAILED),
            Some(format!("403: {impi}: {why}")),
        ),
        AuthOutcome::Blocked(d) => reply(
            blocked(req, d),
            Some(format!(
                "403: {impi} failed again: blocked for {} s (per IMPI and per address)",
                d.as_secs().max(1)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest;
    use crate::cscf::auth_guard::AuthLimits;
    use crate::cscf::scscf::registrar::tests::{parse, register};
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            default_expires: 600,
            min_expires: 60,
            max_expires: 3600,
        }
    }

    /// A REGISTER from alice with an Authorization header.
    fn with_auth(authorization: &str, expires: u32) -> Request {
        parse(&format!(
            "REGISTER sip:ims.lab SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr2\n\
             Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKue;received=10.0.0.1;rport=5062\n\
             From: <sip:alice@ims.lab>;tag=a1\n\
             To: <sip:alice@ims.lab>\n\
             Call-ID: reg-2\n\
             CSeq: 8 REGISTER\n\
             Contact: <sip:alice@10.0.0.1:5062>\n\
             Authorization: {authorization}\n\
             Expires: {expires}\n\
             Content-Length: 0\n\n"
        ))
    }

    fn digest_challenge(a: &mut Authenticator, now: Instant, ha1: &str) -> digest::Challenge {
        let built = auth::Built {
            challenge: digest::Challenge {
                realm: "ims.lab".into(),
                nonce: digest::new_nonce(),
                algorithm: Some("MD5".into()),
                qop: Some("auth".into()),
                opaque: None,
                stale: false,
                ck: None,
                ik: None,
            },
            vector: auth::Vector::Digest { ha1: ha1.into() },
            decoy: None,
        };
        a.issue(now, "alice@ims.lab", "sip:alice@ims.lab", &built);
        built.challenge
    }

    fn authorization(ch: &digest::Challenge, password: &[u8]) -> String {
        let ha1 = digest::ha1_hex("alice@ims.lab", &ch.realm, password);
        let response = digest::response_hex(
            &ha1,
            &ch.nonce,
            Some("00000001"),
            Some("c0ffee"),
            Some("auth"),
            "REGISTER",
            "sip:ims.lab",
        );
        format!(
            "Digest username=\"alice@ims.lab\", realm=\"ims.lab\", nonce=\"{}\", uri=\"sip:ims.lab\", response=\"{response}\", algorithm=MD5, cnonce=\"c0ffee\", qop=auth, nc=00000001",
            ch.nonce
        )
    }

    /// RFC 5626 §6: reg-id through a first hop whose Path has no `ob` gets 439; with `ob`
    /// (the P-CSCF's Path for a WebSocket flow) it goes on to the challenge; a Contact
    /// without reg-id never gets 439.
    #[test]
    fn reg_id_without_an_outbound_first_hop_gets_439() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let req = |path: &str, contact: &str| {
            parse(&format!(
                "REGISTER sip:ims.lab SIP/2.0\n\
                 Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKo1\n\
                 Path: {path}\n\
                 From: <sip:alice@ims.lab>;tag=a1\n\
                 To: <sip:alice@ims.lab>\n\
                 Call-ID: reg-ob\n\
                 CSeq: 1 REGISTER\n\
                 Contact: {contact}\n\
                 Expires: 600\n\
                 Content-Length: 0\n\n"
            ))
        };
        let outbound = "<sip:x@y.invalid;transport=ws>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"";
        match on_register(
            t0,
            &req("<sip:term@127.0.0.1:5060;lr>", outbound),
            &limits(),
            &mut a,
        ) {
            RegisterStep::Reply { response, note } => {
                assert_eq!(response.status, 439);
                assert!(note.unwrap_or_default().contains("no ;ob"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            on_register(
                t0,
                &req("<sip:term@127.0.0.1:5060;lr;ob>", outbound),
                &limits(),
                &mut a
            ),
            RegisterStep::Challenge { .. }
        ));
        assert!(matches!(
            on_register(
                t0,
                &req("<sip:term@127.0.0.1:5060;lr>", "<sip:alice@10.0.0.1:5062>"),
                &limits(),
                &mut a
            ),
            RegisterStep::Challenge { .. }
        ));
    }

    #[test]
    fn a_first_register_is_challenged_and_a_short_one_gets_423() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        match on_register(
            t0,
            &register(&["<sip:alice@10.0.0.1:5062>"], Some(600)),
            &limits(),
            &mut a,
        ) {
            RegisterStep::Challenge {
                impi,
                impu,
                stale,
                resync,
                ..
            } => {
                assert_eq!(
                    (impi.as_str(), impu.as_str()),
                    ("alice@ims.lab", "sip:alice@ims.lab")
                );
                assert!(!stale);
                assert!(resync.is_none());
            }
            other => panic!("{other:?}"),
        }
        match on_register(
            t0,
            &register(&["<sip:alice@10.0.0.1:5062>"], Some(10)),
            &limits(),
            &mut a,
        ) {
            RegisterStep::Reply { response, .. } => {
                assert_eq!(response.status, 423);
                assert_eq!(response.headers.get("Min-Expires"), Some("60"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_right_answer_is_authenticated_and_expires_zero_deregisters() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let ha1 = digest::ha1_hex("alice@ims.lab", "ims.lab", b"secret");
        let ch = digest_challenge(&mut a, t0, &ha1);
        let req = with_auth(&authorization(&ch, b"secret"), 600);
        assert!(matches!(
            on_register(t0, &req, &limits(), &mut a),
            RegisterStep::Authenticated {
                expires: 600,
                deregister: false,
                ..
            }
        ));
        let ch = digest_challenge(&mut a, t0, &ha1);
        let req = with_auth(&authorization(&ch, b"secret"), 0);
        assert!(matches!(
            on_register(t0, &req, &limits(), &mut a),
            RegisterStep::Authenticated {
                expires: 0,
                deregister: true,
                ..
            }
        ));
    }

    #[test]
    fn wrong_answers_get_a_rechallenge_then_403_then_a_block_until_it_lapses() {
        let t0 = Instant::now();
        let limits_auth = AuthLimits::default();
        let mut a = Authenticator::new("ims.lab", limits_auth);
        let ha1 = digest::ha1_hex("alice@ims.lab", "ims.lab", b"secret");
        let mut steps = Vec::new();
        for _ in 0..limits_auth.max_failures {
            let ch = digest_challenge(&mut a, t0, &ha1);
            let req = with_auth(&authorization(&ch, b"wrong"), 600);
            steps.push(on_register(t0, &req, &limits(), &mut a));
        }
        assert!(matches!(
            steps[0],
            RegisterStep::Challenge { stale: false, .. }
        ));
        let RegisterStep::Reply { response, note } = &steps[1] else {
            panic!("{:?}", steps[1])
        };
        assert_eq!(response.status, 403);
        assert!(response.headers.get("Retry-After").is_none());
        assert_eq!(
            response.headers.get("Warning"),
            Some("399 scscf \"authentication failed\"")
        );
        assert_eq!(
            note.as_deref(),
            Some("403: alice@ims.lab: authentication failed: wrong password")
        );
        let RegisterStep::Reply { response, .. } = steps.last().unwrap() else {
            panic!()
        };
        assert_eq!(response.status, 403);
        assert_eq!(
            response.headers.get("Retry-After"),
            Some(limits_auth.backoff.as_secs().to_string().as_str())
        );
        // While blocked, even a right answer is refused before it is looked at.
        let ch = digest_challenge(&mut a, t0, &ha1);
        let right = with_auth(&authorization(&ch, b"secret"), 600);
        let later = t0 + Duration::from_secs(1);
        assert!(matches!(
            on_register(later, &right, &limits(), &mut a),
            RegisterStep::Reply { .. }
        ));
        let after = t0 + limits_auth.backoff;
        assert!(matches!(
            on_register(after, &right, &limits(), &mut a),
            RegisterStep::Authenticated { .. }
        ));
    }

    #[test]
    fn a_stale_nonce_gets_a_new_challenge_marked_stale() {
        let t0 = Instant::now();
        let mut a = Authenticator::new("ims.lab", AuthLimits::default());
        let ha1 = digest::ha1_hex("alice@ims.lab", "ims.lab", b"secret");
        let ch = digest_challenge(&mut a, t0, &ha1);
        let req = with_auth(&authorization(&ch, b"secret"), 600);
        let late = t0 + auth::NONCE_LIFETIME + Duration::from_secs(1);
        assert!(matches!(
            on_register(late, &req, &limits(), &mut a),
            RegisterStep::Challenge { stale: true, .. }
        ));
    }
}
