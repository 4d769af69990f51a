//! P-CSCF, the UE's first hop (TS 24.229 §5.2).
//!
//! Registration (§5.2.2): forwards REGISTER to the home network's I-CSCF with a Path header
//! naming itself (RFC 3327), `Supported: path`, P-Visited-Network-ID and a P-Charging-Vector;
//! removes CK/IK from the 401's WWW-Authenticate (TS 33.203 §7.1); on 200 OK remembers the UE's
//! flow (address and transport), its Service-Route and P-Associated-URI for later requests.
//!
//! SIP over WebSocket (RFC 7118, the browser's transport): a UE on a WebSocket flow has a
//! made-up `.invalid` host in its Via and Contact. The flow is what counts: responses and
//! terminating requests go back over that connection, the `.invalid` host is never resolved,
//! and its REGISTER gets `;ob` in our Path (RFC 5626 §5.1: we are the edge proxy of an
//! outbound flow). Our URI on that side names the WebSocket listener (`transport=ws`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

mod ws;

use super::bindings::BindingTable;
pub use super::bindings::UeBinding;
use super::{
    creates_dialog, forward_ack, forward_copy, forward_stray_response, in_dialog, next_hop,
    pop_own_route, proxy_to, record_routes_notify, reject, relay_responses,
};
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Response, Transport};

/// The P-CSCF node.
pub struct Pcscf {
    ep: Endpoint,
    /// The home network's I-CSCF (what DNS on the home domain would give).
    icscf: SocketAddr,
    /// Transport towards the other CSCFs.
    mw: Transport,
    resolver: Resolver,
    domain: String,
    /// Registered UEs by contact URI: a user registered from two clients has two
    /// (TS 24.229 §5.2.2.5 keeps one set of parameters per registration flow).
    bindings: Mutex<BindingTable>,
    /// Subscribe to each registered user's reg event (TS 24.229 §5.2.3).
    subscribe_reg: std::sync::atomic::AtomicBool,
    /// Our reg subscriptions: default IMPU -> Call-ID.
    reg_subs: Mutex<HashMap<String, String>>,
}

impl Pcscf {
    /// A P-CSCF on `ep` that sends registrations to the I-CSCF at `icscf`.
    pub fn new(
        ep: Endpoint,
        icscf: SocketAddr,
        mw: Transport,
        resolver: Resolver,
        domain: &str,
    ) -> Arc<Pcscf> {
        Arc::new(Pcscf {
            ep,
            icscf,
            mw,
            resolver,
            subscribe_reg: std::sync::atomic::AtomicBool::new(false),
            reg_subs: Mutex::new(HashMap::new()),
            domain: domain.to_string(),
            bindings: Mutex::new(BindingTable::default()),
        })
    }

    /// Our SIP URI as the core sees it: an IP literal (no DNS needed), with the Mw transport.
    pub fn uri(&self) -> String {
        self.core_uri(None)
    }

    /// `sip:[user@]ip:port;transport=…` on the core side (Mw).
    fn core_uri(&self, user: Option<&str>) -> String {
        super::node_uri(&self.ep, user, self.mw)
    }

    /// Our URI on the UE side: the address and transport the UE itself used (RFC 5658), so a
    /// UE that cannot resolve names or speaks only UDP can reach us as written.
    fn ue_uri(&self, transport: Transport) -> String {
        match (transport, self.ep.ws_addr()) {
            (Transport::Ws, Some(ws)) => super::node_uri_at(ws, None, transport),
            _ => super::node_uri(&self.ep, None, transport),
        }
    }

    /// RFC 3261 §16.4: pops every top Route that names us, on either side (our SIP address or
    /// our WebSocket listener); returns the first popped.
    fn pop_routes_to_us(&self, req: &mut crate::sip::Request) -> Option<String> {
        let mut first = None;
        loop {
            let popped = match req.headers.values("Route").first().map(|r| r.to_string()) {
                Some(top) if self.is_ws_uri(&top) => {
                    req.headers.pop_first_value("Route");
                    Some(top)
                }
                Some(_) => pop_own_route(req, &self.ep, &self.name()),
                None => None,
            };
            match popped {
                Some(r) => {
                    first.get_or_insert(r);
                }
                None => return first,
            }
        }
    }

    /// The newest live binding of a registered public identity, if any.
    pub fn binding(&self, impu: &str) -> Option<UeBinding> {
        self.bindings_of(impu)
            .into_iter()
            .max_by_key(|b| b.expires_at)
    }

    /// Every live binding of a public identity (one per registered client).
    pub fn bindings_of(&self, impu: &str) -> Vec<UeBinding> {
        let Ok(key) = crate::store::canonical_identity(impu) else {
            return Vec::new();
        };
        self.bindings
            .lock()
            .map(|m| m.of_identity(&key, Instant::now()))
            .unwrap_or_default()
    }

    /// Bindings held (one per registered contact; lapsed ones until the next sweep).
    pub fn binding_count(&self) -> usize {
        self.bindings.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Serves requests until the endpoint closes.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(inc) = rx.recv().await {
            match inc {
                Incoming::Request(r) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.on_request(r).await });
                }
                Incoming::StrayResponse { response, source } => {
                    // Only the core and our UEs' flows send us responses worth passing on; a
                    // response from anyone else with our Via on top must not be reflected.
                    if !self.ep.is_trusted(source) && self.binding_of_flow(source).is_none() {
                        tracing::debug!(%source, "stray response from outside the network dropped");
                        continue;
                    }
                    // Detached: a TCP connect must not hold up the node's loop.
                    let ep = self.ep.clone();
                    tokio::spawn(async move { forward_stray_response(&ep, response).await });
                }
            }
        }
    }

    async fn on_request(&self, inc: IncomingRequest) {
        let req = &inc.request;
        if self.ep.is_looping(req) {
            inc.tx.respond(req.response(482, Some("Loop Detected")));
            return;
        }
        if req.method == Method::Notify
            && req
                .headers
                .get("Event")
                .is_some_and(|e| e.trim().starts_with("reg"))
            && super::is_own_uri(&req.uri, &self.ep, &self.name())
        {
            self.on_reg_notify(inc);
            return;
        }
        match req.method {
            Method::Register => self.register(inc).await,
            Method::Ack => {
                // Inside the trust domain only: from the core, or from a UE's flow to the core
                // (an ACK is never answered, so a forged one would be relayed unseen).
                let from_ue = self.binding_of_flow(inc.source).is_some();
                if !from_ue && !self.ep.is_trusted(inc.source) {
                    tracing::debug!(source = %inc.source, "ACK from outside the network dropped");
                    return;
                }
                let mut probe = inc.request.clone();
                if self.pop_routes_to_us(&mut probe).is_some() && !probe.headers.has("Route") {
                    // A WebSocket UE's contact has an `.invalid` host: its flow, never DNS.
                    if let Some((dest, t)) = self.ws_flow_of_contact(&probe.uri) {
                        let fwd = forward_copy(&self.ep, &inc.request, &probe, t);
                        let msg = crate::sip::SipMessage::Request(fwd);
                        self.ep.send_stateless(&msg, dest, t).await;
                        return;
                    }
                }
                if let Some((dest, _)) = next_hop(&self.resolver, &probe).await {
                    if !self.may_reach(dest, from_ue) {
                        tracing::debug!(%dest, "ACK to a destination outside the network dropped");
                        return;
                    }
                }
                let mut ack = inc.request;
                if self.ep.ws_addr().is_some() {
                    // Our WebSocket-side Route entries too, which forward_ack does not know.
                    self.pop_routes_to_us(&mut ack);
                }
                forward_ack(&self.ep, &self.resolver, ack, &self.name()).await
            }
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            _ => self.route(inc).await,
        }
    }

    fn name(&self) -> String {
        format!("pcscf.{}", self.domain)
    }

    /// Turns the P-CSCF's own reg-event subscriptions on or off (on by default in the lab).
    pub fn set_subscribe_reg(&self, on: bool) {
        self.subscribe_reg
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn own_uri(&self) -> String {
        self.core_uri(None)
    }

    /// TS 24.229 §5.2.3: after an initial registration, SUBSCRIBE to the user's reg event
    /// along the Service-Route, so a network-initiated de-registration reaches us.
    fn subscribe_reg_if_new(&self, resp: &Response) {
        if !self
            .subscribe_reg
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let Some(impu) = resp
            .headers
            .values("P-Associated-URI")
            .first()
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|na| na.uri.aor())
        else {
            return;
        };
        if resp.headers.values("Contact").is_empty() {
            if let Ok(mut m) = self.reg_subs.lock() {
                m.remove(&impu);
            }
            return;
        }
        let call_id = crate::sip::new_call_id(&self.ep.local_addr().ip().to_string());
        match self.reg_subs.lock() {
            Ok(mut m) if !m.contains_key(&impu) => {
                m.insert(impu.clone(), call_id.clone());
            }
            _ => return,
        }
        let me = self.own_uri();
        let mut r = crate::sip::Request::new(Method::Subscribe, impu.clone());
        r.headers.push("Max-Forwards", "70");
        r.headers
            .push("From", format!("<{me}>;tag={}", crate::sip::new_tag()));
        r.headers.push("To", format!("<{impu}>"));
        r.headers.push("Call-ID", call_id);
        r.headers.push("CSeq", "1 SUBSCRIBE");
        for route in resp.headers.values("Service-Route") {
            r.headers.push("Route", route.to_string());
        }
        r.headers.push("P-Asserted-Identity", format!("<{me}>"));
        r.headers.push("Contact", format!("<{me}>"));
        r.headers.push("Event", "reg");
        r.headers.push("Accept", "application/reginfo+xml");
        r.headers.push("Expires", "600000");
        let ep = self.ep.clone();
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let Some((dest, t)) = next_hop(&resolver, &r).await else {
                return;
            };
            r.headers.push_front("Via", ep.new_via(t));
            let resp = ep.send_request(r, dest, t).final_response().await;
            if resp.status >= 300 {
                tracing::info!(%impu, status = resp.status, "P-CSCF reg subscription refused");
            }
        });
    }

    /// Where a request may go from here: a UE's request only into the core; a core request to
    /// the core or to one of our UEs' flows. Nothing to the rest of the world (no open relay).
    fn may_reach(&self, dest: SocketAddr, from_ue: bool) -> bool {
        self.ep.is_trusted(dest) || (!from_ue && self.binding_of_flow(dest).is_some())
    }

    /// A NOTIFY for one of our reg subscriptions: forget the bindings the S-CSCF says ended.
    /// Only inside a subscription we made (its Call-ID) and from the core (RFC 6665 §4.1.3:
    /// 481 otherwise): a forged NOTIFY from anyone else dropped bindings and cut users off.
    fn on_reg_notify(&self, inc: IncomingRequest) {
        let call_id = inc.request.headers.get("Call-ID").unwrap_or("").to_string();
        let ours = self
            .reg_subs
            .lock()
            .is_ok_and(|m| m.values().any(|c| *c == call_id));
        if !ours || !self.ep.is_trusted(inc.source) {
            crate::warn_limited!("pcscf.foreign_reg_notify", source = %inc.source, "reg-event NOTIFY outside our subscriptions (or not from the core) refused with 481");
            let mut r = inc
                .request
                .response(481, Some("Subscription Does Not Exist"));
            r.ensure_to_tag();
            inc.tx.respond(r);
            return;
        }
        let body = String::from_utf8_lossy(&inc.request.body).to_string();
        let terminated = super::regevent::terminated_aors(&body);
        if let Ok(mut m) = self.bindings.lock() {
            for aor in &terminated {
                if m.remove_identities(std::slice::from_ref(aor)) > 0 {
                    tracing::info!(%aor, "binding removed: the S-CSCF says the registration ended");
                }
            }
        }
        if inc
            .request
            .headers
            .get("Subscription-State")
            .is_some_and(|s| s.starts_with("terminated"))
        {
            if let Ok(mut m) = self.reg_subs.lock() {
                let call_id = inc.request.headers.get("Call-ID").unwrap_or("");
                m.retain(|_, c| c != call_id);
            }
        }
        let mut ok = inc.request.response(200, None);
        ok.headers.push("Contact", format!("<{}>", self.own_uri()));
        inc.tx.respond(ok);
    }

    /// Record-Route for a dialog-creating request (RFC 3261 §16.6 step 4). Our two sides may
    /// differ in transport (a UDP UE, a TCP core): RFC 5658 §4 double Record-Route, one entry
    /// per side, the entry for the side the request leaves on on top. `towards_ue` is the
    /// transport of the UE's flow; `outbound_is_ue` says which side the request leaves on.
    fn record_route(
        &self,
        fwd: &mut crate::sip::Request,
        towards_ue: Transport,
        outbound_is_ue: bool,
    ) {
        let ue = format!("<{};lr>", self.ue_uri(towards_ue));
        let core = format!("<{};lr>", self.core_uri(None));
        let (inbound, outbound) = if outbound_is_ue {
            (core, ue)
        } else {
            (ue, core)
        };
        if inbound != outbound {
            fwd.headers.push_front("Record-Route", inbound);
        }
        fwd.headers.push_front("Record-Route", outbound);
    }

    /// The binding whose flow a request came from (an originating request, TS 24.229 §5.2.6.3).
    fn binding_of_flow(&self, source: SocketAddr) -> Option<UeBinding> {
        self.bindings.lock().ok()?.of_flow(source, Instant::now())
    }

    /// The binding an originating request comes from: of its flow, the one registered for
    /// the identity it prefers (P-Preferred-Identity, else From) when the flow carries
    /// several registrations.
    fn binding_of_request(
        &self,
        source: SocketAddr,
        req: &crate::sip::Request,
    ) -> Option<UeBinding> {
        let aor_of = |h: &str| {
            req.headers
                .get(h)
                .and_then(|v| NameAddr::parse(v).ok())
                .map(|na| na.uri.aor())
        };
        let identity = aor_of("P-Preferred-Identity").or_else(|| aor_of("From"));
        self.bindings
            .lock()
            .ok()?
            .of_flow_as(source, identity.as_deref(), Instant::now())
    }

    /// The binding whose contact a terminating request targets (§5.2.6.4): host and port
    /// identify the UE; its dialog Contact may use another user part, or name the TCP
    /// connection it registered over (baresip does).
    fn binding_of_contact(&self, uri: &str) -> Option<UeBinding> {
        let target = crate::sip::Uri::parse(uri).ok()?;
        let host = target.host()?;
        let port = target.port().unwrap_or(5060);
        self.bindings
            .lock()
            .ok()?
            .of_target(host, port, Instant::now())
    }

    /// Non-REGISTER requests: originating ones from a registered UE go to the S-CSCF along the
    /// Service-Route with an asserted identity; terminating ones from the core go to the UE's
    /// flow (TS 24.229 §5.2.6).
    async fn route(&self, inc: IncomingRequest) {
        let IncomingRequest {
            request,
            source,
            tx,
            ..
        } = inc;
        let mut fwd = request.clone();
        let from_ue = self.binding_of_request(source, &request);
        let popped = self.pop_routes_to_us(&mut fwd);
        let via_path = popped
            .as_deref()
            .and_then(|r| NameAddr::parse(r).ok())
            .is_some_and(|na| na.uri.user() == Some("term"));
        if let Some(b) = from_ue {
            // Originating (§5.2.6.3): assert who the UE is, strip what it may not say.
            let preferred = fwd
                .headers
                .get("P-Preferred-Identity")
                .and_then(|v| NameAddr::parse(v).ok())
                .map(|na| na.uri.aor())
                .filter(|p| b.associated.contains(p));
            let asserted = preferred.or_else(|| b.associated.first().cloned());
            fwd.headers.remove("P-Preferred-Identity");
            strip_network_only(&mut fwd);
            if let Some(a) = asserted {
                fwd.headers.push("P-Asserted-Identity", format!("<{a}>"));
            }
            // Credentials the UE sends for the home realm are for the S-CSCF's registrar,
            // never for whoever the request reaches (TS 24.229 §5.2.6.3; RFC 3261 §22.3
            // lets the proxy that owns the realm consume them).
            strip_core_credentials(&mut fwd, &self.domain);
            if !in_dialog(&fwd) {
                // §5.2.6.3.3 b): the preloaded route must be the Service-Route learnt at
                // registration (RFC 3608); whatever the UE put there is replaced.
                fwd.headers.remove("Route");
                for r in b.service_route.iter().rev() {
                    fwd.headers.push_front("Route", r.clone());
                }
            }
            if creates_dialog(&fwd) || record_routes_notify(&fwd, popped.is_some()) {
                self.record_route(&mut fwd, b.flow.1, false);
            }
            let Some((dest, t)) = next_hop(&self.resolver, &fwd).await else {
                tx.respond(reject(&request, 404, "pcscf", "no route to the S-CSCF"));
                return;
            };
            if !self.may_reach(dest, true) {
                tx.respond(reject(
                    &request,
                    403,
                    "pcscf",
                    "a UE's requests go to the home network only",
                ));
                return;
            }
            let fwd = forward_copy(&self.ep, &request, &fwd, t);
            proxy_to(&self.ep, &tx, fwd, dest, t).await;
            return;
        }
        if !self.ep.is_trusted(source) {
            // Neither a registered UE's flow nor a node of the core (TS 24.229 trust domain):
            // whatever it routes by (a Route to our `term` entry, a dialog) it is refused, so
            // no one outside reaches a UE with an identity of their making.
            tx.respond(reject(
                &request,
                403,
                "pcscf",
                "not registered: REGISTER first",
            ));
            return;
        }
        if in_dialog(&fwd) && fwd.headers.has("Route") {
            // In-dialog request from the core side that still has routes to follow.
            let Some((dest, t)) = next_hop(&self.resolver, &fwd).await else {
                tx.respond(reject(&request, 404, "pcscf", "no route"));
                return;
            };
            if !self.may_reach(dest, false) {
                tx.respond(reject(
                    &request,
                    403,
                    "pcscf",
                    "no route outside the network",
                ));
                return;
            }
            let fwd = forward_copy(&self.ep, &request, &fwd, t);
            proxy_to(&self.ep, &tx, fwd, dest, t).await;
            return;
        }
        if !via_path && !in_dialog(&fwd) {
            // Neither from a registered UE's flow nor along a Path we inserted.
            tx.respond(reject(
                &request,
                403,
                "pcscf",
                "not registered: REGISTER first",
            ));
            return;
        }
        // Terminating (§5.2.6.4): the Request-URI is a registered contact of one of our UEs.
        let Some(b) = self.binding_of_contact(&fwd.uri) else {
            if ws::is_invalid_host(&fwd.uri) {
                // RFC 7118 §5: only the WebSocket flow reaches such a contact, and it is gone.
                tx.respond(reject(
                    &request,
                    480,
                    "pcscf",
                    "the WebSocket client of this .invalid contact is no longer registered",
                ));
                return;
            }
            if in_dialog(&fwd) {
                // The route set ended at us and the remote target is not a contact we know:
                // RFC 3261 §16.6 step 7, the Request-URI is the next hop.
                if let Some((dest, t)) = next_hop(&self.resolver, &fwd)
                    .await
                    .filter(|(d, _)| self.may_reach(*d, false))
                {
                    let fwd = forward_copy(&self.ep, &request, &fwd, t);
                    proxy_to(&self.ep, &tx, fwd, dest, t).await;
                    return;
                }
            }
            tx.respond(reject(
                &request,
                480,
                "pcscf",
                "no registered UE has this contact",
            ));
            return;
        };
        // A NOTIFY gets the same entries as the SUBSCRIBE did (RFC 6665 §4.3), so the UE's
        // route set is the same whether it learns it from the 200 or from this NOTIFY.
        if creates_dialog(&fwd) || record_routes_notify(&fwd, popped.is_some()) {
            self.record_route(&mut fwd, b.flow.1, true);
        }
        let (dest, t) = b.flow;
        if t == Transport::Ws {
            self.ep.note(|| {
                format!(
                    "{} for {} goes back over the WebSocket flow from {dest} it registered on \
                     (RFC 7118 §6; its .invalid host is never resolved)",
                    request.method.as_str(),
                    b.contact
                )
            });
        }
        let fwd = forward_copy(&self.ep, &request, &fwd, t);
        proxy_to(&self.ep, &tx, fwd, dest, t).await;
    }

    async fn register(&self, inc: IncomingRequest) {
        let IncomingRequest {
            request,
            source,
            transport,
            tx,
        } = inc;
        let mut fwd = forward_copy(&self.ep, &request, &request, self.mw);
        // A Route to ourselves (the UE's outbound proxy setting) is consumed here.
        if let Some(first) = fwd.headers.values("Route").first() {
            if super::is_own_uri(first, &self.ep, &self.name()) || self.is_ws_uri(first) {
                fwd.headers.pop_first_value("Route");
            }
        }
        // TS 24.229 §5.2.2.1: what a UE may not assert about itself.
        strip_network_only(&mut fwd);
        fwd.headers.remove("P-Charging-Function-Addresses");
        // RFC 3327: the S-CSCF reaches us by this Path, from the core side. A WebSocket UE's
        // connection is an outbound flow (RFC 5626 §5.1) and we are its edge proxy: `ob`.
        let ob = if transport == Transport::Ws {
            ";ob"
        } else {
            ""
        };
        let path = format!("<{};lr{ob}>", self.core_uri(Some("term")));
        if transport == Transport::Ws {
            self.note_ws_register(&request, source, &path);
        }
        fwd.headers.push_front("Path", path);
        if !fwd
            .headers
            .values("Supported")
            .iter()
            .any(|s| s.eq_ignore_ascii_case("path"))
        {
            fwd.headers.push("Supported", "path");
        }
        fwd.headers
            .set("P-Visited-Network-ID", format!("\"{}\"", self.domain));
        if !fwd.headers.has("P-Charging-Vector") {
            fwd.headers.push(
                "P-Charging-Vector",
                format!(
                    "icid-value=\"{}\";icid-generated-at={}",
                    crate::sip::new_tag(),
                    self.ep.local_addr().ip()
                ),
            );
        }
        let registered: Vec<String> = request
            .headers
            .values("Contact")
            .iter()
            .filter_map(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .collect();
        let client = self.ep.send_request(fwd, self.icscf, self.mw);
        // The binding is stored before the 200 leaves: a UE may send its first request the
        // moment it reads the 200.
        let final_ = relay_responses(&tx, client, |resp| {
            strip_ck_ik(resp);
            if resp.status == 200 {
                self.remember(resp, &registered, source, transport);
            }
        })
        .await;
        if let Some(resp) = final_ {
            if resp.status == 200 {
                self.subscribe_reg_if_new(&resp);
            }
        }
    }

    /// TS 24.229 §5.2.2.5: store the registration's Service-Route, associated identities and
    /// the UE's flow, for each contact this REGISTER carried (`registered`). The 200 lists
    /// every contact of the set, other clients' too: only ours are taken from it, and one of
    /// ours missing from it (or with expires 0) was removed.
    fn remember(
        &self,
        resp: &Response,
        registered: &[String],
        source: SocketAddr,
        transport: Transport,
    ) {
        let service_route: Vec<String> = resp
            .headers
            .values("Service-Route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        let associated: Vec<String> = resp
            .headers
            .values("P-Associated-URI")
            .iter()
            .filter_map(|v| NameAddr::parse(v).ok())
            .map(|na| na.uri.aor())
            .collect();
        let granted: HashMap<String, u32> = resp
            .headers
            .values("Contact")
            .iter()
            .filter_map(|c| NameAddr::parse(c).ok())
            .map(|na| {
                let exp = na
                    .params
                    .value("expires")
                    .and_then(|e| e.trim().parse().ok())
                    .unwrap_or(0);
                (na.uri.to_string(), exp)
            })
            .collect();
        let Ok(mut map) = self.bindings.lock() else {
            return;
        };
        let now = Instant::now();
        map.sweep(now);
        if registered.iter().any(|c| c.trim() == "*") {
            map.remove_identities(&associated);
            return;
        }
        for contact in registered {
            match granted.get(contact).copied().filter(|e| *e > 0) {
                Some(expires) => {
                    map.insert(UeBinding {
                        contact: contact.clone(),
                        flow: (source, transport),
                        service_route: service_route.clone(),
                        associated: associated.clone(),
                        expires_at: now + Duration::from_secs(expires.into()),
                    });
                }
                None => {
                    map.remove(contact);
                }
            }
        }
    }
}

/// Removes Authorization / Proxy-Authorization values whose realm is the home domain from a
/// non-REGISTER request: a UE such as linphone replays its registration credentials on every
/// request, and they must not reach the called party.
/// Headers only the network may set (TS 24.229 §5.2.6.3.3, §4.4): whatever a UE puts there is
/// removed before its request enters the trust domain, and the P-CSCF writes its own where it
/// has something to say (P-Asserted-Identity, P-Visited-Network-ID, P-Charging-Vector).
const NETWORK_ONLY: [&str; 7] = [
    "P-Asserted-Identity",
    "P-Served-User",
    "P-Charging-Vector",
    "P-Charging-Function-Addresses",
    "P-Profile-Key",
    "P-Asserted-Service",
    "P-Visited-Network-ID",
];

fn strip_network_only(req: &mut crate::sip::Request) {
    for h in NETWORK_ONLY {
        req.headers.remove(h);
    }
}

fn strip_core_credentials(req: &mut crate::sip::Request, domain: &str) {
    for h in ["Proxy-Authorization", "Authorization"] {
        let values: Vec<String> = req.headers.get_all(h).map(str::to_string).collect();
        if values.is_empty() {
            continue;
        }
        req.headers.remove(h);
        for v in values {
            let ours = crate::auth::digest::Credentials::parse(&v)
                .map(|c| c.realm.eq_ignore_ascii_case(domain))
                .unwrap_or(false);
            if !ours {
                req.headers.push(h, v);
            }
        }
    }
}

/// TS 33.203 §7.1: the P-CSCF keeps CK and IK and removes them before the 401 reaches the UE.
fn strip_ck_ik(resp: &mut Response) {
    if resp.status != 401 {
        return;
    }
    let values: Vec<String> = resp
        .headers
        .get_all("WWW-Authenticate")
        .map(str::to_string)
        .collect();
    if values.is_empty() {
        return;
    }
    resp.headers.remove("WWW-Authenticate");
    for v in values {
        match crate::auth::digest::Challenge::parse(&v) {
            Ok(mut ch) => {
                ch.ck = None;
                ch.ik = None;
                resp.headers.push("WWW-Authenticate", ch.to_string());
            }
            Err(_) => resp.headers.push("WWW-Authenticate", v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_for_the_home_realm_do_not_pass_the_p_cscf() {
        let mut r = crate::sip::Request::new(Method::Invite, "sip:alice@ims.lab");
        r.headers.push(
            "Proxy-Authorization",
            "Digest username=\"bob@ims.lab\", realm=\"ims.lab\", nonce=\"n\", uri=\"sip:ims.lab\", response=\"0123\"",
        );
        r.headers.push(
            "Authorization",
            "Digest username=\"bob\", realm=\"elsewhere.example\", nonce=\"n\", uri=\"sip:x\", response=\"4567\"",
        );
        strip_core_credentials(&mut r, "ims.lab");
        assert!(!r.headers.has("Proxy-Authorization"));
        // Credentials for another realm are the callee's business (RFC 3261 §22.3).
        assert!(r
            .headers
            .get("Authorization")
            .is_some_and(|a| a.contains("elsewhere.example")));
    }
}
