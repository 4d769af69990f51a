//! The UE's SMS over IP without sockets (STYLE.md §1): what goes out in each
//! `application/vnd.3gpp.sms` MESSAGE, what the network's RP messages answer, and what the
//! application is told. The driver feeds it [`Input`]s with the time and carries out its
//! [`Output`]s.
//!
//! A submission, one per text (3GPP TS 24.341 §5.3.1.2, TS 24.011 §6.2, TS 23.040 §10.1):
//!
//! ```text
//!            submit
//!              │  part 1: MESSAGE tel:SC  (RP-DATA, RP-MR fresh; SMS-SUBMIT, TP-MR fresh, SRR)
//!              v
//!        AwaitingAck ──RP-ERROR / MESSAGE refused / no RP-ACK in 30 s──> failed
//!          │     ^
//!   RP-ACK │     │ more parts: the next part's MESSAGE
//!          v     │
//!          ├─────┘
//!          │ the last part's RP-ACK: Submitted
//!          v
//!      AwaitingReports ──a status report TP-ST >= 0x40──> failed
//!          │ every part's report TP-ST < 0x20 (0x20-0x3F: still trying, keep waiting)
//!          v
//!      Delivered
//! ```
//!
//! Status reports are matched by TP-MR and TP-RA (TS 23.040 §9.2.2.3) and may come before
//! the last part's RP-ACK; every RP-DATA from the network (SMS-DELIVER or
//! SMS-STATUS-REPORT) is answered with an RP-ACK of its RP-MR in a MESSAGE of our own to
//! whoever sent it (TS 24.341 §5.3.2.4).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sms::rp::{cause, RpMessage};
use crate::sms::tpdu::{DeliverReport, Tpdu};
use crate::sms::Direction;

use super::mo::{self, Parts};
use super::mt::Inbox;
use super::{names, SmsEvent, SmsId, SmsSendError};

/// How long a part waits for its RP-ACK (TS 24.011 §10 TR1M is 35-45 s; the lab answers in
/// well under a second).
pub const RP_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a submitted message waits for its status reports before it is forgotten.
pub const REPORT_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Submissions held at once (the oldest is forgotten first).
pub const MAX_SUBMISSIONS: usize = 256;

/// Who sent an RP message, to answer them: the MESSAGE's From URI (where the answer goes)
/// and Call-ID (the answer's `In-Reply-To`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub uri: String,
    pub call_id: String,
}

/// What the driver tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An `application/vnd.3gpp.sms` MESSAGE came (and was answered 200): who sent it and
    /// its body.
    Message { from: Origin, body: Vec<u8> },
    /// The final response to our MESSAGE carrying part RP-DATA `rp_mr` of submission `id`.
    Answered {
        id: SmsId,
        rp_mr: u8,
        status: u16,
        reason: String,
    },
}

/// What the core asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a MESSAGE to `to` with `body` (an RP message); `about` names the submission and
    /// RP-MR whose final response is to come back as [`Input::Answered`]; an RP answer to
    /// the network's MESSAGE of Call-ID `in_reply_to` says so (`In-Reply-To`, RFC 3261
    /// §20.21).
    Message {
        to: String,
        body: Vec<u8>,
        about: Option<(SmsId, u8)>,
        in_reply_to: Option<String>,
    },
    /// Tell the application.
    Event(SmsEvent),
    /// An MMS notification came from `from`: the driver fetches its Content-Location, then
    /// tells the application ([`SmsEvent::Mms`]).
    Mms {
        from: String,
        notification: crate::mms::Notification,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The last part sent went out in RP-DATA `rp_mr`; its RP-ACK is due by `until`.
    AwaitingAck { rp_mr: u8, until: Instant },
    /// Every part was taken; their status reports are due by `until`.
    AwaitingReports { until: Instant },
}

#[derive(Debug)]
struct Submission {
    id: SmsId,
    smsc: String,
    parts: Parts,
    /// The concatenation reference of its parts.
    reference: u8,
    /// TP-MR of each part sent so far.
    tp_mrs: Vec<u8>,
    /// The last TP-ST reported for each part sent so far.
    status: Vec<Option<u8>>,
    state: State,
}

impl Submission {
    fn delivered(&self) -> bool {
        matches!(self.state, State::AwaitingReports { .. })
            && self.status.len() == self.parts.texts.len()
            && self.status.iter().all(|s| s.is_some_and(|s| s < 0x20))
    }

    fn deadline(&self) -> Instant {
        match self.state {
            State::AwaitingAck { until, .. } | State::AwaitingReports { until } => until,
        }
    }
}

/// The SMS side of a UE.
#[derive(Debug)]
pub struct SmsCore {
    next_id: SmsId,
    rp_mr: u8,
    tp_mr: u8,
    reference: u8,
    subs: VecDeque<Submission>,
    inbox: Inbox,
    out: VecDeque<Output>,
}

impl SmsCore {
    /// A core whose message references start after `seed` (random in the driver, so that a
    /// UE started again does not reuse the last run's right away).
    pub fn new(seed: u8) -> SmsCore {
        SmsCore {
            next_id: 1,
            rp_mr: seed,
            tp_mr: seed.wrapping_add(85),
            reference: seed.wrapping_add(170),
            subs: VecDeque::new(),
            inbox: Inbox::default(),
            out: VecDeque::new(),
        }
    }

    /// Sends `text` to `to` through service centre `smsc` (`+15559999`): refused at once
    /// when the recipient does not read or the text is too long; else its first part goes
    /// out now and its fate comes as [`SmsEvent`]s about the id returned.
    pub fn submit(
        &mut self,
        now: Instant,
        to: &str,
        text: &str,
        smsc: &str,
    ) -> Result<SmsId, SmsSendError> {
        let parts = mo::prepare(to, text)?;
        let smsc = mo::recipient_number(smsc).map_err(|_| SmsSendError::Smsc(smsc.into()))?;
        let id = self.next_id;
        self.next_id += 1;
        self.reference = self.reference.wrapping_add(1);
        while self.subs.len() >= MAX_SUBMISSIONS {
            self.subs.pop_front();
        }
        let mut sub = Submission {
            id,
            smsc,
            parts,
            reference: self.reference,
            tp_mrs: Vec::new(),
            status: Vec::new(),
            // Replaced by send_part before anyone sees it.
            state: State::AwaitingReports { until: now },
        };
        self.send_part(now, &mut sub)?;
        self.subs.push_back(sub);
        Ok(id)
    }

    /// Builds and sends the next part of `sub`: AwaitingAck.
    fn send_part(&mut self, now: Instant, sub: &mut Submission) -> Result<(), SmsSendError> {
        let part = sub.tp_mrs.len();
        self.tp_mr = self.tp_mr.wrapping_add(1);
        self.rp_mr = self.rp_mr.wrapping_add(1);
        let tpdu = sub.parts.submit(part, self.tp_mr, sub.reference)?;
        let body = mo::rp_data(self.rp_mr, &sub.smsc, tpdu)?;
        sub.tp_mrs.push(self.tp_mr);
        sub.status.push(None);
        sub.state = State::AwaitingAck {
            rp_mr: self.rp_mr,
            until: now + RP_ACK_WAIT,
        };
        self.out.push_back(Output::Message {
            to: format!("tel:{}", sub.smsc),
            body,
            about: Some((sub.id, self.rp_mr)),
            in_reply_to: None,
        });
        Ok(())
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Answered {
                id,
                rp_mr,
                status,
                reason,
            } => {
                if (200..300).contains(&status) {
                    return;
                }
                let waiting = |s: &Submission| {
                    s.id == id
                        && matches!(s.state, State::AwaitingAck { rp_mr: m, .. } if m == rp_mr)
                };
                if let Some(i) = self.subs.iter().position(waiting) {
                    self.fail(i, format!("MESSAGE answered {status} {reason}"));
                }
            }
            Input::Message { from, body } => self.on_rp(now, &from, &body),
        }
    }

    /// An RP message from the network (TS 24.011 §7.3).
    fn on_rp(&mut self, now: Instant, from: &Origin, body: &[u8]) {
        let (Some(&first), Some(&mr)) = (body.first(), body.get(1)) else {
            // Not even a reference to answer: nothing can be said back.
            tracing::debug!("SMS: an RP message of {} octets dropped", body.len());
            return;
        };
        let m = match RpMessage::decode(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("SMS: RP message from {} does not decode: {e}", from.uri);
                // Table 8.4: a reserved message type is 97; an RP-DATA whose mandatory
                // elements do not read is 96. An answer that does not read is not answered.
                match first & 0x07 {
                    7 => self.rp_error(from, mr, cause::MESSAGE_TYPE_NON_EXISTENT),
                    0 | 1 => self.rp_error(from, mr, cause::INVALID_MANDATORY_INFORMATION),
                    _ => {}
                }
                return;
            }
        };
        match m {
            RpMessage::Data {
                dir: Direction::NetworkToMs,
                mr,
                tpdu,
                ..
            } => self.on_rp_data(now, from, mr, &tpdu),
            RpMessage::Data { .. } | RpMessage::Smma { .. } => {
                // What goes from a phone to the network, not to a phone.
                self.rp_error(from, mr, cause::MESSAGE_TYPE_NON_EXISTENT)
            }
            RpMessage::Ack {
                dir: Direction::NetworkToMs,
                mr,
                ..
            } => self.on_rp_ack(now, mr),
            RpMessage::Error {
                dir: Direction::NetworkToMs,
                mr,
                cause,
                ..
            } => {
                if let Some(i) = self.awaiting_ack(mr) {
                    let name = names::rp_cause(cause);
                    self.fail(i, format!("RP-ERROR cause {cause} ({name})"));
                }
            }
            RpMessage::Ack { .. } | RpMessage::Error { .. } => {}
        }
    }

    fn awaiting_ack(&self, mr: u8) -> Option<usize> {
        self.subs
            .iter()
            .rposition(|s| matches!(s.state, State::AwaitingAck { rp_mr, .. } if rp_mr == mr))
    }

    fn on_rp_ack(&mut self, now: Instant, mr: u8) {
        let Some(i) = self.awaiting_ack(mr) else {
            tracing::debug!("SMS: RP-ACK {mr} matches nothing sent");
            return;
        };
        let Some(mut sub) = self.subs.remove(i) else {
            return;
        };
        if sub.tp_mrs.len() < sub.parts.texts.len() {
            if let Err(e) = self.send_part(now, &mut sub) {
                self.emit(SmsEvent::Failed {
                    id: sub.id,
                    reason: e.to_string(),
                });
                return;
            }
        } else {
            sub.state = State::AwaitingReports {
                until: now + REPORT_WAIT,
            };
            self.emit(SmsEvent::Submitted {
                id: sub.id,
                parts: sub.parts.texts.len(),
            });
        }
        self.settle(sub);
    }

    /// Puts `sub` back, unless its reports are all in (Delivered) or one failed.
    fn settle(&mut self, sub: Submission) {
        if let Some(st) = sub.status.iter().flatten().find(|&&s| s >= 0x40) {
            let reason = format!("TP-ST 0x{st:02x} ({})", names::tp_status(*st));
            self.emit(SmsEvent::Failed { id: sub.id, reason });
        } else if sub.delivered() {
            self.emit(SmsEvent::Delivered { id: sub.id });
        } else {
            self.subs.push_back(sub);
        }
    }

    /// An RP-DATA to us: an SMS-DELIVER or an SMS-STATUS-REPORT, acknowledged either way.
    fn on_rp_data(&mut self, now: Instant, from: &Origin, mr: u8, tpdu: &[u8]) {
        match Tpdu::decode(tpdu, Direction::NetworkToMs, false) {
            Ok(Tpdu::Deliver(d)) if crate::mms::bearer::is_push(&d.user_data.header) => {
                // To the WAP Push port: an MMS notification, acknowledged like any SMS.
                self.rp_ack(from, mr);
                match self.inbox.push(now, &from.uri, &d) {
                    Some((from, Ok(notification))) => {
                        self.out.push_back(Output::Mms { from, notification })
                    }
                    Some((from, Err(e))) => {
                        let text = format!("(a WAP Push that is not an MMS notification: {e})");
                        self.emit(SmsEvent::Received { from, text });
                    }
                    None => {}
                }
            }
            Ok(Tpdu::Deliver(d)) => {
                self.rp_ack(from, mr);
                if let Some((from, text)) = self.inbox.deliver(now, &from.uri, &d) {
                    self.emit(SmsEvent::Received { from, text });
                }
            }
            Ok(Tpdu::StatusReport(r)) => {
                self.rp_ack(from, mr);
                // TP-RA by its digits: a centre may write the number back with another type.
                let ra = &r.recipient.value;
                let i = self.subs.iter().rposition(|s| {
                    &s.parts.recipient.value == ra && s.tp_mrs.contains(&r.message_ref)
                });
                let Some(mut sub) = i.and_then(|i| self.subs.remove(i)) else {
                    // A report on something this UE did not send (or no longer holds):
                    // acknowledged, not shown.
                    return;
                };
                if let Some(p) = sub.tp_mrs.iter().position(|&m| m == r.message_ref) {
                    sub.status[p] = Some(r.status);
                }
                self.settle(sub);
            }
            Ok(other) => {
                tracing::debug!("SMS: RP-DATA from {} carries {other:?}", from.uri);
                self.rp_error(from, mr, cause::PROTOCOL_ERROR);
            }
            Err(e) => {
                // The relay layer is fine; what it carries is not a TPDU we read (TS 24.011
                // Annex E: 111 when no other protocol error cause applies).
                tracing::debug!("SMS: RP-DATA from {}: {e}", from.uri);
                self.rp_error(from, mr, cause::PROTOCOL_ERROR);
            }
        }
    }

    /// RP-ACK (MS→N) for RP-DATA `mr` with an SMS-DELIVER-REPORT (TS 23.040 §9.2.2.1a: no
    /// failure, no optional parameters).
    fn rp_ack(&mut self, to: &Origin, mr: u8) {
        let report = Tpdu::DeliverReport(DeliverReport { failure: None }).encode();
        let ack = RpMessage::Ack {
            dir: Direction::MsToNetwork,
            mr,
            tpdu: report.ok(),
        };
        self.reply(to, ack);
    }

    fn rp_error(&mut self, to: &Origin, mr: u8, cause: u8) {
        let err = RpMessage::Error {
            dir: Direction::MsToNetwork,
            mr,
            cause,
            diagnostic: None,
            tpdu: None,
        };
        self.reply(to, err);
    }

    fn reply(&mut self, to: &Origin, m: RpMessage) {
        match m.encode() {
            Ok(body) => self.out.push_back(Output::Message {
                to: to.uri.clone(),
                body,
                about: None,
                in_reply_to: Some(to.call_id.clone()),
            }),
            Err(e) => tracing::warn!("SMS: {} does not encode: {e}", m.name()),
        }
    }

    fn fail(&mut self, i: usize, reason: String) {
        if let Some(sub) = self.subs.remove(i) {
            self.emit(SmsEvent::Failed { id: sub.id, reason });
        }
    }

    fn emit(&mut self, e: SmsEvent) {
        self.out.push_back(Output::Event(e));
    }

    /// When [`SmsCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs.iter().map(Submission::deadline).min()
    }

    /// Parts whose RP-ACK did not come fail; submissions whose reports did not come are
    /// forgotten.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(i) = self.subs.iter().position(|s| s.deadline() <= now) {
            match self.subs[i].state {
                State::AwaitingAck { .. } => {
                    let secs = RP_ACK_WAIT.as_secs();
                    self.fail(i, format!("no RP-ACK within {secs} s"));
                }
                State::AwaitingReports { .. } => {
                    self.subs.remove(i);
                }
            }
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Submissions held (waiting for an RP-ACK or for reports).
    pub fn pending(&self) -> usize {
        self.subs.len()
    }

    /// Concatenated messages received in part, waiting for the rest.
    pub fn reassembling(&self) -> usize {
        self.inbox.waiting()
    }
}
