//! Unit tests of the exports.

use super::pcap::checksum;
use super::*;
use crate::trace::Protocol;

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
    assert!(
        h.contains("UAR User-Authorization-Request (300)  flags R"),
        "Diameter decoded"
    );
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

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Ten nodes, the way a chat to a web client goes: who speaks first decides nothing but the
/// first client's column.
fn ims_name(a: SocketAddr) -> String {
    match a.port() {
        1 => "UE alice",
        2 => "Web bob",
        5060 => "P-CSCF",
        5070 => "I-CSCF",
        5080 => "S-CSCF",
        3868 => "HSS",
        5090 => "O-IM",
        5091 => "T-IM",
        8080 => "WebRSF",
        _ => return a.to_string(),
    }
    .to_string()
}

fn send(t: &Trace, p: Protocol, from: u16, to: u16, bytes: &[u8], summary: &str) {
    let s = summary.to_string();
    t.record(Direction::Sent, p, at(from), at(to), bytes, || s);
}

fn cx_sample() -> Trace {
    use crate::diameter::codec::{Avp, Message, AVP_SESSION_ID};
    use crate::diameter::cx::{APP_ID_CX, VENDOR_3GPP};
    let t = Trace::enabled();
    // Arrivals in an order unlike the figures: the HSS and T-IM first.
    let mut saa = Message::request(301, APP_ID_CX);
    saa.flags = 0x40;
    saa.push(Avp::utf8(AVP_SESSION_ID, None, true, "scscf;1;2"));
    saa.push(Avp::grouped(
        297,
        None,
        true,
        vec![Avp::u32(298, None, true, 2001)],
    ));
    saa.push(Avp::grouped(
        612,
        Some(VENDOR_3GPP),
        true,
        vec![Avp::utf8(608, Some(VENDOR_3GPP), true, "SIP Digest")],
    ));
    send(&t, Protocol::Diameter, 3868, 5080, &saa.encode(), "SAA");
    send(
        &t,
        Protocol::SipTcp,
        5091,
        8080,
        b"MESSAGE sip:x SIP/2.0\r\n\r\n",
        "MESSAGE sip:x SIP/2.0",
    );
    let invite = "INVITE sip:bob@ims.lab SIP/2.0\r\nContent-Type: multipart/mixed;boundary=b1\r\n\r\n\
        --b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=message 7 TCP/MSRP *\r\na=path:msrp://h:7/s;tcp\r\n\
        --b1\r\nContent-Type: message/cpim\r\n\r\nFrom: <sip:alice@ims.lab>\r\nimdn.Message-ID: m1\r\n\r\n\
        Content-Type: message/imdn+xml\r\n\r\n<?xml version=\"1.0\"?><imdn><message-id>m1</message-id><delivery-notification><delivered/></delivery-notification></imdn>\r\n\
        --b1--\r\n";
    send(
        &t,
        Protocol::SipTcp,
        1,
        5060,
        invite.as_bytes(),
        "INVITE sip:bob@ims.lab SIP/2.0",
    );
    for (f, to) in [
        (5060, 5080),
        (5080, 5090),
        (5080, 5070),
        (5070, 3868),
        (8080, 2),
    ] {
        send(&t, Protocol::SipTcp, f, to, b"x", "MESSAGE sip:y SIP/2.0");
    }
    t
}

#[test]
fn mermaid_declares_participants_in_ims_order_and_escapes_special_characters() {
    let t = cx_sample();
    t.note(at(5080), || "iFC 1 matched; #2 did not <skip>".into());
    let m = mermaid(&wire_events(&t), &t.notes(), &ims_name);
    let order: Vec<&str> = m
        .lines()
        .filter_map(|l| l.trim().strip_prefix("participant "))
        .map(|l| l.split(" as ").nth(1).unwrap())
        .collect();
    assert_eq!(
        order,
        ["UE alice", "P-CSCF", "I-CSCF", "S-CSCF", "HSS", "O-IM", "T-IM", "WebRSF", "Web bob"]
    );
    assert!(
        m.contains("Note over S_CSCF: iFC 1 matched#59; #35;2 did not #lt;skip#gt;"),
        "{m}"
    );
    // Every statement is one line with no raw ';' (it would end the statement early).
    assert!(
        m.lines().all(|l| !l.contains(';') || l.contains("#59;")),
        "{m}"
    );
    assert_eq!(mermaid::escape("a;b#c"), "a#59;b#35;c");
}

#[test]
fn html_has_a_sticky_header_numbered_steps_and_fits_a_laptop_screen() {
    let t = cx_sample();
    let ev = wire_events(&t);
    let h = html(&ev, &[], &ims_name, "lab");
    assert!(
        h.contains(".hdr{position:sticky;top:0"),
        "sticky header row"
    );
    let head = &h[h.find("<div class=\"hdr\">").unwrap()..];
    let head = &head[..head.find("</div>").unwrap()];
    for n in ["UE alice", "P-CSCF", "HSS", "WebRSF", "Web bob"] {
        assert!(
            head.contains(&format!(">{n}</text>")),
            "{n} in the header row"
        );
    }
    // Ten columns at most 1300 px wide (a 1366 px screen).
    let w: usize = h
        .split(" width=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .max()
        .unwrap();
    assert!(w <= 1300, "{w} px");
    // Step numbers: in the ladder's gutter, the tooltip and the message list.
    for k in 1..=ev.len() {
        assert!(h.contains(&format!("fill=\"#999\">{k}</text>")), "step {k}");
        assert!(
            h.contains(&format!("<section id=\"m{k}\"><h3>{k}. +")),
            "message {k}"
        );
    }
    assert!(!h.contains("id=\"m0\""), "numbered from 1");
}

#[test]
fn html_shows_diameter_as_an_avp_tree_and_lays_out_bodies() {
    let t = cx_sample();
    let h = html(&wire_events(&t), &[], &ims_name, "lab");
    // The AVP tree: command, flags, each AVP with code, vendor and value, groups nested.
    assert!(
        h.contains("SAA Server-Assignment-Answer (301)  flags P  application 16777216 (3GPP Cx)"),
        "{h}"
    );
    assert!(h.contains("\n  Session-Id (263) [M]: scscf;1;2\n"));
    assert!(h.contains("\n  Experimental-Result (297) [M]: (1 AVPs)\n    Experimental-Result-Code (298) [M]: 2001 DIAMETER_FIRST_REGISTRATION\n"));
    assert!(h.contains("\n  SIP-Auth-Data-Item (612, vendor 10415) [VM]: (1 AVPs)\n    SIP-Authentication-Scheme (608, vendor 10415) [VM]: SIP Digest\n"));
    // The INVITE's multipart body: SDP by line, CPIM's header blocks, XML indented, escaped.
    assert!(h.contains("--- body (multipart/mixed;boundary=b1"));
    assert!(h.contains("  | a=path:msrp://h:7/s;tcp\n"));
    assert!(
        h.contains("  | [CPIM headers]\n  |   From: &lt;sip:alice@ims.lab&gt;\n"),
        "{h}"
    );
    assert!(h.contains("  |   &lt;imdn&gt;\n  |     &lt;message-id&gt;m1&lt;/message-id&gt;\n  |     &lt;delivery-notification&gt;\n  |       &lt;delivered/&gt;\n"), "{h}");
}
