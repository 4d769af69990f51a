//! Members added and removed by REFER; bad requests.

use std::time::Duration;

use rcslab::sip::{Method, Request};
use rcslab::ue::chat::{ChatEvent, ChatOptions};
use tokio::sync::watch;

use super::*;
use crate::chat::{chat_flow, chat_ue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_by_refer_one_and_many_and_the_chairman_removes_one() {
    use rcslab::focus::group::MemberState;
    let dir = tempfile::tempdir().unwrap();
    let lab = five_users(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let mut dave = chat_ue(&lab, "dave", &shut, ChatOptions::default()).await;
    let mut erin = chat_ue(&lab, "erin", &shut, ChatOptions::default()).await;
    third_party_registers_done(&lab, 5).await;
    let group = alice.create_group("Grow", &["bob"]).await.unwrap();
    let gid = gid_of(&group);
    crate::eventually("bob's leg bound", || {
        chat_flow(&lab, 0).contains(&"CONF -> UE bob MSRP 200".to_string())
    })
    .await;

    // One member by REFER (Refer-To: <sip:dave@ims.lab>): 202, then the focus INVITEs dave.
    lab.trace.clear();
    alice.add_to_group(&group, &["dave"]).await.unwrap();
    crate::eventually("dave in", || connected(&lab, &gid, &["dave"])).await;
    crate::eventually("dave's leg bound", || {
        chat_flow(&lab, 0).contains(&"CONF -> UE dave MSRP 200".to_string())
    })
    .await;
    let f = chat_flow(&lab, 0);
    assert_eq!(
        of(&f, "UE alice"),
        ["UE alice -> P-CSCF SIP REFER", "P-CSCF -> UE alice SIP 202"],
        "{f:#?}"
    );
    let refer_lines: Vec<String> = of(&f, "CONF")
        .into_iter()
        .filter(|l| l.contains(" REFER") || l.contains(" 202"))
        .collect();
    assert_eq!(
        refer_lines,
        ["S-CSCF -> CONF SIP REFER", "CONF -> S-CSCF SIP 202"],
        "{f:#?}"
    );
    assert_eq!(of(&f, "UE dave"), member_joins("dave"), "{f:#?}");
    let refer = requests(sip(&lab), Method::Refer).remove(0);
    assert_eq!(refer.uri, group);
    assert_eq!(refer.headers.get("Refer-To"), Some("<sip:dave@ims.lab>"));
    let invite = requests(sip(&lab), Method::Invite).remove(0);
    assert_eq!(
        invite.headers.get("Referred-By"),
        Some("<sip:alice@ims.lab>")
    );

    // Only members may add, only the chairman may remove.
    let e = carol
        .add_to_group(&group, &["erin"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("403"), "{e}");
    let e = bob
        .remove_from_group(&group, "dave")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("403"), "{e}");

    // Two at once (RFC 5368 multiple-refer: Refer-To: <cid:…>, the list in the body).
    lab.trace.clear();
    alice
        .add_to_group(&group, &["carol", "erin"])
        .await
        .unwrap();
    crate::eventually("carol and erin in", || {
        connected(&lab, &gid, &["carol", "erin"])
    })
    .await;
    let refer = requests(sip(&lab), Method::Refer).remove(0);
    assert!(refer
        .headers
        .get("Refer-To")
        .is_some_and(|r| r.starts_with("<cid:")));
    assert_eq!(refer.headers.get("Require"), Some("multiple-refer"));
    let body = String::from_utf8_lossy(&refer.body);
    assert!(body.contains("sip:carol@ims.lab") && body.contains("sip:erin@ims.lab"));
    let mut to: Vec<String> = requests(sip(&lab), Method::Invite)
        .into_iter()
        .map(|r| r.uri)
        .collect();
    to.sort();
    assert_eq!(to, ["sip:carol@ims.lab", "sip:erin@ims.lab"]);

    // The chairman removes bob: his session ends with the focus's BYE.
    lab.trace.clear();
    alice.remove_from_group(&group, "bob").await.unwrap();
    loop {
        match bob.next_event(Duration::from_secs(5)).await {
            Some(ChatEvent::Session {
                status: rcslab::ue::chat::SessionStatus::Closed,
                ..
            }) => break,
            Some(_) => continue,
            None => panic!("bob's session did not end"),
        }
    }
    crate::eventually("the BYE at bob", || {
        chat_flow(&lab, 0).contains(&"P-CSCF -> UE bob SIP BYE".to_string())
    })
    .await;
    assert_eq!(state_of(&lab, &gid, "bob"), Some(MemberState::Departed));
    let g = lab.conf.group(&gid).unwrap();
    assert_eq!(
        g.member("sip:bob@ims.lab").unwrap().departure.as_deref(),
        Some("booted")
    );
    let f = chat_flow(&lab, 0);
    let bye: Vec<String> = f.iter().filter(|l| l.contains(" BYE")).cloned().collect();
    assert_eq!(
        bye,
        [
            "CONF -> S-CSCF SIP BYE",
            "S-CSCF -> P-CSCF SIP BYE",
            "P-CSCF -> UE bob SIP BYE"
        ],
        "{f:#?}"
    );
    // The group goes on without him.
    alice.send(&group, "welcome dave and erin").await;
    for ue in [&mut dave, &mut erin] {
        assert_eq!(group_text(ue).await.1, "welcome dave and erin");
    }
    assert!(!matches!(
        bob.next_event(Duration::from_millis(300)).await,
        Some(ChatEvent::GroupMessage { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refer_with_its_implicit_subscription_gets_trying_then_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let lab = five_users(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let _bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let _dave = chat_ue(&lab, "dave", &shut, ChatOptions::default()).await;
    let group = alice.create_group("Sub", &["bob"]).await.unwrap();
    let gid = gid_of(&group);
    crate::eventually("bob in", || connected(&lab, &gid, &["bob"])).await;
    // alice's second device sends the REFER the RFC 3515 way (no Refer-Sub: false).
    let mut w = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    w.register(600).await.unwrap();
    let mut r = Request::new(Method::Refer, group.clone());
    r.headers
        .push("Via", w.endpoint().new_via(rcslab::sip::Transport::Udp));
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", "<sip:alice@ims.lab>;tag=w1");
    r.headers.push("To", format!("<{group}>"));
    r.headers.push("Call-ID", "refer-sub-1@test");
    r.headers.push("CSeq", "1 REFER");
    r.headers.push("Contact", format!("<{}>", w.contact()));
    r.headers.push("Refer-To", "<sip:dave@ims.lab>");
    let resp = w.send_tx(r).final_response().await;
    assert_eq!(resp.status, 202, "{resp:?}");
    let mut frags = Vec::new();
    for _ in 0..2 {
        let inc = w
            .next_request(Duration::from_secs(5))
            .await
            .expect("a NOTIFY");
        assert_eq!(inc.request.method, Method::Notify);
        assert_eq!(inc.request.headers.get("Event"), Some("refer"));
        assert_eq!(inc.request.headers.get("Call-ID"), Some("refer-sub-1@test"));
        frags.push((
            String::from_utf8_lossy(&inc.request.body)
                .trim()
                .to_string(),
            inc.request
                .headers
                .get("Subscription-State")
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .to_string(),
        ));
        inc.tx.respond(inc.request.response(200, None));
    }
    assert_eq!(
        frags,
        [
            ("SIP/2.0 100 Trying".to_string(), "active".to_string()),
            ("SIP/2.0 200 OK".to_string(), "terminated".to_string()),
        ]
    );
    assert!(connected(&lab, &gid, &["dave"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_403_413_and_400_with_a_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Groups of at most three.
    let lab = five_users(dir.path(), "[group]\nmax_members = 3\n").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let _bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let _carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let e = alice
        .create_group("Too big", &["bob", "carol", "dave"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("403"), "{e}");
    assert!(e.contains("at most 3 members"), "{e}");
    assert_eq!(lab.conf.groups(), 0);
    let group = alice.create_group("Fits", &["bob", "carol"]).await.unwrap();
    let gid = gid_of(&group);
    crate::eventually("both in", || connected(&lab, &gid, &["bob", "carol"])).await;
    let e = alice
        .add_to_group(&group, &["dave"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("403") && e.contains("at most 3"), "{e}");

    // Malformed lists: 400; a list body over 32 KiB: 413. Raw INVITEs to the factory.
    let mut w = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    w.register(600).await.unwrap();
    let sdp =
        rcslab::msrp::sdp::MsrpSdp::rcs_chat("127.0.0.1", 9, "msrp://127.0.0.1:9/w;tcp", "active")
            .to_sdp();
    let mut invite_with = |list: &str| {
        let mut part = rcslab::sip::multipart::Part::new(
            "application/resource-lists+xml",
            bytes::Bytes::from(list.to_string()),
        );
        part.headers
            .push(("Content-Disposition".into(), "recipient-list".into()));
        let (ct, body) = rcslab::sip::multipart::build(
            "b1",
            &[
                rcslab::sip::multipart::Part::new(
                    "application/sdp",
                    bytes::Bytes::from(sdp.clone()),
                ),
                part,
            ],
        );
        let mut r = w.build_invite("sip:chat-factory@ims.lab", "");
        r.headers.set("Content-Type", ct);
        r.headers.push("Require", "recipient-list-invite");
        r.body = bytes::Bytes::from(body);
        r
    };
    let bad = invite_with(
        "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list><entry uri=",
    );
    let huge = invite_with(&format!(
        "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>{}</list></resource-lists>",
        "<entry uri=\"sip:bob@ims.lab\"/>".repeat(1100)
    ));
    for (req, status) in [(bad, 400), (huge, 413)] {
        let resp = w.send_tx(req).final_response().await;
        assert_eq!(resp.status, status, "{resp:?}");
        assert!(resp.headers.get("Warning").is_some(), "a reason: {resp:?}");
    }
    assert_eq!(lab.conf.groups(), 1, "nothing new stored");
    assert_eq!(lab.conf.group(&gid).unwrap().current().count(), 3);
}
