//! The IMS side: what each web user's chat UE reports from SIP and MSRP (an INVITE held for
//! the client, MSRP SENDs, IMDNs, is-composing, session ends, a network de-registration)
//! turned into the gateway's state and the paper's channel events (seed 000 §3, Table 1;
//! the mapping is the table in [`super`]; group chats: the table in `group.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::group::group_id_of;
use super::{Gateway, InstanceState, WebUser};
use crate::cpim::ImdnStatus;
use crate::ue::chat::roster::RosterEvent;
use crate::ue::chat::{ChatEvent, SessionStatus};

impl Gateway {
    /// Translates one chat event of the user's UE into the gateway's state and events.
    fn on_chat_event(&self, user: &WebUser, ev: ChatEvent) {
        // A chatbot's card reaches the page as its text with the replies it suggests.
        let ev = match ev {
            ChatEvent::BotMessage {
                from,
                card,
                message_id,
            } => ChatEvent::Message {
                from,
                text: card.one_line(),
                message_id,
            },
            other => other,
        };
        match ev {
            // Handled by the pump (it ends the session); a web user is no chatbot to be tapped.
            ChatEvent::Deregistered { .. }
            | ChatEvent::Tap { .. }
            | ChatEvent::BotMessage { .. } => {}
            // The focus invites us into a group (From: the group's conference URI).
            ChatEvent::Invited { from, subject, .. } if group_id_of(&from).is_some() => {
                self.on_group_invited(user, &from, subject);
            }
            ChatEvent::Invited {
                from,
                subject,
                message_id,
                text,
                datetime,
                conversation_id,
                contribution_id,
                ..
            } => {
                let id = user.instance_for(&from, InstanceState::Initiate);
                let sender = self.web_id(&from);
                user.with(|s| {
                    if let Some(i) = s.instances.get_mut(&id) {
                        i.state = InstanceState::Initiate;
                        i.conversation_id = conversation_id;
                        i.contribution_id = contribution_id;
                    }
                });
                if let Some(t) = &text {
                    user.add_incoming(&id, &message_id, &sender, t, datetime.clone());
                }
                // Paper Table 1.
                let subject = subject.or(text).unwrap_or_default();
                self.emit(
                    user,
                    "chat",
                    &id,
                    json!({
                        "status": "initiate",
                        "subject": subject,
                        "message_id": message_id,
                        "sender": sender,
                    }),
                );
            }
            ChatEvent::Message {
                from,
                text,
                message_id,
            } => {
                let id = user.instance_for(&from, InstanceState::Active);
                let sender = self.web_id(&from);
                user.add_incoming(&id, &message_id, &sender, &text, None);
                self.emit(
                    user,
                    "messageNotification",
                    &id,
                    json!({
                        "status": "waiting",
                        "message_id": message_id,
                        "sender": sender,
                    }),
                );
            }
            // A group's message: on the channel with its text (OMA chatMessageNotification);
            // the gateway has it for the client, so it reports it delivered to the writer.
            ChatEvent::GroupMessage {
                group,
                from,
                text,
                message_id,
            } => {
                self.on_group_message(user, &group, &from, &text, &message_id, None);
                if !message_id.is_empty() {
                    user.chat.delivered(&message_id);
                }
            }
            ChatEvent::Status {
                message_id,
                status,
                from,
                ..
            } => {
                let word = match status {
                    ImdnStatus::Delivered => "delivered",
                    ImdnStatus::Displayed => "displayed",
                    ImdnStatus::Failed => "failed",
                };
                if self.on_group_report(user, &message_id, word, &from) {
                    return;
                }
                self.report(user, &message_id, word, &self.web_id(&from), None);
            }
            // T-IM stored it for an offline recipient: the status that matters comes later.
            ChatEvent::Stored { .. } | ChatEvent::Acked { .. } => {}
            // Files for web users (RCC.07 FT via HTTP, `files.rs`): the UE does not download
            // them (`files: None`); the page fetches them through the gateway.
            ChatEvent::FileOffered {
                from,
                group,
                info,
                message_id,
            } => self.on_file_offered(user, &from, group.as_deref(), *info, &message_id),
            ChatEvent::File { .. } | ChatEvent::FileFailed { .. } | ChatEvent::Revoked { .. } => {}
            ChatEvent::SendFailed { message_id, reason } => {
                let sender = user.user_id.clone();
                if self.on_group_report(user, &message_id, "failed", &sender) {
                    return;
                }
                self.report(user, &message_id, "failed", &sender, Some(reason));
            }
            // A group's is-composing names the group, not who types: not shown.
            ChatEvent::Composing { from, .. } if group_id_of(&from).is_some() => {}
            ChatEvent::Composing { from, active } => {
                let id = user.instance_for(&from, InstanceState::Active);
                self.emit(
                    user,
                    "isComposing",
                    &id,
                    json!({
                        "sender": self.web_id(&from),
                        "state": if active { "active" } else { "idle" },
                    }),
                );
            }
            ChatEvent::Session {
                peer,
                status,
                reason,
            } => {
                let up = status == SessionStatus::Accepted;
                if self.on_group_session(user, &peer, up, status.as_str(), &reason) {
                    return;
                }
                let Some(id) = user.with(|s| s.by_peer.get(&peer).cloned()) else {
                    return;
                };
                let state = match status {
                    SessionStatus::Accepted => InstanceState::Active,
                    _ => InstanceState::Closed,
                };
                let was = user.with(|s| s.instances.get(&id).map(|i| i.state));
                // A chat the client already closed or declined needs no second event.
                if was == Some(InstanceState::Closed) && state == InstanceState::Closed {
                    return;
                }
                user.set_state(&id, state);
                let mut data = json!({ "status": status.as_str() });
                if !reason.is_empty() {
                    data["reason"] = Value::String(reason);
                }
                self.emit(user, "chatEvent", &id, data);
            }
        }
    }

    /// A report about one of our messages. One that overtakes the gateway's record of the
    /// message (an INVITE refused at once, while `send_with` is still returning its id) is
    /// kept a while ([`EARLY_REPORTS`]) and given when the message is recorded.
    pub(super) fn report(
        &self,
        user: &WebUser,
        message_id: &str,
        status: &str,
        sender: &str,
        reason: Option<String>,
    ) {
        let Some(id) = user.with(|s| {
            let id = s.ours.get(message_id).cloned();
            if id.is_none() && !message_id.is_empty() {
                s.early.push_back(EarlyReport {
                    message_id: message_id.to_string(),
                    status: status.to_string(),
                    sender: sender.to_string(),
                    reason: reason.clone(),
                });
                while s.early.len() > EARLY_REPORTS {
                    s.early.pop_front();
                }
            }
            id
        }) else {
            return;
        };
        user.with(|s| {
            if let Some(i) = s.instances.get_mut(&id) {
                if let Some(m) = i.messages.iter_mut().find(|m| m.message_id == message_id) {
                    // "displayed" is never downgraded by a late "delivered".
                    if !(m.status == "displayed" && status == "delivered") {
                        m.status = status.to_string();
                    }
                }
            }
        });
        let mut data = json!({
            "message_id": message_id,
            "status": status,
            "sender": sender,
        });
        if let Some(r) = reason {
            data["reason"] = Value::String(r);
        }
        self.emit(user, "messageStatusNotification", &id, data);
    }
}

/// Reports kept per user for messages the gateway has not recorded yet.
pub(super) const EARLY_REPORTS: usize = 64;

/// A report that came before the gateway recorded the message it is about.
#[derive(Debug, Clone)]
pub(super) struct EarlyReport {
    pub message_id: String,
    pub status: String,
    pub sender: String,
    pub reason: Option<String>,
}

impl Gateway {
    /// The reports that came early about `message_id`, now that it is recorded: to the chat
    /// instance (`group` false) or the group (`group` true) it went to.
    pub(super) fn replay_early_reports(&self, user: &WebUser, message_id: &str, group: bool) {
        let early: Vec<EarlyReport> = user.with(|s| {
            let (hit, keep): (VecDeque<EarlyReport>, VecDeque<EarlyReport>) =
                s.early.drain(..).partition(|r| r.message_id == message_id);
            s.early = keep;
            hit.into()
        });
        for r in early {
            if group {
                self.on_group_report(user, &r.message_id, &r.status, &r.sender);
            } else {
                self.report(user, &r.message_id, &r.status, &r.sender, r.reason);
            }
        }
    }
}

/// Reads a user's chat events until the UE stops.
pub(super) async fn pump(
    gw: Arc<Gateway>,
    user: Arc<WebUser>,
    mut events: mpsc::UnboundedReceiver<ChatEvent>,
) {
    let mut closed = user.watch_closed();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ChatEvent::Deregistered { reason }) => {
                    tracing::info!(user = %user.aor, %reason, "the network ended a web user's registration: the web session ends");
                    gw.emit(&user, "sessionEnded", "", json!({ "reason": "the network ended the registration" }));
                    let (gw, user) = (gw.clone(), user.clone());
                    // Not awaited here: logout ends this pump.
                    tokio::spawn(async move { gw.logout(&user).await });
                }
                Some(ev) => gw.on_chat_event(&user, ev),
                None => return,
            },
            _ = closed.changed() => return,
        }
    }
}

/// Reads a user's roster events (the conference NOTIFYs of their groups) until logout.
pub(super) async fn roster_pump(
    gw: Arc<Gateway>,
    user: Arc<WebUser>,
    mut events: mpsc::UnboundedReceiver<RosterEvent>,
) {
    let mut closed = user.watch_closed();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => gw.on_roster(&user, ev),
                None => return,
            },
            _ = closed.changed() => return,
        }
    }
}
