//! Resource List Server pieces of RFC 4662: the Resource List Meta-Information document (RLMI,
//! RFC 4662 §5), the `multipart/related` NOTIFY body (RFC 2387) that carries it with one PIDF
//! part per member, full and partial state with the version counter (RFC 4662 §4.5, §5), a
//! parser for the same body (a watcher's side, and the tests' check of the builder), and the
//! [`ResourceList`] a list URI stands for (RFC 4826 documents would fill it).

use std::collections::HashMap;

use bytes::Bytes;

use super::pidf::{Pidf, PidfError, PidfLimits, CONTENT_TYPE as PIDF_CONTENT_TYPE};
use super::subscription::{Authorization, Notifier, PresenceDocuments};
use super::xml::{self, esc, Element, XmlError};
use crate::sip::multipart::{self, MultipartError, Part};

/// The RLMI namespace (RFC 4662 §5).
pub const RLMI_NS: &str = "urn:ietf:params:xml:ns:rlmi";
/// The MIME type of an RLMI document (RFC 4662 §5).
pub const RLMI_CONTENT_TYPE: &str = "application/rlmi+xml";

/// Caps for parsing a list NOTIFY body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlmiLimits {
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// Most `<resource>` elements in one RLMI document.
    pub max_resources: usize,
    /// Caps on each PIDF part.
    pub pidf: PidfLimits,
}

impl Default for RlmiLimits {
    fn default() -> Self {
        RlmiLimits {
            max_body: 1024 * 1024,
            max_resources: 256,
            pidf: PidfLimits::default(),
        }
    }
}

/// Why an RLMI document or list body is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RlmiError {
    /// The body exceeds [`RlmiLimits::max_body`].
    #[error("list body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not well-formed XML.
    #[error("malformed RLMI: {0}")]
    Xml(#[from] XmlError),
    /// The root is not `<list>` in the RLMI namespace (RFC 4662 §5).
    #[error("malformed RLMI: the root element is not <list xmlns=\"{RLMI_NS}\">")]
    NotRlmi,
    /// A required attribute is missing.
    #[error("malformed RLMI: {0}")]
    Missing(&'static str),
    /// An attribute value out of its type (version, fullState, state).
    #[error("malformed RLMI: {name}={value:?}")]
    BadAttribute {
        /// The attribute.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// More resources than [`RlmiLimits::max_resources`], or a [`ResourceList`] at its cap.
    #[error("more than {0} resources in a list")]
    TooManyResources(usize),
    /// The multipart framing is wrong.
    #[error("malformed list body: {0}")]
    Multipart(#[from] MultipartError),
    /// The body is not `multipart/related` with an RLMI root part.
    #[error("malformed list body: {0}")]
    Structure(&'static str),
    /// An instance's `cid` names no part (RFC 4662 §5).
    #[error("malformed list body: no part with Content-ID <{0}>")]
    NoPart(String),
    /// A member's PIDF part does not parse.
    #[error("part <{cid}>: {error}")]
    Pidf {
        /// The part.
        cid: String,
        /// Why.
        error: PidfError,
    },
}

/// The `state` of an `<instance>` (RFC 4662 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// The back-end subscription is active; a part carries the state.
    Active,
    /// Waiting for authorization; no part.
    Pending,
    /// Ended, with the RFC 6665 reason when known; no part.
    Terminated {
        /// `reason` (e.g. `rejected`, `noresource`).
        reason: Option<String>,
    },
}

impl InstanceState {
    fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Active => "active",
            InstanceState::Pending => "pending",
            InstanceState::Terminated { .. } => "terminated",
        }
    }
}

/// `active`, `pending`, `terminated;reason=R` (as a `Subscription-State` would say it).
impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstanceState::Terminated { reason: Some(r) } => write!(f, "terminated;reason={r}"),
            s => f.write_str(s.as_str()),
        }
    }
}

/// An `<instance>`: one back-end subscription to a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `id`, stable over the list subscription.
    pub id: String,
    /// `state`, with `reason`.
    pub state: InstanceState,
    /// `cid`: the Content-ID (without angle brackets) of the part with the state.
    pub cid: Option<String>,
}

/// A `<resource>`: one member of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `uri`.
    pub uri: String,
    /// `<name>`s.
    pub names: Vec<String>,
    /// Its instances.
    pub instances: Vec<Instance>,
}

/// An RLMI document (RFC 4662 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlmi {
    /// `uri`: the list's URI.
    pub uri: String,
    /// `version`: 0 in the first NOTIFY of a subscription, one more in each after.
    pub version: u32,
    /// `fullState`: every member (true) or only the changed ones (false).
    pub full_state: bool,
    /// `<name>`s of the list.
    pub names: Vec<String>,
    /// The members described.
    pub resources: Vec<Resource>,
}

fn names_of(e: &Element) -> Vec<String> {
    e.children_named(RLMI_NS, "name")
        .map(|n| n.text.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

impl Rlmi {
    /// Parses an RLMI document.
    pub fn parse(body: &[u8], limits: &RlmiLimits) -> Result<Rlmi, RlmiError> {
        if body.len() > limits.max_body {
            return Err(RlmiError::TooLarge {
                size: body.len(),
                limit: limits.max_body,
            });
        }
        let root = xml::parse(body)?;
        if !root.is(RLMI_NS, "list") {
            return Err(RlmiError::NotRlmi);
        }
        let uri = root
            .attr("uri")
            .ok_or(RlmiError::Missing("<list> without uri"))?;
        let version = root
            .attr("version")
            .ok_or(RlmiError::Missing("<list> without version"))?;
        let version = version.parse().map_err(|_| RlmiError::BadAttribute {
            name: "version",
            value: version.to_string(),
        })?;
        let full_state = match root.attr("fullState") {
            Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(v) => {
                return Err(RlmiError::BadAttribute {
                    name: "fullState",
                    value: v.to_string(),
                })
            }
            None => return Err(RlmiError::Missing("<list> without fullState")),
        };
        let mut resources = Vec::new();
        for r in root.children_named(RLMI_NS, "resource") {
            if resources.len() == limits.max_resources {
                return Err(RlmiError::TooManyResources(limits.max_resources));
            }
            let mut instances = Vec::new();
            for i in r.children_named(RLMI_NS, "instance") {
                let state = match i.attr("state") {
                    Some("active") => InstanceState::Active,
                    Some("pending") => InstanceState::Pending,
                    Some("terminated") => InstanceState::Terminated {
                        reason: i.attr("reason").map(str::to_string),
                    },
                    Some(v) => {
                        return Err(RlmiError::BadAttribute {
                            name: "state",
                            value: v.to_string(),
                        })
                    }
                    None => return Err(RlmiError::Missing("<instance> without state")),
                };
                instances.push(Instance {
                    id: i
                        .attr("id")
                        .ok_or(RlmiError::Missing("<instance> without id"))?
                        .to_string(),
                    state,
                    cid: i.attr("cid").map(str::to_string),
                });
            }
            resources.push(Resource {
                uri: r
                    .attr("uri")
                    .ok_or(RlmiError::Missing("<resource> without uri"))?
                    .to_string(),
                names: names_of(r),
                instances,
            });
        }
        Ok(Rlmi {
            uri: uri.to_string(),
            version,
            full_state,
            names: names_of(&root),
            resources,
        })
    }

    /// Prints the document.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<list xmlns=\"{RLMI_NS}\" uri=\"{}\" version=\"{}\" fullState=\"{}\">\n",
            esc(&self.uri),
            self.version,
            self.full_state
        ));
        for n in &self.names {
            x.push_str(&format!(" <name>{}</name>\n", esc(n)));
        }
        for r in &self.resources {
            x.push_str(&format!(" <resource uri=\"{}\">\n", esc(&r.uri)));
            for n in &r.names {
                x.push_str(&format!("  <name>{}</name>\n", esc(n)));
            }
            for i in &r.instances {
                x.push_str(&format!(
                    "  <instance id=\"{}\" state=\"{}\"",
                    esc(&i.id),
                    i.state.as_str()
                ));
                if let InstanceState::Terminated { reason: Some(r) } = &i.state {
                    x.push_str(&format!(" reason=\"{}\"", esc(r)));
                }
                if let Some(c) = &i.cid {
                    x.push_str(&format!(" cid=\"{}\"", esc(c)));
                }
                x.push_str("/>\n");
            }
            x.push_str(" </resource>\n");
        }
        x.push_str("</list>\n");
        x
    }
}

/// The members a list URI stands for, capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceList {
    uri: String,
    members: Vec<String>,
    max_members: usize,
}

impl ResourceList {
    /// An empty list `uri` that holds at most `max_members`.
    pub fn new(uri: &str, max_members: usize) -> ResourceList {
        ResourceList {
            uri: uri.to_string(),
            members: Vec::new(),
            max_members,
        }
    }

    /// The list's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The members, in the order added.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Adds `member`; false if it was there already; refused at the cap.
    pub fn add(&mut self, member: &str) -> Result<bool, RlmiError> {
        if self.members.iter().any(|m| m == member) {
            return Ok(false);
        }
        if self.members.len() >= self.max_members {
            return Err(RlmiError::TooManyResources(self.max_members));
        }
        self.members.push(member.to_string());
        Ok(true)
    }

    /// Removes `member`; false if it was not there.
    pub fn remove(&mut self, member: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m != member);
        self.members.len() != before
    }
    /// Each member's state as `watcher` may see it (see [`member_state`]).
    pub fn member_states(
        &self,
        watcher: &str,
        notifier: &Notifier,
        docs: &dyn PresenceDocuments,
    ) -> Vec<MemberState> {
        self.members
            .iter()
            .map(|m| member_state(m, watcher, notifier, docs))
            .collect()
    }
}

/// `member`'s state as `watcher` may see it (RFC 4662 §4.4: the RLS subscribes to the members
/// on the watcher's behalf, so each member's policy applies to him): active with the document
/// when allowed, pending when unknown, terminated `rejected` when blocked.
pub fn member_state(
    member: &str,
    watcher: &str,
    notifier: &Notifier,
    docs: &dyn PresenceDocuments,
) -> MemberState {
    let (state, doc) = match notifier.authorize(member, watcher) {
        Authorization::Allow => (
            InstanceState::Active,
            Some(docs.document(member).unwrap_or_else(|| Pidf::empty(member))),
        ),
        Authorization::Confirm => (InstanceState::Pending, None),
        Authorization::Block => (
            InstanceState::Terminated {
                reason: Some("rejected".into()),
            },
            None,
        ),
    };
    MemberState {
        uri: member.to_string(),
        state,
        doc,
    }
}

/// One member's state, as the RLS sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The member's URI.
    pub uri: String,
    /// The state of the RLS's subscription to it.
    pub state: InstanceState,
    /// Its document, when active.
    pub doc: Option<Pidf>,
}

/// A NOTIFY body for a list subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListBody {
    /// The Content-Type header value (`multipart/related;type=…;start=…;boundary=…`).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// The RLMI document at its root.
    pub rlmi: Rlmi,
}

/// The RLS side of one list subscription (RFC 4662 §4.5): the version counter, the stable
/// instance ids, and what each member's last NOTIFY said, so that a partial NOTIFY carries
/// only what changed.
#[derive(Debug, Clone)]
pub struct ListNotifier {
    uri: String,
    domain: String,
    /// The version of the next RLMI document.
    next_version: u32,
    /// Member -> (instance id, what was sent).
    sent: HashMap<String, (String, InstanceState, Option<Pidf>)>,
    next_id: u64,
}

impl ListNotifier {
    /// The state of a new subscription to list `uri`; `domain` goes into Content-IDs.
    pub fn new(uri: &str, domain: &str) -> ListNotifier {
        ListNotifier {
            uri: uri.to_string(),
            domain: domain.to_string(),
            next_version: 0,
            sent: HashMap::new(),
            next_id: 1,
        }
    }

    /// The version of the last document built, if any.
    pub fn version(&self) -> Option<u32> {
        self.next_version.checked_sub(1)
    }

    /// A full-state NOTIFY body (RFC 4662 §4.5: the first NOTIFY and any that resyncs).
    /// Members sent before and missing now are not listed (a full state replaces all).
    pub fn full_state(&mut self, members: &[MemberState]) -> ListBody {
        self.sent
            .retain(|uri, _| members.iter().any(|m| &m.uri == uri));
        self.build(members.iter().collect(), true)
    }

    /// A partial NOTIFY body with only the members whose state or document changed since
    /// the last one, and a `terminated;reason=deactivated` instance for members gone from the
    /// list; `None` when nothing changed. Before any full state, a full state.
    pub fn partial(&mut self, members: &[MemberState]) -> Option<ListBody> {
        if self.next_version == 0 {
            return Some(self.full_state(members));
        }
        let mut changed: Vec<MemberState> = members
            .iter()
            .filter(|m| {
                self.sent
                    .get(&m.uri)
                    .is_none_or(|(_, st, doc)| *st != m.state || *doc != m.doc)
            })
            .cloned()
            .collect();
        let mut gone: Vec<String> = self
            .sent
            .keys()
            .filter(|uri| !members.iter().any(|m| &m.uri == *uri))
            .cloned()
            .collect();
        gone.sort();
        for uri in &gone {
            changed.push(MemberState {
                uri: uri.clone(),
                state: InstanceState::Terminated {
                    reason: Some("deactivated".into()),
                },
                doc: None,
            });
        }
        if changed.is_empty() {
            return None;
        }
        let body = self.build(changed.iter().collect(), false);
        for uri in &gone {
            self.sent.remove(uri);
        }
        Some(body)
    }

    /// A partial NOTIFY body with those of `members` whose state or document changed since
    /// they were last sent (the list itself did not change: nobody is dropped); `None` when
    /// none did. Before any full state, `None`: the first NOTIFY is the full state's.
    pub fn changed(&mut self, members: &[MemberState]) -> Option<ListBody> {
        if self.next_version == 0 {
            return None;
        }
        let changed: Vec<&MemberState> = members
            .iter()
            .filter(|m| {
                self.sent
                    .get(&m.uri)
                    .is_none_or(|(_, st, doc)| *st != m.state || *doc != m.doc)
            })
            .collect();
        if changed.is_empty() {
            return None;
        }
        Some(self.build(changed, false))
    }

    fn build(&mut self, members: Vec<&MemberState>, full_state: bool) -> ListBody {
        let version = self.next_version;
        self.next_version += 1;
        let tag = format!("v{version}");
        let mut rlmi = Rlmi {
            uri: self.uri.clone(),
            version,
            full_state,
            names: Vec::new(),
            resources: Vec::new(),
        };
        let mut parts = Vec::new();
        for (n, m) in members.into_iter().enumerate() {
            let id = match self.sent.get(&m.uri) {
                Some((id, ..)) => id.clone(),
                None => {
                    self.next_id += 1;
                    format!("i{}", self.next_id - 1)
                }
            };
            // State is carried only for an active instance (RFC 4662 §5).
            let doc = match m.state {
                InstanceState::Active => m.doc.clone(),
                _ => None,
            };
            let cid = doc.as_ref().map(|_| format!("{tag}p{n}@{}", self.domain));
            if let (Some(cid), Some(doc)) = (&cid, &doc) {
                let mut p = Part::new(
                    &format!("{PIDF_CONTENT_TYPE};charset=\"UTF-8\""),
                    Bytes::from(doc.to_xml()),
                );
                p.headers = vec![
                    ("Content-Transfer-Encoding".into(), "binary".into()),
                    ("Content-ID".into(), format!("<{cid}>")),
                ];
                parts.push(p);
            }
            rlmi.resources.push(Resource {
                uri: m.uri.clone(),
                names: Vec::new(),
                instances: vec![Instance {
                    id: id.clone(),
                    state: m.state.clone(),
                    cid,
                }],
            });
            self.sent
                .insert(m.uri.clone(), (id, m.state.clone(), m.doc.clone()));
        }
        let root_cid = format!("{tag}root@{}", self.domain);
        let mut root = Part::new(
            &format!("{RLMI_CONTENT_TYPE};charset=\"UTF-8\""),
            Bytes::from(rlmi.to_xml()),
        );
        root.headers = vec![
            ("Content-Transfer-Encoding".into(), "binary".into()),
            ("Content-ID".into(), format!("<{root_cid}>")),
        ];
        parts.insert(0, root);
        let boundary = format!("rcslab-rls-{}-{tag}", self.next_id);
        let (_, body) = multipart::build(&boundary, &parts);
        ListBody {
            content_type: format!(
                "multipart/related;type=\"{RLMI_CONTENT_TYPE}\";start=\"<{root_cid}>\";boundary=\"{boundary}\""
            ),
            body,
            rlmi,
        }
    }
}

/// A list NOTIFY body, read: the RLMI document and the documents of its active instances,
/// by Content-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedListBody {
    /// The root RLMI document.
    pub rlmi: Rlmi,
    /// (cid, document) of each PIDF part an instance names, in RLMI order.
    pub documents: Vec<(String, Pidf)>,
}

/// The value of parameter `name` of a Content-Type, unquoted.
fn param(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The media type of a Content-Type, lowercase, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn content_id(p: &Part) -> Option<&str> {
    p.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-ID"))
        .map(|(_, v)| v.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// Reads a list NOTIFY body (RFC 4662 §5): `multipart/related` whose root (the `start`
/// part, else the first) is RLMI, and the PIDF parts its instances name.
pub fn parse_body(
    content_type: &str,
    body: &[u8],
    limits: &RlmiLimits,
) -> Result<ParsedListBody, RlmiError> {
    if body.len() > limits.max_body {
        return Err(RlmiError::TooLarge {
            size: body.len(),
            limit: limits.max_body,
        });
    }
    if media_type(content_type) != "multipart/related" {
        return Err(RlmiError::Structure("not multipart/related"));
    }
    let parts = multipart::parse(content_type, body)?;
    let start = param(content_type, "start")
        .map(|s| s.trim_start_matches('<').trim_end_matches('>').to_string());
    let root = match &start {
        Some(s) => parts.iter().find(|p| content_id(p) == Some(s.as_str())),
        None => parts.first(),
    }
    .ok_or(RlmiError::Structure("no root part"))?;
    if media_type(&root.content_type) != RLMI_CONTENT_TYPE {
        return Err(RlmiError::Structure(
            "the root part is not application/rlmi+xml",
        ));
    }
    let rlmi = Rlmi::parse(&root.body, limits)?;
    let mut documents = Vec::new();
    for cid in rlmi
        .resources
        .iter()
        .flat_map(|r| &r.instances)
        .filter_map(|i| i.cid.as_deref())
    {
        let part = parts
            .iter()
            .find(|p| content_id(p) == Some(cid))
            .ok_or_else(|| RlmiError::NoPart(cid.to_string()))?;
        // Nested lists (multipart parts) and other packages are not ours to read.
        if media_type(&part.content_type) == PIDF_CONTENT_TYPE {
            let doc = Pidf::parse(&part.body, &limits.pidf).map_err(|error| RlmiError::Pidf {
                cid: cid.to_string(),
                error,
            })?;
            documents.push((cid.to_string(), doc));
        }
    }
    Ok(ParsedListBody { rlmi, documents })
}

#[cfg(test)]
mod tests;
