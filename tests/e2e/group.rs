//! Group chat through the conference focus CONF (OMA SIMPLE IM, GSMA RCC.07 §3.4, RFC 5366,
//! RFC 4579, RFC 4575).
//!
//! The focus INVITEs the members in parallel, so their legs interleave on the wire: each test
//! checks every party's own lines in their exact order, and the whole ladder as a multiset
//! (every message there, none more).

use std::time::Duration;

use rcslab::cpim::ImdnStatus;
use rcslab::sip::{Method, Request, Response, SipMessage};
use rcslab::trace::Direction;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::Lab;
use tokio::sync::watch;

use crate::chat::{chat_flow, chat_ue};
use crate::lab_with;

/// The next event that is not a session change, within 5 s.
async fn next(ue: &mut ChatUe) -> ChatEvent {
    loop {
        match ue
            .next_event(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
        {
            ChatEvent::Session { .. } => continue,
            ev => return ev,
        }
    }
}

/// Waits until the S-CSCF's third-party REGISTERs (to T-IM and CONF, their iFC) for `n`
/// registrations are answered, so that none lands in a ladder that follows.
async fn third_party_registers_done(lab: &Lab, n: usize) {
    crate::eventually("the third-party REGISTERs answered", || {
        let f = crate::flow(lab);
        ["T-IM -> S-CSCF SIP 200", "CONF -> S-CSCF SIP 200"]
            .iter()
            .all(|l| f.iter().filter(|x| x == l).count() >= n)
    })
    .await;
}

/// The lines of `ladder` that `who` sends or receives, in order.
fn of(ladder: &[String], who: &str) -> Vec<String> {
    ladder
        .iter()
        .filter(|l| {
            let (from, rest) = l.split_once(" -> ").unwrap_or(("", l));
            from == who || rest.starts_with(&format!("{who} "))
        })
        .cloned()
        .collect()
}

/// `lines` sorted (a multiset to compare).
fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every SIP message on the wire, parsed, each once (a message is recorded at each hop: the
/// first copy is kept, by Call-ID, CSeq and status).
fn sip(lab: &Lab) -> Vec<SipMessage> {
    let mut seen = std::collections::HashSet::new();
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == Direction::Sent)
        .filter_map(|e| SipMessage::parse(&e.bytes).ok())
        .filter(|m| {
            let (h, status) = match m {
                SipMessage::Request(r) => (&r.headers, 0),
                SipMessage::Response(r) => (&r.headers, r.status),
            };
            seen.insert((
                h.get("Call-ID").unwrap_or("").to_string(),
                h.get("CSeq").unwrap_or("").to_string(),
                status,
            ))
        })
        .collect()
}

fn requests(m: Vec<SipMessage>, method: Method) -> Vec<Request> {
    m.into_iter()
        .filter_map(|m| match m {
            SipMessage::Request(r) if r.method == method => Some(r),
            _ => None,
        })
        .collect()
}

fn responses(m: Vec<SipMessage>, status: u16, method: &str) -> Vec<Response> {
    m.into_iter()
        .filter_map(|m| match m {
            SipMessage::Response(r)
                if r.status == status
                    && r.headers.get("CSeq").is_some_and(|c| c.ends_with(method)) =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect()
}

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

/// A member's own lines when the focus brings it in.
fn member_joins(who: &str) -> Vec<String> {
    [
        "P-CSCF -> UE {} SIP INVITE",
        "UE {} -> P-CSCF SIP 200",
        "P-CSCF -> UE {} SIP ACK",
        "UE {} -> CONF MSRP SEND",
        "CONF -> UE {} MSRP 200",
    ]
    .iter()
    .map(|l| l.replace("{}", who))
    .collect()
}

/// alice's message to the group, and each member's IMDN "delivered" back to her.
const MESSAGE: &[&str] = &[
    "UE alice -> CONF MSRP SEND",
    "CONF -> UE alice MSRP 200", // stored (sequence number, sled, flushed)
    "CONF -> UE bob MSRP SEND",
    "CONF -> UE carol MSRP SEND",
    "UE bob -> CONF MSRP 200",
    "UE carol -> CONF MSRP 200",
    "UE bob -> CONF MSRP SEND", // IMDN delivered, CPIM To alice
    "UE carol -> CONF MSRP SEND",
    "CONF -> UE bob MSRP 200",
    "CONF -> UE carol MSRP 200",
    "CONF -> UE alice MSRP SEND", // each report to the member it is for
    "CONF -> UE alice MSRP SEND",
    "UE alice -> CONF MSRP 200",
    "UE alice -> CONF MSRP 200",
];

/// A member's own lines for a message and its report.
fn member_reports(who: &str) -> Vec<String> {
    [
        "CONF -> UE {} MSRP SEND",
        "UE {} -> CONF MSRP 200",
        "UE {} -> CONF MSRP SEND",
        "CONF -> UE {} MSRP 200",
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
    // History: sequence number 1, alice's identity in CPIM From.
    assert_eq!(lab.conf.group(&gid).unwrap().next_seq, 2);
}

/// The group of `lab`'s conference URI `group` (`sip:chat-GID@ims.lab`).
fn gid_of(group: &str) -> String {
    group
        .strip_prefix("sip:chat-")
        .and_then(|g| g.strip_suffix("@ims.lab"))
        .expect("sip:chat-GID@ims.lab")
        .to_string()
}

fn state_of(lab: &Lab, gid: &str, who: &str) -> Option<rcslab::focus::group::MemberState> {
    lab.conf
        .group(gid)
        .and_then(|g| g.member(&format!("sip:{who}@ims.lab")).map(|m| m.state))
}

/// The next group message `ue` gets: (from, text).
async fn group_text(ue: &mut ChatUe) -> (String, String) {
    loop {
        match next(ue).await {
            ChatEvent::GroupMessage { from, text, .. } => return (from, text),
            ChatEvent::Status { .. } => continue,
            ev => panic!("expected a group message, got {ev:?}"),
        }
    }
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
    assert_eq!(
        lab.conf.group(&gid).unwrap().next_seq,
        4,
        "three in the history"
    );

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
    assert_eq!(state_of(&lab, &gid, "carol"), Some(MemberState::Connected));
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
    use rcslab::conf::conference_info::{ConferenceInfo, Departure, InfoLimits, State, Status};
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
    let mut w = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    w.register(600).await.unwrap();
    third_party_registers_done(&lab, 4).await;
    let (resp, _) = w
        .subscribe_event(&group, "conference", "application/conference-info+xml", 600)
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let notify = |inc: rcslab::sip::IncomingRequest| {
        let ok = inc.request.response(200, None);
        let info = ConferenceInfo::parse(&inc.request.body, &InfoLimits::default()).unwrap();
        let state = inc
            .request
            .headers
            .get("Subscription-State")
            .map(str::to_string);
        inc.tx.respond(ok);
        (info, state)
    };
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

/// A lab with alice, bob, carol, dave and erin (`USER-secret`), and `extra` TOML.
async fn five_users(dir: &std::path::Path, extra: &str) -> Lab {
    let mut toml = String::new();
    for u in ["alice", "bob", "carol", "dave", "erin"] {
        toml.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-secret\"\n"
        ));
    }
    toml.push_str(extra);
    lab_with(dir, &toml).await
}

fn connected(lab: &Lab, gid: &str, who: &[&str]) -> bool {
    who.iter()
        .all(|u| state_of(lab, gid, u) == Some(rcslab::focus::group::MemberState::Connected))
}

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
    let e = carol.add_to_group(&group, &["erin"]).await.unwrap_err();
    assert!(e.starts_with("403"), "{e}");
    let e = bob.remove_from_group(&group, "dave").await.unwrap_err();
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
        .unwrap_err();
    assert!(e.starts_with("403"), "{e}");
    assert!(e.contains("at most 3 members"), "{e}");
    assert_eq!(lab.conf.groups(), 0);
    let group = alice.create_group("Fits", &["bob", "carol"]).await.unwrap();
    let gid = gid_of(&group);
    crate::eventually("both in", || connected(&lab, &gid, &["bob", "carol"])).await;
    let e = alice.add_to_group(&group, &["dave"]).await.unwrap_err();
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
