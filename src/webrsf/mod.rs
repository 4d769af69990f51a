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

pub mod body;
pub mod client;
pub mod http;
pub mod limits;
pub mod tokens;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::config::WebRsfSection;
use crate::cpim::ImdnStatus;
use crate::im::rcs;
use crate::trace::Trace;
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe, SessionIds, SessionStatus};
use crate::ue::{AuthMode, Ue, UeConfig};

/// Gives a name to a socket address in ladders (the lab's address book).
pub type Namer = Arc<dyn Fn(SocketAddr, &str) + Send + Sync>;

/// Why a gateway operation failed; [`http`] turns each into a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 401: no token, a wrong token, or the IMS refused the credentials.
    Unauthorized(String),
    /// 403: a valid token of another user.
    Forbidden(String),
    /// 404: no such user, instance or message.
    NotFound(String),
    /// 409: the instance is not in a state that allows this.
    Conflict(String),
    /// 408: the body did not arrive within `[http] body_timeout_ms`.
    RequestTimeout(String),
    /// 413: body over the limit.
    TooLarge(String),
    /// 429: too many channels.
    TooMany(String),
    /// 429 with Retry-After (seconds): too many failed logins for this user or address.
    RateLimited(String, u64),
    /// 503: the gateway is full (`[webrsf] max_users`).
    Unavailable(String),
    /// 504: the IMS core did not answer.
    Timeout(String),
    /// 502: a node behind the gateway (T-IM's history endpoint) failed or refused it.
    BadGateway(String),
}

impl WebError {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            WebError::BadRequest(_) => 400,
            WebError::Unauthorized(_) => 401,
            WebError::Forbidden(_) => 403,
            WebError::NotFound(_) => 404,
            WebError::Conflict(_) => 409,
            WebError::RequestTimeout(_) => 408,
            WebError::TooLarge(_) => 413,
            WebError::TooMany(_) | WebError::RateLimited(..) => 429,
            WebError::Unavailable(_) => 503,
            WebError::Timeout(_) => 504,
            WebError::BadGateway(_) => 502,
        }
    }

    /// The JSON error body: `{"error": "...", "detail": "..."}`.
    pub fn body(&self) -> Value {
        let (error, detail) = match self {
            WebError::BadRequest(d) => ("bad_request", d),
            WebError::Unauthorized(d) => ("unauthorized", d),
            WebError::Forbidden(d) => ("forbidden", d),
            WebError::NotFound(d) => ("not_found", d),
            WebError::Conflict(d) => ("conflict", d),
            WebError::RequestTimeout(d) => ("request_timeout", d),
            WebError::TooLarge(d) => ("payload_too_large", d),
            WebError::TooMany(d) => ("too_many_channels", d),
            WebError::RateLimited(d, _) => ("too_many_attempts", d),
            WebError::Unavailable(d) => ("service_unavailable", d),
            WebError::Timeout(d) => ("ims_timeout", d),
            WebError::BadGateway(d) => ("bad_gateway", d),
        };
        json!({ "error": error, "detail": detail })
    }
}

/// One event of a user's notification channel; `id` is the replay cursor.
#[derive(Debug, Clone)]
pub struct Event {
    /// Increasing per user, from 1.
    pub id: u64,
    /// `chat`, `messageNotification`, ...
    pub kind: String,
    /// The whole JSON object sent on the channel (it carries `id` too).
    pub json: Value,
}

/// A chat instance's state as web clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Someone invited us; the INVITE waits for the client (figure 4 step 17).
    Initiate,
    /// Messages flow (or are about to).
    Active,
    /// Ended.
    Closed,
}

impl InstanceState {
    fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Initiate => "initiate",
            InstanceState::Active => "active",
            InstanceState::Closed => "closed",
        }
    }
}

/// One message of a conversation, as the gateway keeps it for reloads.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// imdn.Message-ID.
    pub message_id: String,
    /// `in` or `out`.
    pub incoming: bool,
    /// Sender in web form (`alice`).
    pub sender: String,
    /// The text.
    pub text: String,
    /// `sent`, `delivered`, `displayed`, `failed` (ours) or `received` (theirs).
    pub status: String,
    /// CPIM DateTime or when the gateway saw it.
    pub datetime: String,
}

/// A chat instance: one per (web user, peer); the SIP session behind it may change.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its id (last segment of its URL).
    pub id: String,
    /// The peer's AoR.
    pub peer: String,
    /// State.
    pub state: InstanceState,
    /// Conversation-ID of the session, when known.
    pub conversation_id: Option<String>,
    /// Contribution-ID of the session, when known.
    pub contribution_id: Option<String>,
    /// The conversation, oldest first (bounded).
    pub messages: VecDeque<MessageRecord>,
}

/// A received message waiting for `GET Chat/Media` and its acknowledgement.
#[derive(Debug, Clone)]
pub struct Media {
    /// The instance it belongs to.
    pub instance_id: String,
    /// imdn.Message-ID.
    pub message_id: String,
    /// Sender in web form.
    pub sender: String,
    /// Content type of the CPIM payload.
    pub content_type: String,
    /// The text.
    pub text: String,
    /// CPIM DateTime (or arrival time).
    pub datetime: String,
}

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
}

/// Messages kept per instance for reloads.
const KEEP_MESSAGES: usize = 500;

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
        })
    }

    /// Where the gateway reads T-IM's conversations for `GET History`: T-IM's history
    /// endpoint ([`crate::im::history_api`]), over a socket like every other node talk (in a
    /// deployment: the operator's message store).
    pub fn set_history(&self, client: crate::im::history_api::HistoryClient) {
        if let Ok(mut h) = self.history.lock() {
            *h = Some(client);
        }
    }

    /// `GET /{url}/History/{peer}?after=SEQ&limit=N`: the conversation with `peer` as T-IM
    /// numbered it (seed 004: everything after the last sequence number the client saw).
    pub async fn history(
        &self,
        user: &WebUser,
        peer: &str,
        after: u64,
        limit: usize,
    ) -> Result<Value, WebError> {
        let peer = self.aor_of(peer)?;
        let items = self
            .history_client()?
            .history(&user.aor, &peer, after, limit.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .iter()
            .map(|m| self.history_item(m))
            .collect();
        Ok(Value::Array(items))
    }

    /// `GET History/{peer}?last=N`: the newest N messages of the conversation, oldest first.
    pub async fn history_last(
        &self,
        user: &WebUser,
        peer: &str,
        last: usize,
    ) -> Result<Value, WebError> {
        let peer = self.aor_of(peer)?;
        let items = self
            .history_client()?
            .history_tail(&user.aor, &peer, last.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .iter()
            .map(|m| self.history_item(m))
            .collect();
        Ok(Value::Array(items))
    }

    /// `GET History`: the user's conversations, newest first, each with its newest message
    /// (what the browser client lists after a login).
    pub async fn conversations(&self, user: &WebUser, limit: usize) -> Result<Value, WebError> {
        let items = self
            .history_client()?
            .conversations(&user.aor, limit.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .into_iter()
            .map(|c| {
                json!({
                    "peer": self.web_id(&c.peer),
                    "last_seq": c.last_seq,
                    "last": c.last.as_ref().map(|m| self.history_item(m)),
                })
            })
            .collect();
        Ok(Value::Array(items))
    }

    fn history_client(&self) -> Result<crate::im::history_api::HistoryClient, WebError> {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .ok_or_else(|| WebError::NotFound("no message store in this lab".into()))
    }

    fn history_item(&self, m: &crate::im::store::StoredMessage) -> Value {
        let cpim = crate::cpim::Cpim::parse(&m.cpim()).ok();
        let text = cpim.as_ref().and_then(|c| match rcs::content(c) {
            rcs::Content::Text(t) => Some(t),
            _ => None,
        });
        json!({
            "seq": m.seq,
            "message_id": m.message_id,
            "sender": self.web_id(&m.from),
            "recipient": self.web_id(&m.to),
            "text": text,
            "status": m.status,
            "datetime": cpim.as_ref().and_then(|c| c.header("DateTime")).unwrap_or(""),
            "conversation_id": m.conversation_id,
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
        format!("{base}/webrsf/v1/{user_id}/Chat/{instance_id}")
    }

    /// The logged-in user a token belongs to (None when unknown or past its lifetime).
    pub fn user_by_token(&self, token: &str) -> Option<Arc<WebUser>> {
        let key = self
            .tokens
            .lock()
            .ok()?
            .check(token, std::time::Instant::now())?;
        self.user_of_key(&key).inspect(|u| u.last_used.touch())
    }

    /// The user a single-use ticket names; the ticket is spent.
    pub fn user_by_ticket(&self, ticket: &str) -> Option<Arc<WebUser>> {
        let key = self
            .tickets
            .lock()
            .ok()?
            .check(ticket, std::time::Instant::now())?;
        self.user_of_key(&key)
    }

    fn key_of(user: &WebUser) -> String {
        format!("{}#{}", user.aor, user.session)
    }

    /// The login a credential names, if it is still the user's current one.
    fn user_of_key(&self, key: &str) -> Option<Arc<WebUser>> {
        let (aor, session) = key.rsplit_once('#')?;
        let u = self.users.lock().ok()?.get(aor).cloned()?;
        (u.session.to_string() == session).then_some(u)
    }

    /// A new credential of `set` for `user`, and its lifetime in seconds.
    fn issue(set: &Mutex<tokens::Credentials>, user: &WebUser) -> (String, u64) {
        match set.lock() {
            Ok(mut t) => {
                let secs = t.lifetime().as_secs();
                (
                    t.issue(&Self::key_of(user), std::time::Instant::now()),
                    secs,
                )
            }
            Err(_) => (String::new(), 0),
        }
    }

    /// A new bearer token for `user`, and its lifetime in seconds.
    pub fn issue_token(&self, user: &WebUser) -> (String, u64) {
        Self::issue(&self.tokens, user)
    }

    /// `PUT /Session`: a new token for the one presented, which ends.
    pub fn refresh_token(&self, user: &WebUser, old: &str) -> (String, u64) {
        if let Ok(mut t) = self.tokens.lock() {
            t.revoke(old);
        }
        self.issue_token(user)
    }

    /// `POST /Session/Ticket`: a ticket for one notification channel, and its lifetime.
    pub fn issue_ticket(&self, user: &WebUser) -> (String, u64) {
        Self::issue(&self.tickets, user)
    }

    /// `POST /{url}/Session`: registers the user to IMS with their password (SIP Digest through
    /// the P-CSCF; the S-CSCF and HSS check it) and answers a token. A user already logged in
    /// gets their token back once the IMS core has accepted the password again (a REGISTER
    /// that binds nothing): the gateway keeps no password, so one the HSS changed stops
    /// working at once. Failed logins count per user and per client address (`source`); past
    /// `[webrsf] login_max_failures` the user or address gets 429 with Retry-After, and every
    /// refusal says the same, whatever the IMS core said.
    pub async fn login(
        self: &Arc<Self>,
        user_id: &str,
        password: &str,
        impi: Option<&str>,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Arc<WebUser>, WebError> {
        let aor = self.aor_of(user_id)?;
        let now = std::time::Instant::now();
        if let Some(d) = self
            .login_guard
            .lock()
            .ok()
            .and_then(|g| g.blocked(&aor, source, now))
        {
            return Err(WebError::RateLimited(
                "too many failed logins; try again later".into(),
                d.as_secs().max(1),
            ));
        }
        let result = self.login_checked(&aor, password, impi).await;
        if let Ok(mut g) = self.login_guard.lock() {
            match &result {
                Ok(_) => g.success(&aor),
                Err(WebError::Unauthorized(why)) => {
                    crate::warn_limited!("webrsf.login_failed", %aor, source = ?source, "web login refused: {why}");
                    if let crate::cscf::auth_guard::Verdict::Blocked(d) =
                        g.failure(&aor, source, std::time::Instant::now())
                    {
                        return Err(WebError::RateLimited(
                            "too many failed logins; try again later".into(),
                            d.as_secs().max(1),
                        ));
                    }
                    return Err(WebError::Unauthorized("wrong user or password".into()));
                }
                Err(_) => {}
            }
        }
        result
    }

    /// A salted hash of a password, to compare without keeping it.
    fn password_tag(&self, password: &str) -> [u8; 16] {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(self.salt);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    async fn login_checked(
        self: &Arc<Self>,
        aor: &str,
        password: &str,
        impi: Option<&str>,
    ) -> Result<Arc<WebUser>, WebError> {
        let aor = aor.to_string();
        let impi = match impi {
            Some(i) if !i.is_empty() => i.to_string(),
            _ => {
                crate::store::default_impi(&aor).map_err(|e| WebError::BadRequest(e.to_string()))?
            }
        };
        let existing = self.users.lock().ok().and_then(|u| u.get(&aor).cloned());
        let mut replaces = None;
        if let Some(u) = existing {
            if u.password_tag == self.password_tag(password) {
                // The session's own password: the IMS core says whether it still holds (a
                // REGISTER of the session's UE); the gateway does not decide.
                if u.chat.register().await {
                    return Ok(u);
                }
                tracing::info!(%aor, "the IMS core refuses the web session's password: it ends");
                self.logout(&u).await;
                return Err(WebError::Unauthorized(
                    "the IMS core refused the password".into(),
                ));
            }
            // Another password: a new session registers with it; only if the IMS core takes
            // it does the old one (whose UE would re-register with the old password) end.
            replaces = Some(u);
        }
        self.check_user_cap()?;
        let cfg = UeConfig {
            impu: aor.clone(),
            impi,
            password: password.to_string(),
            k: [0; 16],
            opc: [0; 16],
            sqn_ms: 0,
            pcscf: self.pcscf,
            transport: crate::sip::Transport::Udp,
            domain: self.domain.clone(),
            auth: AuthMode::Digest,
        };
        // The UE lives as long as the login: dropping `life` (any error below) closes it.
        let life = limits::UeLife::new(self.shutdown.clone());
        let mut ue = Ue::start(cfg, self.trace.clone(), life.signal())
            .await
            .map_err(|e| WebError::Timeout(format!("cannot bind a SIP socket: {e}")))?;
        // Ladders draw the gateway's UEs as the WebRSF node (paper figure 4, UE2's place).
        self.name(ue.local_addr(), "WebRSF");
        let expires = self.cfg.register_expires;
        let reg = tokio::time::timeout(Duration::from_secs(10), ue.register(expires))
            .await
            .map_err(|_| WebError::Timeout("no answer to REGISTER".into()))?
            .map_err(|e| WebError::Unauthorized(e.to_string()))?;
        let mut chat = ChatUe::start(
            ue,
            self.trace.clone(),
            ChatOptions {
                disposition: "positive-delivery, display".into(),
                auto_delivered: false,
                auto_displayed: false,
                hold_invites: true,
                refresh_registration: Some(reg.expires.max(60)),
                report_acks: false,
                // TS 24.229 §5.1.1.3: the network tells us when it ends the registration
                // (an RTR after the HSS changed the password): the web session ends with it.
                watch_registration: true,
            },
        );
        let events = chat.take_events();
        let user = Arc::new(WebUser {
            aor: aor.clone(),
            user_id: self.web_id(&aor),
            session: self
                .next_session
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            password_tag: self.password_tag(password),
            chat,
            state: Mutex::new(UserState::default()),
            last_event: watch::channel(0).0,
            channels: AtomicUsize::new(0),
            closed: watch::channel(false).0,
            life,
            last_used: limits::LastUsed::new(),
            caps: limits::UserCaps {
                media: self.cfg.max_media_per_user,
                instances: self.cfg.max_instances_per_user,
            },
        });
        if let Some(old) = replaces {
            tracing::info!(%aor, "web login with a new password the IMS core took: the old session ends");
            self.logout(&old).await;
        }
        // Two logins of one user at once: the first to get here wins, the other UE goes.
        let winner = self.users.lock().ok().and_then(|mut u| match u.get(&aor) {
            Some(w) => Some(w.clone()),
            None => {
                u.insert(aor.clone(), user.clone());
                None
            }
        });
        if let Some(w) = winner {
            tokio::spawn(async move {
                user.chat.deregister().await;
                user.life.end();
            });
            // Our own REGISTER with this password just succeeded: it is the right one.
            return Ok(w);
        }
        tokio::spawn(pump(self.clone(), user.clone(), events));
        Ok(user)
    }

    /// `DELETE /{url}/Session`: de-registers and forgets the user; their channels end.
    pub async fn logout(&self, user: &Arc<WebUser>) -> bool {
        if let Ok(mut u) = self.users.lock() {
            // Not a newer login of the same user (an expiry racing a new login).
            if u.get(&user.aor).is_some_and(|x| Arc::ptr_eq(x, user)) {
                u.remove(&user.aor);
            }
        }
        let key = Self::key_of(user);
        if let Ok(mut t) = self.tokens.lock() {
            t.revoke_all(&key);
        }
        if let Ok(mut t) = self.tickets.lock() {
            t.revoke_all(&key);
        }
        let _ = user.closed.send(true);
        let ok = user.chat.deregister().await;
        user.life.end();
        ok
    }

    /// The instance of `user` with `id` (404 when it is not theirs).
    pub fn instance(&self, user: &WebUser, id: &str) -> Result<Instance, WebError> {
        user.with(|s| s.instances.get(id).cloned())
            .ok_or_else(|| WebError::NotFound(format!("no chat instance '{id}'")))
    }

    /// `GET /{url}/Chat`.
    pub fn list(&self, user: &WebUser) -> Value {
        let mut v: Vec<Instance> = user.with(|s| s.instances.values().cloned().collect());
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Value::Array(
            v.iter()
                .map(|i| {
                    json!({
                        "instance": self.instance_url(&user.user_id, &i.id),
                        "instance_id": i.id,
                        "peer": self.web_id(&i.peer),
                        "state": i.state.as_str(),
                    })
                })
                .collect(),
        )
    }

    /// `GET /{url}/Chat/{id}/Messages`.
    pub fn messages(&self, user: &WebUser, id: &str) -> Result<Value, WebError> {
        let i = self.instance(user, id)?;
        Ok(Value::Array(
            i.messages
                .iter()
                .map(|m| {
                    json!({
                        "message_id": m.message_id,
                        "direction": if m.incoming { "in" } else { "out" },
                        "sender": m.sender,
                        "text": m.text,
                        "status": m.status,
                        "datetime": m.datetime,
                    })
                })
                .collect(),
        ))
    }

    /// `GET /{url}/Chat/Media`: every received message not acknowledged yet, oldest first.
    pub fn media(&self, user: &WebUser) -> Vec<Value> {
        user.with(|s| s.media.clone())
            .into_iter()
            .map(|m| {
                json!({
                    "instance": self.instance_url(&user.user_id, &m.instance_id),
                    "instance_id": m.instance_id,
                    "message_id": m.message_id,
                    "sender": m.sender,
                    "content_type": m.content_type,
                    "text": m.text,
                    "datetime": m.datetime,
                })
            })
            .collect()
    }

    /// `PUT /{url}/Chat/{id}`: the client's answer about an instance (figure 4 steps 18-19,
    /// figure 5 steps 10-11). `status` is `delivered` (the default), `displayed`, `accepted`,
    /// `declined` or `closed`; `message_id` picks one message (else every waiting one).
    pub fn update(
        &self,
        user: &WebUser,
        id: &str,
        status: &str,
        message_id: Option<&str>,
    ) -> Result<Value, WebError> {
        let inst = self.instance(user, id)?;
        let status = status.to_ascii_lowercase();
        let held = inst.state == InstanceState::Initiate;
        match status.as_str() {
            "delivered" | "displayed" => {
                let acked = user.ack_media(id, message_id);
                if let Some(m) = message_id {
                    if !acked.iter().any(|a| a == m) && !user.has_incoming(id, m) {
                        return Err(WebError::NotFound(format!("no received message '{m}'")));
                    }
                }
                if held {
                    // Figure 4: the IMDN "delivered" goes in a SIP MESSAGE, then 200 OK.
                    user.set_state(id, InstanceState::Active);
                    user.chat.accept(&inst.peer, true);
                }
                let ids: Vec<String> = match message_id {
                    Some(m) => vec![m.to_string()],
                    None => acked,
                };
                for m in &ids {
                    if !held {
                        user.chat.delivered(m);
                    }
                    user.set_incoming_status(id, m, &status);
                    if status == "displayed" {
                        user.chat.displayed(m);
                    }
                }
            }
            "accepted" | "accept" => {
                if !held {
                    return Err(WebError::Conflict(
                        "the chat is not waiting for an answer".into(),
                    ));
                }
                user.set_state(id, InstanceState::Active);
                user.chat.accept(&inst.peer, false);
            }
            "declined" | "decline" => {
                if !held {
                    return Err(WebError::Conflict(
                        "the chat is not waiting for an answer".into(),
                    ));
                }
                user.set_state(id, InstanceState::Closed);
                user.ack_media(id, None);
                user.chat.decline(&inst.peer);
            }
            "closed" | "close" => {
                if held {
                    user.chat.decline(&inst.peer);
                } else {
                    user.chat.close(&inst.peer);
                }
                user.set_state(id, InstanceState::Closed);
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown status '{other}' (delivered, displayed, accepted, declined, closed)"
                )))
            }
        }
        Ok(json!({
            "instance": self.instance_url(&user.user_id, id),
            "status": status,
        }))
    }

    /// `POST /{url}/Chat`: starts (or continues) the chat with `to`; the first message goes in
    /// the INVITE. Returns the instance id and the message id.
    pub async fn start_chat(
        &self,
        user: &WebUser,
        to: &str,
        text: &str,
        ids: SessionIds,
    ) -> Result<(String, String), WebError> {
        let peer = self.aor_of(to)?;
        if peer == user.aor {
            return Err(WebError::BadRequest("cannot chat with yourself".into()));
        }
        let id = user.instance_for(&peer, InstanceState::Active);
        user.with(|s| {
            if let Some(i) = s.instances.get_mut(&id) {
                if i.conversation_id.is_none() {
                    i.conversation_id = ids.conversation_id.clone();
                    i.contribution_id = ids.contribution_id.clone();
                }
            }
        });
        let mid = self.send(user, &id, text, ids).await?;
        Ok((id, mid))
    }

    /// `POST /{url}/Chat/{id}/Messages`.
    pub async fn send(
        &self,
        user: &WebUser,
        id: &str,
        text: &str,
        ids: SessionIds,
    ) -> Result<String, WebError> {
        let inst = self.instance(user, id)?;
        if inst.state == InstanceState::Initiate {
            // Answering a chat we were invited to accepts it first.
            user.ack_media(id, None);
            user.set_state(id, InstanceState::Active);
            user.chat.accept(&inst.peer, true);
        } else if inst.state == InstanceState::Closed {
            user.set_state(id, InstanceState::Active);
        }
        let mid = user
            .chat
            .send_with(&inst.peer, text.as_bytes(), "text/plain;charset=UTF-8", ids)
            .await;
        user.with(|s| {
            s.remember_ours(mid.clone(), id.to_string());
            if let Some(i) = s.instances.get_mut(id) {
                push_record(
                    i,
                    MessageRecord {
                        message_id: mid.clone(),
                        incoming: false,
                        sender: user.user_id.clone(),
                        text: text.to_string(),
                        status: "sent".into(),
                        datetime: rcs::now_datetime(),
                    },
                );
            }
        });
        Ok(mid)
    }

    /// `PUT /{url}/Chat/{id}/Messages/{msgId}/Status`.
    pub fn message_status(
        &self,
        user: &WebUser,
        id: &str,
        message_id: &str,
        status: &str,
    ) -> Result<Value, WebError> {
        self.instance(user, id)?;
        let status = status.to_ascii_lowercase();
        if status != "displayed" && status != "delivered" {
            return Err(WebError::BadRequest(format!(
                "unknown status '{status}' (delivered, displayed)"
            )));
        }
        self.update(user, id, &status, Some(message_id))
    }

    /// `POST /{url}/Chat/{id}/Composing`.
    pub fn composing(&self, user: &WebUser, id: &str, active: bool) -> Result<Value, WebError> {
        let inst = self.instance(user, id)?;
        user.chat.composing(&inst.peer, active);
        Ok(json!({ "state": if active { "active" } else { "idle" } }))
    }

    /// Appends an event to the user's log, wakes their channels, and pushes it to their
    /// webhook when no channel is open.
    fn emit(&self, user: &WebUser, kind: &str, instance_id: &str, data: Value) {
        let instance = self.instance_url(&user.user_id, instance_id);
        let ev = user.with(|s| {
            s.next_id += 1;
            let ev = Event {
                id: s.next_id,
                kind: kind.to_string(),
                json: json!({
                    "id": s.next_id,
                    "type": kind,
                    "instance": instance,
                    "data": data,
                }),
            };
            s.events.push_back(ev.clone());
            while s.events.len() > self.cfg.event_buffer.max(1) {
                s.events.pop_front();
            }
            ev
        });
        user.last_event.send_replace(ev.id);
        if user.channels.load(Ordering::SeqCst) == 0 {
            if let Some(url) = self.cfg.webhooks.get(&user.user_id) {
                let body = json!({ "user": user.user_id, "event": ev.json }).to_string();
                let url = url.clone();
                tokio::spawn(async move {
                    if let Err(e) = http::post_json(&url, &body).await {
                        tracing::warn!(%url, error = %e, "push webhook failed");
                    }
                });
            }
        }
    }

    /// Translates one chat event of the user's UE into the gateway's state and events.
    fn on_chat_event(&self, user: &WebUser, ev: ChatEvent) {
        match ev {
            // Handled by the pump (it ends the session).
            ChatEvent::Deregistered { .. } => {}
            ChatEvent::Invited {
                from,
                subject,
                message_id,
                text,
                datetime,
                conversation_id,
                contribution_id,
                ..
            } => {
                let id = user.instance_for(&from, InstanceState::Initiate);
                let sender = self.web_id(&from);
                user.with(|s| {
                    if let Some(i) = s.instances.get_mut(&id) {
                        i.state = InstanceState::Initiate;
                        i.conversation_id = conversation_id;
                        i.contribution_id = contribution_id;
                    }
                });
                if let Some(t) = &text {
                    user.add_incoming(&id, &message_id, &sender, t, datetime.clone());
                }
                // Paper Table 1.
                let subject = subject.or(text).unwrap_or_default();
                self.emit(
                    user,
                    "chat",
                    &id,
                    json!({
                        "status": "initiate",
                        "subject": subject,
                        "message_id": message_id,
                        "sender": sender,
                    }),
                );
            }
            ChatEvent::Message {
                from,
                text,
                message_id,
            } => {
                let id = user.instance_for(&from, InstanceState::Active);
                let sender = self.web_id(&from);
                user.add_incoming(&id, &message_id, &sender, &text, None);
                self.emit(
                    user,
                    "messageNotification",
                    &id,
                    json!({
                        "status": "waiting",
                        "message_id": message_id,
                        "sender": sender,
                    }),
                );
            }
            ChatEvent::Status {
                message_id,
                status,
                from,
                ..
            } => {
                let word = match status {
                    ImdnStatus::Delivered => "delivered",
                    ImdnStatus::Displayed => "displayed",
                    ImdnStatus::Failed => "failed",
                };
                self.report(user, &message_id, word, &self.web_id(&from), None);
            }
            // T-IM stored it for an offline recipient: the status that matters comes later.
            ChatEvent::Stored { .. } | ChatEvent::Acked { .. } => {}
            ChatEvent::SendFailed { message_id, reason } => {
                let sender = user.user_id.clone();
                self.report(user, &message_id, "failed", &sender, Some(reason));
            }
            ChatEvent::Composing { from, active } => {
                let id = user.instance_for(&from, InstanceState::Active);
                self.emit(
                    user,
                    "isComposing",
                    &id,
                    json!({
                        "sender": self.web_id(&from),
                        "state": if active { "active" } else { "idle" },
                    }),
                );
            }
            ChatEvent::Session {
                peer,
                status,
                reason,
            } => {
                let Some(id) = user.with(|s| s.by_peer.get(&peer).cloned()) else {
                    return;
                };
                let state = match status {
                    SessionStatus::Accepted => InstanceState::Active,
                    _ => InstanceState::Closed,
                };
                let was = user.with(|s| s.instances.get(&id).map(|i| i.state));
                // A chat the client already closed or declined needs no second event.
                if was == Some(InstanceState::Closed) && state == InstanceState::Closed {
                    return;
                }
                user.set_state(&id, state);
                let mut data = json!({ "status": status.as_str() });
                if !reason.is_empty() {
                    data["reason"] = Value::String(reason);
                }
                self.emit(user, "chatEvent", &id, data);
            }
        }
    }

    /// A report about one of our messages.
    fn report(
        &self,
        user: &WebUser,
        message_id: &str,
        status: &str,
        sender: &str,
        reason: Option<String>,
    ) {
        let Some(id) = user.with(|s| s.ours.get(message_id).cloned()) else {
            return;
        };
        user.with(|s| {
            if let Some(i) = s.instances.get_mut(&id) {
                if let Some(m) = i.messages.iter_mut().find(|m| m.message_id == message_id) {
                    // "displayed" is never downgraded by a late "delivered".
                    if !(m.status == "displayed" && status == "delivered") {
                        m.status = status.to_string();
                    }
                }
            }
        });
        let mut data = json!({
            "message_id": message_id,
            "status": status,
            "sender": sender,
        });
        if let Some(r) = reason {
            data["reason"] = Value::String(r);
        }
        self.emit(user, "messageStatusNotification", &id, data);
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

    /// Events after `cursor`, oldest first.
    pub fn events_after(&self, cursor: u64) -> Vec<Event> {
        self.with(|s| s.events.iter().filter(|e| e.id > cursor).cloned().collect())
    }

    /// Watches the id of the newest event.
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.last_event.subscribe()
    }

    /// Watches logout.
    pub fn watch_closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Notification channels open.
    pub fn channel_count(&self) -> usize {
        self.channels.load(Ordering::SeqCst)
    }

    /// Counts an open channel; `None` when the user already has `max` open (429).
    pub fn open_channel(self: &Arc<Self>, max: usize) -> Option<ChannelGuard> {
        let n = self.channels.fetch_add(1, Ordering::SeqCst);
        if n >= max {
            self.channels.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ChannelGuard(self.clone()))
    }

    /// The instance with `peer`, created in `state` when there is none.
    fn instance_for(&self, peer: &str, state: InstanceState) -> String {
        self.with(|s| {
            if let Some(id) = s.by_peer.get(peer) {
                return id.clone();
            }
            let id = rcs::new_id()[..16].to_string();
            s.make_room_for_instance(self.caps.instances);
            s.order.push_back(id.clone());
            s.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    peer: peer.to_string(),
                    state,
                    conversation_id: None,
                    contribution_id: None,
                    messages: VecDeque::new(),
                },
            );
            s.by_peer.insert(peer.to_string(), id.clone());
            id
        })
    }

    fn set_state(&self, id: &str, state: InstanceState) {
        self.with(|s| {
            if let Some(i) = s.instances.get_mut(id) {
                i.state = state;
            }
        });
    }

    fn add_incoming(
        &self,
        id: &str,
        message_id: &str,
        sender: &str,
        text: &str,
        datetime: Option<String>,
    ) {
        let datetime = datetime.unwrap_or_else(rcs::now_datetime);
        self.with(|s| {
            s.push_media(
                Media {
                    instance_id: id.to_string(),
                    message_id: message_id.to_string(),
                    sender: sender.to_string(),
                    content_type: "text/plain".into(),
                    text: text.to_string(),
                    datetime: datetime.clone(),
                },
                self.caps.media,
            );
            if let Some(i) = s.instances.get_mut(id) {
                push_record(
                    i,
                    MessageRecord {
                        message_id: message_id.to_string(),
                        incoming: true,
                        sender: sender.to_string(),
                        text: text.to_string(),
                        status: "received".into(),
                        datetime,
                    },
                );
            }
        });
    }

    fn has_incoming(&self, id: &str, message_id: &str) -> bool {
        self.with(|s| {
            s.instances.get(id).is_some_and(|i| {
                i.messages
                    .iter()
                    .any(|m| m.incoming && m.message_id == message_id)
            })
        })
    }

    fn set_incoming_status(&self, id: &str, message_id: &str, status: &str) {
        self.with(|s| {
            if let Some(i) = s.instances.get_mut(id) {
                if let Some(m) = i
                    .messages
                    .iter_mut()
                    .find(|m| m.incoming && m.message_id == message_id)
                {
                    if m.status != "displayed" {
                        m.status = status.to_string();
                    }
                }
            }
        });
    }

    /// Removes waiting media of instance `id` (one message or all); returns their ids.
    fn ack_media(&self, id: &str, message_id: Option<&str>) -> Vec<String> {
        self.with(|s| {
            let mut acked = Vec::new();
            s.media.retain(|m| {
                let hit = m.instance_id == id && message_id.is_none_or(|x| x == m.message_id);
                if hit {
                    acked.push(m.message_id.clone());
                }
                !hit
            });
            acked
        })
    }
}

/// Holds one of a user's notification channels open; dropping it closes it.
pub struct ChannelGuard(Arc<WebUser>);

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.0.channels.fetch_sub(1, Ordering::SeqCst);
    }
}

fn push_record(i: &mut Instance, m: MessageRecord) {
    i.messages.push_back(m);
    while i.messages.len() > KEEP_MESSAGES {
        i.messages.pop_front();
    }
}

/// Reads a user's chat events until the UE stops.
async fn pump(
    gw: Arc<Gateway>,
    user: Arc<WebUser>,
    mut events: mpsc::UnboundedReceiver<ChatEvent>,
) {
    let mut closed = user.watch_closed();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ChatEvent::Deregistered { reason }) => {
                    tracing::info!(user = %user.aor, %reason, "the network ended a web user's registration: the web session ends");
                    gw.emit(&user, "sessionEnded", "", json!({ "reason": "the network ended the registration" }));
                    let (gw, user) = (gw.clone(), user.clone());
                    // Not awaited here: logout ends this pump.
                    tokio::spawn(async move { gw.logout(&user).await });
                }
                Some(ev) => gw.on_chat_event(&user, ev),
                None => return,
            },
            _ = closed.changed() => return,
        }
    }
}

/// T-IM's history endpoint failing, as the web client sees it (502: the gateway is fine, the
/// node behind it is not).
fn history_error(e: crate::im::history_api::HistoryError) -> WebError {
    tracing::warn!(error = %e, "WebRSF: history from T-IM failed");
    WebError::BadGateway(e.to_string())
}
