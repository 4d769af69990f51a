//! `rcslab ue --user U group …`: group chats through the lab's conference focus CONF.
//!
//! The command forms are a contract scripts rely on:
//!
//! ```text
//! rcslab ue --user alice group create "Friday lunch" bob carol   # last line: the group id
//! rcslab ue --user alice group send GROUP TEXT
//! rcslab ue --user alice group add GROUP dave [erin …]
//! rcslab ue --user alice group remove GROUP bob                 # the chairman only
//! rcslab ue --user alice group leave GROUP
//! rcslab ue --user alice group list
//! ```
//!
//! GROUP is the id `create` printed (the `GID` of the conference URI `sip:chat-GID@DOMAIN`),
//! or the URI itself. Like a phone, the client keeps the groups it knows in a small file (one
//! id per line, in the temp directory, per user and P-CSCF); `list` asks the focus about each
//! (a SUBSCRIBE to its conference event, RFC 4575) and prints what it says.

use std::time::Duration;

use clap::Subcommand;

use rcslab::conf::conference_info::{self, ConferenceInfo, InfoLimits};
use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::Ue;

use super::{CliError, Result};

#[derive(Subcommand)]
pub enum GroupCmd {
    /// Create a group chat with MEMBERS (you are its chairman): print `created`, then the
    /// group id alone on the last line.
    Create {
        /// Its subject.
        subject: String,
        /// Members (`bob`, or `sip:bob@ims.lab`).
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Send TEXT to the group: print `sent` once the focus stored it, then each member's
    /// report (`delivered: sip:bob@…`) for `--timeout` seconds.
    Send {
        /// The group id (or its conference URI).
        group: String,
        /// The text.
        text: String,
        /// Seconds to wait for reports.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Add MEMBERS to the group (REFER; any member may).
    Add {
        /// The group id (or its conference URI).
        group: String,
        /// Who (`dave`, or `sip:dave@ims.lab`).
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove MEMBER from the group (REFER method=BYE; the chairman only).
    Remove {
        /// The group id (or its conference URI).
        group: String,
        /// Who.
        member: String,
    },
    /// Leave the group for good (join its session, then BYE).
    Leave {
        /// The group id (or its conference URI).
        group: String,
    },
    /// The groups you are in: `GROUP  SUBJECT  (N members)` per line, as the focus says.
    List,
}

/// The conference URI of GROUP (an id, or already a URI).
pub fn group_uri(group: &str, domain: &str) -> String {
    if group.contains(':') {
        group.to_string()
    } else {
        format!("sip:chat-{group}@{domain}")
    }
}

/// The id of a conference URI (`sip:chat-GID@DOMAIN` -> `GID`); the URI itself otherwise.
pub fn group_id(uri: &str) -> String {
    uri.strip_prefix("sip:chat-")
        .and_then(|r| r.split('@').next())
        .map(str::to_string)
        .unwrap_or_else(|| uri.to_string())
}

/// The file of groups this user knows (per user and P-CSCF).
fn known_file(impu: &str, pcscf: std::net::SocketAddr) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "rcslab-ue-groups-{}-{}.txt",
        impu.replace([':', '@', '/'], "_"),
        pcscf.to_string().replace([':', '[', ']'], "_")
    ))
}

/// The groups in the file: each id with the group's Contribution-ID when we learned it
/// (a line is `GID` or `GID CONTRIBUTION-ID`).
fn known(impu: &str, pcscf: std::net::SocketAddr) -> Vec<(String, Option<String>)> {
    std::fs::read_to_string(known_file(impu, pcscf))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next().map(str::to_string)))
        })
        .collect()
}

/// The ids of the groups in the file.
pub fn known_ids(impu: &str, pcscf: std::net::SocketAddr) -> Vec<String> {
    known(impu, pcscf).into_iter().map(|(g, _)| g).collect()
}

fn set_known(impu: &str, pcscf: std::net::SocketAddr, groups: &[(String, Option<String>)]) {
    let mut text = String::new();
    for (gid, cid) in groups {
        text.push_str(gid);
        if let Some(c) = cid {
            text.push(' ');
            text.push_str(c);
        }
        text.push('\n');
    }
    let _ = std::fs::write(known_file(impu, pcscf), text);
}

/// Remembers group `gid` for this user, with its Contribution-ID when known (`listen` does
/// it for groups it is brought into): a later command's sessions with the group carry it.
pub fn remember(impu: &str, pcscf: std::net::SocketAddr, gid: &str, cid: Option<&str>) {
    let mut groups = known(impu, pcscf);
    match groups.iter_mut().find(|(g, _)| g == gid) {
        Some((_, c)) if cid.is_none() || c.as_deref() == cid => return,
        Some((_, c)) => *c = cid.map(str::to_string),
        None => groups.push((gid.to_string(), cid.map(str::to_string))),
    }
    set_known(impu, pcscf, &groups);
}

fn forget(impu: &str, pcscf: std::net::SocketAddr, gid: &str) {
    let groups: Vec<(String, Option<String>)> = known(impu, pcscf)
        .into_iter()
        .filter(|(g, _)| g != gid)
        .collect();
    set_known(impu, pcscf, &groups);
}

/// Runs one group command with the registered `ue`, then de-registers.
pub async fn run(ue: Ue, trace: rcslab::trace::Trace, domain: &str, cmd: GroupCmd) -> Result<()> {
    let pcscf = ue.cfg.pcscf;
    let impu = ue.cfg.impu.clone();
    if let GroupCmd::List = cmd {
        return list(ue, domain).await;
    }
    let opts = ChatOptions {
        report_acks: true,
        ..ChatOptions::default()
    };
    let mut chat = ChatUe::start(ue, trace, opts);
    for (gid, cid) in known(&impu, pcscf) {
        if let Some(c) = cid {
            chat.know_group(&group_uri(&gid, domain), &c);
        }
    }
    let outcome = async {
        match cmd {
            GroupCmd::Create { subject, members } => {
                let m: Vec<&str> = members.iter().map(String::as_str).collect();
                let uri = chat
                    .create_group(&subject, &m)
                    .await
                    .map_err(|e| CliError::Group(format!("create: {e}")))?;
                let gid = group_id(&uri);
                let cid = chat.group_contribution(&uri).await;
                remember(&impu, pcscf, &gid, cid.as_deref());
                println!("created {uri}: {subject} ({})", members.join(", "));
                println!("{gid}");
                Ok(())
            }
            GroupCmd::Send {
                group,
                text,
                timeout,
            } => send(&mut chat, &group_uri(&group, domain), &text, timeout).await,
            GroupCmd::Add { group, members } => {
                let m: Vec<&str> = members.iter().map(String::as_str).collect();
                chat.add_to_group(&group_uri(&group, domain), &m)
                    .await
                    .map_err(|e| CliError::Group(format!("add: {e}")))?;
                println!("added: {}", members.join(", "));
                Ok(())
            }
            GroupCmd::Remove { group, member } => {
                chat.remove_from_group(&group_uri(&group, domain), &member)
                    .await
                    .map_err(|e| CliError::Group(format!("remove: {e}")))?;
                println!("removed: {member}");
                Ok(())
            }
            GroupCmd::Leave { group } => {
                let uri = group_uri(&group, domain);
                chat.join_group(&uri)
                    .await
                    .map_err(|e| CliError::Group(format!("leave: {e}")))?;
                chat.close(&uri);
                // The BYE's answer, bounded.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while let Some(ev) = chat
                    .next_event(deadline.saturating_duration_since(tokio::time::Instant::now()))
                    .await
                {
                    if matches!(ev, ChatEvent::Session { .. }) {
                        break;
                    }
                }
                forget(&impu, pcscf, &group_id(&uri));
                println!("left {}", group_id(&uri));
                Ok(())
            }
            GroupCmd::List => Ok(()),
        }
    }
    .await;
    // Leave no contact registered behind us (TS 24.229 §5.1.1.6).
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await,
        Ok(true)
    ) {
        eprintln!("rcslab ue: de-registration got no 200; the contact lapses by itself");
    }
    outcome
}

/// `group send`: the message goes in the INVITE that opens our session with the group (the
/// focus stores it before its 200); then the members' reports.
async fn send(chat: &mut ChatUe, uri: &str, text: &str, timeout: u64) -> Result<()> {
    let id = chat.send(uri, text).await;
    let acked = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match chat
            .next_event(acked.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            Some(ChatEvent::Acked {
                message_id,
                report: None,
            }) if message_id == id => break,
            Some(ChatEvent::SendFailed { message_id, reason }) if message_id == id => {
                return Err(CliError::Group(format!("send: {reason}")));
            }
            Some(ChatEvent::Session {
                status:
                    rcslab::ue::chat::SessionStatus::Failed | rcslab::ue::chat::SessionStatus::Declined,
                reason,
                ..
            }) => return Err(CliError::Group(format!("send: {reason}"))),
            Some(_) => continue,
            None => return Err(CliError::Group("send: no answer from the group".into())),
        }
    }
    println!("sent");
    let end = tokio::time::Instant::now() + Duration::from_secs(timeout);
    while let Some(ev) = chat
        .next_event(end.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if let ChatEvent::Status {
            message_id,
            status,
            from,
            ..
        } = ev
        {
            if message_id == id {
                let what = match status {
                    ImdnStatus::Delivered => "delivered",
                    ImdnStatus::Displayed => "displayed",
                    ImdnStatus::Failed => "failed",
                };
                println!("{what}: {from}");
            }
        }
    }
    Ok(())
}

/// `group list`: each known group as the focus describes it (its conference event's first
/// NOTIFY); groups we are no longer in are forgotten.
async fn list(mut ue: Ue, domain: &str) -> Result<()> {
    let (pcscf, impu) = (ue.cfg.pcscf, ue.cfg.impu.clone());
    let mut kept = Vec::new();
    for (gid, cid) in known(&impu, pcscf) {
        let uri = group_uri(&gid, domain);
        let (resp, _) = ue
            .subscribe_event(
                &uri,
                conference_info::EVENT,
                conference_info::CONTENT_TYPE,
                0,
            )
            .await;
        if resp.status == 403 || resp.status == 404 {
            continue;
        }
        kept.push((gid.clone(), cid));
        if resp.status != 200 {
            println!("{gid}  ({} {})", resp.status, resp.reason);
            continue;
        }
        let mut info = None;
        while let Some(inc) = ue.next_request(Duration::from_secs(5)).await {
            let ok = inc.request.response(200, None);
            let is_conf = inc
                .request
                .headers
                .get("Event")
                .is_some_and(|e| e.trim().starts_with(conference_info::EVENT));
            let parsed = ConferenceInfo::parse(&inc.request.body, &InfoLimits::default()).ok();
            inc.tx.respond(ok);
            if is_conf {
                info = parsed;
                break;
            }
        }
        match info {
            Some(i) => println!(
                "{gid}  {}  ({} members)",
                i.subject.unwrap_or_default(),
                i.users.len()
            ),
            None => println!("{gid}  (no roster from the focus)"),
        }
    }
    set_known(&impu, pcscf, &kept);
    let _ = tokio::time::timeout(Duration::from_secs(5), ue.register(0)).await;
    Ok(())
}

/// What `listen` prints for a roster NOTIFY of group `gid` (RFC 4575): the whole roster as
/// `GID: members: URI (chairman), URI, URI (away)…`, a change as one `GID: URI joined` line
/// per user (`invited`, `joined`, `away`, `left`, `removed`, `declined`).
pub fn roster_lines(gid: &str, info: &ConferenceInfo) -> Vec<String> {
    use conference_info::{Departure, State, Status};
    let word = |u: &conference_info::User| match (u.state, u.status, u.departure) {
        (State::Deleted, _, Some(Departure::Booted)) => "removed",
        (State::Deleted, _, Some(Departure::Failed | Departure::Busy)) => "declined",
        (State::Deleted, _, _) => "left",
        (_, Some(Status::Connected), _) => "joined",
        (_, Some(Status::Pending | Status::Alerting | Status::DialingOut), _) => "invited",
        (_, _, _) => "away",
    };
    if info.state == State::Full {
        let members: Vec<String> = info
            .users
            .iter()
            .filter(|u| u.state != State::Deleted)
            .map(|u| {
                let mut notes = Vec::new();
                if u.roles.iter().any(|r| r == "chairman") {
                    notes.push("chairman");
                }
                match word(u) {
                    "joined" => {}
                    w => notes.push(w),
                }
                if notes.is_empty() {
                    u.entity.clone()
                } else {
                    format!("{} ({})", u.entity, notes.join(", "))
                }
            })
            .collect();
        return vec![format!("{gid}: members: {}", members.join(", "))];
    }
    info.users
        .iter()
        .map(|u| format!("{gid}: {} {}", u.entity, word(u)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conference_info::{Departure, State, Status, User};

    fn info(state: State, users: Vec<User>) -> ConferenceInfo {
        ConferenceInfo {
            entity: "sip:chat-g1@ims.lab".into(),
            state,
            version: 1,
            subject: None,
            max_users: None,
            users,
        }
    }

    #[test]
    fn a_full_roster_is_one_line_and_each_change_one_line_per_user() {
        let mut alice = User::new("sip:alice@ims.lab", Status::Connected);
        alice.roles.push("chairman".into());
        let carol = User::new("sip:carol@ims.lab", Status::Disconnected);
        let bob = User::new("sip:bob@ims.lab", Status::Pending);
        assert_eq!(
            roster_lines("g1", &info(State::Full, vec![alice.clone(), bob, carol])),
            vec!["g1: members: sip:alice@ims.lab (chairman), sip:bob@ims.lab (invited), sip:carol@ims.lab (away)"]
        );
        let mut gone = User::new("sip:bob@ims.lab", Status::Disconnected);
        gone.state = State::Deleted;
        gone.departure = Some(Departure::Booted);
        let mut left = User::new("sip:carol@ims.lab", Status::Disconnected);
        left.state = State::Deleted;
        left.departure = Some(Departure::Departed);
        assert_eq!(
            roster_lines("g1", &info(State::Partial, vec![alice, gone, left])),
            vec![
                "g1: sip:alice@ims.lab joined",
                "g1: sip:bob@ims.lab removed",
                "g1: sip:carol@ims.lab left",
            ]
        );
    }
}
