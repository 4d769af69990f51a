//! The conference event package (RFC 4575 over RFC 6665): a member's SUBSCRIBE to the
//! group's URI gets 200 and a NOTIFY with the whole roster; each join or leave then sends a
//! partial NOTIFY with the users that changed. A refresh keeps it; `Expires: 0` ends it
//! (a last NOTIFY with `Subscription-State: terminated`).

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// One conference subscription (a dialog we are the notifier of).
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    gid: String,
    dialog: Dialog,
    until: Instant,
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
            let sub = lock(&self.subs).get(&call_id).cloned();
            let Some(mut sub) = sub else {
                self.refuse(inc, 481, "no such subscription");
                return;
            };
            let mut ok = req.response(200, None);
            ok.headers.push("Expires", expires.to_string());
            inc.tx.respond(ok);
            sub.until = Instant::now() + Duration::from_secs(expires as u64);
            lock(&self.subs).insert(call_id.clone(), sub.clone());
            if expires == 0 {
                lock(&self.subs).remove(&call_id);
            }
            self.notify(sub, None, expires == 0).await;
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
        let sub = Subscription {
            gid,
            dialog,
            until: Instant::now() + Duration::from_secs(expires as u64),
        };
        inc.tx.respond(ok);
        if expires > 0 {
            lock(&self.subs).insert(call_id, sub.clone());
        }
        self.notify(sub, None, expires == 0).await;
    }

    /// Members `changed` of `gid` joined, left or changed state: a partial NOTIFY to every
    /// subscription of the group.
    pub(super) async fn roster_changed(self: &Arc<Self>, gid: &str, changed: &[String]) {
        let now = Instant::now();
        let subs: Vec<Subscription> = {
            let mut s = lock(&self.subs);
            s.retain(|_, x| x.until > now);
            s.values().filter(|x| x.gid == gid).cloned().collect()
        };
        for sub in subs {
            self.notify(sub, Some(changed), false).await;
        }
    }

    /// One NOTIFY: the whole roster (`changed` None) or the users in `changed`.
    async fn notify(self: &Arc<Self>, sub: Subscription, changed: Option<&[String]>, last: bool) {
        let call_id = sub.dialog.call_id.clone();
        let (mut r, body) = {
            let mut subs = lock(&self.subs);
            let r = match subs.get_mut(&call_id) {
                Some(s) => s.dialog.request(&self.ep, Method::Notify),
                None => sub.dialog.clone().request(&self.ep, Method::Notify),
            };
            drop(subs);
            let mut groups = lock(&self.groups);
            let Some(g) = groups.get_mut(&sub.gid) else {
                return;
            };
            (r, g.conference_info(changed, self.settings.max_members))
        };
        r.headers.push("Contact", self.contact(&sub.gid));
        r.headers.push("Event", conference_info::EVENT);
        let left = sub
            .until
            .saturating_duration_since(Instant::now())
            .as_secs();
        let state = if last {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={left}")
        };
        r.headers.push("Subscription-State", state);
        r.headers
            .push("Content-Type", conference_info::CONTENT_TYPE);
        r.body = body.into_bytes().into();
        let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
            return;
        };
        let resp = tokio::time::timeout(
            NOTIFY_WAIT,
            self.ep.send_request(r, dest, t).final_response(),
        )
        .await;
        // RFC 6665 §4.2.2: a 481 (or no answer at all) ends the subscription.
        if resp.map(|r| r.status == 481).unwrap_or(true) {
            lock(&self.subs).remove(&call_id);
        }
    }
}
