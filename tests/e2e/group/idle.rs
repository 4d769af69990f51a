//! Idle teardown and restart (GSMA RCC.07 §3.4.4.1.7): a group that carries nothing for
//! `[group] idle_timeout` has its sessions ended by the focus; a member's next message opens
//! a session with the group's Contribution-ID and brings the others back.

use rcslab::focus::group::MemberState;
use rcslab::ue::chat::ChatOptions;
use tokio::sync::watch;

use super::*;
use crate::chat::{chat_flow, chat_ue};

const IDLE: &str = "[group]\nidle_timeout = 2\n";

fn all_in(lab: &Lab, gid: &str, state: MemberState) -> bool {
    ["alice", "bob", "carol"]
        .iter()
        .all(|u| state_of(lab, gid, u) == Some(state))
}

/// The SIP lines CONF sends and gets.
fn conf_sip(lab: &Lab) -> Vec<String> {
    of(&chat_flow(lab, 0), "CONF")
        .into_iter()
        .filter(|l| l.contains(" SIP "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_group_ends_its_sessions_and_a_members_message_restarts_it_with_the_same_contribution_id(
) {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), IDLE).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    third_party_registers_done(&lab, 3).await;
    let group = alice
        .create_group("Quiet", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    let cid = lab.conf.group(&gid).unwrap().contribution_id;
    crate::eventually("everyone in", || all_in(&lab, &gid, MemberState::Connected)).await;
    // Every leg bound, and the ACKs for CONF's INVITEs through, before the ladder starts.
    crate::eventually("the legs bound", || {
        let f = chat_flow(&lab, 0);
        ["alice", "bob", "carol"]
            .iter()
            .all(|u| f.contains(&format!("CONF -> UE {u} MSRP 200")))
            && ["bob", "carol"]
                .iter()
                .all(|u| f.contains(&format!("P-CSCF -> UE {u} SIP ACK")))
    })
    .await;
    lab.trace.clear();

    // Nothing said for 2 s: a BYE to each member, who stays a member (idle).
    crate::eventually("everyone idle", || all_in(&lab, &gid, MemberState::Idle)).await;
    crate::eventually("the BYEs answered", || {
        conf_sip(&lab)
            .iter()
            .filter(|l| *l == "S-CSCF -> CONF SIP 200")
            .count()
            == 3
    })
    .await;
    let f = chat_flow(&lab, 0);
    assert_eq!(
        sorted(
            &conf_sip(&lab)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        sorted(&[
            "CONF -> S-CSCF SIP BYE",
            "CONF -> S-CSCF SIP BYE",
            "CONF -> S-CSCF SIP BYE",
            "S-CSCF -> CONF SIP 200",
            "S-CSCF -> CONF SIP 200",
            "S-CSCF -> CONF SIP 200",
        ]),
        "{f:#?}"
    );
    for who in ["alice", "bob", "carol"] {
        assert_eq!(
            of(&f, &format!("UE {who}")),
            [
                format!("P-CSCF -> UE {who} SIP BYE"),
                format!("UE {who} -> P-CSCF SIP 200"),
            ],
            "{f:#?}"
        );
    }
    let byes = requests(sip(&lab), Method::Bye);
    assert_eq!(byes.len(), 3);
    for b in &byes {
        assert_eq!(
            b.headers.get("Reason"),
            Some("SIP;cause=200;text=\"idle\""),
            "{b:?}"
        );
    }
    assert!(lab.conf.group(&gid).unwrap().is_member("sip:carol@ims.lab"));

    // bob writes: a new session to the group's URI with the group's Contribution-ID, the
    // message in it; nobody else is in session, so CONF invites alice and carol back.
    lab.trace.clear();
    bob.send(&group, "still there?").await;
    for ue in [&mut alice, &mut carol] {
        assert_eq!(
            group_text(ue).await,
            ("sip:bob@ims.lab".to_string(), "still there?".to_string())
        );
    }
    crate::eventually("everyone back", || {
        all_in(&lab, &gid, MemberState::Connected)
    })
    .await;
    let invites = requests(sip(&lab), Method::Invite);
    let to_group: Vec<&Request> = invites
        .iter()
        .filter(|r| r.uri.starts_with("sip:chat-"))
        .collect();
    assert_eq!(to_group.len(), 1, "{invites:?}");
    assert_eq!(
        to_group[0].headers.get("Contribution-ID"),
        Some(cid.as_str())
    );
    // CONF's INVITEs bringing the others back carry it too, Referred-By bob.
    let from_conf: Vec<&Request> = invites
        .iter()
        .filter(|r| !r.uri.starts_with("sip:chat-"))
        .collect();
    assert_eq!(from_conf.len(), 2, "{invites:?}");
    for r in from_conf {
        assert_eq!(r.headers.get("Contribution-ID"), Some(cid.as_str()));
        assert_eq!(r.headers.get("Referred-By"), Some("<sip:bob@ims.lab>"));
    }
    crate::eventually("CONF's SIP lines", || conf_sip(&lab).len() >= 9).await;
    let f = chat_flow(&lab, 0);
    assert_eq!(
        sorted(
            &conf_sip(&lab)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        sorted(&[
            "S-CSCF -> CONF SIP INVITE", // bob's, with "still there?"
            "CONF -> S-CSCF SIP 200",
            "S-CSCF -> CONF SIP ACK",
            "CONF -> S-CSCF SIP INVITE", // alice back
            "CONF -> S-CSCF SIP INVITE", // carol back
            "S-CSCF -> CONF SIP 200",
            "S-CSCF -> CONF SIP 200",
            "CONF -> S-CSCF SIP ACK",
            "CONF -> S-CSCF SIP ACK",
        ]),
        "{f:#?}"
    );
    for who in ["alice", "carol"] {
        let mut want = member_joins(who);
        want.push(format!("CONF -> UE {who} MSRP SEND")); // "still there?"
        assert_eq!(of(&f, &format!("UE {who}"))[..6], want[..], "{f:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_the_group_uri_restarts_it_through_the_factory_with_its_contribution_id()
{
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), IDLE).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    third_party_registers_done(&lab, 3).await;
    let group = alice
        .create_group("Lost and found", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    let cid = lab.conf.group(&gid).unwrap().contribution_id;
    crate::eventually("everyone idle", || all_in(&lab, &gid, MemberState::Idle)).await;

    // carol kept the Contribution-ID but not the URI: she INVITEs the factory with it.
    carol.know_group("sip:chat-factory@ims.lab", &cid);
    let again = carol
        .create_group("Lost and found", &["alice", "bob"])
        .await
        .unwrap();
    assert_eq!(again, group, "the same group, not a new one");
    assert_eq!(lab.conf.groups(), 1);
    carol.send(&group, "found it").await;
    for ue in [&mut alice, &mut bob] {
        assert_eq!(
            group_text(ue).await,
            ("sip:carol@ims.lab".to_string(), "found it".to_string())
        );
    }
    crate::eventually("everyone back", || {
        all_in(&lab, &gid, MemberState::Connected)
    })
    .await;
}
