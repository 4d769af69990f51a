//! A recipient list (RFC 5366 §4, RFC 5368 §4): an RFC 4826 `resource-lists` document carried
//! with `Content-Disposition: recipient-list` in the INVITE that creates a group chat (to the
//! conference factory) or in a REFER that adds members in a batch (`multiple-refer`). Each
//! entry may say how the URI is to be copied (RFC 5364 `copyControl`: `to`, `cc`, `bcc`, and
//! `anonymize`), as rcsjta writes it:
//!
//! ```xml
//! <resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"
//!                 xmlns:cp="urn:ietf:params:xml:ns:copyControl">
//!   <list>
//!     <entry uri="sip:bob@ims.lab" cp:copyControl="to"/>
//!   </list>
//! </resource-lists>
//! ```
//!
//! Pure: bytes in, a [`RecipientList`] or a typed [`ListError`] out (with the SIP status a
//! focus answers: 400 for a malformed list, 403 for one over the group's size, 413 for a body
//! over the byte limit). Nested `<list>`s are flattened; a URI listed twice counts once (RFC
//! 5366 §4.1: the URI-list service removes duplicates). `<entry-ref>` and `<external>` point
//! to documents elsewhere, which a recipient list must not (RFC 5366 §4): refused.

use crate::presence::xml::{self, esc, Element, XmlError};

/// The resource-lists namespace (RFC 4826 §3.4).
pub const NS: &str = "urn:ietf:params:xml:ns:resource-lists";
/// The copyControl namespace (RFC 5364 §4).
pub const CP_NS: &str = "urn:ietf:params:xml:ns:copyControl";
/// The MIME type (RFC 4826 §3.2).
pub const CONTENT_TYPE: &str = "application/resource-lists+xml";
/// Longest URI accepted in an entry.
pub const MAX_URI: usize = 256;

/// How a recipient is to be copied (RFC 5364 §4.1); `to` when the entry says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyControl {
    #[default]
    To,
    Cc,
    Bcc,
}

impl CopyControl {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyControl::To => "to",
            CopyControl::Cc => "cc",
            CopyControl::Bcc => "bcc",
        }
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub uri: String,
    pub copy: CopyControl,
    /// `cp:anonymize="true"` (RFC 5364 §4.2).
    pub anonymize: bool,
    /// `<display-name>`, if any.
    pub display_name: Option<String>,
}

impl Recipient {
    /// A `to` recipient with no display name.
    pub fn to(uri: &str) -> Recipient {
        Recipient {
            uri: uri.to_string(),
            copy: CopyControl::To,
            anonymize: false,
            display_name: None,
        }
    }
}

/// The recipients, in document order, each URI once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecipientList {
    pub recipients: Vec<Recipient>,
}

/// Why a recipient list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("recipient list of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed recipient list: {0}")]
    Xml(#[from] XmlError),
    #[error("malformed recipient list: the root element is not <resource-lists xmlns=\"{NS}\">")]
    NotResourceLists,
    #[error("malformed recipient list: no <list>")]
    NoList,
    #[error("malformed recipient list: <entry> without uri")]
    NoUri,
    #[error("recipient {0:?} is not a sip:, sips: or tel: URI")]
    BadUri(String),
    #[error("recipient list: cp:copyControl {0:?} is not to, cc or bcc")]
    BadCopyControl(String),
    #[error("recipient list: <{0}> points outside the document (RFC 5366 §4)")]
    Reference(&'static str),
    #[error("recipient list of {count} or more exceeds the limit of {limit} participants")]
    TooMany { count: usize, limit: usize },
    #[error("recipient list is empty")]
    Empty,
}

impl ListError {
    /// The status a focus answers with (RFC 5366 §4.1: 403 for more recipients than it
    /// serves; 413 for a body over its size; 400 otherwise).
    pub fn status_code(&self) -> u16 {
        match self {
            ListError::TooLarge { .. } => 413,
            ListError::TooMany { .. } => 403,
            _ => 400,
        }
    }
}

/// Whether `uri` may stand in a recipient list.
pub fn valid_uri(uri: &str) -> bool {
    let scheme_ok = ["sip:", "sips:", "tel:"]
        .iter()
        .any(|s| uri.len() > s.len() && uri[..s.len()].eq_ignore_ascii_case(s));
    scheme_ok
        && uri.len() <= MAX_URI
        && !uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
}

/// The text of the first child `{NS}name`.
fn child_text(e: &Element, local: &str) -> Option<String> {
    e.child(NS, local)
        .map(|n| n.text.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// An attribute in the copyControl namespace: quick-xml gives raw names, so any prefix bound
/// to [`CP_NS`] on the way counts; rcsjta uses `cp:`.
fn cp_attr<'a>(e: &'a Element, prefixes: &[String], local: &str) -> Option<&'a str> {
    e.attrs.iter().find_map(|(k, v)| {
        let (p, l) = k.split_once(':')?;
        (l == local && prefixes.iter().any(|x| x == p)).then_some(v.as_str())
    })
}

impl RecipientList {
    /// A list of `to` recipients.
    pub fn of(uris: &[&str]) -> RecipientList {
        RecipientList {
            recipients: uris.iter().map(|u| Recipient::to(u)).collect(),
        }
    }

    /// The URIs, in order.
    pub fn uris(&self) -> Vec<&str> {
        self.recipients.iter().map(|r| r.uri.as_str()).collect()
    }

    /// Parses a recipient list of at most `max_recipients` distinct URIs in `max_body` bytes.
    pub fn parse(
        body: &[u8],
        max_recipients: usize,
        max_body: usize,
    ) -> Result<RecipientList, ListError> {
        if body.len() > max_body {
            return Err(ListError::TooLarge {
                size: body.len(),
                limit: max_body,
            });
        }
        let root = xml::parse(body)?;
        if !root.is(NS, "resource-lists") {
            return Err(ListError::NotResourceLists);
        }
        // The prefixes bound to the copyControl namespace anywhere on the root (rcsjta and
        // RFC 5364's examples declare it there).
        let prefixes: Vec<String> = root
            .attrs
            .iter()
            .filter(|(k, v)| v == CP_NS && k.starts_with("xmlns:"))
            .map(|(k, _)| k["xmlns:".len()..].to_string())
            .chain(std::iter::once("cp".to_string()))
            .collect();
        let mut lists: Vec<&Element> = root.children_named(NS, "list").collect();
        if lists.is_empty() {
            return Err(ListError::NoList);
        }
        let mut out = RecipientList::default();
        // Depth-first, document order; nesting is bounded by the XML parser's depth cap.
        lists.reverse();
        while let Some(list) = lists.pop() {
            for child in list.children.iter().rev() {
                if child.is(NS, "list") {
                    lists.push(child);
                }
            }
            for child in &list.children {
                if child.is(NS, "entry-ref") {
                    return Err(ListError::Reference("entry-ref"));
                }
                if child.is(NS, "external") {
                    return Err(ListError::Reference("external"));
                }
                if !child.is(NS, "entry") {
                    continue;
                }
                let uri = child.attr("uri").ok_or(ListError::NoUri)?.trim();
                if !valid_uri(uri) {
                    return Err(ListError::BadUri(uri.chars().take(64).collect()));
                }
                let copy = match cp_attr(child, &prefixes, "copyControl") {
                    None | Some("to") => CopyControl::To,
                    Some("cc") => CopyControl::Cc,
                    Some("bcc") => CopyControl::Bcc,
                    Some(v) => return Err(ListError::BadCopyControl(v.chars().take(16).collect())),
                };
                let anonymize =
                    matches!(cp_attr(child, &prefixes, "anonymize"), Some("true" | "1"));
                if out
                    .recipients
                    .iter()
                    .any(|r| r.uri.eq_ignore_ascii_case(uri))
                {
                    continue;
                }
                if out.recipients.len() == max_recipients {
                    return Err(ListError::TooMany {
                        count: max_recipients + 1,
                        limit: max_recipients,
                    });
                }
                out.recipients.push(Recipient {
                    uri: uri.to_string(),
                    copy,
                    anonymize,
                    display_name: child_text(child, "display-name"),
                });
            }
        }
        if out.recipients.is_empty() {
            return Err(ListError::Empty);
        }
        Ok(out)
    }

    /// The document, as rcsjta writes it.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<resource-lists xmlns=\"{NS}\" xmlns:cp=\"{CP_NS}\">\n<list>\n"
        ));
        for r in &self.recipients {
            x.push_str(&format!(
                "<entry uri=\"{}\" cp:copyControl=\"{}\"",
                esc(&r.uri),
                r.copy.as_str()
            ));
            if r.anonymize {
                x.push_str(" cp:anonymize=\"true\"");
            }
            match &r.display_name {
                Some(n) => x.push_str(&format!(
                    "><display-name>{}</display-name></entry>\n",
                    esc(n)
                )),
                None => x.push_str("/>\n"),
            }
        }
        x.push_str("</list>\n</resource-lists>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RCSJTA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:cp="urn:ietf:params:xml:ns:copyControl">
<list>
<entry uri="sip:bob@ims.lab" cp:copyControl="to"/>
<entry uri="tel:+821012345678" cp:copyControl="cc"/>
<entry uri="sip:carol@ims.lab"><display-name>Carol</display-name></entry>
</list>
</resource-lists>"#;

    #[test]
    fn an_rcsjta_list_parses_with_copy_control_and_names() {
        let l = RecipientList::parse(RCSJTA.as_bytes(), 100, 65536).unwrap();
        assert_eq!(
            l.uris(),
            ["sip:bob@ims.lab", "tel:+821012345678", "sip:carol@ims.lab"]
        );
        assert_eq!(l.recipients[1].copy, CopyControl::Cc);
        assert_eq!(l.recipients[2].copy, CopyControl::To);
        assert_eq!(l.recipients[2].display_name.as_deref(), Some("Carol"));
    }

    #[test]
    fn what_it_prints_it_reads_back() {
        let mut l = RecipientList::of(&["sip:bob@ims.lab", "sip:carol@ims.lab"]);
        l.recipients[1].copy = CopyControl::Bcc;
        l.recipients[1].anonymize = true;
        l.recipients[0].display_name = Some("Bob & co <b>".into());
        let back = RecipientList::parse(l.to_xml().as_bytes(), 10, 65536).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn nested_lists_flatten_and_duplicates_count_once() {
        let doc = format!(
            "<resource-lists xmlns=\"{NS}\"><list><entry uri=\"sip:a@x\"/><list><entry uri=\"sip:b@x\"/><entry uri=\"SIP:A@x\"/></list></list><list><entry uri=\"sip:c@x\"/></list></resource-lists>"
        );
        let l = RecipientList::parse(doc.as_bytes(), 10, 65536).unwrap();
        assert_eq!(l.uris(), ["sip:a@x", "sip:b@x", "sip:c@x"]);
    }

    #[test]
    fn bad_lists_get_typed_errors_and_the_status_a_focus_answers() {
        let list = |entries: &str| {
            format!("<resource-lists xmlns=\"{NS}\"><list>{entries}</list></resource-lists>")
        };
        let cases: Vec<(String, u16, &str)> = vec![
            ("<nope/>".into(), 400, "root element"),
            ("<resource-lists".into(), 400, "malformed"),
            (
                format!("<resource-lists xmlns=\"{NS}\"/>"),
                400,
                "no <list>",
            ),
            (list("<entry/>"), 400, "without uri"),
            (list("<entry uri=\"http://x\"/>"), 400, "not a sip:"),
            (list("<entry uri=\"sip:a b@x\"/>"), 400, "not a sip:"),
            (
                list(&format!(
                    "<entry xmlns:cp=\"{CP_NS}\" uri=\"sip:a@x\" cp:copyControl=\"all\"/>"
                )),
                400,
                "copyControl",
            ),
            (list("<entry-ref ref=\"x\"/>"), 400, "entry-ref"),
            (list("<external anchor=\"http://x\"/>"), 400, "external"),
            (list(""), 400, "empty"),
            (
                list("<entry uri=\"sip:a@x\"/><entry uri=\"sip:b@x\"/><entry uri=\"sip:c@x\"/>"),
                403,
                "limit of 2 participants",
            ),
        ];
        for (doc, status, says) in cases {
            let e = RecipientList::parse(doc.as_bytes(), 2, 65536).unwrap_err();
            assert_eq!(e.status_code(), status, "{doc}: {e}");
            assert!(e.to_string().contains(says), "{doc}: {e}");
        }
        let big = RecipientList::parse(&[b' '; 100], 2, 99).unwrap_err();
        assert_eq!(big.status_code(), 413);
    }
}
