//! The RCS side of the UMS core (the diagram in [`super`]): capability query, chat message,
//! IMDNs, and the fallback to SMS/LMS when chat does not reach the recipient in time.
//! Socket-free like the rest of the core: the driver (`ums::rcs`) pulls [`RcsJob`]s and
//! reports what the network said; time is passed in.

use super::{invalid, Channel, Key, Output, Status, UmsCore, UmsError};
use crate::cpim::ImdnStatus;
use crate::rcs::chatbot::{MAX_SUGGESTIONS, MAX_SUGGESTION_TEXT};

/// One recipient to reach over RCS: ask its capabilities, then send it the chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcsJob {
    pub key: Key,
    /// The number, E.164 with `+`.
    pub to: String,
    pub text: String,
    /// Replies to suggest (a chatbot card when not empty).
    pub suggestions: Vec<String>,
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

    /// Chat messages not reported delivered by their fallback time go as SMS/LMS.
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        while self.deadlines.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, key)) = self.deadlines.pop_front() else {
                break;
            };
            let still_sent = self
                .messages
                .get(&key.message)
                .and_then(|m| m.recipients.get(key.index))
                .is_some_and(|r| r.status == Status::Sent && r.channel == Channel::Rcs);
            if still_sent {
                let secs = self.rcs.unwrap_or(0);
                out.extend(self.fall(
                    now,
                    &key,
                    format!("no RCS delivery report within {secs} s"),
                    true,
                ));
            }
        }
        out
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
