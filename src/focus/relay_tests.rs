//! The focus's MSRP side over real sockets, with raw MSRP members: a disposition report whose
//! sender wants no answer (`Failure-Report: no`, as RCC.07 clients send reports) goes straight
//! to the member it is for and gets no 200; one that member does not take (its connection
//! goes first) is kept in the history for its next leg; one whose sender wants the 200 is in
//! the history before the 200.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::cpim::ImdnStatus;
use crate::focus::group::Group;
use crate::focus::FocusSettings;
use crate::sip::resolve::Resolver;
use crate::sip::transaction::TimerConfig;
use crate::sip::Endpoint;
use crate::store::GroupCommit;
use crate::trace::Trace;

const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";

struct Bench {
    focus: Arc<Focus>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A focus with group `g1` (alice, its creator, and bob), taking MSRP connections.
async fn focus_with_group() -> Bench {
    let (stop, shut) = watch::channel(false);
    let (ep, _rx) = Endpoint::bind(
        "CONF",
        "127.0.0.1:0".parse().unwrap(),
        TimerConfig::default(),
        Trace::disabled(),
        shut.clone(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let focus = Focus::new(
        ep,
        Resolver::new(HashMap::new()),
        "conf.ims.lab",
        l,
        Trace::disabled(),
        (&db, GroupCommit::new(&db)),
        FocusSettings::default(),
    )
    .unwrap();
    let g = Group::new(
        "g1",
        "sip:chat-g1@ims.lab",
        ALICE,
        &[BOB.into()],
        None,
        "c1",
        10,
    )
    .unwrap();
    lock(&focus.groups).insert("g1".into(), g);
    let listener = lock(&focus.msrp).take().unwrap();
    tokio::spawn(accept(focus.clone(), listener, shut));
    Bench {
        focus,
        _stop: stop,
        _dir: dir,
    }
}

/// A member's leg, bound by a raw MSRP connection: the connection, its events, its path.
async fn bind(f: &Arc<Focus>, member: &str, me: &str) -> (MsrpConn, MsrpEvents, String) {
    let (_, local) = f.new_leg("g1", member, None);
    let (conn, mut rx) = MsrpConn::connect(f.msrp_addr, Trace::disabled())
        .await
        .unwrap();
    let mine = format!("msrp://127.0.0.1:9/{me};tcp");
    let b = MsrpMessage::request("SEND", "bind", &local, &mine);
    conn.send(&b).unwrap();
    match next(&mut rx).await {
        Some(m) if m.status == 200 => {}
        other => panic!("binding SEND not answered 200: {other:?}"),
    }
    (conn, rx, local)
}

async fn next(rx: &mut MsrpEvents) -> Option<MsrpMessage> {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(MsrpEvent::Message(m))) => Some(m),
        _ => None,
    }
}

/// Nothing comes within `d`.
async fn quiet(rx: &mut MsrpEvents, d: Duration) {
    if let Ok(Some(MsrpEvent::Message(m))) = tokio::time::timeout(d, rx.recv()).await {
        panic!("expected nothing, got {m:?}");
    }
}

/// bob's "delivered" about alice's message `about`, as one SEND to his leg `to`.
fn report(to: &str, about: &str, failure_report: Option<&str>) -> MsrpMessage {
    let original = rcs::text_message(ALICE, "sip:chat-g1@ims.lab", about, "hi", None);
    let doc = rcs::imdn_message(BOB, ALICE, &original, ImdnStatus::Delivered).to_bytes();
    let mut m = chunk(
        to,
        "msrp://127.0.0.1:9/bob;tcp",
        "r1",
        "message/cpim",
        &doc,
        CHUNK_SIZE,
        || "rep1".into(),
    )
    .remove(0);
    if let Some(v) = failure_report {
        m.set_header("Failure-Report", v);
    }
    m
}

fn history(f: &Focus) -> Vec<String> {
    f.store
        .messages_after("g1", 0, 100)
        .into_iter()
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

#[tokio::test]
async fn an_unanswered_report_goes_straight_to_its_member_and_nothing_is_stored() {
    let b = focus_with_group().await;
    let (alice, mut alice_rx, _) = bind(&b.focus, ALICE, "alice").await;
    let (bob, mut bob_rx, bob_leg) = bind(&b.focus, BOB, "bob").await;
    bob.send(&report(&bob_leg, "m-1", Some("no"))).unwrap();
    let got = next(&mut alice_rx).await.expect("the report reaches alice");
    assert_eq!(got.method.as_deref(), Some("SEND"));
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(body.contains("<message-id>m-1</message-id>"), "{body}");
    assert!(body.contains("<delivered/>"), "{body}");
    // RFC 4975 §7.1.1: no response to a SEND with Failure-Report: no.
    quiet(&mut bob_rx, Duration::from_millis(300)).await;
    // alice takes it: it is never stored, not even once her connection goes.
    alice.send(&got.response_to(200, "OK")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice.close();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(history(&b.focus).is_empty(), "{:?}", history(&b.focus));
    assert!(lock(&b.focus.sent).is_empty());
    assert_eq!(held(&b.focus), 0);
}

fn held(f: &Focus) -> usize {
    f.held_bytes.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_report_too_large_to_hold_goes_through_the_history() {
    let b = focus_with_group().await;
    let (_alice, mut alice_rx, _) = bind(&b.focus, ALICE, "alice").await;
    let (bob, mut bob_rx, bob_leg) = bind(&b.focus, BOB, "bob").await;
    let mut big = report(&bob_leg, "m-5", Some("no"));
    let mut body = big.body.to_vec();
    body.extend(std::iter::repeat_n(b' ', 9 << 10));
    big.set_header("Byte-Range", format!("1-{}/{}", body.len(), body.len()));
    big.body = body.into();
    bob.send(&big).unwrap();
    let got = next(&mut alice_rx).await.expect("the report reaches alice");
    assert!(String::from_utf8_lossy(&got.body).contains("m-5"));
    assert!(history(&b.focus).iter().any(|h| h.contains("m-5")));
    assert_eq!(held(&b.focus), 0);
    quiet(&mut bob_rx, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_report_its_member_does_not_take_is_kept_for_the_members_next_leg() {
    let b = focus_with_group().await;
    let (alice, mut alice_rx, _) = bind(&b.focus, ALICE, "alice").await;
    let (bob, _bob_rx, bob_leg) = bind(&b.focus, BOB, "bob").await;
    bob.send(&report(&bob_leg, "m-2", Some("no"))).unwrap();
    let got = next(&mut alice_rx).await.expect("the report reaches alice");
    assert!(String::from_utf8_lossy(&got.body).contains("m-2"));
    assert!(history(&b.focus).is_empty());
    // Her connection goes before she answers it.
    alice.abort("gone");
    drop(alice_rx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !history(&b.focus).iter().any(|h| h.contains("m-2")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the report was not kept in the history"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Her next leg gets it.
    let (_alice2, mut alice2_rx, _) = bind(&b.focus, ALICE, "alice2").await;
    let again = next(&mut alice2_rx).await.expect("the kept report");
    assert!(String::from_utf8_lossy(&again.body).contains("m-2"));
    assert_eq!(held(&b.focus), 0);
}

#[tokio::test]
async fn a_report_whose_sender_wants_the_200_is_stored_before_it() {
    let b = focus_with_group().await;
    let (_alice, mut alice_rx, _) = bind(&b.focus, ALICE, "alice").await;
    let (bob, mut bob_rx, bob_leg) = bind(&b.focus, BOB, "bob").await;
    bob.send(&report(&bob_leg, "m-3", None)).unwrap();
    let ok = next(&mut bob_rx).await.expect("bob's 200");
    assert_eq!(ok.status, 200);
    assert!(history(&b.focus).iter().any(|h| h.contains("m-3")));
    let got = next(&mut alice_rx).await.expect("the report reaches alice");
    assert!(String::from_utf8_lossy(&got.body).contains("m-3"));
}

#[tokio::test]
async fn failure_report_partial_gets_failures_only() {
    let b = focus_with_group().await;
    let (bob, mut bob_rx, bob_leg) = bind(&b.focus, BOB, "bob").await;
    // A chunk to a leg that is not bob's: 481, which `partial` still wants.
    let mut wrong = report("msrp://127.0.0.1:1/nobody;tcp", "m-4", Some("partial"));
    wrong.transaction_id = "w1".into();
    bob.send(&wrong).unwrap();
    let r = next(&mut bob_rx).await.expect("the 481");
    assert_eq!((r.status, r.transaction_id.as_str()), (481, "w1"));
    // The good one, for alice, whose leg is down: kept for her, and no 200.
    bob.send(&report(&bob_leg, "m-4", Some("partial"))).unwrap();
    quiet(&mut bob_rx, Duration::from_millis(300)).await;
    assert!(history(&b.focus).iter().any(|h| h.contains("m-4")));
}
