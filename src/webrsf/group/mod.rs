//! Group chats of a web user (GSMA RCC.07 §3.4 group chat through the CONF focus; the REST
//! resources follow OMA RESTful Network API for Chat 1.0 §5.7 "group chat", under WebRSF's
//! own prefix): the groups a user is in — made with `POST Group` (an INVITE to the conference
//! factory with the members in a recipient list, RFC 5366) or joined when the focus invites
//! them — their conversations with each member's disposition reports ("read by"), and their
//! rosters, read from the conference event package (RFC 4575) through the UE's
//! [`crate::ue::chat::roster`] subscriptions.
//!
//! | SIP / MSRP (IMS side) | web side |
//! |---|---|
//! | (client) `POST Group` `{subject, participants}` | INVITE to the factory, MSRP bind; roster SUBSCRIBE |
//! | INVITE from the focus (From: the group) | accepted at once (RCC.07's auto-accept of group chats); event `groupChatEventNotification` `invited`, then `joined` |
//! | MSRP SEND from the focus (CPIM From: the writer) | event `chatMessageNotification` (the message in it); IMDN delivered by the UE |
//! | IMDN from a member about our message | event `messageStatusNotification` (`sender`: the member) |
//! | (client) `PUT Group/{id}/Messages/{msgId}/Status` displayed | IMDN displayed to the writer |
//! | NOTIFY `conference-info` (full, then partial) | `GET Group/{id}/Participants`, event `participantStatusNotification` per changed member |
//! | (client) `DELETE Group/{id}` | BYE to the focus (leaves the group) |
//! | (client) `POST|DELETE Group/{id}/Participants` | not yet: REFER to the focus (RFC 4579 §5.5), 501 until the UE has it |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{json, Value};

use super::{Gateway, WebError, WebUser};
use crate::conf::conference_info::{ConferenceInfo, State, Status};
use crate::im::rcs;
use crate::ue::chat::roster::RosterEvent;
use crate::ue::chat::{SessionIds, CONFERENCE_FACTORY};

/// Groups a web user has at most; past it, the oldest one they left goes (else the oldest),
/// and `POST Group` is refused when none has been left.
pub const MAX_GROUPS_PER_USER: usize = 64;
/// Participants one `POST Group` or `POST Group/{id}/Participants` may name.
pub const MAX_PARTICIPANTS_PER_REQUEST: usize = 50;
/// Members a roster keeps (RCC.07's default maximum group size is 100).
pub const MAX_ROSTER: usize = 256;
/// The longest subject, in characters.
pub const MAX_SUBJECT: usize = 256;
/// Messages kept per group.
const KEEP_GROUP_MESSAGES: usize = super::KEEP_MESSAGES;
/// Our group message ids remembered for matching reports.
const KEEP_GROUP_OURS: usize = super::limits::KEEP_OURS;

/// A group's state as web clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// Being made (waiting for the focus) or joined (waiting for the MSRP leg).
    Joining,
    /// Messages flow.
    Active,
    /// We left, or the focus ended our session (a message sent rejoins).
    Closed,
    /// The focus ended the sessions of a group that was quiet (RCC.07 idle teardown): still
    /// a member; a message sent restarts the group.
    Idle,
}

impl GroupState {
    fn as_str(self) -> &'static str {
        match self {
            GroupState::Joining => "joining",
            GroupState::Active => "active",
            GroupState::Closed => "closed",
            GroupState::Idle => "idle",
        }
    }
}

/// A member as the roster says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// `connected`, `pending`, `disconnected`...
    pub status: String,
    /// `chairman` or `participant`.
    pub role: Option<String>,
    /// How they left (`departed`, `booted`...), when they did.
    pub departure: Option<String>,
}

/// One message of a group conversation.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    /// imdn.Message-ID.
    pub message_id: String,
    /// Ours or a member's.
    pub incoming: bool,
    /// Writer in web form.
    pub sender: String,
    /// The text.
    pub text: String,
    /// When the gateway saw it.
    pub datetime: String,
    /// Ours: `sent`, `delivered` (by someone), `displayed` (by someone), `failed`; theirs:
    /// `received`, `displayed`.
    pub status: String,
    /// Ours: members who reported "delivered" (web form).
    pub delivered_to: BTreeSet<String>,
    /// Ours: members who reported "displayed" (web form).
    pub read_by: BTreeSet<String>,
    /// A file as the page sees it (`text` is then its name).
    pub file: Option<Value>,
}

/// One group chat of a user.
#[derive(Debug, Clone)]
pub struct GroupChat {
    /// The resource id: the conference URI's user part (`chat-GID`), the same for every member.
    pub id: String,
    /// The conference URI.
    pub uri: String,
    /// Subject.
    pub subject: String,
    /// State.
    pub state: GroupState,
    /// The roster by member AoR (from the conference NOTIFYs; the invited list until then).
    pub participants: BTreeMap<String, Participant>,
    /// The version of the conference-info document that last said something about each
    /// member (those deleted too): NOTIFYs sent one after the other may arrive the other way
    /// round, and an older document must not undo a newer one (RFC 4575 §4.2).
    versions: BTreeMap<String, u32>,
    /// The conversation, oldest first (bounded).
    pub messages: VecDeque<GroupRecord>,
}

/// A user's groups.
#[derive(Debug, Default)]
pub(super) struct Groups {
    by_id: HashMap<String, GroupChat>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    /// Our message id -> group id.
    ours: HashMap<String, String>,
    ours_order: VecDeque<String>,
}

impl Groups {
    fn id_of_uri(&self, uri: &str) -> Option<String> {
        self.by_id
            .values()
            .find(|g| g.uri == uri)
            .map(|g| g.id.clone())
    }

    /// Makes room for one more group: the oldest closed group goes, else (`force`) the oldest.
    fn make_room(&mut self, force: bool) -> bool {
        while self.by_id.len() >= MAX_GROUPS_PER_USER {
            let victim = self.order.iter().position(|id| {
                self.by_id
                    .get(id)
                    .is_none_or(|g| g.state == GroupState::Closed)
            });
            let victim = match (victim, force) {
                (Some(v), _) => v,
                (None, true) => 0,
                (None, false) => return false,
            };
            let Some(id) = self.order.remove(victim) else {
                return false;
            };
            self.by_id.remove(&id);
            self.ours.retain(|_, g| *g != id);
            let ours = &self.ours;
            self.ours_order.retain(|m| ours.contains_key(m));
        }
        true
    }

    /// The group at `uri`, made (with `subject`) when there is none.
    fn ensure(&mut self, uri: &str, subject: Option<&str>, state: GroupState) -> String {
        if let Some(id) = self.id_of_uri(uri) {
            if let (Some(g), Some(s)) = (self.by_id.get_mut(&id), subject) {
                if g.subject.is_empty() {
                    g.subject = s.to_string();
                }
            }
            return id;
        }
        self.make_room(true);
        let id = group_id_of(uri).unwrap_or_else(|| rcs::new_id()[..16].to_string());
        self.order.push_back(id.clone());
        self.by_id.insert(
            id.clone(),
            GroupChat {
                id: id.clone(),
                uri: uri.to_string(),
                subject: subject.unwrap_or_default().to_string(),
                state,
                participants: BTreeMap::new(),
                versions: BTreeMap::new(),
                messages: VecDeque::new(),
            },
        );
        id
    }

    fn remember_ours(&mut self, message_id: String, group_id: String) {
        if self.ours.insert(message_id.clone(), group_id).is_none() {
            self.ours_order.push_back(message_id);
        }
        while self.ours_order.len() > KEEP_GROUP_OURS {
            if let Some(old) = self.ours_order.pop_front() {
                self.ours.remove(&old);
            }
        }
    }
}

/// The group id of a conference URI (`sip:chat-GID@DOMAIN` -> `chat-GID`): the lab's focus
/// names its groups so (RCC.07 leaves the form to the service provider). `None` for any
/// other URI, the conference factory included.
pub fn group_id_of(uri: &str) -> Option<String> {
    let u = crate::sip::Uri::parse(uri).ok()?;
    let user = u.user()?;
    (user.starts_with("chat-") && user != CONFERENCE_FACTORY && user.len() > 5)
        .then(|| user.to_string())
}

/// A conference URI in one spelling (its AoR).
fn canonical(uri: &str) -> String {
    crate::sip::Uri::parse(uri)
        .map(|u| u.aor())
        .unwrap_or_else(|_| uri.to_string())
}

fn push(g: &mut GroupChat, m: GroupRecord) {
    if g.messages.iter().any(|x| x.message_id == m.message_id) {
        return; // a copy the focus sent again
    }
    g.messages.push_back(m);
    while g.messages.len() > KEEP_GROUP_MESSAGES {
        g.messages.pop_front();
    }
}

impl Gateway {
    /// The URL of a group (`.../webrsf/v1/{userId}/Group/{groupId}`).
    pub fn group_url(&self, user_id: &str, group_id: &str) -> String {
        format!("{}/Group/{group_id}", self.user_url(user_id))
    }

    fn emit_group(&self, user: &WebUser, kind: &str, group_id: &str, mut data: Value) {
        data["group_id"] = Value::String(group_id.to_string());
        // OMA's notifications name the session: ours is the group's resource id.
        data["sessionId"] = Value::String(group_id.to_string());
        let url = self.group_url(&user.user_id, group_id);
        self.emit_at(user, kind, &url, data);
    }

    /// A group of `user` (404 when it is not theirs).
    pub fn group(&self, user: &WebUser, id: &str) -> Result<GroupChat, WebError> {
        user.with(|s| s.groups.by_id.get(id).cloned())
            .ok_or_else(|| WebError::NotFound(format!("no group chat '{id}'")))
    }

    /// A group as JSON (`GET Group/{id}`, and each of `GET Group`).
    pub fn group_json(&self, user: &WebUser, g: &GroupChat) -> Value {
        json!({
            "group_id": g.id,
            "resourceURL": self.group_url(&user.user_id, &g.id),
            "uri": g.uri,
            "subject": g.subject,
            "state": g.state.as_str(),
            "participants": self.participants_json(g),
        })
    }

    /// The roster as JSON: `[{"user","address","status","role","departure"}]`.
    pub fn participants_json(&self, g: &GroupChat) -> Value {
        Value::Array(
            g.participants
                .iter()
                .map(|(uri, p)| {
                    json!({
                        "user": self.web_id(uri),
                        "address": uri,
                        "status": p.status,
                        "role": p.role,
                        "departure": p.departure,
                    })
                })
                .collect(),
        )
    }

    /// `GET Group`: the user's groups, oldest first.
    pub fn groups(&self, user: &WebUser) -> Value {
        let v: Vec<GroupChat> = user.with(|s| {
            s.groups
                .order
                .iter()
                .filter_map(|id| s.groups.by_id.get(id).cloned())
                .collect()
        });
        Value::Array(v.iter().map(|g| self.group_json(user, g)).collect())
    }

    /// `POST Group`: makes a group with `members` (user ids or URIs) through the focus; the
    /// creator is subscribed to its roster. Returns the group.
    pub async fn create_group(
        &self,
        user: &WebUser,
        subject: &str,
        members: &[String],
    ) -> Result<GroupChat, WebError> {
        let mut uris = Vec::new();
        for m in members {
            let aor = self.aor_of(m)?;
            if aor == user.aor {
                continue; // the creator is in the group anyway
            }
            if !uris.contains(&aor) {
                uris.push(aor);
            }
        }
        if uris.is_empty() {
            return Err(WebError::BadRequest(
                "a group needs at least one participant besides you".into(),
            ));
        }
        if !user.with(|s| s.groups.make_room(false)) {
            return Err(WebError::Conflict(format!(
                "you are in {MAX_GROUPS_PER_USER} groups, the most a web user may be in: leave one first"
            )));
        }
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let uri = match tokio::time::timeout(
            std::time::Duration::from_secs(15),
            user.chat.create_group(subject, &refs),
        )
        .await
        {
            Ok(Ok(uri)) => canonical(&uri),
            Ok(Err(why)) => {
                return Err(match why.status() {
                    Some(403) | Some(400) | Some(404) | Some(413) | Some(488) => {
                        WebError::BadRequest(format!("the group chat service refused: {why}"))
                    }
                    _ => WebError::BadGateway(format!("the group was not made: {why}")),
                })
            }
            Err(_) => {
                return Err(WebError::Timeout(
                    "no answer from the group chat service".into(),
                ))
            }
        };
        let id = user.with(|s| {
            let id = s.groups.ensure(&uri, Some(subject), GroupState::Active);
            if let Some(g) = s.groups.by_id.get_mut(&id) {
                g.state = GroupState::Active;
                g.participants
                    .entry(user.aor.clone())
                    .or_insert(Participant {
                        status: "connected".into(),
                        role: Some("chairman".into()),
                        departure: None,
                    });
                for m in &uris {
                    g.participants.entry(m.clone()).or_insert(Participant {
                        status: "pending".into(),
                        role: Some("participant".into()),
                        departure: None,
                    });
                }
            }
            id
        });
        self.watch_roster(user, &uri);
        self.emit_group(
            user,
            "groupChatEventNotification",
            &id,
            json!({ "status": "created", "subject": subject }),
        );
        // The create returned: the focus answered 200, our session is up. Said here because
        // the UE's own report of that session may have come before the group was recorded
        // above (then it found no group to report on).
        self.emit_group(
            user,
            "groupChatEventNotification",
            &id,
            json!({ "status": "joined" }),
        );
        self.group(user, &id)
    }

    /// `DELETE Group/{id}`: leaves the group (BYE to the focus).
    pub fn leave_group(&self, user: &WebUser, id: &str) -> Result<Value, WebError> {
        let g = self.group(user, id)?;
        user.chat.close(&g.uri);
        self.unwatch_roster(user, &g.uri);
        user.with(|s| {
            if let Some(g) = s.groups.by_id.get_mut(id) {
                g.state = GroupState::Closed;
            }
        });
        Ok(json!({ "group_id": id, "state": "closed" }))
    }

    /// `GET Group/{id}/Messages`: the conversation, each of ours with who got and read it.
    pub fn group_messages(&self, user: &WebUser, id: &str) -> Result<Value, WebError> {
        let g = self.group(user, id)?;
        Ok(Value::Array(
            g.messages
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "message_id": m.message_id,
                        "direction": if m.incoming { "in" } else { "out" },
                        "sender": m.sender,
                        "text": m.text,
                        "status": m.status,
                        "datetime": m.datetime,
                        "delivered_to": m.delivered_to,
                        "read_by": m.read_by,
                    });
                    if let Some(f) = &m.file {
                        v["file"] = f.clone();
                    }
                    v
                })
                .collect(),
        ))
    }

    /// `POST Group/{id}/Messages`: sends to the group over MSRP (a group whose session ended
    /// is rejoined by the INVITE the UE sends to its URI).
    pub async fn send_group(
        &self,
        user: &WebUser,
        id: &str,
        text: &str,
    ) -> Result<String, WebError> {
        let g = self.group(user, id)?;
        let mid = user
            .chat
            .send_with(
                &g.uri,
                text.as_bytes(),
                "text/plain;charset=UTF-8",
                SessionIds::default(),
            )
            .await;
        if mid.is_empty() {
            return Err(WebError::Unavailable("the chat client stopped".into()));
        }
        self.record_group_sent(user, id, &mid, text, None);
        // A rejoined group's roster is subscribed again once its session is up.
        Ok(mid)
    }

    /// Records a message of ours to group `id` (`file`: a file, `text` its name), for its
    /// reports and for reloads.
    pub(in crate::webrsf) fn record_group_sent(
        &self,
        user: &WebUser,
        id: &str,
        mid: &str,
        text: &str,
        file: Option<Value>,
    ) {
        user.with(|s| {
            s.groups.remember_ours(mid.to_string(), id.to_string());
            if let Some(g) = s.groups.by_id.get_mut(id) {
                if matches!(g.state, GroupState::Closed | GroupState::Idle) {
                    g.state = GroupState::Joining;
                }
                push(
                    g,
                    GroupRecord {
                        message_id: mid.to_string(),
                        incoming: false,
                        sender: user.user_id.clone(),
                        text: text.to_string(),
                        datetime: rcs::now_datetime(),
                        status: "sent".into(),
                        delivered_to: BTreeSet::new(),
                        read_by: BTreeSet::new(),
                        file,
                    },
                );
            }
        });
        self.replay_early_reports(user, mid, true);
    }

    /// `PUT Group/{id}/Messages/{msgId}/Status`: `displayed` sends the IMDN to the writer
    /// (`delivered` went when the message came).
    pub fn group_message_status(
        &self,
        user: &WebUser,
        id: &str,
        message_id: &str,
        status: &str,
    ) -> Result<Value, WebError> {
        self.group(user, id)?;
        let status = status.to_ascii_lowercase();
        if status != "displayed" && status != "delivered" {
            return Err(WebError::BadRequest(format!(
                "unknown status '{status}' (delivered, displayed)"
            )));
        }
        let found = user.with(|s| {
            let g = s.groups.by_id.get_mut(id)?;
            let m = g
                .messages
                .iter_mut()
                .find(|m| m.incoming && m.message_id == message_id)?;
            let first = status == "displayed" && m.status != "displayed";
            if first {
                m.status = "displayed".into();
            }
            Some(first)
        });
        match found {
            None => Err(WebError::NotFound(format!(
                "no received message '{message_id}' in this group"
            ))),
            Some(first) => {
                if first {
                    user.chat.displayed(message_id);
                }
                Ok(json!({ "message_id": message_id, "status": status }))
            }
        }
    }

    /// `POST Group/{id}/Participants` and `DELETE Group/{id}/Participants/{p}`: checked, then
    /// refused with 501 — adding and removing members is a REFER to the focus (RFC 4579 §5.5,
    /// RCC.07 §3.4.4.1.4), which the UE does not send yet.
    pub async fn change_participants(
        &self,
        user: &WebUser,
        id: &str,
        add: &[String],
        remove: Option<&str>,
    ) -> Result<Value, WebError> {
        let g = self.group(user, id)?;
        let mut uris = Vec::new();
        for a in add {
            uris.push(self.aor_of(a)?);
        }
        let removed = match remove {
            Some(r) => Some(self.aor_of(r)?),
            None => None,
        };
        // A REFER to the focus (RFC 4579 §5.5, §5.6); the members list follows from the
        // roster NOTIFYs.
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let asked = async {
            match &removed {
                Some(r) => user.chat.remove_from_group(&g.uri, r).await,
                None => user.chat.add_to_group(&g.uri, &refs).await,
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(15), asked).await {
            Ok(Ok(())) => Ok(json!({
                "group_id": g.id,
                "added": uris,
                "removed": removed,
            })),
            Ok(Err(why)) => Err(match why.status() {
                Some(403) => WebError::Forbidden(format!("the group chat service refused: {why}")),
                Some(400) | Some(404) | Some(413) => {
                    WebError::BadRequest(format!("the group chat service refused: {why}"))
                }
                _ => WebError::BadGateway(format!("the change was not made: {why}")),
            }),
            Err(_) => Err(WebError::Timeout(
                "no answer from the group chat service".into(),
            )),
        }
    }

    fn watch_roster(&self, user: &WebUser, uri: &str) {
        if let Ok(r) = user.roster.lock() {
            if let Some(r) = r.as_ref() {
                r.watch(uri);
            }
        }
    }

    fn unwatch_roster(&self, user: &WebUser, uri: &str) {
        if let Ok(r) = user.roster.lock() {
            if let Some(r) = r.as_ref() {
                r.unwatch(uri);
            }
        }
    }
}

mod events;
#[cfg(test)]
mod tests;
