//! One group chat as the focus keeps it, without sockets: who is in it and in which state,
//! its chairman, subject and Contribution-ID, the next history sequence number, and the
//! The roster it notifies (RFC 4575) is made here: the full document for a new subscription,
//! a partial one with just the users that changed (the version is the subscription's).

use serde::{Deserialize, Serialize};

use crate::conf::conference_info::{ConferenceInfo, Departure, State, Status, User};

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Invited; our INVITE is out or it was not answered yet.
    Invited,
    /// In the session (its INVITE dialog is up).
    Connected,
    /// Still a member, but with no session now (offline, or the session ended): what is sent
    /// to the group waits for it in the history.
    Away,
    /// Still a member, its session ended by the focus because the group carried nothing for
    /// a while ([`super::idle`]): it is back when it writes or the group restarts, not at its
    /// next registration (a refresh would undo the teardown every time).
    Idle,
    /// Left (BYE) or was removed: no longer a member.
    Departed,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its public identity (`sip:bob@ims.lab`).
    pub uri: String,
    /// The state.
    pub state: MemberState,
    /// The chairman (RFC 4575 role; the creator).
    pub chairman: bool,
    /// Why it departed.
    pub departure: Option<String>,
    /// The last history sequence number it got (its 200 came back).
    pub delivered_seq: u64,
}

/// A group chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its identifier (the `GID` of `sip:chat-GID@DOMAIN`).
    pub id: String,
    /// Its conference URI, `sip:chat-GID@DOMAIN`.
    pub uri: String,
    /// The Subject of the creating INVITE.
    pub subject: Option<String>,
    /// The creator's Contribution-ID (RCC.07: the same for every session of the group).
    pub contribution_id: String,
    /// Members in the order they joined, the creator first.
    pub members: Vec<Member>,
    /// The sequence number the next message gets (history keys).
    pub next_seq: u64,
}

/// Why a change to a group was refused (the SIP status a focus answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// More members than the group may have.
    #[error("the group would have {count} members; at most {limit}")]
    TooMany {
        /// How many it would have.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The requester is not a member.
    #[error("not a member of this group")]
    NotMember,
    /// Only the chairman may do this.
    #[error("only the chairman may remove members")]
    NotChairman,
}

impl GroupError {
    /// The SIP status (403 for both, RFC 5366 §5 for a list that is too long).
    pub fn status(&self) -> u16 {
        403
    }
}

impl Group {
    /// A new group of `creator` (chairman, connected) and the invited `others`, at most
    /// `max_members` in all.
    pub fn new(
        id: &str,
        uri: &str,
        creator: &str,
        others: &[String],
        subject: Option<String>,
        contribution_id: &str,
        max_members: usize,
    ) -> Result<Group, GroupError> {
        let mut g = Group {
            id: id.to_string(),
            uri: uri.to_string(),
            subject,
            contribution_id: contribution_id.to_string(),
            members: vec![Member {
                uri: creator.to_string(),
                state: MemberState::Connected,
                chairman: true,
                departure: None,
                delivered_seq: 0,
            }],
            next_seq: 1,
        };
        g.add(others, max_members)?;
        Ok(g)
    }

    /// The member `uri`, departed or not.
    pub fn member(&self, uri: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.uri.eq_ignore_ascii_case(uri))
    }

    fn member_mut(&mut self, uri: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.uri.eq_ignore_ascii_case(uri))
    }

    /// True when `uri` is a member now (not departed).
    pub fn is_member(&self, uri: &str) -> bool {
        self.member(uri)
            .is_some_and(|m| m.state != MemberState::Departed)
    }

    /// Members now (not departed).
    pub fn current(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.state != MemberState::Departed)
    }

    /// Invites `uris` (new ones, or departed ones back): the URIs that are new invitations.
    /// Refused whole when the group would exceed `max_members`.
    pub fn add(&mut self, uris: &[String], max_members: usize) -> Result<Vec<String>, GroupError> {
        let mut fresh: Vec<String> = Vec::new();
        for u in uris {
            if !self.is_member(u) && !fresh.iter().any(|f| f.eq_ignore_ascii_case(u)) {
                fresh.push(u.clone());
            }
        }
        let count = self.current().count() + fresh.len();
        if count > max_members {
            return Err(GroupError::TooMany {
                count,
                limit: max_members,
            });
        }
        for u in &fresh {
            match self.member_mut(u) {
                Some(m) => {
                    m.state = MemberState::Invited;
                    m.departure = None;
                }
                None => self.members.push(Member {
                    uri: u.clone(),
                    state: MemberState::Invited,
                    chairman: false,
                    departure: None,
                    delivered_seq: self.next_seq - 1,
                }),
            }
        }
        Ok(fresh)
    }

    /// Sets `uri`'s state; true when it changed.
    pub fn set_state(&mut self, uri: &str, state: MemberState, departure: Option<&str>) -> bool {
        let Some(m) = self.member_mut(uri) else {
            return false;
        };
        if m.state == state {
            return false;
        }
        m.state = state;
        m.departure = departure.map(str::to_string);
        true
    }

    /// Takes the next history sequence number.
    pub fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Records that `uri` got message `seq`.
    pub fn delivered(&mut self, uri: &str, seq: u64) {
        if let Some(m) = self.member_mut(uri) {
            m.delivered_seq = m.delivered_seq.max(seq);
        }
    }

    fn user(m: &Member) -> User {
        let (state, status, departure) = match m.state {
            MemberState::Invited => (State::Full, Status::Pending, None),
            MemberState::Connected => (State::Full, Status::Connected, None),
            MemberState::Away | MemberState::Idle => (State::Full, Status::Disconnected, None),
            MemberState::Departed => (
                State::Deleted,
                Status::Disconnected,
                Some(match m.departure.as_deref() {
                    Some("booted") => Departure::Booted,
                    Some("failed") => Departure::Failed,
                    _ => Departure::Departed,
                }),
            ),
        };
        let mut u = User::new(&m.uri, status);
        u.state = state;
        u.departure = departure;
        u.roles = if m.chairman {
            vec!["chairman".into()]
        } else {
            vec!["participant".into()]
        };
        u
    }

    /// A conference-info document with `version` (RFC 4575 §4.1: the subscription's, one more
    /// per NOTIFY): the whole roster (`changed` None; departed members are left out), or only
    /// the users in `changed` (a partial notification).
    pub fn conference_info(
        &self,
        changed: Option<&[String]>,
        max_members: usize,
        version: u32,
    ) -> String {
        let users = match changed {
            None => self.current().map(Self::user).collect(),
            Some(uris) => self
                .members
                .iter()
                .filter(|m| uris.iter().any(|u| u.eq_ignore_ascii_case(&m.uri)))
                .map(Self::user)
                .collect(),
        };
        ConferenceInfo {
            entity: self.uri.clone(),
            state: if changed.is_some() {
                State::Partial
            } else {
                State::Full
            },
            version,
            subject: self.subject.clone(),
            max_users: Some(max_members as u32),
            users,
        }
        .to_xml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::conference_info::InfoLimits;

    fn g() -> Group {
        Group::new(
            "g1",
            "sip:chat-g1@ims.lab",
            "sip:alice@ims.lab",
            &["sip:bob@ims.lab".into(), "sip:carol@ims.lab".into()],
            Some("Friday lunch".into()),
            "c1",
            3,
        )
        .unwrap()
    }

    #[test]
    fn a_group_over_its_size_is_refused_with_403() {
        let e = Group::new(
            "g",
            "sip:chat-g@x",
            "sip:a@x",
            &["sip:b@x".into(), "sip:c@x".into()],
            None,
            "c",
            2,
        )
        .unwrap_err();
        assert_eq!(e, GroupError::TooMany { count: 3, limit: 2 });
        assert_eq!(e.status(), 403);
        let mut g = g();
        assert!(g.add(&["sip:dave@ims.lab".into()], 3).is_err());
        // One leaves, then there is room; adding a member twice invites it once.
        g.set_state("sip:carol@ims.lab", MemberState::Departed, Some("departed"));
        let fresh = g
            .add(&["sip:dave@ims.lab".into(), "sip:DAVE@ims.lab".into()], 3)
            .unwrap();
        assert_eq!(fresh, vec!["sip:dave@ims.lab".to_string()]);
        assert_eq!(g.current().count(), 3);
    }

    #[test]
    fn conference_info_is_full_then_partial_with_the_chairman_and_departures() {
        let mut g = g();
        g.set_state("sip:bob@ims.lab", MemberState::Connected, None);
        let full = ConferenceInfo::parse(
            g.conference_info(None, 100, 1).as_bytes(),
            &InfoLimits::default(),
        )
        .unwrap();
        assert_eq!(full.state, State::Full);
        assert_eq!(full.version, 1);
        assert_eq!(full.subject.as_deref(), Some("Friday lunch"));
        let roles: Vec<(String, Vec<String>, Option<Status>)> = full
            .users
            .iter()
            .map(|u| (u.entity.clone(), u.roles.clone(), u.status))
            .collect();
        assert_eq!(
            roles,
            vec![
                (
                    "sip:alice@ims.lab".to_string(),
                    vec!["chairman".to_string()],
                    Some(Status::Connected)
                ),
                (
                    "sip:bob@ims.lab".to_string(),
                    vec!["participant".to_string()],
                    Some(Status::Connected)
                ),
                (
                    "sip:carol@ims.lab".to_string(),
                    vec!["participant".to_string()],
                    Some(Status::Pending)
                ),
            ]
        );
        g.set_state("sip:carol@ims.lab", MemberState::Departed, Some("booted"));
        let part = ConferenceInfo::parse(
            g.conference_info(Some(&["sip:carol@ims.lab".into()]), 100, 2)
                .as_bytes(),
            &InfoLimits::default(),
        )
        .unwrap();
        assert_eq!(part.state, State::Partial);
        assert_eq!(part.version, 2);
        assert_eq!(part.users.len(), 1);
        assert_eq!(part.users[0].state, State::Deleted);
        assert_eq!(part.users[0].departure, Some(Departure::Booted));
    }

    #[test]
    fn sequence_numbers_and_delivery_cursors() {
        let mut g = g();
        assert_eq!(g.take_seq(), 1);
        assert_eq!(g.take_seq(), 2);
        g.delivered("sip:bob@ims.lab", 2);
        g.delivered("sip:bob@ims.lab", 1);
        assert_eq!(g.member("sip:bob@ims.lab").unwrap().delivered_seq, 2);
        // A member added later starts after what was said before it joined.
        g.add(&["sip:dave@ims.lab".into()], 4).unwrap();
        assert_eq!(g.member("sip:dave@ims.lab").unwrap().delivered_seq, 2);
    }
}
