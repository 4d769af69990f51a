//! Login, logout and credentials: what `POST|PUT|DELETE {userId}/Session` and
//! `POST Session/Ticket` do. A login makes the gateway an RCS UE for the web user (paper
//! seed 000 §3): it REGISTERs them through the P-CSCF with their own IMS credentials (SIP
//! Digest, RFC 2617 / TS 24.229 §5.1.1) and answers a bearer token ([`super::tokens`]).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::ims::{pump, roster_pump};
use super::{limits, tokens, Gateway, UserState, WebError, WebUser};
use crate::ue::chat::roster::{RosterParts, RosterWatcher};
use crate::ue::chat::{ChatOptions, ChatUe};
use crate::ue::{AuthMode, Ue, UeConfig};

impl Gateway {
    /// The logged-in user a token belongs to (None when unknown or past its lifetime).
    pub fn user_by_token(&self, token: &str) -> Option<Arc<WebUser>> {
        let key = self
            .tokens
            .lock()
            .ok()?
            .check(token, std::time::Instant::now())?;
        self.user_of_key(&key).inspect(|u| u.last_used.touch())
    }

    /// The user a single-use ticket names; the ticket is spent.
    pub fn user_by_ticket(&self, ticket: &str) -> Option<Arc<WebUser>> {
        let key = self
            .tickets
            .lock()
            .ok()?
            .check(ticket, std::time::Instant::now())?;
        self.user_of_key(&key)
    }

    fn key_of(user: &WebUser) -> String {
        format!("{}#{}", user.aor, user.session)
    }

    /// The login a credential names, if it is still the user's current one.
    fn user_of_key(&self, key: &str) -> Option<Arc<WebUser>> {
        let (aor, session) = key.rsplit_once('#')?;
        let u = self.users.lock().ok()?.get(aor).cloned()?;
        (u.session.to_string() == session).then_some(u)
    }

    /// A new credential of `set` for `user`, and its lifetime in seconds.
    fn issue(set: &Mutex<tokens::Credentials>, user: &WebUser) -> (String, u64) {
        match set.lock() {
            Ok(mut t) => {
                let secs = t.lifetime().as_secs();
                (
                    t.issue(&Self::key_of(user), std::time::Instant::now()),
                    secs,
                )
            }
            Err(_) => (String::new(), 0),
        }
    }

    /// A new bearer token for `user`, and its lifetime in seconds.
    pub fn issue_token(&self, user: &WebUser) -> (String, u64) {
        Self::issue(&self.tokens, user)
    }

    /// `PUT /Session`: a new token for the one presented, which ends.
    pub fn refresh_token(&self, user: &WebUser, old: &str) -> (String, u64) {
        if let Ok(mut t) = self.tokens.lock() {
            t.revoke(old);
        }
        self.issue_token(user)
    }

    /// `POST /Session/Ticket`: a ticket for one notification channel, and its lifetime.
    pub fn issue_ticket(&self, user: &WebUser) -> (String, u64) {
        Self::issue(&self.tickets, user)
    }

    /// `POST /{url}/Session`: registers the user to IMS with their password (SIP Digest through
    /// the P-CSCF; the S-CSCF and HSS check it) and answers a token. A user already logged in
    /// gets their token back once the IMS core has accepted the password again (a REGISTER
    /// that binds nothing): the gateway keeps no password, so one the HSS changed stops
    /// working at once. Failed logins count per user and per client address (`source`); past
    /// `[webrsf] login_max_failures` the user or address gets 429 with Retry-After, and every
    /// refusal says the same, whatever the IMS core said.
    pub async fn login(
        self: &Arc<Self>,
        user_id: &str,
        password: &str,
        impi: Option<&str>,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Arc<WebUser>, WebError> {
        let aor = self.aor_of(user_id)?;
        let now = std::time::Instant::now();
        if let Some(d) = self
            .login_guard
            .lock()
            .ok()
            .and_then(|g| g.blocked(&aor, source, now))
        {
            return Err(WebError::RateLimited(
                "too many failed logins; try again later".into(),
                d.as_secs().max(1),
            ));
        }
        let result = self.login_checked(&aor, password, impi).await;
        if let Ok(mut g) = self.login_guard.lock() {
            match &result {
                Ok(_) => g.success(&aor),
                Err(WebError::Unauthorized(why)) => {
                    crate::warn_limited!("webrsf.login_failed", %aor, source = ?source, "web login refused: {why}");
                    if let crate::cscf::auth_guard::Verdict::Blocked(d) =
                        g.failure(&aor, source, std::time::Instant::now())
                    {
                        return Err(WebError::RateLimited(
                            "too many failed logins; try again later".into(),
                            d.as_secs().max(1),
                        ));
                    }
                    return Err(WebError::Unauthorized("wrong user or password".into()));
                }
                Err(_) => {}
            }
        }
        result
    }

    /// A salted hash of a password, to compare without keeping it.
    fn password_tag(&self, password: &str) -> [u8; 16] {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(self.salt);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    async fn login_checked(
        self: &Arc<Self>,
        aor: &str,
        password: &str,
        impi: Option<&str>,
    ) -> Result<Arc<WebUser>, WebError> {
        let aor = aor.to_string();
        let impi = match impi {
            Some(i) if !i.is_empty() => i.to_string(),
            _ => {
                crate::store::default_impi(&aor).map_err(|e| WebError::BadRequest(e.to_string()))?
            }
        };
        let existing = self.users.lock().ok().and_then(|u| u.get(&aor).cloned());
        let mut replaces = None;
        if let Some(u) = existing {
            if u.password_tag == self.password_tag(password) {
                // The session's own password: the IMS core says whether it still holds (a
                // REGISTER of the session's UE); the gateway does not decide.
                if u.chat.register().await {
                    return Ok(u);
                }
                tracing::info!(%aor, "the IMS core refuses the web session's password: it ends");
                self.logout(&u).await;
                return Err(WebError::Unauthorized(
                    "the IMS core refused the password".into(),
                ));
            }
            // Another password: a new session registers with it; only if the IMS core takes
            // it does the old one (whose UE would re-register with the old password) end.
            replaces = Some(u);
        }
        self.check_user_cap()?;
        let cfg = UeConfig {
            impu: aor.clone(),
            impi,
            password: password.to_string(),
            k: [0; 16],
            opc: [0; 16],
            sqn_ms: 0,
            pcscf: self.pcscf,
            transport: crate::sip::Transport::Udp,
            domain: self.domain.clone(),
            auth: AuthMode::Digest,
            extra_tags: String::new(),
        };
        // The UE lives as long as the login: dropping `life` (any error below) closes it.
        let life = limits::UeLife::new(self.shutdown.clone());
        let mut ue = Ue::start(cfg, self.trace.clone(), life.signal())
            .await
            .map_err(|e| WebError::Timeout(format!("cannot bind a SIP socket: {e}")))?;
        // Ladders draw the gateway's UEs as the WebRSF node (paper figure 4, UE2's place).
        self.name(ue.local_addr(), "WebRSF");
        let expires = self.cfg.register_expires;
        let reg = tokio::time::timeout(Duration::from_secs(10), ue.register(expires))
            .await
            .map_err(|_| WebError::Timeout("no answer to REGISTER".into()))?
            .map_err(register_error)?;
        // A web user logged in is online to their buddies (as a UE that stays registered):
        // published open; when the login ends, the de-registration tells the PS (last seen).
        match tokio::time::timeout(
            Duration::from_secs(5),
            ue.publish(crate::ue::presence::Status::Open, None, 86_400, None),
        )
        .await
        {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                tracing::info!(user = %aor, status = r.status, "web user's presence not published")
            }
            Err(_) => tracing::info!(user = %aor, "web user's presence not published: no answer"),
        }
        // Buddies' presence NOTIFYs go to the list subscription, the rest to the chat client.
        let list_parts = super::presence::ListParts::take(&mut ue);
        // Group rosters' NOTIFYs (Event: conference) go to the roster subscriptions.
        let roster_parts = RosterParts::take(&mut ue);
        let mut chat = ChatUe::start(
            ue,
            self.trace.clone(),
            ChatOptions {
                disposition: "positive-delivery, display".into(),
                auto_delivered: false,
                auto_displayed: false,
                hold_invites: true,
                refresh_registration: Some(reg.expires.max(60)),
                report_acks: false,
                // TS 24.229 §5.1.1.3: the network tells us when it ends the registration
                // (an RTR after the HSS changed the password): the web session ends with it.
                watch_registration: true,
                // Files for web users are offered, not downloaded: the page fetches them
                // through the gateway (`files.rs`).
                files: None,
                ..ChatOptions::default()
            },
        );
        let events = chat.take_events();
        let (roster, roster_events) = RosterWatcher::start(roster_parts);
        let user = Arc::new(WebUser {
            aor: aor.clone(),
            user_id: self.web_id(&aor),
            session: self
                .next_session
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            password_tag: self.password_tag(password),
            chat,
            state: Mutex::new(UserState::default()),
            last_event: watch::channel(0).0,
            channels: AtomicUsize::new(0),
            closed: watch::channel(false).0,
            life,
            last_used: limits::LastUsed::new(),
            caps: limits::UserCaps {
                media: self.cfg.max_media_per_user,
                instances: self.cfg.max_instances_per_user,
            },
            list: Mutex::new(None),
            roster: Mutex::new(Some(roster)),
            uploads: AtomicUsize::new(0),
        });
        if let Some(old) = replaces {
            tracing::info!(%aor, "web login with a new password the IMS core took: the old session ends");
            self.logout(&old).await;
        }
        // Two logins of one user at once: the first to get here wins, the other UE goes.
        let winner = self.users.lock().ok().and_then(|mut u| match u.get(&aor) {
            Some(w) => Some(w.clone()),
            None => {
                u.insert(aor.clone(), user.clone());
                None
            }
        });
        if let Some(w) = winner {
            tokio::spawn(async move {
                user.chat.deregister().await;
                user.life.end();
            });
            // Our own REGISTER with this password just succeeded: it is the right one.
            return Ok(w);
        }
        tokio::spawn(pump(self.clone(), user.clone(), events));
        tokio::spawn(roster_pump(self.clone(), user.clone(), roster_events));
        self.watch_buddies(&user, list_parts).await;
        Ok(user)
    }

    /// `DELETE /{url}/Session`: de-registers and forgets the user; their channels end.
    pub async fn logout(&self, user: &Arc<WebUser>) -> bool {
        if let Ok(mut u) = self.users.lock() {
            // Not a newer login of the same user (an expiry racing a new login).
            if u.get(&user.aor).is_some_and(|x| Arc::ptr_eq(x, user)) {
                u.remove(&user.aor);
            }
        }
        let key = Self::key_of(user);
        if let Ok(mut t) = self.tokens.lock() {
            t.revoke_all(&key);
        }
        if let Ok(mut t) = self.tickets.lock() {
            t.revoke_all(&key);
        }
        let _ = user.closed.send(true);
        // The roster subscriptions' driver ends with its handle (their NOTIFYs get 481).
        if let Ok(mut r) = user.roster.lock() {
            r.take();
        }
        // The list subscription ends while the UE is still registered (its NOTIFY comes back).
        self.unwatch_buddies(user).await;
        let ok = user.chat.deregister().await;
        user.life.end();
        ok
    }
}

/// What a web login's failed REGISTER means to the browser. Only the core refusing the
/// credentials is a wrong password (401, counted by the login guard); the core being
/// overloaded or failing (a 503 from the P-CSCF's overload control, a 408, a 5xx) is the
/// service being unavailable (503): the password may be right, and the client may try again.
fn register_error(e: crate::ue::UeError) -> WebError {
    use crate::ue::UeError;
    match e {
        UeError::Rejected(s, why) if s == 408 || s >= 500 => {
            WebError::Unavailable(format!("the IMS core did not register the user: {s} {why}"))
        }
        UeError::Io(e) => WebError::Unavailable(format!("the IMS core is unreachable: {e}")),
        other => WebError::Unauthorized(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ue::UeError;

    #[test]
    fn only_a_refused_password_is_a_wrong_password() {
        let status = |e: UeError| register_error(e).status();
        assert_eq!(status(UeError::Rejected(403, "Forbidden".into())), 401);
        assert_eq!(status(UeError::Auth("challenged twice".into())), 401);
        assert_eq!(
            status(UeError::Rejected(503, "399 P-CSCF \"overloaded\"".into())),
            503
        );
        assert_eq!(
            status(UeError::Rejected(408, "Request Timeout".into())),
            503
        );
        assert_eq!(status(UeError::Rejected(500, "Server Error".into())), 503);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(status(UeError::Io(io)), 503);
    }
}
