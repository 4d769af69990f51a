//! WebRSF credentials after login: bearer tokens that expire (`[webrsf] token_lifetime_secs`,
//! refreshed with `PUT /Session`), and the short single-use tickets the browser's EventSource
//! and WebSocket present in the URL (they cannot send an Authorization header, and a token in
//! a URL ends up in logs and histories). Socket-free and clock-injected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Entry {
    aor: String,
    expires_at: Instant,
}

/// A set of credentials of one kind, each naming a user, each with an end.
#[derive(Debug)]
pub struct Credentials {
    map: HashMap<String, Entry>,
    lifetime: Duration,
    single_use: bool,
    per_user: usize,
}

impl Credentials {
    /// Tokens that last `lifetime`, at most `per_user` of them per user.
    pub fn tokens(lifetime: Duration, per_user: usize) -> Credentials {
        Credentials {
            map: HashMap::new(),
            lifetime,
            single_use: false,
            per_user: per_user.max(1),
        }
    }

    /// Tickets that last `lifetime` and work once.
    pub fn tickets(lifetime: Duration, per_user: usize) -> Credentials {
        Credentials {
            single_use: true,
            ..Credentials::tokens(lifetime, per_user)
        }
    }

    /// How long a new one lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new credential for `aor`; past `per_user`, the user's one that ends first goes.
    pub fn issue(&mut self, aor: &str, now: Instant) -> String {
        self.map.retain(|_, e| e.expires_at > now);
        let mut mine: Vec<(Instant, String)> = self
            .map
            .iter()
            .filter(|(_, e)| e.aor == aor)
            .map(|(k, e)| (e.expires_at, k.clone()))
            .collect();
        if mine.len() >= self.per_user {
            mine.sort();
            for (_, k) in mine.iter().take(mine.len() + 1 - self.per_user) {
                self.map.remove(k);
            }
        }
        let value = hex::encode(rand::random::<[u8; 24]>());
        self.map.insert(
            value.clone(),
            Entry {
                aor: aor.to_string(),
                expires_at: now + self.lifetime,
            },
        );
        value
    }

    /// The user a credential names, if it is known and has not ended (a ticket is spent).
    pub fn check(&mut self, value: &str, now: Instant) -> Option<String> {
        let e = self.map.get(value)?.clone();
        if e.expires_at <= now {
            self.map.remove(value);
            return None;
        }
        if self.single_use {
            self.map.remove(value);
        }
        Some(e.aor)
    }

    /// Seconds until `value` ends (0 when unknown).
    pub fn remaining(&self, value: &str, now: Instant) -> u64 {
        self.map
            .get(value)
            .map(|e| e.expires_at.saturating_duration_since(now).as_secs())
            .unwrap_or(0)
    }

    /// Forgets one.
    pub fn revoke(&mut self, value: &str) {
        self.map.remove(value);
    }

    /// Forgets every one of `aor` (logout).
    pub fn revoke_all(&mut self, aor: &str) {
        self.map.retain(|_, e| e.aor != aor);
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_ends_at_its_lifetime_not_a_second_later() {
        let mut t = Credentials::tokens(Duration::from_secs(600), 4);
        let t0 = Instant::now();
        let a = t.issue("sip:alice@ims.lab", t0);
        assert_eq!(t.remaining(&a, t0), 600);
        assert_eq!(
            t.check(&a, t0 + Duration::from_secs(599)).as_deref(),
            Some("sip:alice@ims.lab")
        );
        assert_eq!(t.check(&a, t0 + Duration::from_secs(600)), None);
        assert_eq!(t.check(&a, t0), None, "gone for good");
        assert_eq!(t.check("made-up", t0), None);
    }

    #[test]
    fn tickets_work_once_and_users_have_a_cap() {
        let mut t = Credentials::tickets(Duration::from_secs(30), 3);
        let t0 = Instant::now();
        let k = t.issue("sip:bob@ims.lab", t0);
        assert!(t.check(&k, t0).is_some());
        assert!(t.check(&k, t0).is_none(), "spent");
        let many: Vec<String> = (0..10u64)
            .map(|i| t.issue("sip:bob@ims.lab", t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(t.len(), 3);
        assert!(t.check(&many[9], t0).is_some(), "the newest stay");
        t.issue("sip:carol@ims.lab", t0);
        t.revoke_all("sip:bob@ims.lab");
        assert_eq!(t.len(), 1);
    }
}
