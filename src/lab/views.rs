//! The paper's view of a ladder (seed 000 draws UE1, O-CSCF, O-IM, T-CSCF, T-IM, UE2): the CSCFs
//! of the sender's side fold into `O-CSCF` (P-CSCF + S-CSCF for UE1), those of the receiver's
//! side into `T-CSCF` (I-CSCF + S-CSCF + P-CSCF for UE2), hops inside one of them and the HSS
//! disappear, so the output lies next to the paper's figures.
//!
//! rcslab's lab has one P-CSCF and one S-CSCF serving everyone, so which side a message is on
//! comes from the message: a request between a CSCF and a UE belongs to that UE's side; between
//! the P-CSCF and the S-CSCF to the user on the P-CSCF's side (From going up, To going down);
//! at the S-CSCF, O-IM is the originating user's AS and T-IM the terminating one's; S-CSCF ->
//! I-CSCF is the hand-over from the originating to the terminating side. A response takes its
//! request's sides, reversed (matched by the top Via's branch).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::lab::LadderLine;
use crate::sip::{NameAddr, SipMessage};
use crate::trace::{Protocol, Trace};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SideOf {
    O,
    T,
}

fn cscf(name: &str) -> bool {
    matches!(name, "P-CSCF" | "I-CSCF" | "S-CSCF")
}

fn label(s: SideOf) -> &'static str {
    match s {
        SideOf::O => "O-CSCF",
        SideOf::T => "T-CSCF",
    }
}

fn aor(h: Option<&str>) -> Option<String> {
    h.and_then(|v| NameAddr::parse(v).ok())
        .map(|na| na.uri.aor())
}

/// How CSCFs are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The paper's: O-CSCF / T-CSCF, hops inside one of them and the HSS left out.
    Paper,
    /// Every node, each CSCF with the side it acts for (`S-CSCF orig`, `P-CSCF term`).
    Roles,
}

/// Every message once, in order, with its recorder time (see [`super::ladder_of`]). An
/// address with a name of its own keeps it (a node's Diameter connection); others go through
/// the trace's aliases (outgoing TCP connections), which can be stale once an ephemeral port
/// was reused.
pub fn timed_ladder_of(
    trace: &Trace,
    name: impl Fn(SocketAddr) -> String,
) -> Vec<(std::time::Duration, LadderLine)> {
    let named = |a: SocketAddr, at: std::time::Duration| {
        let own = name(a);
        if own != a.to_string() {
            own
        } else {
            name(trace.resolve_at(a, at))
        }
    };
    crate::trace_view::export::wire_events(trace)
        .iter()
        .map(|e| {
            (
                e.at,
                LadderLine {
                    from: named(e.src(), e.at),
                    to: named(e.dst(), e.at),
                    protocol: e.protocol.label().to_string(),
                    summary: e.summary.clone(),
                },
            )
        })
        .collect()
}

/// The ladder in the paper's terms. `name` names a socket address as [`super::ladder_of`] does.
pub fn paper_ladder_of(trace: &Trace, name: impl Fn(SocketAddr) -> String) -> Vec<LadderLine> {
    ladder_view(trace, name, View::Paper)
}

/// The ladder in a [`View`].
pub fn ladder_view(
    trace: &Trace,
    name: impl Fn(SocketAddr) -> String,
    view: View,
) -> Vec<LadderLine> {
    timed_ladder_view(trace, name, view)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// [`ladder_view`] with each line's time (to interleave the nodes' notes).
pub fn timed_ladder_view(
    trace: &Trace,
    name: impl Fn(SocketAddr) -> String,
    view: View,
) -> Vec<(std::time::Duration, LadderLine)> {
    let named = |a: SocketAddr, at: std::time::Duration| {
        let own = name(a);
        if own != a.to_string() {
            own
        } else {
            name(trace.resolve_at(a, at))
        }
    };
    let events = crate::trace_view::export::wire_events(trace);
    // UE1: whoever sent the first chat INVITE (else the first INVITE or MESSAGE).
    let mut ue1: Option<String> = None;
    let mut ue_aor: HashMap<String, String> = HashMap::new();
    for e in &events {
        if !matches!(e.protocol, Protocol::SipUdp | Protocol::SipTcp) {
            continue;
        }
        let Ok(SipMessage::Request(r)) = SipMessage::parse(&e.bytes) else {
            continue;
        };
        let from = named(e.src(), e.at);
        if !cscf(&from) {
            if let Some(a) = aor(r.headers.get("From")) {
                ue_aor.entry(from.clone()).or_insert(a.clone());
                if ue1.is_none()
                    && matches!(
                        r.method,
                        crate::sip::Method::Invite | crate::sip::Method::Message
                    )
                    && !from.ends_with("-IM")
                {
                    ue1 = Some(a);
                }
            }
        }
    }
    let side_of_user = |a: &str| -> SideOf {
        if ue1.as_deref() == Some(a) || ue1.is_none() {
            SideOf::O
        } else {
            SideOf::T
        }
    };
    // Request sides by (top Via branch), for their responses.
    let mut by_branch: HashMap<String, (SideOf, SideOf)> = HashMap::new();
    // Branches of requests without a session case (registration), for their responses.
    let mut no_case: std::collections::HashSet<String> = Default::default();
    let mut out = Vec::new();
    for e in &events {
        let (from, to) = (named(e.src(), e.at), named(e.dst(), e.at));
        if matches!(e.protocol, Protocol::Diameter) {
            if view == View::Roles {
                out.push((
                    e.at,
                    LadderLine {
                        from,
                        to,
                        protocol: e.protocol.label().to_string(),
                        summary: e.summary.clone(),
                    },
                ));
            }
            continue;
        }
        if !matches!(e.protocol, Protocol::SipUdp | Protocol::SipTcp)
            || (!cscf(&from) && !cscf(&to))
        {
            out.push((
                e.at,
                LadderLine {
                    from,
                    to,
                    protocol: e.protocol.label().to_string(),
                    summary: e.summary.clone(),
                },
            ));
            continue;
        }
        let Ok(msg) = SipMessage::parse(&e.bytes) else {
            continue;
        };
        let top_branch = |h: &crate::sip::Headers| {
            h.first_value("Via")
                .and_then(|v| crate::sip::Via::parse(v).ok())
                .and_then(|v| v.branch().map(str::to_string))
        };
        // TS 24.229 §5.4.1 vs §5.4.3: registration (REGISTER, the third-party REGISTER, the
        // reg-event SUBSCRIBE and NOTIFY) has no session case; only other requests are
        // originating or terminating, so the roles view labels only those.
        let caseless = match &msg {
            SipMessage::Request(r) => {
                let c = registration(r);
                if let (true, Some(b)) = (c, top_branch(&r.headers)) {
                    no_case.insert(b);
                }
                c
            }
            SipMessage::Response(r) => top_branch(&r.headers).is_some_and(|b| no_case.contains(&b)),
        };
        let (sf, st) = match &msg {
            SipMessage::Request(r) => {
                let user_side = |ue: &str, header: &str| {
                    ue_aor
                        .get(ue)
                        .map(|a| side_of_user(a))
                        .or_else(|| aor(r.headers.get(header)).map(|a| side_of_user(&a)))
                        .unwrap_or(SideOf::O)
                };
                let sescase = r
                    .headers
                    .get("P-Served-User")
                    .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("sescase=")))
                    .map(|c| if c == "orig" { SideOf::O } else { SideOf::T });
                // The roles view uses the 3GPP session case (TS 24.229): a UE's request is
                // originating at its P-CSCF and S-CSCF, terminating towards the callee, and an
                // AS serves the case P-Served-User names. The paper's view uses the chat's sides.
                let roles = match (from.as_str(), to.as_str()) {
                    _ if view == View::Paper => None,
                    ("P-CSCF", "S-CSCF") | ("P-CSCF", "I-CSCF") => Some((SideOf::O, SideOf::O)),
                    ("S-CSCF", "P-CSCF") | ("I-CSCF", "P-CSCF") => Some((SideOf::T, SideOf::T)),
                    ("S-CSCF", a) | (a, "S-CSCF") if a.ends_with("-IM") => sescase.map(|c| (c, c)),
                    (f, t) if !cscf(f) && cscf(t) && !f.ends_with("-IM") => {
                        Some((SideOf::O, SideOf::O))
                    }
                    (f, t) if cscf(f) && !cscf(t) && !t.ends_with("-IM") => {
                        Some((SideOf::T, SideOf::T))
                    }
                    _ => None,
                };
                let s = if let Some(r) = roles {
                    r
                } else {
                    match (from.as_str(), to.as_str()) {
                        ("P-CSCF", "S-CSCF") | ("P-CSCF", "I-CSCF") => {
                            let s = aor(r.headers.get("From"))
                                .map(|a| side_of_user(&a))
                                .unwrap_or(SideOf::O);
                            (s, s)
                        }
                        ("S-CSCF", "P-CSCF") => {
                            let s = aor(r.headers.get("To"))
                                .map(|a| side_of_user(&a))
                                .unwrap_or(SideOf::T);
                            (s, s)
                        }
                        ("S-CSCF", "I-CSCF") => (SideOf::O, SideOf::T),
                        ("I-CSCF", "S-CSCF") | ("I-CSCF", "P-CSCF") => (SideOf::T, SideOf::T),
                        ("S-CSCF", "O-IM") => (SideOf::O, SideOf::O),
                        ("O-IM", "S-CSCF") => (SideOf::O, SideOf::O),
                        ("S-CSCF", "T-IM") | ("T-IM", "S-CSCF") | ("T-IM", "P-CSCF") => {
                            (SideOf::T, SideOf::T)
                        }
                        (f, _) if !cscf(f) => {
                            let s = user_side(f, "From");
                            (s, s)
                        }
                        (_, t) => {
                            let s = user_side(t, "To");
                            (s, s)
                        }
                    }
                };
                if let Some(b) = r
                    .headers
                    .first_value("Via")
                    .and_then(|v| crate::sip::Via::parse(v).ok())
                    .and_then(|v| v.branch().map(str::to_string))
                {
                    by_branch.insert(b, s);
                }
                s
            }
            SipMessage::Response(r) => {
                let b = r
                    .headers
                    .first_value("Via")
                    .and_then(|v| crate::sip::Via::parse(v).ok())
                    .and_then(|v| v.branch().map(str::to_string))
                    .unwrap_or_default();
                match by_branch.get(&b) {
                    Some(&(a, b)) => (b, a),
                    None => (SideOf::O, SideOf::O),
                }
            }
        };
        let role = |n: String, s: SideOf| match view {
            View::Paper => label(s).to_string(),
            View::Roles => format!(
                "{n} {}",
                match s {
                    SideOf::O => "orig",
                    SideOf::T => "term",
                }
            ),
        };
        let plain = view == View::Roles && caseless;
        let f = if cscf(&from) && !plain {
            role(from, sf)
        } else {
            from
        };
        let t = if cscf(&to) && !plain {
            role(to, st)
        } else {
            to
        };
        if f == t {
            continue;
        }
        out.push((
            e.at,
            LadderLine {
                from: f,
                to: t,
                protocol: e.protocol.label().to_string(),
                summary: e.summary.clone(),
            },
        ));
    }
    out
}

/// A registration request: REGISTER (also the S-CSCF's third-party REGISTER to an AS,
/// TS 24.229 §5.4.1.7) or the reg event package's SUBSCRIBE / NOTIFY (RFC 3680).
fn registration(r: &crate::sip::Request) -> bool {
    match r.method {
        crate::sip::Method::Register => true,
        crate::sip::Method::Subscribe | crate::sip::Method::Notify => r
            .headers
            .get("Event")
            .is_some_and(|e| e.split(';').next().is_some_and(|p| p.trim() == "reg")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Direction;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn name(a: SocketAddr) -> String {
        match a.port() {
            5060 => "P-CSCF",
            5070 => "I-CSCF",
            5080 => "S-CSCF",
            1 => "UE alice",
            _ => "?",
        }
        .to_string()
    }

    fn req(method: &str, branch: &str, extra: &str) -> String {
        format!(
            "{method} sip:bob@ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{branch}\r\n\
             From: <sip:alice@ims.lab>;tag=1\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: {branch}\r\n\
             CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn ok(method: &str, branch: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{branch}\r\n\
             From: <sip:alice@ims.lab>;tag=1\r\nTo: <sip:bob@ims.lab>;tag=2\r\nCall-ID: {branch}\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn send(t: &Trace, from: u16, to: u16, text: &str) {
        let first = crate::trace::first_line(text.as_bytes());
        t.record(
            Direction::Sent,
            Protocol::SipUdp,
            at(from),
            at(to),
            text.as_bytes(),
            || first,
        );
    }

    #[test]
    fn the_roles_view_gives_registration_no_session_case() {
        let t = Trace::enabled();
        send(&t, 1, 5060, &req("REGISTER", "r1", ""));
        send(&t, 5060, 5070, &req("REGISTER", "r1", ""));
        send(&t, 5070, 5060, &ok("REGISTER", "r1"));
        send(&t, 5060, 5080, &req("SUBSCRIBE", "s1", "Event: reg\r\n"));
        send(&t, 5080, 5060, &ok("SUBSCRIBE", "s1"));
        send(&t, 1, 5060, &req("MESSAGE", "m1", ""));
        send(&t, 5060, 5080, &req("MESSAGE", "m1", ""));
        send(&t, 5080, 5060, &ok("MESSAGE", "m1"));
        let lines: Vec<String> = ladder_view(&t, name, View::Roles)
            .iter()
            .map(|l| format!("{} -> {} {}", l.from, l.to, l.summary))
            .collect();
        assert_eq!(
            lines,
            [
                "UE alice -> P-CSCF REGISTER sip:bob@ims.lab SIP/2.0",
                "P-CSCF -> I-CSCF REGISTER sip:bob@ims.lab SIP/2.0",
                "I-CSCF -> P-CSCF SIP/2.0 200 OK",
                "P-CSCF -> S-CSCF SUBSCRIBE sip:bob@ims.lab SIP/2.0",
                "S-CSCF -> P-CSCF SIP/2.0 200 OK",
                "UE alice -> P-CSCF orig MESSAGE sip:bob@ims.lab SIP/2.0",
                "P-CSCF orig -> S-CSCF orig MESSAGE sip:bob@ims.lab SIP/2.0",
                "S-CSCF orig -> P-CSCF orig SIP/2.0 200 OK",
            ]
        );
    }
}
