//! A group comes to be (the creator's INVITE to the conference factory, RFC 5366), a member
//! comes back (an INVITE to the group's URI: rejoin), and the focus INVITEs each member.

use std::sync::Arc;
use std::time::Duration;

use crate::conf::resource_lists::{self, ListError, RecipientList};
use crate::cscf::next_hop;
use crate::msrp::sdp::MsrpSdp;
use crate::rcs;
use crate::sip::multipart;
use crate::sip::{IncomingRequest, Method, NameAddr, Request, Response, Transport};

use super::dialog::Dialog;
use super::group::{Group, MemberState};
use super::{lock, Focus, MemberDialog, MAX_GROUPS};

/// The largest recipient-list body read.
const MAX_LIST_BODY: usize = 32 * 1024;
/// How long a member's INVITE may go unanswered.
const INVITE_WAIT: Duration = Duration::from_secs(30);

/// What the creating INVITE carries.
struct Creation {
    sdp: MsrpSdp,
    list: RecipientList,
}

/// Splits the creating INVITE's `multipart/mixed` body (RFC 5366 §3): the SDP and the
/// recipient list; the status and reason when it is not acceptable.
fn creation(req: &Request, max: usize) -> Result<Creation, (u16, String)> {
    let ct = req.headers.get("Content-Type").unwrap_or("");
    if !ct.trim().to_ascii_lowercase().starts_with("multipart/") {
        return Err((
            400,
            "a group is created with a multipart/mixed body: SDP and a recipient-list".into(),
        ));
    }
    let parts = multipart::parse(ct, &req.body).map_err(|e| (400, e.to_string()))?;
    let sdp = parts
        .iter()
        .find(|p| p.content_type.eq_ignore_ascii_case("application/sdp"))
        .ok_or((400, "no application/sdp part".to_string()))?;
    let sdp = MsrpSdp::parse(&String::from_utf8_lossy(&sdp.body))
        .map_err(|e| (488, format!("SDP: {e}")))?;
    let list = parts
        .iter()
        .find(|p| {
            p.content_type
                .eq_ignore_ascii_case(resource_lists::CONTENT_TYPE)
                && p.headers.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("Content-Disposition")
                        && v.to_ascii_lowercase().contains("recipient-list")
                })
        })
        .ok_or((
            400,
            "no resource-lists part with Content-Disposition: recipient-list".to_string(),
        ))?;
    let list = RecipientList::parse(&list.body, max, MAX_LIST_BODY).map_err(|e| {
        let code = e.status_code();
        let why = match e {
            ListError::TooMany { limit, .. } => {
                format!(
                    "too many recipients: a group has at most {} members",
                    limit + 1
                )
            }
            e => e.to_string(),
        };
        (code, why)
    })?;
    Ok(Creation { sdp, list })
}

impl Focus {
    /// The creator's INVITE to the conference factory.
    pub(super) async fn create(self: &Arc<Self>, inc: IncomingRequest) {
        let req = inc.request.clone();
        let creator = Self::sender(&req);
        // RCC.07 §3.4.4.1.7: a member that lost the group's URI restarts it through the
        // factory with the group's Contribution-ID: that is a rejoin.
        if let Some(gid) = self.group_of_contribution(req.headers.get("Contribution-ID"), &creator)
        {
            self.ep
                .note(|| format!("factory INVITE with the Contribution-ID of group {gid}: rejoin"));
            return self.rejoin(inc, &gid).await;
        }
        let max_others = self.settings.max_members.saturating_sub(1);
        let c = match creation(&req, max_others) {
            Ok(c) => c,
            Err((code, why)) => {
                self.ep.note(|| format!("group refused: {code} {why}"));
                self.refuse(inc, code, &why);
                return;
            }
        };
        if lock(&self.groups).len() >= MAX_GROUPS {
            self.refuse(inc, 503, "too many groups");
            return;
        }
        let others: Vec<String> = c
            .list
            .uris()
            .into_iter()
            .filter_map(|u| crate::sip::Uri::parse(u).ok().map(|u| u.aor()))
            .filter(|u| !u.eq_ignore_ascii_case(&creator))
            .collect();
        let gid = rcs::new_id()[..20].to_string();
        let uri = self.group_uri(&gid);
        let subject = req.headers.get("Subject").map(str::to_string);
        let contribution = req
            .headers
            .get("Contribution-ID")
            .map(str::to_string)
            .unwrap_or_else(rcs::new_id);
        let group = match Group::new(
            &gid,
            &uri,
            &creator,
            &others,
            subject,
            &contribution,
            self.settings.max_members,
        ) {
            Ok(g) => g,
            Err(e) => {
                self.refuse(inc, e.status(), &e.to_string());
                return;
            }
        };
        // On disk before the creator hears of it.
        if !self.persist(&group).await {
            self.refuse(inc, 500, "the group could not be stored");
            return;
        }
        lock(&self.groups).insert(gid.clone(), group);
        tracing::info!(%gid, %creator, members = others.len() + 1, "group created");
        self.answer_member(inc, &gid, &creator, &c.sdp);
        for m in others {
            let me = self.clone();
            let (gid, creator) = (gid.clone(), creator.clone());
            tokio::spawn(async move { me.invite_member(&gid, &m, &creator).await });
        }
    }

    /// The group whose Contribution-ID is `cid`, if `who` is one of its members.
    fn group_of_contribution(&self, cid: Option<&str>, who: &str) -> Option<String> {
        let cid = cid?.trim();
        lock(&self.groups)
            .values()
            .find(|g| g.contribution_id == cid && g.is_member(who))
            .map(|g| g.id.clone())
    }

    /// A member's INVITE to the group's URI (rejoin, RCC.07: same Contribution-ID): a new
    /// session for it; what it missed follows on its leg.
    pub(super) async fn rejoin(self: &Arc<Self>, inc: IncomingRequest, gid: &str) {
        let who = Self::sender(&inc.request);
        let (sdp, first) =
            match rcs::chat_body(inc.request.headers.get("Content-Type"), &inc.request.body) {
                Ok(b) => (b.sdp, b.first),
                Err(e) => {
                    self.refuse(inc, 488, &e.to_string());
                    return;
                }
            };
        let g = {
            let mut groups = lock(&self.groups);
            let Some(g) = groups.get_mut(gid) else {
                drop(groups);
                self.refuse(inc, 404, "no such group");
                return;
            };
            if !g.is_member(&who) {
                drop(groups);
                self.refuse(inc, 403, "not a member of this group");
                return;
            }
            // Another device of a member already in the session changes nothing in the
            // roster (RFC 4575 tracks users here, not their endpoints): no NOTIFY.
            g.set_state(&who, MemberState::Connected, None)
                .then(|| g.clone())
        };
        if let Some(g) = &g {
            self.persist(g).await;
        }
        // A first message in the INVITE (the client's way to send into a group it has no
        // session with) is the group's, stored before the 200 says so.
        if let Some(first) = first {
            let mut status = 0;
            self.group_message(gid, &who, "message/cpim", first, true, |s| status = s)
                .await;
            if status != 200 {
                self.refuse(inc, 500, "the message could not be stored");
                return;
            }
        }
        self.answer_member(inc, gid, &who, &sdp);
        if g.is_some() {
            self.roster_changed(gid, std::slice::from_ref(&who)).await;
        }
        self.restart(gid, &who);
    }

    /// 200 OK to a member's INVITE: our leg's SDP, the focus Contact.
    fn answer_member(
        self: &Arc<Self>,
        inc: IncomingRequest,
        gid: &str,
        member: &str,
        offer: &MsrpSdp,
    ) {
        let (leg, local) = self.new_leg(gid, member, offer.path.last().cloned());
        self.touch(gid);
        let call_id = inc.request.headers.get("Call-ID").unwrap_or("").to_string();
        let mut ok = crate::sip::uas_response_with(
            &inc.request,
            200,
            &crate::sip::new_tag(),
            &self.contact(gid),
        );
        lock(&self.dialogs).insert(
            call_id,
            MemberDialog {
                gid: gid.to_string(),
                member: member.to_string(),
                leg,
                dialog: Some(Dialog::as_uas(&inc.request, &ok)),
            },
        );
        let a = self.msrp_addr;
        // The member offered: it connects (RFC 6135 `a=setup:passive` on our side).
        let sdp = MsrpSdp::rcs_chat(&a.ip().to_string(), a.port(), &local, "passive");
        rcs::set_chat_body(&mut ok.headers, &mut ok.body, &sdp, None);
        // The group's Contribution-ID (RCC.07: every session of the group has the creator's),
        // so a client that lost it (a restart) learns it back.
        if let Some(c) = self.group(gid).map(|g| g.contribution_id) {
            ok.headers.push("Contribution-ID", c);
        }
        inc.tx.respond(ok);
    }

    /// Our INVITE to `member` on behalf of the group (RCC.07 §3.4.4.1.2; OMA SIMPLE IM
    /// §7.2.1.3): From the group, Referred-By the inviter, through the S-CSCF.
    /// The member's state after it.
    pub(super) async fn invite_member(
        self: &Arc<Self>,
        gid: &str,
        member: &str,
        inviter: &str,
    ) -> MemberState {
        let Some(g) = self.group(gid) else {
            return MemberState::Departed;
        };
        let (leg, local) = self.new_leg(gid, member, None);
        let mut req = self
            .ep
            .new_request(Method::Invite, member, &g.uri, 1, Transport::Tcp);
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        req.headers.push("Contact", self.contact(gid));
        req.headers.push("Referred-By", format!("<{inviter}>"));
        req.headers.push(
            "Accept-Contact",
            format!("{};require;explicit", rcs::ACCEPT_CHAT),
        );
        req.headers.push("P-Asserted-Service", rcs::ICSI_CHAT);
        req.headers
            .push("Contribution-ID", g.contribution_id.clone());
        if let Some(s) = &g.subject {
            req.headers.push("Subject", s.clone());
        }
        if let Some(r) = self.scscf.get() {
            req.headers.push("Route", r.clone());
        }
        let a = self.msrp_addr;
        let sdp = MsrpSdp::rcs_chat(&a.ip().to_string(), a.port(), &local, "actpass");
        rcs::set_chat_body(&mut req.headers, &mut req.body, &sdp, None);
        lock(&self.dialogs).insert(
            call_id.clone(),
            MemberDialog {
                gid: gid.to_string(),
                member: member.to_string(),
                leg: leg.clone(),
                dialog: None,
            },
        );
        let resp = match next_hop(&self.resolver, &req).await {
            Some((dest, t)) => tokio::time::timeout(
                INVITE_WAIT,
                self.ep.send_request(req.clone(), dest, t).final_response(),
            )
            .await
            .ok(),
            None => None,
        };
        let path = resp.as_ref().filter(|r| r.is_success()).and_then(|r| {
            rcs::chat_body(r.headers.get("Content-Type"), &r.body)
                .ok()
                .and_then(|b| b.sdp.path.last().cloned())
        });
        let (state, why) = match (&resp, &path) {
            (Some(r), Some(p)) => {
                self.ack(&req, r).await;
                if let Some(d) = lock(&self.dialogs).get_mut(&call_id) {
                    d.dialog = Some(Dialog::as_uac(&req, r));
                }
                if let Some(l) = lock(&self.legs).get_mut(&leg) {
                    l.remote = Some(p.clone());
                }
                self.touch(gid);
                (MemberState::Connected, None)
            }
            // Not reachable now (not registered, no answer, the network busy): still a
            // member; what is said waits for it.
            (Some(r), None) if matches!(r.status, 408 | 480 | 500..=599) || r.is_success() => {
                (MemberState::Away, None)
            }
            (None, _) => (MemberState::Away, None),
            // Declined (486/603...) or refused: not a member.
            (Some(_), None) => (MemberState::Departed, Some("failed")),
        };
        if state != MemberState::Connected {
            lock(&self.dialogs).remove(&call_id);
            self.close_leg(&leg);
            tracing::info!(%gid, %member, status = resp.as_ref().map(|r| r.status), ?state, "member INVITE not accepted");
        }
        // Removed while our INVITE was out (a REFER method=BYE): it stays out, and a session
        // it accepted meanwhile ends.
        let (gone, g) = {
            let mut groups = lock(&self.groups);
            match groups.get_mut(gid) {
                Some(g) if g.is_member(member) => {
                    (false, g.set_state(member, state, why).then(|| g.clone()))
                }
                _ => (true, None),
            }
        };
        if gone {
            if state == MemberState::Connected {
                let d = lock(&self.dialogs).remove(&call_id);
                if let Some(mut d) = d.and_then(|d| d.dialog) {
                    let bye = d.request(&self.ep, Method::Bye);
                    if let Some((dest, t)) = next_hop(&self.resolver, &bye).await {
                        let _ = tokio::time::timeout(
                            INVITE_WAIT,
                            self.ep.send_request(bye, dest, t).final_response(),
                        )
                        .await;
                    }
                }
                self.close_leg(&leg);
            }
            return MemberState::Departed;
        }
        if let Some(g) = g {
            self.persist(&g).await;
            self.roster_changed(gid, &[member.to_string()]).await;
        }
        state
    }

    /// ACK for our INVITE's 2xx (RFC 3261 §13.2.2.4), along its route set.
    async fn ack(&self, req: &Request, resp: &Response) {
        let mut ack = Request::new(
            Method::Ack,
            resp.headers
                .get("Contact")
                .and_then(|c| NameAddr::parse(c).ok())
                .map(|na| na.uri.to_string())
                .unwrap_or_else(|| req.uri.clone()),
        );
        ack.headers.push("Via", self.ep.new_via(Transport::Tcp));
        ack.headers.push("Max-Forwards", "70");
        for h in ["From", "Call-ID"] {
            ack.headers
                .push(h, req.headers.get(h).unwrap_or("").to_string());
        }
        ack.headers
            .push("To", resp.headers.get("To").unwrap_or("").to_string());
        ack.headers.push("CSeq", "1 ACK");
        let mut rr: Vec<String> = resp
            .headers
            .values("Record-Route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        rr.reverse();
        for r in rr {
            ack.headers.push("Route", r);
        }
        if let Some((dest, t)) = next_hop(&self.resolver, &ack).await {
            self.ep
                .send_stateless(&crate::sip::SipMessage::Request(ack), dest, t)
                .await;
        }
    }
}
