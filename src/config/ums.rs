//! `[ums]`: the unified-messaging gateway (business A2P messaging, seed 003): the tokens of its
//! REST API, the SMPP account it binds to the SMS centre with, the sender address of its SMS,
//! the webhook it reports to, and its bounds.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[ums]`
///
/// ```toml
/// [ums]
/// token = ""            # empty: random, kept in DIR/ums/api.token
/// operator_token = ""   # empty: random, kept in DIR/ums/operator.token
/// system_id = "ums"
/// password = "ums-pw"
/// sender = "4100"
/// webhook = "http://127.0.0.1:9000/hook"
/// rcs_user = "ums"      # registers sip:ums@DOMAIN as a chatbot; "" for SMS only
/// fallback_secs = 10    # chat not reported delivered by then goes as SMS
/// max_media_size = 1048576   # one MMS upload, bytes
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UmsSection {
    /// The business API's Bearer token; empty: a random one kept in `DIR/ums/api.token`.
    #[serde(default)]
    pub token: String,
    /// The operator's Bearer token (approves templates); empty: a random one kept in
    /// `DIR/ums/operator.token`.
    #[serde(default)]
    pub operator_token: String,
    /// The SMPP account the gateway binds to the SMS centre with (one of `[smsc] accounts`).
    #[serde(default = "default_system_id")]
    pub system_id: String,
    /// Its SMPP password.
    #[serde(default = "default_password")]
    pub password: String,
    /// The source address of its SMS (its short code; phones' replies to it come back as MO).
    #[serde(default = "default_sender")]
    pub sender: String,
    /// Where status changes and MO replies are POSTed as JSON (`http://` only); empty: none.
    #[serde(default)]
    pub webhook: String,
    /// Recipients one request may name.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Templates kept.
    #[serde(default = "default_max_templates")]
    pub max_templates: usize,
    /// Messages kept; past it the oldest final ones are forgotten (and a new one is refused
    /// with 429 while none is final).
    #[serde(default = "default_max_messages")]
    pub max_messages: usize,
    /// Recipients not yet final, over all messages; past it a request is refused with 429.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// submit_sm outstanding at once on the SMPP session.
    #[serde(default = "default_window")]
    pub smpp_window: usize,
    /// Webhook posts queued at once (more are dropped, and logged).
    #[serde(default = "default_webhook_queue")]
    pub webhook_queue: usize,
    /// The subscriber the gateway registers as its chatbot identity for RCS (`ums`:
    /// `sip:ums@DOMAIN`, one of `[[subscribers]]`); empty: no RCS, SMS only.
    #[serde(default = "default_rcs_user")]
    pub rcs_user: String,
    /// Seconds a chat message has to be reported delivered (IMDN) before it goes as SMS.
    #[serde(default = "default_fallback_secs")]
    pub fallback_secs: u64,
    /// Recipients asked (OPTIONS) or sent chat at once.
    #[serde(default = "default_rcs_window")]
    pub rcs_window: usize,
    /// The largest media upload (`POST /ums/v1/media`, sent as MMS), bytes; past it 413.
    #[serde(default = "default_max_media_size")]
    pub max_media_size: usize,
    /// Media kept at once; past it (or past `max_media_total` bytes) an upload gets 429.
    #[serde(default = "default_max_media")]
    pub max_media: usize,
    /// Bytes of media kept at once.
    #[serde(default = "default_max_media_total")]
    pub max_media_total: usize,
}

fn default_system_id() -> String {
    "ums".into()
}
fn default_password() -> String {
    "ums-pw".into()
}
fn default_sender() -> String {
    "4100".into()
}
fn default_max_recipients() -> usize {
    1000
}
fn default_max_templates() -> usize {
    1000
}
fn default_max_messages() -> usize {
    10_000
}
fn default_max_pending() -> usize {
    100_000
}
fn default_window() -> usize {
    10
}
fn default_webhook_queue() -> usize {
    1000
}
fn default_rcs_user() -> String {
    "ums".into()
}
fn default_fallback_secs() -> u64 {
    10
}
fn default_rcs_window() -> usize {
    20
}
fn default_max_media_size() -> usize {
    1024 * 1024
}
fn default_max_media() -> usize {
    1000
}
fn default_max_media_total() -> usize {
    64 * 1024 * 1024
}

impl Default for UmsSection {
    fn default() -> Self {
        UmsSection {
            token: String::new(),
            operator_token: String::new(),
            system_id: default_system_id(),
            password: default_password(),
            sender: default_sender(),
            webhook: String::new(),
            max_recipients: default_max_recipients(),
            max_templates: default_max_templates(),
            max_messages: default_max_messages(),
            max_pending: default_max_pending(),
            smpp_window: default_window(),
            webhook_queue: default_webhook_queue(),
            rcs_user: default_rcs_user(),
            fallback_secs: default_fallback_secs(),
            rcs_window: default_rcs_window(),
            max_media_size: default_max_media_size(),
            max_media: default_max_media(),
            max_media_total: default_max_media_total(),
        }
    }
}

impl UmsSection {
    /// Refuses zero bounds, credentials SMPP 3.4 cannot carry, a sender that is not digits
    /// and a webhook that is not `http://`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::Invalid(format!("[ums] {why}")));
        for (k, v) in [
            ("max_recipients", self.max_recipients),
            ("max_templates", self.max_templates),
            ("max_messages", self.max_messages),
            ("max_pending", self.max_pending),
            ("smpp_window", self.smpp_window),
            ("webhook_queue", self.webhook_queue),
            ("rcs_window", self.rcs_window),
            ("fallback_secs", self.fallback_secs as usize),
            ("max_media_size", self.max_media_size),
            ("max_media", self.max_media),
            ("max_media_total", self.max_media_total),
        ] {
            if v == 0 {
                return bad(format!("{k} must be at least 1"));
            }
        }
        if self.system_id.is_empty() || self.system_id.len() > 15 || self.password.len() > 8 {
            return bad(
                "SMPP 3.4 carries a system_id of 1 to 15 characters and a password of at most 8"
                    .into(),
            );
        }
        let s = self.sender.trim_start_matches('+');
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("sender '{}' is not a number", self.sender));
        }
        if !self.webhook.is_empty() && !self.webhook.starts_with("http://") {
            return bad(format!(
                "webhook '{}' is not an http:// URL (the gateway has no TLS client)",
                self.webhook
            ));
        }
        Ok(())
    }
}
