//! The UMS's RCS channel (seed 003: "prefers RCS where both sides support it, falling back to
//! SMS/LMS"): the gateway's chatbot identity `sip:ums@ims.lab` registers with
//! `+g.gsma.rcs.isbot`; each recipient is asked for its capabilities (OPTIONS to `tel:+N`);
//! bob, whose client takes chat, gets a chatbot card with suggested replies and is reported
//! delivered (then read) over RCS; carol's client holds the chat and never reports it, so
//! after `fallback_secs` she gets it as SMS and is reported `fell_back`; alice, not
//! registered, gets SMS straight away; bob's tap on a suggestion and his reply reach the
//! webhook.

use std::time::Duration;

use hyper::Method;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::sms::{SmsEvent, SmsUe};
use rcslab::ue::AuthMode;
use serde_json::{json, Value};

use crate::ums::{webhook, Api, Events};
use crate::{eventually, flow, lab_with, ue};

/// A registered phone that takes both chat and SMS over IP; `hold`: its chat client leaves
/// incoming chats unanswered (no IMDN ever comes).
async fn phone(
    lab: &rcslab::Lab,
    user: &str,
    hold: bool,
    shut: &tokio::sync::watch::Receiver<bool>,
) -> (ChatUe, SmsUe) {
    file_phone(lab, user, hold, None, shut).await
}

/// [`phone`] whose chat client downloads files (FT via HTTP) into `files`, when given.
async fn file_phone(
    lab: &rcslab::Lab,
    user: &str,
    hold: bool,
    files: Option<&std::path::Path>,
    shut: &tokio::sync::watch::Receiver<bool>,
) -> (ChatUe, SmsUe) {
    let mut u = ue(lab, user, AuthMode::Digest, shut).await;
    u.register(600).await.expect("registers");
    let sms = SmsUe::start(&mut u, Default::default());
    let chat = ChatUe::start(
        u,
        lab.trace.clone(),
        ChatOptions {
            hold_invites: hold,
            files: files.map(|f| f.to_path_buf()),
            ..ChatOptions::default()
        },
    );
    (chat, sms)
}

/// A recipient's status, channel and whether it fell back.
fn outcome(r: &Value) -> (Option<&str>, Option<&str>, Option<bool>) {
    (
        r["status"].as_str(),
        r["channel"].as_str(),
        r["fell_back"].as_bool(),
    )
}

/// The recipient `to` of message `m`, once final (within 20 s).
async fn final_recipient(api: &mut Api, id: &str, to: &str) -> Value {
    for _ in 0..200 {
        let m = api.message(id).await;
        let r = m["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["to"] == to)
            .cloned()
            .unwrap();
        if matches!(r["status"].as_str(), Some("delivered" | "read" | "failed")) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{to} not final: {}", api.message(id).await);
}

#[tokio::test]
async fn rcs_first_with_suggestions_then_fallback_to_sms_for_a_phone_that_never_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let (hook, rx) = webhook().await;
    let lab = lab_with(
        dir.path(),
        &format!(
            "[ums]\nrcs_user = \"ums\"\nfallback_secs = 2\nwebhook = \"http://{hook}/hook\"\n"
        ),
    )
    .await;
    let mut events = Events {
        rx,
        seen: Vec::new(),
    };
    eventually("the UMS's chatbot to register", || lab.ums.rcs_on()).await;
    eventually("the UMS to bind to the SMSC", || lab.ums.is_bound()).await;
    let (mut bob, _bob_sms) = phone(&lab, "bob", false, &shut).await;
    let (mut carol, mut carol_sms) = phone(&lab, "carol", true, &shut).await;
    let mut api = Api::of(&lab, dir.path());

    let (s, taken) = api
        .business(
            Method::POST,
            "/ums/v1/messages",
            json!({
                "recipients": ["+15550002", "+15550003", "+15550001"],
                "text": "Your parcel arrives today",
                "suggestions": ["Yes", "No"],
            }),
        )
        .await;
    assert_eq!(s, 202, "{taken}");
    let id = taken["id"].as_str().unwrap().to_string();

    // bob's client shows a chatbot card from the business identity.
    let card = loop {
        match bob.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::BotMessage { from, card, .. }) => {
                assert_eq!(from, "sip:ums@ims.lab");
                break card;
            }
            Some(_) => continue,
            None => panic!("bob got no chatbot message"),
        }
    };
    assert_eq!(card.text, "Your parcel arrives today");
    assert_eq!(
        card.suggestions
            .iter()
            .map(|r| r.display_text.as_str())
            .collect::<Vec<_>>(),
        ["Yes", "No"]
    );
    let r = final_recipient(&mut api, &id, "+15550002").await;
    assert_eq!(
        outcome(&r),
        (Some("delivered"), Some("rcs"), Some(false)),
        "{r}"
    );

    // carol's client never reports: after 2 s the UMS revokes the chat message (T-IM CANCELs
    // the INVITE that carries it and drops it from its store), then the SMS goes, and that is
    // delivered.
    let held = loop {
        match carol.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::Invited { message_id, .. }) => break message_id,
            Some(_) => continue,
            None => panic!("carol's client was not invited"),
        }
    };
    let got = loop {
        match carol_sms.next_event(Duration::from_secs(15)).await {
            Some(SmsEvent::Received { from, text }) => break (from, text),
            Some(_) => continue,
            None => panic!("carol got no SMS"),
        }
    };
    assert_eq!(
        got,
        (
            "tel:4100".to_string(),
            "Your parcel arrives today".to_string()
        )
    );
    let r = final_recipient(&mut api, &id, "+15550003").await;
    assert_eq!(
        outcome(&r),
        (Some("delivered"), Some("sms"), Some(true)),
        "{r}"
    );
    assert_eq!(
        r["detail"], "no RCS delivery report within 2 s; the chat message was revoked",
        "{r}"
    );
    // Out of T-IM's store for good: carol's next registration brings no chat twice.
    let tim = lab.tim.store().unwrap();
    assert!(tim.by_message_id(&held).is_none(), "revoked, not kept");
    assert!(tim.pending_for("tel:+15550003").is_empty());
    let fell = events
        .find(|v| v["status"] == "fell_back" && v["to"] == "+15550003")
        .await;
    assert_eq!(fell["channel"], "sms");

    // alice is not registered: OPTIONS 480, so SMS at once (stored at the centre), never chat.
    let m = api.message(&id).await;
    let alice = m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["to"] == "+15550001")
        .cloned()
        .unwrap();
    assert_eq!(
        (alice["channel"].as_str(), alice["fell_back"].as_bool()),
        (Some("sms"), Some(false)),
        "{alice}"
    );
    assert!(
        alice["detail"]
            .as_str()
            .unwrap()
            .starts_with("not reachable over RCS: OPTIONS 480"),
        "{alice}"
    );

    // bob taps "Yes" and writes back: both reach the business's webhook.
    let reply = card.suggestions[0].clone();
    bob.tap("sip:ums@ims.lab", &reply).await;
    let tap = events.find(|v| v["type"] == "suggestion").await;
    assert_eq!(
        (
            &tap["from"],
            &tap["text"],
            &tap["postback"],
            &tap["channel"]
        ),
        (
            &json!("sip:bob@ims.lab"),
            &json!("Yes"),
            &json!("Yes"),
            &json!("rcs")
        )
    );
    bob.send("sip:ums@ims.lab", "what time?").await;
    let mo = events
        .find(|v| v["type"] == "mo" && v["channel"] == "rcs")
        .await;
    assert_eq!(
        (&mo["from"], &mo["text"]),
        (&json!("sip:bob@ims.lab"), &json!("what time?"))
    );
}

#[tokio::test]
async fn the_exact_ladder_of_a_chatbot_message_to_a_chat_phone() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let lab = lab_with(dir.path(), "[ums]\nrcs_user = \"ums\"\n").await;
    eventually("the UMS's chatbot to register", || lab.ums.rcs_on()).await;
    let (mut bob, _bob_sms) = phone(&lab, "bob", false, &shut).await;
    let mut api = Api::of(&lab, dir.path());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = flow(&lab).len();
    let (s, taken) = api
        .business(
            Method::POST,
            "/ums/v1/messages",
            json!({"recipients": ["+15550002"], "text": "hello from the business"}),
        )
        .await;
    assert_eq!(s, 202);
    let id = taken["id"].as_str().unwrap().to_string();
    loop {
        match bob.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::Message { from, text, .. }) => {
                assert_eq!(
                    (from.as_str(), text.as_str()),
                    ("sip:ums@ims.lab", "hello from the business")
                );
                break;
            }
            Some(_) => continue,
            None => panic!("bob got no message"),
        }
    }
    let r = final_recipient(&mut api, &id, "+15550002").await;
    assert_eq!(
        (r["status"].as_str(), r["channel"].as_str()),
        (Some("delivered"), Some("rcs")),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The capability query (RCC.07 §2.6.1.1: OPTIONS to tel:+15550002, the I-CSCF finding
    // bob's S-CSCF), then the chat exactly as paper figure 1 with the UMS in UE1's place:
    // O-IM, T-IM storing it, T-IM's INVITE to bob, bob's IMDN "delivered" relayed over MSRP.
    let mut expected: Vec<String> = [
        "UMS -> P-CSCF SIP OPTIONS",
        "P-CSCF -> S-CSCF SIP OPTIONS",
        "S-CSCF -> I-CSCF SIP OPTIONS",
        "I-CSCF -> HSS Diameter LIR",
        "HSS -> I-CSCF Diameter LIA",
        "I-CSCF -> S-CSCF SIP OPTIONS",
        "S-CSCF -> P-CSCF SIP OPTIONS",
        "P-CSCF -> UE bob SIP OPTIONS",
        "UE bob -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> I-CSCF SIP 200",
        "I-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UMS SIP 200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.extend(
        crate::chat::FIGURE_1
            .iter()
            .map(|l| l.replace("UE alice", "UMS")),
    );
    let got = crate::chat::chat_flow(&lab, from);
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!("ladder differs:\n{d}");
    }
}

/// Media (seed 003: "MMS") to RCS phones go as an RCS file transfer first: the UMS uploads the
/// picture to the content server as its chatbot identity and sends the file-info as chat; bob's
/// client downloads it and is reported `delivered (rcs)`. carol's client holds the chat: the
/// UMS revokes it and sends the MMS notification instead (`delivered`, channel `mms`,
/// `fell_back`).
#[tokio::test]
async fn media_go_as_an_rcs_file_transfer_and_as_mms_when_it_does_not_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let lab = lab_with(dir.path(), "[ums]\nrcs_user = \"ums\"\nfallback_secs = 2\n").await;
    eventually("the UMS's chatbot to register", || lab.ums.rcs_on()).await;
    eventually("the UMS to bind to the SMSC", || lab.ums.is_bound()).await;
    let (bob_dir, carol_dir) = (dir.path().join("bob"), dir.path().join("carol"));
    std::fs::create_dir_all(&bob_dir).unwrap();
    std::fs::create_dir_all(&carol_dir).unwrap();
    let (mut bob, _bob_sms) = file_phone(&lab, "bob", false, Some(&bob_dir), &shut).await;
    let (_carol, mut carol_sms) = file_phone(&lab, "carol", true, Some(&carol_dir), &shut).await;
    let mut api = Api::of(&lab, dir.path());
    let picture: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
    let (s, up) = api.upload("image/png", picture.clone()).await;
    assert_eq!(s, 201, "{up}");
    let (s, taken) = api
        .business(
            Method::POST,
            "/ums/v1/messages",
            json!({"recipients": ["+15550002", "+15550003"], "media": up["id"]}),
        )
        .await;
    assert_eq!(s, 202, "{taken}");
    assert_eq!(taken["recipients"][0]["channel"], "rcs", "{taken}");
    let id = taken["id"].as_str().unwrap().to_string();

    // bob's client downloads the file from the content server: the same bytes.
    let (name, path, ct) = loop {
        match bob.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::File {
                from,
                name,
                path,
                content_type,
                ..
            }) => {
                assert_eq!(from, "sip:ums@ims.lab");
                break (name, path, content_type);
            }
            Some(ChatEvent::FileFailed { reason, .. }) => panic!("bob's download failed: {reason}"),
            Some(_) => continue,
            None => panic!("bob got no file"),
        }
    };
    assert_eq!((name.as_str(), ct.as_str()), ("media.png", "image/png"));
    assert_eq!(std::fs::read(&path).unwrap(), picture);
    let r = final_recipient(&mut api, &id, "+15550002").await;
    assert_eq!(
        outcome(&r),
        (Some("delivered"), Some("rcs"), Some(false)),
        "{r}"
    );

    // carol's client never takes it: revoked, then the MMS notification (WAP Push over SMS).
    let got = loop {
        match carol_sms.next_event(Duration::from_secs(15)).await {
            Some(SmsEvent::Mms { notification, .. }) => break notification.content_location,
            Some(_) => continue,
            None => panic!("carol got no MMS notification"),
        }
    };
    assert!(got.contains(up["id"].as_str().unwrap()), "{got}");
    let r = final_recipient(&mut api, &id, "+15550003").await;
    assert_eq!(
        outcome(&r),
        (Some("delivered"), Some("mms"), Some(true)),
        "{r}"
    );
    assert_eq!(r["detail"], "notification delivered", "{r}");
    // The file-info chat left T-IM's store: carol's phone will not get the picture twice.
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("tel:+15550003")
        .is_empty());
    let outbox = dir.path().join("ums").join("outbox");
    assert!(
        std::fs::read_dir(&outbox).map_or(true, |mut d| d.next().is_none()),
        "no file left behind in {}",
        outbox.display()
    );
}
