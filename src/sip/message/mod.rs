//! SIP messages (RFC 3261 §7): parsing, serialisation and stream framing (§18.3).
//!
//! The container is ours: an ordered list of (canonical name, raw value) header lines and the
//! body bytes, so a proxy forwards exactly what it received apart from what it edits. rsip 0.4
//! is used for what it gets right (the standard reason phrases, known method names); the
//! rest fills its measured gaps: TCP framing, compact header names, unknown methods (501 rather
//! than a parse failure), reason phrases kept verbatim, headers inserted at the front.
//! Nothing here panics on any input.
//!
//! Where things are: [`Method`] in `method`, the ordered header lines ([`Headers`]) in
//! `header_lines`, stream framing ([`frame`]) in `framing`, parsing and salvage in `parse`,
//! responses, CANCEL/ACK and fresh branch/tag/Call-ID in `builders`. Structured views of one
//! header value (Via, name-addr, CSeq) live in [`crate::sip::headers`], URIs in
//! [`crate::sip::uri`].

use bytes::Bytes;

use crate::sip::headers::{CSeq, Via};

mod builders;
mod framing;
mod header_lines;
mod method;
mod parse;

pub use builders::{default_reason, new_branch, new_call_id, new_tag, uas_response_with};
pub use framing::{frame, Frame, MAX_SKIP_SIZE};
pub use header_lines::Headers;
pub use method::Method;
pub use parse::salvage_request;

/// Largest message accepted on any transport.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Codec errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SipError {
    /// The bytes are not a valid SIP message.
    #[error("malformed SIP: {0}")]
    Malformed(String),
    /// The message exceeds [`MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
}

fn malformed(s: impl Into<String>) -> SipError {
    SipError::Malformed(s.into())
}

/// A SIP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI, verbatim.
    pub uri: String,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase, verbatim.
    pub reason: String,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl SipMessage {
    /// Serialises; Content-Length is always written and always right.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }

    /// Headers.
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    /// Headers, mutable.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            SipMessage::Request(r) => &mut r.headers,
            SipMessage::Response(r) => &mut r.headers,
        }
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.headers().get("Call-ID")
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.headers().get("CSeq").and_then(|c| CSeq::parse(c).ok())
    }

    /// Top Via.
    pub fn top_via(&self) -> Option<Via> {
        self.headers()
            .values("Via")
            .first()
            .and_then(|v| Via::parse(v).ok())
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self, SipMessage::Request(_))
    }
}

impl Request {
    /// Max-Forwards, when present and valid.
    pub fn max_forwards(&self) -> Option<u32> {
        self.headers
            .get("Max-Forwards")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Serialises.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        self.headers.write(&mut out, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    /// Serialises.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        self.headers.write(&mut out, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }

    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A REGISTER as sipp sends it (compact header names), shared by the tests of the submodules.
#[cfg(test)]
const SIPP_REGISTER: &str = "REGISTER sip:ims.lab SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\nf: <sip:u1@ims.lab>;tag=1\r\nt: <sip:u1@ims.lab>\r\ni: 1-2@127.0.0.1\r\nCSeq: 1 REGISTER\r\nm: <sip:u1@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nExpires: 600\r\nl: 0\r\n\r\n";
