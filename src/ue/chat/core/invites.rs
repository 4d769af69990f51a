//! Chat INVITEs, decided in the core (GSMA RCC.07 1-to-1 chat; RFC 3261 §9 and §13.3; the
//! paper's figure 1 steps 13-26 and figure 4 steps 15-19 at UE2). An incoming INVITE is
//! answered at once, or held for the application with
//! [`ChatOptions::hold_invites`](crate::ue::chat::ChatOptions::hold_invites); our own
//! INVITE is given up when no final answer came within [`INVITE_WAIT`]. The driver keeps the
//! SIP transactions (by [`IncomingInvite`] / [`OutgoingInvite`]) and carries out what is
//! decided here; the messages and reports that wait for the session meanwhile are the
//! session's (`Sess` in the core).
//!
//! ```text
//!   INVITE from a peer ──hold_invites──> Held ──Accept──────> Answer (IMDN, 200, ACK, bind)
//!        │                                 ├──Decline─────> Refuse 603; Session Declined
//!        │                                 ├──CANCEL──────> Refuse 487; Session Closed
//!        │                                 ├──newer INVITE from the same peer: Refuse 487
//!        │                                 └──close_all───> Refuse 480
//!        └──otherwise: its first message is shown, Answer
//!
//!   Output::Invite ──final answer (SessionUp / SessionFailed)──> done
//!        └──INVITE_WAIT passes──> CancelInvite (the driver CANCELs, then SessionFailed)
//! ```

use std::time::Instant;

use crate::cpim::{Cpim, ImdnStatus};
use crate::rcs::{self, Content};

use super::super::{ChatEvent, SessionStatus, INVITE_WAIT};
use super::{ChatCore, Output, Received, Sess};

/// The driver's handle on the server transaction of an incoming INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::ue::chat) struct IncomingInvite(pub(in crate::ue::chat) u64);

/// One of our INVITEs, numbered by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::ue::chat) struct OutgoingInvite(u64);

/// What an incoming INVITE says beyond its first message, for [`ChatEvent::Invited`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::ue::chat) struct InviteInfo {
    /// The Request-URI.
    pub(in crate::ue::chat) request_uri: String,
    /// Subject.
    pub(in crate::ue::chat) subject: Option<String>,
    /// Conversation-ID.
    pub(in crate::ue::chat) conversation_id: Option<String>,
    /// Contribution-ID.
    pub(in crate::ue::chat) contribution_id: Option<String>,
}

/// An incoming INVITE waiting for the application.
#[derive(Debug)]
pub(super) struct HeldInvite {
    tx: IncomingInvite,
    call_id: String,
    first: Option<Cpim>,
}

impl ChatCore {
    /// A chat INVITE from `peer` (not in a dialog; its body already parsed by the driver).
    pub(super) fn on_invite(
        &mut self,
        now: Instant,
        tx: IncomingInvite,
        peer: String,
        call_id: String,
        first: Option<Cpim>,
        info: InviteInfo,
    ) {
        if !self.opts.hold_invites {
            if let Some(c) = &first {
                self.on_cpim(now, &peer, c.clone(), false);
            }
            let delivered = self.opts.auto_delivered;
            let imdn = self.answering(&peer, first.as_ref(), delivered);
            self.out.push_back(Output::Answer { tx, peer, imdn });
            return;
        }
        // Held (figure 4 steps 17-19): its first message waits for the application's
        // "delivered"/"displayed".
        if let Some(c) = &first {
            if c.wants("positive-delivery") || c.wants("display") {
                let id = c.message_id().unwrap_or("").to_string();
                let delivered = !c.wants("positive-delivery");
                self.received.insert(
                    id,
                    Received {
                        peer: peer.clone(),
                        cpim: c.clone(),
                        delivered,
                    },
                );
            }
        }
        let text = first.as_ref().and_then(|c| match rcs::content(c) {
            Content::Text(t) => Some(t),
            _ => None,
        });
        let message_id = first
            .as_ref()
            .and_then(|c| c.message_id())
            .unwrap_or("")
            .to_string();
        // A file-info as the first message (RCC.07 §3.2.5) is offered as well, right after
        // the invitation: the application has no other way to see it. Its reports wait for
        // the accept, as a text's do.
        let file = first
            .as_ref()
            .filter(|_| self.opts.files.is_none())
            .and_then(|c| match rcs::content(c) {
                Content::File(info) => Some(info),
                _ => None,
            });
        self.event(ChatEvent::Invited {
            from: peer.clone(),
            request_uri: info.request_uri,
            subject: info.subject,
            message_id: message_id.clone(),
            text,
            datetime: first
                .as_ref()
                .and_then(|c| c.header("DateTime"))
                .map(str::to_string),
            conversation_id: info.conversation_id,
            contribution_id: info.contribution_id,
        });
        if let Some(info) = file {
            self.event(ChatEvent::FileOffered {
                from: peer.clone(),
                group: None,
                info,
                message_id,
            });
        }
        let held = HeldInvite { tx, call_id, first };
        if let Some(old) = self.held.insert(peer, held) {
            // A newer INVITE from the same peer replaces one still waiting.
            self.refuse(old.tx, 487, "Request Terminated");
        }
    }

    /// The application accepts `peer`'s held INVITE; with `delivered`, its first message is
    /// reported delivered before the 200 (figure 1 steps 15-22).
    pub(super) fn accept(&mut self, peer: &str, delivered: bool) {
        if let Some(h) = self.held.remove(peer) {
            let imdn = self.answering(peer, h.first.as_ref(), delivered);
            self.out.push_back(Output::Answer {
                tx: h.tx,
                peer: peer.to_string(),
                imdn,
            });
        }
    }

    /// The application declines `peer`'s held INVITE (603): its first message is forgotten.
    pub(super) fn decline(&mut self, peer: String) {
        let Some(h) = self.held.remove(&peer) else {
            return;
        };
        self.refuse(h.tx, 603, "Decline");
        if let Some(c) = h.first {
            self.received.remove(c.message_id().unwrap_or(""));
        }
        self.event(ChatEvent::Session {
            peer,
            status: SessionStatus::Declined,
            reason: "603 Decline".into(),
        });
    }

    /// RFC 3261 §9.2: a CANCEL for `call_id` (the driver answered it 200); the INVITE it
    /// cancels, when still held, gets 487.
    pub(super) fn cancelled(&mut self, call_id: &str) {
        let peers: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.call_id == call_id)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in peers {
            if let Some(h) = self.held.remove(&peer) {
                self.refuse(h.tx, 487, "Request Terminated");
                self.event(ChatEvent::Session {
                    peer,
                    status: SessionStatus::Closed,
                    reason: "CANCEL".into(),
                });
            }
        }
    }

    /// Every held INVITE gets 480: the client is closing.
    pub(super) fn refuse_held(&mut self) {
        let held: Vec<HeldInvite> = self.held.drain().map(|(_, h)| h).collect();
        for h in held {
            self.refuse(h.tx, 480, "Temporarily Unavailable");
        }
    }

    fn refuse(&mut self, tx: IncomingInvite, status: u16, reason: &'static str) {
        self.out.push_back(Output::Refuse { tx, status, reason });
    }

    /// We answer `peer`'s chat INVITE (figure 1 steps 15-26 at UE2): a session comes up with
    /// it, and the IMDN "delivered" for its first message (when `delivered` and asked for)
    /// goes in a SIP MESSAGE before the 200: returned as (about, CPIM) for the driver to send
    /// in that order.
    fn answering(
        &mut self,
        peer: &str,
        first: Option<&Cpim>,
        delivered: bool,
    ) -> Option<(String, Vec<u8>)> {
        let mut imdn = None;
        if let Some(c) = first {
            let id = c.message_id().unwrap_or("").to_string();
            // A file is "delivered" once downloaded, over the session ([`super::files`]).
            if delivered && c.wants("positive-delivery") && !self.is_pending_file(&id) {
                let doc = rcs::imdn_message(&self.impu, peer, c, ImdnStatus::Delivered);
                imdn = Some((id.clone(), doc.to_bytes()));
                if let Some(r) = self.received.get_mut(&id) {
                    r.delivered = true;
                    if !c.wants("display") {
                        self.received.remove(&id);
                    }
                }
            }
        }
        // Messages the application sends before the binding completes wait for it.
        self.sessions
            .entry(peer.to_string())
            .or_insert_with(Sess::inviting);
        imdn
    }

    /// Our INVITE to `peer` goes out at `now`: it is given up at `now + INVITE_WAIT` unless
    /// its outcome comes first ([`ChatCore::invite_done`]).
    pub(super) fn invite_started(&mut self, now: Instant, peer: &str) -> OutgoingInvite {
        self.next_invite += 1;
        let k = OutgoingInvite(self.next_invite);
        self.inviting
            .insert(k, (peer.to_string(), now + INVITE_WAIT));
        k
    }

    /// Our INVITE got its final answer (and the binding after it came up or failed).
    pub(super) fn invite_done(&mut self, invite: Option<OutgoingInvite>) {
        if let Some(k) = invite {
            self.inviting.remove(&k);
        }
    }

    /// The earliest moment one of our INVITEs is given up.
    pub(super) fn invite_deadline(&self) -> Option<Instant> {
        self.inviting.values().map(|(_, d)| *d).min()
    }

    /// RFC 3261 §9.1, bounded: an INVITE with no final answer by its deadline (the network
    /// lost it, e.g. a node restarted after its 100 Trying) is cancelled, so the messages
    /// queued behind it do not wait for Timer B; its outcome (normally a failure) comes back
    /// as `SessionFailed`.
    pub(super) fn invite_timeouts(&mut self, now: Instant) {
        let mut due: Vec<(Instant, OutgoingInvite)> = self
            .inviting
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(k, (_, d))| (*d, *k))
            .collect();
        due.sort();
        for (_, invite) in due {
            self.inviting.remove(&invite);
            self.out.push_back(Output::CancelInvite {
                invite,
                reason: format!("No answer within {INVITE_WAIT:?}"),
            });
        }
    }
}

#[cfg(test)]
#[path = "invites_tests.rs"]
mod tests;
