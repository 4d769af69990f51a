//! The Presence Information Data Format (PIDF, RFC 3863), with the person element of the data
//! model (RFC 4479), RPID activities (RFC 4480) and the OMA/RCS service description
//! (OMA Presence SIMPLE PIDF extensions, `urn:oma:xml:prs:pidf:oma-pres`): parse and print.
//!
//! Elements and namespaces we do not model are skipped on parse, as RFC 3863 §4.1 wants of a
//! reader ("MUST ignore"), and so they are not printed again.

use std::time::{SystemTime, UNIX_EPOCH};

use super::xml::{self, esc, Element, XmlError};

/// The PIDF namespace (RFC 3863 §4.1).
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// The data model namespace of `<dm:person>` (RFC 4479).
pub const DM_NS: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// The RPID namespace (RFC 4480).
pub const RPID_NS: &str = "urn:ietf:params:xml:ns:pidf:rpid";
/// The OMA presence namespace of `<op:service-description>`.
pub const OMA_PRES_NS: &str = "urn:oma:xml:prs:pidf:oma-pres";
/// The MIME type of a PIDF body (RFC 3863).
pub const CONTENT_TYPE: &str = "application/pidf+xml";

/// Caps applied while parsing, so that one PUBLISH cannot fill the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidfLimits {
    /// Largest body accepted, in bytes (above: [`PidfError::TooLarge`], a 413).
    pub max_body: usize,
    /// Most tuples in one document.
    pub max_tuples: usize,
}

impl Default for PidfLimits {
    fn default() -> Self {
        PidfLimits {
            max_body: 64 * 1024,
            max_tuples: 32,
        }
    }
}

/// Why a body is not a PIDF document we accept. `Display` reads "malformed PIDF: …" and suits
/// the reason of a 400 (or a Warning header); [`PidfError::status_code`] gives the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidfError {
    /// The body exceeds [`PidfLimits::max_body`].
    #[error("PIDF body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More tuples than [`PidfLimits::max_tuples`].
    #[error("malformed PIDF: more than {0} tuples")]
    TooManyTuples(usize),
    /// Not well-formed XML.
    #[error("malformed PIDF: {0}")]
    Xml(#[from] XmlError),
    /// The root is not `<presence>` in the PIDF namespace (RFC 3863 §4.1.1).
    #[error("malformed PIDF: the root element is not <presence xmlns=\"{PIDF_NS}\">")]
    NotPidf,
    /// A required attribute or element is missing.
    #[error("malformed PIDF: {0}")]
    Missing(&'static str),
    /// Two tuples with one id (RFC 3863 §4.1.2: ids are unique in a document).
    #[error("malformed PIDF: duplicate tuple id {0:?}")]
    DuplicateTupleId(String),
    /// `<basic>` other than open/closed (RFC 3863 §4.1.4).
    #[error("malformed PIDF: <basic> is {0:?}, not open or closed")]
    BadBasic(String),
}

impl PidfError {
    /// The SIP status this error answers a PUBLISH with: 413 for a body above the cap
    /// (RFC 3261 §21.4.14), else 400.
    pub fn status_code(&self) -> u16 {
        match self {
            PidfError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// `<basic>` (RFC 3863 §4.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basic {
    /// Reachable.
    Open,
    /// Not reachable.
    Closed,
}

impl Basic {
    /// The element text.
    pub fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

/// `<contact>` of a tuple (RFC 3863 §4.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The URI.
    pub uri: String,
    /// The `priority` attribute (a qvalue, kept as written).
    pub priority: Option<String>,
}

/// `<op:service-description>`: which RCS/OMA service a tuple stands for (e.g.
/// `org.openmobilealliance:IM-session`, version `1.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDescription {
    /// `<op:service-id>`.
    pub service_id: String,
    /// `<op:version>`.
    pub version: Option<String>,
}

/// One `<tuple>` (RFC 3863 §4.1.2): a device or service of the presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// `id`, unique in the document.
    pub id: String,
    /// `<status><basic>`; `<status>` must be there, `<basic>` may not (RFC 3863 §4.1.3–4.1.4).
    pub basic: Option<Basic>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s.
    pub notes: Vec<String>,
    /// `<timestamp>` (RFC 3863 §4.1.7), an RFC 3339 date-time as written.
    pub timestamp: Option<String>,
    /// `<op:service-description>`.
    pub service: Option<ServiceDescription>,
}

impl Tuple {
    /// A tuple with a basic status and nothing else.
    pub fn new(id: &str, basic: Basic) -> Tuple {
        Tuple {
            id: id.to_string(),
            basic: Some(basic),
            contact: None,
            notes: Vec::new(),
            timestamp: None,
            service: None,
        }
    }
}

/// An RPID activity (RFC 4480 `<activities>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// `<rpid:away/>`.
    Away,
    /// `<rpid:busy/>`.
    Busy,
    /// `<rpid:on-the-phone/>`.
    OnThePhone,
    /// `<rpid:meeting/>`.
    Meeting,
    /// `<rpid:meal/>`.
    Meal,
    /// `<rpid:vacation/>`.
    Vacation,
    /// `<rpid:unknown/>`.
    Unknown,
    /// Another RFC 4480 token (`<rpid:sleeping/>`, `<rpid:travel/>`, …), by element name.
    Token(String),
    /// `<rpid:other>text</rpid:other>`.
    Other(String),
}

impl Activity {
    fn from_element(e: &Element) -> Activity {
        match e.local.as_str() {
            "away" => Activity::Away,
            "busy" => Activity::Busy,
            "on-the-phone" => Activity::OnThePhone,
            "meeting" => Activity::Meeting,
            "meal" => Activity::Meal,
            "vacation" => Activity::Vacation,
            "unknown" => Activity::Unknown,
            "other" => Activity::Other(e.text.trim().to_string()),
            t => Activity::Token(t.to_string()),
        }
    }

    fn to_xml(&self, out: &mut String) {
        let token = match self {
            Activity::Away => "away",
            Activity::Busy => "busy",
            Activity::OnThePhone => "on-the-phone",
            Activity::Meeting => "meeting",
            Activity::Meal => "meal",
            Activity::Vacation => "vacation",
            Activity::Unknown => "unknown",
            Activity::Token(t) => t,
            Activity::Other(text) => {
                out.push_str(&format!("<rpid:other>{}</rpid:other>", esc(text)));
                return;
            }
        };
        out.push_str(&format!("<rpid:{token}/>"));
    }
}

/// `<dm:person>` (RFC 4479): the human behind the devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `id`.
    pub id: String,
    /// `<rpid:activities>` (RFC 4480).
    pub activities: Vec<Activity>,
    /// `<dm:note>`.
    pub note: Option<String>,
    /// `<dm:timestamp>`.
    pub timestamp: Option<String>,
}

/// A PIDF document (RFC 3863 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pidf {
    /// `entity`: the presentity's URI (`pres:` or `sip:`).
    pub entity: String,
    /// The tuples, in document order.
    pub tuples: Vec<Tuple>,
    /// The person element, if any.
    pub person: Option<Person>,
    /// `<note>`s directly under `<presence>`.
    pub notes: Vec<String>,
}

/// The trimmed text of `e`, or `None` when empty.
fn text_of(e: &Element) -> Option<String> {
    let t = e.text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The non-empty notes among `e`'s children `{ns}note`.
fn notes_of(e: &Element, ns: &str) -> Vec<String> {
    e.children_named(ns, "note").filter_map(text_of).collect()
}

impl Pidf {
    /// A document with no tuples: what a watcher of a presentity without state is shown
    /// (RFC 3856 §6.6.2 leaves the "neutral" document to local policy).
    pub fn empty(entity: &str) -> Pidf {
        Pidf {
            entity: entity.to_string(),
            tuples: Vec::new(),
            person: None,
            notes: Vec::new(),
        }
    }

    /// Parses a PIDF body under `limits`.
    pub fn parse(body: &[u8], limits: &PidfLimits) -> Result<Pidf, PidfError> {
        if body.len() > limits.max_body {
            return Err(PidfError::TooLarge {
                size: body.len(),
                limit: limits.max_body,
            });
        }
        let root = xml::parse(body)?;
        Self::from_element(&root, limits)
    }

    pub(crate) fn from_element(root: &Element, limits: &PidfLimits) -> Result<Pidf, PidfError> {
        if !root.is(PIDF_NS, "presence") {
            return Err(PidfError::NotPidf);
        }
        let entity = root
            .attr("entity")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or(PidfError::Missing("<presence> without an entity attribute"))?
            .to_string();
        let mut tuples: Vec<Tuple> = Vec::new();
        for t in root.children_named(PIDF_NS, "tuple") {
            if tuples.len() == limits.max_tuples {
                return Err(PidfError::TooManyTuples(limits.max_tuples));
            }
            let tuple = Self::tuple(t)?;
            if tuples.iter().any(|x| x.id == tuple.id) {
                return Err(PidfError::DuplicateTupleId(tuple.id));
            }
            tuples.push(tuple);
        }
        // RPID puts the person in the data-model namespace; some old clients write it in the
        // PIDF one. Read both.
        let person = root
            .children
            .iter()
            .find(|c| c.is(DM_NS, "person") || c.is(PIDF_NS, "person"))
            .map(Self::person);
        Ok(Pidf {
            entity,
            tuples,
            person,
            notes: notes_of(root, PIDF_NS),
        })
    }

    fn tuple(t: &Element) -> Result<Tuple, PidfError> {
        let id = t
            .attr("id")
            .filter(|i| !i.is_empty())
            .ok_or(PidfError::Missing("<tuple> without an id"))?
            .to_string();
        let status = t
            .child(PIDF_NS, "status")
            .ok_or(PidfError::Missing("<tuple> without <status>"))?;
        let basic = match status.child(PIDF_NS, "basic").map(|b| b.text.trim()) {
            None => None,
            Some("open") => Some(Basic::Open),
            Some("closed") => Some(Basic::Closed),
            Some(other) => return Err(PidfError::BadBasic(other.to_string())),
        };
        let contact = t.child(PIDF_NS, "contact").and_then(|c| {
            text_of(c).map(|uri| Contact {
                uri,
                priority: c.attr("priority").map(str::to_string),
            })
        });
        let service = t.child(OMA_PRES_NS, "service-description").and_then(|sd| {
            let service_id = sd.child(OMA_PRES_NS, "service-id").and_then(text_of)?;
            let version = sd.child(OMA_PRES_NS, "version").and_then(text_of);
            Some(ServiceDescription {
                service_id,
                version,
            })
        });
        Ok(Tuple {
            id,
            basic,
            contact,
            notes: notes_of(t, PIDF_NS),
            timestamp: t.child(PIDF_NS, "timestamp").and_then(text_of),
            service,
        })
    }

    fn person(p: &Element) -> Person {
        let ns = p.ns.clone().unwrap_or_default();
        let activities = p
            .child(RPID_NS, "activities")
            .map(|a| {
                a.children
                    .iter()
                    .filter(|c| c.ns.as_deref() == Some(RPID_NS))
                    .map(Activity::from_element)
                    .collect()
            })
            .unwrap_or_default();
        // The note and timestamp of a person are in the data-model namespace (RFC 4479);
        // accept the PIDF spelling too.
        let child = |local: &str| p.child(&ns, local).or_else(|| p.child(PIDF_NS, local));
        Person {
            id: p.attr("id").unwrap_or_default().to_string(),
            activities,
            note: child("note").and_then(text_of),
            timestamp: child("timestamp").and_then(text_of),
        }
    }

    /// Prints the document (UTF-8, the namespaces declared on the root).
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<presence xmlns=\"{PIDF_NS}\" xmlns:dm=\"{DM_NS}\" xmlns:rpid=\"{RPID_NS}\" xmlns:op=\"{OMA_PRES_NS}\" entity=\"{}\">\n",
            esc(&self.entity)
        ));
        for t in &self.tuples {
            x.push_str(&format!(" <tuple id=\"{}\">\n  <status>", esc(&t.id)));
            if let Some(b) = t.basic {
                x.push_str(&format!("<basic>{}</basic>", b.as_str()));
            }
            x.push_str("</status>\n");
            if let Some(s) = &t.service {
                x.push_str(&format!(
                    "  <op:service-description><op:service-id>{}</op:service-id>",
                    esc(&s.service_id)
                ));
                if let Some(v) = &s.version {
                    x.push_str(&format!("<op:version>{}</op:version>", esc(v)));
                }
                x.push_str("</op:service-description>\n");
            }
            if let Some(c) = &t.contact {
                match &c.priority {
                    Some(p) => x.push_str(&format!("  <contact priority=\"{}\">", esc(p))),
                    None => x.push_str("  <contact>"),
                }
                x.push_str(&format!("{}</contact>\n", esc(&c.uri)));
            }
            for n in &t.notes {
                x.push_str(&format!("  <note>{}</note>\n", esc(n)));
            }
            if let Some(ts) = &t.timestamp {
                x.push_str(&format!("  <timestamp>{}</timestamp>\n", esc(ts)));
            }
            x.push_str(" </tuple>\n");
        }
        if let Some(p) = &self.person {
            x.push_str(&format!(" <dm:person id=\"{}\">\n", esc(&p.id)));
            if !p.activities.is_empty() {
                x.push_str("  <rpid:activities>");
                for a in &p.activities {
                    a.to_xml(&mut x);
                }
                x.push_str("</rpid:activities>\n");
            }
            if let Some(n) = &p.note {
                x.push_str(&format!("  <dm:note>{}</dm:note>\n", esc(n)));
            }
            if let Some(ts) = &p.timestamp {
                x.push_str(&format!("  <dm:timestamp>{}</dm:timestamp>\n", esc(ts)));
            }
            x.push_str(" </dm:person>\n");
        }
        for n in &self.notes {
            x.push_str(&format!(" <note>{}</note>\n", esc(n)));
        }
        x.push_str("</presence>\n");
        x
    }

    /// Whether any tuple is `open`.
    pub fn is_open(&self) -> bool {
        self.tuples.iter().any(|t| t.basic == Some(Basic::Open))
    }
}

/// An RFC 3339 UTC date-time with seconds (`2026-12-01T15:50:33Z`), the form of
/// `<timestamp>` (RFC 3863 §4.1.7). Times before 1970 print as the epoch.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// In the shape baresip's presence module and linphone publish: default PIDF namespace,
    /// `dm:person` with RPID activities, one tuple with basic status and contact (built from
    /// RFC 3863's and RFC 4480's examples, not captured from the wire).
    const CLIENT_PIDF: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n\
    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n\
    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\r\n\
    entity=\"sip:alice@ims.rcslab.test\">\r\n\
  <dm:person id=\"p4159\">\r\n\
    <rpid:activities><rpid:on-the-phone/></rpid:activities>\r\n\
    <dm:note>In a call</dm:note>\r\n\
  </dm:person>\r\n\
  <tuple id=\"t4109\">\r\n\
    <status>\r\n\
      <basic>open</basic>\r\n\
    </status>\r\n\
    <contact priority=\"0.8\">sip:alice@127.0.0.1:5062</contact>\r\n\
    <note xml:lang=\"en\">Don't Disturb Me!</note>\r\n\
    <timestamp>2026-12-01T15:00:00Z</timestamp>\r\n\
  </tuple>\r\n\
</presence>\r\n";

    /// RFC 3863's example with the OMA service description an RCS client adds.
    const RCS_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf" xmlns:op="urn:oma:xml:prs:pidf:oma-pres"
    xmlns:myex="http://id.example.com/presence/" entity="pres:someone@example.com">
  <impp:tuple id="ck8">
    <impp:status><impp:basic>open</impp:basic><myex:location>home</myex:location></impp:status>
    <op:service-description>
      <op:service-id>org.openmobilealliance:IM-session</op:service-id>
      <op:version>1.0</op:version>
    </op:service-description>
    <impp:contact priority="0.8">im:someone@mobilecarrier.net</impp:contact>
    <impp:note xml:lang="en">Don't Disturb Me!</impp:note>
    <impp:note xml:lang="fr">Ne derangez pas, s'il vous plait</impp:note>
    <impp:timestamp>2001-10-27T16:49:29Z</impp:timestamp>
  </impp:tuple>
  <impp:note xml:lang="en">I'll be in Tokyo next week</impp:note>
</impp:presence>"#;

    #[test]
    fn a_client_document_parses() {
        let p = Pidf::parse(CLIENT_PIDF.as_bytes(), &PidfLimits::default()).unwrap();
        assert_eq!(p.entity, "sip:alice@ims.rcslab.test");
        assert_eq!(p.tuples.len(), 1);
        let t = &p.tuples[0];
        assert_eq!(t.id, "t4109");
        assert_eq!(t.basic, Some(Basic::Open));
        assert_eq!(
            t.contact,
            Some(Contact {
                uri: "sip:alice@127.0.0.1:5062".into(),
                priority: Some("0.8".into())
            })
        );
        assert_eq!(t.notes, ["Don't Disturb Me!"]);
        assert_eq!(t.timestamp.as_deref(), Some("2026-12-01T15:00:00Z"));
        let person = p.person.as_ref().unwrap();
        assert_eq!(person.activities, [Activity::OnThePhone]);
        assert_eq!(person.note.as_deref(), Some("In a call"));
        assert!(p.is_open());
    }

    #[test]
    fn prefixed_pidf_with_service_description_parses_and_skips_unknown_elements() {
        let p = Pidf::parse(RCS_PIDF.as_bytes(), &PidfLimits::default()).unwrap();
        assert_eq!(p.entity, "pres:someone@example.com");
        let t = &p.tuples[0];
        assert_eq!(
            t.service,
            Some(ServiceDescription {
                service_id: "org.openmobilealliance:IM-session".into(),
                version: Some("1.0".into())
            })
        );
        assert_eq!(t.notes.len(), 2);
        assert_eq!(p.notes, ["I'll be in Tokyo next week"]);
        assert!(p.person.is_none());
    }

    #[test]
    fn documents_round_trip() {
        for doc in [CLIENT_PIDF, RCS_PIDF] {
            let p = Pidf::parse(doc.as_bytes(), &PidfLimits::default()).unwrap();
            let again = Pidf::parse(p.to_xml().as_bytes(), &PidfLimits::default()).unwrap();
            assert_eq!(again, p);
        }
        let mut p = Pidf::empty("sip:b@x");
        let mut t = Tuple::new("a<&>\"'", Basic::Closed);
        t.notes.push("x < y & \"z\"".into());
        p.tuples.push(t);
        p.tuples.push(Tuple {
            basic: None,
            ..Tuple::new("nb", Basic::Open)
        });
        p.person = Some(Person {
            id: "p".into(),
            activities: vec![
                Activity::Away,
                Activity::Busy,
                Activity::Token("sleeping".into()),
                Activity::Other("gardening <outside>".into()),
            ],
            note: None,
            timestamp: Some("2026-01-01T00:00:00Z".into()),
        });
        let again = Pidf::parse(p.to_xml().as_bytes(), &PidfLimits::default()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn parse_errors_are_typed_and_read_as_a_400_reason() {
        let l = PidfLimits::default();
        let e = Pidf::parse(b"<presence/>", &l).unwrap_err();
        assert_eq!(e, PidfError::NotPidf);
        assert!(e.to_string().starts_with("malformed PIDF: "), "{e}");
        assert_eq!(e.status_code(), 400);
        let no_entity = format!("<presence xmlns=\"{PIDF_NS}\"/>");
        assert!(matches!(
            Pidf::parse(no_entity.as_bytes(), &l),
            Err(PidfError::Missing(_))
        ));
        let doc = |tuples: &str| {
            format!("<presence xmlns=\"{PIDF_NS}\" entity=\"sip:a@x\">{tuples}</presence>")
        };
        let t = |id: &str, basic: &str| {
            format!("<tuple id=\"{id}\"><status><basic>{basic}</basic></status></tuple>")
        };
        let bad_basic = doc(&t("a", "maybe"));
        assert_eq!(
            Pidf::parse(bad_basic.as_bytes(), &l),
            Err(PidfError::BadBasic("maybe".into()))
        );
        let dup = doc(&(t("a", "open") + &t("a", "closed")));
        assert_eq!(
            Pidf::parse(dup.as_bytes(), &l),
            Err(PidfError::DuplicateTupleId("a".into()))
        );
        let no_status = doc("<tuple id=\"a\"/>");
        assert!(matches!(
            Pidf::parse(no_status.as_bytes(), &l),
            Err(PidfError::Missing(_))
        ));
        let xml_err = Pidf::parse(b"<presence", &l).unwrap_err();
        assert!(matches!(xml_err, PidfError::Xml(_)));
        assert!(xml_err.to_string().starts_with("malformed PIDF: "));
        let many: String = (0..3).map(|i| t(&i.to_string(), "open")).collect();
        let small = PidfLimits { max_tuples: 2, ..l };
        assert_eq!(
            Pidf::parse(doc(&many).as_bytes(), &small),
            Err(PidfError::TooManyTuples(2))
        );
    }

    #[test]
    fn a_body_above_the_cap_is_a_413() {
        let l = PidfLimits {
            max_body: 100,
            max_tuples: 8,
        };
        let e = Pidf::parse(CLIENT_PIDF.as_bytes(), &l).unwrap_err();
        assert_eq!(
            e,
            PidfError::TooLarge {
                size: CLIENT_PIDF.len(),
                limit: 100
            }
        );
        assert_eq!(e.status_code(), 413);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_001_609_369);
        assert_eq!(timestamp(t), "2001-09-27T16:49:29Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00Z");
    }
}
