//! The UE's side of presence (3GPP TS 24.141 §5.1, RFC 3903, RFC 3856, RFC 6665): it
//! publishes its own status (a PIDF, RFC 3863, with an RPID activity and note, RFC 4480) and
//! watches other users (SUBSCRIBE to `presence`, each NOTIFY read back into a PIDF).

use super::Ue;
use crate::presence::pidf::{Activity, Basic, Person, Pidf, PidfLimits, Tuple};
use crate::presence::rlmi::{parse_body, RlmiLimits};
use crate::sip::{IncomingRequest, Method, Request, Response};

/// A status as `rcslab ue ... status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Available (basic open, no activity).
    Open,
    /// Away (open, RPID `away`).
    Away,
    /// Busy (open, RPID `busy`).
    Busy,
    /// Offline (basic closed).
    Closed,
}

impl Status {
    /// Reads `open` / `available`, `away`, `busy`, `closed` / `offline`.
    pub fn parse(s: &str) -> Option<Status> {
        match s.to_ascii_lowercase().as_str() {
            "open" | "available" | "online" => Some(Status::Open),
            "away" => Some(Status::Away),
            "busy" => Some(Status::Busy),
            "closed" | "offline" => Some(Status::Closed),
            _ => None,
        }
    }
}

/// The PIDF the UE publishes for `status` (its device as one tuple, the person's activity and
/// note).
pub fn document(entity: &str, contact: &str, status: Status, note: Option<&str>) -> Pidf {
    let mut doc = Pidf::empty(entity);
    let basic = if status == Status::Closed {
        Basic::Closed
    } else {
        Basic::Open
    };
    let mut t = Tuple::new("rcslab-ue", basic);
    t.contact = Some(crate::presence::pidf::Contact {
        uri: contact.to_string(),
        priority: None,
    });
    doc.tuples.push(t);
    let activities = match status {
        Status::Away => vec![Activity::Away],
        Status::Busy => vec![Activity::Busy],
        _ => Vec::new(),
    };
    if !activities.is_empty() || note.is_some() {
        doc.person = Some(Person {
            id: "p1".into(),
            activities,
            note: note.map(str::to_string),
            timestamp: None,
        });
    }
    doc
}

/// One line for a presence document, as `rcslab ue ... watch` prints it:
/// `open`, `open away (in a meeting)`, `closed (last seen 2026-12-01T10:00:00Z)`.
pub fn describe(doc: &Pidf) -> String {
    let mut s = if doc.is_open() { "open" } else { "closed" }.to_string();
    if let Some(p) = &doc.person {
        for a in &p.activities {
            let word = match a {
                Activity::Away => "away".to_string(),
                Activity::Busy => "busy".to_string(),
                Activity::OnThePhone => "on-the-phone".to_string(),
                Activity::Meeting => "meeting".to_string(),
                Activity::Meal => "meal".to_string(),
                Activity::Vacation => "vacation".to_string(),
                Activity::Unknown => "unknown".to_string(),
                Activity::Token(t) => t.clone(),
                Activity::Other(t) => t.clone(),
            };
            s.push(' ');
            s.push_str(&word);
        }
        if let Some(n) = &p.note {
            s.push_str(&format!(" ({n})"));
        }
    }
    if !doc.is_open() {
        if let Some(ts) = doc
            .tuples
            .iter()
            .filter_map(|t| t.timestamp.as_deref())
            .max()
        {
            s.push_str(&format!(" (last seen {ts})"));
        }
    }
    s
}

/// What a NOTIFY said: who, the subscription state, and the document when there was one.
#[derive(Debug, Clone)]
pub struct PresenceNotice {
    /// The presentity (the NOTIFY's From).
    pub presentity: String,
    /// `Subscription-State` as sent (`active;expires=3600`, `pending`, `terminated;...`).
    pub state: String,
    /// The PIDF, when the NOTIFY carried one that parses.
    pub document: Option<Pidf>,
}

/// Reads a NOTIFY for the presence event; `None` for anything else.
pub fn notice(req: &Request) -> Option<PresenceNotice> {
    if req.method != Method::Notify
        || !req
            .headers
            .get("Event")
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("presence"))
    {
        return None;
    }
    let presentity = req
        .headers
        .get("From")
        .and_then(|f| crate::sip::NameAddr::parse(f).ok())
        .map(|na| na.uri.aor())
        .unwrap_or_default();
    let document = (!req.body.is_empty())
        .then(|| Pidf::parse(&req.body, &PidfLimits::default()).ok())
        .flatten();
    Some(PresenceNotice {
        presentity,
        state: req
            .headers
            .get("Subscription-State")
            .unwrap_or_default()
            .to_string(),
        document,
    })
}

/// Reads a presence NOTIFY, a single presentity's (RFC 3856) or a list's (RFC 4662: one
/// notice per resource the RLMI lists, its instance state and document); `None` for anything
/// else. A list body that does not parse gives no notices.
pub fn notices(req: &Request) -> Option<Vec<PresenceNotice>> {
    let single = notice(req)?;
    let ct = req.headers.get("Content-Type").unwrap_or_default();
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/related")
    {
        return Some(vec![single]);
    }
    let Ok(body) = parse_body(ct, &req.body, &RlmiLimits::default()) else {
        return Some(Vec::new());
    };
    let docs: std::collections::HashMap<String, Pidf> = body.documents.into_iter().collect();
    Some(
        body.rlmi
            .resources
            .iter()
            .map(|r| {
                let inst = r.instances.first();
                let state = inst.map(|i| i.state.to_string()).unwrap_or_default();
                let document = inst
                    .and_then(|i| i.cid.as_ref())
                    .and_then(|cid| docs.get(cid).cloned());
                PresenceNotice {
                    presentity: r.uri.clone(),
                    state,
                    document,
                }
            })
            .collect(),
    )
}

/// What `rcslab ue ... watch` prints for a notice: the document as [`describe`] says it, or
/// `pending`, or the terminated state.
pub fn notice_line(n: &PresenceNotice) -> String {
    let what = match &n.document {
        Some(d) => describe(d),
        None if n.state.starts_with("pending") => "pending".into(),
        None if n.state.starts_with("terminated") => n.state.clone(),
        None => "no presence yet".into(),
    };
    format!("{}: {what}", n.presentity)
}

impl Ue {
    /// Subscribes to the user's own resource list `name` (RFC 4662 §4.4; the GSMA RCS list
    /// URI `sip:USER;pres-list=NAME@DOMAIN`): `Supported: eventlist`, and an `Accept` with the
    /// list body's types. The request and the final answer.
    pub async fn subscribe_list(&mut self, name: &str, expires: u32) -> (Request, Response) {
        let uri = crate::presence::rls::list_uri(&self.cfg.impu, name)
            .unwrap_or_else(|| self.cfg.impu.clone());
        let mut r = self.new_request(Method::Subscribe, &uri);
        r.headers.push("Event", "presence");
        r.headers.push("Supported", "eventlist");
        r.headers.push(
            "Accept",
            "application/pidf+xml, application/rlmi+xml, multipart/related",
        );
        r.headers.push("Expires", expires.to_string());
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        let resp = self.send(r.clone()).await;
        (r, resp)
    }

    /// Publishes `status` for `expires` seconds: an initial publication (RFC 3903 §4.1), or
    /// with `if_match` (the entity-tag of an earlier one) a modification of it (§4.4). The
    /// final answer, with `SIP-ETag` when it was 200 (412: the entity-tag is unknown).
    pub async fn publish(
        &mut self,
        status: Status,
        note: Option<&str>,
        expires: u32,
        if_match: Option<&str>,
    ) -> Response {
        let doc = document(&self.cfg.impu.clone(), &self.contact_uri(), status, note);
        let impu = self.cfg.impu.clone();
        let mut r = self.new_request(Method::Publish, &impu);
        r.headers.push("Event", "presence");
        if let Some(tag) = if_match {
            r.headers.push("SIP-If-Match", tag);
        }
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Content-Type", "application/pidf+xml");
        r.body = bytes::Bytes::from(doc.to_xml().into_bytes());
        self.send(r).await
    }

    /// Removes a publication (RFC 3903 §4.5: `SIP-If-Match`, `Expires: 0`, no body).
    pub async fn unpublish(&mut self, etag: &str) -> Response {
        let impu = self.cfg.impu.clone();
        let mut r = self.new_request(Method::Publish, &impu);
        r.headers.push("Event", "presence");
        r.headers.push("SIP-If-Match", etag);
        r.headers.push("Expires", "0");
        self.send(r).await
    }

    /// Subscribes to `target`'s presence (RFC 3856 §6.1, RFC 6665 §4.1.2.1) for `expires`
    /// seconds: the request (its dialog identifiers) and the final answer. NOTIFYs come in
    /// as requests ([`Ue::next_request`]; [`notice`] reads them).
    pub async fn subscribe_presence(&mut self, target: &str, expires: u32) -> (Request, Response) {
        let mut r = self.new_request(Method::Subscribe, target);
        r.headers.push("Event", "presence");
        r.headers.push("Accept", "application/pidf+xml");
        r.headers.push("Expires", expires.to_string());
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        let resp = self.send(r.clone()).await;
        (r, resp)
    }
}

/// Answers a NOTIFY 200 (RFC 6665 §4.1.3) with the To tag it carries.
pub fn answer_notify(inc: IncomingRequest) {
    let mut ok = inc.request.response(200, None);
    ok.ensure_to_tag();
    inc.tx.respond(ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn away_with_a_note_reads_back_as_the_watcher_prints_it() {
        let doc = document(
            "sip:alice@ims.lab",
            "sip:alice@127.0.0.1:5062",
            Status::Away,
            Some("in a meeting"),
        );
        let back = Pidf::parse(doc.to_xml().as_bytes(), &PidfLimits::default()).unwrap();
        assert_eq!(describe(&back), "open away (in a meeting)");
        let closed = document("sip:a@h", "sip:a@1.2.3.4", Status::Closed, None);
        assert_eq!(describe(&closed), "closed");
        assert_eq!(Status::parse("Offline"), Some(Status::Closed));
        assert_eq!(Status::parse("dancing"), None);
    }
}
