//! Members who are away (offline when they were invited, or their session ended): CONF
//! learns that a user registered from the third-party REGISTER its iFC asks the S-CSCF for
//! (TS 24.229 §5.4.1.7, §5.7.1.1), as T-IM does, and INVITEs the user back into each group it
//! is away from; once its leg binds, what it missed goes out in order ([`super::relay`]).
//!
//! A member whose device ends its session because it goes away (BYE with `Reason:
//! SIP;cause=480`) may still be registered on another device (a phone and a CLI, a phone and
//! a browser): no third-party REGISTER says so, since the user stays registered. CONF keeps
//! who is registered and until when, and INVITEs such a member back a moment later
//! ([`REJOIN_AFTER`]), once a de-registration that follows the BYE had time to arrive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sip::{IncomingRequest, NameAddr};

use super::group::MemberState;
use super::{lock, Focus};

/// Tries per group when a user comes back: the S-CSCF may tell us before the REGISTER's
/// 200 reached the P-CSCF, so the first INVITE can get 480.
const TRIES: u32 = 4;
/// Between tries.
const RETRY: Duration = Duration::from_secs(1);
/// How long after a device went away CONF looks whether its user is still registered.
pub const REJOIN_AFTER: Duration = Duration::from_secs(2);
/// Users kept in [`Registered`].
const MAX_REGISTERED: usize = 100_000;

/// Registered users (address of record, lower case) and when each registration ends.
#[derive(Default)]
pub(super) struct Registered(HashMap<String, Instant>);

impl Registered {
    /// `user` registered for `expires` seconds (0: de-registered).
    pub(super) fn set(&mut self, user: &str, expires: u64, now: Instant) {
        let key = user.to_ascii_lowercase();
        if expires == 0 {
            self.0.remove(&key);
            return;
        }
        if self.0.len() >= MAX_REGISTERED && !self.0.contains_key(&key) {
            self.0.retain(|_, until| *until > now);
            if self.0.len() >= MAX_REGISTERED {
                // Full of live registrations: this one is only found again at its next
                // third-party REGISTER.
                return;
            }
        }
        self.0
            .insert(key, now + Duration::from_secs(expires.min(u32::MAX as u64)));
    }

    /// Whether `user` is registered at `now`.
    pub(super) fn has(&self, user: &str, now: Instant) -> bool {
        self.0
            .get(&user.to_ascii_lowercase())
            .is_some_and(|until| *until > now)
    }
}

impl Focus {
    /// A third-party REGISTER: 200, and the user back into the groups it is away from.
    pub(super) fn third_party_register(self: &Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let user = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor());
        let expires: u64 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        if let Some(u) = &user {
            lock(&self.registered).set(u, expires, Instant::now());
        }
        let Some(user) = user.filter(|_| expires > 0) else {
            return;
        };
        let away: Vec<(String, String)> = lock(&self.groups)
            .values()
            .filter_map(|g| {
                let m = g.member(&user)?;
                let chairman = g.members.iter().find(|m| m.chairman)?.uri.clone();
                (m.state == MemberState::Away).then(|| (g.id.clone(), chairman))
            })
            .collect();
        for (gid, chairman) in away {
            let me = self.clone();
            let user = user.clone();
            tokio::spawn(async move { me.invite_back(&gid, &user, &chairman, TRIES).await });
        }
    }

    /// INVITEs `member` back into `gid` on behalf of `by`, up to `tries` times a [`RETRY`]
    /// apart while it stays away; nothing if it is already being brought back.
    pub(super) async fn invite_back(
        self: &Arc<Self>,
        gid: &str,
        member: &str,
        by: &str,
        tries: u32,
    ) {
        let key = format!("{gid}\0{member}");
        if !lock(&self.returning).insert(key.clone()) {
            return;
        }
        for i in 0..tries {
            if i > 0 {
                tokio::time::sleep(RETRY).await;
            }
            if self.invite_member(gid, member, by).await != MemberState::Away {
                break;
            }
        }
        lock(&self.returning).remove(&key);
    }

    /// `member`'s device in `gid` went away: after [`REJOIN_AFTER`], if the user is still
    /// registered (on another device) and still away, one INVITE brings it back.
    pub(super) fn back_if_registered(self: &Arc<Self>, gid: &str, member: &str) {
        let me = self.clone();
        let (gid, member) = (gid.to_string(), member.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(REJOIN_AFTER).await;
            if !lock(&me.registered).has(&member, Instant::now()) {
                return;
            }
            let chairman = {
                let groups = lock(&me.groups);
                let Some(g) = groups.get(&gid) else {
                    return;
                };
                if g.member(&member).map(|m| m.state) != Some(MemberState::Away) {
                    return;
                }
                match g.members.iter().find(|m| m.chairman) {
                    Some(c) => c.uri.clone(),
                    None => return,
                }
            };
            tracing::debug!(%gid, %member, "a device went away; the user is registered elsewhere");
            me.invite_back(&gid, &member, &chairman, 1).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_come_go_and_lapse() {
        let t0 = Instant::now();
        let mut r = Registered::default();
        r.set("sip:Bob@ims.lab", 60, t0);
        assert!(r.has("sip:bob@ims.lab", t0));
        assert!(!r.has("sip:bob@ims.lab", t0 + Duration::from_secs(61)));
        r.set("sip:bob@ims.lab", 0, t0);
        assert!(!r.has("sip:bob@ims.lab", t0));
        assert!(!r.has("sip:carol@ims.lab", t0));
    }

    #[test]
    fn the_table_is_bounded_and_makes_room_from_lapsed_entries() {
        let t0 = Instant::now();
        let mut r = Registered::default();
        for i in 0..MAX_REGISTERED {
            r.set(&format!("sip:u{i}@ims.lab"), 10, t0);
        }
        r.set("sip:late@ims.lab", 10, t0);
        assert!(!r.has("sip:late@ims.lab", t0), "full of live ones");
        let later = t0 + Duration::from_secs(11);
        r.set("sip:late@ims.lab", 10, later);
        assert!(r.has("sip:late@ims.lab", later));
        assert_eq!(r.0.len(), 1, "the lapsed ones made room");
    }
}
