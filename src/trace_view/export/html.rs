//! The HTML export: one self-contained page. On top, the ladder as SVG under a row of node
//! names that stays in view while it scrolls (CSS `position: sticky`); columns in IMS order
//! ([`super::columns`]), squeezed so that ten nodes fit a 1366 px laptop screen; every
//! message numbered and timed from the first one, coloured by protocol, its label cut to the
//! space between its columns (the whole label in the tooltip); the nodes' notes wrapped
//! across the page. Below, every message by number: SIP, MSRP and HTTP with their bodies laid
//! out, Diameter as an AVP tree ([`super::pretty`]). Everything taken from the wire is
//! HTML-escaped.

use std::net::SocketAddr;

use super::pretty::pretty_message;
use super::{columns, label, merged, Item};
use crate::trace::{Note, Protocol, TraceEvent};

/// The widest the page draws (px): a 1366 px screen less margins and a scroll bar.
const PAGE: usize = 1300;
/// The step-number gutter on the left of the ladder.
const GUTTER: usize = 40;
/// Width of one character of the ladder's 11 px monospace font, roughly.
const CHAR_PX: f64 = 6.7;

pub(super) fn html_escape(s: &str) -> String {
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

/// `s` cut to `n` characters, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// `s` in lines of at most `n` characters, broken at spaces where it can.
fn wrap(s: &str, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > n {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
        while cur.chars().count() > n {
            let head: String = cur.chars().take(n).collect();
            cur = cur.chars().skip(n).collect();
            lines.push(head);
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A self-contained HTML page of the messages and notes (see the module documentation).
pub fn html(
    events: &[TraceEvent],
    notes: &[Note],
    name: &dyn Fn(SocketAddr) -> String,
    title: &str,
) -> String {
    let nodes = columns(events, name);
    let col = |n: &str| nodes.iter().position(|x| x == n).unwrap_or(0);
    let n = nodes.len().max(1);
    let dx = ((PAGE - GUTTER - 10) / n).clamp(90, 170);
    let width = GUTTER + dx * n + 10;
    let x_of = |c: usize| GUTTER + dx * c + dx / 2;
    let t0 = events.first().map(|e| e.at).unwrap_or_default();
    let ms = |at: std::time::Duration| at.saturating_sub(t0).as_secs_f64() * 1000.0;

    // The fixed row of node names.
    let mut head = format!(
        "<svg class=\"cols\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"26\" \
         font-family=\"monospace\" font-size=\"11\"><text x=\"4\" y=\"17\" fill=\"#999\">#</text>\n"
    );
    let fit = ((dx as f64 - 6.0) / CHAR_PX) as usize;
    for (i, node) in nodes.iter().enumerate() {
        head.push_str(&format!(
            "<text x=\"{}\" y=\"17\" text-anchor=\"middle\" font-weight=\"bold\"><title>{}</title>{}</text>\n",
            x_of(i),
            html_escape(node),
            html_escape(&cut(node, fit))
        ));
    }
    head.push_str("</svg>");

    // The ladder: rows of arrows and wrapped notes.
    let note_chars = ((width - GUTTER - 10) as f64 / CHAR_PX) as usize;
    let mut rows = String::new();
    let mut y = 18usize;
    let mut k = 0usize;
    for item in merged(events, notes) {
        match item {
            Item::Note(nt) => {
                let text = format!("\u{270e} [{}] {}", name(nt.node), nt.text);
                let lines = wrap(&text, note_chars);
                let base = y + 6;
                rows.push_str(&format!(
                    "<text x=\"{GUTTER}\" y=\"{base}\" fill=\"#666\" font-style=\"italic\">"
                ));
                for (i, l) in lines.iter().enumerate() {
                    rows.push_str(&format!(
                        "<tspan x=\"{GUTTER}\" dy=\"{}\">{}</tspan>",
                        if i == 0 { 0 } else { 13 },
                        html_escape(l)
                    ));
                }
                rows.push_str("</text>\n");
                y = base + 13 * (lines.len() - 1) + 10;
            }
            Item::Msg(e) => {
                k += 1;
                let (a, b) = (col(&name(e.src())), col(&name(e.dst())));
                let (x1, x2) = (x_of(a), x_of(b));
                let colour = match e.protocol {
                    Protocol::SipUdp | Protocol::SipTcp => "#1f5fbf",
                    Protocol::Diameter => "#b8860b",
                    Protocol::Msrp => "#2e8b57",
                    Protocol::Http => "#8b3a8b",
                    Protocol::Smpp => "#b22222",
                };
                let label = label(e);
                let span = if a == b { dx } else { x1.abs_diff(x2) };
                let shown = cut(&label, ((span as f64 - 8.0) / CHAR_PX).max(8.0) as usize);
                let (tx, anchor) = if a == b {
                    (x1 + 6, "start")
                } else {
                    ((x1 + x2) / 2, "middle")
                };
                y += 10;
                rows.push_str(&format!(
                    "<a href=\"#m{k}\"><title>{k}. +{:.1} ms  {}</title>\
                     <text x=\"4\" y=\"{y}\" fill=\"#999\">{k}</text>\
                     <line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"1.5\" marker-end=\"url(#a)\"/>\n\
                     <text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"{colour}\">{}</text></a>\n",
                    ms(e.at),
                    html_escape(&label),
                    y - 4,
                    html_escape(&shown)
                ));
                y += 14;
            }
        }
    }
    let height = y + 10;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">\n\
         <defs><marker id=\"a\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n"
    );
    for i in 0..nodes.len() {
        let x = x_of(i);
        svg.push_str(&format!(
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{height}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n"
        ));
    }
    svg.push_str(&rows);
    svg.push_str("</svg>\n");

    let mut body = String::new();
    for (i, e) in events.iter().enumerate() {
        let k = i + 1;
        body.push_str(&format!(
            "<section id=\"m{k}\"><h3>{k}. +{:.1} ms  {} &rarr; {}  {}</h3><pre>{}</pre></section>\n",
            ms(e.at),
            html_escape(&name(e.src())),
            html_escape(&name(e.dst())),
            html_escape(&label(e)),
            html_escape(&pretty_message(e.protocol, &e.bytes))
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:.5em;max-width:{PAGE}px}}\
         .hdr{{position:sticky;top:0;background:#fff;z-index:2;border-bottom:1px solid #ccc}}\
         pre{{background:#f6f6f6;padding:.5em;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}}\
         h3{{font-size:13px;font-family:monospace;margin:1em 0 .2em;scroll-margin-top:30px}}\
         svg a:hover text{{text-decoration:underline}}</style>\n\
         </head><body><h1>{t}</h1><p>{n} messages, numbered and timed from the first: \
         <span style=\"color:#1f5fbf\">SIP</span>, <span style=\"color:#b8860b\">Diameter</span>, \
         <span style=\"color:#2e8b57\">MSRP</span>, <span style=\"color:#8b3a8b\">HTTP</span>. \
         Click an arrow for the message.</p>\n<div class=\"hdr\">{head}</div>\n{svg}{body}</body></html>\n",
        t = html_escape(title),
        n = events.len()
    )
}
