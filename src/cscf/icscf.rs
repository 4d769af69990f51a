//! I-CSCF, the home network's entry point (TS 24.229 §5.3).
//!
//! REGISTER (§5.3.1): asks the HSS which S-CSCF serves the user with a Cx
//! User-Authorization-Request (TS 29.229 §6.1.1), then forwards the REGISTER to the S-CSCF named
//! in Server-Name, or to one of its configured S-CSCFs whose capabilities match
//! Server-Capabilities (TS 29.228 §6.1.1.1; the choice is [`Icscf::pick_by_capabilities`]).
//! A user already served gets UAA 2002 naming its S-CSCF, so it stays there. UAA errors become
//! SIP answers: user unknown / identities don't match /
//! roaming not allowed -> 403, HSS unreachable -> 480 (TS 24.229 §5.3.1.2). An unknown user
//! (or an IMPU that is not the IMPI's) goes on to an S-CSCF all the same, for a decoy
//! challenge: the answers must not tell who exists.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    authorization_username, forward_ack, forward_copy, forward_stray_response, is_deregistration,
    next_hop, pop_own_route, proxy_to, reject as reject_with, relay_responses, unquote,
};
use crate::diameter::client::DiameterClient;
use crate::diameter::cx::{
    self, CxResult, LocationInfoAnswer, LocationInfoRequest, UserAuthorizationAnswer,
    UserAuthorizationRequest, UserAuthorizationType,
};
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Request, Response};

/// The I-CSCF node.
pub struct Icscf {
    ep: Endpoint,
    hss: DiameterClient,
    resolver: Resolver,
    domain: String,
    origin_host: String,
    /// S-CSCFs this I-CSCF may choose from when the HSS answers with capabilities:
    /// (server name, capabilities it offers).
    scscfs: Vec<(String, Vec<u32>)>,
    session_seq: AtomicU64,
}

impl Icscf {
    /// An I-CSCF on `ep` using `hss` for Cx.
    pub fn new(
        ep: Endpoint,
        hss: DiameterClient,
        resolver: Resolver,
        domain: &str,
        origin_host: &str,
        scscfs: Vec<(String, Vec<u32>)>,
    ) -> Arc<Icscf> {
        Arc::new(Icscf {
            ep,
            hss,
            resolver,
            domain: domain.to_string(),
            origin_host: origin_host.to_string(),
            scscfs,
            session_seq: AtomicU64::new(1),
        })
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
        match req.method {
            Method::Register => self.register(inc).await,
            Method::Ack => {
                let name = format!("icscf.{}", self.domain);
                let mut probe = inc.request.clone();
                pop_own_route(&mut probe, &self.ep, &name);
                match next_hop(&self.resolver, &probe).await {
                    Some((dest, _)) if self.ep.is_trusted(dest) => {
                        forward_ack(&self.ep, &self.resolver, inc.request, &name).await
                    }
                    _ => tracing::debug!("ACK to a destination outside the network dropped"),
                }
            }
            Method::Cancel => crate::cscf::handle_cancel(&self.ep, inc).await,
            _ => self.terminating(inc).await,
        }
    }

    /// TS 24.229 §5.3.2: a request for a home user: LIR to find its S-CSCF, then forward there
    /// with the Request-URI unchanged. User unknown -> 404, not registered -> 480.
    async fn terminating(&self, inc: IncomingRequest) {
        let mut req = inc.request.clone();
        let name = format!("icscf.{}", self.domain);
        pop_own_route(&mut req, &self.ep, &name);
        if req.headers.has("Route") {
            // Loose routing through us (in-dialog requests): just follow the route.
            let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
                inc.tx.respond(reject_with(&req, 404, "icscf", "no route"));
                return;
            };
            if !self.ep.is_trusted(dest) {
                // Only nodes of this network: the I-CSCF is no open relay.
                inc.tx.respond(reject_with(
                    &req,
                    403,
                    "icscf",
                    "no route outside the network",
                ));
                return;
            }
            let fwd = forward_copy(&self.ep, &inc.request, &req, t);
            proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
            return;
        }
        let Ok(target) = crate::sip::Uri::parse(&req.uri) else {
            inc.tx
                .respond(reject_with(&req, 416, "icscf", "unsupported Request-URI"));
            return;
        };
        let impu = target.aor();
        let lir = LocationInfoRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            originating_request: false,
            public_identity: impu.clone(),
            authorization_type: None,
        };
        let lia = match self
            .hss
            .request(lir.to_message())
            .await
            .map(|m| LocationInfoAnswer::from_message(&m))
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!(%impu, error = %e, "unusable LIA");
                inc.tx.respond(reject_with(
                    &req,
                    500,
                    "icscf",
                    "unusable answer from the HSS",
                ));
                return;
            }
            Err(e) => {
                let why = super::hss_unreachable("LIR", &impu, &e);
                inc.tx.respond(reject_with(&req, 480, "icscf", &why));
                return;
            }
        };
        // TS 29.228 §6.1.4.1: for a user with services for the unregistered state the LIA may
        // carry Server-Capabilities instead of a name; we pick as for a first registration.
        let picked = match (&lia.server_name, &lia.server_capabilities) {
            (None, Some(caps)) if lia.result.is_success() => {
                // Keyed as for registration (the IMPI the IMPU's user part gives), so the S-CSCF
                // serving the unregistered user is the one its registration would get.
                let key = crate::store::default_impi(&impu).unwrap_or_else(|_| impu.clone());
                self.pick_by_capabilities(caps, &key)
            }
            _ => None,
        };
        let server = match (lia.result, lia.server_name.or(picked)) {
            (CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN), _) => {
                tracing::info!(%impu, "terminating request for an unknown user (LIA DIAMETER_ERROR_USER_UNKNOWN)");
                inc.tx
                    .respond(reject_with(&req, 404, "icscf", "no such user"));
                return;
            }
            (CxResult::Experimental(cx::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED), _) => {
                tracing::info!(%impu, "terminating request for a user that is not registered (LIA 5003)");
                inc.tx
                    .respond(reject_with(&req, 480, "icscf", "user not registered"));
                return;
            }
            (r, Some(name)) if r.is_success() => {
                self.ep.note(|| format!("LIA: {impu} is served by {name}"));
                name
            }
            (r, _) => {
                tracing::warn!(%impu, result = ?r, "LIA without a usable S-CSCF");
                inc.tx
                    .respond(reject_with(&req, 480, "icscf", "no S-CSCF for this user"));
                return;
            }
        };
        let Some((dest, t)) = self.resolver.resolve_str(&server).await else {
            inc.tx.respond(reject_with(
                &req,
                480,
                "icscf",
                "S-CSCF name does not resolve",
            ));
            return;
        };
        let fwd = forward_copy(&self.ep, &inc.request, &req, t);
        proxy_to(&self.ep, &inc.tx, fwd, dest, t).await;
    }

    fn session_id(&self) -> String {
        let n = self.session_seq.fetch_add(1, Ordering::Relaxed);
        format!("{};{};{}", self.origin_host, std::process::id(), n)
    }

    async fn register(&self, inc: IncomingRequest) {
        let req = &inc.request;
        let Some(impu) = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor())
        else {
            inc.tx
                .respond(req.response(400, Some("Bad Request - unparsable To")));
            return;
        };
        let impi = authorization_username(req)
            .or_else(|| crate::store::default_impi(&impu).ok())
            .unwrap_or_else(|| impu.trim_start_matches("sip:").to_string());
        let visited = req
            .headers
            .get("P-Visited-Network-ID")
            .map(|v| unquote(v).to_string())
            .unwrap_or_else(|| self.domain.clone());
        let uar = UserAuthorizationRequest {
            session_id: self.session_id(),
            origin_host: self.origin_host.clone(),
            origin_realm: self.domain.clone(),
            destination_realm: self.domain.clone(),
            destination_host: None,
            user_name: impi.clone(),
            public_identity: impu.clone(),
            visited_network_identifier: visited.into_bytes(),
            authorization_type: Some(if is_deregistration(req) {
                UserAuthorizationType::DeRegistration
            } else {
                UserAuthorizationType::Registration
            }),
        };
        let answer = match self.hss.request(uar.to_message()).await {
            Ok(m) => UserAuthorizationAnswer::from_message(&m),
            Err(e) => {
                let why = super::hss_unreachable("UAR", &impu, &e);
                inc.tx
                    .respond(reject(req, 480, "Temporarily Unavailable", &why));
                return;
            }
        };
        let uaa = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%impu, error = %e, "unusable UAA");
                inc.tx.respond(reject(
                    req,
                    500,
                    "Server Internal Error",
                    "unusable answer from the HSS",
                ));
                return;
            }
        };
        // An identity the HSS does not know goes on to an S-CSCF all the same, which answers
        // it with a decoy challenge: a 403 here would tell a scanner (sipvicious svwar) which
        // users exist. Only what the network cannot serve at all is refused here.
        let mut unknown = None;
        match uaa.result {
            CxResult::Base(2001)
            | CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION)
            | CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION) => {}
            CxResult::Experimental(
                e @ (cx::DIAMETER_ERROR_USER_UNKNOWN | cx::DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
            ) => {
                let why = if e == cx::DIAMETER_ERROR_USER_UNKNOWN {
                    "unknown user (UAA DIAMETER_ERROR_USER_UNKNOWN)"
                } else {
                    "IMPI and IMPU do not belong together (UAA DIAMETER_ERROR_IDENTITIES_DONT_MATCH)"
                };
                tracing::info!(%impu, %impi, "registration of an {why}: on to an S-CSCF for the same answers as anyone");
                match self.scscfs.first() {
                    Some((name, _)) if !is_deregistration(req) => {
                        unknown = Some((name.clone(), why))
                    }
                    _ => {
                        inc.tx
                            .respond(reject(req, 403, "Forbidden", "authentication failed"));
                        return;
                    }
                }
            }
            CxResult::Experimental(cx::DIAMETER_ERROR_ROAMING_NOT_ALLOWED) => {
                inc.tx
                    .respond(reject(req, 403, "Forbidden", "roaming not allowed"));
                return;
            }
            other => {
                tracing::warn!(%impu, result = ?other, "UAA refused the registration");
                let (code, reason) = if is_deregistration(req) {
                    (403, "Forbidden")
                } else {
                    (480, "Temporarily Unavailable")
                };
                inc.tx.respond(reject(
                    req,
                    code,
                    reason,
                    &format!("HSS answered {other:?}"),
                ));
                return;
            }
        }
        let named_by_hss = unknown.is_none();
        let server = match (unknown, uaa.server_name, uaa.server_capabilities) {
            (Some((name, why)), _, _) => {
                self.ep
                    .note(|| format!("UAA: {why}; {impu} goes on to {name} all the same"));
                name
            }
            (None, Some(name), _) => name,
            (None, None, Some(caps)) => match self.pick_by_capabilities(&caps, &impi) {
                Some(n) => {
                    self.ep
                        .note(|| format!("UAA: capabilities {caps:?}; {impu} goes to {n}"));
                    n
                }
                None => {
                    inc.tx.respond(reject(
                        req,
                        600,
                        "Busy Everywhere",
                        "no S-CSCF has the required capabilities",
                    ));
                    return;
                }
            },
            (None, None, None) => {
                inc.tx.respond(reject(
                    req,
                    480,
                    "Temporarily Unavailable",
                    "HSS named no S-CSCF",
                ));
                return;
            }
        };
        let Some((dest, transport)) = self.resolver.resolve_str(&server).await else {
            tracing::warn!(%server, "cannot resolve the S-CSCF name from the HSS");
            inc.tx.respond(reject(
                req,
                480,
                "Temporarily Unavailable",
                "S-CSCF name does not resolve",
            ));
            return;
        };
        tracing::debug!(%impu, %server, "forwarding REGISTER to the S-CSCF chosen by the HSS");
        if named_by_hss {
            self.ep
                .note(|| format!("UAA: the HSS names {server} for {impu}"));
        }
        let fwd = forward_copy(&self.ep, req, req, transport);
        let client = self.ep.send_request(fwd, dest, transport);
        relay_responses(&inc.tx, client, |_| {}).await;
    }

    /// TS 29.228 §6.1.1.1, TS 29.229 §6.3.4 / TS 24.229 §5.3.1.2: choose an S-CSCF offering
    /// every mandatory capability, preferring those with most optional ones, or one of the
    /// named servers. Among equally good S-CSCFs `key` (the IMPI) picks
    /// one by [`crate::diameter::cx::pick_by_key`], so users spread and the choice is repeatable.
    fn pick_by_capabilities(&self, caps: &cx::ServerCapabilities, key: &str) -> Option<String> {
        if let Some(n) = caps.server_names.first() {
            return Some(n.clone());
        }
        pick_scscf(&self.scscfs, caps, key)
    }

    /// The address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.ep.local_addr()
    }
}

/// [`Icscf::pick_by_capabilities`] over `scscfs` (name, capabilities offered), lab order.
fn pick_scscf(
    scscfs: &[(String, Vec<u32>)],
    caps: &cx::ServerCapabilities,
    key: &str,
) -> Option<String> {
    let optional = |have: &Vec<u32>| caps.optional.iter().filter(|o| have.contains(o)).count();
    let able: Vec<&(String, Vec<u32>)> = scscfs
        .iter()
        .filter(|(_, have)| caps.mandatory.iter().all(|m| have.contains(m)))
        .collect();
    let best = able.iter().map(|(_, have)| optional(have)).max()?;
    let best: Vec<&String> = able
        .iter()
        .filter(|(_, have)| optional(have) == best)
        .map(|(n, _)| n)
        .collect();
    best.get(crate::diameter::cx::pick_by_key(key, best.len()))
        .map(|n| n.to_string())
}

fn reject(req: &Request, code: u16, reason: &str, why: &str) -> Response {
    let mut r = req.response(code, Some(reason));
    r.ensure_to_tag();
    r.headers.push(
        "Warning",
        format!("399 icscf \"{}\"", why.replace('"', "'")),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::pick_scscf;
    use crate::diameter::cx::ServerCapabilities;

    fn caps(mandatory: &[u32], optional: &[u32]) -> ServerCapabilities {
        ServerCapabilities {
            mandatory: mandatory.to_vec(),
            optional: optional.to_vec(),
            server_names: vec![],
        }
    }

    #[test]
    fn an_scscf_must_offer_every_mandatory_capability_and_ties_spread_by_key() {
        let list = vec![
            ("sip:one".to_string(), vec![1]),
            ("sip:two".to_string(), vec![1, 2]),
            ("sip:three".to_string(), vec![3]),
        ];
        // Only "two" has 2; only "three" has 3; nobody has 4.
        assert_eq!(
            pick_scscf(&list, &caps(&[2], &[]), "k").as_deref(),
            Some("sip:two")
        );
        assert_eq!(
            pick_scscf(&list, &caps(&[3], &[]), "k").as_deref(),
            Some("sip:three")
        );
        assert_eq!(pick_scscf(&list, &caps(&[4], &[]), "k"), None);
        // Most optional ones wins.
        assert_eq!(
            pick_scscf(&list, &caps(&[1], &[2]), "k").as_deref(),
            Some("sip:two")
        );
        // "one" and "two" both qualify equally: the IMPI decides (pick_by_key: alice 1, bob 0).
        let c = caps(&[1], &[]);
        assert_eq!(
            pick_scscf(&list, &c, "alice@ims.lab").as_deref(),
            Some("sip:two")
        );
        assert_eq!(
            pick_scscf(&list, &c, "bob@ims.lab").as_deref(),
            Some("sip:one")
        );
    }
}
