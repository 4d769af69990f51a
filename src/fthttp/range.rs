//! Byte ranges (RFC 9110 §14): `Content-Range: bytes FIRST-LAST/COMPLETE` on a resumed
//! upload's PUT (RCC.07 §3.5.4.8.4) and on a 206; `Range: bytes=…` on a download that resumes.
//! Only the `bytes` unit and a single range are served; a `Range` with several ranges is
//! answered whole (RFC 9110 §14.2 lets a server ignore `Range`).

use std::fmt;

/// Why a range header does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not `bytes …`.
    #[error("the range unit is not bytes")]
    Unit,
    /// Not of the header's grammar.
    #[error("malformed range: {0}")]
    Syntax(&'static str),
    /// LAST before FIRST, or past COMPLETE.
    #[error("the range is not within the representation")]
    Bounds,
    /// Several ranges (not served).
    #[error("several ranges")]
    Multiple,
}

/// `Content-Range: bytes FIRST-LAST/COMPLETE` (COMPLETE `*` when unknown), both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte.
    pub first: u64,
    /// Last byte (inclusive).
    pub last: u64,
    /// The whole length, when known.
    pub complete: Option<u64>,
}

fn number(s: &str) -> Result<u64, RangeError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeError::Syntax("not a decimal number"));
    }
    s.parse()
        .map_err(|_| RangeError::Syntax("number too large"))
}

impl ContentRange {
    /// Parses a `Content-Range` value (not the unsatisfied-range form `bytes */N`).
    pub fn parse(v: &str) -> Result<ContentRange, RangeError> {
        let v = v.trim();
        let rest = v
            .strip_prefix("bytes ")
            .or_else(|| v.strip_prefix("bytes="))
            .ok_or(RangeError::Unit)?;
        let (range, complete) = rest
            .split_once('/')
            .ok_or(RangeError::Syntax("no '/' before the complete length"))?;
        let (first, last) = range
            .split_once('-')
            .ok_or(RangeError::Syntax("no '-' in the range"))?;
        let (first, last) = (number(first)?, number(last)?);
        let complete = match complete.trim() {
            "*" => None,
            c => Some(number(c)?),
        };
        if last < first || complete.is_some_and(|c| last >= c) {
            return Err(RangeError::Bounds);
        }
        Ok(ContentRange {
            first,
            last,
            complete,
        })
    }

    /// How many bytes the range holds.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never empty (LAST >= FIRST); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes {}-{}/", self.first, self.last)?;
        match self.complete {
            Some(c) => write!(f, "{c}"),
            None => f.write_str("*"),
        }
    }
}

/// One range of `Range: bytes=…` (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `FIRST-` or `FIRST-LAST`.
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive, if given.
        last: Option<u64>,
    },
    /// `-N`: the last N bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` value holding one range.
    pub fn parse(v: &str) -> Result<ByteRange, RangeError> {
        let rest = v.trim().strip_prefix("bytes=").ok_or(RangeError::Unit)?;
        if rest.contains(',') {
            return Err(RangeError::Multiple);
        }
        let (first, last) = rest
            .split_once('-')
            .ok_or(RangeError::Syntax("no '-' in the range"))?;
        if first.trim().is_empty() {
            return Ok(ByteRange::Suffix(number(last)?));
        }
        let first = number(first)?;
        let last = match last.trim() {
            "" => None,
            l => Some(number(l)?),
        };
        if last.is_some_and(|l| l < first) {
            return Err(RangeError::Bounds);
        }
        Ok(ByteRange::From { first, last })
    }

    /// The inclusive byte span of a representation of `len` bytes, or `None` when the range
    /// is not satisfiable (416, RFC 9110 §15.5.17).
    pub fn resolve(&self, len: u64) -> Option<(u64, u64)> {
        match *self {
            ByteRange::From { first, last } if first < len => {
                Some((first, last.map_or(len - 1, |l| l.min(len - 1))))
            }
            ByteRange::From { .. } => None,
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(_) if len == 0 => None,
            ByteRange::Suffix(n) => Some((len.saturating_sub(n), len - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_reads_prints_and_checks_bounds() {
        let c = ContentRange::parse("bytes 52428800-104857599/104857600").unwrap();
        assert_eq!(
            (c.first, c.last, c.complete, c.len()),
            (52_428_800, 104_857_599, Some(104_857_600), 52_428_800)
        );
        assert_eq!(c.to_string(), "bytes 52428800-104857599/104857600");
        let star = ContentRange::parse(" bytes 0-9/* ").unwrap();
        assert_eq!(star.complete, None);
        assert_eq!(star.to_string(), "bytes 0-9/*");
        for (bad, e) in [
            ("items 0-1/2", RangeError::Unit),
            ("bytes 5-4/10", RangeError::Bounds),
            ("bytes 0-10/10", RangeError::Bounds),
            (
                "bytes 0-1",
                RangeError::Syntax("no '/' before the complete length"),
            ),
            ("bytes 01/2", RangeError::Syntax("no '-' in the range")),
            ("bytes -1-2/3", RangeError::Syntax("not a decimal number")),
            ("bytes +1-2/3", RangeError::Syntax("not a decimal number")),
            ("bytes */10", RangeError::Syntax("no '-' in the range")),
            (
                "bytes 0-99999999999999999999/1",
                RangeError::Syntax("not a decimal number"),
            ),
        ] {
            assert_eq!(ContentRange::parse(bad), Err(e), "{bad}");
        }
    }

    #[test]
    fn range_resolves_against_the_length() {
        let r = |s: &str| ByteRange::parse(s).unwrap();
        assert_eq!(r("bytes=0-").resolve(10), Some((0, 9)));
        assert_eq!(r("bytes=4-6").resolve(10), Some((4, 6)));
        assert_eq!(r("bytes=4-600").resolve(10), Some((4, 9)));
        assert_eq!(r("bytes=-3").resolve(10), Some((7, 9)));
        assert_eq!(r("bytes=-30").resolve(10), Some((0, 9)));
        assert_eq!(r("bytes=10-").resolve(10), None);
        assert_eq!(r("bytes=-0").resolve(10), None);
        assert_eq!(r("bytes=0-").resolve(0), None);
        assert_eq!(ByteRange::parse("bytes=0-1,5-6"), Err(RangeError::Multiple));
        assert_eq!(ByteRange::parse("bytes=6-1"), Err(RangeError::Bounds));
        assert_eq!(ByteRange::parse("lines=1-2"), Err(RangeError::Unit));
        assert!(ByteRange::parse("bytes=").is_err());
        assert!(ByteRange::parse("bytes=a-").is_err());
    }
}
