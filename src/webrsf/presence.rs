//! Buddies' presence for web users (RCS presence, seed 001 figure 9: the gateway subscribes to
//! the presence service on the IMS side for the web user). Each web user's UE holds one list
//! subscription to the user's RCS buddy list at the RLS ([`crate::ue::rls`], RFC 4662); the
//! gateway keeps what it says per buddy (state, note, last seen), answers `GET Buddies` and
//! puts a `presence` event on the user's notification channel when a buddy changes.
//!
//! | SIP (IMS side) | web side |
//! |---|---|
//! | login: SUBSCRIBE `sip:<user>;pres-list=rcs@<domain>` (Event: presence, eventlist) | — |
//! | NOTIFY full state (the first of a subscription) | `GET Buddies` has the list |
//! | NOTIFY partial state, one PIDF per changed member | event `presence` per buddy |
//! | logout: SUBSCRIBE `Expires: 0`, NOTIFY terminated | — |

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Gateway, WebError, WebUser};
use crate::ue::rls::{Buddy, ListEvent, ListWatcher, SubscriptionStatus, DEFAULT_EXPIRES};
use crate::ue::Ue;

/// How long a login waits for the list's first full state (so that `GET Buddies` right after
/// it has the buddies); past it the login answers anyway and the list fills in later.
pub const FIRST_STATE_WAIT: Duration = Duration::from_secs(2);

/// A web user's buddies as the gateway knows them.
#[derive(Debug, Default)]
pub(super) struct Buddies {
    /// By URI (at most the RLMI cap of members, [`crate::presence::rlmi::RlmiLimits`]).
    pub(super) by_uri: std::collections::BTreeMap<String, Buddy>,
    /// The list subscription's state.
    pub(super) status: Option<SubscriptionStatus>,
    /// A full state has come: later changes are news for the client.
    pub(super) known: bool,
}

/// What a list event means for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum News {
    /// A buddy is new or changed.
    Changed(Buddy),
    /// A member left the list.
    Removed(String),
}

impl Buddies {
    /// Applies one event of the list subscription; returns what the client is told. The
    /// first full state is what `GET Buddies` shows, not news; after it every change is.
    pub(super) fn apply(&mut self, ev: ListEvent) -> Vec<News> {
        let change = match ev {
            ListEvent::Status(s) => {
                self.status = Some(s);
                return Vec::new();
            }
            ListEvent::Changed(c) => c,
        };
        for x in &change.changed {
            self.by_uri.insert(x.uri.clone(), x.clone());
        }
        for uri in &change.removed {
            self.by_uri.remove(uri);
        }
        let news = self.known;
        self.known |= change.full_state;
        if !news {
            return Vec::new();
        }
        let changed = change.changed.into_iter().map(News::Changed);
        changed
            .chain(change.removed.into_iter().map(News::Removed))
            .collect()
    }
}

/// A buddy as JSON (`GET Buddies`, `presence` events): `{"user","uri","state","note","last_seen"}`,
/// `user` being the web form of the URI.
pub(super) fn buddy_json(user: &str, b: &Buddy) -> Value {
    json!({
        "user": user,
        "uri": b.uri,
        "state": b.state.as_str(),
        "note": b.note,
        "last_seen": b.last_seen,
    })
}

/// The parts of a web user's UE the list subscription needs, taken before the chat client
/// takes the UE.
pub(super) struct ListParts {
    ep: crate::sip::Endpoint,
    cfg: crate::ue::UeConfig,
    contact: String,
    notifies: mpsc::UnboundedReceiver<crate::sip::IncomingRequest>,
}

impl ListParts {
    /// Sets the UE's presence NOTIFYs apart (before [`crate::ue::chat::ChatUe::start`]).
    pub(super) fn take(ue: &mut Ue) -> ListParts {
        // The subscription needs the identity and the P-CSCF, not the credentials.
        let mut cfg = ue.cfg.clone();
        cfg.password.clear();
        cfg.k = [0; 16];
        cfg.opc = [0; 16];
        ListParts {
            notifies: ue.split_presence_notifies(),
            ep: ue.endpoint().clone(),
            cfg,
            contact: ue.contact(),
        }
    }
}

impl Gateway {
    /// Subscribes to `user`'s buddy list through their UE and follows it; waits at most
    /// [`FIRST_STATE_WAIT`] for the first state.
    pub(super) async fn watch_buddies(self: &Arc<Self>, user: &Arc<WebUser>, parts: ListParts) {
        let Some((watcher, events)) = ListWatcher::start(
            parts.ep,
            parts.cfg,
            parts.contact,
            parts.notifies,
            DEFAULT_EXPIRES,
        ) else {
            tracing::info!(user = %user.aor, "no RCS buddy list for this identity");
            return;
        };
        let (first, ready) = oneshot::channel();
        tokio::spawn(pump(self.clone(), user.clone(), events, first));
        let ready = tokio::time::timeout(FIRST_STATE_WAIT, ready);
        if let Ok(mut w) = user.list.lock() {
            *w = Some(watcher);
        }
        if *user.watch_closed().borrow() {
            // Logged out meanwhile: the logout did not see this subscription.
            self.unwatch_buddies(user).await;
            return;
        }
        if !matches!(ready.await, Ok(Ok(()))) {
            tracing::info!(user = %user.aor, "no buddy list state yet; it comes later");
        }
    }

    /// Ends `user`'s list subscription (`Expires: 0`), bounded.
    pub(super) async fn unwatch_buddies(&self, user: &WebUser) {
        let w = user.list.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = w {
            w.stop().await;
        }
    }

    /// `GET Buddies`: `{"list","subscription","buddies":[...]}`.
    pub fn buddies(&self, user: &WebUser) -> Value {
        let list = user
            .list
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|w| w.uri.clone()));
        user.with(|s| {
            json!({
                "list": list,
                "subscription": s.buddies.status.map_or("none", |x| x.as_str()),
                "buddies": s.buddies.by_uri.values().map(|b| buddy_json(&self.web_id(&b.uri), b)).collect::<Vec<_>>(),
            })
        })
    }

    /// `GET Buddies/{buddy}`: one buddy (its user part, or its URI); 404 when not on the list.
    pub fn buddy(&self, user: &WebUser, buddy: &str) -> Result<Value, WebError> {
        let uri = self.aor_of(buddy)?;
        user.with(|s| s.buddies.by_uri.get(&uri).cloned())
            .map(|b| buddy_json(&self.web_id(&b.uri), &b))
            .ok_or_else(|| WebError::NotFound(format!("{buddy} is not on the buddy list")))
    }

    fn on_list_event(&self, user: &WebUser, ev: ListEvent) {
        for news in user.with(|st| st.buddies.apply(ev)) {
            let (uri, data) = match news {
                News::Changed(b) => (b.uri.clone(), buddy_json(&self.web_id(&b.uri), &b)),
                News::Removed(uri) => {
                    let data = json!({ "user": self.web_id(&uri), "uri": uri, "removed": true });
                    (uri, data)
                }
            };
            self.emit_at(user, "presence", &self.buddy_url(&user.user_id, &uri), data);
        }
    }

    /// `https://{host}/webrsf/v1/{userId}/Buddies/{buddy}`, the resource a `presence` event is
    /// about.
    fn buddy_url(&self, user_id: &str, uri: &str) -> String {
        let chat = self.instance_url(user_id, "");
        let base = chat.trim_end_matches("Chat/");
        format!("{base}Buddies/{}", self.web_id(uri))
    }
}

/// Reads a user's list events until the subscription or the login ends; `first` fires once
/// the gateway has the list's first full state (or knows it will not come soon).
async fn pump(
    gw: Arc<Gateway>,
    user: Arc<WebUser>,
    mut events: mpsc::Receiver<ListEvent>,
    first: oneshot::Sender<()>,
) {
    let mut closed = user.watch_closed();
    let mut first = Some(first);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    let given_up = matches!(
                        ev,
                        ListEvent::Status(
                            SubscriptionStatus::Retrying
                                | SubscriptionStatus::Failed
                                | SubscriptionStatus::Ended
                        )
                    );
                    gw.on_list_event(&user, ev);
                    if given_up || user.with(|s| s.buddies.known) {
                        if let Some(f) = first.take() {
                            let _ = f.send(());
                        }
                    }
                }
                None => return,
            },
            _ = closed.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ue::rls::{BuddyState, ListChange};

    fn bob(state: BuddyState, note: Option<&str>, seen: Option<&str>) -> Buddy {
        Buddy {
            uri: "sip:bob@ims.lab".into(),
            state,
            note: note.map(str::to_string),
            last_seen: seen.map(str::to_string),
        }
    }

    fn changed(full_state: bool, changed: Vec<Buddy>, removed: Vec<&str>) -> ListEvent {
        ListEvent::Changed(ListChange {
            changed,
            removed: removed.into_iter().map(str::to_string).collect(),
            full_state,
        })
    }

    #[test]
    fn the_first_full_state_is_the_list_and_later_changes_are_news() {
        let mut b = Buddies::default();
        assert!(b
            .apply(ListEvent::Status(SubscriptionStatus::Active))
            .is_empty());
        assert_eq!(b.status, Some(SubscriptionStatus::Active));
        let online = bob(BuddyState::Online, None, None);
        assert!(b.apply(changed(true, vec![online], vec![])).is_empty());
        assert_eq!(b.by_uri.len(), 1);
        let away = bob(BuddyState::Away, Some("lunch"), None);
        assert_eq!(
            b.apply(changed(false, vec![away.clone()], vec![])),
            vec![News::Changed(away)]
        );
        let gone = bob(BuddyState::Offline, None, Some("2026-12-01T18:00:00Z"));
        assert_eq!(
            b.apply(changed(false, vec![gone.clone()], vec![])),
            vec![News::Changed(gone)]
        );
        assert_eq!(
            b.apply(changed(false, vec![], vec!["sip:bob@ims.lab"])),
            vec![News::Removed("sip:bob@ims.lab".into())]
        );
        assert!(b.by_uri.is_empty());
    }

    #[test]
    fn a_buddy_in_json() {
        let v = buddy_json(
            "bob",
            &bob(BuddyState::Offline, None, Some("2026-12-01T18:00:00Z")),
        );
        assert_eq!(
            v,
            json!({"user": "bob", "uri": "sip:bob@ims.lab", "state": "offline", "note": null,
                   "last_seen": "2026-12-01T18:00:00Z"})
        );
    }
}
