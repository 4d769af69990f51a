//! The user profile of 3GPP TS 29.228 Annex D/E: the `IMSSubscription` XML the HSS sends in
//! Cx User-Data (SAA, PPR) — private identity, service profiles, public identities and the
//! initial filter criteria (iFC) the S-CSCF evaluates (TS 23.218).
//!
//! `to_xml` writes elements in the order of the CxDataType schema's sequences; `parse` accepts
//! what Kamailio-style HSSes send (whitespace, namespaces, unknown extensions are skipped).

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

/// Errors parsing a profile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    /// Not well-formed XML.
    #[error("profile XML: {0}")]
    Xml(String),
    /// A required element is missing or invalid.
    #[error("profile: {0}")]
    Invalid(String),
}

/// `<IMSSubscription>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImsSubscription {
    /// `<PrivateID>`.
    pub private_id: String,
    /// `<ServiceProfile>`s.
    pub service_profiles: Vec<ServiceProfile>,
}

/// `<ServiceProfile>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceProfile {
    /// `<PublicIdentity>`s (one implicit registration set here).
    pub public_identities: Vec<PublicIdentity>,
    /// `<InitialFilterCriteria>`s.
    pub ifcs: Vec<InitialFilterCriteria>,
}

/// `<PublicIdentity>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicIdentity {
    /// `<Identity>`.
    pub identity: String,
    /// `<BarringIndication>`.
    pub barring: bool,
    /// `<Extension><IdentityType>` (0 public user identity, 1 distinct PSI, 2 wildcarded PSI).
    pub identity_type: Option<u32>,
    /// `<Extension><Extension><DisplayName>`.
    pub display_name: Option<String>,
}

/// `<InitialFilterCriteria>` (TS 29.228 Annex B).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialFilterCriteria {
    /// `<Priority>`: lower runs first.
    pub priority: i32,
    /// `<TriggerPoint>`; none means "always".
    pub trigger_point: Option<TriggerPoint>,
    /// `<ApplicationServer>`.
    pub application_server: ApplicationServer,
    /// `<ProfilePartIndicator>` (0 registered, 1 unregistered).
    pub profile_part_indicator: Option<u32>,
}

/// `<TriggerPoint>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerPoint {
    /// `<ConditionTypeCNF>`: true = conjunctive normal form, false = disjunctive.
    pub condition_type_cnf: bool,
    /// `<SPT>`s.
    pub spts: Vec<Spt>,
}

/// `<SPT>`, a service point trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spt {
    /// `<ConditionNegated>`.
    pub condition_negated: bool,
    /// `<Group>`s.
    pub group: Vec<u32>,
    /// What it tests.
    pub kind: SptKind,
    /// `<Extension><RegistrationType>`s (for REGISTER: 0 initial, 1 re, 2 de).
    pub registration_type: Vec<u32>,
}

/// The condition of an SPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SptKind {
    /// `<RequestURI>` regex.
    RequestUri(String),
    /// `<Method>`.
    Method(String),
    /// `<SIPHeader><Header>..<Content>..`: header present (and matching).
    SipHeader {
        /// Header name.
        header: String,
        /// Content regex.
        content: Option<String>,
    },
    /// `<SessionCase>`: 0 ORIGINATING, 1 TERMINATING_REGISTERED, 2 TERMINATING_UNREGISTERED,
    /// 3 ORIGINATING_UNREGISTERED, 4 ORIGINATING_CDIV.
    SessionCase(u32),
    /// `<SessionDescription><Line>..<Content>..`.
    SessionDescription {
        /// SDP line type.
        line: String,
        /// Content regex.
        content: Option<String>,
    },
}

/// `<ApplicationServer>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationServer {
    /// `<ServerName>`: the AS's SIP URI.
    pub server_name: String,
    /// `<DefaultHandling>`: 0 SESSION_CONTINUED, 1 SESSION_TERMINATED.
    pub default_handling: u32,
    /// `<ServiceInfo>`.
    pub service_info: Option<String>,
    /// `<Extension><IncludeRegisterRequest/>`.
    pub include_register_request: bool,
    /// `<Extension><IncludeRegisterResponse/>`.
    pub include_register_response: bool,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl ImsSubscription {
    /// The profile as CxDataType XML.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(1024);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        x.push_str("<IMSSubscription xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"CxDataType.xsd\">");
        x.push_str(&format!("<PrivateID>{}</PrivateID>", esc(&self.private_id)));
        for sp in &self.service_profiles {
            x.push_str("<ServiceProfile>");
            for pi in &sp.public_identities {
                x.push_str("<PublicIdentity>");
                if pi.barring {
                    x.push_str("<BarringIndication>1</BarringIndication>");
                }
                x.push_str(&format!("<Identity>{}</Identity>", esc(&pi.identity)));
                if pi.identity_type.is_some() || pi.display_name.is_some() {
                    x.push_str("<Extension>");
                    if let Some(t) = pi.identity_type {
                        x.push_str(&format!("<IdentityType>{t}</IdentityType>"));
                    }
                    if let Some(d) = &pi.display_name {
                        x.push_str(&format!(
                            "<Extension><DisplayName>{}</DisplayName></Extension>",
                            esc(d)
                        ));
                    }
                    x.push_str("</Extension>");
                }
                x.push_str("</PublicIdentity>");
            }
            for ifc in &sp.ifcs {
                x.push_str(&format!(
                    "<InitialFilterCriteria><Priority>{}</Priority>",
                    ifc.priority
                ));
                if let Some(tp) = &ifc.trigger_point {
                    x.push_str(&format!(
                        "<TriggerPoint><ConditionTypeCNF>{}</ConditionTypeCNF>",
                        u8::from(tp.condition_type_cnf)
                    ));
                    for spt in &tp.spts {
                        x.push_str(&format!(
                            "<SPT><ConditionNegated>{}</ConditionNegated>",
                            u8::from(spt.condition_negated)
                        ));
                        for g in &spt.group {
                            x.push_str(&format!("<Group>{g}</Group>"));
                        }
                        match &spt.kind {
                            SptKind::RequestUri(r) => {
                                x.push_str(&format!("<RequestURI>{}</RequestURI>", esc(r)))
                            }
                            SptKind::Method(m) => {
                                x.push_str(&format!("<Method>{}</Method>", esc(m)))
                            }
                            SptKind::SipHeader { header, content } => {
                                x.push_str(&format!("<SIPHeader><Header>{}</Header>", esc(header)));
                                if let Some(c) = content {
                                    x.push_str(&format!("<Content>{}</Content>", esc(c)));
                                }
                                x.push_str("</SIPHeader>");
                            }
                            SptKind::SessionCase(c) => {
                                x.push_str(&format!("<SessionCase>{c}</SessionCase>"))
                            }
                            SptKind::SessionDescription { line, content } => {
                                x.push_str(&format!(
                                    "<SessionDescription><Line>{}</Line>",
                                    esc(line)
                                ));
                                if let Some(c) = content {
                                    x.push_str(&format!("<Content>{}</Content>", esc(c)));
                                }
                                x.push_str("</SessionDescription>");
                            }
                        }
                        if !spt.registration_type.is_empty() {
                            x.push_str("<Extension>");
                            for r in &spt.registration_type {
                                x.push_str(&format!("<RegistrationType>{r}</RegistrationType>"));
                            }
                            x.push_str("</Extension>");
                        }
                        x.push_str("</SPT>");
                    }
                    x.push_str("</TriggerPoint>");
                }
                let a = &ifc.application_server;
                x.push_str(&format!(
                    "<ApplicationServer><ServerName>{}</ServerName>",
                    esc(&a.server_name)
                ));
                x.push_str(&format!(
                    "<DefaultHandling>{}</DefaultHandling>",
                    a.default_handling
                ));
                if let Some(si) = &a.service_info {
                    x.push_str(&format!("<ServiceInfo>{}</ServiceInfo>", esc(si)));
                }
                if a.include_register_request || a.include_register_response {
                    x.push_str("<Extension>");
                    if a.include_register_request {
                        x.push_str("<IncludeRegisterRequest/>");
                    }
                    if a.include_register_response {
                        x.push_str("<IncludeRegisterResponse/>");
                    }
                    x.push_str("</Extension>");
                }
                x.push_str("</ApplicationServer>");
                if let Some(p) = ifc.profile_part_indicator {
                    x.push_str(&format!("<ProfilePartIndicator>{p}</ProfilePartIndicator>"));
                }
                x.push_str("</InitialFilterCriteria>");
            }
            x.push_str("</ServiceProfile>");
        }
        x.push_str("</IMSSubscription>");
        x
    }

    /// Parses a profile.
    pub fn parse(xml: &str) -> Result<ImsSubscription, ProfileError> {
        let tree = parse_tree(xml)?;
        if tree.name != "IMSSubscription" {
            return Err(ProfileError::Invalid(format!(
                "root is <{}>, not <IMSSubscription>",
                tree.name
            )));
        }
        let private_id = tree
            .child("PrivateID")
            .map(|e| e.text.clone())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProfileError::Invalid("no PrivateID".into()))?;
        let mut subs = ImsSubscription {
            private_id,
            service_profiles: Vec::new(),
        };
        for sp in tree.children("ServiceProfile") {
            let mut p = ServiceProfile::default();
            for pi in sp.children("PublicIdentity") {
                let identity = pi
                    .child("Identity")
                    .map(|e| e.text.clone())
                    .ok_or_else(|| {
                        ProfileError::Invalid("PublicIdentity without Identity".into())
                    })?;
                let ext = pi.child("Extension");
                p.public_identities.push(PublicIdentity {
                    identity,
                    barring: pi
                        .child("BarringIndication")
                        .is_some_and(|b| truthy(&b.text)),
                    identity_type: ext
                        .and_then(|e| e.child("IdentityType"))
                        .and_then(|t| t.text.parse().ok()),
                    display_name: ext
                        .and_then(|e| e.child("Extension"))
                        .and_then(|e| e.child("DisplayName"))
                        .map(|d| d.text.clone()),
                });
            }
            for ifc in sp.children("InitialFilterCriteria") {
                p.ifcs.push(parse_ifc(ifc)?);
            }
            subs.service_profiles.push(p);
        }
        Ok(subs)
    }
}

fn truthy(s: &str) -> bool {
    matches!(s.trim(), "1" | "true")
}

fn num<T: std::str::FromStr>(e: Option<&Elem>, what: &str) -> Result<Option<T>, ProfileError> {
    match e {
        Some(e) => e
            .text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ProfileError::Invalid(format!("{what} is not a number: '{}'", e.text))),
        None => Ok(None),
    }
}

fn parse_ifc(e: &Elem) -> Result<InitialFilterCriteria, ProfileError> {
    let priority = num(e.child("Priority"), "Priority")?.unwrap_or(0);
    let trigger_point = match e.child("TriggerPoint") {
        Some(tp) => {
            let mut spts = Vec::new();
            for s in tp.children("SPT") {
                let kind = if let Some(r) = s.child("RequestURI") {
                    SptKind::RequestUri(r.text.clone())
                } else if let Some(m) = s.child("Method") {
                    SptKind::Method(m.text.clone())
                } else if let Some(h) = s.child("SIPHeader") {
                    SptKind::SipHeader {
                        header: h
                            .child("Header")
                            .map(|x| x.text.clone())
                            .unwrap_or_default(),
                        content: h.child("Content").map(|x| x.text.clone()),
                    }
                } else if let Some(c) = s.child("SessionCase") {
                    SptKind::SessionCase(num(Some(c), "SessionCase")?.unwrap_or(0))
                } else if let Some(d) = s.child("SessionDescription") {
                    SptKind::SessionDescription {
                        line: d.child("Line").map(|x| x.text.clone()).unwrap_or_default(),
                        content: d.child("Content").map(|x| x.text.clone()),
                    }
                } else {
                    return Err(ProfileError::Invalid("SPT without a condition".into()));
                };
                let mut group = Vec::new();
                for g in s.children("Group") {
                    group.extend(num::<u32>(Some(g), "Group")?);
                }
                let mut registration_type = Vec::new();
                if let Some(ext) = s.child("Extension") {
                    for r in ext.children("RegistrationType") {
                        registration_type.extend(num::<u32>(Some(r), "RegistrationType")?);
                    }
                }
                spts.push(Spt {
                    condition_negated: s.child("ConditionNegated").is_some_and(|c| truthy(&c.text)),
                    group,
                    kind,
                    registration_type,
                });
            }
            Some(TriggerPoint {
                condition_type_cnf: tp
                    .child("ConditionTypeCNF")
                    .is_some_and(|c| truthy(&c.text)),
                spts,
            })
        }
        None => None,
    };
    let a = e.child("ApplicationServer").ok_or_else(|| {
        ProfileError::Invalid("InitialFilterCriteria without ApplicationServer".into())
    })?;
    let ext = a.child("Extension");
    Ok(InitialFilterCriteria {
        priority,
        trigger_point,
        application_server: ApplicationServer {
            server_name: a
                .child("ServerName")
                .map(|x| x.text.clone())
                .unwrap_or_default(),
            default_handling: num(a.child("DefaultHandling"), "DefaultHandling")?.unwrap_or(0),
            service_info: a.child("ServiceInfo").map(|x| x.text.clone()),
            include_register_request: ext
                .is_some_and(|x| x.child("IncludeRegisterRequest").is_some()),
            include_register_response: ext
                .is_some_and(|x| x.child("IncludeRegisterResponse").is_some()),
        },
        profile_part_indicator: num(e.child("ProfilePartIndicator"), "ProfilePartIndicator")?,
    })
}

/// A minimal element tree (names without namespace prefixes, trimmed text).
#[derive(Debug, Default)]
struct Elem {
    name: String,
    text: String,
    children: Vec<Elem>,
}

impl Elem {
    fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.rsplit(':').next().unwrap_or(&s).to_string()
}

const MAX_DEPTH: usize = 32;

fn parse_tree(xml: &str) -> Result<Elem, ProfileError> {
    let mut r = Reader::from_str(xml);
    let mut stack: Vec<Elem> = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ProfileError::Xml("nesting too deep".into()));
                }
                stack.push(Elem {
                    name: local_name(e.name().as_ref()),
                    ..Default::default()
                });
            }
            Ok(Event::Empty(e)) => {
                let el = Elem {
                    name: local_name(e.name().as_ref()),
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => return Ok(el),
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| ProfileError::Xml(e.to_string()))?;
                    top.text.push_str(s.trim());
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(String::from_utf8_lossy(&t).trim());
                }
            }
            Ok(Event::End(_)) => {
                let Some(done) = stack.pop() else {
                    return Err(ProfileError::Xml("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(done),
                    None => return Ok(done),
                }
            }
            Ok(Event::Eof) => return Err(ProfileError::Xml("no complete root element".into())),
            Ok(_) => {}
            Err(e) => return Err(ProfileError::Xml(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImsSubscription {
        ImsSubscription {
            private_id: "alice@ims.lab".into(),
            service_profiles: vec![ServiceProfile {
                public_identities: vec![
                    PublicIdentity {
                        identity: "sip:alice@ims.lab".into(),
                        ..Default::default()
                    },
                    PublicIdentity {
                        identity: "tel:+15550001".into(),
                        barring: true,
                        identity_type: Some(0),
                        display_name: Some("Alice & co".into()),
                    },
                ],
                ifcs: vec![
                    InitialFilterCriteria {
                        priority: 0,
                        trigger_point: Some(TriggerPoint {
                            condition_type_cnf: true,
                            spts: vec![
                                Spt {
                                    condition_negated: false,
                                    group: vec![0],
                                    kind: SptKind::Method("INVITE".into()),
                                    registration_type: vec![],
                                },
                                Spt {
                                    condition_negated: false,
                                    group: vec![1],
                                    kind: SptKind::SipHeader {
                                        header: "Accept-Contact".into(),
                                        content: Some(".*oma\\.cpm\\.session.*".into()),
                                    },
                                    registration_type: vec![],
                                },
                            ],
                        }),
                        application_server: ApplicationServer {
                            server_name: "sip:oim.ims.lab:5090".into(),
                            default_handling: 0,
                            service_info: Some("chat".into()),
                            ..Default::default()
                        },
                        profile_part_indicator: Some(0),
                    },
                    InitialFilterCriteria {
                        priority: 10,
                        trigger_point: Some(TriggerPoint {
                            condition_type_cnf: false,
                            spts: vec![Spt {
                                condition_negated: true,
                                group: vec![0, 1],
                                kind: SptKind::SessionCase(1),
                                registration_type: vec![0, 1],
                            }],
                        }),
                        application_server: ApplicationServer {
                            server_name: "sip:tim.ims.lab:5091".into(),
                            default_handling: 1,
                            service_info: None,
                            include_register_request: true,
                            include_register_response: false,
                        },
                        profile_part_indicator: None,
                    },
                ],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let xml = s.to_xml();
        assert!(xml.contains(
            "<BarringIndication>1</BarringIndication><Identity>tel:+15550001</Identity>"
        ));
        assert_eq!(ImsSubscription::parse(&xml).unwrap(), s);
    }

    #[test]
    fn parses_kamailio_style_documents() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
        <ims:IMSSubscription xmlns:ims="urn:x">
          <PrivateID>bob@ims.lab</PrivateID>
          <ServiceProfile>
            <PublicIdentity>
              <BarringIndication>0</BarringIndication>
              <Identity>sip:bob@ims.lab</Identity>
              <Extension><IdentityType>0</IdentityType><Unknown>x</Unknown></Extension>
            </PublicIdentity>
            <InitialFilterCriteria>
              <Priority>1</Priority>
              <ApplicationServer><ServerName>sip:as@x</ServerName></ApplicationServer>
            </InitialFilterCriteria>
            <CoreNetworkServicesAuthorization><SubscribedMediaProfileId>0</SubscribedMediaProfileId></CoreNetworkServicesAuthorization>
          </ServiceProfile>
        </ims:IMSSubscription>"#;
        let p = ImsSubscription::parse(xml).unwrap();
        assert_eq!(p.private_id, "bob@ims.lab");
        assert_eq!(
            p.service_profiles[0].public_identities[0].identity_type,
            Some(0)
        );
        assert!(p.service_profiles[0].ifcs[0].trigger_point.is_none());
    }

    #[test]
    fn garbage_is_an_error() {
        for x in [
            "",
            "not xml",
            "<IMSSubscription>",
            "<Other/>",
            "<IMSSubscription></IMSSubscription>",
            "<a><b></a>",
        ] {
            assert!(ImsSubscription::parse(x).is_err(), "{x:?}");
        }
    }
}
