//! WebRSF, the web gateway of the paper (seed 000 §3, figures 4 and 5, Table 1): towards the
//! IMS core it is an RCS UE for every web user that is logged in (it REGISTERs them through the
//! P-CSCF with their own IMS credentials and speaks SIP and MSRP for them, through
//! [`crate::ue::chat`]); towards web clients it is a REST interface plus a notification channel
//! (HTTP streaming, Server-Sent Events or WebSocket). Web clients never see SIP or MSRP.
//!
//! This module is the node logic: who is logged in, the routing table
//! `<web user, peer, session>` (one chat *instance* per peer), the per-user event log that
//! channels replay from a cursor, and the translation of chat events into the paper's JSON.
//! [`http`] is the HTTP surface.
//!
//! | SIP / MSRP (IMS side) | web side |
//! |---|---|
//! | INVITE with the first message (held) | event `chat` / `initiate` (Table 1) |
//! | (client) `PUT Chat/{id}` delivered | IMDN delivered in a SIP MESSAGE, then 200 OK, ACK, MSRP bind |
//! | MSRP SEND with a message | event `messageNotification` / `waiting`, `GET Chat/Media` |
//! | (client) `PUT Chat/{id}` delivered / displayed | IMDN over MSRP |
//! | IMDN about our message | event `messageStatusNotification` |
//! | is-composing | event `isComposing` |
//! | `POST Chat`, `POST Chat/{id}/Messages` | INVITE with the first message, MSRP SEND |
//! | login: SUBSCRIBE to `sip:<user>;pres-list=rcs@<domain>` (RLS, RFC 4662), NOTIFY full state | (client) `GET Buddies` |
//! | NOTIFY partial state (a buddy changed) | event `presence` |
//!
//! Where each part lives: the gateway and its users here; `session.rs` (login, logout,
//! tokens), `chat.rs` (the chat instances and their REST operations), `notification.rs` (the
//! event log behind the channels, webhooks), `ims.rs` (the UE's SIP/MSRP events into web
//! events), `history.rs` (T-IM's stored conversations), `presence.rs` (the buddy list: a
//! list subscription to the RLS per user, `GET Buddies` and `presence` events), `error.rs`
//! (statuses and JSON errors), `group.rs` (group chats through the CONF focus: the `Group`
//! resources, their messages with who read them, and rosters from the conference event
//! package), `files.rs` (files to and from web users: RCC.07 file transfer via HTTP through
//! the user's UE, `FileTransfer` resources streamed from the content server).

pub mod body;
mod chat;
pub mod client;
mod error;
mod files;
mod group;
mod history;
pub mod http;
mod ims;
pub mod limits;
mod notification;
mod presence;
mod session;
pub mod tokens;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::WebRsfSection;
use crate::trace::Trace;
use crate::ue::chat::ChatUe;

use chat::KEEP_MESSAGES;
pub use chat::{Instance, InstanceState, Media, MessageRecord};
pub use error::WebError;
pub use files::{FileSettings, MAX_UPLOADS, MAX_UPLOADS_PER_USER};
pub use group::{
    GroupChat, GroupRecord, GroupState, Participant, MAX_GROUPS_PER_USER,
    MAX_PARTICIPANTS_PER_REQUEST, MAX_SUBJECT,
};
pub use notification::{ChannelGuard, Event};

/// Gives a name to a socket address in ladders (the lab's address book).
pub type Namer = Arc<dyn Fn(SocketAddr, &str) + Send + Sync>;

#[derive(Default)]
struct UserState {
    events: VecDeque<Event>,
    next_id: u64,
    instances: HashMap<String, Instance>,
    by_peer: HashMap<String, String>,
    media: Vec<Media>,
    /// Our message id -> instance id (bounded: [`limits::KEEP_OURS`]).
    ours: HashMap<String, String>,
    /// `ours`' keys, oldest first.
    ours_order: VecDeque<String>,
    /// Instance ids, oldest first (which one goes past `max_instances_per_user`).
    order: VecDeque<String>,
    /// The buddy list ([`presence`]).
    buddies: presence::Buddies,
    /// Group chats ([`group`]).
    groups: group::Groups,
    /// Files offered to the user or sent by them, by id ([`files`]).
    files: files::Files,
    /// Reports that came before their message was recorded ([`ims::EARLY_REPORTS`]).
    early: VecDeque<ims::EarlyReport>,
}

/// A logged-in web user: an RCS UE registered on their behalf.
pub struct WebUser {
    /// The public identity (`sip:bob@ims.lab`).
    pub aor: String,
    /// The path form of the identity (`bob`).
    pub user_id: String,
    /// This login's number: tokens and tickets name it, so a newer login of the same user
    /// (after a logout or an expiry) does not take an older one's.
    session: u64,
    /// A salted hash of the password the UE registered with (memory only): after the IMS
    /// core accepts a re-login, a different password means the HSS changed it and this
    /// session (whose UE would re-register with the old one) gives way to a new one.
    password_tag: [u8; 16],
    chat: ChatUe,
    state: Mutex<UserState>,
    last_event: watch::Sender<u64>,
    channels: AtomicUsize,
    /// Ends this user's channels on logout.
    closed: watch::Sender<bool>,
    /// Stops the UE's SIP endpoint (logout, expiry, or this user dropped).
    life: limits::UeLife,
    /// Token expiry (`[webrsf] token_idle_secs`).
    last_used: limits::LastUsed,
    caps: limits::UserCaps,
    /// The list subscription to the user's buddies ([`presence`]), once made.
    list: Mutex<Option<crate::ue::rls::ListWatcher>>,
    /// The roster subscriptions of the user's group chats ([`group`]).
    roster: Mutex<Option<crate::ue::chat::roster::RosterWatcher>>,
    /// Uploads under way ([`files::MAX_UPLOADS_PER_USER`]).
    uploads: AtomicUsize,
}

/// The gateway node.
pub struct Gateway {
    cfg: WebRsfSection,
    domain: String,
    pcscf: SocketAddr,
    trace: Trace,
    namer: Namer,
    http_addr: Mutex<Option<SocketAddr>>,
    users: Mutex<HashMap<String, Arc<WebUser>>>,
    /// Bearer tokens (`[webrsf] token_lifetime_secs`), naming a login ([`WebUser::session`]).
    tokens: Mutex<tokens::Credentials>,
    /// Single-use tickets for the browser's notification channels (30 s).
    tickets: Mutex<tokens::Credentials>,
    next_session: std::sync::atomic::AtomicU64,
    /// Failed logins per user and per client address (429 + Retry-After past the limit).
    login_guard: Mutex<crate::cscf::auth_guard::AuthGuard>,
    /// Salt of [`WebUser::password_tag`].
    salt: [u8; 16],
    shutdown: watch::Receiver<bool>,
    history: Mutex<Option<crate::im::history_api::HistoryClient>>,
    /// Where web users' files go ([`files`]), once the lab said.
    files: Mutex<Option<FileSettings>>,
    /// File uploads under way, over all users ([`files::MAX_UPLOADS`]).
    uploads: Arc<AtomicUsize>,
}

impl Gateway {
    /// Notification channels (SSE and WebSocket) open, over all web users.
    pub fn channels_open(&self) -> usize {
        self.users
            .lock()
            .map(|u| u.values().map(|w| w.channel_count()).sum())
            .unwrap_or(0)
    }

    /// Web users logged in.
    pub fn users_logged_in(&self) -> usize {
        self.users.lock().map(|u| u.len()).unwrap_or(0)
    }

    /// A gateway whose UEs register through the P-CSCF at `pcscf` in `domain`.
    pub fn new(
        cfg: WebRsfSection,
        domain: &str,
        pcscf: SocketAddr,
        trace: Trace,
        namer: Namer,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Gateway> {
        let (login_failures, login_block) = (cfg.login_max_failures, cfg.login_block_secs);
        let token_lifetime = cfg.token_lifetime_secs;
        Arc::new(Gateway {
            cfg,
            domain: domain.to_string(),
            pcscf,
            trace,
            namer,
            http_addr: Mutex::new(None),
            users: Mutex::new(HashMap::new()),
            tokens: Mutex::new(tokens::Credentials::tokens(
                Duration::from_secs(token_lifetime.max(1)),
                8,
            )),
            tickets: Mutex::new(tokens::Credentials::tickets(Duration::from_secs(30), 16)),
            next_session: std::sync::atomic::AtomicU64::new(1),
            salt: rand::random(),
            login_guard: Mutex::new(crate::cscf::auth_guard::AuthGuard::new(
                crate::cscf::auth_guard::AuthLimits {
                    max_failures: login_failures.max(1),
                    max_failures_per_address: login_failures.max(1).saturating_mul(4),
                    backoff: Duration::from_secs(login_block.max(1)),
                    max_backoff: Duration::from_secs(login_block.max(1) * 30),
                    ..Default::default()
                },
            )),
            shutdown,
            history: Mutex::new(None),
            files: Mutex::new(None),
            uploads: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &WebRsfSection {
        &self.cfg
    }

    /// Names an address in ladders.
    pub fn name(&self, addr: SocketAddr, name: &str) {
        (self.namer)(addr, name)
    }

    /// The flight recorder.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Where the HTTP server listens (set once it is bound).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr.lock().ok().and_then(|a| *a)
    }

    /// Records where the HTTP server listens (instance URLs use it).
    pub fn set_http_addr(&self, a: SocketAddr) {
        if let Ok(mut g) = self.http_addr.lock() {
            *g = Some(a);
        }
    }

    /// Shutdown signal of the lab.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// The AoR a path's `{userId}` names: `bob` is `sip:bob@<domain>`; a full URI
    /// (percent-decoded by the router) is taken as it is.
    pub fn aor_of(&self, user_id: &str) -> Result<String, WebError> {
        let u = user_id.trim();
        if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
            return Err(WebError::BadRequest(format!("bad user id '{user_id}'")));
        }
        if u.contains(':') {
            crate::sip::Uri::parse(u)
                .map(|x| x.aor())
                .map_err(|e| WebError::BadRequest(format!("bad user id '{user_id}': {e}")))
        } else {
            Ok(format!("sip:{u}@{}", self.domain))
        }
    }

    /// The web form of an identity: the user part in the home domain, else the whole URI.
    pub fn web_id(&self, aor: &str) -> String {
        let suffix = format!("@{}", self.domain);
        match aor
            .strip_prefix("sip:")
            .and_then(|r| r.strip_suffix(&suffix))
        {
            Some(user) if !user.is_empty() && !user.contains(['@', ';', ':']) => user.to_string(),
            _ => aor.to_string(),
        }
    }

    /// The URL of an instance (paper Table 1: `https://{host}/webrsf/v1/{userId}/Chat/{id}`).
    pub fn instance_url(&self, user_id: &str, instance_id: &str) -> String {
        format!("{}/Chat/{instance_id}", self.user_url(user_id))
    }

    /// The URL under which a user's resources are (`https://{host}/webrsf/v1/{userId}`).
    pub fn user_url(&self, user_id: &str) -> String {
        let base = if self.cfg.public_url.is_empty() {
            format!(
                "https://{}",
                self.http_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "localhost".into())
            )
        } else {
            self.cfg.public_url.trim_end_matches('/').to_string()
        };
        format!("{base}/webrsf/v1/{user_id}")
    }
}

impl WebUser {
    fn with<T>(&self, f: impl FnOnce(&mut UserState) -> T) -> T {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
}
