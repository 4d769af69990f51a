//! The chat client's tokio driver: owns the SIP endpoint, the MSRP connections and the one
//! timer of the [`ChatCore`], runs the SIP exchanges that wait on the network (the INVITE
//! and its ACK, answering an INVITE, MESSAGE, BYE) and translates between them and the
//! core's inputs and outputs. Decisions about messages, reports and sessions are the core's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

mod dialog;
mod group;
pub(super) mod msrp_ft;

use dialog::is_focus;
use dialog::{build_in_dialog, dialog_from};
pub(super) use group::GroupChange;
pub use group::CONFERENCE_FACTORY;

use super::core::{ChatCore, Dialog, IncomingInvite, Input, InviteInfo, OutgoingInvite, Output};
use super::msrp_bind::{bind, forward_events, BindError};
use super::{ChatEvent, ChatOptions, Cmd, SessionIds};
use crate::cpim::{Cpim, ImdnStatus, IsComposing};
use crate::msrp::conn::{MsrpConn, MsrpEvent};
use crate::msrp::sdp::MsrpSdp;
use crate::rcs;
use crate::sip::endpoint::Incoming;
use crate::sip::{
    new_call_id, new_tag, Endpoint, IncomingRequest, Method, NameAddr, Request, SipMessage,
};
use crate::trace::Trace;
use crate::ue::ft::FtClient;
use crate::ue::UeConfig;

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
    /// Our INVITE (`invite`) or theirs, or the MSRP binding after it, failed.
    Failed {
        peer: String,
        reason: String,
        invite: Option<OutgoingInvite>,
    },
    /// A session is bound (after our INVITE `invite`, or theirs).
    Accepted {
        peer: String,
        invite: Option<OutgoingInvite>,
        conn: MsrpConn,
        my_uri: String,
        peer_uri: String,
        dialog: Dialog,
    },
    /// Something from a bound MSRP connection.
    Msrp { peer: String, ev: MsrpEvent },
    /// The download of file message `message_id` ended.
    FileDone {
        message_id: String,
        result: Result<crate::ue::ft::SavedFile, crate::ue::ft::FtError>,
    },
    /// A group session is up: tell the application, after the core learned of it (this
    /// comes after its `Accepted` on the same queue, so a message the application sends next
    /// goes over that session).
    GroupJoined {
        group: String,
        /// The group's Contribution-ID, as the focus's 200 gave it (else our INVITE's).
        contribution_id: Option<String>,
        reply: oneshot::Sender<Result<String, super::GroupError>>,
    },
    /// The BYEs of a `CloseAll` are answered (or timed out): `done` fires once the sessions
    /// whose INVITE was still out are ended too.
    ClosedAll { done: oneshot::Sender<()> },
    /// A BYE sent because the client goes away is answered (or timed out).
    AwayByeDone,
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
    /// Incoming INVITEs the core has not answered yet (held for the application, or about to
    /// be answered), by the handle the core knows them by.
    invites: HashMap<IncomingInvite, IncomingRequest>,
    next_invite: u64,
    /// How to give up each of our INVITEs still waiting for its answer (the reason phrase
    /// of the 408 it then ends with).
    cancels: HashMap<OutgoingInvite, oneshot::Sender<String>>,
    events: mpsc::UnboundedSender<ChatEvent>,
    internal: mpsc::UnboundedSender<Internal>,
    /// Each group's Contribution-ID (RCC.07: every session of a group carries the same), by
    /// conference URI, at most [`group::MAX_GROUP_IDS`].
    group_ids: HashMap<String, String>,
    /// Our file-transfer client.
    ft: Arc<FtClient>,
    /// Downloads running at once, at most [`MAX_DOWNLOADS`] (the others wait their turn).
    downloads: Arc<tokio::sync::Semaphore>,
    /// BYEs of sessions ended as the client goes away, sent and not yet answered.
    away_byes: usize,
    /// `CloseAll`s waiting for the sessions still coming up to be ended
    /// ([`ChatCore::leaving`]) and their BYEs answered, at most [`MAX_CLOSE_WAITERS`].
    close_waiters: Vec<oneshot::Sender<()>>,
}

/// `CloseAll`s waiting at once; past it the oldest is let go.
const MAX_CLOSE_WAITERS: usize = 16;

/// How long a BYE's answer is waited for.
const BYE_WAIT: Duration = Duration::from_secs(2);

/// RFC 3326: the session ends because the client goes away, not because the user left (a
/// group focus keeps it a member and its messages for later).
fn going_away(bye: &mut Request) {
    bye.headers
        .push("Reason", "SIP;cause=480;text=\"Temporarily Unavailable\"");
}

/// Files downloaded at once.
const MAX_DOWNLOADS: usize = 4;

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
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        ep: Endpoint,
        cfg: UeConfig,
        contact: String,
        trace: Trace,
        opts: ChatOptions,
        ft: Arc<FtClient>,
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
            invites: HashMap::new(),
            next_invite: 0,
            cancels: HashMap::new(),
            events,
            internal,
            group_ids: HashMap::new(),
            ft,
            downloads: Arc::new(tokio::sync::Semaphore::new(MAX_DOWNLOADS)),
            away_byes: 0,
            close_waiters: Vec::new(),
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
                    invite,
                } => self.open(&peer, id, first, ids, invite),
                Output::CancelInvite { invite, reason } => {
                    if let Some(c) = self.cancels.remove(&invite) {
                        let _ = c.send(reason);
                    }
                }
                Output::Answer { tx, peer, imdn } => {
                    if let Some(inc) = self.invites.remove(&tx) {
                        self.answer_invite(inc, &peer, imdn);
                    }
                }
                Output::Refuse { tx, status, reason } => {
                    if let Some(inc) = self.invites.remove(&tx) {
                        let mut r = inc.request.response(status, Some(reason));
                        r.ensure_to_tag();
                        inc.tx.respond(r);
                    }
                }
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
                Output::Bye { dialog, away } => {
                    let mut bye = self.in_dialog(&dialog, Method::Bye);
                    if away {
                        going_away(&mut bye);
                        self.away_byes += 1;
                    }
                    let ep = self.ep.clone();
                    let internal = self.internal.clone();
                    let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                    tokio::spawn(async move {
                        let answered = ep.send_request(bye, pcscf, t).final_response();
                        let _ = tokio::time::timeout(BYE_WAIT, answered).await;
                        if away {
                            let _ = internal.send(Internal::AwayByeDone);
                        }
                    });
                }
                Output::DropConn { peer } => {
                    self.conns.remove(&peer);
                }
                Output::CloseConn { peer } => {
                    if let Some(c) = self.conns.remove(&peer) {
                        c.close();
                    }
                }
                Output::Download { message_id, info } => self.download(message_id, *info),
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
            }
        }
        if !self.close_waiters.is_empty() {
            self.release_close_waiters();
        }
    }

    /// Downloads a file (its turn among [`MAX_DOWNLOADS`]) into the files directory and
    /// tells the core how it went.
    fn download(&self, message_id: String, info: crate::fthttp::FileInfo) {
        let Some(dir) = self.opts.files.clone() else {
            return;
        };
        let (ft, max) = (self.ft.clone(), self.opts.max_file_size);
        let (slots, internal) = (self.downloads.clone(), self.internal.clone());
        tokio::spawn(async move {
            // The semaphore is never closed: the slot comes.
            let _slot = slots.acquire_owned().await;
            let result = ft.download(&info, &dir, max).await;
            let _ = internal.send(Internal::FileDone { message_id, result });
        });
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
            Cmd::Accept { peer, delivered } => self.feed(Input::Accept {
                peer: canonical(&peer),
                delivered,
            }),
            Cmd::Decline { peer } => self.feed(Input::Decline {
                peer: canonical(&peer),
            }),
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
                // Held INVITEs refused, MSRP connections closed, what is unsent failed: the
                // core's outputs, carried out before the BYEs go.
                let dialogs = self.core.close_all();
                self.drive();
                // RFC 3326: the sessions end because we go away, not because the user left
                // (a group focus keeps us a member and our messages for later).
                let byes: Vec<Request> = dialogs
                    .iter()
                    .map(|d| {
                        let mut b =
                            build_in_dialog(&self.ep, self.cfg.transport, d, Method::Bye, d.cseq);
                        going_away(&mut b);
                        b
                    })
                    .collect();
                let ep = self.ep.clone();
                let internal = self.internal.clone();
                let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                tokio::spawn(async move {
                    let all = futures_util::future::join_all(
                        byes.into_iter()
                            .map(|b| ep.send_request(b, pcscf, t).final_response()),
                    );
                    let _ = tokio::time::timeout(BYE_WAIT, all).await;
                    let _ = internal.send(Internal::ClosedAll { done });
                });
            }
            Cmd::Options { to, wait, reply } => {
                let mut req = self.ep.new_request(
                    Method::Options,
                    &to,
                    &self.cfg.impu,
                    1,
                    self.cfg.transport,
                );
                crate::ue::caps::dress_options(&mut req, &self.contact, &self.cfg.extra_tags);
                let ep = self.ep.clone();
                let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                tokio::spawn(async move {
                    let answer = ep.send_request(req, pcscf, t).final_response();
                    let caps = match tokio::time::timeout(wait, answer).await {
                        Ok(r) => crate::ue::caps::capabilities_of(&r),
                        Err(_) => crate::ue::caps::Capabilities::Failed {
                            status: 408,
                            reason: "Request Timeout (no final answer)".into(),
                        },
                    };
                    let _ = reply.send(caps);
                });
            }
            Cmd::Revoke {
                to,
                message_id,
                reply,
            } => {
                let cpim = crate::rcs::revoke::Revoke::request(&message_id)
                    .to_cpim(&self.cfg.impu, &to)
                    .to_bytes();
                let mut req = self.ep.new_request(
                    Method::Message,
                    &to,
                    &self.cfg.impu,
                    1,
                    self.cfg.transport,
                );
                req.headers
                    .push("Accept-Contact", crate::rcs::revoke::accept_contact());
                req.headers.push("Content-Type", "message/cpim");
                req.body = Bytes::from(cpim);
                let ep = self.ep.clone();
                let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                tokio::spawn(async move {
                    let r = ep.send_request(req, pcscf, t).final_response().await;
                    let _ = reply.send(r.is_success());
                });
            }
            Cmd::SendFileMsrp { to, file } => self.send_file_msrp(canonical(&to), file),
            Cmd::Close { to } => self.feed(Input::Close {
                peer: canonical(&to),
            }),
            Cmd::CreateGroup {
                subject,
                members,
                reply,
            } => self.create_group(subject, members, reply),
            Cmd::JoinGroup { group, reply } => self.join_group(group, reply),
            Cmd::KnowGroup {
                group,
                contribution_id,
            } => self.remember_group_id(&group, contribution_id),
            Cmd::GroupContribution { group, reply } => {
                let _ = reply.send(self.group_ids.get(&canonical(&group)).cloned());
            }
            Cmd::ChangeGroup {
                group,
                change,
                reply,
            } => self.change_group(group, change, reply),
        }
    }

    /// Figure 1 step 1: INVITE with SDP and the first message (the core decided to open the
    /// session and queues what follows; it says when to give the INVITE up).
    fn open(
        &mut self,
        peer: &str,
        id: String,
        first: Vec<u8>,
        ids: SessionIds,
        invite: OutgoingInvite,
    ) {
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
        // A group's sessions all carry its Contribution-ID (RCC.07 rejoin).
        let contribution = ids
            .contribution_id
            .or_else(|| self.group_ids.get(&canonical(peer)).cloned())
            .unwrap_or_else(rcs::new_id);
        req.headers.push("Contribution-ID", contribution);
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
        let (cancel, cancelled) = oneshot::channel();
        self.cancels.insert(invite, cancel);
        tokio::spawn(async move {
            let answer = ep.send_request(req.clone(), pcscf, t).final_response();
            let resp = tokio::select! {
                r = answer => r,
                Ok(reason) = cancelled => {
                    // The core gave the INVITE up (`Output::CancelInvite`): CANCEL it,
                    // bounded, and end with a 408.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        crate::sip::dialog::cancel_forwarded(&ep, &req, pcscf, t),
                    )
                    .await;
                    let mut r = req.response(408, None);
                    r.reason = reason;
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
                        invite: Some(invite),
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
                        invite: Some(invite),
                    });
                }
            }
        });
    }

    /// Lets the `CloseAll`s go once no session is still to be ended.
    fn release_close_waiters(&mut self) {
        if self.core.leaving() == 0 && self.away_byes == 0 {
            for done in self.close_waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }

    fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::ClosedAll { done } => {
                if self.close_waiters.len() >= MAX_CLOSE_WAITERS {
                    let _ = self.close_waiters.remove(0).send(());
                }
                self.close_waiters.push(done);
                self.release_close_waiters();
            }
            Internal::AwayByeDone => {
                self.away_byes = self.away_byes.saturating_sub(1);
                self.release_close_waiters();
            }
            Internal::Stored { message_id, reason } => {
                self.feed(Input::Stored { message_id, reason })
            }
            Internal::Failed {
                peer,
                reason,
                invite,
            } => {
                if let Some(k) = invite {
                    self.cancels.remove(&k);
                }
                self.feed(Input::SessionFailed {
                    peer,
                    reason,
                    invite,
                })
            }
            Internal::Accepted {
                peer,
                invite,
                conn,
                my_uri,
                peer_uri,
                dialog,
            } => {
                if let Some(k) = invite {
                    self.cancels.remove(&k);
                }
                self.conns.insert(peer.clone(), conn);
                self.feed(Input::SessionUp {
                    peer,
                    invite,
                    my_uri,
                    peer_uri,
                    dialog,
                });
            }
            Internal::FileDone { message_id, result } => {
                self.feed(Input::FileDone { message_id, result })
            }
            Internal::GroupJoined {
                group,
                contribution_id,
                reply,
            } => {
                if let Some(c) = contribution_id {
                    self.remember_group_id(&group, c);
                }
                let _ = reply.send(Ok(group));
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
            // RFC 5547: a file offered over MSRP (`actor/msrp_ft.rs`).
            Method::Invite
                if !crate::sip::dialog::in_dialog(&inc.request)
                    && rcs::ft::is_file_invite(&inc.request) =>
            {
                self.on_ft_invite(inc)
            }
            Method::Invite if !crate::sip::dialog::in_dialog(&inc.request) => self.on_invite(inc),
            Method::Cancel => {
                // RFC 3261 §9.2: 200 for the CANCEL; the core decides about the INVITE it
                // cancels (487 when still held for the application).
                inc.tx.respond(inc.request.response(200, None));
                self.feed(Input::Cancel { call_id });
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
                let ct = req.headers.get("Content-Type").unwrap_or("text/plain");
                let ct_l = ct.trim().to_ascii_lowercase();
                // RFC 3428 §7: a body it cannot show (an SMS for an SMS-over-IP stack this
                // client lacks) gets 415, so the sender learns it did not arrive.
                let mut ok = if ct_l.starts_with("message/cpim") || ct_l.starts_with("text/") {
                    req.response(200, None)
                } else {
                    let mut r = req.response(415, None);
                    r.headers.push("Accept", "message/cpim, text/plain");
                    r
                };
                ok.ensure_to_tag();
                let refused = ok.status == 415;
                inc.tx.respond(ok);
                if refused {
                    return;
                }
                if ct_l.starts_with("message/cpim") {
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
                // RFC 3326: `Reason: SIP;cause=200;text="idle"` from a group focus, say.
                let reason = inc
                    .request
                    .headers
                    .get("Reason")
                    .and_then(|r| r.split(';').find_map(|p| p.trim().strip_prefix("text=")))
                    .map(|t| t.trim_matches('"').to_string());
                inc.tx.respond(ok);
                self.feed(Input::Bye { call_id, reason });
            }
            // GSMA RCC.07 §2.6.1.1.2: capability discovery, answered with our feature tags.
            Method::Options => {
                let ok = crate::ue::caps::answer_options(
                    &inc.request,
                    &self.contact,
                    &self.cfg.extra_tags,
                );
                inc.tx.respond(ok);
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
        let h = |n: &str| req.headers.get(n).map(str::to_string);
        let info = InviteInfo {
            request_uri: req.uri.clone(),
            subject: h("Subject"),
            conversation_id: h("Conversation-ID"),
            contribution_id: h("Contribution-ID"),
        };
        let call_id = h("Call-ID").unwrap_or_default();
        if let Some(c) = info
            .contribution_id
            .clone()
            .filter(|_| is_focus(req.headers.get("Contact")))
        {
            self.remember_group_id(&peer, c);
        }
        // The core answers it or holds it for the application (`Output::Answer`/`Refuse`).
        self.next_invite += 1;
        let tx = IncomingInvite(self.next_invite);
        self.invites.insert(tx, inc);
        self.feed(Input::Invite {
            tx,
            peer,
            call_id,
            first,
            info,
        });
    }

    /// Answers a chat INVITE from `peer` (figure 1 steps 15-26 at UE2): `imdn` (the IMDN
    /// "delivered" the core decided on) in a SIP MESSAGE, then 200 OK, the ACK, and the MSRP
    /// binding.
    fn answer_invite(&mut self, inc: IncomingRequest, peer: &str, imdn: Option<(String, Vec<u8>)>) {
        let req = inc.request.clone();
        let peer = peer.to_string();
        let Ok(offer) = rcs::chat_body(req.headers.get("Content-Type"), &req.body) else {
            return;
        };
        let mut imdn_req = None;
        let mut imdn_about = String::new();
        if let Some((about, doc)) = imdn {
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
            focus: is_focus(req.headers.get("Contact")),
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
                        invite: None,
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
                        invite: None,
                    });
                }
            }
        });
    }

    fn in_dialog(&self, d: &Dialog, method: Method) -> Request {
        build_in_dialog(&self.ep, self.cfg.transport, d, method, d.cseq)
    }
}
