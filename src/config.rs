//! The lab's topology, timers and subscribers, from TOML.
//!
//! The default lab (`labs/default.toml`) is compiled in; a `--config` file is merged over it
//! table by table, so a file only needs to say what it changes (arrays replace whole).
//!
//! One file per section of the lab file, named after it: `[nodes]` is in `config/nodes.rs`,
//! `[[subscribers]]` in `config/subscribers.rs`, `[[default_ifc]]` in `config/ifc.rs`, `[scscf]`
//! and `[[scscfs]]` in `config/scscfs.rs`. This file holds the whole lab ([`LabConfig`]): loading,
//! merging over the default, and the checks that span sections.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod auth;
mod content;
mod diameter;
mod group;
mod hss;
mod http;
mod ifc;
mod im;
mod lab;
mod nodes;
mod pcscf;
mod presence;
mod registrar;
mod rtcweb;
mod scscfs;
mod sip;
mod smsc;
mod subscribers;
mod trace;
mod ums;
mod webrsf;

pub use auth::{AuthLimits, AuthSection};
pub use content::{ContentSection, MAX_FILE_SIZE_CAP};
pub use diameter::DiameterSection;
pub use group::{GroupSection, MAX_GROUP_MEMBERS};
pub use hss::{HssPeer, HssSection, ScscfSelection, ServerCapabilitiesSection};
pub use http::HttpSection;
pub use ifc::{IfcConfig, SptConfig};
pub use im::ImSection;
pub use lab::LabSection;
pub use nodes::Nodes;
pub use pcscf::PcscfSection;
pub use presence::PresenceSection;
pub use registrar::Registrar;
pub use rtcweb::RtcwebSection;
pub use scscfs::{Assignment, MoreScscf, ScscfSection, MAX_MORE_SCSCFS, SCSCF_LABELS};
pub use sip::SipSection;
pub use smsc::{SmppAccountConfig, SmscSection};
pub use subscribers::SubscriberConfig;
pub use trace::TraceSection;
pub use ums::UmsSection;
pub use webrsf::WebRsfSection;

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

/// serde's "unknown field `x`, expected one of `a`, `b`" (every section refuses keys it does not
/// know: a misspelt one used to be ignored, and the lab ran on defaults) with the nearest
/// valid key named: "...; did you mean `b`?".
pub fn with_suggestion(msg: &str) -> String {
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg.to_string();
    };
    let Some((unknown, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let best = expected
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len() / 2).max(2));
    match best {
        Some((_, k)) => format!("{}; did you mean `{k}`?", msg.trim_end()),
        None => msg.to_string(),
    }
}

/// Levenshtein distance (small strings: config keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A whole lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    /// Domain-wide settings.
    pub lab: LabSection,
    /// Listening addresses.
    pub nodes: Nodes,
    /// HSS identity.
    pub hss: HssSection,
    /// The CSCFs' Diameter links to the HSS.
    #[serde(default)]
    pub diameter: DiameterSection,
    /// S-CSCF registrar limits.
    pub registrar: Registrar,
    /// Authentication policy.
    pub auth: AuthSection,
    /// P-CSCF behaviour.
    #[serde(default)]
    pub pcscf: PcscfSection,
    /// SIP timers and limits of every node.
    #[serde(default)]
    pub sip: SipSection,
    /// The flight recorder's bounds.
    #[serde(default)]
    pub trace: TraceSection,
    /// O-IM / T-IM behaviour.
    #[serde(default)]
    pub im: ImSection,
    /// The WebRSF gateway.
    #[serde(default)]
    pub webrsf: WebRsfSection,
    /// The presence server PS: its bounds and who may watch whom.
    #[serde(default)]
    pub presence: PresenceSection,
    /// Group chat at the conference focus CONF: group size, the factory's name, message cap.
    #[serde(default)]
    pub group: GroupSection,
    /// The patent's RTCWeb gateway (seed 001): its bounds and timers.
    #[serde(default)]
    pub rtcweb: RtcwebSection,
    /// Limits of every HTTP listener (WebRSF, the HSS admin API).
    #[serde(default)]
    pub http: HttpSection,
    /// The FT content server CS (RCC.07 File Transfer via HTTP).
    #[serde(default)]
    pub content: ContentSection,
    /// The SMS service centre, its IP-SM-GW and its SMPP listener.
    #[serde(default)]
    pub smsc: SmscSection,
    /// The unified-messaging gateway UMS (business messaging over SMS).
    #[serde(default)]
    pub ums: UmsSection,
    /// Subscribers provisioned at start-up (existing ones in the store are kept as they are).
    #[serde(default)]
    pub subscribers: Vec<SubscriberConfig>,
    /// The iFC every subscriber gets unless it lists its own `ifc`.
    #[serde(default)]
    pub default_ifc: Vec<IfcConfig>,
    /// The first S-CSCF's capabilities.
    #[serde(default)]
    pub scscf: ScscfSection,
    /// S-CSCFs besides the first ([`scscfs`]); none in the default lab.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scscfs: Vec<MoreScscf>,
}

impl LabConfig {
    /// Refuses limits that cannot work (zero caps and timeouts).
    fn check_limits(&self) -> Result<(), ConfigError> {
        let (h, w) = (&self.http, &self.webrsf);
        let zero = [
            ("http.header_timeout_ms", h.header_timeout_ms as usize),
            ("http.idle_timeout_ms", h.idle_timeout_ms as usize),
            ("http.body_timeout_ms", h.body_timeout_ms as usize),
            ("http.max_connections", h.max_connections),
            ("webrsf.token_idle_secs", w.token_idle_secs as usize),
            ("webrsf.max_users", w.max_users),
            ("webrsf.max_media_per_user", w.max_media_per_user),
            ("webrsf.max_instances_per_user", w.max_instances_per_user),
            ("webrsf.channel_max_secs", w.channel_max_secs as usize),
            (
                "im.msrp_partial_timeout_secs",
                self.im.msrp_partial_timeout_secs as usize,
            ),
            (
                "im.msrp_max_partials_per_conn",
                self.im.msrp_max_partials_per_conn,
            ),
            (
                "im.msrp_max_partial_bytes_per_conn",
                self.im.msrp_max_partial_bytes_per_conn as usize,
            ),
            ("im.msrp_max_queued_bytes", self.im.msrp_max_queued_bytes),
            (
                "im.msrp_idle_timeout_secs",
                self.im.msrp_idle_timeout_secs as usize,
            ),
            ("im.msrp_max_connections", self.im.msrp_max_connections),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be above 0")));
        }
        Ok(())
    }
}

impl LabConfig {
    /// The content server's Diameter identity and address, as the HSS accepts it: a Cx client
    /// like the S-CSCFs (it asks MAR for the SIP Digest HA1 of the users it authenticates).
    pub fn content_peer(&self) -> (String, std::net::SocketAddr) {
        (
            format!("content.{}", self.lab.domain),
            self.nodes.content_or_default(),
        )
    }

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
        let c: LabConfig = base
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(with_suggestion(&e.to_string())))?;
        c.check_limits()?;
        if let Some(h) = &c.trace.hep {
            crate::trace::hep::parse_target(h)
                .map_err(|e| ConfigError::Invalid(format!("[trace] hep: {e}")))?;
        }
        c.check_scscfs()?;
        c.presence.check()?;
        c.group.check()?;
        c.smsc.check()?;
        c.ums.check()?;
        c.rtcweb.check()?;
        c.content.check()?;
        c.im.check()?;
        c.hss.peer_policy_with(
            &c.lab.domain,
            c.nodes.icscf,
            &c.scscf_list()
                .into_iter()
                .map(|s| (s.1, s.2))
                .chain([c.content_peer()])
                .collect::<Vec<_>>(),
        )?;
        Ok(c)
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
            &mut self.nodes.oim,
            &mut self.nodes.tim,
            &mut self.nodes.ps,
            &mut self.nodes.conf,
            &mut self.nodes.oim_msrp,
            &mut self.nodes.tim_msrp,
            &mut self.nodes.conf_msrp,
            &mut self.nodes.ipsmgw,
            &mut self.nodes.smsc,
            &mut self.nodes.ums,
            &mut self.nodes.webrsf,
        ] {
            a.set_port(0);
        }
        for a in [
            &mut self.nodes.tim_http,
            &mut self.nodes.pcscf_ws,
            &mut self.nodes.rtcweb,
            &mut self.nodes.rtcweb_sip,
            &mut self.nodes.content,
        ]
        .into_iter()
        .flatten()
        {
            a.set_port(0);
        }
        for s in &mut self.scscfs {
            s.address.set_port(0);
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
    fn a_misspelt_key_or_section_is_an_error_naming_the_nearest_one() {
        let e = LabConfig::from_toml_str("[nodes]\npcsf = \"127.0.0.1:5060\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `pcsf`") && e.contains("did you mean `pcscf`?"),
            "{e}"
        );
        let e = LabConfig::from_toml_str("[registar]\nmin_expires = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `registrar`?"), "{e}");
        let e = LabConfig::from_toml_str("[auth]\nmax_failure = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `max_failures`?"), "{e}");
        assert_eq!(
            with_suggestion("unknown field `zzzzzzzz`, expected `a` or `b`"),
            "unknown field `zzzzzzzz`, expected `a` or `b`",
            "nothing near: no guess"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn default_lab_parses_with_three_users_and_the_ums_chatbot() {
        let c = LabConfig::default_lab();
        assert_eq!(c.lab.domain, "ims.lab");
        assert_eq!(c.nodes.pcscf.port(), 5060);
        let users: Vec<_> = c.subscribers.iter().map(|s| s.impu[0].clone()).collect();
        assert_eq!(
            users,
            [
                "sip:alice@ims.lab",
                "sip:bob@ims.lab",
                "sip:carol@ims.lab",
                "sip:ums@ims.lab"
            ]
        );
        assert_eq!(c.ums.rcs_user, "ums");
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
