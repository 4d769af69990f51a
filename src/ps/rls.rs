//! The presence server as Resource List Server (RFC 4662): a SUBSCRIBE to a list URI
//! (`sip:alice;pres-list=rcs@ims.lab`, [`super::lists`]) is a subscription to every member on
//! the owner's behalf, answered with `Require: eventlist` and `multipart/related` NOTIFYs
//! (the core is [`crate::presence::rls`]). It reaches the PS by the owner's originating iFC:
//! the PS answers it as the terminating UA (TS 24.229 §5.7.3).

use std::time::Instant;

use super::sip::{self, NotifyDialog, PsRequestError};
use super::{subscribe_error, PresenceServer, State};
use crate::presence::rlmi::ResourceList;
use crate::presence::subscription::{DialogId, SubscribeError, Subscribed};
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
