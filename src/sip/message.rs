//! SIP messages (RFC 3261 §7): parsing, serialisation and stream framing (§18.3).
//!
//! The container is ours: an ordered list of (canonical name, raw value) header lines and the
//! body bytes, so a proxy forwards exactly what it received apart from what it edits. rsip 0.4
//! is used for what it gets right (the standard reason phrases, known method names); the
//! rest fills its measured gaps: TCP framing, compact header names, unknown methods (501 rather
//! than a parse failure), reason phrases kept verbatim, headers inserted at the front.
//! Nothing here panics on any input.

use std::fmt;

use bytes::Bytes;
use rand::Rng;

use crate::sip::headers::{split_list, CSeq, Via};

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

/// A request method; unknown tokens are kept (RFC 3261 §8.2.1 answers them with 501/405).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// MESSAGE (RFC 3428)
    Message,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PRACK (RFC 3262)
    Prack,
    /// UPDATE (RFC 3311)
    Update,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Anything else.
    Other(String),
}

impl Method {
    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Parses a token (case-sensitive per RFC 3261 §7.1, but lenient on case); never fails.
    pub fn parse(s: &str) -> Method {
        // rsip knows the standard methods; map its answer onto ours.
        match s.parse::<rsip::Method>() {
            Ok(m) => match m {
                rsip::Method::Invite => Method::Invite,
                rsip::Method::Ack => Method::Ack,
                rsip::Method::Bye => Method::Bye,
                rsip::Method::Cancel => Method::Cancel,
                rsip::Method::Register => Method::Register,
                rsip::Method::Options => Method::Options,
                rsip::Method::Message => Method::Message,
                rsip::Method::Subscribe => Method::Subscribe,
                rsip::Method::Notify => Method::Notify,
                rsip::Method::PRack => Method::Prack,
                rsip::Method::Update => Method::Update,
                rsip::Method::Info => Method::Info,
                rsip::Method::Refer => Method::Refer,
                rsip::Method::Publish => Method::Publish,
            },
            Err(_) => Method::Other(s.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expands compact header names (RFC 3261 §7.3.3 and extensions) and gives well-known names
/// their usual spelling.
fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let long = match name.as_bytes()[0].to_ascii_lowercase() {
            b'i' => "Call-ID",
            b'm' => "Contact",
            b'e' => "Content-Encoding",
            b'l' => "Content-Length",
            b'c' => "Content-Type",
            b'f' => "From",
            b's' => "Subject",
            b'k' => "Supported",
            b't' => "To",
            b'v' => "Via",
            b'o' => "Event",
            b'u' => "Allow-Events",
            b'r' => "Refer-To",
            b'b' => "Referred-By",
            b'x' => "Session-Expires",
            b'a' => "Accept-Contact",
            b'j' => "Reject-Contact",
            b'd' => "Request-Disposition",
            b'y' => "Identity",
            b'n' => "Identity-Info",
            _ => return name.to_string(),
        };
        return long.to_string();
    }
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Expires",
        "Route",
        "Record-Route",
        "Path",
        "Service-Route",
        "Content-Type",
        "Content-Length",
        "Authorization",
        "WWW-Authenticate",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Supported",
        "Require",
        "User-Agent",
        "Allow",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "P-Associated-URI",
        "P-Visited-Network-ID",
        "P-Charging-Vector",
        "P-Access-Network-Info",
        "Min-Expires",
        "Warning",
        "Reason",
        "Event",
        "Subject",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

fn names_match(stored: &str, query: &str) -> bool {
    stored.eq_ignore_ascii_case(query)
        || (query.len() == 1 && stored.eq_ignore_ascii_case(&canonical_name(query)))
}

/// Ordered header lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// The first line's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| names_match(k, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every line's value, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| names_match(k, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated element across all lines of `name`.
    pub fn values<'a>(&'a self, name: &str) -> Vec<&'a str> {
        self.entries
            .iter()
            .filter(|(k, _)| names_match(k, name))
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    /// The first comma-separated element of the first line of `name` — the top Via even when
    /// a peer (sipp's `[last_Via:]`) folds every Via into one line.
    pub fn first_value(&self, name: &str) -> Option<&str> {
        let line = self.get(name)?;
        split_list(line).into_iter().next()
    }

    /// True when at least one line exists.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a line.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push((canonical_name(name), value.into()));
    }

    /// Inserts a line before the first line of the same name, or at the top.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        let at = self
            .entries
            .iter()
            .position(|(k, _)| names_match(k, name))
            .unwrap_or(0);
        self.entries
            .insert(at, (canonical_name(name), value.into()));
    }

    /// Removes the first element of the first line of `name` (the line goes when empty).
    pub fn pop_first_value(&mut self, name: &str) -> Option<String> {
        let idx = self
            .entries
            .iter()
            .position(|(k, _)| names_match(k, name))?;
        let value = self.entries[idx].1.clone();
        let parts = split_list(&value);
        let first = parts.first().map(|s| s.to_string());
        if parts.len() <= 1 {
            self.entries.remove(idx);
        } else {
            self.entries[idx].1 = parts[1..].join(", ");
        }
        first
    }

    /// Removes all lines of `name`.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !names_match(k, name));
        before - self.entries.len()
    }

    /// Replaces all lines of `name` by one (where the first was, or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter().position(|(k, _)| names_match(k, name)) {
            Some(i) => {
                self.entries[i].1 = value;
                let mut n = 0;
                self.entries.retain(|(k, _)| {
                    if names_match(k, name) {
                        n += 1;
                        n == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// All lines in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn write(&self, out: &mut Vec<u8>, body_len: usize) {
        for (k, v) in &self.entries {
            if k.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
    }
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

/// Result of stream framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes is at the front.
    Message(usize),
    /// This many bytes of CRLF keep-alive are at the front (RFC 5626 §3.5.1).
    KeepAlive(usize),
    /// More bytes are needed.
    Incomplete,
    /// A message whose head is at the front (`head` bytes) but whose Content-Length makes it
    /// `total` bytes, more than [`MAX_MESSAGE_SIZE`]: the reader skips `total` bytes (and may
    /// answer 513) without losing the connection other messages share.
    Oversized {
        /// Length of the head (start line and headers, with the blank line).
        head: usize,
        /// Length of the whole message.
        total: usize,
    },
}

/// Content-Length beyond this is not skipped but ends the connection (a stream that claims a
/// gigabyte is not SIP).
pub const MAX_SKIP_SIZE: usize = 16 << 20;

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| {
            // Bare LF line ends are tolerated (RFC 3261 §7.5 recommends tolerance).
            buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
        })
}

fn content_length_of(head: &str) -> Result<Option<usize>, SipError> {
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            return value
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| malformed(format!("bad Content-Length '{}'", value.trim())));
        }
    }
    Ok(None)
}

/// Cuts the first message out of a stream (RFC 3261 §18.3).
pub fn frame(buf: &[u8]) -> Result<Frame, SipError> {
    let ka = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if ka > 0 {
        return Ok(Frame::KeepAlive(ka));
    }
    let Some(head_len) = find_head_end(buf) else {
        return if buf.len() > MAX_MESSAGE_SIZE {
            Err(SipError::TooLarge)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    if head_len > MAX_MESSAGE_SIZE {
        return Err(SipError::TooLarge);
    }
    let head = String::from_utf8_lossy(&buf[..head_len]);
    let cl = content_length_of(&head)?.unwrap_or(0);
    let total = head_len.checked_add(cl).ok_or(SipError::TooLarge)?;
    if total > MAX_SKIP_SIZE {
        return Err(SipError::TooLarge);
    }
    if total > MAX_MESSAGE_SIZE {
        return Ok(Frame::Oversized {
            head: head_len,
            total,
        });
    }
    if buf.len() < total {
        Ok(Frame::Incomplete)
    } else {
        Ok(Frame::Message(total))
    }
}

/// Head lines with folding undone (RFC 3261 §7.3.1).
fn unfolded_lines(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
                continue;
            }
        }
        out.push(line.to_string());
    }
    out
}

fn parse_headers(lines: &[String]) -> Result<Headers, SipError> {
    let mut h = Headers::default();
    for l in lines {
        let (name, value) = l.split_once(':').ok_or_else(|| {
            malformed(format!(
                "header line without ':' ({})",
                l.chars().take(60).collect::<String>()
            ))
        })?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed(format!("bad header name '{name}'")));
        }
        h.entries
            .push((canonical_name(name), value.trim().to_string()));
    }
    Ok(h)
}

fn check_required(h: &Headers, names: &[&str]) -> Result<(), SipError> {
    for n in names {
        if !h.has(n) {
            return Err(malformed(format!("missing {n}")));
        }
    }
    Ok(())
}

impl SipMessage {
    /// Parses one whole message.
    pub fn parse(buf: &[u8]) -> Result<SipMessage, SipError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(SipError::TooLarge);
        }
        let start = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = &buf[start..];
        let head_len = find_head_end(buf).unwrap_or(buf.len());
        let head =
            std::str::from_utf8(&buf[..head_len]).map_err(|_| malformed("head is not UTF-8"))?;
        let lines = unfolded_lines(head);
        let first = lines.first().ok_or_else(|| malformed("empty message"))?;
        let headers = parse_headers(&lines[1..])?;
        let rest = &buf[head_len.min(buf.len())..];
        let body = match content_length_of(head)? {
            Some(n) if n > rest.len() => {
                return Err(malformed(format!(
                    "Content-Length {n} but only {} body bytes",
                    rest.len()
                )))
            }
            Some(n) => Bytes::copy_from_slice(&rest[..n]),
            None => Bytes::copy_from_slice(rest),
        };
        if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let (code, reason) = match rest.split_once(' ') {
                Some((c, r)) => (c, r),
                None => (rest, ""),
            };
            let status: u16 = code
                .trim()
                .parse()
                .ok()
                .filter(|s| (100..700).contains(s))
                .ok_or_else(|| malformed(format!("bad status code '{code}'")))?;
            check_required(&headers, &["Via", "From", "To", "Call-ID", "CSeq"])?;
            return Ok(SipMessage::Response(Response {
                status,
                reason: reason.to_string(),
                headers,
                body,
            }));
        }
        let mut parts = first.split(' ');
        let (Some(m), Some(uri), Some(ver), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(format!(
                "bad start line '{}'",
                first.chars().take(80).collect::<String>()
            )));
        };
        if ver != "SIP/2.0" {
            return Err(malformed(format!("unsupported version '{ver}'")));
        }
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        {
            return Err(malformed(format!("bad method '{m}'")));
        }
        if uri.is_empty() || !uri.contains(':') {
            return Err(malformed(format!("bad Request-URI '{uri}'")));
        }
        check_required(&headers, &["Via", "From", "To", "Call-ID", "CSeq"])?;
        let method = Method::parse(m);
        if let Some(c) = headers.get("CSeq") {
            let cs = CSeq::parse(c)?;
            if cs.method != method && !(method == Method::Ack && cs.method == Method::Ack) {
                return Err(malformed("CSeq method does not match the request method"));
            }
        }
        Via::parse(headers.first_value("Via").unwrap_or(""))?;
        Ok(SipMessage::Request(Request {
            method,
            uri: uri.to_string(),
            headers,
            body,
        }))
    }

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

/// For a message that failed to parse: a request with just the headers a 400 needs, if the
/// start line is a request line and they can be found.
pub fn salvage_request(buf: &[u8]) -> Option<Request> {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_MESSAGE_SIZE)]);
    let head = text.split("\r\n\r\n").next()?;
    let lines = unfolded_lines(head);
    let first = lines.first()?;
    let mut parts = first.split(' ');
    let (Some(m), Some(uri), Some("SIP/2.0")) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut req = Request::new(Method::parse(m), uri);
    for l in &lines[1..] {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let n = canonical_name(n.trim());
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&n.as_str()) {
            req.headers.push(&n, v.trim());
        }
    }
    // RFC 3261 §8.2.2 / §16.3: whatever else is missing, the 400 goes back by the top Via when
    // there is a usable one, else to the packet's source (which the endpoint knows).
    if let Some(v) = req.headers.first_value("Via") {
        if Via::parse(v).is_err() {
            req.headers.remove("Via");
        }
    }
    Some(req)
}

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
    use super::*;

    const SIPP_REGISTER: &str = "REGISTER sip:ims.lab SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\nf: <sip:u1@ims.lab>;tag=1\r\nt: <sip:u1@ims.lab>\r\ni: 1-2@127.0.0.1\r\nCSeq: 1 REGISTER\r\nm: <sip:u1@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nExpires: 600\r\nl: 0\r\n\r\n";

    #[test]
    fn compact_headers_expand_and_round_trip() {
        let m = SipMessage::parse(SIPP_REGISTER.as_bytes()).unwrap();
        let SipMessage::Request(r) = &m else {
            panic!("request")
        };
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.headers.get("Call-ID"), Some("1-2@127.0.0.1"));
        assert_eq!(r.headers.get("i"), Some("1-2@127.0.0.1"));
        assert_eq!(r.max_forwards(), Some(70));
        let again = SipMessage::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
        assert!(String::from_utf8_lossy(&m.to_bytes()).contains("Call-ID: 1-2@127.0.0.1\r\n"));
    }

    #[test]
    fn ims_401_and_200_with_lists() {
        let t = "SIP/2.0 401 Unauthorized - Challenging the UE\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP c:3;branch=z9hG4bK3\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"a,b\", algorithm=AKAv1-MD5\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=MD5\r\nPath: <sip:term@p;lr>, <sip:q;lr>\r\nContent-Length: 0\r\n\r\n";
        let m = SipMessage::parse(t.as_bytes()).unwrap();
        let SipMessage::Response(r) = &m else {
            panic!()
        };
        assert_eq!(r.reason, "Unauthorized - Challenging the UE");
        assert_eq!(r.headers.values("Via").len(), 3);
        assert_eq!(r.headers.get_all("WWW-Authenticate").count(), 2);
        assert_eq!(r.headers.values("Path"), ["<sip:term@p;lr>", "<sip:q;lr>"]);
        assert_eq!(SipMessage::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn invite_with_body_folding_tel_and_unknown_method() {
        let t = "INVITE tel:+15550002 SIP/2.0\r\nVia: SIP/2.0/TCP h:5060;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nTo: <tel:+15550002>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nSubject: a\r\n  folded\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\nEXTRA";
        let SipMessage::Request(r) = SipMessage::parse(t.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.uri, "tel:+15550002");
        assert_eq!(&r.body[..], b"v=0\r\n");
        assert_eq!(r.headers.get("Subject"), Some("a folded"));
        let foo = SIPP_REGISTER
            .replace("REGISTER sip", "FOO sip")
            .replace("1 REGISTER", "1 FOO");
        let SipMessage::Request(f) = SipMessage::parse(foo.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(f.method, Method::Other("FOO".into()));
        let empty_reason = "SIP/2.0 200\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let SipMessage::Response(e) = SipMessage::parse(empty_reason.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!((e.status, e.reason.as_str()), (200, ""));
    }

    #[test]
    fn header_editing() {
        let mut h = Headers::default();
        h.push("From", "a");
        h.push(
            "Via",
            "SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2",
        );
        h.push_front("Via", "SIP/2.0/UDP me:3;branch=z9hG4bK0");
        assert_eq!(
            h.iter().nth(1).map(|x| x.1),
            Some("SIP/2.0/UDP me:3;branch=z9hG4bK0")
        );
        assert_eq!(
            h.pop_first_value("Via").as_deref(),
            Some("SIP/2.0/UDP me:3;branch=z9hG4bK0")
        );
        assert_eq!(
            h.pop_first_value("v").as_deref(),
            Some("SIP/2.0/UDP a:1;branch=z9hG4bK1")
        );
        assert_eq!(h.values("Via"), ["SIP/2.0/UDP b:2;branch=z9hG4bK2"]);
        h.push_front("Route", "<sip:x;lr>");
        assert_eq!(
            h.iter().next().map(|x| x.0),
            Some("Route"),
            "no Route yet: goes on top"
        );
        h.push("Route", "<sip:y;lr>");
        h.set("Route", "<sip:z;lr>");
        assert_eq!(h.get_all("Route").collect::<Vec<_>>(), ["<sip:z;lr>"]);
        assert_eq!(h.remove("route"), 1);
    }

    #[test]
    fn framing() {
        let one = SIPP_REGISTER.as_bytes();
        assert_eq!(frame(&one[..20]), Ok(Frame::Incomplete));
        assert_eq!(frame(one), Ok(Frame::Message(one.len())));
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(one);
        two.extend_from_slice(one);
        assert_eq!(frame(&two), Ok(Frame::KeepAlive(4)));
        assert_eq!(frame(&two[4..]), Ok(Frame::Message(one.len())));
        let body = SIPP_REGISTER.replace("l: 0", "l: 10");
        assert_eq!(frame(body.as_bytes()), Ok(Frame::Incomplete));
        let bad = SIPP_REGISTER.replace("l: 0", "l: x");
        assert!(matches!(frame(bad.as_bytes()), Err(SipError::Malformed(_))));
        assert_eq!(
            frame(&vec![b'a'; MAX_MESSAGE_SIZE + 10]),
            Err(SipError::TooLarge)
        );
        let huge = SIPP_REGISTER.replace("l: 0", "l: 99999999");
        assert_eq!(frame(huge.as_bytes()), Err(SipError::TooLarge));
        // Too large to take but small enough to skip: the connection survives it.
        let big = SIPP_REGISTER.replace("l: 0", "l: 70000");
        let head = big.len();
        assert_eq!(
            frame(big.as_bytes()),
            Ok(Frame::Oversized {
                head,
                total: head + 70000
            })
        );
    }

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

    #[test]
    fn no_panic_on_any_prefix_or_mutation() {
        let samples = [SIPP_REGISTER.as_bytes().to_vec()];
        let mut rng = rand::thread_rng();
        for s in &samples {
            for i in 0..=s.len() {
                let _ = SipMessage::parse(&s[..i]);
                let _ = frame(&s[..i]);
                let _ = salvage_request(&s[..i]);
            }
            for _ in 0..10_000 {
                let mut m = s.clone();
                for _ in 0..rng.gen_range(1..8) {
                    let at = rng.gen_range(0..m.len());
                    m[at] = rng.gen();
                }
                let _ = SipMessage::parse(&m);
                let _ = frame(&m);
                let text = String::from_utf8_lossy(&m);
                let _ = crate::sip::NameAddr::parse(&text);
                let _ = crate::sip::Via::parse(&text);
                let _ = crate::sip::Uri::parse(&text);
            }
        }
    }
}
