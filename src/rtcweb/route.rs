//! The RTCWeb gateway's routing function (patent KR101499354B1, figure 5 module 530 and
//! figure 6): the table `<sender, receiver, session-id>` and the translation rules.
//!
//! Figure 6, as this module decides it:
//!
//! ```text
//!  S602 message in (SIP from the S-CSCF, or a web frame)
//!    |
//!  S604 session message? --no--> S620 straight to the web client (NOTIFY, MESSAGE, ...)
//!    | yes
//!  S606 destination web or IMS?  (a web user attached to this gateway, else IMS)
//!    +-- IMS: S608 SIP already? no -> S610 translate to SIP; S612 send via the S-CSCF
//!    +-- web: S616 spoken by the page? no -> S618 translate to the web protocol; S620 send
//! ```
//!
//! Session messages are the ones that make or change a call (INVITE, ACK, PRACK, BYE, CANCEL,
//! UPDATE and their responses; OFFER ... BYE, RELOAD on the web side); everything else is not.
//!
//! ## Defaults for parameters with no counterpart
//!
//! The patent: where the translator cannot map a parameter it "uses a predefined default value"
//! (figure 3, module 330). Ours:
//!
//! | SIP parameter            | the web side gives          | the gateway puts                         |
//! |--------------------------|-----------------------------|------------------------------------------|
//! | From URI                 | nothing (the page's login)  | the web user's `REGISTER` `from`          |
//! | From display name        | nothing                     | none (no display name)                   |
//! | P-Preferred-Identity     | nothing                     | `<`the From URI`>` (TS 24.229 §5.1.2A)    |
//! | Subject                  | nothing                     | none (the header is left out)            |
//! | Supported / Require      | nothing                     | `100rel` in both (figure 8 PRACKs)        |
//! | Allow                    | nothing                     | [`ALLOW`]                                 |
//! | User-Agent               | nothing                     | [`USER_AGENT`]                            |
//! | Max-Forwards             | nothing                     | 70 (RFC 3261 §8.1.1.6)                    |
//! | Content-Type (INVITE, 200) | `sdp`                     | `application/sdp`                         |
//! | PRACK body               | `PRANSWER` `sdp`            | none: our INVITE always has the offer, so the answer came in the 1xx (RFC 3262 §5) |
//! | BYE Reason               | `BYE` `reason`              | none                                     |
//! | decline of an incoming call | `BYE` before `ANSWER`    | 603 Decline                              |
//! | no answer from the page  | nothing in [`DEFAULT_RING_TIMEOUT`] | 480 Temporarily Unavailable    |
//! | SUBSCRIBE Expires        | `expires` absent            | [`DEFAULT_SUBSCRIBE_EXPIRES`] (RFC 3856 §6.4) |
//! | SUBSCRIBE Event / Accept | nothing                     | `presence` / `application/pidf+xml`       |
//!
//! And towards the page: the SIP reason phrase and status become `BYE` `reason`
//! (`"486 Busy Here"`); a display name in From is dropped (`from` is the URI); a 183 Session
//! Progress has no web message (figure 8 draws none), its SDP goes with the next `Ringing` or
//! `OK`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::sip::Method;

/// Allow of our INVITEs and 2xx.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, PRACK, OPTIONS";
/// User-Agent of our requests.
pub const USER_AGENT: &str = "rcslab-rtcweb";
/// SUBSCRIBE Expires when the page gives none (RFC 3856 §6.4 default).
pub const DEFAULT_SUBSCRIBE_EXPIRES: u32 = 3600;
/// How long a page may take to answer (`ANSWER`): below Timer H (64·T1 = 32 s, RFC 3261
/// §13.3.1.4) so that an outgoing call's 2xx is ACKed before the callee gives up on it.
pub const DEFAULT_ANSWER_WAIT: Duration = Duration::from_secs(16);
/// How long a page may ring before an incoming call is given up (480).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the IMS dialog is kept while a page reloads (figure 7 "Reloading").
pub const DEFAULT_RELOAD_GRACE: Duration = Duration::from_secs(30);
/// Routing table entries when the node gives no limit.
pub const DEFAULT_MAX_ROUTES: usize = 10_000;

/// Where a message goes (figure 6 S606).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A web client attached to this gateway (by its user URI).
    Web(String),
    /// An IMS client, through the S-CSCF (by its URI).
    Ims(String),
}

/// Figure 6 S604: does a SIP request of `method` make or change a session?
pub fn is_session_method(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite
            | Method::Ack
            | Method::Prack
            | Method::Bye
            | Method::Cancel
            | Method::Update
    )
}

/// One route: figure 5's `<sender, receiver, session-id>`, plus the SIP Call-ID the session
/// id is translated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Who started the session.
    pub sender: Destination,
    /// Who it was for.
    pub receiver: Destination,
    /// The web session id.
    pub session: String,
    /// The SIP Call-ID of the IMS leg.
    pub call_id: String,
}

impl Route {
    /// The web user of this route (sender or receiver).
    pub fn web_user(&self) -> Option<&str> {
        match (&self.sender, &self.receiver) {
            (Destination::Web(u), _) | (_, Destination::Web(u)) => Some(u),
            _ => None,
        }
    }
}

/// Why a route was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The table holds its maximum.
    #[error("routing table full ({0} sessions)")]
    Full(usize),
    /// The session id is in use.
    #[error("session {0} exists")]
    Exists(String),
}

/// The routing table: web users attached to this gateway, and the routes of their sessions,
/// found by session id (from the web) or by Call-ID (from the IMS). Bounded.
#[derive(Debug)]
pub struct RoutingTable {
    max: usize,
    web_users: HashSet<String>,
    by_session: HashMap<String, Route>,
    /// Sessions by Call-ID: both legs of a web-to-web call share one (the INVITE went out
    /// through the core and came back).
    by_call_id: HashMap<String, Vec<String>>,
}

impl RoutingTable {
    /// An empty table of at most `max` routes (and `max` web users).
    pub fn new(max: usize) -> RoutingTable {
        RoutingTable {
            max,
            web_users: HashSet::new(),
            by_session: HashMap::new(),
            by_call_id: HashMap::new(),
        }
    }

    /// A web user is attached (its page sent `REGISTER`). False when the table is full.
    pub fn attach_user(&mut self, user: &str) -> bool {
        if self.web_users.len() >= self.max && !self.web_users.contains(user) {
            return false;
        }
        self.web_users.insert(normalize(user));
        true
    }

    /// A web user has gone (its sessions stay until they end).
    pub fn detach_user(&mut self, user: &str) {
        self.web_users.remove(&normalize(user));
    }

    /// Figure 6 S606: a URI is a web user of ours, or an IMS client.
    pub fn destination(&self, uri: &str) -> Destination {
        let n = normalize(uri);
        if self.web_users.contains(&n) {
            Destination::Web(n)
        } else {
            Destination::Ims(uri.to_string())
        }
    }

    /// Adds a route.
    pub fn insert(&mut self, route: Route) -> Result<(), RouteError> {
        if self.by_session.contains_key(&route.session) {
            return Err(RouteError::Exists(route.session));
        }
        if self.by_session.len() >= self.max {
            return Err(RouteError::Full(self.max));
        }
        self.by_call_id
            .entry(route.call_id.clone())
            .or_default()
            .push(route.session.clone());
        self.by_session.insert(route.session.clone(), route);
        Ok(())
    }

    /// The route of a web session.
    pub fn by_session(&self, session: &str) -> Option<&Route> {
        self.by_session.get(session)
    }

    /// The route of a SIP Call-ID.
    pub fn by_call_id(&self, call_id: &str) -> Option<&Route> {
        self.by_session.get(self.by_call_id.get(call_id)?.first()?)
    }

    /// Removes a session's route.
    pub fn remove(&mut self, session: &str) -> Option<Route> {
        let r = self.by_session.remove(session)?;
        if let Some(v) = self.by_call_id.get_mut(&r.call_id) {
            v.retain(|s| *s != r.session);
            if v.is_empty() {
                self.by_call_id.remove(&r.call_id);
            }
        }
        Some(r)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// No routes.
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}

/// A URI as the table keys it: without `<>`, parameters, and with a lower-case scheme and host
/// (the user part is case-sensitive, RFC 3261 §19.1.4).
pub fn normalize(uri: &str) -> String {
    let u = uri.trim().trim_start_matches('<');
    let u = u.split(['>', ';', '?']).next().unwrap_or("");
    match u.split_once(':') {
        Some((scheme, rest)) => {
            let (user, host) = match rest.rsplit_once('@') {
                Some((user, host)) => (Some(user), host),
                None => (None, rest),
            };
            let mut out = scheme.to_ascii_lowercase();
            out.push(':');
            if let Some(user) = user {
                out.push_str(user);
                out.push('@');
            }
            out.push_str(&host.to_ascii_lowercase());
            out
        }
        None => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(session: &str, call_id: &str) -> Route {
        Route {
            sender: Destination::Web("sip:alice@ims.lab".into()),
            receiver: Destination::Ims("sip:bob@ims.lab".into()),
            session: session.into(),
            call_id: call_id.into(),
        }
    }

    #[test]
    fn destination_is_web_for_attached_users_only() {
        let mut t = RoutingTable::new(4);
        assert!(t.attach_user("sip:alice@IMS.lab"));
        assert_eq!(
            t.destination("<sip:alice@ims.lab>;tag=1"),
            Destination::Web("sip:alice@ims.lab".into())
        );
        assert_eq!(
            t.destination("sip:bob@ims.lab"),
            Destination::Ims("sip:bob@ims.lab".into())
        );
        t.detach_user("sip:alice@ims.lab");
        assert!(matches!(
            t.destination("sip:alice@ims.lab"),
            Destination::Ims(_)
        ));
    }

    #[test]
    fn routes_found_both_ways_and_removed() {
        let mut t = RoutingTable::new(4);
        t.insert(route("s1", "c1@gw")).unwrap();
        assert_eq!(t.by_call_id("c1@gw").unwrap().session, "s1");
        assert_eq!(t.by_session("s1").unwrap().call_id, "c1@gw");
        assert_eq!(
            t.by_session("s1").unwrap().web_user(),
            Some("sip:alice@ims.lab")
        );
        assert_eq!(
            t.insert(route("s1", "c2")),
            Err(RouteError::Exists("s1".into()))
        );
        // The callee's leg of a web-to-web call: the same Call-ID, another session.
        t.insert(route("s2", "c1@gw")).unwrap();
        assert_eq!(t.remove("s1").unwrap().call_id, "c1@gw");
        assert_eq!(t.by_call_id("c1@gw").unwrap().session, "s2");
        t.remove("s2").unwrap();
        assert!(t.by_call_id("c1@gw").is_none() && t.is_empty());
    }

    #[test]
    fn table_is_bounded() {
        let mut t = RoutingTable::new(2);
        t.insert(route("a", "1")).unwrap();
        t.insert(route("b", "2")).unwrap();
        assert_eq!(t.insert(route("c", "3")), Err(RouteError::Full(2)));
        assert_eq!(t.len(), 2);
        assert!(t.attach_user("sip:a@x") && t.attach_user("sip:b@x"));
        assert!(!t.attach_user("sip:c@x"));
        assert!(t.attach_user("sip:a@x"));
    }

    #[test]
    fn session_methods_are_figure_6s() {
        assert!(is_session_method(&Method::Invite) && is_session_method(&Method::Prack));
        assert!(!is_session_method(&Method::Notify) && !is_session_method(&Method::Message));
    }

    #[test]
    fn normalize_keeps_user_case() {
        assert_eq!(
            normalize("<SIP:Alice@IMS.Lab;transport=tcp>"),
            "sip:Alice@ims.lab"
        );
        assert_eq!(normalize("tel:+1555"), "tel:+1555");
    }
}
