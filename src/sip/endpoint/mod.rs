//! A node's SIP endpoint: the transport plus the transaction layer (RFC 3261 §17, §18.2).
//!
//! Incoming requests become server transactions handed to the node as [`IncomingRequest`]s
//! (retransmissions and ACKs for non-2xx are absorbed here; INVITE gets its 100 Trying here).
//! Outgoing requests become client transactions ([`ClientTx`]) that retransmit over UDP and
//! time out with a 408. Responses that match no client transaction (2xx retransmissions, for
//! instance) and ACKs for 2xx are handed to the node to forward statelessly.
//!
//! Bad input: a datagram that does not parse is answered with 400 when enough of it can be
//! salvaged to build a response, and logged and dropped otherwise; Max-Forwards 0 gets 483.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::sip::headers::Via;
use crate::sip::limits::{Admission, Permit, Shed, SipLimits};
use crate::sip::message::{
    new_branch, salvage_request, Method, Request, Response, SipMessage, MAX_MESSAGE_SIZE,
};
use crate::sip::server_table::{Completed, ServerTable, Slot};
use crate::sip::stateless::{response_destination, stamp_via};
use crate::sip::transaction::{ClientEvent, ClientTransaction, ServerTransaction, TimerConfig};
use crate::sip::transport::{Datagram, SipTransport, Transport, TransportStats};
use crate::trace::Trace;

/// What the endpoint hands to its node.
#[derive(Debug)]
pub enum Incoming {
    /// A new request (or an ACK for a 2xx, which has no transaction).
    Request(IncomingRequest),
    /// A response that matched no client transaction.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: SocketAddr,
    },
}

/// A request that opened a server transaction.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request, with `received`/`rport` already added to its top Via (RFC 3581).
    pub request: Request,
    /// The sender's socket address.
    pub source: SocketAddr,
    /// The transport it came on.
    pub transport: Transport,
    /// Where responses go.
    pub tx: ServerTx,
}

enum ServerInput {
    Retransmission,
    Ack,
    // Boxed: every transaction's channel allocates room for 32 of these up front.
    Respond(Box<Response>),
    Dropped,
}

/// Handle to a server transaction: the node answers through it. Dropping it without a final
/// response makes the transaction answer 500 so that no client is left hanging.
#[derive(Debug)]
pub struct ServerTx {
    input: Option<mpsc::UnboundedSender<ServerInput>>,
}

impl std::fmt::Debug for ServerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerInput")
    }
}

impl ServerTx {
    /// Sends a response within the transaction (ignored for ACK, which has none).
    pub fn respond(&self, response: Response) {
        if let Some(i) = &self.input {
            let _ = i.send(ServerInput::Respond(Box::new(response)));
        }
    }
}

impl Drop for ServerTx {
    fn drop(&mut self) {
        if let Some(i) = &self.input {
            let _ = i.send(ServerInput::Dropped);
        }
    }
}

/// Handle to a client transaction: yields its responses.
pub struct ClientTx {
    events: mpsc::UnboundedReceiver<ClientEvent>,
    request: Request,
    done: bool,
}

impl ClientTx {
    /// The next response: provisional ones, then the final one (a 408 is synthesised when
    /// Timer B/F fires, RFC 3261 §8.1.3.1). `None` after the final response.
    pub async fn next(&mut self) -> Option<Response> {
        if self.done {
            return None;
        }
        let ev = self.events.recv().await;
        let resp = match ev {
            Some(ClientEvent::Response(r)) => *r,
            Some(ClientEvent::Timeout) | None => {
                let mut r = self.request.response(408, None);
                r.headers
                    .push("Reason", "SIP;cause=408;text=\"no response from next hop\"");
                r
            }
            Some(ClientEvent::TimerC) => {
                let mut r = self.request.response(408, None);
                r.headers.push(
                    "Reason",
                    "SIP;cause=408;text=\"Timer C: no final response (the INVITE was CANCELled)\"",
                );
                r
            }
        };
        if resp.status >= 200 {
            self.done = true;
        }
        Some(resp)
    }

    /// Skips provisional responses and returns the final one.
    pub async fn final_response(mut self) -> Response {
        loop {
            if let Some(r) = self.next().await {
                if r.status >= 200 {
                    return r;
                }
            } else {
                let mut r = self.request.response(408, None);
                r.headers
                    .push("Reason", "SIP;cause=408;text=\"transaction ended\"");
                return r;
            }
        }
    }

    /// The request this transaction sent.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// An INVITE this node forwarded and has no final response for yet: a CANCEL for it is
/// turned into a CANCEL of the forwarded request (RFC 3261 §16.10).
#[derive(Debug, Clone)]
pub struct PendingInvite {
    /// The INVITE as forwarded (our Via on top).
    pub forwarded: Request,
    /// Where it went.
    pub dest: SocketAddr,
    /// How.
    pub transport: Transport,
}

struct Inner {
    transport: Arc<SipTransport>,
    /// Forwarded INVITEs by the branch of the INVITE received: several when it was forked.
    invites: Mutex<HashMap<String, Vec<PendingInvite>>>,
    clients: Mutex<HashMap<String, mpsc::UnboundedSender<Box<Response>>>>,
    servers: Mutex<ServerTable<mpsc::UnboundedSender<ServerInput>>>,
    timers: TimerConfig,
    admission: Arc<Admission>,
    name: String,
}

/// Room a proxy needs for what it adds (Via, Record-Route, Path...): a request larger than
/// [`MAX_MESSAGE_SIZE`] minus this gets 513 at the first node, so it cannot outgrow what the
/// next hop takes.
pub const PROXY_HEADROOM: usize = 4096;

/// What an endpoint holds right now (`rcslab status`, tests that check state is freed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Client transactions in progress (including ones lingering for Timer D/K).
    pub client_transactions: usize,
    /// Server transactions in progress (not counting completed ones kept for Timer J).
    pub server_transactions: usize,
    /// Completed server transactions kept for Timer J (at most `[sip] max_completed`).
    pub completed_server_transactions: usize,
    /// Forwarded INVITEs without a final response yet.
    pub forwarded_invites: usize,
}

/// Overload figures of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Server transactions admitted and not finished.
    pub admitted: usize,
    /// Requests answered 503 (over the budget) so far.
    pub shed: u64,
    /// The transport's connections and drops.
    pub transport: TransportStats,
}

/// A node's SIP endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Endpoint {
    /// Notes a decision of this node in the flight recorder (ladders show it beside the
    /// messages; nothing is computed when recording is off).
    pub fn note(&self, text: impl FnOnce() -> String) {
        let t = &self.inner.transport;
        t.trace().note(t.local_addr(), text);
    }

    /// Binds UDP+TCP on `addr` and starts the transaction layer. `name` is used in logs.
    pub async fn bind(
        name: &str,
        addr: SocketAddr,
        timers: TimerConfig,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<(Endpoint, mpsc::UnboundedReceiver<Incoming>)> {
        Self::bind_with(name, addr, timers, SipLimits::default(), trace, shutdown).await
    }

    /// [`Endpoint::bind`] with these limits.
    pub async fn bind_with(
        name: &str,
        addr: SocketAddr,
        timers: TimerConfig,
        limits: SipLimits,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<(Endpoint, mpsc::UnboundedReceiver<Incoming>)> {
        let (transport, raw) =
            SipTransport::bind(name, addr, limits, trace, shutdown.clone()).await?;
        let admission = transport.admission().clone();
        let inner = Arc::new(Inner {
            transport,
            clients: Mutex::new(HashMap::new()),
            invites: Mutex::new(HashMap::new()),
            servers: Mutex::new(ServerTable::new(limits.max_completed)),
            timers,
            admission,
            name: name.to_string(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(Arc::downgrade(&inner), raw, tx, shutdown.clone()));
        tokio::spawn(sweep_completed(Arc::downgrade(&inner), shutdown));
        Ok((Endpoint { inner }, rx))
    }

    /// What this endpoint holds right now.
    pub fn stats(&self) -> EndpointStats {
        let i = &self.inner;
        EndpointStats {
            client_transactions: i.clients.lock().map(|c| c.len()).unwrap_or(0),
            server_transactions: i.servers.lock().map(|s| s.active()).unwrap_or(0),
            completed_server_transactions: i.servers.lock().map(|s| s.completed()).unwrap_or(0),
            forwarded_invites: i.invites.lock().map(|m| m.len()).unwrap_or(0),
        }
    }

    /// Counts every SIP message this node sends and reads (`/metrics`); the first call wins.
    pub fn set_metrics(&self, counters: crate::metrics::SipCounters) {
        self.inner.transport.set_metrics(counters);
    }

    /// Messages read off the sockets and not yet taken by the dispatcher, and the inbound
    /// queue's size (`[sip] inbound_queue`).
    pub fn inbound_queue(&self) -> (usize, usize) {
        self.inner.transport.inbound_depth()
    }

    /// The IMS nodes whose requests the per-source limit does not count (by their SIP
    /// address, as their Via names it).
    pub fn trust(&self, nodes: Vec<SocketAddr>) {
        self.inner.admission.set_trusted(nodes);
    }

    /// True when `addr` is one of the nodes given to [`Endpoint::trust`] (a message whose
    /// source socket is that node's own address: its UDP socket, or a TCP connection it opened
    /// from its listening address).
    pub fn is_trusted(&self, addr: SocketAddr) -> bool {
        self.inner.admission.is_trusted(&addr.to_string())
    }

    /// Overload figures: admitted transactions, 503s, connections, drops.
    pub fn load(&self) -> LoadStats {
        LoadStats {
            admitted: self.inner.admission.active(),
            shed: self.inner.admission.shed(),
            transport: self.inner.transport.stats(),
        }
    }

    /// The address UDP and TCP are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.transport.local_addr()
    }

    /// The node name given at bind time.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Our `host:port` as written in Via sent-by and in our own URIs.
    pub fn sent_by(&self) -> String {
        self.local_addr().to_string()
    }

    /// A Via value for a request we originate, with a fresh branch.
    pub fn new_via(&self, transport: Transport) -> String {
        format!(
            "SIP/2.0/{} {};branch={};rport",
            transport.as_str(),
            self.sent_by(),
            new_branch()
        )
    }

    /// An out-of-dialog request we originate (RFC 3261 §8.1.1): Via with a fresh branch,
    /// Max-Forwards 70, From `from` with a new tag, To `to`, a new Call-ID, CSeq `cseq`.
    pub fn new_request(
        &self,
        method: Method,
        to: &str,
        from: &str,
        cseq: u32,
        transport: Transport,
    ) -> Request {
        let mut r = Request::new(method.clone(), to);
        r.headers.push("Via", self.new_via(transport));
        r.headers.push("Max-Forwards", "70");
        r.headers
            .push("From", format!("<{from}>;tag={}", crate::sip::new_tag()));
        r.headers.push("To", format!("<{to}>"));
        r.headers.push(
            "Call-ID",
            crate::sip::new_call_id(&self.local_addr().ip().to_string()),
        );
        r.headers.push("CSeq", format!("{cseq} {method}"));
        r
    }

    /// A Via value for a request we forward as a proxy: the branch carries a hash of the
    /// request's loop-relevant fields (RFC 3261 §16.6 step 8) so [`Endpoint::is_looping`] can
    /// recognise it when it comes back.
    pub fn proxy_via(&self, req: &Request, transport: Transport) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{:016x}.{}",
            transport.as_str(),
            self.sent_by(),
            loop_hash(req),
            &new_branch()[7..]
        )
    }

    /// RFC 3261 §16.3 step 4: the request already passed through us unchanged.
    pub fn is_looping(&self, req: &Request) -> bool {
        let me = self.sent_by();
        let vias = req.headers.values("Via");
        // Most requests never passed here: no Via names us, nothing to hash or parse.
        if !vias.iter().any(|v| v.contains(me.as_str())) {
            return false;
        }
        let h = format!("z9hG4bK{:016x}.", loop_hash(req));
        vias.iter().any(|v| {
            Via::parse(v)
                .map(|via| via.sent_by() == me && via.branch().is_some_and(|b| b.starts_with(&h)))
                .unwrap_or(false)
        })
    }

    /// Starts a client transaction for `req` (whose top Via must be ours) towards `dest`.
    pub fn send_request(&self, req: Request, dest: SocketAddr, transport: Transport) -> ClientTx {
        start_client(&self.inner, req, dest, transport)
    }

    /// Remembers a forwarded INVITE under the branch of the INVITE we received (once per
    /// branch when a proxy forks).
    pub fn track_invite(&self, incoming_branch: &str, pending: PendingInvite) {
        if let Ok(mut m) = self.inner.invites.lock() {
            m.entry(incoming_branch.to_string())
                .or_default()
                .push(pending);
        }
    }

    /// Forgets a forwarded INVITE (its final response came).
    pub fn untrack_invite(&self, incoming_branch: &str) {
        if let Ok(mut m) = self.inner.invites.lock() {
            m.remove(incoming_branch);
        }
    }

    /// The forwarded INVITEs (one per fork branch) a CANCEL with this branch refers to.
    pub fn pending_invites(&self, incoming_branch: &str) -> Vec<PendingInvite> {
        self.inner
            .invites
            .lock()
            .ok()
            .and_then(|m| m.get(incoming_branch).cloned())
            .unwrap_or_default()
    }

    /// Sends a request outside any transaction (an ACK for a 2xx, RFC 3261 §13.2.2.4).
    pub async fn send_stateless(&self, msg: &SipMessage, dest: SocketAddr, transport: Transport) {
        let bytes = Bytes::from(msg.to_bytes());
        if let Err(e) = self.inner.transport.send(transport, dest, bytes).await {
            tracing::debug!(node = %self.inner.name, %dest, error = %e, "stateless send failed");
        }
    }

    /// Forwards a response by its (new) top Via, as a proxy does after popping its own Via
    /// (RFC 3261 §18.2.2 with RFC 3581 `received`/`rport`).
    pub async fn send_response_by_via(&self, resp: &Response) {
        let Some(via) = resp
            .headers
            .first_value("Via")
            .and_then(|v| Via::parse(v).ok())
        else {
            tracing::debug!(node = %self.inner.name, "response without Via dropped");
            return;
        };
        let Some((dest, transport)) = response_destination(&via, None) else {
            tracing::debug!(node = %self.inner.name, via = %via, "cannot resolve response destination");
            return;
        };
        self.send_stateless(&SipMessage::Response(resp.clone()), dest, transport)
            .await;
    }
}

fn start_client(
    inner: &Arc<Inner>,
    req: Request,
    dest: SocketAddr,
    transport: Transport,
) -> ClientTx {
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let branch = req
        .headers
        .first_value("Via")
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| v.branch().map(str::to_string))
        .unwrap_or_default();
    let key = client_key(&branch, &req.method);
    let (resp_tx, resp_rx) = mpsc::unbounded_channel();
    if let Ok(mut c) = inner.clients.lock() {
        c.insert(key.clone(), resp_tx);
    }
    let tu_request = req.clone();
    let txn = ClientTransaction::new(Instant::now(), req, transport.is_reliable(), inner.timers);
    tokio::spawn(run_client(
        Arc::downgrade(inner),
        inner.transport.clone(),
        txn,
        key,
        resp_rx,
        ev_tx,
        (dest, transport),
    ));
    ClientTx {
        events: ev_rx,
        request: tu_request,
        done: false,
    }
}

fn client_key(branch: &str, method: &Method) -> String {
    // ACK for a non-2xx is sent by the transaction itself; CANCEL has its own transaction.
    format!("{branch}|{}", method.as_str())
}

fn server_key(via: &Via, method: &Method) -> String {
    let m = if *method == Method::Ack {
        "INVITE"
    } else {
        method.as_str()
    };
    format!("{}|{}|{m}", via.branch().unwrap_or(""), via.sent_by())
}

/// Hash of the fields RFC 3261 §16.6 step 8 names for loop detection.
fn loop_hash(req: &Request) -> u64 {
    let mut h = DefaultHasher::new();
    req.uri.hash(&mut h);
    for name in [
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Proxy-Require",
        "Proxy-Authorization",
    ] {
        req.headers.get(name).unwrap_or("").hash(&mut h);
    }
    // The whole Route set: a node traversed twice in one dialog (P-CSCF on both sides) sees
    // the same top Route both times, but not the same set.
    for r in req.headers.values("Route") {
        r.hash(&mut h);
    }
    h.finish()
}

/// Sends without making the dispatch loop wait (a TCP connect may take its timeout).
fn send_detached(inner: &Arc<Inner>, transport: Transport, dest: SocketAddr, bytes: Bytes) {
    let net = inner.transport.clone();
    tokio::spawn(async move {
        let _ = net.send(transport, dest, bytes).await;
    });
}

/// Answers `req` from outside any transaction (a 400, 503 or 513): by its Via when usable,
/// else to where it came from.
fn reply_stateless(inner: &Arc<Inner>, req: &Request, mut r: Response, d: (SocketAddr, Transport)) {
    r.ensure_to_tag();
    let dest = req
        .headers
        .first_value("Via")
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| response_destination(&v, Some(d.0)))
        .map(|(a, _)| a)
        .unwrap_or(d.0);
    let bytes = Bytes::from(SipMessage::Response(r).to_bytes());
    send_detached(inner, d.1, dest, bytes);
}

/// 513 for a request too large to take or to forward (RFC 3261 §21.5.14).
fn too_large(inner: &Arc<Inner>, req: &Request, size: usize, d: (SocketAddr, Transport)) {
    let mut r = req.response(513, Some("Message Too Large"));
    r.headers.push(
        "Warning",
        format!(
            "399 {} \"{size} bytes; at most {} are taken\"",
            inner.name,
            MAX_MESSAGE_SIZE - PROXY_HEADROOM
        ),
    );
    reply_stateless(inner, req, r, d);
}

async fn dispatch(
    inner: Weak<Inner>,
    mut raw: mpsc::Receiver<Datagram>,
    out: mpsc::UnboundedSender<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let d = tokio::select! {
            d = raw.recv() => match d { Some(d) => d, None => return },
            _ = shutdown.changed() => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        inner.transport.taken(d.bytes.len());
        inner.transport.queued_for(d.at.elapsed());
        if d.oversized {
            tracing::debug!(node = %inner.name, source = %d.source, "message larger than {MAX_MESSAGE_SIZE} bytes");
            if let Some(req) = salvage_request(&d.bytes) {
                if req.method != Method::Ack {
                    too_large(&inner, &req, MAX_MESSAGE_SIZE + 1, (d.source, d.transport));
                }
            }
            continue;
        }
        match SipMessage::parse(&d.bytes) {
            Ok(SipMessage::Request(req)) if d.bytes.len() > MAX_MESSAGE_SIZE - PROXY_HEADROOM => {
                if req.method != Method::Ack {
                    too_large(&inner, &req, d.bytes.len(), (d.source, d.transport));
                }
            }
            Ok(SipMessage::Request(req)) => {
                on_request(&inner, req, d.source, d.transport, &out).await
            }
            Ok(SipMessage::Response(resp)) => on_response(&inner, resp, d.source, &out),
            Err(e) => {
                crate::warn_limited!("sip.malformed", node = %inner.name, source = %d.source, error = %e, "malformed SIP message");
                if let Some(req) = salvage_request(&d.bytes) {
                    if req.method != Method::Ack {
                        let mut r = req.response(400, Some("Bad Request"));
                        r.headers.push(
                            "Warning",
                            format!("399 {} \"{}\"", inner.name, e.to_string().replace('"', "'")),
                        );
                        reply_stateless(&inner, &req, r, (d.source, d.transport));
                    }
                }
            }
        }
    }
}

async fn on_request(
    inner: &Arc<Inner>,
    mut req: Request,
    source: SocketAddr,
    transport: Transport,
    out: &mpsc::UnboundedSender<Incoming>,
) {
    let Some(mut via) = req
        .headers
        .first_value("Via")
        .and_then(|v| Via::parse(v).ok())
    else {
        crate::warn_limited!("sip.no_via", node = %inner.name, %source, "request without a usable Via dropped");
        return;
    };
    // RFC 3261 §18.2.1 and RFC 3581 §4: note where the request really came from.
    stamp_via(&mut via, source);
    req.headers.pop_first_value("Via");
    req.headers.push_front("Via", via.to_string());

    let key = server_key(&via, &req.method);
    enum Found {
        Active(mpsc::UnboundedSender<ServerInput>),
        Resend(Bytes, SocketAddr, Transport),
    }
    let existing = inner.servers.lock().ok().and_then(|s| match s.get(&key) {
        Some(Slot::Active(tx)) => Some(Found::Active(tx.clone())),
        Some(Slot::Completed(c)) => Some(Found::Resend(c.response.clone(), c.dest, c.transport)),
        None => None,
    });
    match existing {
        Some(Found::Active(s)) => {
            let input = if req.method == Method::Ack {
                ServerInput::Ack
            } else {
                ServerInput::Retransmission
            };
            let _ = s.send(input);
            return;
        }
        Some(Found::Resend(bytes, dest, t)) => {
            // §17.2.2: a retransmission in Completed gets the final response again.
            send_detached(inner, t, dest, bytes);
            return;
        }
        None => {}
    }
    if req.method == Method::Ack {
        // ACK for a 2xx: end to end, no transaction (§17.1.1.3). The node forwards it.
        let _ = out.send(Incoming::Request(IncomingRequest {
            request: req,
            source,
            transport,
            tx: ServerTx { input: None },
        }));
        return;
    }
    let Some((dest, resp_transport)) = response_destination(&via, Some(source)) else {
        crate::warn_limited!("sip.no_response_route", node = %inner.name, %source, "cannot work out where responses go; dropped");
        return;
    };
    // Overload control: past the budget, 503 at once and no transaction.
    let in_dialog = req.method == Method::Cancel
        || req
            .headers
            .get("To")
            .and_then(|t| crate::sip::NameAddr::parse(t).ok())
            .is_some_and(|na| na.tag().is_some());
    let trusted = inner.admission.is_trusted(&via.sent_by());
    let permit = match inner.admission.admit(source, in_dialog, trusted) {
        Ok(p) => p,
        Err(why) => {
            let mut r = req.response(503, Some("Service Unavailable"));
            let retry = inner.admission.limits().retry_after_secs;
            r.headers.push("Retry-After", retry.to_string());
            let text = match why {
                Shed::Busy => "overloaded",
                Shed::SourceBusy => "too many requests in progress from this source",
            };
            r.headers
                .push("Warning", format!("399 {} \"{text}\"", inner.name));
            tracing::debug!(node = %inner.name, %source, method = %req.method.as_str(), "{text}: 503");
            reply_stateless(inner, &req, r, (source, transport));
            return;
        }
    };
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    if let Ok(mut s) = inner.servers.lock() {
        s.insert_active(key.clone(), in_tx.clone());
    }
    let txn = ServerTransaction::new(&req.method, transport.is_reliable(), inner.timers);
    let trying = if req.method == Method::Invite {
        Some(req.response(100, Some("Trying")))
    } else {
        None
    };
    let mut fallback = req.response(500, Some("Server Internal Error"));
    fallback.ensure_to_tag();
    tokio::spawn(run_server(
        Arc::downgrade(inner),
        inner.transport.clone(),
        txn,
        key,
        in_rx,
        (dest, resp_transport),
        (fallback, permit),
    ));
    if let Some(t) = trying {
        let _ = in_tx.send(ServerInput::Respond(Box::new(t)));
    }
    let tx = ServerTx { input: Some(in_tx) };
    // RFC 3261 §16.3 step 3: Max-Forwards 0 is answered here for every node.
    if req.max_forwards() == Some(0) && req.method != Method::Options {
        let mut r = req.response(483, Some("Too Many Hops"));
        r.ensure_to_tag();
        tx.respond(r);
        return;
    }
    let _ = out.send(Incoming::Request(IncomingRequest {
        request: req,
        source,
        transport,
        tx,
    }));
}

fn on_response(
    inner: &Arc<Inner>,
    resp: Response,
    source: SocketAddr,
    out: &mpsc::UnboundedSender<Incoming>,
) {
    let branch = resp
        .headers
        .first_value("Via")
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| v.branch().map(str::to_string))
        .unwrap_or_default();
    let method = resp
        .headers
        .get("CSeq")
        .and_then(|c| c.split_whitespace().nth(1))
        .map(Method::parse)
        .unwrap_or(Method::Other(String::new()));
    let key = client_key(&branch, &method);
    let target = inner.clients.lock().ok().and_then(|c| c.get(&key).cloned());
    let stray = match target {
        Some(t) => t.send(Box::new(resp)).err().map(|e| *e.0),
        None => Some(resp),
    };
    if let Some(response) = stray {
        let _ = out.send(Incoming::StrayResponse { response, source });
    }
}

async fn run_client(
    inner: Weak<Inner>,
    net: Arc<SipTransport>,
    mut txn: ClientTransaction,
    key: String,
    mut responses: mpsc::UnboundedReceiver<Box<Response>>,
    events: mpsc::UnboundedSender<ClientEvent>,
    (dest, transport): (SocketAddr, Transport),
) {
    loop {
        // The transport is held strongly: a transaction finishes its work even when the node
        // that started it has let go of its endpoint.
        while let Some(b) = txn.poll_transmit() {
            if let Err(e) = net.send(transport, dest, b).await {
                tracing::debug!(%dest, error = %e, "send failed");
                txn.on_transport_error();
            }
        }
        if let Some(cancel) = txn.poll_cancel() {
            // Timer C: the CANCEL runs as a transaction of its own (its 200 is absorbed).
            if let Some(i) = inner.upgrade() {
                tracing::info!(node = %i.name, %dest, call_id = cancel.headers.get("Call-ID").unwrap_or(""), "Timer C fired: CANCELling the INVITE, 408 upstream");
                drop(start_client(&i, cancel, dest, transport));
            }
        }
        while let Some(ev) = txn.poll_event() {
            let _ = events.send(ev);
        }
        if txn.is_terminated() {
            break;
        }
        let deadline = txn.poll_timeout();
        tokio::select! {
            r = responses.recv() => match r {
                Some(r) => txn.on_response(Instant::now(), *r),
                None => break,
            },
            _ = sleep_until(deadline) => txn.on_timeout(Instant::now()),
        }
    }
    if let Some(i) = inner.upgrade() {
        if let Ok(mut c) = i.clients.lock() {
            c.remove(&key);
        }
    }
}

async fn run_server(
    inner: Weak<Inner>,
    net: Arc<SipTransport>,
    mut txn: ServerTransaction,
    key: String,
    mut input: mpsc::UnboundedReceiver<ServerInput>,
    (dest, transport): (SocketAddr, Transport),
    (fallback, _permit): (Response, Permit),
) {
    let mut fallback = Some(fallback);
    loop {
        while let Some(b) = txn.poll_transmit() {
            if let Err(e) = net.send(transport, dest, b).await {
                tracing::debug!(%dest, error = %e, "response send failed");
            }
        }
        while txn.poll_event().is_some() {}
        if txn.is_terminated() {
            break;
        }
        if let (Some(response), Some(until)) = (txn.last_response(), txn.lingering_until()) {
            // Only Timer J is left: leave a compact entry and end the task.
            if let Some(i) = inner.upgrade() {
                if let Ok(mut s) = i.servers.lock() {
                    s.complete(
                        key,
                        Completed {
                            response,
                            dest,
                            transport,
                            until,
                        },
                    );
                }
            }
            return;
        }
        let deadline = txn.poll_timeout();
        tokio::select! {
            i = input.recv() => match i {
                Some(ServerInput::Retransmission) => txn.on_request_retransmission(),
                Some(ServerInput::Ack) => txn.on_ack(Instant::now()),
                Some(ServerInput::Respond(r)) => {
                    let status = r.status;
                    let bytes = Bytes::from(SipMessage::Response(*r).to_bytes());
                    txn.send_response(Instant::now(), status, bytes);
                }
                Some(ServerInput::Dropped) | None => {
                    if !txn.has_final_response() {
                        // The node let go of the request without answering: never leave the
                        // client hanging.
                        match fallback.take() {
                            Some(r) => {
                                let bytes = Bytes::from(SipMessage::Response(r).to_bytes());
                                txn.send_response(Instant::now(), 500, bytes);
                            }
                            None => break,
                        }
                    } else if txn.poll_timeout().is_none() {
                        break;
                    }
                }
            },
            _ = sleep_until(deadline) => txn.on_timeout(Instant::now()),
        }
    }
    if let Some(i) = inner.upgrade() {
        if let Ok(mut s) = i.servers.lock() {
            s.remove(&key);
        }
    }
}

/// Forgets completed server transactions whose Timer J has fired.
async fn sweep_completed(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(i) = inner.upgrade() else { return };
        let now = Instant::now();
        if let Ok(mut s) = i.servers.lock() {
            s.expire(now);
        };
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register() -> Request {
        let text = "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\nFrom: <sip:a@ims.lab>;tag=1\r\nTo: <sip:a@ims.lab>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n";
        match SipMessage::parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_that_comes_back_unchanged_is_a_loop() {
        let (_stop, shut) = watch::channel(false);
        let (ep, _rx) = Endpoint::bind(
            "P",
            "127.0.0.1:0".parse().unwrap(),
            TimerConfig::default(),
            Trace::disabled(),
            shut,
        )
        .await
        .unwrap();
        let req = register();
        assert!(!ep.is_looping(&req));
        let mut forwarded = req.clone();
        forwarded
            .headers
            .push_front("Via", ep.proxy_via(&req, Transport::Udp));
        assert!(
            ep.is_looping(&forwarded),
            "our branch hash matches the same request"
        );
        let mut retargeted = forwarded.clone();
        retargeted.uri = "sip:other.lab".into();
        assert!(
            !ep.is_looping(&retargeted),
            "a changed Request-URI is a spiral, not a loop"
        );
    }

    #[test]
    fn responses_go_where_rfc_3581_says() {
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(
            response_destination(&v, Some(src)),
            Some((src, Transport::Udp))
        );
        let v = Via::parse("SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKx").unwrap();
        assert_eq!(
            response_destination(&v, None)
                .map(|d| d.0.to_string())
                .as_deref(),
            Some("127.0.0.2:5062")
        );
        let v = Via::parse("SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKx").unwrap();
        assert_eq!(
            response_destination(&v, Some(src)),
            Some((src, Transport::Tcp))
        );
    }
}
