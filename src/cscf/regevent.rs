//! The registration event package (RFC 3680) as the S-CSCF serves it (TS 24.229 §5.4.2):
//! subscriptions to `Event: reg` for a registered public identity, and the `reginfo+xml`
//! NOTIFY bodies sent on subscription, registration, refresh, expiry, de-registration and
//! network-initiated de-registration (RTR).

use crate::shrink::ShrinkWhenSparse;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

// The reginfo codec lives with the SIP codecs, so a client reads it without importing a node.
pub use crate::sip::reginfo::{reginfo_xml, terminated_aors, ContactEvent};

/// One subscription to a user's registration state (the notifier's side of the dialog).
#[derive(Debug, Clone)]
pub struct RegSubscription {
    /// The watched AOR (canonical).
    pub aor: String,
    /// Call-ID of the subscription dialog.
    pub call_id: String,
    /// Our From (with our tag): the SUBSCRIBE's To plus a tag.
    pub local: String,
    /// The subscriber's From.
    pub remote: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    pub remote_target: String,
    /// Route set (the SUBSCRIBE's Record-Route, in order).
    pub route_set: Vec<String>,
    /// Our CSeq for NOTIFY.
    pub cseq: u32,
    /// reginfo version (RFC 3680 §5.3: +1 per NOTIFY).
    pub version: u32,
    /// When the subscription lapses.
    pub expires_at: Instant,
}

/// The notifier's subscriptions, by Call-ID, with an index by watched AOR so a registration
/// finds its watchers without scanning every subscription (one lookup per identity of the
/// set, whatever the table holds).
#[derive(Debug, Default)]
pub struct RegSubTable {
    by_call: HashMap<String, RegSubscription>,
    by_aor: HashMap<String, HashSet<String>>,
}

impl RegSubTable {
    /// Subscriptions held.
    pub fn len(&self) -> usize {
        self.by_call.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.by_call.is_empty()
    }

    /// Subscriptions watching `aor`.
    pub fn count_for(&self, aor: &str) -> usize {
        self.by_aor.get(aor).map_or(0, |s| s.len())
    }

    /// Stores `sub` (replacing one with the same Call-ID).
    pub fn insert(&mut self, sub: RegSubscription) {
        self.remove(&sub.call_id);
        self.by_aor
            .entry(sub.aor.clone())
            .or_default()
            .insert(sub.call_id.clone());
        self.by_call.insert(sub.call_id.clone(), sub);
    }

    /// Takes the subscription with this Call-ID out.
    pub fn remove(&mut self, call_id: &str) -> Option<RegSubscription> {
        let sub = self.by_call.remove(call_id)?;
        self.unindex(&sub.aor, call_id);
        Some(sub)
    }

    fn unindex(&mut self, aor: &str, call_id: &str) {
        if let Some(set) = self.by_aor.get_mut(aor) {
            set.remove(call_id);
            if set.is_empty() {
                self.by_aor.remove(aor);
            }
        }
    }

    /// The subscription with this Call-ID. Its `aor` is the index key: change it only by
    /// removing and inserting again.
    pub fn get_mut(&mut self, call_id: &str) -> Option<&mut RegSubscription> {
        self.by_call.get_mut(call_id)
    }

    /// Copies of the subscriptions watching any of `aors`.
    pub fn watching(&self, aors: &[String]) -> Vec<RegSubscription> {
        let mut seen = HashSet::new();
        aors.iter()
            .filter_map(|a| self.by_aor.get(a))
            .flatten()
            .filter(|c| seen.insert(c.as_str()))
            .filter_map(|c| self.by_call.get(c).cloned())
            .collect()
    }

    /// Drops subscriptions that lapsed by `now` (RFC 6665 §4.1.2.4).
    pub fn expire(&mut self, now: Instant) {
        let gone: Vec<(String, String)> = self
            .by_call
            .values()
            .filter(|s| s.expires_at <= now)
            .map(|s| (s.aor.clone(), s.call_id.clone()))
            .collect();
        for (aor, call_id) in gone {
            self.by_call.remove(&call_id);
            self.unindex(&aor, &call_id);
        }
        self.by_call.shrink_when_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(aor: &str, call_id: &str, secs: u64) -> RegSubscription {
        RegSubscription {
            aor: aor.into(),
            call_id: call_id.into(),
            local: String::new(),
            remote: String::new(),
            remote_target: String::new(),
            route_set: vec![],
            cseq: 0,
            version: 0,
            expires_at: Instant::now() + std::time::Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_table_finds_watchers_by_aor_and_forgets_them() {
        let mut t = RegSubTable::default();
        t.insert(sub("sip:a@x", "1", 60));
        t.insert(sub("sip:a@x", "2", 60));
        t.insert(sub("tel:+1", "3", 60));
        t.insert(sub("sip:b@x", "4", 0));
        assert_eq!(t.len(), 4);
        assert_eq!(t.count_for("sip:a@x"), 2);
        let mut w: Vec<String> = t
            .watching(&["sip:a@x".into(), "tel:+1".into(), "sip:a@x".into()])
            .into_iter()
            .map(|s| s.call_id)
            .collect();
        w.sort();
        assert_eq!(w, ["1", "2", "3"]);
        // Same Call-ID again: replaced, not doubled, and re-indexed under its new AOR.
        t.insert(sub("sip:b@x", "2", 60));
        assert_eq!(t.count_for("sip:a@x"), 1);
        assert_eq!(t.count_for("sip:b@x"), 2);
        assert_eq!(t.remove("1").map(|s| s.aor), Some("sip:a@x".into()));
        assert_eq!(t.count_for("sip:a@x"), 0);
        assert!(!t.by_aor.contains_key("sip:a@x"), "empty index entries go");
        t.expire(Instant::now() + std::time::Duration::from_secs(1));
        assert_eq!(t.len(), 2, "the lapsed one went");
        assert_eq!(t.count_for("sip:b@x"), 1);
        t.expire(Instant::now() + std::time::Duration::from_secs(120));
        assert!(t.is_empty() && t.by_aor.is_empty());
    }

    #[test]
    fn reginfo_is_well_formed_and_says_what_happened() {
        let x = reginfo_xml(
            3,
            &["sip:alice@ims.lab".into(), "tel:+15550001".into()],
            &[("sip:alice@127.0.0.1:5062".into(), 600)],
            ContactEvent::Registered,
        );
        assert!(x.contains("version=\"3\" state=\"full\""));
        assert!(x.contains("aor=\"tel:+15550001\" id=\"r1\" state=\"active\""));
        assert!(x.contains("event=\"registered\" expires=\"600\""));
        let mut r = quick_xml::Reader::from_str(&x);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}"),
            }
        }
        let gone = reginfo_xml(
            4,
            &["sip:alice@ims.lab".into()],
            &[("sip:a@h".into(), 0)],
            ContactEvent::Rejected,
        );
        assert!(gone.contains("state=\"terminated\""));
        assert!(gone.contains("event=\"rejected\""));
    }
}
