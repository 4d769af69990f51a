//! `[webrsf]`: the WebRSF gateway: instance URLs, notification channels, tokens, login
//! throttling, per-user caps and push webhooks.

use serde::{Deserialize, Serialize};

/// `[webrsf]`: the web gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRsfSection {
    /// Scheme and authority that instance URLs start with (paper Table 1:
    /// `https://{host}/webrsf/v1/...`). Empty: `https://` and the bound address.
    #[serde(default)]
    pub public_url: String,
    /// Seconds between keep-alive chunks on an idle notification channel.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
    /// Notification channels one user may hold open at once (more get 429).
    #[serde(default = "default_max_channels")]
    pub max_channels_per_user: usize,
    /// Largest request body accepted (bytes; larger gets 413).
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Events kept per user for replay from a cursor / Last-Event-ID.
    #[serde(default = "default_event_buffer")]
    pub event_buffer: usize,
    /// Registration lifetime asked for web users (re-registered at half-life).
    #[serde(default = "default_web_expires")]
    pub register_expires: u32,
    /// Push webhooks: user id (`bob`) -> URL that gets a POST when an event arrives while
    /// the user has no channel open.
    #[serde(default)]
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// A token unused this long (no request, no notification channel open) expires: the
    /// user is de-registered and forgotten.
    #[serde(default = "default_token_idle")]
    pub token_idle_secs: u64,
    /// A bearer token ends this long after it was issued (`PUT /Session` gives a new one).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Failed logins of one user within ten minutes before it gets 429 with Retry-After (an
    /// address gets four times as many, its users together).
    #[serde(default = "default_login_failures")]
    pub login_max_failures: u32,
    /// The first 429 lasts this long; each further one doubles (up to 30 times it).
    #[serde(default = "default_login_block")]
    pub login_block_secs: u64,
    /// Web users logged in at once (more get 503).
    #[serde(default = "default_max_users")]
    pub max_users: usize,
    /// Received messages waiting for `GET Chat/Media` per user; past it the oldest go.
    #[serde(default = "default_max_media")]
    pub max_media_per_user: usize,
    /// Chat instances kept per user; past it the oldest closed one goes (else the oldest).
    #[serde(default = "default_max_instances")]
    pub max_instances_per_user: usize,
    /// A notification channel ends after this long; the client reconnects from its cursor.
    #[serde(default = "default_channel_max")]
    pub channel_max_secs: u64,
}

fn default_keepalive() -> u64 {
    15
}
fn default_max_channels() -> usize {
    4
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_event_buffer() -> usize {
    1024
}
fn default_web_expires() -> u32 {
    600
}
fn default_token_idle() -> u64 {
    3600
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_login_failures() -> u32 {
    5
}
fn default_login_block() -> u64 {
    30
}
fn default_max_users() -> usize {
    1000
}
fn default_max_media() -> usize {
    1000
}
fn default_max_instances() -> usize {
    256
}
fn default_channel_max() -> u64 {
    3600
}

impl Default for WebRsfSection {
    fn default() -> Self {
        WebRsfSection {
            public_url: String::new(),
            keepalive_secs: default_keepalive(),
            max_channels_per_user: default_max_channels(),
            max_body: default_max_body(),
            event_buffer: default_event_buffer(),
            register_expires: default_web_expires(),
            webhooks: Default::default(),
            token_idle_secs: default_token_idle(),
            token_lifetime_secs: default_token_lifetime(),
            login_max_failures: default_login_failures(),
            login_block_secs: default_login_block(),
            max_users: default_max_users(),
            max_media_per_user: default_max_media(),
            max_instances_per_user: default_max_instances(),
            channel_max_secs: default_channel_max(),
        }
    }
}
