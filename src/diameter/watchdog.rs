//! The RFC 3539 §3.4.1 device watchdog of one open Diameter connection as a socket-free core:
//! Tw (with its ±2 s jitter), `pending`, OKAY / SUSPECT / DOWN. Both ends use it: the
//! initiator's [`crate::diameter::peer_fsm::PeerFsm`] and every [`crate::diameter::peer::Peer`]
//! that runs its own watchdog (the HSS side, `Peer::connect`). Time is passed in.
//!
//! ```text
//!   open ──> OKAY ──Tw, nothing pending: send DWR (pending)──> OKAY
//!            OKAY ──Tw, DWR pending──> SUSPECT ──Tw──> DOWN (close the connection)
//!            OKAY, SUSPECT ──DWA: pending = false──> OKAY (Tw again)
//!            OKAY, SUSPECT ──any other message──> OKAY (Tw again; pending stays)
//! ```
//! RFC 3539's REOPEN (three DWAs before traffic on a reopened connection) is not applied: the
//! CER/CEA of a new connection already proved the peer alive.

use std::time::{Duration, Instant};

/// RFC 3539 §3.4.1 watchdog states of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogState {
    /// No connection open (RFC 3539 INITIAL / DOWN).
    Down,
    /// The peer answers.
    Okay,
    /// A DWR went unanswered for Tw: one more Tw and the connection is closed.
    Suspect,
}

/// What the watchdog asks for when Tw fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogAction {
    /// Send a DWR.
    SendDwr,
    /// The peer became SUSPECT (failover would start here).
    Suspect,
    /// SUSPECT for another Tw: close the connection.
    Down,
}

/// RFC 3539 §3.4.1 requires Tw ≥ 6 s and a jitter of ±2 s on it; a lab's shorter Tw (below
/// the RFC's minimum anyway) runs without jitter so that its tests stay exact.
const TW_JITTER_FROM: Duration = Duration::from_secs(6);
const TW_JITTER_MS: u64 = 2000;

/// The watchdog of one connection.
#[derive(Debug)]
pub struct Watchdog {
    state: WatchdogState,
    tw: Duration,
    at: Option<Instant>,
    /// RFC 3539 `pending`: a DWR is unanswered.
    pending: bool,
    /// xorshift state for the Tw jitter; 0 = no jitter.
    jitter: u64,
}

impl Watchdog {
    /// A watchdog with interval `tw`, DOWN until [`Watchdog::open`]; no jitter.
    pub fn new(tw: Duration) -> Watchdog {
        Watchdog {
            state: WatchdogState::Down,
            tw,
            at: None,
            pending: false,
            jitter: 0,
        }
    }

    /// Adds the RFC 3539 ±2 s jitter to Tw (when Tw ≥ 6 s), drawn from `seed`.
    pub fn with_jitter(mut self, seed: u64) -> Watchdog {
        self.jitter = seed | 1;
        self
    }

    /// The state.
    pub fn state(&self) -> WatchdogState {
        self.state
    }

    /// The connection opened at `now` (CEA 2001): OKAY, Tw runs.
    pub fn open(&mut self, now: Instant) {
        self.state = WatchdogState::Okay;
        self.pending = false;
        self.at = None;
        self.set(now);
    }

    /// The connection closed: DOWN, no timer.
    pub fn close(&mut self) {
        self.state = WatchdogState::Down;
        self.pending = false;
        self.at = None;
    }

    /// A DWA arrived at `now`: `pending` clears, SUSPECT ends, Tw again.
    pub fn on_dwa(&mut self, now: Instant) {
        if self.state == WatchdogState::Down {
            return;
        }
        self.pending = false;
        self.state = WatchdogState::Okay;
        self.set(now);
    }

    /// Any other message arrived at `at`: SUSPECT ends, Tw again (`pending` stays).
    pub fn on_message(&mut self, at: Instant) {
        if self.state == WatchdogState::Down {
            return;
        }
        self.state = WatchdogState::Okay;
        self.set(at);
    }

    /// When Tw fires next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }

    /// Runs Tw if due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<WatchdogAction> {
        if self.at.is_none_or(|at| at > now) || self.state == WatchdogState::Down {
            return None;
        }
        self.at = None;
        if self.state == WatchdogState::Suspect {
            self.close();
            return Some(WatchdogAction::Down);
        }
        let action = if self.pending {
            self.state = WatchdogState::Suspect;
            WatchdogAction::Suspect
        } else {
            self.pending = true;
            WatchdogAction::SendDwr
        };
        self.set(now);
        Some(action)
    }

    /// RFC 3539 SetWatchdog from `from`. A message reported late (its arrival before the
    /// timer last set) never pulls Tw earlier.
    fn set(&mut self, from: Instant) {
        let mut tw = self.tw;
        if self.jitter != 0 && tw >= TW_JITTER_FROM {
            let mut x = self.jitter;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.jitter = x;
            let off = x % (2 * TW_JITTER_MS + 1);
            tw = tw + Duration::from_millis(off) - Duration::from_millis(TW_JITTER_MS);
        }
        let next = from + tw;
        self.at = Some(self.at.map_or(next, |at| at.max(next)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TW: Duration = Duration::from_millis(1000);

    #[test]
    fn silence_sends_dwr_then_suspect_then_down_on_the_second_missed_dwa() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(TW);
        assert_eq!(w.handle_timeout(t0 + 10 * TW), None, "DOWN: no timer");
        w.open(t0);
        assert_eq!(w.handle_timeout(t0 + TW - Duration::from_millis(1)), None);
        assert_eq!(w.handle_timeout(t0 + TW), Some(WatchdogAction::SendDwr));
        assert_eq!(w.state(), WatchdogState::Okay);
        assert_eq!(w.handle_timeout(t0 + 2 * TW), Some(WatchdogAction::Suspect));
        assert_eq!(w.state(), WatchdogState::Suspect);
        assert_eq!(w.handle_timeout(t0 + 3 * TW), Some(WatchdogAction::Down));
        assert_eq!(w.state(), WatchdogState::Down);
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn a_dwa_returns_to_okay_and_traffic_delays_the_dwr() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(TW);
        w.open(t0);
        w.handle_timeout(t0 + TW);
        w.handle_timeout(t0 + 2 * TW);
        assert_eq!(w.state(), WatchdogState::Suspect);
        w.on_dwa(t0 + 2 * TW + Duration::from_millis(5));
        assert_eq!(w.state(), WatchdogState::Okay);
        let next = t0 + 3 * TW + Duration::from_millis(5);
        assert_eq!(w.poll_timeout(), Some(next));
        // Traffic 500 ms later moves Tw; a late report of older traffic does not pull it back.
        w.on_message(next - TW + Duration::from_millis(500));
        w.on_message(t0);
        assert_eq!(w.poll_timeout(), Some(next + Duration::from_millis(500)));
        assert_eq!(w.handle_timeout(next), None);
        assert_eq!(
            w.handle_timeout(next + Duration::from_millis(500)),
            Some(WatchdogAction::SendDwr),
            "DWR, not SUSPECT: the DWA cleared pending"
        );
    }
}
