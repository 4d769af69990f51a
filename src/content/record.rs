//! The flight-recorder hook of the content server: each request and response goes into the
//! same ladders and pcap as SIP, Diameter and WebRSF's HTTP, as one HTTP/1.1 message with a
//! Content-Length (so tshark reads it whole, multipart parts and all). A body larger than
//! [`TRACE_BODY_MAX`] (a file) is not copied into the recorder: the recorded message says
//! how many bytes were left out, as `text/plain`, with the original type in
//! `x-rcslab-content-type`. Bearer secrets (the grant API's) are masked.

use std::net::SocketAddr;

use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};

use crate::trace::{Direction, Protocol, Trace};

/// The largest body copied into the recorder.
pub const TRACE_BODY_MAX: usize = 64 * 1024;

/// The first bytes of a body as they stream past, and how many there were.
#[derive(Debug, Default)]
pub struct Capture {
    kept: Vec<u8>,
    total: u64,
    on: bool,
}

impl Capture {
    /// Capturing only when `on` (the recorder records).
    pub fn new(on: bool) -> Capture {
        Capture {
            on,
            ..Default::default()
        }
    }

    /// Counts `data`, keeping it while the total stays within [`TRACE_BODY_MAX`].
    pub fn add(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if self.on && self.total <= TRACE_BODY_MAX as u64 {
            self.kept.extend_from_slice(data);
        }
    }
}

/// Renders headers and a (captured) body as the recorded copy of the message: the headers
/// as they came, but with the recorded body's own Content-Length.
fn wire(first_line: &str, headers: &HeaderMap, kept: &[u8], total: u64) -> Vec<u8> {
    let whole = total as usize == kept.len();
    let elided = format!("[rcslab: {total}-byte body not recorded]");
    let body: &[u8] = if whole { kept } else { elided.as_bytes() };
    let mut head = format!("{first_line}\r\n");
    for (k, v) in headers {
        if k == CONTENT_LENGTH || k == TRANSFER_ENCODING {
            continue;
        }
        let v = v.to_str().unwrap_or("");
        if k == AUTHORIZATION && v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            head.push_str("authorization: Bearer ***\r\n");
        } else if k == CONTENT_TYPE && !whole {
            head.push_str(&format!(
                "x-rcslab-content-type: {v}\r\ncontent-type: text/plain\r\n"
            ));
        } else {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Records a request the server received.
pub fn request(
    trace: &Trace,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    (method, target): (&str, &str),
    headers: &HeaderMap,
    body: &Capture,
) {
    let Some(local) = local.filter(|_| trace.is_enabled()) else {
        return;
    };
    let bytes = wire(
        &format!("{method} {target} HTTP/1.1"),
        headers,
        &body.kept,
        body.total,
    );
    let path = target.split('?').next().unwrap_or(target);
    trace.record(
        Direction::Received,
        Protocol::Http,
        local,
        remote,
        &bytes,
        || format!("{method} {path}"),
    );
}

/// Records a response the server sent; `body` is the whole body when it is small, with
/// `total` its length.
pub fn response(
    trace: &Trace,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    status: hyper::StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    total: u64,
) {
    let Some(local) = local.filter(|_| trace.is_enabled()) else {
        return;
    };
    let line = format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let kept = if total as usize == body.len() && body.len() <= TRACE_BODY_MAX {
        body
    } else {
        &[]
    };
    let bytes = wire(&line, headers, kept, total);
    trace.record(
        Direction::Sent,
        Protocol::Http,
        local,
        remote,
        &bytes,
        || line,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_copies_have_their_own_length_and_mask_bearer_secrets() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer s3cret-s3cret".parse().unwrap());
        h.insert(
            CONTENT_TYPE,
            "multipart/form-data; boundary=b".parse().unwrap(),
        );
        h.insert(TRANSFER_ENCODING, "chunked".parse().unwrap());
        let w = String::from_utf8(wire("POST / HTTP/1.1", &h, b"abc", 3)).unwrap();
        assert!(
            w.contains("authorization: Bearer ***\r\n") && !w.contains("s3cret"),
            "{w}"
        );
        assert!(
            w.ends_with("content-length: 3\r\n\r\nabc") && !w.contains("chunked"),
            "{w}"
        );
        let mut c = Capture::new(true);
        c.add(&vec![0u8; TRACE_BODY_MAX]);
        c.add(b"x");
        let w = String::from_utf8(wire("POST / HTTP/1.1", &h, &c.kept, c.total)).unwrap();
        assert!(w.contains("x-rcslab-content-type: multipart/form-data; boundary=b\r\ncontent-type: text/plain\r\n"), "{w}");
        assert!(w.ends_with("[rcslab: 65537-byte body not recorded]"), "{w}");
    }
}
