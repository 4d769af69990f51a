//! Keeping the chat client registered: when to re-REGISTER ([`RegSchedule`], a socket-free
//! core with the time passed in) and the task that does it and the reg-event subscription
//! (TS 24.229 §5.1.1.4: refresh before the registration expires — here at half its granted
//! lifetime; RFC 3680 for the subscription).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::RegCmd;
use crate::ue::Ue;

/// How long to wait after a failed or refused re-registration before the next attempt.
pub const REGISTER_RETRY: Duration = Duration::from_secs(30);

/// The Expires a client asks for when it was not told one.
const DEFAULT_EXPIRES: u32 = 600;

/// How a (re-)REGISTER ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOutcome {
    /// 200 OK granting `expires` seconds.
    Registered {
        /// The granted lifetime.
        expires: u32,
    },
    /// Refused, granted nothing, or no answer.
    Failed,
}

/// When the client re-REGISTERs: half the lifetime it was granted after each success,
/// [`REGISTER_RETRY`] after a failure, nothing when refreshing is off.
#[derive(Debug, Clone)]
pub struct RegSchedule {
    refresh: Option<u32>,
    every: Option<Duration>,
    next: Option<Instant>,
}

/// Half a lifetime of `expires` seconds (at least one second).
fn half_life(expires: u32) -> Duration {
    Duration::from_secs(u64::from(expires.max(2)) / 2)
}

impl RegSchedule {
    /// A schedule for a client that asks for `refresh` seconds (None: no refreshing),
    /// registered at `now` with that lifetime.
    pub fn new(now: Instant, refresh: Option<u32>) -> RegSchedule {
        let every = refresh.map(half_life);
        RegSchedule {
            refresh,
            every,
            next: every.map(|d| now + d),
        }
    }

    /// When the next re-REGISTER is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The Expires to ask for.
    pub fn expires(&self) -> u32 {
        self.refresh.unwrap_or(DEFAULT_EXPIRES)
    }

    /// A re-REGISTER ended at `now`: the next one is due half the granted lifetime later,
    /// or [`REGISTER_RETRY`] later when it failed.
    pub fn handle(&mut self, now: Instant, outcome: RegOutcome) {
        self.every = Some(match outcome {
            RegOutcome::Registered { expires } => half_life(expires),
            RegOutcome::Failed => REGISTER_RETRY,
        });
        self.next = self.every.map(|d| now + d);
    }

    /// The application registered or asked something else at `now`: the wait starts again
    /// (the lifetime is not changed by an explicit register).
    pub fn rearm(&mut self, now: Instant) {
        self.next = self.every.map(|d| now + d);
    }
}

/// SUBSCRIBEs to our own reg event when the last subscription is due (`until` passed or
/// none); returns when the next one is due.
async fn watch_registration(ue: &mut Ue, until: Option<Instant>) -> Option<Instant> {
    let now = Instant::now();
    if until.is_some_and(|u| u > now) {
        return until;
    }
    let (resp, _) = ue.subscribe_reg(7200).await;
    if resp.status >= 300 {
        tracing::info!(status = resp.status, "reg-event subscription refused");
        return Some(now + Duration::from_secs(60));
    }
    let granted = resp
        .headers
        .get("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(600);
    Some(now + Duration::from_secs(granted.max(2) / 2))
}

/// Keeps the UE registered ([`RegSchedule`]) and de-registers on request. Owns the [`Ue`]
/// whose incoming requests the actor serves.
pub(super) async fn run(
    mut ue: Ue,
    refresh: Option<u32>,
    watch: bool,
    mut cmds: mpsc::UnboundedReceiver<RegCmd>,
) {
    // The reg-event subscription (RFC 3680): made now, made again (a new dialog) once half of
    // what the S-CSCF granted has passed, checked at each refresh; the old one lapses.
    let mut watched_until: Option<Instant> = None;
    if watch {
        watched_until = watch_registration(&mut ue, watched_until).await;
    }
    let mut sched = RegSchedule::new(Instant::now(), refresh);
    loop {
        let due = sched.poll_timeout();
        let sleep = async {
            match due {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                let outcome = match ue.register(sched.expires()).await {
                    Ok(r) if r.expires > 0 => RegOutcome::Registered { expires: r.expires },
                    Ok(_) => RegOutcome::Failed,
                    Err(e) => {
                        tracing::warn!(impu = %ue.cfg.impu, error = %e, "re-registration failed");
                        RegOutcome::Failed
                    }
                };
                if watch && matches!(outcome, RegOutcome::Registered { .. }) {
                    watched_until = watch_registration(&mut ue, watched_until).await;
                }
                sched.handle(Instant::now(), outcome);
            }
            cmd = cmds.recv() => match cmd {
                Some(RegCmd::Deregister(reply)) => {
                    let ok = ue.register(0).await.is_ok();
                    let _ = reply.send(ok);
                    return;
                }
                Some(RegCmd::Register(reply)) => {
                    let ok = matches!(ue.register(sched.expires()).await, Ok(r) if r.expires > 0);
                    let _ = reply.send(ok);
                    sched.rearm(Instant::now());
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_registration_fires_at_half_life() {
        let t0 = Instant::now();
        let mut s = RegSchedule::new(t0, Some(600));
        assert_eq!(s.expires(), 600);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        // The registrar granted less than asked: the next refresh follows the grant.
        let t1 = t0 + Duration::from_secs(301);
        s.handle(t1, RegOutcome::Registered { expires: 120 });
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
        // A tiny grant still waits a second.
        s.handle(t1, RegOutcome::Registered { expires: 1 });
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(1)));
    }

    #[test]
    fn a_failed_refresh_is_retried_after_30_s() {
        let t0 = Instant::now();
        let mut s = RegSchedule::new(t0, Some(60));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        let t1 = t0 + Duration::from_secs(31);
        s.handle(t1, RegOutcome::Failed);
        assert_eq!(s.poll_timeout(), Some(t1 + REGISTER_RETRY));
        // An explicit register restarts the wait without changing the period.
        let t2 = t1 + Duration::from_secs(5);
        s.rearm(t2);
        assert_eq!(s.poll_timeout(), Some(t2 + REGISTER_RETRY));
    }

    #[test]
    fn no_refresh_means_no_timer() {
        let t0 = Instant::now();
        let mut s = RegSchedule::new(t0, None);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.expires(), 600);
        s.rearm(t0);
        assert_eq!(s.poll_timeout(), None);
    }
}
