//! The MSRP session's decisions as a socket-free core (RFC 4975 §7): what an incoming request
//! gets ([`admit`]: 481 for an unknown session, 501 for an unknown method, 413 above the size
//! limit, the empty binding SEND of §5.4, a chunk for reassembly), what Failure-Report asks
//! for (§7.1.1, §7.1.2), and the table of our outgoing SEND transactions with the §7.1.1
//! transaction timeout ([`SendTransactions`]). Reassembly and its limits are
//! [`crate::msrp::limits::Partials`]. Time is passed in; the relay (`im/relay.rs`) drives it.
//!
//! An outgoing SEND transaction:
//! ```text
//!   start(now) ──> Pending ──response──> answered (on_response returns it)
//!                     │
//!                     └── now >= start + 30 s ──> timed out (handle_timeout returns it;
//!                                                 the sender hears 408)
//! ```
//! A response whose transaction id is not in the table (answered already, timed out, never
//! ours) is ignored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::msrp::MsrpMessage;

/// RFC 4975 §7.1.1: a SEND whose response has not come within 30 s has failed.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with an incoming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Answer it with this status and comment, and go no further.
    Respond(u16, &'static str),
    /// Drop it silently (a non-SEND for a session we do not know: §7.3 asks no response).
    Drop,
    /// The empty SEND that binds a connection to the session (§5.4).
    Bind,
    /// A REPORT: it travels on like the message it reports on.
    Report,
    /// A SEND chunk with content: into reassembly.
    Chunk,
}

/// Decides about an incoming request `m` (a response is [`SendTransactions::on_response`]'s
/// business). `known`: its To-Path names one of our sessions; `max_size`: the largest whole
/// message we accept.
pub fn admit(m: &MsrpMessage, known: bool, max_size: u64) -> Admit {
    let method = m.method.as_deref().unwrap_or("");
    if !known {
        return if method == "SEND" {
            Admit::Respond(481, "Session Does Not Exist")
        } else {
            Admit::Drop
        };
    }
    match method {
        "SEND" => {}
        "REPORT" => return Admit::Report,
        _ => return Admit::Respond(501, "Unknown Method"),
    }
    if m.byte_range()
        .is_some_and(|b| past(&b, m.body.len(), max_size))
    {
        return Admit::Respond(413, "Message Too Large");
    }
    if m.body.is_empty() && m.header("Content-Type").is_none() {
        return Admit::Bind;
    }
    Admit::Chunk
}

/// True when a chunk's Byte-Range says its message is larger than `max_size`: its total, or,
/// with the total unknown (`*`), the last byte it carries.
fn past(b: &crate::msrp::ByteRange, body_len: usize, max_size: u64) -> bool {
    let last = b
        .end
        .unwrap_or_else(|| (b.start - 1).saturating_add(body_len as u64));
    b.total.is_some_and(|t| t > max_size) || last > max_size
}

/// §7.1.1: a SEND with `Failure-Report: no` gets no response, so it opens no transaction.
pub fn expects_response(m: &MsrpMessage) -> bool {
    m.method.as_deref() == Some("SEND") && m.header("Failure-Report") != Some("no")
}

/// §7.1.2: with `Failure-Report: no` or `partial` the sender wants no 200 (only failures).
pub fn wants_200(m: &MsrpMessage) -> bool {
    !matches!(m.header("Failure-Report"), Some("no") | Some("partial"))
}

/// Whether the relay passes a response with `status` back to the sender of `request`: all
/// of them, except a 200 to a sender that asked for failures only (`partial`).
pub fn passes_upstream(request: &MsrpMessage, status: u16) -> bool {
    !(request.header("Failure-Report") == Some("partial") && status == 200)
}

/// Our outgoing SEND transactions, each with what to do when it ends (`T`), keyed by
/// transaction id, each with its §7.1.1 deadline.
#[derive(Debug)]
pub struct SendTransactions<T> {
    timeout: Duration,
    txs: HashMap<String, (Instant, T)>,
}

impl<T> Default for SendTransactions<T> {
    fn default() -> Self {
        SendTransactions::new(TRANSACTION_TIMEOUT)
    }
}

impl<T> SendTransactions<T> {
    /// An empty table whose transactions time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        SendTransactions {
            timeout,
            txs: HashMap::new(),
        }
    }

    /// A SEND with id `tid` went out at `now`.
    pub fn start(&mut self, now: Instant, tid: &str, t: T) {
        self.txs.insert(tid.to_string(), (now + self.timeout, t));
    }

    /// A response arrived: the transaction it ends, or `None` (unknown or late: ignore it).
    pub fn on_response(&mut self, tid: &str) -> Option<T> {
        self.txs.remove(tid).map(|(_, t)| t)
    }

    /// Forgets a transaction without an answer (its SEND could not be written).
    pub fn cancel(&mut self, tid: &str) -> Option<T> {
        self.on_response(tid)
    }

    /// Ends every transaction `ends` says yes to (their session ended).
    pub fn take_where(&mut self, mut ends: impl FnMut(&T) -> bool) -> Vec<T> {
        let ids: Vec<String> = self
            .txs
            .iter()
            .filter(|(_, (_, t))| ends(t))
            .map(|(k, _)| k.clone())
            .collect();
        ids.iter()
            .filter_map(|k| self.txs.remove(k).map(|(_, t)| t))
            .collect()
    }

    /// The earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.txs.values().map(|(at, _)| *at).min()
    }

    /// The transactions whose deadline has come at `now`: they failed (§7.1.1).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<T> {
        self.take_due(now)
    }

    fn take_due(&mut self, now: Instant) -> Vec<T> {
        let ids: Vec<String> = self
            .txs
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        ids.iter()
            .filter_map(|k| self.txs.remove(k).map(|(_, t)| t))
            .collect()
    }

    /// Transactions in flight.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when none is in flight.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
