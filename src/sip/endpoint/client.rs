//! The client side of a node's endpoint (RFC 3261 §17.1, §8.1.3): a request sent becomes a
//! client transaction run over the transport, responses are matched to it by branch and method
//! (§17.1.3), and the node reads them from a [`ClientTx`] (a 408 when Timer B, F or C fires).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::mpsc;

use super::{sleep_until, Incoming, Inner};
use crate::sip::headers::Via;
use crate::sip::message::{Method, Request, Response};
use crate::sip::transaction::{ClientEvent, ClientTransaction};
use crate::sip::transport::{SipTransport, Transport};

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

pub(super) fn start_client(
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

pub(super) fn on_response(
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
