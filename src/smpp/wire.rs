//! Reading and writing the SMPP 3.4 base types (§3.1): Integer (1, 2, 4 octets, big endian),
//! C-Octet String (NUL-terminated, its maximum size counting the NUL) and Octet String.

use super::status::CommandStatus;
use super::SmppError;

/// What went wrong in a PDU body, before the command and sequence number are known to the
/// caller that turns it into [`SmppError::Body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub field: &'static str,
    pub why: &'static str,
    pub status: CommandStatus,
}

impl Fault {
    pub fn new(field: &'static str, why: &'static str, status: CommandStatus) -> Self {
        Fault { field, why, status }
    }
}

/// A cursor over a PDU body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A body that ends before its mandatory fields do: the command_length does not fit the
    /// command (ESME_RINVCMDLEN).
    fn truncated(field: &'static str) -> Fault {
        Fault::new(
            field,
            "body ends before this mandatory field",
            CommandStatus::InvCmdLen,
        )
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Fault> {
        if self.buf.len() - self.pos < n {
            return Err(Self::truncated(field));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, Fault> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, Fault> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A C-Octet String of at most `max` octets including its NUL (§3.1). No NUL within `max`
    /// octets is `bad` (the field's own status, e.g. ESME_RINVSRCADR); a body that ends first is
    /// ESME_RINVCMDLEN.
    pub fn cstr(
        &mut self,
        field: &'static str,
        max: usize,
        bad: CommandStatus,
    ) -> Result<String, Fault> {
        let rest = self.rest();
        let window = &rest[..rest.len().min(max)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            if rest.len() < max {
                return Err(Self::truncated(field));
            }
            return Err(Fault::new(field, "longer than its maximum size", bad));
        };
        let s = std::str::from_utf8(&window[..nul])
            .map_err(|_| Fault::new(field, "not ASCII/UTF-8 text", bad))?;
        self.pos += nul + 1;
        Ok(s.to_string())
    }
}

/// The octets of a C-Octet String that must fit in `max` octets with its NUL; the error names
/// the field (encoding refuses what the decoder on the other side would refuse).
pub(crate) fn put_cstr(
    out: &mut Vec<u8>,
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), SmppError> {
    if s.len() + 1 > max {
        return Err(SmppError::Encode {
            field,
            why: "longer than its maximum size",
        });
    }
    if s.as_bytes().contains(&0) {
        return Err(SmppError::Encode {
            field,
            why: "contains a NUL",
        });
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}
