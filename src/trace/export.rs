//! Exports of what the flight recorder saw: a text ladder, a Mermaid sequence diagram, a
//! self-contained HTML page (an SVG ladder; each arrow links to the message's bytes), and a
//! pcap file (raw IPv4, LINKTYPE_RAW 101) that Wireshark, tshark and sngrep open with SIP,
//! Diameter and MSRP decoded (pass `-d tcp.port==PORT,diameter` for non-standard ports).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::UNIX_EPOCH;

use crate::trace::{Direction, Note, Protocol, Trace, TraceEvent};

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

fn mermaid_id(s: &str) -> String {
    let id: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // Mermaid participant ids may not start with a digit (an address like 127.0.0.1:5062).
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        format!("n{id}")
    } else {
        id
    }
}

/// A Mermaid `sequenceDiagram` of the messages, with the nodes' notes.
pub fn mermaid(
    events: &[TraceEvent],
    notes: &[Note],
    name: &dyn Fn(SocketAddr) -> String,
) -> String {
    let mut out = String::from("sequenceDiagram\n");
    let mut seen = Vec::new();
    for e in events {
        for n in [name(e.src()), name(e.dst())] {
            if !seen.contains(&n) {
                out.push_str(&format!("    participant {} as {}\n", mermaid_id(&n), n));
                seen.push(n);
            }
        }
    }
    for item in merged(events, notes) {
        match item {
            Item::Msg(e) => {
                let label = e.summary.replace([';', '#'], " ");
                out.push_str(&format!(
                    "    {}->>{}: {} {}\n",
                    mermaid_id(&name(e.src())),
                    mermaid_id(&name(e.dst())),
                    e.protocol.label(),
                    label
                ));
            }
            Item::Note(n) => {
                let who = name(n.node);
                if seen.contains(&who) {
                    out.push_str(&format!(
                        "    Note over {}: {}\n",
                        mermaid_id(&who),
                        n.text.replace([';', '#'], " ")
                    ));
                }
            }
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A self-contained HTML page: the ladder as SVG (one column per node, one arrow per message,
/// coloured by protocol) and, below it, every message's bytes; each arrow links to them.
/// Binary messages (Diameter) are shown as a hex dump.
pub fn html(
    events: &[TraceEvent],
    notes: &[Note],
    name: &dyn Fn(SocketAddr) -> String,
    title: &str,
) -> String {
    let mut nodes: Vec<String> = Vec::new();
    for e in events {
        for n in [name(e.src()), name(e.dst())] {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
    }
    // Columns in the order IMS figures draw them: clients, then the core, then the servers.
    let rank = |n: &str| -> usize {
        let order = [
            "UE ", "Web ", "WebRSF", "P-CSCF", "I-CSCF", "S-CSCF", "HSS", "O-IM", "T-IM",
        ];
        order
            .iter()
            .position(|p| n.starts_with(p))
            .unwrap_or(order.len())
    };
    nodes.sort_by_key(|n| rank(n));
    let col = |n: &str| nodes.iter().position(|x| x == n).unwrap_or(0);
    let items = merged(events, notes);
    let (dx, top, dy) = (170usize, 50usize, 26usize);
    let width = dx * nodes.len().max(1) + 40;
    let height = top + dy * items.len() + 30;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">\n\
         <defs><marker id=\"a\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        let x = 20 + dx * i + dx / 2;
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n\
             <line x1=\"{x}\" y1=\"28\" x2=\"{x}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n",
            html_escape(n),
            height - 10
        ));
    }
    let mut k = 0usize;
    for (row, item) in items.iter().enumerate() {
        let y = top + dy * row;
        let e = match item {
            Item::Note(n) => {
                let x = 20 + dx * col(&name(n.node)) + dx / 2;
                svg.push_str(&format!(
                    "<text x=\"{x}\" y=\"{y}\" fill=\"#666\" font-style=\"italic\">&#9998; {}</text>\n",
                    html_escape(&n.text)
                ));
                continue;
            }
            Item::Msg(e) => e,
        };
        let (a, b) = (col(&name(e.src())), col(&name(e.dst())));
        let (x1, x2) = (20 + dx * a + dx / 2, 20 + dx * b + dx / 2);
        let colour = match e.protocol {
            Protocol::SipUdp | Protocol::SipTcp => "#1f5fbf",
            Protocol::Diameter => "#b8860b",
            Protocol::Msrp => "#2e8b57",
            Protocol::Http => "#8b3a8b",
        };
        let label = format!("{} {}", e.protocol.label(), e.summary);
        let label: String = label.chars().take(60).collect();
        let (tx, anchor) = if a == b {
            (x1 + 6, "start")
        } else {
            ((x1 + x2) / 2, "middle")
        };
        svg.push_str(&format!(
            "<a href=\"#m{k}\"><title>{:.3} ms</title><line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"1.5\" marker-end=\"url(#a)\"/>\n\
             <text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"{colour}\">{}</text></a>\n",
            e.at.as_secs_f64() * 1000.0,
            y - 4,
            html_escape(&label)
        ));
        k += 1;
    }
    svg.push_str("</svg>\n");
    let mut body = String::new();
    for (k, e) in events.iter().enumerate() {
        let text = if matches!(e.protocol, Protocol::Diameter) {
            e.bytes
                .chunks(16)
                .enumerate()
                .map(|(i, c)| {
                    format!(
                        "{:04x}  {}\n",
                        i * 16,
                        c.iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                })
                .collect::<String>()
        } else {
            String::from_utf8_lossy(&e.bytes).to_string()
        };
        body.push_str(&format!(
            "<section id=\"m{k}\"><h3>{k}. {:.3} ms  {} &rarr; {}  {} {}</h3><pre>{}</pre></section>\n",
            e.at.as_secs_f64() * 1000.0,
            html_escape(&name(e.src())),
            html_escape(&name(e.dst())),
            e.protocol.label(),
            html_escape(&e.summary),
            html_escape(&text)
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:1em}}pre{{background:#f6f6f6;padding:.5em;overflow:auto;font-size:12px}}\
         h3{{font-size:13px;font-family:monospace;margin:1em 0 .2em}}svg a:hover text{{text-decoration:underline}}</style>\n\
         </head><body><h1>{t}</h1><p>{n} messages. Click an arrow for its bytes.</p>\n{svg}{body}</body></html>\n",
        t = html_escape(title),
        n = events.len()
    )
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcap file of the messages (IPv4 only; IPv6 messages are skipped). TCP segments carry
/// per-direction sequence numbers so reassembly across segments works.
pub fn pcap(events: &[TraceEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    let mut seq: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut ip_id: u16 = 1;
    for e in events {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (e.src().ip(), e.dst().ip()) else {
            continue;
        };
        let tcp = !matches!(e.protocol, Protocol::SipUdp);
        for chunk in e.bytes.chunks(if tcp { 60_000 } else { 65_000 }) {
            let mut l4 = Vec::new();
            if tcp {
                let s = seq.entry((e.src(), e.dst())).or_insert(1);
                let ack = 1u32;
                l4.extend_from_slice(&e.src().port().to_be_bytes());
                l4.extend_from_slice(&e.dst().port().to_be_bytes());
                l4.extend_from_slice(&s.to_be_bytes());
                l4.extend_from_slice(&ack.to_be_bytes());
                l4.push(5 << 4); // data offset 5 words
                l4.push(0x18); // PSH|ACK
                l4.extend_from_slice(&65_535u16.to_be_bytes());
                l4.extend_from_slice(&[0, 0, 0, 0]); // checksum (left 0), urgent
                *s = s.wrapping_add(chunk.len() as u32);
            } else {
                l4.extend_from_slice(&e.src().port().to_be_bytes());
                l4.extend_from_slice(&e.dst().port().to_be_bytes());
                l4.extend_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
            }
            l4.extend_from_slice(chunk);
            let total = 20 + l4.len();
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(total as u16).to_be_bytes());
            ip.extend_from_slice(&ip_id.to_be_bytes());
            ip_id = ip_id.wrapping_add(1);
            ip.extend_from_slice(&[0x40, 0, 64, if tcp { 6 } else { 17 }, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let c = checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&l4);
            let t = e.wall.duration_since(UNIX_EPOCH).unwrap_or_default();
            out.extend_from_slice(&(t.as_secs() as u32).to_le_bytes());
            out.extend_from_slice(&t.subsec_micros().to_le_bytes());
            out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
            out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
            out.extend_from_slice(&ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        let t = Trace::enabled();
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let reg = b"REGISTER sip:ims.lab SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        t.record(Direction::Sent, Protocol::SipUdp, a, b, reg, || {
            "REGISTER sip:ims.lab SIP/2.0".into()
        });
        t.record(Direction::Received, Protocol::SipUdp, b, a, reg, || {
            "REGISTER sip:ims.lab SIP/2.0".into()
        });
        t.record(
            Direction::Sent,
            Protocol::Diameter,
            b,
            a,
            &[
                1, 0, 0, 20, 0x80, 0, 1, 44, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1,
            ],
            || "UAR".into(),
        );
        t
    }

    #[test]
    fn notes_appear_beside_the_messages_in_time_order() {
        let t = sample();
        let a: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        t.note(a, || "UAA: the HSS names sip:scscf.ims.lab".into());
        let ev = wire_events(&t);
        let notes = t.notes();
        let name = |x: SocketAddr| {
            if x.port() == 5060 {
                "P-CSCF".to_string()
            } else {
                "I-CSCF".to_string()
            }
        };
        let txt = text(&ev, &notes, &name);
        let last = txt.lines().last().unwrap();
        assert!(
            last.ends_with("[I-CSCF] UAA: the HSS names sip:scscf.ims.lab"),
            "{txt}"
        );
        let m = mermaid(&ev, &notes, &name);
        assert!(
            m.contains("Note over I_CSCF: UAA: the HSS names sip:scscf.ims.lab"),
            "{m}"
        );
        let h = html(&ev, &notes, &name, "n");
        assert!(h.contains("UAA: the HSS names"));
        assert_eq!(
            h.matches("marker-end=").count(),
            ev.len(),
            "a note is no arrow"
        );
        assert!(Trace::disabled().notes().is_empty());
    }

    #[test]
    fn html_draws_one_arrow_per_message_and_escapes_bytes() {
        let t = sample();
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        t.record(
            Direction::Sent,
            Protocol::Msrp,
            a,
            b,
            b"MSRP x SEND\r\nTo-Path: <msrp://h>\r\n",
            || "MSRP x SEND".into(),
        );
        let ev = wire_events(&t);
        let name = |x: SocketAddr| {
            if x.port() == 5060 {
                "P-CSCF".to_string()
            } else {
                "I-CSCF".to_string()
            }
        };
        let h = html(&ev, &[], &name, "test <lab>");
        assert!(h.starts_with("<!doctype html>"));
        assert_eq!(
            h.matches("marker-end=").count(),
            ev.len(),
            "one arrow per message"
        );
        assert_eq!(h.matches("<section id=").count(), ev.len());
        assert!(h.contains("test &lt;lab&gt;") && h.contains("To-Path: &lt;msrp://h&gt;"));
        assert!(!h.contains("<msrp://h>"), "bytes are escaped");
        assert!(h.contains("0000  01 00 00 14"), "Diameter as a hex dump");
        assert!(h.contains(">P-CSCF</text>") && h.contains(">I-CSCF</text>"));
    }

    #[test]
    fn text_and_mermaid_show_each_message_once() {
        let t = sample();
        let ev = wire_events(&t);
        assert_eq!(
            ev.len(),
            2,
            "the received copy of a recorded send is not repeated"
        );
        let name = |a: SocketAddr| {
            if a.port() == 5060 {
                "P-CSCF".to_string()
            } else {
                "I-CSCF".to_string()
            }
        };
        let txt = text(&ev, &[], &name);
        assert!(
            txt.contains("P-CSCF     -> I-CSCF     SIP      REGISTER sip:ims.lab SIP/2.0"),
            "{txt}"
        );
        let m = mermaid(&ev, &[], &name);
        assert!(
            m.starts_with("sequenceDiagram\n    participant P_CSCF as P-CSCF\n"),
            "{m}"
        );
        assert!(m.contains("I_CSCF->>P_CSCF: Diameter UAR"), "{m}");
    }

    #[test]
    fn pcap_has_a_header_and_one_ipv4_packet_per_message() {
        let t = sample();
        let p = pcap(&wire_events(&t));
        assert_eq!(&p[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes([p[20], p[21], p[22], p[23]]), 101);
        let first_len = u32::from_le_bytes([p[32], p[33], p[34], p[35]]) as usize;
        assert_eq!(p[40], 0x45, "IPv4");
        assert_eq!(p[40 + 9], 17, "UDP");
        assert_eq!(checksum(&p[40..60]), 0, "valid IP header checksum");
        let second = 40 + first_len;
        assert_eq!(p[second + 16 + 9], 6, "Diameter over TCP");
    }
}
