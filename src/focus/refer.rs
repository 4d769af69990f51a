//! Members added and removed by REFER (RFC 4579 §5.5 and §5.6, OMA SIMPLE IM §7.2.1.5, GSMA
//! RCC.07 §3.4.4.1.4):
//!
//! - `Refer-To: <sip:dave@…>` (method INVITE, the default): any member may add someone; the
//!   focus INVITEs them as it did the first members.
//! - `Refer-To: <cid:…>` with `Require: multiple-refer` (RFC 5368): the body part with that
//!   Content-ID is a recipient list; everyone in it is added.
//! - `Refer-To: <sip:bob@…;method=BYE>`: the chairman removes a member; the focus sends it
//!   a BYE and notifies the roster with it `booted`.
//!
//! The REFER gets 202; unless it said `Refer-Sub: false` (RFC 4488), the implicit
//! subscription (RFC 3515 §2.4.4) gets a NOTIFY with `message/sipfrag` `100 Trying`, then one
//! with the outcome (`200 OK`, or the status that stopped it) that ends it. In the member's
//! session dialog when the REFER came in it, in the REFER's own dialog otherwise. A REFER
//! from someone who is not a member gets 403; a malformed or oversized list 400/413; a group
//! that would grow past its size 403.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::conf::resource_lists::{self, ListError, RecipientList};
use crate::cscf::{in_dialog, next_hop};
use crate::sip::multipart;
use crate::sip::{IncomingRequest, Method, NameAddr, Request};

use super::dialog::Dialog;
use super::group::MemberState;
use super::{lock, Focus};

/// The largest recipient-list body read.
const MAX_LIST_BODY: usize = 32 * 1024;
/// How long a NOTIFY may go unanswered.
const NOTIFY_WAIT: Duration = Duration::from_secs(10);

/// What a REFER asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    Add(Vec<String>),
    Remove(String),
}

/// Where the REFER's NOTIFYs go.
enum NotifyIn {
    /// Not wanted (`Refer-Sub: false`).
    None,
    /// The member's session dialog (by Call-ID).
    Session(String),
    /// The REFER's own dialog.
    Own(Box<Dialog>),
}

/// The body part `cid` names (RFC 2392: `cid:X` is the part whose Content-ID is `<X>`).
fn part_by_cid(req: &Request, cid: &str) -> Option<Bytes> {
    let want = format!("<{cid}>");
    let same = |v: &str| v.trim().eq_ignore_ascii_case(&want);
    let ct = req.headers.get("Content-Type").unwrap_or("");
    if ct.trim().to_ascii_lowercase().starts_with("multipart/") {
        let parts = multipart::parse(ct, &req.body).ok()?;
        return parts
            .into_iter()
            .find(|p| {
                p.headers
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("Content-ID") && same(v))
            })
            .map(|p| p.body);
    }
    // A body that is the list itself, its Content-ID in the request's headers.
    req.headers
        .get("Content-ID")
        .filter(|v| same(v))
        .map(|_| req.body.clone())
}

/// Reads what the REFER asks for; the status and reason when it cannot be done.
fn ask_of(req: &Request, max: usize) -> Result<Ask, (u16, String)> {
    let refer_to = req
        .headers
        .get("Refer-To")
        .ok_or((400, "REFER without Refer-To".to_string()))?;
    let na = NameAddr::parse(refer_to).map_err(|_| (400, "unreadable Refer-To".to_string()))?;
    let uri = na.uri.to_string();
    if let Some(cid) = uri.strip_prefix("cid:") {
        let requires = req
            .headers
            .values("Require")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("multiple-refer"));
        if !requires {
            return Err((400, "a cid: Refer-To needs Require: multiple-refer".into()));
        }
        let body = part_by_cid(req, cid).ok_or((
            400,
            format!("no body part with Content-ID <{cid}> (RFC 5368)"),
        ))?;
        let list = RecipientList::parse(&body, max, MAX_LIST_BODY).map_err(|e| {
            let code = e.status_code();
            let why = match e {
                ListError::TooMany { limit, .. } => format!("at most {limit} members may be added"),
                e => e.to_string(),
            };
            (code, why)
        })?;
        let uris = list
            .uris()
            .into_iter()
            .filter_map(|u| crate::sip::Uri::parse(u).ok().map(|u| u.aor()))
            .collect();
        return Ok(Ask::Add(uris));
    }
    let target = na.uri.aor();
    if !resource_lists::valid_uri(&target) {
        return Err((400, "Refer-To is not a SIP URI".into()));
    }
    match na.uri.param("method").flatten() {
        Some(m) if m.eq_ignore_ascii_case("BYE") => Ok(Ask::Remove(target)),
        None => Ok(Ask::Add(vec![target])),
        Some(m) if m.eq_ignore_ascii_case("INVITE") => Ok(Ask::Add(vec![target])),
        Some(m) => Err((
            400,
            format!("Refer-To method {m}: a focus takes INVITE or BYE"),
        )),
    }
}

/// A REFER's change, made before its 202.
enum Change {
    /// These were not members before.
    Added(Vec<String>),
    /// This member is out; its sessions, still to be ended.
    Removed(Vec<super::MemberDialog>, String),
}

impl Focus {
    pub(super) async fn on_refer(self: &Arc<Self>, inc: IncomingRequest) {
        let req = inc.request.clone();
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let session = in_dialog(&req);
        let gid = if session {
            lock(&self.dialogs).get(&call_id).map(|d| d.gid.clone())
        } else {
            self.gid_of(&req.uri)
        };
        let Some(gid) = gid else {
            let (code, why) = if session {
                (481, "no such dialog here")
            } else {
                (404, "no such group")
            };
            self.refuse(inc, code, why);
            return;
        };
        let who = Self::sender(&req);
        let Some(g) = self.group(&gid) else {
            self.refuse(inc, 404, "no such group");
            return;
        };
        if !g.is_member(&who) {
            self.refuse(inc, 403, "not a member of this group");
            return;
        }
        let ask = match ask_of(&req, self.settings.max_members) {
            Ok(a) => a,
            Err((code, why)) => {
                self.ep.note(|| format!("REFER refused: {code} {why}"));
                self.refuse(inc, code, &why);
                return;
            }
        };
        // Checked before the 202: what cannot be done is refused outright.
        match &ask {
            Ask::Remove(target) => {
                let chairman = g.member(&who).is_some_and(|m| m.chairman);
                if !chairman {
                    self.refuse(inc, 403, "only the chairman may remove members");
                    return;
                }
                if !g.is_member(target) {
                    self.refuse(inc, 404, "not a member of this group");
                    return;
                }
            }
            Ask::Add(uris) => {
                if uris.is_empty() {
                    self.refuse(inc, 400, "nobody to add");
                    return;
                }
                let mut probe = g.clone();
                if let Err(e) = probe.add(uris, self.settings.max_members) {
                    self.refuse(inc, e.status(), &e.to_string());
                    return;
                }
            }
        }
        // The change is made (and on disk) before the 202, so a request that follows the 202
        // sees it: a removal right after an add, an add right after a removal.
        let change = match ask {
            Ask::Remove(target) => Change::Removed(self.take_member(&gid, &target).await, target),
            Ask::Add(uris) => match self.join_members(&gid, &uris).await {
                Ok(fresh) => Change::Added(fresh),
                Err(status) => {
                    self.refuse(inc, status, "the group could not take them");
                    return;
                }
            },
        };
        let no_sub = req
            .headers
            .get("Refer-Sub")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        let mut accepted =
            crate::sip::uas_response_with(&req, 202, &crate::sip::new_tag(), &self.contact(&gid));
        if no_sub {
            accepted.headers.push("Refer-Sub", "false");
        }
        let notify_in = match (no_sub, session) {
            (true, _) => NotifyIn::None,
            (false, true) => NotifyIn::Session(call_id),
            (false, false) => NotifyIn::Own(Box::new(Dialog::as_uas(&req, &accepted))),
        };
        inc.tx.respond(accepted);
        let mut notify_in = notify_in;
        self.refer_notify(&gid, &mut notify_in, "100 Trying", false)
            .await;
        let outcome = match change {
            Change::Removed(sessions, target) => {
                self.bye_removed(&gid, &target, sessions).await;
                "200 OK".to_string()
            }
            Change::Added(fresh) => self.invite_added(&gid, &fresh, &who).await,
        };
        self.refer_notify(&gid, &mut notify_in, &outcome, true)
            .await;
    }

    /// Adds `uris` to `gid` (invited, on disk): those who were not members yet; the SIP status
    /// when the group is gone (404) or full (403).
    async fn join_members(
        self: &Arc<Self>,
        gid: &str,
        uris: &[String],
    ) -> Result<Vec<String>, u16> {
        let (fresh, g) = {
            let mut groups = lock(&self.groups);
            let Some(g) = groups.get_mut(gid) else {
                return Err(404);
            };
            match g.add(uris, self.settings.max_members) {
                Ok(fresh) => (fresh, g.clone()),
                Err(e) => return Err(e.status()),
            }
        };
        if !fresh.is_empty() {
            self.persist(&g).await;
        }
        Ok(fresh)
    }

    /// The roster hears of the `fresh` members of `gid`, and the focus INVITEs them (on
    /// behalf of `inviter`): the sipfrag status line of the outcome.
    async fn invite_added(self: &Arc<Self>, gid: &str, fresh: &[String], inviter: &str) -> String {
        if fresh.is_empty() {
            return "200 OK".into();
        }
        self.roster_changed(gid, fresh).await;
        let states = futures_util::future::join_all(
            fresh.iter().map(|m| self.invite_member(gid, m, inviter)),
        )
        .await;
        if states.iter().all(|s| *s == MemberState::Connected) {
            "200 OK".into()
        } else if states.contains(&MemberState::Departed) {
            "603 Declined".into()
        } else {
            "480 Temporarily Unavailable".into()
        }
    }

    /// The chairman removes `member` (RFC 4579 §5.6): here it is out (`booted`, on disk) and
    /// its sessions are taken; [`Self::bye_removed`] ends them with our BYE.
    async fn take_member(self: &Arc<Self>, gid: &str, member: &str) -> Vec<super::MemberDialog> {
        let sessions: Vec<super::MemberDialog> = {
            let mut d = lock(&self.dialogs);
            let keys: Vec<String> = d
                .iter()
                .filter(|(_, x)| x.gid == gid && x.member.eq_ignore_ascii_case(member))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| d.remove(&k)).collect()
        };
        let g = {
            let mut groups = lock(&self.groups);
            groups.get_mut(gid).map(|g| {
                g.set_state(member, MemberState::Departed, Some("booted"));
                g.clone()
            })
        };
        if let Some(g) = g {
            self.persist(&g).await;
        }
        sessions
    }

    /// A removed member's sessions end with our BYE; the roster hears of it.
    async fn bye_removed(
        self: &Arc<Self>,
        gid: &str,
        member: &str,
        sessions: Vec<super::MemberDialog>,
    ) {
        for s in sessions {
            if let Some(mut d) = s.dialog {
                let mut bye = d.request(&self.ep, Method::Bye);
                bye.headers
                    .push("Reason", "SIP;cause=200;text=\"removed by the chairman\"");
                if let Some((dest, t)) = next_hop(&self.resolver, &bye).await {
                    let _ = tokio::time::timeout(
                        NOTIFY_WAIT,
                        self.ep.send_request(bye, dest, t).final_response(),
                    )
                    .await;
                }
            }
            // The MSRP leg after the BYE's answer: the member hears why before it goes.
            self.close_leg(&s.leg);
        }
        self.roster_changed(gid, &[member.to_string()]).await;
    }

    /// One NOTIFY of the REFER's implicit subscription (RFC 3515 §2.4.5): `status` as a
    /// `message/sipfrag` status line; `last` ends the subscription.
    async fn refer_notify(&self, gid: &str, to: &mut NotifyIn, status: &str, last: bool) {
        let mut r = match to {
            NotifyIn::None => return,
            NotifyIn::Own(d) => d.request(&self.ep, Method::Notify),
            NotifyIn::Session(call_id) => {
                let mut dialogs = lock(&self.dialogs);
                match dialogs.get_mut(call_id).and_then(|x| x.dialog.as_mut()) {
                    Some(d) => d.request(&self.ep, Method::Notify),
                    None => return,
                }
            }
        };
        r.headers.push("Contact", self.contact(gid));
        r.headers.push("Event", "refer");
        r.headers.push(
            "Subscription-State",
            if last {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        r.headers
            .push("Content-Type", "message/sipfrag;version=2.0");
        r.body = Bytes::from(format!("SIP/2.0 {status}\r\n"));
        if let Some((dest, t)) = next_hop(&self.resolver, &r).await {
            let _ = tokio::time::timeout(
                NOTIFY_WAIT,
                self.ep.send_request(r, dest, t).final_response(),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refer(refer_to: &str, extra: &[(&str, &str)], body: &str) -> Request {
        let mut r = Request::new(Method::Refer, "sip:chat-g@ims.lab");
        r.headers.push("Refer-To", refer_to);
        for (k, v) in extra {
            r.headers.push(k, *v);
        }
        r.body = Bytes::from(body.to_string());
        r
    }

    #[test]
    fn refer_to_one_uri_adds_and_method_bye_removes() {
        assert_eq!(
            ask_of(&refer("<sip:dave@ims.lab>", &[], ""), 10),
            Ok(Ask::Add(vec!["sip:dave@ims.lab".into()]))
        );
        assert_eq!(
            ask_of(&refer("<sip:bob@ims.lab;method=BYE>", &[], ""), 10),
            Ok(Ask::Remove("sip:bob@ims.lab".into()))
        );
        assert_eq!(
            ask_of(&refer("<sip:bob@ims.lab;method=OPTIONS>", &[], ""), 10)
                .unwrap_err()
                .0,
            400
        );
        let mut no = refer("x", &[], "");
        no.headers.remove("Refer-To");
        assert_eq!(ask_of(&no, 10).unwrap_err().0, 400);
    }

    #[test]
    fn multiple_refer_reads_the_list_its_cid_names() {
        let list = RecipientList::of(&["sip:dave@ims.lab", "sip:erin@ims.lab"]).to_xml();
        let ok = refer(
            "<cid:l1@x>",
            &[
                ("Require", "multiple-refer"),
                ("Content-Type", resource_lists::CONTENT_TYPE),
                ("Content-Disposition", "recipient-list"),
                ("Content-ID", "<l1@x>"),
            ],
            &list,
        );
        assert_eq!(
            ask_of(&ok, 10),
            Ok(Ask::Add(vec![
                "sip:dave@ims.lab".into(),
                "sip:erin@ims.lab".into()
            ]))
        );
        // Without the option tag, with a cid naming nothing, a malformed or too long list.
        let mut no_require = ok.clone();
        no_require.headers.remove("Require");
        assert_eq!(ask_of(&no_require, 10).unwrap_err().0, 400);
        let mut wrong = ok.clone();
        wrong.headers.set("Refer-To", "<cid:other@x>");
        assert_eq!(ask_of(&wrong, 10).unwrap_err().0, 400);
        let mut bad = ok.clone();
        bad.body = Bytes::from_static(b"<resource-lists");
        assert_eq!(ask_of(&bad, 10).unwrap_err().0, 400);
        assert_eq!(ask_of(&ok, 1).unwrap_err().0, 403);
    }
}
