//! The P-CSCF's registered-UE table (TS 24.229 §5.2.2.5): one entry per registered contact,
//! found by contact, by public identity, by the flow a request arrives on and by the host
//! and port a terminating request targets, each through an index, so a lookup costs the same
//! with ten users or a hundred thousand. Lapsed entries are swept at most once a second.
//! Socket-free: the P-CSCF owns one behind a mutex.

use crate::shrink::ShrinkWhenSparse;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::{Transport, Uri};

/// What the P-CSCF knows about a registered UE (TS 24.229 §5.2.2.5).
#[derive(Debug, Clone)]
pub struct UeBinding {
    /// The UE's contact URI as registered.
    pub contact: String,
    /// Where the UE's requests came from, and the transport: terminating requests go back
    /// over this flow.
    pub flow: (SocketAddr, Transport),
    /// Service-Route learnt from the 200 OK.
    pub service_route: Vec<String>,
    /// The implicitly registered public identities (P-Associated-URI).
    pub associated: Vec<String>,
    /// When the registration lapses.
    pub expires_at: Instant,
}

/// How often lapsed bindings are swept out (lookups skip them meanwhile).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type Index<K> = HashMap<K, HashSet<String>>;

/// Registered UEs by contact URI, with indexes (see the module doc).
#[derive(Debug)]
pub struct BindingTable {
    by_contact: HashMap<String, UeBinding>,
    by_identity: Index<String>,
    by_flow: Index<SocketAddr>,
    /// (lowercase host, port) of the contact URI and of the flow's source.
    by_target: Index<(String, u16)>,
    last_sweep: Instant,
}

impl Default for BindingTable {
    fn default() -> Self {
        BindingTable {
            by_contact: HashMap::new(),
            by_identity: HashMap::new(),
            by_flow: HashMap::new(),
            by_target: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }
}

fn index<K: std::hash::Hash + Eq>(ix: &mut Index<K>, k: K, contact: &str) {
    ix.entry(k).or_default().insert(contact.to_string());
}

fn unindex<K: std::hash::Hash + Eq>(ix: &mut Index<K>, k: &K, contact: &str) {
    if let Some(set) = ix.get_mut(k) {
        set.remove(contact);
        if set.is_empty() {
            ix.remove(k);
        }
    }
}

/// The (host, port) keys a terminating request may use to reach this binding: the contact's
/// own, and the flow's source (a UE whose dialog Contact names the connection it registered
/// over, as baresip's does).
fn targets(b: &UeBinding) -> Vec<(String, u16)> {
    let mut t = Vec::with_capacity(2);
    if let Ok(u) = Uri::parse(&b.contact) {
        if let Some(h) = u.host() {
            t.push((h.to_ascii_lowercase(), u.port().unwrap_or(5060)));
        }
    }
    let flow = (b.flow.0.ip().to_string(), b.flow.0.port());
    if !t.contains(&flow) {
        t.push(flow);
    }
    t
}

impl BindingTable {
    /// Entries held (lapsed ones until the next sweep included).
    pub fn len(&self) -> usize {
        self.by_contact.len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_contact.is_empty()
    }

    /// Stores `b`, replacing the binding of the same contact.
    pub fn insert(&mut self, b: UeBinding) {
        self.remove(&b.contact);
        let c = b.contact.clone();
        for a in &b.associated {
            index(&mut self.by_identity, a.clone(), &c);
        }
        index(&mut self.by_flow, b.flow.0, &c);
        for t in targets(&b) {
            index(&mut self.by_target, t, &c);
        }
        self.by_contact.insert(c, b);
    }

    /// Takes one contact's binding out.
    pub fn remove(&mut self, contact: &str) -> Option<UeBinding> {
        let b = self.by_contact.remove(contact)?;
        for a in &b.associated {
            unindex(&mut self.by_identity, a, contact);
        }
        unindex(&mut self.by_flow, &b.flow.0, contact);
        for t in targets(&b) {
            unindex(&mut self.by_target, &t, contact);
        }
        Some(b)
    }

    /// Takes out every binding that carries any of `identities`; returns how many went.
    pub fn remove_identities(&mut self, identities: &[String]) -> usize {
        let contacts: HashSet<String> = identities
            .iter()
            .filter_map(|i| self.by_identity.get(i))
            .flatten()
            .cloned()
            .collect();
        contacts.iter().filter(|c| self.remove(c).is_some()).count()
    }

    fn live<'a>(
        &'a self,
        set: Option<&'a HashSet<String>>,
        now: Instant,
    ) -> impl Iterator<Item = &'a UeBinding> + 'a {
        set.into_iter()
            .flatten()
            .filter_map(|c| self.by_contact.get(c))
            .filter(move |b| b.expires_at > now)
    }

    /// Every live binding of a public identity (as P-Associated-URI lists it).
    pub fn of_identity(&self, identity: &str, now: Instant) -> Vec<UeBinding> {
        self.live(self.by_identity.get(identity), now)
            .cloned()
            .collect()
    }

    /// A live binding whose requests come from `source`.
    pub fn of_flow(&self, source: SocketAddr, now: Instant) -> Option<UeBinding> {
        self.live(self.by_flow.get(&source), now).next().cloned()
    }

    /// A live binding whose requests come from `source`, the one registered for `identity`
    /// when the flow carries several (RFC 5626 lets one flow carry many registrations: the
    /// RTCWeb gateway registers each of its web users over its one connection).
    pub fn of_flow_as(
        &self,
        source: SocketAddr,
        identity: Option<&str>,
        now: Instant,
    ) -> Option<UeBinding> {
        let mut first = None;
        for b in self.live(self.by_flow.get(&source), now) {
            if identity.is_some_and(|id| b.associated.iter().any(|a| a == id)) {
                return Some(b.clone());
            }
            first.get_or_insert(b);
        }
        first.cloned()
    }

    /// A live binding reached at `host:port` (its contact's, or its flow's source).
    pub fn of_target(&self, host: &str, port: u16, now: Instant) -> Option<UeBinding> {
        let key = (host.to_ascii_lowercase(), port);
        self.live(self.by_target.get(&key), now).next().cloned()
    }

    /// Drops lapsed bindings, at most once per second (each call is cheap otherwise).
    pub fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        let lapsed: Vec<String> = self
            .by_contact
            .values()
            .filter(|b| b.expires_at <= now)
            .map(|b| b.contact.clone())
            .collect();
        for c in lapsed {
            self.remove(&c);
        }
        self.by_contact.shrink_when_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(contact: &str, src: &str, ids: &[&str], secs: u64) -> UeBinding {
        UeBinding {
            contact: contact.into(),
            flow: (src.parse().unwrap(), Transport::Udp),
            service_route: vec![],
            associated: ids.iter().map(|s| s.to_string()).collect(),
            expires_at: Instant::now() + Duration::from_secs(secs),
        }
    }

    #[test]
    fn lookups_go_through_the_indexes_and_follow_replacements() {
        let mut t = BindingTable::default();
        let now = Instant::now();
        t.insert(b(
            "sip:alice@10.0.0.1:5062",
            "10.0.0.1:5062",
            &["sip:alice@ims.lab", "tel:+1"],
            60,
        ));
        t.insert(b(
            "sip:alice@phone.example:5070",
            "10.0.0.9:40000",
            &["sip:alice@ims.lab"],
            60,
        ));
        t.insert(b(
            "sip:bob@10.0.0.2",
            "10.0.0.2:5060",
            &["sip:bob@ims.lab"],
            60,
        ));
        assert_eq!(t.of_identity("sip:alice@ims.lab", now).len(), 2);
        assert_eq!(t.of_identity("tel:+1", now).len(), 1);
        assert_eq!(
            t.of_flow("10.0.0.9:40000".parse().unwrap(), now)
                .map(|b| b.contact),
            Some("sip:alice@phone.example:5070".into())
        );
        // By the contact's host (any case) or by the flow's source.
        assert!(t.of_target("PHONE.example", 5070, now).is_some());
        assert!(t.of_target("10.0.0.9", 40000, now).is_some());
        assert!(
            t.of_target("10.0.0.2", 5060, now).is_some(),
            "no port means 5060"
        );
        assert!(t.of_target("10.0.0.2", 5061, now).is_none());
        // Re-registering a contact from a new flow moves every index entry.
        t.insert(b(
            "sip:alice@phone.example:5070",
            "10.0.0.9:40002",
            &["sip:alice@ims.lab"],
            60,
        ));
        assert!(t.of_flow("10.0.0.9:40000".parse().unwrap(), now).is_none());
        assert!(t.of_target("10.0.0.9", 40000, now).is_none());
        assert!(t.of_flow("10.0.0.9:40002".parse().unwrap(), now).is_some());
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove_identities(&["sip:alice@ims.lab".into()]), 2);
        assert!(t.of_identity("tel:+1", now).is_empty());
        assert_eq!(t.len(), 1);
        assert!(!t.by_identity.contains_key("tel:+1") && t.by_flow.len() == 1);
    }

    #[test]
    fn lapsed_bindings_are_invisible_then_swept() {
        let mut t = BindingTable::default();
        t.insert(b("sip:a@h", "10.0.0.1:5060", &["sip:a@x"], 0));
        t.insert(b("sip:c@h:5070", "10.0.0.3:5070", &["sip:c@x"], 60));
        let later = Instant::now() + Duration::from_millis(10);
        assert!(t.of_identity("sip:a@x", later).is_empty());
        assert!(t.of_flow("10.0.0.1:5060".parse().unwrap(), later).is_none());
        assert_eq!(t.len(), 2);
        t.sweep(later);
        assert_eq!(t.len(), 2, "not a second since the last sweep");
        t.sweep(later + SWEEP_EVERY);
        assert_eq!(t.len(), 1);
        assert!(!t.by_identity.contains_key("sip:a@x"));
        assert_eq!(t.by_target.len(), 2, "c@h:5070 by contact and by flow");
    }
}
