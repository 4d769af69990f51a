//! `[trace]`: the flight recorder's bounds and the HEPv3 collector it feeds live.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[trace]`: the flight recorder (`rcslab up --trace`, tests) is a ring: past these bounds the
/// oldest messages go first, counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSection {
    /// Messages kept.
    #[serde(default = "default_trace_capacity")]
    pub capacity: usize,
    /// Message bytes kept.
    #[serde(default = "default_trace_bytes")]
    pub max_bytes: usize,
    /// `HOST:PORT` of a HEPv3 collector (sngrep, Homer) that gets every SIP and Diameter
    /// message live, as `rcslab up --hep` does (the flag wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hep: Option<String>,
}

fn default_trace_capacity() -> usize {
    100_000
}
fn default_trace_bytes() -> usize {
    256 << 20
}

impl Default for TraceSection {
    fn default() -> Self {
        TraceSection {
            capacity: default_trace_capacity(),
            max_bytes: default_trace_bytes(),
            hep: None,
        }
    }
}

impl TraceSection {
    /// The recorder's limits.
    pub fn limits(&self) -> crate::trace::TraceLimits {
        crate::trace::TraceLimits {
            capacity: self.capacity.max(1),
            max_bytes: self.max_bytes.max(1),
        }
    }

    /// The HEP collector of `hep` (checked when the lab file is read).
    pub fn hep_target(&self) -> Option<SocketAddr> {
        self.hep
            .as_deref()
            .and_then(|s| crate::trace::hep::parse_target(s).ok())
    }
}
