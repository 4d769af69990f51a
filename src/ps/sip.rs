//! The presence server's SIP side, socket-free: what a PUBLISH (RFC 3903 §6) and a SUBSCRIBE
//! (RFC 6665 §4.2.1, RFC 3856 §6) must carry before the cores in [`crate::presence`] see them,
//! the typed refusals with their status, the subscription dialog the PS holds as UAS
//! (RFC 3261 §12.1.1) and the NOTIFYs sent in it (RFC 3261 §12.2.1.1, RFC 6665 §4.2.2).
//!
//! Who is who, as the S-CSCF hands a terminating request to an AS over ISC (TS 24.229
//! §5.4.3.3, RFC 5502): the Request-URI is still the public identity that was asked for (the
//! S-CSCF retargets to contacts only after the iFC chain), and P-Served-User names the served
//! user; the presentity is P-Served-User's AOR, else the Request-URI's. The sender is the
//! P-Asserted-Identity the P-CSCF asserted (TS 24.229 §5.2.6.3.3): the publisher must be the
//! presentity itself (RFC 3903 §6 step 1: the ESC authorizes the publisher), and the watcher
//! of a SUBSCRIBE is whom the presentity's rules name.

use crate::presence::pidf::CONTENT_TYPE as PIDF;
use crate::presence::rls::ListNotify;
use crate::presence::subscription::{DialogId, Notify, SubscriptionState};
use crate::sip::{NameAddr, Request, Response, Uri};

/// The event package the PS serves (RFC 3856 §6.1).
pub const EVENT: &str = "presence";
/// The option tag of resource lists (RFC 4662 §4.4).
pub const EVENTLIST: &str = "eventlist";

/// A request the PS refuses before the cores see it, with the status it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsRequestError {
    /// `Event` missing or not `presence` (RFC 6665 §8.2.5, RFC 3903 §6 step 2): 489 with
    /// `Allow-Events: presence`.
    #[error("event package {0:?} is not served here (Allow-Events: presence)")]
    BadEvent(String),
    /// A body that is not `application/pidf+xml` (RFC 3903 §6 step 3, RFC 3261 §21.4.13):
    /// 415 with `Accept`.
    #[error("Content-Type {0:?} is not application/pidf+xml")]
    UnsupportedMedia(String),
    /// `Expires` is not a number of seconds: 400.
    #[error("Expires {0:?} is not a number of seconds")]
    BadExpires(String),
    /// A SUBSCRIBE without a Contact (RFC 6665 §4.1.2.1: a dialog needs a remote target): 400.
    #[error("SUBSCRIBE without a Contact")]
    NoContact,
    /// No presentity could be read from P-Served-User or the Request-URI: 400.
    #[error("no presentity in P-Served-User or the Request-URI")]
    NoPresentity,
    /// No asserted identity: the PS does not know who sends (TS 24.229 §5.2.6.3.3): 403.
    #[error("no P-Asserted-Identity: the sender is unknown")]
    NotAsserted,
    /// The publisher is not the presentity (RFC 3903 §6 step 1): 403.
    #[error("{asserted} may not publish the presence of {presentity}")]
    NotPresentity {
        /// Who sent it.
        asserted: String,
        /// Whose state it would change.
        presentity: String,
    },
    /// The watcher's `Accept` lists no PIDF (RFC 3856 §6.7, RFC 6665 §8.2.4): 406.
    #[error("Accept {0:?} lists no application/pidf+xml")]
    NotAcceptable(String),
    /// A SUBSCRIBE to a list without `Supported: eventlist` (RFC 4662 §4.4): 421 with
    /// `Require: eventlist`.
    #[error("{0} is a resource list: subscribing to it needs Supported: eventlist (RFC 4662)")]
    EventlistRequired(String),
    /// A list SUBSCRIBE whose `Accept` lacks `multipart/related` or `application/rlmi+xml`
    /// (RFC 4662 §4.4 asks the subscriber for both): 406.
    #[error("Accept {0:?} lacks multipart/related and application/rlmi+xml")]
    ListNotAcceptable(String),
    /// Someone else's list: only its owner may subscribe to it: 403.
    #[error("{watcher} may not subscribe to a list of {owner}")]
    NotListOwner {
        /// Who asked.
        watcher: String,
        /// Whose list it is.
        owner: String,
    },
    /// The owner has no list by that name: 404.
    #[error("{owner} has no list {name:?}")]
    NoSuchList {
        /// The owner (who asked).
        owner: String,
        /// The list name.
        name: String,
    },
}

impl PsRequestError {
    /// The SIP status of the answer.
    pub fn status_code(&self) -> u16 {
        match self {
            PsRequestError::BadEvent(_) => 489,
            PsRequestError::UnsupportedMedia(_) => 415,
            PsRequestError::BadExpires(_)
            | PsRequestError::NoContact
            | PsRequestError::NoPresentity => 400,
            PsRequestError::NotAsserted
            | PsRequestError::NotPresentity { .. }
            | PsRequestError::NotListOwner { .. } => 403,
            PsRequestError::NotAcceptable(_) | PsRequestError::ListNotAcceptable(_) => 406,
            PsRequestError::EventlistRequired(_) => 421,
            PsRequestError::NoSuchList { .. } => 404,
        }
    }

    /// Headers the answer carries besides the Warning with the reason.
    pub fn extra_headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            PsRequestError::BadEvent(_) => vec![("Allow-Events", EVENT)],
            PsRequestError::UnsupportedMedia(_) => vec![("Accept", PIDF)],
            PsRequestError::EventlistRequired(_) => vec![("Require", EVENTLIST)],
            _ => Vec::new(),
        }
    }
}

/// The event package of `req` (the token before any parameter, lower case), if any.
pub fn event_package(req: &Request) -> Option<String> {
    let e = req.headers.get("Event")?;
    Some(
        e.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// RFC 3856 §6.1 / RFC 3903 §6 step 2: `Event: presence`, else [`PsRequestError::BadEvent`].
pub fn check_event(req: &Request) -> Result<(), PsRequestError> {
    match event_package(req) {
        Some(p) if p == EVENT => Ok(()),
        Some(p) => Err(PsRequestError::BadEvent(p)),
        None => Err(PsRequestError::BadEvent(String::new())),
    }
}

/// The `Expires` header: `None` when absent.
pub fn expires_of(req: &Request) -> Result<Option<u32>, PsRequestError> {
    match req.headers.get("Expires") {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| PsRequestError::BadExpires(v.to_string())),
    }
}

/// The presentity: P-Served-User's AOR (RFC 5502), else the Request-URI's.
pub fn presentity_of(req: &Request) -> Result<String, PsRequestError> {
    req.headers
        .get("P-Served-User")
        .and_then(|v| NameAddr::parse(v).ok())
        .map(|na| na.uri.aor())
        .or_else(|| Uri::parse(&req.uri).ok().map(|u| u.aor()))
        .filter(|a| !a.is_empty())
        .ok_or(PsRequestError::NoPresentity)
}

/// Every asserted identity of the sender (a `sip:` and a `tel:` one, TS 24.229 §5.2.6.3.3),
/// as AORs; the `sip:` ones first.
pub fn asserted_identities(req: &Request) -> Vec<String> {
    let mut v: Vec<String> = req
        .headers
        .values("P-Asserted-Identity")
        .into_iter()
        .filter_map(|v| NameAddr::parse(v).ok())
        .map(|na| na.uri.aor())
        .collect();
    v.sort_by_key(|a| !a.starts_with("sip"));
    v
}

/// What the compositor needs from a PUBLISH (RFC 3903 §6 steps 1-5), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishInput {
    /// Whose state it is.
    pub presentity: String,
    /// `SIP-If-Match`.
    pub if_match: Option<String>,
    /// `Expires`.
    pub expires: Option<u32>,
    /// The PIDF body, when there is one (`application/pidf+xml` checked).
    pub body: Option<Vec<u8>>,
}

/// Checks a PUBLISH in RFC 3903 §6 order: the publisher, the event package, the body's type.
pub fn publish_input(req: &Request) -> Result<PublishInput, PsRequestError> {
    let presentity = presentity_of(req)?;
    let asserted = asserted_identities(req);
    if asserted.is_empty() {
        return Err(PsRequestError::NotAsserted);
    }
    if !asserted.contains(&presentity) {
        return Err(PsRequestError::NotPresentity {
            asserted: asserted.join(", "),
            presentity,
        });
    }
    check_event(req)?;
    let body = if req.body.is_empty() {
        None
    } else {
        let ct = req.headers.get("Content-Type").unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(PIDF) {
            return Err(PsRequestError::UnsupportedMedia(ct.to_string()));
        }
        Some(req.body.to_vec())
    };
    Ok(PublishInput {
        presentity,
        if_match: req
            .headers
            .get("SIP-If-Match")
            .map(|s| s.trim().to_string()),
        expires: expires_of(req)?,
        body,
    })
}

/// The watcher of a SUBSCRIBE: its asserted identity (a `sip:` one first), else From's AOR
/// when nobody asserted one (a node of the core subscribing).
pub fn watcher_of(req: &Request) -> Option<String> {
    asserted_identities(req).into_iter().next().or_else(|| {
        req.headers
            .get("From")
            .and_then(|f| NameAddr::parse(f).ok())
            .map(|na| na.uri.aor())
    })
}

/// RFC 3856 §6.7: a SUBSCRIBE's `Accept`, when present, must list the PIDF (or a wildcard).
pub fn check_accept(req: &Request) -> Result<(), PsRequestError> {
    let values = req.headers.values("Accept");
    if values.is_empty() {
        return Ok(());
    }
    let ok = values.iter().any(|v| {
        let m = v.split(';').next().unwrap_or("").trim();
        m.eq_ignore_ascii_case(PIDF) || m == "*/*" || m.eq_ignore_ascii_case("application/*")
    });
    if ok {
        Ok(())
    } else {
        Err(PsRequestError::NotAcceptable(values.join(", ")))
    }
}

/// True when an option-tag header (`Supported`, `Require`) of `req` lists `tag`.
pub fn lists_option(req: &Request, header: &str, tag: &str) -> bool {
    req.headers
        .values(header)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// RFC 4662 §4.4: a list SUBSCRIBE says `Supported: eventlist`, and its `Accept`, when
/// present, lists `multipart/related` and `application/rlmi+xml` (or wildcards).
pub fn check_list_subscribe(req: &Request, list: &str) -> Result<(), PsRequestError> {
    if !lists_option(req, "Supported", EVENTLIST) {
        return Err(PsRequestError::EventlistRequired(list.to_string()));
    }
    let values = req.headers.values("Accept");
    if values.is_empty() {
        return Ok(());
    }
    let media: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let has = |t: &str| media.iter().any(|m| m == t || m == "*/*");
    if has("multipart/related") && (has("application/rlmi+xml") || has("application/*")) {
        Ok(())
    } else {
        Err(PsRequestError::ListNotAcceptable(values.join(", ")))
    }
}

/// The subscription dialog as the PS holds it, UAS side (RFC 3261 §12.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyDialog {
    /// Call-ID, our tag, the watcher's tag.
    pub id: DialogId,
    /// Our From in NOTIFYs: the SUBSCRIBE's To with our tag.
    pub local: String,
    /// Our To in NOTIFYs: the SUBSCRIBE's From.
    pub remote: String,
    /// Where NOTIFYs go: the SUBSCRIBE's Contact URI (RFC 3261 §12.1.1 remote target).
    pub remote_target: String,
    /// The route set: the SUBSCRIBE's Record-Route values, in order (§12.1.1, UAS side).
    pub route_set: Vec<String>,
    /// The last CSeq we sent (NOTIFYs count up from 1, §12.2.1.1).
    pub cseq: u32,
}

impl NotifyDialog {
    /// The dialog an initial SUBSCRIBE opens when we answer it with To tag `tag`.
    pub fn from_subscribe(req: &Request, tag: &str) -> Result<NotifyDialog, PsRequestError> {
        let remote_target = req
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .ok_or(PsRequestError::NoContact)?;
        let from = req.headers.get("From").unwrap_or("").to_string();
        let remote_tag = NameAddr::parse(&from)
            .ok()
            .and_then(|na| na.tag().map(str::to_string))
            .unwrap_or_default();
        let to = req.headers.get("To").unwrap_or("").to_string();
        Ok(NotifyDialog {
            id: DialogId::new(req.headers.get("Call-ID").unwrap_or(""), tag, &remote_tag),
            local: format!("{to};tag={tag}"),
            remote: from,
            remote_target,
            route_set: req
                .headers
                .values("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cseq: 0,
        })
    }

    /// The NOTIFY for `n` in this dialog (RFC 3261 §12.2.1.1, RFC 6665 §4.2.2, RFC 3856 §6.7):
    /// Request-URI the remote target, Route the route set, the dialog's From/To/Call-ID, the
    /// next CSeq, `Event: presence`, `Subscription-State`, our `contact`, and the PIDF when
    /// the watcher may see it. Its top Via is the sender's to add.
    pub fn notify_request(&mut self, n: &Notify, contact: &str) -> Request {
        let content = n
            .content()
            .map(|(ct, xml)| (ct.to_string(), xml.into_bytes()));
        self.request(&n.state, content, false, contact)
    }

    /// The NOTIFY for a list subscription (RFC 4662 §5.1): as [`Self::notify_request`], with
    /// `Require: eventlist` and the `multipart/related` body.
    pub fn list_notify_request(&mut self, n: &ListNotify, contact: &str) -> Request {
        let content = n
            .body
            .as_ref()
            .map(|b| (b.content_type.clone(), b.body.clone()));
        self.request(&n.state, content, true, contact)
    }

    fn request(
        &mut self,
        state: &SubscriptionState,
        content: Option<(String, Vec<u8>)>,
        eventlist: bool,
        contact: &str,
    ) -> Request {
        self.cseq += 1;
        let mut r = Request::new(crate::sip::Method::Notify, self.remote_target.clone());
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", self.local.clone());
        r.headers.push("To", self.remote.clone());
        r.headers.push("Call-ID", self.id.call_id.clone());
        r.headers.push("CSeq", format!("{} NOTIFY", self.cseq));
        for route in &self.route_set {
            r.headers.push("Route", route.clone());
        }
        r.headers.push("Contact", contact);
        r.headers.push("Event", EVENT);
        if eventlist {
            r.headers.push("Require", EVENTLIST);
        }
        r.headers.push("Subscription-State", state.to_string());
        if let Some((ct, body)) = content {
            r.headers.push("Content-Type", ct);
            r.body = bytes::Bytes::from(body);
        }
        r
    }
}

/// True when `state` ends the subscription (its dialog goes with this NOTIFY).
pub fn is_final(state: &SubscriptionState) -> bool {
    matches!(state, SubscriptionState::Terminated { .. })
}

/// The dialog id of a SUBSCRIBE inside a dialog we answered: our tag is its To tag.
pub fn in_dialog_id(req: &Request) -> DialogId {
    let tag = |h: &str| {
        req.headers
            .get(h)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|na| na.tag().map(str::to_string))
            .unwrap_or_default()
    };
    DialogId::new(
        req.headers.get("Call-ID").unwrap_or(""),
        &tag("To"),
        &tag("From"),
    )
}

/// The dialog id of a NOTIFY we built: our tag is its From tag, the watcher's its To tag.
pub fn in_dialog_id_of_notify(notify: &Request) -> DialogId {
    let tag = |h: &str| {
        notify
            .headers
            .get(h)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|na| na.tag().map(str::to_string))
            .unwrap_or_default()
    };
    DialogId::new(
        notify.headers.get("Call-ID").unwrap_or(""),
        &tag("From"),
        &tag("To"),
    )
}

/// The 200 to an initial SUBSCRIBE (RFC 6665 §4.2.1.1, RFC 3261 §12.1.1): our To tag, the
/// Record-Route copied, our Contact, the granted Expires.
pub fn subscribe_ok(req: &Request, dialog: &NotifyDialog, contact: &str, expires: u32) -> Response {
    let mut ok = req.response(200, None);
    ok.headers.set("To", dialog.local.clone());
    for rr in req.headers.get_all("Record-Route") {
        ok.headers.push("Record-Route", rr.to_string());
    }
    ok.headers.push("Contact", contact);
    ok.headers.push("Expires", expires.to_string());
    ok
}

#[cfg(test)]
mod tests;

/// Why the PS refuses a request that did not come from the core: 403 with this reason in a
/// Warning.
///
/// Requests reach an AS over ISC from the S-CSCF (TS 24.229 §5.7.1, TS 23.218 §6), inside the
/// trust domain whose edge is the P-CSCF (§4.4); only there is P-Asserted-Identity worth
/// anything. The PS's Contact is a plain address any UE learns from a 200 or a NOTIFY, so a
/// request sent straight to it (an unsubscribe with someone's Call-ID and tags, a PUBLISH
/// with a P-Asserted-Identity of its own making) skips the P-CSCF and the S-CSCF and must not
/// be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} from {from} did not come through the S-CSCF: the PS takes requests from the core only")]
pub struct NotFromCore {
    /// The request's method.
    pub method: String,
    /// Where it came from.
    pub from: std::net::SocketAddr,
}

/// [`NotFromCore`] unless `from_core` (the request's source is a node of the core: the
/// endpoint's trusted S-CSCFs, [`crate::sip::Endpoint::is_trusted`]).
pub fn check_from_core(
    req: &Request,
    source: std::net::SocketAddr,
    from_core: bool,
) -> Result<(), NotFromCore> {
    if from_core {
        Ok(())
    } else {
        Err(NotFromCore {
            method: req.method.to_string(),
            from: source,
        })
    }
}

#[cfg(test)]
mod from_core_tests {
    use super::*;

    #[test]
    fn only_a_request_from_the_core_passes() {
        let req = Request::new(crate::sip::Method::Subscribe, "sip:127.0.0.1:5070");
        let at: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(check_from_core(&req, at, true), Ok(()));
        let e = check_from_core(&req, at, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SUBSCRIBE from 127.0.0.1:40000 did not come through the S-CSCF: the PS takes \
             requests from the core only"
        );
    }
}
