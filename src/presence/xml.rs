//! A small namespace-aware XML tree (XML 1.0 with Namespaces in XML 1.0) for the presence
//! documents (PIDF, RLMI): built iteratively with quick-xml, with a depth cap, so that a hostile
//! body can neither overflow the stack on the way in nor on the way out (drop).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// How deep elements may nest; PIDF with RPID needs 4–5 levels.
pub(crate) const MAX_DEPTH: usize = 32;

/// Why a body is not well-formed XML (for us).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is not UTF-8 (both documents are UTF-8, RFC 3863 §4, RFC 4662 §5).
    #[error("not UTF-8")]
    NotUtf8,
    /// quick-xml refused it.
    #[error("XML error at byte {at}: {reason}")]
    Syntax {
        /// Where.
        at: u64,
        /// What quick-xml said.
        reason: String,
    },
    /// A prefix without a namespace declaration.
    #[error("undeclared namespace prefix {0:?}")]
    UnboundPrefix(String),
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    /// No root element, or text after it.
    #[error("{0}")]
    Structure(&'static str),
}

/// One element: its namespace, local name, attributes (raw names), children and text.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub local: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Character data directly inside, concatenated.
    pub text: String,
}

impl Element {
    /// The value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    /// The children in namespace `ns` named `local`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// The first child `{ns}local`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }
}

impl Drop for Element {
    /// Iterative drop: a deep tree must not recurse (it cannot be deeper than [`MAX_DEPTH`],
    /// but the cap is a parser rule and drop should not depend on it).
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut e) = stack.pop() {
            stack.append(&mut e.children);
        }
    }
}

fn syntax(r: &NsReader<&[u8]>, e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax {
        at: r.buffer_position(),
        reason: e.to_string(),
    }
}

fn namespace(res: ResolveResult) -> Result<Option<String>, XmlError> {
    match res {
        ResolveResult::Bound(ns) => Ok(Some(String::from_utf8_lossy(ns.as_ref()).into_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => Err(XmlError::UnboundPrefix(
            String::from_utf8_lossy(&p).into_owned(),
        )),
    }
}

/// Parses `body` into the tree of its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    // A byte order mark is allowed before the XML declaration (XML 1.0 §4.3.3).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = NsReader::from_reader(text.as_bytes());
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = r.buffer_position();
        let (res, ev) = r.read_resolved_event().map_err(|e| XmlError::Syntax {
            at: pos,
            reason: e.to_string(),
        })?;
        match ev {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err(XmlError::Structure("a second root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let ns = namespace(res)?;
                let local = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in s.attributes() {
                    let a = a.map_err(|e| syntax(&r, e))?;
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let value = a.unescape_value().map_err(|e| syntax(&r, e))?.into_owned();
                    attrs.push((key, value));
                }
                let el = Element {
                    ns,
                    local,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                };
                if matches!(ev, Event::Start(_)) {
                    stack.push(el);
                } else {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or(XmlError::Structure("an end tag without a start"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|e| syntax(&r, e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(XmlError::Structure("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let t = std::str::from_utf8(&c).map_err(|_| XmlError::NotUtf8)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(t),
                    None => return Err(XmlError::Structure("CDATA outside the root element")),
                }
            }
            // A DTD could declare entities we would not expand; PIDF and RLMI have none.
            Event::DocType(_) => return Err(XmlError::Structure("a DOCTYPE")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Structure("an element is not closed"));
    }
    root.ok_or(XmlError::Structure("no root element"))
}

/// Escapes text or an attribute value for our own documents.
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_resolve_and_text_unescapes() {
        let t = parse(br#"<?xml version="1.0"?><a xmlns="urn:x" xmlns:p="urn:p"><p:b k="1&amp;2">x &lt; y</p:b><c/></a>"#).unwrap();
        assert!(t.is("urn:x", "a"));
        let b = t.child("urn:p", "b").unwrap();
        assert_eq!(b.attr("k"), Some("1&2"));
        assert_eq!(b.text, "x < y");
        assert!(t.child("urn:x", "c").is_some());
        assert!(parse("\u{feff}<a/>".as_bytes()).is_ok(), "a BOM is allowed");
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"<p:a/>").is_err());
        assert!(parse(b"\xff").is_err());
        assert!(parse(b"<!DOCTYPE a><a/>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()).unwrap_err(), XmlError::TooDeep);
    }
}
