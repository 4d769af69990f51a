//! The UE's side of RCS capability discovery (GSMA RCC.07 §2.6.1.1, RFC 3261 §11): it asks
//! another user with an OPTIONS through the core and answers the OPTIONS others send it, in
//! both cases with its own feature tags in Contact exactly as it registered them
//! ([`crate::rcs::caps::RCSLAB_UE_TAGS`]).

use std::time::Duration;

use super::Ue;
use crate::rcs::caps::{feature_tags, RCSLAB_UE_TAGS};
use crate::sip::{new_tag, Method, Request, Response};

/// Methods the rcslab UE handles (its Allow in an answer to OPTIONS, RFC 3261 §11.2).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, MESSAGE, OPTIONS, NOTIFY";

/// What an OPTIONS to another user found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capabilities {
    /// 200 OK: the feature tags of the answer's Contact, one per parameter, as carried.
    Found(Vec<String>),
    /// Any other final answer (480: not registered, 404: no such user, 408: no answer...):
    /// what a client falls back on.
    Failed {
        /// The status code.
        status: u16,
        /// The reason phrase, with the Warning text when there was one.
        reason: String,
    },
}

/// The 200 OK a UE gives an OPTIONS (RCC.07 §2.6.1.1.2): a To tag, Contact with our feature
/// tags (byte-exact what we registered, `extra` the tags beyond the RCS client's), Allow,
/// Accept and no body.
pub fn answer_options(req: &Request, contact_uri: &str, extra: &str) -> Response {
    let mut r = req.response(200, None);
    let to = r.headers.get("To").unwrap_or_default().to_string();
    if !to.contains(";tag=") {
        r.headers.set("To", format!("{to};tag={}", new_tag()));
    }
    r.headers
        .push("Contact", format!("<{contact_uri}>{RCSLAB_UE_TAGS}{extra}"));
    r.headers.push("Allow", ALLOW);
    r.headers.push("Accept", "application/sdp, message/cpim");
    r
}

/// Reads a final answer to OPTIONS into [`Capabilities`].
pub fn capabilities_of(resp: &Response) -> Capabilities {
    if resp.status == 200 {
        let tags = resp
            .headers
            .values("Contact")
            .iter()
            .filter_map(|c| feature_tags(c).ok())
            .next()
            .unwrap_or_default();
        return Capabilities::Found(tags);
    }
    let reason = match resp.headers.get("Warning") {
        Some(w) => format!("{} ({w})", resp.reason),
        None => resp.reason.clone(),
    };
    Capabilities::Failed {
        status: resp.status,
        reason,
    }
}

/// Makes `r` an RCS capability query (RCC.07 §2.6.1.1.1): our feature tags in Contact and
/// `Accept: application/sdp`.
pub fn dress_options(r: &mut Request, contact_uri: &str, extra: &str) {
    r.headers
        .push("Contact", format!("<{contact_uri}>{RCSLAB_UE_TAGS}{extra}"));
    r.headers.push("Accept", "application/sdp");
}

/// True when `found` says the other side takes RCS chat (the CPM session or standalone
/// messaging ICSI, RCC.07 §2.6.1.1.4).
pub fn takes_chat(found: &[String]) -> bool {
    found.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("+g.3gpp.icsi-ref")
            && (t.contains("oma.cpm.session") || t.contains("oma.cpm.msg"))
    })
}

impl Ue {
    /// Asks `target` for its capabilities (RCC.07 §2.6.1.1.1): an OPTIONS with our own
    /// feature tags in Contact and `Accept: application/sdp`, through the P-CSCF. Gives up
    /// after `wait` (then [`Capabilities::Failed`] with 408).
    pub async fn capabilities(&mut self, target: &str, wait: Duration) -> Capabilities {
        let mut r = self.new_request(Method::Options, target);
        dress_options(&mut r, &self.contact_uri(), &self.cfg.extra_tags);
        match tokio::time::timeout(wait, self.send(r)).await {
            Ok(resp) => capabilities_of(&resp),
            Err(_) => Capabilities::Failed {
                status: 408,
                reason: "Request Timeout (no final answer)".into(),
            },
        }
    }

    /// The 200 OK this UE gives an OPTIONS ([`answer_options`]).
    pub fn answer_options(&self, req: &Request) -> Response {
        answer_options(req, &self.contact_uri(), &self.cfg.extra_tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::SipMessage;

    const OPTIONS: &str = "OPTIONS sip:bob@ims.lab SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        From: <sip:alice@ims.lab>;tag=a\r\n\
        To: <sip:bob@ims.lab>\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Max-Forwards: 68\r\n\
        Content-Length: 0\r\n\r\n";

    fn options() -> Request {
        match SipMessage::parse(OPTIONS.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_answer_carries_the_registered_tags_and_reads_back_as_them() {
        let ok = answer_options(&options(), "sip:bob@127.0.0.1:40000", "");
        assert_eq!(ok.status, 200);
        assert!(ok.headers.get("To").unwrap().contains(";tag="));
        assert_eq!(
            ok.headers.get("Contact").unwrap(),
            format!("<sip:bob@127.0.0.1:40000>{RCSLAB_UE_TAGS}")
        );
        assert_eq!(ok.headers.get("Allow"), Some(ALLOW));
        let Capabilities::Found(tags) = capabilities_of(&ok) else {
            panic!("found")
        };
        assert_eq!(
            tags.iter().map(|t| format!(";{t}")).collect::<String>(),
            RCSLAB_UE_TAGS
        );
        assert!(takes_chat(&tags));
        assert!(!takes_chat(&["+g.3gpp.smsip".to_string()]));
    }

    #[test]
    fn a_480_or_404_is_a_failure_with_its_reason() {
        let mut r = options().response(480, None);
        r.headers
            .push("Warning", "399 scscf \"callee not registered\"");
        assert_eq!(
            capabilities_of(&r),
            Capabilities::Failed {
                status: 480,
                reason: "Temporarily Unavailable (399 scscf \"callee not registered\")".into()
            }
        );
        let r = options().response(404, None);
        assert_eq!(
            capabilities_of(&r),
            Capabilities::Failed {
                status: 404,
                reason: "Not Found".into()
            }
        );
    }
}
