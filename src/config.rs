//! The lab's topology, timers and subscribers, from TOML.
//!
//! The default lab (`labs/default.toml`) is compiled in; a `--config` file is merged over it
//! table by table, so a file only needs to say what it changes (arrays replace whole).

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The compiled-in default lab.
pub const DEFAULT_LAB: &str = include_str!("../labs/default.toml");

/// Errors loading a lab file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or does not match the lab schema.
    #[error("invalid lab configuration: {0}")]
    Invalid(String),
}

/// A whole lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabConfig {
    /// Domain-wide settings.
    pub lab: LabSection,
    /// Listening addresses.
    pub nodes: Nodes,
    /// HSS identity.
    pub hss: HssSection,
    /// S-CSCF registrar limits.
    pub registrar: Registrar,
    /// Authentication policy.
    pub auth: AuthSection,
    /// Subscribers provisioned at start-up (existing ones in the store are kept as they are).
    #[serde(default)]
    pub subscribers: Vec<SubscriberConfig>,
}

/// `[lab]`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSection {
    /// Home domain, e.g. `ims.lab`.
    pub domain: String,
    /// Transport between the CSCFs (the Mw reference point): `tcp` (default: no
    /// retransmissions, no lingering transactions) or `udp`.
    #[serde(default = "default_mw_transport")]
    pub mw_transport: String,
}

fn default_mw_transport() -> String {
    "tcp".into()
}

/// `[nodes]`: where each node listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nodes {
    /// P-CSCF SIP (UDP and TCP).
    pub pcscf: SocketAddr,
    /// I-CSCF SIP.
    pub icscf: SocketAddr,
    /// S-CSCF SIP.
    pub scscf: SocketAddr,
    /// HSS Diameter.
    pub hss: SocketAddr,
    /// HSS provisioning REST API.
    pub admin: SocketAddr,
}

/// `[hss]`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HssSection {
    /// Diameter Origin-Host of the HSS.
    pub origin_host: String,
    /// Diameter Origin-Realm of the HSS.
    pub origin_realm: String,
}

/// `[registrar]`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registrar {
    /// Granted when the REGISTER asks for nothing.
    pub default_expires: u32,
    /// Shorter requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are cut to this.
    pub max_expires: u32,
}

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSection {
    /// `digest` or `aka`: used when the UE gives no hint.
    pub default_scheme: String,
}

/// One `[[subscribers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberConfig {
    /// Private identity; defaults to `user@domain` of the first public identity.
    #[serde(default)]
    pub impi: Option<String>,
    /// Public identities, the first being the default one (sip: and tel: URIs).
    pub impu: Vec<String>,
    /// Digest password.
    pub password: String,
    /// AKA subscriber key K, hex.
    #[serde(default)]
    pub k: Option<String>,
    /// AKA OPc, hex.
    #[serde(default)]
    pub opc: Option<String>,
    /// AKA AMF, hex (2 bytes).
    #[serde(default)]
    pub amf: Option<String>,
    /// AKA sequence number to start from.
    #[serde(default)]
    pub sqn: Option<u64>,
}

impl LabConfig {
    /// The compiled-in default lab.
    pub fn default_lab() -> LabConfig {
        // The embedded file is checked by a unit test; failing here would be a build defect.
        Self::from_toml_str("").unwrap_or_else(|e| panic!("embedded default lab is invalid: {e}"))
    }

    /// The default lab with `text` merged over it.
    pub fn from_toml_str(text: &str) -> Result<LabConfig, ConfigError> {
        let mut base: toml::Value = toml::from_str(DEFAULT_LAB)
            .map_err(|e| ConfigError::Invalid(format!("default lab: {e}")))?;
        let over: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        merge(&mut base, over);
        base.try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))
    }

    /// Loads a lab file merged over the default lab.
    pub fn load(path: &Path) -> Result<LabConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The same lab with every port set to 0 (ephemeral), as tests use it.
    pub fn with_ephemeral_ports(mut self) -> LabConfig {
        for a in [
            &mut self.nodes.pcscf,
            &mut self.nodes.icscf,
            &mut self.nodes.scscf,
            &mut self.nodes.hss,
            &mut self.nodes.admin,
        ] {
            a.set_port(0);
        }
        self
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, everything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lab_parses_with_three_subscribers() {
        let c = LabConfig::default_lab();
        assert_eq!(c.lab.domain, "ims.lab");
        assert_eq!(c.nodes.pcscf.port(), 5060);
        let users: Vec<_> = c.subscribers.iter().map(|s| s.impu[0].clone()).collect();
        assert_eq!(
            users,
            ["sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"]
        );
    }

    #[test]
    fn override_merges_tables_and_replaces_arrays() {
        let c = LabConfig::from_toml_str(
            "[nodes]\npcscf = \"127.0.0.1:6060\"\n[[subscribers]]\nimpu=[\"sip:x@ims.lab\"]\npassword=\"p\"\n",
        )
        .expect("valid");
        assert_eq!(c.nodes.pcscf.port(), 6060);
        assert_eq!(
            c.nodes.icscf.port(),
            5070,
            "untouched keys keep their defaults"
        );
        assert_eq!(c.subscribers.len(), 1);
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        assert!(LabConfig::from_toml_str("[nodes]\npcscf = 5").is_err());
        assert!(LabConfig::from_toml_str("not toml [").is_err());
    }
}
