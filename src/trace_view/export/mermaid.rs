//! The Mermaid `sequenceDiagram` export: participants declared in IMS column order
//! ([`super::columns`]), one arrow per message, the nodes' notes as `Note over`. Text goes
//! through [`escape`]: in a sequence diagram `;` ends a statement and `#` starts an entity
//! code, so both (and `<`, `>`, which Mermaid reads as HTML) are written as entity codes
//! (`#59;`), which Mermaid renders as the character.

use std::net::SocketAddr;

use super::{columns, label, merged, Item};
use crate::trace::{Note, TraceEvent};

/// A participant id: letters, digits and `_`, never starting with a digit (an address like
/// `127.0.0.1:5062`).
pub(super) fn mermaid_id(s: &str) -> String {
    let id: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        format!("n{id}")
    } else {
        id
    }
}

/// Text for a label or note: Mermaid's special characters as entity codes, line breaks as
/// spaces.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => o.push_str("#35;"),
            ';' => o.push_str("#59;"),
            '<' => o.push_str("#lt;"),
            '>' => o.push_str("#gt;"),
            '\r' | '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A Mermaid `sequenceDiagram` of the messages, with the nodes' notes.
pub fn mermaid(
    events: &[TraceEvent],
    notes: &[Note],
    name: &dyn Fn(SocketAddr) -> String,
) -> String {
    let mut out = String::from("sequenceDiagram\n");
    let nodes = columns(events, name);
    for n in &nodes {
        out.push_str(&format!(
            "    participant {} as {}\n",
            mermaid_id(n),
            escape(n)
        ));
    }
    for item in merged(events, notes) {
        match item {
            Item::Msg(e) => {
                out.push_str(&format!(
                    "    {}->>{}: {}\n",
                    mermaid_id(&name(e.src())),
                    mermaid_id(&name(e.dst())),
                    escape(&label(e))
                ));
            }
            Item::Note(n) => {
                let who = name(n.node);
                if nodes.contains(&who) {
                    out.push_str(&format!(
                        "    Note over {}: {}\n",
                        mermaid_id(&who),
                        escape(&n.text)
                    ));
                }
            }
        }
    }
    out
}
