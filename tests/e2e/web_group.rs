//! WebRSF group chats (GSMA RCC.07 §3.4 through the CONF focus; the REST resources after OMA
//! RESTful Network API for Chat 1.0 group chat): three web users in one group, each message
//! seen by the two others with its writer, "read by" from the displayed IMDNs, the rosters
//! from the conference event package, a member who leaves, and bad input.

use std::time::{Duration, Instant};

use hyper::Method;
use rcslab::Lab;
use serde_json::{json, Value};

use crate::lab_with;
use crate::web::{call, login, Channel};

const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// A user's channel with the events seen so far: each wait looks at what came before too,
/// as members' reports and messages interleave.
struct Events {
    ch: Channel,
    seen: Vec<Value>,
}

/// The first event of `ev` (seen before or coming within 10 s) that `want` takes; it is used up.
async fn until(ev: &mut Events, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    if let Some(i) = ev.seen.iter().position(&want) {
        return ev.seen.remove(i);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match ev.ch.try_next(left).await {
            Some(e) if want(&e) => return e,
            Some(e) => ev.seen.push(e),
            None => break,
        }
    }
    panic!("no {what} within 10 s; the channel had: {:#?}", ev.seen);
}

fn is(ev: &Value, kind: &str, group: &str) -> bool {
    ev["type"] == kind && ev["data"]["group_id"] == group
}

async fn rest(lab: &Lab, m: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    call(lab.addrs.webrsf, m, path, Some(token), body).await
}

/// Polls `user`'s roster of `gid` until every one of `who` has `status`.
async fn roster_shows(lab: &Lab, user: &str, token: &str, gid: &str, who: &[&str], status: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/webrsf/v1/{user}/Group/{gid}/Participants");
        let (s, v) = rest(lab, Method::GET, &path, token, None).await;
        assert_eq!(s, 200, "{v}");
        let ok = who.iter().all(|w| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|p| p["user"] == *w && p["status"] == status))
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < end,
            "{user}'s roster of {gid} never showed {who:?} {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_web_users_in_a_group_see_messages_rosters_and_read_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let mut tokens = Vec::new();
    let mut chans = Vec::new();
    for u in USERS {
        let t = login(&lab, u, &format!("{u}-secret")).await;
        chans.push(Events {
            ch: Channel::open(&lab, u, &t, 0).await,
            seen: Vec::new(),
        });
        tokens.push(t);
    }
    let [ta, tb, tc] = [&tokens[0], &tokens[1], &tokens[2]].map(|t| t.to_string());

    // alice makes the group (OMA's body form).
    let (s, g) = rest(
        &lab,
        Method::POST,
        "/webrsf/v1/alice/Group",
        &ta,
        Some(json!({"groupChatSessionInformation": {"subject": "lunch",
            "participant": [{"address": "bob"}, {"address": "sip:carol@ims.lab"}]}})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["group_id"].as_str().expect("group_id").to_string();
    assert!(gid.starts_with("chat-"), "{g}");
    assert_eq!(g["uri"], format!("sip:{gid}@ims.lab"));
    assert!(
        g["groupChatSessionInformation"]["resourceURL"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/webrsf/v1/alice/Group/{gid}"))),
        "{g}"
    );
    assert_eq!(g["subject"], "lunch");
    until(&mut chans[0], "alice's created event", |e| {
        is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "created"
    })
    .await;

    // bob and carol are invited by the focus and join (the gateway accepts for them).
    for c in &mut chans[1..] {
        let ev = until(c, "an invitation", |e| {
            is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "invited"
        })
        .await;
        assert_eq!(ev["data"]["subject"], "lunch", "{ev}");
        until(c, "joined", |e| {
            is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "joined"
        })
        .await;
    }
    // Everyone's roster (conference NOTIFYs) shows the three connected, alice the chairman.
    for (u, t) in USERS.iter().zip([&ta, &tb, &tc]) {
        roster_shows(&lab, u, t, &gid, &USERS, "connected").await;
        let (s, v) = rest(
            &lab,
            Method::GET,
            &format!("/webrsf/v1/{u}/Group/{gid}"),
            t,
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["subject"], "lunch", "{u}: {v}");
        assert_eq!(v["state"], "active", "{u}: {v}");
        let chair: Vec<&Value> = v["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["role"] == "chairman")
            .collect();
        assert_eq!(chair.len(), 1, "{u}: {v}");
        assert_eq!(chair[0]["user"], "alice", "{u}: {v}");
    }
    // Roster news came as participantStatusNotification on alice's channel.
    until(&mut chans[0], "bob connected", |e| {
        is(e, "participantStatusNotification", &gid)
            && e["data"]["participant"] == "bob"
            && e["data"]["status"] == "connected"
    })
    .await;

    // Each writes once; the two others get it with its writer.
    let texts = ["hi from alice", "hi from bob", "hi from carol"];
    let mut mids = Vec::new();
    for (i, u) in USERS.iter().enumerate() {
        let body = if i == 1 {
            json!({"chatMessage": {"text": texts[i]}})
        } else {
            json!({"text": texts[i]})
        };
        let path = format!("/webrsf/v1/{u}/Group/{gid}/Messages");
        let (s, v) = rest(&lab, Method::POST, &path, &tokens[i], Some(body)).await;
        assert_eq!(s, 201, "{u}: {v}");
        mids.push(v["message_id"].as_str().unwrap().to_string());
        for (j, c) in chans.iter_mut().enumerate() {
            if j == i {
                continue;
            }
            let ev = until(c, texts[i], |e| {
                is(e, "chatMessageNotification", &gid) && e["data"]["text"] == texts[i]
            })
            .await;
            assert_eq!(ev["data"]["sender"], *u, "{ev}");
            assert_eq!(ev["data"]["message_id"], mids[i].as_str(), "{ev}");
            assert!(
                ev["instance"]
                    .as_str()
                    .is_some_and(|x| x.ends_with(&format!("/webrsf/v1/{}/Group/{gid}", USERS[j]))),
                "{ev}"
            );
        }
    }
    // The conversation as each has it: three messages, in order, with their writers.
    for (j, u) in USERS.iter().enumerate() {
        let path = format!("/webrsf/v1/{u}/Group/{gid}/Messages");
        let (s, v) = rest(&lab, Method::GET, &path, &tokens[j], None).await;
        assert_eq!(s, 200);
        let got: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["sender"].as_str().unwrap().into(),
                    m["text"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = USERS
            .iter()
            .zip(texts)
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{u}'s conversation");
    }
    // alice's message is delivered to both (the gateways report it when they have it).
    for who in ["bob", "carol"] {
        until(&mut chans[0], "delivered", |e| {
            is(e, "messageStatusNotification", &gid)
                && e["data"]["message_id"] == mids[0].as_str()
                && e["data"]["status"] == "delivered"
                && e["data"]["sender"] == who
        })
        .await;
    }
    // bob and carol show it: alice sees who read it.
    for (j, who) in [(1, "bob"), (2, "carol")] {
        let path = format!("/webrsf/v1/{who}/Group/{gid}/Messages/{}/Status", mids[0]);
        let (s, v) = rest(
            &lab,
            Method::PUT,
            &path,
            &tokens[j],
            Some(json!({"status": "displayed"})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        until(&mut chans[0], "displayed", |e| {
            is(e, "messageStatusNotification", &gid)
                && e["data"]["message_id"] == mids[0].as_str()
                && e["data"]["status"] == "displayed"
                && e["data"]["sender"] == who
        })
        .await;
    }
    let (_, v) = rest(
        &lab,
        Method::GET,
        &format!("/webrsf/v1/alice/Group/{gid}/Messages"),
        &ta,
        None,
    )
    .await;
    assert_eq!(v[0]["read_by"], json!(["bob", "carol"]), "{v}");
    assert_eq!(v[0]["status"], "displayed", "{v}");

    // carol leaves: the others' rosters say so.
    let (s, v) = rest(
        &lab,
        Method::DELETE,
        &format!("/webrsf/v1/carol/Group/{gid}"),
        &tc,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for c in &mut chans[..2] {
        let ev = until(c, "carol leaving", |e| {
            is(e, "participantStatusNotification", &gid)
                && e["data"]["participant"] == "carol"
                && e["data"]["status"] != "connected"
        })
        .await;
        assert!(
            ev["data"]["status"] == "deleted" || ev["data"]["departure"] == "departed",
            "{ev}"
        );
    }
    let (_, v) = rest(&lab, Method::GET, "/webrsf/v1/alice/Group", &ta, None).await;
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    let (_, v) = rest(
        &lab,
        Method::GET,
        &format!("/webrsf/v1/carol/Group/{gid}"),
        &tc,
        None,
    )
    .await;
    assert_eq!(v["state"], "closed", "{v}");

    // carol writes again: she left (her BYE ended her membership), so the focus refuses the
    // INVITE to the group's URI; her client hears that the group stays closed to her.
    let path = format!("/webrsf/v1/carol/Group/{gid}/Messages");
    let (s, v) = rest(
        &lab,
        Method::POST,
        &path,
        &tc,
        Some(json!({"text": "back again"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let ev = until(&mut chans[2], "the refused rejoin", |e| {
        is(e, "groupChatEventNotification", &gid) && e["data"]["status"] != "joined"
    })
    .await;
    assert_eq!(ev["data"]["status"], "failed", "{ev}");
    assert!(
        ev["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("403")),
        "{ev}"
    );
    let (_, v) = rest(
        &lab,
        Method::GET,
        &format!("/webrsf/v1/carol/Group/{gid}"),
        &tc,
        None,
    )
    .await;
    assert_eq!(v["state"], "closed", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_requests_refuse_bad_input_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let ta = login(&lab, "alice", "alice-secret").await;
    let tb = login(&lab, "bob", "bob-secret").await;
    let many: Vec<String> = (0..=rcslab::webrsf::MAX_PARTICIPANTS_PER_REQUEST)
        .map(|n| format!("u{n}"))
        .collect();
    let bad = [
        json!({"subject": "no one"}),
        json!({"participants": []}),
        json!({"participants": [42]}),
        json!({"participants": ["alice"]}),
        json!({"participants": ["bad user"]}),
        json!({"participants": many}),
        json!({"participants": ["bob"], "subject": "x".repeat(rcslab::webrsf::MAX_SUBJECT + 1)}),
    ];
    for b in bad {
        let (s, v) = rest(
            &lab,
            Method::POST,
            "/webrsf/v1/alice/Group",
            &ta,
            Some(b.clone()),
        )
        .await;
        assert_eq!(s, 400, "{b} -> {v}");
        assert_eq!(v["error"], "bad_request", "{v}");
    }
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/alice/Group",
        None,
        None,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")), "{v}");
    let (s, v) = rest(&lab, Method::GET, "/webrsf/v1/alice/Group", &tb, None).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("forbidden")), "{v}");
    for (m, p, b) in [
        (Method::GET, "/Group/chat-none", None),
        (Method::DELETE, "/Group/chat-none", None),
        (Method::GET, "/Group/chat-none/Messages", None),
        (
            Method::POST,
            "/Group/chat-none/Messages",
            Some(json!({"text": "x"})),
        ),
        (Method::GET, "/Group/chat-none/Participants", None),
    ] {
        let (s, v) = rest(&lab, m, &format!("/webrsf/v1/alice{p}"), &ta, b).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (404, Some("not_found")),
            "{p}: {v}"
        );
    }
    // A real group: bad messages, statuses and the participant operations to come.
    let (s, g) = rest(
        &lab,
        Method::POST,
        "/webrsf/v1/alice/Group",
        &ta,
        Some(json!({"subject": "s", "participants": ["bob"]})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["group_id"].as_str().unwrap();
    let base = format!("/webrsf/v1/alice/Group/{gid}");
    for (m, p, b, want) in [
        (Method::POST, "/Messages".to_string(), json!({}), 400),
        (
            Method::POST,
            "/Messages".into(),
            json!({"chatMessage": "x"}),
            400,
        ),
        (
            Method::PUT,
            "/Messages/nope/Status".into(),
            json!({"status": "displayed"}),
            404,
        ),
        (
            Method::PUT,
            "/Messages/nope/Status".into(),
            json!({"status": "eaten"}),
            400,
        ),
        (
            Method::POST,
            "/Participants".into(),
            json!({"participants": []}),
            400,
        ),
        (
            Method::POST,
            "/Participants".into(),
            json!({"participants": ["a b"]}),
            400,
        ),
    ] {
        let (s, v) = rest(&lab, m, &format!("{base}{p}"), &ta, Some(b.clone())).await;
        assert_eq!(s, want, "{p} {b}: {v}");
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    }
    // Adding and removing members: a REFER to the focus each (the chairman removes).
    let (s, v) = rest(
        &lab,
        Method::POST,
        &format!("{base}/Participants"),
        &ta,
        Some(json!({"participants": ["carol"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["added"], json!(["sip:carol@ims.lab"]), "{v}");
    let (s, v) = rest(
        &lab,
        Method::DELETE,
        &format!("{base}/Participants/carol"),
        &ta,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["removed"], "sip:carol@ims.lab", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_group_goes_idle_for_web_users_and_the_next_message_brings_everyone_back() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[group]\nidle_timeout = 2\n").await;
    let mut tokens = Vec::new();
    let mut chans = Vec::new();
    for u in ["alice", "bob"] {
        let t = login(&lab, u, &format!("{u}-secret")).await;
        chans.push(Events {
            ch: Channel::open(&lab, u, &t, 0).await,
            seen: Vec::new(),
        });
        tokens.push(t);
    }
    let (s, g) = rest(
        &lab,
        Method::POST,
        "/webrsf/v1/alice/Group",
        &tokens[0],
        Some(json!({"subject": "quiet", "participants": ["bob"]})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["group_id"].as_str().unwrap().to_string();
    for c in &mut chans {
        until(c, "joined", |e| {
            is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "joined"
        })
        .await;
    }
    // Two quiet seconds: CONF ends the sessions; each web user hears `idle`, not `closed`.
    for c in &mut chans {
        until(c, "the idle event", |e| {
            is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "idle"
        })
        .await;
    }
    let (s, v) = rest(
        &lab,
        Method::GET,
        &format!("/webrsf/v1/bob/Group/{gid}"),
        &tokens[1],
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("idle")), "{v}");
    // bob writes: his session comes back, CONF brings alice back, she gets it.
    let (s, v) = rest(
        &lab,
        Method::POST,
        &format!("/webrsf/v1/bob/Group/{gid}/Messages"),
        &tokens[1],
        Some(json!({"text": "anyone?"})),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let ev = until(&mut chans[0], "bob's message", |e| {
        is(e, "chatMessageNotification", &gid) && e["data"]["text"] == "anyone?"
    })
    .await;
    assert_eq!(ev["data"]["sender"], "bob", "{ev}");
    for c in &mut chans {
        until(c, "joined again", |e| {
            is(e, "groupChatEventNotification", &gid) && e["data"]["status"] == "joined"
        })
        .await;
    }
}
