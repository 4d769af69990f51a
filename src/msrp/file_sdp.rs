//! The SDP attributes of an MSRP file transfer (RFC 5547 §6), as RCS clients offer a file
//! over MSRP (GSMA RCC.07 §3.2.5, the pre-HTTP way): the file described in
//! `a=file-selector` (name, type, size, hash), the transfer named by `a=file-transfer-id`,
//! `a=file-disposition` (render / attachment), `a=file-date`, and the octets wanted in
//! `a=file-range` (1-based, both ends inclusive, `*` for "to the end"); the direction
//! (`a=sendonly` at the sender's offer, `a=recvonly` at the receiver's answer, RFC 5547 §8).
//!
//! ```text
//! a=sendonly
//! a=file-selector:name:"photo.jpg" type:image/jpeg size:48213 hash:sha-1:72:24:5F:…:5C
//! a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd
//! a=file-disposition:render
//! a=file-date:creation:"Mon, 15 May 2006 15:01:31 +0300"
//! a=file-range:1-48213
//! ```
//!
//! A codec only: text in, typed values or typed errors out, no I/O; never a panic. The file
//! name is a quoted string whose `"`, `%`, CR and LF are percent-encoded (RFC 5547 §6,
//! `filename-string`).

use std::fmt::Write as _;

/// The longest attribute value read (a file name is bounded well below).
const MAX_VALUE: usize = 4096;
/// The longest hash read (SHA-512: 64 octets).
const MAX_HASH: usize = 64;

/// Why the file attributes of an SDP do not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileSdpError {
    /// An attribute that breaks RFC 5547's grammar (which, and why).
    #[error("a={0}: {1}")]
    Malformed(&'static str, String),
    /// A file transfer needs its `a=file-transfer-id` (RFC 5547 §6).
    #[error("a file-selector without a=file-transfer-id")]
    NoTransferId,
}

fn bad(attr: &'static str, why: impl Into<String>) -> FileSdpError {
    FileSdpError::Malformed(attr, why.into())
}

/// The hash of a file-selector (`hash:sha-1:72:24:…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// The IANA hash name, lower case (`sha-1`).
    pub algorithm: String,
    /// The octets.
    pub value: Vec<u8>,
}

/// `a=file-selector` (RFC 5547 §6): what identifies the file; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSelector {
    /// `name:"…"`, decoded.
    pub name: Option<String>,
    /// `type:` (a MIME type; its parameters, if any, were `;`-separated).
    pub content_type: Option<String>,
    /// `size:` in octets.
    pub size: Option<u64>,
    /// `hash:`.
    pub hash: Option<FileHash>,
}

/// The direction of the file's media (RFC 5547 §8: the sender offers `sendonly`, the
/// receiver answers `recvonly`; a pull offers `recvonly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDirection {
    /// `a=sendonly`.
    Send,
    /// `a=recvonly`.
    Receive,
}

/// `a=file-range` (RFC 5547 §6): octets `start` to `stop` (1-based, inclusive; `None`:
/// to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    /// First octet, from 1.
    pub start: u64,
    /// Last octet, or `*`.
    pub stop: Option<u64>,
}

/// The file-transfer attributes of an MSRP media description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTransferSdp {
    /// `a=file-selector`.
    pub selector: FileSelector,
    /// `a=file-transfer-id`.
    pub transfer_id: String,
    /// `a=file-disposition` (`render`, `attachment`…).
    pub disposition: Option<String>,
    /// `a=file-date` as it came (`creation:"…"` and the like).
    pub date: Option<String>,
    /// `a=file-range`.
    pub range: Option<FileRange>,
    /// `a=sendonly` / `a=recvonly`.
    pub direction: Option<FileDirection>,
}

/// `"`, `%`, CR and LF percent-encoded (RFC 5547 §6 `filename-string`).
fn encode_name(n: &str) -> String {
    let mut out = String::with_capacity(n.len());
    for c in n.chars() {
        match c {
            '"' | '%' | '\r' | '\n' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn decode_name(s: &str) -> Result<String, FileSdpError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    bad(
                        "file-selector",
                        "a % in the name not followed by two hex digits",
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("file-selector", "the name is not UTF-8"))
}

impl FileSelector {
    /// The attribute's value.
    pub fn to_value(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name:\"{}\"", encode_name(n)));
        }
        if let Some(t) = &self.content_type {
            parts.push(format!("type:{t}"));
        }
        if let Some(s) = self.size {
            parts.push(format!("size:{s}"));
        }
        if let Some(h) = &self.hash {
            let hex: Vec<String> = h.value.iter().map(|b| format!("{b:02X}")).collect();
            parts.push(format!("hash:{}:{}", h.algorithm, hex.join(":")));
        }
        parts.join(" ")
    }

    /// Reads the attribute's value.
    pub fn parse(v: &str) -> Result<FileSelector, FileSdpError> {
        let mut sel = FileSelector::default();
        let mut rest = v.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("name:\"") {
                let end = r
                    .find('"')
                    .ok_or_else(|| bad("file-selector", "unclosed name"))?;
                sel.name = Some(decode_name(&r[..end])?);
                rest = r[end + 1..].trim_start();
                continue;
            }
            let (item, next) = rest.split_once(' ').unwrap_or((rest, ""));
            rest = next.trim_start();
            let (key, val) = item
                .split_once(':')
                .ok_or_else(|| bad("file-selector", format!("{item}: no key")))?;
            match key {
                "type" => sel.content_type = Some(val.to_string()),
                "size" => {
                    sel.size = Some(
                        val.parse()
                            .map_err(|_| bad("file-selector", "size is not a number"))?,
                    )
                }
                "hash" => {
                    let (alg, hex) = val
                        .split_once(':')
                        .ok_or_else(|| bad("file-selector", "hash without algorithm"))?;
                    let value = hex
                        .split(':')
                        .map(|p| {
                            (p.len() == 2)
                                .then(|| u8::from_str_radix(p, 16).ok())
                                .flatten()
                        })
                        .collect::<Option<Vec<u8>>>()
                        .filter(|v| !v.is_empty() && v.len() <= MAX_HASH)
                        .ok_or_else(|| {
                            bad("file-selector", "hash is not colon-separated hex octets")
                        })?;
                    sel.hash = Some(FileHash {
                        algorithm: alg.to_ascii_lowercase(),
                        value,
                    });
                }
                // RFC 5547 §6: unknown selectors are ignored.
                _ => {}
            }
        }
        Ok(sel)
    }
}

impl FileRange {
    /// The attribute's value (`1-48213`, `1024-*`).
    pub fn to_value(&self) -> String {
        match self.stop {
            Some(s) => format!("{}-{s}", self.start),
            None => format!("{}-*", self.start),
        }
    }

    /// Reads the attribute's value.
    pub fn parse(v: &str) -> Result<FileRange, FileSdpError> {
        let (a, b) = v
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("file-range", "no '-'"))?;
        let start: u64 = a
            .parse()
            .map_err(|_| bad("file-range", "start is not a number"))?;
        if start == 0 {
            return Err(bad("file-range", "octets count from 1"));
        }
        let stop = match b {
            "*" => None,
            s => {
                let s: u64 = s
                    .parse()
                    .map_err(|_| bad("file-range", "stop is not a number or *"))?;
                if s < start {
                    return Err(bad("file-range", "stop before start"));
                }
                Some(s)
            }
        };
        Ok(FileRange { start, stop })
    }
}

impl FileTransferSdp {
    /// The attribute lines (CRLF after each), to go in the MSRP media description.
    pub fn to_lines(&self) -> String {
        let mut s = String::new();
        match self.direction {
            Some(FileDirection::Send) => s.push_str("a=sendonly\r\n"),
            Some(FileDirection::Receive) => s.push_str("a=recvonly\r\n"),
            None => {}
        }
        let _ = write!(s, "a=file-selector:{}\r\n", self.selector.to_value());
        let _ = write!(s, "a=file-transfer-id:{}\r\n", self.transfer_id);
        if let Some(d) = &self.disposition {
            let _ = write!(s, "a=file-disposition:{d}\r\n");
        }
        if let Some(d) = &self.date {
            let _ = write!(s, "a=file-date:{d}\r\n");
        }
        if let Some(r) = &self.range {
            let _ = write!(s, "a=file-range:{}\r\n", r.to_value());
        }
        s
    }

    /// The file transfer an SDP body describes: `None` when it has no `a=file-selector`
    /// (a chat, not a file).
    pub fn parse(sdp: &str) -> Result<Option<FileTransferSdp>, FileSdpError> {
        let mut selector = None;
        let mut transfer_id = None;
        let mut disposition = None;
        let mut date = None;
        let mut range = None;
        let mut direction = None;
        for line in sdp.lines().map(str::trim) {
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            if value.len() > MAX_VALUE {
                return Err(bad(
                    "file-*",
                    format!("a={name} longer than {MAX_VALUE} bytes"),
                ));
            }
            match name {
                "sendonly" => direction = Some(FileDirection::Send),
                "recvonly" => direction = Some(FileDirection::Receive),
                "file-selector" => selector = Some(FileSelector::parse(value)?),
                "file-transfer-id" => {
                    let id = value.trim();
                    if id.is_empty() || id.contains(char::is_whitespace) {
                        return Err(bad("file-transfer-id", "not a token"));
                    }
                    transfer_id = Some(id.to_string());
                }
                "file-disposition" => disposition = Some(value.trim().to_string()),
                "file-date" => date = Some(value.trim().to_string()),
                "file-range" => range = Some(FileRange::parse(value)?),
                _ => {}
            }
        }
        let Some(selector) = selector else {
            return Ok(None);
        };
        Ok(Some(FileTransferSdp {
            selector,
            transfer_id: transfer_id.ok_or(FileSdpError::NoTransferId)?,
            disposition,
            date,
            range,
            direction,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5547 §9.1's offer, as its example writes it.
    const RFC_OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n\
s=\r\n\
c=IN IP4 host.atlanta.example.com\r\n\
t=0 0\r\n\
m=message 7654 TCP/MSRP *\r\n\
i=This is my latest picture\r\n\
a=sendonly\r\n\
a=accept-types:message/cpim\r\n\
a=accept-wrapped-types:*\r\n\
a=path:msrp://atlanta.example.com:7654/jshA7we;tcp\r\n\
a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E\r\n\
a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n\
a=file-disposition:attachment\r\n\
a=file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"\r\n\
a=file-icon:cid:id2@alicepc.example.com\r\n\
a=file-range:1-32349\r\n";

    #[test]
    fn the_rfc_example_reads_and_writes_back() {
        let f = FileTransferSdp::parse(RFC_OFFER).unwrap().expect("a file");
        assert_eq!(f.selector.name.as_deref(), Some("My cool picture.jpg"));
        assert_eq!(f.selector.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(f.selector.size, Some(32349));
        let h = f.selector.hash.clone().unwrap();
        assert_eq!((h.algorithm.as_str(), h.value.len()), ("sha-1", 20));
        assert_eq!(&h.value[..3], &[0x72, 0x24, 0x5F]);
        assert_eq!(f.transfer_id, "vBnG916bdberum2fFEABR1FR3ExZMUrd");
        assert_eq!(f.disposition.as_deref(), Some("attachment"));
        assert_eq!(
            f.date.as_deref(),
            Some("creation:\"Mon, 15 May 2006 15:01:31 +0300\"")
        );
        assert_eq!(
            f.range,
            Some(FileRange {
                start: 1,
                stop: Some(32349)
            })
        );
        assert_eq!(f.direction, Some(FileDirection::Send));
        let lines = f.to_lines();
        assert!(lines.contains("a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E\r\n"), "{lines}");
        assert_eq!(FileTransferSdp::parse(&lines).unwrap(), Some(f));
    }

    #[test]
    fn names_are_percent_encoded_and_a_chat_has_no_file() {
        let f = FileTransferSdp {
            selector: FileSelector {
                name: Some("50% \"off\".txt".into()),
                content_type: Some("text/plain".into()),
                size: Some(7),
                hash: None,
            },
            transfer_id: "t1".into(),
            disposition: Some("render".into()),
            date: None,
            range: Some(FileRange {
                start: 1024,
                stop: None,
            }),
            direction: Some(FileDirection::Receive),
        };
        let lines = f.to_lines();
        assert!(lines.contains("name:\"50%25 %22off%22.txt\""), "{lines}");
        assert!(lines.starts_with("a=recvonly\r\n") && lines.contains("a=file-range:1024-*\r\n"));
        assert_eq!(FileTransferSdp::parse(&lines).unwrap(), Some(f));
        let chat = "m=message 9 TCP/MSRP *\r\na=path:msrp://h:9/s;tcp\r\na=sendrecv\r\n";
        assert_eq!(FileTransferSdp::parse(chat).unwrap(), None);
    }

    #[test]
    fn bad_attributes_are_errors_not_panics() {
        for bad_sdp in [
            "a=file-selector:size:12\r\n",
            "a=file-selector:name:\"open\r\na=file-transfer-id:x\r\n",
            "a=file-selector:size:x\r\na=file-transfer-id:x\r\n",
            "a=file-selector:hash:sha-1:ZZ\r\na=file-transfer-id:x\r\n",
            "a=file-selector:hash:sha-1\r\na=file-transfer-id:x\r\n",
            "a=file-selector:name:\"%4\"\r\na=file-transfer-id:x\r\n",
            "a=file-selector:type\r\na=file-transfer-id:x\r\n",
            "a=file-selector:size:1\r\na=file-transfer-id:\r\n",
            "a=file-selector:size:1\r\na=file-transfer-id:x\r\na=file-range:0-5\r\n",
            "a=file-selector:size:1\r\na=file-transfer-id:x\r\na=file-range:9-5\r\n",
            "a=file-selector:size:1\r\na=file-transfer-id:x\r\na=file-range:1\r\n",
        ] {
            assert!(FileTransferSdp::parse(bad_sdp).is_err(), "{bad_sdp:?}");
        }
        let long = format!(
            "a=file-selector:name:\"{}\"\r\na=file-transfer-id:x\r\n",
            "n".repeat(MAX_VALUE)
        );
        assert!(FileTransferSdp::parse(&long).is_err());
        // Multi-byte names and stray bytes do not panic.
        for s in [
            "a=file-selector:name:\"é%\"",
            "a=file-selector:name:\"%é1\"",
            "a=file-selector:\u{0}",
        ] {
            let _ = FileTransferSdp::parse(s);
        }
    }
}
