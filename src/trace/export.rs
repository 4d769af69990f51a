//! Exports of what the flight recorder saw: a text ladder, a Mermaid sequence diagram, and a
//! pcap file (raw IPv4, LINKTYPE_RAW 101) that Wireshark, tshark and sngrep open with SIP,
//! Diameter and MSRP decoded (pass `-d tcp.port==PORT,diameter` for non-standard ports).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::UNIX_EPOCH;

use crate::trace::{Direction, Protocol, Trace, TraceEvent};

/// Each message once, as it crossed the wire: what recording sockets sent, plus what they
/// received from senders that record nothing. Addresses go through the trace's aliases.
pub fn wire_events(trace: &Trace) -> Vec<TraceEvent> {
    let events = trace.events();
    let recorders: std::collections::HashSet<SocketAddr> =
        events.iter().map(|e| trace.resolve(e.local)).collect();
    events
        .into_iter()
        .filter(|e| e.direction == Direction::Sent || !recorders.contains(&trace.resolve(e.remote)))
        .collect()
}

/// A text ladder: one line per message, `time  FROM -> TO  PROTO  first line`.
pub fn text(events: &[TraceEvent], name: &dyn Fn(SocketAddr) -> String) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{:>9.3}ms  {:<10} -> {:<10} {:<8} {}\n",
            e.at.as_secs_f64() * 1000.0,
            name(e.src()),
            name(e.dst()),
            e.protocol.label(),
            e.summary
        ));
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

/// A Mermaid `sequenceDiagram` of the messages.
pub fn mermaid(events: &[TraceEvent], name: &dyn Fn(SocketAddr) -> String) -> String {
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
    for e in events {
        let label = e.summary.replace([';', '#'], " ");
        out.push_str(&format!(
            "    {}->>{}: {} {}\n",
            mermaid_id(&name(e.src())),
            mermaid_id(&name(e.dst())),
            e.protocol.label(),
            label
        ));
    }
    out
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
        let txt = text(&ev, &name);
        assert!(
            txt.contains("P-CSCF     -> I-CSCF     SIP      REGISTER sip:ims.lab SIP/2.0"),
            "{txt}"
        );
        let m = mermaid(&ev, &name);
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
