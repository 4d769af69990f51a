//! Applies a [`TraceFilter`] to a recording (`rcslab trace export --call-id/--user/--since`,
//! `GET /trace?call_id=&user=&since=`): it reads Call-ID, From, To, P-Asserted-Identity and
//! the Request-URI of SIP messages (RFC 3261 §8.1.1), User-Name and Public-Identity of Cx
//! requests (TS 29.229 §6.3.2) and `a=path` / To-Path / From-Path of MSRP (RFC 4975 §8.1, §9).
//! The rules are on [`crate::trace::filter`].

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::diameter::codec::{Avp, Message, AVP_USER_NAME};
use crate::diameter::cx::{AVP_PUBLIC_IDENTITY, VENDOR_3GPP};
use crate::sip::{NameAddr, SipMessage};
pub use crate::trace::filter::TraceFilter;
use crate::trace::{Note, Protocol, TraceEvent};

/// The messages and notes `filter` keeps, in order. `name` names addresses as the export
/// does.
pub fn apply(
    filter: &TraceFilter,
    events: Vec<TraceEvent>,
    notes: Vec<Note>,
    name: &dyn Fn(SocketAddr) -> String,
) -> (Vec<TraceEvent>, Vec<Note>) {
    if filter.is_empty() {
        return (events, notes);
    }
    let mut keep: Vec<bool> = events
        .iter()
        .map(|e| {
            filter.since.is_none_or(|s| e.at >= s) && !(filter.ladder_only && not_in_ladders(e))
        })
        .collect();
    if filter.call_id.is_some() || filter.user.is_some() {
        let mut sessions: HashSet<String> = HashSet::new();
        let mut diameter_ids: HashSet<(u32, u32)> = HashSet::new();
        let mut about: Vec<bool> = vec![false; events.len()];
        for (i, e) in events.iter().enumerate() {
            let hit = match e.protocol {
                Protocol::SipUdp | Protocol::SipTcp => sip_matches(filter, &e.bytes),
                Protocol::Diameter => match Message::decode(&e.bytes) {
                    Ok(m) if m.is_request() => {
                        let hit = filter
                            .user
                            .as_deref()
                            .is_some_and(|u| diameter_about(&m, u));
                        if hit {
                            diameter_ids.insert((m.hop_by_hop, m.end_to_end));
                        }
                        hit
                    }
                    Ok(m) => diameter_ids.contains(&(m.hop_by_hop, m.end_to_end)),
                    Err(_) => false,
                },
                _ => false,
            };
            if hit && matches!(e.protocol, Protocol::SipUdp | Protocol::SipTcp) {
                sessions.extend(msrp_sessions(&e.bytes, "a=path:"));
            }
            about[i] = hit;
        }
        for (i, e) in events.iter().enumerate() {
            if about[i] {
                continue;
            }
            about[i] = match e.protocol {
                Protocol::Msrp => {
                    let mut ids = msrp_sessions(&e.bytes, "To-Path:");
                    ids.extend(msrp_sessions(&e.bytes, "From-Path:"));
                    ids.iter().any(|s| sessions.contains(s))
                }
                _ => false,
            } || filter.user.as_deref().is_some_and(|u| {
                let owned = [format!("UE {u}"), format!("Web {u}")];
                owned.contains(&name(e.src())) || owned.contains(&name(e.dst()))
            });
        }
        for (k, a) in keep.iter_mut().zip(about) {
            *k = *k && a;
        }
    }
    let kept: Vec<TraceEvent> = events
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect();
    let span = match (kept.first(), kept.last()) {
        (Some(a), Some(b)) => Some((a.at, b.at)),
        _ => None,
    };
    let notes = notes
        .into_iter()
        .filter(|n| {
            if filter.call_id.is_some() || filter.user.is_some() {
                span.is_some_and(|(a, b)| n.at >= a && n.at <= b)
            } else {
                filter.since.is_none_or(|s| n.at >= s)
            }
        })
        .collect();
    (kept, notes)
}

fn sip_matches(filter: &TraceFilter, bytes: &[u8]) -> bool {
    let Ok(msg) = SipMessage::parse(bytes) else {
        return false;
    };
    let headers = match &msg {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    };
    if let Some(c) = &filter.call_id {
        if headers.get("Call-ID").map(str::trim) != Some(c.as_str()) {
            return false;
        }
    }
    let Some(u) = &filter.user else {
        return true;
    };
    let mut uris: Vec<String> = ["From", "To", "P-Asserted-Identity"]
        .iter()
        .flat_map(|h| headers.values(h))
        .filter_map(|v| NameAddr::parse(v).ok().map(|na| na.uri.aor()))
        .collect();
    if let SipMessage::Request(r) = &msg {
        if let Ok(uri) = crate::sip::Uri::parse(&r.uri) {
            uris.push(uri.aor());
        }
    }
    uris.iter().any(|a| names_user(a, u))
}

/// True when `uri` (`sip:alice@ims.lab`, `tel:+1555`) is `user`: the whole URI, or its user
/// part.
pub fn names_user(uri: &str, user: &str) -> bool {
    if uri == user {
        return true;
    }
    let rest = uri.split_once(':').map(|(_, r)| r).unwrap_or(uri);
    rest == user || rest.split('@').next() == Some(user)
}

fn diameter_about(m: &Message, user: &str) -> bool {
    let text = |a: &Avp| a.as_str().ok().map(str::to_string);
    m.avps_of(AVP_USER_NAME, None)
        .chain(m.avps_of(AVP_PUBLIC_IDENTITY, Some(VENDOR_3GPP)))
        .filter_map(text)
        .any(|v| names_user(&v, user) || v.split('@').next() == Some(user))
}

/// The session ids of the `msrp://` URIs on lines starting with `prefix` (RFC 4975 §9: the
/// session-id is the URI's path, before `;tcp`).
fn msrp_sessions(bytes: &[u8], prefix: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(prefix))
        .flat_map(|v| v.split_whitespace())
        .filter_map(|u| {
            let rest = u
                .strip_prefix("msrp://")
                .or_else(|| u.strip_prefix("msrps://"))?;
            let (_, path) = rest.split_once('/')?;
            let id = path.split(';').next()?;
            (!id.is_empty()).then(|| id.to_string())
        })
        .collect()
}

/// Watchdogs (Diameter's, SMPP's enquire_link), capability exchanges and hop-by-hop
/// `100 Trying`: no ladder shows them.
fn not_in_ladders(e: &TraceEvent) -> bool {
    matches!(e.summary.as_str(), "DWR" | "DWA" | "CER" | "CEA")
        || (e.protocol == Protocol::Smpp && e.summary.starts_with("enquire_link"))
        || (matches!(e.protocol, Protocol::SipUdp | Protocol::SipTcp)
            && e.summary.starts_with("SIP/2.0 100 "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Direction, Trace};
    use std::time::Duration;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn sip(t: &Trace, from: u16, to: u16, text: &str) {
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

    fn msg(method: &str, from: &str, to: &str, call: &str, body: &str) -> String {
        format!(
            "{method} sip:{to}@ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{call}\r\n\
             From: <sip:{from}@ims.lab>;tag=1\r\nTo: <sip:{to}@ims.lab>\r\nCall-ID: {call}\r\n\
             CSeq: 1 {method}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn sample() -> Trace {
        let t = Trace::enabled();
        let sdp = "v=0\r\na=path:msrp://127.0.0.1:7000/s1;tcp\r\n";
        sip(&t, 1, 5060, &msg("INVITE", "alice", "bob", "c1", sdp));
        sip(
            &t,
            5060,
            1,
            "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKc1\r\n\
             From: <sip:alice@ims.lab>;tag=1\r\nTo: <sip:bob@ims.lab>\r\nCall-ID: c1\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        sip(&t, 2, 5060, &msg("MESSAGE", "carol", "dave", "c2", ""));
        t.record(
            Direction::Sent,
            Protocol::Msrp,
            at(7001),
            at(2855),
            b"MSRP t1 SEND\r\nTo-Path: msrp://127.0.0.1:2855/x;tcp msrp://127.0.0.1:7000/s1;tcp\r\nFrom-Path: msrp://127.0.0.1:7001/y;tcp\r\n-------t1$\r\n",
            || "MSRP t1 SEND".into(),
        );
        let mut lir = Message::request(302, crate::diameter::cx::APP_ID_CX);
        lir.hop_by_hop = 7;
        lir.end_to_end = 8;
        lir.push(Avp::utf8(
            AVP_PUBLIC_IDENTITY,
            Some(VENDOR_3GPP),
            true,
            "sip:bob@ims.lab",
        ));
        t.record(
            Direction::Sent,
            Protocol::Diameter,
            at(5070),
            at(3868),
            &lir.encode(),
            || "LIR".into(),
        );
        let lia = Message::answer_to(&lir);
        t.record(
            Direction::Sent,
            Protocol::Diameter,
            at(3868),
            at(5070),
            &lia.encode(),
            || "LIA".into(),
        );
        t
    }

    fn kept(f: &TraceFilter, t: &Trace) -> Vec<String> {
        let name = |a: SocketAddr| a.to_string();
        apply(f, t.events(), t.notes(), &name)
            .0
            .into_iter()
            .map(|e| e.summary)
            .collect()
    }

    #[test]
    fn call_id_keeps_the_dialog_and_the_msrp_of_its_sdp() {
        let t = sample();
        let f = TraceFilter {
            call_id: Some("c1".into()),
            ..Default::default()
        };
        assert_eq!(
            kept(&f, &t),
            [
                "INVITE sip:bob@ims.lab SIP/2.0",
                "SIP/2.0 100 Trying",
                "MSRP t1 SEND"
            ]
        );
    }

    #[test]
    fn user_keeps_sip_naming_them_and_diameter_about_them_with_its_answers() {
        let t = sample();
        let f = TraceFilter {
            user: Some("bob".into()),
            ladder_only: true,
            ..Default::default()
        };
        assert_eq!(
            kept(&f, &t),
            [
                "INVITE sip:bob@ims.lab SIP/2.0",
                "MSRP t1 SEND",
                "LIR",
                "LIA"
            ],
            "the 100 Trying is not in ladders"
        );
        let f = TraceFilter {
            user: Some("sip:carol@ims.lab".into()),
            ..Default::default()
        };
        assert_eq!(kept(&f, &t), ["MESSAGE sip:dave@ims.lab SIP/2.0"]);
        // Addresses named after the user count too.
        let name = |a: SocketAddr| {
            if a.port() == 2 {
                "UE erin".to_string()
            } else {
                a.to_string()
            }
        };
        let f = TraceFilter {
            user: Some("erin".into()),
            ..Default::default()
        };
        assert_eq!(apply(&f, t.events(), vec![], &name).0.len(), 1);
    }

    #[test]
    fn query_parameters_make_a_filter() {
        let now = Duration::from_secs(100);
        let f =
            TraceFilter::from_params(Some("c1".into()), Some("".into()), Some("30"), now).unwrap();
        assert_eq!(f.call_id.as_deref(), Some("c1"));
        assert_eq!(f.user, None, "an empty user filters nothing");
        assert_eq!(f.since, Some(Duration::from_secs(70)));
        let all = TraceFilter::from_params(None, None, Some("1e12"), now).unwrap();
        assert_eq!(all.since, Some(Duration::ZERO));
        assert!(TraceFilter::from_params(None, None, Some("-1"), now).is_err());
        assert_eq!(
            TraceFilter::from_params(None, None, Some("soon"), now)
                .unwrap_err()
                .to_string(),
            "since=soon: a number of seconds",
            "the detail of the HTTP 400"
        );
        assert!(TraceFilter::from_params(None, None, None, now)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn since_keeps_the_recent_messages_and_notes() {
        let t = sample();
        let cut = t.events()[3].at;
        t.note(at(5070), || "late".into());
        let f = TraceFilter {
            since: Some(cut),
            ..Default::default()
        };
        let name = |a: SocketAddr| a.to_string();
        let (ev, notes) = apply(&f, t.events(), t.notes(), &name);
        assert_eq!(ev.len(), 3);
        assert_eq!(notes.len(), 1);
        assert!(TraceFilter::default().is_empty());
        assert!(names_user("tel:+15550001", "+15550001"));
    }
}
