//! A streaming `multipart/form-data` parser (RFC 7578 over the RFC 2046 §5.1.1 grammar), for
//! the RCC.07 upload (`tid`, `Thumbnail`, `File` parts). Sans-IO: the caller [`push`]es each
//! chunk of the body as it arrives and drains [`next_event`] until it says it needs more; a part's
//! data comes out as it arrives, so a 100 MB file never sits in memory.
//!
//! ```text
//!  Preamble ──--B──> AfterBoundary ──CRLF──> Headers ──CRLF CRLF──> Body ──CRLF--B──> AfterBoundary
//!                        │ "--"                                                         │ "--"
//!                        └────────────────────────> End <───────────────────────────────┘
//! ```
//!
//! Bounds: the parser keeps at most what one [`push`] gave it plus a delimiter's length (it
//! refuses a push while more than [`MultipartLimits::max_buffer`] is still buffered), a part's
//! header block is at most [`MultipartLimits::max_header_bytes`], and a body has at most
//! [`MultipartLimits::max_parts`] parts. A body that ends before the closing delimiter is
//! [`MultipartError::Truncated`] ([`MultipartParser::finish`]).
//!
//! [`push`]: MultipartParser::push
//! [`next_event`]: MultipartParser::next_event

use bytes::{Buf, Bytes, BytesMut};

/// Why a body is not a multipart/form-data body we take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type is not multipart/form-data with a usable boundary.
    #[error("{0}")]
    ContentType(&'static str),
    /// The body breaks the grammar.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    /// A part's header block is over the limit.
    #[error("a part's headers are longer than {0} bytes")]
    HeadersTooLarge(usize),
    /// More parts than allowed.
    #[error("more than {0} parts")]
    TooManyParts(usize),
    /// The body ended before the closing delimiter.
    #[error("the multipart body ends before its closing boundary")]
    Truncated,
    /// The caller pushed while too much was buffered (it did not drain [`MultipartParser::next_event`]).
    #[error("multipart parser buffer full")]
    BufferFull,
}

/// The parser's bounds.
#[derive(Debug, Clone, Copy)]
pub struct MultipartLimits {
    /// Bytes of one part's header block.
    pub max_header_bytes: usize,
    /// Parts in one body.
    pub max_parts: usize,
    /// Bytes buffered before a push is refused.
    pub max_buffer: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            max_header_bytes: 8 * 1024,
            max_parts: 16,
            max_buffer: 1 << 20,
        }
    }
}

/// A part's headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartHead {
    /// `Content-Disposition: form-data; name="…"`.
    pub name: String,
    /// `filename="…"`, if any.
    pub filename: Option<String>,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The header block as it came (without the blank line), for the flight recorder.
    pub raw: Bytes,
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartEvent {
    /// A part starts.
    Start(PartHead),
    /// Some of the current part's data.
    Data(Bytes),
    /// The current part is whole.
    End,
    /// The closing delimiter: the body is whole (what follows is ignored).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterBoundary,
    Headers,
    Body,
    Done,
}

/// The streaming parser of one body.
#[derive(Debug)]
pub struct MultipartParser {
    /// `--BOUNDARY`.
    dash_boundary: Vec<u8>,
    /// `CRLF--BOUNDARY`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    /// Some preamble was dropped: a boundary no longer opens the body.
    past_start: bool,
    parts: usize,
    limits: MultipartLimits,
}

/// The boundary of a `multipart/form-data` Content-Type (RFC 2046 §5.1.1: 1 to 70 characters).
pub fn boundary_of(content_type: &str) -> Result<String, MultipartError> {
    let mut it = content_type.split(';');
    let media = it.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::ContentType(
            "the Content-Type is not multipart/form-data",
        ));
    }
    for p in it {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || v.len() > 70 || v.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
                return Err(MultipartError::ContentType(
                    "the multipart boundary is not 1 to 70 printable characters",
                ));
            }
            return Ok(v.to_string());
        }
    }
    Err(MultipartError::ContentType(
        "the multipart/form-data Content-Type has no boundary",
    ))
}

impl MultipartParser {
    /// A parser for a body with `boundary` (see [`boundary_of`]).
    pub fn new(boundary: &str, limits: MultipartLimits) -> MultipartParser {
        let dash_boundary = [b"--".as_slice(), boundary.as_bytes()].concat();
        let delimiter = [b"\r\n".as_slice(), &dash_boundary].concat();
        MultipartParser {
            dash_boundary,
            delimiter,
            buf: BytesMut::new(),
            state: State::Preamble,
            past_start: false,
            parts: 0,
            limits,
        }
    }

    /// Hands the parser the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), MultipartError> {
        if self.state == State::Done {
            return Ok(());
        }
        if self.buf.len() > self.limits.max_buffer {
            return Err(MultipartError::BufferFull);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes held now (for the caller's accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the closing delimiter was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The body ended: an error unless the closing delimiter was seen.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(MultipartError::Truncated)
        }
    }

    /// The next event, or `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<PartEvent>, MultipartError> {
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Preamble => {
                    // The first boundary may open the body, or follow a preamble and a CRLF.
                    if !self.past_start {
                        if self.buf.starts_with(&self.dash_boundary) {
                            self.buf.advance(self.dash_boundary.len());
                            self.state = State::AfterBoundary;
                            continue;
                        }
                        if self.dash_boundary.starts_with(&self.buf) {
                            return Ok(None);
                        }
                    }
                    match memchr::memmem::find(&self.buf, &self.delimiter) {
                        Some(i) => {
                            self.buf.advance(i + self.delimiter.len());
                            self.state = State::AfterBoundary;
                        }
                        None => {
                            // Keep only what could start a delimiter.
                            let keep = self.delimiter.len() - 1;
                            if self.buf.len() > keep {
                                let drop = self.buf.len() - keep;
                                self.buf.advance(drop);
                                self.past_start = true;
                            }
                            return Ok(None);
                        }
                    }
                }
                State::AfterBoundary => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        self.buf.clear();
                        return Ok(Some(PartEvent::Done));
                    }
                    // Transport padding (RFC 2046 §5.1.1: LWSP before the CRLF).
                    let pad = self
                        .buf
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'\t')
                        .count();
                    if pad > 64 {
                        return Err(MultipartError::Malformed("padding after a boundary"));
                    }
                    if self.buf.len() < pad + 2 {
                        return Ok(None);
                    }
                    if &self.buf[pad..pad + 2] != b"\r\n" {
                        return Err(MultipartError::Malformed(
                            "a boundary is not followed by CRLF",
                        ));
                    }
                    self.buf.advance(pad + 2);
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(MultipartError::TooManyParts(self.limits.max_parts));
                    }
                    self.state = State::Headers;
                }
                State::Headers => {
                    // A part with no headers starts with the blank line itself.
                    let (block_len, skip) = if self.buf.starts_with(b"\r\n") {
                        (0, 2)
                    } else {
                        match memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                            Some(i) => (i, i + 4),
                            None => {
                                if self.buf.len() > self.limits.max_header_bytes {
                                    return Err(MultipartError::HeadersTooLarge(
                                        self.limits.max_header_bytes,
                                    ));
                                }
                                return Ok(None);
                            }
                        }
                    };
                    if block_len > self.limits.max_header_bytes {
                        return Err(MultipartError::HeadersTooLarge(
                            self.limits.max_header_bytes,
                        ));
                    }
                    let raw = self.buf.split_to(skip).freeze().slice(..block_len);
                    let head = parse_head(raw)?;
                    self.state = State::Body;
                    return Ok(Some(PartEvent::Start(head)));
                }
                State::Body => {
                    if self.buf.starts_with(&self.delimiter) {
                        self.buf.advance(self.delimiter.len());
                        self.state = State::AfterBoundary;
                        return Ok(Some(PartEvent::End));
                    }
                    let n = match memchr::memmem::find(&self.buf, &self.delimiter) {
                        Some(i) => i,
                        // All but what could be the start of a delimiter.
                        None => self.buf.len().saturating_sub(self.delimiter.len() - 1),
                    };
                    if n == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(PartEvent::Data(self.buf.split_to(n).freeze())));
                }
            }
        }
    }
}

/// A part's header block: `Content-Disposition` (form-data, name, filename) and `Content-Type`.
fn parse_head(raw: Bytes) -> Result<PartHead, MultipartError> {
    let text = String::from_utf8_lossy(&raw);
    let mut head = PartHead {
        raw: raw.clone(),
        ..Default::default()
    };
    let mut disposition = false;
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(MultipartError::Malformed("a part header line without ':'"));
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = value.split_once(';').unwrap_or((value, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::Malformed(
                    "a part's Content-Disposition is not form-data",
                ));
            }
            for (k, v) in disposition_params(params)? {
                if k.eq_ignore_ascii_case("name") {
                    head.name = v;
                } else if k.eq_ignore_ascii_case("filename") {
                    head.filename = Some(v);
                }
            }
            disposition = true;
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.trim().to_string());
        }
    }
    if !disposition || head.name.is_empty() {
        return Err(MultipartError::Malformed(
            "a part without Content-Disposition: form-data; name=…",
        ));
    }
    Ok(head)
}

/// `; k=v; k="quoted \" value"` parameters.
fn disposition_params(s: &str) -> Result<Vec<(String, String)>, MultipartError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b';' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        let key = s[k0..i].trim().to_string();
        if i >= b.len() || b[i] == b';' {
            out.push((key, String::new()));
            continue;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let mut val = Vec::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(MultipartError::Malformed("an unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        val.push(b[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        val.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && b[i] != b';' {
                val.push(b[i]);
                i += 1;
            }
        }
        out.push((key, String::from_utf8_lossy(&val).trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"tid\"\r\nContent-Type: text/plain\r\n\r\nf81d4fae\r\n--XyZ\r\nContent-Disposition: form-data; name=\"Thumbnail\"; filename=\"t.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8thumb\r\n--X\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"File\"; filename=\"a \\\"b\\\".bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--XyY-not\r\n--XyZ--\r\nepilogue";

    /// Feeds `body` in chunks of `n` and collects (name, data) per part.
    fn parse_in(body: &[u8], n: usize) -> Result<Vec<(PartHead, Vec<u8>)>, MultipartError> {
        let mut p = MultipartParser::new("XyZ", MultipartLimits::default());
        let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
        let mut open = false;
        for chunk in body.chunks(n) {
            p.push(chunk)?;
            while let Some(ev) = p.next_event()? {
                match ev {
                    PartEvent::Start(h) => {
                        assert!(!open);
                        open = true;
                        parts.push((h, Vec::new()));
                    }
                    PartEvent::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(&d),
                    PartEvent::End => open = false,
                    PartEvent::Done => assert!(!open),
                }
                assert!(p.buffered() <= n + 64, "bounded buffer");
            }
        }
        p.finish()?;
        Ok(parts)
    }

    #[test]
    fn parts_come_out_whole_at_every_chunk_size() {
        for n in [1, 2, 3, 5, 7, 16, 64, BODY.len()] {
            let parts = parse_in(BODY, n).unwrap_or_else(|e| panic!("chunk {n}: {e}"));
            let names: Vec<&str> = parts.iter().map(|(h, _)| h.name.as_str()).collect();
            assert_eq!(names, ["tid", "Thumbnail", "File"], "chunk {n}");
            assert_eq!(parts[0].1, b"f81d4fae");
            assert_eq!(parts[0].0.content_type.as_deref(), Some("text/plain"));
            assert_eq!(parts[1].1, b"\xff\xd8thumb\r\n--X");
            assert_eq!(parts[1].0.filename.as_deref(), Some("t.jpg"));
            assert_eq!(parts[2].0.filename.as_deref(), Some("a \"b\".bin"));
            assert_eq!(parts[2].1, b"\r\n--XyY-not");
            assert!(parts[2].0.raw.starts_with(b"Content-Disposition"));
        }
    }

    #[test]
    fn a_body_cut_short_is_truncated_and_bad_ones_are_malformed() {
        let cut = &BODY[..BODY.len() - 20];
        assert_eq!(parse_in(cut, 7).unwrap_err(), MultipartError::Truncated);
        assert_eq!(
            parse_in(b"--XyZ\r\nContent-Type: x\r\n\r\nd\r\n--XyZ--", 4).unwrap_err(),
            MultipartError::Malformed("a part without Content-Disposition: form-data; name=…")
        );
        assert!(matches!(
            parse_in(b"--XyZ\r\nno colon here\r\n\r\n", 3),
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            parse_in(b"--XyZjunk\r\n", 3),
            Err(MultipartError::Malformed(_))
        ));
        assert!(matches!(
            parse_in(
                b"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XyZ--",
                50
            ),
            Err(MultipartError::Malformed(_))
        ));
        assert_eq!(parse_in(b"", 1).unwrap_err(), MultipartError::Truncated);
        // An empty body with only the closing delimiter has no parts.
        assert!(parse_in(b"--XyZ--\r\n", 2).unwrap().is_empty());
    }

    #[test]
    fn limits_hold() {
        let big_head = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nX: {}\r\n\r\n",
            "h".repeat(9000)
        );
        assert_eq!(
            parse_in(big_head.as_bytes(), 100).unwrap_err(),
            MultipartError::HeadersTooLarge(8192)
        );
        let many: String = (0..20)
            .map(|i| format!("--XyZ\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n"))
            .collect::<String>()
            + "--XyZ--";
        assert_eq!(
            parse_in(many.as_bytes(), 50).unwrap_err(),
            MultipartError::TooManyParts(16)
        );
        let mut p = MultipartParser::new(
            "b",
            MultipartLimits {
                max_buffer: 4,
                ..Default::default()
            },
        );
        p.push(b"0123456789").unwrap();
        assert_eq!(p.push(b"x"), Err(MultipartError::BufferFull));
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert_eq!(
            boundary_of("Multipart/Form-Data;charset=utf-8; BOUNDARY=xyz").unwrap(),
            "xyz"
        );
        for bad in [
            "text/plain",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/mixed; boundary=x",
        ] {
            assert!(boundary_of(bad).is_err(), "{bad}");
        }
        assert!(boundary_of(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }
}
