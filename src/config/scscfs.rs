//! Several S-CSCFs behind one I-CSCF (TS 29.228 §6.1.1, §6.1.2; TS 24.229 §5.3.1.2): the
//! `[scscf]` section (what the first S-CSCF, at `[nodes] scscf`, offers), the `[[scscfs]]`
//! list of further S-CSCFs, and `[hss] assignment`, how a user no S-CSCF serves yet gets one.
//!
//! ```toml
//! [hss]
//! assignment = "name"            # or "capabilities" (then [hss] server_capabilities)
//! [scscf]
//! capabilities = [1]
//! [[scscfs]]
//! name = "scscf2.ims.lab"        # its Diameter Origin-Host
//! address = "127.0.0.1:5082"     # its SIP address (UDP and TCP)
//! capabilities = [1, 2]          # what it offers, for the I-CSCF's choice
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, LabConfig};

/// Most `[[scscfs]]` entries: `rcslab run scscf2` … `scscf9`, ladder names `S-CSCF2` …
pub const MAX_MORE_SCSCFS: usize = 8;

/// `[scscf]`: the first S-CSCF (at `[nodes] scscf`, Origin-Host `scscf.<domain>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScscfSection {
    /// Capabilities it offers (TS 29.229 §6.3.4 Mandatory-/Optional-Capability values), for
    /// the I-CSCF's choice when the HSS answers Server-Capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<u32>,
}

/// One `[[scscfs]]` entry: an S-CSCF besides the first, run by `rcslab up` and by
/// `rcslab run scscfN` (N = 2 for the first entry, 3 for the next…).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoreScscf {
    /// Its Diameter Origin-Host towards the HSS, e.g. `scscf2.ims.lab`; the lab's resolver
    /// also names its address so.
    pub name: String,
    /// Its SIP address (UDP and TCP).
    pub address: SocketAddr,
    /// Capabilities it offers (see [`ScscfSection::capabilities`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<u32>,
}

/// `[hss] assignment`: what the HSS answers in UAA (and LIA for unregistered services) for a
/// user no S-CSCF serves yet (TS 29.228 §6.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// Server-Name: one of the lab's S-CSCFs, chosen by a hash of the IMPI
    /// ([`crate::diameter::cx::pick_by_key`]), so the same user always gets the same one.
    Name,
    /// Server-Capabilities (`[hss] server_capabilities`): the I-CSCF chooses.
    Capabilities,
}

/// The ladder names of the S-CSCFs, in lab order: `S-CSCF` (the first), `S-CSCF2`, …
pub const SCSCF_LABELS: [&str; MAX_MORE_SCSCFS + 1] = [
    "S-CSCF", "S-CSCF2", "S-CSCF3", "S-CSCF4", "S-CSCF5", "S-CSCF6", "S-CSCF7", "S-CSCF8",
    "S-CSCF9",
];

impl LabConfig {
    /// Every S-CSCF of the lab in order: (ladder name, Diameter Origin-Host, SIP address,
    /// capabilities). The first is `[nodes] scscf`.
    pub fn scscf_list(&self) -> Vec<(&'static str, String, SocketAddr, Vec<u32>)> {
        let first = (
            SCSCF_LABELS[0],
            format!("scscf.{}", self.lab.domain),
            self.nodes.scscf,
            self.scscf.capabilities.clone(),
        );
        std::iter::once(first)
            .chain(
                self.scscfs
                    .iter()
                    .zip(&SCSCF_LABELS[1..])
                    .map(|(s, l)| (*l, s.name.clone(), s.address, s.capabilities.clone())),
            )
            .collect()
    }

    /// `[[scscfs]]` and `[hss] assignment` make sense together.
    pub(super) fn check_scscfs(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.scscfs.len() > MAX_MORE_SCSCFS {
            return bad(format!(
                "[[scscfs]]: at most {MAX_MORE_SCSCFS} S-CSCFs besides the first"
            ));
        }
        let first = format!("scscf.{}", self.lab.domain);
        for (i, s) in self.scscfs.iter().enumerate() {
            if s.name.trim().is_empty() || s.name.eq_ignore_ascii_case(&first) {
                return bad(format!(
                    "[[scscfs]] name `{}`: give each S-CSCF its own Origin-Host (`{first}` is the first's)",
                    s.name
                ));
            }
            if self.scscfs[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&s.name))
            {
                return bad(format!("[[scscfs]] name `{}` appears twice", s.name));
            }
        }
        match (self.hss.assignment, &self.hss.scscf_name) {
            (Some(Assignment::Name), Some(_)) => {
                return bad(
                    "[hss] assignment = \"name\" chooses among the lab's S-CSCFs: \
                            drop scscf_name, or drop assignment"
                        .into(),
                )
            }
            (Some(Assignment::Capabilities), _) if self.hss.server_capabilities.is_none() => {
                return bad("[hss] assignment = \"capabilities\" needs [hss] \
                            server_capabilities = { mandatory = [...], optional = [...] }"
                    .into())
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScscfSelection as S;

    const TWO: &str = "[[scscfs]]\nname = \"scscf2.ims.lab\"\naddress = \"127.0.0.1:5082\"\n\
                       capabilities = [1, 2]\n[scscf]\ncapabilities = [1]\n";

    #[test]
    fn the_default_lab_has_one_scscf_and_a_second_one_is_listed_after_it() {
        let d = LabConfig::default_lab();
        assert_eq!(d.scscf_list().len(), 1);
        assert_eq!(d.scscf_list()[0].1, "scscf.ims.lab");
        let c = LabConfig::from_toml_str(TWO).unwrap();
        let l = c.scscf_list();
        assert_eq!(
            l.iter()
                .map(|s| (s.0, s.1.as_str(), s.3.clone()))
                .collect::<Vec<_>>(),
            [
                ("S-CSCF", "scscf.ims.lab", vec![1]),
                ("S-CSCF2", "scscf2.ims.lab", vec![1, 2])
            ]
        );
        assert_eq!(l[1].2.port(), 5082);
    }

    #[test]
    fn assignment_by_name_lists_every_scscf_and_by_capabilities_needs_them() {
        let names = ["sip:a".to_string(), "sip:b".to_string()];
        let c = LabConfig::from_toml_str(&format!("{TWO}[hss]\nassignment = \"name\"\n")).unwrap();
        assert_eq!(c.hss.scscf_selection(&names), S::ByImpi(names.to_vec()));
        // Without `assignment` the first S-CSCF, as before.
        let c = LabConfig::from_toml_str(TWO).unwrap();
        assert_eq!(c.hss.scscf_selection(&names), S::ServerName("sip:a".into()));
        let e = LabConfig::from_toml_str("[hss]\nassignment = \"capabilities\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server_capabilities"), "{e}");
        let e = LabConfig::from_toml_str("[hss]\nassignment = \"name\"\nscscf_name = \"sip:x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop scscf_name"), "{e}");
        assert!(LabConfig::from_toml_str("[hss]\nassignment = \"random\"\n").is_err());
    }

    #[test]
    fn a_misspelt_or_duplicate_scscf_entry_is_refused() {
        let e = LabConfig::from_toml_str(
            "[[scscfs]]\nname = \"scscf2.ims.lab\"\naddress = \"127.0.0.1:5082\"\ncapabilites = [1]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("did you mean `capabilities`?"), "{e}");
        let e = LabConfig::from_toml_str(&format!(
            "{TWO}[[scscfs]]\nname = \"SCSCF2.ims.lab\"\naddress = \"127.0.0.1:5083\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = LabConfig::from_toml_str(
            "[[scscfs]]\nname = \"scscf.ims.lab\"\naddress = \"127.0.0.1:5083\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("its own Origin-Host"), "{e}");
    }
}
