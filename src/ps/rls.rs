//! The presence server as Resource List Server (RFC 4662): a SUBSCRIBE to a list URI
//! (`sip:alice;pres-list=rcs@ims.lab`, [`super::lists`]) is a subscription to every member on
//! the owner's behalf, answered with `Require: eventlist` and `multipart/related` NOTIFYs
//! (the core is [`crate::presence::rls`]). It reaches the PS by the owner's originating iFC:
//! the PS answers it as the terminating UA (TS 24.229 §5.7.3).

use std::time::Instant;

use super::sip::{self, NotifyDialog, PsRequestError};
use super::{subscribe_error, PresenceServer, State};
use crate::presence::rlmi::ResourceList;
use crate::presence::subscription::{DialogId, SubscribeError, Subscribed, WatcherPolicy};
use crate::sip::{Request, Response};

impl PresenceServer {
    /// An initial SUBSCRIBE to `owner`'s list `name`: the RFC 4662 §4.4 checks, only the
    /// owner may subscribe, the list must exist; then 200 with `Require: eventlist` and the
    /// full state queued.
    pub(super) fn initial_list_subscribe(
        &self,
        st: &mut State,
        req: &Request,
        (owner, name): (&str, &str),
        expires: Option<u32>,
        now: Instant,
        contact: &str,
    ) -> Result<Response, Response> {
        sip::check_list_subscribe(req, &req.uri).map_err(|e| self.refuse(req, &e))?;
        let watcher = sip::watcher_of(req)
            .ok_or(PsRequestError::NotAsserted)
            .map_err(|e| self.refuse(req, &e))?;
        if watcher != owner {
            let e = PsRequestError::NotListOwner {
                watcher,
                owner: owner.to_string(),
            };
            return Err(self.refuse(req, &e));
        }
        let list = st.lists.get(&req.uri).cloned().ok_or_else(|| {
            let e = PsRequestError::NoSuchList {
                owner: owner.to_string(),
                name: name.to_string(),
            };
            self.refuse(req, &e)
        })?;
        let tag = crate::sip::new_tag();
        let dialog = NotifyDialog::from_subscribe(req, &tag).map_err(|e| self.refuse(req, &e))?;
        if st.dialogs.len() >= st.max_dialogs {
            let e = SubscribeError::TooManySubscriptions(st.max_dialogs);
            return Err(subscribe_error(req, &self.host, &e));
        }
        let id = dialog.id.clone();
        let s = st
            .rls
            .subscribe(now, &id, &watcher, &list, expires, &st.notifier, &st.esc)
            .map_err(|e| subscribe_error(req, &self.host, &e))?;
        tracing::info!(%watcher, list = %list.uri(), members = list.members().len(), "list subscription");
        self.ep.note(|| {
            format!(
                "{watcher} subscribes to list {} ({} members)",
                list.uri(),
                list.members().len()
            )
        });
        let mut ok = sip::subscribe_ok(req, &dialog, contact, s.expires);
        ok.headers.push("Require", sip::EVENTLIST);
        st.dialogs.insert(id, dialog);
        Ok(ok)
    }

    /// A SUBSCRIBE in a list subscription's dialog: refresh (full state) or end.
    pub(super) fn list_refresh(
        st: &mut State,
        now: Instant,
        id: &DialogId,
        expires: Option<u32>,
    ) -> Result<Subscribed, SubscribeError> {
        let uri = st
            .rls
            .list_of(id)
            .ok_or(SubscribeError::NoSuchSubscription)?
            .to_string();
        // A list emptied or gone since: the subscription stays, with no members.
        let list = st
            .lists
            .get(&uri)
            .cloned()
            .unwrap_or_else(|| ResourceList::new(&uri, 0));
        st.rls
            .refresh(now, id, expires, &list, &st.notifier, &st.esc)
    }
}

impl PresenceServer {
    /// `owner`'s lists: name -> members (the admin API's `GET /lists/{owner}`).
    pub fn lists_of(&self, owner: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        self.state
            .lock()
            .map(|st| st.lists.lists_of(owner))
            .unwrap_or_default()
    }

    /// Writes `owner`'s list `name` (the admin API's `PUT /lists/{owner}/{name}`): kept in the
    /// store, on disk before this returns; each subscription to it gets a partial NOTIFY with
    /// who came and who went. Returns the members now.
    pub async fn put_list(
        &self,
        owner: &str,
        name: &str,
        members: &[String],
    ) -> Result<Vec<String>, super::lists::ListError> {
        let now = Instant::now();
        let contact = self.contact();
        let (now_members, notifys) = {
            let Ok(mut st) = self.state.lock() else {
                return Err(
                    crate::store::StoreError::Corrupt("presence state poisoned".into()).into(),
                );
            };
            let st = &mut *st;
            let list = st.lists.put(owner, name, members)?;
            st.rls.list_changed(now, &list, &st.notifier, &st.esc);
            (list.members().to_vec(), st.drain(now, &contact))
        };
        if let Some(c) = &self.commit {
            c.durable().await?;
        }
        tracing::info!(%owner, %name, members = now_members.len(), "resource list written");
        self.send_all(notifys);
        Ok(now_members)
    }
}

/// A presentity's watcher rules as the admin API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WatcherRules {
    /// Watchers who see the presentity's state.
    pub allow: Vec<String>,
    /// Watchers refused (their subscriptions end `rejected`).
    pub block: Vec<String>,
    /// Watchers waiting for a decision (subscribed, neither allowed nor blocked).
    pub pending: Vec<String>,
}

/// Why watcher rules were not written.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// An identity that is not a `sip:` or `tel:` URI.
    #[error("{0:?} is not a sip: or tel: URI")]
    BadIdentity(String),
    /// More entries than a rule holds.
    #[error("a rule holds at most {0} watchers")]
    TooMany(usize),
    /// Rules for more presentities than the PS holds (`[presence] max_presentities`).
    #[error("the presence server holds rules for at most {0} presentities")]
    TooManyPresentities(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Most watchers one presentity's rule names.
const MAX_RULE_ENTRIES: usize = 1000;

impl PresenceServer {
    /// `presentity`'s watcher rules and who waits (the admin API's
    /// `GET /presence/{presentity}/watchers`).
    pub fn watchers_of(&self, presentity: &str) -> WatcherRules {
        let Ok(st) = self.state.lock() else {
            return WatcherRules::default();
        };
        let p = st.notifier.policy(presentity).cloned().unwrap_or_default();
        WatcherRules {
            allow: p.allowed(),
            block: p.blocked(),
            pending: st.notifier.pending_watchers(presentity),
        }
    }

    /// Replaces `presentity`'s rules (the admin API's `PUT /presence/{presentity}/watchers`):
    /// kept in the store (on disk before this returns); a pending watcher now allowed gets
    /// the state at once (RFC 3856 §6.6), one now blocked a final NOTIFY `rejected`, and list
    /// subscriptions holding the presentity a partial NOTIFY.
    pub async fn set_watchers(
        &self,
        presentity: &str,
        allow: &[String],
        block: &[String],
    ) -> Result<WatcherRules, RuleError> {
        let ok = |u: &String| {
            u.len() <= 256
                && (u.starts_with("sip:") || u.starts_with("tel:"))
                && crate::sip::Uri::parse(u).is_ok()
        };
        if let Some(bad) = std::iter::once(&presentity.to_string())
            .chain(allow)
            .chain(block)
            .find(|u| !ok(u))
        {
            return Err(RuleError::BadIdentity(bad.clone()));
        }
        if allow.len() + block.len() > MAX_RULE_ENTRIES {
            return Err(RuleError::TooMany(MAX_RULE_ENTRIES));
        }
        let mut p = WatcherPolicy::default();
        for w in allow {
            p.allow(w);
        }
        for w in block {
            p.block(w);
        }
        let now = Instant::now();
        let contact = self.contact();
        let notifys = {
            let Ok(mut st) = self.state.lock() else {
                return Err(
                    crate::store::StoreError::Corrupt("presence state poisoned".into()).into(),
                );
            };
            let st = &mut *st;
            if st.notifier.policy(presentity).is_none()
                && st.notifier.policies() >= st.max_presentities
            {
                return Err(RuleError::TooManyPresentities(st.max_presentities));
            }
            st.rules.put(presentity, &p)?;
            st.notifier.set_policy(now, presentity, p, &st.esc);
            st.rls
                .member_changed(now, presentity, &st.notifier, &st.esc);
            st.drain(now, &contact)
        };
        if let Some(c) = &self.commit {
            c.durable().await?;
        }
        tracing::info!(%presentity, allow = allow.len(), block = block.len(), "watcher rules written");
        self.send_all(notifys);
        Ok(self.watchers_of(presentity))
    }
}
