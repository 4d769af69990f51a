//! A leg T-IM holds back while it sends what it kept (`manual_ready_b`) turns ready only when
//! no message for it is on its way to the keeper: otherwise a message kept in that moment would
//! be overtaken by the next one, relayed live (a web user saw "three" before "two").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Hub, HubOptions, Side, Unbound};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::MsrpMessage;
use crate::trace::Trace;

/// Reads from `s` until `want` appears (or 2 s pass); returns what was read.
async fn read_until(s: &mut TcpStream, want: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while !got.contains(want) {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    got
}

fn send(tid: &str, to: &str, from: &str, body: &str) -> MsrpMessage {
    let mut m = MsrpMessage::request("SEND", tid, to, from);
    m.headers.push(("Message-ID".into(), format!("m-{tid}")));
    m.headers.push((
        "Byte-Range".into(),
        format!("1-{}/{}", body.len(), body.len()),
    ));
    m.headers.push(("Content-Type".into(), "text/plain".into()));
    m.body = body.as_bytes().to_vec().into();
    m
}

#[tokio::test]
async fn a_held_leg_does_not_turn_ready_under_a_message_being_kept() {
    let (_stop, shut) = watch::channel(false);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = HubOptions {
        unbound: Unbound::Store,
        manual_ready_b: true,
        limits: MsrpLimits::default(),
    };
    let (hub, _events) = Hub::start(l, Trace::disabled(), opts, shut).unwrap();
    let (pair, uri_a, uri_b) = hub.new_pair();
    // While the keeper holds a message, the flush (here: the keeper itself) tries to let
    // the leg relay: it must be told to wait.
    let tried: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let (h, t) = (hub.clone(), tried.clone());
    hub.set_keeper(Box::new(move |pair, _from, _ct, body| {
        let ready = h.set_ready_if(pair, Side::B, || true);
        t.lock()
            .unwrap()
            .push((String::from_utf8_lossy(body).to_string(), ready));
        Box::pin(async { true })
    }));

    let mut a = TcpStream::connect(hub.local_addr()).await.unwrap();
    let mut b = TcpStream::connect(hub.local_addr()).await.unwrap();
    let path_a = format!("msrp://{}/ua;tcp", a.local_addr().unwrap());
    let path_b = format!("msrp://{}/ub;tcp", b.local_addr().unwrap());
    // B binds: held (Bound, not ready) until T-IM says so.
    let bind = MsrpMessage::request("SEND", "tb", &uri_b, &path_b);
    b.write_all(&bind.to_bytes()).await.unwrap();
    assert!(read_until(&mut b, "MSRP tb 200")
        .await
        .contains("MSRP tb 200"));
    // A sends "two" while B is held: kept, and the try to turn ready meanwhile is refused.
    a.write_all(&send("t2", &uri_a, &path_a, "two").to_bytes())
        .await
        .unwrap();
    assert!(read_until(&mut a, "MSRP t2 200")
        .await
        .contains("MSRP t2 200"));
    assert_eq!(*tried.lock().unwrap(), [("two".to_string(), false)]);
    // Nothing is being kept now, and the store (say) is empty: ready.
    assert!(
        !hub.set_ready_if(pair, Side::B, || false),
        "the store still holds one"
    );
    assert!(hub.set_ready_if(pair, Side::B, || true));
    // "three" is relayed live to B, and not kept.
    a.write_all(&send("t3", &uri_a, &path_a, "three").to_bytes())
        .await
        .unwrap();
    let at_b = read_until(&mut b, "three").await;
    assert!(at_b.contains("three"), "relayed: {at_b}");
    assert_eq!(tried.lock().unwrap().len(), 1, "not kept");
}
