//! A simulated IMS UE: registers through the P-CSCF with SIP Digest (RFC 2617) or IMS AKA
//! (RFC 3310 / TS 33.203, with its own USIM state: K, OPc and the highest SQN accepted), the way
//! TS 24.229 §5.1.1 describes. Tests and labs use it; later issues grow it into an RCS client.

pub mod caps;
pub mod chat;
pub mod ft;
pub mod jssip;
pub mod presence;
pub mod rls;
pub mod sms;

use std::net::SocketAddr;

use tokio::sync::{mpsc, watch};

use crate::auth::aka::{self, UeAkaOutcome};
use crate::auth::digest::{self, Challenge, Credentials};
use crate::config::LabConfig;
use crate::sip::endpoint::Incoming;
use crate::sip::transaction::TimerConfig;
use crate::sip::{new_call_id, new_tag, Endpoint, Method, NameAddr, Request, Response, Transport};
use crate::trace::Trace;

/// How the UE authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// SIP Digest MD5 with the password.
    Digest,
    /// AKAv1-MD5 with K/OPc (Milenage).
    Aka,
}

/// A UE's identity, credentials and where its P-CSCF is.
#[derive(Debug, Clone)]
pub struct UeConfig {
    /// Default public identity, e.g. `sip:alice@ims.lab`.
    pub impu: String,
    /// Private identity, e.g. `alice@ims.lab`.
    pub impi: String,
    /// Digest password.
    pub password: String,
    /// USIM key K.
    pub k: [u8; 16],
    /// USIM OPc.
    pub opc: [u8; 16],
    /// Highest SQN the USIM has accepted.
    pub sqn_ms: u64,
    /// The P-CSCF.
    pub pcscf: SocketAddr,
    /// Transport towards the P-CSCF.
    pub transport: Transport,
    /// Home domain (Request-URI of REGISTER and digest realm).
    pub domain: String,
    /// Authentication scheme.
    pub auth: AuthMode,
    /// Feature tags beyond the RCS client's, as Contact parameters each starting with `;`
    /// (a chatbot's `;+g.gsma.rcs.isbot`): registered and given in answers to OPTIONS.
    pub extra_tags: String,
}

impl UeConfig {
    /// The credentials of `user` (e.g. `alice`) from a lab config.
    pub fn from_lab(config: &LabConfig, user: &str, pcscf: SocketAddr) -> Option<UeConfig> {
        let domain = config.lab.domain.clone();
        let wanted = format!("sip:{user}@{domain}");
        let s = config
            .subscribers
            .iter()
            .find(|s| s.impu.iter().any(|i| i == &wanted || i == user))?;
        let hex16 = |h: &Option<String>| -> [u8; 16] {
            h.as_deref()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|v| <[u8; 16]>::try_from(v).ok())
                .unwrap_or([0; 16])
        };
        let impu = s.impu.first()?.clone();
        let impi = s
            .impi
            .clone()
            .or_else(|| crate::store::default_impi(&impu).ok())?;
        Some(UeConfig {
            impu,
            impi,
            password: s.password.clone(),
            k: hex16(&s.k),
            opc: hex16(&s.opc),
            sqn_ms: 0,
            pcscf,
            transport: Transport::Udp,
            domain,
            auth: AuthMode::Digest,
            extra_tags: String::new(),
        })
    }
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum UeError {
    /// The network answered with a final error.
    #[error("registration rejected: {0} {1}")]
    Rejected(u16, String),
    /// The UE could not authenticate the network or itself.
    #[error("authentication: {0}")]
    Auth(String),
    /// Local socket problem.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What the 200 OK of a REGISTER said.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Expires of our contact.
    pub expires: u32,
    /// Service-Route values.
    pub service_route: Vec<String>,
    /// P-Associated-URI values.
    pub associated: Vec<String>,
    /// Contact values.
    pub contacts: Vec<String>,
    /// Path values echoed.
    pub path: Vec<String>,
}

/// The address a UE binds to reach `pcscf`: the P-CSCF's own IP when it is an address of this
/// host (the lab on loopback, so UE and P-CSCF share it as before), else the source address
/// this host reaches it from (the P-CSCF in another network namespace or on another host,
/// issue 15: a UE bound to the P-CSCF's IP there could not bind at all).
pub fn local_ip_towards(pcscf: SocketAddr) -> std::net::IpAddr {
    if std::net::UdpSocket::bind(SocketAddr::new(pcscf.ip(), 0)).is_ok() {
        return pcscf.ip();
    }
    let any: SocketAddr = if pcscf.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(any)
        .and_then(|s| {
            s.connect(pcscf)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(pcscf.ip())
}

/// A running simulated UE.
pub struct Ue {
    ep: Endpoint,
    rx: mpsc::UnboundedReceiver<Incoming>,
    /// Its configuration (the USIM's SQN moves on as it authenticates).
    pub cfg: UeConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
}

impl Ue {
    /// Binds a UE on [`local_ip_towards`] the P-CSCF (ephemeral port).
    pub async fn start(
        cfg: UeConfig,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Ue> {
        let bind: SocketAddr = SocketAddr::new(local_ip_towards(cfg.pcscf), 0);
        Ue::start_at(cfg, bind, trace, shutdown).await
    }

    /// Binds a UE on `bind` (UDP and TCP).
    pub async fn start_at(
        cfg: UeConfig,
        bind: SocketAddr,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Ue> {
        let (ep, rx) = Endpoint::bind("UE", bind, TimerConfig::default(), trace, shutdown).await?;
        Ok(Ue {
            call_id: new_call_id(&ep.local_addr().ip().to_string()),
            from_tag: new_tag(),
            ep,
            rx,
            cfg,
            cseq: 0,
        })
    }

    /// The UE's SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.ep.local_addr()
    }

    /// Hands the UE's SIP endpoint, its incoming requests and its configuration to something
    /// that runs it on its own.
    pub fn into_parts(self) -> (Endpoint, mpsc::UnboundedReceiver<Incoming>, UeConfig) {
        (self.ep, self.rx, self.cfg)
    }

    /// Takes the UE's incoming requests (leaving it an empty stream) so that something else
    /// can serve them while this `Ue` goes on refreshing its registration (the RCS client of
    /// [`chat`]).
    pub fn take_incoming(&mut self) -> mpsc::UnboundedReceiver<Incoming> {
        let (_tx, rx) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.rx, rx)
    }

    /// The UE's SIP endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    fn contact_uri(&self) -> String {
        let user = self.cfg.impi.split('@').next().unwrap_or("ue");
        format!(
            "sip:{user}@{}{}",
            self.ep.local_addr(),
            self.cfg.transport.uri_param()
        )
    }

    fn build_register(&mut self, expires: u32, authorization: Option<String>) -> Request {
        self.cseq += 1;
        let mut r = Request::new(Method::Register, format!("sip:{}", self.cfg.domain));
        r.headers.push("Via", self.ep.new_via(self.cfg.transport));
        r.headers.push("Max-Forwards", "70");
        r.headers
            .push("From", format!("<{}>;tag={}", self.cfg.impu, self.from_tag));
        r.headers.push("To", format!("<{}>", self.cfg.impu));
        r.headers.push("Call-ID", self.call_id.clone());
        r.headers.push("CSeq", format!("{} REGISTER", self.cseq));
        r.headers.push(
            "Contact",
            // RCC.07 §2.4.4: the feature tags of what this client handles, as it answers
            // OPTIONS; and TS 24.341 §5.3.1.1: SMS over IP (`+g.3gpp.smsip`), which is the
            // network's business (IP-SM-GW domain selection), not an RCS capability.
            format!(
                "<{}>{}{}{};expires={expires}",
                self.contact_uri(),
                crate::rcs::caps::RCSLAB_UE_TAGS,
                self.cfg.extra_tags,
                sms::SMSIP_FEATURE_TAG
            ),
        );
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Supported", "path");
        r.headers.push("User-Agent", "rcslab-ue");
        let auth = authorization.unwrap_or_else(|| {
            // TS 24.229 §5.1.1.2.1: the initial REGISTER names the IMPI with an empty response.
            let alg = match self.cfg.auth {
                AuthMode::Aka => ", algorithm=AKAv1-MD5",
                AuthMode::Digest => ", algorithm=MD5",
            };
            format!(
                "Digest username=\"{}\", realm=\"{}\", nonce=\"\", uri=\"sip:{}\", response=\"\"{alg}",
                self.cfg.impi, self.cfg.domain, self.cfg.domain
            )
        });
        r.headers.push("Authorization", auth);
        r
    }

    async fn send(&mut self, req: Request) -> Response {
        self.ep
            .send_request(req, self.cfg.pcscf, self.cfg.transport)
            .final_response()
            .await
    }

    /// Answers a 401's challenge: the Authorization value for the next REGISTER.
    fn answer_challenge(&mut self, resp: &Response) -> Result<String, UeError> {
        let v = resp
            .headers
            .get("WWW-Authenticate")
            .ok_or_else(|| UeError::Auth("401 without WWW-Authenticate".into()))?;
        let ch = Challenge::parse(v).map_err(|e| UeError::Auth(e.to_string()))?;
        let uri = format!("sip:{}", self.cfg.domain);
        let is_aka = ch
            .algorithm
            .as_deref()
            .is_some_and(|a| a.to_ascii_lowercase().starts_with("akav1"));
        let mut auts = None;
        let password: Vec<u8> = if is_aka {
            let (rand, autn) =
                digest::parse_aka_nonce(&ch.nonce).map_err(|e| UeError::Auth(e.to_string()))?;
            match aka::ue_authenticate(&self.cfg.k, &self.cfg.opc, &rand, &autn, self.cfg.sqn_ms) {
                UeAkaOutcome::Ok { res, sqn, .. } => {
                    self.cfg.sqn_ms = sqn;
                    res.to_vec()
                }
                UeAkaOutcome::SyncFailure { auts: a } => {
                    auts = Some(digest::encode_auts(&a));
                    Vec::new()
                }
                UeAkaOutcome::MacFailure => Vec::new(),
            }
        } else {
            self.cfg.password.as_bytes().to_vec()
        };
        let ha1 = digest::ha1_hex(&self.cfg.impi, &ch.realm, &password);
        let cnonce = digest::new_cnonce();
        let qop = ch.qop.as_ref().map(|_| "auth".to_string());
        let nc = qop.as_ref().map(|_| "00000001".to_string());
        let response = digest::response_hex(
            &ha1,
            &ch.nonce,
            nc.as_deref(),
            qop.as_ref().map(|_| cnonce.as_str()),
            qop.as_deref(),
            "REGISTER",
            &uri,
        );
        let creds = Credentials {
            username: self.cfg.impi.clone(),
            realm: ch.realm.clone(),
            nonce: ch.nonce.clone(),
            uri,
            response,
            algorithm: ch.algorithm.clone(),
            cnonce: qop.as_ref().map(|_| cnonce.clone()),
            nc,
            qop,
            opaque: ch.opaque.clone(),
            auts,
        };
        Ok(creds.to_string())
    }

    /// An out-of-dialog request from our default identity: Via, Max-Forwards, From with a new
    /// tag, To, a new Call-ID, the next CSeq (RFC 3261 §8.1.1).
    fn new_request(&mut self, method: Method, to: &str) -> Request {
        self.cseq += 1;
        self.ep
            .new_request(method, to, &self.cfg.impu, self.cseq, self.cfg.transport)
    }

    /// Sends a pager-mode MESSAGE (RFC 3428) with a text/plain body and returns the final
    /// response.
    pub async fn message(&mut self, to: &str, text: &str) -> Response {
        self.message_with(to, text, &[]).await
    }

    /// [`Ue::message`] with extra headers (feature tags such as Accept-Contact).
    pub async fn message_with(&mut self, to: &str, text: &str, extra: &[(&str, &str)]) -> Response {
        self.message_with_body(to, "text/plain", text.as_bytes(), extra)
            .await
    }

    /// A MESSAGE with a body of any type (a CPIM IMDN, say) and extra headers.
    pub async fn message_with_body(
        &mut self,
        to: &str,
        content_type: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Response {
        let mut r = self.new_request(Method::Message, to);
        for (k, v) in extra {
            r.headers.push(k, *v);
        }
        r.headers.push("Content-Type", content_type);
        r.body = bytes::Bytes::copy_from_slice(body);
        self.send(r).await
    }

    /// The next request the network delivers to this UE, if one comes within `wait`.
    pub async fn next_request(
        &mut self,
        wait: std::time::Duration,
    ) -> Option<crate::sip::IncomingRequest> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Incoming::Request(r))) => return Some(r),
                Ok(Some(Incoming::StrayResponse { .. })) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Registers (or re-registers, or with `expires` 0 de-registers), answering up to three
    /// challenges (a sync failure costs one extra round trip).
    pub async fn register(&mut self, expires: u32) -> Result<Registered, UeError> {
        let mut authorization = None;
        for _ in 0..4 {
            let req = self.build_register(expires, authorization.take());
            let resp = self.send(req).await;
            match resp.status {
                200 => return Ok(registered(&resp, expires)),
                401 => authorization = Some(self.answer_challenge(&resp)?),
                s => return Err(UeError::Rejected(s, warning_or_reason(&resp))),
            }
        }
        Err(UeError::Auth("challenged too many times".into()))
    }
}

fn warning_or_reason(resp: &Response) -> String {
    match resp.headers.get("Warning") {
        Some(w) => format!("{} ({w})", resp.reason),
        None => resp.reason.clone(),
    }
}

fn registered(resp: &Response, asked: u32) -> Registered {
    let contacts: Vec<String> = resp
        .headers
        .values("Contact")
        .iter()
        .map(|s| s.to_string())
        .collect();
    let expires = contacts
        .iter()
        .filter_map(|c| NameAddr::parse(c).ok())
        .filter_map(|na| na.params.value("expires").and_then(|e| e.parse().ok()))
        .max()
        .unwrap_or(if contacts.is_empty() { 0 } else { asked });
    Registered {
        expires,
        service_route: resp
            .headers
            .values("Service-Route")
            .iter()
            .map(|s| s.to_string())
            .collect(),
        associated: resp
            .headers
            .values("P-Associated-URI")
            .iter()
            .map(|s| s.to_string())
            .collect(),
        contacts,
        path: resp
            .headers
            .values("Path")
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// The UAC side of an INVITE dialog (RFC 3261 §12.1.2): what in-dialog requests need.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our URI and tag (From).
    pub local: String,
    /// The peer's URI and tag (To).
    pub remote: String,
    /// Remote target (the peer's Contact).
    pub remote_target: String,
    /// Route set (Record-Route of the 2xx, reversed).
    pub route_set: Vec<String>,
    /// Our last CSeq.
    pub cseq: u32,
}

/// A UAS response (RFC 3261 §8.2.6, §12.1.1): To tag, Contact, and for 1xx/2xx to a
/// dialog-creating request the Record-Route copied.
pub fn uas_response(
    req: &Request,
    status: u16,
    tag: &str,
    contact: &str,
    sdp: Option<&str>,
) -> Response {
    let mut r = crate::sip::uas_response_with(req, status, tag, &format!("<{contact}>"));
    if let Some(s) = sdp {
        r.headers.push("Content-Type", "application/sdp");
        r.body = bytes::Bytes::copy_from_slice(s.as_bytes());
    }
    r
}

/// A minimal audio SDP offer/answer body (RFC 4566), passed through the core untouched.
pub fn audio_sdp(port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
}

impl Ue {
    /// Our Contact URI (what the P-CSCF knows as our registered contact).
    pub fn contact(&self) -> String {
        self.contact_uri()
    }

    /// An initial INVITE to `to` with an SDP offer.
    pub fn build_invite(&mut self, to: &str, sdp: &str) -> Request {
        let mut r = self.new_request(Method::Invite, to);
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        r.headers.push("Content-Type", "application/sdp");
        r.body = bytes::Bytes::copy_from_slice(sdp.as_bytes());
        r
    }

    /// Sends a request to the P-CSCF in a client transaction.
    pub fn send_tx(&self, req: Request) -> crate::sip::ClientTx {
        self.ep
            .send_request(req, self.cfg.pcscf, self.cfg.transport)
    }

    /// Sends an INVITE, waits for the final response and, for a 2xx, sends the ACK and
    /// returns the dialog.
    pub async fn invite(&mut self, to: &str, sdp: &str) -> (Response, Option<Dialog>) {
        let req = self.build_invite(to, sdp);
        let resp = self.send_tx(req.clone()).final_response().await;
        if !resp.is_success() {
            return (resp, None);
        }
        let d = self.dialog_from(&req, &resp);
        self.ack(&d, d.cseq).await;
        (resp, Some(d))
    }

    /// The dialog a 2xx to `invite` establishes.
    pub fn dialog_from(&self, invite: &Request, ok: &Response) -> Dialog {
        let mut route_set: Vec<String> = ok
            .headers
            .values("Record-Route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        route_set.reverse();
        let remote_target = ok
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_string())
            .unwrap_or_else(|| invite.uri.clone());
        Dialog {
            call_id: invite.headers.get("Call-ID").unwrap_or("").to_string(),
            local: invite.headers.get("From").unwrap_or("").to_string(),
            remote: ok.headers.get("To").unwrap_or("").to_string(),
            remote_target,
            route_set,
            cseq: invite
                .headers
                .get("CSeq")
                .and_then(|c| c.split_whitespace().next()?.parse().ok())
                .unwrap_or(1),
        }
    }

    fn in_dialog(&mut self, d: &Dialog, method: Method, cseq: u32) -> Request {
        let mut r = Request::new(method.clone(), d.remote_target.clone());
        r.headers.push("Via", self.ep.new_via(self.cfg.transport));
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", d.local.clone());
        r.headers.push("To", d.remote.clone());
        r.headers.push("Call-ID", d.call_id.clone());
        r.headers.push("CSeq", format!("{cseq} {method}"));
        for route in &d.route_set {
            r.headers.push("Route", route.clone());
        }
        r
    }

    /// The ACK for a 2xx (RFC 3261 §13.2.2.4): its own transaction-less request.
    pub async fn ack(&mut self, d: &Dialog, cseq: u32) {
        let ack = self.in_dialog(d, Method::Ack, cseq);
        self.ep
            .send_stateless(
                &crate::sip::SipMessage::Request(ack),
                self.cfg.pcscf,
                self.cfg.transport,
            )
            .await;
    }

    /// Ends the dialog with BYE.
    pub async fn bye(&mut self, d: &mut Dialog) -> Response {
        d.cseq += 1;
        let bye = self.in_dialog(d, Method::Bye, d.cseq);
        self.send_tx(bye).final_response().await
    }

    /// PRACK for the reliable provisional response `rseq` to the INVITE of CSeq `invite_cseq`
    /// (RFC 3262 §7.2: `RAck: rseq cseq INVITE`), in the early dialog `d`.
    pub async fn prack(&mut self, d: &mut Dialog, rseq: u32, invite_cseq: u32) -> Response {
        d.cseq += 1;
        let mut p = self.in_dialog(d, Method::Prack, d.cseq);
        p.headers
            .push("RAck", format!("{rseq} {invite_cseq} INVITE"));
        self.send_tx(p).final_response().await
    }

    /// A re-INVITE with a new SDP offer (and its ACK on 2xx).
    pub async fn reinvite(&mut self, d: &mut Dialog, sdp: &str) -> Response {
        d.cseq += 1;
        let mut r = self.in_dialog(d, Method::Invite, d.cseq);
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        r.headers.push("Content-Type", "application/sdp");
        r.body = bytes::Bytes::copy_from_slice(sdp.as_bytes());
        let resp = self.send_tx(r).final_response().await;
        if resp.is_success() {
            let c = d.cseq;
            self.ack(d, c).await;
        }
        resp
    }

    /// CANCEL for a pending INVITE (RFC 3261 §9.1).
    pub async fn cancel(&mut self, invite: &Request) -> Response {
        let c = invite.cancel();
        self.send_tx(c).final_response().await
    }
}

impl Ue {
    /// SUBSCRIBE to our own registration state (RFC 3680, TS 24.229 §5.1.1.3) and return the
    /// final response; NOTIFYs then arrive through [`Ue::next_request`].
    pub async fn subscribe_reg(&mut self, expires: u32) -> (Response, Request) {
        let impu = self.cfg.impu.clone();
        self.subscribe_reg_of(&impu, expires).await
    }

    /// SUBSCRIBE to the reg event of `target` (someone else's: the S-CSCF refuses it, RFC 3680
    /// §5.2).
    pub async fn subscribe_reg_of(&mut self, target: &str, expires: u32) -> (Response, Request) {
        self.subscribe_event(target, "reg", "application/reginfo+xml", expires)
            .await
    }

    /// SUBSCRIBE to `event` of `target` (RFC 6665), accepting `accept`: the final response
    /// and the request; NOTIFYs then arrive through [`Ue::next_request`]. A group's roster is
    /// `subscribe_event(CONFERENCE_URI, "conference", "application/conference-info+xml", …)`
    /// (RFC 4575).
    pub async fn subscribe_event(
        &mut self,
        target: &str,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> (Response, Request) {
        let mut r = self.new_request(Method::Subscribe, target);
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        r.headers.push("Event", event);
        r.headers.push("Accept", accept);
        r.headers.push("Expires", expires.to_string());
        let resp = self.send_tx(r.clone()).final_response().await;
        (resp, r)
    }
}

/// How ladders name a user's client: `UE alice` for `sip:alice@ims.lab` (as the lab names
/// the UEs it knows).
pub fn ue_label(impu: &str) -> String {
    let u = impu.split_once(':').map(|(_, r)| r).unwrap_or(impu);
    format!("UE {}", u.split('@').next().unwrap_or(u))
}

/// True when `req`'s Request-URI names this UE (RFC 3261 §8.2.2.1): its user part is the one
/// of our `contact` or of our public identity `impu`, or it has none.
pub fn addressed_to(req: &crate::sip::Request, contact: &str, impu: &str) -> bool {
    use crate::sip::uri::Uri;
    let user_of = |s: &str| {
        Uri::parse(s)
            .ok()
            .and_then(|u| u.user().map(str::to_string))
    };
    let Some(target) = user_of(&req.uri) else {
        return true;
    };
    [contact, impu]
        .iter()
        .any(|mine| user_of(mine).as_deref() == Some(target.as_str()))
}

#[cfg(test)]
mod tests {
    use super::addressed_to;
    use crate::sip::{Method, Request};

    #[test]
    fn a_request_for_another_users_contact_is_not_ours() {
        let req = |uri: &str| Request::new(Method::Invite, uri.to_string());
        let (contact, impu) = ("sip:s7@127.0.0.1:40000", "sip:s7@ims.lab");
        assert!(addressed_to(&req("sip:s7@127.0.0.1:40000"), contact, impu));
        assert!(addressed_to(&req("sip:s7@ims.lab"), contact, impu));
        assert!(addressed_to(&req("sip:127.0.0.1:40000"), contact, impu));
        // The dead contact of s3 that had this port before.
        assert!(!addressed_to(&req("sip:s3@127.0.0.1:40000"), contact, impu));
    }
}
