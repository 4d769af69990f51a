//! Session routing at the S-CSCF (TS 24.229 §5.4.3): requests in a dialog follow their route
//! set; initial requests run the served user's iFC chain ([`super::ifc_chain`]) for the
//! originating case (§5.4.3.2, marked by the `orig` Service-Route) or the terminating case
//! (§5.4.3.3), then go towards the callee: the I-CSCF for home users and tel URIs, DNS-free
//! resolution otherwise, and every registered contact of a local callee in parallel along
//! its Path. The driver half: the decisions on AS answers are [`super::ifc_chain::AsLeg`]'s.

use std::time::Instant;

use super::ifc_chain::{self, AsAction, AsContext, AsEvent, AsLeg, DefaultHandling};
use super::notify::is_reg_event;
use super::{lock, reject, Scscf};
use crate::cscf::ifc::{self, SessionCase};
use crate::cscf::{
    creates_dialog, forward_copy, in_dialog, next_hop, pop_own_routes, proxy_to,
    record_routes_notify,
};
use crate::diameter::cx::ServerAssignmentType;
use crate::profile::ImsSubscription;
use crate::sip::{IncomingRequest, Method, NameAddr, Request};

impl Scscf {
    /// Session routing (TS 24.229 §5.4.3): the `orig` route of the Service-Route marks the
    /// originating case, anything else arriving from the I-CSCF is terminating.
    pub(super) async fn route(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        let ours = pop_own_routes(&mut req, &self.ep, &self.name());
        let popped = ours.first().cloned();
        if req.method == Method::Subscribe && is_reg_event(&req) {
            // TS 24.229 §5.4.2.1: we are the notifier for the registration state of our users.
            if in_dialog(&req) && crate::cscf::is_own_uri(&req.uri, &self.ep, &self.name()) {
                self.reg_refresh(inc, &req);
                return;
            }
            let target = crate::sip::Uri::parse(&req.uri)
                .map(|u| u.aor())
                .unwrap_or_default();
            if !in_dialog(&req) && self.is_registered(&target) {
                self.reg_subscribe(inc, &req, &target);
                return;
            }
        }
        if in_dialog(&req) {
            // Subsequent requests follow the route set the dialog recorded.
            if record_routes_notify(&req, !ours.is_empty()) {
                self.record_route_notify(&mut req, &ours);
            }
            let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
                inc.tx.respond(reject(&req, 404, None, "no route"));
                return;
            };
            let fwd = forward_copy(&self.ep, &inc.request, &req, t);
            proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
            return;
        }
        let popped = popped.as_deref().and_then(|r| NameAddr::parse(r).ok());
        // Back from an AS: the odi parameter names where the iFC chain stopped.
        let resumed = popped
            .as_ref()
            .and_then(|na| na.uri.param("odi").flatten().map(str::to_string))
            .and_then(|token| lock(&self.as_ctx).take(&token));
        if let Some(ctx) = resumed {
            tracing::debug!(served = %ctx.served, case = ctx.case.token(), next = ctx.next, "request back from the AS");
            match ctx.case {
                SessionCase::Originating | SessionCase::OriginatingUnregistered => {
                    self.originating(inc, req, Some(ctx)).await
                }
                _ => self.terminating(inc, req, Some(ctx)).await,
            }
            return;
        }
        let originating = popped
            .as_ref()
            .is_some_and(|na| na.uri.user() == Some("orig"));
        if originating {
            self.originating(inc, req, None).await
        } else {
            self.terminating(inc, req, None).await
        }
    }

    /// RFC 6665 §4.3: a NOTIFY in a dialog we record-routed gets the Record-Route we gave its
    /// SUBSCRIBE, one entry per case (`orig`, `term`) its route set named us for: `ours`, the
    /// Route values we popped, in their order. Each goes on top in turn, so the subscriber's
    /// route set read from the NOTIFY (RFC 3261 §12.1.1, in order) is the one it reads from
    /// the 200 (§12.1.2, reversed).
    fn record_route_notify(&self, req: &mut Request, ours: &[String]) {
        for route in ours {
            let case = NameAddr::parse(route)
                .ok()
                .and_then(|na| na.uri.user().map(str::to_string));
            if let Some(case) = case.filter(|c| c == "orig" || c == "term") {
                req.headers
                    .push_front("Record-Route", self.record_route(&case));
            }
        }
    }

    /// TS 24.229 §5.4.3.3 for a callee that is not registered: fetch the profile with SAR
    /// UNREGISTERED_USER (once), run the iFC for TERMINATING_UNREGISTERED (an AS such as T-IM
    /// may take the request, e.g. to store it), else 480.
    async fn terminating_unregistered(
        &self,
        inc: IncomingRequest,
        req: Request,
        target: &str,
        resumed: Option<AsContext>,
    ) {
        let known = lock(&self.regs).unregistered_profile(target).is_some();
        if resumed.is_none() && !known {
            match self
                .sar(
                    None,
                    vec![target.to_string()],
                    ServerAssignmentType::UnregisteredUser,
                    false,
                )
                .await
            {
                Ok(saa) if saa.result.is_success() => {
                    if let Some(p) = saa
                        .user_data
                        .as_deref()
                        .and_then(|x| ImsSubscription::parse(x).ok())
                    {
                        lock(&self.regs).keep_unregistered_profile(target, p);
                    }
                }
                Ok(saa) => {
                    tracing::info!(%target, result = ?saa.result, "SAR UNREGISTERED_USER refused")
                }
                Err(e) => tracing::warn!(%target, error = %e, "SAR UNREGISTERED_USER failed"),
            }
        }
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(
                &inc,
                &req,
                SessionCase::TerminatingUnregistered,
                target,
                from,
            )
            .await
        {
            return;
        }
        tracing::info!(%target, "terminating request for a user that is not registered");
        inc.tx
            .respond(reject(&req, 480, None, "callee not registered"));
    }

    /// §5.4.3.2: originating case for the served user (P-Asserted-Identity).
    async fn originating(
        &self,
        inc: IncomingRequest,
        mut req: Request,
        resumed: Option<AsContext>,
    ) {
        let served = req
            .headers
            .get("P-Asserted-Identity")
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|na| na.uri.aor());
        let served = resumed.as_ref().map(|c| c.served.clone()).or(served);
        let Some(served) = served.filter(|s| self.is_registered(s)) else {
            inc.tx.respond(reject(
                &req,
                403,
                None,
                "originating user is not registered here",
            ));
            return;
        };
        if creates_dialog(&req) && resumed.is_none() {
            req.headers
                .push_front("Record-Route", self.record_route("orig"));
        }
        tracing::debug!(%served, method = %req.method, "originating request");
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(&inc, &req, SessionCase::Originating, &served, from)
            .await
        {
            return;
        }
        // Towards the callee: home users and tel URIs go to the I-CSCF (which asks the HSS with
        // LIR); other domains are resolved from the Request-URI.
        let home = crate::sip::Uri::parse(&req.uri)
            .map(|u| {
                matches!(u, crate::sip::Uri::Tel(_))
                    || u.host()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&self.domain))
            })
            .unwrap_or(false);
        let target = if home {
            self.icscf.get().map(|a| (*a, self.mw))
        } else {
            next_hop(&self.resolver, &req).await
        };
        let Some((dest, t)) = target else {
            inc.tx
                .respond(reject(&req, 404, None, "no route towards the callee"));
            return;
        };
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
    }

    /// §5.4.3.3: terminating case: retarget to the callee's newest contact along its Path.
    async fn terminating(
        &self,
        inc: IncomingRequest,
        mut req: Request,
        resumed: Option<AsContext>,
    ) {
        let target = match &resumed {
            Some(c) => c.served.clone(),
            None => crate::sip::Uri::parse(&req.uri)
                .map(|u| u.aor())
                .unwrap_or_default(),
        };
        let Some(reg) = self.registration(&target) else {
            self.terminating_unregistered(inc, req, &target, resumed)
                .await;
            return;
        };
        if reg.bindings.is_empty() {
            inc.tx
                .respond(reject(&req, 480, None, "callee has no contact"));
            return;
        }
        if creates_dialog(&req) && resumed.is_none() {
            req.headers
                .push_front("Record-Route", self.record_route("term"));
        }
        let from = resumed.as_ref().map(|c| c.next).unwrap_or(0);
        if self
            .via_application_servers(
                &inc,
                &req,
                SessionCase::TerminatingRegistered,
                &target,
                from,
            )
            .await
        {
            return;
        }
        // Every registered contact, in parallel (RFC 3261 §16.6 / §16.7), newest first; each
        // along the Path its registration recorded.
        let mut bindings = reg.bindings.clone();
        bindings.sort_by_key(|b| std::cmp::Reverse(b.updated));
        let mut branches = Vec::new();
        for b in &bindings {
            let mut r = req.clone();
            r.uri = b.contact.clone();
            for p in b.path.iter().rev() {
                r.headers.push_front("Route", p.clone());
            }
            let Some((dest, t)) = next_hop(&self.resolver, &r).await else {
                tracing::warn!(contact = %b.contact, "callee's P-CSCF does not resolve");
                continue;
            };
            let request = forward_copy(&self.ep, &inc.request, &r, t);
            branches.push(crate::cscf::fork::Branch {
                request,
                dest,
                transport: t,
            });
        }
        if branches.is_empty() {
            inc.tx
                .respond(reject(&req, 480, None, "callee's P-CSCF does not resolve"));
            return;
        }
        if branches.len() > 1 {
            self.ep.note(|| {
                format!(
                    "{target} has {} contacts: forking in parallel",
                    branches.len()
                )
            });
        }
        crate::cscf::fork::fork(&self.ep, &inc.tx, branches).await;
    }

    /// TS 23.218 §6.4 / TS 24.229 §5.4.3.2 step 4: sends the request to the next AS whose iFC
    /// matches, with a Route back to us carrying an `odi` token. Returns true when an AS took
    /// the request (its responses are relayed here); false when no (further) iFC matches or
    /// every matching AS failed under SESSION_CONTINUED, and routing goes on.
    async fn via_application_servers(
        &self,
        inc: &IncomingRequest,
        req: &Request,
        case: SessionCase,
        served: &str,
        from: usize,
    ) -> bool {
        let ordered = self.ifcs_of(served);
        let mut idx = from;
        while let Some((n, ifc)) = ifc::next_match(&ordered, idx, req, case) {
            idx = n + 1;
            let server = ifc.application_server.server_name.clone();
            let token = format!("{}{}", crate::sip::new_tag(), crate::sip::new_tag());
            lock(&self.as_ctx).insert(
                &token,
                AsContext {
                    case,
                    served: served.to_string(),
                    next: idx,
                    created: Instant::now(),
                },
            );
            let back = self.route_uri(None, &format!(";odi={token}"));
            let to_as = ifc_chain::to_application_server(req, &server, back, served, case);
            tracing::info!(%served, case = case.token(), priority = ifc.priority, %server, "iFC matched: request goes to the AS");
            self.ep.note(|| {
                format!(
                    "{} {}: iFC priority {} matched -> {server}",
                    if case.token() == "orig" {
                        "originating"
                    } else {
                        "terminating"
                    },
                    served,
                    ifc.priority
                )
            });
            let mut leg = AsLeg::new(DefaultHandling::from_profile(
                ifc.application_server.default_handling,
            ));
            let Some((dest, t)) = self.resolver.resolve_str(&server).await else {
                tracing::warn!(%server, "AS name does not resolve");
                match leg.handle(AsEvent::Unresolvable) {
                    AsAction::Terminate(code, why) => {
                        inc.tx.respond(reject(req, code, None, why));
                        return true;
                    }
                    _ => continue,
                }
            };
            let fwd = forward_copy(&self.ep, &inc.request, &to_as, t);
            let mut client = self.ep.send_request(fwd, dest, t);
            let mut next_ifc = false;
            // A non-INVITE gets no 100 upstream, so the hop before us gives up at its own
            // Timer F (64*T1): waiting for ours would lose the race and default handling
            // could never continue. The AS gets half that (RFC 4320 §2 on the 408 race);
            // an INVITE was answered 100 and waits for Timer B.
            let mut deadline = (req.method != Method::Invite)
                .then(|| tokio::time::Instant::now() + self.as_wait());
            loop {
                let next = match deadline {
                    Some(d) => tokio::time::timeout_at(d, client.next()).await,
                    None => Ok(client.next().await),
                };
                // The AS sent the request back to us when its odi token is used up.
                let came_back = !lock(&self.as_ctx).waiting(&token);
                let (event, resp) = match next {
                    Ok(Some(r)) => (
                        AsEvent::Response {
                            status: r.status,
                            came_back,
                        },
                        Some(r),
                    ),
                    Ok(None) => break,
                    Err(_) => (AsEvent::Timeout { came_back }, None),
                };
                match (leg.handle(event), resp) {
                    (AsAction::Ignore, _) => {}
                    (AsAction::KeepWaiting, _) => deadline = None,
                    (AsAction::NextIfc, resp) => {
                        match resp {
                            Some(r) => {
                                tracing::warn!(%server, status = r.status, "AS failed; default handling SESSION_CONTINUED")
                            }
                            None => {
                                tracing::warn!(%server, "AS did not answer in time; default handling SESSION_CONTINUED")
                            }
                        }
                        next_ifc = true;
                        break;
                    }
                    (AsAction::Terminate(code, why), _) => {
                        tracing::warn!(%server, "AS did not answer in time; default handling SESSION_TERMINATED");
                        inc.tx.respond(reject(req, code, None, why));
                        break;
                    }
                    (AsAction::Relay { last }, Some(mut resp)) => {
                        resp.headers.pop_first_value("Via");
                        inc.tx.respond(resp);
                        if last {
                            break;
                        }
                    }
                    (AsAction::Relay { .. }, None) => break,
                }
            }
            if !next_ifc {
                return true;
            }
            lock(&self.as_ctx).take(&token);
        }
        false
    }
}
