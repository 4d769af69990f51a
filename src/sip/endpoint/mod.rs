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
//!
//! Where things are: the client side ([`ClientTx`], matching responses to client
//! transactions) in `client`, the server side ([`IncomingRequest`], [`ServerTx`], Max-Forwards)
//! in `server`, what arrives before any transaction (parsing, 400, 513, and the overload gate
//! that answers 503) in `inbound`, and the proxy plumbing (loop detection, forwarded INVITEs for
//! CANCEL, responses routed by Via) in `proxy`. The socket-free state machines themselves are in
//! [`crate::sip::transaction`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::sip::limits::{Admission, SipLimits};
use crate::sip::message::{new_branch, Method, Request, Response, SipMessage};
use crate::sip::server_table::ServerTable;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{SipTransport, Transport, TransportStats};
use crate::trace::Trace;

mod client;
mod inbound;
mod proxy;
mod server;

pub use client::ClientTx;
pub use inbound::PROXY_HEADROOM;
pub use proxy::PendingInvite;
pub use server::{IncomingRequest, ServerTx};

use server::ServerInput;

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
        tokio::spawn(inbound::dispatch(
            Arc::downgrade(&inner),
            raw,
            tx,
            shutdown.clone(),
        ));
        tokio::spawn(server::sweep_completed(Arc::downgrade(&inner), shutdown));
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

    /// Listens for SIP over WebSocket (RFC 7118) on `addr` as well (port 0: any free port);
    /// returns the bound address. Requests and responses read there arrive like the UDP and
    /// TCP ones, with [`Transport::Ws`]; what goes to such a client goes back over its
    /// connection.
    pub async fn listen_ws(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        self.inner.transport.listen_ws(addr).await
    }

    /// The WebSocket listener's address, if [`Endpoint::listen_ws`] ran.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.inner.transport.ws_addr()
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

    /// Starts a client transaction for `req` (whose top Via must be ours) towards `dest`.
    pub fn send_request(&self, req: Request, dest: SocketAddr, transport: Transport) -> ClientTx {
        client::start_client(&self.inner, req, dest, transport)
    }

    /// Sends a request outside any transaction (an ACK for a 2xx, RFC 3261 §13.2.2.4).
    pub async fn send_stateless(&self, msg: &SipMessage, dest: SocketAddr, transport: Transport) {
        let bytes = Bytes::from(msg.to_bytes());
        if let Err(e) = self.inner.transport.send(transport, dest, bytes).await {
            tracing::debug!(node = %self.inner.name, %dest, error = %e, "stateless send failed");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending::<()>().await,
    }
}
