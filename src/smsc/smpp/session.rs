//! One SMPP 3.4 connection seen from the SMSC, without a socket (STYLE.md §1): the driver
//! hands in whole PDUs ([`Session::handle_frame`]), the answers of the outside world
//! ([`Session::bind_answer`], [`Session::submitted`]), deliveries to send
//! ([`Session::deliver`]) and the time ([`Session::handle_timeout`]); it takes out bytes
//! ([`Session::poll_transmit`]), work ([`Session::poll_event`]) and the next deadline
//! ([`Session::poll_timeout`]).
//!
//! ```text
//!        bind_* (§4.1)        bind_answer Ok
//!  Open ───────────────> Binding ───────────> Bound(kind) ── unbind from the ESME ──┐
//!   ^                      │ Err                  │ unbind() (shutdown)             │
//!   └──────────────────────┘                      v                                 v
//!                                            Unbinding ── unbind_resp / timeout ─> Closed
//!  any state ── bind timeout, idle, no enquire_link_resp, bad command_length ─────> Closed
//! ```
//!
//! Requests are answered in completion order (§2.7: sequence numbers match them). At most
//! `window` submissions wait for the service centre at once; [`Session::can_read`] says when
//! the driver must stop reading (TCP backpressure), so nothing queues without bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Instant, SystemTime};

pub use super::events::{
    BindKind, CloseReason, SessionConfig, SessionEvent, SubmitCommand, Transmit,
};
use super::submit::{multi_resp, submitted_of_data_sm, submitted_of_sm, unix};
use super::{DeliverError, Submitted, SMSC_SYSTEM_ID};
use crate::smpp::{
    Address, Bind, BindResp, Body, CommandId, CommandStatus, DestAddress, Header, MessageIdResp,
    Pdu, Sm, SubmitMulti, Tlv, UnsuccessSme, INTERFACE_VERSION,
};

/// The session state (one place for its changes: [`Session::set_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    Binding {
        kind: BindKind,
        sequence: u32,
        version: u8,
    },
    Bound {
        kind: BindKind,
        system_id: String,
    },
    Unbinding {
        kind: BindKind,
        system_id: String,
    },
    Closed(CloseReason),
}

/// The session's timers (quinn-proto style: a table indexed by an enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Bind deadline from the accept.
    Bind,
    /// No PDU at all for idle_timeout.
    Idle,
    /// A quarter of idle_timeout without a PDU: send enquire_link.
    Keepalive,
    /// Our enquire_link waits for its response.
    LinkResponse,
    /// Our unbind waits for unbind_resp.
    UnbindResponse,
}

const TIMERS: [Timer; 5] = [
    Timer::Bind,
    Timer::Idle,
    Timer::Keepalive,
    Timer::LinkResponse,
    Timer::UnbindResponse,
];

#[derive(Debug, Default)]
struct TimerTable([Option<Instant>; 5]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    fn clear(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// A submission waiting for the SC.
#[derive(Debug)]
struct Pending {
    sequence: u32,
    command: SubmitCommand,
    /// submit_multi: destinations refused before the SC saw them.
    refused: Vec<UnsuccessSme>,
    /// submit_multi: the destinations handed to the SC, in order.
    dests: Vec<Address>,
}

/// One SMPP connection's protocol state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: TimerTable,
    next_sequence: u32,
    next_token: u64,
    /// Our deliver_sm by sequence_number, with their deadline.
    outstanding: BTreeMap<u32, Instant>,
    /// Submissions with the SC, by token.
    pending: HashMap<u64, Pending>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<SessionEvent>,
}

impl Session {
    /// A session on a connection accepted at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Bind, now + config.bind_timeout);
        timers.set(Timer::Idle, now + config.idle_timeout);
        Session {
            config,
            state: State::Open,
            timers,
            next_sequence: 1,
            next_token: 1,
            outstanding: BTreeMap::new(),
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The system_id and kind, once bound.
    pub fn bound(&self) -> Option<(&str, BindKind)> {
        match &self.state {
            State::Bound { kind, system_id } | State::Unbinding { kind, system_id } => {
                Some((system_id, *kind))
            }
            _ => None,
        }
    }

    /// Why it closed, once closed.
    pub fn closed(&self) -> Option<CloseReason> {
        match self.state {
            State::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the driver may read (and hand in) another PDU: not closed, and fewer than
    /// `window` submissions with the SC.
    pub fn can_read(&self) -> bool {
        self.closed().is_none() && self.pending.len() < self.config.window
    }

    /// Submissions waiting for the SC.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// deliver_sm waiting for their response.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The next PDU to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next piece of work for the driver.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deliveries = self.outstanding.values().min().copied();
        [self.timers.next(), deliveries].into_iter().flatten().min()
    }

    /// One whole PDU as [`crate::smpp::frame`] cut it. `wall` is the wall clock, for absolute
    /// validity periods.
    pub fn handle_frame(&mut self, now: Instant, wall: SystemTime, frame: &[u8]) {
        if self.closed().is_some() {
            return;
        }
        self.timers.set(Timer::Idle, now + self.config.idle_timeout);
        self.timers.clear(Timer::LinkResponse);
        if matches!(self.state, State::Bound { .. }) {
            self.timers
                .set(Timer::Keepalive, now + self.config.idle_timeout / 4);
        }
        match Pdu::decode(frame) {
            Ok(pdu) => self.handle_pdu(wall, pdu),
            Err(e) => {
                tracing::debug!(error = %e, "SMPP: undecodable PDU");
                if let Some(reply) = e.reply() {
                    self.send(reply);
                }
            }
        }
    }

    /// The framer refused the stream (command_length out of range, [`crate::smpp::Framing`]):
    /// generic_nack ESME_RINVCMDLEN, then close.
    pub fn bad_framing(&mut self, header: &Header) {
        if self.closed().is_some() {
            return;
        }
        self.send(crate::smpp::bad_length_nack(header));
        self.close(CloseReason::BadFraming);
    }

    /// The driver lost the socket.
    pub fn transport_closed(&mut self) {
        self.close(CloseReason::Transport);
    }

    /// The answer to a [`SessionEvent::Bind`]: the system_id bound, or the status to refuse
    /// it with (ESME_RBINDFAIL).
    pub fn bind_answer(
        &mut self,
        now: Instant,
        sequence: u32,
        answer: Result<String, CommandStatus>,
    ) {
        let State::Binding {
            kind,
            sequence: expected,
            version,
        } = self.state
        else {
            return;
        };
        if sequence != expected {
            return;
        }
        match answer {
            Ok(system_id) => {
                let mut tlvs = Vec::new();
                if version >= INTERFACE_VERSION {
                    tlvs.push(Tlv::ScInterfaceVersion(INTERFACE_VERSION));
                }
                let resp = BindResp {
                    system_id: SMSC_SYSTEM_ID.to_string(),
                    tlvs,
                };
                self.send(Pdu::new(sequence, kind.response(resp)));
                self.timers.clear(Timer::Bind);
                self.timers
                    .set(Timer::Keepalive, now + self.config.idle_timeout / 4);
                self.set_state(State::Bound { kind, system_id });
            }
            Err(status) => {
                self.send(Pdu {
                    status,
                    sequence,
                    body: kind.response(BindResp::default()),
                });
                self.set_state(State::Open);
            }
        }
    }

    /// The SC's answers to a [`SessionEvent::Submit`], one per message in order.
    pub fn submitted(&mut self, token: u64, results: Vec<Result<String, CommandStatus>>) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        if self.closed().is_some() {
            return;
        }
        let first = || match results.first() {
            Some(r) if results.len() == 1 => r.clone(),
            _ => Err(CommandStatus::SysErr),
        };
        let id_resp = |id: String| MessageIdResp {
            message_id: id,
            tlvs: Vec::new(),
        };
        let (status, body) = match p.command {
            SubmitCommand::SubmitSm => match first() {
                Ok(id) => (CommandStatus::Ok, Body::SubmitSmResp(id_resp(id))),
                Err(s) => (s, Body::SubmitSmResp(MessageIdResp::default())),
            },
            SubmitCommand::DataSm => match first() {
                Ok(id) => (CommandStatus::Ok, Body::DataSmResp(id_resp(id))),
                Err(s) => (s, Body::DataSmResp(MessageIdResp::default())),
            },
            SubmitCommand::SubmitMulti => {
                let mut unsuccess = p.refused;
                let mut message_id = None;
                for (i, dest) in p.dests.into_iter().enumerate() {
                    match results
                        .get(i)
                        .cloned()
                        .unwrap_or(Err(CommandStatus::SysErr))
                    {
                        Ok(id) => {
                            message_id.get_or_insert(id);
                        }
                        Err(error_status) => unsuccess.push(UnsuccessSme { dest, error_status }),
                    }
                }
                multi_resp(message_id, unsuccess)
            }
        };
        self.respond(Pdu {
            status,
            sequence: p.sequence,
            body,
        });
    }

    /// Queues a deliver_sm to the ESME; its outcome comes as [`SessionEvent::Delivered`] with
    /// the sequence_number returned here.
    pub fn deliver(&mut self, now: Instant, sm: Sm) -> Result<u32, DeliverError> {
        match &self.state {
            State::Closed(_) => return Err(DeliverError::Closed),
            State::Bound { kind, .. } if kind.receives() => {}
            _ => return Err(DeliverError::NotBound),
        }
        if self.outstanding.len() >= self.config.window {
            // The server's window semaphore keeps this from happening.
            return Err(DeliverError::Timeout);
        }
        let sequence = self.sequence();
        let bytes = Pdu::new(sequence, Body::DeliverSm(sm))
            .encode()
            .map_err(|_| DeliverError::Refused(CommandStatus::SysErr))?;
        self.push(bytes);
        self.outstanding
            .insert(sequence, now + self.config.response_timeout);
        Ok(sequence)
    }

    /// Shutdown: unbind a bound session (closed on unbind_resp or after response_timeout),
    /// close any other at once.
    pub fn unbind(&mut self, now: Instant) {
        match self.state.clone() {
            State::Bound { kind, system_id } => {
                let sequence = self.sequence();
                self.send(Pdu::new(sequence, Body::Unbind));
                self.timers
                    .set(Timer::UnbindResponse, now + self.config.response_timeout);
                self.set_state(State::Unbinding { kind, system_id });
            }
            State::Unbinding { .. } | State::Closed(_) => {}
            State::Open | State::Binding { .. } => self.close(CloseReason::Shutdown),
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed().is_some() {
            return;
        }
        for t in TIMERS {
            if !self.timers.expired(t, now) {
                continue;
            }
            self.timers.clear(t);
            match t {
                Timer::Bind if self.bound().is_none() => self.close(CloseReason::BindTimeout),
                Timer::Bind => {}
                Timer::Idle => self.close(CloseReason::Idle),
                Timer::Keepalive => {
                    if matches!(self.state, State::Bound { .. }) {
                        let sequence = self.sequence();
                        self.send(Pdu::new(sequence, Body::EnquireLink));
                        self.timers
                            .set(Timer::LinkResponse, now + self.config.response_timeout);
                    }
                }
                Timer::LinkResponse => self.close(CloseReason::NoLinkResponse),
                Timer::UnbindResponse => self.close(CloseReason::Shutdown),
            }
            if self.closed().is_some() {
                return;
            }
        }
        let late: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(s, _)| *s)
            .collect();
        for sequence in late {
            self.outstanding.remove(&sequence);
            self.events.push_back(SessionEvent::Delivered {
                sequence,
                result: Err(DeliverError::Timeout),
            });
        }
    }

    fn handle_pdu(&mut self, wall: SystemTime, pdu: Pdu) {
        let transmitter = self
            .bound()
            .filter(|_| matches!(self.state, State::Bound { .. }))
            .and_then(|(id, kind)| kind.transmits().then(|| id.to_string()));
        let seq = pdu.sequence;
        match pdu.body {
            Body::BindTransmitter(b) => self.on_bind(seq, BindKind::Transmitter, b),
            Body::BindReceiver(b) => self.on_bind(seq, BindKind::Receiver, b),
            Body::BindTransceiver(b) => self.on_bind(seq, BindKind::Transceiver, b),
            Body::EnquireLink => self.send(Pdu::new(seq, Body::EnquireLinkResp)),
            Body::Unbind => match self.state {
                State::Bound { .. } | State::Unbinding { .. } => {
                    self.send(Pdu::new(seq, Body::UnbindResp));
                    self.close(CloseReason::Unbound);
                }
                _ => self.refuse(seq, CommandId::Unbind, CommandStatus::InvBndSts),
            },
            Body::SubmitSm(_)
            | Body::DataSm(_)
            | Body::SubmitMulti(_)
            | Body::QuerySm(_)
            | Body::CancelSm(_)
            | Body::ReplaceSm(_)
                if transmitter.is_none() =>
            {
                self.refuse(seq, pdu.body.command_id(), CommandStatus::InvBndSts)
            }
            Body::SubmitSm(sm) => {
                let system_id = transmitter.unwrap_or_default();
                match submitted_of_sm(&system_id, &sm, unix(wall)) {
                    Ok(m) => {
                        self.hand_to_sc(seq, SubmitCommand::SubmitSm, vec![m], Vec::new());
                    }
                    Err(s) => self.refuse(seq, CommandId::SubmitSm, s),
                }
            }
            Body::DataSm(d) => {
                let system_id = transmitter.unwrap_or_default();
                match submitted_of_data_sm(&system_id, &d) {
                    Ok(m) => {
                        self.hand_to_sc(seq, SubmitCommand::DataSm, vec![m], Vec::new());
                    }
                    Err(s) => self.refuse(seq, CommandId::DataSm, s),
                }
            }
            Body::SubmitMulti(m) => {
                let system_id = transmitter.unwrap_or_default();
                self.on_submit_multi(seq, &system_id, m, unix(wall));
            }
            Body::QuerySm(_) => self.refuse(seq, CommandId::QuerySm, CommandStatus::QueryFail),
            Body::CancelSm(_) => self.refuse(seq, CommandId::CancelSm, CommandStatus::CancelFail),
            Body::ReplaceSm(_) => {
                self.refuse(seq, CommandId::ReplaceSm, CommandStatus::ReplaceFail)
            }
            Body::DeliverSm(_) | Body::Outbind(_) | Body::AlertNotification(_) => {
                // Commands an SMSC sends, not receives.
                let status = if self.bound().is_some() {
                    CommandStatus::InvCmdId
                } else {
                    CommandStatus::InvBndSts
                };
                self.refuse(seq, pdu.body.command_id(), status);
            }
            Body::DeliverSmResp(_) | Body::GenericNack => {
                let nack = pdu.body == Body::GenericNack;
                if self.outstanding.remove(&seq).is_some() {
                    let result = if pdu.status.is_ok() && !nack {
                        Ok(())
                    } else {
                        Err(DeliverError::Refused(pdu.status))
                    };
                    self.events.push_back(SessionEvent::Delivered {
                        sequence: seq,
                        result,
                    });
                } else if nack {
                    crate::warn_limited!("smsc.smpp.nack", seq, status = %pdu.status, "SMPP: generic_nack from the ESME");
                }
            }
            Body::EnquireLinkResp => {}
            Body::UnbindResp => {
                if matches!(self.state, State::Unbinding { .. }) {
                    self.close(CloseReason::Shutdown);
                }
            }
            other => {
                tracing::debug!(
                    command = other.command_id().name(),
                    seq,
                    "SMPP: unexpected response ignored"
                );
            }
        }
    }

    fn on_bind(&mut self, sequence: u32, kind: BindKind, bind: Bind) {
        if self.state != State::Open {
            let id = match kind {
                BindKind::Transmitter => CommandId::BindTransmitter,
                BindKind::Receiver => CommandId::BindReceiver,
                BindKind::Transceiver => CommandId::BindTransceiver,
            };
            self.refuse(sequence, id, CommandStatus::AlyBnd);
            return;
        }
        self.set_state(State::Binding {
            kind,
            sequence,
            version: bind.interface_version,
        });
        self.events.push_back(SessionEvent::Bind {
            sequence,
            kind,
            bind,
        });
    }

    fn on_submit_multi(&mut self, seq: u32, system_id: &str, m: SubmitMulti, unix_now: u64) {
        let template = Sm {
            service_type: m.service_type,
            source: m.source,
            dest: Address::default(),
            params: m.params,
            tlvs: m.tlvs,
        };
        let mut messages = Vec::new();
        let mut refused = Vec::new();
        let mut dests = Vec::new();
        if m.dests.is_empty() {
            return self.refuse(seq, CommandId::SubmitMulti, CommandStatus::InvNumDests);
        }
        for d in m.dests {
            match d {
                DestAddress::DistributionList(name) => refused.push(UnsuccessSme {
                    dest: Address {
                        ton: 0,
                        npi: 0,
                        addr: name,
                    },
                    error_status: CommandStatus::CntSubDl,
                }),
                DestAddress::Sme(dest) => {
                    let sm = Sm {
                        dest: dest.clone(),
                        ..template.clone()
                    };
                    match submitted_of_sm(system_id, &sm, unix_now) {
                        Ok(msg) => {
                            messages.push(msg);
                            dests.push(dest);
                        }
                        // A fault of the whole message (not of this address) fails them all.
                        Err(s) if s != CommandStatus::InvDstAdr => {
                            return self.refuse(seq, CommandId::SubmitMulti, s);
                        }
                        Err(error_status) => refused.push(UnsuccessSme { dest, error_status }),
                    }
                }
            }
        }
        if messages.is_empty() {
            let (status, body) = multi_resp(None, refused);
            return self.respond(Pdu {
                status,
                sequence: seq,
                body,
            });
        }
        let token = self.hand_to_sc(seq, SubmitCommand::SubmitMulti, messages, refused);
        if let Some(p) = self.pending.get_mut(&token) {
            p.dests = dests;
        }
    }

    /// Hands messages to the SC; returns the token.
    fn hand_to_sc(
        &mut self,
        sequence: u32,
        command: SubmitCommand,
        messages: Vec<Submitted>,
        refused: Vec<UnsuccessSme>,
    ) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(
            token,
            Pending {
                sequence,
                command,
                refused,
                dests: Vec::new(),
            },
        );
        self.events.push_back(SessionEvent::Submit {
            token,
            command,
            messages,
        });
        token
    }

    /// The empty `_resp` of `command` with `status` (generic_nack for one without).
    fn refuse(&mut self, sequence: u32, command: CommandId, status: CommandStatus) {
        let body = command
            .response()
            .and_then(Body::empty_response)
            .unwrap_or(Body::GenericNack);
        self.send(Pdu {
            status,
            sequence,
            body,
        });
    }

    /// Sends a response; one that cannot be encoded (an SC message_id over 64 octets) goes out
    /// as its empty form with ESME_RSYSERR.
    fn respond(&mut self, pdu: Pdu) {
        match pdu.encode() {
            Ok(bytes) => self.push(bytes),
            Err(e) => {
                tracing::error!(error = %e, command = pdu.command_id().name(), "SMPP: cannot encode a response");
                self.refuse_response(pdu.sequence, pdu.command_id());
            }
        }
    }

    fn refuse_response(&mut self, sequence: u32, response: CommandId) {
        let body = Body::empty_response(response).unwrap_or(Body::GenericNack);
        self.send(Pdu {
            status: CommandStatus::SysErr,
            sequence,
            body,
        });
    }

    /// Sends a PDU built here (always encodable: empty bodies, our own values).
    fn send(&mut self, pdu: Pdu) {
        match pdu.encode() {
            Ok(bytes) => self.push(bytes),
            Err(e) => {
                tracing::error!(error = %e, "SMPP: cannot encode {}", pdu.command_id().name())
            }
        }
    }

    fn push(&mut self, bytes: Vec<u8>) {
        let summary = summary(&bytes);
        self.transmit.push_back(Transmit { bytes, summary });
    }

    fn sequence(&mut self) -> u32 {
        let s = self.next_sequence;
        // §5.1.2.4: 0x00000001 to 0x7FFFFFFF, then wrap.
        self.next_sequence = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
        s
    }

    /// The one place the state changes; an illegal move is refused (and logged).
    fn set_state(&mut self, next: State) {
        let legal = matches!(
            (&self.state, &next),
            (State::Open, State::Binding { .. })
                | (State::Binding { .. }, State::Open)
                | (State::Binding { .. }, State::Bound { .. })
                | (State::Bound { .. }, State::Unbinding { .. })
                | (
                    State::Open
                        | State::Binding { .. }
                        | State::Bound { .. }
                        | State::Unbinding { .. },
                    State::Closed(_)
                )
        );
        if !legal {
            tracing::error!(from = ?self.state, to = ?next, "SMPP session: illegal state change refused");
            return;
        }
        self.state = next;
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed().is_some() {
            return;
        }
        self.set_state(State::Closed(reason));
        self.timers = TimerTable::default();
        self.pending.clear();
        for sequence in std::mem::take(&mut self.outstanding).into_keys() {
            self.events.push_back(SessionEvent::Delivered {
                sequence,
                result: Err(DeliverError::Closed),
            });
        }
        self.events.push_back(SessionEvent::Closed(reason));
    }
}

/// The trace line of an encoded PDU: `submit_sm seq=3`, with the status when not ESME_ROK.
pub fn summary(bytes: &[u8]) -> String {
    let Some(h) = Header::peek(bytes) else {
        return format!("SMPP ({} octets)", bytes.len());
    };
    let name = CommandId::from_code(h.command_id)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("command_id=0x{:08X}", h.command_id));
    let status = CommandStatus::from_code(h.command_status);
    if status.is_ok() {
        format!("{name} seq={}", h.sequence_number)
    } else {
        let s = status
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| status.to_string());
        format!("{name} seq={} {s}", h.sequence_number)
    }
}
