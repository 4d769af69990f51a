//! MSRP relay bounds (RFC 4975 §7.1.1, §7.1.2, §10): a message that stops arriving is dropped
//! with a `000 408` REPORT to its sender, partial messages per connection are capped (413),
//! connections that bind nothing are closed, connections per listener are capped, and once
//! the sessions end O-IM's and T-IM's relays hold nothing.

use std::time::Duration;

use rcslab::cpim::ImdnStatus;
use rcslab::im::relay::MsrpStats;
use rcslab::trace::Protocol;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::Lab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::chat::{chat_ue, next};
use crate::{eventually, lab_with};

async fn pair(lab: &Lab, shut: &watch::Receiver<bool>) -> (ChatUe, ChatUe) {
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let alice = chat_ue(lab, "alice", shut, opts.clone()).await;
    let bob = chat_ue(lab, "bob", shut, opts).await;
    (alice, bob)
}

/// alice -> bob, and the "delivered" back.
async fn chat_once(alice: &mut ChatUe, bob: &mut ChatUe, text: &str) {
    let id = alice.send("sip:bob@ims.lab", text).await;
    loop {
        match next(bob).await {
            ChatEvent::Message { text: t, .. } if t == text => break,
            ChatEvent::Message { .. } => continue,
            other => panic!("expected {text:?} at bob, got {other:?}"),
        }
    }
    loop {
        match next(alice).await {
            ChatEvent::Status {
                message_id, status, ..
            } if message_id == id => {
                assert_eq!(status, ImdnStatus::Delivered);
                return;
            }
            ChatEvent::Acked { .. } => continue,
            other => panic!("expected delivered for {id}, got {other:?}"),
        }
    }
}

/// The URI of alice's leg at O-IM: the To-Path of what she sent to O-IM's MSRP listener.
fn alice_leg_at_oim(lab: &Lab) -> String {
    let mine = format!("msrp://{}/", lab.addrs.oim_msrp);
    lab.trace
        .events()
        .iter()
        .filter(|e| {
            e.protocol == Protocol::Msrp
                && e.remote == lab.addrs.oim_msrp
                && e.summary.ends_with("SEND")
        })
        .find_map(|e| {
            String::from_utf8_lossy(&e.bytes).lines().find_map(|l| {
                l.strip_prefix("To-Path: ")
                    .filter(|u| u.starts_with(&mine))
                    .map(str::to_string)
            })
        })
        .expect("alice bound her O-IM leg")
}

fn chunk(
    tid: &str,
    to: &str,
    mid: &str,
    range: &str,
    body: &[u8],
    flag: char,
    ct: &str,
) -> Vec<u8> {
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: msrp://127.0.0.1:9/raw;tcp\r\nMessage-ID: {mid}\r\nByte-Range: {range}\r\nContent-Type: {ct}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
    m
}

/// Reads until `want` shows up in what the relay sent (5 s at most); returns all of it.
async fn read_until(s: &mut TcpStream, seen: &mut String, want: &str) {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(want) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within 5 s; got:\n{seen}"))
            .expect("read");
        assert!(n > 0, "closed before {want:?}; got:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn both(lab: &Lab) -> [(&'static str, MsrpStats); 2] {
    [
        ("O-IM", lab.oim.msrp_stats()),
        ("T-IM", lab.tim.msrp_stats()),
    ]
}

#[tokio::test]
async fn a_message_that_stops_is_dropped_partials_are_capped_and_the_maps_empty() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[im]\nmsrp_partial_timeout_secs = 2\nmsrp_max_partials_per_conn = 4\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let (mut alice, mut bob) = pair(&lab, &shut).await;
    chat_once(&mut alice, &mut bob, "hello").await;
    let leg = alice_leg_at_oim(&lab);

    // A peer sends the first chunk of a 10,000-byte message and stops.
    let mut raw = TcpStream::connect(lab.addrs.oim_msrp).await.unwrap();
    let mut seen = String::new();
    raw.write_all(&chunk(
        "big1c1",
        &leg,
        "big1",
        "1-2048/10000",
        &[b'x'; 2048],
        '+',
        "text/plain",
    ))
    .await
    .unwrap();
    read_until(&mut raw, &mut seen, "MSRP big1c1 200").await;
    for (node, s) in both(&lab) {
        assert_eq!((s.partials, s.partial_bytes), (1, 2048), "{node}: {s:?}");
    }
    // After the timeout the relays hold none of it, and the sender is told (§7.1.2).
    eventually("the partial message to time out at O-IM and T-IM", || {
        both(&lab)
            .iter()
            .all(|(_, s)| s.partials == 0 && s.partial_bytes == 0 && s.expired_partials == 1)
    })
    .await;
    read_until(&mut raw, &mut seen, "Status: 000 408").await;
    assert!(seen.contains("MSRP "), "{seen}");
    assert!(
        seen.contains("REPORT\r\n") && seen.contains("Message-ID: big1"),
        "{seen}"
    );

    // The same connection's other messages still flow: a whole message reaches bob.
    let cpim = rcslab::im::rcs::text_message(
        "sip:alice@ims.lab",
        "sip:bob@ims.lab",
        "rawmsg1",
        "after the timeout",
        None,
    )
    .to_bytes();
    let range = format!("1-{0}/{0}", cpim.len());
    raw.write_all(&chunk(
        "whole1",
        &leg,
        "whole1",
        &range,
        &cpim,
        '$',
        "message/cpim",
    ))
    .await
    .unwrap();
    read_until(&mut raw, &mut seen, "MSRP whole1 200").await;
    match next(&mut bob).await {
        ChatEvent::Message { text, .. } => assert_eq!(text, "after the timeout"),
        other => panic!("expected the message at bob, got {other:?}"),
    }

    // Many messages started and never finished: four are held, the rest get 413.
    for i in 0..6 {
        let tid = format!("many{i}");
        raw.write_all(&chunk(
            &tid,
            &leg,
            &tid,
            "1-2048/10000",
            &[b'y'; 2048],
            '+',
            "text/plain",
        ))
        .await
        .unwrap();
    }
    for i in 0..4 {
        read_until(&mut raw, &mut seen, &format!("MSRP many{i} 200")).await;
    }
    for i in 4..6 {
        read_until(&mut raw, &mut seen, &format!("MSRP many{i} 413")).await;
    }
    let s = lab.oim.msrp_stats();
    assert_eq!((s.partials, s.refused_chunks), (4, 2), "{s:?}");
    eventually("the four to time out", || {
        both(&lab).iter().all(|(_, s)| s.partials == 0)
    })
    .await;

    // Everyone goes away: nothing is left in either relay.
    drop(raw);
    drop((alice, bob));
    eventually("the sessions to end", || {
        lab.tim.sessions_open() == 0 && lab.oim.sessions_open() == 0
    })
    .await;
    eventually("O-IM's and T-IM's relays to hold nothing", || {
        both(&lab).iter().all(|(_, s)| {
            (
                s.connections,
                s.accepted,
                s.pairs,
                s.ids,
                s.txs,
                s.partials,
                s.leg_queued,
            ) == (0, 0, 0, 0, 0, 0, 0)
        })
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_a_listener_holds_a_bounded_number() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[im]\nmsrp_idle_timeout_secs = 2\nmsrp_max_connections = 3\n",
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(lab.addrs.tim_msrp).await.unwrap());
    }
    eventually("three accepted", || lab.tim.msrp_stats().accepted == 3).await;
    // The fourth is closed at once.
    let mut extra = TcpStream::connect(lab.addrs.tim_msrp).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf))
        .await
        .expect("the connection over the cap is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The three that bind nothing go after the idle timeout.
    for s in &mut idle {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an idle connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    eventually("the slots to free", || {
        let s = lab.tim.msrp_stats();
        s.accepted == 0 && s.connections == 0 && s.idle_closed == 3
    })
    .await;
    // Chats bind their connections, so the idle timeout leaves them alone.
    let (_stop, shut) = watch::channel(false);
    let (mut alice, mut bob) = pair(&lab, &shut).await;
    chat_once(&mut alice, &mut bob, "one").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    chat_once(&mut alice, &mut bob, "two").await;
    assert_eq!(lab.tim.msrp_stats().idle_closed, 3);
    assert_eq!(lab.oim.msrp_stats().idle_closed, 0);
}
