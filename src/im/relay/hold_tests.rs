//! A file transfer's leg B held until its far end binds ([`Hub::hold_until_bound`]): chunks
//! that come before wait in the leg's queue (neither kept as a message nor refused) and go on
//! once it is up; a file pair streams (nothing reassembled, chat's size limit does not apply);
//! a file whose Byte-Range total passes the file limit gets 413 at its first chunk (RFC 4975
//! §7.1.1).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Hub, HubOptions, Side, Unbound};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::{Continuation, MsrpMessage};
use crate::trace::Trace;

/// Reads from `s` until `want` appears (or 2 s pass); returns what was read.
async fn read_until(s: &mut TcpStream, want: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 16384];
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while !got.contains(want) {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    got
}

fn chunk(tid: &str, to: &str, from: &str, start: u64, len: usize, total: u64) -> MsrpMessage {
    let mut m = MsrpMessage::request("SEND", tid, to, from);
    m.set_header("Message-ID", format!("file-{total}"));
    m.set_header(
        "Byte-Range",
        format!("{start}-{}/{total}", start + len as u64 - 1),
    );
    m.set_header("Content-Type", "application/octet-stream");
    m.body = vec![b'x'; len].into();
    m.continuation = if start + len as u64 - 1 == total {
        Continuation::End
    } else {
        Continuation::More
    };
    m
}

#[tokio::test]
async fn chunks_wait_for_the_held_leg_and_a_file_past_the_limit_gets_413() {
    let (_stop, shut) = watch::channel(false);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // As T-IM runs its hub.
    let opts = HubOptions {
        unbound: Unbound::Store,
        manual_ready_b: true,
        limits: MsrpLimits {
            max_size: 5_000,
            max_file_size: 20_000,
            ..MsrpLimits::default()
        },
    };
    let (hub, mut events) = Hub::start(l, Trace::disabled(), opts, shut).unwrap();
    assert_eq!(
        (hub.max_message_size(), hub.max_file_size()),
        (5_000, 20_000)
    );
    let kept = Arc::new(AtomicUsize::new(0));
    let k = kept.clone();
    hub.set_keeper(Box::new(move |_, _, _, _| {
        k.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { true })
    }));
    let (pair, uri_a, uri_b) = hub.new_pair();
    hub.set_file(pair);
    hub.hold_until_bound(pair, Side::B);

    let mut a = TcpStream::connect(hub.local_addr()).await.unwrap();
    let path_a = format!("msrp://{}/ua;tcp", a.local_addr().unwrap());
    let bind = MsrpMessage::request("SEND", "ba", &uri_a, &path_a);
    a.write_all(&bind.to_bytes()).await.unwrap();
    assert!(read_until(&mut a, "MSRP ba 200")
        .await
        .contains("MSRP ba 200"));
    // The first chunk comes before B is bound: no answer yet, nothing kept.
    a.write_all(&chunk("c1", &uri_a, &path_a, 1, 10_240, 20_000).to_bytes())
        .await
        .unwrap();
    let early = read_until(&mut a, "MSRP c1").await;
    assert!(!early.contains("MSRP c1"), "answered too early: {early}");

    let mut b = TcpStream::connect(hub.local_addr()).await.unwrap();
    let path_b = format!("msrp://{}/ub;tcp", b.local_addr().unwrap());
    let bind = MsrpMessage::request("SEND", "bb", &uri_b, &path_b);
    b.write_all(&bind.to_bytes()).await.unwrap();
    assert!(read_until(&mut b, "MSRP bb 200")
        .await
        .contains("MSRP bb 200"));
    // T-IM lets a bound file leg relay at once.
    hub.set_ready(pair, Side::B);
    let at_b = read_until(&mut b, "Byte-Range: 1-10240/20000").await;
    assert!(at_b.contains("Byte-Range: 1-10240/20000"), "{at_b}");
    let tid = at_b
        .lines()
        .find_map(|l| {
            l.strip_prefix("MSRP ")
                .and_then(|r| r.strip_suffix(" SEND"))
        })
        .expect("the relayed chunk")
        .to_string();
    let ok = MsrpMessage {
        transaction_id: tid,
        method: None,
        status: 200,
        comment: "OK".into(),
        headers: vec![
            ("To-Path".into(), uri_b.clone()),
            ("From-Path".into(), path_b.clone()),
        ],
        body: Default::default(),
        continuation: Continuation::End,
    };
    b.write_all(&ok.to_bytes()).await.unwrap();
    assert!(read_until(&mut a, "MSRP c1 200")
        .await
        .contains("MSRP c1 200"));
    // Streamed: over chat's 5000 bytes, yet nothing of it is held once its 200 went back.
    let st = hub.stats();
    assert_eq!((st.partials, st.partial_bytes, st.txs), (0, 0, 0), "{st:?}");
    // A file whose Byte-Range says it is past 20000 bytes: 413 for its first chunk.
    a.write_all(&chunk("c2", &uri_a, &path_a, 1, 10_240, 30_000).to_bytes())
        .await
        .unwrap();
    assert!(read_until(&mut a, "MSRP c2 413")
        .await
        .contains("MSRP c2 413"));
    assert_eq!(kept.load(Ordering::Relaxed), 0, "a file is never kept");
    // Nor shown to the node as a message (only the bindings were).
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev, super::HubEvent::Message { .. }),
            "a file chunk reached the node: {ev:?}"
        );
    }
}
