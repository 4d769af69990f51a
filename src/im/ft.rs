//! MSRP file transfer (RFC 5547) through O-IM and T-IM. Both stay SIP proxies on the file
//! INVITE (record-routing, TS 24.229 §5.7.4) and terminate MSRP on a pair of legs of their
//! hub, as for a chat: each puts its own `a=path` into the offer and into the answer and
//! passes the file's attributes (`a=file-selector`, `a=file-transfer-id`,
//! `a=file-disposition`, `a=file-date`, `a=file-range`, the direction) on unchanged. The
//! chunks (Byte-Range, `+`/`$`) are streamed on as they come, each 200 going upstream only once
//! the next hop answered, so the sender's 200 for the last chunk means the recipient has the
//! whole file (rcsjta takes that 200 as the transfer's end).
//!
//! Who connects: UE1 → O-IM (leg A), O-IM → T-IM (O-IM's leg B, once UE1 bound), UE2 → T-IM
//! (T-IM's leg B, after the ACK). What reaches a relay before its leg B is up waits in that
//! leg's bounded queue: a file is relayed, never stored (no store and forward for MSRP file
//! transfer; a recipient who is not registered gets T-IM's 480).
//!
//! Streaming: the pair is a file pair ([`super::relay::Hub::set_file`]), so the relays never
//! reassemble a file (chat sessions still are): each chunk goes on with its Message-ID,
//! Byte-Range and Content-Type as it arrives, and is dropped once its 200 went upstream. The
//! sender waits for each 200, so a relay holds one chunk of a transfer at a time (at most
//! `[im] msrp_max_queued_bytes` while the recipient binds), whatever the file's size.
//!
//! Bounds: `[im] max_file_size` (100 MiB by default, the content server's order of size;
//! independent of chat's `max_message_size`). A file whose `size:` is over it is refused at
//! the INVITE with 413 and a Warning saying the limit; one that understated its size gets
//! MSRP 413 from the hub at the first chunk whose Byte-Range total (or, for `*`, last byte)
//! is past it.

use bytes::Bytes;

use super::relay::{HubEvent, Side};
use super::{identity, ue_name, ImRole, ImServer, MAX_SESSIONS};
use crate::cscf::{forward_copy, next_hop, pop_own_route, proxy_to_with, reject};
use crate::rcs::ft::FileOffer;
use crate::sip::IncomingRequest;

impl ImServer {
    /// An RFC 5547 INVITE: proxied with our MSRP path in the offer and in the answer.
    pub(super) async fn ft_invite(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        pop_own_route(&mut req, &self.ep, &self.host);
        let offer = match FileOffer::parse(req.headers.get("Content-Type"), &req.body) {
            Ok(o) => o,
            Err(why) => {
                inc.tx.respond(reject(&req, 488, &self.host, &why));
                return;
            }
        };
        let max = self.hub.max_file_size();
        if let Some(size) = offer.file.selector.size.filter(|s| *s > max) {
            let why = format!(
                "the file is {size} bytes; MSRP file transfer here takes files of up to {max} bytes"
            );
            inc.tx.respond(reject(&req, 413, &self.host, &why));
            return;
        }
        let to = crate::sip::Uri::parse(&req.uri).map(|u| u.aor()).ok();
        if self.role == ImRole::Terminating {
            let Some(to) = to.as_deref() else {
                inc.tx
                    .respond(reject(&req, 400, &self.host, "no recipient"));
                return;
            };
            if !self.is_online(to) {
                inc.tx.respond(reject(
                    &req,
                    480,
                    &self.host,
                    "recipient offline: an MSRP file transfer is not stored (send it over HTTP)",
                ));
                return;
            }
        }
        if self.ft_calls.lock().map(|m| m.len()).unwrap_or(0) >= MAX_SESSIONS {
            let mut r = reject(&req, 503, &self.host, "too many file transfers");
            r.headers.push("Retry-After", "5");
            inc.tx.respond(r);
            return;
        }
        req.headers.push_front("Record-Route", self.record_route());
        let (pair, uri_a, uri_b) = self.hub.new_pair();
        self.hub.set_file(pair);
        if let Some(p) = offer.media.path.last() {
            self.hub.set_remote(pair, Side::A, p);
        }
        // O-IM connects to T-IM itself; T-IM waits for the recipient to bind (after its ACK).
        let setup_out = match self.role {
            ImRole::Originating => {
                if let Some(u) =
                    identity(&req, "P-Asserted-Identity").or_else(|| identity(&req, "From"))
                {
                    self.hub.set_owner(pair, Side::A, &ue_name(&u));
                }
                "active"
            }
            ImRole::Terminating => {
                if let Some(to) = &to {
                    self.hub.set_owner(pair, Side::B, &ue_name(to));
                }
                "passive"
            }
        };
        // Chunks that come before leg B is up wait in its queue: at O-IM the first chunk can
        // beat the node's reaction to UE1's binding (connecting leg B), at T-IM the
        // recipient binds only after the ACK.
        self.hub.hold_until_bound(pair, Side::B);
        let ip = self.hub.local_addr().ip().to_string();
        let port = self.hub.local_addr().port();
        req.body = Bytes::from(offer.relayed(&ip, port, &uri_b, setup_out).to_sdp());
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            self.hub.remove_pair(pair);
            inc.tx
                .respond(reject(&req, 404, &self.host, "no route back to the S-CSCF"));
            return;
        };
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        // Known before the answer goes through: the recipient may bind as soon as it has the
        // ACK.
        let map = match self.role {
            ImRole::Originating => &self.proxied,
            ImRole::Terminating => &self.ft_calls,
        };
        if let Ok(mut m) = map.lock() {
            m.insert(call_id.clone(), pair);
        }
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        let hub = self.hub.clone();
        let fin = proxy_to_with(&self.ep, &inc.tx, fwd, dest, t, |resp| {
            if !resp.is_success() || resp.body.is_empty() {
                return;
            }
            let Ok(answer) = FileOffer::parse(resp.headers.get("Content-Type"), &resp.body) else {
                return;
            };
            if let Some(p) = answer.media.path.last() {
                hub.set_remote(pair, Side::B, p);
            }
            resp.body = Bytes::from(answer.relayed(&ip, port, &uri_a, "passive").to_sdp());
        })
        .await;
        if !fin.is_some_and(|r| r.is_success()) {
            if let Ok(mut m) = map.lock() {
                m.remove(&call_id);
            }
            self.hub.remove_pair(pair);
        }
    }

    /// True for the Call-ID of a file transfer T-IM relays.
    pub(super) fn is_ft_call(&self, call_id: &str) -> bool {
        self.ft_calls.lock().is_ok_and(|m| m.contains_key(call_id))
    }

    /// The file transfer's dialog ended (BYE): its legs go.
    pub(super) fn end_ft_call(&self, call_id: &str) {
        if let Some(pair) = self
            .ft_calls
            .lock()
            .ok()
            .and_then(|mut m| m.remove(call_id))
        {
            self.hub.remove_pair(pair);
        }
    }

    /// T-IM's part in a file transfer's MSRP: the recipient bound (what waited goes on), a
    /// leg closed (the transfer is over). `Some(ev)` for events of other sessions.
    pub(super) fn ft_hub(&self, ev: HubEvent) -> Option<HubEvent> {
        if self.role != ImRole::Terminating {
            return Some(ev);
        }
        let pair = match &ev {
            HubEvent::Bound { pair, .. }
            | HubEvent::Message { pair, .. }
            | HubEvent::Closed { pair, .. } => *pair,
        };
        let ours = self
            .ft_calls
            .lock()
            .is_ok_and(|m| m.values().any(|p| *p == pair));
        if !ours {
            return Some(ev);
        }
        match ev {
            HubEvent::Bound { side: Side::B, .. } => self.hub.set_ready(pair, Side::B),
            HubEvent::Closed { .. } => {
                if let Ok(mut m) = self.ft_calls.lock() {
                    m.retain(|_, p| *p != pair);
                }
                self.hub.remove_pair(pair);
            }
            _ => {}
        }
        None
    }
}
