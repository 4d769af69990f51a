//! Parallel forking (RFC 3261 §16.6-§16.7): one request sent to several targets at once (a
//! user registered from two clients), their responses merged into one answer.
//!
//! ```text
//!            ┌── branch 1 ──> contact 1      1xx: relayed as they come (§16.7 step 5)
//! request ──>┤                               2xx: relayed; an INVITE's other branches are
//!            └── branch 2 ──> contact 2           CANCELled (§16.10), later 2xx relayed too
//!                                            6xx: CANCEL the rest; else the best final
//!                                                 once every branch ended (§16.7 step 6)
//! ```

use std::net::SocketAddr;

use tokio::sync::mpsc;

use super::cancel_forwarded;
use crate::sip::endpoint::PendingInvite;
use crate::sip::{Endpoint, Method, Request, Response, ServerTx, Transport};

/// One target of a forked request: the request as forwarded (our Via on top) and where to.
pub struct Branch {
    /// The request for this branch.
    pub request: Request,
    /// Next hop.
    pub dest: SocketAddr,
    /// Transport to it.
    pub transport: Transport,
}

/// Forwards `branches` in parallel and relays the merged responses on `server`. One branch is
/// plain proxying. Returns the final response relayed upstream.
pub async fn fork(ep: &Endpoint, server: &ServerTx, branches: Vec<Branch>) -> Option<Response> {
    let is_invite = branches
        .first()
        .is_some_and(|b| b.request.method == Method::Invite);
    // The branch of the request we received (below our Via): CANCELs find the branches by it.
    let incoming_branch = branches
        .first()
        .and_then(|b| {
            b.request
                .headers
                .values("Via")
                .get(1)
                .map(|v| v.to_string())
        })
        .and_then(|v| crate::sip::Via::parse(&v).ok())
        .and_then(|v| v.branch().map(str::to_string))
        .filter(|_| is_invite);
    if branches.len() == 1 {
        let b = branches.into_iter().next()?;
        return super::proxy_to(ep, server, b.request, b.dest, b.transport).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Response)>();
    let mut pending: Vec<Option<PendingInvite>> = Vec::new();
    for (i, b) in branches.into_iter().enumerate() {
        let p = PendingInvite {
            forwarded: b.request.clone(),
            dest: b.dest,
            transport: b.transport,
        };
        if let Some(ib) = &incoming_branch {
            ep.track_invite(ib, p.clone());
        }
        pending.push(Some(p));
        let mut client = ep.send_request(b.request, b.dest, b.transport);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(r) = client.next().await {
                if tx.send((i, r)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut finals: Vec<Response> = Vec::new();
    let mut answered: Option<Response> = None;
    while let Some((i, mut resp)) = rx.recv().await {
        if resp.status == 100 {
            continue;
        }
        resp.headers.pop_first_value("Via");
        if resp.status < 200 {
            if answered.is_none() {
                server.respond(resp);
            }
            continue;
        }
        let ended = pending.get_mut(i).and_then(Option::take);
        if resp.is_success() {
            if answered.is_none() {
                server.respond(resp.clone());
                answered = Some(resp);
                if !is_invite {
                    // A non-INVITE cannot be cancelled; the other branches end on their own.
                    break;
                }
                cancel_all(ep, &mut pending).await;
            } else if ended.is_some() {
                // Every 2xx to an INVITE goes upstream (§16.7 step 5): the caller ACKs and
                // hangs up the extra dialog itself.
                ep.send_response_by_via(&resp).await;
            }
            continue;
        }
        if resp.status >= 600 && answered.is_none() && is_invite {
            cancel_all(ep, &mut pending).await;
        }
        finals.push(resp);
        if pending.iter().all(Option::is_none) {
            break;
        }
    }
    if let Some(ib) = &incoming_branch {
        ep.untrack_invite(ib);
    }
    if answered.is_some() {
        return answered;
    }
    let best = best_response(finals)?;
    server.respond(best.clone());
    Some(best)
}

async fn cancel_all(ep: &Endpoint, pending: &mut [Option<PendingInvite>]) {
    for p in pending.iter_mut().filter_map(Option::take) {
        let ep = ep.clone();
        tokio::spawn(async move {
            cancel_forwarded(&ep, &p.forwarded, p.dest, p.transport).await;
        });
    }
}

/// RFC 3261 §16.7 step 6: a 6xx wins; otherwise the lowest class, and within it a response
/// from a UA over our own 408 for a branch that never answered; a 503 becomes 500.
pub fn best_response(finals: Vec<Response>) -> Option<Response> {
    let mut best = finals.into_iter().min_by_key(|r| {
        let class = if r.status >= 600 { 0 } else { r.status / 100 };
        (class, u16::from(r.status == 408), r.status)
    })?;
    if best.status == 503 {
        best.status = 500;
        best.reason = "Server Internal Error".into();
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> Response {
        let mut r = Request::new(Method::Invite, "sip:a@ims.lab");
        r.headers
            .push("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx");
        r.headers.push("CSeq", "1 INVITE");
        r.response(status, None)
    }

    #[test]
    fn best_response_prefers_6xx_then_lowest_class_then_real_answers() {
        let pick =
            |v: &[u16]| best_response(v.iter().map(|s| resp(*s)).collect()).map(|r| r.status);
        assert_eq!(pick(&[486, 603]), Some(603));
        assert_eq!(pick(&[408, 486]), Some(486));
        assert_eq!(pick(&[500, 480]), Some(480));
        assert_eq!(pick(&[503]), Some(500));
        assert_eq!(pick(&[]), None);
    }
}
