//! T-IM takes back a chat message its sender revokes (GSMA RCC.07 message revocation,
//! [`crate::rcs::revoke`]): the sender's MESSAGE reaches T-IM through the recipient's iFC and
//! gets 200 at once; a message still waiting in the store leaves it (pending queue and
//! history: the recipient never reads it), and the outcome goes back to the sender in a
//! MESSAGE of T-IM's own, from the recipient's identity.
//!
//! A delivery attempt may be carrying the message at that moment. A delivery INVITE still
//! waiting for its answer is CANCELled; the revocation succeeds if the recipient did not take
//! it (487), and fails if its 200 crossed the CANCEL. A message on its way over MSRP or in a
//! pager-mode MESSAGE is waited for, bounded ([`REVOKE_WAIT`]): taken, the revocation fails.
//! [`Revocations`] makes the two sides exclusive: no delivery starts carrying a message being
//! revoked, and a revocation waits for the attempt that carries one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::{identity, ImServer};
use crate::cscf::next_hop;
use crate::rcs::revoke::{self, Revoke};
use crate::sip::{IncomingRequest, Method, Transport};

/// How long a revocation waits for a delivery attempt that carries its message (a CANCELled
/// INVITE's 487 comes within the delivery's own CANCEL waits, 2 × 4 s).
pub(super) const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// Revocations under way at most; more fail at once.
const MAX_REVOKING: usize = 1024;

/// Which messages are being revoked, and which a delivery attempt carries now.
#[derive(Default)]
pub(super) struct Revocations {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    revoking: HashSet<String>,
    carrying: HashMap<String, Carried>,
}

struct Carried {
    cut: Arc<Notify>,
    ended: watch::Receiver<()>,
}

/// Held while a delivery attempt carries a message; dropping it ends the attempt's claim.
pub(super) struct Carry {
    revs: Arc<Revocations>,
    id: String,
    cut: Arc<Notify>,
    _ended: watch::Sender<()>,
}

impl Carry {
    /// Notified when a revocation asks the attempt to stop (a delivery INVITE: CANCEL it).
    pub(super) fn cut(&self) -> &Notify {
        &self.cut
    }
}

impl Drop for Carry {
    fn drop(&mut self) {
        if let Ok(mut g) = self.revs.inner.lock() {
            g.carrying.remove(&self.id);
        }
    }
}

/// The delivery attempt carrying a message: what cuts it short, and what says it ended.
type Attempt = (Arc<Notify>, watch::Receiver<()>);

/// Held while a revocation runs.
struct Revoking {
    revs: Arc<Revocations>,
    id: String,
}

impl Drop for Revoking {
    fn drop(&mut self) {
        if let Ok(mut g) = self.revs.inner.lock() {
            g.revoking.remove(&self.id);
        }
    }
}

impl Revocations {
    /// A delivery attempt is about to carry message `id`: `None` when it is being revoked (or
    /// carried by another attempt), so the attempt leaves it.
    pub(super) fn carry(self: &Arc<Self>, id: &str) -> Option<Carry> {
        let mut g = self.inner.lock().ok()?;
        if g.revoking.contains(id) || g.carrying.contains_key(id) {
            return None;
        }
        let cut = Arc::new(Notify::new());
        let (tx, rx) = watch::channel(());
        g.carrying.insert(
            id.to_string(),
            Carried {
                cut: cut.clone(),
                ended: rx,
            },
        );
        Some(Carry {
            revs: self.clone(),
            id: id.to_string(),
            cut,
            _ended: tx,
        })
    }

    /// True while message `id` is being revoked (delivery leaves it alone).
    pub(super) fn is_revoking(&self, id: &str) -> bool {
        self.inner.lock().is_ok_and(|g| g.revoking.contains(id))
    }

    /// Starts revoking `id`: `None` when too many are under way or `id` already is; else the
    /// claim, and the attempt carrying it now (to cut, and to wait for).
    fn begin(self: &Arc<Self>, id: &str) -> Option<(Revoking, Option<Attempt>)> {
        let mut g = self.inner.lock().ok()?;
        if g.revoking.len() >= MAX_REVOKING || !g.revoking.insert(id.to_string()) {
            return None;
        }
        let carried = g.carrying.get(id).map(|c| (c.cut.clone(), c.ended.clone()));
        Some((
            Revoking {
                revs: self.clone(),
                id: id.to_string(),
            },
            carried,
        ))
    }

    fn is_carried(&self, id: &str) -> bool {
        self.inner.lock().is_ok_and(|g| g.carrying.contains_key(id))
    }
}

impl ImServer {
    /// The sender's revocation request (a MESSAGE to the recipient, `r` its body): 200 now,
    /// the outcome in a MESSAGE of our own once known.
    pub(super) async fn tim_revoke(self: Arc<Self>, inc: IncomingRequest, r: Revoke) {
        let req = &inc.request;
        let sender = identity(req, "P-Asserted-Identity").or_else(|| identity(req, "From"));
        let recipient = crate::sip::Uri::parse(&req.uri).ok().map(|u| u.aor());
        let (Some(sender), Some(recipient)) = (sender, recipient) else {
            inc.tx.respond(crate::cscf::reject(
                req,
                400,
                &self.host,
                "revocation without a sender or recipient",
            ));
            return;
        };
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        let revoked = self.revoke_stored(&sender, &r.message_id).await;
        self.ep.note(|| {
            format!(
                "{sender} revokes {} to {recipient}: {}",
                r.message_id,
                if revoked {
                    "taken out of the store"
                } else {
                    "not revoked (delivered, being delivered, or unknown)"
                }
            )
        });
        self.send_revoke_outcome(&sender, &recipient, &r.message_id, revoked)
            .await;
    }

    /// Takes message `id` of `sender` out of the store if it was not delivered; true if so.
    async fn revoke_stored(&self, sender: &str, id: &str) -> bool {
        let Some(st) = self.store.clone() else {
            return false;
        };
        // Only its sender revokes a message (the P-CSCF asserted who sent the request); to
        // anyone else it is "not revoked", as for a message that does not exist.
        if !st
            .by_message_id(id)
            .is_some_and(|m| self.same_user(&m.from, sender))
        {
            return false;
        }
        let Some((_claim, carried)) = self.revocations.begin(id) else {
            return false;
        };
        if let Some((cut, mut ended)) = carried {
            cut.notify_one();
            // Err once the attempt dropped its claim: it ended.
            let _ = tokio::time::timeout(REVOKE_WAIT, ended.changed()).await;
            if self.revocations.is_carried(id) {
                return false;
            }
        }
        let Some(m) = st.by_message_id(id).filter(|m| m.status == "pending") else {
            return false;
        };
        if st.revoke(&m).is_err() {
            return false;
        }
        // Gone on disk before the sender hears so (it sends the text another way next).
        st.durable().await.is_ok()
    }

    /// The outcome to the revoking `sender`, from the `recipient`'s identity (through the
    /// S-CSCF serving the sender; back through the sender's iFC we pass it on).
    async fn send_revoke_outcome(&self, sender: &str, recipient: &str, id: &str, revoked: bool) {
        let mut req = self
            .ep
            .new_request(Method::Message, sender, recipient, 1, Transport::Tcp);
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        req.headers
            .push("P-Asserted-Identity", format!("<{recipient}>"));
        req.headers.push("Accept-Contact", revoke::accept_contact());
        if let Some(route) = self.scscf_route_for(sender) {
            req.headers.push("Route", route);
        }
        req.headers.push("Content-Type", "message/cpim");
        req.body = Bytes::from(
            Revoke::outcome(id, revoked)
                .to_cpim(recipient, sender)
                .to_bytes(),
        );
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            return;
        };
        if let Ok(mut o) = self.own_calls.lock() {
            o.insert(call_id.clone());
        }
        let answer = self.ep.send_request(req, dest, t).final_response();
        let resp = tokio::time::timeout(Duration::from_secs(40), answer).await;
        if let Ok(mut o) = self.own_calls.lock() {
            o.remove(&call_id);
        }
        if !resp.is_ok_and(|r| r.is_success()) {
            tracing::info!(%sender, %id, "the revocation outcome did not reach its sender");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_being_revoked_is_not_carried_and_one_carried_is_waited_for() {
        let revs = Arc::new(Revocations::default());
        let carry = revs.carry("m1").expect("free to carry");
        assert!(
            revs.carry("m1").is_none(),
            "one attempt carries it at a time"
        );
        let (claim, carried) = revs.begin("m1").expect("revocation starts");
        let (cut, ended) = carried.expect("the attempt carrying it is named");
        assert!(revs.begin("m1").is_none(), "one revocation at a time");
        cut.notify_one();
        assert!(ended.has_changed().is_ok(), "the attempt is still on");
        drop(carry);
        assert!(ended.has_changed().is_err(), "its end is seen");
        assert!(!revs.is_carried("m1"));
        assert!(revs.is_revoking("m1"));
        assert!(revs.carry("m1").is_none(), "no new attempt while revoking");
        drop(claim);
        assert!(!revs.is_revoking("m1"));
        assert!(revs.carry("m1").is_some());
    }

    #[test]
    fn revocations_under_way_are_bounded() {
        let revs = Arc::new(Revocations::default());
        let claims: Vec<_> = (0..MAX_REVOKING)
            .map(|i| revs.begin(&format!("m{i}")).expect("room").0)
            .collect();
        assert!(revs.begin("one-more").is_none());
        drop(claims);
        assert!(revs.begin("one-more").is_some());
    }
}
