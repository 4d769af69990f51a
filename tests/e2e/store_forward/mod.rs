//! Store and forward at T-IM (its per-user delivery workers, `src/im/delivery.rs`): delivery
//! that does not depend on the order of the REGISTER 200 and the third-party REGISTER, the
//! pager-mode fallback for clients that refuse MSRP, `ue send` / `ue listen` as users run
//! them, and a seeded soak of users coming and going (some leaving dead contacts behind).

mod fallback;
mod soak;

use std::time::{Duration, Instant};

use rcslab::cpim::{Cpim, ImdnStatus};
use rcslab::sip::{Method, Transport};
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::watch;

use crate::chat::{chat_flow, chat_ue};
use crate::{eventually, flow, lab_with, rcslab_ue, registered, ue};

/// Subscribers `{prefix}0..n`, after the default lab's alice, bob and carol (a lab file's
/// `[[subscribers]]` replaces the default list).
fn users_toml(prefix: &str, n: usize) -> String {
    let mut t = String::new();
    for u in ["alice", "bob", "carol"] {
        t.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-secret\"\n"
        ));
    }
    for i in 0..n {
        t.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{prefix}{i}@ims.lab\"]\npassword = \"{prefix}{i}-pw\"\n"
        ));
    }
    t
}

fn delivered_only() -> ChatOptions {
    ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    }
}

/// Waits for `pred` on `ue`'s events (others skipped) within `wait`.
async fn wait_event(
    ue: &mut ChatUe,
    wait: Duration,
    what: &str,
    mut pred: impl FnMut(&ChatEvent) -> bool,
) -> ChatEvent {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match ue.next_event(left).await {
            Some(ev) if pred(&ev) => return ev,
            Some(_) => {}
            None => panic!("no {what} within {wait:?}"),
        }
    }
}

fn pending_total(lab: &Lab) -> usize {
    lab.tim.store().map(|s| s.all_pending().len()).unwrap_or(0)
}

/// The first-registration race, 20 times: a message is stored for a user who is offline; the
/// user registers and listens; T-IM's first delivery INVITE may reach the P-CSCF before the
/// REGISTER's 200 did (480) and the retry one second later delivers. Within a few seconds,
/// every time.
#[tokio::test]
async fn stored_message_arrives_within_seconds_of_the_first_registration_20_times() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml("r", 20)).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    for i in 0..20 {
        let to = format!("sip:r{i}@ims.lab");
        let text = format!("waiting for r{i}");
        let id = alice.send(&to, &text).await;
        // T-IM says it stored it (Warning 399 on its 200).
        match wait_event(&mut alice, Duration::from_secs(5), "stored notice", |e| {
            matches!(e, ChatEvent::Stored { .. } | ChatEvent::SendFailed { .. })
        })
        .await
        {
            ChatEvent::Stored { message_id, reason } => {
                assert_eq!(message_id, id);
                assert!(reason.contains("stored: recipient offline"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lab.tim.store().unwrap().pending_for(&to).len(),
            1,
            "on disk for r{i}"
        );
        let t0 = Instant::now();
        let mut r = chat_ue(&lab, &format!("r{i}"), &shut, delivered_only()).await;
        match wait_event(&mut r, Duration::from_secs(6), "the stored message", |e| {
            matches!(e, ChatEvent::Message { .. })
        })
        .await
        {
            ChatEvent::Message {
                from,
                text: t,
                message_id,
            } => {
                assert_eq!((from.as_str(), t.as_str()), ("sip:alice@ims.lab", &*text));
                assert_eq!(message_id, id);
            }
            _ => unreachable!(),
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(5), "round {i} took {took:?}");
        wait_event(&mut alice, Duration::from_secs(5), "IMDN delivered", |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, .. } if *message_id == id)
        })
        .await;
        assert!(lab.tim.store().unwrap().pending_for(&to).is_empty());
        // Nothing arrives twice.
        while let Some(ev) = r.next_event(Duration::from_millis(100)).await {
            assert!(!matches!(ev, ChatEvent::Message { .. }), "twice: {ev:?}");
        }
        drop(r);
    }
    // How often the delivery INVITE met the race (480 from the P-CSCF, then a retry).
    let races = flow(&lab)
        .iter()
        .filter(|l| l.as_str() == "P-CSCF -> S-CSCF SIP 480")
        .count();
    eprintln!("first-registration race: {races} of 20 first INVITEs got 480 and were retried");
    lab.shutdown().await;
}

/// `rcslab ue send` prints `stored` for an offline recipient and `delivered` for an online one,
/// exits 0 both times, and leaves no contact registered (it de-registers before exiting).
/// A client vanishes without de-registering (its contact stays registered, dead) and another
/// user's client takes over its port. What T-IM tries to deliver to the dead contact reaches
/// the newcomer, which must refuse it (404, RFC 3261 §8.2.2.1) rather than take the message
/// in the wrong user's name; the message stays stored and reaches its user when it is back.
#[tokio::test]
async fn a_dead_contacts_port_taken_by_another_users_client_does_not_get_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml("p", 2)).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    let (vanish, victim_shut) = watch::channel(false);
    let victim = chat_ue(&lab, "p0", &victim_shut, delivered_only()).await;
    let port = victim.sip_addr;
    let _ = vanish.send(true);
    drop(victim);
    // The port is free once the dead client's sockets are closed.
    eventually("the dead client's port is free", || {
        std::net::UdpSocket::bind(port).is_ok() && std::net::TcpListener::bind(port).is_ok()
    })
    .await;
    let cfg = rcslab::ue::UeConfig::from_lab(&lab.config, "p1", lab.addrs.pcscf).unwrap();
    let mut taker = rcslab::ue::Ue::start_at(cfg, port, lab.trace.clone(), shut.clone())
        .await
        .expect("binds the dead client's port");
    lab.name_addr(port, "UE p1");
    taker.register(600).await.expect("p1 registers");
    let mut taker = ChatUe::start(taker, lab.trace.clone(), delivered_only());
    let id = alice.send("sip:p0@ims.lab", "for p0 only").await;
    // T-IM tries the dead contact (now p1's client) and gets 404: nothing reaches p1.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match taker.next_event(left).await {
            Some(ChatEvent::Message { text, .. }) => panic!("p1 got p0's message: {text}"),
            Some(_) => {}
            None => break,
        }
    }
    let f = flow(&lab);
    assert!(
        f.iter()
            .any(|l| l.starts_with("UE p1 -> ") && l.ends_with(" 404")),
        "p1's client refused it: {f:#?}"
    );
    let stored = lab.tim.store().unwrap().by_message_id(&id).expect("stored");
    assert_ne!(stored.status, "delivered");
    // p0 comes back and gets it, once.
    let mut p0 = chat_ue(&lab, "p0", &shut, delivered_only()).await;
    match wait_event(&mut p0, Duration::from_secs(8), "p0's message", |e| {
        matches!(e, ChatEvent::Message { .. })
    })
    .await
    {
        ChatEvent::Message {
            text, message_id, ..
        } => {
            assert_eq!(
                (text.as_str(), message_id.as_str()),
                ("for p0 only", id.as_str())
            )
        }
        _ => unreachable!(),
    }
    wait_event(&mut alice, Duration::from_secs(5), "IMDN delivered", |e| {
        matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, .. } if *message_id == id)
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test]
async fn ue_send_says_stored_or_delivered_and_deregisters_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let out = rcslab_ue(&lab, "carol", &["send", "bob", "are you there?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "stored");
    assert!(
        !registered(&lab, "sip:carol@ims.lab"),
        "carol de-registered"
    );
    assert_eq!(
        lab.tim
            .store()
            .unwrap()
            .pending_for("sip:bob@ims.lab")
            .len(),
        1
    );
    // bob comes: he gets it; carol is away, so its IMDN is owed to her.
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    wait_event(
        &mut bob,
        Duration::from_secs(5),
        "carol's message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "are you there?"),
    )
    .await;
    eventually("the IMDN owed to carol", || {
        lab.tim.store().unwrap().owed_to("sip:carol@ims.lab").len() == 1
    })
    .await;
    let out = rcslab_ue(&lab, "carol", &["send", "sip:bob@ims.lab", "now?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "delivered");
    assert!(
        !registered(&lab, "sip:carol@ims.lab"),
        "carol de-registered"
    );
    lab.shutdown().await;
}

/// `rcslab ue listen` prints a CPIM text whose inner part is base64
/// (`Content-Transfer-Encoding: base64`) decoded, and de-registers on Ctrl-C (SIGINT).
#[tokio::test]
async fn ue_listen_decodes_base64_cpim_and_deregisters_on_sigint() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut listen = rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(listen.stdout.take().unwrap()).lines();
    eventually("bob registered by `ue listen`", || {
        registered(&lab, "sip:bob@ims.lab")
    })
    .await;
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut cpim = Cpim::new(
        "sip:alice@ims.lab",
        "sip:bob@ims.lab",
        "b64-1",
        "2026-11-30T12:00:00.000Z",
        None,
        "text/plain;charset=UTF-8",
        b"SGVsbG8sIGJvYiAobm90IGJhc2U2NCBhbnkgbW9yZSk=",
    );
    cpim.content_headers
        .push(("Content-Transfer-Encoding".into(), "base64".into()));
    let mut req = alice.endpoint().new_request(
        Method::Message,
        "sip:bob@ims.lab",
        "sip:alice@ims.lab",
        1,
        Transport::Udp,
    );
    req.headers.push("Content-Type", "message/cpim");
    req.body = cpim.to_bytes().into();
    let resp = alice.send_tx(req).final_response().await;
    assert_eq!(resp.status, 200);
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("a line within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(line, "sip:alice@ims.lab: Hello, bob (not base64 any more)");
    let pid = listen.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), listen.wait())
        .await
        .expect("listen exits on SIGINT")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!registered(&lab, "sip:bob@ims.lab"), "bob de-registered");
    lab.shutdown().await;
}

/// A web user who logs out and in again, several times, while an RCS user writes to them:
/// what was stored meanwhile arrives within seconds of each login (the web client accepts and
/// reports delivered), the sender gets every IMDN, and T-IM's History shows nothing left
/// `pending`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_user_logging_out_and_in_gets_everything_and_nothing_stays_pending() {
    use crate::web::{call, login, Channel};
    use hyper::Method as Http;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    let w = lab.addrs.webrsf;
    let mut ids = Vec::new();
    for round in 0..3 {
        // While bob is away: two messages, stored.
        for k in 0..2 {
            ids.push(
                alice
                    .send("sip:bob@ims.lab", &format!("r{round} m{k}"))
                    .await,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t0 = Instant::now();
        let start = flow(&lab).len();
        let token = login(&lab, "bob", "bob-secret").await;
        let mut ch = Channel::open(&lab, "bob", &token, 0).await;
        let mut delivered = 0;
        while delivered < 2 {
            let Some(ev) = ch.try_next(Duration::from_secs(5)).await else {
                panic!(
                    "round {round}: no event within 5 s; pending at T-IM: {}; ladder:\n{}",
                    pending_total(&lab),
                    chat_flow(&lab, start).join("\n")
                );
            };
            let inst = ev["instance"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("")
                .to_string();
            let mid = ev["data"]["message_id"].as_str().unwrap_or("").to_string();
            let incoming = (ev["type"] == "chat" && ev["data"]["status"] == "initiate")
                || ev["type"] == "messageNotification";
            if !incoming || mid.is_empty() {
                continue;
            }
            let (s, v) = call(
                w,
                Http::PUT,
                &format!("/webrsf/v1/bob/Chat/{inst}"),
                Some(&token),
                Some(json!({"status": "delivered", "message_id": mid})),
            )
            .await;
            assert_eq!(s, 200, "{v}");
            delivered += 1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "round {round}: {:?}",
            t0.elapsed()
        );
        for id in &ids[ids.len() - 2..] {
            wait_event(&mut alice, Duration::from_secs(5), "IMDN delivered", |e| {
                matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, .. } if message_id == id)
            })
            .await;
        }
        // The History API: nothing left pending or merely sent (T-IM records the IMDN as
        // it relays it, a moment after alice has it).
        let mut statuses = Vec::new();
        for _ in 0..100 {
            let (s, hist) = call(
                w,
                Http::GET,
                "/webrsf/v1/bob/History/alice",
                Some(&token),
                None,
            )
            .await;
            assert_eq!(s, 200);
            statuses = hist
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["status"].as_str().unwrap_or("").to_string())
                .collect();
            if statuses.iter().all(|s| s == "delivered") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(statuses.len(), ids.len());
        assert!(
            statuses.iter().all(|s| s == "delivered"),
            "round {round}: {statuses:?}"
        );
        let (s, _) = call(
            w,
            Http::DELETE,
            "/webrsf/v1/bob/Session",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(s, 200);
        drop(ch);
        eventually("bob logged out", || !registered(&lab, "sip:bob@ims.lab")).await;
    }
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// Only a message's recipient reports on it: carol's IMDN "delivered" for alice's message to
/// bob (who is away) gets 403, and the message stays queued for bob.
#[tokio::test]
async fn an_imdn_from_someone_else_than_the_recipient_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    let id = alice.send("sip:bob@ims.lab", "for bob only").await;
    wait_event(&mut alice, Duration::from_secs(5), "stored notice", |e| {
        matches!(e, ChatEvent::Stored { .. })
    })
    .await;
    let stored = lab.tim.store().unwrap().by_message_id(&id).expect("stored");
    let mut carol = ue(&lab, "carol", AuthMode::Digest, &shut).await;
    carol.register(600).await.unwrap();
    let about = Cpim::parse(&stored.cpim()).unwrap();
    let doc = rcslab::im::rcs::imdn_message(
        "sip:bob@ims.lab",
        "sip:alice@ims.lab",
        &about,
        ImdnStatus::Delivered,
    )
    .to_bytes();
    let r = carol
        .message_with_body(
            "sip:alice@ims.lab",
            "message/cpim",
            &doc,
            &[("Accept-Contact", rcslab::im::rcs::ACCEPT_IMDN)],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.headers
            .get("Warning")
            .is_some_and(|w| w.contains("only the recipient")),
        "T-IM refused it: {r:?}"
    );
    assert_eq!(
        lab.tim
            .store()
            .unwrap()
            .pending_for("sip:bob@ims.lab")
            .len(),
        1,
        "still waiting for bob"
    );
    lab.shutdown().await;
}
