//! `[diameter]`: how the CSCFs reach the HSS over Cx and keep the link up: its address, the
//! watchdog (RFC 3539), reconnect backoff and request timeouts (RFC 6733 §5.6).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[diameter]`: how the CSCFs reach the HSS and keep the link up (RFC 6733 §5.6, RFC 3539).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiameterSection {
    /// Where the CSCFs reach the HSS. Unset: the lab's own HSS (`[nodes] hss`); set it for an
    /// external HSS or a proxy in front of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hss_address: Option<SocketAddr>,
    /// RFC 3539 Tw: a DWR after this much quiet; no DWA for two more Tw closes the connection.
    #[serde(default = "default_watchdog")]
    pub watchdog_secs: u64,
    /// First reconnect delay after a failure; it doubles on each failed attempt...
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// ...up to this (RFC 6733 Tc, 30 s in the RFC).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Allowed for the TCP connect and for the CEA.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// How long a Cx request waits for its answer.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
}

fn default_watchdog() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    2000
}
fn default_request_timeout() -> u64 {
    5000
}

impl Default for DiameterSection {
    fn default() -> Self {
        DiameterSection {
            hss_address: None,
            watchdog_secs: default_watchdog(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_ms: default_reconnect_max(),
            connect_timeout_ms: default_connect_timeout(),
            request_timeout_ms: default_request_timeout(),
        }
    }
}

impl DiameterSection {
    /// The state machine's timers (zero values are raised to 1 ms / 1 s).
    pub fn timers(&self) -> crate::diameter::client::PeerTimers {
        let ms = |v: u64| std::time::Duration::from_millis(v.max(1));
        crate::diameter::client::PeerTimers {
            tw: std::time::Duration::from_secs(self.watchdog_secs.max(1)),
            tc_min: ms(self.reconnect_min_ms),
            tc_max: ms(self.reconnect_max_ms.max(self.reconnect_min_ms)),
            ts: ms(self.connect_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LabConfig;

    #[test]
    fn diameter_section_defaults_and_overrides() {
        let d = LabConfig::default_lab().diameter;
        assert_eq!(d.hss_address, None);
        let t = d.timers();
        assert_eq!(
            (t.tw.as_secs(), t.tc_min.as_millis(), t.tc_max.as_millis()),
            (30, 500, 10_000)
        );
        let c = LabConfig::from_toml_str(
            "[diameter]\nhss_address = \"127.0.0.1:3999\"\nreconnect_max_ms = 2000\n",
        )
        .expect("valid");
        assert_eq!(c.diameter.hss_address.unwrap().port(), 3999);
        assert_eq!(c.diameter.timers().tc_max.as_millis(), 2000);
        assert_eq!(c.diameter.watchdog_secs, 30, "the rest keep their defaults");
    }
}
