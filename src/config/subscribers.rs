//! `[[subscribers]]`: the subscribers provisioned into the HSS at start-up (identities,
//! Digest password, AKA keys, their own iFC).

use serde::{Deserialize, Serialize};

use super::IfcConfig;

/// One `[[subscribers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// This subscriber's iFC; absent means the lab's `default_ifc`.
    #[serde(default)]
    pub ifc: Option<Vec<IfcConfig>>,
}
