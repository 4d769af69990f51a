//! Tests of the RFC 6733 §5.6 initiator: the state machine with a fake clock, then the driver
//! against a real `serve`, a dead port and a peer that stops answering watchdogs.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::diameter::cx::APP_ID_CX;
use crate::diameter::peer::{serve, BoxFuture, PeerInfo, PeerTable};

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

// ---- the driver, over real sockets ----

/// Answers 2001 and counts what it served.
#[derive(Default)]
struct Count(AtomicUsize);
impl DiameterHandler for Count {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let mut a = Message::answer_to(&request);
            a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
            a
        })
    }
}

fn local(name: &str) -> LocalPeer {
    LocalPeer {
        origin_host: name.into(),
        origin_realm: "ims.lab".into(),
        host_ip: "127.0.0.1".parse().unwrap(),
        product_name: "test".into(),
        watchdog_interval: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
    }
}

fn options(addr: SocketAddr, t: PeerTimers) -> ClientOptions {
    ClientOptions {
        addr,
        peer_name: "hss.ims.lab".into(),
        local: local("scscf.ims.lab"),
        timers: t,
        on_connect: None,
    }
}

async fn hss_on(l: TcpListener) -> (PeerTable, watch::Sender<bool>) {
    let table = PeerTable::default();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(serve(
        l,
        local("hss.ims.lab"),
        Arc::new(Count::default()),
        table.clone(),
        Trace::disabled(),
        rx,
    ));
    (table, tx)
}

fn cx_request() -> Message {
    Message::request(300, APP_ID_CX)
}

#[tokio::test]
async fn a_dropped_connection_is_reopened_and_peer_requests_reach_the_same_handler() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (table, _stop) = hss_on(l).await;
    let (_sd, shut) = watch::channel(false);
    let served = Arc::new(Count::default());
    let c = DiameterClient::start(
        options(addr, timers()),
        served.clone(),
        Trace::disabled(),
        shut,
    );
    c.wait_open(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        c.request(cx_request()).await.unwrap().result_code(),
        Some(2001)
    );
    let first = c.local_addr().unwrap();
    // The HSS side drops the connection.
    table.get("scscf.ims.lab").unwrap().close();
    let t = std::time::Instant::now();
    let mut reopened = false;
    while t.elapsed() < Duration::from_secs(3) {
        if c.state() == PeerState::IOpen && c.local_addr() != Some(first) {
            reopened = true;
            break;
        }
        tokio::time::sleep(10 * MS).await;
    }
    assert!(reopened, "reconnected within Tc_min and a little");
    assert_eq!(
        c.request(cx_request()).await.unwrap().result_code(),
        Some(2001)
    );
    // The HSS reaches the client's handler over the new connection.
    tokio::time::sleep(20 * MS).await;
    let back = table
        .get("scscf.ims.lab")
        .expect("new connection in the table");
    assert_eq!(back.remote().addr.port(), c.local_addr().unwrap().port());
    back.request(Message::request(304, APP_ID_CX))
        .await
        .unwrap();
    assert_eq!(served.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn requests_fail_fast_while_the_peer_is_away_and_flow_once_it_is_back() {
    // A port nobody listens on (for now).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let (_sd, shut) = watch::channel(false);
    let c = DiameterClient::start(
        options(addr, timers()),
        Arc::new(Count::default()),
        Trace::disabled(),
        shut,
    );
    let t = std::time::Instant::now();
    let e = c.request(cx_request()).await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let text = e.to_string();
    assert!(
        matches!(e, DiameterError::PeerDown { .. })
            && text.contains("hss.ims.lab")
            && text.contains(&addr.to_string()),
        "{text}"
    );
    // The HSS comes up on that port: a request after Tc_min connects on demand.
    let (_t, _stop) = hss_on(TcpListener::bind(addr).await.unwrap()).await;
    tokio::time::sleep(600 * MS).await;
    assert_eq!(
        c.request(cx_request()).await.unwrap().result_code(),
        Some(2001)
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_watchdogs_is_closed_and_reconnected() {
    // Answers CER with a CEA, then reads and ignores everything (no DWA).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                while crate::diameter::codec::frame(&buf).ok().flatten().is_none() {
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let cer = Message::decode(&buf).unwrap();
                let mut cea = Message::answer_to(&cer);
                cea.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
                cea.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, "mute.ims.lab"));
                cea.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, "ims.lab"));
                s.write_all(&cea.encode()).await.unwrap();
                let mut sink = [0u8; 4096];
                while s.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
        }
    });
    let (_sd, shut) = watch::channel(false);
    let t = PeerTimers {
        tw: 100 * MS,
        tc_min: 50 * MS,
        ..timers()
    };
    let c = DiameterClient::start(
        options(addr, t),
        Arc::new(Count::default()),
        Trace::disabled(),
        shut,
    );
    c.wait_open(Duration::from_secs(2)).await.unwrap();
    // DWR at Tw, SUSPECT at 2 Tw, down at 3 Tw, reconnect Tc_min later.
    let t0 = std::time::Instant::now();
    while accepted.load(Ordering::SeqCst) < 2 && t0.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(10 * MS).await;
    }
    assert!(accepted.load(Ordering::SeqCst) >= 2, "a second connection");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn shutdown_sends_dpr_and_stops_reconnecting() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (table, _stop) = hss_on(l).await;
    let (sd, shut) = watch::channel(false);
    let c = DiameterClient::start(
        options(addr, timers()),
        Arc::new(Count::default()),
        Trace::disabled(),
        shut,
    );
    c.wait_open(Duration::from_secs(2)).await.unwrap();
    sd.send(true).unwrap();
    tokio::time::sleep(100 * MS).await;
    assert_eq!(c.state(), PeerState::Closed);
    assert!(table.all().is_empty(), "the HSS saw the DPR and closed");
    tokio::time::sleep(600 * MS).await;
    assert!(table.all().is_empty(), "no reconnect after shutdown");
    assert!(matches!(
        c.request(cx_request()).await,
        Err(DiameterError::PeerDown { .. })
    ));
}
