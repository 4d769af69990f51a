//! Unit tests of the group state: rosters, ids, bounds.

use super::events::apply_roster;
use super::*;
use crate::conf::conference_info::{Departure, User};

fn group() -> GroupChat {
    GroupChat {
        id: "chat-1".into(),
        uri: "sip:chat-1@ims.lab".into(),
        subject: String::new(),
        state: GroupState::Active,
        participants: BTreeMap::new(),
        versions: BTreeMap::new(),
        messages: VecDeque::new(),
    }
}

fn info(state: State, users: Vec<User>) -> ConferenceInfo {
    info_v(state, users, 1)
}

fn info_v(state: State, users: Vec<User>, version: u32) -> ConferenceInfo {
    ConferenceInfo {
        entity: "sip:chat-1@ims.lab".into(),
        state,
        version,
        subject: Some("lunch".into()),
        max_users: None,
        users,
    }
}

#[test]
fn a_full_roster_replaces_and_a_partial_one_changes() {
    let mut g = group();
    let mut alice = User::new("sip:alice@ims.lab", Status::Connected);
    alice.roles = vec!["chairman".into()];
    let bob = User::new("sip:bob@ims.lab", Status::Pending);
    let changed = apply_roster(&mut g, &info(State::Full, vec![alice, bob]));
    assert_eq!(changed.len(), 2);
    assert_eq!(g.subject, "lunch");
    assert_eq!(
        g.participants["sip:alice@ims.lab"].role.as_deref(),
        Some("chairman")
    );
    // bob joins: only bob changed.
    let bob = User::new("sip:bob@ims.lab", Status::Connected);
    let changed = apply_roster(&mut g, &info(State::Partial, vec![bob]));
    assert_eq!(changed.len(), 1);
    assert_eq!(g.participants["sip:bob@ims.lab"].status, "connected");
    assert_eq!(g.participants.len(), 2);
    // bob leaves (departed), then is deleted.
    let mut bob = User::new("sip:bob@ims.lab", Status::Disconnected);
    bob.departure = Some(Departure::Departed);
    apply_roster(&mut g, &info(State::Partial, vec![bob]));
    assert_eq!(
        g.participants["sip:bob@ims.lab"].departure.as_deref(),
        Some("departed")
    );
    let mut bob = User::new("sip:bob@ims.lab", Status::Disconnected);
    bob.state = State::Deleted;
    let changed = apply_roster(&mut g, &info(State::Partial, vec![bob]));
    assert_eq!(changed, vec![("sip:bob@ims.lab".to_string(), None)]);
    assert_eq!(g.participants.len(), 1);
}

#[test]
fn an_older_document_arriving_late_does_not_undo_a_newer_one() {
    let mut g = group();
    let pending = |u: &str| User::new(u, Status::Pending);
    let connected = |u: &str| User::new(u, Status::Connected);
    // v2: carol joins (partial); v1: the full state from before, arriving after it.
    apply_roster(
        &mut g,
        &info_v(State::Partial, vec![connected("sip:carol@ims.lab")], 2),
    );
    let changed = apply_roster(
        &mut g,
        &info_v(
            State::Full,
            vec![connected("sip:alice@ims.lab"), pending("sip:carol@ims.lab")],
            1,
        ),
    );
    assert_eq!(changed.len(), 1, "only alice is news: {changed:?}");
    assert_eq!(g.participants["sip:carol@ims.lab"].status, "connected");
    assert_eq!(g.participants.len(), 2);
    // v4 deletes bob; a late v3 full state naming him does not bring him back.
    let mut bob = connected("sip:bob@ims.lab");
    bob.state = State::Deleted;
    apply_roster(&mut g, &info_v(State::Partial, vec![bob], 4));
    apply_roster(
        &mut g,
        &info_v(
            State::Full,
            vec![connected("sip:alice@ims.lab"), connected("sip:bob@ims.lab")],
            3,
        ),
    );
    assert!(!g.participants.contains_key("sip:bob@ims.lab"));
    // carol (v2) is left out by the v3 full state: she is gone.
    assert!(!g.participants.contains_key("sip:carol@ims.lab"));
}

#[test]
fn group_ids_come_from_conference_uris() {
    assert_eq!(
        group_id_of("sip:chat-ab12@ims.lab").as_deref(),
        Some("chat-ab12")
    );
    assert_eq!(group_id_of("sip:chat-factory@ims.lab"), None);
    assert_eq!(group_id_of("sip:bob@ims.lab"), None);
    assert_eq!(group_id_of("sip:chat-@ims.lab"), None);
}

#[test]
fn groups_are_bounded_closed_ones_first() {
    let mut gs = Groups::default();
    for n in 0..MAX_GROUPS_PER_USER {
        gs.ensure(&format!("sip:chat-{n}@x"), None, GroupState::Active);
    }
    assert!(!gs.make_room(false), "no group left: a new one is refused");
    gs.by_id.get_mut("chat-5").unwrap().state = GroupState::Closed;
    gs.remember_ours("m5".into(), "chat-5".into());
    assert!(gs.make_room(false));
    assert!(!gs.by_id.contains_key("chat-5") && gs.ours.is_empty());
    gs.ensure("sip:chat-new@x", None, GroupState::Active);
    gs.ensure("sip:chat-newer@x", None, GroupState::Active);
    assert_eq!(gs.by_id.len(), MAX_GROUPS_PER_USER);
    assert!(
        !gs.by_id.contains_key("chat-0"),
        "past the cap an invitation drops the oldest"
    );
}
