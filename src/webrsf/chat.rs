//! The chat (media) API: the chat instances of a web user — one per peer, paper Table 1's
//! `{userId}/Chat/{id}` — their conversations kept for reloads, the received messages waiting
//! for `GET Chat/Media`, and what `GET|POST Chat`, `GET|PUT Chat/{id}`, `Chat/{id}/Messages`,
//! `Messages/{msgId}/Status` and `Chat/{id}/Composing` do on the user's chat UE (figure 4
//! steps 17-19, figure 5 steps 8-11: accept, IMDN delivered/displayed, send, is-composing).

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::{Gateway, WebError, WebUser};
use crate::im::rcs;
use crate::ue::chat::SessionIds;

/// A chat instance's state as web clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Someone invited us; the INVITE waits for the client (figure 4 step 17).
    Initiate,
    /// Messages flow (or are about to).
    Active,
    /// Ended.
    Closed,
}

impl InstanceState {
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Initiate => "initiate",
            InstanceState::Active => "active",
            InstanceState::Closed => "closed",
        }
    }
}

/// One message of a conversation, as the gateway keeps it for reloads.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// imdn.Message-ID.
    pub message_id: String,
    /// `in` or `out`.
    pub incoming: bool,
    /// Sender in web form (`alice`).
    pub sender: String,
    /// The text.
    pub text: String,
    /// `sent`, `delivered`, `displayed`, `failed` (ours) or `received` (theirs).
    pub status: String,
    /// CPIM DateTime or when the gateway saw it.
    pub datetime: String,
    /// A file (RCC.07 file transfer via HTTP) as the page sees it ([`super::files`]); `text`
    /// is then its name.
    pub file: Option<Value>,
}

/// A chat instance: one per (web user, peer); the SIP session behind it may change.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its id (last segment of its URL).
    pub id: String,
    /// The peer's AoR.
    pub peer: String,
    /// State.
    pub state: InstanceState,
    /// Conversation-ID of the session, when known.
    pub conversation_id: Option<String>,
    /// Contribution-ID of the session, when known.
    pub contribution_id: Option<String>,
    /// The conversation, oldest first (bounded).
    pub messages: VecDeque<MessageRecord>,
}

/// A received message waiting for `GET Chat/Media` and its acknowledgement.
#[derive(Debug, Clone)]
pub struct Media {
    /// The instance it belongs to.
    pub instance_id: String,
    /// imdn.Message-ID.
    pub message_id: String,
    /// Sender in web form.
    pub sender: String,
    /// Content type of the CPIM payload.
    pub content_type: String,
    /// The text.
    pub text: String,
    /// CPIM DateTime (or arrival time).
    pub datetime: String,
    /// A file offered ([`super::files`]); `text` is then its name.
    pub file: Option<Value>,
}

/// Messages kept per instance for reloads.
pub(super) const KEEP_MESSAGES: usize = 500;

impl Gateway {
    /// The instance of `user` with `id` (404 when it is not theirs).
    pub fn instance(&self, user: &WebUser, id: &str) -> Result<Instance, WebError> {
        user.with(|s| s.instances.get(id).cloned())
            .ok_or_else(|| WebError::NotFound(format!("no chat instance '{id}'")))
    }

    /// `GET /{url}/Chat`.
    pub fn list(&self, user: &WebUser) -> Value {
        let mut v: Vec<Instance> = user.with(|s| s.instances.values().cloned().collect());
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Value::Array(
            v.iter()
                .map(|i| {
                    json!({
                        "instance": self.instance_url(&user.user_id, &i.id),
                        "instance_id": i.id,
                        "peer": self.web_id(&i.peer),
                        "state": i.state.as_str(),
                    })
                })
                .collect(),
        )
    }

    /// `GET /{url}/Chat/{id}/Messages`.
    pub fn messages(&self, user: &WebUser, id: &str) -> Result<Value, WebError> {
        let i = self.instance(user, id)?;
        Ok(Value::Array(
            i.messages
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "message_id": m.message_id,
                        "direction": if m.incoming { "in" } else { "out" },
                        "sender": m.sender,
                        "text": m.text,
                        "status": m.status,
                        "datetime": m.datetime,
                    });
                    if let Some(f) = &m.file {
                        v["file"] = f.clone();
                    }
                    v
                })
                .collect(),
        ))
    }

    /// `GET /{url}/Chat/Media`: every received message not acknowledged yet, oldest first.
    pub fn media(&self, user: &WebUser) -> Vec<Value> {
        user.with(|s| s.media.clone())
            .into_iter()
            .map(|m| {
                let mut v = json!({
                    "instance": self.instance_url(&user.user_id, &m.instance_id),
                    "instance_id": m.instance_id,
                    "message_id": m.message_id,
                    "sender": m.sender,
                    "content_type": m.content_type,
                    "text": m.text,
                    "datetime": m.datetime,
                });
                if let Some(f) = m.file {
                    v["file"] = f;
                }
                v
            })
            .collect()
    }

    /// `PUT /{url}/Chat/{id}`: the client's answer about an instance (figure 4 steps 18-19,
    /// figure 5 steps 10-11). `status` is `delivered` (the default), `displayed`, `accepted`,
    /// `declined` or `closed`; `message_id` picks one message (else every waiting one).
    pub fn update(
        &self,
        user: &WebUser,
        id: &str,
        status: &str,
        message_id: Option<&str>,
    ) -> Result<Value, WebError> {
        let inst = self.instance(user, id)?;
        let status = status.to_ascii_lowercase();
        let held = inst.state == InstanceState::Initiate;
        match status.as_str() {
            "delivered" | "displayed" => {
                let acked = user.ack_media(id, message_id);
                if let Some(m) = message_id {
                    if !acked.iter().any(|a| a == m) && !user.has_incoming(id, m) {
                        return Err(WebError::NotFound(format!("no received message '{m}'")));
                    }
                }
                if held {
                    // Figure 4: the IMDN "delivered" goes in a SIP MESSAGE, then 200 OK.
                    user.set_state(id, InstanceState::Active);
                    user.chat.accept(&inst.peer, true);
                }
                let ids: Vec<String> = match message_id {
                    Some(m) => vec![m.to_string()],
                    None => acked,
                };
                for m in &ids {
                    if !held {
                        user.chat.delivered(m);
                    }
                    user.set_incoming_status(id, m, &status);
                    if status == "displayed" {
                        user.chat.displayed(m);
                    }
                }
            }
            "accepted" | "accept" => {
                if !held {
                    return Err(WebError::Conflict(
                        "the chat is not waiting for an answer".into(),
                    ));
                }
                user.set_state(id, InstanceState::Active);
                user.chat.accept(&inst.peer, false);
            }
            "declined" | "decline" => {
                if !held {
                    return Err(WebError::Conflict(
                        "the chat is not waiting for an answer".into(),
                    ));
                }
                user.set_state(id, InstanceState::Closed);
                user.ack_media(id, None);
                user.chat.decline(&inst.peer);
            }
            "closed" | "close" => {
                if held {
                    user.chat.decline(&inst.peer);
                } else {
                    user.chat.close(&inst.peer);
                }
                user.set_state(id, InstanceState::Closed);
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown status '{other}' (delivered, displayed, accepted, declined, closed)"
                )))
            }
        }
        Ok(json!({
            "instance": self.instance_url(&user.user_id, id),
            "status": status,
        }))
    }

    /// `POST /{url}/Chat`: starts (or continues) the chat with `to`; the first message goes in
    /// the INVITE. Returns the instance id and the message id.
    pub async fn start_chat(
        &self,
        user: &WebUser,
        to: &str,
        text: &str,
        ids: SessionIds,
    ) -> Result<(String, String), WebError> {
        let peer = self.aor_of(to)?;
        if peer == user.aor {
            return Err(WebError::BadRequest("cannot chat with yourself".into()));
        }
        let id = user.instance_for(&peer, InstanceState::Active);
        user.with(|s| {
            if let Some(i) = s.instances.get_mut(&id) {
                if i.conversation_id.is_none() {
                    i.conversation_id = ids.conversation_id.clone();
                    i.contribution_id = ids.contribution_id.clone();
                }
            }
        });
        let mid = self.send(user, &id, text, ids).await?;
        Ok((id, mid))
    }

    /// `POST /{url}/Chat/{id}/Messages`.
    pub async fn send(
        &self,
        user: &WebUser,
        id: &str,
        text: &str,
        ids: SessionIds,
    ) -> Result<String, WebError> {
        let inst = self.ready_to_send(user, id)?;
        let mid = user
            .chat
            .send_with(&inst.peer, text.as_bytes(), "text/plain;charset=UTF-8", ids)
            .await;
        self.record_sent(user, id, &mid, text, None);
        Ok(mid)
    }

    /// Instance `id`, made ready for a message of ours: a chat we were invited to is
    /// accepted first (answering it), a closed one comes back.
    pub(super) fn ready_to_send(&self, user: &WebUser, id: &str) -> Result<Instance, WebError> {
        let inst = self.instance(user, id)?;
        if inst.state == InstanceState::Initiate {
            user.ack_media(id, None);
            user.set_state(id, InstanceState::Active);
            user.chat.accept(&inst.peer, true);
        } else if inst.state == InstanceState::Closed {
            user.set_state(id, InstanceState::Active);
        }
        Ok(inst)
    }

    /// Records a message of ours (`file`: a file, `text` its name) in instance `id`, for its
    /// reports and for reloads.
    pub(super) fn record_sent(
        &self,
        user: &WebUser,
        id: &str,
        mid: &str,
        text: &str,
        file: Option<Value>,
    ) {
        user.with(|s| {
            s.remember_ours(mid.to_string(), id.to_string());
            if let Some(i) = s.instances.get_mut(id) {
                push_record(i, super::files::sent_record(user, mid, text, file));
            }
        });
        self.replay_early_reports(user, mid, false);
    }

    /// `PUT /{url}/Chat/{id}/Messages/{msgId}/Status`.
    pub fn message_status(
        &self,
        user: &WebUser,
        id: &str,
        message_id: &str,
        status: &str,
    ) -> Result<Value, WebError> {
        self.instance(user, id)?;
        let status = status.to_ascii_lowercase();
        if status != "displayed" && status != "delivered" {
            return Err(WebError::BadRequest(format!(
                "unknown status '{status}' (delivered, displayed)"
            )));
        }
        self.update(user, id, &status, Some(message_id))
    }

    /// `POST /{url}/Chat/{id}/Composing`.
    pub fn composing(&self, user: &WebUser, id: &str, active: bool) -> Result<Value, WebError> {
        let inst = self.instance(user, id)?;
        user.chat.composing(&inst.peer, active);
        Ok(json!({ "state": if active { "active" } else { "idle" } }))
    }
}

impl WebUser {
    /// The instance with `peer`, created in `state` when there is none.
    pub(super) fn instance_for(&self, peer: &str, state: InstanceState) -> String {
        self.with(|s| {
            if let Some(id) = s.by_peer.get(peer) {
                return id.clone();
            }
            let id = rcs::new_id()[..16].to_string();
            s.make_room_for_instance(self.caps.instances);
            s.order.push_back(id.clone());
            s.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    peer: peer.to_string(),
                    state,
                    conversation_id: None,
                    contribution_id: None,
                    messages: VecDeque::new(),
                },
            );
            s.by_peer.insert(peer.to_string(), id.clone());
            id
        })
    }

    pub(super) fn set_state(&self, id: &str, state: InstanceState) {
        self.with(|s| {
            if let Some(i) = s.instances.get_mut(id) {
                i.state = state;
            }
        });
    }

    pub(super) fn add_incoming(
        &self,
        id: &str,
        message_id: &str,
        sender: &str,
        text: &str,
        datetime: Option<String>,
    ) {
        self.add_incoming_with(id, message_id, sender, text, datetime, "text/plain", None);
    }

    /// [`Self::add_incoming`] of any content (a file: its name as `text`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_incoming_with(
        &self,
        id: &str,
        message_id: &str,
        sender: &str,
        text: &str,
        datetime: Option<String>,
        content_type: &str,
        file: Option<Value>,
    ) {
        let datetime = datetime.unwrap_or_else(rcs::now_datetime);
        self.with(|s| {
            s.push_media(
                Media {
                    instance_id: id.to_string(),
                    message_id: message_id.to_string(),
                    sender: sender.to_string(),
                    content_type: content_type.into(),
                    text: text.to_string(),
                    datetime: datetime.clone(),
                    file: file.clone(),
                },
                self.caps.media,
            );
            if let Some(i) = s.instances.get_mut(id) {
                push_record(
                    i,
                    MessageRecord {
                        message_id: message_id.to_string(),
                        incoming: true,
                        sender: sender.to_string(),
                        text: text.to_string(),
                        status: "received".into(),
                        datetime,
                        file,
                    },
                );
            }
        });
    }

    fn has_incoming(&self, id: &str, message_id: &str) -> bool {
        self.with(|s| {
            s.instances.get(id).is_some_and(|i| {
                i.messages
                    .iter()
                    .any(|m| m.incoming && m.message_id == message_id)
            })
        })
    }

    fn set_incoming_status(&self, id: &str, message_id: &str, status: &str) {
        self.with(|s| {
            if let Some(i) = s.instances.get_mut(id) {
                if let Some(m) = i
                    .messages
                    .iter_mut()
                    .find(|m| m.incoming && m.message_id == message_id)
                {
                    if m.status != "displayed" {
                        m.status = status.to_string();
                    }
                }
            }
        });
    }

    /// Removes waiting media of instance `id` (one message or all); returns their ids.
    fn ack_media(&self, id: &str, message_id: Option<&str>) -> Vec<String> {
        self.with(|s| {
            let mut acked = Vec::new();
            s.media.retain(|m| {
                let hit = m.instance_id == id && message_id.is_none_or(|x| x == m.message_id);
                if hit {
                    acked.push(m.message_id.clone());
                }
                !hit
            });
            acked
        })
    }
}

fn push_record(i: &mut Instance, m: MessageRecord) {
    i.messages.push_back(m);
    while i.messages.len() > KEEP_MESSAGES {
        i.messages.pop_front();
    }
}
