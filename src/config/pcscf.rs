//! `[pcscf]`: P-CSCF behaviour (the reg-event subscription of TS 24.229 §5.2.3).

use serde::{Deserialize, Serialize};

/// `[pcscf]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcscfSection {
    /// Subscribe to each registered user's reg event (TS 24.229 §5.2.3).
    #[serde(default = "yes")]
    pub subscribe_reg: bool,
}

impl Default for PcscfSection {
    fn default() -> Self {
        PcscfSection {
            subscribe_reg: true,
        }
    }
}

fn yes() -> bool {
    true
}
