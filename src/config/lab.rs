//! `[lab]`: domain-wide settings, the home domain and the transport between the CSCFs (the
//! Mw reference point).

use serde::{Deserialize, Serialize};

/// `[lab]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
