//! The Call Session Control Functions of TS 24.229: P-CSCF, I-CSCF and S-CSCF, each a
//! transaction-stateful SIP proxy (RFC 3261 §16) with its IMS duties, plus the pieces of
//! proxying they share.

pub mod icscf;
pub mod pcscf;
pub mod scscf;

use crate::sip::{ClientTx, Endpoint, Request, Response, ServerTx, Transport};

/// Builds the copy of `req` a proxy sends on (RFC 3261 §16.6): Max-Forwards decremented
/// (70 when absent) and our Via on top, with a loop-detection branch.
pub fn forward_copy(ep: &Endpoint, req: &Request, transport: Transport) -> Request {
    let mut out = req.clone();
    let mf = req.max_forwards().unwrap_or(71).saturating_sub(1);
    out.headers.set("Max-Forwards", mf.to_string());
    out.headers.push_front("Via", ep.proxy_via(req, transport));
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
        .get("Via")
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

/// The Expires a REGISTER asks for: the Contact parameter wins over the header (RFC 3261
/// §10.2.1.1); `None` when neither is given.
pub fn requested_expires(req: &Request) -> Option<u32> {
    for c in req.headers.values("Contact") {
        if let Ok(na) = crate::sip::NameAddr::parse(c) {
            if let Some(v) = na.params.value("expires") {
                return v.trim().parse().ok();
            }
        }
    }
    req.headers
        .get("Expires")
        .and_then(|v| v.trim().parse().ok())
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

/// Removes the surrounding quotes of a header value.
pub fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}
