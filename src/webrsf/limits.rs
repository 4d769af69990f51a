//! What keeps the gateway's memory and descriptors bounded by the lab file and not by its
//! clients: each web user's UE lives exactly as long as the login (its SIP sockets close on
//! a failed login, on logout and on expiry), tokens expire after `[webrsf] token_idle_secs`
//! unused, and a user's waiting media, chat instances and sent-message index have caps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{Gateway, InstanceState, UserState, WebError};

/// Entries kept in a user's index of sent messages (message id -> instance), for matching
/// IMDNs: a few times the messages an instance keeps ([`super::KEEP_MESSAGES`]).
pub(super) const KEEP_OURS: usize = 4 * super::KEEP_MESSAGES;

/// The shutdown signal of one web user's UE: it fires when the lab shuts down, when
/// [`UeLife::end`] is called (logout, expiry) or when the `UeLife` is dropped (a failed login).
/// The UE's SIP transport holds its UDP socket and TCP listener until its shutdown signal
/// fires; with the lab's signal, every login (even a failed one) kept two descriptors for good.
pub struct UeLife {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    signal: watch::Receiver<bool>,
}

impl UeLife {
    /// A signal that follows `lab` and can be fired on its own.
    pub fn new(mut lab: watch::Receiver<bool>) -> UeLife {
        let (tx, signal) = watch::channel(false);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                _ = crate::http_server::stopped(&mut lab) => {}
                _ = stopped => {}
            }
            let _ = tx.send(true);
        });
        UeLife {
            stop: Mutex::new(Some(stop)),
            signal,
        }
    }

    /// The receiver to hand to the UE.
    pub fn signal(&self) -> watch::Receiver<bool> {
        self.signal.clone()
    }

    /// Stops the UE (closes its sockets).
    pub fn end(&self) {
        if let Ok(mut s) = self.stop.lock() {
            if let Some(s) = s.take() {
                let _ = s.send(());
            }
        }
    }
}

/// When a user's token was last used.
pub struct LastUsed(Mutex<Instant>);

impl LastUsed {
    /// Now.
    pub fn new() -> LastUsed {
        LastUsed(Mutex::new(Instant::now()))
    }

    /// Marks a use.
    pub fn touch(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = Instant::now();
        }
    }

    /// Time since the last use.
    pub fn idle(&self) -> Duration {
        self.0.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}

impl Default for LastUsed {
    fn default() -> Self {
        LastUsed::new()
    }
}

/// The per-user caps, copied from `[webrsf]` at login.
#[derive(Debug, Clone, Copy)]
pub struct UserCaps {
    /// `max_media_per_user`.
    pub media: usize,
    /// `max_instances_per_user`.
    pub instances: usize,
}

impl Gateway {
    /// 503 when `max_users` are logged in already.
    pub(super) fn check_user_cap(&self) -> Result<(), WebError> {
        let n = self.users.lock().map(|u| u.len()).unwrap_or(0);
        if n >= self.cfg.max_users {
            crate::warn_limited!(
                "webrsf.max_users",
                max = self.cfg.max_users,
                "web login refused: too many web users logged in"
            );
            return Err(WebError::Unavailable(format!(
                "{n} web users are logged in, the most this gateway takes ([webrsf] max_users)"
            )));
        }
        Ok(())
    }

    /// Logged-in users.
    pub fn user_count(&self) -> usize {
        self.users.lock().map(|u| u.len()).unwrap_or(0)
    }

    /// Tokens known.
    pub fn token_count(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// Logs out users whose token went unused for `[webrsf] token_idle_secs` with no notification
/// channel open (an open channel is a client listening), until the lab shuts down.
pub async fn sweep(gw: Arc<Gateway>) {
    let ttl = Duration::from_secs(gw.cfg.token_idle_secs.max(1));
    let mut tick =
        tokio::time::interval((ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shut = gw.shutdown();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::http_server::stopped(&mut shut) => return,
        }
        let expired: Vec<_> = gw
            .users
            .lock()
            .map(|u| {
                u.values()
                    .filter(|u| u.channel_count() == 0 && u.last_used.idle() >= ttl)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for u in expired {
            tracing::info!(user = %u.aor, "web token expired (unused for {} s): logging out", ttl.as_secs());
            let gw = gw.clone();
            tokio::spawn(async move {
                gw.logout(&u).await;
            });
        }
    }
}

impl UserState {
    /// Appends waiting media, dropping the oldest past `max`.
    pub(super) fn push_media(&mut self, m: super::Media, max: usize) {
        self.media.push(m);
        if self.media.len() > max {
            let drop = self.media.len() - max;
            self.media.drain(..drop);
        }
    }

    /// Indexes a message we sent, forgetting the oldest past [`KEEP_OURS`].
    pub(super) fn remember_ours(&mut self, message_id: String, instance_id: String) {
        if self.ours.insert(message_id.clone(), instance_id).is_none() {
            self.ours_order.push_back(message_id);
        }
        while self.ours_order.len() > KEEP_OURS {
            if let Some(old) = self.ours_order.pop_front() {
                self.ours.remove(&old);
            }
        }
    }

    /// Makes room for one more instance under `max`: the oldest closed instance goes, else the
    /// oldest one; its waiting media and sent-message entries go with it.
    pub(super) fn make_room_for_instance(&mut self, max: usize) {
        while self.instances.len() >= max.max(1) {
            let victim = self
                .order
                .iter()
                .position(|id| {
                    self.instances
                        .get(id)
                        .is_none_or(|i| i.state == InstanceState::Closed)
                })
                .unwrap_or(0);
            let Some(id) = self.order.remove(victim) else {
                return;
            };
            if let Some(i) = self.instances.remove(&id) {
                self.by_peer.remove(&i.peer);
            }
            self.media.retain(|m| m.instance_id != id);
            self.ours.retain(|_, v| *v != id);
            self.ours_order.retain(|m| self.ours.contains_key(m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Instance, Media};
    use super::*;

    fn media(i: &str, n: usize) -> Media {
        Media {
            instance_id: i.into(),
            message_id: format!("m{n}"),
            sender: "alice".into(),
            content_type: "text/plain".into(),
            text: "hi".into(),
            datetime: String::new(),
            file: None,
        }
    }

    fn add(s: &mut UserState, id: &str, state: InstanceState, max: usize) {
        s.make_room_for_instance(max);
        s.instances.insert(
            id.into(),
            Instance {
                id: id.into(),
                peer: format!("sip:{id}@x"),
                state,
                conversation_id: None,
                contribution_id: None,
                messages: Default::default(),
            },
        );
        s.by_peer.insert(format!("sip:{id}@x"), id.into());
        s.order.push_back(id.into());
    }

    #[test]
    fn media_keeps_the_newest() {
        let mut s = UserState::default();
        for n in 0..10 {
            s.push_media(media("i", n), 3);
        }
        let ids: Vec<_> = s.media.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["m7", "m8", "m9"]);
    }

    #[test]
    fn ours_is_bounded() {
        let mut s = UserState::default();
        for n in 0..KEEP_OURS + 10 {
            s.remember_ours(format!("m{n}"), "i".into());
        }
        assert_eq!(s.ours.len(), KEEP_OURS);
        assert!(!s.ours.contains_key("m0"));
        assert!(s.ours.contains_key(&format!("m{}", KEEP_OURS + 9)));
    }

    #[test]
    fn closed_instances_go_first_then_the_oldest() {
        let mut s = UserState::default();
        add(&mut s, "a", InstanceState::Active, 2);
        add(&mut s, "b", InstanceState::Closed, 2);
        s.push_media(media("b", 1), 10);
        s.remember_ours("mb".into(), "b".into());
        add(&mut s, "c", InstanceState::Active, 2);
        let mut ids: Vec<_> = s.instances.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
        assert!(s.media.is_empty() && s.ours.is_empty() && s.ours_order.is_empty());
        assert!(!s.by_peer.contains_key("sip:b@x"));
        add(&mut s, "d", InstanceState::Active, 2);
        let mut ids: Vec<_> = s.instances.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["c", "d"]);
    }
}
