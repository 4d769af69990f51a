//! The gateway's SIP side: requests and responses from the core into the cores of its calls
//! and subscriptions, and the driver that carries out what the cores ask for (client
//! transactions, ACKs, responses in their server transactions, frames to pages).

use std::time::{Duration, Instant};

use super::{user_part, Action, Core, RtcwebGateway, State};
use crate::cscf::next_hop;
use crate::rtcweb::call::Call;
use crate::rtcweb::message::WebMessage;
use crate::rtcweb::route::{Destination, Route};
use crate::sip::{CSeq, IncomingRequest, Method, NameAddr, Request, Response, SipMessage};

impl RtcwebGateway {
    // ----- the SIP side ---------------------------------------------------------------

    pub(super) fn on_request(&self, inc: IncomingRequest) {
        let now = Instant::now();
        let IncomingRequest {
            request: req, tx, ..
        } = inc;
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let mut acts = Vec::new();
        let mut to_bridge = None;
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            if let Some(key) = tx_key_of_request(&req) {
                if req.method != Method::Ack {
                    if st.txs.len() >= self.cfg.max_sessions.saturating_mul(4) {
                        tx.respond(req.response(503, None));
                        return;
                    }
                    st.txs.insert(key, tx);
                }
            }
            let to_tag = crate::rtcweb::call::tag_of(req.headers.get("To"));
            match session_of(st, &call_id, to_tag) {
                Some(id) => {
                    if let Some(e) = st.sessions.get_mut(&id) {
                        match &mut e.core {
                            Core::Call(c) => c.handle_request(now, &req),
                            Core::Sub(s) => s.handle_request(now, &req),
                        }
                    }
                    self.drain(st, &id, &mut acts);
                }
                None if req.method == Method::Invite && !crate::sip::dialog::in_dialog(&req) => {
                    // A page's call to a page comes back with the page's own offer
                    // (figure 6): its Call-ID is one of ours, and its SDP passes untouched.
                    if self.bridge.is_some()
                        && !st.by_call_id.contains_key(&call_id)
                        && !req.body.is_empty()
                        && !super::media::is_webrtc(&req.body)
                    {
                        to_bridge = Some(req);
                    } else {
                        let _ = self.incoming_call(st, now, &req, &mut acts);
                    }
                }
                None if req.method == Method::Ack => {}
                None => {
                    let status = if req.method == Method::Options {
                        200
                    } else if crate::sip::dialog::in_dialog(&req)
                        || matches!(req.method, Method::Notify | Method::Cancel)
                    {
                        481
                    } else {
                        405
                    };
                    let mut r = req.response(status, None);
                    r.ensure_to_tag();
                    if status != 481 {
                        r.headers.push("Allow", crate::rtcweb::route::ALLOW);
                    }
                    acts.push(Action::Respond(r));
                }
            }
        }
        self.perform(acts);
        if let (Some(req), Some(me)) = (to_bridge, self.me.upgrade()) {
            tokio::spawn(async move { me.incoming_bridged_call(req).await });
        }
    }

    /// A phone's INVITE with a plain offer: the offer goes through the bridge first, then the
    /// call reaches the page as any other.
    async fn incoming_bridged_call(&self, mut req: Request) {
        match self.bridge_incoming(&mut req).await {
            Ok(leg) => {
                let mut acts = Vec::new();
                {
                    let Ok(mut st) = self.st.lock() else { return };
                    let st = &mut *st;
                    let id = self.incoming_call(st, Instant::now(), &req, &mut acts);
                    if let Some(leg) = leg {
                        self.keep_incoming_leg(st, id.as_deref(), leg);
                    }
                }
                self.perform(acts);
            }
            Err(e) => {
                let why = e.to_string();
                self.ep
                    .note(|| format!("media bridge refused the phone's offer: {why}"));
                let mut r = super::media::not_acceptable(&req, &why);
                r.ensure_to_tag();
                self.respond(r);
            }
        }
    }

    /// An INVITE for one of our web users (figure 6: a session message whose destination is
    /// the web): the user is found by the Request-URI's user part (their Contact).
    fn incoming_call(
        &self,
        st: &mut State,
        now: Instant,
        req: &Request,
        acts: &mut Vec<Action>,
    ) -> Option<String> {
        let target = crate::sip::Uri::parse(&req.uri)
            .ok()
            .and_then(|u| u.user().map(str::to_string))
            .and_then(|u| st.contacts.get(&u).cloned());
        let attached = target
            .as_ref()
            .and_then(|t| st.users.get(t))
            .is_some_and(|u| u.page.is_some());
        let Some(user) = target.filter(|_| attached) else {
            let mut r = req.response(480, Some("Temporarily Unavailable"));
            r.ensure_to_tag();
            acts.push(Action::Respond(r));
            return None;
        };
        if !self.may_open(st, &user) {
            let mut r = req.response(486, Some("Busy Here"));
            r.ensure_to_tag();
            acts.push(Action::Respond(r));
            return None;
        }
        st.next += 1;
        let session = format!("in-{}", st.next);
        match Call::incoming(now, self.call_config(&user), &session, req) {
            Ok(call) => {
                let from = req
                    .headers
                    .get("P-Asserted-Identity")
                    .or(req.headers.get("From"))
                    .and_then(|f| NameAddr::parse(f).ok())
                    .map(|na| na.uri.to_string())
                    .unwrap_or_default();
                let route = Route {
                    sender: Destination::Ims(from),
                    receiver: Destination::Web(user.clone()),
                    session: session.clone(),
                    call_id: call.call_id().to_string(),
                };
                if self.routes(st).insert(route).is_err() {
                    let mut r = req.response(503, None);
                    r.ensure_to_tag();
                    acts.push(Action::Respond(r));
                    return None;
                }
                self.open(st, &user, &session, Core::Call(Box::new(call)));
                self.drain(st, &session, acts);
                Some(session)
            }
            Err(r) => {
                acts.push(Action::Respond(r));
                None
            }
        }
    }

    /// A response to a request a core sent (or a 2xx retransmission).
    pub(super) fn on_response(&self, resp: &Response) {
        let now = Instant::now();
        let call_id = resp.headers.get("Call-ID").unwrap_or("");
        let mut acts = Vec::new();
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            let from_tag = crate::rtcweb::call::tag_of(resp.headers.get("From"));
            let Some(id) = session_of(st, call_id, from_tag) else {
                return;
            };
            let mut resp = resp.clone();
            self.page_view_of(st, &mut resp);
            if let Some(e) = st.sessions.get_mut(&id) {
                match &mut e.core {
                    Core::Call(c) => c.handle_response(now, &resp),
                    Core::Sub(s) => s.handle_response(now, &resp),
                }
            }
            self.drain(st, &id, &mut acts);
        }
        self.perform(acts);
    }

    pub(super) fn on_tick(&self, now: Instant) {
        let mut acts = Vec::new();
        let mut refresh = Vec::new();
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            let due: Vec<String> = st
                .sessions
                .iter()
                .filter(|(_, e)| {
                    match &e.core {
                        Core::Call(c) => c.poll_timeout(),
                        Core::Sub(s) => s.poll_timeout(),
                    }
                    .is_some_and(|at| at <= now)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                if let Some(e) = st.sessions.get_mut(&id) {
                    match &mut e.core {
                        Core::Call(c) => c.handle_timeout(now),
                        Core::Sub(s) => s.handle_timeout(now),
                    }
                }
                self.drain(st, &id, &mut acts);
            }
            // Web users whose page is gone and who hold nothing: de-registered after the
            // reload grace; registrations due are refreshed.
            let grace = Duration::from_secs(self.cfg.reload_grace_secs);
            let gone: Vec<String> = st
                .users
                .iter()
                .filter(|(_, u)| {
                    u.page.is_none()
                        && u.sessions == 0
                        && u.detached_since.is_some_and(|t| now >= t + grace)
                })
                .map(|(aor, _)| aor.clone())
                .collect();
            for aor in gone {
                if let Some(u) = st.users.remove(&aor) {
                    st.contacts.remove(user_part(&aor));
                    self.routes(st).detach_user(&aor);
                    refresh.push((aor, u.reg, 0));
                }
            }
            for (aor, u) in st.users.iter_mut() {
                if u.reg.due(now) {
                    u.reg.postpone(now);
                    refresh.push((aor.clone(), u.reg.clone(), self.cfg.register_expires));
                }
            }
        }
        self.perform(acts);
        for (aor, reg, expires) in refresh {
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move { me.refresh(&aor, reg, expires).await });
        }
    }

    /// Carries out what the cores asked for.
    pub(super) fn perform(&self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(r) => self.send(r),
                Action::Ack(r) => {
                    let ep = self.ep.clone();
                    let resolver = self.resolver.clone();
                    tokio::spawn(async move {
                        if let Some((dest, t)) = next_hop(&resolver, &r).await {
                            ep.send_stateless(&SipMessage::Request(r), dest, t).await;
                        }
                    });
                }
                Action::Respond(r) => self.respond(r),
                Action::Web(user, m) => self.to_page(&user, m),
            }
        }
    }

    pub(super) fn send(&self, mut r: Request) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            if let Err(no) = me.bridge_invite(&mut r).await {
                me.on_response(&no);
                return;
            }
            let Some((dest, t)) = next_hop(&me.resolver, &r).await else {
                let mut no = r.response(404, Some("No Route"));
                no.headers.remove("Via");
                me.on_response(&no);
                return;
            };
            let mut ctx = me.ep.send_request(r, dest, t);
            while let Some(resp) = ctx.next().await {
                let last = resp.status >= 200;
                let bridged = me.bridge_answer(&resp).await;
                me.on_response(&resp);
                if let Err((user, session, why)) = bridged {
                    me.end_for_media(&user, &session, &why);
                }
                if last {
                    break;
                }
            }
        });
    }

    pub(super) fn respond(&self, mut r: Response) {
        self.phone_view_of(&mut r);
        let key = tx_key_of_response(&r);
        let final_ = r.status >= 200;
        let tx = self.st.lock().ok().and_then(|mut st| {
            let key = key.as_ref()?;
            if final_ {
                st.txs.remove(key).map(Some)
            } else {
                // A 1xx: the transaction stays for the final answer; respond in it here.
                st.txs.get(key).map(|tx| {
                    tx.respond(r.clone());
                    None
                })
            }
        });
        match tx {
            Some(Some(tx)) => tx.respond(r),
            Some(None) => {}
            None => {
                let ep = self.ep.clone();
                tokio::spawn(async move { ep.send_response_by_via(&r).await });
            }
        }
    }

    pub(super) fn to_page(&self, user: &str, m: WebMessage) {
        let Ok(st) = self.st.lock() else { return };
        let Some(p) = st.users.get(user).and_then(|u| u.page.as_ref()) else {
            return;
        };
        if p.tx.try_send(Box::new(m)).is_err() {
            // A page that does not read its frames is let go (its calls go Reloading).
            crate::warn_limited!("rtcweb.page_slow", %user, "a page stopped reading: disconnected");
            let _ = p.closed.send(true);
        }
    }
}

/// The session of ours in the dialog of `call_id` where our tag is `local_tag`.
pub(super) fn session_of(st: &State, call_id: &str, local_tag: &str) -> Option<String> {
    st.by_call_id.get(call_id)?.iter().find_map(|id| {
        let ours = match &st.sessions.get(id)?.core {
            Core::Call(c) => c.local_tag(),
            Core::Sub(s) => s.local_tag(),
        };
        (ours == local_tag).then(|| id.clone())
    })
}

/// A server transaction's key: Call-ID, From tag (the same in the request and its responses;
/// the legs of a web-to-web call differ in it), CSeq.
pub(super) fn tx_key(h: &crate::sip::Headers) -> Option<String> {
    let c = CSeq::parse(h.get("CSeq")?).ok()?;
    let from_tag = crate::rtcweb::call::tag_of(h.get("From"));
    Some(format!(
        "{}|{from_tag}|{}|{}",
        h.get("Call-ID")?,
        c.seq,
        c.method.as_str()
    ))
}

pub(super) fn tx_key_of_request(r: &Request) -> Option<String> {
    tx_key(&r.headers)
}

pub(super) fn tx_key_of_response(r: &Response) -> Option<String> {
    tx_key(&r.headers)
}
