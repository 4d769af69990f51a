//! The content server's HTTP Digest core (RFC 7616 with MD5 and qop=auth, as RCC.07
//! §3.5.4.8.2 has clients authenticate to the FT HTTP server with their IMS credentials). The
//! HA1 comes from the HSS (a Cx MAR for the SIP Digest scheme, TS 29.229 §6.3.35), so the
//! server never holds a password; the driver asks for it when [`DigestCore::check`] says
//! [`Check::NeedHa1`].
//!
//! Nonces are ours: the table holds at most `max` of them (the oldest go), each usable for
//! `lifetime` (then the answer is a new challenge with `stale=true`), each with the `nc`
//! values seen: a window of the last [`NC_WINDOW`] below the highest (RFC 7616 §3.3 asks the
//! server to refuse a repeated `nc`, not an out-of-order one: a client with several requests
//! on one nonce at once sends them in any order). An `nc` seen before, or older than the
//! window, is a replay: refused. Once a nonce authenticated a user,
//! the HA1 stays with it, so the requests that follow on it need no MAR.
//!
//! Socket-free and clock-injected: `now` is passed in.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::auth::digest::{self, Challenge, Credentials, Issued};

/// How far below the highest `nc` seen on a nonce a request may come (out of order).
pub const NC_WINDOW: u32 = 64;

#[derive(Debug)]
struct NonceState {
    created: Instant,
    /// The highest `nc` seen (0: none yet).
    last_nc: u32,
    /// Bit `i`: `last_nc - i` was seen.
    seen: u64,
    /// The username that authenticated on it, with its HA1.
    user: Option<(String, String)>,
}

impl NonceState {
    /// Why `nc` may not be used on this nonce (never seen, within the window), if it may not.
    fn replay(&self, nc: u32) -> Option<String> {
        if nc == 0 {
            return Some("nonce count 00000000: it starts at 1".into());
        }
        if nc > self.last_nc {
            return None;
        }
        let back = self.last_nc - nc;
        if back >= NC_WINDOW {
            return Some(format!(
                "nonce count {nc:08x} is more than {NC_WINDOW} below {:08x}: a replay",
                self.last_nc
            ));
        }
        if self.seen & (1u64 << back) != 0 {
            return Some(format!("nonce count {nc:08x} was used before: a replay"));
        }
        None
    }

    /// Marks `nc` used.
    fn mark(&mut self, nc: u32) {
        if nc > self.last_nc {
            let shift = nc - self.last_nc;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.last_nc = nc;
        } else {
            self.seen |= 1u64 << (self.last_nc - nc);
        }
    }
}

/// What a request's credentials come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Authenticated as this username.
    Ok(String),
    /// The nonce is ours and well answered in form: the HA1 of this username is needed
    /// (the driver asks the HSS, then calls [`DigestCore::complete`]).
    NeedHa1(String),
    /// The nonce is unknown or too old: challenge again with `stale=true`.
    Stale,
    /// Refused; the reason is for the log and the trace, never the client.
    Fail(String),
}

/// Outstanding nonces and the checks of answers to them.
#[derive(Debug)]
pub struct DigestCore {
    realm: String,
    nonces: HashMap<String, NonceState>,
    order: VecDeque<String>,
    max: usize,
    lifetime: Duration,
}

impl DigestCore {
    /// Nonces in `realm`, at most `max` at once, each good for `lifetime`.
    pub fn new(realm: &str, max: usize, lifetime: Duration) -> DigestCore {
        DigestCore {
            realm: realm.to_string(),
            nonces: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            lifetime,
        }
    }

    /// Nonces held.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.nonces.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(n) = self.order.front() {
            let old = self
                .nonces
                .get(n)
                .is_none_or(|s| now.saturating_duration_since(s.created) >= self.lifetime);
            if !old && self.nonces.len() <= self.max {
                break;
            }
            if let Some(n) = self.order.pop_front() {
                self.nonces.remove(&n);
            }
        }
    }

    /// A new challenge (the `WWW-Authenticate` value).
    pub fn challenge(&mut self, now: Instant, stale: bool) -> String {
        self.expire(now);
        let nonce = digest::new_nonce();
        if self.nonces.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        self.nonces.insert(
            nonce.clone(),
            NonceState {
                created: now,
                last_nc: 0,
                seen: 0,
                user: None,
            },
        );
        self.order.push_back(nonce.clone());
        Challenge {
            realm: self.realm.clone(),
            nonce,
            algorithm: Some("MD5".into()),
            qop: Some("auth".into()),
            opaque: None,
            stale,
            ck: None,
            ik: None,
        }
        .to_string()
    }

    /// Checks `creds` of a `method` request for `target` (its path and query, or its absolute
    /// URL) as far as can be done without the HA1.
    pub fn check(
        &mut self,
        now: Instant,
        creds: &Credentials,
        method: &str,
        target: &[String],
    ) -> Check {
        self.expire(now);
        let Some(state) = self.nonces.get(&creds.nonce) else {
            return Check::Stale;
        };
        let issued = Issued {
            realm: &self.realm,
            algorithm: "MD5",
            qop: Some("auth"),
        };
        let (first, also) = match target.split_first() {
            Some((f, a)) => (f.as_str(), a),
            None => ("", &[][..]),
        };
        if let Err(e) = digest::conformance(creds, &issued, first, also) {
            return Check::Fail(e.to_string());
        }
        let nc = creds
            .nc
            .as_deref()
            .and_then(|n| u32::from_str_radix(n, 16).ok())
            .unwrap_or(0);
        if let Some(why) = state.replay(nc) {
            return Check::Fail(why);
        }
        match &state.user {
            Some((user, ha1)) if user == &creds.username => {
                if digest::verify(creds, ha1, method) {
                    let user = user.clone();
                    if let Some(s) = self.nonces.get_mut(&creds.nonce) {
                        s.mark(nc);
                    }
                    Check::Ok(user)
                } else {
                    Check::Fail("wrong response".into())
                }
            }
            Some(_) => Check::Fail("the nonce was used by another user".into()),
            None => Check::NeedHa1(creds.username.clone()),
        }
    }

    /// Completes a [`Check::NeedHa1`] with the HA1 the HSS gave (`None`: it knows no such
    /// user — refused like a wrong password).
    pub fn complete(&mut self, creds: &Credentials, method: &str, ha1: Option<&str>) -> Check {
        let Some(ha1) = ha1 else {
            return Check::Fail("the HSS knows no such user".into());
        };
        if !digest::verify(creds, ha1, method) {
            return Check::Fail("wrong response".into());
        }
        let nc = creds
            .nc
            .as_deref()
            .and_then(|n| u32::from_str_radix(n, 16).ok())
            .unwrap_or(0);
        match self.nonces.get_mut(&creds.nonce) {
            // Another request on this nonce with the same nc got there first.
            Some(s) if s.replay(nc).is_some() => Check::Fail("nonce count replayed".into()),
            Some(s) => {
                s.mark(nc);
                s.user = Some((creds.username.clone(), ha1.to_string()));
                Check::Ok(creds.username.clone())
            }
            None => Check::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(challenge: &str, user: &str, pass: &str, nc: u32, uri: &str) -> Credentials {
        let c = Challenge::parse(challenge).unwrap();
        let ha1 = digest::ha1_hex(user, &c.realm, pass.as_bytes());
        let nc = format!("{nc:08x}");
        let cnonce = "0a4f113b";
        Credentials {
            username: user.into(),
            realm: c.realm.clone(),
            nonce: c.nonce.clone(),
            uri: uri.into(),
            response: digest::response_hex(
                &ha1,
                &c.nonce,
                Some(&nc),
                Some(cnonce),
                Some("auth"),
                "POST",
                uri,
            ),
            algorithm: Some("MD5".into()),
            cnonce: Some(cnonce.into()),
            nc: Some(nc),
            qop: Some("auth".into()),
            opaque: None,
            auts: None,
        }
    }

    #[test]
    fn a_right_answer_needs_the_ha1_once_then_the_nonce_carries_it() {
        let t0 = Instant::now();
        let mut d = DigestCore::new("ims.lab", 10, Duration::from_secs(60));
        let ch = d.challenge(t0, false);
        assert!(
            ch.contains("realm=\"ims.lab\"") && ch.contains("qop=\"auth\""),
            "{ch}"
        );
        let target = ["/".to_string()];
        let c1 = answer(&ch, "alice@ims.lab", "alice-secret", 1, "/");
        assert_eq!(
            d.check(t0, &c1, "POST", &target),
            Check::NeedHa1("alice@ims.lab".into())
        );
        let ha1 = digest::ha1_hex("alice@ims.lab", "ims.lab", b"alice-secret");
        assert_eq!(
            d.complete(&c1, "POST", Some(&ha1)),
            Check::Ok("alice@ims.lab".into())
        );
        // The same nc again is a replay; the next one passes without the HSS.
        assert!(matches!(d.check(t0, &c1, "POST", &target), Check::Fail(_)));
        let c2 = answer(&ch, "alice@ims.lab", "alice-secret", 2, "/");
        assert_eq!(
            d.check(t0, &c2, "POST", &target),
            Check::Ok("alice@ims.lab".into())
        );
        // A wrong password on a nonce that knows alice fails at once.
        let bad = answer(&ch, "alice@ims.lab", "guess", 3, "/");
        assert!(matches!(d.check(t0, &bad, "POST", &target), Check::Fail(_)));
        // Another user on alice's nonce is refused.
        let bob = answer(&ch, "bob@ims.lab", "bob-secret", 4, "/");
        assert!(matches!(d.check(t0, &bob, "POST", &target), Check::Fail(_)));
    }

    /// Several requests on one nonce at once arrive in any order: each nc once, in a window.
    #[test]
    fn nonce_counts_may_come_out_of_order_but_never_twice() {
        let t0 = Instant::now();
        let mut d = DigestCore::new("ims.lab", 10, Duration::from_secs(60));
        let ch = d.challenge(t0, false);
        let target = ["/".to_string()];
        let ha1 = digest::ha1_hex("alice@ims.lab", "ims.lab", b"alice-secret");
        let c = |nc| answer(&ch, "alice@ims.lab", "alice-secret", nc, "/");
        assert_eq!(
            d.check(t0, &c(1), "POST", &target),
            Check::NeedHa1("alice@ims.lab".into())
        );
        assert_eq!(
            d.complete(&c(1), "POST", Some(&ha1)),
            Check::Ok("alice@ims.lab".into())
        );
        let ok = Check::Ok("alice@ims.lab".into());
        for nc in [3, 2, 5, 4, 70] {
            assert_eq!(d.check(t0, &c(nc), "POST", &target), ok, "nc {nc}");
        }
        // Each once.
        for nc in [1, 2, 3, 4, 5, 70] {
            assert!(
                matches!(d.check(t0, &c(nc), "POST", &target), Check::Fail(_)),
                "nc {nc} again"
            );
        }
        // Inside the window below 70 and never seen: fine; below the window: a replay.
        assert_eq!(d.check(t0, &c(69), "POST", &target), ok);
        assert_eq!(d.check(t0, &c(7), "POST", &target), ok);
        assert!(matches!(
            d.check(t0, &c(6), "POST", &target),
            Check::Fail(why) if why.contains("below")
        ));
        assert!(matches!(
            d.check(t0, &c(0), "POST", &target),
            Check::Fail(_)
        ));
    }

    #[test]
    fn unknown_users_wrong_passwords_old_nonces_and_wrong_uris() {
        let t0 = Instant::now();
        let mut d = DigestCore::new("ims.lab", 2, Duration::from_secs(60));
        let ch = d.challenge(t0, false);
        let target = ["/files/x".to_string(), "http://h/files/x".to_string()];
        let c = answer(&ch, "mallory@ims.lab", "x", 1, "/files/x");
        assert!(matches!(
            d.check(t0, &c, "POST", &target),
            Check::NeedHa1(_)
        ));
        assert!(matches!(d.complete(&c, "POST", None), Check::Fail(_)));
        let ha1 = digest::ha1_hex("mallory@ims.lab", "ims.lab", b"other");
        assert!(matches!(d.complete(&c, "POST", Some(&ha1)), Check::Fail(_)));
        // The absolute form of the target is accepted, another URI is not.
        let abs = answer(&ch, "mallory@ims.lab", "x", 2, "http://h/files/x");
        assert!(matches!(
            d.check(t0, &abs, "POST", &target),
            Check::NeedHa1(_)
        ));
        let other = answer(&ch, "mallory@ims.lab", "x", 3, "/files/y");
        assert!(matches!(
            d.check(t0, &other, "POST", &target),
            Check::Fail(_)
        ));
        // Past its lifetime the nonce is stale; past the cap the oldest goes.
        assert_eq!(
            d.check(t0 + Duration::from_secs(61), &c, "POST", &target),
            Check::Stale
        );
        let t1 = t0 + Duration::from_secs(70);
        let a = d.challenge(t1, true);
        assert!(a.contains("stale=TRUE"));
        d.challenge(t1, false);
        d.challenge(t1, false);
        assert_eq!(d.len(), 2);
        let ca = answer(&a, "u", "p", 1, "/files/x");
        assert_eq!(d.check(t1, &ca, "POST", &target), Check::Stale);
    }
}
