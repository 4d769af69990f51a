//! `[registrar]`: the registration lifetimes the S-CSCF grants (RFC 3261 §10.3; TS 24.229
//! §5.4.1.2).

use serde::{Deserialize, Serialize};

/// `[registrar]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registrar {
    /// Granted when the REGISTER asks for nothing.
    pub default_expires: u32,
    /// Shorter requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are cut to this.
    pub max_expires: u32,
}
