//! `multipart/mixed` bodies (RFC 2046 §5.1), as RCS chat uses them: an INVITE carrying the SDP
//! offer and the first message (`message/cpim`) side by side. Pure codec.

use bytes::Bytes;

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its Content-Type.
    pub content_type: String,
    /// Its other MIME headers.
    pub headers: Vec<(String, String)>,
    /// Its content.
    pub body: Bytes,
}

impl Part {
    /// A part with just a Content-Type.
    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Part {
        Part {
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// Builds a `multipart/mixed` body: returns the Content-Type header value and the body.
pub fn build(boundary: &str, parts: &[Part]) -> (String, Vec<u8>) {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(format!("Content-Type: {}\r\n", p.content_type).as_bytes());
        for (k, v) in &p.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", p.body.len()).as_bytes());
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/mixed;boundary={boundary}"), out)
}

/// Why a body is not a multipart we can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    /// No `boundary` parameter.
    #[error("multipart without a boundary parameter")]
    NoBoundary,
    /// The body does not follow RFC 2046.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
}

/// The boundary parameter of a multipart Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a multipart body into its parts.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    let b = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let delim = format!("--{b}");
    let d = delim.as_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(d.len())
            .position(|w| w == d)
            .map(|p| p + from)
    };
    let mut pos = find(body, 0).ok_or(MultipartError::Malformed("no first boundary"))?;
    let mut parts = Vec::new();
    loop {
        let after = pos + d.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Ok(parts);
        }
        // Skip to the end of the boundary line.
        let line_end = body[after..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| after + p + 2)
            .ok_or(MultipartError::Malformed("boundary line without CRLF"))?;
        let next = find(body, line_end).ok_or(MultipartError::Malformed("no closing boundary"))?;
        // The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
        let mut end = next;
        if end >= 2 && &body[end - 2..end] == b"\r\n" {
            end -= 2;
        }
        let chunk = &body[line_end..end.max(line_end)];
        // A part without headers starts with the blank line (RFC 2046 §5.1.1); its body may
        // hold blank lines of its own.
        let (head, content) = match chunk.windows(4).position(|w| w == b"\r\n\r\n") {
            _ if chunk.starts_with(b"\r\n") => (&chunk[..0], &chunk[2..]),
            Some(h) => (&chunk[..h], &chunk[h + 4..]),
            None => return Err(MultipartError::Malformed("part without a header block")),
        };
        let mut p = Part {
            content_type: "text/plain".into(),
            headers: Vec::new(),
            body: Bytes::copy_from_slice(content),
        };
        for line in String::from_utf8_lossy(head).split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("Content-Type") {
                    p.content_type = v.to_string();
                } else if !k.eq_ignore_ascii_case("Content-Length") {
                    p.headers.push((k.to_string(), v.to_string()));
                }
            }
        }
        parts.push(p);
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_and_cpim_round_trip() {
        let parts = vec![
            Part::new("application/sdp", &b"v=0\r\nm=message 9 TCP/MSRP *\r\n"[..]),
            Part::new(
                "message/cpim",
                &b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\nHi"[..],
            ),
        ];
        let (ct, body) = build("rcslab-b1", &parts);
        assert_eq!(ct, "multipart/mixed;boundary=rcslab-b1");
        assert_eq!(parse(&ct, &body).unwrap(), parts);
        assert_eq!(
            parse("multipart/mixed", &body),
            Err(MultipartError::NoBoundary)
        );
        assert!(parse(&ct, b"garbage").is_err());
        assert!(parse(&ct, b"--rcslab-b1\r\nContent-Type: a/b\r\n\r\nx").is_err());
    }

    /// Same shape as the CPIM case the `cpim` fuzz target found: a part without headers whose
    /// body holds a blank line.
    #[test]
    fn part_without_headers_keeps_its_blank_lines() {
        let body = b"--b\r\n\r\nline\r\n\r\nmore\r\n--b--\r\n";
        let parts = parse("multipart/mixed;boundary=b", body).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(parts[0].headers.is_empty());
        assert_eq!(&parts[0].body[..], b"line\r\n\r\nmore");
    }
}
