//! The lab's Prometheus metrics (`GET /metrics` on the admin API), kept with the
//! `prometheus-client` crate.
//!
//! Counters are bumped where messages cross the wire: the SIP transport on every message it
//! sends or reads ([`SipCounters`]), the Diameter handlers on every request they answer
//! ([`DiameterAnswered`], which `diameter::metered` wraps around a handler), the MSRP relays on every whole message ([`MsrpCounter`]). Each is an
//! atomic add on a counter created beforehand, or found by a read-locked lookup keyed by
//! `&'static str` labels and a status code, so the hot paths allocate nothing. The gauges
//! (registrations, transactions in flight, stored messages, notification channels) are read
//! from the nodes when a scrape comes ([`Metrics::sample`]).
//!
//! The crate writes the OpenMetrics text format; [`to_prometheus_text`] turns it into the
//! Prometheus text exposition format 0.0.4 (counter `# TYPE` lines name the `_total` series,
//! no `# EOF`), which is what `/metrics` serves unless the scraper asks for OpenMetrics.
//!
//! One [`Metrics`] per lab: tests run several labs in one process and each counts its own.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The SIP methods counted by name; anything else counts as `other`.
pub const SIP_METHODS: [&str; 14] = [
    "REGISTER",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "PRACK",
    "UPDATE",
    "REFER",
];

/// Which way a message went, from the node's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Read off the node's socket.
    Received,
    /// Written by the node.
    Sent,
}

impl Dir {
    fn label(self) -> &'static str {
        match self {
            Dir::Received => "received",
            Dir::Sent => "sent",
        }
    }
    fn index(self) -> usize {
        match self {
            Dir::Received => 0,
            Dir::Sent => 1,
        }
    }
}

/// Labels of `rcslab_sip_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SipRequestLabels {
    node: &'static str,
    direction: &'static str,
    method: &'static str,
}

/// Labels of `rcslab_sip_responses_total`: the method is the CSeq's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SipResponseLabels {
    node: &'static str,
    direction: &'static str,
    method: &'static str,
    code: u16,
}

/// Labels of `rcslab_diameter_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiameterLabels {
    node: &'static str,
    command: &'static str,
    /// Result-Code, or Experimental-Result-Code (TS 29.229 §6.2), of the answer.
    result: u32,
}

/// Labels of `rcslab_diameter_sent_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiameterSentLabels {
    node: &'static str,
    command: &'static str,
    /// The answer's Result-Code or Experimental-Result-Code; 0 when no answer came.
    result: u32,
    /// Why no answer came (`timeout`, `down`, `closed`, `busy`, `error`); empty with one.
    error: &'static str,
}

/// A label with the node name alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: &'static str,
}

/// A label with a user (a recipient's IMPU).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabel {
    user: String,
}

/// The gauges a scrape reads from the nodes ([`Metrics::sample`]).
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Registered public identity sets at the S-CSCF.
    pub registrations: i64,
    /// Contacts bound at the S-CSCF, over all registrations.
    pub contacts: i64,
    /// Client + server transactions held, by node.
    pub transactions: Vec<(&'static str, i64)>,
    /// Messages the T-IM holds for recipients who were offline, in all.
    pub stored_messages: i64,
    /// The same by recipient (at most the status snapshot's cap of users).
    pub stored_by_user: Vec<(String, i64)>,
    /// Chat sessions held, by node (O-IM proxied sessions, T-IM sessions).
    pub chat_sessions: Vec<(&'static str, i64)>,
    /// WebRSF notification channels (SSE and WebSocket) open.
    pub webrsf_channels: i64,
    /// Diameter peer connections up, by node.
    pub diameter_peers_up: Vec<(&'static str, i64)>,
}

/// Every metric of one lab. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    sip_requests: Family<SipRequestLabels, Counter>,
    sip_responses: Family<SipResponseLabels, Counter>,
    diameter: Family<DiameterLabels, Counter>,
    diameter_sent: Family<DiameterSentLabels, Counter>,
    msrp: Family<NodeLabel, Counter>,
    registrations: Gauge,
    contacts: Gauge,
    transactions: Family<NodeLabel, Gauge>,
    stored: Gauge,
    stored_by_user: Family<UserLabel, Gauge>,
    chat_sessions: Family<NodeLabel, Gauge>,
    channels: Gauge,
    peers_up: Family<NodeLabel, Gauge>,
    /// One scrape at a time sets the gauges and encodes (two at once could see each other's
    /// cleared per-user series).
    scrape: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `rcslab_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rcslab");
        let m = Metrics {
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            diameter: Family::default(),
            diameter_sent: Family::default(),
            msrp: Family::default(),
            registrations: Gauge::default(),
            contacts: Gauge::default(),
            transactions: Family::default(),
            stored: Gauge::default(),
            stored_by_user: Family::default(),
            chat_sessions: Family::default(),
            channels: Gauge::default(),
            peers_up: Family::default(),
            scrape: std::sync::Mutex::new(()),
            registry: Registry::default(),
        };
        // The encoder adds `_total` to counters.
        registry.register(
            "sip_requests",
            "SIP requests by node, direction and method",
            m.sip_requests.clone(),
        );
        registry.register(
            "sip_responses",
            "SIP responses by node, direction, CSeq method and status code",
            m.sip_responses.clone(),
        );
        registry.register(
            "diameter_requests",
            "Diameter Cx requests answered, by node, command and result code",
            m.diameter.clone(),
        );
        registry.register(
            "diameter_sent_requests",
            "Diameter Cx requests each node sent, by command and the answer's result code (0 and an error when none came)",
            m.diameter_sent.clone(),
        );
        registry.register(
            "msrp_messages",
            "Whole MSRP messages (last chunk of a SEND) relayed or kept, by node",
            m.msrp.clone(),
        );
        registry.register(
            "registrations",
            "Registered public identity sets at the S-CSCF",
            m.registrations.clone(),
        );
        registry.register(
            "registered_contacts",
            "Contacts bound at the S-CSCF",
            m.contacts.clone(),
        );
        registry.register(
            "sip_transactions_in_flight",
            "SIP client and server transactions held, by node",
            m.transactions.clone(),
        );
        registry.register(
            "stored_messages",
            "Messages the T-IM holds for offline recipients",
            m.stored.clone(),
        );
        registry.register(
            "stored_messages_by_user",
            "Messages the T-IM holds, by recipient",
            m.stored_by_user.clone(),
        );
        registry.register(
            "chat_sessions",
            "Chat sessions held, by node",
            m.chat_sessions.clone(),
        );
        registry.register(
            "webrsf_channels",
            "WebRSF notification channels (SSE and WebSocket) open",
            m.channels.clone(),
        );
        registry.register(
            "diameter_peers_up",
            "Open Diameter peer connections, by node",
            m.peers_up.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The counters of one node's SIP transport, its request series created now (so they
    /// read 0 before the first message rather than being absent).
    pub fn sip(&self, node: &'static str) -> SipCounters {
        let make = |dir: Dir| {
            let mut v: Vec<Counter> = SIP_METHODS
                .iter()
                .chain(std::iter::once(&"other"))
                .map(|m| {
                    self.sip_requests.get_or_create_owned(&SipRequestLabels {
                        node,
                        direction: dir.label(),
                        method: m,
                    })
                })
                .collect();
            v.shrink_to_fit();
            v
        };
        SipCounters {
            inner: Arc::new(SipInner {
                node,
                requests: [make(Dir::Received), make(Dir::Sent)],
                responses: self.sip_responses.clone(),
            }),
        }
    }

    /// The counter of one node's MSRP relay.
    pub fn msrp(&self, node: &'static str) -> MsrpCounter {
        MsrpCounter(self.msrp.get_or_create_owned(&NodeLabel { node }))
    }

    /// The counter of the Diameter requests `node` answers (`crate::diameter::metered` wraps
    /// a handler with it).
    pub fn diameter_answered(&self, node: &'static str) -> DiameterAnswered {
        DiameterAnswered {
            node,
            counters: self.diameter.clone(),
        }
    }

    /// The counter of the Diameter requests `node` sends over its link
    /// ([`crate::diameter::client::DiameterClient::set_metrics`]).
    pub fn diameter_sent(&self, node: &'static str) -> DiameterSent {
        DiameterSent {
            node,
            counters: self.diameter_sent.clone(),
        }
    }

    /// Sets the gauges from what the nodes hold now.
    pub fn sample(&self, s: &Sample) {
        self.registrations.set(s.registrations);
        self.contacts.set(s.contacts);
        for &(node, n) in &s.transactions {
            self.transactions.get_or_create(&NodeLabel { node }).set(n);
        }
        self.stored.set(s.stored_messages);
        // Recipients whose queue emptied drop out rather than stay at 0 for ever.
        self.stored_by_user.clear();
        for (user, n) in &s.stored_by_user {
            self.stored_by_user
                .get_or_create(&UserLabel { user: user.clone() })
                .set(*n);
        }
        for &(node, n) in &s.chat_sessions {
            self.chat_sessions.get_or_create(&NodeLabel { node }).set(n);
        }
        self.channels.set(s.webrsf_channels);
        for &(node, n) in &s.diameter_peers_up {
            self.peers_up.get_or_create(&NodeLabel { node }).set(n);
        }
    }

    /// A scrape: the gauges set from `sample`, then every metric as Prometheus 0.0.4 text
    /// (OpenMetrics text when `openmetrics`).
    pub fn scrape(&self, sample: &Sample, openmetrics: bool) -> String {
        let _one = self.scrape.lock();
        self.sample(sample);
        if openmetrics {
            self.openmetrics()
        } else {
            self.prometheus()
        }
    }

    /// The OpenMetrics text of every metric (what the crate writes).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The Prometheus text exposition format 0.0.4 of every metric.
    pub fn prometheus(&self) -> String {
        to_prometheus_text(&self.openmetrics())
    }
}

/// Content type of [`Metrics::prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of [`Metrics::openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// OpenMetrics text to the Prometheus 0.0.4 text format: a counter family `x` has samples
/// `x_total`, and 0.0.4 wants `# HELP` and `# TYPE` to name the samples, so they are renamed;
/// `# UNIT` and `# EOF` are dropped (0.0.4 has neither).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Held until the TYPE line says whether the family is a counter.
            if let Some(h) = help.take() {
                out.push_str(h);
                out.push('\n');
            }
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.splitn(2, ' ');
            let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let counter = kind == "counter" && !name.ends_with("_total");
            if let Some(h) = help.take() {
                match (
                    counter,
                    h.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')),
                ) {
                    (true, Some((n, text))) => {
                        out.push_str(&format!("# HELP {n}_total {text}\n"));
                    }
                    _ => {
                        out.push_str(h);
                        out.push('\n');
                    }
                }
            }
            if counter {
                out.push_str(&format!("# TYPE {name}_total counter\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

struct SipInner {
    node: &'static str,
    /// By direction, then by [`SIP_METHODS`] index (`other` last).
    requests: [Vec<Counter>; 2],
    responses: Family<SipResponseLabels, Counter>,
}

/// One node's SIP message counters. Cheap to clone.
#[derive(Clone)]
pub struct SipCounters {
    inner: Arc<SipInner>,
}

impl std::fmt::Debug for SipCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCounters")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

/// The index of a method token in [`SIP_METHODS`], `SIP_METHODS.len()` for any other.
fn method_index(token: &[u8]) -> usize {
    SIP_METHODS
        .iter()
        .position(|m| m.as_bytes() == token)
        .unwrap_or(SIP_METHODS.len())
}

fn method_name(i: usize) -> &'static str {
    SIP_METHODS.get(i).copied().unwrap_or("other")
}

/// The method of a response's CSeq (RFC 3261 §20.16), read from the raw header lines.
fn cseq_method(head: &[u8]) -> usize {
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"CSeq") {
            let value = line[colon + 1..].trim_ascii();
            let method = value
                .split(|b| b.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
                .nth(1)
                .unwrap_or(b"");
            return method_index(method);
        }
    }
    SIP_METHODS.len()
}

impl SipCounters {
    /// Counts one message from its bytes: a request by the method of its request line, a
    /// response by its status code and its CSeq's method. Bytes that are neither (garbage) are
    /// not counted.
    pub fn count(&self, dir: Dir, bytes: &[u8]) {
        let line_end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        let first = &bytes[..line_end];
        if let Some(rest) = first.strip_prefix(b"SIP/2.0 ") {
            let code = rest
                .get(..3)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|c| (100..700).contains(c)) else {
                return;
            };
            let method = method_name(cseq_method(bytes));
            self.inner
                .responses
                .get_or_create(&SipResponseLabels {
                    node: self.inner.node,
                    direction: dir.label(),
                    method,
                    code,
                })
                .inc();
            return;
        }
        let Some(sp) = first.iter().position(|b| *b == b' ') else {
            return;
        };
        if !first.ends_with(b"SIP/2.0") && !first.ends_with(b"SIP/2.0\r") {
            return;
        }
        let i = method_index(&first[..sp]);
        if let Some(c) = self.inner.requests[dir.index()].get(i) {
            c.inc();
        }
    }
}

/// One node's MSRP message counter. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MsrpCounter(Counter);

impl MsrpCounter {
    /// Counts one whole message.
    pub fn inc(&self) {
        self.0.inc();
    }
}

/// Counts the requests one node sends over a Diameter link. Cheap to clone.
#[derive(Clone)]
pub struct DiameterSent {
    node: &'static str,
    counters: Family<DiameterSentLabels, Counter>,
}

impl std::fmt::Debug for DiameterSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiameterSent")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl DiameterSent {
    /// Counts one request of `command_code` and what came of it: the answer's Result-Code
    /// (0 when none came), or the `error` label (`timeout`, `down`, `closed`, `busy`,
    /// `error`; empty when an answer came).
    pub fn count(&self, command_code: u32, result: u32, error: &'static str) {
        self.counters
            .get_or_create(&DiameterSentLabels {
                node: self.node,
                command: command_label(command_code),
                result,
                error,
            })
            .inc();
    }
}

/// Counts the requests one node's Diameter handler answers, by command and result code.
/// Cheap to clone.
#[derive(Clone)]
pub struct DiameterAnswered {
    node: &'static str,
    counters: Family<DiameterLabels, Counter>,
}

impl std::fmt::Debug for DiameterAnswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiameterAnswered")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl DiameterAnswered {
    /// Counts one answered request of `command_code` whose answer carried `result`
    /// (Result-Code or Experimental-Result-Code; 0 when none).
    pub fn count(&self, command_code: u32, result: u32) {
        self.counters
            .get_or_create(&DiameterLabels {
                node: self.node,
                command: command_label(command_code),
                result,
            })
            .inc();
    }
}

/// The request name of a Cx command code (TS 29.229 §6.1).
fn command_label(code: u32) -> &'static str {
    match code {
        300 => "UAR",
        301 => "SAR",
        302 => "LIR",
        303 => "MAR",
        304 => "RTR",
        305 => "PPR",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_counted_by_method_and_code() {
        let m = Metrics::new();
        let c = m.sip("S-CSCF");
        c.count(
            Dir::Received,
            b"REGISTER sip:ims.lab SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n",
        );
        c.count(
            Dir::Sent,
            b"SIP/2.0 200 OK\r\nVia: x\r\ncseq:  2   REGISTER\r\n\r\n",
        );
        c.count(Dir::Sent, b"SIP/2.0 401 Unauthorized\r\n\r\n");
        c.count(Dir::Received, b"garbage without a request line");
        c.count(Dir::Received, b"FOO sip:x SIP/2.0\r\n\r\n");
        let text = m.prometheus();
        assert!(text.contains(
            "rcslab_sip_requests_total{node=\"S-CSCF\",direction=\"received\",method=\"REGISTER\"} 1\n"
        ));
        assert!(text.contains(
            "rcslab_sip_requests_total{node=\"S-CSCF\",direction=\"received\",method=\"other\"} 1\n"
        ));
        assert!(text.contains(
            "rcslab_sip_responses_total{node=\"S-CSCF\",direction=\"sent\",method=\"REGISTER\",code=\"200\"} 1\n"
        ));
        assert!(text.contains(
            "rcslab_sip_responses_total{node=\"S-CSCF\",direction=\"sent\",method=\"other\",code=\"401\"} 1\n"
        ));
    }

    #[test]
    fn prometheus_text_names_counter_samples_and_has_no_eof() {
        let m = Metrics::new();
        m.msrp("T-IM").inc();
        m.sample(&Sample {
            stored_messages: 3,
            stored_by_user: vec![("sip:carol@ims.lab".into(), 3)],
            ..Sample::default()
        });
        let text = m.prometheus();
        assert!(text.contains("# TYPE rcslab_msrp_messages_total counter\n"));
        assert!(text.contains("# HELP rcslab_msrp_messages_total "));
        assert!(text.contains("rcslab_msrp_messages_total{node=\"T-IM\"} 1\n"));
        assert!(text.contains("# TYPE rcslab_stored_messages gauge\n"));
        assert!(text.contains("rcslab_stored_messages 3\n"));
        assert!(text.contains("rcslab_stored_messages_by_user{user=\"sip:carol@ims.lab\"} 3\n"));
        assert!(!text.contains("# EOF"));
        assert!(m.openmetrics().ends_with("# EOF\n"));
        // A sample later without carol: her series goes.
        m.sample(&Sample::default());
        assert!(!m.prometheus().contains("carol"));
    }
}
