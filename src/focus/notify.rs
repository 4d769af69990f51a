//! The conference event package (RFC 4575 over RFC 6665): a member's SUBSCRIBE to the
//! group's URI gets 200 and a NOTIFY with the whole roster; each join or leave then sends a
//! partial NOTIFY with the users that changed. A refresh keeps it; `Expires: 0` ends it
//! (a last NOTIFY with `Subscription-State: terminated`).
//!
//! Each subscription has a task of its own that sends its NOTIFYs one after the other, in
//! the order the changes happened, each document with the subscription's next version: a
//! watcher that is slow to answer delays only itself, never the group. What waits for a
//! watcher is bounded ([`QUEUE`]); one that falls that far behind, answers 481 or does not
//! answer loses its subscription (RFC 6665 §4.2.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::conf::conference_info;
use crate::cscf::{in_dialog, next_hop};
use crate::sip::{IncomingRequest, Method};

use super::dialog::Dialog;
use super::{lock, Focus};

/// Subscriptions the focus holds at most.
const MAX_SUBSCRIPTIONS: usize = 100_000;
/// Expires when the SUBSCRIBE says nothing, and the most granted.
const DEFAULT_EXPIRES: u32 = 3600;
/// How long a NOTIFY may go unanswered.
const NOTIFY_WAIT: Duration = Duration::from_secs(10);
/// NOTIFYs waiting for one watcher at most.
const QUEUE: usize = 64;

/// One NOTIFY to send: its document and whether it ends the subscription.
struct Job {
    body: String,
    last: bool,
}

/// One conference subscription (a dialog we are the notifier of).
pub(super) struct Subscription {
    gid: String,
    until: Instant,
    /// The version of the last document queued.
    version: u32,
    jobs: mpsc::Sender<Job>,
}

impl Focus {
    pub(super) async fn on_subscribe(self: &Arc<Self>, inc: IncomingRequest) {
        let req = inc.request.clone();
        let event = req.headers.get("Event").unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case(conference_info::EVENT) {
            let mut r = crate::cscf::reject(&req, 489, &self.host, "only the conference event");
            r.headers.push("Allow-Events", conference_info::EVENT);
            inc.tx.respond(r);
            return;
        }
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let expires = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_EXPIRES)
            .min(DEFAULT_EXPIRES);
        if in_dialog(&req) {
            let found = lock(&self.subs).get_mut(&call_id).map(|s| {
                s.until = Instant::now() + Duration::from_secs(expires as u64);
                s.gid.clone()
            });
            let Some(gid) = found else {
                self.refuse(inc, 481, "no such subscription");
                return;
            };
            let mut ok = req.response(200, None);
            ok.headers.push("Expires", expires.to_string());
            inc.tx.respond(ok);
            // RFC 6665 §4.2.1.2: a refresh gets the full state; an unsubscribe the last.
            self.queue(&call_id, &gid, None, expires == 0);
            return;
        }
        let Some(gid) = self.gid_of(&req.uri) else {
            self.refuse(inc, 404, "no such group");
            return;
        };
        let who = Self::sender(&req);
        if !self.group(&gid).is_some_and(|g| g.is_member(&who)) {
            self.refuse(inc, 403, "not a member of this group");
            return;
        }
        if lock(&self.subs).len() >= MAX_SUBSCRIPTIONS {
            self.refuse(inc, 503, "too many subscriptions");
            return;
        }
        let tag = crate::sip::new_tag();
        let mut ok = crate::sip::uas_response_with(&req, 200, &tag, &self.contact(&gid));
        ok.headers.push("Expires", expires.to_string());
        let mut dialog = Dialog::as_uas(&req, &ok);
        if dialog.target.is_empty() {
            dialog.target = who.clone();
        }
        let (jobs, rx) = mpsc::channel(QUEUE);
        lock(&self.subs).insert(
            call_id.clone(),
            Subscription {
                gid: gid.clone(),
                until: Instant::now() + Duration::from_secs(expires as u64),
                version: 0,
                jobs,
            },
        );
        inc.tx.respond(ok);
        tokio::spawn(
            self.clone()
                .notifier(call_id.clone(), gid.clone(), dialog, rx),
        );
        self.queue(&call_id, &gid, None, expires == 0);
    }

    /// Members `changed` of `gid` joined, left or changed state: a partial NOTIFY to every
    /// subscription of the group.
    pub(super) async fn roster_changed(self: &Arc<Self>, gid: &str, changed: &[String]) {
        let now = Instant::now();
        let subs: Vec<String> = {
            let mut s = lock(&self.subs);
            s.retain(|_, x| x.until > now);
            s.iter()
                .filter(|(_, x)| x.gid == gid)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for call_id in subs {
            self.queue(&call_id, gid, Some(changed), false);
        }
    }

    /// Queues the next NOTIFY of subscription `call_id`: the whole roster (`changed` None) or
    /// the users in `changed`, made now (so it says what is true now) with the next version.
    fn queue(&self, call_id: &str, gid: &str, changed: Option<&[String]>, last: bool) {
        let mut subs = lock(&self.subs);
        let Some(s) = subs.get_mut(call_id) else {
            return;
        };
        let Some(body) = lock(&self.groups)
            .get(gid)
            .map(|g| g.conference_info(changed, self.settings.max_members, s.version + 1))
        else {
            return;
        };
        s.version += 1;
        let sent = s.jobs.try_send(Job { body, last });
        if last || sent.is_err() {
            // Ended, or the watcher fell too far behind: the task sends what it has and stops.
            subs.remove(call_id);
        }
    }

    /// Sends one subscription's NOTIFYs, in order, until it ends.
    async fn notifier(
        self: Arc<Self>,
        call_id: String,
        gid: String,
        mut dialog: Dialog,
        mut jobs: mpsc::Receiver<Job>,
    ) {
        while let Some(job) = jobs.recv().await {
            let mut r = dialog.request(&self.ep, Method::Notify);
            r.headers.push("Contact", self.contact(&gid));
            r.headers.push("Event", conference_info::EVENT);
            let left = lock(&self.subs)
                .get(&call_id)
                .map(|s| s.until.saturating_duration_since(Instant::now()).as_secs())
                .unwrap_or(0);
            let state = if job.last {
                "terminated;reason=timeout".to_string()
            } else {
                format!("active;expires={left}")
            };
            r.headers.push("Subscription-State", state);
            r.headers
                .push("Content-Type", conference_info::CONTENT_TYPE);
            r.body = job.body.into_bytes().into();
            let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
                break;
            };
            let resp = tokio::time::timeout(
                NOTIFY_WAIT,
                self.ep.send_request(r, dest, t).final_response(),
            )
            .await;
            // RFC 6665 §4.2.2: a 481 (or no answer at all) ends the subscription.
            if resp.map(|r| r.status == 481).unwrap_or(true) || job.last {
                break;
            }
        }
        lock(&self.subs).remove(&call_id);
    }
}
