//! The notification channel's source (paper seed 000 §3, figure 4 steps 1-2): each web
//! user's event log with its replay cursor, the watches that wake open channels, the count of
//! channels a user holds, and the push webhook used while none is open. The channel's HTTP
//! forms (chunked streaming, Server-Sent Events, WebSocket) are in [`super::http`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::{http, Gateway, WebUser};

/// One event of a user's notification channel; `id` is the replay cursor.
#[derive(Debug, Clone)]
pub struct Event {
    /// Increasing per user, from 1.
    pub id: u64,
    /// `chat`, `messageNotification`, ...
    pub kind: String,
    /// The whole JSON object sent on the channel (it carries `id` too).
    pub json: Value,
}

impl Gateway {
    /// Appends an event to the user's log, wakes their channels, and pushes it to their
    /// webhook when no channel is open.
    pub(super) fn emit(&self, user: &WebUser, kind: &str, instance_id: &str, data: Value) {
        let instance = self.instance_url(&user.user_id, instance_id);
        self.emit_at(user, kind, &instance, data)
    }

    /// [`Self::emit`] about the resource at `instance` (a URL), not a chat instance.
    pub(super) fn emit_at(&self, user: &WebUser, kind: &str, instance: &str, data: Value) {
        let ev = user.with(|s| {
            s.next_id += 1;
            let ev = Event {
                id: s.next_id,
                kind: kind.to_string(),
                json: json!({
                    "id": s.next_id,
                    "type": kind,
                    "instance": instance,
                    "data": data,
                }),
            };
            s.events.push_back(ev.clone());
            while s.events.len() > self.cfg.event_buffer.max(1) {
                s.events.pop_front();
            }
            ev
        });
        user.last_event.send_replace(ev.id);
        if user.channels.load(Ordering::SeqCst) == 0 {
            if let Some(url) = self.cfg.webhooks.get(&user.user_id) {
                let body = json!({ "user": user.user_id, "event": ev.json }).to_string();
                let url = url.clone();
                tokio::spawn(async move {
                    if let Err(e) = http::post_json(&url, &body).await {
                        tracing::warn!(%url, error = %e, "push webhook failed");
                    }
                });
            }
        }
    }
}

impl WebUser {
    /// Events after `cursor`, oldest first.
    pub fn events_after(&self, cursor: u64) -> Vec<Event> {
        self.with(|s| s.events.iter().filter(|e| e.id > cursor).cloned().collect())
    }

    /// Watches the id of the newest event.
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.last_event.subscribe()
    }

    /// Watches logout.
    pub fn watch_closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Notification channels open.
    pub fn channel_count(&self) -> usize {
        self.channels.load(Ordering::SeqCst)
    }

    /// Counts an open channel; `None` when the user already has `max` open (429).
    pub fn open_channel(self: &Arc<Self>, max: usize) -> Option<ChannelGuard> {
        let n = self.channels.fetch_add(1, Ordering::SeqCst);
        if n >= max {
            self.channels.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ChannelGuard(self.clone()))
    }
}

/// Holds one of a user's notification channels open; dropping it closes it.
pub struct ChannelGuard(Arc<WebUser>);

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.0.channels.fetch_sub(1, Ordering::SeqCst);
    }
}
