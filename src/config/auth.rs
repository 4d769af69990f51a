//! `[auth]`: the S-CSCF's authentication, the scheme it challenges with (Digest or AKA) and
//! how failed answers block an IMPI or a UE address.

use serde::{Deserialize, Serialize};

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `digest` or `aka`: used when the UE gives no hint.
    pub default_scheme: String,
    /// Failed answers of one IMPI within `failure_window_secs` that block it.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Failed answers from one UE address within the window that block the address.
    #[serde(default = "default_max_failures_per_address")]
    pub max_failures_per_address: u32,
    /// How long failed answers are remembered.
    #[serde(default = "default_failure_window")]
    pub failure_window_secs: u64,
    /// The first block (403 with Retry-After); each further one doubles.
    #[serde(default = "default_block")]
    pub block_secs: u64,
    /// The longest block.
    #[serde(default = "default_max_block")]
    pub max_block_secs: u64,
}

/// Limits, from the lab file's `[auth]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures of one IMPI inside `window` that block it.
    pub max_failures: u32,
    /// Failures from one address inside `window` that block it (higher: UEs share addresses,
    /// on a lab's loopback all of them do).
    pub max_failures_per_address: u32,
    /// How long failures are remembered.
    pub window: std::time::Duration,
    /// The first block; each further one doubles.
    pub backoff: std::time::Duration,
    /// The longest block.
    pub max_backoff: std::time::Duration,
    /// Entries per table at most.
    pub max_entries: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            max_failures: 4,
            max_failures_per_address: 16,
            window: std::time::Duration::from_secs(600),
            backoff: std::time::Duration::from_secs(30),
            max_backoff: std::time::Duration::from_secs(900),
            max_entries: 100_000,
        }
    }
}

impl AuthSection {
    /// The S-CSCF's failed-authentication limits.
    pub fn limits(&self) -> AuthLimits {
        AuthLimits {
            max_failures: self.max_failures.max(1),
            max_failures_per_address: self.max_failures_per_address.max(1),
            window: std::time::Duration::from_secs(self.failure_window_secs),
            backoff: std::time::Duration::from_secs(self.block_secs),
            max_backoff: std::time::Duration::from_secs(self.max_block_secs.max(self.block_secs)),
            ..Default::default()
        }
    }
}

fn default_max_failures() -> u32 {
    4
}
fn default_max_failures_per_address() -> u32 {
    16
}
fn default_failure_window() -> u64 {
    600
}
fn default_block() -> u64 {
    30
}
fn default_max_block() -> u64 {
    900
}
