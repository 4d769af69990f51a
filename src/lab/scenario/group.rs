//! The group chat steps of a lab file (OMA SIMPLE IM, GSMA RCC.07 §3.4, RFC 5366, RFC 4579,
//! RFC 4575, RFC 5368), acting on the group the run created last:
//!
//! - `group-create`: `user` creates a group with `members` (user names), its Subject `text`;
//!   the step ends once every member the focus invited is in (its MSRP leg bound) or away.
//! - `group-watch`: `user` subscribes to the group's conference event and takes the full
//!   NOTIFY; the partial NOTIFYs that follow are answered by the roster watcher as they come.
//! - `group-send`: `user` writes `text` to the group; the step waits for the IMDN "delivered"
//!   of every other member whose client runs in this lab (members not registered get it
//!   later, when they come back).
//! - `group-add`: `user` adds `members` by REFER (one `Refer-To`, or a `multiple-refer` list).
//! - `group-remove`: `user`, the chairman, removes `to` (REFER `method=BYE`).
//!
//! Every registered user a step names becomes an RCS client with a roster watcher (a
//! `register` step with `chat = true` does it at once: the focus may INVITE the user back
//! as soon as the S-CSCF tells it about the registration). Each step ends once the lab has
//! been quiet for a moment ([`quiet`]), so no message of one step lands in the next one's
//! lines.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::conf::conference_info::State;
use crate::cpim::ImdnStatus;
use crate::focus::group::{Group, MemberState};
use crate::lab::Lab;
use crate::trace::Trace;
use crate::ue::chat::roster::{RosterEvent, RosterParts, RosterWatcher};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe, GroupError};
use crate::ue::Ue;

/// Why a group step failed (the lab run reports it as the step's failure).
#[derive(Debug, thiserror::Error)]
pub(super) enum GroupStepError {
    /// The user named has no registered UE in this run.
    #[error("'{0}' has not registered")]
    NotRegistered(String),
    /// The step needs a field the lab file did not give.
    #[error("needs `{0}`")]
    Missing(&'static str),
    /// A step that acts on a group before any `group-create`.
    #[error("no group yet (group-create first)")]
    NoGroup,
    /// The focus (or the network) refused.
    #[error("{0}")]
    Refused(#[from] GroupError),
    /// A message could not be sent.
    #[error("not sent: {0}")]
    SendFailed(String),
    /// Something the step waits for did not happen in time.
    #[error("{0} within {1:?}")]
    Timeout(String, Duration),
    /// The roster subscription ended or was refused.
    #[error("roster: {0}")]
    Roster(String),
    /// A `group-*` action this module does not know.
    #[error("unknown action '{0}'")]
    Unknown(String),
}

/// How long a step waits for what it expects (a member in, a report, a NOTIFY).
const STEP_WAIT: Duration = Duration::from_secs(10);
/// The lab counts as quiet when its ladder has not grown for this long.
const QUIET: Duration = Duration::from_millis(400);

/// One user's RCS client and its roster watcher.
struct Client {
    chat: ChatUe,
    roster: RosterWatcher,
    roster_events: mpsc::UnboundedReceiver<RosterEvent>,
}

/// The RCS clients of a run and the group they act on.
#[derive(Default)]
pub(super) struct Groups {
    clients: HashMap<String, Client>,
    /// The conference URI of the group the run created last.
    group: Option<String>,
}

impl Groups {
    /// Makes `ue` (registered) an RCS client with a roster watcher. The conference NOTIFYs
    /// are set apart before the chat client takes the UE ([`RosterParts::take`]).
    pub(super) fn adopt(&mut self, user: &str, mut ue: Ue, trace: Trace) {
        let parts = RosterParts::take(&mut ue);
        let (roster, roster_events) = RosterWatcher::start(parts);
        let chat = ChatUe::start(ue, trace, ChatOptions::default());
        self.clients.insert(
            user.to_string(),
            Client {
                chat,
                roster,
                roster_events,
            },
        );
    }

    /// After a `register` with `chat = true`: waits until the user, if a member of the
    /// group that is away, was brought back (CONF's INVITE after the third-party
    /// REGISTER), then for the lab to go quiet.
    pub(super) async fn registered(&self, lab: &Lab, user: &str) -> Result<(), GroupStepError> {
        if let Some(gid) = self.gid(lab) {
            let uri = aor(lab, user);
            wait_for(&format!("{user} back in the group"), || {
                lab.conf
                    .group(&gid)
                    .and_then(|g| g.member(&uri).map(|m| m.state))
                    .is_none_or(|s| s != MemberState::Away)
            })
            .await?;
        }
        quiet(lab).await;
        Ok(())
    }

    /// Runs one `group-*` step.
    pub(super) async fn step(
        &mut self,
        lab: &Lab,
        ues: &mut Vec<(String, Ue)>,
        action: &str,
        s: &super::Step,
    ) -> Result<(), GroupStepError> {
        let user = s.user.clone().unwrap_or_default();
        for who in std::iter::once(&user).chain(&s.members) {
            if let Some(at) = ues.iter().position(|(u, _)| u == who) {
                let (_, ue) = ues.remove(at);
                self.adopt(who, ue, lab.trace.clone());
            }
        }
        let me = self
            .clients
            .get_mut(&user)
            .ok_or_else(|| GroupStepError::NotRegistered(user.clone()))?;
        match action {
            "group-create" => {
                let subject = s.text.as_deref().unwrap_or("Group chat");
                let members: Vec<&str> = s.members.iter().map(String::as_str).collect();
                if members.is_empty() {
                    return Err(GroupStepError::Missing("members"));
                }
                let uri = me.chat.create_group(subject, &members).await?;
                self.group = Some(uri);
                self.invited_settled(lab, &s.members).await?;
            }
            "group-watch" => {
                let group = self.group.clone().ok_or(GroupStepError::NoGroup)?;
                me.roster.watch(&group);
                let until = tokio::time::Instant::now() + STEP_WAIT;
                loop {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, me.roster_events.recv()).await {
                        Ok(Some(RosterEvent::Info { info, .. })) if info.state == State::Full => {
                            break
                        }
                        Ok(Some(RosterEvent::Ended { reason, .. })) => {
                            return Err(GroupStepError::Roster(reason))
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => {
                            let what = format!("{user}'s full NOTIFY");
                            return Err(GroupStepError::Timeout(what, STEP_WAIT));
                        }
                    }
                }
            }
            "group-send" => {
                let group = self.group.clone().ok_or(GroupStepError::NoGroup)?;
                let text = s.text.as_deref().unwrap_or("Hello, group");
                let g = self.group_now(lab).ok_or(GroupStepError::NoGroup)?;
                let mut owed = reporters(&g, &aor(lab, &user), |m| {
                    let name = m.strip_prefix("sip:").unwrap_or(m);
                    let name = name.split('@').next().unwrap_or(name);
                    self.clients.contains_key(name)
                });
                let me = self.clients.get_mut(&user).expect("checked above");
                let id = me.chat.send(&group, text).await;
                let until = tokio::time::Instant::now() + STEP_WAIT;
                while !owed.is_empty() {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    match me.chat.next_event(left).await {
                        Some(ChatEvent::Status {
                            message_id,
                            status: ImdnStatus::Delivered,
                            from,
                            ..
                        }) if message_id == id => owed.retain(|m| *m != from),
                        Some(ChatEvent::SendFailed { reason, .. }) => {
                            return Err(GroupStepError::SendFailed(reason))
                        }
                        Some(_) => {}
                        None => {
                            let what = format!("IMDN delivered from {}", owed.join(", "));
                            return Err(GroupStepError::Timeout(what, STEP_WAIT));
                        }
                    }
                }
            }
            "group-add" => {
                let group = self.group.clone().ok_or(GroupStepError::NoGroup)?;
                let members: Vec<&str> = s.members.iter().map(String::as_str).collect();
                if members.is_empty() {
                    return Err(GroupStepError::Missing("members"));
                }
                me.chat.add_to_group(&group, &members).await?;
                self.invited_settled(lab, &s.members).await?;
            }
            "group-remove" => {
                let group = self.group.clone().ok_or(GroupStepError::NoGroup)?;
                let who = s.to.clone().ok_or(GroupStepError::Missing("to"))?;
                me.chat.remove_from_group(&group, &who).await?;
                let gid = self.gid(lab).ok_or(GroupStepError::NoGroup)?;
                let uri = aor(lab, &who);
                wait_for(&format!("{who} removed"), || {
                    lab.conf.group(&gid).is_some_and(|g| !g.is_member(&uri))
                })
                .await?;
            }
            other => return Err(GroupStepError::Unknown(other.to_string())),
        }
        quiet(lab).await;
        Ok(())
    }

    /// The focus's id of the run's group (`GID` of `sip:chat-GID@DOMAIN`).
    fn gid(&self, lab: &Lab) -> Option<String> {
        let uri = self.group.as_deref()?;
        let gid = uri.strip_prefix("sip:chat-")?.split('@').next()?;
        lab.conf.group(gid).map(|g| g.id)
    }

    /// The run's group as the focus holds it now.
    fn group_now(&self, lab: &Lab) -> Option<Group> {
        lab.conf.group(&self.gid(lab)?)
    }

    /// Waits until each of `members` the focus invited is in with its MSRP leg bound (the
    /// focus's 200 to the binding SEND is on the wire), or away (not registered).
    async fn invited_settled(&self, lab: &Lab, members: &[String]) -> Result<(), GroupStepError> {
        let gid = self.gid(lab).ok_or(GroupStepError::NoGroup)?;
        for who in members {
            let uri = aor(lab, who);
            let bound = format!("CONF -> UE {who} MSRP 200");
            wait_for(&format!("{who} in the group or away"), || {
                match lab
                    .conf
                    .group(&gid)
                    .and_then(|g| g.member(&uri).map(|m| m.state))
                {
                    Some(MemberState::Connected) => super::ladder_lines(lab).contains(&bound),
                    Some(MemberState::Away | MemberState::Idle | MemberState::Departed) => true,
                    Some(MemberState::Invited) | None => false,
                }
            })
            .await?;
        }
        Ok(())
    }
}

/// `sip:USER@DOMAIN` of the lab.
fn aor(lab: &Lab, user: &str) -> String {
    format!("sip:{user}@{}", lab.config.lab.domain)
}

/// The members (their URIs) owed to report a message `sender` writes to `g`: every other
/// member still in the group whose client runs here (`runs`); the others get it later.
fn reporters(g: &Group, sender: &str, runs: impl Fn(&str) -> bool) -> Vec<String> {
    g.current()
        .filter(|m| !m.uri.eq_ignore_ascii_case(sender) && runs(&m.uri))
        .map(|m| m.uri.clone())
        .collect()
}

/// Polls `done` until it holds, for at most [`STEP_WAIT`].
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), GroupStepError> {
    let until = tokio::time::Instant::now() + STEP_WAIT;
    while !done() {
        if tokio::time::Instant::now() >= until {
            return Err(GroupStepError::Timeout(what.to_string(), STEP_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until the lab's ladder has not grown for [`QUIET`] (at most [`STEP_WAIT`]): the
/// NOTIFYs, reports and 200s a step set off are all in before the next step starts.
pub(super) async fn quiet(lab: &Lab) {
    let until = tokio::time::Instant::now() + STEP_WAIT;
    let mut lines = super::ladder_lines(lab).len();
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = super::ladder_lines(lab).len();
        if now != lines {
            lines = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= QUIET {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::focus::group::Member;

    fn member(uri: &str, state: MemberState) -> Member {
        Member {
            uri: uri.into(),
            state,
            chairman: false,
            departure: None,
            delivered_seq: 0,
        }
    }

    #[test]
    fn reports_are_owed_by_the_other_members_whose_clients_run() {
        let g = Group {
            id: "g".into(),
            uri: "sip:chat-g@ims.lab".into(),
            subject: None,
            contribution_id: "c".into(),
            members: vec![
                member("sip:alice@ims.lab", MemberState::Connected),
                member("sip:bob@ims.lab", MemberState::Connected),
                member("sip:carol@ims.lab", MemberState::Away),
                member("sip:dave@ims.lab", MemberState::Away),
                member("sip:erin@ims.lab", MemberState::Departed),
            ],
            next_seq: 1,
        };
        // carol is away but registered here (the focus brings her back, idle teardown);
        // dave is not registered; erin left.
        let runs = |m: &str| m != "sip:dave@ims.lab";
        assert_eq!(
            reporters(&g, "sip:alice@ims.lab", runs),
            ["sip:bob@ims.lab", "sip:carol@ims.lab"]
        );
        assert_eq!(
            reporters(&g, "sip:BOB@ims.lab", runs),
            ["sip:alice@ims.lab", "sip:carol@ims.lab"]
        );
    }
}
