//! MSRP (RFC 4975): the wire format, stream framing, URIs, byte ranges, chunking and
//! reassembly. Pure code, no I/O; nothing panics on any input.
//!
//! ```text
//! MSRP a786hjs2 SEND
//! To-Path: msrp://127.0.0.1:2856/iau39soe2843z;tcp
//! From-Path: msrp://127.0.0.1:2855/9di4eae923wzd;tcp
//! Message-ID: 87652491
//! Byte-Range: 1-25/25
//! Content-Type: message/cpim
//!
//! <body>
//! -------a786hjs2$
//! ```

pub mod conn;
pub mod file_sdp;
pub mod limits;
pub mod sdp;
pub mod session;

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

/// Largest MSRP frame accepted on a connection.
pub const MAX_FRAME: usize = 1 << 20;
/// RFC 4975 §7.1.1: messages larger than this are sent in chunks (RCS clients use 2048).
pub const CHUNK_SIZE: usize = 2048;

/// Codec errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MsrpError {
    /// Not a valid MSRP message.
    #[error("malformed MSRP: {0}")]
    Malformed(String),
    /// Over [`MAX_FRAME`].
    #[error("MSRP message too large")]
    TooLarge,
}

fn bad(s: impl Into<String>) -> MsrpError {
    MsrpError::Malformed(s.into())
}

/// The continuation flag of the end-line (§7.1): more chunks, last chunk, aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// `+`: more chunks follow.
    More,
    /// `$`: this chunk ends the message.
    End,
    /// `#`: the message was aborted.
    Abort,
}

impl Continuation {
    fn as_char(&self) -> char {
        match self {
            Continuation::More => '+',
            Continuation::End => '$',
            Continuation::Abort => '#',
        }
    }
    fn from_byte(b: u8) -> Option<Continuation> {
        match b {
            b'+' => Some(Continuation::More),
            b'$' => Some(Continuation::End),
            b'#' => Some(Continuation::Abort),
            _ => None,
        }
    }
}

/// A request (SEND, REPORT, or an extension method) or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpMessage {
    /// Transaction identifier.
    pub transaction_id: String,
    /// `Some(method)` for requests, `None` for responses.
    pub method: Option<String>,
    /// Status code of a response.
    pub status: u16,
    /// Comment of a response (`OK`).
    pub comment: String,
    /// Headers in order (To-Path and From-Path first, as §7.1 requires).
    pub headers: Vec<(String, String)>,
    /// The body (empty when absent).
    pub body: Bytes,
    /// The end-line flag.
    pub continuation: Continuation,
}

impl MsrpMessage {
    /// A request with To-Path and From-Path.
    pub fn request(
        method: &str,
        transaction_id: &str,
        to_path: &str,
        from_path: &str,
    ) -> MsrpMessage {
        MsrpMessage {
            transaction_id: transaction_id.to_string(),
            method: Some(method.to_string()),
            status: 0,
            comment: String::new(),
            headers: vec![
                ("To-Path".into(), to_path.into()),
                ("From-Path".into(), from_path.into()),
            ],
            body: Bytes::new(),
            continuation: Continuation::End,
        }
    }

    /// The response to a request (§7.2): To-Path is the request's From-Path (first URI only)
    /// and From-Path is ourselves (the request's first To-Path URI).
    pub fn response_to(&self, status: u16, comment: &str) -> MsrpMessage {
        let to = self
            .header("From-Path")
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let from = self
            .header("To-Path")
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        MsrpMessage {
            transaction_id: self.transaction_id.clone(),
            method: None,
            status,
            comment: comment.to_string(),
            headers: vec![("To-Path".into(), to), ("From-Path".into(), from)],
            body: Bytes::new(),
            continuation: Continuation::End,
        }
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        self.method.is_some()
    }

    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets (replacing) a header.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(e) => e.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    /// Byte-Range, when present and valid.
    pub fn byte_range(&self) -> Option<ByteRange> {
        self.header("Byte-Range")
            .and_then(|v| ByteRange::parse(v).ok())
    }

    /// Serialises (§7.1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        match &self.method {
            Some(m) => {
                out.extend_from_slice(format!("MSRP {} {m}\r\n", self.transaction_id).as_bytes())
            }
            None => {
                let line = if self.comment.is_empty() {
                    format!("MSRP {} {:03}", self.transaction_id, self.status)
                } else {
                    format!(
                        "MSRP {} {:03} {}",
                        self.transaction_id, self.status, self.comment
                    )
                };
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&self.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"-------");
        out.extend_from_slice(self.transaction_id.as_bytes());
        out.push(self.continuation.as_char() as u8);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Parses one whole message (as cut by [`frame`]).
    pub fn parse(buf: &[u8]) -> Result<MsrpMessage, MsrpError> {
        let Frame::Message(n) = frame(buf)? else {
            return Err(bad("incomplete message"));
        };
        let buf = &buf[..n];
        let line_end = find(buf, b"\r\n", 0).ok_or_else(|| bad("no start line"))?;
        let first =
            std::str::from_utf8(&buf[..line_end]).map_err(|_| bad("start line is not UTF-8"))?;
        let mut parts = first.splitn(4, ' ');
        let (Some("MSRP"), Some(tid), Some(third)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(format!("bad start line '{first}'")));
        };
        let rest = parts.next().unwrap_or("");
        let end_line = format!("-------{tid}");
        let end_at = rfind(buf, end_line.as_bytes()).ok_or_else(|| bad("no end-line"))?;
        let flag = buf
            .get(end_at + end_line.len())
            .and_then(|b| Continuation::from_byte(*b))
            .ok_or_else(|| bad("bad continuation flag"))?;
        // Headers up to a blank line (body follows) or up to the end-line (no body).
        let head_region = &buf[line_end + 2..end_at];
        let (head, body) = match find(head_region, b"\r\n\r\n", 0) {
            Some(i) => {
                let body_start = i + 4;
                let body_end = head_region.len().saturating_sub(2).max(body_start);
                if !head_region[body_end..].starts_with(b"\r\n") && body_end != head_region.len() {
                    return Err(bad("body does not end with CRLF before the end-line"));
                }
                (
                    &head_region[..i + 2],
                    Bytes::copy_from_slice(&head_region[body_start..body_end]),
                )
            }
            None => (head_region, Bytes::new()),
        };
        let head = std::str::from_utf8(head).map_err(|_| bad("headers are not UTF-8"))?;
        let mut headers = Vec::new();
        for l in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header line '{l}'")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let is_response = third.len() == 3 && third.bytes().all(|b| b.is_ascii_digit());
        let msg = MsrpMessage {
            transaction_id: tid.to_string(),
            method: (!is_response).then(|| third.to_string()),
            status: if is_response {
                third.parse().unwrap_or(0)
            } else {
                0
            },
            comment: if is_response {
                rest.to_string()
            } else {
                String::new()
            },
            headers,
            body,
            continuation: flag,
        };
        if msg.header("To-Path").is_none() || msg.header("From-Path").is_none() {
            return Err(bad("missing To-Path or From-Path"));
        }
        Ok(msg)
    }
}

/// First `n` in `h` at or after `from` (SIMD substring search: framing runs on every read).
fn find(h: &[u8], n: &[u8], from: usize) -> Option<usize> {
    if n.is_empty() || from > h.len() {
        return None;
    }
    memchr::memmem::find(&h[from..], n).map(|i| i + from)
}

fn rfind(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() {
        return None;
    }
    memchr::memmem::rfind(h, n)
}

/// Result of stream framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes is at the front.
    Message(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Cuts the first message out of a stream: the start line names the transaction id, and the
/// message ends with `-------<tid><flag>\r\n` (§7.1).
pub fn frame(buf: &[u8]) -> Result<Frame, MsrpError> {
    let Some(line_end) = find(buf, b"\r\n", 0) else {
        return if buf.len() > 1024 {
            Err(bad("start line too long"))
        } else if !buf.is_empty() && !b"MSRP ".starts_with(&buf[..buf.len().min(5)]) {
            Err(bad("not MSRP"))
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let first = &buf[..line_end];
    if !first.starts_with(b"MSRP ") {
        return Err(bad("not MSRP"));
    }
    let tid_end = first[5..]
        .iter()
        .position(|&b| b == b' ')
        .map(|p| p + 5)
        .ok_or_else(|| bad("no transaction id"))?;
    let tid = &first[5..tid_end];
    if tid.is_empty()
        || tid.len() > 64
        || !tid
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-+%=".contains(b))
    {
        return Err(bad("bad transaction id"));
    }
    let mut marker = b"\r\n-------".to_vec();
    marker.extend_from_slice(tid);
    let mut from = line_end;
    while let Some(i) = find(buf, &marker, from) {
        let flag_at = i + marker.len();
        match (buf.get(flag_at), buf.get(flag_at + 1), buf.get(flag_at + 2)) {
            (Some(f), Some(b'\r'), Some(b'\n')) if Continuation::from_byte(*f).is_some() => {
                return Ok(Frame::Message(flag_at + 3));
            }
            (Some(_), Some(_), Some(_)) => from = i + 1,
            _ => return Ok(Frame::Incomplete),
        }
    }
    if buf.len() > MAX_FRAME {
        Err(MsrpError::TooLarge)
    } else {
        Ok(Frame::Incomplete)
    }
}

/// Byte-Range (§7.1.1): `start-end/total`, `*` for unknown end or total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte, 1-based.
    pub start: u64,
    /// Last byte, when known.
    pub end: Option<u64>,
    /// Total size, when known.
    pub total: Option<u64>,
}

impl ByteRange {
    /// Parses `1-25/25`, `1-*/*`.
    pub fn parse(s: &str) -> Result<ByteRange, MsrpError> {
        let (range, total) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("Byte-Range without '/'"))?;
        let (start, end) = range
            .split_once('-')
            .ok_or_else(|| bad("Byte-Range without '-'"))?;
        let num = |x: &str| -> Result<Option<u64>, MsrpError> {
            if x == "*" {
                Ok(None)
            } else {
                x.parse()
                    .map(Some)
                    .map_err(|_| bad(format!("bad Byte-Range number '{x}'")))
            }
        };
        let start = num(start)?.ok_or_else(|| bad("Byte-Range start cannot be '*'"))?;
        if start == 0 {
            return Err(bad("Byte-Range starts at 1"));
        }
        Ok(ByteRange {
            start,
            end: num(end)?,
            total: num(total)?,
        })
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        write!(f, "{}-{}/{}", self.start, opt(self.end), opt(self.total))
    }
}

/// An MSRP URI (§9): `msrp://host:port/session-id;tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpUri {
    /// `msrps`.
    pub secure: bool,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Session id.
    pub session_id: String,
    /// Transport (`tcp`).
    pub transport: String,
}

impl MsrpUri {
    /// Parses an MSRP URI.
    pub fn parse(s: &str) -> Result<MsrpUri, MsrpError> {
        let s = s.trim();
        let (secure, rest) = if let Some(r) = s.strip_prefix("msrps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("msrp://") {
            (false, r)
        } else {
            return Err(bad(format!("not an MSRP URI '{s}'")));
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("MSRP URI without session id"))?;
        let (session_id, transport) = path
            .split_once(';')
            .ok_or_else(|| bad("MSRP URI without transport"))?;
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) =
            crate::sip::uri::split_host_port(authority).ok_or_else(|| bad("bad MSRP authority"))?;
        if session_id.is_empty() {
            return Err(bad("empty MSRP session id"));
        }
        Ok(MsrpUri {
            secure,
            host,
            port: port.unwrap_or(2855),
            session_id: session_id.to_string(),
            transport: transport.to_ascii_lowercase(),
        })
    }

    /// `host:port` as a socket address string.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}/{};{}",
            if self.secure { "msrps" } else { "msrp" },
            self.host,
            self.port,
            self.session_id,
            self.transport
        )
    }
}

/// Splits a message body into SEND chunks of at most `chunk_size` bytes (§7.1.1, §5.1): same
/// Message-ID, Byte-Range each, `+` on all but the last (`$`). An empty body is one SEND.
pub fn chunk(
    to_path: &str,
    from_path: &str,
    message_id: &str,
    content_type: &str,
    body: &[u8],
    chunk_size: usize,
    mut next_tid: impl FnMut() -> String,
) -> Vec<MsrpMessage> {
    let total = body.len() as u64;
    let size = chunk_size.max(1);
    let pieces: Vec<&[u8]> = if body.is_empty() {
        vec![&[][..]]
    } else {
        body.chunks(size).collect()
    };
    let n = pieces.len();
    let mut start = 1u64;
    let mut out = Vec::with_capacity(n);
    for (i, p) in pieces.into_iter().enumerate() {
        let mut m = MsrpMessage::request("SEND", &next_tid(), to_path, from_path);
        m.headers.push(("Message-ID".into(), message_id.into()));
        let end = start + p.len() as u64 - if p.is_empty() { 0 } else { 1 };
        m.headers.push((
            "Byte-Range".into(),
            ByteRange {
                start,
                end: Some(if p.is_empty() { 0 } else { end }),
                total: Some(total),
            }
            .to_string(),
        ));
        if !p.is_empty() {
            m.headers.push(("Content-Type".into(), content_type.into()));
        }
        m.body = Bytes::copy_from_slice(p);
        m.continuation = if i + 1 == n {
            Continuation::End
        } else {
            Continuation::More
        };
        start += p.len() as u64;
        out.push(m);
    }
    out
}

/// Puts chunks of one message back together (§7.1.1: chunks may overlap or arrive out of
/// order; the message is whole when every byte up to the total is there and the `$` chunk
/// came).
#[derive(Debug, Default)]
pub struct Reassembly {
    parts: BTreeMap<u64, Bytes>,
    total: Option<u64>,
    ended: bool,
    aborted: bool,
    content_type: Option<String>,
}

impl Reassembly {
    /// Adds one SEND chunk; returns the whole body once complete.
    pub fn add(&mut self, m: &MsrpMessage, max_size: u64) -> Result<Option<Bytes>, MsrpError> {
        let range = m.byte_range().unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
        if let Some(t) = range.total {
            if t > max_size {
                return Err(MsrpError::TooLarge);
            }
            self.total = Some(t);
        }
        if range.start.saturating_add(m.body.len() as u64) > max_size + 1 {
            return Err(MsrpError::TooLarge);
        }
        if self.content_type.is_none() {
            self.content_type = m.header("Content-Type").map(str::to_string);
        }
        match m.continuation {
            Continuation::Abort => {
                self.aborted = true;
                return Ok(None);
            }
            Continuation::End => self.ended = true,
            Continuation::More => {}
        }
        if !m.body.is_empty() {
            self.parts.insert(range.start, m.body.clone());
        }
        if !self.ended {
            return Ok(None);
        }
        let total = self.total.unwrap_or_else(|| {
            self.parts
                .iter()
                .map(|(s, b)| s + b.len() as u64 - 1)
                .max()
                .unwrap_or(0)
        });
        let mut out = vec![0u8; total as usize];
        let mut have = vec![false; total as usize];
        for (s, b) in &self.parts {
            let from = (*s - 1) as usize;
            for (i, byte) in b.iter().enumerate() {
                if let Some(slot) = out.get_mut(from + i) {
                    *slot = *byte;
                    have[from + i] = true;
                }
            }
        }
        Ok(have.iter().all(|h| *h).then(|| Bytes::from(out)))
    }

    /// The Content-Type of the first chunk.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// True when a `#` chunk aborted the message.
    pub fn aborted(&self) -> bool {
        self.aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &str = "MSRP a786hjs2 SEND\r\nTo-Path: msrp://127.0.0.1:2856/iau39soe2843z;tcp\r\nFrom-Path: msrp://127.0.0.1:2855/9di4eae923wzd;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?!!\r\n-------a786hjs2$\r\n";

    #[test]
    fn rfc_4975_example_round_trips_and_answers() {
        let m = MsrpMessage::parse(SEND.as_bytes()).unwrap();
        assert_eq!(m.method.as_deref(), Some("SEND"));
        assert_eq!(&m.body[..], b"Hey Bob, are you there?!!");
        assert_eq!(
            m.byte_range(),
            Some(ByteRange {
                start: 1,
                end: Some(25),
                total: Some(25)
            })
        );
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), SEND);
        let ok = m.response_to(200, "OK");
        let text = String::from_utf8(ok.to_bytes()).unwrap();
        assert_eq!(
            text,
            "MSRP a786hjs2 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/9di4eae923wzd;tcp\r\nFrom-Path: msrp://127.0.0.1:2856/iau39soe2843z;tcp\r\n-------a786hjs2$\r\n"
        );
        let back = MsrpMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(
            (back.status, back.comment.as_str(), back.is_request()),
            (200, "OK", false)
        );
    }

    #[test]
    fn framing_finds_the_end_line_and_waits_for_more() {
        let b = SEND.as_bytes();
        for i in 0..b.len() {
            assert_eq!(frame(&b[..i]), Ok(Frame::Incomplete), "prefix {i}");
        }
        let mut two = b.to_vec();
        two.extend_from_slice(b);
        assert_eq!(frame(&two), Ok(Frame::Message(b.len())));
        // A body containing a look-alike of another transaction's end-line is fine.
        let tricky = SEND.replace("Hey Bob, are you there?!!", "-------zzz$ in the body.");
        assert!(MsrpMessage::parse(tricky.as_bytes()).is_ok());
        assert!(frame(b"GET / HTTP/1.1\r\n").is_err());
        let empty = "MSRP x1 SEND\r\nTo-Path: msrp://a:1/s;tcp\r\nFrom-Path: msrp://b:2/t;tcp\r\nMessage-ID: m\r\nByte-Range: 1-0/0\r\n-------x1$\r\n";
        let e = MsrpMessage::parse(empty.as_bytes()).unwrap();
        assert!(e.body.is_empty());
    }

    #[test]
    fn a_100_kb_message_is_chunked_and_reassembled_byte_for_byte() {
        let body: Vec<u8> = (0..100 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let mut n = 0;
        let chunks = chunk(
            "msrp://a:1/s;tcp",
            "msrp://b:2/t;tcp",
            "m1",
            "message/cpim",
            &body,
            CHUNK_SIZE,
            || {
                n += 1;
                format!("t{n}")
            },
        );
        assert_eq!(chunks.len(), 50);
        assert!(chunks[..49]
            .iter()
            .all(|c| c.continuation == Continuation::More));
        assert_eq!(chunks[49].continuation, Continuation::End);
        let mut r = Reassembly::default();
        let mut done = None;
        // Out of order, through the wire format.
        let mut order: Vec<usize> = (0..50).rev().collect();
        order.swap(0, 10);
        for i in order {
            let wire = MsrpMessage::parse(&chunks[i].to_bytes()).unwrap();
            if let Some(b) = r.add(&wire, 1 << 20).unwrap() {
                done = Some(b);
            }
        }
        assert_eq!(done.expect("complete").as_ref(), &body[..]);
        assert!(matches!(
            Reassembly::default().add(&chunks[0], 1000),
            Err(MsrpError::TooLarge)
        ));
    }

    #[test]
    fn uris_byte_ranges_and_garbage() {
        let u = MsrpUri::parse("msrp://127.0.0.1:2855/9di4eae923wzd;tcp").unwrap();
        assert_eq!((u.port, u.session_id.as_str()), (2855, "9di4eae923wzd"));
        assert_eq!(u.to_string(), "msrp://127.0.0.1:2855/9di4eae923wzd;tcp");
        assert!(MsrpUri::parse("sip:x@y").is_err());
        assert!(ByteRange::parse("1-*/*").is_ok());
        assert!(ByteRange::parse("0-5/5").is_err());
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let b = SEND.as_bytes().to_vec();
        for _ in 0..20_000 {
            let mut m = b.clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..m.len());
                m[at] = rng.gen();
            }
            let _ = frame(&m);
            let _ = MsrpMessage::parse(&m);
        }
    }
}
