//! WebRSF buddies' presence (RCS presence, seed 001 figure 9): the gateway SUBSCRIBEs for a
//! web user to their RCS buddy list at the Resource List Server (RFC 4662,
//! `sip:alice;pres-list=rcs@ims.lab`), through the P-CSCF as the user's UE; `GET Buddies` and
//! `presence` events on the notification channel show what the NOTIFYs say. The list dialog's
//! messages are asserted hop by hop.

use std::time::Duration;

use hyper::Method;
use rcslab::presence::rlmi::{parse_body, ParsedListBody, RlmiLimits};
use rcslab::sip::{Request, SipMessage};
use rcslab::trace::{Direction, TraceEvent};
use rcslab::Lab;
use serde_json::{json, Value};

use crate::presence::interleaves;
use crate::web::{call, login, Channel};
use crate::{flow, lab_with, rcslab_ue};

const LIST: &str = "sip:alice;pres-list=rcs@ims.lab";

/// Every SIP message of dialog `call_id` once (as its sender recorded it), in order.
fn dialog_events(lab: &Lab, call_id: &str) -> Vec<(TraceEvent, SipMessage)> {
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == Direction::Sent && e.protocol.label() == "SIP")
        .filter_map(|e| {
            let m = SipMessage::parse(&e.bytes).ok()?;
            let h = match &m {
                SipMessage::Request(r) => &r.headers,
                SipMessage::Response(r) => &r.headers,
            };
            (h.get("Call-ID") == Some(call_id)).then_some((e, m))
        })
        .collect()
}

/// The dialog's ladder, `FROM -> TO SIP METHOD|STATUS`, 100 Trying left out.
fn dialog_ladder(lab: &Lab, call_id: &str) -> Vec<String> {
    let name = |a| lab.name_of(lab.trace.resolve(a));
    dialog_events(lab, call_id)
        .into_iter()
        .filter_map(|(e, m)| {
            let what = match &m {
                SipMessage::Request(r) => r.method.to_string(),
                SipMessage::Response(r) if r.status == 100 => return None,
                SipMessage::Response(r) => r.status.to_string(),
            };
            Some(format!("{} -> {} SIP {what}", name(e.src()), name(e.dst())))
        })
        .collect()
}

/// A request of the gateway's UE to the PS (originating iFC, as for any UE's own list) and
/// the PS's answer back.
fn subscribe_hops(status: &str) -> Vec<String> {
    [
        "WebRSF -> P-CSCF SIP SUBSCRIBE".to_string(),
        "P-CSCF -> S-CSCF SIP SUBSCRIBE".into(),
        "S-CSCF -> PS SIP SUBSCRIBE".into(),
        format!("PS -> S-CSCF SIP {status}"),
        format!("S-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> WebRSF SIP {status}"),
    ]
    .into()
}

/// A NOTIFY from the PS along the route set to the gateway's UE, and its 200 back.
fn notify_hops() -> Vec<String> {
    [
        "PS -> S-CSCF SIP NOTIFY",
        "S-CSCF -> P-CSCF SIP NOTIFY",
        "P-CSCF -> WebRSF SIP NOTIFY",
        "WebRSF -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> PS SIP 200",
    ]
    .map(String::from)
    .into()
}

/// The list bodies the gateway received in dialog `call_id`, with their Subscription-State.
fn notify_bodies(lab: &Lab, call_id: &str) -> Vec<(String, ParsedListBody)> {
    dialog_events(lab, call_id)
        .into_iter()
        .filter(|(e, _)| lab.name_of(lab.trace.resolve(e.dst())) == "WebRSF")
        .filter_map(|(_, m)| match m {
            SipMessage::Request(r) if r.method.to_string() == "NOTIFY" => Some(r),
            _ => None,
        })
        .map(|r| {
            let ct = r.headers.get("Content-Type").unwrap_or_default();
            assert!(
                ct.starts_with("multipart/related;type=\"application/rlmi+xml\""),
                "{ct}"
            );
            assert_eq!(r.headers.get("Require"), Some("eventlist"));
            let body = parse_body(ct, &r.body, &RlmiLimits::default()).expect("an RLMI body");
            let state = r.headers.get("Subscription-State").unwrap_or_default();
            (state.to_string(), body)
        })
        .collect()
}

/// The gateway's list SUBSCRIBEs, in order.
fn list_subscribes(lab: &Lab) -> Vec<Request> {
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == Direction::Sent && e.protocol.label() == "SIP")
        .filter(|e| e.summary.starts_with("SUBSCRIBE "))
        .filter(|e| lab.name_of(lab.trace.resolve(e.src())) == "WebRSF")
        .filter_map(|e| match SipMessage::parse(&e.bytes) {
            Ok(SipMessage::Request(r)) if r.headers.get("Event") == Some("presence") => Some(r),
            _ => None,
        })
        .collect()
}

/// The next `presence` event of the channel within 10 s, other events skipped.
async fn next_presence(ch: &mut Channel) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = ch
            .try_next(left)
            .await
            .expect("a presence event within 10 s");
        if ev["type"] == "presence" {
            return ev;
        }
    }
}

async fn get(lab: &Lab, path: &str, token: &str) -> Value {
    let (s, v) = call(lab.addrs.webrsf, Method::GET, path, Some(token), None).await;
    assert_eq!(s, 200, "GET {path}: {v}");
    v
}

fn buddy<'a>(list: &'a Value, user: &str) -> &'a Value {
    list["buddies"]
        .as_array()
        .and_then(|b| b.iter().find(|x| x["user"] == user))
        .unwrap_or_else(|| panic!("{user} on the list: {list}"))
}

/// The flow: web alice logs in; bob, registered, goes away ("lunch") with the rcslab
/// UE, then de-registers: the PS (which watches his registration) shows him closed with when
/// he was last seen. Alice's buddies API and channel follow; the list dialog on the wire is exactly
/// SUBSCRIBE / 200 / NOTIFY (full state), NOTIFY (partial) per change, and at logout
/// SUBSCRIBE (Expires: 0) / 200 / NOTIFY (terminated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_alice_sees_bob_away_then_offline_with_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let token = login(&lab, "alice", "alice-secret").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut bob_ue = crate::ue(&lab, "bob", rcslab::ue::AuthMode::Digest, &shut).await;
    bob_ue.register(600).await.expect("bob registers");

    // The login answered once the list's first (full) state came: GET Buddies has it all.
    let list = get(&lab, "/webrsf/v1/alice/Buddies", &token).await;
    assert_eq!(
        list,
        json!({
            "list": LIST,
            "subscription": "active",
            "buddies": [
                {"user": "bob", "uri": "sip:bob@ims.lab", "state": "offline", "note": null, "last_seen": null},
                {"user": "carol", "uri": "sip:carol@ims.lab", "state": "offline", "note": null, "last_seen": null},
            ],
        }),
        "{:#?}",
        flow(&lab)
    );

    // One SUBSCRIBE to the list URI, as RFC 4662 §4.4 asks.
    let subs = list_subscribes(&lab);
    assert_eq!(subs.len(), 1, "{subs:#?}");
    let sub = &subs[0];
    assert_eq!(sub.uri, LIST);
    assert_eq!(sub.headers.get("Supported"), Some("eventlist"));
    assert_eq!(
        sub.headers.get("Accept"),
        Some("application/pidf+xml, application/rlmi+xml, multipart/related")
    );
    assert!(sub
        .headers
        .get("From")
        .unwrap()
        .contains("<sip:alice@ims.lab>"));
    let call_id = sub.headers.get("Call-ID").unwrap().to_string();

    let mut ch = Channel::open(&lab, "alice", &token, 0).await;
    assert_eq!(ch.status, 200);

    // bob: away, "lunch" (the rcslab UE publishes, then de-registers its own contact; bob
    // stays registered).
    let out = rcslab_ue(&lab, "bob", &["status", "away", "lunch"])
        .output()
        .await
        .expect("rcslab ue runs");
    assert!(out.status.success(), "{out:?}");
    let ev = next_presence(&mut ch).await;
    let instance = ev["instance"].as_str().unwrap_or_default();
    assert!(instance.ends_with("/webrsf/v1/alice/Buddies/bob"), "{ev}");
    assert_eq!(
        ev["data"],
        json!({"user": "bob", "uri": "sip:bob@ims.lab", "state": "away", "note": "lunch",
               "last_seen": null})
    );
    assert_eq!(
        get(&lab, "/webrsf/v1/alice/Buddies/bob", &token).await,
        ev["data"]
    );

    // He de-registers: offline, last seen then (the PS's timestamp).
    bob_ue.register(0).await.expect("bob de-registers");
    let ev = next_presence(&mut ch).await;
    assert_eq!(ev["data"]["state"], "offline", "{ev}");
    assert_eq!(ev["data"]["note"], Value::Null, "{ev}");
    let seen = ev["data"]["last_seen"].as_str().expect("a last-seen time");
    assert!(
        seen.len() == 20 && seen.starts_with("20") && seen.ends_with('Z'),
        "RFC 3339 UTC: {seen}"
    );
    let list = get(&lab, "/webrsf/v1/alice/Buddies", &token).await;
    assert_eq!(buddy(&list, "bob")["last_seen"], seen);
    assert_eq!(buddy(&list, "carol")["state"], "offline");

    // The bodies: the full state (version 0, both), then bob alone in each partial state.
    let bodies = notify_bodies(&lab, &call_id);
    let summary: Vec<(bool, u32, Vec<String>)> = bodies
        .iter()
        .map(|(_, b)| {
            let uris = b.rlmi.resources.iter().map(|r| r.uri.clone()).collect();
            (b.rlmi.full_state, b.rlmi.version, uris)
        })
        .collect();
    let bob = || vec!["sip:bob@ims.lab".to_string()];
    assert_eq!(
        summary,
        [
            (
                true,
                0,
                vec!["sip:bob@ims.lab".into(), "sip:carol@ims.lab".into()]
            ),
            (false, 1, bob()),
            (false, 2, bob()),
        ]
    );
    assert!(bodies.iter().all(|(s, _)| s.starts_with("active;expires=")));

    // Logout ends the subscription inside its dialog.
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::DELETE,
        "/webrsf/v1/alice/Session",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let subs = list_subscribes(&lab);
    assert_eq!(subs.len(), 2, "{subs:#?}");
    assert_eq!(subs[1].headers.get("Expires"), Some("0"));
    assert_eq!(subs[1].headers.get("Call-ID"), Some(call_id.as_str()));
    crate::eventually("the PS holds no subscription", || {
        lab.ps.subscriptions() == 0
    })
    .await;

    // The dialog on the wire, hop by hop: SUBSCRIBE and its 200 with the full-state NOTIFY
    // (which may overtake the 200, RFC 6665 §4.1.2.4), one partial NOTIFY per change, the
    // ending SUBSCRIBE with the terminated NOTIFY.
    let got = dialog_ladder(&lab, &call_id);
    assert_eq!(got.len(), 12 + 6 + 6 + 12, "{got:#?}");
    assert!(
        interleaves(&got[..12], &subscribe_hops("200"), &notify_hops()),
        "{got:#?}"
    );
    assert_eq!(got[12..18], notify_hops(), "{got:#?}");
    assert_eq!(got[18..24], notify_hops(), "{got:#?}");
    assert!(
        interleaves(&got[24..], &subscribe_hops("200"), &notify_hops()),
        "{got:#?}"
    );
    let last = notify_bodies(&lab, &call_id);
    assert_eq!(
        last.last().map(|(s, _)| s.as_str()),
        Some("terminated;reason=timeout")
    );
    lab.shutdown().await;
}

/// Bad input on the buddies resources: the usual JSON errors, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buddies_refuse_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let alice = login(&lab, "alice", "alice-secret").await;
    let a = lab.addrs.webrsf;
    let (s, v) = call(a, Method::GET, "/webrsf/v1/alice/Buddies", None, None).await;
    assert_eq!((s, &v["error"]), (401, &json!("unauthorized")), "{v}");
    let (s, v) = call(a, Method::GET, "/webrsf/v1/bob/Buddies", Some(&alice), None).await;
    assert_eq!((s, &v["error"]), (403, &json!("forbidden")), "{v}");
    let (s, v) = call(
        a,
        Method::GET,
        "/webrsf/v1/alice/Buddies/nobody",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!((s, &v["error"]), (404, &json!("not_found")), "{v}");
    let (s, v) = call(
        a,
        Method::GET,
        "/webrsf/v1/alice/Buddies/sip:%3Cx",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!((s, &v["error"]), (400, &json!("bad_request")), "{v}");
    let (s, v) = call(
        a,
        Method::POST,
        "/webrsf/v1/alice/Buddies",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, 405, "{v}");
    lab.shutdown().await;
}

/// The gateway refreshes the list subscription inside its dialog before it expires (here the
/// PS grants 4 s, so at 2 s): SUBSCRIBE with the next CSeq along the route set, 200, and the
/// full state again (RFC 4662 §5.2) — no new dialog, and nothing new for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_subscription_is_refreshed_in_its_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[presence]\nmin_expires = 1\nmax_expires = 4\n").await;
    let token = login(&lab, "alice", "alice-secret").await;
    let mut ch = Channel::open(&lab, "alice", &token, 0).await;
    let call_id = list_subscribes(&lab)[0]
        .headers
        .get("Call-ID")
        .unwrap()
        .to_string();
    crate::eventually("a refresh", || list_subscribes(&lab).len() >= 2).await;
    let subs = list_subscribes(&lab);
    assert_eq!(subs[1].headers.get("Call-ID"), Some(call_id.as_str()));
    assert_eq!(subs[1].headers.get("CSeq"), Some("2 SUBSCRIBE"));
    assert_eq!(subs[1].headers.get("Expires"), Some("3600"));
    assert_eq!(subs[1].headers.values("Route").len(), 3, "{:?}", subs[1]);
    crate::eventually("the refresh's NOTIFY", || {
        notify_bodies(&lab, &call_id).len() >= 2
    })
    .await;
    // Every hop of the refresh and its NOTIFY, the last 200s included.
    crate::eventually("the refresh's 24 lines", || {
        dialog_ladder(&lab, &call_id).len() >= 24
    })
    .await;
    let got = dialog_ladder(&lab, &call_id);
    assert!(
        interleaves(&got[12..24], &subscribe_hops("200"), &notify_hops()),
        "{got:#?}"
    );
    let bodies = notify_bodies(&lab, &call_id);
    assert!(bodies[1].1.rlmi.full_state && bodies[1].1.rlmi.version == 1);
    let list = get(&lab, "/webrsf/v1/alice/Buddies", &token).await;
    assert_eq!(list["subscription"], "active", "{list}");
    assert!(
        ch.try_next(Duration::from_millis(300)).await.is_none(),
        "the same state again is no news"
    );
    lab.shutdown().await;
}
