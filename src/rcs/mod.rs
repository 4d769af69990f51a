//! What RCS chat puts on the wire besides MSRP (GSMA RCC.07 / OMA CPM, as real clients send
//! it): the CPM feature tags (percent-encoded ICSI in Contact and Accept-Contact, plain in
//! P-Preferred-Service), Contribution-ID / Conversation-ID, the `multipart/mixed` body of an
//! INVITE that carries the first message, and CPIM wrappers for messages and IMDNs.
//!
//! A codec layer (it sat in `im` before): the messaging servers and the simulated UE both
//! use it, so the UE no longer imports a node module.

pub mod caps;
pub mod chatbot;
pub mod ft;
pub mod revoke;

use bytes::Bytes;

use crate::cpim::{Cpim, Imdn, ImdnStatus};
use crate::msrp::sdp::MsrpSdp;
use crate::sip::multipart::{self, Part};
use crate::sip::{Request, Response};

/// The text of the Warning T-IM puts on its 200 OK when it stored the first message for a
/// recipient who is not registered (`im::stored_warning`); clients look for it.
pub const STORED_WARNING: &str = "stored: recipient offline";

/// The OMA CPM session ICSI, plain (P-Preferred-Service / P-Asserted-Service).
pub const ICSI_CHAT: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session";
/// The chat feature tag as it goes in Contact and Accept-Contact (ICSI percent-encoded).
pub const CHAT_TAG: &str =
    "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"";
/// Accept-Contact of a chat INVITE.
pub const ACCEPT_CHAT: &str =
    "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"";
/// Accept-Contact of a SIP MESSAGE carrying an IMDN (OMA SIMPLE IM feature tag, which RCS uses
/// for disposition notifications sent outside the session).
pub const ACCEPT_IMDN: &str = "*;+g.oma.sip-im";
/// Content-Type of IMDN documents.
pub const IMDN_TYPE: &str = "message/imdn+xml";
/// Content-Type of is-composing documents.
pub const ISCOMPOSING_TYPE: &str = "application/im-iscomposing+xml";
/// Content-Type of a file transfer via HTTP (GSMA RCC.07 §3.2.5): the file-info document the
/// content server answered the upload with, sent as a chat message for the recipient to
/// download from.
pub const FT_HTTP_TYPE: &str = crate::fthttp::file_info::CONTENT_TYPE;

/// A fresh Contribution-ID / Conversation-ID / message id (32 hex digits).
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// RFC 3339 UTC time for CPIM DateTime.
pub fn now_datetime() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A chat message in CPIM: text/plain inside, asking for the given dispositions.
pub fn text_message(from: &str, to: &str, id: &str, text: &str, disposition: Option<&str>) -> Cpim {
    Cpim::new(
        from,
        to,
        id,
        &now_datetime(),
        disposition,
        "text/plain;charset=UTF-8",
        text.as_bytes(),
    )
}

/// An IMDN about message `about` (sent by `original_sender` to `reporter`), wrapped in CPIM
/// from the reporter (RFC 5438 §7.1.1: the IMDN carries its own imdn.Message-ID).
pub fn imdn_message(
    reporter: &str,
    original_sender: &str,
    about: &Cpim,
    status: ImdnStatus,
) -> Cpim {
    imdn_message_noted(reporter, original_sender, about, status, None)
}

/// [`imdn_message`] with a note saying how it was delivered or why it failed
/// ([`Imdn::note`]): what T-IM sends after a pager-mode fallback.
pub fn imdn_message_noted(
    reporter: &str,
    original_sender: &str,
    about: &Cpim,
    status: ImdnStatus,
    note: Option<&str>,
) -> Cpim {
    let imdn = Imdn {
        message_id: about.message_id().unwrap_or_default().to_string(),
        datetime: about.header("DateTime").unwrap_or_default().to_string(),
        recipient_uri: Some(reporter.to_string()),
        status,
        note: note.map(str::to_string),
    };
    imdn_cpim(reporter, original_sender, &imdn)
}

/// Wraps an IMDN document in CPIM.
pub fn imdn_cpim(reporter: &str, original_sender: &str, imdn: &Imdn) -> Cpim {
    Cpim::new(
        reporter,
        original_sender,
        &new_id(),
        &now_datetime(),
        None,
        IMDN_TYPE,
        imdn.to_xml().as_bytes(),
    )
}

/// What a CPIM document is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A user message (text).
    Text(String),
    /// A disposition notification.
    Imdn(Imdn),
    /// The sender's typing state.
    Composing(bool),
    /// A file transfer via HTTP (RCC.07 §3.2.5): the file-info document of a file on a
    /// content server.
    File(Box<crate::fthttp::FileInfo>),
    /// A chatbot's rich card ([`chatbot::BOT_MESSAGE_TYPE`]).
    Bot(chatbot::BotMessage),
    /// A user's tap on a chatbot's suggested reply ([`chatbot::SUGGESTION_RESPONSE_TYPE`]).
    Tap(chatbot::Reply),
    /// A request to revoke a chat message, or its outcome ([`revoke::REVOKE_TYPE`]).
    Revoke(revoke::Revoke),
    /// Something else (content type; a file-info document that does not read says why).
    Other(String),
}

/// Classifies a CPIM document by its inner Content-Type, reading the content with its
/// Content-Transfer-Encoding undone ([`Cpim::decoded_body`]); content that does not decode is
/// `Other`.
pub fn content(c: &Cpim) -> Content {
    let ct = c
        .content_type()
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    let Ok(body) = c.decoded_body() else {
        return Content::Other(format!("{ct} (undecodable Content-Transfer-Encoding)"));
    };
    let text = String::from_utf8_lossy(&body).to_string();
    if ct.starts_with(IMDN_TYPE) {
        match Imdn::parse(&text) {
            Ok(i) => Content::Imdn(i),
            Err(_) => Content::Other(ct),
        }
    } else if ct.starts_with(ISCOMPOSING_TYPE) {
        match crate::cpim::IsComposing::parse(&text) {
            Ok(i) => Content::Composing(i.active),
            Err(_) => Content::Other(ct),
        }
    } else if ct.starts_with(FT_HTTP_TYPE) {
        match crate::fthttp::FileInfo::parse(&body) {
            Ok(f) => Content::File(Box::new(f)),
            Err(e) => Content::Other(format!("{ct} ({e})")),
        }
    } else if ct.starts_with(chatbot::BOT_MESSAGE_TYPE) {
        match chatbot::BotMessage::parse(&body) {
            Ok(m) => Content::Bot(m),
            Err(e) => Content::Other(format!("{ct} ({e})")),
        }
    } else if ct.starts_with(chatbot::SUGGESTION_RESPONSE_TYPE) {
        match chatbot::parse_response(&body) {
            Ok(r) => Content::Tap(r),
            Err(e) => Content::Other(format!("{ct} ({e})")),
        }
    } else if ct.starts_with(revoke::REVOKE_TYPE) {
        match revoke::Revoke::parse(&body) {
            Ok(r) => Content::Revoke(r),
            Err(e) => Content::Other(format!("{ct} ({e})")),
        }
    } else if ct.starts_with("text/") {
        Content::Text(text)
    } else {
        Content::Other(ct)
    }
}

/// The SDP and the optional first message of a chat INVITE or its answer.
#[derive(Debug, Clone)]
pub struct ChatBody {
    /// The MSRP media.
    pub sdp: MsrpSdp,
    /// The first message (CPIM), when the INVITE carried one.
    pub first: Option<Bytes>,
}

/// Why the body of a chat INVITE or its answer does not read ([`chat_body`]). The texts go in
/// the Warning of a 488 (O-IM, T-IM) and in the UE's session failure.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChatBodyError {
    /// A multipart body that does not split into parts (RFC 2046).
    #[error(transparent)]
    Multipart(#[from] multipart::MultipartError),
    /// A multipart body without an `application/sdp` part.
    #[error("multipart without an SDP part")]
    NoSdpPart,
    /// The SDP does not describe MSRP media (RFC 4975 §8).
    #[error(transparent)]
    Sdp(#[from] crate::msrp::MsrpError),
    /// Neither `application/sdp` nor `multipart/…` (the Content-Type as given, trimmed).
    #[error("chat body of type '{0}'")]
    ContentType(String),
}

/// Reads the body of a chat INVITE / 200: `application/sdp`, or `multipart/mixed` with the SDP
/// and a `message/cpim` part.
pub fn chat_body(content_type: Option<&str>, body: &[u8]) -> Result<ChatBody, ChatBodyError> {
    let ct = content_type.unwrap_or("").trim();
    if ct.to_ascii_lowercase().starts_with("multipart/") {
        let parts = multipart::parse(ct, body)?;
        let sdp = parts
            .iter()
            .find(|p| p.content_type.eq_ignore_ascii_case("application/sdp"))
            .ok_or(ChatBodyError::NoSdpPart)?;
        let sdp = MsrpSdp::parse(&String::from_utf8_lossy(&sdp.body))?;
        let first = parts
            .iter()
            .find(|p| {
                p.content_type
                    .to_ascii_lowercase()
                    .starts_with("message/cpim")
            })
            .map(|p| p.body.clone());
        Ok(ChatBody { sdp, first })
    } else if ct.eq_ignore_ascii_case("application/sdp") {
        let sdp = MsrpSdp::parse(&String::from_utf8_lossy(body))?;
        Ok(ChatBody { sdp, first: None })
    } else {
        Err(ChatBodyError::ContentType(ct.to_string()))
    }
}

/// Puts an SDP (and a first message) into a request or response body.
pub fn set_chat_body(
    headers: &mut crate::sip::Headers,
    body: &mut Bytes,
    sdp: &MsrpSdp,
    first: Option<&[u8]>,
) {
    headers.remove("Content-Type");
    match first {
        Some(cpim) => {
            let (ct, b) = multipart::build(
                &format!("rcslab-{}", &new_id()[..12]),
                &[
                    Part::new("application/sdp", sdp.to_sdp().into_bytes()),
                    Part::new("message/cpim", Bytes::copy_from_slice(cpim)),
                ],
            );
            headers.push("Content-Type", ct);
            *body = Bytes::from(b);
        }
        None => {
            headers.push("Content-Type", "application/sdp");
            *body = Bytes::from(sdp.to_sdp().into_bytes());
        }
    }
}

/// Replaces the SDP of a request (keeping a first message it carries).
pub fn rewrite_request_sdp(req: &mut Request, sdp: &MsrpSdp) -> Result<ChatBody, ChatBodyError> {
    let cb = chat_body(req.headers.get("Content-Type"), &req.body)?;
    set_chat_body(&mut req.headers, &mut req.body, sdp, cb.first.as_deref());
    Ok(cb)
}

/// Replaces the SDP of a response.
pub fn rewrite_response_sdp(resp: &mut Response, sdp: &MsrpSdp) -> Result<ChatBody, ChatBodyError> {
    let cb = chat_body(resp.headers.get("Content-Type"), &resp.body)?;
    set_chat_body(&mut resp.headers, &mut resp.body, sdp, None);
    Ok(cb)
}

/// True for a request that opens an RCS chat session (INVITE with the CPM feature tag or an
/// MSRP offer).
pub fn is_chat_invite(req: &Request) -> bool {
    req.method == crate::sip::Method::Invite
        && (req
            .headers
            .values("Accept-Contact")
            .iter()
            .any(|v| v.contains("oma.cpm"))
            || chat_body(req.headers.get("Content-Type"), &req.body).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts go in the Warning of O-IM's and T-IM's 488 and in the UE's session failure.
    #[test]
    fn chat_body_errors_say_what_is_wrong() {
        let text = |ct: &str, body: &[u8]| chat_body(Some(ct), body).unwrap_err().to_string();
        assert_eq!(text("text/plain", b"hi"), "chat body of type 'text/plain'");
        assert_eq!(
            text("multipart/mixed", b""),
            "multipart without a boundary parameter"
        );
        let (ct, body) =
            multipart::build("b1", &[Part::new("text/plain", Bytes::from_static(b"x"))]);
        assert_eq!(text(&ct, &body), "multipart without an SDP part");
        assert!(text("application/sdp", b"v=0\r\n").starts_with("malformed MSRP: "));
    }

    #[test]
    fn chat_invite_body_with_first_message() {
        let sdp = MsrpSdp::rcs_chat("127.0.0.1", 9, "msrp://127.0.0.1:9/s1;tcp", "active");
        let cpim = text_message(
            "sip:a@x",
            "sip:b@x",
            "m1",
            "Hello?",
            Some("positive-delivery"),
        );
        let mut h = crate::sip::Headers::default();
        let mut body = Bytes::new();
        set_chat_body(&mut h, &mut body, &sdp, Some(&cpim.to_bytes()));
        let cb = chat_body(h.get("Content-Type"), &body).unwrap();
        assert_eq!(cb.sdp.path, sdp.path);
        let first = Cpim::parse(&cb.first.unwrap()).unwrap();
        assert_eq!(content(&first), Content::Text("Hello?".into()));
        assert!(first.wants("positive-delivery"));
        let dt = now_datetime();
        assert_eq!(dt.len(), 24, "{dt}");
        let report = imdn_message("sip:b@x", "sip:a@x", &first, ImdnStatus::Delivered);
        match content(&report) {
            Content::Imdn(i) => assert_eq!(i.message_id, "m1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_info_message_is_a_file_and_a_bad_one_says_why() {
        let doc = crate::fthttp::FileInfo {
            thumbnail: None,
            file: crate::fthttp::FileDesc {
                size: 3,
                name: "a.txt".into(),
                content_type: "text/plain".into(),
                url: "http://127.0.0.1:8083/files/ab".into(),
                until: "2030-01-01T00:00:00Z".into(),
                disposition: None,
            },
        };
        let c = Cpim::new(
            "sip:a@x",
            "sip:b@x",
            "m1",
            &now_datetime(),
            None,
            FT_HTTP_TYPE,
            doc.to_xml().as_bytes(),
        );
        assert_eq!(content(&c), Content::File(Box::new(doc)));
        let bad = Cpim::new(
            "sip:a@x",
            "sip:b@x",
            "m2",
            "x",
            None,
            FT_HTTP_TYPE,
            b"<file/>",
        );
        match content(&bad) {
            Content::Other(why) => assert!(
                why.starts_with(FT_HTTP_TYPE) && why.contains("file-info"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
