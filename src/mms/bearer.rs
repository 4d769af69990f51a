//! WAP Push over SMS (WAP-259 WDP §6.5, TS 23.040 §9.2.3.24): the push goes as 8-bit data
//! (TP-DCS 0x04) with a user data header naming the application ports — IEI 0x05, 16-bit
//! addressing (§9.2.3.24.4): destination 2948 (WAP Push connectionless), source 9200 — and,
//! when it does not fit one SMS, the concatenation element (IEI 0x00, §9.2.3.24.1) with the
//! port element in every part. [`short_messages`] cuts a push into such user data (header and
//! payload, as SMPP's short_message carries it with esm_class UDHI); [`Reassembler`] puts a
//! phone's parts back together, bounded in pushes held and in time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{invalid, MmsError};
use crate::sms::user_data::{Ie, UserData, MAX_UD_OCTETS};

/// The WAP Push destination port (connectionless WSP, IANA `wap-wsp` 2948).
pub const PUSH_PORT: u16 = 2948;
/// The source port a push comes from (WAP-259 WDP Appendix B: the push originator, 9200).
pub const SOURCE_PORT: u16 = 9200;
/// IEI of the 16-bit application port element.
pub const IEI_PORT16: u8 = 0x05;
/// Parts of one push at most.
pub const MAX_PARTS: usize = 8;

/// The 16-bit port element: 05 04 DEST(2) SRC(2).
fn port_ie() -> Ie {
    let (d, s) = (PUSH_PORT.to_be_bytes(), SOURCE_PORT.to_be_bytes());
    Ie::Other {
        iei: IEI_PORT16,
        data: vec![d[0], d[1], s[0], s[1]],
    }
}

/// The (destination, source) ports of a user data header's 16-bit port element.
pub fn ports(header: &[Ie]) -> Option<(u16, u16)> {
    header.iter().find_map(|ie| match ie {
        Ie::Other {
            iei: IEI_PORT16,
            data,
        } if data.len() == 4 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[2], data[3]]),
        )),
        _ => None,
    })
}

/// True when user data goes to the WAP Push port.
pub fn is_push(header: &[Ie]) -> bool {
    ports(header).is_some_and(|(d, _)| d == PUSH_PORT)
}

/// `push` as the user data of one or more SMS (UDH included, UDHI to be set, TP-DCS 0x04):
/// one part with the port element when it fits (133 octets), else parts of 128 octets with
/// the concatenation element (8-bit reference `reference`) and the port element in each.
pub fn short_messages(push: &[u8], reference: u8) -> Result<Vec<Vec<u8>>, MmsError> {
    let ud = |header: Vec<Ie>| -> Result<Vec<u8>, MmsError> {
        UserData {
            header,
            body: crate::sms::user_data::Body::Octets(Vec::new()),
        }
        .header_bytes()
        .map_err(|e| invalid(e.to_string()))
    };
    let single = ud(vec![port_ie()])?;
    if single.len() + push.len() <= MAX_UD_OCTETS {
        let mut p = single;
        p.extend_from_slice(push);
        return Ok(vec![p]);
    }
    let room = MAX_UD_OCTETS - ud(vec![concat(0, 1, 1), port_ie()])?.len();
    let total = push.len().div_ceil(room);
    if total > MAX_PARTS {
        return Err(MmsError::TooLong(format!(
            "a push of {} octets takes {total} SMS (at most {MAX_PARTS})",
            push.len()
        )));
    }
    push.chunks(room)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = ud(vec![concat(reference, total as u8, i as u8 + 1), port_ie()])?;
            p.extend_from_slice(chunk);
            Ok(p)
        })
        .collect()
}

fn concat(reference: u8, total: u8, seq: u8) -> Ie {
    Ie::Concat {
        reference: u16::from(reference),
        total,
        seq,
        wide: false,
    }
}

/// Which push a part belongs to: its sender and concatenation reference and total.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushKey {
    pub from: String,
    pub reference: u16,
    pub total: u8,
}

#[derive(Debug)]
struct Pending {
    parts: Vec<Option<Vec<u8>>>,
    since: Instant,
}

/// Parts of pushes waiting for the rest (bounded: `max` pushes, each `wait` at most; the
/// oldest goes first).
#[derive(Debug)]
pub struct Reassembler {
    pending: HashMap<PushKey, Pending>,
    order: VecDeque<PushKey>,
    max: usize,
    wait: Duration,
}

impl Reassembler {
    pub fn new(max: usize, wait: Duration) -> Reassembler {
        Reassembler {
            pending: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            wait,
        }
    }

    /// Pushes waiting for a part.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds one SMS's payload (after its header) from `from` with `header`: the whole push
    /// when this completes it (at once when it is not concatenated), else None. A part
    /// already held, or numbered outside its total, is dropped.
    pub fn add(
        &mut self,
        now: Instant,
        from: &str,
        header: &[Ie],
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        self.expire(now);
        let concat = header.iter().find_map(|ie| match ie {
            Ie::Concat {
                reference,
                total,
                seq,
                ..
            } => Some((*reference, *total, *seq)),
            Ie::Other { .. } => None,
        });
        let Some((reference, total, seq)) = concat.filter(|c| c.1 > 1) else {
            return Some(payload.to_vec());
        };
        if seq == 0 || seq > total || usize::from(total) > MAX_PARTS {
            return None;
        }
        let key = PushKey {
            from: from.to_string(),
            reference,
            total,
        };
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= self.max {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.pending.remove(&old);
            }
            self.pending.insert(
                key.clone(),
                Pending {
                    parts: vec![None; usize::from(total)],
                    since: now,
                },
            );
            self.order.push_back(key.clone());
        }
        let p = self.pending.get_mut(&key)?;
        let slot = p.parts.get_mut(usize::from(seq) - 1)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(payload.to_vec());
        if p.parts.iter().any(Option::is_none) {
            return None;
        }
        let whole = self.pending.remove(&key)?.parts.into_iter().flatten();
        self.order.retain(|k| k != &key);
        Some(whole.flatten().collect())
    }

    fn expire(&mut self, now: Instant) {
        while let Some(k) = self.order.front() {
            match self.pending.get(k) {
                Some(p) if now.duration_since(p.since) < self.wait => break,
                _ => {
                    if let Some(k) = self.order.pop_front() {
                        self.pending.remove(&k);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::user_data::parse_header;

    fn split_udh(sm: &[u8]) -> (Vec<Ie>, &[u8]) {
        let n = usize::from(sm[0]);
        (parse_header(&sm[1..1 + n]).unwrap(), &sm[1 + n..])
    }

    /// One SMS: UDHL 6, IEI 05 (16-bit ports, §9.2.3.24.4) length 4, 0B84 = 2948, 23F0 = 9200.
    #[test]
    fn a_short_push_is_one_sms_with_the_port_header() {
        let push = vec![0xaa; 133];
        let parts = short_messages(&push, 9).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0][..7], &[0x06, 0x05, 0x04, 0x0b, 0x84, 0x23, 0xf0]);
        assert_eq!(parts[0].len(), 140);
        let (h, body) = split_udh(&parts[0]);
        assert!(is_push(&h));
        assert_eq!(body, &push[..]);
    }

    /// Past 133 octets: parts with UDHL 11, IEI 00 (concatenation, §9.2.3.24.1) 03 ref total
    /// seq, then the port element; 128 octets of push each.
    #[test]
    fn a_long_push_is_cut_into_parts_each_with_both_elements_and_put_back() {
        let push: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let parts = short_messages(&push, 0x42).unwrap();
        assert_eq!(parts.len(), 3);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(
                &p[..12],
                &[
                    0x0b,
                    0x00,
                    0x03,
                    0x42,
                    0x03,
                    i as u8 + 1,
                    0x05,
                    0x04,
                    0x0b,
                    0x84,
                    0x23,
                    0xf0
                ]
            );
            assert!(p.len() <= 140);
        }
        assert_eq!(parts[0].len(), 140);
        let mut r = Reassembler::new(4, Duration::from_secs(60));
        let now = Instant::now();
        let mut got = None;
        for p in [&parts[2], &parts[0], &parts[0], &parts[1]] {
            let (h, body) = split_udh(p);
            assert_eq!(ports(&h), Some((2948, 9200)));
            assert!(got.is_none());
            got = r.add(now, "tel:+4100", &h, body);
        }
        assert_eq!(got.unwrap(), push);
        assert!(r.is_empty());
        assert!(short_messages(&vec![0; 128 * 8 + 1], 1).is_err());
        assert_eq!(short_messages(&vec![0; 128 * 8], 1).unwrap().len(), 8);
    }

    #[test]
    fn the_reassembler_is_bounded_in_pushes_and_time() {
        let mut r = Reassembler::new(2, Duration::from_secs(10));
        let now = Instant::now();
        for reference in 0..5 {
            let h = vec![concat(reference, 2, 1), port_ie()];
            assert!(r.add(now, "a", &h, b"x").is_none());
        }
        assert_eq!(r.len(), 2);
        let bad = vec![concat(1, 2, 3)];
        assert!(r.add(now, "a", &bad, b"x").is_none());
        r.add(now + Duration::from_secs(11), "a", &[], b"y");
        assert!(r.is_empty());
    }
}
