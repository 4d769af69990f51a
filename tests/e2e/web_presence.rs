//! WebRSF buddies' presence (RCS presence, seed 001 figure 9): the gateway SUBSCRIBEs for a
//! web user to their RCS buddy list at the Resource List Server (RFC 4662), through the
//! P-CSCF as the user's UE; `GET Buddies` and `presence` events show what the NOTIFYs say.
//! Needs the RLS (src/ps, src/presence/rls*).

use std::time::Duration;

use hyper::Method;
use rcslab::sip::{Request, SipMessage};
use rcslab::trace::Direction;
use rcslab::Lab;
use serde_json::{json, Value};

use crate::web::{call, login, Channel};
use crate::{flow, lab_with, rcslab_ue};

const LIST: &str = "sip:alice;pres-list=rcs@ims.lab";

/// The SIP requests of `method` the gateway's UEs sent (parsed from the flight recorder), in
/// order.
fn sent_by_webrsf(lab: &Lab, method: &str) -> Vec<Request> {
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == Direction::Sent && e.protocol.label() == "SIP")
        .filter(|e| e.dst() == lab.addrs.pcscf && e.summary.starts_with(method))
        .filter_map(|e| match SipMessage::parse(&e.bytes) {
            Ok(SipMessage::Request(r)) => Some(r),
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

/// The SIP lines of the ladder between the gateway and its P-CSCF, 100 Trying left out.
fn at_webrsf(lab: &Lab) -> Vec<String> {
    flow(lab)
        .into_iter()
        .filter(|l| l.contains(" SIP ") && !l.ends_with(" SIP 100"))
        .filter(|l| l.starts_with("WebRSF -> ") || l.contains(" -> WebRSF "))
        .collect()
}

async fn buddies(lab: &Lab, token: &str) -> Value {
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/alice/Buddies",
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn buddy<'a>(list: &'a Value, user: &str) -> &'a Value {
    list["buddies"]
        .as_array()
        .and_then(|b| b.iter().find(|x| x["user"] == user))
        .unwrap_or_else(|| panic!("{user} on the list: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Resource List Server (main, src/ps + src/presence/rls*): today the list URI gets 404"]
async fn web_alice_sees_bob_away_then_offline_with_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    lab.trace.clear();
    let token = login(&lab, "alice", "alice-secret").await;

    // The login answered once the list's first (full) state came: GET Buddies has it all.
    let list = buddies(&lab, &token).await;
    assert_eq!(list["list"], LIST, "{list}");
    assert_eq!(list["subscription"], "active", "{list}\n{:#?}", flow(&lab));
    let users: Vec<&str> = list["buddies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["user"].as_str())
        .collect();
    assert_eq!(users, ["bob", "carol"], "{list}");
    assert_eq!(buddy(&list, "bob")["state"], "offline", "{list}");

    // On the wire: one SUBSCRIBE to the list URI as RFC 4662 asks, its 200, the full state.
    let subs = sent_by_webrsf(&lab, "SUBSCRIBE");
    let sub = subs.first().expect("the gateway's SUBSCRIBE");
    assert_eq!(sub.uri, LIST);
    assert_eq!(sub.headers.get("Event"), Some("presence"));
    assert_eq!(sub.headers.get("Supported"), Some("eventlist"));
    assert_eq!(
        sub.headers.get("Accept"),
        Some("application/pidf+xml, application/rlmi+xml, multipart/related")
    );
    assert!(sub
        .headers
        .get("From")
        .unwrap()
        .contains("sip:alice@ims.lab"));

    let mut ch = Channel::open(&lab, "alice", &token, 0).await;
    assert_eq!(ch.status, 200);

    // bob: away, "lunch" (the rcslab UE publishes, then de-registers).
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
    let (s, one) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/alice/Buddies/bob",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(one, ev["data"]);

    // bob goes offline: the PS's "last seen" document.
    let out = rcslab_ue(&lab, "bob", &["status", "offline"])
        .output()
        .await
        .expect("rcslab ue runs");
    assert!(out.status.success(), "{out:?}");
    let ev = next_presence(&mut ch).await;
    assert_eq!(ev["data"]["state"], "offline", "{ev}");
    let seen = ev["data"]["last_seen"].as_str().expect("a last-seen time");
    assert!(
        seen.len() == 20 && seen.ends_with('Z') && seen.as_bytes()[10] == b'T',
        "RFC 3339 UTC: {seen}"
    );
    assert_eq!(
        buddy(&buddies(&lab, &token).await, "bob")["last_seen"],
        seen
    );

    // The gateway's side of the wire: SUBSCRIBE, 200, NOTIFY (full), 200, then one NOTIFY
    // (partial) per change, each answered 200.
    let got = at_webrsf(&lab);
    let notifies: Vec<&String> = got.iter().filter(|l| l.ends_with("SIP NOTIFY")).collect();
    assert_eq!(notifies.len(), 3, "{got:#?}");
    assert_eq!(got[0], "WebRSF -> P-CSCF SIP SUBSCRIBE", "{got:#?}");
    assert!(
        got.contains(&"P-CSCF -> WebRSF SIP 200".to_string()),
        "{got:#?}"
    );

    // Logout ends the subscription: Expires 0 inside the dialog.
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::DELETE,
        "/webrsf/v1/alice/Session",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let subs = sent_by_webrsf(&lab, "SUBSCRIBE");
    let last = subs.last().unwrap();
    assert_eq!(last.headers.get("Expires"), Some("0"));
    assert_eq!(last.headers.get("Call-ID"), sub.headers.get("Call-ID"));
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
}
