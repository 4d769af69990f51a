//! What reaches a node's endpoint before any transaction (RFC 3261 §18.2.1, §18.1.2, §8.2.2,
//! §21.5): messages read by the transport are parsed and sent to the server or client side; a
//! request that does not parse is answered 400 when enough of it can be salvaged, one too large
//! to take or to forward 513, and one past the overload budget 503 — all statelessly.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::client::on_response;
use super::server::on_request;
use super::{Incoming, Inner};
use crate::sip::headers::Via;
use crate::sip::limits::{Permit, Shed};
use crate::sip::message::{
    salvage_request, Method, Request, Response, SipMessage, MAX_MESSAGE_SIZE,
};
use crate::sip::stateless::response_destination;
use crate::sip::transport::{Datagram, Transport};

/// Room a proxy needs for what it adds (Via, Record-Route, Path...): a request larger than
/// [`MAX_MESSAGE_SIZE`] minus this gets 513 at the first node, so it cannot outgrow what the
/// next hop takes.
pub const PROXY_HEADROOM: usize = 4096;

/// Sends without making the dispatch loop wait (a TCP connect may take its timeout).
pub(super) fn send_detached(
    inner: &Arc<Inner>,
    transport: Transport,
    dest: SocketAddr,
    bytes: Bytes,
) {
    let net = inner.transport.clone();
    tokio::spawn(async move {
        let _ = net.send(transport, dest, bytes).await;
    });
}

/// Answers `req` from outside any transaction (a 400, 503 or 513): by its Via when usable,
/// else to where it came from.
pub(super) fn reply_stateless(
    inner: &Arc<Inner>,
    req: &Request,
    mut r: Response,
    d: (SocketAddr, Transport),
) {
    r.ensure_to_tag();
    let dest = req
        .headers
        .first_value("Via")
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| response_destination(&v, Some(d.0)))
        .map(|(a, _)| a)
        .unwrap_or(d.0);
    let bytes = Bytes::from(SipMessage::Response(r).to_bytes());
    send_detached(inner, d.1, dest, bytes);
}

/// 513 for a request too large to take or to forward (RFC 3261 §21.5.7).
fn too_large(inner: &Arc<Inner>, req: &Request, size: usize, d: (SocketAddr, Transport)) {
    let mut r = req.response(513, Some("Message Too Large"));
    r.headers.push(
        "Warning",
        format!(
            "399 {} \"{size} bytes; at most {} are taken\"",
            inner.name,
            MAX_MESSAGE_SIZE - PROXY_HEADROOM
        ),
    );
    reply_stateless(inner, req, r, d);
}

pub(super) async fn dispatch(
    inner: Weak<Inner>,
    mut raw: mpsc::Receiver<Datagram>,
    out: mpsc::UnboundedSender<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let d = tokio::select! {
            d = raw.recv() => match d { Some(d) => d, None => return },
            _ = shutdown.changed() => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        inner.transport.taken(d.bytes.len());
        inner.transport.queued_for(d.at.elapsed());
        if d.oversized {
            tracing::debug!(node = %inner.name, source = %d.source, "message larger than {MAX_MESSAGE_SIZE} bytes");
            if let Some(req) = salvage_request(&d.bytes) {
                if req.method != Method::Ack {
                    too_large(&inner, &req, MAX_MESSAGE_SIZE + 1, (d.source, d.transport));
                }
            }
            continue;
        }
        match SipMessage::parse(&d.bytes) {
            Ok(SipMessage::Request(req)) if d.bytes.len() > MAX_MESSAGE_SIZE - PROXY_HEADROOM => {
                if req.method != Method::Ack {
                    too_large(&inner, &req, d.bytes.len(), (d.source, d.transport));
                }
            }
            Ok(SipMessage::Request(req)) => {
                on_request(&inner, req, d.source, d.transport, &out).await
            }
            Ok(SipMessage::Response(resp)) => on_response(&inner, resp, d.source, &out),
            Err(e) => {
                crate::warn_limited!("sip.malformed", node = %inner.name, source = %d.source, error = %e, "malformed SIP message");
                if let Some(req) = salvage_request(&d.bytes) {
                    if req.method != Method::Ack {
                        let mut r = req.response(400, Some("Bad Request"));
                        r.headers.push(
                            "Warning",
                            format!("399 {} \"{}\"", inner.name, e.to_string().replace('"', "'")),
                        );
                        reply_stateless(&inner, &req, r, (d.source, d.transport));
                    }
                }
            }
        }
    }
}

/// Overload control (RFC 3261 §21.5.4, the `[sip]` transaction budget): a permit for a new
/// server transaction, or `None` when `req` was answered 503 at once, with no transaction.
pub(super) fn admit(
    inner: &Arc<Inner>,
    req: &Request,
    via: &Via,
    source: SocketAddr,
    transport: Transport,
) -> Option<Permit> {
    let in_dialog = req.method == Method::Cancel
        || req
            .headers
            .get("To")
            .and_then(|t| crate::sip::NameAddr::parse(t).ok())
            .is_some_and(|na| na.tag().is_some());
    let trusted = inner.admission.is_trusted(&via.sent_by());
    match inner.admission.admit(source, in_dialog, trusted) {
        Ok(p) => Some(p),
        Err(why) => {
            let mut r = req.response(503, Some("Service Unavailable"));
            let retry = inner.admission.limits().retry_after_secs;
            r.headers.push("Retry-After", retry.to_string());
            let text = match why {
                Shed::Busy => "overloaded",
                Shed::SourceBusy => "too many requests in progress from this source",
            };
            r.headers
                .push("Warning", format!("399 {} \"{text}\"", inner.name));
            tracing::debug!(node = %inner.name, %source, method = %req.method.as_str(), "{text}: 503");
            reply_stateless(inner, req, r, (source, transport));
            None
        }
    }
}
