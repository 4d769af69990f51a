//! `[im]`: the O-IM / T-IM messaging servers: store-and-forward lifetime, history, and the
//! bounds of their MSRP relays (RFC 4975).

use serde::{Deserialize, Serialize};

/// `[im]`: the messaging servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImSection {
    /// Seconds T-IM keeps a message nobody collected before reporting it failed.
    #[serde(default = "default_ttl")]
    pub store_ttl_secs: u64,
    /// Largest chat message accepted over MSRP (bytes; larger gets MSRP 413).
    #[serde(default = "default_max_msg")]
    pub max_message_size: u64,
    /// Largest file sent over MSRP (RFC 5547) through the relays, which stream it chunk by
    /// chunk (bytes; 100 MiB; at most 4 GiB, as `[content] max_file_size`). A larger offer
    /// gets SIP 413 at O-IM, a chunk whose Byte-Range goes past it MSRP 413.
    #[serde(default = "default_max_file")]
    pub max_file_size: u64,
    /// Messages T-IM keeps per conversation for history (the oldest delivered ones go;
    /// 0 keeps all).
    #[serde(default = "default_history")]
    pub history_per_conversation: usize,
    /// MSRP (RFC 4975 §7.1.1): a partial message that gets no chunk for this long is dropped
    /// (its sender gets a REPORT with Status 408).
    #[serde(default = "default_partial_timeout")]
    pub msrp_partial_timeout_secs: u64,
    /// Partial messages one MSRP connection may have open at once (413 for one more).
    #[serde(default = "default_max_partials")]
    pub msrp_max_partials_per_conn: usize,
    /// Bytes of partial messages one MSRP connection may have buffered (413 past it).
    #[serde(default = "default_partial_bytes")]
    pub msrp_max_partial_bytes_per_conn: u64,
    /// Bytes queued for an MSRP peer (or a leg not yet up) that does not read; past it the
    /// connection (or leg) is dropped.
    #[serde(default = "default_queued_bytes")]
    pub msrp_max_queued_bytes: usize,
    /// An MSRP connection that binds no session for this long is closed.
    #[serde(default = "default_msrp_idle")]
    pub msrp_idle_timeout_secs: u64,
    /// MSRP connections each listener (O-IM, T-IM) holds at once; more are closed at accept.
    #[serde(default = "default_msrp_conns")]
    pub msrp_max_connections: usize,
}

impl ImSection {
    /// The MSRP bounds of O-IM's and T-IM's relays.
    pub fn msrp_limits(&self) -> crate::msrp::limits::MsrpLimits {
        crate::msrp::limits::MsrpLimits {
            max_size: self.max_message_size,
            max_file_size: self.max_file_size,
            partial_timeout: std::time::Duration::from_secs(self.msrp_partial_timeout_secs),
            max_partials_per_conn: self.msrp_max_partials_per_conn,
            max_partial_bytes_per_conn: self.msrp_max_partial_bytes_per_conn,
            max_queued_bytes: self.msrp_max_queued_bytes,
            idle_timeout: std::time::Duration::from_secs(self.msrp_idle_timeout_secs),
            max_connections: self.msrp_max_connections,
        }
    }
}

fn default_history() -> usize {
    1000
}
fn default_partial_timeout() -> u64 {
    30
}
fn default_max_partials() -> usize {
    32
}
fn default_partial_bytes() -> u64 {
    4 << 20
}
fn default_queued_bytes() -> usize {
    4 << 20
}
fn default_msrp_idle() -> u64 {
    30
}
fn default_msrp_conns() -> usize {
    10_000
}

fn default_ttl() -> u64 {
    7 * 24 * 3600
}
fn default_max_msg() -> u64 {
    1 << 20
}
fn default_max_file() -> u64 {
    100 << 20
}

impl ImSection {
    /// Refuses a `max_file_size` of 0 or past the 4 GiB cap.
    pub fn check(&self) -> Result<(), super::ConfigError> {
        let cap = super::MAX_FILE_SIZE_CAP;
        if self.max_file_size == 0 || self.max_file_size > cap {
            return Err(super::ConfigError::Invalid(format!(
                "[im] max_file_size is {}; it must be 1 to {cap} (4 GiB)",
                self.max_file_size
            )));
        }
        Ok(())
    }
}

impl Default for ImSection {
    fn default() -> Self {
        ImSection {
            store_ttl_secs: default_ttl(),
            max_message_size: default_max_msg(),
            max_file_size: default_max_file(),
            history_per_conversation: default_history(),
            msrp_partial_timeout_secs: default_partial_timeout(),
            msrp_max_partials_per_conn: default_max_partials(),
            msrp_max_partial_bytes_per_conn: default_partial_bytes(),
            msrp_max_queued_bytes: default_queued_bytes(),
            msrp_idle_timeout_secs: default_msrp_idle(),
            msrp_max_connections: default_msrp_conns(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LabConfig;

    #[test]
    fn max_file_size_defaults_to_100_mib_and_is_checked() {
        let c = LabConfig::from_toml_str("").unwrap();
        assert_eq!(c.im.max_file_size, 100 * 1024 * 1024);
        assert_eq!(c.im.msrp_limits().max_file_size, 100 * 1024 * 1024);
        assert_eq!(
            c.im.msrp_limits().max_size,
            1 << 20,
            "chat keeps its own limit"
        );
        let c = LabConfig::from_toml_str("[im]\nmax_file_size = 5000\n").unwrap();
        assert_eq!(c.im.msrp_limits().max_file_size, 5000);
        for bad in [
            "[im]\nmax_file_size = 0\n",
            "[im]\nmax_file_size = 4294967297\n",
        ] {
            let e = LabConfig::from_toml_str(bad).unwrap_err().to_string();
            assert!(e.contains("max_file_size"), "{e}");
        }
    }
}
