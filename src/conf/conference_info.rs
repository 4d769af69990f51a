//! The conference event package's document (RFC 4575): who is in a group chat, sent by the
//! focus in NOTIFYs of `Event: conference` — the whole roster first (`state="full"`), then only
//! the users who changed (`state="partial"`, each user `full`, `partial` or `deleted`), with a
//! version that goes up by one per document (RFC 4575 §4.2, §5.1). What RCS clients read of it
//! (RCC.07, rcsjta's ConferenceInfoParser): each `<user entity>` with its `<display-text>`,
//! `<roles>` (`chairman` for the group's admin) and an `<endpoint>` whose `<status>` says
//! `connected`, `pending`, `disconnected`... and, for one who left, how
//! (`<disconnection-method>`: `departed`, `booted`, `failed`, `busy`).
//!
//! Pure: a [`ConferenceInfo`] prints to XML and parses back; a malformed document is a typed
//! [`InfoError`].

use crate::presence::xml::{self, esc, Element, XmlError};

/// The conference-info namespace (RFC 4575 §5).
pub const NS: &str = "urn:ietf:params:xml:ns:conference-info";
/// The MIME type (RFC 4575 §4.1).
pub const CONTENT_TYPE: &str = "application/conference-info+xml";
/// The event package name (RFC 4575 §3).
pub const EVENT: &str = "conference";

/// A document's or an element's state (RFC 4575 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Full,
    Partial,
    Deleted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Full => "full",
            State::Partial => "partial",
            State::Deleted => "deleted",
        }
    }
    fn parse(s: Option<&str>) -> Result<State, InfoError> {
        match s {
            // RFC 4575 §5.1: the default is "full".
            None | Some("full") => Ok(State::Full),
            Some("partial") => Ok(State::Partial),
            Some("deleted") => Ok(State::Deleted),
            Some(v) => Err(InfoError::Bad("state", v.chars().take(32).collect())),
        }
    }
}

/// An endpoint's status (RFC 4575 §5.6.3), the values a group chat uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connected,
    Pending,
    Alerting,
    DialingOut,
    Disconnecting,
    Disconnected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "connected",
            Status::Pending => "pending",
            Status::Alerting => "alerting",
            Status::DialingOut => "dialing-out",
            Status::Disconnecting => "disconnecting",
            Status::Disconnected => "disconnected",
        }
    }
    fn parse(s: &str) -> Result<Status, InfoError> {
        Ok(match s {
            "connected" => Status::Connected,
            "pending" => Status::Pending,
            "alerting" => Status::Alerting,
            "dialing-out" => Status::DialingOut,
            "disconnecting" => Status::Disconnecting,
            "disconnected" => Status::Disconnected,
            // on-hold, muted-via-focus, dialing-in: not a group chat's; read as connected.
            "on-hold" | "muted-via-focus" | "dialing-in" => Status::Connected,
            v => return Err(InfoError::Bad("status", v.chars().take(32).collect())),
        })
    }
}

/// How a user left (RFC 4575 §5.6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Left by themselves (BYE).
    Departed,
    /// Removed by an admin.
    Booted,
    Failed,
    Busy,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Departed => "departed",
            Departure::Booted => "booted",
            Departure::Failed => "failed",
            Departure::Busy => "busy",
        }
    }
    fn parse(s: &str) -> Result<Departure, InfoError> {
        Ok(match s {
            "departed" => Departure::Departed,
            "booted" => Departure::Booted,
            "failed" => Departure::Failed,
            "busy" => Departure::Busy,
            v => {
                return Err(InfoError::Bad(
                    "disconnection-method",
                    v.chars().take(32).collect(),
                ))
            }
        })
    }
}

/// One participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Their address of record.
    pub entity: String,
    pub state: State,
    pub display_text: Option<String>,
    /// `chairman`, `participant`.
    pub roles: Vec<String>,
    /// Their one endpoint's status (a group chat has one per user), if given.
    pub status: Option<Status>,
    /// How they left, when `status` is disconnected.
    pub departure: Option<Departure>,
}

impl User {
    /// A user in a full or partial document, with a status.
    pub fn new(entity: &str, status: Status) -> User {
        User {
            entity: entity.to_string(),
            state: State::Full,
            display_text: None,
            roles: Vec::new(),
            status: Some(status),
            departure: None,
        }
    }
}

/// A conference-info document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// The conference URI (the group's session identity).
    pub entity: String,
    pub state: State,
    pub version: u32,
    /// `<conference-description><subject>`.
    pub subject: Option<String>,
    /// `<maximum-user-count>`.
    pub max_users: Option<u32>,
    /// `<users>`.
    pub users: Vec<User>,
}

/// Caps for parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoLimits {
    pub max_body: usize,
    pub max_users: usize,
}

impl Default for InfoLimits {
    fn default() -> Self {
        InfoLimits {
            max_body: 512 * 1024,
            max_users: 1024,
        }
    }
}

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("conference-info of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed conference-info: {0}")]
    Xml(#[from] XmlError),
    #[error("malformed conference-info: the root element is not <conference-info xmlns=\"{NS}\">")]
    NotConferenceInfo,
    #[error("malformed conference-info: {0}")]
    Missing(&'static str),
    #[error("malformed conference-info: bad {0} {1:?}")]
    Bad(&'static str, String),
    #[error("conference-info lists more than {0} users")]
    TooManyUsers(usize),
}

fn text_of(e: &Element, local: &str) -> Option<String> {
    e.child(NS, local)
        .map(|n| n.text.trim().to_string())
        .filter(|t| !t.is_empty())
}

impl ConferenceInfo {
    /// Parses a document.
    pub fn parse(body: &[u8], limits: &InfoLimits) -> Result<ConferenceInfo, InfoError> {
        if body.len() > limits.max_body {
            return Err(InfoError::TooLarge {
                size: body.len(),
                limit: limits.max_body,
            });
        }
        let root = xml::parse(body)?;
        if !root.is(NS, "conference-info") {
            return Err(InfoError::NotConferenceInfo);
        }
        let entity = root
            .attr("entity")
            .ok_or(InfoError::Missing("<conference-info> without entity"))?
            .to_string();
        let version = root
            .attr("version")
            .ok_or(InfoError::Missing("<conference-info> without version"))?;
        let version = version
            .parse()
            .map_err(|_| InfoError::Bad("version", version.chars().take(16).collect()))?;
        let state = State::parse(root.attr("state"))?;
        let description = root.child(NS, "conference-description");
        let subject = description.and_then(|d| text_of(d, "subject"));
        let max_users = description
            .and_then(|d| text_of(d, "maximum-user-count"))
            .map(|v| {
                v.parse()
                    .map_err(|_| InfoError::Bad("maximum-user-count", v.chars().take(16).collect()))
            })
            .transpose()?;
        let mut users = Vec::new();
        for u in root
            .child(NS, "users")
            .into_iter()
            .flat_map(|us| us.children_named(NS, "user"))
        {
            if users.len() == limits.max_users {
                return Err(InfoError::TooManyUsers(limits.max_users));
            }
            let endpoint = u.child(NS, "endpoint");
            users.push(User {
                entity: u
                    .attr("entity")
                    .ok_or(InfoError::Missing("<user> without entity"))?
                    .to_string(),
                state: State::parse(u.attr("state"))?,
                display_text: text_of(u, "display-text"),
                roles: u
                    .child(NS, "roles")
                    .into_iter()
                    .flat_map(|r| r.children_named(NS, "entry"))
                    .map(|e| e.text.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect(),
                status: endpoint
                    .and_then(|e| text_of(e, "status"))
                    .map(|s| Status::parse(&s))
                    .transpose()?,
                departure: endpoint
                    .and_then(|e| text_of(e, "disconnection-method"))
                    .map(|s| Departure::parse(&s))
                    .transpose()?,
            });
        }
        Ok(ConferenceInfo {
            entity,
            state,
            version,
            subject,
            max_users,
            users,
        })
    }

    /// Prints the document (RFC 4575 §5 element order).
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<conference-info xmlns=\"{NS}\" entity=\"{}\" state=\"{}\" version=\"{}\">\n",
            esc(&self.entity),
            self.state.as_str(),
            self.version
        ));
        if self.subject.is_some() || self.max_users.is_some() {
            x.push_str("<conference-description>\n");
            if let Some(s) = &self.subject {
                x.push_str(&format!("<subject>{}</subject>\n", esc(s)));
            }
            if let Some(m) = self.max_users {
                x.push_str(&format!("<maximum-user-count>{m}</maximum-user-count>\n"));
            }
            x.push_str("</conference-description>\n");
        }
        if !self.users.is_empty() || self.state == State::Full {
            x.push_str("<users>\n");
            for u in &self.users {
                x.push_str(&format!(
                    "<user entity=\"{}\" state=\"{}\">\n",
                    esc(&u.entity),
                    u.state.as_str()
                ));
                if let Some(d) = &u.display_text {
                    x.push_str(&format!("<display-text>{}</display-text>\n", esc(d)));
                }
                if !u.roles.is_empty() {
                    x.push_str("<roles>");
                    for r in &u.roles {
                        x.push_str(&format!("<entry>{}</entry>", esc(r)));
                    }
                    x.push_str("</roles>\n");
                }
                if u.status.is_some() || u.departure.is_some() {
                    x.push_str(&format!("<endpoint entity=\"{}\">\n", esc(&u.entity)));
                    if let Some(s) = u.status {
                        x.push_str(&format!("<status>{}</status>\n", s.as_str()));
                    }
                    if let Some(d) = u.departure {
                        x.push_str(&format!(
                            "<disconnection-method>{}</disconnection-method>\n",
                            d.as_str()
                        ));
                    }
                    x.push_str("</endpoint>\n");
                }
                x.push_str("</user>\n");
            }
            x.push_str("</users>\n");
        }
        x.push_str("</conference-info>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> ConferenceInfo {
        let mut alice = User::new("sip:alice@ims.lab", Status::Connected);
        alice.roles = vec!["chairman".into()];
        alice.display_text = Some("Alice & <co>".into());
        ConferenceInfo {
            entity: "sip:chat-1@ims.lab".into(),
            state: State::Full,
            version: 1,
            subject: Some("Friday lunch".into()),
            max_users: Some(100),
            users: vec![
                alice,
                User::new("sip:bob@ims.lab", Status::Connected),
                User::new("sip:carol@ims.lab", Status::Pending),
            ],
        }
    }

    #[test]
    fn a_full_roster_prints_and_reads_back() {
        let r = roster();
        let x = r.to_xml();
        assert!(x.contains("<roles><entry>chairman</entry></roles>"), "{x}");
        assert!(x.contains("<subject>Friday lunch</subject>"), "{x}");
        assert_eq!(
            ConferenceInfo::parse(x.as_bytes(), &InfoLimits::default()).unwrap(),
            r
        );
    }

    #[test]
    fn a_partial_notify_with_a_booted_user_reads_back() {
        let mut bob = User::new("sip:bob@ims.lab", Status::Disconnected);
        bob.departure = Some(Departure::Booted);
        let mut gone = User::new("sip:carol@ims.lab", Status::Disconnected);
        gone.state = State::Deleted;
        let p = ConferenceInfo {
            entity: "sip:chat-1@ims.lab".into(),
            state: State::Partial,
            version: 2,
            subject: None,
            max_users: None,
            users: vec![bob, gone],
        };
        let x = p.to_xml();
        assert!(!x.contains("conference-description"), "{x}");
        assert_eq!(
            ConferenceInfo::parse(x.as_bytes(), &InfoLimits::default()).unwrap(),
            p
        );
    }

    #[test]
    fn what_rfc_4575_allows_reads_and_what_it_forbids_is_refused() {
        // Defaults: a document and a user without state are full.
        let doc = format!(
            "<conference-info xmlns=\"{NS}\" entity=\"sip:c@x\" version=\"7\"><users><user entity=\"sip:a@x\"><endpoint entity=\"sip:a@x\"><status>on-hold</status></endpoint></user></users></conference-info>"
        );
        let c = ConferenceInfo::parse(doc.as_bytes(), &InfoLimits::default()).unwrap();
        assert_eq!((c.state, c.version), (State::Full, 7));
        assert_eq!(c.users[0].status, Some(Status::Connected));
        let bad = [
            ("<users/>".to_string(), "root element"),
            (format!("<conference-info xmlns=\"{NS}\" version=\"1\"/>"), "without entity"),
            (format!("<conference-info xmlns=\"{NS}\" entity=\"sip:c@x\" version=\"x\"/>"), "bad version"),
            (format!("<conference-info xmlns=\"{NS}\" entity=\"sip:c@x\" version=\"1\" state=\"some\"/>"), "bad state"),
            (format!("<conference-info xmlns=\"{NS}\" entity=\"sip:c@x\" version=\"1\"><users><user/></users></conference-info>"), "without entity"),
            (format!("<conference-info xmlns=\"{NS}\" entity=\"sip:c@x\" version=\"1\"><users><user entity=\"sip:a@x\"><endpoint><status>asleep</status></endpoint></user></users></conference-info>"), "bad status"),
        ];
        for (doc, says) in bad {
            let e = ConferenceInfo::parse(doc.as_bytes(), &InfoLimits::default()).unwrap_err();
            assert!(e.to_string().contains(says), "{doc}: {e}");
        }
        let limits = InfoLimits {
            max_body: 100_000,
            max_users: 2,
        };
        let three = roster().to_xml();
        assert_eq!(
            ConferenceInfo::parse(three.as_bytes(), &limits).unwrap_err(),
            InfoError::TooManyUsers(2)
        );
    }
}
