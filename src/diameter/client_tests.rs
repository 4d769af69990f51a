//! Tests of the RFC 6733 §5.6 initiator's tokio driver against a real `serve`, a dead port and
//! a peer that stops answering watchdogs. (The state machine's own tests, with a fake clock,
//! are in `peer_fsm_tests.rs`.)

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

/// A peer that answers the CER, then sends DPR with `cause` and closes after the DPA; it
/// counts the connections it accepted.
async fn leaving_peer(cause: u32) -> (SocketAddr, Arc<AtomicUsize>) {
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
                cea.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, "leaving.ims.lab"));
                cea.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, "ims.lab"));
                s.write_all(&cea.encode()).await.unwrap();
                tokio::time::sleep(50 * MS).await;
                let mut dpr = Message::request(CMD_DISCONNECT_PEER, 0);
                dpr.flags = CMD_FLAG_REQUEST;
                dpr.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, "leaving.ims.lab"));
                dpr.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, "ims.lab"));
                dpr.push(Avp::u32(AVP_DISCONNECT_CAUSE, None, true, cause));
                s.write_all(&dpr.encode()).await.unwrap();
                let mut sink = [0u8; 4096];
                // Read the DPA, then close.
                let _ = tokio::time::timeout(Duration::from_secs(1), s.read(&mut sink)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_dpr_do_not_want_to_talk_to_you_is_not_followed_by_a_reconnect_until_a_request() {
    let (addr, accepted) = leaving_peer(2).await;
    let (_sd, shut) = watch::channel(false);
    let t = PeerTimers {
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
    tokio::time::sleep(400 * MS).await;
    assert_eq!(c.state(), PeerState::Closed);
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no Tc reconnect");
    // A request is a valid reason to come back (RFC 6733 §5.4).
    let _ = c.request(cx_request()).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the request reconnected"
    );
}

#[tokio::test]
async fn a_dpr_rebooting_is_followed_by_a_reconnect_after_tc() {
    let (addr, accepted) = leaving_peer(0).await;
    let (_sd, shut) = watch::channel(false);
    let t = PeerTimers {
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
    let t0 = std::time::Instant::now();
    while accepted.load(Ordering::SeqCst) < 2 && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(10 * MS).await;
    }
    assert!(accepted.load(Ordering::SeqCst) >= 2, "reconnected after Tc");
}
