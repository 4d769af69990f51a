//! A SIP dialog as the focus holds it (RFC 3261 §12): enough to send requests in it — NOTIFYs
//! of a conference or refer subscription, a BYE to a member the chairman removes.

use crate::sip::{Endpoint, Method, NameAddr, Request, Response, Transport};

/// One dialog, our side of it.
#[derive(Debug, Clone)]
pub(super) struct Dialog {
    pub call_id: String,
    /// Our From in requests we send (with our tag).
    pub local: String,
    /// Their To in requests we send (with their tag).
    pub remote: String,
    /// Their Contact (the remote target).
    pub target: String,
    /// The route set, in the order requests carry it.
    pub routes: Vec<String>,
    /// Our last CSeq.
    pub cseq: u32,
}

fn contact_uri(h: Option<&str>) -> Option<String> {
    h.and_then(|c| NameAddr::parse(c).ok())
        .map(|na| na.uri.to_string())
}

impl Dialog {
    /// The dialog a request we answered with `ok` made (we are the UAS, §12.1.1): route set
    /// from its Record-Route in order.
    pub fn as_uas(req: &Request, ok: &Response) -> Dialog {
        Dialog {
            call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
            local: ok.headers.get("To").unwrap_or("").to_string(),
            remote: req.headers.get("From").unwrap_or("").to_string(),
            target: contact_uri(req.headers.get("Contact")).unwrap_or_default(),
            routes: req
                .headers
                .values("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cseq: 0,
        }
    }

    /// The dialog our request `req` made with its 2xx `ok` (we are the UAC, §12.1.2): route
    /// set from the 2xx's Record-Route reversed.
    pub fn as_uac(req: &Request, ok: &Response) -> Dialog {
        let mut routes: Vec<String> = ok
            .headers
            .values("Record-Route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        routes.reverse();
        let cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Dialog {
            call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
            local: req.headers.get("From").unwrap_or("").to_string(),
            remote: ok.headers.get("To").unwrap_or("").to_string(),
            target: contact_uri(ok.headers.get("Contact")).unwrap_or_else(|| req.uri.clone()),
            routes,
            cseq,
        }
    }

    /// The next request in the dialog (its CSeq taken).
    pub fn request(&mut self, ep: &Endpoint, method: Method) -> Request {
        self.cseq += 1;
        let mut r = Request::new(method.clone(), self.target.clone());
        r.headers.push("Via", ep.new_via(Transport::Tcp));
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", self.local.clone());
        r.headers.push("To", self.remote.clone());
        r.headers.push("Call-ID", self.call_id.clone());
        r.headers.push("CSeq", format!("{} {method}", self.cseq));
        for route in &self.routes {
            r.headers.push("Route", route.clone());
        }
        r
    }
}
