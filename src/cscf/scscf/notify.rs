//! The S-CSCF as notifier of the reg event package (RFC 3680, TS 24.229 §5.4.2.1): who may
//! subscribe to a registration, the SUBSCRIBE's 200 OK, the subscription kept
//! ([`crate::cscf::regevent::RegSubTable`]) and the NOTIFY with the full reginfo document
//! after every change. The request and response building is socket-free (`now` passed in);
//! the glue on [`Scscf`] sends them.

use std::time::{Duration, Instant};

use super::registrar::Registration;
use super::{reject, Scscf};
use crate::config::Registrar as Limits;
use crate::cscf::regevent::{reginfo_xml, ContactEvent, RegSubscription};
use crate::sip::{IncomingRequest, Method, NameAddr, Request, Response};

/// Reg-event subscriptions at most per identity and in all (more get 503).
const MAX_REG_SUBS_PER_AOR: usize = 16;
const MAX_REG_SUBS: usize = 100_000;

/// True for `Event: reg` (RFC 3680 §4.1).
pub fn is_reg_event(req: &Request) -> bool {
    req.headers.get("Event").is_some_and(|e| {
        e.split(';')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("reg"))
    })
}

/// RFC 3680 §5.2 / TS 24.229 §5.4.2.1.1: who may watch a registration: the user (an identity
/// of its implicit set, as the P-CSCF asserted it), a P-CSCF the user registered through (on
/// a binding's Path), or an AS the user's iFCs name (the presence server learns so when a
/// publisher is gone). Anyone else learnt other users' contact addresses.
pub fn may_watch(req: &Request, reg: &Registration) -> bool {
    let Some(asserted) = req
        .headers
        .get("P-Asserted-Identity")
        .and_then(|v| NameAddr::parse(v).ok())
    else {
        return false;
    };
    if reg.impus.contains(&asserted.uri.aor()) {
        return true;
    }
    let host_port = |u: &crate::sip::Uri| match u {
        crate::sip::Uri::Sip(s) => Some((s.host.to_ascii_lowercase(), s.port.unwrap_or(5060))),
        _ => None,
    };
    let Some(watcher) = host_port(&asserted.uri) else {
        return false;
    };
    let host_of = |u: &str| match crate::sip::Uri::parse(u) {
        Ok(crate::sip::Uri::Sip(s)) => Some(s.host.to_ascii_lowercase()),
        _ => None,
    };
    let an_as = reg.profile.iter().any(|p| {
        p.service_profiles
            .iter()
            .flat_map(|sp| sp.ifcs.iter())
            .any(|i| host_of(&i.application_server.server_name).as_deref() == Some(&watcher.0))
    });
    if an_as {
        return true;
    }
    reg.bindings.iter().flat_map(|b| b.path.iter()).any(|p| {
        NameAddr::parse(p)
            .ok()
            .and_then(|na| host_port(&na.uri))
            .is_some_and(|hp| hp == watcher)
    })
}

/// The subscription's duration: the Expires asked for, else the registrar's default, cut to
/// its maximum.
pub fn subscription_expires(req: &Request, limits: &Limits) -> u32 {
    req.headers
        .get("Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(limits.default_expires)
        .min(limits.max_expires)
}

/// A new subscription's 200 OK (RFC 6665 §4.2.1.1: a To tag of ours, the Record-Route,
/// our Contact) and the subscription as kept, for `expires` seconds from `now`.
pub fn accept(
    req: &Request,
    aor: &str,
    tag: &str,
    contact: &str,
    expires: u32,
    now: Instant,
) -> (Response, RegSubscription) {
    let mut ok = req.response(200, None);
    let to = ok.headers.get("To").unwrap_or("").to_string();
    ok.headers.set("To", format!("{to};tag={tag}"));
    for rr in req.headers.get_all("Record-Route") {
        ok.headers.push("Record-Route", rr.to_string());
    }
    ok.headers.push("Contact", contact);
    ok.headers.push("Expires", expires.to_string());
    let remote_target = req
        .headers
        .get("Contact")
        .and_then(|c| NameAddr::parse(c).ok())
        .map(|na| na.uri.to_string())
        .unwrap_or_default();
    let sub = RegSubscription {
        aor: aor.to_string(),
        call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
        local: format!("{to};tag={tag}"),
        remote: req.headers.get("From").unwrap_or("").to_string(),
        remote_target,
        route_set: req
            .headers
            .values("Record-Route")
            .iter()
            .map(|s| s.to_string())
            .collect(),
        cseq: 0,
        version: 0,
        expires_at: now + Duration::from_secs(expires.into()),
    };
    (ok, sub)
}

/// One NOTIFY in the subscription dialog (RFC 3680 §5.4, RFC 6665 §4.2.2), for a
/// subscription whose CSeq and version were already moved on: the full reginfo of `reg`
/// after `event`, each contact with the seconds it has left at `now` (0 once it is gone),
/// and Subscription-State active with the time left, or terminated.
pub fn notify_request(
    sub: &RegSubscription,
    reg: &Registration,
    event: ContactEvent,
    active: bool,
    now: Instant,
    contact: &str,
) -> Request {
    let contacts: Vec<(String, u64)> = reg
        .bindings
        .iter()
        .map(|b| {
            let left = match event {
                ContactEvent::Registered | ContactEvent::Refreshed => {
                    b.expires_at.saturating_duration_since(now).as_secs()
                }
                _ => 0,
            };
            (b.contact.clone(), left)
        })
        .collect();
    let body = reginfo_xml(sub.version - 1, &reg.impus, &contacts, event);
    let mut n = Request::new(Method::Notify, sub.remote_target.clone());
    n.headers.push("Max-Forwards", "70");
    n.headers.push("From", sub.local.clone());
    n.headers.push("To", sub.remote.clone());
    n.headers.push("Call-ID", sub.call_id.clone());
    n.headers.push("CSeq", format!("{} NOTIFY", sub.cseq));
    for r in &sub.route_set {
        n.headers.push("Route", r.clone());
    }
    n.headers.push("Contact", contact);
    n.headers.push("Event", "reg");
    let left = sub.expires_at.saturating_duration_since(now).as_secs();
    if active && left > 0 {
        n.headers
            .push("Subscription-State", format!("active;expires={left}"));
    } else {
        n.headers
            .push("Subscription-State", "terminated;reason=noresource");
    }
    n.headers.push("Content-Type", "application/reginfo+xml");
    n.body = bytes::Bytes::from(body);
    n
}

impl Scscf {
    /// A new subscription to a registered user's state: 200 OK, then the full state.
    pub(super) fn reg_subscribe(&self, inc: IncomingRequest, req: &Request, aor: &str) {
        if let Some(reg) = self.registration(aor) {
            if !may_watch(req, &reg) {
                let who = req.headers.get("P-Asserted-Identity").unwrap_or("nobody");
                crate::warn_limited!("scscf.reg_sub.forbidden", %aor, %who, "reg-event SUBSCRIBE refused: only the user, its P-CSCF or one of its ASes may watch a registration");
                self.ep
                    .note(|| format!("403: {who} may not watch {aor}'s registration"));
                inc.tx.respond(reject(
                    req,
                    403,
                    Some("Forbidden"),
                    "only the user, its P-CSCF or one of its ASes may watch this registration",
                ));
                return;
            }
        }
        let (all, mine) = self
            .reg_subs
            .lock()
            .map(|m| (m.len(), m.count_for(aor)))
            .unwrap_or((0, 0));
        if all >= MAX_REG_SUBS || mine >= MAX_REG_SUBS_PER_AOR {
            let mut r = reject(
                req,
                503,
                Some("Service Unavailable"),
                "too many reg-event subscriptions",
            );
            r.headers.push("Retry-After", "60");
            inc.tx.respond(r);
            return;
        }
        let expires = subscription_expires(req, &self.registrar);
        let tag = crate::sip::new_tag();
        let (ok, sub) = accept(req, aor, &tag, &self.contact(), expires, Instant::now());
        inc.tx.respond(ok);
        tracing::info!(%aor, expires, "reg event subscription");
        // Stored first: `notify` moves its CSeq and version on in the table.
        if expires > 0 {
            if let Ok(mut m) = self.reg_subs.lock() {
                m.insert(sub.clone());
            }
        }
        if let Some(reg) = self.registration(aor) {
            self.notify(sub, &reg, ContactEvent::Registered, expires > 0);
        }
    }

    /// A refresh or an unsubscribe (Expires: 0) inside the subscription dialog.
    pub(super) fn reg_refresh(&self, inc: IncomingRequest, req: &Request) {
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let expires = subscription_expires(req, &self.registrar);
        let existing = self.reg_subs.lock().ok().and_then(|mut m| {
            if expires == 0 {
                m.remove(&call_id)
            } else {
                let s = m.get_mut(&call_id)?;
                s.expires_at = Instant::now() + Duration::from_secs(expires.into());
                Some(s.clone())
            }
        });
        let Some(sub) = existing else {
            inc.tx
                .respond(reject(req, 481, None, "no such subscription"));
            return;
        };
        let mut ok = req.response(200, None);
        ok.headers.push("Contact", self.contact());
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        if let Some(reg) = self.registration(&sub.aor) {
            self.notify(sub, &reg, ContactEvent::Refreshed, expires > 0);
        }
    }

    /// Tells every subscriber to one of `reg`'s identities what happened (RFC 3680 §5).
    pub(super) fn notify_all(&self, reg: &Registration, event: ContactEvent) {
        let subs: Vec<RegSubscription> = match self.reg_subs.lock() {
            Ok(m) => m.watching(&reg.impus),
            Err(_) => return,
        };
        let keep = matches!(event, ContactEvent::Registered | ContactEvent::Refreshed);
        for s in subs {
            if !keep {
                if let Ok(mut m) = self.reg_subs.lock() {
                    m.remove(&s.call_id);
                }
            }
            self.notify(s, reg, event, keep);
        }
    }

    /// Sends one NOTIFY in the subscription dialog and records the new CSeq/version.
    fn notify(
        &self,
        mut sub: RegSubscription,
        reg: &Registration,
        event: ContactEvent,
        active: bool,
    ) {
        sub.cseq += 1;
        sub.version += 1;
        if let Ok(mut m) = self.reg_subs.lock() {
            if let Some(s) = m.get_mut(&sub.call_id) {
                s.cseq = sub.cseq;
                s.version = sub.version;
            }
        }
        let mut n = notify_request(&sub, reg, event, active, Instant::now(), &self.contact());
        let ep = self.ep.clone();
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let Some((dest, t)) = crate::cscf::next_hop(&resolver, &n).await else {
                return;
            };
            n.headers.push_front("Via", ep.new_via(t));
            let r = ep.send_request(n, dest, t).final_response().await;
            if r.status >= 300 {
                tracing::info!(status = r.status, "reg event NOTIFY refused");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cscf::scscf::registrar::tests::{parse, register};
    use crate::cscf::scscf::registrar::RegistrarCore;

    fn limits() -> Limits {
        Limits {
            default_expires: 600,
            min_expires: 60,
            max_expires: 3600,
        }
    }

    fn registered(now: Instant) -> Registration {
        let mut core = RegistrarCore::new(limits());
        let req = register(&["<sip:alice@10.0.0.1:5062>"], Some(600));
        core.save(now, &req, "alice@ims.lab", "sip:alice@ims.lab", None, None)
            .unwrap()
    }

    fn subscribe(pai: &str, expires: &str) -> Request {
        parse(&format!(
            "SUBSCRIBE sip:alice@ims.lab SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs1\n\
             From: <sip:alice@ims.lab>;tag=w1\n\
             To: <sip:alice@ims.lab>\n\
             Call-ID: sub-1\n\
             CSeq: 1 SUBSCRIBE\n\
             Record-Route: <sip:127.0.0.1:5060;lr>\n\
             Contact: <sip:alice@10.0.0.1:5062>\n\
             P-Asserted-Identity: {pai}\n\
             Event: reg\n\
             Expires: {expires}\n\
             Content-Length: 0\n\n"
        ))
    }

    #[test]
    fn the_user_and_its_p_cscf_may_watch_nobody_else() {
        let reg = registered(Instant::now());
        assert!(may_watch(&subscribe("<sip:alice@ims.lab>", "600"), &reg));
        // The P-CSCF on the Path (port 5060 by default).
        assert!(may_watch(&subscribe("<sip:term@127.0.0.1>", "600"), &reg));
        assert!(!may_watch(&subscribe("<sip:bob@ims.lab>", "600"), &reg));
        assert!(!may_watch(&subscribe("<sip:127.0.0.1:5999>", "600"), &reg));
        assert!(is_reg_event(&subscribe("<sip:alice@ims.lab>", "600")));
        // An AS her iFCs name (the presence server), and no other.
        assert!(!may_watch(&subscribe("<sip:ps.ims.lab>", "600"), &reg));
        let mut reg = reg;
        reg.profile = Some(
            crate::profile::ImsSubscription::parse(
                "<IMSSubscription><PrivateID>alice@ims.lab</PrivateID><ServiceProfile>\
                 <PublicIdentity><Identity>sip:alice@ims.lab</Identity></PublicIdentity>\
                 <InitialFilterCriteria><Priority>40</Priority><ApplicationServer>\
                 <ServerName>sip:ps.ims.lab;transport=tcp</ServerName></ApplicationServer>\
                 </InitialFilterCriteria></ServiceProfile></IMSSubscription>",
            )
            .unwrap(),
        );
        assert!(may_watch(&subscribe("<sip:ps.ims.lab>", "600"), &reg));
        assert!(!may_watch(&subscribe("<sip:tim.ims.lab>", "600"), &reg));
    }

    #[test]
    fn a_subscription_is_accepted_and_its_notify_counts_down() {
        let t0 = Instant::now();
        let req = subscribe("<sip:alice@ims.lab>", "99999");
        let expires = subscription_expires(&req, &limits());
        assert_eq!(expires, 3600);
        let (ok, mut sub) = accept(
            &req,
            "sip:alice@ims.lab",
            "s1",
            "<sip:127.0.0.1:5080>",
            expires,
            t0,
        );
        assert_eq!(ok.status, 200);
        assert_eq!(ok.headers.get("To"), Some("<sip:alice@ims.lab>;tag=s1"));
        assert_eq!(
            ok.headers.get("Record-Route"),
            Some("<sip:127.0.0.1:5060;lr>")
        );
        assert_eq!(ok.headers.get("Expires"), Some("3600"));
        assert_eq!(sub.remote_target, "sip:alice@10.0.0.1:5062");
        assert_eq!(sub.route_set, vec!["<sip:127.0.0.1:5060;lr>"]);

        sub.cseq = 1;
        sub.version = 1;
        let reg = registered(t0);
        let t1 = t0 + Duration::from_secs(100);
        let n = notify_request(
            &sub,
            &reg,
            ContactEvent::Registered,
            true,
            t1,
            "<sip:127.0.0.1:5080>",
        );
        assert_eq!(n.uri.to_string(), "sip:alice@10.0.0.1:5062");
        assert_eq!(n.headers.get("CSeq"), Some("1 NOTIFY"));
        assert_eq!(n.headers.get("Route"), Some("<sip:127.0.0.1:5060;lr>"));
        assert_eq!(
            n.headers.get("Subscription-State"),
            Some("active;expires=3500")
        );
        let body = String::from_utf8_lossy(&n.body).to_string();
        assert!(body.contains("version=\"0\""), "{body}");
        assert!(body.contains("expires=\"500\""), "{body}");

        // Expired contacts are reported with 0 left, and the subscription ends.
        let n = notify_request(&sub, &reg, ContactEvent::Expired, false, t1, "<c>");
        assert_eq!(
            n.headers.get("Subscription-State"),
            Some("terminated;reason=noresource")
        );
        assert!(String::from_utf8_lossy(&n.body).contains("expires=\"0\""));
    }
}
