//! The presence steps of a lab file (TS 24.141, RFC 3856, RFC 3903, RFC 4662): `subscribe`
//! (`user` watches `to`; the first NOTIFY is answered), `subscribe_list` (`user` subscribes
//! to their own resource list `text`, `rcs` unless given, at the RLS; the full-state NOTIFY
//! is answered and its members count as watched), `publish` (`user` publishes the status in
//! `text`, `open` / `away` / `busy` / `offline`, with an optional `note`) and `deregister`
//! (`user` de-registers; the PS shows them offline). After a `publish` or `deregister`, each
//! watcher of the user answers the NOTIFY it gets.

use std::time::Duration;

use crate::ue::presence::{answer_notify, notice, notices, Status};
use crate::ue::Ue;

/// Why a presence step failed (the lab run reports it as the step's failure).
#[derive(Debug, thiserror::Error)]
pub(super) enum PresenceStepError {
    /// The user named has no registered UE in this run.
    #[error("'{0}' has not registered")]
    NotRegistered(String),
    /// The status word is none of open, away, busy, offline.
    #[error("unknown status '{0}'")]
    UnknownStatus(String),
    /// The PUBLISH or SUBSCRIBE got a final answer other than 2xx.
    #[error("{method} answered {status} {reason}")]
    Answered {
        method: &'static str,
        status: u16,
        reason: String,
    },
    /// A watcher got no NOTIFY in time.
    #[error("{watcher} got no NOTIFY about {presentity}")]
    NoNotify { watcher: String, presentity: String },
}

/// How long a watcher waits for its NOTIFY.
const NOTIFY_WAIT: Duration = Duration::from_secs(3);

/// `watcher` answers the next presence NOTIFY about `presentity`.
async fn answer_next(
    ue: &mut Ue,
    watcher: &str,
    presentity: &str,
) -> Result<(), PresenceStepError> {
    let until = tokio::time::Instant::now() + NOTIFY_WAIT;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let Some(inc) = ue.next_request(left).await else {
            return Err(PresenceStepError::NoNotify {
                watcher: watcher.into(),
                presentity: presentity.into(),
            });
        };
        if notice(&inc.request).is_some() {
            answer_notify(inc);
            return Ok(());
        }
    }
}

/// `user` subscribes to `to`'s presence and answers the first NOTIFY.
pub(super) async fn subscribe(
    ues: &mut [(String, Ue)],
    user: &str,
    to: &str,
    domain: &str,
) -> Result<(), PresenceStepError> {
    let ue = ues
        .iter_mut()
        .find(|(u, _)| u == user)
        .map(|(_, ue)| ue)
        .ok_or_else(|| PresenceStepError::NotRegistered(user.into()))?;
    let target = format!("sip:{to}@{domain}");
    let (_, resp) = ue.subscribe_presence(&target, 3600).await;
    if resp.status / 100 != 2 {
        return Err(PresenceStepError::Answered {
            method: "SUBSCRIBE",
            status: resp.status,
            reason: resp.reason,
        });
    }
    answer_next(ue, user, to).await
}

/// `user` publishes `status` (and `note`); every watcher in `watching` (watcher, presentity)
/// of theirs answers its NOTIFY.
pub(super) async fn publish(
    ues: &mut [(String, Ue)],
    watching: &[(String, String)],
    user: &str,
    status: &str,
    note: Option<&str>,
) -> Result<(), PresenceStepError> {
    let st =
        Status::parse(status).ok_or_else(|| PresenceStepError::UnknownStatus(status.into()))?;
    let ue = ues
        .iter_mut()
        .find(|(u, _)| u == user)
        .map(|(_, ue)| ue)
        .ok_or_else(|| PresenceStepError::NotRegistered(user.into()))?;
    let resp = ue.publish(st, note, 3600, None).await;
    if resp.status != 200 {
        return Err(PresenceStepError::Answered {
            method: "PUBLISH",
            status: resp.status,
            reason: resp.reason,
        });
    }
    for (watcher, _) in watching.iter().filter(|(_, p)| p == user) {
        let ue = ues
            .iter_mut()
            .find(|(u, _)| u == watcher)
            .map(|(_, ue)| ue)
            .ok_or_else(|| PresenceStepError::NotRegistered(watcher.clone()))?;
        answer_next(ue, watcher, user).await?;
    }
    Ok(())
}

/// `user` subscribes to their own list `name` and answers the full-state NOTIFY; returns the
/// members' user parts (they count as watched by `user`).
pub(super) async fn subscribe_list(
    ues: &mut [(String, Ue)],
    user: &str,
    name: &str,
) -> Result<Vec<String>, PresenceStepError> {
    let ue = ues
        .iter_mut()
        .find(|(u, _)| u == user)
        .map(|(_, ue)| ue)
        .ok_or_else(|| PresenceStepError::NotRegistered(user.into()))?;
    let (_, resp) = ue.subscribe_list(name, 3600).await;
    if resp.status / 100 != 2 {
        return Err(PresenceStepError::Answered {
            method: "SUBSCRIBE",
            status: resp.status,
            reason: resp.reason,
        });
    }
    let until = tokio::time::Instant::now() + NOTIFY_WAIT;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let Some(inc) = ue.next_request(left).await else {
            return Err(PresenceStepError::NoNotify {
                watcher: user.into(),
                presentity: name.into(),
            });
        };
        if let Some(ns) = notices(&inc.request) {
            answer_notify(inc);
            return Ok(ns
                .iter()
                .filter_map(|n| {
                    let rest = n.presentity.strip_prefix("sip:")?;
                    Some(rest.split('@').next()?.to_string())
                })
                .collect());
        }
    }
}

/// `user` de-registers; every watcher in `watching` of theirs answers its NOTIFY (the PS,
/// told by the S-CSCF, shows them offline).
pub(super) async fn deregister(
    ues: &mut [(String, Ue)],
    watching: &[(String, String)],
    user: &str,
) -> Result<(), PresenceStepError> {
    let ue = ues
        .iter_mut()
        .find(|(u, _)| u == user)
        .map(|(_, ue)| ue)
        .ok_or_else(|| PresenceStepError::NotRegistered(user.into()))?;
    if let Err(e) = ue.register(0).await {
        return Err(PresenceStepError::Answered {
            method: "REGISTER",
            status: 0,
            reason: e.to_string(),
        });
    }
    for (watcher, _) in watching.iter().filter(|(_, p)| p == user) {
        let ue = ues
            .iter_mut()
            .find(|(u, _)| u == watcher)
            .map(|(_, ue)| ue)
            .ok_or_else(|| PresenceStepError::NotRegistered(watcher.clone()))?;
        answer_next(ue, watcher, user).await?;
    }
    Ok(())
}
