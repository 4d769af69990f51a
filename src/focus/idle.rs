//! Idle teardown and restart (GSMA RCC.07 §3.4.4.1.7, OMA SIMPLE IM 1.0 §7.2.1.13): a group
//! that carries no message for `[group] idle_timeout` has its sessions ended by the focus, a
//! BYE to each member (`Reason: SIP;cause=200;text="idle"`); they stay members, idle, and
//! what is said later waits for them in the history. A member who then writes opens a new
//! session (an INVITE to the group's URI with the group's Contribution-ID, the message in it,
//! or to the factory with that Contribution-ID when it lost the URI); as nobody else is in
//! session, the focus restarts the group: it INVITEs every other away member back, and each
//! gets what it missed once its leg binds.
//!
//! ```text
//!  message ──> touch(gid) ──> [active] ──idle_timeout, no message──> BYE each member ──> [idle]
//!  [idle] ──member INVITE (rejoin)──> 200 ──> INVITE every away member (restart) ──> [active]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cscf::next_hop;
use crate::sip::Method;

use super::group::MemberState;
use super::{lock, Focus, MemberDialog};

/// How long a BYE may go unanswered.
const BYE_WAIT: Duration = Duration::from_secs(5);
/// The most often the sweep looks.
const MIN_TICK: Duration = Duration::from_millis(200);
/// The least often.
const MAX_TICK: Duration = Duration::from_secs(30);

impl Focus {
    /// Group `gid` carried something (a message, a session that began): its idle clock starts
    /// again.
    pub(super) fn touch(&self, gid: &str) {
        if self.settings.idle_timeout.is_some() {
            lock(&self.active).insert(gid.to_string(), Instant::now());
        }
    }

    /// Ends the sessions of the groups that were idle too long, until `shutdown`.
    pub(super) async fn idle_sweep(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(idle) = self.settings.idle_timeout else {
            return;
        };
        let tick = (idle / 4).clamp(MIN_TICK, MAX_TICK);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            let now = Instant::now();
            let due: Vec<String> = lock(&self.active)
                .iter()
                .filter(|(_, at)| now.duration_since(**at) >= idle)
                .map(|(g, _)| g.clone())
                .collect();
            for gid in due {
                let me = self.clone();
                tokio::spawn(async move { me.end_idle(&gid, idle).await });
            }
        }
    }

    /// Ends every session of `gid` if it is still idle (checked in the group's order, so a
    /// message that came meanwhile keeps it).
    async fn end_idle(self: &Arc<Self>, gid: &str, idle: Duration) {
        let order = self.order_of(gid);
        let _turn = order.lock().await;
        {
            let mut active = lock(&self.active);
            match active.get(gid) {
                Some(at) if at.elapsed() >= idle => {
                    active.remove(gid);
                }
                _ => return,
            }
        }
        let sessions: Vec<MemberDialog> = {
            let mut d = lock(&self.dialogs);
            let keys: Vec<String> = d
                .iter()
                .filter(|(_, x)| x.gid == gid)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| d.remove(&k)).collect()
        };
        if sessions.is_empty() {
            return;
        }
        tracing::info!(%gid, sessions = sessions.len(), "group idle: its sessions end");
        self.ep
            .note(|| format!("group {gid} idle: CONF ends its sessions"));
        let mut away: Vec<String> = Vec::new();
        let byes = sessions.into_iter().map(|s| {
            if !away.contains(&s.member) {
                away.push(s.member.clone());
            }
            async move {
                if let Some(mut d) = s.dialog {
                    let mut bye = d.request(&self.ep, Method::Bye);
                    bye.headers.push("Reason", "SIP;cause=200;text=\"idle\"");
                    if let Some((dest, t)) = next_hop(&self.resolver, &bye).await {
                        let _ = tokio::time::timeout(
                            BYE_WAIT,
                            self.ep.send_request(bye, dest, t).final_response(),
                        )
                        .await;
                    }
                }
                // After the BYE's answer: the member hears why before its leg goes.
                self.close_leg(&s.leg);
            }
        });
        futures_util::future::join_all(byes).await;
        let g = lock(&self.groups).get_mut(gid).map(|g| {
            away.retain(|m| g.set_state(m, MemberState::Idle, None));
            g.clone()
        });
        if let Some(g) = g.filter(|_| !away.is_empty()) {
            self.persist(&g).await;
            self.roster_changed(gid, &away).await;
        }
    }

    /// `who` came back into `gid` (its INVITE answered): if nobody else was in session (the
    /// group had gone idle, or everyone left the session), the group restarts: every other
    /// member who is away or idle is invited back, `who` as the one who brought them.
    pub(super) fn restart(self: &Arc<Self>, gid: &str, who: &str) {
        let away: Vec<String> = {
            let groups = lock(&self.groups);
            let Some(g) = groups.get(gid) else {
                return;
            };
            let others = || {
                g.members
                    .iter()
                    .filter(|m| !m.uri.eq_ignore_ascii_case(who))
            };
            if others().any(|m| matches!(m.state, MemberState::Connected | MemberState::Invited)) {
                return;
            }
            others()
                .filter(|m| matches!(m.state, MemberState::Away | MemberState::Idle))
                .map(|m| m.uri.clone())
                .collect()
        };
        if away.is_empty() {
            return;
        }
        tracing::info!(%gid, %who, members = away.len(), "group restarts");
        for m in away {
            let me = self.clone();
            let (gid, who) = (gid.to_string(), who.to_string());
            tokio::spawn(async move { me.invite_back(&gid, &m, &who, 1).await });
        }
    }
}
