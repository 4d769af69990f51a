//! Messages laid out for reading (the HTML export shows these): a Diameter message as its
//! header and an AVP tree (RFC 6733 §3, §4; names from [`crate::diameter::dict`]), a SIP,
//! MSRP or HTTP message as its headers and a body laid out by Content-Type: SDP line by line
//! (RFC 4566), multipart split into its parts (RFC 2046 §5.1), CPIM with its header blocks
//! (RFC 3862 §3), XML indented (IMDN RFC 5438, reginfo RFC 3680, iFC), JSON pretty-printed.

use crate::diameter::codec::{Avp, Message};
use crate::diameter::dict;
use crate::trace::Protocol;

/// A Diameter message as text: the command, its flags and identifiers, then one line per AVP
/// (`name (code[, vendor V]) [flags]: value`), grouped AVPs with their children indented.
/// Bytes that do not decode come back as a hex dump with the reason.
pub fn avp_tree(bytes: &[u8]) -> String {
    let m = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => return format!("(not a Diameter message: {e})\n{}", hex_dump(bytes)),
    };
    let flags: String = [(0x80, 'R'), (0x40, 'P'), (0x20, 'E'), (0x10, 'T')]
        .iter()
        .filter(|(b, _)| m.flags & b != 0)
        .map(|(_, c)| *c)
        .collect();
    let app = match m.application_id {
        0 => " (common messages)".to_string(),
        crate::diameter::cx::APP_ID_CX => " (3GPP Cx)".to_string(),
        _ => String::new(),
    };
    let mut out = format!(
        "{} {} ({})  flags {}  application {}{app}\nhop-by-hop 0x{:08x}  end-to-end 0x{:08x}\n",
        m.command_name(),
        dict::command_name(&m),
        m.command_code,
        if flags.is_empty() { "-" } else { &flags },
        m.application_id,
        m.hop_by_hop,
        m.end_to_end,
    );
    avps_into(&m.avps, 1, &mut out);
    out
}

fn avps_into(avps: &[Avp], depth: usize, out: &mut String) {
    for a in avps {
        let name = dict::avp_info(a.code, a.vendor_id)
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "AVP".to_string());
        let vendor = a
            .vendor_id
            .map(|v| format!(", vendor {v}"))
            .unwrap_or_default();
        let flags: String = [(0x80, 'V'), (0x40, 'M'), (0x20, 'P')]
            .iter()
            .filter(|(b, _)| a.flags & b != 0)
            .map(|(_, c)| *c)
            .collect();
        out.push_str(&format!(
            "{}{name} ({}{vendor}) [{flags}]: {}\n",
            "  ".repeat(depth),
            a.code,
            dict::avp_value(a)
        ));
        if dict::is_grouped(a) {
            if let Ok(inner) = a.as_grouped() {
                avps_into(&inner, depth + 1, out);
            }
        }
    }
}

fn hex_dump(bytes: &[u8]) -> String {
    bytes
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
        .collect()
}

/// A recorded message for reading: Diameter as an [`avp_tree`], text protocols as their start
/// line and headers, then the body laid out by its Content-Type under a `--- body` line.
pub fn pretty_message(protocol: Protocol, bytes: &[u8]) -> String {
    if protocol == Protocol::Diameter {
        return avp_tree(bytes);
    }
    let text = String::from_utf8_lossy(bytes);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return text.to_string();
    };
    // MSRP: the body ends at the end-line `-------<tid>$` (RFC 4975 §7.1).
    let (body, tail) = match protocol {
        Protocol::Msrp => match rest.rfind("\r\n-------") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, ""),
        },
        _ => (rest, ""),
    };
    if body.trim().is_empty() {
        return text.to_string();
    }
    let ctype = header(head, "Content-Type").unwrap_or_default();
    format!(
        "{head}\n\n--- body ({}, {} bytes)\n{}{}{tail}",
        if ctype.is_empty() { "no type" } else { &ctype },
        body.len(),
        pretty_body(&ctype, body),
        if tail.is_empty() { "" } else { "\n" },
    )
}

/// A header's value in a header block (case-insensitive name; `c` for Content-Type).
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || (name == "Content-Type" && n == "c"))
            .then(|| v.trim().to_string())
    })
}

/// A body laid out by its type.
fn pretty_body(ctype: &str, body: &str) -> String {
    let t = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if t.starts_with("multipart/") {
        if let Some(b) = param(ctype, "boundary") {
            return multipart(&b, body);
        }
    }
    if t == "message/cpim" {
        return cpim(body);
    }
    if t.ends_with("xml") {
        return indent_xml(body);
    }
    if t.ends_with("json") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
            if let Ok(s) = serde_json::to_string_pretty(&v) {
                return format!("{s}\n");
            }
        }
    }
    // SDP and plain text: one line each.
    let mut s: String = body.lines().map(|l| format!("{l}\n")).collect();
    if s.is_empty() {
        s.push('\n');
    }
    s
}

fn param(ctype: &str, name: &str) -> Option<String> {
    ctype.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Each part: its headers, then its body laid out by its own type.
fn multipart(boundary: &str, body: &str) -> String {
    let delim = format!("--{boundary}");
    let mut out = String::new();
    for (i, part) in body.split(&delim).enumerate().skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches("\r\n");
        let (h, b) = part.split_once("\r\n\r\n").unwrap_or(("", part));
        let b = b.strip_suffix("\r\n").unwrap_or(b);
        out.push_str(&format!("[part {i}]\n"));
        for l in h.lines() {
            out.push_str(&format!("  {l}\n"));
        }
        let ct = header(h, "Content-Type").unwrap_or_default();
        for l in pretty_body(&ct, b).lines() {
            out.push_str(&format!("  | {l}\n"));
        }
    }
    out
}

/// CPIM (RFC 3862): message headers, a blank line, the MIME headers of the content, a blank
/// line, the content laid out by its type.
fn cpim(body: &str) -> String {
    let mut blocks = body.splitn(3, "\r\n\r\n");
    let (cpim_h, mime_h, content) = (
        blocks.next().unwrap_or(""),
        blocks.next().unwrap_or(""),
        blocks.next().unwrap_or(""),
    );
    let mut out = String::from("[CPIM headers]\n");
    for l in cpim_h.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out.push_str("[content headers]\n");
    for l in mime_h.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    let ct = header(mime_h, "Content-Type").unwrap_or_default();
    out.push_str("[content]\n");
    for l in pretty_body(&ct, content).lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out
}

/// XML with one element per line, children indented two spaces; an element holding only
/// text stays on one line. Not a validating parser: text that is not XML comes back as it is.
pub fn indent_xml(xml: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut rest = xml.trim();
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push_str(&format!("{}{}\n", "  ".repeat(depth), rest.trim()));
            break;
        };
        let text = rest[..lt].trim();
        if !text.is_empty() {
            out.push_str(&format!("{}{text}\n", "  ".repeat(depth)));
        }
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else {
            out.push_str(rest);
            out.push('\n');
            break;
        };
        let tag = &rest[..=gt];
        rest = &rest[gt + 1..];
        if tag.starts_with("</") {
            depth = depth.saturating_sub(1);
            out.push_str(&format!("{}{tag}\n", "  ".repeat(depth)));
        } else if tag.starts_with("<?") || tag.starts_with("<!") || tag.ends_with("/>") {
            out.push_str(&format!("{}{tag}\n", "  ".repeat(depth)));
        } else {
            // `<a>text</a>` on one line.
            let close = rest.find('<').unwrap_or(rest.len());
            if rest[close..].starts_with("</") && !rest[..close].contains('>') {
                let end = rest[close..].find('>').map(|g| close + g + 1);
                if let Some(end) = end {
                    out.push_str(&format!(
                        "{}{tag}{}{}\n",
                        "  ".repeat(depth),
                        rest[..close].trim(),
                        &rest[close..end]
                    ));
                    rest = &rest[end..];
                    continue;
                }
            }
            out.push_str(&format!("{}{tag}\n", "  ".repeat(depth)));
            depth += 1;
        }
    }
    out
}
