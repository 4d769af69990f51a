//! The gateway as UAC (RFC 3261 §13.2, RFC 3262 §4): a page's OFFER becomes an INVITE, and
//! figure 8's responses come back to the page.

use super::*;

impl Call {
    /// A page's `OFFER` (figure 8 S806): WAITING to the page, INVITE to the IMS. `user` is the
    /// page's web identity (its `REGISTER`), the INVITE's From. An unusable OFFER is refused
    /// with the `ERROR` to send back.
    pub fn offer(
        _now: Instant,
        cfg: CallConfig,
        offer: &WebMessage,
        user: &str,
    ) -> Result<Call, Box<WebMessage>> {
        let session = offer.session.as_deref();
        let refuse = |why: &str| Box::new(WebMessage::error(session, Some(Kind::Offer), why));
        if offer.kind != Kind::Offer {
            return Err(refuse("not an OFFER"));
        }
        let (Some(session), Some(to), Some(sdp)) = (session, &offer.to, &offer.sdp) else {
            return Err(refuse("OFFER needs session, to and sdp"));
        };
        if sdp.trim().is_empty() {
            return Err(refuse("OFFER needs an SDP offer"));
        }
        let mut r = Request::new(Method::Invite, to.clone());
        r.headers.push("Via", via(&cfg));
        r.headers.push("Max-Forwards", "70");
        if let Some(route) = &cfg.outbound {
            r.headers.push("Route", route.clone());
        }
        r.headers
            .push("From", format!("<{user}>;tag={}", new_tag()));
        r.headers.push("To", format!("<{to}>"));
        let host = cfg.sent_by.rsplit_once(':').map_or(&*cfg.sent_by, |h| h.0);
        r.headers.push("Call-ID", new_call_id(host));
        r.headers.push("CSeq", "1 INVITE");
        r.headers.push("Contact", cfg.contact.clone());
        r.headers.push("P-Preferred-Identity", format!("<{user}>"));
        r.headers.push("Supported", "100rel");
        r.headers.push("Require", "100rel");
        r.headers.push("Allow", ALLOW);
        r.headers.push("User-Agent", USER_AGENT);
        r.headers.push("Content-Type", "application/sdp");
        r.body = Bytes::copy_from_slice(sdp.as_bytes());
        let mut call = Call::new(cfg, session, to, Leg::Uac(Box::new(Uac::new(r.clone()))));
        call.send_page(WebMessage::for_session(Kind::Waiting, session));
        call.out.push_back(CallOutput::Request(r));
        Ok(call)
    }

    pub(super) fn page_pranswer(&mut self) {
        let Leg::Uac(u) = &self.leg else { return };
        if self.state != ClientState::Calling {
            return self.refuse(Kind::Pranswer, "the call is not being set up");
        }
        match u.page_ack {
            PageAck::Awaiting(rseq) => {
                let inv_seq = cseq_of(&u.invite).map_or(1, |c| c.seq);
                let Some(mut prack) = self.in_dialog(Method::Prack) else {
                    return self.refuse(Kind::Pranswer, "no early dialog");
                };
                prack
                    .headers
                    .push("RAck", format!("{rseq} {inv_seq} INVITE"));
                let seq = cseq_of(&prack).map_or(0, |c| c.seq);
                if let Leg::Uac(u) = &mut self.leg {
                    u.page_ack = PageAck::Sent(seq);
                }
                self.out.push_back(CallOutput::Request(prack));
            }
            // Nothing reliable to acknowledge (RFC 3262 §4): figure 8's OK at once.
            PageAck::Done => {
                self.send_page(WebMessage::ok(Some(&self.session.clone()), Kind::Pranswer))
            }
            PageAck::NotYet => self.refuse(Kind::Pranswer, "no Ringing to acknowledge"),
            PageAck::Sent(_) => self.refuse(Kind::Pranswer, "PRANSWER already sent"),
        }
    }

    pub(super) fn page_answer_uac(&mut self) {
        let Leg::Uac(u) = &mut self.leg else { return };
        if self.state != ClientState::Calling || u.page_answered {
            return self.refuse(Kind::Answer, "the call is not waiting for ANSWER");
        }
        u.page_answered = true;
        // Figure 8 S834-S838 turns ANSWER into ACK; an ACK needs the 2xx (RFC 3261
        // §13.2.2.4), so without it the ACK waits for it in `invite_response`.
        if u.ok.is_some() {
            self.send_ack();
            self.stop(Timer::ClientAnswer);
            self.transition(ClientState::InCall);
        }
    }

    pub(super) fn invite_response(&mut self, now: Instant, resp: &Response) {
        let Leg::Uac(u) = &mut self.leg else { return };
        if resp.status == 100 {
            return;
        }
        if resp.is_provisional() {
            u.provisional = true;
            if u.cancel_pending {
                u.cancel_pending = false;
                let c = u.invite.cancel();
                self.out.push_back(CallOutput::Request(c));
                return;
            }
            return self.provisional(resp);
        }
        if resp.status == 420 && !u.retried_without_100rel && unsupported_100rel(resp) {
            // A callee without RFC 3262 (RFC 3261 §8.1.3.5): the INVITE once more without
            // the extension, a new transaction (next CSeq, new branch) in the same call.
            u.retried_without_100rel = true;
            let mut again = u.invite.clone();
            again.headers.remove("Require");
            again.headers.remove("Via");
            again.headers.push_front("Via", via(&self.cfg));
            let seq = cseq_of(&again).map_or(1, |c| c.seq) + 1;
            again.headers.set("CSeq", format!("{seq} INVITE"));
            u.invite = again.clone();
            self.out.push_back(CallOutput::Request(again));
            return;
        }
        u.final_seen = true;
        if !resp.is_success() {
            if self.state == ClientState::Calling {
                let reason = format!("{} {}", resp.status, resp.reason);
                let bye =
                    WebMessage::for_session(Kind::Bye, &self.session).with_reason(Some(&reason));
                self.send_page(bye);
                self.transition(ClientState::Hangup);
            }
            return;
        }
        if let Some(ack) = &u.ack {
            // A retransmitted 2xx: the same ACK again (RFC 3261 §13.2.2.4).
            let ack = ack.clone();
            self.out.push_back(CallOutput::Request(ack));
            return;
        }
        if u.ok.is_some() {
            return; // retransmitted while the page's ANSWER is awaited: the page knows
        }
        u.ok = Some(resp.clone());
        let invite = u.invite.clone();
        // The confirmed dialog keeps the CSeq the early one reached with PRACKs.
        let cseq = self.dialog.as_ref().map_or(1, |d| d.cseq);
        let mut d = uac_dialog(&invite, resp);
        d.cseq = d.cseq.max(cseq);
        self.dialog = Some(d);
        if self.remote_sdp.is_none() && !resp.body.is_empty() {
            self.remote_sdp = Some(String::from_utf8_lossy(&resp.body).into_owned());
        }
        if self.state == ClientState::Hangup {
            // Accepted after the page gave up: ACK and BYE (RFC 3261 §15).
            self.send_ack();
            self.send_bye();
            return;
        }
        let sdp = if self.sdp_to_page {
            None
        } else {
            self.remote_sdp.clone()
        };
        self.sdp_to_page |= sdp.is_some();
        let ok = WebMessage::ok(Some(&self.session.clone()), Kind::Offer).with_sdp(sdp.as_deref());
        self.send_page(ok);
        let Leg::Uac(u) = &mut self.leg else { return };
        if !matches!(u.page_ack, PageAck::Sent(_)) {
            u.page_ack = PageAck::Done;
        }
        if u.page_answered {
            self.send_ack();
            self.transition(ClientState::InCall);
        } else {
            self.arm(Timer::ClientAnswer, now + self.cfg.answer_wait);
        }
    }

    /// A 1xx to our INVITE (RFC 3262 §4).
    pub(super) fn provisional(&mut self, resp: &Response) {
        let Leg::Uac(u) = &mut self.leg else { return };
        let reliable = list_of(&resp.headers, "Require")
            .iter()
            .any(|r| r.eq_ignore_ascii_case("100rel"));
        let rseq = resp
            .headers
            .get("RSeq")
            .and_then(|v| v.trim().parse::<u32>().ok());
        let body =
            (!resp.body.is_empty()).then(|| String::from_utf8_lossy(&resp.body).into_owned());
        let (true, Some(rseq)) = (reliable, rseq) else {
            // Unreliable: 180 still rings the page; a PRANSWER then has nothing to PRACK.
            if self.remote_sdp.is_none() {
                self.remote_sdp = body;
            }
            if resp.status == 180 && u.page_ack == PageAck::NotYet {
                u.page_ack = PageAck::Done;
                self.ring_page();
            }
            return;
        };
        if let Some(last) = u.last_rseq {
            if rseq != last.wrapping_add(1) {
                return; // a retransmission, or out of order: not acknowledged (RFC 3262 §4)
            }
        }
        u.last_rseq = Some(rseq);
        let invite = u.invite.clone();
        let to_page = resp.status == 180 && u.page_ack == PageAck::NotYet;
        let cseq = self.dialog.as_ref().map_or(1, |d| d.cseq);
        let mut d = uac_dialog(&invite, resp);
        d.cseq = cseq;
        self.dialog = Some(d);
        if self.remote_sdp.is_none() {
            self.remote_sdp = body;
        }
        if self.state != ClientState::Calling {
            return;
        }
        if to_page {
            if let Leg::Uac(u) = &mut self.leg {
                u.page_ack = PageAck::Awaiting(rseq);
            }
            self.ring_page();
        } else {
            // Not drawn in figure 8 (a 183, or a 1xx after the page's PRACK): ours to PRACK.
            let inv_seq = cseq_of(&invite).map_or(1, |c| c.seq);
            if let Some(mut prack) = self.in_dialog(Method::Prack) {
                prack
                    .headers
                    .push("RAck", format!("{rseq} {inv_seq} INVITE"));
                let seq = cseq_of(&prack).map_or(0, |c| c.seq);
                if let Leg::Uac(u) = &mut self.leg {
                    u.auto_pracks.push(seq);
                }
                self.out.push_back(CallOutput::Request(prack));
            }
        }
    }

    pub(super) fn ring_page(&mut self) {
        let sdp = if self.sdp_to_page {
            None
        } else {
            self.remote_sdp.clone()
        };
        self.sdp_to_page |= sdp.is_some();
        let m = WebMessage::for_session(Kind::Ringing, &self.session).with_sdp(sdp.as_deref());
        self.send_page(m);
    }

    pub(super) fn prack_response(&mut self, seq: u32, resp: &Response) {
        let Leg::Uac(u) = &mut self.leg else { return };
        if resp.is_provisional() {
            return;
        }
        if let Some(i) = u.auto_pracks.iter().position(|s| *s == seq) {
            u.auto_pracks.remove(i);
            return;
        }
        if u.page_ack != PageAck::Sent(seq) {
            return;
        }
        u.page_ack = PageAck::Done;
        let session = self.session.clone();
        if resp.is_success() {
            self.send_page(WebMessage::ok(Some(&session), Kind::Pranswer));
        } else {
            let why = format!("PRACK refused: {} {}", resp.status, resp.reason);
            self.refuse(Kind::Pranswer, &why);
        }
    }

    /// The ACK of our INVITE's 2xx (RFC 3261 §13.2.2.4): the INVITE's CSeq number.
    pub(super) fn send_ack(&mut self) {
        let Leg::Uac(u) = &self.leg else { return };
        if u.ack.is_some() || u.ok.is_none() {
            return;
        }
        let seq = cseq_of(&u.invite).map_or(1, |c| c.seq);
        let Some(mut ack) = self.in_dialog(Method::Ack) else {
            return;
        };
        if let Some(d) = self.dialog.as_mut() {
            d.cseq -= 1; // ACK does not use a new CSeq
        }
        ack.headers.set("CSeq", format!("{seq} ACK"));
        if let Leg::Uac(u) = &mut self.leg {
            u.ack = Some(ack.clone());
        }
        self.out.push_back(CallOutput::Request(ack));
    }
}

impl Uac {
    fn new(invite: Request) -> Uac {
        Uac {
            invite,
            provisional: false,
            last_rseq: None,
            page_ack: PageAck::NotYet,
            auto_pracks: Vec::new(),
            page_answered: false,
            ok: None,
            ack: None,
            final_seen: false,
            cancel_pending: false,
            retried_without_100rel: false,
        }
    }
}

/// The UAC's dialog from a 1xx/2xx with a To tag (RFC 3261 §12.1.2).
fn uac_dialog(invite: &Request, resp: &Response) -> SipDialog {
    let mut route_set: Vec<String> = resp
        .headers
        .get_all("Record-Route")
        .map(str::to_string)
        .collect();
    route_set.reverse();
    SipDialog {
        call_id: invite.headers.get("Call-ID").unwrap_or("").to_string(),
        local: invite.headers.get("From").unwrap_or("").to_string(),
        remote: resp.headers.get("To").unwrap_or("").to_string(),
        remote_target: contact_uri(resp.headers.get("Contact")).unwrap_or(invite.uri.clone()),
        route_set,
        cseq: cseq_of(invite).map_or(1, |c| c.seq),
    }
}

/// Whether a 420 names 100rel in Unsupported (RFC 3261 §20.40).
fn unsupported_100rel(resp: &Response) -> bool {
    list_of(&resp.headers, "Unsupported")
        .iter()
        .any(|x| x.eq_ignore_ascii_case("100rel"))
}
