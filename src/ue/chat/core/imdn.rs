//! Disposition reports on received messages (RFC 5438 IMDN): over the session when it is
//! up, held while it comes up (so a "displayed" never overtakes the "delivered" of figure 1
//! step 15), else in a SIP MESSAGE (RFC 5438 §5; TS 24.229 pager mode); each only when the
//! sender asked for it (RFC 5438 §6.2, Disposition-Notification).

use std::time::Instant;

use crate::cpim::{Cpim, ImdnStatus};
use crate::rcs;

use super::super::DEDUP_WINDOW;
use super::{ChatCore, Output, Received, SessState};

impl ChatCore {
    /// An IMDN about a received message, if its sender asked for it: over the session when
    /// up, else in a SIP MESSAGE (RFC 5438 §5).
    pub(super) fn report(&mut self, now: Instant, message_id: &str, status: ImdnStatus) {
        let Some(r) = self.received.get_mut(message_id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&r.peer) {
            if s.state == SessState::Inviting {
                s.reports.push((message_id.to_string(), status));
                return;
            }
        }
        if matches!(status, ImdnStatus::Delivered) {
            if r.delivered {
                return;
            }
            r.delivered = true;
            let (peer, cpim) = (r.peer.clone(), r.cpim.clone());
            if !cpim.wants("display") {
                self.received.remove(message_id);
            }
            self.report_on(now, &peer, &cpim, status);
        } else if let Some(r) = self.received.remove(message_id) {
            self.report_on(now, &r.peer, &r.cpim, status);
        }
    }

    /// A report on a received message sent in a SIP MESSAGE (no session to carry it), when
    /// its sender asked for it and it was not sent yet.
    pub(super) fn report_by_message(&mut self, message_id: &str, status: ImdnStatus) {
        let Some(r) = self.received.get_mut(message_id) else {
            return;
        };
        if matches!(status, ImdnStatus::Delivered) {
            if r.delivered {
                return;
            }
            r.delivered = true;
        }
        let (peer, cpim) = (r.peer.clone(), r.cpim.clone());
        if !matches!(status, ImdnStatus::Delivered) || !cpim.wants("display") {
            self.received.remove(message_id);
        }
        let wanted = match status {
            ImdnStatus::Displayed => "display",
            _ => "positive-delivery",
        };
        if !cpim.wants(wanted) {
            return;
        }
        let doc = rcs::imdn_message(&self.impu, &peer, &cpim, status).to_bytes();
        self.out.push_back(Output::ImdnMessage {
            peer,
            about: message_id.to_string(),
            status,
            cpim: doc,
        });
    }

    /// An IMDN about `about` (from `peer`), when its sender asked for that disposition
    /// (RFC 5438 §6.2: Disposition-Notification).
    pub(super) fn report_on(&mut self, now: Instant, peer: &str, about: &Cpim, status: ImdnStatus) {
        let wanted = match status {
            ImdnStatus::Displayed => "display",
            _ => "positive-delivery",
        };
        if !about.wants(wanted) {
            return;
        }
        // In a group chat the report is for the member who wrote the message (RFC 5438 §7.1,
        // the CPIM From the focus vouches for), not for the session's other end, the focus.
        let group = self.with_focus(peer);
        let sender = match about.from_uri() {
            Some(f) if group => f,
            _ => peer,
        };
        let doc = rcs::imdn_message(&self.impu, sender, about, status).to_bytes();
        let about_id = about.message_id().unwrap_or("").to_string();
        if self.is_up(peer) {
            // To a focus a report goes unanswered, as RCC.07 clients send them (the focus
            // relays one per member and message), unless the application wants to know the
            // network took it (`report_acks`). In a one-to-one session it is answered hop by
            // hop, as the paper's figure 2 shows.
            let answered = !group || self.opts.report_acks;
            for tid in self.msrp_send_as(now, peer, String::new(), &doc, answered) {
                if self.opts.report_acks && self.report_tids.len() < DEDUP_WINDOW {
                    self.report_tids.insert(tid, (about_id.clone(), status));
                }
            }
        } else {
            self.out.push_back(Output::ImdnMessage {
                peer: peer.to_string(),
                about: about_id,
                status,
                cpim: doc,
            });
        }
    }

    /// Who wrote a message `peer`'s session carried (the CPIM From), and the group it went
    /// to when the session is with a focus.
    pub(super) fn origin(&self, peer: &str, c: &Cpim) -> (String, Option<String>) {
        let from = c
            .from_uri()
            .map(str::to_string)
            .unwrap_or_else(|| peer.to_string());
        let group = self.with_focus(peer).then(|| peer.to_string());
        (from, group)
    }

    /// The reports on a user message just shown to the application (`fresh`: not a copy):
    /// "delivered" / "displayed" at once over the session when the options say so, else it
    /// is kept until the application says it was delivered / shown.
    pub(super) fn reports_on_receipt(
        &mut self,
        now: Instant,
        peer: &str,
        c: Cpim,
        in_session: bool,
        fresh: bool,
    ) {
        let id = c.message_id().unwrap_or("").to_string();
        let mut delivered = !c.wants("positive-delivery");
        if in_session && self.opts.auto_delivered {
            self.report_on(now, peer, &c, ImdnStatus::Delivered);
            delivered = true;
        }
        let mut displayed = !c.wants("display");
        if in_session && self.opts.auto_displayed {
            self.report_on(now, peer, &c, ImdnStatus::Displayed);
            displayed = true;
        }
        if fresh && !(delivered && displayed) {
            self.received.insert(
                id,
                Received {
                    peer: peer.to_string(),
                    cpim: c,
                    delivered,
                },
            );
        }
    }
}
