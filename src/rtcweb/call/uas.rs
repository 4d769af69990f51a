//! The gateway as UAS (RFC 3261 §13.3, RFC 3262 §3): an IMS INVITE for a web user becomes an
//! OFFER to the page, the page's Ringing and ANSWER become the 180 and the 200.

use super::*;

impl Call {
    /// An INVITE from the IMS for a web user of ours: `OFFER` to the page under `session`.
    /// An INVITE the gateway cannot take is refused with the response to send.
    pub fn incoming(
        now: Instant,
        cfg: CallConfig,
        session: &str,
        invite: &Request,
    ) -> Result<Call, Response> {
        let refuse = |status: u16| invite.response(status, None);
        let from = invite
            .headers
            .get("From")
            .and_then(|f| NameAddr::parse(f).ok());
        let to = invite
            .headers
            .get("To")
            .and_then(|f| NameAddr::parse(f).ok());
        let cseq = invite.headers.get("CSeq").and_then(|c| CSeq::parse(c).ok());
        let (Some(from), Some(to), Some(_), true) = (
            from,
            to,
            cseq,
            invite.method == Method::Invite && invite.headers.has("Call-ID"),
        ) else {
            return Err(refuse(400));
        };
        let required = list_of(&invite.headers, "Require");
        if let Some(bad) = required.iter().find(|r| !r.eq_ignore_ascii_case("100rel")) {
            let mut r = refuse(420);
            r.headers.push("Unsupported", bad.to_string());
            return Err(r);
        }
        if invite.body.is_empty() {
            // An offerless INVITE would make the page's ANSWER an offer; not supported yet.
            let mut r = refuse(488);
            r.headers
                .push("Warning", "399 rtcweb \"an SDP offer is needed\"");
            return Err(r);
        }
        let reliable = !required.is_empty()
            || list_of(&invite.headers, "Supported")
                .iter()
                .any(|s| s.eq_ignore_ascii_case("100rel"));
        let sdp = String::from_utf8_lossy(&invite.body).into_owned();
        let uas = Uas {
            invite: invite.clone(),
            local_tag: new_tag(),
            reliable,
            rseq: rand::random::<u32>() % 0x7fff_0000 + 1,
            ringing_sent: false,
            prack_due: None,
            final_sent: false,
            retx: None,
            bye_pending: false,
        };
        let peer = from.uri.to_string();
        let mut call = Call::new(cfg, session, &peer, Leg::Uas(Box::new(uas)));
        call.remote_sdp = Some(sdp.clone());
        let mut offer = WebMessage::for_session(Kind::Offer, session).with_sdp(Some(&sdp));
        offer.from = Some(peer);
        offer.to = Some(to.uri.to_string());
        call.send_page(offer);
        call.arm(Timer::ClientAnswer, now + call.cfg.ring_timeout);
        Ok(call)
    }

    pub(super) fn page_answer_uas(&mut self, now: Instant, msg: &WebMessage) {
        let Leg::Uas(u) = &mut self.leg else { return };
        if self.state != ClientState::Calling || u.final_sent {
            return self.refuse(Kind::Answer, "the call is not waiting for ANSWER");
        }
        let Some(sdp) = msg.sdp.as_deref().filter(|s| !s.trim().is_empty()) else {
            return self.refuse(Kind::Answer, "ANSWER needs the SDP answer");
        };
        let mut ok = self.uas_response(200);
        ok.headers.push("Allow", ALLOW);
        ok.headers.push("Content-Type", "application/sdp");
        ok.body = Bytes::copy_from_slice(sdp.as_bytes());
        if let Leg::Uas(u) = &mut self.leg {
            u.final_sent = true;
            // A 2xx ends the reliable 1xx's retransmissions; our 180 has no SDP, so the 2xx
            // may go before its PRACK (RFC 3262 §3).
            u.retx = Some((ok.clone(), now, self.cfg.t1));
        }
        self.stop(Timer::ClientAnswer);
        self.arm(Timer::Retransmit, now + self.cfg.t1);
        self.out.push_back(CallOutput::Response(ok));
    }

    pub(super) fn page_ringing(&mut self, now: Instant) {
        let Leg::Uas(u) = &mut self.leg else { return };
        if self.state != ClientState::Calling || u.ringing_sent || u.final_sent {
            return self.refuse(Kind::Ringing, "the call is not waiting for Ringing");
        }
        u.ringing_sent = true;
        let (reliable, rseq) = (u.reliable, u.rseq);
        let mut r = self.uas_response(180);
        if reliable {
            r.headers.push("Require", "100rel");
            r.headers.push("RSeq", rseq.to_string());
            if let Leg::Uas(u) = &mut self.leg {
                u.prack_due = Some(rseq);
                u.retx = Some((r.clone(), now, self.cfg.t1));
            }
            self.arm(Timer::Retransmit, now + self.cfg.t1);
        }
        self.out.push_back(CallOutput::Response(r));
    }

    pub(super) fn ims_ack(&mut self, req: &Request) {
        let Leg::Uas(u) = &mut self.leg else { return };
        let inv_seq = cseq_of(&u.invite).map(|c| c.seq);
        let is_2xx = matches!(&u.retx, Some((r, _, _)) if r.is_success());
        if cseq_of(req).map(|c| c.seq) != inv_seq || !is_2xx {
            return; // an ACK of a non-2xx is the transaction's, or a late duplicate
        }
        u.retx = None;
        let bye_pending = u.bye_pending;
        self.stop(Timer::Retransmit);
        if bye_pending {
            self.send_bye();
        } else if self.transition(ClientState::InCall) {
            self.send_page(WebMessage::ok(Some(&self.session.clone()), Kind::Answer));
        }
    }

    pub(super) fn ims_prack(&mut self, req: &Request) {
        let Leg::Uas(u) = &mut self.leg else {
            return self
                .out
                .push_back(CallOutput::Response(req.response(481, None)));
        };
        let inv_seq = cseq_of(&u.invite).map_or(0, |c| c.seq);
        let rack = req
            .headers
            .get("RAck")
            .map(|v| v.split_whitespace().collect::<Vec<_>>());
        // The 180 stays unacknowledged after a 2xx went; its PRACK still gets 200.
        let matches = u.prack_due.is_some_and(|due| {
            matches!(rack.as_deref(), Some([r, c, m])
                if r.parse() == Ok(due) && c.parse() == Ok(inv_seq) && m.eq_ignore_ascii_case("INVITE"))
        });
        if !matches {
            // RFC 3262 §3: a PRACK matching no unacknowledged reliable 1xx gets 481.
            return self
                .out
                .push_back(CallOutput::Response(req.response(481, None)));
        }
        u.prack_due = None;
        if matches!(&u.retx, Some((r, _, _)) if r.is_provisional()) {
            u.retx = None;
            self.stop(Timer::Retransmit);
        }
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        self.out.push_back(CallOutput::Response(ok));
        self.send_page(WebMessage::ok(Some(&self.session.clone()), Kind::Ringing));
    }

    pub(super) fn ims_cancel(&mut self, req: &Request) {
        self.out
            .push_back(CallOutput::Response(req.response(200, None)));
        let Leg::Uas(u) = &mut self.leg else { return };
        if u.final_sent {
            return; // too late: the CANCEL changes nothing (RFC 3261 §9.2)
        }
        u.final_sent = true;
        u.retx = None;
        self.stop(Timer::Retransmit);
        let r = self.uas_response(487);
        self.out.push_back(CallOutput::Response(r));
        let bye = WebMessage::for_session(Kind::Bye, &self.session).with_reason(Some("CANCEL"));
        self.send_page(bye);
        self.transition(ClientState::Hangup);
    }

    /// A response of ours to the IMS INVITE (To tag, Record-Route, Contact), opening the
    /// UAS dialog at the first 1xx/2xx (RFC 3261 §12.1.1). Empty on a UAC leg (never asked).
    pub(super) fn uas_response(&mut self, status: u16) -> Response {
        let Leg::Uas(u) = &self.leg else {
            return Response {
                status,
                reason: String::new(),
                headers: Default::default(),
                body: Bytes::new(),
            };
        };
        let inv = &u.invite;
        let r = uas_response_with(inv, status, &u.local_tag, &self.cfg.contact);
        if self.dialog.is_none() && (101..300).contains(&status) {
            self.dialog = Some(SipDialog {
                call_id: inv.headers.get("Call-ID").unwrap_or("").to_string(),
                local: r.headers.get("To").unwrap_or("").to_string(),
                remote: inv.headers.get("From").unwrap_or("").to_string(),
                remote_target: contact_uri(inv.headers.get("Contact"))
                    .unwrap_or_else(|| inv.uri.clone()),
                route_set: inv
                    .headers
                    .get_all("Record-Route")
                    .map(str::to_string)
                    .collect(),
                cseq: 0,
            });
        }
        r
    }

    /// Timer::Retransmit: the reliable 1xx or the 2xx again, or give up after 64·T1.
    pub(super) fn retransmit(&mut self, now: Instant) {
        let Leg::Uas(u) = &mut self.leg else { return };
        let Some((resp, since, interval)) = u.retx.take() else {
            return;
        };
        if now.duration_since(since) >= self.cfg.t1 * 64 {
            // No PRACK: reject with a 5xx (RFC 3262 §3); no ACK: BYE (RFC 3261
            // §13.3.1.4).
            let reason = if resp.is_success() {
                "no ACK"
            } else {
                "no PRACK"
            };
            if resp.is_success() {
                self.send_bye();
            } else {
                u.final_sent = true;
                let r = self.uas_response(500);
                self.out.push_back(CallOutput::Response(r));
            }
            if self.state != ClientState::Hangup {
                let bye =
                    WebMessage::for_session(Kind::Bye, &self.session).with_reason(Some(reason));
                self.send_page(bye);
                self.transition(ClientState::Hangup);
            }
            return;
        }
        // 2xx: doubling up to T2 (RFC 3261 §13.3.1.4); reliable 1xx: doubling (RFC 3262 §3).
        let next = if resp.is_success() {
            (interval * 2).min(self.cfg.t2)
        } else {
            interval * 2
        };
        u.retx = Some((resp.clone(), since, next));
        self.arm(Timer::Retransmit, now + next);
        self.out.push_back(CallOutput::Response(resp));
    }
}
