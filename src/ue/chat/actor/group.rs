//! Creating a group chat (GSMA RCC.07 §3.4.4.1.1, RFC 5366): an INVITE to the conference
//! factory with `multipart/mixed` (the MSRP SDP and a `resource-lists` recipient list),
//! `Require: recipient-list-invite`, the Subject and a Contribution-ID. The focus answers with
//! a Contact carrying `isfocus` that names the group; from then on the session is a chat
//! session like any other, whose peer is the group's conference URI.
//!
//! Members are added and removed by REFER to the group's URI (RFC 4579 §5.5, §5.6): one
//! `Refer-To` per member, several at once with `multiple-refer` (RFC 5368), a removal with
//! `method=BYE`; all with `Refer-Sub: false` (RFC 4488: the 202 is what the client waits for).

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{build_in_dialog, canonical, dialog_from, is_focus, Actor, Internal};
use crate::conf::resource_lists::{self, RecipientList};
use crate::msrp::sdp::MsrpSdp;
use crate::rcs;
use crate::sip::multipart::{self, Part};
use crate::sip::{new_call_id, new_tag, Method, NameAddr, Request, SipMessage};
use crate::ue::chat::msrp_bind::{bind, forward_events};
use crate::ue::chat::GroupError;

/// The conference factory's user part (RCC.07's CONF-FCTY-URI, as the lab provisions it).
pub const CONFERENCE_FACTORY: &str = "chat-factory";
/// Groups whose Contribution-ID a client remembers at most.
pub(super) const MAX_GROUP_IDS: usize = 1024;

impl Actor {
    /// Remembers group `group`'s Contribution-ID (an arbitrary older one goes when full).
    pub(super) fn remember_group_id(&mut self, group: &str, contribution_id: String) {
        let group = canonical(group);
        if !self.group_ids.contains_key(&group) && self.group_ids.len() >= MAX_GROUP_IDS {
            if let Some(old) = self.group_ids.keys().next().cloned() {
                self.group_ids.remove(&old);
            }
        }
        self.group_ids.insert(group, contribution_id);
    }

    fn domain(&self) -> String {
        self.cfg
            .impu
            .rsplit('@')
            .next()
            .unwrap_or("ims.lab")
            .to_string()
    }

    /// Sends the creating INVITE; `reply` gets the group's conference URI, or why not.
    pub(super) fn create_group(
        &mut self,
        subject: String,
        members: Vec<String>,
        reply: oneshot::Sender<Result<String, GroupError>>,
    ) {
        let domain = self.domain();
        let factory = format!("sip:{CONFERENCE_FACTORY}@{domain}");
        let mut req = self.focus_invite(&factory);
        req.headers.push("Require", "recipient-list-invite");
        req.headers.push("Subject", subject);
        let uris: Vec<String> = members
            .iter()
            .map(|m| {
                if m.contains(':') {
                    m.clone()
                } else {
                    format!("sip:{m}@{domain}")
                }
            })
            .collect();
        let list = RecipientList::of(&uris.iter().map(String::as_str).collect::<Vec<_>>());
        let sdp = self.focus_sdp();
        let mut list_part = Part::new(
            resource_lists::CONTENT_TYPE,
            Bytes::from(list.to_xml().into_bytes()),
        );
        list_part
            .headers
            .push(("Content-Disposition".into(), "recipient-list".into()));
        let (ct, body) = multipart::build(
            &format!("rcslab-{}", &rcs::new_id()[..12]),
            &[
                Part::new("application/sdp", Bytes::from(sdp.to_sdp().into_bytes())),
                list_part,
            ],
        );
        req.headers.push("Content-Type", ct);
        req.body = Bytes::from(body);
        self.open_focus_session(req, reply);
    }

    /// Joins group `group` again (RCC.07 rejoin: an INVITE to its conference URI with SDP
    /// only); `reply` gets the conference URI once the session is up.
    pub(super) fn join_group(
        &mut self,
        group: String,
        reply: oneshot::Sender<Result<String, GroupError>>,
    ) {
        let mut req = self.focus_invite(&group);
        let sdp = self.focus_sdp();
        rcs::set_chat_body(&mut req.headers, &mut req.body, &sdp, None);
        self.open_focus_session(req, reply);
    }

    fn focus_sdp(&self) -> MsrpSdp {
        MsrpSdp::rcs_chat(
            &self.ep.local_addr().ip().to_string(),
            9,
            &self.my_uri(),
            "active",
        )
    }

    /// An INVITE to the focus at `to`, without its body.
    fn focus_invite(&self, to: &str) -> Request {
        let mut req = Request::new(Method::Invite, to.to_string());
        req.headers.push("Via", self.ep.new_via(self.cfg.transport));
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", self.cfg.impu, new_tag()));
        req.headers.push("To", format!("<{to}>"));
        req.headers.push(
            "Call-ID",
            new_call_id(&self.ep.local_addr().ip().to_string()),
        );
        req.headers.push("CSeq", "1 INVITE");
        req.headers.push("Contact", self.contact_header());
        req.headers.push("Accept-Contact", rcs::ACCEPT_CHAT);
        req.headers.push("P-Preferred-Service", rcs::ICSI_CHAT);
        // Rejoining, the group's own (RCC.07 §3.4.4.1.7); creating, a new one.
        let contribution = self
            .group_ids
            .get(&canonical(to))
            .cloned()
            .unwrap_or_else(rcs::new_id);
        req.headers.push("Contribution-ID", contribution);
        req.headers.push("Conversation-ID", rcs::new_id());
        req.headers.push("Supported", "timer");
        req.headers.push("User-Agent", "rcslab-ue");
        req
    }

    /// Sends `req` to a focus: on its 2xx (Contact `;isfocus` naming the group) the ACK, the
    /// MSRP binding, and the session handed to the core under the group's conference URI,
    /// which `reply` gets.
    fn open_focus_session(
        &mut self,
        req: Request,
        reply: oneshot::Sender<Result<String, GroupError>>,
    ) {
        let domain = self.domain();
        let my_uri = self.my_uri();
        let ep = self.ep.clone();
        let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
        let internal = self.internal.clone();
        let trace = self.trace.clone();
        let sip_addr = self.ep.local_addr();
        tokio::spawn(async move {
            let resp = match tokio::time::timeout(
                crate::ue::chat::INVITE_WAIT,
                ep.send_request(req.clone(), pcscf, t).final_response(),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    let _ = reply.send(Err(GroupError::NoAnswer));
                    return;
                }
            };
            if !resp.is_success() {
                let _ = reply.send(Err(GroupError::refused(&resp)));
                return;
            }
            let d = dialog_from(&req, &resp);
            let contribution_id = resp
                .headers
                .get("Contribution-ID")
                .or_else(|| req.headers.get("Contribution-ID"))
                .map(|c| c.trim().to_string());
            let ack = build_in_dialog(&ep, t, &d, Method::Ack, d.cseq);
            ep.send_stateless(&SipMessage::Request(ack), pcscf, t).await;
            let contact = resp.headers.get("Contact");
            let group = contact
                .filter(|_| is_focus(contact))
                .and_then(|c| NameAddr::parse(c).ok())
                .and_then(|na| na.uri.user().map(|u| format!("sip:{u}@{domain}")));
            let path = rcs::chat_body(resp.headers.get("Content-Type"), &resp.body)
                .ok()
                .and_then(|b| b.sdp.path.last().cloned());
            let (Some(group), Some(path)) = (group, path) else {
                let _ = reply.send(Err(GroupError::NotAFocus));
                return;
            };
            let group = canonical(&group);
            match bind(&path, &my_uri, trace, sip_addr).await {
                Ok((conn, rx)) => {
                    let _ = internal.send(Internal::Accepted {
                        peer: group.clone(),
                        invite: None,
                        conn,
                        my_uri,
                        peer_uri: path,
                        dialog: d,
                    });
                    let _ = internal.send(Internal::GroupJoined {
                        group: group.clone(),
                        contribution_id,
                        reply,
                    });
                    forward_events(rx, internal, group);
                }
                Err(e) => {
                    let _ = reply.send(Err(GroupError::Bind(e.to_string())));
                }
            }
        });
    }
}

/// What a REFER to a group asks for.
pub(in crate::ue::chat) enum GroupChange {
    /// Add these (user names or URIs).
    Add(Vec<String>),
    /// Remove this member (the chairman only).
    Remove(String),
}

impl Actor {
    /// Sends the REFER; `reply` gets `Ok` on its 202, or the status and reason.
    pub(super) fn change_group(
        &mut self,
        group: String,
        change: GroupChange,
        reply: oneshot::Sender<Result<(), GroupError>>,
    ) {
        let domain = self
            .cfg
            .impu
            .rsplit('@')
            .next()
            .unwrap_or("ims.lab")
            .to_string();
        let uri_of = |m: &str| {
            if m.contains(':') {
                m.to_string()
            } else {
                format!("sip:{m}@{domain}")
            }
        };
        let mut req =
            self.ep
                .new_request(Method::Refer, &group, &self.cfg.impu, 1, self.cfg.transport);
        req.headers.push("Contact", self.contact_header());
        req.headers.push("Refer-Sub", "false");
        req.headers.push("Accept-Contact", rcs::ACCEPT_CHAT);
        req.headers.push("P-Preferred-Service", rcs::ICSI_CHAT);
        match change {
            GroupChange::Add(members) if members.len() == 1 => {
                req.headers
                    .push("Refer-To", format!("<{}>", uri_of(&members[0])));
            }
            GroupChange::Add(members) => {
                let cid = format!("{}@{domain}", &rcs::new_id()[..16]);
                let uris: Vec<String> = members.iter().map(|m| uri_of(m)).collect();
                let list = RecipientList::of(&uris.iter().map(String::as_str).collect::<Vec<_>>());
                req.headers.push("Refer-To", format!("<cid:{cid}>"));
                req.headers.push("Require", "multiple-refer");
                req.headers
                    .push("Content-Type", resource_lists::CONTENT_TYPE);
                req.headers.push("Content-Disposition", "recipient-list");
                req.headers.push("Content-ID", format!("<{cid}>"));
                req.body = Bytes::from(list.to_xml().into_bytes());
            }
            GroupChange::Remove(member) => {
                req.headers
                    .push("Refer-To", format!("<{};method=BYE>", uri_of(&member)));
            }
        }
        let ep = self.ep.clone();
        let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
        tokio::spawn(async move {
            let r = tokio::time::timeout(
                crate::ue::chat::INVITE_WAIT,
                ep.send_request(req, pcscf, t).final_response(),
            )
            .await;
            let _ = reply.send(match r {
                Ok(r) if r.is_success() => Ok(()),
                Ok(r) => Err(GroupError::refused(&r)),
                Err(_) => Err(GroupError::NoAnswer),
            });
        });
    }
}
