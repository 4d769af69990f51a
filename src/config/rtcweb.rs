//! `[rtcweb]`: the patent's RTCWeb gateway (seed 001, [`crate::rtcweb`]): its bounds and the
//! timers of figure 7.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[rtcweb]`
///
/// ```toml
/// [rtcweb]
/// max_users = 1000
/// reload_grace_secs = 30
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcwebSection {
    /// Web users attached at once (one more page's `REGISTER` gets `ERROR`).
    #[serde(default = "default_max_users")]
    pub max_users: usize,
    /// WebSocket connections open at once (one more is refused with 503).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Calls and presence subscriptions at once, over all users (the routing table's size).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Calls and subscriptions one user may hold at once.
    #[serde(default = "default_max_sessions_per_user")]
    pub max_sessions_per_user: usize,
    /// Registration lifetime asked for web users (re-registered at half of what is granted).
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// Figure 7 Reloading: how long the IMS dialog is kept while the page reloads.
    #[serde(default = "default_reload_grace")]
    pub reload_grace_secs: u64,
    /// How long an incoming call may ring on the page before 480.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// How long the page may take to send `ANSWER` after the callee accepted (below Timer H).
    #[serde(default = "default_answer_wait")]
    pub answer_wait_secs: u64,
    /// A page that sends nothing for this long (no frame, no pong) is disconnected.
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
}

impl Default for RtcwebSection {
    fn default() -> Self {
        RtcwebSection {
            max_users: default_max_users(),
            max_connections: default_max_connections(),
            max_sessions: default_max_sessions(),
            max_sessions_per_user: default_max_sessions_per_user(),
            register_expires: default_register_expires(),
            reload_grace_secs: default_reload_grace(),
            ring_timeout_secs: default_ring_timeout(),
            answer_wait_secs: default_answer_wait(),
            idle_secs: default_idle(),
        }
    }
}

impl RtcwebSection {
    /// Refuses bounds that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        let zero = [
            ("rtcweb.max_users", self.max_users),
            ("rtcweb.max_connections", self.max_connections),
            ("rtcweb.max_sessions", self.max_sessions),
            ("rtcweb.max_sessions_per_user", self.max_sessions_per_user),
            ("rtcweb.register_expires", self.register_expires as usize),
            ("rtcweb.ring_timeout_secs", self.ring_timeout_secs as usize),
            ("rtcweb.answer_wait_secs", self.answer_wait_secs as usize),
            ("rtcweb.idle_secs", self.idle_secs as usize),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be above 0")));
        }
        if self.answer_wait_secs >= 32 {
            return Err(ConfigError::Invalid(
                "rtcweb.answer_wait_secs must be below 32 (Timer H, RFC 3261 §13.3.1.4)".into(),
            ));
        }
        Ok(())
    }
}

fn default_max_users() -> usize {
    1000
}
fn default_max_connections() -> usize {
    2000
}
fn default_max_sessions() -> usize {
    10_000
}
fn default_max_sessions_per_user() -> usize {
    32
}
fn default_register_expires() -> u32 {
    600
}
fn default_reload_grace() -> u64 {
    30
}
fn default_ring_timeout() -> u64 {
    60
}
fn default_answer_wait() -> u64 {
    16
}
fn default_idle() -> u64 {
    120
}
