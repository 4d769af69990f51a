//! The server side of a node's endpoint (RFC 3261 §17.2, §8.2): a new request opens a server
//! transaction (matched by branch, sent-by and method, §17.2.3) and goes to the node as an
//! [`IncomingRequest`]; retransmissions and ACKs for non-2xx are absorbed, INVITE gets its
//! 100 Trying, Max-Forwards 0 gets 483 (§16.3), and a [`ServerTx`] dropped unanswered sends 500.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::inbound::{admit, send_detached};
use super::{sleep_until, Incoming, Inner};
use crate::sip::headers::Via;
use crate::sip::limits::Permit;
use crate::sip::message::{Method, Request, Response, SipMessage};
use crate::sip::server_table::{Completed, Slot};
use crate::sip::stateless::{response_destination, stamp_via};
use crate::sip::transaction::ServerTransaction;
use crate::sip::transport::{SipTransport, Transport};

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

pub(super) enum ServerInput {
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

fn server_key(via: &Via, method: &Method) -> String {
    let m = if *method == Method::Ack {
        "INVITE"
    } else {
        method.as_str()
    };
    format!("{}|{}|{m}", via.branch().unwrap_or(""), via.sent_by())
}

pub(super) async fn on_request(
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
    // RFC 3261 §18.2.1 and RFC 3581 §4: note where the request really came from. A WebSocket
    // client's sent-by is a made-up `.invalid` host (RFC 7118 §5): the flow is what counts, so
    // its Via always gets the source port too, for the nodes behind us.
    if transport == Transport::Ws && via.rport().is_none() {
        via.params.set("rport", None);
    }
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
    // Over a WebSocket, responses can only go back over the client's connection (RFC 7118 §6),
    // whatever its Via says.
    let back = if transport == Transport::Ws {
        Some((source, Transport::Ws))
    } else {
        response_destination(&via, Some(source))
    };
    let Some((dest, resp_transport)) = back else {
        crate::warn_limited!("sip.no_response_route", node = %inner.name, %source, "cannot work out where responses go; dropped");
        return;
    };
    // Overload control: past the budget, 503 at once and no transaction.
    let Some(permit) = admit(inner, &req, &via, source, transport) else {
        return;
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
pub(super) async fn sweep_completed(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
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
