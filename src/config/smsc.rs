//! `[smsc]`: the SMS service centre and its IP-SM-GW (3GPP TS 23.040, TS 24.341): its address,
//! how long it keeps a message it cannot deliver, how often it tries again, its bounds, and the
//! applications that may bind to it over SMPP 3.4.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[smsc]`
///
/// ```toml
/// [smsc]
/// address = "+15559999"
/// validity_secs = 172800
/// retry_secs = 60
/// [[smsc.accounts]]
/// system_id = "lab-app"
/// password = "app-secret"
/// short_codes = ["4000"]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmscSection {
    /// The service centre's number (E.164 with `+`): phones put it in RP-DA and address their
    /// SMS MESSAGEs to it as `tel:` (TS 24.341 §5.3.1.2); it is RP-OA of what it delivers.
    #[serde(default = "default_address")]
    pub address: String,
    /// How long a message the centre cannot deliver is kept when its sender asked for no
    /// validity period (TP-VP, SMPP validity_period), in seconds; then it expires and the
    /// sender gets a report that says so.
    #[serde(default = "default_validity")]
    pub validity_secs: u64,
    /// The longest validity a sender may ask for (longer is cut to this).
    #[serde(default = "default_max_validity")]
    pub max_validity_secs: u64,
    /// A message to a phone that is not reachable is tried again this often (and at once
    /// when the phone registers).
    #[serde(default = "default_retry")]
    pub retry_secs: u64,
    /// How long the centre waits for a phone's RP-ACK after its 200 to the MESSAGE (TS 24.011
    /// TR1N); then the attempt failed and the message waits for the next one.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
    /// Messages kept at once (waiting or being delivered); past it new ones are refused
    /// (RP-ERROR 42 congestion to a phone, ESME_RMSGQFUL to an application).
    #[serde(default = "default_max_stored")]
    pub max_stored: usize,
    /// The most parts one text an application sends is cut into (SMPP message_payload longer
    /// than one SMS: 153 GSM 7-bit or 67 UCS-2 characters a part); 14 parts hold an LMS of
    /// 2,000 GSM 7-bit characters.
    #[serde(default = "default_max_parts")]
    pub max_parts: usize,
    /// Applications (ESMEs) that may bind over SMPP.
    #[serde(default = "default_accounts")]
    pub accounts: Vec<SmppAccountConfig>,
    /// SMPP connections at once (more are closed at accept).
    #[serde(default = "default_smpp_max_connections")]
    pub smpp_max_connections: usize,
    /// deliver_sm outstanding per session, and the requests of one session handled at once.
    #[serde(default = "default_smpp_window")]
    pub smpp_window: usize,
    /// Seconds a connection may take to bind.
    #[serde(default = "default_smpp_bind_timeout")]
    pub smpp_bind_timeout_secs: u64,
    /// Seconds of silence before a session is closed (an enquire_link goes out after a
    /// quarter of it).
    #[serde(default = "default_smpp_idle_timeout")]
    pub smpp_idle_timeout_secs: u64,
    /// Seconds an application has to answer a deliver_sm or enquire_link.
    #[serde(default = "default_smpp_response_timeout")]
    pub smpp_response_timeout_secs: u64,
    /// Failed binds of one system_id (or one address) before binds are refused at once, and
    /// for how long (doubling at each block).
    #[serde(default = "default_smpp_max_bind_failures")]
    pub smpp_max_bind_failures: u32,
    #[serde(default = "default_smpp_bind_block")]
    pub smpp_bind_block_secs: u64,
}

/// One application allowed to bind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppAccountConfig {
    /// Its bind system_id.
    pub system_id: String,
    /// Its bind password (SMPP 3.4: at most 8 characters).
    pub password: String,
    /// Numbers whose SMS from phones go to this application as deliver_sm (MO).
    #[serde(default)]
    pub short_codes: Vec<String>,
}

fn default_address() -> String {
    "+15559999".into()
}
fn default_validity() -> u64 {
    2 * 86_400
}
fn default_max_validity() -> u64 {
    7 * 86_400
}
fn default_retry() -> u64 {
    60
}
fn default_ack_timeout() -> u64 {
    20
}
fn default_max_stored() -> usize {
    100_000
}
fn default_max_parts() -> usize {
    14
}
fn default_accounts() -> Vec<SmppAccountConfig> {
    vec![
        SmppAccountConfig {
            system_id: "lab-app".into(),
            password: "app-pw".into(),
            short_codes: vec!["4000".into()],
        },
        SmppAccountConfig {
            system_id: "ums".into(),
            password: "ums-pw".into(),
            short_codes: vec!["4100".into()],
        },
    ]
}
fn default_smpp_max_connections() -> usize {
    64
}
fn default_smpp_window() -> usize {
    32
}
fn default_smpp_bind_timeout() -> u64 {
    10
}
fn default_smpp_idle_timeout() -> u64 {
    120
}
fn default_smpp_response_timeout() -> u64 {
    10
}
fn default_smpp_max_bind_failures() -> u32 {
    5
}
fn default_smpp_bind_block() -> u64 {
    30
}

impl Default for SmscSection {
    fn default() -> Self {
        SmscSection {
            address: default_address(),
            validity_secs: default_validity(),
            max_validity_secs: default_max_validity(),
            retry_secs: default_retry(),
            ack_timeout_secs: default_ack_timeout(),
            max_stored: default_max_stored(),
            max_parts: default_max_parts(),
            accounts: default_accounts(),
            smpp_max_connections: default_smpp_max_connections(),
            smpp_window: default_smpp_window(),
            smpp_bind_timeout_secs: default_smpp_bind_timeout(),
            smpp_idle_timeout_secs: default_smpp_idle_timeout(),
            smpp_response_timeout_secs: default_smpp_response_timeout(),
            smpp_max_bind_failures: default_smpp_max_bind_failures(),
            smpp_bind_block_secs: default_smpp_bind_block(),
        }
    }
}

impl SmscSection {
    /// The centre's number without its `+`.
    pub fn digits(&self) -> &str {
        self.address.trim_start_matches('+')
    }

    /// Refuses an address that is not a number, zero timers and bounds, and SMPP credentials
    /// SMPP 3.4 cannot carry.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::Invalid(format!("[smsc] {why}")));
        let d = self.digits();
        if d.is_empty() || d.len() > 15 || !d.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!(
                "address '{}' is not a phone number (E.164, e.g. \"+15559999\")",
                self.address
            ));
        }
        for (k, v) in [
            ("validity_secs", self.validity_secs),
            ("max_validity_secs", self.max_validity_secs),
            ("retry_secs", self.retry_secs),
            ("ack_timeout_secs", self.ack_timeout_secs),
            ("smpp_bind_timeout_secs", self.smpp_bind_timeout_secs),
            ("smpp_idle_timeout_secs", self.smpp_idle_timeout_secs),
            (
                "smpp_response_timeout_secs",
                self.smpp_response_timeout_secs,
            ),
        ] {
            if v == 0 {
                return bad(format!("{k} must be at least 1"));
            }
        }
        if self.max_stored == 0 || self.smpp_max_connections == 0 {
            return bad("max_stored and smpp_max_connections must be at least 1".into());
        }
        if !(1..=255).contains(&self.max_parts) {
            return bad(format!("max_parts is {}; 1 to 255", self.max_parts));
        }
        if !(1..=1000).contains(&self.smpp_window) {
            return bad(format!("smpp_window is {}; 1 to 1000", self.smpp_window));
        }
        for a in &self.accounts {
            if a.system_id.is_empty() || a.system_id.len() > 15 || a.password.len() > 8 {
                return bad(format!(
                    "account '{}': SMPP 3.4 carries a system_id of 1 to 15 characters and a password of at most 8",
                    a.system_id
                ));
            }
            for c in &a.short_codes {
                if c.is_empty()
                    || !c
                        .trim_start_matches('+')
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                {
                    return bad(format!(
                        "account '{}': short code '{c}' is not digits",
                        a.system_id
                    ));
                }
            }
        }
        Ok(())
    }
}
