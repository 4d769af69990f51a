//! `[hss]`, with `[[hss.peers]]` and `[hss.server_capabilities]`: the HSS's Diameter identity,
//! the peers it accepts (RFC 6733 §5.3), and what it answers for a user no S-CSCF serves yet
//! (TS 29.228 §6.1.1.1, TS 29.229 §6.3.4 Server-Capabilities).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Assignment, ConfigError};

/// `[hss]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HssSection {
    /// Diameter Origin-Host of the HSS.
    pub origin_host: String,
    /// Diameter Origin-Realm of the HSS.
    pub origin_realm: String,
    /// Server-Name answered in UAA/LIA for a user no S-CSCF serves yet (TS 29.228 §6.1.1.1),
    /// e.g. a foreign S-CSCF's `sip:127.0.0.3:6060`. Unset: the lab's own S-CSCF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scscf_name: Option<String>,
    /// Answer Server-Capabilities instead (the I-CSCF picks an S-CSCF from its own list);
    /// used when `scscf_name` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_capabilities: Option<ServerCapabilitiesSection>,
    /// How a user no S-CSCF serves yet gets one when the lab has several ([`Assignment`]):
    /// `name` (Server-Name, one of the lab's S-CSCFs by a hash of the IMPI) or `capabilities`
    /// (Server-Capabilities from `server_capabilities`; the I-CSCF chooses). Unset: as
    /// `scscf_name` / `server_capabilities` say, else the first S-CSCF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// The Diameter peers the HSS accepts (RFC 6733 §5.3; others get 3010 DIAMETER_UNKNOWN_PEER).
    /// Empty: the lab's own I-CSCF and S-CSCF (`icscf.<domain>`, `scscf.<domain>`) from their
    /// nodes' addresses, any loopback address when those are on loopback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<HssPeer>,
}

/// One `[[hss.peers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HssPeer {
    /// The peer's Origin-Host.
    pub origin_host: String,
    /// Where it connects from: an IP address or a network (`127.0.0.0/8`).
    pub address: String,
}

/// `[hss.server_capabilities]` (TS 29.229 §6.3.4 Server-Capabilities).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCapabilitiesSection {
    /// Mandatory-Capability values.
    #[serde(default)]
    pub mandatory: Vec<u32>,
    /// Optional-Capability values.
    #[serde(default)]
    pub optional: Vec<u32>,
    /// Server-Name values (preferred S-CSCFs).
    #[serde(default)]
    pub server_names: Vec<String>,
}

impl HssSection {
    /// The Diameter peers the HSS accepts: `[[hss.peers]]`, or the lab's own I-CSCF and S-CSCF
    /// (their Origin-Hosts, from their nodes' addresses; from any loopback address when those
    /// are on loopback, as Kamailio CSCFs on 127.0.0.x are in labs/interop).
    pub fn peer_policy(
        &self,
        domain: &str,
        icscf: SocketAddr,
        scscf: SocketAddr,
    ) -> Result<crate::diameter::peer_policy::PeerPolicy, ConfigError> {
        self.peer_policy_with(domain, icscf, &[(format!("scscf.{domain}"), scscf)])
    }

    /// [`HssSection::peer_policy`] for a lab with several S-CSCFs and other Cx clients (the
    /// content server): (Origin-Host, address) each.
    pub fn peer_policy_with(
        &self,
        domain: &str,
        icscf: SocketAddr,
        others: &[(String, SocketAddr)],
    ) -> Result<crate::diameter::peer_policy::PeerPolicy, ConfigError> {
        use crate::diameter::peer_policy::{parse_network, AllowedPeer, PeerPolicy};
        if !self.peers.is_empty() {
            let list = self
                .peers
                .iter()
                .map(|p| {
                    Ok(AllowedPeer {
                        origin_host: p.origin_host.clone(),
                        network: parse_network(&p.address)
                            .map_err(|e| ConfigError::Invalid(format!("[[hss.peers]]: {e}")))?,
                    })
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            return Ok(PeerPolicy::only(list));
        }
        let from = |a: SocketAddr| {
            if a.ip().is_loopback() || a.ip().is_unspecified() {
                parse_network(if a.is_ipv4() {
                    "127.0.0.0/8"
                } else {
                    "::1/128"
                })
            } else {
                parse_network(&a.ip().to_string())
            }
            .map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        let mut allowed = vec![AllowedPeer {
            origin_host: format!("icscf.{domain}"),
            network: from(icscf)?,
        }];
        for (name, addr) in others {
            allowed.push(AllowedPeer {
                origin_host: name.clone(),
                network: from(*addr)?,
            });
        }
        Ok(PeerPolicy::only(allowed))
    }

    /// What the HSS names for a first registration; `own_scscfs` are the Server-Names of the
    /// lab's S-CSCFs, the first S-CSCF first.
    pub fn scscf_selection(&self, own_scscfs: &[String]) -> ScscfSelection {
        use ScscfSelection as S;
        let own_scscf = own_scscfs.first().cloned().unwrap_or_default();
        match self.assignment {
            Some(Assignment::Name) => return S::ByImpi(own_scscfs.to_vec()),
            Some(Assignment::Capabilities) => {
                let c = self.server_capabilities.clone().unwrap_or_default();
                return S::Capabilities(crate::diameter::cx::ServerCapabilities {
                    mandatory: c.mandatory,
                    optional: c.optional,
                    server_names: c.server_names,
                });
            }
            None => {}
        }
        match (&self.scscf_name, &self.server_capabilities) {
            (Some(n), _) if !n.trim().is_empty() => S::ServerName(n.trim().to_string()),
            (_, Some(c)) => S::Capabilities(crate::diameter::cx::ServerCapabilities {
                mandatory: c.mandatory.clone(),
                optional: c.optional.clone(),
                server_names: c.server_names.clone(),
            }),
            _ => S::ServerName(own_scscf),
        }
    }
}

/// What the HSS answers for a user no S-CSCF serves yet (TS 29.228 §6.1.1.1 UAR, §6.1.4.1
/// LIR): TS 29.229 §6.1.2/§6.1.6 allow either a Server-Name or Server-Capabilities, from which
/// the I-CSCF picks an S-CSCF itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScscfSelection {
    /// Server-Name: this S-CSCF's SIP URI, which the I-CSCF uses as its next hop.
    ServerName(String),
    /// Server-Capabilities.
    Capabilities(crate::diameter::cx::ServerCapabilities),
    /// Server-Name: one of these S-CSCFs, chosen by [`crate::diameter::cx::pick_by_key`] over the IMPI, so a user
    /// gets the same one at every first registration and users spread over all of them.
    ByImpi(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabConfig;

    #[test]
    fn hss_names_its_own_scscf_a_configured_one_or_capabilities() {
        use ScscfSelection as S;
        let own = "sip:127.0.0.1:5080;transport=tcp";
        let sel = |extra: &str| {
            LabConfig::from_toml_str(extra)
                .expect("valid")
                .hss
                .scscf_selection(&[own.to_string()])
        };
        assert_eq!(sel(""), S::ServerName(own.into()));
        assert_eq!(
            sel("[hss]\nscscf_name = \"sip:127.0.0.3:6060\"\n"),
            S::ServerName("sip:127.0.0.3:6060".into())
        );
        let S::Capabilities(c) = sel("[hss]\nserver_capabilities = { optional = [1, 2] }\n") else {
            panic!("capabilities expected");
        };
        assert_eq!((c.mandatory, c.optional), (vec![], vec![1, 2]));
        // A name wins over capabilities; the HSS section still has its identity.
        let both = "[hss]\nscscf_name = \"sip:s\"\nserver_capabilities = { mandatory = [1] }\n";
        assert_eq!(sel(both), S::ServerName("sip:s".into()));
        assert_eq!(
            LabConfig::from_toml_str(both).unwrap().hss.origin_host,
            "hss.ims.lab"
        );
    }
}
