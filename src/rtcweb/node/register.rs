//! A page's `REGISTER` (the web user logs in): the gateway registers the user in IMS through
//! the P-CSCF with their own credentials (SIP Digest, RFC 3261 §22 / TS 24.229 §5.1.1.2),
//! the Contact naming the gateway's SIP endpoint with the user's user part, so that the core
//! routes the user's incoming calls to the gateway. Refreshed at half of what the registrar
//! granted; de-registered when the user is gone (page closed and the reload grace over).
//!
//! One answer for every failure (`wrong user or password`): a page learns nothing about which
//! users exist. A reloaded page re-attaches with the resume token the first `OK` carried
//! (`body`) in place of the password.
//!
//! Failed logins are limited here, before the core counts them: every web user registers
//! from the gateway's one SIP flow, and the S-CSCF blocks a source after
//! `[auth] max_failures_per_address` failures; if guessing from pages pushed the gateway past
//! it, every web user's registration refresh would be refused. So a wrong password costs the
//! core one failure (no second try on the re-challenge), a user or a page address is blocked
//! after a few ([`LOGIN_LIMITS`]), and the gateway as a whole lets at most
//! [`MAX_FAILED_LOGINS`] failures through per window, well below the S-CSCF's per-address
//! limit; past it, new logins wait (logged-in users are not touched).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Page, RtcwebGateway, WebUser, TRANSPORT};
use crate::auth::digest::{self, Challenge, Credentials};
use crate::sip::{Method, Request, Response};

/// How soon a refresh that failed is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// Failed logins per web user and per page address before they wait.
pub(super) const LOGIN_LIMITS: crate::cscf::auth_guard::AuthLimits =
    crate::cscf::auth_guard::AuthLimits {
        max_failures: 3,
        max_failures_per_address: 6,
        window: Duration::from_secs(600),
        backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(900),
        max_entries: 10_000,
    };

/// Failed logins the gateway lets reach the core per [`LOGIN_LIMITS`] window, over all users
/// (half the S-CSCF's default per-address limit).
pub(super) const MAX_FAILED_LOGINS: usize = 8;

/// The gateway's failed-login bookkeeping.
pub(super) struct LoginGuard {
    guard: crate::cscf::auth_guard::AuthGuard,
    /// When the recent failures were, over all users.
    recent: std::collections::VecDeque<Instant>,
}

impl LoginGuard {
    pub(super) fn new() -> LoginGuard {
        LoginGuard {
            guard: crate::cscf::auth_guard::AuthGuard::new(LOGIN_LIMITS),
            recent: Default::default(),
        }
    }

    /// How long `aor` from `page` must wait, if it must.
    fn blocked(&mut self, aor: &str, page: SocketAddr, now: Instant) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > LOGIN_LIMITS.window)
        {
            self.recent.pop_front();
        }
        let global = (self.recent.len() >= MAX_FAILED_LOGINS).then(|| {
            self.recent
                .front()
                .map(|t| (*t + LOGIN_LIMITS.window).saturating_duration_since(now))
                .unwrap_or(LOGIN_LIMITS.backoff)
        });
        self.guard.blocked(aor, Some(page), now).max(global)
    }

    fn failure(&mut self, aor: &str, page: SocketAddr, now: Instant) {
        self.recent.push_back(now);
        self.guard.sweep(now);
        let _ = self.guard.failure(aor, Some(page), now);
    }

    fn success(&mut self, aor: &str) {
        self.guard.success(aor);
    }
}

/// One web user's IMS registration (memory only).
#[derive(Clone)]
pub(super) struct Registration {
    aor: String,
    impi: String,
    password: String,
    /// Given to the page for a reload (`REGISTER` with it in `password`).
    token: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    refresh_at: Instant,
}

impl Registration {
    /// A refresh is due.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.refresh_at
    }

    /// Not again before [`RETRY`] (a refresh is on its way).
    pub(super) fn postpone(&mut self, now: Instant) {
        self.refresh_at = now + RETRY;
    }

    /// Is `secret` this user's password or resume token (compared in constant time)?
    fn accepts(&self, secret: &str) -> bool {
        let eq = |a: &str, b: &str| {
            a.len() == b.len()
                && a.bytes()
                    .zip(b.bytes())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
        };
        eq(secret, &self.password) | eq(secret, &self.token)
    }
}

/// Why a login failed (the page is told only [`LoginError::to_string`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum LoginError {
    #[error("wrong user or password")]
    Refused,
    #[error("the IMS core did not answer: try again")]
    NoAnswer,
    #[error("too many web users")]
    Full,
    #[error("too many failed logins: try again in {0} s")]
    Blocked(u64),
}

impl RtcwebGateway {
    /// A page's `REGISTER` for `aor` with `secret`: registers the user in IMS unless they are
    /// already (the same password or the resume token), then attaches `page` (a page attached
    /// before is let go). Returns the resume token.
    pub(super) async fn attach(
        &self,
        page_id: u64,
        page_addr: SocketAddr,
        aor: &str,
        secret: &str,
        page: mpsc::Sender<Box<crate::rtcweb::message::WebMessage>>,
        closed: watch::Sender<bool>,
    ) -> Result<String, LoginError> {
        let known = self.st.lock().ok().and_then(|st| {
            let u = st.users.get(aor)?;
            Some(u.reg.accepts(secret))
        });
        let now = Instant::now();
        if let Some(d) = self.logins.lock().ok().and_then(|mut g| {
            // A page coming back with the right secret for a logged-in user is not held up.
            (known != Some(true))
                .then(|| g.blocked(aor, page_addr, now))
                .flatten()
        }) {
            return Err(LoginError::Blocked(d.as_secs().max(1)));
        }
        let reg = match known {
            Some(true) => None,
            Some(false) => {
                if let Ok(mut g) = self.logins.lock() {
                    g.failure(aor, page_addr, now);
                }
                return Err(LoginError::Refused);
            }
            None => {
                let full = self
                    .st
                    .lock()
                    .map(|st| st.users.len() >= self.cfg.max_users)
                    .unwrap_or(true);
                if full {
                    return Err(LoginError::Full);
                }
                let mut reg = Registration {
                    aor: aor.to_string(),
                    impi: format!("{}@{}", super::user_part(aor), self.domain),
                    password: secret.to_string(),
                    token: crate::sip::new_tag() + &crate::sip::new_tag(),
                    call_id: crate::sip::new_call_id(&self.ep.local_addr().ip().to_string()),
                    from_tag: crate::sip::new_tag(),
                    cseq: 0,
                    refresh_at: Instant::now(),
                };
                let granted = match self.register(&mut reg, self.cfg.register_expires).await {
                    Ok(g) => g,
                    Err(e) => {
                        if matches!(e, LoginError::Refused) {
                            if let Ok(mut g) = self.logins.lock() {
                                g.failure(aor, page_addr, Instant::now());
                            }
                        }
                        return Err(e);
                    }
                };
                if let Ok(mut g) = self.logins.lock() {
                    g.success(aor);
                }
                reg.refresh_at =
                    Instant::now() + Duration::from_secs(u64::from(granted / 2).max(1));
                Some(reg)
            }
        };
        let Ok(mut st) = self.st.lock() else {
            return Err(LoginError::NoAnswer);
        };
        let st = &mut *st;
        if let Some(reg) = reg {
            if !st.users.contains_key(aor) && st.users.len() >= self.cfg.max_users {
                return Err(LoginError::Full);
            }
            st.contacts
                .insert(super::user_part(aor).to_string(), aor.to_string());
            st.users.entry(aor.to_string()).or_insert(WebUser {
                page: None,
                reg,
                detached_since: None,
                sessions: 0,
            });
        }
        self.routes(st).attach_user(aor);
        let Some(u) = st.users.get_mut(aor) else {
            return Err(LoginError::NoAnswer);
        };
        if let Some(old) = u.page.take() {
            // The newer page of the user wins.
            let _ = old.closed.send(true);
        }
        u.page = Some(Page {
            id: page_id,
            tx: page,
            closed,
        });
        u.detached_since = None;
        Ok(u.reg.token.clone())
    }

    /// A refresh (or with `expires` 0 the de-registration) of a user's registration.
    pub(super) async fn refresh(&self, aor: &str, mut reg: Registration, expires: u32) {
        match self.register(&mut reg, expires).await {
            Ok(granted) if expires > 0 => {
                if let Ok(mut st) = self.st.lock() {
                    if let Some(u) = st.users.get_mut(aor) {
                        u.reg.cseq = reg.cseq;
                        u.reg.refresh_at =
                            Instant::now() + Duration::from_secs(u64::from(granted / 2).max(1));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!(%aor, error = %e, "web user's re-registration failed");
                if let Ok(mut st) = self.st.lock() {
                    if let Some(u) = st.users.get_mut(aor) {
                        u.reg.cseq = reg.cseq;
                    }
                }
            }
        }
    }

    /// REGISTER, answering one Digest challenge; the seconds granted.
    async fn register(&self, reg: &mut Registration, expires: u32) -> Result<u32, LoginError> {
        let mut authorization: Option<String> = None;
        for _ in 0..3 {
            let answered = authorization.is_some();
            let req = self.build_register(reg, expires, authorization.take());
            let resp = tokio::time::timeout(
                Duration::from_secs(10),
                self.ep
                    .send_request(req, self.pcscf, TRANSPORT)
                    .final_response(),
            )
            .await
            .map_err(|_| LoginError::NoAnswer)?;
            match resp.status {
                200 => return Ok(granted(&resp, expires)),
                // A 401 to our answer is the S-CSCF's second chance after a wrong password:
                // not taken (each try is a failure it counts against the gateway's flow).
                401 if answered => return Err(LoginError::Refused),
                401 => authorization = Some(answer(reg, &resp).ok_or(LoginError::Refused)?),
                408 | 500 | 503 | 504 => return Err(LoginError::NoAnswer),
                _ => return Err(LoginError::Refused),
            }
        }
        Err(LoginError::Refused)
    }

    fn build_register(
        &self,
        reg: &mut Registration,
        expires: u32,
        authorization: Option<String>,
    ) -> Request {
        reg.cseq += 1;
        let d = &self.domain;
        let mut r = Request::new(Method::Register, format!("sip:{d}"));
        r.headers.push("Via", self.ep.new_via(TRANSPORT));
        r.headers.push("Max-Forwards", "70");
        r.headers
            .push("From", format!("<{}>;tag={}", reg.aor, reg.from_tag));
        r.headers.push("To", format!("<{}>", reg.aor));
        r.headers.push("Call-ID", reg.call_id.clone());
        r.headers.push("CSeq", format!("{} REGISTER", reg.cseq));
        r.headers.push(
            "Contact",
            format!(
                "<sip:{}@{};transport=tcp>;expires={expires}",
                super::user_part(&reg.aor),
                self.ep.local_addr()
            ),
        );
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Supported", "path");
        r.headers
            .push("User-Agent", super::super::route::USER_AGENT);
        // TS 24.229 §5.1.1.2.1: the initial REGISTER names the IMPI with an empty response.
        r.headers.push(
            "Authorization",
            authorization.unwrap_or_else(|| {
                format!(
                    "Digest username=\"{}\", realm=\"{d}\", nonce=\"\", uri=\"sip:{d}\", response=\"\", algorithm=MD5",
                    reg.impi
                )
            }),
        );
        r
    }
}

/// The Authorization answering a Digest (MD5) challenge; None for AKA (a page has no USIM).
fn answer(reg: &Registration, resp: &Response) -> Option<String> {
    let ch = Challenge::parse(resp.headers.get("WWW-Authenticate")?).ok()?;
    if ch
        .algorithm
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case("md5"))
    {
        return None;
    }
    let uri = format!("sip:{}", reg.aor.rsplit('@').next().unwrap_or(""));
    let ha1 = digest::ha1_hex(&reg.impi, &ch.realm, reg.password.as_bytes());
    let cnonce = digest::new_cnonce();
    let qop = ch.qop.as_ref().map(|_| "auth".to_string());
    let nc = qop.as_ref().map(|_| "00000001".to_string());
    let response = digest::response_hex(
        &ha1,
        &ch.nonce,
        nc.as_deref(),
        qop.as_ref().map(|_| cnonce.as_str()),
        qop.as_deref(),
        "REGISTER",
        &uri,
    );
    Some(
        Credentials {
            username: reg.impi.clone(),
            realm: ch.realm.clone(),
            nonce: ch.nonce.clone(),
            uri,
            response,
            algorithm: ch.algorithm.clone(),
            cnonce: qop.as_ref().map(|_| cnonce.clone()),
            nc,
            qop,
            opaque: ch.opaque.clone(),
            auts: None,
        }
        .to_string(),
    )
}

/// The seconds the registrar granted our contact.
fn granted(resp: &Response, asked: u32) -> u32 {
    resp.headers
        .values("Contact")
        .iter()
        .filter_map(|c| crate::sip::NameAddr::parse(c).ok())
        .filter_map(|na| na.params.value("expires").and_then(|e| e.parse().ok()))
        .max()
        .or_else(|| {
            resp.headers
                .get("Expires")
                .and_then(|e| e.trim().parse().ok())
        })
        .unwrap_or(asked)
}

use tokio::sync::{mpsc, watch};
