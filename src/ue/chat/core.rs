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
//! §7.1.1: 30 s) fails its message with [`ChatEvent::SendFailed`]. Incoming INVITEs (answered
//! or held for the application) and the bounded wait for the answer to ours are decided in
//! `invites.rs`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::cpim::{Cpim, ImdnStatus};
use crate::msrp::limits::{Added, MsrpLimits, Partials};
use crate::msrp::{chunk, MsrpMessage, CHUNK_SIZE};
use crate::rcs::{self, Content};

use super::recent::RecentIds;
use super::{ChatEvent, ChatOptions, SessionIds, SessionStatus, DEDUP_WINDOW};

mod files;
mod imdn;
mod invites;

use files::PendingFile;
use invites::HeldInvite;
pub(super) use invites::{IncomingInvite, InviteInfo, OutgoingInvite};

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
    /// The other side is a conference focus (its Contact says `isfocus`, RFC 4579 §3.3): a
    /// group chat, whose messages are [`ChatEvent::GroupMessage`]s.
    pub(super) focus: bool,
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
    /// A chat INVITE from `peer` (not in a dialog), its transaction kept by the driver as `tx`.
    Invite {
        tx: IncomingInvite,
        peer: String,
        call_id: String,
        first: Option<Cpim>,
        info: InviteInfo,
    },
    /// The application accepts `peer`'s held INVITE (reporting its first message delivered
    /// first when `delivered`).
    Accept { peer: String, delivered: bool },
    /// The application declines `peer`'s held INVITE.
    Decline { peer: String },
    /// A CANCEL for the INVITE of dialog `call_id` (already answered 200 by the driver).
    Cancel { call_id: String },
    /// T-IM stored our first message for an offline recipient (Warning in its 200).
    Stored { message_id: String, reason: String },
    /// The INVITE (ours, `invite`, or theirs) or the MSRP binding after it failed.
    SessionFailed {
        peer: String,
        reason: String,
        invite: Option<OutgoingInvite>,
    },
    /// The session's MSRP connection is bound (after our INVITE `invite`, or theirs).
    SessionUp {
        peer: String,
        invite: Option<OutgoingInvite>,
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
    /// The other side's BYE; the text of its `Reason` (RFC 3326), if it gave one.
    Bye {
        call_id: String,
        reason: Option<String>,
    },
    /// The download of file message `message_id` ended: the file saved, or why not.
    FileDone {
        message_id: String,
        result: Result<crate::ue::ft::SavedFile, crate::ue::ft::FtError>,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Output {
    /// Send this over `peer`'s MSRP connection.
    Msrp { peer: String, msg: MsrpMessage },
    /// Open a session with `peer`: an INVITE carrying `first` (a CPIM document, message
    /// `id`) in its multipart body; the core knows it as `invite`.
    Invite {
        peer: String,
        id: String,
        first: Vec<u8>,
        ids: SessionIds,
        invite: OutgoingInvite,
    },
    /// Give up our INVITE `invite` (CANCEL it) and report it failed with a 408 whose reason
    /// phrase is `reason`, unless its final answer is already in.
    CancelInvite {
        invite: OutgoingInvite,
        reason: String,
    },
    /// Answer the incoming INVITE `tx` from `peer` with 200 (after sending `imdn`, the
    /// "delivered" report (about, CPIM) on its first message, in a SIP MESSAGE), then bind.
    Answer {
        tx: IncomingInvite,
        peer: String,
        imdn: Option<(String, Vec<u8>)>,
    },
    /// Answer the incoming INVITE `tx` with this final status.
    Refuse {
        tx: IncomingInvite,
        status: u16,
        reason: &'static str,
    },
    /// Send this disposition report (CPIM with IMDN, about message `about`) in a SIP
    /// MESSAGE: there is no session to carry it.
    ImdnMessage {
        peer: String,
        about: String,
        status: ImdnStatus,
        cpim: Vec<u8>,
    },
    /// Send BYE in this dialog (its CSeq already raised); `away`: because the client goes
    /// away (`Reason: SIP;cause=480`, RFC 3326), not because the user ends the session.
    Bye { dialog: Dialog, away: bool },
    /// Drop `peer`'s MSRP connection (the session is gone).
    DropConn { peer: String },
    /// Close `peer`'s MSRP connection now (the client is closing its sessions).
    CloseConn { peer: String },
    /// Download the file of message `message_id` (file transfer via HTTP) and say how it
    /// went with [`Input::FileDone`].
    Download {
        message_id: String,
        info: Box<crate::fthttp::FileInfo>,
    },
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
    /// Incoming INVITEs held for the application, by peer.
    held: HashMap<String, HeldInvite>,
    /// Our INVITEs waiting for their final answer: the peer, and when we give up.
    inviting: HashMap<OutgoingInvite, (String, Instant)>,
    /// Peers whose session the application closed while our INVITE was still out: when it
    /// comes up after all, it is ended at once (BYE) rather than kept; `true` when the whole
    /// client is closing ([`ChatCore::close_all`]), so the BYE says it goes away.
    closing: HashMap<String, bool>,
    next_invite: u64,
    /// Files being received (file transfer via HTTP), by imdn.Message-ID ([`files`]).
    files: HashMap<String, PendingFile>,
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
            held: HashMap::new(),
            inviting: HashMap::new(),
            closing: HashMap::new(),
            next_invite: 0,
            files: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// The next thing to do, in the order it was decided.
    pub(super) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`ChatCore::handle_timeout`] must run next (the earliest MSRP transaction
    /// deadline, or the moment one of our INVITEs is given up).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let msrp = self.deadlines.values().min().copied();
        match (msrp, self.invite_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
        self.handle_input(now, input);
        // Files whose session came up (or will not) start downloading.
        self.start_downloads();
    }

    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::FileDone { message_id, result } => self.file_done(now, &message_id, result),
            Input::Send {
                peer,
                id,
                cpim,
                ids,
            } => self.send_cpim(now, &peer, id, cpim, ids),
            Input::Report { message_id, status } => self.report(now, &message_id, status),
            Input::Composing { peer, cpim } => {
                if self.is_up(&peer) {
                    // Unanswered to a focus, which fans it out to every member (RCC.07).
                    let answered = !self.with_focus(&peer);
                    self.msrp_send_as(now, &peer, String::new(), &cpim, answered);
                }
            }
            Input::Close { peer } => {
                if let Some(s) = self.sessions.remove(&peer) {
                    match s.dialog {
                        Some(mut d) => {
                            d.cseq += 1;
                            self.out.push_back(Output::Bye {
                                dialog: d,
                                away: false,
                            });
                        }
                        // Our INVITE is still out (its first message rides in it): the
                        // session is ended as soon as it comes up; what waited for it fails.
                        None if s.state == SessState::Inviting => {
                            self.closing.insert(peer.clone(), false);
                            for (message_id, _) in s.queue {
                                self.event(ChatEvent::SendFailed {
                                    message_id,
                                    reason: "closed before the session came up".into(),
                                });
                            }
                        }
                        None => {}
                    }
                    self.out.push_back(Output::DropConn { peer });
                }
            }
            Input::Invite {
                tx,
                peer,
                call_id,
                first,
                info,
            } => self.on_invite(now, tx, peer, call_id, first, info),
            Input::Accept { peer, delivered } => self.accept(&peer, delivered),
            Input::Decline { peer } => self.decline(peer),
            Input::Cancel { call_id } => self.cancelled(&call_id),
            Input::Stored { message_id, reason } => {
                self.event(ChatEvent::Stored { message_id, reason })
            }
            Input::SessionFailed {
                peer,
                reason,
                invite,
            } => {
                self.invite_done(invite);
                self.session_failed(peer, reason)
            }
            Input::SessionUp {
                peer,
                invite,
                my_uri,
                peer_uri,
                dialog,
            } => {
                self.invite_done(invite);
                self.session_up(now, peer, my_uri, peer_uri, dialog)
            }
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
            Input::Bye { call_id, reason } => {
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
                        reason: reason.clone().unwrap_or_else(|| "BYE".into()),
                    });
                }
            }
        }
    }

    /// RFC 4975 §7.1.1: every transaction of ours past its deadline fails its message (one
    /// report per message, not one per chunk).
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.invite_timeouts(now);
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

    /// Sessions the client ended while our INVITE was out ([`ChatCore::close_all`]), whose
    /// answer (then their BYE) is still to come.
    pub(super) fn leaving(&self) -> usize {
        self.closing.values().filter(|away| **away).count()
    }

    /// Ends every session: what a client does before it de-registers. Held INVITEs get 480,
    /// MSRP connections close, and messages the network has not taken yet fail (the
    /// application hears SendFailed for each, as after a refusal); returns the dialogs to
    /// send BYE in (CSeq raised).
    pub(super) fn close_all(&mut self) -> Vec<Dialog> {
        // The application's own closes still pending become the client's.
        self.closing.values_mut().for_each(|away| *away = true);
        self.refuse_held();
        let mut byes = Vec::new();
        let mut unsent: Vec<String> = self.tids.drain().map(|(_, id)| id).collect();
        self.deadlines.clear();
        let mut owed = Vec::new();
        for (peer, s) in self.sessions.drain() {
            unsent.extend(s.queue.iter().map(|(id, _)| id.clone()));
            // Reports asked for while the session was coming up still go, in SIP MESSAGEs
            // (RFC 5438 §6.2; TS 24.229 pager mode): the application has acknowledged them.
            owed.extend(s.reports.iter().cloned());
            self.out.push_back(Output::CloseConn { peer: peer.clone() });
            match s.dialog {
                Some(mut d) => {
                    d.cseq += 1;
                    byes.push(d);
                }
                // Our INVITE is still out: the session is ended when it comes up, and the
                // client waits for that ([`ChatCore::leaving`]) before it de-registers.
                None if s.state == SessState::Inviting => {
                    self.closing.insert(peer, true);
                }
                None => {}
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
        byes
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
                self.closing.remove(peer);
                self.sessions.insert(peer.to_string(), Sess::inviting());
                self.tids.insert(format!("invite:{peer}"), id.clone());
                let invite = self.invite_started(now, peer);
                self.out.push_back(Output::Invite {
                    peer: peer.to_string(),
                    id,
                    first: cpim,
                    ids,
                    invite,
                });
            }
        }
    }

    /// Sends over the session's MSRP connection (chunked above [`CHUNK_SIZE`], RFC 4975
    /// §5.1); returns the chunks' transaction ids.
    fn msrp_send(&mut self, now: Instant, peer: &str, id: String, cpim: &[u8]) -> Vec<String> {
        self.msrp_send_as(now, peer, id, cpim, true)
    }

    /// True when the session with `peer` is with a conference focus (a group chat).
    pub(super) fn with_focus(&self, peer: &str) -> bool {
        self.sessions
            .get(peer)
            .and_then(|s| s.dialog.as_ref())
            .is_some_and(|d| d.focus)
    }

    /// [`ChatCore::msrp_send`]; with `answered` false the SENDs carry `Failure-Report: no`
    /// (RFC 4975 §7.1.1: the far end answers nothing), as an RCS client sends is-composing
    /// and disposition reports (GSMA RCC.07: Success-Report and Failure-Report both "no").
    pub(super) fn msrp_send_as(
        &mut self,
        now: Instant,
        peer: &str,
        id: String,
        cpim: &[u8],
        answered: bool,
    ) -> Vec<String> {
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
        for mut c in chunks {
            if !answered {
                c.set_header("Failure-Report", "no");
            }
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
        self.closing.remove(&peer);
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
        if let Some(away) = self.closing.remove(&peer) {
            // Closed by the application while it came up (RFC 3261 §15: BYE ends it).
            let mut d = dialog;
            d.cseq += 1;
            self.out.push_back(Output::Bye { dialog: d, away });
            self.out.push_back(Output::DropConn { peer: peer.clone() });
            self.event(ChatEvent::Session {
                peer,
                status: SessionStatus::Closed,
                reason: "closed".into(),
            });
            return;
        }
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
            // A file is shown once it is here (its reports follow the download).
            let shown: Vec<String> = self
                .received
                .iter()
                .filter(|(id, r)| r.peer == peer && !self.files.contains_key(*id))
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
                let from = c
                    .from_uri()
                    .map(str::to_string)
                    .unwrap_or_else(|| peer.to_string());
                // A report sent again (the network restarted before it recorded it paid); in a
                // group each member reports on the same message, so the reporter is part of it.
                if !self
                    .seen
                    .insert(&format!("{}\0{:?}\0{from}", i.message_id, i.status))
                {
                    return;
                }
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
                    let (from, group) = self.origin(peer, &c);
                    self.event(match group {
                        Some(group) => ChatEvent::GroupMessage {
                            group,
                            from,
                            text,
                            message_id: id,
                        },
                        None => ChatEvent::Message {
                            from,
                            text,
                            message_id: id,
                        },
                    });
                }
                self.reports_on_receipt(now, peer, c, in_session, fresh);
            }
            Content::Bot(card) => {
                let id = c.message_id().unwrap_or("").to_string();
                let fresh = id.is_empty() || self.seen.insert(&id);
                if fresh {
                    let (from, _) = self.origin(peer, &c);
                    self.event(ChatEvent::BotMessage {
                        from,
                        card,
                        message_id: id,
                    });
                }
                self.reports_on_receipt(now, peer, c, in_session, fresh);
            }
            Content::Tap(reply) => {
                let id = c.message_id().unwrap_or("").to_string();
                let fresh = id.is_empty() || self.seen.insert(&id);
                if fresh {
                    let (from, _) = self.origin(peer, &c);
                    self.event(ChatEvent::Tap {
                        from,
                        reply,
                        message_id: id,
                    });
                }
                self.reports_on_receipt(now, peer, c, in_session, fresh);
            }
            Content::File(info) => self.on_file(now, peer, c, *info, in_session),
            // The outcome of our revocation request (a request itself is the network's to
            // handle: a client never takes back what it received).
            Content::Revoke(r) => {
                if let Some(revoked) = r.result {
                    let (from, _) = self.origin(peer, &c);
                    self.event(ChatEvent::Revoked {
                        from,
                        message_id: r.message_id,
                        revoked,
                    });
                }
            }
            Content::Other(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
