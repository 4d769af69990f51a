//! A group is created, and a message to it reaches every member with their reports.

use rcslab::cpim::ImdnStatus;
use rcslab::sip::{Method, Request};
use rcslab::trace::Protocol;
use rcslab::ue::chat::{ChatEvent, ChatOptions};
use tokio::sync::watch;

use super::*;
use crate::chat::{chat_flow, chat_ue};
use crate::lab_with;

/// The creation of a group of alice (chairman), bob and carol, both members online.
const CREATE: &[&str] = &[
    "UE alice -> P-CSCF SIP INVITE",
    "P-CSCF -> S-CSCF SIP INVITE",
    "S-CSCF -> CONF SIP INVITE", // originating iFC: Request-URI sip:chat-factory@ims.lab
    "CONF -> S-CSCF SIP 200",    // Contact <sip:chat-GID@…>;isfocus
    "S-CSCF -> P-CSCF SIP 200",
    "P-CSCF -> UE alice SIP 200",
    "UE alice -> P-CSCF SIP ACK",
    "P-CSCF -> S-CSCF SIP ACK",
    "S-CSCF -> CONF SIP ACK",
    "UE alice -> CONF MSRP SEND", // binds her leg
    "CONF -> UE alice MSRP 200",
    // Each member, in parallel: the focus's INVITE (From the group, Referred-By alice).
    "CONF -> S-CSCF SIP INVITE",
    "CONF -> S-CSCF SIP INVITE",
    "S-CSCF -> P-CSCF SIP INVITE",
    "S-CSCF -> P-CSCF SIP INVITE",
    "P-CSCF -> UE bob SIP INVITE",
    "P-CSCF -> UE carol SIP INVITE",
    "UE bob -> P-CSCF SIP 200",
    "UE carol -> P-CSCF SIP 200",
    "P-CSCF -> S-CSCF SIP 200",
    "P-CSCF -> S-CSCF SIP 200",
    "S-CSCF -> CONF SIP 200",
    "S-CSCF -> CONF SIP 200",
    "CONF -> S-CSCF SIP ACK",
    "CONF -> S-CSCF SIP ACK",
    "S-CSCF -> P-CSCF SIP ACK",
    "S-CSCF -> P-CSCF SIP ACK",
    "P-CSCF -> UE bob SIP ACK",
    "P-CSCF -> UE carol SIP ACK",
    "UE bob -> CONF MSRP SEND",
    "UE carol -> CONF MSRP SEND",
    "CONF -> UE bob MSRP 200",
    "CONF -> UE carol MSRP 200",
];

/// alice's message to the group, and each member's IMDN "delivered" back to her.
const MESSAGE: &[&str] = &[
    "UE alice -> CONF MSRP SEND",
    "CONF -> UE alice MSRP 200", // stored (sequence number, sled, flushed)
    "CONF -> UE bob MSRP SEND",
    "CONF -> UE carol MSRP SEND",
    "UE bob -> CONF MSRP 200",
    "UE carol -> CONF MSRP 200",
    "UE bob -> CONF MSRP SEND", // IMDN delivered, CPIM To alice, Failure-Report: no
    "UE carol -> CONF MSRP SEND",
    "CONF -> UE alice MSRP SEND", // each report straight to the member it is for
    "CONF -> UE alice MSRP SEND",
    "UE alice -> CONF MSRP 200",
    "UE alice -> CONF MSRP 200",
];

/// A member's own lines for a message and its report (unanswered: RCC.07).
fn member_reports(who: &str) -> Vec<String> {
    [
        "CONF -> UE {} MSRP SEND",
        "UE {} -> CONF MSRP 200",
        "UE {} -> CONF MSRP SEND",
    ]
    .iter()
    .map(|l| l.replace("{}", who))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_a_group_and_a_message_reaches_every_member_with_their_imdns() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    third_party_registers_done(&lab, 3).await;
    lab.trace.clear();
    let group = alice
        .create_group("Friday lunch", &["bob", "carol"])
        .await
        .expect("the focus creates the group");
    let gid = group
        .strip_prefix("sip:chat-")
        .and_then(|g| g.strip_suffix("@ims.lab"))
        .expect("sip:chat-GID@ims.lab")
        .to_string();
    crate::eventually("both members' MSRP legs bound", || {
        let f = chat_flow(&lab, 0);
        ["bob", "carol"]
            .iter()
            .all(|u| f.contains(&format!("CONF -> UE {u} MSRP 200")))
    })
    .await;
    let create = chat_flow(&lab, 0);
    assert_eq!(
        sorted(&create.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(CREATE),
        "{create:#?}"
    );
    assert_eq!(
        of(&create, "UE alice"),
        of(
            &CREATE.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "UE alice"
        )
    );
    for who in ["bob", "carol"] {
        assert_eq!(
            of(&create, &format!("UE {who}")),
            member_joins(who),
            "{create:#?}"
        );
    }
    assert_eq!(create[..3], CREATE[..3], "{create:#?}");

    // On the wire (RFC 5366 §3, RFC 4579 §3.3, RCC.07 §3.4.4.1).
    let invites = requests(sip(&lab), Method::Invite);
    let invite = &invites[0];
    assert_eq!(invite.uri, "sip:chat-factory@ims.lab");
    assert_eq!(invite.headers.get("Require"), Some("recipient-list-invite"));
    assert_eq!(invite.headers.get("Subject"), Some("Friday lunch"));
    assert!(invite
        .headers
        .get("Content-Type")
        .is_some_and(|c| c.starts_with("multipart/mixed")));
    let body = String::from_utf8_lossy(&invite.body);
    assert!(
        body.contains("Content-Disposition: recipient-list"),
        "{body}"
    );
    assert!(body.contains("<entry uri=\"sip:bob@ims.lab\""), "{body}");
    let ok = responses(sip(&lab), 200, "INVITE")
        .into_iter()
        .find(|r| r.headers.get("Call-ID") == invite.headers.get("Call-ID"))
        .unwrap();
    let contact = ok.headers.get("Contact").unwrap();
    assert!(
        contact.starts_with(&format!("<sip:chat-{gid}@")),
        "{contact}"
    );
    assert!(contact.contains(";isfocus"), "{contact}");
    let outs: Vec<&Request> = invites[1..].iter().collect();
    let mut to: Vec<&str> = outs.iter().map(|r| r.uri.as_str()).collect();
    to.sort();
    assert_eq!(to, ["sip:bob@ims.lab", "sip:carol@ims.lab"]);
    for r in &outs {
        assert!(r.headers.get("From").unwrap().contains(&group), "{r:?}");
        assert_eq!(r.headers.get("Referred-By"), Some("<sip:alice@ims.lab>"));
        assert_eq!(r.headers.get("Subject"), Some("Friday lunch"));
        assert_eq!(
            r.headers.get("Contribution-ID"),
            invite.headers.get("Contribution-ID")
        );
        assert!(r.headers.get("Contact").unwrap().contains(";isfocus"));
    }
    let g = lab.conf.group(&gid).unwrap();
    let roles: Vec<(&str, bool)> = g
        .members
        .iter()
        .map(|m| (m.uri.as_str(), m.chairman))
        .collect();
    assert_eq!(
        roles,
        [
            ("sip:alice@ims.lab", true),
            ("sip:bob@ims.lab", false),
            ("sip:carol@ims.lab", false)
        ]
    );

    // A message to the group: to both members with alice as the sender, their reports to her.
    lab.trace.clear();
    let id = alice.send(&group, "lunch at noon?").await;
    for ue in [&mut bob, &mut carol] {
        match next(ue).await {
            ChatEvent::GroupMessage {
                group: g,
                from,
                text,
                message_id,
            } => {
                assert_eq!(g, group);
                assert_eq!(from, "sip:alice@ims.lab");
                assert_eq!(text, "lunch at noon?");
                assert_eq!(message_id, id);
            }
            ev => panic!("expected the group message, got {ev:?}"),
        }
    }
    let mut from = Vec::new();
    for _ in 0..2 {
        match next(&mut alice).await {
            ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                from: who,
                ..
            } if message_id == id => from.push(who),
            ev => panic!("expected a delivery report, got {ev:?}"),
        }
    }
    from.sort();
    assert_eq!(from, ["sip:bob@ims.lab", "sip:carol@ims.lab"]);
    crate::eventually("alice's 200s for both reports", || {
        of(&chat_flow(&lab, 0), "UE alice").len() == 6
    })
    .await;
    let msg = chat_flow(&lab, 0);
    assert_eq!(
        sorted(&msg.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(MESSAGE),
        "{msg:#?}"
    );
    assert_eq!(msg[..2], MESSAGE[..2], "{msg:#?}");
    for who in ["bob", "carol"] {
        assert_eq!(
            of(&msg, &format!("UE {who}")),
            member_reports(who),
            "{msg:#?}"
        );
    }
    // RFC 4975 §7.1.1 / RCC.07: the members' reports say `Failure-Report: no`, and get no
    // answer.
    let to_conf = format!("To-Path: msrp://{}/", lab.conf.msrp_addr());
    let mut reports: Vec<String> = lab
        .trace
        .events()
        .iter()
        .filter(|e| e.protocol == Protocol::Msrp)
        .map(|e| String::from_utf8_lossy(&e.bytes).into_owned())
        .filter(|m| m.contains("message/imdn+xml") && m.contains(&to_conf))
        .collect();
    reports.dedup();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert!(
        reports
            .iter()
            .all(|r| r.contains("\r\nFailure-Report: no\r\n")),
        "{reports:#?}"
    );
    // The history: the message alone (sequence number 1); the reports went straight to
    // alice, who took them.
    assert_eq!(lab.conf.group(&gid).unwrap().next_seq, 2);
}
