//! A simulated RCS client (GSMA RCC.07 1-to-1 chat): opens a chat with an INVITE carrying the
//! first message, binds its MSRP connection with an empty SEND, sends later messages over MSRP
//! (chunked above 2048 bytes), answers each received message with IMDNs "delivered" (and
//! "displayed" when told it was shown), and sends is-composing while typing. It takes an
//! INVITE from the network the way the paper's UE2 does (figure 1 steps 13-26): shows the
//! message, reports "delivered" in a SIP MESSAGE, answers 200, waits for the ACK and binds.
//!
//! It runs as a task of its own; the application drives it with [`ChatUe`] and reads
//! [`ChatEvent`]s.
//!
//! A network that restarts may send again what it had delivered but not yet recorded as
//! delivered (at-least-once from a store): the client drops a message whose imdn.Message-ID
//! it already got, and a disposition report it already had, from a bounded window of recent
//! ids ([`DEDUP_WINDOW`]); the copy is still acknowledged (and its "delivered" sent again), so
//! the network can forget it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::cpim::{Cpim, ImdnStatus, IsComposing};
use crate::im::rcs::{self, Content};
use crate::msrp::conn::{MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::limits::{Added, MsrpLimits, Partials};
use crate::msrp::sdp::MsrpSdp;
use crate::msrp::{chunk, MsrpMessage, MsrpUri, CHUNK_SIZE};
use crate::sip::endpoint::Incoming;
use crate::sip::{
    new_call_id, new_tag, Endpoint, IncomingRequest, Method, NameAddr, Request, Response,
    SipMessage,
};
use crate::trace::Trace;
use crate::ue::{Ue, UeConfig};

/// What the client tells its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// The network ended our registration (a reg-event NOTIFY saying so, RFC 3680: the HSS
    /// changed the credentials or removed the subscription, RTR); seen with
    /// [`ChatOptions::watch_registration`].
    Deregistered {
        /// What the NOTIFY said.
        reason: String,
    },
    /// A message arrived.
    Message {
        /// Sender (AoR).
        from: String,
        /// Its text.
        text: String,
        /// imdn.Message-ID.
        message_id: String,
    },
    /// A disposition notification about one of our messages.
    Status {
        /// The message it is about.
        message_id: String,
        /// What happened.
        status: ImdnStatus,
        /// Who reports.
        from: String,
        /// What the network added ([`crate::cpim::Imdn::note`]): `pager-mode` when T-IM
        /// delivered it as a SIP MESSAGE, the reason of a failure.
        note: Option<String>,
    },
    /// The network stored our message for a recipient who is offline (T-IM's 200 OK carried
    /// `Warning: 399 ... "stored: recipient offline"`); its status comes later as an IMDN.
    Stored {
        /// The message.
        message_id: String,
        /// The warning text.
        reason: String,
    },
    /// The other side is typing (or stopped).
    Composing {
        /// Who.
        from: String,
        /// Typing now.
        active: bool,
    },
    /// Someone opened a chat with us and [`ChatOptions::hold_invites`] is on: the INVITE waits
    /// for [`ChatUe::accept`] or [`ChatUe::decline`]. The first message (if the INVITE carried
    /// one) comes with it; no separate `Message` event is sent for it.
    Invited {
        /// Who (AoR of P-Asserted-Identity or From).
        from: String,
        /// The Request-URI (the identity that was called).
        request_uri: String,
        /// The INVITE's Subject, if any.
        subject: Option<String>,
        /// imdn.Message-ID of the first message (empty when there was none).
        message_id: String,
        /// The first message's text.
        text: Option<String>,
        /// Its CPIM DateTime.
        datetime: Option<String>,
        /// Conversation-ID header.
        conversation_id: Option<String>,
        /// Contribution-ID header.
        contribution_id: Option<String>,
    },
    /// A chat session changed state.
    Session {
        /// With whom.
        peer: String,
        /// What happened.
        status: SessionStatus,
        /// Why (SIP status or the reason it failed).
        reason: String,
    },
    /// The network took something we sent, so it is its to keep from now on (only with
    /// [`ChatOptions::report_acks`]): one of our
    /// messages (`report` None: the 200 to the INVITE that carried it, or the MSRP 200 of its
    /// last chunk), or our disposition report on message `message_id` (`report` Some: the 200
    /// to the SIP MESSAGE or MSRP SEND that carried it).
    Acked {
        /// Our message, or the message our report is about.
        message_id: String,
        /// The report's status, when it was a report.
        report: Option<ImdnStatus>,
    },
    /// A message of ours could not be sent (SIP or MSRP error).
    SendFailed {
        /// The message.
        message_id: String,
        /// Why.
        reason: String,
    },
}

/// Session state changes reported by [`ChatEvent::Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// The session is up (MSRP bound).
    Accepted,
    /// The other side (or we) declined it.
    Declined,
    /// It ended (BYE or the MSRP connection closed).
    Closed,
    /// It could not be set up.
    Failed,
}

impl SessionStatus {
    /// Lower-case name (`accepted`...), as the WebRSF events spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionStatus::Accepted => "accepted",
            SessionStatus::Declined => "declined",
            SessionStatus::Closed => "closed",
            SessionStatus::Failed => "failed",
        }
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Dispositions asked for on our messages (`positive-delivery, display`).
    pub disposition: String,
    /// Send IMDN "delivered" as soon as a message is received.
    pub auto_delivered: bool,
    /// Send IMDN "displayed" as soon as a message is received (a UI would wait until it is
    /// on screen and call [`ChatUe::displayed`]).
    pub auto_displayed: bool,
    /// Hold incoming chat INVITEs until the application accepts them (WebRSF asks its web
    /// client first, paper figure 4 steps 17-19).
    pub hold_invites: bool,
    /// Keep the registration alive: re-REGISTER with this Expires at half its lifetime.
    pub refresh_registration: Option<u32>,
    /// Report [`ChatEvent::Acked`] when the network takes a message or report of ours.
    pub report_acks: bool,
    /// Subscribe to our own registration state (TS 24.229 §5.1.1.3, RFC 3680) and report
    /// [`ChatEvent::Deregistered`] when the network ends it.
    pub watch_registration: bool,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            disposition: "positive-delivery, display".into(),
            auto_delivered: true,
            auto_displayed: false,
            hold_invites: false,
            refresh_registration: None,
            report_acks: false,
            watch_registration: false,
        }
    }
}

enum Cmd {
    Send {
        to: String,
        text: Bytes,
        content_type: String,
        ids: SessionIds,
        reply: oneshot::Sender<String>,
    },
    Accept {
        peer: String,
        delivered: bool,
    },
    Decline {
        peer: String,
    },
    Delivered {
        message_id: String,
    },
    Displayed {
        message_id: String,
    },
    Composing {
        to: String,
        active: bool,
    },
    Close {
        to: String,
    },
    /// Ends every session (BYE, MSRP connection closed) and refuses held INVITEs: what a
    /// client does before it de-registers, so the network keeps what comes next.
    CloseAll {
        done: oneshot::Sender<()>,
    },
}

/// Conversation-ID and Contribution-ID for a new session (new ones when `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionIds {
    /// Conversation-ID.
    pub conversation_id: Option<String>,
    /// Contribution-ID.
    pub contribution_id: Option<String>,
}

enum RegCmd {
    Deregister(oneshot::Sender<bool>),
    Register(oneshot::Sender<bool>),
}

/// How long a chat INVITE may wait for its final answer. The network's messaging server
/// answers it itself once it stored the first message (T-IM, figure 1 step 6), so a longer
/// silence means the INVITE was lost, e.g. in a node that restarted after its 100 Trying.
pub const INVITE_WAIT: Duration = Duration::from_secs(10);

/// Message-IDs (and reports) a client remembers to drop copies sent again.
pub const DEDUP_WINDOW: usize = 4096;

/// A bounded set of recent ids: the oldest goes when it is full.
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> RecentIds {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// True when `id` is new (and now remembered).
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// The application's handle on a running client.
pub struct ChatUe {
    cmd: mpsc::UnboundedSender<Cmd>,
    reg: mpsc::UnboundedSender<RegCmd>,
    events: mpsc::UnboundedReceiver<ChatEvent>,
    /// Our public identity.
    pub impu: String,
    /// Our SIP address.
    pub sip_addr: SocketAddr,
}

impl ChatUe {
    /// Runs a registered UE as an RCS client.
    pub fn start(mut ue: Ue, trace: Trace, opts: ChatOptions) -> ChatUe {
        let contact = ue.contact();
        let rx = ue.take_incoming();
        let (ep, cfg) = (ue.endpoint().clone(), ue.cfg.clone());
        let (reg_tx, reg_rx) = mpsc::unbounded_channel();
        tokio::spawn(registrar(
            ue,
            opts.refresh_registration,
            opts.watch_registration,
            reg_rx,
        ));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (int_tx, int_rx) = mpsc::unbounded_channel();
        let impu = cfg.impu.clone();
        let sip_addr = ep.local_addr();
        let actor = Actor {
            ep,
            cfg,
            contact,
            trace,
            opts,
            sessions: HashMap::new(),
            received: HashMap::new(),
            pending_acks: HashMap::new(),
            held: HashMap::new(),
            tids: HashMap::new(),
            report_tids: HashMap::new(),
            seen: RecentIds::new(DEDUP_WINDOW),
            events: ev_tx,
            internal: int_tx,
        };
        tokio::spawn(actor.run(rx, cmd_rx, int_rx));
        ChatUe {
            cmd: cmd_tx,
            reg: reg_tx,
            events: ev_rx,
            impu,
            sip_addr,
        }
    }

    /// Sends a text message to `to` (opening the session if needed); returns its
    /// imdn.Message-ID.
    pub async fn send(&self, to: &str, text: &str) -> String {
        self.send_typed(to, text.as_bytes(), "text/plain;charset=UTF-8")
            .await
    }

    /// Sends a message of any content type (a 100 KB file, say).
    pub async fn send_typed(&self, to: &str, body: &[u8], content_type: &str) -> String {
        self.send_with(to, body, content_type, SessionIds::default())
            .await
    }

    /// [`ChatUe::send_typed`] naming the Conversation-ID / Contribution-ID of the session it
    /// opens (when it opens one).
    pub async fn send_with(
        &self,
        to: &str,
        body: &[u8],
        content_type: &str,
        ids: SessionIds,
    ) -> String {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::Send {
            to: to.to_string(),
            text: Bytes::copy_from_slice(body),
            content_type: content_type.to_string(),
            ids,
            reply: tx,
        });
        rx.await.unwrap_or_default()
    }

    /// Accepts a held chat INVITE from `peer` ([`ChatEvent::Invited`]); with `delivered`, first
    /// reports the INVITE's message delivered in a SIP MESSAGE (figure 1 steps 15-22).
    pub fn accept(&self, peer: &str, delivered: bool) {
        let _ = self.cmd.send(Cmd::Accept {
            peer: peer.to_string(),
            delivered,
        });
    }

    /// Declines a held chat INVITE from `peer` (603 Decline).
    pub fn decline(&self, peer: &str) {
        let _ = self.cmd.send(Cmd::Decline {
            peer: peer.to_string(),
        });
    }

    /// Tells the sender a received message was delivered (IMDN "delivered"), when
    /// [`ChatOptions::auto_delivered`] is off.
    pub fn delivered(&self, message_id: &str) {
        let _ = self.cmd.send(Cmd::Delivered {
            message_id: message_id.to_string(),
        });
    }

    /// De-registers (REGISTER with Expires 0); true when the network said 200.
    pub async fn deregister(&self) -> bool {
        // Sessions first: a message relayed to us after the REGISTER with Expires 0 would be
        // taken by a client that is going away; with the MSRP connections closed, T-IM keeps
        // it for the next registration.
        let (done, closed) = oneshot::channel();
        let _ = self.cmd.send(Cmd::CloseAll { done });
        let _ = tokio::time::timeout(Duration::from_secs(3), closed).await;
        let (tx, rx) = oneshot::channel();
        let _ = self.reg.send(RegCmd::Deregister(tx));
        rx.await.unwrap_or(false)
    }

    /// Registers again (after the network lost our registration, e.g. it restarted); true
    /// when the network said 200.
    pub async fn register(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.reg.send(RegCmd::Register(tx));
        rx.await.unwrap_or(false)
    }

    /// Tells the sender a received message was shown (IMDN "displayed").
    pub fn displayed(&self, message_id: &str) {
        let _ = self.cmd.send(Cmd::Displayed {
            message_id: message_id.to_string(),
        });
    }

    /// Typing state towards `to` (RFC 3994), over the session when one is up.
    pub fn composing(&self, to: &str, active: bool) {
        let _ = self.cmd.send(Cmd::Composing {
            to: to.to_string(),
            active,
        });
    }

    /// Ends the session with `to` (BYE).
    pub fn close(&self, to: &str) {
        let _ = self.cmd.send(Cmd::Close { to: to.to_string() });
    }

    /// Takes the event stream, for an application that reads events in a task of its own
    /// while it drives the client through `&self` (the WebRSF gateway). `next_event` then
    /// returns nothing.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<ChatEvent> {
        let (_tx, rx) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, rx)
    }

    /// The next event, if one comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<ChatEvent> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

#[derive(Debug)]
enum SessState {
    Inviting,
    Up,
}

struct Sess {
    state: SessState,
    my_uri: String,
    peer_uri: Option<String>,
    conn: Option<MsrpConn>,
    /// Messages waiting for the session to come up (id, content type, CPIM bytes).
    queue: Vec<(String, Vec<u8>)>,
    dialog: Option<Dialog>,
    /// Partial messages by Message-ID, bounded ([`client_limits`]).
    reassembly: Partials<String>,
    /// Disposition reports asked for while the session comes up (sent once it is up, so a
    /// "displayed" never overtakes the "delivered" of figure 1 step 15).
    reports: Vec<(String, ImdnStatus)>,
}

impl Sess {
    /// A session being set up: messages queue until its MSRP connection is bound.
    fn inviting(my_uri: String) -> Sess {
        Sess {
            state: SessState::Inviting,
            my_uri,
            peer_uri: None,
            conn: None,
            queue: Vec::new(),
            dialog: None,
            reassembly: Partials::new(client_limits()),
            reports: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    local: String,
    remote: String,
    target: String,
    routes: Vec<String>,
    cseq: u32,
}

struct Received {
    peer: String,
    cpim: Cpim,
    /// IMDN "delivered" already sent (or not asked for).
    delivered: bool,
}

/// An incoming chat INVITE held for the application (figure 4 steps 15-19).
struct HeldInvite {
    inc: IncomingRequest,
    first: Option<Cpim>,
}

enum Internal {
    /// T-IM said it stored our first message for an offline recipient.
    Stored {
        message_id: String,
        reason: String,
    },
    /// Our INVITE (or the MSRP binding after it) failed.
    Failed {
        peer: String,
        reason: String,
    },
    /// A session the network opened is bound.
    Accepted {
        peer: String,
        conn: MsrpConn,
        my_uri: String,
        peer_uri: String,
        dialog: Dialog,
    },
    Msrp {
        peer: String,
        ev: MsrpEvent,
    },
}

struct Actor {
    ep: Endpoint,
    cfg: UeConfig,
    contact: String,
    trace: Trace,
    opts: ChatOptions,
    sessions: HashMap<String, Sess>,
    received: HashMap<String, Received>,
    pending_acks: HashMap<String, oneshot::Sender<()>>,
    held: HashMap<String, HeldInvite>,
    /// MSRP transaction id of our SENDs to imdn.Message-ID.
    tids: HashMap<String, String>,
    /// MSRP transaction id of our reports to (message reported on, status).
    report_tids: HashMap<String, (String, ImdnStatus)>,
    /// Message-IDs and reports already received (copies are dropped).
    seen: RecentIds,
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
    async fn run(
        mut self,
        mut sip: mpsc::UnboundedReceiver<Incoming>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        loop {
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
            }
        }
        // The client is gone: its MSRP legs close now, not whenever the last task holding a
        // handle to one lets go (the relay forgets the session when its legs close).
        for s in self.sessions.values() {
            if let Some(c) = &s.conn {
                c.close();
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
                self.send_cpim(&peer, id, cpim, ids);
            }
            Cmd::Displayed { message_id } => {
                self.report(&message_id, ImdnStatus::Displayed);
            }
            Cmd::Delivered { message_id } => {
                self.report(&message_id, ImdnStatus::Delivered);
            }
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
                    if let Some(c) = h.first {
                        self.received.remove(c.message_id().unwrap_or(""));
                    }
                    let _ = self.events.send(ChatEvent::Session {
                        peer,
                        status: SessionStatus::Declined,
                        reason: "603 Decline".into(),
                    });
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
                if self
                    .sessions
                    .get(&peer)
                    .is_some_and(|s| matches!(s.state, SessState::Up))
                {
                    self.msrp_send(&peer, String::new(), &cpim);
                }
            }
            Cmd::CloseAll { done } => {
                for (_, h) in self.held.drain() {
                    let mut r = h.inc.request.response(480, Some("Temporarily Unavailable"));
                    r.ensure_to_tag();
                    h.inc.tx.respond(r);
                }
                let mut byes = Vec::new();
                // Messages the network has not taken yet (queued for a session still being
                // set up, or sent without their 200) are not lost silently: the application
                // hears SendFailed for each, as it would after a refusal.
                let mut unsent: Vec<String> = self.tids.drain().map(|(_, id)| id).collect();
                for (_, s) in self.sessions.drain() {
                    unsent.extend(s.queue.iter().map(|(id, _)| id.clone()));
                    if let Some(c) = &s.conn {
                        c.close();
                    }
                    if let Some(mut d) = s.dialog {
                        d.cseq += 1;
                        byes.push(build_in_dialog(
                            &self.ep,
                            self.cfg.transport,
                            &d,
                            Method::Bye,
                            d.cseq,
                        ));
                    }
                }
                unsent.sort();
                unsent.dedup();
                for message_id in unsent.into_iter().filter(|id| !id.is_empty()) {
                    let _ = self.events.send(ChatEvent::SendFailed {
                        message_id,
                        reason:
                            "the client closed its sessions before the network took the message"
                                .into(),
                    });
                }
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
            Cmd::Close { to } => {
                let peer = canonical(&to);
                if let Some(s) = self.sessions.remove(&peer) {
                    if let Some(mut d) = s.dialog {
                        d.cseq += 1;
                        let bye = self.in_dialog(&d, Method::Bye);
                        let ep = self.ep.clone();
                        let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                        tokio::spawn(async move {
                            let _ = ep.send_request(bye, pcscf, t).final_response().await;
                        });
                    }
                }
            }
        }
    }

    /// A CPIM document for `peer`: over the session when it is up, queued while it opens,
    /// else it opens one with an INVITE carrying it.
    fn send_cpim(&mut self, peer: &str, id: String, cpim: Vec<u8>, ids: SessionIds) {
        match self.sessions.get_mut(peer) {
            Some(s) if matches!(s.state, SessState::Up) => {
                self.msrp_send(peer, id, &cpim);
            }
            Some(s) => s.queue.push((id, cpim)),
            None => self.open(peer, id, cpim, ids),
        }
    }

    /// Sends over the session's MSRP connection; returns the chunks' transaction ids.
    fn msrp_send(&mut self, peer: &str, id: String, cpim: &[u8]) -> Vec<String> {
        let Some(s) = self.sessions.get(peer) else {
            return Vec::new();
        };
        let (Some(conn), Some(to)) = (&s.conn, &s.peer_uri) else {
            return Vec::new();
        };
        let chunks = chunk(
            to,
            &s.my_uri,
            &rcs::new_id()[..16],
            "message/cpim",
            cpim,
            CHUNK_SIZE,
            || rcs::new_id()[..12].to_string(),
        );
        for c in &chunks {
            if !id.is_empty() {
                self.tids.insert(c.transaction_id.clone(), id.clone());
            }
            let _ = conn.send(c);
        }
        chunks.into_iter().map(|c| c.transaction_id).collect()
    }

    /// Figure 1 step 1: INVITE with SDP and the first message.
    fn open(&mut self, peer: &str, id: String, first: Vec<u8>, ids: SessionIds) {
        let my_uri = self.my_uri();
        self.sessions
            .insert(peer.to_string(), Sess::inviting(my_uri.clone()));
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
        // The first message's outcome is reported by IMDN or SendFailed.
        self.tids.insert(format!("invite:{peer}"), id.clone());
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
                        crate::cscf::cancel_forwarded(&ep, &req, pcscf, t),
                    )
                    .await;
                    let mut r = req.response(408, None);
                    r.reason = format!("No answer within {INVITE_WAIT:?}");
                    r
                }
            };
            let result = async {
                if !resp.is_success() {
                    return Err(format!("INVITE answered {} {}", resp.status, resp.reason));
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
                    .find(|w| w.contains(crate::im::STORED_WARNING))
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
                let to = cb.sdp.path.last().cloned().ok_or("answer without a=path")?;
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
                    let _ = internal.send(Internal::Failed { peer, reason: e });
                }
            }
        });
    }

    fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::Stored { message_id, reason } => {
                let _ = self.events.send(ChatEvent::Stored { message_id, reason });
            }
            Internal::Failed { peer, reason } => {
                let mut ids = Vec::new();
                if let Some(id) = self.tids.remove(&format!("invite:{peer}")) {
                    ids.push(id);
                }
                if let Some(s) = self.sessions.remove(&peer) {
                    ids.extend(s.queue.into_iter().map(|(id, _)| id));
                }
                for message_id in ids {
                    let _ = self.events.send(ChatEvent::SendFailed {
                        message_id,
                        reason: reason.clone(),
                    });
                }
                let status = if reason.contains(" 603 ") || reason.contains(" 486 ") {
                    SessionStatus::Declined
                } else {
                    SessionStatus::Failed
                };
                let _ = self.events.send(ChatEvent::Session {
                    peer,
                    status,
                    reason,
                });
            }
            Internal::Accepted {
                peer,
                conn,
                my_uri,
                peer_uri,
                dialog,
            } => {
                self.tids.remove(&format!("invite:{peer}"));
                let mut reports = Vec::new();
                let queued = match self.sessions.get_mut(&peer) {
                    Some(s) => {
                        s.state = SessState::Up;
                        s.conn = Some(conn);
                        s.my_uri = my_uri;
                        s.peer_uri = Some(peer_uri);
                        s.dialog = Some(dialog);
                        reports = std::mem::take(&mut s.reports);
                        std::mem::take(&mut s.queue)
                    }
                    None => {
                        self.sessions.insert(
                            peer.clone(),
                            Sess {
                                state: SessState::Up,
                                my_uri,
                                peer_uri: Some(peer_uri),
                                conn: Some(conn),
                                queue: Vec::new(),
                                dialog: Some(dialog),
                                reassembly: Partials::new(client_limits()),
                                reports: Vec::new(),
                            },
                        );
                        Vec::new()
                    }
                };
                let _ = self.events.send(ChatEvent::Session {
                    peer: peer.clone(),
                    status: SessionStatus::Accepted,
                    reason: String::new(),
                });
                for (id, cpim) in queued {
                    self.msrp_send(&peer, id, &cpim);
                }
                for (id, status) in reports {
                    self.report(&id, status);
                }
                if self.opts.auto_displayed {
                    // A first message that came in the INVITE is "displayed" once the session
                    // that carries the report is up.
                    let shown: Vec<String> = self
                        .received
                        .iter()
                        .filter(|(_, r)| r.peer == peer)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in shown {
                        self.report(&id, ImdnStatus::Displayed);
                    }
                }
            }
            Internal::Msrp { peer, ev } => match ev {
                MsrpEvent::Message(m) => self.on_msrp(&peer, m),
                MsrpEvent::Closed(_) => {
                    if let Some(s) = self.sessions.get(&peer) {
                        if matches!(s.state, SessState::Up) {
                            self.sessions.remove(&peer);
                            let _ = self.events.send(ChatEvent::Session {
                                peer,
                                status: SessionStatus::Closed,
                                reason: "MSRP connection closed".into(),
                            });
                        }
                    }
                }
            },
        }
    }

    fn on_msrp(&mut self, peer: &str, m: MsrpMessage) {
        if m.method.is_none() {
            if let Some((about, status)) = self.report_tids.remove(&m.transaction_id) {
                if m.status == 200 && self.opts.report_acks {
                    let _ = self.events.send(ChatEvent::Acked {
                        message_id: about,
                        report: Some(status),
                    });
                }
                return;
            }
            if let Some(id) = self.tids.remove(&m.transaction_id) {
                if m.status == 200 && self.opts.report_acks && !self.tids.values().any(|v| *v == id)
                {
                    let _ = self.events.send(ChatEvent::Acked {
                        message_id: id.clone(),
                        report: None,
                    });
                }
                if m.status != 200 {
                    // One report per message, not one per refused chunk.
                    self.tids.retain(|_, v| *v != id);
                    let _ = self.events.send(ChatEvent::SendFailed {
                        message_id: id,
                        reason: format!("MSRP {} {}", m.status, m.comment),
                    });
                    if m.status == 481 {
                        self.sessions.remove(peer);
                    }
                }
            }
            return;
        }
        if m.method.as_deref() != Some("SEND") {
            return;
        }
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
        let now = std::time::Instant::now();
        // Messages that stopped arriving go (the lazy sweep is enough for one client).
        s.reassembly.expire(now);
        let added = if m.body.is_empty() {
            Added::Partial
        } else {
            let mid = m.header("Message-ID").unwrap_or("").to_string();
            s.reassembly.add(now, mid, &m)
        };
        // RFC 4975 §7.1.1, §10: a chunk we will not hold gets 413 (the sender aborts).
        let answer = match added {
            Added::TooLarge => m.response_to(413, "Message Too Large"),
            Added::TooMany => m.response_to(413, "Too Many Partial Messages"),
            _ => m.response_to(200, "OK"),
        };
        if m.header("Failure-Report") != Some("no") {
            if let Some(c) = &s.conn {
                let _ = c.send(&answer);
            }
        }
        let Added::Whole(_, body) = added else {
            return;
        };
        if let Ok(c) = Cpim::parse(&body) {
            self.on_cpim(peer, c, true);
        }
    }

    /// A CPIM document from `peer` (over MSRP, in an INVITE or in a MESSAGE).
    fn on_cpim(&mut self, peer: &str, c: Cpim, in_session: bool) {
        match rcs::content(&c) {
            Content::Imdn(i) => {
                // A report sent again (the network restarted before it recorded it paid).
                if !self
                    .seen
                    .insert(&format!("{}\0{:?}", i.message_id, i.status))
                {
                    return;
                }
                let _ = self.events.send(ChatEvent::Status {
                    message_id: i.message_id,
                    status: i.status,
                    note: i.note,
                    from: c
                        .from_uri()
                        .map(str::to_string)
                        .unwrap_or_else(|| peer.to_string()),
                });
            }
            Content::Composing(active) => {
                let _ = self.events.send(ChatEvent::Composing {
                    from: peer.to_string(),
                    active,
                });
            }
            Content::Text(text) => {
                let id = c.message_id().unwrap_or("").to_string();
                // A copy of one we have: acknowledged (by our caller) and reported delivered
                // again, shown once.
                let fresh = id.is_empty() || self.seen.insert(&id);
                if fresh {
                    let _ = self.events.send(ChatEvent::Message {
                        from: c
                            .from_uri()
                            .map(str::to_string)
                            .unwrap_or_else(|| peer.to_string()),
                        text,
                        message_id: id.clone(),
                    });
                }
                let mut delivered = !c.wants("positive-delivery");
                if in_session && self.opts.auto_delivered {
                    self.report_on(peer, &c, ImdnStatus::Delivered);
                    delivered = true;
                }
                let mut displayed = !c.wants("display");
                if in_session && self.opts.auto_displayed {
                    self.report_on(peer, &c, ImdnStatus::Displayed);
                    displayed = true;
                }
                if fresh && !(delivered && displayed) {
                    // Kept until the application says it was delivered / shown.
                    self.received.insert(
                        id,
                        Received {
                            peer: peer.to_string(),
                            cpim: c,
                            delivered,
                        },
                    );
                }
            }
            Content::Other(_) => {}
        }
    }

    /// An IMDN about a received message, if its sender asked for it: over the session when up,
    /// else in a SIP MESSAGE.
    fn report(&mut self, message_id: &str, status: ImdnStatus) {
        let Some(r) = self.received.get_mut(message_id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&r.peer) {
            if matches!(s.state, SessState::Inviting) {
                s.reports.push((message_id.to_string(), status));
                return;
            }
        }
        if matches!(status, ImdnStatus::Delivered) {
            if r.delivered {
                return;
            }
            r.delivered = true;
            let (peer, cpim) = (r.peer.clone(), r.cpim.clone());
            if !cpim.wants("display") {
                self.received.remove(message_id);
            }
            self.report_on(&peer, &cpim, status);
        } else if let Some(r) = self.received.remove(message_id) {
            self.report_on(&r.peer, &r.cpim, status);
        }
    }

    /// An IMDN about `about` (from `peer`), when its sender asked for that disposition.
    fn report_on(&mut self, peer: &str, about: &Cpim, status: ImdnStatus) {
        let wanted = match status {
            ImdnStatus::Displayed => "display",
            _ => "positive-delivery",
        };
        if !about.wants(wanted) {
            return;
        }
        let peer = peer.to_string();
        let doc = rcs::imdn_message(&self.cfg.impu, &peer, about, status).to_bytes();
        let about_id = about.message_id().unwrap_or("").to_string();
        if self
            .sessions
            .get(&peer)
            .is_some_and(|s| matches!(s.state, SessState::Up))
        {
            for tid in self.msrp_send(&peer, String::new(), &doc) {
                if self.opts.report_acks && self.report_tids.len() < DEDUP_WINDOW {
                    self.report_tids.insert(tid, (about_id.clone(), status));
                }
            }
        } else {
            let req = self.imdn_message_request(&peer, doc);
            let ep = self.ep.clone();
            let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
            let events = self.opts.report_acks.then(|| self.events.clone());
            tokio::spawn(async move {
                let r = ep.send_request(req, pcscf, t).final_response().await;
                if let (true, Some(events)) = (r.is_success(), events) {
                    let _ = events.send(ChatEvent::Acked {
                        message_id: about_id,
                        report: Some(status),
                    });
                }
            });
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
            Method::Invite if !crate::cscf::in_dialog(&inc.request) => self.on_invite(inc),
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
                let body = String::from_utf8_lossy(&inc.request.body).to_string();
                let me = crate::store::canonical_identity(&self.cfg.impu).unwrap_or_default();
                if crate::cscf::regevent::terminated_aors(&body).contains(&me) {
                    let state = inc
                        .request
                        .headers
                        .get("Subscription-State")
                        .unwrap_or("")
                        .to_string();
                    let _ = self.events.send(ChatEvent::Deregistered {
                        reason: format!("the network ended the registration ({state})"),
                    });
                }
            }
            Method::Message => {
                let req = &inc.request;
                let peer = aor_of(req);
                let mut ok = req.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                let ct = req.headers.get("Content-Type").unwrap_or("text/plain");
                if ct.to_ascii_lowercase().starts_with("message/cpim") {
                    if let Ok(c) = Cpim::parse(&req.body) {
                        self.on_cpim(&peer, c, false);
                    }
                } else {
                    let _ = self.events.send(ChatEvent::Message {
                        from: peer,
                        text: String::from_utf8_lossy(&req.body).to_string(),
                        message_id: String::new(),
                    });
                }
            }
            Method::Bye => {
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                let ended: Vec<String> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.dialog.as_ref().map(|d| d.call_id.as_str()) == Some(&call_id)
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                for peer in ended {
                    self.sessions.remove(&peer);
                    let _ = self.events.send(ChatEvent::Session {
                        peer,
                        status: SessionStatus::Closed,
                        reason: "BYE".into(),
                    });
                }
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
            if let Some(c) = &first {
                if c.wants("positive-delivery") || c.wants("display") {
                    self.received.insert(
                        message_id.clone(),
                        Received {
                            peer: peer.clone(),
                            cpim: c.clone(),
                            delivered: !c.wants("positive-delivery"),
                        },
                    );
                }
            }
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
            self.on_cpim(&peer, c.clone(), false);
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
        let mut imdn_req = None;
        let mut imdn_about = String::new();
        if let Some(c) = first {
            let id = c.message_id().unwrap_or("").to_string();
            if delivered && c.wants("positive-delivery") {
                let doc = rcs::imdn_message(&self.cfg.impu, &peer, &c, ImdnStatus::Delivered);
                imdn_req = Some(self.imdn_message_request(&peer, doc.to_bytes()));
                imdn_about = id.clone();
                if let Some(r) = self.received.get_mut(&id) {
                    r.delivered = true;
                    if !c.wants("display") {
                        self.received.remove(&id);
                    }
                }
            }
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
        // Messages the application sends before the binding completes wait for it.
        self.sessions
            .entry(peer.clone())
            .or_insert_with(|| Sess::inviting(my_uri.clone()));
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
                    let _ = internal.send(Internal::Failed { peer, reason: e });
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

/// What a client holds of messages still arriving: 16 MiB messages, 32 at once, 32 MiB in all,
/// dropped after 60 s without a chunk (RFC 4975 §7.1.1).
fn client_limits() -> MsrpLimits {
    MsrpLimits {
        max_size: 16 << 20,
        partial_timeout: Duration::from_secs(60),
        max_partials_per_conn: 32,
        max_partial_bytes_per_conn: 32 << 20,
        ..MsrpLimits::default()
    }
}

/// Connects to the far end's MSRP URI, binds with an empty SEND (RFC 4975 §5.4) and waits for
/// its 200; returns the connection and the rest of its events.
async fn bind(
    to: &str,
    my_uri: &str,
    trace: Trace,
    sip_addr: SocketAddr,
) -> Result<(MsrpConn, MsrpEvents), String> {
    let uri = MsrpUri::parse(to).map_err(|e| e.to_string())?;
    let addr = tokio::net::lookup_host(uri.authority())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{} does not resolve", uri.authority()))?;
    let (conn, mut rx) = MsrpConn::connect(addr, trace.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Ladders name the UE, not its ephemeral MSRP port.
    trace.alias(conn.local_addr(), sip_addr);
    let bind = MsrpMessage::request("SEND", &rcs::new_id()[..12], to, my_uri);
    conn.send(&bind).map_err(|e| e.to_string())?;
    let ok = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = rx.recv().await {
            match ev {
                MsrpEvent::Message(m) if m.transaction_id == bind.transaction_id => {
                    return m.status == 200;
                }
                MsrpEvent::Message(_) => {}
                MsrpEvent::Closed(_) => return false,
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err("MSRP bind refused".into());
    }
    Ok((conn, rx))
}

/// Hands a bound connection's events to the actor.
fn forward_events(mut rx: MsrpEvents, internal: mpsc::UnboundedSender<Internal>, peer: String) {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let closed = matches!(ev, MsrpEvent::Closed(_));
            if internal
                .send(Internal::Msrp {
                    peer: peer.clone(),
                    ev,
                })
                .is_err()
                || closed
            {
                break;
            }
        }
    });
}

/// SUBSCRIBEs to our own reg event when the last subscription is due (`until` passed or
/// none); returns when the next one is due.
async fn watch_registration(
    ue: &mut Ue,
    until: Option<std::time::Instant>,
) -> Option<std::time::Instant> {
    let now = std::time::Instant::now();
    if until.is_some_and(|u| u > now) {
        return until;
    }
    let (resp, _) = ue.subscribe_reg(7200).await;
    if resp.status >= 300 {
        tracing::info!(status = resp.status, "reg-event subscription refused");
        return Some(now + Duration::from_secs(60));
    }
    let granted = resp
        .headers
        .get("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(600);
    Some(now + Duration::from_secs(granted.max(2) / 2))
}

/// Keeps the UE registered (re-REGISTER at half the granted lifetime) and de-registers on
/// request. Owns the [`Ue`] whose incoming requests the actor serves.
async fn registrar(
    mut ue: Ue,
    refresh: Option<u32>,
    watch: bool,
    mut cmds: mpsc::UnboundedReceiver<RegCmd>,
) {
    let mut every = refresh.map(|e| Duration::from_secs(u64::from(e.max(2)) / 2));
    // The reg-event subscription (RFC 3680): made now, made again (a new dialog) once half of
    // what the S-CSCF granted has passed, checked at each refresh; the old one lapses.
    let mut watched_until: Option<std::time::Instant> = None;
    if watch {
        watched_until = watch_registration(&mut ue, watched_until).await;
    }
    loop {
        let sleep = async {
            match every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                let expires = refresh.unwrap_or(600);
                match ue.register(expires).await {
                    Ok(r) if r.expires > 0 => {
                        every = Some(Duration::from_secs(u64::from(r.expires.max(2)) / 2));
                        if watch {
                            watched_until = watch_registration(&mut ue, watched_until).await;
                        }
                    }
                    Ok(_) => every = Some(Duration::from_secs(30)),
                    Err(e) => {
                        tracing::warn!(impu = %ue.cfg.impu, error = %e, "re-registration failed");
                        every = Some(Duration::from_secs(30));
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(RegCmd::Deregister(reply)) => {
                    let ok = ue.register(0).await.is_ok();
                    let _ = reply.send(ok);
                    return;
                }
                Some(RegCmd::Register(reply)) => {
                    let expires = refresh.unwrap_or(600);
                    let ok = matches!(ue.register(expires).await, Ok(r) if r.expires > 0);
                    let _ = reply.send(ok);
                }
                None => return,
            },
        }
    }
}
