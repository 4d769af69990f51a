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
use crate::sip::{IncomingRequest, Method, Request, Response};

/// How long a reg subscription is asked for; the PS refreshes it at half of what it got.
const REG_EXPIRES: u32 = 86_400;
/// How long the first PUBLISH waits for the reg subscription's 200 and first NOTIFY; also
/// how long a refresh waits for its answer.
const REG_WAIT: Duration = Duration::from_secs(2);
/// The longest wait before a refresh that got no answer is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(60);

/// One presentity's reg subscription.
pub(super) struct RegWatch {
    /// Its Call-ID (kept across refreshes, so a NOTIFY racing a refresh still matches).
    call_id: String,
    /// When to refresh it.
    until: Instant,
    /// What the S-CSCF granted, in seconds.
    granted: u64,
    /// Told when the first NOTIFY comes.
    first: Option<oneshot::Sender<()>>,
    /// The S-CSCF it was made at (a Route value), for a new subscription when the dialog is
    /// gone.
    route: String,
    /// The subscription dialog once the 2xx came (RFC 6665 §4.1.2.1: refreshes go in it).
    dialog: Option<RegDialog>,
}

/// The UAC side of a reg subscription's dialog (RFC 3261 §12.1.2).
#[derive(Clone)]
struct RegDialog {
    /// From, with our tag.
    local: String,
    /// To, with the S-CSCF's tag.
    remote: String,
    /// The S-CSCF's Contact.
    target: String,
    /// Record-Route of the 2xx, reversed.
    route_set: Vec<String>,
    /// Our last CSeq.
    cseq: u32,
}

/// How a reg SUBSCRIBE ended.
enum Outcome {
    /// 2xx, granting this many seconds.
    Granted(u64),
    /// No answer in time (or the S-CSCF is overloaded): try again later.
    NoAnswer,
    /// A final refusal (the subscription or the registration is gone).
    Refused(u16),
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
        {
            let Ok(st) = self.state.lock() else {
                return;
            };
            if st.reg_watch.contains_key(presentity) {
                return;
            }
        }
        if let Outcome::Refused(status) = self.subscribe_reg(presentity, route).await {
            tracing::info!(%presentity, status, "reg-event subscription refused: publications last until they expire");
        }
    }

    /// The tick: reg subscriptions due are refreshed while their presentity still publishes
    /// (else forgotten), so a de-registration hours later is still heard.
    pub(super) fn renew_reg_watches(&self, now: Instant) {
        let due: Vec<String> = {
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
                // Not again at the next tick while this refresh runs.
                w.until = now + RENEW_RETRY;
                due.push(p.clone());
                true
            });
            due
        };
        for presentity in due {
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move { me.renew_reg(&presentity).await });
        }
    }

    /// Refreshes `presentity`'s reg subscription in its dialog; when the S-CSCF no longer
    /// has it (481) subscribes anew; when that is refused too, the registration is gone and
    /// so is the presence. With no answer, tries again soon (the old subscription still runs).
    async fn renew_reg(&self, presentity: &str) {
        let (dialog, route, call_id) = {
            let Ok(st) = self.state.lock() else {
                return;
            };
            let Some(w) = st.reg_watch.get(presentity) else {
                return;
            };
            (w.dialog.clone(), w.route.clone(), w.call_id.clone())
        };
        let outcome = match dialog {
            Some(d) => match self.refresh_reg(presentity, &call_id, d).await {
                Outcome::Refused(_) => self.subscribe_reg(presentity, route).await,
                other => other,
            },
            None => self.subscribe_reg(presentity, route).await,
        };
        match outcome {
            Outcome::Granted(_) => {}
            Outcome::NoAnswer => {
                if let Ok(mut st) = self.state.lock() {
                    if let Some(w) = st.reg_watch.get_mut(presentity) {
                        let soon = Duration::from_secs((w.granted / 4).max(1));
                        w.until = Instant::now() + soon.min(RENEW_RETRY);
                    }
                }
            }
            Outcome::Refused(status) => {
                tracing::info!(%presentity, status, "reg-event subscription refused at renewal: the registration is gone");
                self.withdraw_presence(presentity);
            }
        }
    }

    /// One refresh SUBSCRIBE in the dialog (same Call-ID and tags, next CSeq).
    async fn refresh_reg(&self, presentity: &str, call_id: &str, mut d: RegDialog) -> Outcome {
        d.cseq += 1;
        let mut r = Request::new(Method::Subscribe, d.target.clone());
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", d.local.clone());
        r.headers.push("To", d.remote.clone());
        r.headers.push("Call-ID", call_id.to_string());
        r.headers.push("CSeq", format!("{} SUBSCRIBE", d.cseq));
        for route in &d.route_set {
            r.headers.push("Route", route.clone());
        }
        r.headers.push("Contact", self.contact());
        r.headers.push("Event", "reg");
        r.headers.push("Accept", "application/reginfo+xml");
        r.headers.push("Expires", REG_EXPIRES.to_string());
        if let Ok(mut st) = self.state.lock() {
            if let Some(w) = st.reg_watch.get_mut(presentity) {
                if let Some(wd) = w.dialog.as_mut() {
                    wd.cseq = d.cseq;
                }
            }
        }
        let now = Instant::now();
        let outcome = self.send_reg_subscribe(r).await;
        if let Outcome::Granted(granted) = outcome {
            if let Ok(mut st) = self.state.lock() {
                if let Some(w) = st.reg_watch.get_mut(presentity) {
                    w.granted = granted;
                    w.until = now + Duration::from_secs(granted / 2);
                }
            }
        }
        outcome
    }

    /// A new reg subscription for `presentity` along `route` (replacing what the watch held);
    /// waits for its 2xx and first NOTIFY, [`REG_WAIT`] each.
    async fn subscribe_reg(&self, presentity: &str, route: String) -> Outcome {
        let now = Instant::now();
        let call_id = crate::sip::new_call_id(&self.ep.local_addr().ip().to_string());
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut st) = self.state.lock() else {
                return Outcome::NoAnswer;
            };
            if !st.reg_watch.contains_key(presentity) && st.reg_watch.len() >= st.max_presentities {
                // Bounded: the oldest lapsed ones go first; with none lapsed, no watch.
                st.reg_watch.retain(|_, w| w.until > now);
                if st.reg_watch.len() >= st.max_presentities {
                    return Outcome::NoAnswer;
                }
            }
            st.reg_watch.insert(
                presentity.to_string(),
                RegWatch {
                    call_id: call_id.clone(),
                    until: now + RENEW_RETRY,
                    granted: u64::from(REG_EXPIRES),
                    first: Some(tx),
                    route: route.clone(),
                    dialog: None,
                },
            );
        }
        let me = format!("sip:{}", self.host);
        let local = format!("<{me}>;tag={}", crate::sip::new_tag());
        let mut r = Request::new(Method::Subscribe, presentity.to_string());
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", local.clone());
        r.headers.push("To", format!("<{presentity}>"));
        r.headers.push("Call-ID", call_id.clone());
        r.headers.push("CSeq", "1 SUBSCRIBE");
        r.headers.push("Route", route);
        r.headers.push("P-Asserted-Identity", format!("<{me}>"));
        r.headers.push("Contact", self.contact());
        r.headers.push("Event", "reg");
        r.headers.push("Accept", "application/reginfo+xml");
        r.headers.push("Expires", REG_EXPIRES.to_string());
        let (outcome, resp) = self.send_reg_subscribe_full(r).await;
        match outcome {
            Outcome::Granted(granted) => {
                let dialog = resp.map(|resp| RegDialog {
                    local,
                    remote: resp.headers.get("To").unwrap_or_default().to_string(),
                    target: resp
                        .headers
                        .get("Contact")
                        .and_then(|c| crate::sip::NameAddr::parse(c).ok())
                        .map(|na| na.uri.to_string())
                        .unwrap_or_else(|| presentity.to_string()),
                    route_set: resp
                        .headers
                        .values("Record-Route")
                        .iter()
                        .rev()
                        .map(|s| s.to_string())
                        .collect(),
                    cseq: 1,
                });
                if let Ok(mut st) = self.state.lock() {
                    if let Some(w) = st.reg_watch.get_mut(presentity) {
                        if w.call_id == call_id {
                            w.granted = granted;
                            w.until = now + Duration::from_secs(granted / 2);
                            w.dialog = dialog;
                        }
                    }
                }
                let _ = tokio::time::timeout(REG_WAIT, rx).await;
            }
            Outcome::NoAnswer | Outcome::Refused(_) => self.unwatch(&call_id),
        }
        outcome
    }

    async fn send_reg_subscribe(&self, r: Request) -> Outcome {
        self.send_reg_subscribe_full(r).await.0
    }

    /// Sends a reg SUBSCRIBE (Via added) and reads its final answer, within [`REG_WAIT`].
    async fn send_reg_subscribe_full(&self, mut r: Request) -> (Outcome, Option<Response>) {
        let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
            return (Outcome::Refused(404), None);
        };
        r.headers.push_front("Via", self.ep.new_via(t));
        let answer =
            tokio::time::timeout(REG_WAIT, self.ep.send_request(r, dest, t).final_response()).await;
        match answer {
            Ok(resp) if resp.status / 100 == 2 => {
                // The S-CSCF may grant less than asked.
                let granted = resp
                    .headers
                    .get("Expires")
                    .and_then(|e| e.trim().parse::<u64>().ok())
                    .unwrap_or(u64::from(REG_EXPIRES));
                (Outcome::Granted(granted), Some(resp))
            }
            Ok(resp) if !matches!(resp.status, 408 | 500 | 503 | 504) => {
                (Outcome::Refused(resp.status), Some(resp))
            }
            _ => (Outcome::NoAnswer, None),
        }
    }

    fn unwatch(&self, call_id: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.reg_watch.retain(|_, w| w.call_id != call_id);
        }
    }

    /// Every publication of `presentity` goes; its watchers hear it is closed.
    fn withdraw_presence(&self, presentity: &str) {
        let now = Instant::now();
        let contact = self.contact();
        let notifys = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            st.reg_watch.remove(presentity);
            let n = st.esc.withdraw(now, presentity);
            tracing::info!(%presentity, publications = n, "registration ended: presence withdrawn");
            st.drain(now, &contact)
        };
        self.ep
            .note(|| format!("{presentity} is no longer registered: offline"));
        self.send_all(notifys);
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
        // Ended: the presentity's registration is terminated, or not there (`init`).
        let ended = crate::sip::reginfo::registration_states(&body)
            .iter()
            .any(|(aor, state)| *aor == presentity && state != "active");
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
        if ended {
            self.withdraw_presence(&presentity);
        } else if finished {
            self.unwatch(&call_id);
        }
    }
}
