//! Proxy plumbing on a node's endpoint (RFC 3261 §16): Via branches that carry a loop hash
//! and the loop check they allow (§16.3 step 4, §16.6 step 8), the forwarded INVITEs a CANCEL
//! refers to (§16.10), and responses forwarded by their top Via (§18.2.2, RFC 3581).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use super::Endpoint;
use crate::sip::headers::Via;
use crate::sip::message::{new_branch, Request, Response, SipMessage};
use crate::sip::stateless::response_destination;
use crate::sip::transport::Transport;

/// An INVITE this node forwarded and has no final response for yet: a CANCEL for it is
/// turned into a CANCEL of the forwarded request (RFC 3261 §16.10).
#[derive(Debug, Clone)]
pub struct PendingInvite {
    /// The INVITE as forwarded (our Via on top).
    pub forwarded: Request,
    /// Where it went.
    pub dest: SocketAddr,
    /// How.
    pub transport: Transport,
}

impl Endpoint {
    /// A Via value for a request we forward as a proxy: the branch carries a hash of the
    /// request's loop-relevant fields (RFC 3261 §16.6 step 8) so [`Endpoint::is_looping`] can
    /// recognise it when it comes back.
    pub fn proxy_via(&self, req: &Request, transport: Transport) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{:016x}.{}",
            transport.as_str(),
            self.sent_by(),
            loop_hash(req),
            &new_branch()[7..]
        )
    }

    /// RFC 3261 §16.3 step 4: the request already passed through us unchanged.
    pub fn is_looping(&self, req: &Request) -> bool {
        let me = self.sent_by();
        let vias = req.headers.values("Via");
        // Most requests never passed here: no Via names us, nothing to hash or parse.
        if !vias.iter().any(|v| v.contains(me.as_str())) {
            return false;
        }
        let h = format!("z9hG4bK{:016x}.", loop_hash(req));
        vias.iter().any(|v| {
            Via::parse(v)
                .map(|via| via.sent_by() == me && via.branch().is_some_and(|b| b.starts_with(&h)))
                .unwrap_or(false)
        })
    }

    /// Remembers a forwarded INVITE under the branch of the INVITE we received (once per
    /// branch when a proxy forks).
    pub fn track_invite(&self, incoming_branch: &str, pending: PendingInvite) {
        if let Ok(mut m) = self.inner.invites.lock() {
            m.entry(incoming_branch.to_string())
                .or_default()
                .push(pending);
        }
    }

    /// Forgets a forwarded INVITE (its final response came).
    pub fn untrack_invite(&self, incoming_branch: &str) {
        if let Ok(mut m) = self.inner.invites.lock() {
            m.remove(incoming_branch);
        }
    }

    /// The forwarded INVITEs (one per fork branch) a CANCEL with this branch refers to.
    pub fn pending_invites(&self, incoming_branch: &str) -> Vec<PendingInvite> {
        self.inner
            .invites
            .lock()
            .ok()
            .and_then(|m| m.get(incoming_branch).cloned())
            .unwrap_or_default()
    }

    /// Forwards a response by its (new) top Via, as a proxy does after popping its own Via
    /// (RFC 3261 §18.2.2 with RFC 3581 `received`/`rport`).
    pub async fn send_response_by_via(&self, resp: &Response) {
        let Some(via) = resp
            .headers
            .first_value("Via")
            .and_then(|v| Via::parse(v).ok())
        else {
            tracing::debug!(node = %self.inner.name, "response without Via dropped");
            return;
        };
        let Some((dest, transport)) = response_destination(&via, None) else {
            tracing::debug!(node = %self.inner.name, via = %via, "cannot resolve response destination");
            return;
        };
        self.send_stateless(&SipMessage::Response(resp.clone()), dest, transport)
            .await;
    }
}

/// Hash of the fields RFC 3261 §16.6 step 8 names for loop detection.
fn loop_hash(req: &Request) -> u64 {
    let mut h = DefaultHasher::new();
    req.uri.hash(&mut h);
    for name in [
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Proxy-Require",
        "Proxy-Authorization",
    ] {
        req.headers.get(name).unwrap_or("").hash(&mut h);
    }
    // The whole Route set: a node traversed twice in one dialog (P-CSCF on both sides) sees
    // the same top Route both times, but not the same set.
    for r in req.headers.values("Route") {
        r.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use tokio::sync::watch;

    use super::*;
    use crate::sip::message::SipMessage;
    use crate::sip::transaction::TimerConfig;
    use crate::trace::Trace;

    fn register() -> Request {
        let text = "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:a@ims.lab>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n";
        match SipMessage::parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_that_comes_back_unchanged_is_a_loop() {
        let (_stop, shut) = watch::channel(false);
        let (ep, _rx) = Endpoint::bind(
            "P",
            "127.0.0.1:0".parse().unwrap(),
            TimerConfig::default(),
            Trace::disabled(),
            shut,
        )
        .await
        .unwrap();
        let req = register();
        assert!(!ep.is_looping(&req));
        let mut forwarded = req.clone();
        forwarded
            .headers
            .push_front("Via", ep.proxy_via(&req, Transport::Udp));
        assert!(
            ep.is_looping(&forwarded),
            "our branch hash matches the same request"
        );
        let mut retargeted = forwarded.clone();
        retargeted.uri = "sip:other.lab".into();
        assert!(
            !ep.is_looping(&retargeted),
            "a changed Request-URI is a spiral, not a loop"
        );
    }
}
