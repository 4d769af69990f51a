//! The Call Session Control Functions of TS 24.229: P-CSCF, I-CSCF and S-CSCF, each a
//! transaction-stateful SIP proxy (RFC 3261 §16) with its IMS duties, plus the pieces of
//! proxying they share.

pub mod auth_guard;
pub mod bindings;
pub mod fork;
pub mod icscf;
pub mod ifc;
pub mod nonces;
pub mod pcscf;
pub mod regevent;
pub mod scscf;

use crate::diameter::codec::DiameterError;
use crate::sip::{ClientTx, Endpoint, Request, Response, ServerTx, Transport};

/// The Warning text of the 480 a CSCF answers when a Cx request (`cmd`: UAR, LIR, MAR, SAR)
/// got no answer, as Kamailio's ims_icscf / ims_registrar_scscf answer 480 "Temporarily
/// unavailable" on a Diameter failure. The Diameter link's own WARN line already named the
/// dead peer when it went down, so a request that merely meets a link still down logs at
/// DEBUG (a REGISTER flood must not flood the log); other failures (timeouts) log at WARN.
pub fn hss_unreachable(cmd: &str, user: &str, e: &DiameterError) -> String {
    if matches!(e, DiameterError::PeerDown { .. }) {
        tracing::debug!(%user, error = %e, "{cmd} not sent: the HSS link is down");
    } else {
        tracing::warn!(%user, error = %e, "{cmd} to the HSS failed");
    }
    format!("HSS unreachable ({cmd}): {e}")
}

/// Builds the copy of `req` a proxy sends on (RFC 3261 §16.6): Max-Forwards decremented
/// (70 when absent) and our Via on top. The branch carries the loop-detection hash of the
/// request as it was `received` (step 8), before this node edited its Route or Request-URI, so
/// a spiral through the same node (S-CSCF orig, then term) is not mistaken for a loop.
pub fn forward_copy(
    ep: &Endpoint,
    received: &Request,
    req: &Request,
    transport: Transport,
) -> Request {
    let mut out = req.clone();
    let mf = req.max_forwards().unwrap_or(71).saturating_sub(1);
    out.headers.set("Max-Forwards", mf.to_string());
    out.headers
        .push_front("Via", ep.proxy_via(received, transport));
    out
}

/// Relays every response of `client` back through `server` (RFC 3261 §16.7): pops our Via,
/// lets `edit` adjust it, and answers. Returns the final response as relayed.
pub async fn relay_responses(
    server: &ServerTx,
    mut client: ClientTx,
    mut edit: impl FnMut(&mut Response),
) -> Option<Response> {
    while let Some(mut resp) = client.next().await {
        if resp.status == 100 {
            // 100 Trying is hop by hop (§16.7 step 3): ours was already sent for INVITE.
            continue;
        }
        resp.headers.pop_first_value("Via");
        edit(&mut resp);
        let final_ = resp.status >= 200;
        server.respond(resp.clone());
        if final_ {
            return Some(resp);
        }
    }
    None
}

/// Forwards a response that matched no transaction (a 2xx retransmission) by its next Via,
/// after removing ours (RFC 3261 §16.7 step 9 / §18.2.2).
pub async fn forward_stray_response(ep: &Endpoint, mut resp: Response) {
    let ours = resp
        .headers
        .first_value("Via")
        .and_then(|v| crate::sip::Via::parse(v).ok())
        .map(|v| v.sent_by() == ep.sent_by())
        .unwrap_or(false);
    if !ours {
        return;
    }
    resp.headers.pop_first_value("Via");
    if resp.headers.has("Via") {
        ep.send_response_by_via(&resp).await;
    }
}

/// The longest expiry a REGISTER asks for any of its contacts (each Contact's `expires`
/// parameter, else the Expires header: RFC 3261 §10.3 step 7); `None` when nothing says. So
/// `Some(0)` means every contact asks to go: a de-registration.
pub fn requested_expires(req: &Request) -> Option<u32> {
    let header = header_expires(req);
    let per_contact: Vec<Option<u32>> = req
        .headers
        .values("Contact")
        .iter()
        .filter(|c| c.trim() != "*")
        .map(|c| contact_expires(c, header))
        .collect();
    if per_contact.is_empty() {
        return header;
    }
    per_contact.into_iter().flatten().max()
}

/// The REGISTER's `Expires` header, if any.
pub fn header_expires(req: &Request) -> Option<u32> {
    req.headers
        .get("Expires")
        .and_then(|v| v.trim().parse().ok())
}

/// The expiry one Contact asks for (RFC 3261 §10.3 step 7): its `expires` parameter, else
/// the request's Expires header (`header`); None when neither says (the registrar's default).
pub fn contact_expires(contact: &str, header: Option<u32>) -> Option<u32> {
    crate::sip::NameAddr::parse(contact)
        .ok()
        .and_then(|na| {
            na.params
                .value("expires")
                .and_then(|v| v.trim().parse().ok())
        })
        .or(header)
}

/// True for a REGISTER that removes bindings (`Expires: 0`, or `Contact: *`).
pub fn is_deregistration(req: &Request) -> bool {
    requested_expires(req) == Some(0)
        || req
            .headers
            .values("Contact")
            .iter()
            .any(|c| c.trim() == "*")
}

/// The `username` of an Authorization header, if any (the IMPI in IMS, TS 24.229 §5.1.1.2).
pub fn authorization_username(req: &Request) -> Option<String> {
    let v = req.headers.get("Authorization")?;
    crate::auth::digest::Credentials::parse(v)
        .ok()
        .map(|c| c.username)
}

/// A node's own SIP URI as it writes it for peers (Record-Route, Path, Service-Route,
/// Server-Name, Contact): an IP literal and port, so a peer reaches it without DNS (baresip and
/// Kamailio ignore /etc/hosts), and the transport that peer uses (RFC 3263 §4.1: UDP when no
/// `transport` parameter is given).
pub fn node_uri(ep: &Endpoint, user: Option<&str>, transport: Transport) -> String {
    node_uri_at(ep.local_addr(), user, transport)
}

/// [`node_uri`] for a node known by its address (a node of another process: `rcslab run`).
pub fn node_uri_at(a: std::net::SocketAddr, user: Option<&str>, transport: Transport) -> String {
    let host = match a.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    format!("sip:{user}{host}:{}{}", a.port(), transport.uri_param())
}

/// Removes the surrounding quotes of a header value.
pub fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// True when `uri` (a Route / Path / Record-Route value or bare URI) names this node: its port
/// is ours and its host is our lab name or our IP (RFC 3261 §16.4).
pub fn is_own_uri(uri: &str, ep: &Endpoint, name: &str) -> bool {
    let Ok(na) = crate::sip::NameAddr::parse(uri) else {
        return false;
    };
    let Some(sip) = na.uri.as_sip() else {
        return false;
    };
    let me = ep.local_addr();
    match sip.port {
        // A service name without a port (what an SRV lookup would resolve) names us.
        None => {
            sip.host.eq_ignore_ascii_case(name)
                || (me.port() == 5060 && sip.host == me.ip().to_string())
        }
        Some(port) => {
            port == me.port()
                && (sip.host.eq_ignore_ascii_case(name) || sip.host == me.ip().to_string())
        }
    }
}

/// RFC 3261 §16.4: pops the top Route when it names us, and any further ones that name us
/// too (a node that record-routed twice, like the S-CSCF as orig and term); returns the first.
pub fn pop_own_route(req: &mut Request, ep: &Endpoint, name: &str) -> Option<String> {
    pop_own_routes(req, ep, name).into_iter().next()
}

/// [`pop_own_route`], returning every Route value it popped, in the order they were.
pub fn pop_own_routes(req: &mut Request, ep: &Endpoint, name: &str) -> Vec<String> {
    let mut popped = Vec::new();
    while let Some(next) = req.headers.values("Route").first().map(|s| s.to_string()) {
        if !is_own_uri(&next, ep, name) {
            break;
        }
        req.headers.pop_first_value("Route");
        popped.push(next);
    }
    popped
}

/// RFC 6665 §4.3: a proxy that record-routed a subscription's SUBSCRIBE record-routes the
/// NOTIFYs of that subscription too. A subscriber may build its dialog from the first NOTIFY,
/// which can overtake the 200 (§4.1.2.4, §4.4.1); without our Record-Route there its route set
/// is empty and its refreshes skip the core. True for a NOTIFY inside a dialog whose route set
/// named us (`routed_here`: we popped our own Route, so we record-routed the dialog). A UA
/// that already holds the route set ignores a mid-dialog Record-Route (RFC 3261 §12.2).
pub fn record_routes_notify(req: &Request, routed_here: bool) -> bool {
    req.method == crate::sip::Method::Notify && routed_here && in_dialog(req)
}

/// RFC 3261 §16.6 step 6-7: the next hop is the top Route if any, else the Request-URI.
pub async fn next_hop(
    resolver: &crate::sip::resolve::Resolver,
    req: &Request,
) -> Option<(std::net::SocketAddr, Transport)> {
    match req.headers.values("Route").first() {
        Some(r) => resolver.resolve_str(r).await,
        None => resolver.resolve_str(&req.uri).await,
    }
}

// `in_dialog` and `cancel_forwarded` are SIP helpers the UE shares: they live in `sip`.
pub use crate::sip::dialog::{cancel_forwarded, in_dialog};

/// True for requests that create a dialog and so get Record-Route.
pub fn creates_dialog(req: &Request) -> bool {
    matches!(
        req.method,
        crate::sip::Method::Invite | crate::sip::Method::Subscribe | crate::sip::Method::Refer
    ) && !in_dialog(req)
}

/// Forwards `fwd` statefully to `dest` and relays every response back on `server`.
pub async fn proxy_to(
    ep: &Endpoint,
    server: &ServerTx,
    fwd: Request,
    dest: std::net::SocketAddr,
    transport: Transport,
) -> Option<Response> {
    proxy_to_with(ep, server, fwd, dest, transport, |_| {}).await
}

/// [`proxy_to`] with `edit` applied to each relayed response (an AS rewriting the SDP).
pub async fn proxy_to_with(
    ep: &Endpoint,
    server: &ServerTx,
    fwd: Request,
    dest: std::net::SocketAddr,
    transport: Transport,
    edit: impl FnMut(&mut Response),
) -> Option<Response> {
    // An INVITE stays cancellable until its final response (RFC 3261 §16.10).
    let incoming_branch = (fwd.method == crate::sip::Method::Invite)
        .then(|| {
            fwd.headers
                .values("Via")
                .get(1)
                .and_then(|v| crate::sip::Via::parse(v).ok())
        })
        .flatten()
        .and_then(|v| v.branch().map(str::to_string));
    if let Some(b) = &incoming_branch {
        ep.track_invite(
            b,
            crate::sip::endpoint::PendingInvite {
                forwarded: fwd.clone(),
                dest,
                transport,
            },
        );
    }
    let client = ep.send_request(fwd, dest, transport);
    let r = relay_responses(server, client, edit).await;
    if let Some(b) = &incoming_branch {
        ep.untrack_invite(b);
    }
    r
}

/// RFC 3261 §16.10: a CANCEL is answered 200 here and, when it matches an INVITE we forwarded
/// and is still pending, becomes a CANCEL of that forwarded INVITE (of each branch when we
/// forked); otherwise 481.
pub async fn handle_cancel(ep: &Endpoint, inc: crate::sip::IncomingRequest) {
    let req = &inc.request;
    let branch = req
        .headers
        .first_value("Via")
        .and_then(|v| crate::sip::Via::parse(v).ok())
        .and_then(|v| v.branch().map(str::to_string))
        .unwrap_or_default();
    let pending = ep.pending_invites(&branch);
    if pending.is_empty() {
        inc.tx.respond(req.response(481, None));
        return;
    }
    inc.tx.respond(req.response(200, None));
    for p in pending {
        cancel_forwarded(ep, &p.forwarded, p.dest, p.transport).await;
    }
}

/// Forwards an ACK for a 2xx (no transaction) to its next hop, as RFC 3261 §16.11 does for
/// any request a proxy forwards statelessly.
pub async fn forward_ack(
    ep: &Endpoint,
    resolver: &crate::sip::resolve::Resolver,
    mut ack: Request,
    name: &str,
) {
    let received = ack.clone();
    pop_own_route(&mut ack, ep, name);
    let Some((dest, t)) = next_hop(resolver, &ack).await else {
        tracing::debug!(node = ep.name(), "ACK with no resolvable next hop dropped");
        return;
    };
    let fwd = forward_copy(ep, &received, &ack, t);
    ep.send_stateless(&crate::sip::SipMessage::Request(fwd), dest, t)
        .await;
}

/// A response with a Warning saying why (RFC 3261 §20.43). `why` is a text or a typed error
/// (its `Display`), e.g. [`crate::rcs::ChatBodyError`] for a chat body that does not read.
pub fn reject(
    req: &Request,
    code: u16,
    node: &str,
    why: &(impl std::fmt::Display + ?Sized),
) -> Response {
    let mut r = req.response(code, None);
    if !r.headers.get("To").is_some_and(|t| t.contains("tag=")) {
        if let Some(to) = r.headers.get("To").map(str::to_string) {
            r.headers
                .set("To", format!("{to};tag={}", crate::sip::new_tag()));
        }
    }
    r.headers.push(
        "Warning",
        format!("399 {node} \"{}\"", why.to_string().replace('"', "'")),
    );
    r
}
