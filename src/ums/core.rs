//! The UMS's socket-free core: templates, messages and each recipient's state, driven by
//! requests in and SMPP outcomes in, with what to do next coming out (submissions to pull
//! with [`UmsCore::next_submission`], records to store and webhook events in [`Output`]).
//! Time is passed in. The HTTP surface, the SMPP session to the SMS centre and the webhook
//! poster are drivers around it.
//!
//! One recipient's state (SMPP 3.4 §4.4.2 submit_sm_resp, Appendix B receipts):
//!
//! ```text
//!            submit_sm_resp OK          receipt DELIVRD
//! accepted ───────────────────► sent ───────────────────► delivered
//!    │  ▲                         │
//!    │  └─ connection lost,       │ receipt EXPIRED / UNDELIV / REJECTD / DELETED
//!    │     throttled (retry)      ▼
//!    └── submit_sm_resp error ─► failed
//! ```
//!
//! RCS first (seed 003: "prefers RCS where both sides support it"; [`rcs`]): with the
//! gateway's chatbot identity registered, a recipient of `auto` is first asked for its
//! capabilities (OPTIONS); one that takes chat gets a chat message, which must be reported
//! delivered (IMDN) within the fallback time, else it goes again as SMS/LMS and is marked
//! `fell_back`. One that does not take chat (or is not registered) gets SMS/LMS straight
//! away. The channel is kept per recipient ([`Channel`]):
//!
//! ```text
//!   accepted (rcs) ──OPTIONS: no chat──► accepted (sms/lms) ──► as above
//!      │ chat sent
//!      ▼        IMDN delivered         IMDN displayed
//!   sent (rcs) ───────────────► delivered ─────────► read
//!      │ no IMDN within fallback_secs, IMDN failed, send failed
//!      └────────────► accepted (sms/lms), fell_back ──► as above
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::template::{Template, TemplateStatus, MAX_TEXT};
use crate::sms::gsm7;

/// Why a request is refused; each maps to an HTTP status and the JSON `error` word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UmsError {
    /// Bad input: 400.
    #[error("{detail}")]
    Invalid { error: &'static str, detail: String },
    /// The template exists but is not approved: 403.
    #[error("template '{0}' is not approved yet")]
    NotApproved(String),
    /// No such template or message: 404.
    #[error("no {what} '{id}'")]
    NotFound { what: &'static str, id: String },
    /// A template with this id exists: 409.
    #[error("template '{0}' exists")]
    Exists(String),
    /// A bound is reached: 429.
    #[error("{detail}")]
    Full { error: &'static str, detail: String },
}

impl UmsError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> u16 {
        match self {
            UmsError::Invalid { .. } => 400,
            UmsError::NotApproved(_) => 403,
            UmsError::NotFound { .. } => 404,
            UmsError::Exists(_) => 409,
            UmsError::Full { .. } => 429,
        }
    }

    /// The JSON `error` word.
    pub fn code(&self) -> &'static str {
        match self {
            UmsError::Invalid { error, .. } | UmsError::Full { error, .. } => error,
            UmsError::NotApproved(_) => "template_not_approved",
            UmsError::NotFound {
                what: "template", ..
            } => "no_such_template",
            UmsError::NotFound { .. } => "no_such_message",
            UmsError::Exists(_) => "template_exists",
        }
    }
}

pub(super) fn invalid(error: &'static str, detail: impl Into<String>) -> UmsError {
    UmsError::Invalid {
        error,
        detail: detail.into(),
    }
}

/// How a recipient is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// One SMS (160 GSM 7-bit or 70 UCS-2 characters).
    Sms,
    /// A longer text as concatenated SMS (up to 2,000 characters).
    Lms,
    /// RCS chat from the gateway's chatbot identity.
    Rcs,
    /// An MMS notification (WAP Push over SMS) pointing at the message's media.
    Mms,
}

/// What a request asks for (`"channel"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelPolicy {
    /// The best the gateway has: RCS chat when the recipient takes it (falling back to SMS
    /// or LMS), else SMS, or LMS for a longer text.
    #[default]
    Auto,
    /// One SMS only: a longer text is refused.
    Sms,
    /// SMS or LMS.
    Lms,
    /// RCS only: a recipient who does not take chat fails.
    Rcs,
    /// MMS: the request names media (`auto` with media means this too).
    Mms,
}

impl ChannelPolicy {
    /// `auto`, `sms`, `lms`, `rcs`.
    pub fn parse(s: &str) -> Result<ChannelPolicy, UmsError> {
        Ok(match s {
            "auto" => ChannelPolicy::Auto,
            "sms" => ChannelPolicy::Sms,
            "lms" => ChannelPolicy::Lms,
            "rcs" => ChannelPolicy::Rcs,
            "mms" => ChannelPolicy::Mms,
            other => {
                return Err(invalid(
                    "bad_channel",
                    format!("channel '{other}': auto, sms, lms, mms or rcs"),
                ))
            }
        })
    }
}

/// True when `text` fits one SMS: 160 GSM 7-bit septets (an extension character takes two),
/// else 70 UCS-2 code units (TS 23.038, TS 23.040 §9.2.3.16).
pub fn fits_one_sms(text: &str) -> bool {
    match gsm7::encode(text) {
        Some(septets) => septets.len() <= 160,
        None => text.encode_utf16().count() <= 70,
    }
}

/// A recipient's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Taken, not yet accepted by the SMS centre.
    Accepted,
    /// The centre accepted it (submit_sm_resp): on its way.
    Sent,
    /// The receipt says delivered.
    Delivered,
    /// Refused by the centre, or the receipt says it could not be delivered.
    Failed,
    /// RCS: the recipient's client says it was shown (IMDN displayed).
    Read,
}

impl Status {
    /// Delivered or failed: nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed | Status::Read)
    }

    /// Whether `self -> to` is a move the diagram in the module doc allows.
    fn may_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Accepted, Status::Sent)
                | (Status::Accepted, Status::Failed)
                | (Status::Sent, Status::Delivered)
                | (Status::Sent, Status::Failed)
                | (Status::Sent, Status::Read)
                | (Status::Delivered, Status::Read)
        )
    }
}

/// One recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub to: String,
    pub status: Status,
    pub channel: Channel,
    #[serde(default)]
    pub detail: String,
    /// The SMS centre's message id (from submit_sm_resp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smsc_id: Option<String>,
    /// Submissions tried (a throttled one is tried again, up to [`MAX_ATTEMPTS`]).
    #[serde(default)]
    pub attempts: u32,
    /// What it goes as when RCS chat does not reach it (`auto`); None: RCS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Channel>,
    /// It was sent as chat first and went again as SMS/LMS.
    #[serde(default)]
    pub fell_back: bool,
    /// RCS: the chat message's imdn.Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// RCS: when it falls back if no IMDN came, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_at: Option<u64>,
    /// RCS: the chat message is being revoked before the fallback (GSMA RCC.07 message
    /// revocation); it falls back anyway at this time, Unix seconds, if no outcome came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoking_until: Option<u64>,
    /// When it last changed, Unix seconds.
    pub updated: u64,
}

/// Submissions of one recipient before it fails.
pub const MAX_ATTEMPTS: u32 = 5;

/// A message as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub created: u64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Replies suggested to RCS recipients (a chatbot card's chips).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
    /// The media an MMS points at (its id in the gateway's media store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    pub recipients: Vec<Recipient>,
}

impl Message {
    /// Every recipient is delivered or failed.
    pub fn is_final(&self) -> bool {
        self.recipients.iter().all(|r| r.status.is_final())
    }
}

/// A send request as the API reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub recipients: Vec<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub template: Option<TemplateRef>,
    #[serde(default)]
    pub channel: Option<String>,
    /// Replies suggested to RCS recipients (left out of an SMS).
    #[serde(default)]
    pub suggestions: Vec<String>,
    /// Media to send as MMS (an id from `POST /ums/v1/media`); the text is then its subject.
    #[serde(default)]
    pub media: Option<String>,
}

/// `"template": {"id", "variables"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub id: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// One recipient's message, to go out as submit_sm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub key: Key,
    pub to: String,
    pub text: String,
    /// The media of an MMS.
    pub media: Option<String>,
}

/// A recipient: its message's id and its index there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub message: String,
    pub index: usize,
}

/// What the drivers do after a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Store this message again (it changed).
    Store(String),
    /// Forget this message (the oldest final ones go past `max_messages`).
    Forget(String),
    /// POST this to the webhook.
    Webhook(serde_json::Value),
}

/// The core's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_recipients: usize,
    pub max_templates: usize,
    pub max_messages: usize,
    pub max_pending: usize,
}

/// The gateway's state.
pub struct UmsCore {
    limits: Limits,
    templates: BTreeMap<String, Template>,
    messages: HashMap<String, Message>,
    /// Message ids, oldest first.
    order: VecDeque<String>,
    /// Recipients waiting to be submitted.
    queue: VecDeque<Key>,
    /// Recipients submitted whose submit_sm_resp has not come.
    in_flight: HashMap<Key, ()>,
    /// The centre's message id -> its recipient, while a receipt may come.
    by_smsc_id: HashMap<String, Key>,
    /// Recipients not yet final.
    pending: usize,
    /// RCS: the fallback time while the chatbot identity is registered; None: no RCS.
    rcs: Option<u64>,
    /// RCS: recipients waiting for their capability query.
    rcs_queue: VecDeque<Key>,
    /// RCS: recipients being asked or sent to.
    rcs_in_flight: HashSet<Key>,
    /// RCS: a chat message's imdn.Message-ID -> its recipient, while an IMDN may come.
    by_chat_id: HashMap<String, Key>,
    /// RCS: when each chat message sent falls back, in the order they were sent.
    deadlines: VecDeque<(u64, Key)>,
    /// RCS: recipients whose chat message is to be revoked (the driver sends the requests).
    revoke_queue: VecDeque<Key>,
}

/// True for an E.164 number with its `+`: 1 to 15 digits, the first not 0.
pub fn valid_number(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

impl UmsCore {
    /// An empty core.
    pub fn new(limits: Limits) -> UmsCore {
        UmsCore {
            limits,
            templates: BTreeMap::new(),
            messages: HashMap::new(),
            order: VecDeque::new(),
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            by_smsc_id: HashMap::new(),
            pending: 0,
            rcs: None,
            rcs_queue: VecDeque::new(),
            rcs_in_flight: HashSet::new(),
            by_chat_id: HashMap::new(),
            deadlines: VecDeque::new(),
            revoke_queue: VecDeque::new(),
        }
    }

    /// A core holding what was stored: recipients still `accepted` are queued again (their
    /// submit_sm may not have reached the centre), `sent` ones wait for their receipt.
    pub fn restore(limits: Limits, templates: Vec<Template>, mut messages: Vec<Message>) -> Self {
        let mut c = UmsCore::new(limits);
        for t in templates {
            c.templates.insert(t.id.clone(), t);
        }
        messages.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        for m in messages {
            c.index(&m);
            c.order.push_back(m.id.clone());
            c.messages.insert(m.id.clone(), m);
        }
        c.deadlines.make_contiguous().sort_by_key(|(at, _)| *at);
        c
    }

    fn index(&mut self, m: &Message) {
        for (i, r) in m.recipients.iter().enumerate() {
            let key = Key {
                message: m.id.clone(),
                index: i,
            };
            match (r.status, r.channel) {
                (Status::Accepted, Channel::Rcs) => self.rcs_queue.push_back(key),
                (Status::Accepted, _) => self.queue.push_back(key),
                (Status::Sent | Status::Delivered, Channel::Rcs) => {
                    if let Some(id) = &r.chat_id {
                        self.by_chat_id.insert(id.clone(), key.clone());
                    }
                    let at = r.revoking_until.or(r.fallback_at);
                    if let (Status::Sent, Some(at), Some(_)) = (r.status, at, r.fallback) {
                        self.deadlines.push_back((at, key));
                    }
                }
                (Status::Sent, _) => {
                    if let Some(id) = &r.smsc_id {
                        self.by_smsc_id.insert(id.clone(), key);
                    }
                }
                _ => {}
            }
            if !r.status.is_final() {
                self.pending += 1;
            }
        }
    }

    /// Registers a template (pending approval).
    pub fn add_template(&mut self, now: u64, id: &str, text: &str) -> Result<&Template, UmsError> {
        let t = Template::new(id, text, now)?;
        if self.templates.contains_key(id) {
            return Err(UmsError::Exists(id.to_string()));
        }
        if self.templates.len() >= self.limits.max_templates {
            return Err(UmsError::Full {
                error: "too_many_templates",
                detail: format!("{} templates are kept at most", self.limits.max_templates),
            });
        }
        Ok(self.templates.entry(id.to_string()).or_insert(t))
    }

    /// A template.
    pub fn template(&self, id: &str) -> Result<&Template, UmsError> {
        self.templates.get(id).ok_or_else(|| UmsError::NotFound {
            what: "template",
            id: id.to_string(),
        })
    }

    /// The operator approves a template (again: no change).
    pub fn approve(&mut self, id: &str) -> Result<&Template, UmsError> {
        let t = self
            .templates
            .get_mut(id)
            .ok_or_else(|| UmsError::NotFound {
                what: "template",
                id: id.to_string(),
            })?;
        t.status = TemplateStatus::Approved;
        Ok(t)
    }

    /// A message.
    pub fn message(&self, id: &str) -> Result<&Message, UmsError> {
        self.messages.get(id).ok_or_else(|| UmsError::NotFound {
            what: "message",
            id: id.to_string(),
        })
    }

    /// Recipients not yet final, and recipients waiting to be submitted.
    pub fn load(&self) -> (usize, usize) {
        (self.pending, self.queue.len())
    }

    /// The text a request sends: its own, or its approved template's rendered.
    fn text_of(&self, req: &SendRequest) -> Result<(String, Option<String>), UmsError> {
        let (text, template) = match (&req.text, &req.template) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "text_and_template",
                    "give either a text or a template, not both: a templated message's text comes from its template",
                ))
            }
            (None, None) => return Err(invalid("no_text", "give a text or a template")),
            (Some(t), None) => (t.clone(), None),
            (None, Some(r)) => {
                let t = self.template(&r.id)?;
                if t.status != TemplateStatus::Approved {
                    return Err(UmsError::NotApproved(r.id.clone()));
                }
                (t.render(&r.variables)?, Some(r.id.clone()))
            }
        };
        if text.is_empty() {
            return Err(invalid("no_text", "the text is empty"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(invalid(
                "text_too_long",
                format!("a message holds at most {MAX_TEXT} characters (an LMS)"),
            ));
        }
        Ok((text, template))
    }

    /// Takes a send request as message `id`: every recipient `accepted` and queued. Refuses
    /// bad numbers (naming them), a bad text or template, and requests past the bounds.
    pub fn submit(
        &mut self,
        now: u64,
        id: String,
        req: &SendRequest,
    ) -> Result<(&Message, Vec<Output>), UmsError> {
        if req.recipients.is_empty() {
            return Err(invalid("no_recipients", "give at least one recipient"));
        }
        if req.recipients.len() > self.limits.max_recipients {
            return Err(invalid(
                "too_many_recipients",
                format!(
                    "{} recipients; at most {} a request",
                    req.recipients.len(),
                    self.limits.max_recipients
                ),
            ));
        }
        let bad: Vec<&str> = req
            .recipients
            .iter()
            .filter(|r| !valid_number(r))
            .map(String::as_str)
            .collect();
        if !bad.is_empty() {
            return Err(invalid(
                "bad_recipients",
                format!(
                    "not E.164 numbers with '+': {}",
                    bad.iter()
                        .map(|b| format!("'{}'", b.chars().take(32).collect::<String>()))
                        .take(20)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let policy = ChannelPolicy::parse(req.channel.as_deref().unwrap_or("auto"))?;
        let (text, template) = match (&req.media, &req.text, &req.template) {
            (Some(_), None, None) => (String::new(), None),
            _ => self.text_of(req)?,
        };
        rcs::check_suggestions(&req.suggestions)?;
        let mms = super::mms::channel(policy, req.media.as_deref(), &text)?;
        let sms = if fits_one_sms(&text) {
            Channel::Sms
        } else {
            Channel::Lms
        };
        let (channel, fallback) = match (policy, sms, self.rcs) {
            // Media: an RCS file transfer first when chat is on, MMS as its fallback.
            (ChannelPolicy::Auto, _, Some(_)) if mms.is_some() => (Channel::Rcs, mms),
            _ if mms.is_some() => (Channel::Mms, None),
            (ChannelPolicy::Rcs, _, None) => {
                return Err(invalid(
                    "channel_unavailable",
                    "RCS is off: the gateway's chatbot identity is not registered (see [ums] rcs_user); use auto, sms or lms",
                ))
            }
            (ChannelPolicy::Rcs, _, Some(_)) => (Channel::Rcs, None),
            (ChannelPolicy::Auto, _, Some(_)) => (Channel::Rcs, Some(sms)),
            (ChannelPolicy::Sms, Channel::Lms, _) => {
                return Err(invalid(
                    "too_long_for_sms",
                    "the text does not fit one SMS (160 GSM 7-bit or 70 UCS-2 characters): use channel lms or auto",
                ))
            }
            (_, ch, _) => (ch, None),
        };
        let mut to: Vec<String> = Vec::with_capacity(req.recipients.len());
        for r in &req.recipients {
            if !to.contains(r) {
                to.push(r.clone());
            }
        }
        if self.pending + to.len() > self.limits.max_pending {
            return Err(UmsError::Full {
                error: "too_many_pending",
                detail: format!(
                    "{} recipients are waiting; at most {}",
                    self.pending, self.limits.max_pending
                ),
            });
        }
        let mut out = self.make_room()?;
        if self.messages.contains_key(&id) {
            return Err(invalid("duplicate_id", format!("message id {id} exists")));
        }
        let m = Message {
            id: id.clone(),
            created: now,
            text,
            template,
            suggestions: req.suggestions.clone(),
            media: req.media.clone(),
            recipients: to
                .into_iter()
                .map(|to| Recipient {
                    to,
                    status: Status::Accepted,
                    channel,
                    detail: String::new(),
                    smsc_id: None,
                    attempts: 0,
                    fallback,
                    fell_back: false,
                    chat_id: None,
                    fallback_at: None,
                    revoking_until: None,
                    updated: now,
                })
                .collect(),
        };
        self.index(&m);
        self.order.push_back(id.clone());
        self.messages.insert(id.clone(), m);
        out.push(Output::Store(id.clone()));
        let m = self.message(&id)?;
        Ok((m, out))
    }

    /// Forgets the oldest final message while `max_messages` are kept; refuses when none is
    /// final.
    fn make_room(&mut self) -> Result<Vec<Output>, UmsError> {
        let mut out = Vec::new();
        while self.messages.len() >= self.limits.max_messages {
            let oldest_final = self
                .order
                .iter()
                .position(|id| self.messages.get(id).is_none_or(Message::is_final));
            let Some(i) = oldest_final else {
                return Err(UmsError::Full {
                    error: "too_many_messages",
                    detail: format!(
                        "{} messages are kept and none is final yet",
                        self.limits.max_messages
                    ),
                });
            };
            if let Some(id) = self.order.remove(i) {
                // A chat delivered but never read stays indexed for its "displayed": it goes
                // with its message.
                if let Some(m) = self.messages.remove(&id) {
                    for r in &m.recipients {
                        if let Some(c) = &r.chat_id {
                            self.by_chat_id.remove(c);
                        }
                    }
                }
                out.push(Output::Forget(id));
            }
        }
        Ok(out)
    }

    /// The next recipient to submit, now in flight.
    pub fn next_submission(&mut self) -> Option<Submission> {
        while let Some(key) = self.queue.pop_front() {
            let Some(m) = self.messages.get(&key.message) else {
                continue;
            };
            let Some(r) = m.recipients.get(key.index) else {
                continue;
            };
            if r.status != Status::Accepted || r.channel == Channel::Rcs {
                continue;
            }
            let s = Submission {
                key: key.clone(),
                to: r.to.clone(),
                text: m.text.clone(),
                media: m.media.clone(),
            };
            self.in_flight.insert(key, ());
            return Some(s);
        }
        None
    }

    /// The session to the centre ended: what was in flight is queued again, first.
    pub fn connection_lost(&mut self) {
        for (k, ()) in self.in_flight.drain() {
            self.queue.push_front(k);
        }
    }

    fn set(&mut self, now: u64, key: &Key, to: Status, detail: String) -> Vec<Output> {
        let Some(m) = self.messages.get_mut(&key.message) else {
            return Vec::new();
        };
        let Some(r) = m.recipients.get_mut(key.index) else {
            return Vec::new();
        };
        if !r.status.may_become(to) {
            return Vec::new();
        }
        let was_final = r.status.is_final();
        r.status = to;
        // Why it went as it did (fell back, not reachable over RCS) stays said until
        // something else is to be said.
        if !detail.is_empty() {
            r.detail = detail;
        }
        r.updated = now;
        if to.is_final() {
            if !was_final {
                self.pending = self.pending.saturating_sub(1);
            }
            if let Some(id) = r.smsc_id.as_ref() {
                self.by_smsc_id.remove(id);
            }
            // A chat message stays indexed until read: "displayed" may follow "delivered".
            if to != Status::Delivered || r.channel != Channel::Rcs {
                if let Some(id) = r.chat_id.as_ref() {
                    self.by_chat_id.remove(id);
                }
            }
        }
        let event = serde_json::json!({
            "type": "status",
            "message_id": key.message,
            "to": r.to,
            "status": to,
            "channel": r.channel,
            "fell_back": r.fell_back,
            "detail": r.detail,
        });
        vec![Output::Store(key.message.clone()), Output::Webhook(event)]
    }

    /// submit_sm_resp: `Ok(id)` the centre took it; `Err((retry, why))` it refused, for now
    /// (throttled, queue full: tried again up to [`MAX_ATTEMPTS`]) or for good.
    pub fn submitted(
        &mut self,
        now: u64,
        key: &Key,
        result: Result<String, (bool, String)>,
    ) -> Vec<Output> {
        if self.in_flight.remove(key).is_none() {
            return Vec::new();
        }
        match result {
            Ok(smsc_id) => {
                if let Some(r) = self
                    .messages
                    .get_mut(&key.message)
                    .and_then(|m| m.recipients.get_mut(key.index))
                {
                    r.smsc_id = Some(smsc_id.clone());
                    r.attempts += 1;
                }
                self.by_smsc_id.insert(smsc_id, key.clone());
                self.set(now, key, Status::Sent, String::new())
            }
            Err((retry, why)) => {
                let attempts = self
                    .messages
                    .get_mut(&key.message)
                    .and_then(|m| m.recipients.get_mut(key.index))
                    .map(|r| {
                        r.attempts += 1;
                        r.attempts
                    })
                    .unwrap_or(MAX_ATTEMPTS);
                if retry && attempts < MAX_ATTEMPTS {
                    self.queue.push_back(key.clone());
                    Vec::new()
                } else {
                    self.set(now, key, Status::Failed, why)
                }
            }
        }
    }

    /// A delivery receipt for the centre's message `smsc_id`: delivered, or failed with why.
    /// A receipt for an id nobody waits on is ignored.
    pub fn receipt(
        &mut self,
        now: u64,
        smsc_id: &str,
        delivered: bool,
        why: String,
    ) -> Vec<Output> {
        let Some(key) = self.by_smsc_id.get(smsc_id).cloned() else {
            return Vec::new();
        };
        let to = if delivered {
            Status::Delivered
        } else {
            Status::Failed
        };
        let recipient = self
            .message(&key.message)
            .ok()
            .and_then(|m| m.recipients.get(key.index));
        let why = match recipient {
            Some(r) if delivered && r.channel == Channel::Mms => "notification delivered".into(),
            _ => why,
        };
        self.set(now, &key, to, why)
    }
}

#[path = "core_rcs.rs"]
mod rcs;
pub use self::rcs::RcsJob;

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
