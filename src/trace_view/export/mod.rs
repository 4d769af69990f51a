//! Exports of what the flight recorder saw: a text ladder ([`text()`]), a Mermaid sequence
//! diagram ([`mermaid()`]), a self-contained HTML page ([`html()`]: a numbered SVG ladder under
//! a fixed row of node names, each arrow linking to the message: SIP and MSRP with their
//! bodies laid out, Diameter as an AVP tree), and a pcap file ([`pcap()`]: raw IPv4,
//! LINKTYPE_RAW 101) that Wireshark, tshark and sngrep open with SIP, Diameter and MSRP
//! decoded (pass `-d tcp.port==PORT,diameter` for non-standard ports).

mod html;
mod mermaid;
mod pcap;
mod pretty;
mod text;

pub use html::html;
pub use mermaid::mermaid;
pub use pcap::pcap;
pub use pretty::{avp_tree, pretty_message};
pub use text::text;

use std::net::SocketAddr;

use crate::trace::{Direction, Note, Trace, TraceEvent};

/// Messages and notes in time order.
enum Item<'a> {
    Msg(&'a TraceEvent),
    Note(&'a Note),
}

fn merged<'a>(events: &'a [TraceEvent], notes: &'a [Note]) -> Vec<Item<'a>> {
    let mut v: Vec<(std::time::Duration, Item<'a>)> = events
        .iter()
        .map(|e| (e.at, Item::Msg(e)))
        .chain(notes.iter().map(|n| (n.at, Item::Note(n))))
        .collect();
    v.sort_by_key(|(at, _)| *at);
    v.into_iter().map(|(_, i)| i).collect()
}

/// Each message once, as it crossed the wire: what recording sockets sent, plus what they
/// received from senders that record nothing. Addresses go through the trace's aliases.
pub fn wire_events(trace: &Trace) -> Vec<TraceEvent> {
    let events = trace.events();
    let recorders: std::collections::HashSet<SocketAddr> = events
        .iter()
        .map(|e| trace.resolve_at(e.local, e.at))
        .collect();
    events
        .into_iter()
        .filter(|e| {
            e.direction == Direction::Sent || !recorders.contains(&trace.resolve_at(e.remote, e.at))
        })
        .collect()
}

/// The nodes of a flow in the order IMS figures draw them (TS 23.228 §5.4 style): the
/// UE that spoke first, then P-CSCF, I-CSCF, S-CSCF, HSS, the application servers (O-IM,
/// T-IM), WebRSF, the other clients (web clients and UEs), and last anything unnamed. Within a rank, order of
/// appearance.
pub fn columns(events: &[TraceEvent], name: &dyn Fn(SocketAddr) -> String) -> Vec<String> {
    let mut nodes: Vec<String> = Vec::new();
    for e in events {
        for n in [name(e.src()), name(e.dst())] {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
    }
    let client = |n: &str| n.starts_with("UE ") || n.starts_with("Web ");
    // The UE that spoke first stands on the left; web clients stand by their gateway.
    let first = events
        .iter()
        .map(|e| name(e.src()))
        .find(|n| n.starts_with("UE "))
        .or_else(|| nodes.iter().find(|n| n.starts_with("UE ")).cloned());
    let rank = |n: &String| -> usize {
        if Some(n) == first.as_ref() {
            return 0;
        }
        let order = [
            "P-CSCF", "I-CSCF", "S-CSCF", "HSS", "O-IM", "T-IM", "PS", "CONF", "WebRSF",
        ];
        match order.iter().position(|p| n.starts_with(p)) {
            Some(i) => 1 + i,
            None if client(n) => 1 + order.len(),
            None => 2 + order.len(),
        }
    };
    nodes.sort_by_key(|n| rank(n));
    nodes
}

/// A message's label without the protocol said twice: a SIP, MSRP or HTTP start line as it
/// is (`SIP/2.0 200 OK`, `INVITE sip:...`), a Diameter command as `Diameter LIR`.
pub(super) fn label(e: &TraceEvent) -> String {
    match e.protocol {
        crate::trace::Protocol::Diameter => format!("Diameter {}", e.summary),
        _ => e.summary.clone(),
    }
}

#[cfg(test)]
mod tests;
