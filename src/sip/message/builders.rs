//! Building messages from others (RFC 3261): a UAS's responses (§8.2.6, §12.1.1), CANCEL
//! (§9.1) and the ACK of a non-2xx (§17.1.1.3), the standard reason phrases (§21), and fresh
//! branches, tags and Call-IDs (§8.1.1.7, §19.3).

use bytes::Bytes;
use rand::Rng;

use super::{Headers, Method, Request, Response};

impl Request {
    /// The CANCEL for this INVITE (RFC 3261 §9.1): the same Request-URI, Call-ID, From, To,
    /// CSeq number and Route set, and a single Via equal to the INVITE's top one.
    pub fn cancel(&self) -> Request {
        self.hop_request(Method::Cancel, self.headers.get("To"))
    }

    /// A request of `method` on this request's hop (its CANCEL, or the ACK of a non-2xx,
    /// §17.1.1.3, whose To comes from the response): its top Via, Max-Forwards, From, Call-ID,
    /// CSeq number and Route set, and `to`.
    pub fn hop_request(&self, method: Method, to: Option<&str>) -> Request {
        let mut r = Request::new(method.clone(), self.uri.clone());
        if let Some(v) = self.headers.first_value("Via") {
            r.headers.push("Via", v.to_string());
        }
        r.headers.push(
            "Max-Forwards",
            self.headers.get("Max-Forwards").unwrap_or("70").to_string(),
        );
        if let Some(v) = self.headers.get("From") {
            r.headers.push("From", v.to_string());
        }
        if let Some(v) = to {
            r.headers.push("To", v.to_string());
        }
        if let Some(v) = self.headers.get("Call-ID") {
            r.headers.push("Call-ID", v.to_string());
        }
        let seq = self
            .headers
            .get("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("1");
        r.headers.push("CSeq", format!("{seq} {}", method.as_str()));
        for route in self.headers.get_all("Route") {
            r.headers.push("Route", route.to_string());
        }
        r
    }

    /// An empty request.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    /// A response with the headers RFC 3261 §8.2.6.2 copies (all Via, From, To, Call-ID,
    /// CSeq; Timestamp for 100). No To tag is added.
    pub fn response(&self, status: u16, reason: Option<&str>) -> Response {
        let mut h = Headers::default();
        for (k, v) in &self.headers.entries {
            let copy = matches!(k.as_str(), "Via" | "From" | "To" | "Call-ID" | "CSeq")
                || (status == 100 && k.eq_ignore_ascii_case("Timestamp"));
            if copy {
                h.entries.push((k.clone(), v.clone()));
            }
        }
        Response {
            status,
            reason: reason.unwrap_or_else(|| default_reason(status)).to_string(),
            headers: h,
            body: Bytes::new(),
        }
    }
}

impl Response {
    /// Gives the To header a tag when it has none (a UAS's final response, RFC 3261 §8.2.6.2).
    pub fn ensure_to_tag(&mut self) {
        if let Some(to) = self.headers.get("To") {
            if !to.contains("tag=") {
                let v = format!("{to};tag={}", new_tag());
                self.headers.set("To", v);
            }
        }
    }
}

/// A UAS response (RFC 3261 §8.2.6, §12.1.1): To tag, and for 1xx/2xx to a dialog-creating
/// request the Record-Route copied and our Contact (`contact` is the whole header value, e.g.
/// `<sip:ue@1.2.3.4:5060>;+g.3gpp.icsi-ref="..."`).
pub fn uas_response_with(req: &Request, status: u16, tag: &str, contact: &str) -> Response {
    let mut r = req.response(status, None);
    if let Some(to) = r.headers.get("To").map(str::to_string) {
        if !to.contains("tag=") {
            r.headers.set("To", format!("{to};tag={tag}"));
        }
    }
    if status < 300 && status > 100 {
        for rr in req.headers.get_all("Record-Route") {
            r.headers.push("Record-Route", rr.to_string());
        }
        r.headers.push("Contact", contact.to_string());
    }
    r
}

/// The standard reason phrase of a status code.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status {
            100..=199 => "Session Progress",
            200..=299 => "OK",
            300..=399 => "Multiple Choices",
            400..=499 => "Bad Request",
            500..=599 => "Server Internal Error",
            _ => "Global Failure",
        },
    }
}

fn random_token(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// A fresh RFC 3261 branch (`z9hG4bK` magic cookie + 16 random characters).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    random_token(10)
}

/// A fresh Call-ID.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", random_token(20))
}

#[cfg(test)]
mod tests {
    use super::super::{salvage_request, SipMessage, SIPP_REGISTER};
    use super::*;

    #[test]
    fn response_copies_the_right_headers_and_salvage_builds_400s() {
        let SipMessage::Request(r) = SipMessage::parse(SIPP_REGISTER.as_bytes()).unwrap() else {
            panic!()
        };
        let resp = r.response(401, None);
        assert_eq!(resp.reason, "Unauthorized");
        assert_eq!(resp.headers.len(), 5);
        let broken = SIPP_REGISTER.replace("l: 0", "l: 50");
        assert!(SipMessage::parse(broken.as_bytes()).is_err());
        let s = salvage_request(broken.as_bytes()).expect("salvaged");
        assert_eq!(
            s.response(400, None).headers.get("Call-ID"),
            Some("1-2@127.0.0.1")
        );
        assert!(salvage_request(b"garbage").is_none());
        // Missing Call-ID, CSeq or Via: still a 400 (by the Via, or to the packet source).
        for gone in ["i: ", "CSeq: ", "v: "] {
            let text: String = SIPP_REGISTER
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(gone))
                .collect();
            assert!(SipMessage::parse(text.as_bytes()).is_err(), "{gone}");
            let s = salvage_request(text.as_bytes()).expect("salvaged without {gone}");
            assert_eq!(s.response(400, None).status, 400);
        }
        assert_eq!(default_reason(483), "Too Many Hops");
    }
}
