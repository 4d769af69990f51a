//! The chat client's decisions, without sockets (STYLE.md §1, quinn-proto style): per-peer
//! session state, the queue of messages waiting for a session, MSRP transaction tracking,
//! IMDN bookkeeping (RFC 5438), duplicate suppression, and what a reg-event NOTIFY about our
//! own registration means (RFC 3680). The driver ([`super::actor`]) feeds
//! it what happened with [`ChatCore::handle`] and carries out what [`ChatCore::poll_output`]
//! says: MSRP to send, SIP to start, events for the application; it arms one timer at
//! [`ChatCore::poll_timeout`] and calls [`ChatCore::handle_timeout`] when it fires.
//!
//! A session with one peer (GSMA RCC.07 1-to-1 chat, RFC 4975):
//! ```text
//!            Send (no session)                     SessionUp (MSRP bound)
//!   (none) ─────────────────────> Inviting ───────────────────────────────> Up
//!     ^     Output::Invite with     │  later messages queue,               │ messages and
//!     │     the first message CPIM  │  reports wait                        │ reports go
//!     │                             │ SessionFailed                        │ over MSRP
//!     └─────────────────────────────┴──────────────────────────────────────┘
//!        (SendFailed for the first and queued messages; Session Failed/Declined;
//!         BYE, MSRP close or 481 end an Up session: Session Closed)
//! ```
//! An MSRP SEND of ours that gets no response within [`MSRP_TRANSACTION_TIMEOUT`] (RFC 4975
//! §7.1.1: 30 s) fails its message with [`ChatEvent::SendFailed`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::cpim::{Cpim, ImdnStatus};
use crate::msrp::limits::{Added, MsrpLimits, Partials};
use crate::msrp::{chunk, MsrpMessage, CHUNK_SIZE};
use crate::rcs::{self, Content};

use super::recent::RecentIds;
use super::{ChatEvent, ChatOptions, SessionIds, SessionStatus, DEDUP_WINDOW};

/// RFC 4975 §7.1.1: a sender that gets no transaction response within 30 s treats the
/// transaction as failed.
pub const MSRP_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A SIP dialog of a chat session (RFC 3261 §12), enough to send BYE and ACK in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dialog {
    pub(super) call_id: String,
    pub(super) local: String,
    pub(super) remote: String,
    pub(super) target: String,
    pub(super) routes: Vec<String>,
    pub(super) cseq: u32,
}

/// What happened, as the driver tells it.
#[derive(Debug)]
pub(super) enum Input {
    /// The application sends a message (its CPIM document built, id `id`).
    Send {
        peer: String,
        id: String,
        cpim: Vec<u8>,
        ids: SessionIds,
    },
    /// The application reports a received message delivered / displayed.
    Report {
        message_id: String,
        status: ImdnStatus,
    },
    /// An is-composing CPIM document for `peer` (sent only over a session that is up).
    Composing { peer: String, cpim: Vec<u8> },
    /// The application closes its session with `peer`.
    Close { peer: String },
    /// A held INVITE was declined (603): its first message (if any) is forgotten.
    Declined {
        peer: String,
        message_id: Option<String>,
    },
    /// T-IM stored our first message for an offline recipient (Warning in its 200).
    Stored { message_id: String, reason: String },
    /// The INVITE (ours or theirs) or the MSRP binding after it failed.
    SessionFailed { peer: String, reason: String },
    /// The session's MSRP connection is bound.
    SessionUp {
        peer: String,
        my_uri: String,
        peer_uri: String,
        dialog: Dialog,
    },
    /// An MSRP request or response from `peer`'s connection.
    Msrp { peer: String, msg: MsrpMessage },
    /// `peer`'s MSRP connection closed.
    MsrpClosed { peer: String },
    /// A CPIM document from `peer` outside MSRP (SIP MESSAGE, or the INVITE's first message).
    Cpim { peer: String, cpim: Cpim },
    /// A pager-mode MESSAGE (RFC 3428) from `peer` whose body is not CPIM.
    PagerText { peer: String, text: String },
    /// A reg-event NOTIFY (RFC 3680) about our registration: its reginfo body and its
    /// Subscription-State.
    RegInfo {
        reginfo: String,
        subscription_state: String,
    },
    /// An INVITE from `peer` was held for the application: its first message waits for the
    /// application's "delivered"/"displayed".
    Held { peer: String, first: Option<Cpim> },
    /// A BYE for dialog `call_id`.
    Bye { call_id: String },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Output {
    /// Send this over `peer`'s MSRP connection.
    Msrp { peer: String, msg: MsrpMessage },
    /// Open a session with `peer`: an INVITE carrying `first` (a CPIM document, message
    /// `id`) in its multipart body.
    Invite {
        peer: String,
        id: String,
        first: Vec<u8>,
        ids: SessionIds,
    },
    /// Send this disposition report (CPIM with IMDN, about message `about`) in a SIP
    /// MESSAGE: there is no session to carry it.
    ImdnMessage {
        peer: String,
        about: String,
        status: ImdnStatus,
        cpim: Vec<u8>,
    },
    /// Send BYE in this dialog (its CSeq already raised).
    Bye { dialog: Dialog },
    /// Drop `peer`'s MSRP connection (the session is gone).
    DropConn { peer: String },
    /// Tell the application.
    Event(ChatEvent),
}

#[derive(Debug, PartialEq, Eq)]
enum SessState {
    Inviting,
    Up,
}

struct Sess {
    state: SessState,
    my_uri: String,
    peer_uri: Option<String>,
    /// Messages waiting for the session to come up (id, CPIM bytes).
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
    fn inviting() -> Sess {
        Sess {
            state: SessState::Inviting,
            my_uri: String::new(),
            peer_uri: None,
            queue: Vec::new(),
            dialog: None,
            reassembly: Partials::new(client_limits()),
            reports: Vec::new(),
        }
    }
}

struct Received {
    peer: String,
    cpim: Cpim,
    /// IMDN "delivered" already sent (or not asked for).
    delivered: bool,
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

/// The socket-free chat client.
pub(super) struct ChatCore {
    impu: String,
    opts: ChatOptions,
    sessions: HashMap<String, Sess>,
    received: HashMap<String, Received>,
    /// MSRP transaction id of our SENDs to imdn.Message-ID (`invite:<peer>` for the first
    /// message, carried by the INVITE).
    tids: HashMap<String, String>,
    /// When each MSRP transaction in `tids` times out (RFC 4975 §7.1.1).
    deadlines: HashMap<String, Instant>,
    /// MSRP transaction id of our reports to (message reported on, status).
    report_tids: HashMap<String, (String, ImdnStatus)>,
    /// Message-IDs and reports already received (copies are dropped).
    seen: RecentIds,
    out: VecDeque<Output>,
}

impl ChatCore {
    /// A client for `impu` with `opts`.
    pub(super) fn new(impu: String, opts: ChatOptions) -> ChatCore {
        ChatCore {
            impu,
            opts,
            sessions: HashMap::new(),
            received: HashMap::new(),
            tids: HashMap::new(),
            deadlines: HashMap::new(),
            report_tids: HashMap::new(),
            seen: RecentIds::new(DEDUP_WINDOW),
            out: VecDeque::new(),
        }
    }

    /// The next thing to do, in the order it was decided.
    pub(super) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`ChatCore::handle_timeout`] must run next (the earliest MSRP transaction
    /// deadline).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// True when a session with `peer` is up (MSRP bound).
    pub(super) fn is_up(&self, peer: &str) -> bool {
        self.sessions
            .get(peer)
            .is_some_and(|s| s.state == SessState::Up)
    }

    fn event(&mut self, e: ChatEvent) {
        self.out.push_back(Output::Event(e));
    }

    /// Feeds one input.
    pub(super) fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Send {
                peer,
                id,
                cpim,
                ids,
            } => self.send_cpim(now, &peer, id, cpim, ids),
            Input::Report { message_id, status } => self.report(now, &message_id, status),
            Input::Composing { peer, cpim } => {
                if self.is_up(&peer) {
                    self.msrp_send(now, &peer, String::new(), &cpim);
                }
            }
            Input::Close { peer } => {
                if let Some(s) = self.sessions.remove(&peer) {
                    if let Some(mut d) = s.dialog {
                        d.cseq += 1;
                        self.out.push_back(Output::Bye { dialog: d });
                    }
                    self.out.push_back(Output::DropConn { peer });
                }
            }
            Input::Declined { peer, message_id } => {
                if let Some(id) = message_id {
                    self.received.remove(&id);
                }
                self.event(ChatEvent::Session {
                    peer,
                    status: SessionStatus::Declined,
                    reason: "603 Decline".into(),
                });
            }
            Input::Stored { message_id, reason } => {
                self.event(ChatEvent::Stored { message_id, reason })
            }
            Input::SessionFailed { peer, reason } => self.session_failed(peer, reason),
            Input::SessionUp {
                peer,
                my_uri,
                peer_uri,
                dialog,
            } => self.session_up(now, peer, my_uri, peer_uri, dialog),
            Input::Msrp { peer, msg } => self.on_msrp(now, &peer, msg),
            Input::MsrpClosed { peer } => {
                if self.is_up(&peer) {
                    self.sessions.remove(&peer);
                    self.out.push_back(Output::DropConn { peer: peer.clone() });
                    self.event(ChatEvent::Session {
                        peer,
                        status: SessionStatus::Closed,
                        reason: "MSRP connection closed".into(),
                    });
                }
            }
            Input::Cpim { peer, cpim } => self.on_cpim(now, &peer, cpim, false),
            Input::PagerText { peer, text } => self.event(ChatEvent::Message {
                from: peer,
                text,
                message_id: String::new(),
            }),
            Input::RegInfo {
                reginfo,
                subscription_state,
            } => {
                // RFC 3680 §5.4 / TS 24.229 §5.1.1.6: our AOR's registration `terminated`
                // means the network ended it (RTR, an administrator).
                let me = crate::store::canonical_identity(&self.impu).unwrap_or_default();
                if crate::sip::reginfo::terminated_aors(&reginfo).contains(&me) {
                    self.event(ChatEvent::Deregistered {
                        reason: format!(
                            "the network ended the registration ({subscription_state})"
                        ),
                    });
                }
            }
            Input::Held { peer, first } => {
                if let Some(c) = first {
                    if c.wants("positive-delivery") || c.wants("display") {
                        let id = c.message_id().unwrap_or("").to_string();
                        let delivered = !c.wants("positive-delivery");
                        self.received.insert(
                            id,
                            Received {
                                peer,
                                cpim: c,
                                delivered,
                            },
                        );
                    }
                }
            }
            Input::Bye { call_id } => {
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
                    self.out.push_back(Output::DropConn { peer: peer.clone() });
                    self.event(ChatEvent::Session {
                        peer,
                        status: SessionStatus::Closed,
                        reason: "BYE".into(),
                    });
                }
            }
        }
    }

    /// RFC 4975 §7.1.1: every transaction of ours past its deadline fails its message (one
    /// report per message, not one per chunk).
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<(Instant, String)> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(t, d)| (*d, t.clone()))
            .collect();
        due.sort();
        for (_, tid) in due {
            self.deadlines.remove(&tid);
            let Some(id) = self.tids.remove(&tid) else {
                continue;
            };
            let gone: Vec<String> = self
                .tids
                .iter()
                .filter(|(_, v)| **v == id)
                .map(|(t, _)| t.clone())
                .collect();
            for t in gone {
                self.tids.remove(&t);
                self.deadlines.remove(&t);
            }
            self.event(ChatEvent::SendFailed {
                message_id: id,
                reason: format!(
                    "MSRP transaction timeout: no response within {}s (RFC 4975 section 7.1.1)",
                    MSRP_TRANSACTION_TIMEOUT.as_secs()
                ),
            });
        }
    }

    /// Ends every session: what a client does before it de-registers. Messages the network
    /// has not taken yet fail (the application hears SendFailed for each, as after a
    /// refusal); returns the dialogs to send BYE in (CSeq raised) and the peers whose MSRP
    /// connections must close.
    pub(super) fn close_all(&mut self) -> (Vec<Dialog>, Vec<String>) {
        let mut byes = Vec::new();
        let mut peers = Vec::new();
        let mut unsent: Vec<String> = self.tids.drain().map(|(_, id)| id).collect();
        self.deadlines.clear();
        let mut owed = Vec::new();
        for (peer, s) in self.sessions.drain() {
            unsent.extend(s.queue.iter().map(|(id, _)| id.clone()));
            // Reports asked for while the session was coming up still go, in SIP MESSAGEs
            // (RFC 5438 §6.2; TS 24.229 pager mode): the application has acknowledged them.
            owed.extend(s.reports.iter().cloned());
            peers.push(peer);
            if let Some(mut d) = s.dialog {
                d.cseq += 1;
                byes.push(d);
            }
        }
        for (message_id, status) in owed {
            self.report_by_message(&message_id, status);
        }
        unsent.sort();
        unsent.dedup();
        for message_id in unsent.into_iter().filter(|id| !id.is_empty()) {
            self.event(ChatEvent::SendFailed {
                message_id,
                reason: "the client closed its sessions before the network took the message".into(),
            });
        }
        (byes, peers)
    }

    /// We answer `peer`'s chat INVITE (figure 1 steps 15-26 at UE2): a session comes up with
    /// it, and the IMDN "delivered" for its first message (when `delivered` and asked for)
    /// goes in a SIP MESSAGE before the 200: returned as (about, CPIM) for the driver to send
    /// in that order.
    pub(super) fn answering(
        &mut self,
        peer: &str,
        first: Option<&Cpim>,
        delivered: bool,
    ) -> Option<(String, Vec<u8>)> {
        let mut imdn = None;
        if let Some(c) = first {
            let id = c.message_id().unwrap_or("").to_string();
            if delivered && c.wants("positive-delivery") {
                let doc = rcs::imdn_message(&self.impu, peer, c, ImdnStatus::Delivered);
                imdn = Some((id.clone(), doc.to_bytes()));
                if let Some(r) = self.received.get_mut(&id) {
                    r.delivered = true;
                    if !c.wants("display") {
                        self.received.remove(&id);
                    }
                }
            }
        }
        // Messages the application sends before the binding completes wait for it.
        self.sessions
            .entry(peer.to_string())
            .or_insert_with(Sess::inviting);
        imdn
    }

    /// A CPIM document for `peer`: over the session when it is up, queued while it opens,
    /// else it opens one with an INVITE carrying it.
    fn send_cpim(&mut self, now: Instant, peer: &str, id: String, cpim: Vec<u8>, ids: SessionIds) {
        match self.sessions.get_mut(peer) {
            Some(s) if s.state == SessState::Up => {
                self.msrp_send(now, peer, id, &cpim);
            }
            Some(s) => s.queue.push((id, cpim)),
            None => {
                // Figure 1 step 1: INVITE with SDP and the first message; its outcome is
                // reported by IMDN or SendFailed.
                self.sessions.insert(peer.to_string(), Sess::inviting());
                self.tids.insert(format!("invite:{peer}"), id.clone());
                self.out.push_back(Output::Invite {
                    peer: peer.to_string(),
                    id,
                    first: cpim,
                    ids,
                });
            }
        }
    }

    /// Sends over the session's MSRP connection (chunked above [`CHUNK_SIZE`], RFC 4975
    /// §5.1); returns the chunks' transaction ids.
    fn msrp_send(&mut self, now: Instant, peer: &str, id: String, cpim: &[u8]) -> Vec<String> {
        let Some(s) = self.sessions.get(peer) else {
            return Vec::new();
        };
        let Some(to) = &s.peer_uri else {
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
        let tids = chunks.iter().map(|c| c.transaction_id.clone()).collect();
        for c in chunks {
            if !id.is_empty() {
                self.tids.insert(c.transaction_id.clone(), id.clone());
                self.deadlines
                    .insert(c.transaction_id.clone(), now + MSRP_TRANSACTION_TIMEOUT);
            }
            self.out.push_back(Output::Msrp {
                peer: peer.to_string(),
                msg: c,
            });
        }
        tids
    }

    fn session_failed(&mut self, peer: String, reason: String) {
        let mut ids = Vec::new();
        if let Some(id) = self.tids.remove(&format!("invite:{peer}")) {
            ids.push(id);
        }
        if let Some(s) = self.sessions.remove(&peer) {
            ids.extend(s.queue.into_iter().map(|(id, _)| id));
        }
        for message_id in ids {
            self.event(ChatEvent::SendFailed {
                message_id,
                reason: reason.clone(),
            });
        }
        let status = if reason.contains(" 603 ") || reason.contains(" 486 ") {
            SessionStatus::Declined
        } else {
            SessionStatus::Failed
        };
        self.event(ChatEvent::Session {
            peer,
            status,
            reason,
        });
    }

    fn session_up(
        &mut self,
        now: Instant,
        peer: String,
        my_uri: String,
        peer_uri: String,
        dialog: Dialog,
    ) {
        self.tids.remove(&format!("invite:{peer}"));
        let s = self
            .sessions
            .entry(peer.clone())
            .or_insert_with(Sess::inviting);
        s.state = SessState::Up;
        s.my_uri = my_uri;
        s.peer_uri = Some(peer_uri);
        s.dialog = Some(dialog);
        let reports = std::mem::take(&mut s.reports);
        let queued = std::mem::take(&mut s.queue);
        self.event(ChatEvent::Session {
            peer: peer.clone(),
            status: SessionStatus::Accepted,
            reason: String::new(),
        });
        for (id, cpim) in queued {
            self.msrp_send(now, &peer, id, &cpim);
        }
        for (id, status) in reports {
            self.report(now, &id, status);
        }
        if self.opts.auto_displayed {
            // A first message that came in the INVITE is "displayed" once the session that
            // carries the report is up.
            let shown: Vec<String> = self
                .received
                .iter()
                .filter(|(_, r)| r.peer == peer)
                .map(|(id, _)| id.clone())
                .collect();
            for id in shown {
                self.report(now, &id, ImdnStatus::Displayed);
            }
        }
    }

    fn on_msrp(&mut self, now: Instant, peer: &str, m: MsrpMessage) {
        if m.method.is_none() {
            self.on_msrp_response(peer, m);
            return;
        }
        if m.method.as_deref() != Some("SEND") {
            return;
        }
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
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
            self.out.push_back(Output::Msrp {
                peer: peer.to_string(),
                msg: answer,
            });
        }
        let Added::Whole(_, body) = added else {
            return;
        };
        if let Ok(c) = Cpim::parse(&body) {
            self.on_cpim(now, peer, c, true);
        }
    }

    /// RFC 4975 §7.2: a transaction response to one of our SENDs.
    fn on_msrp_response(&mut self, peer: &str, m: MsrpMessage) {
        if let Some((about, status)) = self.report_tids.remove(&m.transaction_id) {
            if m.status == 200 && self.opts.report_acks {
                self.event(ChatEvent::Acked {
                    message_id: about,
                    report: Some(status),
                });
            }
            return;
        }
        self.deadlines.remove(&m.transaction_id);
        let Some(id) = self.tids.remove(&m.transaction_id) else {
            return;
        };
        if m.status == 200 && self.opts.report_acks && !self.tids.values().any(|v| *v == id) {
            self.event(ChatEvent::Acked {
                message_id: id.clone(),
                report: None,
            });
        }
        if m.status != 200 {
            // One report per message, not one per refused chunk.
            let deadlines = &mut self.deadlines;
            self.tids.retain(|t, v| {
                let keep = *v != id;
                if !keep {
                    deadlines.remove(t);
                }
                keep
            });
            self.event(ChatEvent::SendFailed {
                message_id: id,
                reason: format!("MSRP {} {}", m.status, m.comment),
            });
            if m.status == 481 && self.sessions.remove(peer).is_some() {
                self.out.push_back(Output::DropConn {
                    peer: peer.to_string(),
                });
            }
        }
    }

    /// A CPIM document from `peer` (over MSRP when `in_session`, else in an INVITE or a
    /// MESSAGE).
    fn on_cpim(&mut self, now: Instant, peer: &str, c: Cpim, in_session: bool) {
        match rcs::content(&c) {
            Content::Imdn(i) => {
                // A report sent again (the network restarted before it recorded it paid).
                if !self
                    .seen
                    .insert(&format!("{}\0{:?}", i.message_id, i.status))
                {
                    return;
                }
                let from = c
                    .from_uri()
                    .map(str::to_string)
                    .unwrap_or_else(|| peer.to_string());
                self.event(ChatEvent::Status {
                    message_id: i.message_id,
                    status: i.status,
                    note: i.note,
                    from,
                });
            }
            Content::Composing(active) => {
                self.event(ChatEvent::Composing {
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
                    let from = c
                        .from_uri()
                        .map(str::to_string)
                        .unwrap_or_else(|| peer.to_string());
                    self.event(ChatEvent::Message {
                        from,
                        text,
                        message_id: id.clone(),
                    });
                }
                let mut delivered = !c.wants("positive-delivery");
                if in_session && self.opts.auto_delivered {
                    self.report_on(now, peer, &c, ImdnStatus::Delivered);
                    delivered = true;
                }
                let mut displayed = !c.wants("display");
                if in_session && self.opts.auto_displayed {
                    self.report_on(now, peer, &c, ImdnStatus::Displayed);
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

    /// An IMDN about a received message, if its sender asked for it: over the session when
    /// up, else in a SIP MESSAGE (RFC 5438 §5).
    fn report(&mut self, now: Instant, message_id: &str, status: ImdnStatus) {
        let Some(r) = self.received.get_mut(message_id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&r.peer) {
            if s.state == SessState::Inviting {
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
            self.report_on(now, &peer, &cpim, status);
        } else if let Some(r) = self.received.remove(message_id) {
            self.report_on(now, &r.peer, &r.cpim, status);
        }
    }

    /// A report on a received message sent in a SIP MESSAGE (no session to carry it), when
    /// its sender asked for it and it was not sent yet.
    fn report_by_message(&mut self, message_id: &str, status: ImdnStatus) {
        let Some(r) = self.received.get_mut(message_id) else {
            return;
        };
        if matches!(status, ImdnStatus::Delivered) {
            if r.delivered {
                return;
            }
            r.delivered = true;
        }
        let (peer, cpim) = (r.peer.clone(), r.cpim.clone());
        if !matches!(status, ImdnStatus::Delivered) || !cpim.wants("display") {
            self.received.remove(message_id);
        }
        let wanted = match status {
            ImdnStatus::Displayed => "display",
            _ => "positive-delivery",
        };
        if !cpim.wants(wanted) {
            return;
        }
        let doc = rcs::imdn_message(&self.impu, &peer, &cpim, status).to_bytes();
        self.out.push_back(Output::ImdnMessage {
            peer,
            about: message_id.to_string(),
            status,
            cpim: doc,
        });
    }

    /// An IMDN about `about` (from `peer`), when its sender asked for that disposition
    /// (RFC 5438 §6.2: Disposition-Notification).
    fn report_on(&mut self, now: Instant, peer: &str, about: &Cpim, status: ImdnStatus) {
        let wanted = match status {
            ImdnStatus::Displayed => "display",
            _ => "positive-delivery",
        };
        if !about.wants(wanted) {
            return;
        }
        let doc = rcs::imdn_message(&self.impu, peer, about, status).to_bytes();
        let about_id = about.message_id().unwrap_or("").to_string();
        if self.is_up(peer) {
            for tid in self.msrp_send(now, peer, String::new(), &doc) {
                if self.opts.report_acks && self.report_tids.len() < DEDUP_WINDOW {
                    self.report_tids.insert(tid, (about_id.clone(), status));
                }
            }
        } else {
            self.out.push_back(Output::ImdnMessage {
                peer: peer.to_string(),
                about: about_id,
                status,
                cpim: doc,
            });
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
