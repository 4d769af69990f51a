//! Stream framing (RFC 3261 §18.3): cutting whole messages out of a TCP byte stream by
//! Content-Length, with CRLF keep-alives (RFC 5626 §3.5.1), an explicit `Incomplete` outcome
//! and a size cap.

use super::{malformed, SipError, MAX_MESSAGE_SIZE};

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

pub(super) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| {
            // Bare LF line ends are tolerated (RFC 3261 §7.5 recommends tolerance).
            buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
        })
}

pub(super) fn content_length_of(head: &str) -> Result<Option<usize>, SipError> {
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

#[cfg(test)]
mod tests {
    use super::super::SIPP_REGISTER;
    use super::*;

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
}
