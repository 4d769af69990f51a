//! Chat message revocation (GSMA RCC.07, "Message Revocation"): the sender of a chat message
//! that was not reported delivered asks the recipient's messaging server (T-IM, the
//! terminating participating function) to take it back before it sends the same text another
//! way (SMS). The request and its result travel in pager mode: a SIP MESSAGE whose CPIM body
//! carries `application/vnd.gsma.rcsrevoke+xml`, answered 200 at once; the outcome comes later
//! in a MESSAGE of its own from the recipient's side to the sender.
//!
//! ```xml
//! <rcsrevoke xmlns="urn:gsma:params:xml:ns:rcs:rcs:rcsrevoke">
//!   <Message-ID>the imdn.Message-ID of the message to revoke</Message-ID>
//!   <result>success</result>   <!-- only in the outcome: success or failed -->
//! </rcsrevoke>
//! ```
//!
//! The XML namespace, the content type and the feature tag are RCC.07's; the element names are
//! how this lab writes them (the specification's text was not at hand). Pure: no sockets.

use crate::cpim::Cpim;

/// Content-Type of a revocation request or outcome.
pub const REVOKE_TYPE: &str = "application/vnd.gsma.rcsrevoke+xml";
/// Its XML namespace.
pub const REVOKE_NS: &str = "urn:gsma:params:xml:ns:rcs:rcs:rcsrevoke";
/// The feature tag of a client (or network) that handles revocation.
pub const MSGREVOKE_TAG: &str = "+g.gsma.rcs.msgrevoke";

/// A revocation request (`result` none) or its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoke {
    /// The imdn.Message-ID of the chat message.
    pub message_id: String,
    /// The outcome: `Some(true)` revoked, `Some(false)` not (delivered already, being
    /// delivered, or unknown).
    pub result: Option<bool>,
}

/// A body that is not a revocation document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rcsrevoke: {0}")]
pub struct RevokeError(String);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Revoke {
    /// A request to revoke `message_id`.
    pub fn request(message_id: &str) -> Revoke {
        Revoke {
            message_id: message_id.to_string(),
            result: None,
        }
    }

    /// The outcome for `message_id`.
    pub fn outcome(message_id: &str, revoked: bool) -> Revoke {
        Revoke {
            message_id: message_id.to_string(),
            result: Some(revoked),
        }
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rcsrevoke xmlns=\"{REVOKE_NS}\">\n  <Message-ID>{}</Message-ID>\n",
            esc(&self.message_id)
        );
        if let Some(ok) = self.result {
            x.push_str(&format!(
                "  <result>{}</result>\n",
                if ok { "success" } else { "failed" }
            ));
        }
        x.push_str("</rcsrevoke>\n");
        x
    }

    /// Parses a revocation document. A result other than `success` reads as failed.
    pub fn parse(body: &[u8]) -> Result<Revoke, RevokeError> {
        use quick_xml::events::Event;
        let text = std::str::from_utf8(body).map_err(|_| RevokeError("not UTF-8".into()))?;
        let mut r = quick_xml::Reader::from_str(text);
        let (mut root, mut current) = (false, String::new());
        let (mut id, mut result) = (None, None);
        loop {
            match r.read_event() {
                Ok(Event::Start(e)) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                    if !root {
                        if name != "rcsrevoke" {
                            return Err(RevokeError(format!("root element <{name}>")));
                        }
                        root = true;
                    }
                    current = name;
                }
                Ok(Event::End(_)) => current.clear(),
                Ok(Event::Text(t)) => {
                    let v = t
                        .unescape()
                        .map_err(|e| RevokeError(e.to_string()))?
                        .trim()
                        .to_string();
                    if v.is_empty() {
                        continue;
                    }
                    match current.to_ascii_lowercase().as_str() {
                        "message-id" => id = Some(v),
                        "result" => result = Some(v.eq_ignore_ascii_case("success")),
                        _ => {}
                    }
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(RevokeError(format!("XML: {e}"))),
            }
        }
        if !root {
            return Err(RevokeError("no <rcsrevoke> element".into()));
        }
        Ok(Revoke {
            message_id: id.ok_or_else(|| RevokeError("no <Message-ID>".into()))?,
            result,
        })
    }

    /// Wrapped in CPIM from `from` to `to` (its own imdn.Message-ID, no disposition asked).
    pub fn to_cpim(&self, from: &str, to: &str) -> Cpim {
        Cpim::new(
            from,
            to,
            &super::new_id(),
            &super::now_datetime(),
            None,
            REVOKE_TYPE,
            self.to_xml().as_bytes(),
        )
    }
}

/// Accept-Contact of a revocation MESSAGE: the chat ICSI (so the iFC takes it to the
/// messaging servers that carried the chat) and the revocation feature tag.
pub fn accept_contact() -> String {
    format!("{};{MSGREVOKE_TAG}", super::ACCEPT_CHAT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_an_outcome_round_trip() {
        let req = Revoke::request("a<b");
        let x = req.to_xml();
        assert!(x.contains("<Message-ID>a&lt;b</Message-ID>"), "{x}");
        assert!(!x.contains("<result>"));
        assert_eq!(Revoke::parse(x.as_bytes()).unwrap(), req);
        for ok in [true, false] {
            let o = Revoke::outcome("m1", ok);
            assert_eq!(Revoke::parse(o.to_xml().as_bytes()).unwrap(), o);
        }
    }

    #[test]
    fn a_document_with_a_prefix_reads_and_bad_ones_say_why() {
        let x = format!(
            "<r:rcsrevoke xmlns:r=\"{REVOKE_NS}\"><r:Message-ID> m9 </r:Message-ID><r:result>Failed</r:result></r:rcsrevoke>"
        );
        assert_eq!(
            Revoke::parse(x.as_bytes()).unwrap(),
            Revoke::outcome("m9", false)
        );
        assert!(Revoke::parse(b"<imdn><Message-ID>x</Message-ID></imdn>")
            .unwrap_err()
            .to_string()
            .contains("root element"));
        assert!(Revoke::parse(b"<rcsrevoke/>").is_err());
        assert!(Revoke::parse(b"<rcsrevoke><Message-ID>x</rcsrevoke>").is_err());
        assert!(Revoke::parse(b"").is_err());
        assert!(Revoke::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn in_cpim_it_classifies_as_a_revocation() {
        let c = Revoke::request("m2").to_cpim("sip:ums@ims.lab", "tel:+15550003");
        let back = Cpim::parse(&c.to_bytes()).unwrap();
        assert_eq!(
            super::super::content(&back),
            super::super::Content::Revoke(Revoke::request("m2"))
        );
    }
}
