//! Small SIP helpers about dialogs and INVITE transactions (RFC 3261 §9.1, §12) that both
//! the CSCFs and the simulated UE use.

use super::{Endpoint, NameAddr, Request, Transport};

/// True for requests inside a dialog (To tag present, RFC 3261 §12.2).
pub fn in_dialog(req: &Request) -> bool {
    req.headers
        .get("To")
        .and_then(|t| NameAddr::parse(t).ok())
        .is_some_and(|na| na.tag().is_some())
}

/// Sends a CANCEL for an INVITE we forwarded (RFC 3261 §9.1: same Request-URI, Call-ID, From,
/// To, CSeq number, top Via and Route set) and waits for its answer.
pub async fn cancel_forwarded(
    ep: &Endpoint,
    inv: &Request,
    dest: std::net::SocketAddr,
    transport: Transport,
) {
    let c = inv.cancel();
    let _ = ep.send_request(c, dest, transport).final_response().await;
}
