//! The Diameter peer as socket-free cores: the initiator side of the RFC 6733 §5.6 peer state
//! machine with its Tc reconnect timer and the RFC 3539 §3.4.1 watchdog ([`PeerFsm`], the
//! CSCFs' link to the HSS), and the responder side's capabilities decision ([`Responder`], the
//! HSS accepting a CER, RFC 6733 §5.3). Time is passed in; work comes out through
//! [`PeerFsm::poll_action`] / [`PeerFsm::poll_timeout`]. The tokio drivers are
//! `client.rs` (initiator) and `peer.rs` (responder).
//!
//! Initiator (RFC 6733 §5.6, the states we use):
//! ```text
//!            Start, Tc expiry (or a request while Closed, at most once per Tc_min)
//!   Closed ──────────────────> Wait-Conn-Ack ──conn ack──> Wait-I-CEA ──CEA 2001──> I-Open
//!    ^ ^                         │ conn nack, Ts expiry      │ bad CEA, Ts expiry     │  │
//!    │ └───── Disconnect, Tc ────┴───────────────────────────┴── peer disc, DPR ──────┘  │
//!    │        (back-off doubles: Tc_min .. Tc_max)              Tw, Tw again w/o DWA ───┘
//!    └──── DPA, Ts expiry, peer disc ──── Closing <──── Stop (DPR) ──── I-Open
//! ```
//!
//! While I-Open the RFC 3539 §3.4.1 watchdog runs ([`crate::diameter::watchdog::Watchdog`],
//! OKAY -> SUSPECT -> DOWN; Tw set again on every message received); its DOWN ends the
//! connection like a peer disconnect (Disconnect, then Tc).
//!
//! Disconnect-Cause of a DPR the peer sent (RFC 6733 §5.4.3): REBOOTING — reconnect after Tc
//! as after any loss; BUSY and DO_NOT_WANT_TO_TALK_TO_YOU — the peer "shouldn't reconnect
//! unless it has a valid reason to do so (e.g., message to be forwarded)" (§5.4), so no Tc
//! timer is set and only a request of ours ([`PeerEvent::Kick`]) reconnects.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::diameter::codec::{
    DIAMETER_NO_COMMON_APPLICATION, DIAMETER_SUCCESS, DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNKNOWN_PEER,
};
pub use crate::diameter::watchdog::WatchdogState;
use crate::diameter::watchdog::{Watchdog, WatchdogAction};

/// RFC 6733 §5.6 states of the initiator (the responder's are [`ResponderState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// No connection; a reconnect is scheduled (Tc) unless stopped.
    Closed,
    /// TCP connect in progress.
    WaitConnAck,
    /// CER sent, waiting for the CEA.
    WaitICea,
    /// Open: requests flow.
    IOpen,
    /// DPR sent, waiting for the DPA.
    Closing,
}

impl PeerState {
    /// The moves RFC 6733 §5.6 allows between the states we use.
    fn may_become(self, to: PeerState) -> bool {
        use PeerState::*;
        matches!(
            (self, to),
            (Closed, WaitConnAck)
                | (Closed, Closed)
                | (WaitConnAck, WaitICea)
                | (WaitConnAck, Closed)
                | (WaitICea, IOpen)
                | (WaitICea, Closed)
                | (IOpen, Closing)
                | (IOpen, Closed)
                | (Closing, Closed)
        )
    }
}

/// RFC 6733 §5.4.3 Disconnect-Cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectCause {
    /// 0: a scheduled reboot is imminent; the receiver may reconnect.
    Rebooting,
    /// 1: the peer's resources are constrained.
    Busy,
    /// 2: the peer does not expect messages in the near future.
    DoNotWantToTalkToYou,
}

impl DisconnectCause {
    /// From the AVP value; an unknown value is read as REBOOTING (the only cause that lets
    /// us come back on our own, so a peer with a new cause is not left unreachable).
    pub fn from_u32(v: u32) -> DisconnectCause {
        match v {
            1 => DisconnectCause::Busy,
            2 => DisconnectCause::DoNotWantToTalkToYou,
            _ => DisconnectCause::Rebooting,
        }
    }
}

/// What happened (RFC 6733 §5.6 event names in the comments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// Start: begin connecting.
    Start,
    /// I-Rcv-Conn-Ack: the TCP connection is up.
    ConnAck,
    /// I-Rcv-Conn-Nack: the TCP connection failed.
    ConnNack(String),
    /// I-Rcv-CEA with DIAMETER_SUCCESS.
    RcvCea,
    /// I-Rcv-CEA with an error, I-Rcv-Non-CEA, or the connection failed before the CEA.
    RcvBadCea(String),
    /// A DWA came back (RFC 3539: the peer is alive).
    RcvDwa,
    /// Any other message arrived on the open connection (RFC 3539 §3.4.1: it sets the
    /// watchdog again and ends SUSPECT). Feed it with `now` = when it arrived.
    RcvAny,
    /// I-Rcv-DPR: the peer asked to disconnect (the connection has answered DPA itself).
    RcvDpr(DisconnectCause),
    /// I-Peer-Disc: the connection closed under us.
    PeerDisc(String),
    /// A request found the peer down: reconnect now rather than at Tc expiry, unless an
    /// attempt started less than Tc_min ago.
    Kick,
    /// Stop: leave (DPR when open) and do not reconnect.
    Stop,
    /// I-Rcv-DPA.
    RcvDpa,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAction {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send CER on the new connection and wait for the CEA.
    SendCer,
    /// Send a DWR.
    SendDwr,
    /// Send DPR (Disconnect-Cause REBOOTING).
    SendDpr,
    /// Drop the connection or the attempt in progress.
    Disconnect,
    /// The peer is open: requests may flow.
    Up,
    /// RFC 3539 SUSPECT: a DWR went unanswered for Tw.
    Suspect,
    /// The peer is down (or an attempt failed); `retry_in` is Tc, `None` once stopped or
    /// when the peer's DPR asked us to stay away.
    Down {
        /// Why.
        why: String,
        /// When the next attempt starts.
        retry_in: Option<Duration>,
        /// True when this ends an open connection (not one more failed attempt).
        was_open: bool,
    },
}

/// Whether [`PeerFsm::handle`] acted on an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The event moved the machine (or was a legal no-op such as a Kick while connecting).
    Done,
    /// The event has no meaning in the current state (a late CEA from a dropped attempt, a
    /// DWA while closed): nothing changed.
    Ignored(&'static str),
}

/// The timers of the state machine, an enum-indexed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// RFC 6733 §5.6 Tc: the next connection attempt.
    Tc = 0,
    /// How long a connect, a CEA or a DPA may take.
    Ts = 1,
}

/// Timer values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTimers {
    /// RFC 3539 Tw (30 s in the RFC).
    pub tw: Duration,
    /// The first reconnect delay; it doubles on each failed attempt...
    pub tc_min: Duration,
    /// ...up to Tc (30 s in RFC 6733; a lab wants it shorter).
    pub tc_max: Duration,
    /// Allowed for the TCP connect, for the CEA and for the DPA.
    pub ts: Duration,
}

impl Default for PeerTimers {
    fn default() -> Self {
        PeerTimers {
            tw: Duration::from_secs(30),
            tc_min: Duration::from_millis(500),
            tc_max: Duration::from_secs(10),
            ts: Duration::from_secs(2),
        }
    }
}

/// The socket-free initiator state machine.
#[derive(Debug)]
pub struct PeerFsm {
    state: PeerState,
    /// RFC 3539 Tw and its states while open.
    dog: Watchdog,
    cfg: PeerTimers,
    timers: [Option<Instant>; 2],
    backoff: Duration,
    stopped: bool,
    last_attempt: Option<Instant>,
    actions: VecDeque<PeerAction>,
}

impl PeerFsm {
    /// A machine in Closed, waiting for [`PeerEvent::Start`]; Tw without jitter.
    pub fn new(cfg: PeerTimers) -> PeerFsm {
        PeerFsm {
            state: PeerState::Closed,
            dog: Watchdog::new(cfg.tw),
            cfg,
            timers: [None; 2],
            backoff: cfg.tc_min,
            stopped: false,
            last_attempt: None,
            actions: VecDeque::new(),
        }
    }

    /// Adds the RFC 3539 ±2 s jitter to Tw (when Tw ≥ 6 s), drawn from `seed`.
    pub fn with_tw_jitter(mut self, seed: u64) -> PeerFsm {
        self.dog = self.dog.with_jitter(seed);
        self
    }

    /// The current state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// The RFC 3539 watchdog state.
    pub fn watchdog(&self) -> WatchdogState {
        self.dog.state()
    }

    /// True once stopped and closed: the driver may end.
    pub fn is_finished(&self) -> bool {
        self.stopped && self.state == PeerState::Closed
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<PeerAction> {
        self.actions.pop_front()
    }

    /// When [`PeerFsm::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .iter()
            .flatten()
            .chain(self.dog.poll_timeout().iter())
            .min()
            .copied()
    }

    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.timers[t as usize] {
            Some(at) if at <= now => {
                self.timers[t as usize] = None;
                true
            }
            _ => false,
        }
    }

    /// The one place the state changes; a move RFC 6733 §5.6 does not have is refused.
    fn enter(&mut self, to: PeerState) -> Result<(), &'static str> {
        if !self.state.may_become(to) {
            tracing::debug!(from = ?self.state, ?to, "Diameter peer: illegal state move refused");
            return Err("illegal state move");
        }
        self.state = to;
        if to != PeerState::IOpen {
            self.dog.close();
        }
        Ok(())
    }

    /// Feeds one event; an event without meaning in the current state changes nothing.
    pub fn handle(&mut self, now: Instant, ev: PeerEvent) -> Handled {
        use PeerState::*;
        let r = match (self.state, ev) {
            (Closed, PeerEvent::Start) if !self.stopped => self.attempt(now),
            (Closed, PeerEvent::Kick) if !self.stopped => {
                let recent = self
                    .last_attempt
                    .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.tc_min);
                if recent {
                    Ok(())
                } else {
                    self.attempt(now)
                }
            }
            (Closed, PeerEvent::Start | PeerEvent::Kick) => Err("stopped"),
            (WaitConnAck | WaitICea | IOpen | Closing, PeerEvent::Kick) => Ok(()),
            (WaitConnAck, PeerEvent::ConnAck) => self.enter(WaitICea).map(|()| {
                self.set(Timer::Ts, Some(now + self.cfg.ts));
                self.actions.push_back(PeerAction::SendCer);
            }),
            (WaitConnAck, PeerEvent::ConnNack(why)) => self.fail(now, why),
            (WaitICea, PeerEvent::RcvCea) => self.enter(IOpen).map(|()| {
                self.backoff = self.cfg.tc_min;
                self.set(Timer::Ts, None);
                self.dog.open(now);
                self.actions.push_back(PeerAction::Up);
            }),
            (WaitICea, PeerEvent::RcvBadCea(why) | PeerEvent::PeerDisc(why)) => self.fail(now, why),
            (IOpen, PeerEvent::RcvDwa) => {
                // RFC 3539 §3.4.1: a DWA clears `pending`, sets the watchdog again and ends
                // SUSPECT.
                self.dog.on_dwa(now);
                Ok(())
            }
            (IOpen, PeerEvent::RcvAny) => {
                // Any other message: SetWatchdog, SUSPECT -> OKAY; `pending` stays.
                self.dog.on_message(now);
                Ok(())
            }
            (IOpen, PeerEvent::PeerDisc(why)) => self.fail(now, why),
            (IOpen, PeerEvent::RcvDpr(cause)) => self.peer_left(now, cause),
            (IOpen, PeerEvent::Stop) => self.enter(Closing).map(|()| {
                self.stopped = true;
                self.set(Timer::Ts, Some(now + self.cfg.ts));
                self.actions.push_back(PeerAction::SendDpr);
            }),
            (Closing, PeerEvent::RcvDpa | PeerEvent::PeerDisc(_)) => self.closed_for_good(),
            (Closing, PeerEvent::RcvDpr(_)) => {
                // Both sides said goodbye at once (RFC 6733 §5.6 Closing, R-Rcv-DPR).
                self.closed_for_good()
            }
            (WaitConnAck | WaitICea, PeerEvent::Stop) => {
                self.stopped = true;
                self.actions.push_back(PeerAction::Disconnect);
                self.closed_for_good()
            }
            (Closed, PeerEvent::Stop) => {
                self.stopped = true;
                self.closed_for_good()
            }
            (Closing, PeerEvent::Stop) => Ok(()),
            (Closed, _) => Err("no connection"),
            (WaitConnAck, _) => Err("not connected yet"),
            (WaitICea, _) => Err("waiting for the CEA"),
            (IOpen, _) => Err("not expected while open"),
            (Closing, _) => Err("closing"),
        };
        match r {
            Ok(()) => Handled::Done,
            Err(why) => Handled::Ignored(why),
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        use PeerState::*;
        if self.expired(Timer::Tc, now) && self.state == Closed && !self.stopped {
            let _ = self.attempt(now);
        }
        if self.expired(Timer::Ts, now) {
            let _ = match self.state {
                WaitConnAck => self.fail(now, "no TCP connection in time".into()),
                WaitICea => self.fail(now, "no CEA in time".into()),
                Closing => {
                    self.actions.push_back(PeerAction::Disconnect);
                    self.closed_for_good()
                }
                _ => Ok(()),
            };
        }
        if self.state == IOpen {
            // RFC 3539 §3.4.1: OKAY sends a DWR; a DWR still pending at the next Tw makes the
            // peer SUSPECT; SUSPECT at the next Tw is DOWN (the connection is closed).
            match self.dog.handle_timeout(now) {
                Some(WatchdogAction::SendDwr) => self.actions.push_back(PeerAction::SendDwr),
                Some(WatchdogAction::Suspect) => self.actions.push_back(PeerAction::Suspect),
                Some(WatchdogAction::Down) => {
                    let secs = (self.cfg.tw * 2).as_secs_f32();
                    let _ = self.fail(now, format!("no DWA for {secs:.1} s (RFC 3539 watchdog)"));
                }
                None => {}
            }
        }
    }

    fn attempt(&mut self, now: Instant) -> Result<(), &'static str> {
        self.enter(PeerState::WaitConnAck)?;
        self.last_attempt = Some(now);
        self.set(Timer::Tc, None);
        self.set(Timer::Ts, Some(now + self.cfg.ts));
        self.actions.push_back(PeerAction::Connect);
        Ok(())
    }

    fn fail(&mut self, now: Instant, why: String) -> Result<(), &'static str> {
        let was_open = self.state == PeerState::IOpen;
        self.enter(PeerState::Closed)?;
        self.set(Timer::Ts, None);
        self.actions.push_back(PeerAction::Disconnect);
        let retry_in = (!self.stopped).then_some(self.backoff);
        self.set(Timer::Tc, retry_in.map(|d| now + d));
        self.backoff = (self.backoff * 2).min(self.cfg.tc_max);
        self.actions.push_back(PeerAction::Down {
            why,
            retry_in,
            was_open,
        });
        Ok(())
    }

    /// The peer sent DPR (RFC 6733 §5.4): REBOOTING is a loss like any other (Tc); BUSY and
    /// DO_NOT_WANT_TO_TALK_TO_YOU leave Tc unset, so only a request of ours reconnects.
    fn peer_left(&mut self, now: Instant, cause: DisconnectCause) -> Result<(), &'static str> {
        let why = format!("peer sent DPR ({cause:?})");
        self.fail(now, why)?;
        if cause != DisconnectCause::Rebooting {
            self.set(Timer::Tc, None);
            if let Some(PeerAction::Down { retry_in, .. }) = self.actions.back_mut() {
                *retry_in = None;
            }
        }
        Ok(())
    }

    fn closed_for_good(&mut self) -> Result<(), &'static str> {
        self.enter(PeerState::Closed)?;
        self.timers = [None; 2];
        Ok(())
    }
}

/// RFC 6733 §5.6 states of the responder (the HSS side of one connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponderState {
    /// Accepted, waiting for the CER (or refused and closed).
    Closed,
    /// R-Open: CEA 2001 sent, requests flow both ways.
    ROpen,
}

/// What the responder decides about a CER (RFC 6733 §5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CerCheck {
    /// The Origin-Host and source address are among the configured peers.
    pub known: bool,
    /// The CER offers Cx (or relay).
    pub offers_cx: bool,
    /// The peer table has room for one more.
    pub room: bool,
}

/// What the responder's driver must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponderAction {
    /// Answer the CER with this Result-Code; open when it is 2001, else close after it.
    SendCea(u32),
    /// Answer a request that has no meaning in this state with this Result-Code.
    Refuse(u32),
    /// Answer the DPR (2001), then close.
    SendDpaAndClose,
}

/// The responder side of one accepted connection: R-Accept, CER -> CEA -> R-Open or refused,
/// DPR -> DPA -> Closed.
/// ```text
///   Closed ──CER ok: CEA 2001──> R-Open ──DPR: DPA──> Closed
///   Closed ──CER unknown peer: CEA 3010 / no Cx: CEA 5010 / full: CEA 5012──> Closed (drop)
///   R-Open ──CER again: 5012──> R-Open
/// ```
#[derive(Debug)]
pub struct Responder {
    state: ResponderState,
}

impl Default for Responder {
    fn default() -> Self {
        Responder::new()
    }
}

impl Responder {
    /// A connection just accepted.
    pub fn new() -> Responder {
        Responder {
            state: ResponderState::Closed,
        }
    }

    /// A connection already open (its CER/CEA done, either way round).
    pub fn open() -> Responder {
        Responder {
            state: ResponderState::ROpen,
        }
    }

    /// The current state.
    pub fn state(&self) -> ResponderState {
        self.state
    }

    /// R-Rcv-CER (RFC 6733 §5.3): 3010 for a peer not configured, 5010 without a common
    /// application, 5012 when the table is full, 2001 (and R-Open) otherwise. A CER on an
    /// open connection is refused with 5012.
    pub fn on_cer(&mut self, c: CerCheck) -> ResponderAction {
        if self.state == ResponderState::ROpen {
            return ResponderAction::Refuse(DIAMETER_UNABLE_TO_COMPLY);
        }
        let code = match (c.known, c.offers_cx, c.room) {
            (false, _, _) => DIAMETER_UNKNOWN_PEER,
            (true, false, _) => DIAMETER_NO_COMMON_APPLICATION,
            (true, true, false) => DIAMETER_UNABLE_TO_COMPLY,
            (true, true, true) => DIAMETER_SUCCESS,
        };
        if code == DIAMETER_SUCCESS {
            self.state = ResponderState::ROpen;
        }
        ResponderAction::SendCea(code)
    }

    /// R-Rcv-DPR: answer and close. Before the CER there is nothing to disconnect.
    pub fn on_dpr(&mut self) -> Option<ResponderAction> {
        match self.state {
            ResponderState::ROpen => {
                self.state = ResponderState::Closed;
                Some(ResponderAction::SendDpaAndClose)
            }
            ResponderState::Closed => None,
        }
    }

    /// The connection closed.
    pub fn on_disconnect(&mut self) {
        self.state = ResponderState::Closed;
    }
}

#[cfg(test)]
#[path = "peer_fsm_tests.rs"]
mod tests;
