//! Members who are away get what they missed; the roster; leaving.

use std::time::Duration;

use rcslab::ue::chat::{ChatEvent, ChatOptions};
use tokio::sync::watch;

use super::*;
use crate::chat::{chat_flow, chat_ue};
use crate::lab_with;

/// alice's second device (a plain UE), registered and subscribed to `group`'s roster (RFC
/// 4575); its first NOTIFY is still to be taken.
async fn roster_watcher(lab: &Lab, group: &str, shut: &watch::Receiver<bool>) -> rcslab::ue::Ue {
    let mut w = crate::ue(lab, "alice", rcslab::ue::AuthMode::Digest, shut).await;
    w.register(600).await.unwrap();
    third_party_registers_done(lab, 4).await;
    let (resp, _) = w
        .subscribe_event(group, "conference", "application/conference-info+xml", 600)
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    w
}

/// A roster NOTIFY answered 200: its document and its Subscription-State.
fn notify(
    inc: rcslab::sip::IncomingRequest,
) -> (
    rcslab::conf::conference_info::ConferenceInfo,
    Option<String>,
) {
    use rcslab::conf::conference_info::{ConferenceInfo, InfoLimits};
    let ok = inc.request.response(200, None);
    let info = ConferenceInfo::parse(&inc.request.body, &InfoLimits::default()).unwrap();
    let state = inc
        .request
        .headers
        .get("Subscription-State")
        .map(str::to_string);
    inc.tx.respond(ok);
    (info, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_gets_what_it_missed_in_order_when_it_registers() {
    use rcslab::focus::group::MemberState;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    // carol is not registered: the focus's INVITE gets 480 and she stays a member, away.
    let group = alice
        .create_group("Offline", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    crate::eventually("bob in, carol away", || {
        state_of(&lab, &gid, "bob") == Some(MemberState::Connected)
            && state_of(&lab, &gid, "carol") == Some(MemberState::Away)
    })
    .await;
    alice.send(&group, "one").await;
    alice.send(&group, "two").await;
    for t in ["one", "two"] {
        assert_eq!(group_text(&mut bob).await.1, t);
    }
    bob.send(&group, "three").await;
    assert_eq!(
        group_text(&mut alice).await,
        ("sip:bob@ims.lab".to_string(), "three".to_string())
    );
    // Three messages in the history; the reports (bob's two to alice and hers to him) went
    // straight to their writers, whose legs are up.
    crate::eventually("the messages in the history", || {
        lab.conf.group(&gid).unwrap().next_seq == 4
    })
    .await;

    // carol registers: the third-party REGISTER brings her back, and the history follows.
    lab.trace.clear();
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(group_text(&mut carol).await);
    }
    let want: Vec<(String, String)> = [("alice", "one"), ("alice", "two"), ("bob", "three")]
        .iter()
        .map(|(f, t)| (format!("sip:{f}@ims.lab"), t.to_string()))
        .collect();
    assert_eq!(got, want, "in order, each once");
    // Her leg can bind and take the history before CONF, having sent its ACK, marks her
    // connected.
    crate::eventually("carol connected", || {
        state_of(&lab, &gid, "carol") == Some(MemberState::Connected)
    })
    .await;
    let conf_sip = || -> Vec<String> {
        of(&chat_flow(&lab, 0), "CONF")
            .into_iter()
            .filter(|l| l.contains(" SIP "))
            .collect()
    };
    // The third-party REGISTER can beat the REGISTER's 200 to the P-CSCF, which then answers
    // the first INVITE 480 (carol is not registered there yet): CONF tries again a second
    // later. Each such try is INVITE, 480 and its ACK.
    let retries = |l: &[String]| l.iter().filter(|x| *x == "S-CSCF -> CONF SIP 480").count();
    crate::eventually("CONF's SIP lines", || {
        let l = conf_sip();
        l.len() >= 5 + 3 * retries(&l)
    })
    .await;
    let f = chat_flow(&lab, 0);
    let conf_sip = conf_sip();
    let mut want = vec![
        "S-CSCF -> CONF SIP REGISTER",
        "CONF -> S-CSCF SIP 200",
        "CONF -> S-CSCF SIP INVITE",
        "S-CSCF -> CONF SIP 200",
        "CONF -> S-CSCF SIP ACK",
    ];
    for _ in 0..retries(&conf_sip) {
        want.extend([
            "CONF -> S-CSCF SIP INVITE",
            "S-CSCF -> CONF SIP 480",
            "CONF -> S-CSCF SIP ACK",
        ]);
    }
    assert!(retries(&conf_sip) <= 1, "{f:#?}");
    assert_eq!(
        sorted(&conf_sip.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(&want),
        "{f:#?}"
    );
    let carol_msrp: Vec<String> = of(&f, "UE carol")
        .into_iter()
        .filter(|l| l.contains(" MSRP "))
        .collect();
    assert_eq!(
        carol_msrp[..5],
        [
            "UE carol -> CONF MSRP SEND", // binds her leg
            "CONF -> UE carol MSRP 200",
            "CONF -> UE carol MSRP SEND", // what she missed: one, two, three
            "CONF -> UE carol MSRP SEND",
            "CONF -> UE carol MSRP SEND",
        ],
        "{f:#?}"
    );
    // Her reports go to whoever wrote each message: two to alice, one to bob.
    let mut reports = Vec::new();
    for _ in 0..2 {
        if let ChatEvent::Status { from, .. } = next(&mut alice).await {
            reports.push(from);
        }
    }
    assert_eq!(reports, ["sip:carol@ims.lab", "sip:carol@ims.lab"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_watches_the_roster_full_then_partial_and_one_leaves_with_bye() {
    use rcslab::conf::conference_info::{Departure, State, Status};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let group = alice
        .create_group("Roster", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    crate::eventually("both members in", || {
        ["bob", "carol"]
            .iter()
            .all(|u| state_of(&lab, &gid, u) == Some(rcslab::focus::group::MemberState::Connected))
    })
    .await;
    // alice's second device watches the roster (RFC 4575): the whole of it first.
    let mut w = roster_watcher(&lab, &group, &shut).await;
    let (full, sub_state) = notify(w.next_request(Duration::from_secs(5)).await.unwrap());
    assert!(sub_state.unwrap().starts_with("active"));
    assert_eq!(full.state, State::Full);
    assert_eq!(full.entity, group);
    assert_eq!(full.subject.as_deref(), Some("Roster"));
    let users: Vec<(String, Vec<String>, Option<Status>)> = full
        .users
        .iter()
        .map(|u| (u.entity.clone(), u.roles.clone(), u.status))
        .collect();
    assert_eq!(
        users,
        [
            ("sip:alice@ims.lab", "chairman", Status::Connected),
            ("sip:bob@ims.lab", "participant", Status::Connected),
            ("sip:carol@ims.lab", "participant", Status::Connected),
        ]
        .map(|(e, r, s)| (e.to_string(), vec![r.to_string()], Some(s)))
    );

    // bob leaves (BYE): a partial NOTIFY with him deleted, departed. The ladder starts once
    // the first NOTIFY's 200 is back at CONF.
    crate::eventually("the first NOTIFY's 200 back at CONF", || {
        chat_flow(&lab, 0).last().map(String::as_str) == Some("S-CSCF -> CONF SIP 200")
    })
    .await;
    lab.trace.clear();
    bob.close(&group);
    let (part, _) = notify(w.next_request(Duration::from_secs(5)).await.unwrap());
    assert_eq!(part.state, State::Partial);
    assert_eq!(part.version, full.version + 1);
    assert_eq!(part.users.len(), 1);
    assert_eq!(part.users[0].entity, "sip:bob@ims.lab");
    assert_eq!(part.users[0].state, State::Deleted);
    assert_eq!(part.users[0].departure, Some(Departure::Departed));
    let leave = [
        "UE bob -> P-CSCF SIP BYE",
        "P-CSCF -> S-CSCF SIP BYE",
        "S-CSCF -> CONF SIP BYE",
        "CONF -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE bob SIP 200",
        // The roster change, to the watcher (in parallel with the BYE's 200).
        "CONF -> S-CSCF SIP NOTIFY",
        "S-CSCF -> P-CSCF SIP NOTIFY",
        "P-CSCF -> UE alice SIP NOTIFY",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> CONF SIP 200",
    ];
    let sip_lines = || -> Vec<String> {
        chat_flow(&lab, 0)
            .into_iter()
            .filter(|l| l.contains(" SIP "))
            .collect()
    };
    crate::eventually("the partial NOTIFY's 200 back at CONF", || {
        sip_lines().len() == leave.len()
    })
    .await;
    let f = sip_lines();
    assert_eq!(
        sorted(&f.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(&leave),
        "{f:#?}"
    );
    let leave: Vec<String> = leave.iter().map(|s| s.to_string()).collect();
    for who in ["UE bob", "UE alice", "CONF"] {
        assert_eq!(of(&f, who), of(&leave, who), "{f:#?}");
    }
    // What alice says now reaches carol only.
    alice.send(&group, "bob left").await;
    assert_eq!(group_text(&mut carol).await.1, "bob left");
    assert!(
        !matches!(
            bob.next_event(Duration::from_millis(500)).await,
            Some(ChatEvent::GroupMessage { .. })
        ),
        "bob left: nothing more for him"
    );
    assert!(!lab.conf.group(&gid).unwrap().is_member("sip:bob@ims.lab"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_second_device_coming_and_going_changes_nothing_in_the_roster() {
    use rcslab::conf::conference_info::{Departure, State};
    use rcslab::focus::group::MemberState;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let mut carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let group = alice
        .create_group("Devices", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    crate::eventually("both members in", || {
        connected(&lab, &gid, &["bob", "carol"])
    })
    .await;
    let mut w = roster_watcher(&lab, &group, &shut).await;
    let (full, _) = notify(w.next_request(Duration::from_secs(5)).await.unwrap());
    assert_eq!(full.state, State::Full);

    // bob's second device (`group send` from another terminal while `listen` runs) joins
    // with a message and goes away again at once, maybe before the focus's 200 is back (its
    // BYE, Reason 480, goes when it is): bob was connected all along.
    let bob2 = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    bob2.send(&group, "from my tablet").await;
    assert_eq!(
        group_text(&mut carol).await,
        ("sip:bob@ims.lab".to_string(), "from my tablet".to_string())
    );
    lab.trace.clear();
    assert!(bob2.deregister().await);
    crate::eventually("the tablet's BYE answered by CONF", || {
        let f = chat_flow(&lab, 0);
        f.iter()
            .position(|l| l == "S-CSCF -> CONF SIP BYE")
            .is_some_and(|i| f[i..].iter().any(|l| l == "CONF -> S-CSCF SIP 200"))
    })
    .await;
    // What CONF does after the 200 (the roster, were it changed) is given time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_of(&lab, &gid, "bob"), Some(MemberState::Connected));

    // The next NOTIFY the watcher gets is bob leaving from his phone, one version on.
    bob.close(&group);
    let (part, _) = notify(w.next_request(Duration::from_secs(5)).await.unwrap());
    assert_eq!(part.state, State::Partial);
    assert_eq!(part.version, full.version + 1, "no NOTIFY for the tablet");
    assert_eq!(part.users.len(), 1);
    assert_eq!(part.users[0].entity, "sip:bob@ims.lab");
    assert_eq!(part.users[0].departure, Some(Departure::Departed));
}

/// alice creates the group from one device and goes away (BYE with Reason 480, then its
/// contact de-registered) while she stays registered on another: CONF, seeing no
/// de-registration of her, INVITEs her back a moment later and her other device gets what is
/// said. carol, on one device only, goes away for good: no INVITE follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gone_from_one_device_is_invited_back_on_the_other() {
    use rcslab::focus::group::MemberState;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut phone = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let group = alice
        .create_group("Two devices", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    crate::eventually("all in", || {
        connected(&lab, &gid, &["alice", "bob", "carol"])
    })
    .await;
    third_party_registers_done(&lab, 4).await;

    lab.trace.clear();
    assert!(alice.deregister().await);
    crate::eventually("alice away", || {
        state_of(&lab, &gid, "alice") == Some(MemberState::Away)
    })
    .await;
    crate::eventually("alice back on her phone", || {
        state_of(&lab, &gid, "alice") == Some(MemberState::Connected)
    })
    .await;
    let f = chat_flow(&lab, 0);
    let conf: Vec<String> = of(&f, "CONF")
        .into_iter()
        .filter(|l| l.contains(" SIP ") && !l.contains("NOTIFY") && !l.contains("SIP 200"))
        .collect();
    assert_eq!(
        conf,
        [
            "S-CSCF -> CONF SIP BYE", // Reason: SIP;cause=480
            "CONF -> S-CSCF SIP INVITE",
            "CONF -> S-CSCF SIP ACK",
        ],
        "no third-party REGISTER: alice is still registered; {f:#?}"
    );
    assert!(
        f.contains(&"P-CSCF -> UE alice SIP INVITE".to_string()),
        "{f:#?}"
    );
    bob.send(&group, "still there?").await;
    assert_eq!(
        group_text(&mut phone).await,
        ("sip:bob@ims.lab".to_string(), "still there?".to_string())
    );

    lab.trace.clear();
    assert!(carol.deregister().await);
    crate::eventually("carol away", || {
        state_of(&lab, &gid, "carol") == Some(MemberState::Away)
    })
    .await;
    tokio::time::sleep(rcslab::focus::REJOIN_AFTER + Duration::from_millis(500)).await;
    let f = chat_flow(&lab, 0);
    assert!(
        !f.contains(&"CONF -> S-CSCF SIP INVITE".to_string()),
        "carol de-registered: not invited back; {f:#?}"
    );
    assert_eq!(state_of(&lab, &gid, "carol"), Some(MemberState::Away));
}
