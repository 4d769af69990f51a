//! Group chat through the conference focus CONF (OMA SIMPLE IM, GSMA RCC.07 §3.4, RFC 5366,
//! RFC 4579, RFC 4575).
//!
//! The focus INVITEs the members in parallel, so their legs interleave on the wire: each test
//! checks every party's own lines in their exact order, and the whole ladder as a multiset
//! (every message there, none more).

use std::time::Duration;

use rcslab::sip::{Method, Request, Response, SipMessage};
use rcslab::trace::Direction;
use rcslab::ue::chat::{ChatEvent, ChatUe};
use rcslab::Lab;

use crate::lab_with;

mod cli;
mod crash;
mod create;
mod idle;
mod members;
mod refer;
mod wire;

/// The next event that is not a session change, within 5 s.
pub(super) async fn next(ue: &mut ChatUe) -> ChatEvent {
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
pub(super) async fn third_party_registers_done(lab: &Lab, n: usize) {
    crate::eventually("the third-party REGISTERs answered", || {
        let f = crate::flow(lab);
        [
            "T-IM -> S-CSCF SIP 200",
            "CONF -> S-CSCF SIP 200",
            "IP-SM-GW -> S-CSCF SIP 200",
        ]
        .iter()
        .all(|l| f.iter().filter(|x| x == l).count() >= n)
    })
    .await;
}

/// The lines of `ladder` that `who` sends or receives, in order.
pub(super) fn of(ladder: &[String], who: &str) -> Vec<String> {
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
pub(super) fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every SIP message on the wire, parsed, each once (a message is recorded at each hop: the
/// first copy is kept, by Call-ID, CSeq and status).
pub(super) fn sip(lab: &Lab) -> Vec<SipMessage> {
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

pub(super) fn requests(m: Vec<SipMessage>, method: Method) -> Vec<Request> {
    m.into_iter()
        .filter_map(|m| match m {
            SipMessage::Request(r) if r.method == method => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn responses(m: Vec<SipMessage>, status: u16, method: &str) -> Vec<Response> {
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

/// The group of `lab`'s conference URI `group` (`sip:chat-GID@ims.lab`).
pub(super) fn gid_of(group: &str) -> String {
    group
        .strip_prefix("sip:chat-")
        .and_then(|g| g.strip_suffix("@ims.lab"))
        .expect("sip:chat-GID@ims.lab")
        .to_string()
}

pub(super) fn state_of(
    lab: &Lab,
    gid: &str,
    who: &str,
) -> Option<rcslab::focus::group::MemberState> {
    lab.conf
        .group(gid)
        .and_then(|g| g.member(&format!("sip:{who}@ims.lab")).map(|m| m.state))
}

/// The next group message `ue` gets: (from, text).
pub(super) async fn group_text(ue: &mut ChatUe) -> (String, String) {
    loop {
        match next(ue).await {
            ChatEvent::GroupMessage { from, text, .. } => return (from, text),
            ChatEvent::Status { .. } => continue,
            ev => panic!("expected a group message, got {ev:?}"),
        }
    }
}

/// A lab with alice, bob, carol, dave and erin (`USER-secret`), and `extra` TOML.
pub(super) async fn five_users(dir: &std::path::Path, extra: &str) -> Lab {
    let mut toml = String::new();
    for u in ["alice", "bob", "carol", "dave", "erin"] {
        toml.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-secret\"\n"
        ));
    }
    toml.push_str(extra);
    lab_with(dir, &toml).await
}

pub(super) fn connected(lab: &Lab, gid: &str, who: &[&str]) -> bool {
    who.iter()
        .all(|u| state_of(lab, gid, u) == Some(rcslab::focus::group::MemberState::Connected))
}

/// A member's own lines when the focus brings it in.
pub(super) fn member_joins(who: &str) -> Vec<String> {
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
