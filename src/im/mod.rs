//! O-IM and T-IM, the RCS instant-messaging application servers (OMA CPM / RCS), reached over
//! ISC by iFC (TS 23.218, TS 24.229 §5.7).
//!
//! This is the routing half of them: each acts as an AS that proxies the request back to the
//! S-CSCF along the Route the S-CSCF gave it (TS 24.229 §5.7.4, "AS acting as a SIP proxy"),
//! record-routing dialogs so MSRP set-up and in-dialog requests pass it, and accepts the
//! third-party REGISTER its iFC asks for (§5.7.1.1) so it knows who is online. The messaging
//! half (MSRP relay, CPIM/IMDN store-and-forward) builds on this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::cscf::{
    creates_dialog, forward_ack, forward_copy, next_hop, pop_own_route, proxy_to, reject,
};
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr};

/// Which side of a chat this AS serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImRole {
    /// Originating (O-IM).
    Originating,
    /// Terminating (T-IM).
    Terminating,
}

/// An instant-messaging AS node.
pub struct ImServer {
    ep: Endpoint,
    resolver: Resolver,
    role: ImRole,
    host: String,
    /// Users the S-CSCF told us are registered (third-party REGISTER), until when.
    online: Mutex<HashMap<String, Instant>>,
}

impl ImServer {
    /// An AS on `ep` whose SIP host name is `host` (e.g. `oim.ims.lab`).
    pub fn new(ep: Endpoint, resolver: Resolver, role: ImRole, host: &str) -> Arc<ImServer> {
        Arc::new(ImServer {
            ep,
            resolver,
            role,
            host: host.to_string(),
            online: Mutex::new(HashMap::new()),
        })
    }

    /// The role.
    pub fn role(&self) -> ImRole {
        self.role
    }

    /// True when a third-party REGISTER said `impu` is registered.
    pub fn is_online(&self, impu: &str) -> bool {
        let Ok(k) = crate::store::canonical_identity(impu) else {
            return false;
        };
        self.online
            .lock()
            .ok()
            .and_then(|m| m.get(&k).copied())
            .is_some_and(|t| t > Instant::now())
    }

    /// Serves requests until the endpoint closes.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(inc) = rx.recv().await {
            match inc {
                Incoming::Request(r) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.on_request(r).await });
                }
                Incoming::StrayResponse { response, .. } => {
                    crate::cscf::forward_stray_response(&self.ep, response).await
                }
            }
        }
    }

    fn record_route(&self) -> String {
        format!(
            "<sip:{}:{};transport=tcp;lr>",
            self.host,
            self.ep.local_addr().port()
        )
    }

    async fn on_request(&self, inc: IncomingRequest) {
        match inc.request.method {
            Method::Ack => forward_ack(&self.ep, &self.resolver, inc.request, &self.host).await,
            Method::Register => self.third_party_register(inc),
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            _ => self.proxy_back(inc).await,
        }
    }

    /// TS 24.229 §5.7.1.1: the S-CSCF tells us the user's registration state.
    fn third_party_register(&self, inc: IncomingRequest) {
        let req = &inc.request;
        let impu = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor());
        let expires: u64 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        if let (Some(impu), Ok(mut m)) = (impu, self.online.lock()) {
            if expires == 0 {
                m.remove(&impu);
            } else {
                m.insert(impu, Instant::now() + Duration::from_secs(expires));
            }
        }
        let mut ok = req.response(200, None);
        if let Some(to) = ok.headers.get("To").map(str::to_string) {
            ok.headers
                .set("To", format!("{to};tag={}", crate::sip::new_tag()));
        }
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
    }

    /// §5.7.4: proxy the request on along its Route (back to the S-CSCF).
    async fn proxy_back(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        pop_own_route(&mut req, &self.ep, &self.host);
        if creates_dialog(&req) {
            req.headers.push_front("Record-Route", self.record_route());
        }
        let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
            inc.tx
                .respond(reject(&req, 404, &self.host, "no route back to the S-CSCF"));
            return;
        };
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
    }
}
