//! Tests of the socket-free Diameter peer cores with a fake clock: the RFC 6733 §5.6
//! initiator with its Tc back-off, the RFC 3539 watchdog, Disconnect-Cause, and the responder's
//! CER decision. (The tokio driver's tests over real sockets are in `client_tests.rs`.)

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn timers() -> PeerTimers {
    PeerTimers {
        tw: 1000 * MS,
        tc_min: 500 * MS,
        tc_max: 4000 * MS,
        ts: 200 * MS,
    }
}

fn drain(f: &mut PeerFsm) -> Vec<PeerAction> {
    std::iter::from_fn(|| f.poll_action()).collect()
}

fn down(why: &str, retry_ms: Option<u64>, was_open: bool) -> PeerAction {
    PeerAction::Down {
        why: why.into(),
        retry_in: retry_ms.map(Duration::from_millis),
        was_open,
    }
}

/// A machine brought to I-Open at `t0`.
fn open_at(t0: Instant) -> PeerFsm {
    let mut f = PeerFsm::new(timers());
    f.handle(t0, PeerEvent::Start);
    f.handle(t0, PeerEvent::ConnAck);
    f.handle(t0, PeerEvent::RcvCea);
    assert_eq!(
        drain(&mut f),
        [PeerAction::Connect, PeerAction::SendCer, PeerAction::Up]
    );
    assert_eq!(f.state(), PeerState::IOpen);
    f
}

#[test]
fn start_connects_exchanges_capabilities_and_opens() {
    let t0 = Instant::now();
    let f = open_at(t0);
    assert_eq!(f.poll_timeout(), Some(t0 + 1000 * MS), "only Tw runs");
}

#[test]
fn failed_attempts_back_off_from_tc_min_doubling_to_tc_max() {
    let mut t = Instant::now();
    let mut f = PeerFsm::new(timers());
    f.handle(t, PeerEvent::Start);
    assert_eq!(drain(&mut f), [PeerAction::Connect]);
    let mut delays = Vec::new();
    for _ in 0..6 {
        f.handle(t, PeerEvent::ConnNack("refused".into()));
        let acts = drain(&mut f);
        assert_eq!(acts[0], PeerAction::Disconnect);
        let PeerAction::Down { retry_in, .. } = &acts[1] else {
            panic!("{acts:?}")
        };
        assert_eq!(f.state(), PeerState::Closed);
        let next = f.poll_timeout().expect("Tc set");
        delays.push(retry_in.unwrap().as_millis());
        assert_eq!(next, t + retry_in.unwrap());
        t = next;
        f.handle_timeout(t);
        assert_eq!(drain(&mut f), [PeerAction::Connect]);
        assert_eq!(f.state(), PeerState::WaitConnAck);
    }
    assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000]);
    // Success resets the back-off: the next failure retries after Tc_min again.
    f.handle(t, PeerEvent::ConnAck);
    f.handle(t, PeerEvent::RcvCea);
    drain(&mut f);
    f.handle(t, PeerEvent::PeerDisc("closed".into()));
    assert_eq!(
        drain(&mut f),
        [PeerAction::Disconnect, down("closed", Some(500), true)]
    );
}

#[test]
fn ts_bounds_the_connect_and_the_cea() {
    let t0 = Instant::now();
    let mut f = PeerFsm::new(timers());
    f.handle(t0, PeerEvent::Start);
    drain(&mut f);
    f.handle_timeout(t0 + 199 * MS);
    assert!(drain(&mut f).is_empty(), "not yet");
    f.handle_timeout(t0 + 200 * MS);
    assert_eq!(
        drain(&mut f),
        [
            PeerAction::Disconnect,
            down("no TCP connection in time", Some(500), false)
        ]
    );
    let t1 = t0 + 700 * MS;
    f.handle_timeout(t1);
    f.handle(t1, PeerEvent::ConnAck);
    assert_eq!(drain(&mut f), [PeerAction::Connect, PeerAction::SendCer]);
    f.handle_timeout(t1 + 200 * MS);
    assert_eq!(
        drain(&mut f),
        [
            PeerAction::Disconnect,
            down("no CEA in time", Some(1000), false)
        ]
    );
    // A late CEA from the dropped attempt changes nothing.
    f.handle(t1 + 250 * MS, PeerEvent::RcvCea);
    assert_eq!(f.state(), PeerState::Closed);
    assert!(drain(&mut f).is_empty());
}

#[test]
fn watchdog_sends_dwr_then_suspect_then_down_per_rfc_3539() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    let tw = 1000 * MS;
    f.handle_timeout(t0 + tw);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr]);
    f.handle(t0 + tw + 10 * MS, PeerEvent::RcvDwa);
    // The DWA set the watchdog again from its arrival.
    assert_eq!(f.poll_timeout(), Some(t0 + 2 * tw + 10 * MS));
    let t1 = t0 + 2 * tw + 10 * MS;
    f.handle_timeout(t1);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr]);
    f.handle_timeout(t1 + tw);
    assert_eq!(drain(&mut f), [PeerAction::Suspect]);
    assert_eq!(f.state(), PeerState::IOpen, "SUSPECT is still open");
    f.handle_timeout(t1 + 2 * tw);
    assert_eq!(
        drain(&mut f),
        [
            PeerAction::Disconnect,
            down("no DWA for 2.0 s (RFC 3539 watchdog)", Some(500), true)
        ]
    );
    assert_eq!(f.poll_timeout(), Some(t1 + 2 * tw + 500 * MS), "Tc runs");
}

#[test]
fn a_dwa_ends_suspect() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    let tw = 1000 * MS;
    f.handle_timeout(t0 + tw);
    f.handle_timeout(t0 + 2 * tw);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr, PeerAction::Suspect]);
    f.handle(t0 + 2 * tw + MS, PeerEvent::RcvDwa);
    f.handle_timeout(t0 + 3 * tw + MS);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr], "back to OKAY");
}

#[test]
fn a_request_while_closed_reconnects_at_most_once_per_tc_min() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    f.handle(t0, PeerEvent::PeerDisc("reset".into()));
    drain(&mut f);
    // The last attempt (the one that opened) was at t0: a kick 100 ms later waits for Tc.
    f.handle(t0 + 100 * MS, PeerEvent::Kick);
    assert!(drain(&mut f).is_empty());
    // Much later (Tc would have fired long ago if the test had run the clock): connect now.
    let mut g = open_at(t0);
    g.handle(t0 + 5000 * MS, PeerEvent::PeerDisc("reset".into()));
    drain(&mut g);
    g.handle(t0 + 5001 * MS, PeerEvent::Kick);
    assert_eq!(drain(&mut g), [PeerAction::Connect]);
    assert_eq!(g.state(), PeerState::WaitConnAck);
    // A kick while connecting changes nothing.
    g.handle(t0 + 5002 * MS, PeerEvent::Kick);
    assert!(drain(&mut g).is_empty());
}

#[test]
fn stop_sends_dpr_and_closes_for_good() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    f.handle(t0, PeerEvent::Stop);
    assert_eq!(drain(&mut f), [PeerAction::SendDpr]);
    assert_eq!(f.state(), PeerState::Closing);
    f.handle(t0 + MS, PeerEvent::RcvDpa);
    assert!(f.is_finished());
    assert_eq!(f.poll_timeout(), None, "no reconnect after Stop");
    // No DPA: Ts ends it.
    let mut g = open_at(t0);
    g.handle(t0, PeerEvent::Stop);
    drain(&mut g);
    g.handle_timeout(t0 + 200 * MS);
    assert_eq!(drain(&mut g), [PeerAction::Disconnect]);
    assert!(g.is_finished());
    // Stopped while waiting to reconnect.
    let mut h = open_at(t0);
    h.handle(t0, PeerEvent::PeerDisc("x".into()));
    drain(&mut h);
    h.handle(t0, PeerEvent::Stop);
    assert!(h.is_finished());
    assert_eq!(h.poll_timeout(), None);
    h.handle(t0 + 9000 * MS, PeerEvent::Kick);
    assert!(drain(&mut h).is_empty());
}

#[test]
fn connect_cer_cea_2001_opens_with_watchdog_okay() {
    let t0 = Instant::now();
    let mut f = PeerFsm::new(timers());
    assert_eq!(f.watchdog(), WatchdogState::Down);
    assert_eq!(f.handle(t0, PeerEvent::Start), Handled::Done);
    assert_eq!(f.state(), PeerState::WaitConnAck);
    f.handle(t0 + MS, PeerEvent::ConnAck);
    assert_eq!(f.state(), PeerState::WaitICea);
    f.handle(t0 + 2 * MS, PeerEvent::RcvCea);
    assert_eq!(
        drain(&mut f),
        [PeerAction::Connect, PeerAction::SendCer, PeerAction::Up]
    );
    assert_eq!(f.state(), PeerState::IOpen);
    assert_eq!(f.watchdog(), WatchdogState::Okay);
}

#[test]
fn a_cea_with_an_error_closes_and_retries_after_tc() {
    let t0 = Instant::now();
    let mut f = PeerFsm::new(timers());
    f.handle(t0, PeerEvent::Start);
    f.handle(t0, PeerEvent::ConnAck);
    drain(&mut f);
    f.handle(
        t0 + MS,
        PeerEvent::RcvBadCea("CEA Result-Code Some(3010)".into()),
    );
    assert_eq!(
        drain(&mut f),
        [
            PeerAction::Disconnect,
            down("CEA Result-Code Some(3010)", Some(500), false)
        ]
    );
    assert_eq!(f.state(), PeerState::Closed);
    assert_eq!(f.poll_timeout(), Some(t0 + 501 * MS), "Tc");
    f.handle_timeout(t0 + 500 * MS);
    assert!(drain(&mut f).is_empty(), "not before Tc");
    f.handle_timeout(t0 + 501 * MS);
    assert_eq!(drain(&mut f), [PeerAction::Connect]);
}

#[test]
fn traffic_received_sets_the_watchdog_again() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    let tw = 1000 * MS;
    // An answer to one of our requests 600 ms in: no DWR at t0 + Tw.
    f.handle(t0 + 600 * MS, PeerEvent::RcvAny);
    assert_eq!(f.poll_timeout(), Some(t0 + 600 * MS + tw));
    f.handle_timeout(t0 + tw);
    assert!(drain(&mut f).is_empty());
    f.handle_timeout(t0 + 600 * MS + tw);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr], "silence for Tw: DWR");
}

#[test]
fn any_message_ends_suspect_but_leaves_the_dwr_pending() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    let tw = 1000 * MS;
    f.handle_timeout(t0 + tw);
    f.handle_timeout(t0 + 2 * tw);
    assert_eq!(drain(&mut f), [PeerAction::SendDwr, PeerAction::Suspect]);
    assert_eq!(f.watchdog(), WatchdogState::Suspect);
    f.handle(t0 + 2 * tw + MS, PeerEvent::RcvAny);
    assert_eq!(f.watchdog(), WatchdogState::Okay);
    // RFC 3539: `pending` is still set, so the next Tw without a DWA is SUSPECT again.
    f.handle_timeout(t0 + 3 * tw + MS);
    assert_eq!(drain(&mut f), [PeerAction::Suspect]);
}

#[test]
fn tw_jitter_stays_within_two_seconds_and_only_from_six() {
    let t0 = Instant::now();
    let mut t = timers();
    t.tw = Duration::from_secs(30);
    for seed in 0..50u64 {
        let mut f = PeerFsm::new(t).with_tw_jitter(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        f.handle(t0, PeerEvent::Start);
        f.handle(t0, PeerEvent::ConnAck);
        f.handle(t0, PeerEvent::RcvCea);
        let tw = f.poll_timeout().unwrap() - t0;
        assert!(
            tw >= Duration::from_secs(28) && tw <= Duration::from_secs(32),
            "{tw:?}"
        );
    }
    // Below the RFC's 6 s minimum (a lab's Tw) there is no jitter.
    let mut f = PeerFsm::new(timers()).with_tw_jitter(42);
    f.handle(t0, PeerEvent::Start);
    f.handle(t0, PeerEvent::ConnAck);
    f.handle(t0, PeerEvent::RcvCea);
    assert_eq!(f.poll_timeout(), Some(t0 + 1000 * MS));
}

#[test]
fn dpr_rebooting_reconnects_after_tc_busy_and_do_not_want_wait_for_a_request() {
    let t0 = Instant::now();
    let mut f = open_at(t0);
    f.handle(t0, PeerEvent::RcvDpr(DisconnectCause::from_u32(0)));
    assert_eq!(
        drain(&mut f),
        [
            PeerAction::Disconnect,
            down("peer sent DPR (Rebooting)", Some(500), true)
        ]
    );
    assert_eq!(f.poll_timeout(), Some(t0 + 500 * MS));
    for (v, cause) in [
        (1, DisconnectCause::Busy),
        (2, DisconnectCause::DoNotWantToTalkToYou),
    ] {
        let mut g = open_at(t0);
        g.handle(t0, PeerEvent::RcvDpr(DisconnectCause::from_u32(v)));
        assert_eq!(
            drain(&mut g),
            [
                PeerAction::Disconnect,
                down(&format!("peer sent DPR ({cause:?})"), None, true)
            ]
        );
        assert_eq!(g.state(), PeerState::Closed);
        assert_eq!(
            g.poll_timeout(),
            None,
            "no Tc: the peer asked us to stay away"
        );
        assert!(!g.is_finished(), "not stopped: a request may bring it back");
        // RFC 6733 §5.4: a message to send is a valid reason to reconnect.
        g.handle(t0 + 5000 * MS, PeerEvent::Kick);
        assert_eq!(drain(&mut g), [PeerAction::Connect]);
    }
}

#[test]
fn events_without_meaning_in_a_state_are_ignored_with_a_reason() {
    let t0 = Instant::now();
    let mut f = PeerFsm::new(timers());
    assert_eq!(
        f.handle(t0, PeerEvent::RcvDwa),
        Handled::Ignored("no connection")
    );
    assert_eq!(
        f.handle(t0, PeerEvent::RcvCea),
        Handled::Ignored("no connection")
    );
    f.handle(t0, PeerEvent::Start);
    assert_eq!(
        f.handle(t0, PeerEvent::RcvCea),
        Handled::Ignored("not connected yet")
    );
    let mut g = open_at(t0);
    assert_eq!(
        g.handle(t0, PeerEvent::ConnAck),
        Handled::Ignored("not expected while open")
    );
    assert_eq!(g.state(), PeerState::IOpen);
    g.handle(t0, PeerEvent::Stop);
    assert_eq!(g.handle(t0, PeerEvent::RcvCea), Handled::Ignored("closing"));
    assert!(drain(&mut g).iter().all(|a| *a == PeerAction::SendDpr));
    // After Stop nothing restarts it.
    g.handle(t0, PeerEvent::RcvDpa);
    assert_eq!(g.handle(t0, PeerEvent::Start), Handled::Ignored("stopped"));
    assert_eq!(g.handle(t0, PeerEvent::Kick), Handled::Ignored("stopped"));
}

#[test]
fn the_state_table_refuses_moves_rfc_6733_does_not_have() {
    let mut f = PeerFsm::new(timers());
    assert_eq!(f.enter(PeerState::IOpen), Err("illegal state move"));
    assert_eq!(f.enter(PeerState::Closing), Err("illegal state move"));
    assert_eq!(f.state(), PeerState::Closed);
    assert_eq!(f.enter(PeerState::WaitConnAck), Ok(()));
    assert_eq!(f.enter(PeerState::IOpen), Err("illegal state move"));
}

fn check(known: bool, offers_cx: bool, room: bool) -> CerCheck {
    CerCheck {
        known,
        offers_cx,
        room,
    }
}

#[test]
fn responder_opens_on_a_valid_cer_and_refuses_the_others() {
    let mut r = Responder::new();
    assert_eq!(
        r.on_cer(check(false, true, true)),
        ResponderAction::SendCea(3010),
        "DIAMETER_UNKNOWN_PEER"
    );
    assert_eq!(r.state(), ResponderState::Closed);
    assert_eq!(
        r.on_cer(check(true, false, true)),
        ResponderAction::SendCea(5010),
        "DIAMETER_NO_COMMON_APPLICATION"
    );
    assert_eq!(
        r.on_cer(check(true, true, false)),
        ResponderAction::SendCea(5012)
    );
    assert_eq!(r.state(), ResponderState::Closed);
    assert_eq!(r.on_dpr(), None, "nothing to disconnect before the CER");
    assert_eq!(
        r.on_cer(check(true, true, true)),
        ResponderAction::SendCea(2001)
    );
    assert_eq!(r.state(), ResponderState::ROpen);
    assert_eq!(
        r.on_cer(check(true, true, true)),
        ResponderAction::Refuse(5012),
        "a second CER on an open connection"
    );
    assert_eq!(r.on_dpr(), Some(ResponderAction::SendDpaAndClose));
    assert_eq!(r.state(), ResponderState::Closed);
}

#[test]
fn an_open_connection_refuses_a_second_cer_and_closes_on_dpr() {
    let mut r = Responder::open();
    assert_eq!(r.on_cer(CerCheck::default()), ResponderAction::Refuse(5012));
    assert_eq!(r.state(), ResponderState::ROpen);
    assert_eq!(r.on_dpr(), Some(ResponderAction::SendDpaAndClose));
    assert_eq!(r.on_dpr(), None, "closed: a second DPR gets nothing");
    r.on_disconnect();
    assert_eq!(r.state(), ResponderState::Closed);
}
