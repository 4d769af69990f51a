//! The chat client's tokio driver: owns the SIP endpoint, the MSRP connections and the one
//! timer of the [`ChatCore`], runs the SIP exchanges that wait on the network (the INVITE
//! and its ACK, answering an INVITE, MESSAGE, BYE) and translates between them and the
//! core's inputs and outputs. Decisions about messages, reports and sessions are the core's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::core::{ChatCore, Dialog, Input, Output};
use super::msrp_bind::{bind, forward_events, BindError};
use super::{ChatEvent, ChatOptions, Cmd, SessionIds, SessionStatus, INVITE_WAIT};
use crate::cpim::{Cpim, ImdnStatus, IsComposing};
use crate::msrp::conn::{MsrpConn, MsrpEvent};
use crate::msrp::sdp::MsrpSdp;
use crate::rcs::{self, Content};
use crate::sip::endpoint::Incoming;
use crate::sip::{
    new_call_id, new_tag, Endpoint, IncomingRequest, Method, NameAddr, Request, Response,
    SipMessage,
};
use crate::trace::Trace;
use crate::ue::UeConfig;

/// An incoming chat INVITE held for the application (figure 4 steps 15-19).
struct HeldInvite {
    inc: IncomingRequest,
    first: Option<Cpim>,
}

/// Why our chat INVITE did not end in a bound session. The text is the session's failure
/// reason: web clients are told it, and " 603 " or " 486 " in it means the peer declined.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    /// A final answer other than 2xx (or our own 408 when none came in time).
    #[error("INVITE answered {status} {reason}")]
    Answered { status: u16, reason: String },
    /// The 2xx's body does not read as a chat answer.
    #[error(transparent)]
    Body(#[from] rcs::ChatBodyError),
    /// The answer's SDP has no `a=path` (RFC 4975 §8.1).
    #[error("answer without a=path")]
    NoPath,
    /// The MSRP connection did not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// What the driver's own tasks report back.
pub(super) enum Internal {
    /// T-IM said it stored our first message for an offline recipient.
    Stored { message_id: String, reason: String },
    /// Our INVITE (or the MSRP binding after it) failed.
    Failed { peer: String, reason: String },
    /// A session is bound.
    Accepted {
        peer: String,
        conn: MsrpConn,
        my_uri: String,
        peer_uri: String,
        dialog: Dialog,
    },
    /// Something from a bound MSRP connection.
    Msrp { peer: String, ev: MsrpEvent },
}

pub(super) struct Actor {
    ep: Endpoint,
    cfg: UeConfig,
    contact: String,
    trace: Trace,
    opts: ChatOptions,
    core: ChatCore,
    /// Bound MSRP connections by peer.
    conns: HashMap<String, MsrpConn>,
    pending_acks: HashMap<String, oneshot::Sender<()>>,
    held: HashMap<String, HeldInvite>,
    events: mpsc::UnboundedSender<ChatEvent>,
    internal: mpsc::UnboundedSender<Internal>,
}

fn aor_of(req: &Request) -> String {
    ["P-Asserted-Identity", "From"]
        .iter()
        .find_map(|h| {
            req.headers
                .get(h)
                .and_then(|v| NameAddr::parse(v).ok())
                .map(|na| na.uri.aor())
        })
        .unwrap_or_default()
}

fn canonical(to: &str) -> String {
    crate::sip::Uri::parse(to)
        .map(|u| u.aor())
        .unwrap_or_else(|_| to.to_string())
}

impl Actor {
    pub(super) fn new(
        ep: Endpoint,
        cfg: UeConfig,
        contact: String,
        trace: Trace,
        opts: ChatOptions,
        events: mpsc::UnboundedSender<ChatEvent>,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Actor {
        Actor {
            core: ChatCore::new(cfg.impu.clone(), opts.clone()),
            ep,
            cfg,
            contact,
            trace,
            opts,
            conns: HashMap::new(),
            pending_acks: HashMap::new(),
            held: HashMap::new(),
            events,
            internal,
        }
    }

    pub(super) async fn run(
        mut self,
        mut sip: mpsc::UnboundedReceiver<Incoming>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        loop {
            let due = self.core.poll_timeout();
            let timer = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                inc = sip.recv() => match inc {
                    Some(Incoming::Request(r)) => self.on_sip(r),
                    Some(Incoming::StrayResponse { .. }) => {}
                    None => break,
                },
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.on_cmd(c),
                    None => break,
                },
                Some(i) = internal.recv() => self.on_internal(i),
                _ = timer => self.core.handle_timeout(Instant::now()),
            }
            self.drive();
        }
        // The client is gone: its MSRP legs close now, not whenever the last task holding a
        // handle to one lets go (the relay forgets the session when its legs close).
        for c in self.conns.values() {
            c.close();
        }
    }

    /// Feeds the core and carries out what it decided.
    fn feed(&mut self, input: Input) {
        self.core.handle(Instant::now(), input);
        self.drive();
    }

    /// Carries out the core's outputs, in order.
    fn drive(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Msrp { peer, msg } => {
                    if let Some(c) = self.conns.get(&peer) {
                        let _ = c.send(&msg);
                    }
                }
                Output::Invite {
                    peer,
                    id,
                    first,
                    ids,
                } => self.open(&peer, id, first, ids),
                Output::ImdnMessage {
                    peer,
                    about,
                    status,
                    cpim,
                } => {
                    let req = self.imdn_message_request(&peer, cpim);
                    let ep = self.ep.clone();
                    let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                    let events = self.opts.report_acks.then(|| self.events.clone());
                    tokio::spawn(async move {
                        let r = ep.send_request(req, pcscf, t).final_response().await;
                        if let (true, Some(events)) = (r.is_success(), events) {
                            let _ = events.send(ChatEvent::Acked {
                                message_id: about,
                                report: Some(status),
                            });
                        }
                    });
                }
                Output::Bye { dialog } => {
                    let bye = self.in_dialog(&dialog, Method::Bye);
                    let ep = self.ep.clone();
                    let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                    tokio::spawn(async move {
                        let _ = ep.send_request(bye, pcscf, t).final_response().await;
                    });
                }
                Output::DropConn { peer } => {
                    self.conns.remove(&peer);
                }
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
            }
        }
    }

    fn my_uri(&self) -> String {
        format!(
            "msrp://{}:9/{};tcp",
            self.ep.local_addr().ip(),
            &rcs::new_id()[..12]
        )
    }

    fn contact_header(&self) -> String {
        format!("<{}>;{}", self.contact, rcs::CHAT_TAG)
    }

    fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::Send {
                to,
                text,
                content_type,
                ids,
                reply,
            } => {
                let peer = canonical(&to);
                let id = rcs::new_id();
                let cpim = Cpim::new(
                    &self.cfg.impu,
                    &peer,
                    &id,
                    &rcs::now_datetime(),
                    Some(&self.opts.disposition),
                    &content_type,
                    &text,
                )
                .to_bytes();
                let _ = reply.send(id.clone());
                self.feed(Input::Send {
                    peer,
                    id,
                    cpim,
                    ids,
                });
            }
            Cmd::Displayed { message_id } => self.feed(Input::Report {
                message_id,
                status: ImdnStatus::Displayed,
            }),
            Cmd::Delivered { message_id } => self.feed(Input::Report {
                message_id,
                status: ImdnStatus::Delivered,
            }),
            Cmd::Accept { peer, delivered } => {
                if let Some(h) = self.held.remove(&canonical(&peer)) {
                    self.answer_invite(h.inc, h.first, delivered);
                }
            }
            Cmd::Decline { peer } => {
                let peer = canonical(&peer);
                if let Some(h) = self.held.remove(&peer) {
                    let mut r = h.inc.request.response(603, Some("Decline"));
                    r.ensure_to_tag();
                    h.inc.tx.respond(r);
                    let message_id = h.first.map(|c| c.message_id().unwrap_or("").to_string());
                    self.feed(Input::Declined { peer, message_id });
                }
            }
            Cmd::Composing { to, active } => {
                let peer = canonical(&to);
                let doc = IsComposing {
                    active,
                    refresh: active.then_some(60),
                    content_type: Some("text/plain".into()),
                };
                let cpim = Cpim::new(
                    &self.cfg.impu,
                    &peer,
                    &rcs::new_id(),
                    &rcs::now_datetime(),
                    None,
                    rcs::ISCOMPOSING_TYPE,
                    doc.to_xml().as_bytes(),
                )
                .to_bytes();
                self.feed(Input::Composing { peer, cpim });
            }
            Cmd::CloseAll { done } => {
                for (_, h) in self.held.drain() {
                    let mut r = h.inc.request.response(480, Some("Temporarily Unavailable"));
                    r.ensure_to_tag();
                    h.inc.tx.respond(r);
                }
                let (dialogs, peers) = self.core.close_all();
                for peer in peers {
                    if let Some(c) = self.conns.remove(&peer) {
                        c.close();
                    }
                }
                let byes: Vec<Request> = dialogs
                    .iter()
                    .map(|d| build_in_dialog(&self.ep, self.cfg.transport, d, Method::Bye, d.cseq))
                    .collect();
                self.drive();
                let ep = self.ep.clone();
                let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                tokio::spawn(async move {
                    let all = futures_util::future::join_all(
                        byes.into_iter()
                            .map(|b| ep.send_request(b, pcscf, t).final_response()),
                    );
                    let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
                    let _ = done.send(());
                });
            }
            Cmd::Close { to } => self.feed(Input::Close {
                peer: canonical(&to),
            }),
        }
    }

    /// Figure 1 step 1: INVITE with SDP and the first message (the core decided to open the
    /// session and queues what follows).
    fn open(&mut self, peer: &str, id: String, first: Vec<u8>, ids: SessionIds) {
        let my_uri = self.my_uri();
        let mut req = Request::new(Method::Invite, peer.to_string());
        req.headers.push("Via", self.ep.new_via(self.cfg.transport));
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", self.cfg.impu, new_tag()));
        req.headers.push("To", format!("<{peer}>"));
        req.headers.push(
            "Call-ID",
            new_call_id(&self.ep.local_addr().ip().to_string()),
        );
        req.headers.push("CSeq", "1 INVITE");
        req.headers.push("Contact", self.contact_header());
        req.headers.push("Accept-Contact", rcs::ACCEPT_CHAT);
        req.headers.push("P-Preferred-Service", rcs::ICSI_CHAT);
        req.headers.push(
            "Contribution-ID",
            ids.contribution_id.unwrap_or_else(rcs::new_id),
        );
        req.headers.push(
            "Conversation-ID",
            ids.conversation_id.unwrap_or_else(rcs::new_id),
        );
        req.headers.push("Supported", "timer");
        req.headers.push("User-Agent", "rcslab-ue");
        let sdp = MsrpSdp::rcs_chat(&self.ep.local_addr().ip().to_string(), 9, &my_uri, "active");
        rcs::set_chat_body(&mut req.headers, &mut req.body, &sdp, Some(&first));
        let ep = self.ep.clone();
        let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
        let internal = self.internal.clone();
        let trace = self.trace.clone();
        let peer = peer.to_string();
        let sip_addr = self.ep.local_addr();
        let events = self.opts.report_acks.then(|| self.events.clone());
        tokio::spawn(async move {
            let answer = ep.send_request(req.clone(), pcscf, t).final_response();
            let resp = match tokio::time::timeout(INVITE_WAIT, answer).await {
                Ok(r) => r,
                Err(_) => {
                    // RFC 3261 §9.1, bounded: the network lost the INVITE (a node restarted
                    // after its 100 Trying); messages queued behind it must not wait for
                    // Timer B.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        crate::sip::dialog::cancel_forwarded(&ep, &req, pcscf, t),
                    )
                    .await;
                    let mut r = req.response(408, None);
                    r.reason = format!("No answer within {INVITE_WAIT:?}");
                    r
                }
            };
            let result = async {
                if !resp.is_success() {
                    return Err(SetupError::Answered {
                        status: resp.status,
                        reason: resp.reason.clone(),
                    });
                }
                // The 2xx is the network's word that it has the first message.
                if let Some(events) = &events {
                    let _ = events.send(ChatEvent::Acked {
                        message_id: id.clone(),
                        report: None,
                    });
                }
                if let Some(w) = resp
                    .headers
                    .values("Warning")
                    .iter()
                    .find(|w| w.contains(rcs::STORED_WARNING))
                {
                    let _ = internal.send(Internal::Stored {
                        message_id: id.clone(),
                        reason: w.to_string(),
                    });
                }
                let d = dialog_from(&req, &resp);
                let ack = build_in_dialog(&ep, t, &d, Method::Ack, d.cseq);
                ep.send_stateless(&SipMessage::Request(ack), pcscf, t).await;
                let cb = rcs::chat_body(resp.headers.get("Content-Type"), &resp.body)?;
                let to = cb.sdp.path.last().cloned().ok_or(SetupError::NoPath)?;
                let conn = bind(&to, &my_uri, trace, sip_addr).await?;
                Ok((conn, d, to))
            }
            .await;
            match result {
                Ok(((conn, rx), d, to)) => {
                    let _ = internal.send(Internal::Accepted {
                        peer: peer.clone(),
                        conn,
                        my_uri: my_uri.clone(),
                        peer_uri: to,
                        dialog: d,
                    });
                    forward_events(rx, internal, peer);
                }
                Err(e) => {
                    let _ = internal.send(Internal::Failed {
                        peer,
                        reason: e.to_string(),
                    });
                }
            }
        });
    }

    fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::Stored { message_id, reason } => {
                self.feed(Input::Stored { message_id, reason })
            }
            Internal::Failed { peer, reason } => self.feed(Input::SessionFailed { peer, reason }),
            Internal::Accepted {
                peer,
                conn,
                my_uri,
                peer_uri,
                dialog,
            } => {
                self.conns.insert(peer.clone(), conn);
                self.feed(Input::SessionUp {
                    peer,
                    my_uri,
                    peer_uri,
                    dialog,
                });
            }
            Internal::Msrp { peer, ev } => match ev {
                MsrpEvent::Message(msg) => self.feed(Input::Msrp { peer, msg }),
                MsrpEvent::Closed(_) => self.feed(Input::MsrpClosed { peer }),
            },
        }
    }

    fn imdn_message_request(&self, peer: &str, cpim: Vec<u8>) -> Request {
        let mut req =
            self.ep
                .new_request(Method::Message, peer, &self.cfg.impu, 1, self.cfg.transport);
        req.headers.push("Accept-Contact", rcs::ACCEPT_IMDN);
        req.headers.push("Content-Type", "message/cpim");
        req.body = Bytes::from(cpim);
        req
    }

    fn on_sip(&mut self, inc: IncomingRequest) {
        if !crate::ue::addressed_to(&inc.request, &self.contact, &self.cfg.impu) {
            // RFC 3261 §8.2.2.1: not ours. A request for a contact that died while another
            // client took over its port (the dead one is still registered) must not be taken
            // in that user's name.
            if inc.request.method != Method::Ack {
                let mut r = inc
                    .request
                    .response(404, Some("Not Found (not this contact)"));
                r.ensure_to_tag();
                inc.tx.respond(r);
            }
            return;
        }
        let call_id = inc.request.headers.get("Call-ID").unwrap_or("").to_string();
        match inc.request.method {
            Method::Ack => {
                if let Some(tx) = self.pending_acks.remove(&call_id) {
                    let _ = tx.send(());
                }
            }
            Method::Invite if !crate::sip::dialog::in_dialog(&inc.request) => self.on_invite(inc),
            Method::Cancel => {
                // RFC 3261 §9.2: 200 for the CANCEL, 487 for the INVITE it cancels (one still
                // held for the application).
                inc.tx.respond(inc.request.response(200, None));
                let held: Vec<String> = self
                    .held
                    .iter()
                    .filter(|(_, h)| h.inc.request.headers.get("Call-ID") == Some(call_id.as_str()))
                    .map(|(p, _)| p.clone())
                    .collect();
                for peer in held {
                    if let Some(h) = self.held.remove(&peer) {
                        let mut r = h.inc.request.response(487, Some("Request Terminated"));
                        r.ensure_to_tag();
                        h.inc.tx.respond(r);
                        let _ = self.events.send(ChatEvent::Session {
                            peer,
                            status: SessionStatus::Closed,
                            reason: "CANCEL".into(),
                        });
                    }
                }
            }
            Method::Notify
                if inc
                    .request
                    .headers
                    .get("Event")
                    .is_some_and(|e| e.trim().starts_with("reg")) =>
            {
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                let reginfo = String::from_utf8_lossy(&inc.request.body).to_string();
                let subscription_state = inc
                    .request
                    .headers
                    .get("Subscription-State")
                    .unwrap_or("")
                    .to_string();
                self.feed(Input::RegInfo {
                    reginfo,
                    subscription_state,
                });
            }
            Method::Message => {
                let req = &inc.request;
                let peer = aor_of(req);
                let mut ok = req.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                let ct = req.headers.get("Content-Type").unwrap_or("text/plain");
                if ct.to_ascii_lowercase().starts_with("message/cpim") {
                    if let Ok(cpim) = Cpim::parse(&req.body) {
                        self.feed(Input::Cpim { peer, cpim });
                    }
                } else {
                    let text = String::from_utf8_lossy(&req.body).to_string();
                    self.feed(Input::PagerText { peer, text });
                }
            }
            Method::Bye => {
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                self.feed(Input::Bye { call_id });
            }
            _ => {
                let mut r = inc.request.response(200, None);
                r.ensure_to_tag();
                inc.tx.respond(r);
            }
        }
    }

    /// Figure 1 steps 14-26 at UE2.
    fn on_invite(&mut self, inc: IncomingRequest) {
        let req = inc.request.clone();
        let peer = aor_of(&req);
        let offer = match rcs::chat_body(req.headers.get("Content-Type"), &req.body) {
            Ok(o) => o,
            Err(_) => {
                let mut r = req.response(488, None);
                r.ensure_to_tag();
                inc.tx.respond(r);
                return;
            }
        };
        let first = offer.first.as_ref().and_then(|b| Cpim::parse(b).ok());
        if self.opts.hold_invites {
            let text = first.as_ref().and_then(|c| match rcs::content(c) {
                Content::Text(t) => Some(t),
                _ => None,
            });
            let message_id = first
                .as_ref()
                .and_then(|c| c.message_id())
                .unwrap_or("")
                .to_string();
            self.feed(Input::Held {
                peer: peer.clone(),
                first: first.clone(),
            });
            let h = |n: &str| req.headers.get(n).map(str::to_string);
            let _ = self.events.send(ChatEvent::Invited {
                from: peer.clone(),
                request_uri: req.uri.clone(),
                subject: h("Subject"),
                message_id,
                text,
                datetime: first
                    .as_ref()
                    .and_then(|c| c.header("DateTime"))
                    .map(str::to_string),
                conversation_id: h("Conversation-ID"),
                contribution_id: h("Contribution-ID"),
            });
            if let Some(old) = self.held.insert(peer, HeldInvite { inc, first }) {
                // A newer INVITE from the same peer replaces one still waiting.
                let mut r = old.inc.request.response(487, Some("Request Terminated"));
                r.ensure_to_tag();
                old.inc.tx.respond(r);
            }
            return;
        }
        if let Some(c) = &first {
            self.feed(Input::Cpim {
                peer: peer.clone(),
                cpim: c.clone(),
            });
        }
        let delivered = self.opts.auto_delivered;
        self.answer_invite(inc, first, delivered);
    }

    /// Answers a chat INVITE (figure 1 steps 15-26 at UE2): the IMDN "delivered" in a SIP
    /// MESSAGE when `delivered`, then 200 OK, the ACK, and the MSRP binding.
    fn answer_invite(&mut self, inc: IncomingRequest, first: Option<Cpim>, delivered: bool) {
        let req = inc.request.clone();
        let peer = aor_of(&req);
        let Ok(offer) = rcs::chat_body(req.headers.get("Content-Type"), &req.body) else {
            return;
        };
        // The core books the first message delivered and opens the session (messages the
        // application sends before the binding completes wait for it).
        let mut imdn_req = None;
        let mut imdn_about = String::new();
        if let Some((about, doc)) = self.core.answering(&peer, first.as_ref(), delivered) {
            imdn_req = Some(self.imdn_message_request(&peer, doc));
            imdn_about = about;
        }
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let (ack_tx, ack_rx) = oneshot::channel();
        self.pending_acks.insert(call_id, ack_tx);
        let my_uri = self.my_uri();
        let sdp = MsrpSdp::rcs_chat(&self.ep.local_addr().ip().to_string(), 9, &my_uri, "active");
        let tag = new_tag();
        let mut ok = crate::sip::uas_response_with(&req, 200, &tag, &self.contact_header());
        rcs::set_chat_body(&mut ok.headers, &mut ok.body, &sdp, None);
        let dialog = Dialog {
            call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
            local: ok.headers.get("To").unwrap_or("").to_string(),
            remote: req.headers.get("From").unwrap_or("").to_string(),
            target: req
                .headers
                .get("Contact")
                .and_then(|c| NameAddr::parse(c).ok())
                .map(|na| na.uri.to_string())
                .unwrap_or_default(),
            routes: req
                .headers
                .values("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cseq: 0,
        };
        let peer_uri = offer.sdp.path.last().cloned().unwrap_or_default();
        let ep = self.ep.clone();
        let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
        let internal = self.internal.clone();
        let trace = self.trace.clone();
        let sip_addr = self.ep.local_addr();
        let events = self.opts.report_acks.then(|| self.events.clone());
        tokio::spawn(async move {
            // Steps 15-16 and 21-22: the IMDN in a SIP MESSAGE, and its 200.
            if let Some(m) = imdn_req {
                let r = ep.send_request(m, pcscf, t).final_response().await;
                if let (true, Some(events)) = (r.is_success(), events) {
                    let _ = events.send(ChatEvent::Acked {
                        message_id: imdn_about,
                        report: Some(ImdnStatus::Delivered),
                    });
                }
            }
            // Steps 23-24: 200 OK for the INVITE; then the ACK.
            inc.tx.respond(ok);
            let _ = tokio::time::timeout(Duration::from_secs(2), ack_rx).await;
            // Steps 25-26: bind.
            match bind(&peer_uri, &my_uri, trace, sip_addr).await {
                Ok((conn, rx)) => {
                    let _ = internal.send(Internal::Accepted {
                        peer: peer.clone(),
                        conn,
                        my_uri,
                        peer_uri,
                        dialog,
                    });
                    forward_events(rx, internal, peer);
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "MSRP bind failed");
                    let _ = internal.send(Internal::Failed {
                        peer,
                        reason: e.to_string(),
                    });
                }
            }
        });
    }

    fn in_dialog(&self, d: &Dialog, method: Method) -> Request {
        build_in_dialog(&self.ep, self.cfg.transport, d, method, d.cseq)
    }
}

fn dialog_from(invite: &Request, ok: &Response) -> Dialog {
    let mut routes: Vec<String> = ok
        .headers
        .values("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    routes.reverse();
    Dialog {
        call_id: invite.headers.get("Call-ID").unwrap_or("").to_string(),
        local: invite.headers.get("From").unwrap_or("").to_string(),
        remote: ok.headers.get("To").unwrap_or("").to_string(),
        target: ok
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .unwrap_or_else(|| invite.uri.clone()),
        routes,
        cseq: 1,
    }
}

fn build_in_dialog(
    ep: &Endpoint,
    t: crate::sip::Transport,
    d: &Dialog,
    method: Method,
    cseq: u32,
) -> Request {
    let mut r = Request::new(method.clone(), d.target.clone());
    r.headers.push("Via", ep.new_via(t));
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", d.local.clone());
    r.headers.push("To", d.remote.clone());
    r.headers.push("Call-ID", d.call_id.clone());
    r.headers.push("CSeq", format!("{cseq} {method}"));
    for route in &d.routes {
        r.headers.push("Route", route.clone());
    }
    r
}
