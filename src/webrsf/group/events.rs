//! The UE's group events (called from `ims.rs`): invitations, sessions, messages, reports
//! and roster NOTIFYs turned into the gateway's state and notifications.

use super::*;

impl Gateway {
    /// The focus invited us (From: the group): joined at once.
    pub(in crate::webrsf) fn on_group_invited(
        &self,
        user: &WebUser,
        group: &str,
        subject: Option<String>,
    ) {
        let uri = canonical(group);
        let id = user.with(|s| {
            let id = s
                .groups
                .ensure(&uri, subject.as_deref(), GroupState::Joining);
            if let Some(g) = s.groups.by_id.get_mut(&id) {
                g.state = GroupState::Joining;
            }
            id
        });
        user.chat.accept(&uri, false);
        self.emit_group(
            user,
            "groupChatEventNotification",
            &id,
            json!({ "status": "invited", "subject": subject.unwrap_or_default() }),
        );
    }

    /// Our session with a group changed; false when `peer` is no group of ours.
    pub(in crate::webrsf) fn on_group_session(
        &self,
        user: &WebUser,
        peer: &str,
        up: bool,
        status: &str,
        reason: &str,
    ) -> bool {
        let uri = canonical(peer);
        let Some((id, was, now)) = user.with(|s| {
            let id = s.groups.id_of_uri(&uri)?;
            let g = s.groups.by_id.get_mut(&id)?;
            let was = g.state;
            g.state = if up {
                GroupState::Active
            } else if reason == "idle" {
                GroupState::Idle
            } else {
                GroupState::Closed
            };
            let now = g.state;
            Some((id, was, now))
        }) else {
            return false;
        };
        if up && was != GroupState::Active {
            self.watch_roster(user, &uri);
        }
        // Already in (the creator's `created` + `joined` were said when its create
        // returned): no second `joined`.
        if up && was == GroupState::Active {
            return true;
        }
        // A group we left needs no second "closed"; a refused rejoin is news.
        if was == GroupState::Closed && status == "closed" {
            return true;
        }
        let status = match now {
            GroupState::Active => "joined",
            GroupState::Idle => "idle",
            _ => status,
        };
        let mut data = json!({ "status": status });
        if !reason.is_empty() {
            data["reason"] = Value::String(reason.to_string());
        }
        self.emit_group(user, "groupChatEventNotification", &id, data);
        true
    }

    /// A member's message to a group.
    pub(in crate::webrsf) fn on_group_message(
        &self,
        user: &WebUser,
        group: &str,
        from: &str,
        text: &str,
        message_id: &str,
        file: Option<Value>,
    ) {
        let uri = canonical(group);
        let sender = self.web_id(from);
        let datetime = rcs::now_datetime();
        let id = user.with(|s| {
            let id = s.groups.ensure(&uri, None, GroupState::Active);
            if let Some(g) = s.groups.by_id.get_mut(&id) {
                g.state = GroupState::Active;
                push(
                    g,
                    GroupRecord {
                        message_id: message_id.to_string(),
                        incoming: true,
                        sender: sender.clone(),
                        text: text.to_string(),
                        datetime: datetime.clone(),
                        status: "received".into(),
                        delivered_to: BTreeSet::new(),
                        read_by: BTreeSet::new(),
                        file: file.clone(),
                    },
                );
            }
            id
        });
        let mut data = json!({
            "message_id": message_id,
            "sender": sender,
            "text": text,
            "datetime": datetime,
        });
        if let Some(f) = file {
            data["file"] = f;
        }
        self.emit_group(user, "chatMessageNotification", &id, data);
    }

    /// A report on a message; false when it is not one of our group messages.
    pub(in crate::webrsf) fn on_group_report(
        &self,
        user: &WebUser,
        message_id: &str,
        status: &str,
        reporter: &str,
    ) -> bool {
        let reporter = self.web_id(reporter);
        let Some(id) = user.with(|s| {
            let id = s.groups.ours.get(message_id)?.clone();
            let g = s.groups.by_id.get_mut(&id)?;
            if let Some(m) = g.messages.iter_mut().find(|m| m.message_id == message_id) {
                match status {
                    "delivered" => {
                        m.delivered_to.insert(reporter.clone());
                    }
                    "displayed" => {
                        m.delivered_to.insert(reporter.clone());
                        m.read_by.insert(reporter.clone());
                    }
                    _ => {}
                }
                let rank = |s: &str| match s {
                    "sent" => 1,
                    "failed" => 2,
                    "delivered" => 3,
                    "displayed" => 4,
                    _ => 0,
                };
                if rank(status) > rank(&m.status) {
                    m.status = status.to_string();
                }
            }
            Some(id)
        }) else {
            return false;
        };
        self.emit_group(
            user,
            "messageStatusNotification",
            &id,
            json!({ "message_id": message_id, "status": status, "sender": reporter }),
        );
        true
    }

    /// What a roster NOTIFY says: the roster updated, one `participantStatusNotification`
    /// per member whose state changed.
    pub(in crate::webrsf) fn on_roster(&self, user: &WebUser, ev: RosterEvent) {
        let (group, info) = match ev {
            RosterEvent::Info { group, info } => (group, info),
            RosterEvent::Ended { group, reason } => {
                tracing::info!(user = %user.aor, %group, %reason, "roster subscription ended");
                return;
            }
        };
        let uri = canonical(&group);
        let Some((id, changed)) = user.with(|s| {
            let id = s.groups.id_of_uri(&uri)?;
            let g = s.groups.by_id.get_mut(&id)?;
            Some((id, apply_roster(g, &info)))
        }) else {
            return;
        };
        for (aor, p) in changed {
            let data = match p {
                Some(p) => json!({
                    "participant": self.web_id(&aor),
                    "address": aor,
                    "status": p.status,
                    "role": p.role,
                    "departure": p.departure,
                }),
                None => json!({
                    "participant": self.web_id(&aor),
                    "address": aor,
                    "status": "deleted",
                }),
            };
            self.emit_group(user, "participantStatusNotification", &id, data);
        }
    }
}

/// Applies a conference-info document to a group's roster (RFC 4575 §4.2: a full document
/// replaces it, a partial one changes the users it names, `deleted` ones go), except what a
/// newer document already said about a member (the focus numbers its documents per group, and
/// two NOTIFYs may cross: a full state computed before a join can arrive after the join's
/// partial one); returns the members whose state changed (None: gone).
pub(super) fn apply_roster(
    g: &mut GroupChat,
    info: &ConferenceInfo,
) -> Vec<(String, Option<Participant>)> {
    let v = info.version;
    let newer = |g: &GroupChat, aor: &str| g.versions.get(aor).is_some_and(|&x| x > v);
    let named: BTreeSet<String> = info
        .users
        .iter()
        .take(MAX_ROSTER)
        .map(|u| canonical(&u.entity))
        .collect();
    let mut next = g.participants.clone();
    if info.state == State::Full {
        // Members this document leaves out are gone, unless a newer one told of them.
        next.retain(|aor, _| named.contains(aor) || newer(g, aor));
    }
    if let Some(s) = &info.subject {
        if g.subject.is_empty() {
            g.subject = s.clone();
        }
    }
    for u in info.users.iter().take(MAX_ROSTER) {
        let aor = canonical(&u.entity);
        if newer(g, &aor) {
            continue;
        }
        g.versions.insert(aor.clone(), v);
        if u.state == State::Deleted {
            next.remove(&aor);
            continue;
        }
        let old = g.participants.get(&aor);
        let status = u
            .status
            .map(|s| s.as_str().to_string())
            .or_else(|| old.map(|o| o.status.clone()))
            .unwrap_or_else(|| Status::Connected.as_str().to_string());
        let role = u
            .roles
            .first()
            .cloned()
            .or_else(|| old.and_then(|o| o.role.clone()));
        next.insert(
            aor,
            Participant {
                status,
                role,
                departure: u.departure.map(|d| d.as_str().to_string()),
            },
        );
    }
    while next.len() > MAX_ROSTER {
        let last = next.keys().next_back().cloned();
        if let Some(k) = last {
            next.remove(&k);
        }
    }
    if g.versions.len() > 2 * MAX_ROSTER {
        // Forget what we knew of members long gone.
        g.versions.retain(|aor, _| next.contains_key(aor));
    }
    let mut changed = Vec::new();
    for (aor, p) in &next {
        if g.participants.get(aor) != Some(p) {
            changed.push((aor.clone(), Some(p.clone())));
        }
    }
    for aor in g.participants.keys() {
        if !next.contains_key(aor) {
            changed.push((aor.clone(), None));
        }
    }
    g.participants = next;
    changed
}
