//! The pcap export (libpcap format, LINKTYPE_RAW 101: IPv4 packets without a link layer).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::UNIX_EPOCH;

use crate::trace::{Protocol, TraceEvent};

pub(super) fn checksum(data: &[u8]) -> u16 {
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
