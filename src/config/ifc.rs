//! Initial filter criteria in TOML (TS 29.228 Annex B): the lab's `[[default_ifc]]` and a
//! `[[subscribers]]` entry's own `ifc`, turned into and back from the [`crate::profile`] form
//! the HSS puts in the user profile.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// One initial filter criterion in TOML (TS 29.228 Annex B):
///
/// ```toml
/// [[default_ifc]]
/// priority = 10
/// server_name = "sip:oim.ims.lab;transport=tcp"
/// default_handling = "continue"    # or "terminate"
/// condition = "cnf"                # groups ANDed, SPTs of a group ORed ("dnf": the reverse)
/// spt = [ { group = 0, method = "INVITE" }, { group = 0, method = "MESSAGE" },
///         { group = 1, session_case = "originating" },
///         { group = 2, header = "Accept-Contact", content = ".*oma\\.cpm.*" } ]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfcConfig {
    /// Lower runs first.
    pub priority: i32,
    /// The application server's SIP URI.
    pub server_name: String,
    /// `continue` (SESSION_CONTINUED) or `terminate` (SESSION_TERMINATED) when the AS fails.
    #[serde(default = "default_handling")]
    pub default_handling: String,
    /// `cnf` or `dnf`.
    #[serde(default = "default_condition")]
    pub condition: String,
    /// Service point triggers; none means "always".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spt: Vec<SptConfig>,
    /// Free text passed to the AS.
    #[serde(default)]
    pub service_info: Option<String>,
    /// 0 registered, 1 unregistered.
    #[serde(default)]
    pub profile_part: Option<u32>,
    /// TS 29.228 `<IncludeRegisterRequest/>`: the third-party REGISTER carries the user's
    /// REGISTER in a `message/sip` body (TS 24.229 §5.4.1.7), so the AS sees its Contact
    /// and feature tags.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_register_request: bool,
    /// TS 29.228 `<IncludeRegisterResponse/>`: it carries the S-CSCF's 200 OK to it, so the
    /// AS sees the implicitly registered set (P-Associated-URI: the user's tel URI).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_register_response: bool,
}

/// One service point trigger: exactly one of `method`, `request_uri`, `header`,
/// `session_case`, `sdp_line`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SptConfig {
    /// Group number.
    #[serde(default)]
    pub group: u32,
    /// ConditionNegated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
    /// SIP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Request-URI regex.
    #[serde(default)]
    pub request_uri: Option<String>,
    /// Header name (with optional `content` regex).
    #[serde(default)]
    pub header: Option<String>,
    /// Regex for `header` or `sdp_line`.
    #[serde(default)]
    pub content: Option<String>,
    /// `originating`, `terminating`, `terminating_unregistered`, `originating_unregistered`.
    #[serde(default)]
    pub session_case: Option<String>,
    /// SDP line type (`m`, `c`...).
    #[serde(default)]
    pub sdp_line: Option<String>,
    /// For REGISTER: 0 initial, 1 re-registration, 2 de-registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registration_type: Vec<u32>,
}

fn default_handling() -> String {
    "continue".into()
}
fn default_condition() -> String {
    "cnf".into()
}

impl IfcConfig {
    /// The TS 29.228 form.
    pub fn to_profile(&self) -> Result<crate::profile::InitialFilterCriteria, ConfigError> {
        use crate::profile::{
            ApplicationServer, InitialFilterCriteria, Spt, SptKind, TriggerPoint,
        };
        let bad = |why: String| ConfigError::Invalid(format!("iFC {}: {why}", self.server_name));
        let mut spts = Vec::new();
        for s in &self.spt {
            let kind = match (&s.method, &s.request_uri, &s.header, &s.session_case, &s.sdp_line) {
                (Some(m), None, None, None, None) => SptKind::Method(m.to_ascii_uppercase()),
                (None, Some(r), None, None, None) => SptKind::RequestUri(r.clone()),
                (None, None, Some(h), None, None) => SptKind::SipHeader { header: h.clone(), content: s.content.clone() },
                (None, None, None, Some(c), None) => SptKind::SessionCase(match c.as_str() {
                    "originating" => 0,
                    "terminating" | "terminating_registered" => 1,
                    "terminating_unregistered" => 2,
                    "originating_unregistered" => 3,
                    "originating_cdiv" => 4,
                    other => return Err(bad(format!("unknown session_case '{other}'"))),
                }),
                (None, None, None, None, Some(l)) => SptKind::SessionDescription { line: l.clone(), content: s.content.clone() },
                _ => return Err(bad("each spt needs exactly one of method, request_uri, header, session_case, sdp_line".into())),
            };
            if let Some(c) = &s.content {
                regex::Regex::new(c).map_err(|e| bad(format!("bad regex '{c}': {e}")))?;
            }
            if let Some(r) = &s.request_uri {
                regex::Regex::new(r).map_err(|e| bad(format!("bad regex '{r}': {e}")))?;
            }
            spts.push(Spt {
                condition_negated: s.negated,
                group: vec![s.group],
                kind,
                registration_type: s.registration_type.clone(),
            });
        }
        let default_handling = match self.default_handling.as_str() {
            "continue" | "session_continued" => 0,
            "terminate" | "session_terminated" => 1,
            other => {
                return Err(bad(format!(
                    "default_handling '{other}' (continue or terminate)"
                )))
            }
        };
        let cnf = match self.condition.as_str() {
            "cnf" => true,
            "dnf" => false,
            other => return Err(bad(format!("condition '{other}' (cnf or dnf)"))),
        };
        Ok(InitialFilterCriteria {
            priority: self.priority,
            trigger_point: (!spts.is_empty()).then_some(TriggerPoint {
                condition_type_cnf: cnf,
                spts,
            }),
            application_server: ApplicationServer {
                server_name: self.server_name.clone(),
                default_handling,
                service_info: self.service_info.clone(),
                include_register_request: self.include_register_request,
                include_register_response: self.include_register_response,
            },
            profile_part_indicator: self.profile_part,
        })
    }

    /// The TOML form of a TS 29.228 iFC, as `rcslab subscriber show` / `ifc` print it: what
    /// [`IfcConfig::to_profile`] turns back into the same iFC (an SPT in several groups
    /// becomes one `spt` per group, which TS 29.228 Annex B evaluates the same way).
    pub fn from_profile(i: &crate::profile::InitialFilterCriteria) -> IfcConfig {
        use crate::profile::SptKind;
        let mut spt = Vec::new();
        let (cnf, spts) = match &i.trigger_point {
            Some(tp) => (tp.condition_type_cnf, tp.spts.as_slice()),
            None => (true, &[][..]),
        };
        for s in spts {
            let mut c = SptConfig {
                negated: s.condition_negated,
                registration_type: s.registration_type.clone(),
                ..SptConfig::default()
            };
            match &s.kind {
                SptKind::Method(m) => c.method = Some(m.clone()),
                SptKind::RequestUri(r) => c.request_uri = Some(r.clone()),
                SptKind::SipHeader { header, content } => {
                    c.header = Some(header.clone());
                    c.content = content.clone();
                }
                SptKind::SessionCase(n) => {
                    c.session_case = Some(
                        match n {
                            0 => "originating",
                            1 => "terminating",
                            2 => "terminating_unregistered",
                            3 => "originating_unregistered",
                            _ => "originating_cdiv",
                        }
                        .into(),
                    )
                }
                SptKind::SessionDescription { line, content } => {
                    c.sdp_line = Some(line.clone());
                    c.content = content.clone();
                }
            }
            let groups = if s.group.is_empty() {
                vec![0]
            } else {
                s.group.clone()
            };
            for g in groups {
                spt.push(SptConfig {
                    group: g,
                    ..c.clone()
                });
            }
        }
        IfcConfig {
            priority: i.priority,
            server_name: i.application_server.server_name.clone(),
            default_handling: if i.application_server.default_handling == 1 {
                "terminate".into()
            } else {
                "continue".into()
            },
            condition: if cnf { "cnf" } else { "dnf" }.into(),
            spt,
            service_info: i.application_server.service_info.clone(),
            profile_part: i.profile_part_indicator,
            include_register_request: i.application_server.include_register_request,
            include_register_response: i.application_server.include_register_response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabConfig;

    #[test]
    fn ifc_toml_round_trips_through_the_profile_form() {
        let lab = LabConfig::default_lab();
        assert!(!lab.default_ifc.is_empty());
        for i in &lab.default_ifc {
            let p = i.to_profile().unwrap();
            let back = IfcConfig::from_profile(&p);
            assert_eq!(back.to_profile().unwrap(), p);
            // And through TOML text, as `subscriber ifc` prints it and `--set` reads it.
            let text = toml::to_string(&back).unwrap();
            let again: IfcConfig = toml::from_str(&text).unwrap();
            assert_eq!(again.to_profile().unwrap(), p, "{text}");
        }
    }
}
