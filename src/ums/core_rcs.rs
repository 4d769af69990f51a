//! The RCS side of the UMS core (the diagram in [`super`]): capability query, chat message,
//! IMDNs, and the fallback to SMS/LMS when chat does not reach the recipient in time.
//! Socket-free like the rest of the core: the driver (`ums::rcs`) pulls [`RcsJob`]s and
//! reports what the network said; time is passed in.

use super::{invalid, Channel, Key, Output, Status, UmsCore, UmsError};
use crate::cpim::ImdnStatus;
use crate::rcs::chatbot::{MAX_SUGGESTIONS, MAX_SUGGESTION_TEXT};

/// How long the outcome of a revocation may take before the text goes as SMS anyway: T-IM
/// answers within its own wait for a delivery attempt in flight (10 s), plus the way back.
pub const REVOKE_WAIT_SECS: u64 = 15;

/// One recipient to reach over RCS: ask its capabilities, then send it the chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcsJob {
    pub key: Key,
    /// The number, E.164 with `+`.
    pub to: String,
    pub text: String,
    /// Replies to suggest (a chatbot card when not empty).
    pub suggestions: Vec<String>,
    /// Media to send as a file transfer (an id of the gateway's media store) instead of text.
    pub media: Option<String>,
}

/// Refuses suggested replies a chatbot card cannot carry (RCC.07: at most 11 chips of at most
/// 25 characters).
pub(super) fn check_suggestions(s: &[String]) -> Result<(), UmsError> {
    if s.len() > MAX_SUGGESTIONS {
        return Err(invalid(
            "too_many_suggestions",
            format!("at most {MAX_SUGGESTIONS} suggested replies"),
        ));
    }
    if let Some(bad) = s
        .iter()
        .find(|t| t.trim().is_empty() || t.chars().count() > MAX_SUGGESTION_TEXT)
    {
        return Err(invalid(
            "bad_suggestion",
            format!(
                "suggested reply '{}': 1 to {MAX_SUGGESTION_TEXT} characters",
                bad.chars().take(40).collect::<String>()
            ),
        ));
    }
    Ok(())
}

impl UmsCore {
    /// RCS is on (the chatbot identity registered; `Some(fallback_secs)`) or off. Going off,
    /// recipients not yet sent as chat go as SMS/LMS when they may, else fail.
    pub fn set_rcs(&mut self, now: u64, fallback_secs: Option<u64>) -> Vec<Output> {
        self.rcs = fallback_secs;
        let mut out = Vec::new();
        if fallback_secs.is_none() {
            let waiting: Vec<Key> = self.rcs_queue.drain(..).collect();
            for k in waiting {
                out.extend(self.fall(now, &k, "not reachable over RCS: RCS is off".into(), false));
            }
        }
        out
    }

    /// True while RCS is on.
    pub fn rcs_on(&self) -> bool {
        self.rcs.is_some()
    }

    /// The next recipient to reach over RCS, now in flight.
    pub fn next_rcs(&mut self) -> Option<RcsJob> {
        while let Some(key) = self.rcs_queue.pop_front() {
            let Some(m) = self.messages.get(&key.message) else {
                continue;
            };
            let Some(r) = m.recipients.get(key.index) else {
                continue;
            };
            if r.status != Status::Accepted || r.channel != Channel::Rcs {
                continue;
            }
            let job = RcsJob {
                key: key.clone(),
                to: r.to.clone(),
                text: m.text.clone(),
                suggestions: m.suggestions.clone(),
                media: m.media.clone(),
            };
            self.rcs_in_flight.insert(key);
            return Some(job);
        }
        None
    }

    /// The capability query found no chat (not registered, not RCS, no answer: `why`), or
    /// the chat message could not be handed to the client: SMS/LMS when allowed, else
    /// failed.
    pub fn rcs_unreachable(&mut self, now: u64, key: &Key, why: String) -> Vec<Output> {
        self.rcs_in_flight.remove(key);
        self.fall(now, key, format!("not reachable over RCS: {why}"), false)
    }

    /// The chat message went out as `chat_id`: sent, falling back at now + the fallback time
    /// unless an IMDN comes first.
    pub fn rcs_sent(&mut self, now: u64, key: &Key, chat_id: String) -> Vec<Output> {
        if !self.rcs_in_flight.remove(key) {
            return Vec::new();
        }
        let at = now + self.rcs.unwrap_or(0);
        let Some(r) = self
            .messages
            .get_mut(&key.message)
            .and_then(|m| m.recipients.get_mut(key.index))
        else {
            return Vec::new();
        };
        r.chat_id = Some(chat_id.clone());
        r.attempts += 1;
        if r.fallback.is_some() {
            r.fallback_at = Some(at);
            self.deadlines.push_back((at, key.clone()));
        }
        self.by_chat_id.insert(chat_id, key.clone());
        self.set(now, key, Status::Sent, String::new())
    }

    /// What the recipient's client (or the network for it) reported on chat message `chat_id`.
    /// "failed" falls back (or fails an RCS-only recipient). A report on a recipient that fell
    /// back already is noted in the log only: the SMS is under way.
    pub fn rcs_report(&mut self, now: u64, chat_id: &str, status: ImdnStatus) -> Vec<Output> {
        let Some(key) = self.by_chat_id.get(chat_id).cloned() else {
            return Vec::new();
        };
        match status {
            ImdnStatus::Delivered => self.set(now, &key, Status::Delivered, String::new()),
            ImdnStatus::Displayed => self.set(now, &key, Status::Read, String::new()),
            ImdnStatus::Failed => {
                self.by_chat_id.remove(chat_id);
                self.fall(now, &key, "RCS delivery failed (IMDN)".into(), true)
            }
        }
    }

    /// The chat message could not be sent (the session failed).
    pub fn rcs_send_failed(&mut self, now: u64, chat_id: &str, why: String) -> Vec<Output> {
        let Some(key) = self.by_chat_id.remove(chat_id) else {
            return Vec::new();
        };
        self.fall(now, &key, format!("RCS send failed: {why}"), true)
    }

    /// Chat messages not reported delivered by their fallback time are revoked first (GSMA
    /// RCC.07: the recipient's messaging server takes them out of its store, so the phone
    /// never gets the text twice), then go as SMS/LMS once the revocation succeeds
    /// ([`UmsCore::rcs_revoked`]) or its outcome does not come within [`REVOKE_WAIT_SECS`].
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let secs = self.rcs.unwrap_or(0);
        while self.deadlines.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, key)) = self.deadlines.pop_front() else {
                break;
            };
            let Some(r) = self
                .messages
                .get_mut(&key.message)
                .and_then(|m| m.recipients.get_mut(key.index))
                .filter(|r| r.status == Status::Sent && r.channel == Channel::Rcs)
            else {
                continue;
            };
            match (r.revoking_until, r.fallback_at) {
                (Some(until), _) if until <= now => out.extend(self.fall(
                    now,
                    &key,
                    format!(
                        "no RCS delivery report within {secs} s; no answer to the revocation \
                         within {REVOKE_WAIT_SECS} s (the chat message may still arrive)"
                    ),
                    true,
                )),
                (Some(_), _) => {}
                // Not revoked: no fallback any more.
                (None, None) => {}
                (None, Some(_)) if r.chat_id.is_some() => {
                    let until = now + REVOKE_WAIT_SECS;
                    r.revoking_until = Some(until);
                    r.detail = format!(
                        "no RCS delivery report within {secs} s: revoking the chat message"
                    );
                    r.updated = now;
                    let at = self.deadlines.partition_point(|(t, _)| *t <= until);
                    self.deadlines.insert(at, (until, key.clone()));
                    self.revoke_queue.push_back(key.clone());
                    out.push(Output::Store(key.message.clone()));
                }
                (None, Some(_)) => out.extend(self.fall(
                    now,
                    &key,
                    format!("no RCS delivery report within {secs} s"),
                    true,
                )),
            }
        }
        out
    }

    /// The next chat message to revoke: (recipient number, chat message id).
    pub fn next_revoke(&mut self) -> Option<(String, String)> {
        while let Some(key) = self.revoke_queue.pop_front() {
            let Some(r) = self
                .messages
                .get(&key.message)
                .and_then(|m| m.recipients.get(key.index))
            else {
                continue;
            };
            if let (Status::Sent, Some(_), Some(id)) = (r.status, r.revoking_until, &r.chat_id) {
                return Some((r.to.clone(), id.clone()));
            }
        }
        None
    }

    /// The outcome of revoking chat message `chat_id`: revoked, it goes as SMS/LMS; not (the
    /// recipient has it or is taking it), no fallback: its IMDN is awaited.
    pub fn rcs_revoked(&mut self, now: u64, chat_id: &str, revoked: bool) -> Vec<Output> {
        let Some(key) = self.by_chat_id.get(chat_id).cloned() else {
            return Vec::new();
        };
        let secs = self.rcs.unwrap_or(0);
        let Some(r) = self
            .messages
            .get_mut(&key.message)
            .and_then(|m| m.recipients.get_mut(key.index))
            .filter(|r| r.status == Status::Sent && r.revoking_until.is_some())
        else {
            return Vec::new();
        };
        if revoked {
            return self.fall(
                now,
                &key,
                format!("no RCS delivery report within {secs} s; the chat message was revoked"),
                true,
            );
        }
        r.revoking_until = None;
        r.fallback_at = None;
        r.detail = format!(
            "no RCS delivery report within {secs} s; not revoked (delivered or being \
             delivered over RCS): no fallback"
        );
        r.updated = now;
        vec![Output::Store(key.message.clone())]
    }

    /// The revocation request for `chat_id` was not taken (`why`): the text goes as SMS/LMS
    /// now (the chat message may still arrive).
    pub fn rcs_revoke_unsent(&mut self, now: u64, chat_id: &str, why: &str) -> Vec<Output> {
        let Some(key) = self.by_chat_id.get(chat_id).cloned() else {
            return Vec::new();
        };
        let secs = self.rcs.unwrap_or(0);
        self.fall(
            now,
            &key,
            format!(
                "no RCS delivery report within {secs} s; the revocation was not taken ({why}): \
                 the chat message may still arrive"
            ),
            true,
        )
    }

    /// True when chat message `chat_id` is one of ours an IMDN may be about.
    pub fn rcs_knows(&self, chat_id: &str) -> bool {
        self.by_chat_id.contains_key(chat_id)
    }

    /// Recipients waiting for a capability query.
    pub fn rcs_waiting(&self) -> usize {
        self.rcs_queue.len()
    }

    /// The recipient goes as its fallback channel (queued for the SMS centre), or fails when
    /// it has none. `tried`: a chat message was sent first (it "fell back").
    fn fall(&mut self, now: u64, key: &Key, why: String, tried: bool) -> Vec<Output> {
        let Some(r) = self
            .messages
            .get_mut(&key.message)
            .and_then(|m| m.recipients.get_mut(key.index))
        else {
            return Vec::new();
        };
        if r.status.is_final() || r.channel != Channel::Rcs {
            return Vec::new();
        }
        let Some(ch) = r.fallback else {
            return self.set(now, key, Status::Failed, why);
        };
        if let Some(id) = r.chat_id.take() {
            self.by_chat_id.remove(&id);
        }
        r.channel = ch;
        r.status = Status::Accepted;
        r.fell_back = tried;
        r.fallback_at = None;
        r.revoking_until = None;
        r.detail = why;
        r.updated = now;
        self.queue.push_back(key.clone());
        let mut out = vec![Output::Store(key.message.clone())];
        if tried {
            out.push(Output::Webhook(serde_json::json!({
                "type": "status",
                "message_id": key.message,
                "to": r.to,
                "status": "fell_back",
                "channel": ch,
                "fell_back": true,
                "detail": r.detail,
            })));
        }
        out
    }
}

#[cfg(test)]
#[path = "core_rcs_tests.rs"]
mod tests;
