//! SIP transaction state machines, RFC 3261 §17, without sockets or clocks.
//!
//! Each transaction is a plain struct: feed it messages and the current time
//! (`on_response`, `on_request_retransmission`, `on_ack`, `send_response`, `on_timeout`), then
//! drain what it wants written with [`ClientTransaction::poll_transmit`] and what the
//! transaction user must learn with `poll_event`; [`ClientTransaction::poll_timeout`] says when
//! to call `on_timeout` next. The [`crate::sip::Endpoint`] drives them over real sockets; the
//! unit tests below drive them with a fake clock.
//!
//! Client INVITE transaction (§17.1.1, figure 5):
//! ```text
//!            send INVITE, Timer A (UDP), Timer B
//!  Calling --1xx--> Proceeding --2xx--> Terminated (TU sends ACK for 2xx itself)
//!     |  \--300-699: ACK, Timer D --> Completed --Timer D--> Terminated
//!     \--Timer B: 408 to TU--> Terminated
//! ```
//! Client non-INVITE (§17.1.2, figure 6): Trying --1xx--> Proceeding --final--> Completed
//! (Timer K) --> Terminated; Timer E retransmits (capped at T2), Timer F times out.
//! Server INVITE (§17.2.1, figure 7): Proceeding --2xx--> Terminated; --300-699--> Completed
//! (Timer G retransmits, Timer H waits for ACK) --ACK--> Confirmed (Timer I) --> Terminated.
//! Server non-INVITE (§17.2.2, figure 8): Trying --1xx--> Proceeding --final--> Completed
//! (Timer J absorbs retransmissions) --> Terminated.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::message::{Method, Request, Response};

/// RFC 3261 timer base values (§17.1.1.1, table 4). Tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
    /// Timer C (§16.6 step 11, §16.8): how long an INVITE may go without a final response
    /// after its last provisional one, default 3 minutes. When it fires a transaction that had
    /// a provisional response CANCELs and gives its user a 408; one that had none times out.
    pub c: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            c: Duration::from_secs(180),
        }
    }
}

/// What a client transaction tells its user.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// A response to pass up (provisional or final; retransmissions are absorbed).
    Response(Box<Response>),
    /// Timer B or F fired without a final response (the TU treats this as 408).
    Timeout,
    /// Timer C fired after a provisional response: the transaction CANCELs the INVITE (see
    /// [`ClientTransaction::poll_cancel`]) and its user treats this as 408.
    TimerC,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// Calling (INVITE) or Trying (non-INVITE).
    Initial,
    Proceeding,
    Completed,
    Terminated,
}

/// A client transaction (§17.1).
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    reliable: bool,
    state: ClientState,
    cfg: TimerConfig,
    request: Request,
    request_bytes: Bytes,
    ack: Option<Bytes>,
    /// Timer A or E.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer B or F.
    timeout_at: Option<Instant>,
    /// Timer D or K.
    linger_until: Option<Instant>,
    /// Timer C (INVITE only).
    timer_c_at: Option<Instant>,
    /// Timer C fired: the user has its 408; what still comes is absorbed (non-2xx ACKed).
    abandoned: bool,
    /// A CANCEL to send (Timer C).
    cancel: Option<Request>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts a transaction for `request` (which already carries our Via with its branch) and
    /// queues its first transmission.
    pub fn new(now: Instant, request: Request, reliable: bool, cfg: TimerConfig) -> Self {
        let invite = request.method == Method::Invite;
        let request_bytes = Bytes::from(request.to_bytes());
        let mut t = ClientTransaction {
            invite,
            reliable,
            state: ClientState::Initial,
            cfg,
            request,
            request_bytes: request_bytes.clone(),
            ack: None,
            retransmit_at: None,
            interval: cfg.t1,
            timeout_at: Some(now + cfg.t1 * 64),
            linger_until: None,
            timer_c_at: invite.then_some(now + cfg.c),
            abandoned: false,
            cancel: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.transmit.push_back(request_bytes);
        if !reliable {
            t.retransmit_at = Some(now + cfg.t1);
        }
        t
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Feeds a response whose top Via branch matched this transaction.
    pub fn on_response(&mut self, now: Instant, resp: Response) {
        let final_ = resp.status >= 200;
        match self.state {
            ClientState::Initial | ClientState::Proceeding => {
                if !final_ {
                    self.state = ClientState::Proceeding;
                    if self.invite {
                        // §17.1.1.2: a provisional response stops Timer A (and B).
                        self.retransmit_at = None;
                        if !self.abandoned {
                            self.timeout_at = None;
                        }
                        // §16.7 step 2: a provisional other than 100 restarts Timer C.
                        if resp.status > 100 && !self.abandoned {
                            self.timer_c_at = Some(now + self.cfg.c);
                        }
                    } else if !self.reliable {
                        // §17.1.2.2: in Proceeding, retransmit every T2.
                        self.interval = self.cfg.t2;
                    }
                    if !self.abandoned {
                        self.events.push_back(ClientEvent::Response(Box::new(resp)));
                    }
                    return;
                }
                self.retransmit_at = None;
                self.timeout_at = None;
                self.timer_c_at = None;
                if self.invite && resp.status < 300 {
                    // 2xx: the TU owns the ACK; the transaction ends at once.
                    self.state = ClientState::Terminated;
                } else {
                    if self.invite {
                        let ack = Bytes::from(self.build_ack(&resp).to_bytes());
                        self.transmit.push_back(ack.clone());
                        self.ack = Some(ack);
                    }
                    self.state = ClientState::Completed;
                    let linger = if self.reliable {
                        Duration::ZERO
                    } else if self.invite {
                        Duration::from_secs(32) // Timer D
                    } else {
                        self.cfg.t4 // Timer K
                    };
                    self.linger_until = Some(now + linger);
                }
                if !self.abandoned {
                    self.events.push_back(ClientEvent::Response(Box::new(resp)));
                }
            }
            ClientState::Completed => {
                // A retransmitted final response: INVITE answers it with the same ACK.
                if let Some(ack) = &self.ack {
                    self.transmit.push_back(ack.clone());
                }
            }
            ClientState::Terminated => {}
        }
    }

    /// §17.1.1.3: the ACK for a non-2xx final response: same Request-URI, Call-ID, From, top
    /// Via and Route set as the INVITE, To from the response, CSeq method ACK.
    fn build_ack(&self, resp: &Response) -> Request {
        self.request
            .hop_request(Method::Ack, resp.headers.get("To"))
    }

    /// §9.1: a CANCEL for this INVITE (Timer C), saying why.
    fn build_cancel(&self) -> Request {
        let mut c = self.request.cancel();
        c.headers.push("Reason", "SIP;cause=408;text=\"Timer C\"");
        c
    }

    /// Fires whatever timers are due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(t) = self.linger_until {
            if now >= t {
                self.state = ClientState::Terminated;
                self.linger_until = None;
            }
        }
        if let Some(t) = self.timeout_at {
            if now >= t && matches!(self.state, ClientState::Initial | ClientState::Proceeding) {
                self.state = ClientState::Terminated;
                self.timeout_at = None;
                self.retransmit_at = None;
                self.timer_c_at = None;
                if !self.abandoned {
                    self.events.push_back(ClientEvent::Timeout);
                }
                return;
            }
        }
        if let Some(t) = self.timer_c_at {
            if now >= t {
                self.timer_c_at = None;
                if self.state == ClientState::Initial {
                    // §16.8: no provisional yet: as if a 408 came.
                    self.state = ClientState::Terminated;
                    self.timeout_at = None;
                    self.retransmit_at = None;
                    self.events.push_back(ClientEvent::Timeout);
                    return;
                }
                if self.state == ClientState::Proceeding {
                    // §16.8: CANCEL it; §9.1: give the 487 64*T1 to come.
                    self.cancel = Some(self.build_cancel());
                    self.abandoned = true;
                    self.timeout_at = Some(now + self.cfg.t1 * 64);
                    self.events.push_back(ClientEvent::TimerC);
                }
            }
        }
        if let Some(t) = self.retransmit_at {
            if now >= t && matches!(self.state, ClientState::Initial | ClientState::Proceeding) {
                self.transmit.push_back(self.request_bytes.clone());
                self.interval = if self.invite {
                    self.interval * 2
                } else if self.state == ClientState::Proceeding {
                    self.cfg.t2
                } else {
                    (self.interval * 2).min(self.cfg.t2)
                };
                self.retransmit_at = Some(now + self.interval);
            }
        }
    }

    /// The transport failed to send (§17.1.4): treated like a 503 by the TU.
    pub fn on_transport_error(&mut self) {
        if self.state != ClientState::Terminated {
            self.state = ClientState::Terminated;
            let mut r = self.request.response(503, Some("Service Unavailable"));
            r.headers
                .push("Reason", "SIP;cause=503;text=\"transport error\"");
            self.events.push_back(ClientEvent::Response(Box::new(r)));
        }
    }

    /// Bytes to write, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// A CANCEL the transaction wants sent in a transaction of its own (Timer C).
    pub fn poll_cancel(&mut self) -> Option<Request> {
        self.cancel.take()
    }

    /// Events for the transaction user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When `on_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.retransmit_at,
            self.timeout_at,
            self.linger_until,
            self.timer_c_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// True once the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }
}

/// What a server transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H fired: the ACK for a non-2xx final response never came.
    AckTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Terminated,
}

/// A server transaction (§17.2).
#[derive(Debug)]
pub struct ServerTransaction {
    invite: bool,
    reliable: bool,
    state: ServerState,
    cfg: TimerConfig,
    last_response: Option<Bytes>,
    /// Timer G.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H.
    timeout_at: Option<Instant>,
    /// Timer I or J.
    linger_until: Option<Instant>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// A transaction for a newly received request. INVITE starts in Proceeding (the endpoint
    /// sends 100 Trying, §17.2.1), others in Trying.
    pub fn new(method: &Method, reliable: bool, cfg: TimerConfig) -> Self {
        let invite = *method == Method::Invite;
        ServerTransaction {
            invite,
            reliable,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            cfg,
            last_response: None,
            retransmit_at: None,
            interval: cfg.t1,
            timeout_at: None,
            linger_until: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The same request arrived again: resend the last response, if any.
    pub fn on_request_retransmission(&mut self) {
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            if let Some(r) = &self.last_response {
                self.transmit.push_back(r.clone());
            }
        }
    }

    /// An ACK matched this INVITE transaction (§17.2.1: Completed -> Confirmed).
    pub fn on_ack(&mut self, now: Instant) {
        if self.invite && self.state == ServerState::Completed {
            self.state = ServerState::Confirmed;
            self.retransmit_at = None;
            self.timeout_at = None;
            let i = if self.reliable {
                Duration::ZERO
            } else {
                self.cfg.t4
            };
            self.linger_until = Some(now + i);
        }
    }

    /// The TU sends a response. Returns false when the state does not allow it (a response
    /// after a final one), in which case nothing is sent.
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Bytes) -> bool {
        if !matches!(self.state, ServerState::Trying | ServerState::Proceeding) {
            return false;
        }
        self.transmit.push_back(bytes.clone());
        self.last_response = Some(bytes);
        if status < 200 {
            self.state = ServerState::Proceeding;
        } else if self.invite && status < 300 {
            // §17.2.1: 2xx ends the transaction; retransmitting 2xx is the TU's job.
            self.state = ServerState::Terminated;
        } else if self.invite {
            self.state = ServerState::Completed;
            if !self.reliable {
                self.retransmit_at = Some(now + self.cfg.t1);
            }
            self.timeout_at = Some(now + self.cfg.t1 * 64);
        } else {
            self.state = ServerState::Completed;
            let j = if self.reliable {
                Duration::ZERO
            } else {
                self.cfg.t1 * 64
            };
            self.linger_until = Some(now + j);
        }
        true
    }

    /// Fires whatever timers are due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(t) = self.linger_until {
            if now >= t {
                self.state = ServerState::Terminated;
                self.linger_until = None;
                return;
            }
        }
        if let Some(t) = self.timeout_at {
            if now >= t && self.state == ServerState::Completed {
                self.state = ServerState::Terminated;
                self.retransmit_at = None;
                self.timeout_at = None;
                self.events.push_back(ServerEvent::AckTimeout);
                return;
            }
        }
        if let Some(t) = self.retransmit_at {
            if now >= t && self.state == ServerState::Completed {
                if let Some(r) = &self.last_response {
                    self.transmit.push_back(r.clone());
                }
                self.interval = (self.interval * 2).min(self.cfg.t2);
                self.retransmit_at = Some(now + self.interval);
            }
        }
    }

    /// Bytes to write, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Events for the transaction user.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When `on_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// True once the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// For a non-INVITE transaction in Completed (only Timer J left): when it ends.
    pub fn lingering_until(&self) -> Option<Instant> {
        if !self.invite && self.state == ServerState::Completed {
            self.linger_until
        } else {
            None
        }
    }

    /// The last response sent, to resend on a retransmitted request.
    pub fn last_response(&self) -> Option<Bytes> {
        self.last_response.clone()
    }

    /// True once a final response has been sent.
    pub fn has_final_response(&self) -> bool {
        !matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method) -> Request {
        let mut r = Request::new(method.clone(), "sip:bob@ims.lab");
        r.headers
            .push("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtest");
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", "<sip:alice@ims.lab>;tag=a");
        r.headers.push("To", "<sip:bob@ims.lab>");
        r.headers.push("Call-ID", "c1");
        r.headers.push("CSeq", format!("1 {}", method.as_str()));
        r
    }

    fn drain(t: &mut ClientTransaction) -> usize {
        let mut n = 0;
        while t.poll_transmit().is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn non_invite_udp_retransmits_with_timer_e_and_times_out_with_f() {
        let cfg = TimerConfig::default();
        let t0 = Instant::now();
        let mut t = ClientTransaction::new(t0, req(Method::Register), false, cfg);
        assert_eq!(drain(&mut t), 1);
        // Timer E: 500 ms, 1 s, 2 s, 4 s, 4 s, ... until Timer F at 32 s.
        let mut now = t0;
        let mut sends = Vec::new();
        while let Some(at) = t.poll_timeout() {
            now = at;
            t.on_timeout(now);
            if drain(&mut t) > 0 {
                sends.push((now - t0).as_millis());
            }
            if t.is_terminated() {
                break;
            }
        }
        assert_eq!(&sends[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Timeout)));
        assert_eq!((now - t0).as_millis(), 32_000);
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let t0 = Instant::now();
        let mut t = ClientTransaction::new(t0, req(Method::Register), true, TimerConfig::default());
        assert_eq!(drain(&mut t), 1);
        t.on_timeout(t0 + Duration::from_secs(10));
        assert_eq!(drain(&mut t), 0);
    }

    #[test]
    fn invite_non_2xx_gets_ack_and_retransmitted_final_is_reacked() {
        let t0 = Instant::now();
        let r = req(Method::Invite);
        let mut t = ClientTransaction::new(t0, r.clone(), false, TimerConfig::default());
        drain(&mut t);
        let mut resp = r.response(486, None);
        resp.headers.set("To", "<sip:bob@ims.lab>;tag=b");
        t.on_response(t0, resp.clone());
        let ack = t.poll_transmit().expect("ACK");
        let text = String::from_utf8_lossy(&ack).to_string();
        assert!(text.starts_with("ACK sip:bob@ims.lab SIP/2.0"), "{text}");
        assert!(text.contains("tag=b"));
        assert!(text.contains("CSeq: 1 ACK"));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Response(r)) if r.status == 486));
        t.on_response(t0, resp);
        assert!(
            t.poll_transmit().is_some(),
            "retransmitted 486 is ACKed again"
        );
        assert!(t.poll_event().is_none(), "and not passed up twice");
        t.on_timeout(t0 + Duration::from_secs(32));
        assert!(t.is_terminated());
    }

    #[test]
    fn invite_2xx_terminates_and_provisional_stops_timer_a() {
        let t0 = Instant::now();
        let r = req(Method::Invite);
        let mut t = ClientTransaction::new(t0, r.clone(), false, TimerConfig::default());
        drain(&mut t);
        t.on_response(t0, r.response(100, None));
        t.on_timeout(t0 + Duration::from_secs(40));
        assert_eq!(drain(&mut t), 0);
        assert!(!t.is_terminated());
        t.on_response(t0, r.response(200, None));
        assert!(t.is_terminated());
        assert_eq!(drain(&mut t), 0, "no ACK from the transaction for 2xx");
    }

    #[test]
    fn timer_c_cancels_a_ringing_invite_and_times_out_a_silent_one() {
        let cfg = TimerConfig {
            c: Duration::from_secs(10),
            ..TimerConfig::default()
        };
        let t0 = Instant::now();
        let r = req(Method::Invite);
        let mut t = ClientTransaction::new(t0, r.clone(), true, cfg);
        drain(&mut t);
        let mut ringing = r.response(180, None);
        ringing.headers.set("To", "<sip:bob@ims.lab>;tag=b");
        t.on_response(t0 + Duration::from_secs(5), ringing.clone());
        assert!(matches!(t.poll_event(), Some(ClientEvent::Response(r)) if r.status == 180));
        // The 180 at 5 s restarted Timer C: nothing at 10 s, the CANCEL at 15 s.
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(15)));
        t.on_timeout(t0 + Duration::from_secs(15));
        assert!(matches!(t.poll_event(), Some(ClientEvent::TimerC)));
        let cancel = t.poll_cancel().expect("a CANCEL");
        let text = String::from_utf8_lossy(&cancel.to_bytes()).to_string();
        assert!(text.starts_with("CANCEL sip:bob@ims.lab SIP/2.0"), "{text}");
        assert!(text.contains("CSeq: 1 CANCEL") && text.contains("branch=z9hG4bKtest"));
        assert!(
            !text.contains("tag=b"),
            "the CANCEL's To is the INVITE's: {text}"
        );
        // The 487 is ACKed but not passed up again.
        let mut terminated = r.response(487, None);
        terminated.headers.set("To", "<sip:bob@ims.lab>;tag=b");
        t.on_response(t0 + Duration::from_secs(16), terminated);
        assert!(t.poll_transmit().is_some(), "the 487 is ACKed");
        assert!(t.poll_event().is_none());
        t.on_timeout(t0 + Duration::from_secs(16));
        assert!(t.is_terminated());

        // A callee that never answers the CANCEL either: the transaction ends 64*T1 later.
        let mut t = ClientTransaction::new(t0, r.clone(), true, cfg);
        drain(&mut t);
        t.on_response(t0, ringing);
        t.poll_event();
        t.on_timeout(t0 + Duration::from_secs(10));
        assert!(matches!(t.poll_event(), Some(ClientEvent::TimerC)));
        assert!(!t.is_terminated());
        t.on_timeout(t0 + Duration::from_secs(10) + cfg.t1 * 64);
        assert!(t.is_terminated());
        assert!(t.poll_event().is_none(), "one 408 only");

        // No provisional at all (only possible when Timer C < Timer B): a 408.
        let short = TimerConfig {
            c: Duration::from_secs(2),
            ..cfg
        };
        let mut t = ClientTransaction::new(t0, r, true, short);
        drain(&mut t);
        t.on_timeout(t0 + Duration::from_secs(2));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Timeout)));
        assert!(t.is_terminated());
        assert!(t.poll_cancel().is_none());
    }

    #[test]
    fn server_invite_retransmits_final_until_ack() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut s = ServerTransaction::new(&Method::Invite, false, cfg);
        assert!(s.send_response(t0, 486, Bytes::from_static(b"486")));
        assert!(s.poll_transmit().is_some());
        s.on_timeout(t0 + cfg.t1);
        assert!(s.poll_transmit().is_some(), "Timer G");
        s.on_request_retransmission();
        assert!(
            s.poll_transmit().is_some(),
            "retransmitted INVITE gets the 486 again"
        );
        s.on_ack(t0 + cfg.t1);
        s.on_timeout(t0 + cfg.t1 * 3);
        assert!(s.poll_transmit().is_none());
        s.on_timeout(t0 + cfg.t1 + cfg.t4);
        assert!(s.is_terminated());
    }

    #[test]
    fn server_invite_without_ack_reports_timer_h() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut s = ServerTransaction::new(&Method::Invite, true, cfg);
        s.send_response(t0, 404, Bytes::from_static(b"404"));
        s.on_timeout(t0 + cfg.t1 * 64);
        assert_eq!(s.poll_event(), Some(ServerEvent::AckTimeout));
        assert!(s.is_terminated());
    }

    #[test]
    fn server_non_invite_absorbs_retransmissions_for_timer_j() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut s = ServerTransaction::new(&Method::Register, false, cfg);
        s.on_request_retransmission();
        assert!(
            s.poll_transmit().is_none(),
            "nothing to resend before a response"
        );
        assert!(s.send_response(t0, 200, Bytes::from_static(b"200")));
        s.poll_transmit();
        assert!(
            !s.send_response(t0, 200, Bytes::from_static(b"200")),
            "one final only"
        );
        s.on_request_retransmission();
        assert!(s.poll_transmit().is_some());
        s.on_timeout(t0 + cfg.t1 * 64);
        assert!(s.is_terminated());
    }
}
