//! The client's side of a chat session's SIP dialog (RFC 3261 §12): made from our INVITE and
//! its 2xx, and the requests sent in it.

use crate::sip::{Endpoint, Method, NameAddr, Request, Response};

use super::Dialog;

pub(super) fn dialog_from(invite: &Request, ok: &Response) -> Dialog {
    let mut routes: Vec<String> = ok
        .headers
        .values("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    routes.reverse();
    Dialog {
        call_id: invite.headers.get("Call-ID").unwrap_or("").to_string(),
        local: invite.headers.get("From").unwrap_or("").to_string(),
        remote: ok.headers.get("To").unwrap_or("").to_string(),
        target: ok
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .unwrap_or_else(|| invite.uri.clone()),
        routes,
        cseq: 1,
        focus: is_focus(ok.headers.get("Contact")),
    }
}

/// True when a Contact names a conference focus (RFC 4579 §3.3: the `isfocus` parameter).
pub(super) fn is_focus(contact: Option<&str>) -> bool {
    contact.is_some_and(|c| {
        c.rsplit('>')
            .next()
            .unwrap_or(c)
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("isfocus"))
    })
}

pub(super) fn build_in_dialog(
    ep: &Endpoint,
    t: crate::sip::Transport,
    d: &Dialog,
    method: Method,
    cseq: u32,
) -> Request {
    let mut r = Request::new(method.clone(), d.target.clone());
    r.headers.push("Via", ep.new_via(t));
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", d.local.clone());
    r.headers.push("To", d.remote.clone());
    r.headers.push("Call-ID", d.call_id.clone());
    r.headers.push("CSeq", format!("{cseq} {method}"));
    for route in &d.routes {
        r.headers.push("Route", route.clone());
    }
    r
}
