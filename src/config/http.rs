//! `[http]`: what every HTTP listener of the lab (WebRSF, the HSS admin API) allows one
//! client: head, body and idle timeouts, connections at once (RFC 9112 §9.8).

use serde::{Deserialize, Serialize};

/// `[http]`: what every HTTP listener of the lab (WebRSF, the HSS admin API) allows one
/// client, each listener on its own (RFC 9112 §9.8 lets a server close idle connections).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Time a client has to send a whole request head, counted from when the connection
    /// starts waiting for one: a new connection, or a keep-alive one after its last response
    /// (so this is also how long an idle keep-alive connection stays open).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// A connection on which no byte moved either way for this long is closed (a stalled
    /// upload, a client that stops reading, a silent WebSocket). WebRSF uses at least twice
    /// `[webrsf] keepalive_secs`, so keep-alives hold idle notification channels open.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Time a client has to send a whole request body once its head arrived (else 408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Connections one listener serves at once; one more gets `503` and is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    1024
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            header_timeout_ms: default_header_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            body_timeout_ms: default_body_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LabConfig;

    #[test]
    fn http_limits_have_defaults_and_are_checked() {
        let c = LabConfig::default_lab();
        assert_eq!(c.http.max_connections, 1024);
        assert_eq!(c.webrsf.token_idle_secs, 3600);
        let c = LabConfig::from_toml_str("[http]\nheader_timeout_ms = 300\n").expect("valid");
        assert_eq!(
            (c.http.header_timeout_ms, c.http.idle_timeout_ms),
            (300, 60_000)
        );
        for bad in [
            "[http]\nmax_connections = 0\n",
            "[http]\nheader_timeot_ms = 5\n",
            "[webrsf]\nmax_user = 5\n",
        ] {
            assert!(LabConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }
}
