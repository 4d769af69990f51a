//! A page's presence subscription through the RTCWeb gateway (patent KR101499354B1 figure 9),
//! socket-free: the page's `SUBSCRIBE` becomes a SIP SUBSCRIBE for the `presence` event
//! (RFC 6665, RFC 3856) via the S-CSCF; its answers and NOTIFYs come back to the page.
//!
//! ```text
//!  page                 gateway                          S-CSCF / presentity
//!   |--SUBSCRIBE(to)---->|                                  |   S906
//!   |<--OK(SUBSCRIBE)----|                                  |   S908 (the gateway's receipt)
//!   |                    |--SUBSCRIBE (Event: presence)---->|   S910-S912
//!   |                    |<-200 OK--------------------------|   S914
//!   |<--OK(SUBSCRIBE)----|                                  |   S916-S918
//!   |                    |<-NOTIFY (PIDF)-------------------|   S920
//!   |                    |--200 (NOTIFY)------------------>*|   RFC 6665 §4.1.3
//!   |<--NOTIFY(body)-----|                                  |   S922-S924
//! ```
//!
//! Not drawn in figure 9, from RFC 6665: the gateway refreshes the subscription before it
//! expires (§4.1.2.1, at three quarters of the granted `Expires`), ends it with `Expires: 0`
//! when the page sends `SUBSCRIBE` with `expires: 0` or goes away (§4.1.2.3), and a NOTIFY may
//! come before the 200 (§4.1.2.4). A failure status reaches the page as `ERROR` for
//! `SUBSCRIBE` with the status line as reason; a terminating NOTIFY carries
//! `reason: "terminated;reason=..."`.

use std::collections::VecDeque;
use std::time::Instant;

use super::call::{contact_uri, cseq_of, via, CallConfig, CallOutput, SipDialog};
use super::message::{Kind, WebMessage};
use super::route::{DEFAULT_SUBSCRIBE_EXPIRES, USER_AGENT};
use crate::sip::{new_call_id, new_tag, CSeq, Method, Request, Response};

/// Where the subscription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionPhase {
    /// SUBSCRIBE sent, no 2xx yet.
    Subscribing,
    /// Granted.
    Active,
    /// Ended (refused, unsubscribed, or terminated by the notifier).
    Terminated,
}

/// One page's subscription to one presentity.
#[derive(Debug)]
pub struct Subscription {
    session: Option<String>,
    presentity: String,
    cfg: CallConfig,
    phase: SubscriptionPhase,
    first: Request,
    dialog: Option<SipDialog>,
    expires: u32,
    /// CSeq of the SUBSCRIBE in flight.
    pending: Option<u32>,
    refresh_at: Option<Instant>,
    attached: bool,
    out: VecDeque<CallOutput>,
}

impl Subscription {
    /// The page's `SUBSCRIBE` (figure 9 S906): OK to the page, SUBSCRIBE to the IMS. `user` is
    /// the page's web identity. An unusable message is refused with the `ERROR` to send.
    pub fn subscribe(
        _now: Instant,
        cfg: CallConfig,
        msg: &WebMessage,
        user: &str,
    ) -> Result<Subscription, Box<WebMessage>> {
        let session = msg.session.as_deref();
        let (Kind::Subscribe, Some(to)) = (msg.kind, &msg.to) else {
            return Err(Box::new(WebMessage::error(
                session,
                Some(msg.kind),
                "SUBSCRIBE needs to",
            )));
        };
        let expires = msg.expires.unwrap_or(DEFAULT_SUBSCRIBE_EXPIRES);
        let mut r = Request::new(Method::Subscribe, to.clone());
        r.headers.push("Via", via(&cfg));
        r.headers.push("Max-Forwards", "70");
        if let Some(route) = &cfg.outbound {
            r.headers.push("Route", route.clone());
        }
        r.headers
            .push("From", format!("<{user}>;tag={}", new_tag()));
        r.headers.push("To", format!("<{to}>"));
        let host = cfg.sent_by.rsplit_once(':').map_or(&*cfg.sent_by, |h| h.0);
        r.headers.push("Call-ID", new_call_id(host));
        r.headers.push("CSeq", "1 SUBSCRIBE");
        r.headers.push("Contact", cfg.contact.clone());
        r.headers.push("P-Preferred-Identity", format!("<{user}>"));
        r.headers.push("Event", "presence");
        r.headers.push("Accept", "application/pidf+xml");
        r.headers.push("Expires", expires.to_string());
        r.headers.push("User-Agent", USER_AGENT);
        let mut s = Subscription {
            session: session.map(str::to_string),
            presentity: to.clone(),
            cfg,
            phase: SubscriptionPhase::Subscribing,
            first: r.clone(),
            dialog: None,
            expires,
            pending: Some(1),
            refresh_at: None,
            attached: true,
            out: VecDeque::new(),
        };
        s.send_page(s.ok());
        s.out.push_back(CallOutput::Request(r));
        Ok(s)
    }

    /// Our tag in the subscription dialog (the SUBSCRIBE's From tag).
    pub fn local_tag(&self) -> &str {
        super::call::tag_of(self.first.headers.get("From"))
    }

    /// The presentity.
    pub fn presentity(&self) -> &str {
        &self.presentity
    }

    /// The SIP Call-ID.
    pub fn call_id(&self) -> &str {
        self.first.headers.get("Call-ID").unwrap_or("")
    }

    /// Where it is.
    pub fn phase(&self) -> SubscriptionPhase {
        self.phase
    }

    /// Ended and nothing in flight: the node may forget it.
    pub fn is_finished(&self) -> bool {
        self.phase == SubscriptionPhase::Terminated && self.pending.is_none()
    }

    /// The next queued output.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.out.pop_front()
    }

    /// When [`Subscription::handle_timeout`] must next be called (the refresh).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.refresh_at
    }

    fn ok(&self) -> WebMessage {
        let mut m = WebMessage::ok(self.session.as_deref(), Kind::Subscribe);
        m.to = Some(self.presentity.clone());
        m
    }

    fn send_page(&mut self, m: WebMessage) {
        if self.attached {
            self.out.push_back(CallOutput::Web(m));
        }
    }

    /// The page's later `SUBSCRIBE` for the same presentity: `expires: 0` ends it; anything
    /// else is refused (the gateway refreshes by itself).
    pub fn handle_web(&mut self, _now: Instant, msg: &WebMessage) {
        if msg.kind == Kind::Subscribe
            && msg.expires == Some(0)
            && self.phase != SubscriptionPhase::Terminated
        {
            self.unsubscribe();
            let ok = self.ok();
            return self.send_page(ok);
        }
        let e = WebMessage::error(
            self.session.as_deref(),
            Some(msg.kind),
            "already subscribed (expires 0 ends it)",
        );
        self.send_page(e);
    }

    /// The page went away: the subscription ends.
    pub fn web_disconnected(&mut self, _now: Instant) {
        self.attached = false;
        if self.phase != SubscriptionPhase::Terminated {
            self.unsubscribe();
        }
    }

    fn unsubscribe(&mut self) {
        self.expires = 0;
        self.phase = SubscriptionPhase::Terminated;
        self.refresh_at = None;
        self.send_subscribe();
    }

    /// A SUBSCRIBE in the dialog (refresh or end), or the first one again without a dialog.
    fn send_subscribe(&mut self) {
        let mut r = match self.dialog.as_mut() {
            Some(d) => d.request(Method::Subscribe, &self.cfg),
            None => {
                // No dialog yet (no 2xx, no NOTIFY): nothing to refresh or end in SIP; the
                // first 2xx will find the phase Terminated and end it then.
                return;
            }
        };
        r.headers.push("Contact", self.cfg.contact.clone());
        r.headers.push("Event", "presence");
        r.headers.push("Accept", "application/pidf+xml");
        r.headers.push("Expires", self.expires.to_string());
        self.pending = cseq_of(&r).map(|c| c.seq);
        self.out.push_back(CallOutput::Request(r));
    }

    /// A response from the IMS side.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        let cseq = resp.headers.get("CSeq").and_then(|c| CSeq::parse(c).ok());
        let Some(cseq) = cseq.filter(|c| c.method == Method::Subscribe) else {
            return;
        };
        if resp.headers.get("Call-ID") != Some(self.call_id())
            || self.pending != Some(cseq.seq)
            || resp.is_provisional()
        {
            return;
        }
        self.pending = None;
        if !resp.is_success() {
            if self.phase != SubscriptionPhase::Terminated {
                let why = format!("{} {}", resp.status, resp.reason);
                let e = WebMessage::error(self.session.as_deref(), Some(Kind::Subscribe), why);
                self.send_page(e);
            }
            self.phase = SubscriptionPhase::Terminated;
            self.refresh_at = None;
            return;
        }
        if self.dialog.is_none() {
            self.dialog = Some(SipDialog {
                call_id: self.call_id().to_string(),
                local: self.first.headers.get("From").unwrap_or("").to_string(),
                remote: resp.headers.get("To").unwrap_or("").to_string(),
                remote_target: contact_uri(resp.headers.get("Contact"))
                    .unwrap_or_else(|| self.first.uri.clone()),
                route_set: {
                    let mut rs: Vec<String> = resp
                        .headers
                        .get_all("Record-Route")
                        .map(str::to_string)
                        .collect();
                    rs.reverse();
                    rs
                },
                cseq: cseq.seq,
            });
        }
        match self.phase {
            SubscriptionPhase::Subscribing => {
                self.phase = SubscriptionPhase::Active;
                self.send_page(self.ok());
            }
            // The page ended it while the first SUBSCRIBE was out: end it now.
            SubscriptionPhase::Terminated if self.expires == 0 && cseq.seq == 1 => {
                self.send_subscribe();
                return;
            }
            _ => {}
        }
        if self.phase == SubscriptionPhase::Active {
            let granted = resp
                .headers
                .get("Expires")
                .and_then(|e| e.trim().parse::<u32>().ok())
                .unwrap_or(self.expires);
            self.refresh_at = (granted > 0)
                .then(|| now + std::time::Duration::from_secs(u64::from(granted) * 3 / 4));
        }
    }

    /// A NOTIFY from the IMS side (S920): 200 to it, NOTIFY to the page (S924).
    pub fn handle_request(&mut self, _now: Instant, req: &Request) {
        let event_ok = req
            .headers
            .get("Event")
            .is_some_and(|e| e.split(';').next().unwrap_or("").trim() == "presence");
        if req.method != Method::Notify
            || req.headers.get("Call-ID") != Some(self.call_id())
            || !event_ok
        {
            let status = if req.method == Method::Notify {
                481
            } else {
                405
            };
            return self
                .out
                .push_back(CallOutput::Response(req.response(status, None)));
        }
        self.out
            .push_back(CallOutput::Response(req.response(200, None)));
        if self.dialog.is_none() {
            // A NOTIFY before the 200 makes the dialog (RFC 6665 §4.1.2.4).
            self.dialog = Some(SipDialog {
                call_id: self.call_id().to_string(),
                local: self.first.headers.get("From").unwrap_or("").to_string(),
                remote: req.headers.get("From").unwrap_or("").to_string(),
                remote_target: contact_uri(req.headers.get("Contact"))
                    .unwrap_or_else(|| self.first.uri.clone()),
                route_set: req
                    .headers
                    .get_all("Record-Route")
                    .map(str::to_string)
                    .collect(),
                cseq: 1,
            });
        }
        let state = req.headers.get("Subscription-State").unwrap_or("");
        let terminated = state.trim_start().starts_with("terminated");
        let mut m = WebMessage::new(Kind::Notify);
        m.session = self.session.clone();
        m.from = Some(self.presentity.clone());
        m.body = (!req.body.is_empty()).then(|| String::from_utf8_lossy(&req.body).into_owned());
        if terminated {
            m.reason = Some(state.chars().filter(|c| !c.is_control()).collect());
            self.phase = SubscriptionPhase::Terminated;
            self.refresh_at = None;
        }
        self.send_page(m);
    }

    /// The refresh is due (RFC 6665 §4.1.2.1).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.refresh_at.is_some_and(|at| at <= now) {
            self.refresh_at = None;
            self.send_subscribe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "sip:bob@ims.lab";

    fn cfg() -> CallConfig {
        CallConfig::new("TCP", "127.0.0.1:5070", "<sip:rtcweb@127.0.0.1:5070>")
    }

    fn show(o: &CallOutput) -> String {
        match o {
            CallOutput::Web(m) => match m.of {
                Some(k) => format!("web {}({k})", m.kind),
                None => format!("web {}", m.kind),
            },
            CallOutput::Request(r) => format!("sip {}", r.method),
            CallOutput::Response(r) => format!("sip {}", r.status),
        }
    }

    fn step(s: &mut Subscription) -> (Vec<String>, Vec<CallOutput>) {
        let out: Vec<CallOutput> = std::iter::from_fn(|| s.poll_output()).collect();
        (out.iter().map(show).collect(), out)
    }

    fn page_subscribe(expires: Option<u32>) -> WebMessage {
        let mut m = WebMessage::new(Kind::Subscribe);
        m.to = Some(BOB.into());
        m.expires = expires;
        m
    }

    fn notify(sub: &Request, state: &str, body: &str) -> Request {
        let mut n = Request::new(Method::Notify, "sip:rtcweb@127.0.0.1:5070");
        n.headers.push("From", "<sip:bob@ims.lab>;tag=ps1");
        n.headers
            .push("To", sub.headers.get("From").unwrap().to_string());
        n.headers
            .push("Call-ID", sub.headers.get("Call-ID").unwrap().to_string());
        n.headers.push("CSeq", "1 NOTIFY");
        n.headers.push("Event", "presence");
        n.headers.push("Subscription-State", state.to_string());
        n.headers.push("Contact", "<sip:ps@127.0.0.1:5080>");
        n.body = bytes::Bytes::copy_from_slice(body.as_bytes());
        n
    }

    fn granted(sub: &Request, status: u16, expires: &str) -> Response {
        let mut r = sub.response(status, None);
        r.ensure_to_tag();
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Contact", "<sip:ps@127.0.0.1:5080>");
        r
    }

    #[test]
    fn figure_9_step_by_step() {
        let t = Instant::now();
        // S906-S912: SUBSCRIBE -> OK, and the SIP SUBSCRIBE.
        let mut s =
            Subscription::subscribe(t, cfg(), &page_subscribe(None), "sip:alice@ims.lab").unwrap();
        let (names, out) = step(&mut s);
        assert_eq!(names, ["web OK(SUBSCRIBE)", "sip SUBSCRIBE"]);
        let CallOutput::Request(sub) = &out[1] else {
            panic!()
        };
        assert_eq!(sub.uri, BOB);
        assert_eq!(sub.headers.get("Event"), Some("presence"));
        assert_eq!(sub.headers.get("Accept"), Some("application/pidf+xml"));
        assert_eq!(sub.headers.get("Expires"), Some("3600"));
        assert_eq!(s.phase(), SubscriptionPhase::Subscribing);
        // S914-S918: 200 -> OK.
        s.handle_response(t, &granted(sub, 200, "600"));
        assert_eq!(step(&mut s).0, ["web OK(SUBSCRIBE)"]);
        assert_eq!(s.phase(), SubscriptionPhase::Active);
        // S920-S924: NOTIFY -> 200 and NOTIFY to the page with the PIDF.
        s.handle_request(t, &notify(sub, "active;expires=600", "<presence/>"));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["sip 200", "web NOTIFY"]);
        let CallOutput::Web(m) = &out[1] else {
            panic!()
        };
        assert_eq!(m.from.as_deref(), Some(BOB));
        assert_eq!(m.body.as_deref(), Some("<presence/>"));
        assert_eq!(m.reason, None);
        // RFC 6665 §4.1.2.1: refreshed at 3/4 of the granted 600 s, in the dialog.
        assert_eq!(
            s.poll_timeout(),
            Some(t + std::time::Duration::from_secs(450))
        );
        s.handle_timeout(t + std::time::Duration::from_secs(450));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["sip SUBSCRIBE"]);
        let CallOutput::Request(re) = &out[0] else {
            panic!()
        };
        assert_eq!(re.uri, "sip:ps@127.0.0.1:5080");
        assert_eq!(re.headers.get("CSeq"), Some("2 SUBSCRIBE"));
        assert!(re.headers.get("To").unwrap().contains("tag="));
        s.handle_response(t, &granted(re, 200, "600"));
        assert!(
            step(&mut s).0.is_empty(),
            "a refresh is not the page's business"
        );
        // The page ends it.
        s.handle_web(t, &page_subscribe(Some(0)));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["sip SUBSCRIBE", "web OK(SUBSCRIBE)"]);
        let CallOutput::Request(end) = &out[0] else {
            panic!()
        };
        assert_eq!(end.headers.get("Expires"), Some("0"));
        assert_eq!(s.phase(), SubscriptionPhase::Terminated);
        s.handle_response(t, &granted(end, 200, "0"));
        assert!(s.is_finished());
    }

    #[test]
    fn refused_or_terminated_subscriptions_tell_the_page() {
        let t = Instant::now();
        let mut s =
            Subscription::subscribe(t, cfg(), &page_subscribe(Some(60)), "sip:a@x").unwrap();
        let (_, out) = step(&mut s);
        let CallOutput::Request(sub) = &out[1] else {
            panic!()
        };
        s.handle_response(t, &granted(sub, 404, "0"));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["web ERROR(SUBSCRIBE)"]);
        let CallOutput::Web(m) = &out[0] else {
            panic!()
        };
        assert_eq!(m.reason.as_deref(), Some("404 Not Found"));
        assert!(s.is_finished());

        let mut s =
            Subscription::subscribe(t, cfg(), &page_subscribe(Some(60)), "sip:a@x").unwrap();
        let (_, out) = step(&mut s);
        let CallOutput::Request(sub) = &out[1] else {
            panic!()
        };
        // A NOTIFY before the 200 (RFC 6665 §4.1.2.4), then one that ends it.
        s.handle_request(t, &notify(sub, "active", "<p1/>"));
        assert_eq!(step(&mut s).0, ["sip 200", "web NOTIFY"]);
        s.handle_request(t, &notify(sub, "terminated;reason=noresource", ""));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["sip 200", "web NOTIFY"]);
        let CallOutput::Web(m) = &out[1] else {
            panic!()
        };
        assert_eq!(m.reason.as_deref(), Some("terminated;reason=noresource"));
        assert_eq!(s.phase(), SubscriptionPhase::Terminated);
        // A NOTIFY of another dialog: 481.
        let mut other = notify(sub, "active", "");
        other.headers.set("Call-ID", "x@y");
        s.handle_request(t, &other);
        assert_eq!(step(&mut s).0, ["sip 481"]);
        // Another SUBSCRIBE from the page for it: ERROR.
        s.handle_web(t, &page_subscribe(None));
        assert_eq!(step(&mut s).0, ["web ERROR(SUBSCRIBE)"]);
    }

    #[test]
    fn page_gone_ends_the_subscription() {
        let t = Instant::now();
        let mut s = Subscription::subscribe(t, cfg(), &page_subscribe(None), "sip:a@x").unwrap();
        let (_, out) = step(&mut s);
        let CallOutput::Request(sub) = &out[1] else {
            panic!()
        };
        s.handle_response(t, &granted(sub, 200, "3600"));
        step(&mut s);
        s.web_disconnected(t);
        assert_eq!(step(&mut s).0, ["sip SUBSCRIBE"]);
        assert_eq!(s.poll_timeout(), None);
        // Gone before the first 2xx: ended when it comes.
        let mut s = Subscription::subscribe(t, cfg(), &page_subscribe(None), "sip:a@x").unwrap();
        let (_, out) = step(&mut s);
        let CallOutput::Request(sub) = &out[1] else {
            panic!()
        };
        s.web_disconnected(t);
        assert!(step(&mut s).0.is_empty());
        s.handle_response(t, &granted(sub, 200, "3600"));
        let (names, out) = step(&mut s);
        assert_eq!(names, ["sip SUBSCRIBE"]);
        let CallOutput::Request(end) = &out[0] else {
            panic!()
        };
        assert_eq!(end.headers.get("Expires"), Some("0"));
    }
}
