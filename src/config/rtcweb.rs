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
    /// The WebRTC media bridge ([`crate::media`]) between a page and an IMS phone: the page's
    /// ICE + DTLS-SRTP ends at the gateway and the phone gets plain RTP/AVP. Off: every SDP
    /// passes untouched (a plain phone then cannot talk to a browser).
    #[serde(default = "default_true")]
    pub media_bridge: bool,
    /// The address the bridge's media sockets bind to and its SDPs name (default: the
    /// address of the gateway's SIP endpoint).
    #[serde(default)]
    pub media_ip: Option<std::net::IpAddr>,
    /// UDP ports for bridged media, inclusive, two per call (0 and 0: chosen by the OS).
    #[serde(default = "default_media_port_min")]
    pub media_port_min: u16,
    #[serde(default = "default_media_port_max")]
    pub media_port_max: u16,
    /// Bridged calls at once; one more call to or from a phone is refused (488 / `ERROR`).
    #[serde(default = "default_max_bridged_calls")]
    pub max_bridged_calls: usize,
    /// A bridged call with no RTP either way for this long loses its media (not its dialog).
    #[serde(default = "default_media_idle")]
    pub media_idle_secs: u64,
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
            media_bridge: true,
            media_ip: None,
            media_port_min: default_media_port_min(),
            media_port_max: default_media_port_max(),
            max_bridged_calls: default_max_bridged_calls(),
            media_idle_secs: default_media_idle(),
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
            ("rtcweb.max_bridged_calls", self.max_bridged_calls),
            ("rtcweb.media_idle_secs", self.media_idle_secs as usize),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be above 0")));
        }
        if self.answer_wait_secs >= 32 {
            return Err(ConfigError::Invalid(
                "rtcweb.answer_wait_secs must be below 32 (Timer H, RFC 3261 §13.3.1.4)".into(),
            ));
        }
        let (min, max) = (self.media_port_min, self.media_port_max);
        if (min == 0) != (max == 0) || max < min || (min != 0 && max == min) {
            return Err(ConfigError::Invalid(format!(
                "rtcweb.media_port_min..media_port_max ({min}-{max}) must hold two ports or more (both 0: ports chosen by the OS)"
            )));
        }
        Ok(())
    }

    /// The media bridge's settings, its address `ip` unless `media_ip` names one.
    pub fn bridge_config(&self, ip: std::net::IpAddr) -> crate::media::BridgeConfig {
        crate::media::BridgeConfig {
            ip: self.media_ip.unwrap_or(ip),
            port_min: self.media_port_min,
            port_max: self.media_port_max,
            max_calls: self.max_bridged_calls,
            idle_timeout: std::time::Duration::from_secs(self.media_idle_secs),
        }
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
fn default_true() -> bool {
    true
}
fn default_media_port_min() -> u16 {
    30000
}
fn default_media_port_max() -> u16 {
    30999
}
fn default_max_bridged_calls() -> usize {
    200
}
fn default_media_idle() -> u64 {
    60
}
