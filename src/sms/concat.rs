//! Long texts as concatenated short messages (TS 23.040 §9.2.3.24.1): [`split`] chooses the
//! alphabet (GSM 7-bit when every character is in it, else UCS-2) and cuts the text into
//! parts that each fit one TPDU beside the concatenation header — 160 septets or 70 UCS-2
//! units alone, 153 or 67 per part — never between an escape and its character or inside a
//! surrogate pair. [`Reassembler`] puts parts back together, bounded in messages held and in
//! how long it waits for a missing part.
//!
//! Socket-free and clock-injected.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::gsm7;
use super::user_data::{DCS_GSM7, DCS_UCS2};
use super::SmsError;

/// Septets in one message without a header, and per part with the 8-bit concatenation header.
pub const GSM7_SINGLE: usize = 160;
pub const GSM7_PART: usize = 153;
/// UCS-2 units alike.
pub const UCS2_SINGLE: usize = 70;
pub const UCS2_PART: usize = 67;

/// A text cut for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// TP-DCS of every part.
    pub dcs: u8,
    /// The parts' texts (one: no concatenation header).
    pub parts: Vec<String>,
}

/// Cuts `text` into at most `max_parts` parts (an error past that).
pub fn split(text: &str, max_parts: usize) -> Result<Split, SmsError> {
    let max_parts = max_parts.clamp(1, 255);
    let gsm = gsm7::fits(text);
    let (dcs, single, part) = if gsm {
        (DCS_GSM7, GSM7_SINGLE, GSM7_PART)
    } else {
        (DCS_UCS2, UCS2_SINGLE, UCS2_PART)
    };
    let cost = |c: char| -> usize {
        if gsm {
            gsm7::septet_len(c).unwrap_or(1)
        } else {
            c.len_utf16()
        }
    };
    let total: usize = text.chars().map(cost).sum();
    if total <= single {
        return Ok(Split {
            dcs,
            parts: vec![text.to_string()],
        });
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = cost(c);
        if used + n > part {
            parts.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(c);
        used += n;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    if parts.len() > max_parts {
        return Err(SmsError::TooLong(format!(
            "{} parts (at most {max_parts})",
            parts.len()
        )));
    }
    Ok(Split { dcs, parts })
}

/// Which message a part belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartKey {
    /// Who sent it (the originating address).
    pub from: String,
    pub reference: u16,
    pub total: u8,
}

#[derive(Debug)]
struct Pending {
    parts: Vec<Option<String>>,
    have: usize,
    since: Instant,
}

/// Parts waiting for the rest of their message.
#[derive(Debug)]
pub struct Reassembler {
    pending: HashMap<PartKey, Pending>,
    order: VecDeque<PartKey>,
    max_messages: usize,
    wait: Duration,
}

/// What one part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The message is whole: its text.
    Complete(String),
    /// Waiting for more (this many of the total so far).
    Waiting(usize),
    /// A part already held came again (a retransmission): ignored.
    Duplicate,
}

impl Reassembler {
    /// Holds at most `max_messages` incomplete messages (the oldest goes), each at most `wait`.
    pub fn new(max_messages: usize, wait: Duration) -> Reassembler {
        Reassembler {
            pending: HashMap::new(),
            order: VecDeque::new(),
            max_messages: max_messages.max(1),
            wait,
        }
    }

    /// Incomplete messages held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds part `seq` (1-based) of `key`.
    pub fn add(
        &mut self,
        now: Instant,
        key: PartKey,
        seq: u8,
        text: String,
    ) -> Result<Added, SmsError> {
        if key.total == 0 || seq == 0 || seq > key.total {
            return Err(SmsError::Invalid(format!(
                "part {seq} of {} is not a part",
                key.total
            )));
        }
        self.expire(now);
        if key.total == 1 {
            return Ok(Added::Complete(text));
        }
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= self.max_messages {
                match self.order.pop_front() {
                    Some(old) => {
                        self.pending.remove(&old);
                    }
                    None => break,
                }
            }
            self.pending.insert(
                key.clone(),
                Pending {
                    parts: vec![None; key.total as usize],
                    have: 0,
                    since: now,
                },
            );
            self.order.push_back(key.clone());
        }
        let Some(p) = self.pending.get_mut(&key) else {
            return Err(SmsError::Invalid("no room for the message".into()));
        };
        let slot = &mut p.parts[seq as usize - 1];
        if slot.is_some() {
            return Ok(Added::Duplicate);
        }
        *slot = Some(text);
        p.have += 1;
        if p.have < p.parts.len() {
            return Ok(Added::Waiting(p.have));
        }
        let p = self.pending.remove(&key).map(|p| p.parts);
        self.order.retain(|k| k != &key);
        Ok(Added::Complete(
            p.unwrap_or_default().into_iter().flatten().collect(),
        ))
    }

    /// Drops messages whose first part came more than `wait` ago; their keys.
    pub fn expire(&mut self, now: Instant) -> Vec<PartKey> {
        let mut gone = Vec::new();
        while let Some(k) = self.order.front() {
            match self.pending.get(k) {
                Some(p) if now.duration_since(p.since) < self.wait => break,
                _ => {
                    if let Some(k) = self.order.pop_front() {
                        if self.pending.remove(&k).is_some() {
                            gone.push(k);
                        }
                    }
                }
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_go_alone_long_ones_in_parts() {
        let s = split("hello", 10).unwrap();
        assert_eq!((s.dcs, s.parts.len()), (DCS_GSM7, 1));
        let s = split(&"a".repeat(160), 10).unwrap();
        assert_eq!(s.parts.len(), 1);
        let s = split(&"a".repeat(161), 10).unwrap();
        assert_eq!(
            s.parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [153, 8]
        );
        // Korean: UCS-2, 70 alone, 67 per part.
        let s = split(&"가".repeat(70), 10).unwrap();
        assert_eq!((s.dcs, s.parts.len()), (DCS_UCS2, 1));
        let s = split(&"가".repeat(71), 10).unwrap();
        assert_eq!(
            s.parts
                .iter()
                .map(|p| p.chars().count())
                .collect::<Vec<_>>(),
            [67, 4]
        );
        // An LMS of 2,000 characters.
        assert_eq!(split(&"x".repeat(2000), 30).unwrap().parts.len(), 14);
        assert_eq!(split(&"한".repeat(2000), 30).unwrap().parts.len(), 30);
        assert!(matches!(
            split(&"한".repeat(2011), 30),
            Err(SmsError::TooLong(_))
        ));
    }

    #[test]
    fn never_splits_an_escape_or_a_surrogate_pair() {
        // 152 septets, then '€' (two): it goes whole into the second part.
        let t = format!("{}€{}", "a".repeat(152), "x".repeat(10));
        let s = split(&t, 5).unwrap();
        assert_eq!(s.parts[0], "a".repeat(152));
        assert_eq!(s.parts[1], format!("€{}", "x".repeat(10)));
        // 66 units, then an emoji (a surrogate pair) in UCS-2.
        let t = format!("{}😀{}", "가".repeat(66), "나".repeat(10));
        let s = split(&t, 5).unwrap();
        assert_eq!(s.parts[0].chars().count(), 66);
        assert!(s.parts[1].starts_with('😀'));
        assert_eq!(s.parts.concat(), t);
    }

    #[test]
    fn parts_come_back_in_order_once_and_bounded() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(2, Duration::from_secs(60));
        let key = |reference| PartKey {
            from: "+15550001".into(),
            reference,
            total: 3,
        };
        assert_eq!(r.add(t0, key(1), 3, "c".into()).unwrap(), Added::Waiting(1));
        assert_eq!(r.add(t0, key(1), 1, "a".into()).unwrap(), Added::Waiting(2));
        assert_eq!(r.add(t0, key(1), 1, "a".into()).unwrap(), Added::Duplicate);
        assert_eq!(
            r.add(t0, key(1), 2, "b".into()).unwrap(),
            Added::Complete("abc".into())
        );
        assert!(r.is_empty());
        assert!(r.add(t0, key(1), 4, "x".into()).is_err());
        assert!(r.add(t0, key(1), 0, "x".into()).is_err());
        // Bounded: a third message pushes the oldest out.
        r.add(t0, key(10), 1, "x".into()).unwrap();
        r.add(t0, key(11), 1, "x".into()).unwrap();
        r.add(t0, key(12), 1, "x".into()).unwrap();
        assert_eq!(r.len(), 2);
        // And a message missing a part goes after the wait.
        let gone = r.expire(t0 + Duration::from_secs(61));
        assert_eq!(gone.len(), 2);
        assert!(r.is_empty());
    }
}
