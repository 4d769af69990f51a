//! The text ladder: one line per message with its recorder time, notes between them.

use std::net::SocketAddr;

use super::{merged, Item};
use crate::trace::{Note, TraceEvent};

/// A text ladder: one line per message, `time  FROM -> TO  PROTO  first line`, and the nodes'
/// notes on their decisions as `time  [NODE] text`.
pub fn text(events: &[TraceEvent], notes: &[Note], name: &dyn Fn(SocketAddr) -> String) -> String {
    let mut out = String::new();
    for item in merged(events, notes) {
        match item {
            Item::Msg(e) => out.push_str(&format!(
                "{:>9.3}ms  {:<10} -> {:<10} {:<8} {}\n",
                e.at.as_secs_f64() * 1000.0,
                name(e.src()),
                name(e.dst()),
                e.protocol.label(),
                e.summary
            )),
            Item::Note(n) => out.push_str(&format!(
                "{:>9.3}ms    [{}] {}\n",
                n.at.as_secs_f64() * 1000.0,
                name(n.node),
                n.text
            )),
        }
    }
    out
}
