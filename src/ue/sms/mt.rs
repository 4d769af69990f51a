//! What the UE receives (mobile terminated, 3GPP TS 24.341 §5.3.2): SMS-DELIVERs (TS 23.040
//! §9.2.2.1) shown once each — a copy the network sends again is acknowledged but not shown
//! twice — and concatenated parts put back together before they are shown.
//!
//! A copy is told by what it carries: the SIP sender, TP-OA, TP-SCTS, the concatenation
//! element and the text (the service centre stamps each message it takes; a retransmission
//! keeps the stamp). Both the window of copies and the parts waiting are bounded.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::mms::bearer::Reassembler as PushReassembler;
use crate::mms::{MmsError, Notification, Push};
use crate::sms::address::{Address, TON_ALPHANUMERIC};
use crate::sms::concat::{Added, PartKey, Reassembler};
use crate::sms::tpdu::Deliver;
use crate::sms::user_data::Body;

/// Messages remembered to drop copies.
pub const DEDUP_WINDOW: usize = 1024;
/// How long a message is remembered to drop copies.
pub const DEDUP_FOR: Duration = Duration::from_secs(600);
/// Concatenated messages waiting for a missing part at once (the oldest goes first).
pub const MAX_REASSEMBLY: usize = 32;
/// How long the parts of a concatenated message wait for the rest.
pub const REASSEMBLY_WAIT: Duration = Duration::from_secs(300);

/// The sender as `listen` prints it: `tel:+15550001` for a number, the text of an
/// alphanumeric TP-OA as it is.
pub fn sender(oa: &Address) -> String {
    if oa.toa & 0x70 == TON_ALPHANUMERIC & 0x70 {
        oa.value.clone()
    } else {
        format!("tel:{}", oa.number())
    }
}

/// Messages received: copies dropped, parts reassembled.
#[derive(Debug)]
pub struct Inbox {
    seen: HashSet<u64>,
    order: VecDeque<(u64, Instant)>,
    parts: Reassembler,
    /// Parts of WAP Pushes (MMS notifications), bounded alike.
    pushes: PushReassembler,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            seen: HashSet::new(),
            order: VecDeque::new(),
            parts: Reassembler::new(MAX_REASSEMBLY, REASSEMBLY_WAIT),
            pushes: PushReassembler::new(MAX_REASSEMBLY, REASSEMBLY_WAIT),
        }
    }
}

impl Inbox {
    /// An SMS-DELIVER from `sip_from` (the MESSAGE's From): the whole message to show
    /// (sender, text) when this completes one, None for a copy or a part that waits.
    pub fn deliver(
        &mut self,
        now: Instant,
        sip_from: &str,
        d: &Deliver,
    ) -> Option<(String, String)> {
        self.forget(now);
        let from = sender(&d.originator);
        let text = match &d.user_data.body {
            Body::Text(t) => t.clone(),
            Body::Octets(o) => format!("(8-bit data, {} octets)", o.len()),
        };
        let concat = d.user_data.concat();
        if !self.fresh(now, sip_from, &from, d) {
            return None;
        }
        let Some((reference, total, seq)) = concat else {
            return Some((from, text));
        };
        let key = PartKey {
            from: from.clone(),
            reference,
            total,
        };
        match self.parts.add(now, key, seq, text.clone()) {
            Ok(Added::Complete(whole)) => Some((from, whole)),
            Ok(Added::Waiting(_)) | Ok(Added::Duplicate) => None,
            // Not a part (sequence 0, or past the total): shown as it is.
            Err(_) => Some((from, text)),
        }
    }

    /// An SMS-DELIVER to the WAP Push port: the sender and the MMS notification when this
    /// completes a push (a push that is not an M-Notification.ind is an error), None for a
    /// copy or a part that waits.
    pub fn push(
        &mut self,
        now: Instant,
        sip_from: &str,
        d: &Deliver,
    ) -> Option<(String, Result<Notification, MmsError>)> {
        self.forget(now);
        let from = sender(&d.originator);
        if !self.fresh(now, sip_from, &from, d) {
            return None;
        }
        let Body::Octets(o) = &d.user_data.body else {
            let e = MmsError::Invalid("a WAP Push in a text alphabet".into());
            return Some((from, Err(e)));
        };
        let whole = self.pushes.add(now, &from, &d.user_data.header, o)?;
        let n = Push::decode(&whole).and_then(|p| {
            if p.is_mms() {
                Notification::decode(&p.body)
            } else {
                Err(MmsError::Invalid(format!(
                    "a push of {:?}, not an MMS PDU",
                    p.content_type
                )))
            }
        });
        Some((from, n))
    }

    /// False for a copy of a message already taken (same SIP sender, TP-OA, TP-SCTS,
    /// concatenation element and user data); remembers this one.
    fn fresh(&mut self, now: Instant, sip_from: &str, from: &str, d: &Deliver) -> bool {
        let mut stamp = Vec::with_capacity(7);
        d.timestamp.encode(&mut stamp);
        let mut h = DefaultHasher::new();
        (sip_from, from, stamp, d.user_data.concat()).hash(&mut h);
        match &d.user_data.body {
            Body::Text(t) => t.hash(&mut h),
            Body::Octets(o) => o.hash(&mut h),
        }
        let key = h.finish();
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back((key, now));
        while self.order.len() > DEDUP_WINDOW {
            if let Some((k, _)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
        true
    }

    /// Concatenated messages still waiting for a part.
    pub fn waiting(&self) -> usize {
        self.parts.len()
    }

    fn forget(&mut self, now: Instant) {
        while let Some(&(k, at)) = self.order.front() {
            if now.duration_since(at) < DEDUP_FOR {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&k);
        }
        self.parts.expire(now);
    }
}
