//! T-IM as a user agent (TS 24.229 §5.7.5): what it takes into custody (the first message of
//! an INVITE, messages and IMDNs whose onward leg is down), its own INVITE to the recipient
//! (figure 1 steps 13-14, and store-and-forward delivery), flushing what waited over the
//! recipient's fresh MSRP leg, the IMDNs that come back in SIP MESSAGEs (steps 15-22), and
//! expiry (RFC 5438 §7.2.1.1 "failed").

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::relay::Side;
use super::store::{self, OwedReport, StoredMessage};
use super::{delivery, identity, rcs, status_word, ImServer};
use crate::cpim::{Cpim, CpimError, ImdnStatus};
use crate::cscf::next_hop;
use crate::msrp::sdp::MsrpSdp;
use crate::sip::{IncomingRequest, Method, NameAddr, Request, Transport};
use crate::store::StoreError;

/// Why T-IM could not take a message into custody ([`ImServer::take`]); the text goes in the
/// Warning of the 500 that refuses a chat INVITE whose first message it cannot keep.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The message is not a CPIM document (RFC 3862).
    #[error(transparent)]
    Cpim(#[from] CpimError),
    /// The store did not write it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rounds of stored messages a flush sends at most before the recipient's leg relays live.
const FLUSH_ROUNDS: usize = 16;

impl ImServer {
    /// Takes a message into custody (T-IM): history always, the pending queue when it is not
    /// on its way to the recipient already. Returns the stored record.
    pub(super) fn take(
        &self,
        from: &str,
        to: &str,
        cpim_bytes: &[u8],
        contribution_id: &str,
        conversation_id: &str,
        pending: bool,
    ) -> Result<Option<StoredMessage>, CustodyError> {
        let Some(st) = &self.store else {
            return Ok(None);
        };
        let cpim = Cpim::parse(cpim_bytes)?;
        let m = StoredMessage {
            seq: 0,
            from: from.to_string(),
            to: to.to_string(),
            message_id: cpim.message_id().unwrap_or("").to_string(),
            cpim_b64: store::b64(cpim_bytes),
            stored_at_ms: store::now_ms(),
            contribution_id: contribution_id.to_string(),
            conversation_id: conversation_id.to_string(),
            status: String::new(),
        };
        Ok(Some(st.put(m, pending)?))
    }

    /// The hub's keeper: a message whose onward leg is down. Text goes to the recipient's
    /// queue; an IMDN becomes a report owed to the original sender. `None` when it could not
    /// be kept; `Some(Some(user))` when something now waits for `user` (a message, or an IMDN
    /// owed to them).
    pub(super) fn keep(
        &self,
        pair: u64,
        from_side: Side,
        ct: &str,
        body: &Bytes,
    ) -> Option<Option<String>> {
        let s = self.session(pair)?;
        let (sender, recipient) = match from_side {
            Side::A => (s.from.clone(), s.to.clone()),
            Side::B => (s.to.clone(), s.from.clone()),
        };
        if !ct.to_ascii_lowercase().starts_with("message/cpim") {
            return Some(None);
        }
        let cpim = Cpim::parse(body).ok()?;
        match rcs::content(&cpim) {
            rcs::Content::Imdn(i) => {
                let st = self.store.as_ref()?;
                if st
                    .by_message_id(&i.message_id)
                    .is_some_and(|m| self.same_user(&m.to, &sender))
                {
                    let _ = st.set_status(&i.message_id, status_word(i.status));
                }
                st.owe(&OwedReport {
                    from: sender,
                    to: recipient.clone(),
                    cpim_b64: store::b64(body),
                })
                .ok()?;
                Some(Some(recipient))
            }
            rcs::Content::Composing(_) => Some(None),
            _ => self
                .take(
                    &sender,
                    &recipient,
                    body,
                    &s.contribution_id,
                    &s.conversation_id,
                    true,
                )
                .ok()
                .map(|_| Some(recipient)),
        }
    }

    /// A message T-IM sent on: history, and IMDN statuses.
    pub(super) fn relayed(&self, pair: u64, from_side: Side, ct: &str, body: &Bytes) {
        let (Some(s), Some(st)) = (self.session(pair), &self.store) else {
            return;
        };
        if !ct.to_ascii_lowercase().starts_with("message/cpim") {
            return;
        }
        let Ok(cpim) = Cpim::parse(body) else { return };
        let (sender, recipient) = match from_side {
            Side::A => (s.from.clone(), s.to.clone()),
            Side::B => (s.to.clone(), s.from.clone()),
        };
        match rcs::content(&cpim) {
            rcs::Content::Imdn(i) => {
                // Only the message's recipient changes its status.
                if st
                    .by_message_id(&i.message_id)
                    .is_some_and(|m| self.same_user(&m.to, &sender))
                {
                    let _ = st.set_status(&i.message_id, status_word(i.status));
                }
            }
            // A revocation goes in pager mode (a SIP MESSAGE T-IM answers, `im::revoke`).
            rcs::Content::Composing(_) | rcs::Content::Revoke(_) | rcs::Content::Other(_) => {}
            rcs::Content::Text(_)
            | rcs::Content::File(_)
            | rcs::Content::Bot(_)
            | rcs::Content::Tap(_) => {
                let _ = self.take(
                    &sender,
                    &recipient,
                    body,
                    &s.contribution_id,
                    &s.conversation_id,
                    false,
                );
            }
        }
    }

    /// Figure 1 steps 13-14 (and delivery after store-and-forward): T-IM's own INVITE to the
    /// recipient, carrying the oldest message waiting for them from this sender. Its
    /// Accept-Contact requires the CPM chat feature tag explicitly (RFC 3841 §9.2, `require;
    /// explicit`), so a network that applies caller preferences does not alert a voice-only
    /// client; the wait for the answer is bounded ([`delivery::SILENT_LIMIT`],
    /// [`delivery::RING_LIMIT`], then CANCEL).
    pub(super) async fn invite_recipient(self: Arc<Self>, pair: u64) -> delivery::InviteOutcome {
        use delivery::InviteOutcome;
        let Some(s) = self.session(pair) else {
            return InviteOutcome::Nothing;
        };
        if !self.is_online(&s.to) {
            tracing::info!(to = %s.to, "recipient away: messages stay in the store");
            return InviteOutcome::Unreachable("recipient not registered".into());
        }
        // The oldest message from this sender that no revocation holds; the claim on it
        // stays until the INVITE's outcome is known (a revocation CANCELs the INVITE).
        let waiting = self.deliverable(&s.to, &s.from);
        let mut carry = None;
        let mut first = None;
        for m in waiting.iter() {
            if let Some(c) = self.revocations.carry(&m.message_id) {
                carry = Some(c);
                first = Some(m.clone());
                break;
            }
        }
        if first.is_none() && !waiting.is_empty() {
            return InviteOutcome::Nothing;
        }
        let Some(uri_b) = self.hub.local_uri(pair, Side::B) else {
            return InviteOutcome::Nothing;
        };
        let mut req = self
            .ep
            .new_request(Method::Invite, &s.to, &s.from, 1, Transport::Tcp);
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        // The odi Route continues the S-CSCF's iFC once: a retry goes the store-and-forward
        // way (a plain Route to the S-CSCF), or it would land on us as a new chat.
        let route_back = match self.sessions.lock() {
            Ok(mut m) => match m.get_mut(&pair) {
                Some(t) if t.down_call.is_none() => {
                    t.down_call = Some(call_id.clone());
                    t.down_at = Some(Instant::now());
                    std::mem::take(&mut t.route_back)
                }
                _ => return InviteOutcome::Nothing,
            },
            Err(_) => return InviteOutcome::Nothing,
        };
        req.headers.push("Contact", self.contact());
        req.headers
            .push("P-Asserted-Identity", format!("<{}>", s.from));
        req.headers.push(
            "Accept-Contact",
            format!("{};require;explicit", rcs::ACCEPT_CHAT),
        );
        req.headers.push("P-Asserted-Service", rcs::ICSI_CHAT);
        let contribution = if s.contribution_id.is_empty() {
            rcs::new_id()
        } else {
            s.contribution_id.clone()
        };
        req.headers.push("Contribution-ID", contribution);
        if !s.conversation_id.is_empty() {
            req.headers
                .push("Conversation-ID", s.conversation_id.clone());
        }
        // Live: the odi Route the S-CSCF gave us continues its iFC after us. Later (store and
        // forward): a plain Route to the S-CSCF; our own INVITE then comes back through the
        // recipient's iFC and we pass it on.
        let routes = if route_back.is_empty() || s.up_call.is_none() {
            self.own_calls
                .lock()
                .map(|mut o| o.insert(call_id.clone()))
                .ok();
            self.scscf_route_for(&s.to).into_iter().collect()
        } else {
            route_back
        };
        for r in &routes {
            req.headers.push("Route", r.clone());
        }
        let ip = self.hub.local_addr().ip().to_string();
        let sdp = MsrpSdp::rcs_chat(&ip, self.hub.local_addr().port(), &uri_b, "actpass");
        let cpim = first.as_ref().map(|m| m.cpim());
        rcs::set_chat_body(&mut req.headers, &mut req.body, &sdp, cpim.as_deref());
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            self.down_failed(pair);
            return InviteOutcome::Unreachable("no route to the S-CSCF".into());
        };
        let cut = carry.as_ref().map(|c| c.cut());
        let (resp, rang) = self.await_invite(&s.to, &req, dest, t, cut).await;
        let mut outcome = delivery::classify(&resp, rang);
        if outcome != InviteOutcome::Accepted
            && first
                .as_ref()
                .is_some_and(|m| self.revocations.is_revoking(&m.message_id))
        {
            // We CANCELled it for a revocation: says nothing about the client; what else
            // waits goes in the next round.
            outcome = InviteOutcome::Unreachable("the message it carried was revoked".into());
        }
        if outcome != InviteOutcome::Accepted {
            tracing::info!(to = %s.to, status = resp.status, ?outcome, "delivery INVITE not accepted");
            self.down_failed(pair);
            return outcome;
        }
        let msrp = rcs::chat_body(resp.headers.get("Content-Type"), &resp.body)
            .ok()
            .and_then(|cb| cb.sdp.path.last().cloned());
        // The recipient has the first message (it came in the INVITE it took): off the queue
        // before the ACK, so the flush its MSRP binding starts does not send it again (it
        // would, with no IMDN in between, as for a file it reports only once downloaded).
        let unqueued = match (&msrp, &self.store, &first) {
            (Some(_), Some(st), Some(m)) => st.unqueue(m, "sent").is_ok(),
            _ => false,
        };
        // ACK (RFC 3261 §13.2.2.4) along the route set of the 200.
        let ack = dialog_request(&self.ep, Method::Ack, 1, &req, &resp, &s.to);
        if let Some((dest, t)) = next_hop(&self.resolver, &ack).await {
            self.ep
                .send_stateless(&crate::sip::SipMessage::Request(ack), dest, t)
                .await;
        }
        let Some(path) = msrp else {
            // A client that took the chat INVITE for a call (a voice-only phone picked up
            // with an audio answer): no MSRP, so hang up (BYE, RFC 3261 §15) and use pager mode.
            let why = format!("{} {} without MSRP media", resp.status, resp.reason);
            let bye = dialog_request(&self.ep, Method::Bye, 2, &req, &resp, &s.to);
            if let Some((dest, t)) = next_hop(&self.resolver, &bye).await {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    self.ep.send_request(bye, dest, t).final_response(),
                )
                .await;
            }
            self.down_failed(pair);
            return InviteOutcome::Refused { why, cpim: false };
        };
        self.hub.set_remote(pair, Side::B, &path);
        if let (true, Some(st)) = (unqueued, &self.store) {
            // Off the queue on disk too (else a restart sends it again; the receiver would
            // drop the copy by its Message-ID, but why send it).
            let _ = st.durable().await;
        }
        InviteOutcome::Accepted
    }

    pub(super) fn down_failed(&self, pair: u64) {
        if let Ok(mut m) = self.sessions.lock() {
            if let Some(t) = m.get_mut(&pair) {
                if let (Some(c), Ok(mut own)) = (t.down_call.take(), self.own_calls.lock()) {
                    own.remove(&c);
                }
                t.down_at = None;
            }
        }
    }

    /// UE2 bound its leg: send what waits for it from this sender, in order, then let the
    /// leg relay.
    pub(super) async fn flush(self: Arc<Self>, pair: u64) {
        let Some(s) = self.session(pair) else { return };
        if let Ok(mut m) = self.sessions.lock() {
            match m.get_mut(&pair) {
                Some(t) if !t.delivering => t.delivering = true,
                _ => return,
            }
        }
        // A recipient that registers again meanwhile is served afresh: this leg may belong to
        // the device it left (RFC 4975 §7.1 gives a SEND 30 s; we do not wait that long).
        let mut epoch = self.epoch_of(&s.to);
        if let Some(e) = epoch.as_mut() {
            e.borrow_and_update();
        }
        let Some(st) = self.store.clone() else {
            self.hub.set_ready(pair, Side::B);
            self.delivery_over(pair);
            return;
        };
        let waiting_from =
            |_: &store::ImStore| -> Vec<StoredMessage> { self.deliverable(&s.to, &s.from) };
        let mut sent_any = false;
        let mut ready = false;
        // Messages that come while this runs are kept too (the leg is not ready yet): send
        // rounds until the store holds nothing more from this sender, then let the leg relay
        // (`set_ready_if` checks that under the relay's lock, so nothing kept is overtaken).
        for _round in 0..FLUSH_ROUNDS {
            let waiting = waiting_from(&st);
            if waiting.is_empty() {
                if self
                    .hub
                    .set_ready_if(pair, Side::B, || waiting_from(&st).is_empty())
                {
                    ready = true;
                    break;
                }
                // A message is being kept this very moment: take it in the next round.
                tokio::task::yield_now().await;
                continue;
            }
            // What went out in the last round is off the queue on disk (one fsync for the
            // round, shared with everyone else's).
            if sent_any {
                let _ = st.durable().await;
            }
            for m in waiting {
                // Being revoked: left to the revocation (gone, or sent in a later round).
                let Some(_carry) = self.revocations.carry(&m.message_id) else {
                    continue;
                };
                let rx = self.hub.send(pair, Side::B, "message/cpim", &m.cpim());
                let reregistered = async {
                    match epoch.as_mut() {
                        Some(e) => {
                            let _ = e.changed().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                let status = tokio::select! {
                    r = tokio::time::timeout(delivery::FLUSH_WAIT, rx) => r.ok().and_then(|r| r.ok()),
                    _ = reregistered => None,
                };
                if status == Some(200) {
                    sent_any |= st.unqueue(&m, "sent").is_ok();
                    continue;
                }
                let _ = st.durable().await;
                // The leg does not carry messages: end it; the next try INVITEs afresh.
                self.hub.close_leg(pair, Side::B);
                self.delivery_over(pair);
                return;
            }
        }
        if sent_any {
            let _ = st.durable().await;
        }
        if !ready {
            // A sender that keeps the store busy round after round: relay live from now on;
            // what is still kept goes out with the recipient's next session.
            self.hub.set_ready(pair, Side::B);
        }
        self.delivery_over(pair);
    }

    /// A flush ended. Legs that closed while it ran left the session to it: forget the
    /// session now if both are gone (their Closed events saw `delivering` and kept it).
    fn delivery_over(&self, pair: u64) {
        let done = self.sessions.lock().ok().and_then(|mut m| {
            let t = m.get_mut(&pair)?;
            t.delivering = false;
            t.finished().then(|| m.remove(&pair))?
        });
        if done.is_some() {
            self.hub.remove_pair(pair);
        }
    }

    /// Figure 1 steps 15-22: UE2's IMDN in a SIP MESSAGE goes to UE1 over the session's MSRP
    /// (or waits for UE1), then the MESSAGE gets its 200. Anything else passes on.
    pub(super) async fn tim_message(self: Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let is_cpim = req
            .headers
            .get("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("message/cpim"));
        let content = is_cpim
            .then(|| Cpim::parse(&req.body).ok())
            .flatten()
            .map(|c| rcs::content(&c));
        let imdn = match content {
            Some(rcs::Content::Imdn(i)) => Some(i),
            // The sender takes back a message it sent (`im::revoke`); an outcome on its way
            // to a sender passes on.
            Some(rcs::Content::Revoke(r)) if r.result.is_none() => {
                self.tim_revoke(inc, r).await;
                return;
            }
            _ => None,
        };
        let (Some(imdn), Some(st)) = (imdn, self.store.clone()) else {
            if is_cpim {
                // A file sent in pager mode: its recipient may download it.
                if let Some(to) = crate::sip::Uri::parse(&req.uri).ok().map(|u| u.aor()) {
                    self.grant_if_file("message/cpim", &req.body, &to).await;
                }
            }
            self.proxy_back(inc).await;
            return;
        };
        let Some(orig) = st.by_message_id(&imdn.message_id) else {
            // Not a message we carried: the IMDN goes on to the sender like any MESSAGE.
            self.proxy_back(inc).await;
            return;
        };
        // Only the message's recipient reports on it (RFC 5438 §7.1.1 sends the IMDN from the
        // recipient; the P-CSCF asserted who sent this one): anyone else could mark messages
        // delivered, take them off the queue and report to their senders.
        let reporter = identity(req, "P-Asserted-Identity").or_else(|| identity(req, "From"));
        if !reporter
            .as_deref()
            .is_some_and(|r| self.same_user(r, &orig.to))
        {
            crate::warn_limited!("tim.foreign_imdn", reporter = reporter.as_deref().unwrap_or("?"), recipient = %orig.to, "an IMDN for a message to someone else refused with 403");
            let mut r = req.response(403, Some("Forbidden"));
            r.ensure_to_tag();
            r.headers.push(
                "Warning",
                "399 tim \"only the recipient of a message reports on it\"",
            );
            inc.tx.respond(r);
            return;
        }
        if imdn.status == ImdnStatus::Failed {
            let _ = st.set_status(&imdn.message_id, status_word(imdn.status));
        } else {
            // The recipient has it: whatever way it went, it is off the queue (never twice).
            let _ = st.unqueue(&orig, status_word(imdn.status));
        }
        let reporter = orig.to.clone();
        let pair = self.sessions.lock().ok().and_then(|s| {
            s.values()
                .filter(|t| t.from == orig.from && t.to == orig.to)
                .map(|t| t.pair)
                .find(|p| self.hub.is_ready(*p, Side::A))
        });
        let mut sent = false;
        if let Some(pair) = pair {
            sent = matches!(
                self.hub
                    .send(pair, Side::A, "message/cpim", &req.body)
                    .await,
                Ok(200)
            );
        }
        // The 200 promises the IMDN (and the status it recorded): it waits until what was
        // written is on disk; an IMDN that could not be kept gets a 500 and the reporter's
        // client may send it again.
        let kept = sent
            || st
                .owe(&OwedReport {
                    from: reporter,
                    to: orig.from.clone(),
                    cpim_b64: store::b64(&req.body),
                })
                .is_ok();
        let durable = st.durable().await;
        if !kept || durable.is_err() {
            tracing::error!(id = %imdn.message_id, ?durable, "IMDN not stored");
            inc.tx
                .respond(crate::cscf::reject(req, 500, &self.host, "IMDN not stored"));
            return;
        }
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        if !sent && self.is_online(&orig.from) {
            self.kick(&orig.from, false);
        }
    }

    /// Messages nobody collected within the time-to-live: off the queue, and an IMDN
    /// "failed" (RFC 5438 §7.2.1.1) to their sender.
    pub(super) async fn expire(self: Arc<Self>) {
        if let Ok(mut m) = self.online.lock() {
            let now = std::time::Instant::now();
            m.retain(|_, o| o.until > now);
        }
        let Some(st) = self.store.clone() else { return };
        let now = store::now_ms();
        let ttl = self.ttl.as_millis() as u64;
        for m in st.all_pending() {
            if now.saturating_sub(m.stored_at_ms) < ttl {
                continue;
            }
            if st.unqueue(&m, "failed").is_err() {
                continue;
            }
            self.report_to_sender(&m, ImdnStatus::Failed, Some("failed: expired in the store"))
                .await;
            tracing::info!(from = %m.from, to = %m.to, id = %m.message_id, "undelivered message expired");
        }
    }
}

/// A request inside the dialog our INVITE `req` set up with its 2xx `resp` (RFC 3261 §12.2.1.1):
/// the remote target from the 2xx's Contact, the route set from its Record-Route (reversed).
fn dialog_request(
    ep: &crate::sip::Endpoint,
    method: Method,
    cseq: u32,
    req: &Request,
    resp: &crate::sip::Response,
    fallback_target: &str,
) -> Request {
    let mut r = Request::new(
        method.clone(),
        resp.headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .unwrap_or_else(|| fallback_target.to_string()),
    );
    r.headers.push("Via", ep.new_via(Transport::Tcp));
    r.headers.push("Max-Forwards", "70");
    r.headers
        .push("From", req.headers.get("From").unwrap_or("").to_string());
    r.headers
        .push("To", resp.headers.get("To").unwrap_or("").to_string());
    r.headers.push(
        "Call-ID",
        req.headers.get("Call-ID").unwrap_or("").to_string(),
    );
    r.headers.push("CSeq", format!("{cseq} {method}"));
    let mut rr: Vec<String> = resp
        .headers
        .values("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    rr.reverse();
    for route in rr {
        r.headers.push("Route", route);
    }
    r
}
