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
//!
//! The client is split the quinn way (STYLE.md §1): `core.rs` holds its decisions without
//! sockets (sessions, message queue, MSRP transactions and their RFC 4975 §7.1.1 timeout,
//! IMDN bookkeeping per RFC 5438 in `core/imdn.rs`, incoming INVITEs held for the
//! application and the [`INVITE_WAIT`] on ours in `core/invites.rs`), driven by
//! `handle(now, input)` with outputs polled out and unit-tested with a fake clock; `actor.rs`
//! is the tokio driver that owns the SIP endpoint and its transactions, the MSRP connections
//! and the timer and translates; `registrar.rs` keeps the registration alive.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::cpim::ImdnStatus;
use crate::fthttp::FileInfo;
use crate::trace::Trace;
use crate::ue::ft::{FtClient, FtError};
use crate::ue::Ue;

mod actor;
mod core;
mod msrp_bind;
mod recent;
mod registrar;
pub mod roster;

pub use self::actor::CONFERENCE_FACTORY;
pub use self::core::MSRP_TRANSACTION_TIMEOUT;

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
    /// A chatbot's rich card (GSMA RCC.07 §3.6, [`crate::rcs::chatbot`]): its text and the
    /// replies it suggests.
    BotMessage {
        /// The chatbot (AoR).
        from: String,
        /// The card.
        card: crate::rcs::chatbot::BotMessage,
        /// imdn.Message-ID.
        message_id: String,
    },
    /// A user tapped one of our suggested replies (we are a chatbot).
    Tap {
        /// Who tapped.
        from: String,
        /// The reply, with our postback data.
        reply: crate::rcs::chatbot::Reply,
        /// imdn.Message-ID.
        message_id: String,
    },
    /// A message to a group chat we are in (the session's other side is a conference focus).
    GroupMessage {
        /// The group's conference URI (`sip:chat-GID@DOMAIN`).
        group: String,
        /// Who wrote it (the CPIM From the focus vouches for).
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
    /// A file arrived (file transfer via HTTP, GSMA RCC.07 §3.2.5): downloaded from the
    /// content server into [`ChatOptions::files`], its size checked against the file-info;
    /// the sender is told "delivered" now.
    File {
        /// Sender (AoR; in a group, who wrote it).
        from: String,
        /// The group's conference URI, for a file sent to a group.
        group: Option<String>,
        /// The file's name as its sender gave it.
        name: String,
        /// Where it was saved (its name made safe, never over another file).
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
        /// Its SHA-256, lowercase hex.
        sha256: String,
        /// Its content type (the file-info's).
        content_type: String,
        /// imdn.Message-ID of the file-info message.
        message_id: String,
    },
    /// The network's answer to our request to revoke a chat message ([`ChatUe::revoke`],
    /// GSMA RCC.07 message revocation).
    Revoked {
        /// Who answered for the recipient (the recipient's identity).
        from: String,
        /// Our message it is about.
        message_id: String,
        /// True: taken back, the recipient never gets it. False: delivered already, being
        /// delivered, or not known.
        revoked: bool,
    },
    /// A file could not be had (refused by the content server, cut beyond resuming, not the
    /// announced size, not writable); the sender is told "failed".
    FileFailed {
        /// Sender.
        from: String,
        /// The group, for a file sent to a group.
        group: Option<String>,
        /// The file's name as its sender gave it.
        name: String,
        /// imdn.Message-ID of the file-info message.
        message_id: String,
        /// Why.
        reason: String,
    },
    /// A file was offered and [`ChatOptions::files`] is off: it is not downloaded; the
    /// file-info says where it is (reported delivered like a text: the message arrived).
    FileOffered {
        /// Sender.
        from: String,
        /// The group, for a file sent to a group.
        group: Option<String>,
        /// The file-info document.
        info: Box<FileInfo>,
        /// imdn.Message-ID.
        message_id: String,
    },
    /// A message of ours could not be sent (SIP or MSRP error).
    SendFailed {
        /// The message.
        message_id: String,
        /// Why.
        reason: String,
    },
}

/// Why a group chat operation ([`ChatUe::create_group`], [`ChatUe::join_group`],
/// [`ChatUe::add_to_group`], [`ChatUe::remove_from_group`]) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The focus (or the network on the way) answered with a failure: `403 Forbidden (399
    /// conf.ims.lab "not a member of this group")`.
    #[error("{status} {reason}{}", warning.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Refused {
        /// The SIP status.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The Warning header, when there was one.
        warning: Option<String>,
    },
    /// No final answer in time.
    #[error("no answer from the group focus")]
    NoAnswer,
    /// The 200 named no focus (Contact `;isfocus`) or no MSRP path.
    #[error("the 200 names no focus (Contact ;isfocus) or no MSRP path")]
    NotAFocus,
    /// The session's MSRP binding failed.
    #[error("MSRP bind: {0}")]
    Bind(String),
    /// The client stopped.
    #[error("the client stopped")]
    Stopped,
}

impl GroupError {
    pub(crate) fn refused(r: &crate::sip::Response) -> GroupError {
        GroupError::Refused {
            status: r.status,
            reason: r.reason.clone(),
            warning: r.headers.get("Warning").map(str::to_string),
        }
    }

    /// The SIP status, for a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            GroupError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
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
    /// Where files sent to us are saved (file transfer via HTTP: downloaded from the content
    /// server, [`ChatEvent::File`]); `None`: they are not downloaded but offered
    /// ([`ChatEvent::FileOffered`]).
    pub files: Option<PathBuf>,
    /// The largest file downloaded (larger: [`ChatEvent::FileFailed`]).
    pub max_file_size: u64,
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
            files: None,
            max_file_size: crate::ue::ft::DEFAULT_MAX_DOWNLOAD,
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
    SendFileMsrp {
        to: String,
        file: actor::msrp_ft::OutgoingFile,
    },
    CreateGroup {
        subject: String,
        members: Vec<String>,
        reply: oneshot::Sender<Result<String, GroupError>>,
    },
    JoinGroup {
        group: String,
        reply: oneshot::Sender<Result<String, GroupError>>,
    },
    ChangeGroup {
        group: String,
        change: actor::GroupChange,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    KnowGroup {
        group: String,
        contribution_id: String,
    },
    GroupContribution {
        group: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// An OPTIONS capability query to `to` ([`ChatUe::capabilities`]).
    Options {
        to: String,
        wait: Duration,
        reply: oneshot::Sender<crate::ue::caps::Capabilities>,
    },
    /// A request to revoke our chat message `message_id` to `to` ([`ChatUe::revoke`]).
    Revoke {
        to: String,
        message_id: String,
        reply: oneshot::Sender<bool>,
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

/// The application's handle on a running client.
pub struct ChatUe {
    cmd: mpsc::UnboundedSender<Cmd>,
    reg: mpsc::UnboundedSender<RegCmd>,
    events: mpsc::UnboundedReceiver<ChatEvent>,
    /// Our public identity.
    pub impu: String,
    /// Our SIP address.
    pub sip_addr: SocketAddr,
    /// Our file-transfer client (the content server with our credentials).
    ft: Arc<FtClient>,
}

/// A file sent ([`ChatUe::send_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFile {
    /// imdn.Message-ID of the file-info message (its IMDNs come as [`ChatEvent::Status`]).
    pub message_id: String,
    /// The file-info the content server answered the upload with.
    pub info: FileInfo,
}

/// A file being sent over MSRP ([`ChatUe::send_file_msrp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMsrpFile {
    /// Its `a=file-transfer-id`, also its MSRP Message-ID: the id its outcome is reported by.
    pub message_id: String,
    /// The name offered.
    pub name: String,
    /// The type offered.
    pub content_type: String,
    /// Its size, bytes.
    pub size: u64,
}

impl ChatUe {
    /// Runs a registered UE as an RCS client.
    pub fn start(mut ue: Ue, trace: Trace, opts: ChatOptions) -> ChatUe {
        let contact = ue.contact();
        let rx = ue.take_incoming();
        let (ep, cfg) = (ue.endpoint().clone(), ue.cfg.clone());
        let (reg_tx, reg_rx) = mpsc::unbounded_channel();
        tokio::spawn(registrar::run(
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
        let ft = Arc::new(FtClient::new(
            &cfg.impi,
            &cfg.password,
            trace.clone(),
            &crate::ue::ue_label(&cfg.impu),
        ));
        let actor = actor::Actor::new(ep, cfg, contact, trace, opts, ft.clone(), ev_tx, int_tx);
        tokio::spawn(actor.run(rx, cmd_rx, int_rx));
        ChatUe {
            cmd: cmd_tx,
            reg: reg_tx,
            events: ev_rx,
            impu,
            sip_addr,
            ft,
        }
    }

    /// Sends a file to `to` (GSMA RCC.07 §3.2.5 "File Transfer via HTTP"): uploads it to the
    /// content server at `content_server` (`http://HOST:PORT`; with a thumbnail for a JPEG
    /// or PNG image), then sends the file-info it answers with as a chat message
    /// (`application/vnd.gsma.rcs-ft-http+xml`). The recipient downloads it; its IMDN
    /// "delivered" comes as [`ChatEvent::Status`] about [`SentFile::message_id`].
    pub async fn send_file(
        &self,
        to: &str,
        path: &Path,
        content_server: &str,
    ) -> Result<SentFile, FtError> {
        let info = self.ft.upload(content_server, path).await?;
        let message_id = self
            .send_typed(to, info.to_xml().as_bytes(), crate::rcs::FT_HTTP_TYPE)
            .await;
        Ok(SentFile { message_id, info })
    }

    /// Our file-transfer client (the content server with our credentials), for an
    /// application that fetches offered files itself ([`ChatEvent::FileOffered`]).
    pub fn file_client(&self) -> Arc<FtClient> {
        self.ft.clone()
    }

    /// Sends a file to `to` over MSRP (RFC 5547, `actor/msrp_ft.rs`): reads it once for its
    /// size and SHA-1, then offers it in an INVITE of its own and sends it in chunks once the
    /// recipient accepted. `Err` when the file cannot be read; the outcome comes later as
    /// [`ChatEvent::Status`] "delivered" (the recipient's 200 for the last chunk: the whole
    /// file checked and saved) or [`ChatEvent::SendFailed`] about
    /// [`SentMsrpFile::message_id`].
    pub async fn send_file_msrp(&self, to: &str, path: &Path) -> Result<SentMsrpFile, FtError> {
        let file = actor::msrp_ft::prepare(path).await?;
        let sent = SentMsrpFile {
            message_id: file.transfer_id.clone(),
            name: file.name().to_string(),
            content_type: file.content_type().to_string(),
            size: file.size(),
        };
        let _ = self.cmd.send(Cmd::SendFileMsrp {
            to: to.to_string(),
            file,
        });
        Ok(sent)
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

    /// Asks `to` for its capabilities with an OPTIONS through the core, as
    /// [`Ue::capabilities`] does, while this client runs (its feature tags in Contact).
    pub async fn capabilities(&self, to: &str, wait: Duration) -> crate::ue::caps::Capabilities {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::Options {
            to: to.to_string(),
            wait,
            reply: tx,
        });
        rx.await
            .unwrap_or_else(|_| crate::ue::caps::Capabilities::Failed {
                status: 500,
                reason: "the client stopped".into(),
            })
    }

    /// Sends a tap on a chatbot's suggested `reply` to `to` (GSMA RCC.07 §3.6.10.4) as a chat
    /// message; returns its imdn.Message-ID.
    pub async fn tap(&self, to: &str, reply: &crate::rcs::chatbot::Reply) -> String {
        self.send_typed(
            to,
            &crate::rcs::chatbot::response_json(reply),
            crate::rcs::chatbot::SUGGESTION_RESPONSE_TYPE,
        )
        .await
    }

    /// Asks the network to take back chat message `message_id`, sent to `to` and not yet
    /// reported delivered (GSMA RCC.07 message revocation, [`crate::rcs::revoke`]): a SIP
    /// MESSAGE to `to` that the recipient's messaging server answers; the outcome comes later
    /// as [`ChatEvent::Revoked`]. False when the MESSAGE got no 2xx within `wait`.
    pub async fn revoke(&self, to: &str, message_id: &str, wait: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::Revoke {
            to: to.to_string(),
            message_id: message_id.to_string(),
            reply: tx,
        });
        tokio::time::timeout(wait, rx)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(false)
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

    /// Creates a group chat with `members` (user names or URIs) through the conference
    /// factory (RFC 5366): the group's conference URI (`sip:chat-GID@DOMAIN`) once the focus
    /// answered and our MSRP leg is bound, or why not. [`ChatUe::send`] to that URI sends to
    /// the group.
    pub async fn create_group(
        &self,
        subject: &str,
        members: &[&str],
    ) -> Result<String, GroupError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::CreateGroup {
            subject: subject.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
            reply: tx,
        });
        rx.await.unwrap_or(Err(GroupError::Stopped))
    }

    /// Joins `group` (a conference URI) again when we have no session with it (RCC.07
    /// rejoin: an INVITE to the group's URI): after an idle teardown, a restart of the client,
    /// or before leaving it for good with [`ChatUe::close`] (BYE).
    pub async fn join_group(&self, group: &str) -> Result<String, GroupError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::JoinGroup {
            group: group.to_string(),
            reply: tx,
        });
        rx.await.unwrap_or(Err(GroupError::Stopped))
    }

    /// Tells the client group `group`'s Contribution-ID (a restarted client that kept it):
    /// every session it opens with the group then carries it (RCC.07 rejoin). The client also
    /// learns it by itself from the focus (its 200s and INVITEs).
    pub fn know_group(&self, group: &str, contribution_id: &str) {
        let _ = self.cmd.send(Cmd::KnowGroup {
            group: group.to_string(),
            contribution_id: contribution_id.to_string(),
        });
    }

    /// Group `group`'s Contribution-ID, if the client knows it.
    pub async fn group_contribution(&self, group: &str) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::GroupContribution {
            group: group.to_string(),
            reply: tx,
        });
        rx.await.ok().flatten()
    }

    /// Adds `members` (user names or URIs) to `group` (a conference URI): a REFER to the group,
    /// one `Refer-To` for one member, a `multiple-refer` list for several (RFC 4579 §5.5, RFC
    /// 5368). `Ok` once the focus accepted it (202); it then INVITEs them.
    pub async fn add_to_group(&self, group: &str, members: &[&str]) -> Result<(), GroupError> {
        let change = actor::GroupChange::Add(members.iter().map(|m| m.to_string()).collect());
        self.change_group(group, change).await
    }

    /// Removes `member` from `group` (REFER with `method=BYE`, RFC 4579 §5.6): the chairman's
    /// right only (others get 403).
    pub async fn remove_from_group(&self, group: &str, member: &str) -> Result<(), GroupError> {
        self.change_group(group, actor::GroupChange::Remove(member.to_string()))
            .await
    }

    async fn change_group(
        &self,
        group: &str,
        change: actor::GroupChange,
    ) -> Result<(), GroupError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::ChangeGroup {
            group: group.to_string(),
            change,
            reply: tx,
        });
        rx.await.unwrap_or(Err(GroupError::Stopped))
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
