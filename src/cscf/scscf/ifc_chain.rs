//! The iFC chain of one request at the S-CSCF (TS 24.229 §5.4.3.2 step 4 – §5.4.3.4,
//! TS 23.218 §6.4): where the chain stopped while an AS has the request (the `odi` token of
//! the Route back to us), the request as it goes to the AS (our Route with the token,
//! P-Served-User of RFC 5502), and what each answer of the AS means under the iFC's default
//! handling (TS 23.218 §6.4.4, TS 29.228 Annex B DefaultHandling): an AS that fails itself
//! (408, 5xx, no answer, a name that does not resolve) is skipped under SESSION_CONTINUED and
//! ends the request under SESSION_TERMINATED; an error the AS relays from further on (it had
//! sent the request back to us) goes upstream as it is. No sockets: the driver sends, waits
//! and times out, then asks [`AsLeg::handle`] what to do.
//!
//! ```text
//!             Response 100                     Response 1xx (relayed)
//!            ┌──────────┐                      ┌──────────┐
//!            v          │                      v          │
//!   sent ─> Waiting ────┴─────────────────> Relaying ─────┘
//!            │  │ Timeout, token used up      │  │
//!            │  └─> KeepWaiting (no deadline) │  └─ final ───────────────> Relay{final}
//!            │                                └─ Timeout ───────────────> Terminate(408)
//!            ├─ 408/5xx from the AS itself, or Timeout ─┬─ CONTINUED ──> NextIfc
//!            │                                          └─ TERMINATED ─> Terminate / Relay
//!            └─ any other final ───────────────────────────────────────> Relay{final}
//! ```

use crate::shrink::ShrinkWhenSparse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cscf::ifc::{self, SessionCase};
use crate::profile::{ImsSubscription, InitialFilterCriteria};
use crate::sip::Request;

/// How long an AS may keep the request without sending it back before its context goes (the
/// transaction limit, 64*T1).
pub const AS_CONTEXT_LIFETIME: Duration = Duration::from_secs(64);

/// Where the iFC chain of one request stopped while an AS has it (TS 24.229 §5.4.3.4: the
/// S-CSCF recognises the request coming back by the `odi` value in its Route).
#[derive(Debug, Clone)]
pub struct AsContext {
    /// The session case the chain runs for.
    pub case: SessionCase,
    /// The served user.
    pub served: String,
    /// The index of the next iFC to evaluate.
    pub next: usize,
    /// When the request went to the AS.
    pub created: Instant,
}

/// AS contexts by `odi` token.
#[derive(Debug, Default)]
pub struct AsContexts {
    by_token: HashMap<String, AsContext>,
}

impl AsContexts {
    /// Contexts held.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The request went to an AS under `token`.
    pub fn insert(&mut self, token: &str, ctx: AsContext) {
        self.by_token.insert(token.to_string(), ctx);
    }

    /// The request came back with `token`: the chain goes on from its context (used once).
    pub fn take(&mut self, token: &str) -> Option<AsContext> {
        self.by_token.remove(token)
    }

    /// True while the AS has not sent the request back (its token is unused).
    pub fn waiting(&self, token: &str) -> bool {
        self.by_token.contains_key(token)
    }

    /// Forgets the contexts of ASes that never sent the request back, by `now`.
    pub fn sweep(&mut self, now: Instant) {
        self.by_token
            .retain(|_, v| now.duration_since(v.created) < AS_CONTEXT_LIFETIME);
        self.by_token.shrink_when_sparse();
    }
}

/// A profile's iFC in evaluation order (TS 29.228 Annex B: by Priority, across its service
/// profiles).
pub fn ordered_ifcs(profile: &ImsSubscription) -> Vec<InitialFilterCriteria> {
    let all: Vec<_> = profile
        .service_profiles
        .iter()
        .flat_map(|sp| sp.ifcs.iter().cloned())
        .collect();
    ifc::ordered(&all)
}

/// True for the originating session cases.
pub fn is_originating(case: SessionCase) -> bool {
    matches!(
        case,
        SessionCase::Originating | SessionCase::OriginatingUnregistered
    )
}

/// The request as it goes to an AS (TS 24.229 §5.4.3.2 step 4): a Route to the AS, then
/// `back` (our own Route carrying the `odi` token), and P-Served-User (RFC 5502 §6) naming
/// whom the AS serves and in which session case and registration state.
pub fn to_application_server(
    req: &Request,
    server: &str,
    back: String,
    served: &str,
    case: SessionCase,
) -> Request {
    let mut to_as = req.clone();
    to_as.headers.push_front("Route", back);
    to_as.headers.push_front("Route", format!("<{server};lr>"));
    to_as.headers.remove("P-Served-User");
    to_as.headers.push(
        "P-Served-User",
        format!(
            "<{served}>;sescase={};regstate={}",
            if is_originating(case) { "orig" } else { "term" },
            if matches!(
                case,
                SessionCase::TerminatingUnregistered | SessionCase::OriginatingUnregistered
            ) {
                "unreg"
            } else {
                "reg"
            }
        ),
    );
    to_as
}

/// DefaultHandling of an iFC's application server (TS 29.228 Annex B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultHandling {
    /// 0: go on with the next iFC as if the AS had returned the request.
    SessionContinued,
    /// 1: the request ends with an error.
    SessionTerminated,
}

impl DefaultHandling {
    /// From the profile's number (0 continues, anything else terminates).
    pub fn from_profile(n: u32) -> DefaultHandling {
        if n == 0 {
            DefaultHandling::SessionContinued
        } else {
            DefaultHandling::SessionTerminated
        }
    }
}

/// What happened on the leg towards an AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsEvent {
    /// The AS's name does not resolve.
    Unresolvable,
    /// A response came; `came_back` when the AS had already sent the request back to us (its
    /// token is used up).
    Response {
        /// Status code.
        status: u16,
        /// The AS sent the request back before answering.
        came_back: bool,
    },
    /// The wait for the AS's final answer ran out (non-INVITE only).
    Timeout {
        /// The AS sent the request back before answering.
        came_back: bool,
    },
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsAction {
    /// Nothing (a 100 Trying is hop by hop).
    Ignore,
    /// Relay the response upstream (its top Via popped); done when `last`.
    Relay {
        /// A final response: the leg is over.
        last: bool,
    },
    /// The AS failed under SESSION_CONTINUED: evaluate the next iFC.
    NextIfc,
    /// The AS is alive and has sent the request on: wait with no deadline.
    KeepWaiting,
    /// The AS failed under SESSION_TERMINATED: answer upstream with this status and
    /// reason (a Warning) and stop.
    Terminate(u16, &'static str),
}

/// The leg of one request towards one AS.
#[derive(Debug, Clone)]
pub struct AsLeg {
    handling: DefaultHandling,
    relayed_any: bool,
}

impl AsLeg {
    /// A leg under the iFC's default handling.
    pub fn new(handling: DefaultHandling) -> AsLeg {
        AsLeg {
            handling,
            relayed_any: false,
        }
    }

    /// Default handling may only apply while nothing has been relayed upstream.
    fn may_continue(&self) -> bool {
        self.handling == DefaultHandling::SessionContinued && !self.relayed_any
    }

    /// The decision on one event (TS 24.229 §5.4.3.3, TS 23.218 §6.4.4).
    pub fn handle(&mut self, event: AsEvent) -> AsAction {
        match event {
            AsEvent::Unresolvable if self.may_continue() => AsAction::NextIfc,
            AsEvent::Unresolvable => AsAction::Terminate(500, "application server unreachable"),
            // The AS sent it back to us: it is alive and the request is on its way; wait for
            // the answer as any proxy would.
            AsEvent::Timeout { came_back: true } => AsAction::KeepWaiting,
            AsEvent::Timeout { .. } if self.may_continue() => AsAction::NextIfc,
            AsEvent::Timeout { .. } => {
                AsAction::Terminate(408, "application server did not answer")
            }
            AsEvent::Response { status: 100, .. } => AsAction::Ignore,
            AsEvent::Response { status, came_back } => {
                // Default handling is for an AS that fails itself. One that sent the request
                // back to us is alive, and an error it relays came from further on.
                let as_failure = (status == 408 || status >= 500) && !came_back;
                if status >= 200 && as_failure && self.may_continue() {
                    return AsAction::NextIfc;
                }
                self.relayed_any = true;
                AsAction::Relay {
                    last: status >= 200,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cscf::scscf::registrar::tests::parse;

    use AsAction::*;
    use AsEvent::*;
    use DefaultHandling::*;

    fn resp(status: u16) -> AsEvent {
        Response {
            status,
            came_back: false,
        }
    }

    #[test]
    fn an_as_that_fails_under_session_continued_is_skipped() {
        for failure in [
            resp(408),
            resp(500),
            resp(503),
            Timeout { came_back: false },
            Unresolvable,
        ] {
            let mut leg = AsLeg::new(SessionContinued);
            assert_eq!(leg.handle(resp(100)), Ignore);
            assert_eq!(leg.handle(failure), NextIfc, "{failure:?}");
        }
    }

    #[test]
    fn an_as_that_fails_under_session_terminated_ends_the_request() {
        let mut leg = AsLeg::new(SessionTerminated);
        assert_eq!(leg.handle(resp(503)), Relay { last: true });
        let mut leg = AsLeg::new(SessionTerminated);
        assert_eq!(
            leg.handle(Timeout { came_back: false }),
            Terminate(408, "application server did not answer")
        );
        let mut leg = AsLeg::new(SessionTerminated);
        assert_eq!(
            leg.handle(Unresolvable),
            Terminate(500, "application server unreachable")
        );
    }

    #[test]
    fn an_error_relayed_from_downstream_goes_back_as_is() {
        let mut leg = AsLeg::new(SessionContinued);
        // The AS sent the request back to us, then a 503 from further on came through it.
        assert_eq!(
            leg.handle(Response {
                status: 503,
                came_back: true
            }),
            Relay { last: true }
        );
        // Its own 4xx is an answer, not a failure.
        let mut leg = AsLeg::new(SessionContinued);
        assert_eq!(leg.handle(resp(486)), Relay { last: true });
        // Once it came back, a timeout only lifts the deadline.
        let mut leg = AsLeg::new(SessionContinued);
        assert_eq!(leg.handle(Timeout { came_back: true }), KeepWaiting);
    }

    #[test]
    fn after_a_provisional_was_relayed_default_handling_no_longer_applies() {
        let mut leg = AsLeg::new(SessionContinued);
        assert_eq!(leg.handle(resp(180)), Relay { last: false });
        assert_eq!(leg.handle(resp(500)), Relay { last: true });
        let mut leg = AsLeg::new(SessionContinued);
        assert_eq!(leg.handle(resp(183)), Relay { last: false });
        assert_eq!(
            leg.handle(Timeout { came_back: false }),
            Terminate(408, "application server did not answer")
        );
    }

    #[test]
    fn contexts_are_used_once_and_swept_after_the_transaction_limit() {
        let t0 = Instant::now();
        let mut table = AsContexts::default();
        let ctx = AsContext {
            case: SessionCase::Originating,
            served: "sip:alice@ims.lab".into(),
            next: 2,
            created: t0,
        };
        table.insert("tok1", ctx.clone());
        table.insert("tok2", ctx);
        assert!(table.waiting("tok1"));
        assert_eq!(table.take("tok1").map(|c| c.next), Some(2));
        assert!(!table.waiting("tok1"));
        assert!(table.take("tok1").is_none());
        table.sweep(t0 + AS_CONTEXT_LIFETIME - Duration::from_secs(1));
        assert_eq!(table.len(), 1);
        table.sweep(t0 + AS_CONTEXT_LIFETIME);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_request_to_the_as_carries_both_routes_and_p_served_user() {
        let req = parse(
            "MESSAGE sip:bob@ims.lab SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKm1\n\
             From: <sip:alice@ims.lab>;tag=a\n\
             To: <sip:bob@ims.lab>\n\
             Call-ID: m1\n\
             CSeq: 1 MESSAGE\n\
             P-Served-User: <sip:mallory@ims.lab>\n\
             Content-Length: 0\n\n",
        );
        let out = to_application_server(
            &req,
            "sip:127.0.0.1:5091",
            "<sip:127.0.0.1:5080;lr;odi=t1>".into(),
            "sip:bob@ims.lab",
            SessionCase::TerminatingUnregistered,
        );
        assert_eq!(
            out.headers.values("Route"),
            vec!["<sip:127.0.0.1:5091;lr>", "<sip:127.0.0.1:5080;lr;odi=t1>"]
        );
        assert_eq!(
            out.headers.get_all("P-Served-User").collect::<Vec<_>>(),
            vec!["<sip:bob@ims.lab>;sescase=term;regstate=unreg"]
        );
        let out = to_application_server(
            &req,
            "sip:as",
            "<b>".into(),
            "sip:alice@ims.lab",
            SessionCase::Originating,
        );
        assert_eq!(
            out.headers.get("P-Served-User"),
            Some("<sip:alice@ims.lab>;sescase=orig;regstate=reg")
        );
    }
}
