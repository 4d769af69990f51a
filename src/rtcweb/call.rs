//! One web client's call through the RTCWeb gateway (patent KR101499354B1 figures 7 and 8),
//! socket-free: web messages ([`WebMessage`]) and SIP messages in, SIP requests/responses and
//! web messages out through [`Call::poll_output`], timers through [`Call::poll_timeout`] /
//! [`Call::handle_timeout`]; time is passed in. The gateway is a UA towards the S-CSCF
//! (RFC 3261) with reliable provisional responses (RFC 3262).
//!
//! Web calls IMS (figure 8; `*` marks what the figure does not draw, see below):
//!
//! ```text
//!  page                 gateway                          S-CSCF / IMS UE
//!   |--OFFER(sdp)------->|                                  |   S806
//!   |<-------WAITING-----|                                  |   S808
//!   |                    |--INVITE (Supported/Require:100rel)->  S812
//!   |                    |<-183 Session Progress (RSeq 1)---|   S814
//!   |                    |--PRACK (RAck 1 1 INVITE)------->*|   RFC 3262 §4
//!   |                    |<-200 (PRACK)-------------------*-|
//!   |                    |<-180 Ringing (RSeq 2)------------|   S816
//!   |<-------Ringing-----|                                  |   S818-S820
//!   |--PRANSWER--------->|--PRACK (RAck 2 1 INVITE)-------->|   S822-S826
//!   |                    |<-200 (PRACK)---------------------|   S828
//!   |<-------OK----------|                                  |   S830-S832
//!   |                    |<-200 (INVITE)-------------------*|   RFC 3261 §13.2.2.4
//!   |<--OK(for OFFER)---*|                                  |   figure 7 "accepted"
//!   |--ANSWER----------->|--ACK---------------------------->|   S834-S838
//! ```
//!
//! Where figure 8 and the RFCs part:
//! - The figure PRACKs only the 180. With `Require: 100rel` the 183 is reliable too and the
//!   callee sends no further reliable 1xx until it is PRACKed (RFC 3262 §3), so the gateway
//!   PRACKs the 183 itself; the page sees nothing of it, as the figure draws nothing.
//! - The figure ends with ANSWER -> ACK and draws no 200 to the INVITE; an ACK acknowledges
//!   only a final response (RFC 3261 §13.2.2.4, §17.1.1.3). The page may send ANSWER when the
//!   figure sends it (after OK); the ACK then waits for the 200. The 200 reaches the page as
//!   `OK` with `for: OFFER` (figure 7's acceptance). If the 200 comes first, the gateway waits
//!   for ANSWER up to [`CallConfig::answer_wait`] (< Timer H), then ACKs and BYEs.
//!
//! IMS calls web (the mirror; the patent draws none): INVITE -> `OFFER` (the endpoint sends
//! 100 Trying); `Ringing` -> 180 (reliable with RSeq when the INVITE allows 100rel); the PRACK
//! is answered 200 here and the page gets `OK` for `Ringing`; `ANSWER` (sdp) -> 200 with the
//! SDP answer; the ACK -> `OK` for `ANSWER`, InCall. A page's `BYE` before `ANSWER` -> 603;
//! no `ANSWER` within [`CallConfig::ring_timeout`] -> 480; an IMS CANCEL -> 487 and `BYE`
//! (reason `CANCEL`) to the page.
//!
//! Client states (figure 7), one place of change (`Call::transition`):
//!
//! ```text
//!   Calling --2xx ACKed--> InCall --page or IMS BYE--> Hangup
//!      |                    |  ^                         ^
//!      |  page gone --------+  | RELOAD (same session)   |
//!      |                    v  |                         |
//!      |                 Reloading --grace timer / BYE---+
//!      +--refused, cancelled, declined, page gone-------->+
//! ```
//!
//! A web message the call cannot take in its state gets `ERROR` with a reason and changes
//! nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{ClientState, Kind, WebMessage};
use super::route::{
    ALLOW, DEFAULT_ANSWER_WAIT, DEFAULT_RELOAD_GRACE, DEFAULT_RING_TIMEOUT, USER_AGENT,
};
use crate::sip::{
    new_branch, new_call_id, new_tag, split_list, uas_response_with, CSeq, Method, NameAddr,
    Request, Response,
};

/// How the gateway appears in SIP, and its timers.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Via transport token (`TCP`, `UDP`).
    pub transport: String,
    /// Via sent-by (`127.0.0.1:5070`).
    pub sent_by: String,
    /// The whole Contact header value (`<sip:rtcweb@127.0.0.1:5070;transport=tcp>`).
    pub contact: String,
    /// Route of out-of-dialog requests (the S-CSCF, `<sip:127.0.0.1:6060;lr>`), if any.
    pub outbound: Option<String>,
    /// How long the page may take to send ANSWER.
    pub answer_wait: Duration,
    /// How long the page may ring before an incoming call is given up (480).
    pub ring_timeout: Duration,
    /// How long the IMS dialog is kept while the page reloads.
    pub reload_grace: Duration,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
}

impl CallConfig {
    /// Defaults (RFC 3261 T1 500 ms, T2 4 s; see [`super::route`] for the others).
    pub fn new(transport: &str, sent_by: &str, contact: &str) -> CallConfig {
        CallConfig {
            transport: transport.to_string(),
            sent_by: sent_by.to_string(),
            contact: contact.to_string(),
            outbound: None,
            answer_wait: DEFAULT_ANSWER_WAIT,
            ring_timeout: DEFAULT_RING_TIMEOUT,
            reload_grace: DEFAULT_RELOAD_GRACE,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    /// Send this request towards the S-CSCF (ACK outside a transaction, the others in one).
    Request(Request),
    /// Send this response in the server transaction of its request.
    Response(Response),
    /// Send this frame to the page.
    Web(WebMessage),
}

/// Who called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The page called an IMS client.
    WebToIms,
    /// An IMS client called the page.
    ImsToWeb,
}

/// The timers, as a table indexed by this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Figure 7 Reloading: the grace period.
    Reload = 0,
    /// Waiting for the page's ANSWER.
    ClientAnswer = 1,
    /// A UAS's reliable 1xx (RFC 3262 §3) or 2xx (RFC 3261 §13.3.1.4) retransmission.
    Retransmit = 2,
}

const TIMERS: [Timer; 3] = [Timer::Reload, Timer::ClientAnswer, Timer::Retransmit];

/// A dialog (RFC 3261 §12), early or confirmed, as the gateway's side holds it.
#[derive(Debug, Clone)]
pub(super) struct SipDialog {
    pub(super) call_id: String,
    /// Our From (UAC) / To (UAS) with our tag.
    pub(super) local: String,
    /// The peer's, with its tag.
    pub(super) remote: String,
    pub(super) remote_target: String,
    pub(super) route_set: Vec<String>,
    /// Our last CSeq.
    pub(super) cseq: u32,
}

impl SipDialog {
    /// A request in this dialog with the next CSeq (RFC 3261 §12.2.1.1).
    pub(super) fn request(&mut self, method: Method, cfg: &CallConfig) -> Request {
        self.cseq += 1;
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        r.headers.push("Via", via(cfg));
        r.headers.push("Max-Forwards", "70");
        for route in &self.route_set {
            r.headers.push("Route", route.clone());
        }
        r.headers.push("From", self.local.clone());
        r.headers.push("To", self.remote.clone());
        r.headers.push("Call-ID", self.call_id.clone());
        r.headers.push("CSeq", format!("{} {method}", self.cseq));
        r
    }
}

/// The page's PRACK of a reliable 180 (figure 8 S820-S832).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageAck {
    /// No Ringing yet.
    NotYet,
    /// Ringing sent, PRANSWER awaited for this RSeq.
    Awaiting(u32),
    /// PRACK sent with this CSeq.
    Sent(u32),
    /// Done, or nothing left to acknowledge (unreliable 180, or the 2xx came first).
    Done,
}

/// The gateway as UAC (web calls IMS).
#[derive(Debug)]
struct Uac {
    invite: Request,
    provisional: bool,
    last_rseq: Option<u32>,
    page_ack: PageAck,
    auto_pracks: Vec<u32>,
    page_answered: bool,
    ok: Option<Response>,
    ack: Option<Request>,
    final_seen: bool,
    cancel_pending: bool,
    /// The INVITE went again without `Require: 100rel` after a 420 (RFC 3261 §8.1.3.5).
    retried_without_100rel: bool,
}

/// The gateway as UAS (IMS calls web).
#[derive(Debug)]
struct Uas {
    invite: Request,
    local_tag: String,
    reliable: bool,
    rseq: u32,
    ringing_sent: bool,
    /// The RSeq of our reliable 180 until it is PRACKed.
    prack_due: Option<u32>,
    final_sent: bool,
    /// The reliable 1xx or 2xx being retransmitted, since when, at which interval.
    retx: Option<(Response, Instant, Duration)>,
    bye_pending: bool,
}

#[derive(Debug)]
enum Leg {
    Uac(Box<Uac>),
    Uas(Box<Uas>),
}

/// One call of one web session.
#[derive(Debug)]
pub struct Call {
    session: String,
    state: ClientState,
    peer: String,
    cfg: CallConfig,
    leg: Leg,
    dialog: Option<SipDialog>,
    remote_sdp: Option<String>,
    sdp_to_page: bool,
    attached: bool,
    timers: [Option<Instant>; 3],
    out: VecDeque<CallOutput>,
}

impl Call {
    fn new(cfg: CallConfig, session: &str, peer: &str, leg: Leg) -> Call {
        Call {
            session: session.to_string(),
            state: ClientState::Calling,
            peer: peer.to_string(),
            cfg,
            leg,
            dialog: None,
            remote_sdp: None,
            sdp_to_page: false,
            attached: true,
            timers: [None; 3],
            out: VecDeque::new(),
        }
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The SIP Call-ID of the IMS leg.
    pub fn call_id(&self) -> &str {
        let inv = match &self.leg {
            Leg::Uac(u) => &u.invite,
            Leg::Uas(u) => &u.invite,
        };
        inv.headers.get("Call-ID").unwrap_or("")
    }

    /// Our tag in the IMS dialog (the INVITE's From tag as UAC, our To tag as UAS): with
    /// the Call-ID it tells this call from the other leg of a web-to-web call, which has the
    /// same Call-ID at the gateway.
    /// The other party's URI.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    pub fn local_tag(&self) -> &str {
        match &self.leg {
            Leg::Uac(u) => tag_of(u.invite.headers.get("From")),
            Leg::Uas(u) => &u.local_tag,
        }
    }

    /// The figure-7 state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Who called.
    pub fn direction(&self) -> Direction {
        match self.leg {
            Leg::Uac(_) => Direction::WebToIms,
            Leg::Uas(_) => Direction::ImsToWeb,
        }
    }

    /// Hung up and nothing left to do on the SIP side: the node may forget the call.
    pub fn is_finished(&self) -> bool {
        self.state == ClientState::Hangup
            && self.timers.iter().all(Option::is_none)
            && match &self.leg {
                Leg::Uac(u) => u.final_seen || !u.provisional && !u.cancel_pending,
                Leg::Uas(_) => true,
            }
    }

    /// The next queued output.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.out.pop_front()
    }

    /// When [`Call::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// The one place the figure-7 state changes; an illegal move is refused (returns false).
    fn transition(&mut self, to: ClientState) -> bool {
        use ClientState::*;
        let ok = matches!(
            (self.state, to),
            (Calling, InCall)
                | (Calling, Hangup)
                | (InCall, Hangup)
                | (InCall, Reloading)
                | (Reloading, InCall)
                | (Reloading, Hangup)
        );
        if ok {
            self.state = to;
            if to == Hangup {
                self.timers[Timer::Reload as usize] = None;
                self.timers[Timer::ClientAnswer as usize] = None;
            }
        }
        ok
    }

    fn arm(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    fn stop(&mut self, t: Timer) {
        self.timers[t as usize] = None;
    }

    fn send_page(&mut self, m: WebMessage) {
        if self.attached {
            self.out.push_back(CallOutput::Web(m));
        }
    }

    fn refuse(&mut self, of: Kind, why: &str) {
        let e = WebMessage::error(Some(&self.session), Some(of), why);
        self.send_page(e);
    }

    /// A frame from the page for this session.
    pub fn handle_web(&mut self, now: Instant, msg: &WebMessage) {
        if msg.session.as_deref() != Some(self.session.as_str()) {
            return self.refuse(msg.kind, "not this call's session");
        }
        if msg.kind == Kind::Reload {
            return self.reattach();
        }
        if self.state == ClientState::Hangup {
            return self.refuse(msg.kind, "the call has ended");
        }
        match (msg.kind, self.direction()) {
            (Kind::Pranswer, Direction::WebToIms) => self.page_pranswer(),
            (Kind::Answer, Direction::WebToIms) => self.page_answer_uac(),
            (Kind::Answer, Direction::ImsToWeb) => self.page_answer_uas(now, msg),
            (Kind::Ringing, Direction::ImsToWeb) => self.page_ringing(now),
            (Kind::Bye, _) => {
                // The web BYE's reason has no SIP counterpart we send (route.rs defaults).
                self.attached = true;
                self.hang_up_from_page();
                self.send_page(WebMessage::ok(Some(&self.session.clone()), Kind::Bye));
            }
            (Kind::Offer, _) => self.refuse(Kind::Offer, "this session has a call already"),
            (k @ (Kind::Pranswer | Kind::Ringing), _) => {
                self.refuse(k, "not a message for this direction of call")
            }
            (k, _) => self.refuse(k, "not a message a page sends in a call"),
        }
    }

    /// The page's connection is gone (figure 7: InCall -> Reloading; a call not yet up ends).
    pub fn web_disconnected(&mut self, now: Instant) {
        self.attached = false;
        match self.state {
            ClientState::InCall => {
                self.transition(ClientState::Reloading);
                self.arm(Timer::Reload, now + self.cfg.reload_grace);
            }
            ClientState::Calling => self.hang_up_from_page(),
            ClientState::Reloading | ClientState::Hangup => {}
        }
    }

    fn reattach(&mut self) {
        if self.state != ClientState::Reloading {
            self.attached = true;
            return self.refuse(Kind::Reload, "the call is not reloading");
        }
        self.attached = true;
        self.stop(Timer::Reload);
        self.transition(ClientState::InCall);
        let mut m = WebMessage::for_session(Kind::State, &self.session)
            .with_sdp(self.remote_sdp.as_deref());
        m.state = Some(ClientState::InCall);
        m.from = Some(self.peer.clone());
        self.send_page(m);
    }

    /// The page ends the call (its BYE, or its connection gone while Calling).
    fn hang_up_from_page(&mut self) {
        match (&mut self.leg, self.state) {
            (_, ClientState::Hangup) => return,
            (Leg::Uac(u), ClientState::Calling) => {
                if u.ok.is_some() {
                    // Accepted but not yet ACKed: ACK, then BYE (RFC 3261 §15).
                    self.send_ack();
                    self.send_bye();
                } else if u.provisional {
                    let c = u.invite.cancel();
                    self.out.push_back(CallOutput::Request(c));
                } else {
                    // No CANCEL before a provisional response (RFC 3261 §9.1).
                    u.cancel_pending = true;
                }
            }
            (Leg::Uas(u), ClientState::Calling) => {
                if u.final_sent {
                    // 2xx sent, ACK not in: BYE once it is (RFC 3261 §15).
                    u.bye_pending = true;
                } else {
                    u.final_sent = true;
                    u.retx = None;
                    self.stop(Timer::Retransmit);
                    let r = self.uas_response(603);
                    self.out.push_back(CallOutput::Response(r));
                }
            }
            (_, ClientState::InCall | ClientState::Reloading) => self.send_bye(),
        }
        self.transition(ClientState::Hangup);
    }

    /// A SIP response from the IMS side.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        if resp.headers.get("Call-ID") != Some(self.call_id()) {
            return;
        }
        let Some(cseq) = resp.headers.get("CSeq").and_then(|c| CSeq::parse(c).ok()) else {
            return;
        };
        match cseq.method {
            Method::Invite => self.invite_response(now, resp),
            Method::Prack => self.prack_response(cseq.seq, resp),
            _ => {} // BYE and CANCEL answers change nothing: the page was told at once.
        }
    }

    /// A SIP request from the IMS side in this call (PRACK, ACK, BYE, CANCEL, ...).
    pub fn handle_request(&mut self, _now: Instant, req: &Request) {
        if req.headers.get("Call-ID") != Some(self.call_id()) {
            if req.method != Method::Ack {
                self.out
                    .push_back(CallOutput::Response(req.response(481, None)));
            }
            return;
        }
        match req.method {
            Method::Ack => self.ims_ack(req),
            Method::Prack => self.ims_prack(req),
            Method::Bye => self.ims_bye(req),
            Method::Cancel => self.ims_cancel(req),
            _ => {
                // re-INVITE, UPDATE, INFO...: not translated in this step.
                let mut r = req.response(501, None);
                r.headers.push("Allow", ALLOW);
                self.out.push_back(CallOutput::Response(r));
            }
        }
    }

    fn ims_bye(&mut self, req: &Request) {
        self.out
            .push_back(CallOutput::Response(req.response(200, None)));
        if let Leg::Uas(u) = &mut self.leg {
            if !u.final_sent {
                // A BYE in an early dialog: 487 for the INVITE (RFC 3261 §15.1.2).
                u.final_sent = true;
                let r = self.uas_response(487);
                self.out.push_back(CallOutput::Response(r));
            }
            if let Leg::Uas(u) = &mut self.leg {
                u.retx = None;
            }
            self.stop(Timer::Retransmit);
        }
        if self.state != ClientState::Hangup {
            self.send_page(WebMessage::for_session(Kind::Bye, &self.session));
            self.transition(ClientState::Hangup);
        }
    }

    /// Timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for t in TIMERS {
            if self.timers[t as usize].is_some_and(|at| at <= now) {
                self.timers[t as usize] = None;
                self.fire(now, t);
            }
        }
    }

    fn fire(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::Reload => {
                if self.state == ClientState::Reloading {
                    self.send_bye();
                    self.transition(ClientState::Hangup);
                }
            }
            Timer::ClientAnswer => {
                if self.state != ClientState::Calling {
                    return;
                }
                let bye = WebMessage::for_session(Kind::Bye, &self.session)
                    .with_reason(Some("no ANSWER from the page"));
                match &mut self.leg {
                    Leg::Uac(_) => {
                        self.send_ack();
                        self.send_bye();
                    }
                    Leg::Uas(u) => {
                        u.final_sent = true;
                        u.retx = None;
                        self.stop(Timer::Retransmit);
                        let r = self.uas_response(480);
                        self.out.push_back(CallOutput::Response(r));
                    }
                }
                self.send_page(bye);
                self.transition(ClientState::Hangup);
            }
            Timer::Retransmit => self.retransmit(now),
        }
    }

    /// A request in the (early or confirmed) dialog, with the next CSeq (RFC 3261 §12.2.1.1).
    fn in_dialog(&mut self, method: Method) -> Option<Request> {
        let d = self.dialog.as_mut()?;
        Some(d.request(method, &self.cfg))
    }

    fn send_bye(&mut self) {
        if let Some(bye) = self.in_dialog(Method::Bye) {
            self.out.push_back(CallOutput::Request(bye));
        }
    }
}

/// The `tag` parameter of a From/To value ("" without one).
pub(super) fn tag_of(h: Option<&str>) -> &str {
    let Some(h) = h else { return "" };
    let params = h.rsplit_once('>').map_or(h, |(_, p)| p);
    params
        .split(';')
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("tag").then_some(v.trim())
        })
        .unwrap_or("")
}

pub(super) fn contact_uri(h: Option<&str>) -> Option<String> {
    NameAddr::parse(h?).ok().map(|na| na.uri.to_string())
}

pub(super) fn cseq_of(r: &Request) -> Option<CSeq> {
    r.headers.get("CSeq").and_then(|c| CSeq::parse(c).ok())
}

fn list_of(h: &crate::sip::Headers, name: &str) -> Vec<String> {
    h.get_all(name)
        .flat_map(split_list)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub(super) fn via(cfg: &CallConfig) -> String {
    format!(
        "SIP/2.0/{} {};branch={};rport",
        cfg.transport,
        cfg.sent_by,
        new_branch()
    )
}

mod uac;
mod uas;

#[cfg(test)]
mod tests;
