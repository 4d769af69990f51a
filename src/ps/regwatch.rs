//! The PS learns when a publisher is no longer registered (TS 24.141 §5.3; TS 24.229
//! §5.4.2.1.1 lets an AS its user's iFCs name subscribe to the user's reg event): before it
//! answers a presentity's first PUBLISH, it subscribes to the presentity's registration state
//! at the S-CSCF that handed it the PUBLISH (RFC 3680, `Event: reg`) and waits for the first
//! NOTIFY (bounded). When a reg NOTIFY says the registration ended, every publication of the
//! presentity goes ([`crate::presence::publication::EventStateCompositor::withdraw`]): its
//! watchers hear it is closed, and when it was last seen.
//!
//! ```text
//!   S-CSCF -> PS  PUBLISH (first of alice)
//!   PS -> S-CSCF  SUBSCRIBE sip:alice@…  Event: reg      (Route: the S-CSCF of the PUBLISH)
//!   S-CSCF -> PS  200  +  NOTIFY (reginfo, active)         the PS answers 200
//!   PS -> S-CSCF  200 (PUBLISH)
//!   …  alice de-registers  …
//!   S-CSCF -> PS  NOTIFY (reginfo, terminated)  ->  withdraw -> NOTIFYs to alice's watchers
//! ```

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::PresenceServer;
use crate::cscf::next_hop;
use crate::sip::{IncomingRequest, Method, Request};

/// How long a reg subscription is asked for; the PS subscribes again after it lapses.
const REG_EXPIRES: u32 = 86_400;
/// How long the first PUBLISH waits for the reg subscription's 200 and first NOTIFY.
const REG_WAIT: Duration = Duration::from_secs(2);
/// When a renewal that got no answer is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(60);

/// One presentity's reg subscription.
pub(super) struct RegWatch {
    /// Its Call-ID.
    call_id: String,
    /// When to subscribe again.
    until: Instant,
    /// Told when the first NOTIFY comes.
    first: Option<oneshot::Sender<()>>,
    /// The S-CSCF it was made at (a Route value), for its renewal.
    route: String,
}

/// True for `Event: reg`.
pub(super) fn is_reg_notify(req: &Request) -> bool {
    req.method == Method::Notify
        && req.headers.get("Event").is_some_and(|e| {
            e.split(';')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("reg"))
        })
}

impl PresenceServer {
    /// Subscribes to `presentity`'s registration at the S-CSCF that sent `publish`, unless a
    /// subscription is alive; returns once it is set up (its 200 and first NOTIFY) or failed,
    /// within [`REG_WAIT`] each.
    pub(super) async fn watch_registration(&self, presentity: &str, publish: &Request) {
        let Some(via) = publish
            .headers
            .values("Via")
            .first()
            .and_then(|v| crate::sip::Via::parse(v).ok())
        else {
            return;
        };
        let route = format!(
            "<sip:{};transport={};lr>",
            via.sent_by(),
            via.transport.to_ascii_lowercase()
        );
        self.subscribe_reg(presentity, route, false).await;
    }

    /// The tick: reg subscriptions due for renewal are made anew while their presentity still
    /// publishes (else forgotten), so a de-registration hours later is still heard.
    pub(super) fn renew_reg_watches(&self, now: Instant) {
        let due: Vec<(String, String)> = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            let st = &mut *st;
            let mut due = Vec::new();
            let esc = &st.esc;
            st.reg_watch.retain(|p, w| {
                if w.until > now {
                    return true;
                }
                if esc.publications(p) == 0 {
                    return false;
                }
                // Not again at the next tick while this renewal runs.
                w.until = now + RENEW_RETRY;
                due.push((p.clone(), w.route.clone()));
                true
            });
            due
        };
        for (presentity, route) in due {
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move { me.subscribe_reg(&presentity, route, true).await });
        }
    }

    /// Subscribes to `presentity`'s reg event along `route` (a new subscription replaces a
    /// `renew`ed one; without `renew`, a live one is kept).
    async fn subscribe_reg(&self, presentity: &str, route: String, renew: bool) {
        let now = Instant::now();
        let call_id = crate::sip::new_call_id(&self.ep.local_addr().ip().to_string());
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            if !renew && st.reg_watch.get(presentity).is_some_and(|w| w.until > now) {
                return;
            }
            if !st.reg_watch.contains_key(presentity) && st.reg_watch.len() >= st.max_presentities {
                // Bounded: the oldest lapsed ones go first; with none lapsed, no watch.
                st.reg_watch.retain(|_, w| w.until > now);
                if st.reg_watch.len() >= st.max_presentities {
                    return;
                }
            }
            st.reg_watch.insert(
                presentity.to_string(),
                RegWatch {
                    call_id: call_id.clone(),
                    until: now + Duration::from_secs(u64::from(REG_EXPIRES) / 2),
                    first: Some(tx),
                    route: route.clone(),
                },
            );
        }
        let me = format!("sip:{}", self.host);
        let mut r = Request::new(Method::Subscribe, presentity.to_string());
        r.headers.push("Max-Forwards", "70");
        r.headers
            .push("From", format!("<{me}>;tag={}", crate::sip::new_tag()));
        r.headers.push("To", format!("<{presentity}>"));
        r.headers.push("Call-ID", call_id.clone());
        r.headers.push("CSeq", "1 SUBSCRIBE");
        r.headers.push("Route", route);
        r.headers.push("P-Asserted-Identity", format!("<{me}>"));
        r.headers.push("Contact", self.contact());
        r.headers.push("Event", "reg");
        r.headers.push("Accept", "application/reginfo+xml");
        r.headers.push("Expires", REG_EXPIRES.to_string());
        let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
            self.unwatch(&call_id);
            return;
        };
        r.headers.push_front("Via", self.ep.new_via(t));
        let answer =
            tokio::time::timeout(REG_WAIT, self.ep.send_request(r, dest, t).final_response()).await;
        match answer {
            Ok(resp) if resp.status / 100 == 2 => {
                // The S-CSCF may grant less than asked: subscribe again at half of it.
                let granted = resp
                    .headers
                    .get("Expires")
                    .and_then(|e| e.trim().parse::<u64>().ok())
                    .unwrap_or(u64::from(REG_EXPIRES));
                if let Ok(mut st) = self.state.lock() {
                    if let Some(w) = st.reg_watch.get_mut(presentity) {
                        w.until = now + Duration::from_secs(granted / 2);
                    }
                }
                let _ = tokio::time::timeout(REG_WAIT, rx).await;
            }
            other => {
                let status = other.map(|r| r.status).unwrap_or(408);
                tracing::info!(%presentity, status, "reg-event subscription refused: publications last until they expire");
                self.unwatch(&call_id);
            }
        }
    }

    fn unwatch(&self, call_id: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.reg_watch.retain(|_, w| w.call_id != call_id);
        }
    }

    /// A reg-event NOTIFY: only in one of our reg subscriptions and from the core (481
    /// otherwise). A registration that ended withdraws the presentity's publications.
    pub(super) fn on_reg_notify(&self, inc: IncomingRequest) {
        let req = &inc.request;
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let found = self.state.lock().ok().and_then(|mut st| {
            let (p, w) = st
                .reg_watch
                .iter_mut()
                .find(|(_, w)| w.call_id == call_id)?;
            Some((p.clone(), w.first.take()))
        });
        let Some((presentity, first)) = found.filter(|_| self.ep.is_trusted(inc.source)) else {
            let mut r = req.response(481, Some("Subscription Does Not Exist"));
            r.ensure_to_tag();
            inc.tx.respond(r);
            return;
        };
        let body = String::from_utf8_lossy(&req.body);
        let ended = crate::sip::reginfo::terminated_aors(&body).contains(&presentity);
        let finished = req
            .headers
            .get("Subscription-State")
            .is_some_and(|s| s.trim_start().starts_with("terminated"));
        let mut ok = req.response(200, None);
        ok.headers.push("Contact", self.contact());
        inc.tx.respond(ok);
        // The first PUBLISH is answered after this 200 (a ladder in one order).
        if let Some(first) = first {
            let _ = first.send(());
        }
        if finished {
            self.unwatch(&call_id);
        }
        if ended {
            let now = Instant::now();
            let contact = self.contact();
            let notifys = {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                let n = st.esc.withdraw(now, &presentity);
                tracing::info!(%presentity, publications = n, "registration ended: presence withdrawn");
                st.drain(now, &contact)
            };
            self.ep
                .note(|| format!("{presentity} is no longer registered: offline"));
            self.send_all(notifys);
        }
    }
}
