//! The delivery receipt an SMSC puts in the short_message of a deliver_sm with esm_class
//! "SMSC delivery receipt" (SMPP 3.4 Appendix B, whose format the spec calls SMSC specific
//! but which every SMSC and ESME library follows):
//!
//! ```text
//! id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text: . . . . . . . . .
//! ```

use super::types::MessageState;
use super::SmppError;

/// Characters of the original message a receipt repeats (Appendix B: "the first 20").
pub const RECEIPT_TEXT_LEN: usize = 20;

/// A delivery receipt (Appendix B table B-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryReceipt {
    /// The SMSC's message id, as in submit_sm_resp.
    pub id: String,
    /// Number of short messages originally submitted (`sub:`, 3 digits on the wire).
    pub sub: u16,
    /// Number of short messages delivered (`dlvrd:`).
    pub dlvrd: u16,
    /// When the message was submitted, `YYMMDDhhmm` (some SMSCs add `ss`).
    pub submit_date: String,
    /// When it reached its final state, same format.
    pub done_date: String,
    /// The final state (`stat:` DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD).
    pub stat: MessageState,
    /// Network or SMSC error code (`err:`, 3 characters, `000` for none).
    pub err: String,
    /// The start of the original message (`text:`).
    pub text: String,
}

/// The keys in their order; `text:` last, running to the end.
const KEYS: [&str; 8] = [
    "id:",
    "sub:",
    "dlvrd:",
    "submit date:",
    "done date:",
    "stat:",
    "err:",
    "text:",
];

impl DeliveryReceipt {
    /// The receipt text, as it goes in short_message.
    pub fn build(&self) -> String {
        format!(
            "id:{} sub:{:03} dlvrd:{:03} submit date:{} done date:{} stat:{} err:{} text:{}",
            self.id,
            self.sub,
            self.dlvrd,
            self.submit_date,
            self.done_date,
            self.stat.receipt_stat(),
            self.err,
            self.text
        )
    }

    /// The first [`RECEIPT_TEXT_LEN`] characters of `message`, for [`DeliveryReceipt::text`].
    pub fn text_of(message: &str) -> String {
        message.chars().take(RECEIPT_TEXT_LEN).collect()
    }

    /// Reads a receipt. Keys are matched without regard to case (`Text:` is common); `id:` and
    /// `stat:` are required, the others default to 0 or empty when absent.
    pub fn parse(text: &[u8]) -> Result<DeliveryReceipt, SmppError> {
        let s = std::str::from_utf8(text).map_err(|_| SmppError::Receipt("not text"))?;
        let lower = s.to_ascii_lowercase();
        // Where each key's value starts, searching forward from the previous key.
        let mut starts = [None; KEYS.len()];
        let mut from = 0;
        for (i, k) in KEYS.iter().enumerate() {
            if let Some(at) = find_key(&lower, k, from) {
                starts[i] = Some((at, at + k.len()));
                from = at + k.len();
            }
        }
        let value = |i: usize| -> Option<&str> {
            let (_, v) = starts[i]?;
            if i == KEYS.len() - 1 {
                return Some(&s[v..]);
            }
            let end = starts[i + 1..]
                .iter()
                .flatten()
                .map(|(k, _)| *k)
                .next()
                .unwrap_or(s.len());
            Some(s[v..end].trim())
        };
        let number = |i: usize, what: &'static str| -> Result<u16, SmppError> {
            match value(i) {
                None | Some("") => Ok(0),
                Some(v) => v.parse().map_err(|_| SmppError::Receipt(what)),
            }
        };
        let id = value(0).ok_or(SmppError::Receipt("no id:"))?.to_string();
        let stat_word = value(5).ok_or(SmppError::Receipt("no stat:"))?;
        let stat = MessageState::from_receipt_stat(&stat_word.to_ascii_uppercase())
            .ok_or(SmppError::Receipt("unknown stat: word"))?;
        let date = |i: usize| -> Result<String, SmppError> {
            let d = value(i).unwrap_or("");
            if d.is_empty() || (d.len() <= 12 && d.bytes().all(|b| b.is_ascii_digit())) {
                Ok(d.to_string())
            } else {
                Err(SmppError::Receipt("date is not YYMMDDhhmm[ss]"))
            }
        };
        Ok(DeliveryReceipt {
            id,
            sub: number(1, "sub: is not a number")?,
            dlvrd: number(2, "dlvrd: is not a number")?,
            submit_date: date(3)?,
            done_date: date(4)?,
            stat,
            err: value(6).unwrap_or("").to_string(),
            text: value(7).unwrap_or("").to_string(),
        })
    }
}

/// `key` in `hay` at or after `from`, at the start or after a space (so `id:` does not match
/// inside `dlvrd:`'s neighbours or a message id).
fn find_key(hay: &str, key: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = hay.get(at..)?.find(key) {
        let pos = at + i;
        if pos == 0 || hay.as_bytes()[pos - 1] == b' ' {
            return Some(pos);
        }
        at = pos + 1;
    }
    None
}
