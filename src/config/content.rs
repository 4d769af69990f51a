//! `[content]`: the FT content server CS (GSMA RCC.07 §3.5.4.8 File Transfer via HTTP): its
//! size limits, how long files stay, its bounds and timeouts, and the secret of its grant API.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The largest `max_file_size` allowed: 4 GiB. RCC.07 clients allow "up to 100 MB"; the lab
/// goes further for big-file tests (`scripts/bench-ft.sh` moves a 1 GiB file), since files
/// stream to and from disk and never sit whole in memory.
pub const MAX_FILE_SIZE_CAP: u64 = 4 * 1024 * 1024 * 1024;

/// `[content]`
///
/// ```toml
/// [content]
/// auth = true
/// max_file_size = 3145728
/// max_thumbnail_size = 51200
/// validity_secs = 604800
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSection {
    /// Digest authentication against the HSS (RCC.07 §3.5.4.8.2; on by default). Off, an
    /// empty POST gets 204 and everyone may upload and download: a teaching mode, no access
    /// control.
    #[serde(default = "yes")]
    pub auth: bool,
    /// The largest file, in bytes (3 MiB, rcsjta's default); at most 4 GiB. Larger: 413.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// The largest thumbnail, in bytes (50 KiB, as clients send them). Larger: 413.
    #[serde(default = "default_max_thumbnail_size")]
    pub max_thumbnail_size: u64,
    /// How long an uploaded file stays (the file-info's `until`); then it is deleted.
    #[serde(default = "default_validity")]
    pub validity_secs: u64,
    /// How often the sweep deletes expired files and abandoned uploads.
    #[serde(default = "default_sweep")]
    pub sweep_secs: u64,
    /// How long an upload cut short is kept for its client to resume it.
    #[serde(default = "default_pending")]
    pub pending_secs: u64,
    /// Where files go; empty: `content/` under the lab's data dir.
    #[serde(default)]
    pub dir: String,
    /// Files (with their thumbnails) kept at once; more uploads get 507.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    /// Uploads under way or waiting to be resumed at once; more get 503.
    #[serde(default = "default_max_pending")]
    pub max_pending_uploads: usize,
    /// Users a file may be granted to (its recipients).
    #[serde(default = "default_max_grants")]
    pub max_grants_per_file: usize,
    /// Digest nonces outstanding at once (the oldest go first).
    #[serde(default = "default_max_nonces")]
    pub max_nonces: usize,
    /// How long a nonce may be used (then `stale=true` and a new one).
    #[serde(default = "default_nonce_secs")]
    pub nonce_secs: u64,
    /// Connections served at once; one more gets 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection on which no byte moves for this long is closed (a stalled upload keeps
    /// what arrived, for resume).
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// The longest a whole request body may take (a 100 MB upload on a slow link).
    #[serde(default = "default_body")]
    pub body_timeout_secs: u64,
    /// The bearer secret of `POST /grants` (the messaging servers' internal API). Empty: a
    /// random one in `grants.token` beside the files (mode 0600), made at the first start.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grant_secret: String,
    /// The base of the URLs in file-info documents; empty: `http://<bound address>`.
    #[serde(default)]
    pub public_url: String,
}

fn yes() -> bool {
    true
}
fn default_max_file_size() -> u64 {
    3 * 1024 * 1024
}
fn default_max_thumbnail_size() -> u64 {
    50 * 1024
}
fn default_validity() -> u64 {
    7 * 24 * 3600
}
fn default_sweep() -> u64 {
    60
}
fn default_pending() -> u64 {
    3600
}
fn default_max_files() -> usize {
    100_000
}
fn default_max_pending() -> usize {
    64
}
fn default_max_grants() -> usize {
    100
}
fn default_max_nonces() -> usize {
    10_000
}
fn default_nonce_secs() -> u64 {
    300
}
fn default_max_connections() -> usize {
    256
}
fn default_idle() -> u64 {
    30
}
fn default_body() -> u64 {
    600
}

impl Default for ContentSection {
    fn default() -> Self {
        ContentSection {
            auth: true,
            max_file_size: default_max_file_size(),
            max_thumbnail_size: default_max_thumbnail_size(),
            validity_secs: default_validity(),
            sweep_secs: default_sweep(),
            pending_secs: default_pending(),
            dir: String::new(),
            max_files: default_max_files(),
            max_pending_uploads: default_max_pending(),
            max_grants_per_file: default_max_grants(),
            max_nonces: default_max_nonces(),
            nonce_secs: default_nonce_secs(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle(),
            body_timeout_secs: default_body(),
            grant_secret: String::new(),
            public_url: String::new(),
        }
    }
}

impl ContentSection {
    /// Refuses sizes out of range and zero bounds or timeouts.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_file_size == 0 || self.max_file_size > MAX_FILE_SIZE_CAP {
            return Err(ConfigError::Invalid(format!(
                "[content] max_file_size is {}; it must be 1 to {MAX_FILE_SIZE_CAP} (4 GiB)",
                self.max_file_size
            )));
        }
        if self.max_thumbnail_size > self.max_file_size {
            return Err(ConfigError::Invalid(
                "[content] max_thumbnail_size must not be above max_file_size".into(),
            ));
        }
        let zero = [
            ("validity_secs", self.validity_secs as usize),
            ("sweep_secs", self.sweep_secs as usize),
            ("pending_secs", self.pending_secs as usize),
            ("max_files", self.max_files),
            ("max_pending_uploads", self.max_pending_uploads),
            ("max_grants_per_file", self.max_grants_per_file),
            ("max_nonces", self.max_nonces),
            ("nonce_secs", self.nonce_secs as usize),
            ("max_connections", self.max_connections),
            ("idle_timeout_secs", self.idle_timeout_secs as usize),
            ("body_timeout_secs", self.body_timeout_secs as usize),
        ];
        if let Some((k, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!(
                "[content] {k} must be above 0"
            )));
        }
        if !self.grant_secret.is_empty() && self.grant_secret.len() < 16 {
            return Err(ConfigError::Invalid(
                "[content] grant_secret must be at least 16 characters (or empty: a random one)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LabConfig;

    #[test]
    fn content_defaults_and_checks() {
        let c = LabConfig::default_lab();
        assert!(c.content.auth);
        assert_eq!(c.content.max_file_size, 3 * 1024 * 1024);
        assert_eq!(c.content.max_thumbnail_size, 50 * 1024);
        assert_eq!(c.content.validity_secs, 7 * 24 * 3600);
        assert_eq!(c.nodes.content_or_default().port(), 8083);
        let moved = LabConfig::from_toml_str("[nodes]\nwebrsf = \"127.0.0.2:9000\"\n").unwrap();
        assert_eq!(moved.nodes.content_or_default().to_string(), "127.0.0.2:0");
        let c = LabConfig::from_toml_str("[content]\nmax_file_size = 104857600\n").unwrap();
        assert_eq!(c.content.max_file_size, 104_857_600);
        for bad in [
            "[content]\nmax_file_size = 4294967297\n",
            "[content]\nmax_file_size = 0\n",
            "[content]\nsweep_secs = 0\n",
            "[content]\ngrant_secret = \"short\"\n",
            "[content]\nmax_thumbnail_size = 99999999999\n",
            "[content]\nmax_file_sise = 1\n",
        ] {
            assert!(LabConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }
}
