//! Initial filter criteria evaluation (3GPP TS 23.218 §6, TS 29.228 Annex B and F): which
//! application servers a request visits, in priority order, for a session case.
//!
//! A trigger point in conjunctive normal form is an AND of groups, each group an OR of its
//! SPTs; disjunctive normal form is the reverse. An iFC without a trigger point always matches.
//! An iFC without a SessionCase SPT applies to every session case.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;

use crate::profile::{InitialFilterCriteria, Spt, SptKind};
use crate::sip::{Method, Request};

/// The session case of TS 29.228 (SessionCase values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCase {
    /// 0 ORIGINATING
    Originating = 0,
    /// 1 TERMINATING_REGISTERED
    TerminatingRegistered = 1,
    /// 2 TERMINATING_UNREGISTERED
    TerminatingUnregistered = 2,
    /// 3 ORIGINATING_UNREGISTERED
    OriginatingUnregistered = 3,
}

impl SessionCase {
    /// The token used in logs and in the `sescase` Route parameter.
    pub fn token(&self) -> &'static str {
        match self {
            SessionCase::Originating => "orig",
            SessionCase::TerminatingRegistered => "term",
            SessionCase::TerminatingUnregistered => "term-unreg",
            SessionCase::OriginatingUnregistered => "orig-unreg",
        }
    }
}

/// Compiled regexes, shared: profiles repeat the same few patterns.
fn regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut c = cache.lock().ok()?;
    if c.len() > 4096 {
        c.clear();
    }
    c.entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn spt_matches(spt: &Spt, req: &Request, case: SessionCase) -> bool {
    let hit = match &spt.kind {
        SptKind::Method(m) => {
            let ok = req.method.as_str().eq_ignore_ascii_case(m);
            // RegistrationType narrows a REGISTER trigger (TS 29.228 Annex B.2.2).
            ok && (spt.registration_type.is_empty() || req.method != Method::Register || {
                let expires0 = crate::cscf::is_deregistration(req);
                spt.registration_type.iter().any(|t| match t {
                    2 => expires0,
                    _ => !expires0,
                })
            })
        }
        SptKind::RequestUri(r) => regex(r).is_some_and(|re| re.is_match(&req.uri)),
        SptKind::SipHeader { header, content } => {
            let mut values = req.headers.get_all(header).peekable();
            match content {
                None => values.peek().is_some(),
                Some(c) => match regex(c) {
                    Some(re) => values.any(|v| re.is_match(v)),
                    None => false,
                },
            }
        }
        SptKind::SessionCase(c) => *c == case as u32,
        SptKind::SessionDescription { line, content } => {
            let body = String::from_utf8_lossy(&req.body);
            let prefix = format!("{}=", line.trim());
            let re = content.as_deref().and_then(regex);
            body.lines()
                .filter_map(|l| l.strip_prefix(prefix.as_str()))
                .any(|v| match (&re, content) {
                    (Some(re), _) => re.is_match(v),
                    (None, None) => true,
                    (None, Some(_)) => false,
                })
        }
    };
    hit != spt.condition_negated
}

/// True when `ifc` selects `req` in `case`.
pub fn matches(ifc: &InitialFilterCriteria, req: &Request, case: SessionCase) -> bool {
    let Some(tp) = &ifc.trigger_point else {
        return true;
    };

    let mut groups: Vec<u32> = tp
        .spts
        .iter()
        .flat_map(|s| s.group.iter().copied())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.is_empty() {
        return true;
    }
    let in_group = |g: u32| tp.spts.iter().filter(move |s| s.group.contains(&g));
    if tp.condition_type_cnf {
        groups
            .iter()
            .all(|g| in_group(*g).any(|s| spt_matches(s, req, case)))
    } else {
        groups
            .iter()
            .any(|g| in_group(*g).all(|s| spt_matches(s, req, case)))
    }
}

/// The iFC of a profile in evaluation order (priority, then document order).
pub fn ordered(ifcs: &[InitialFilterCriteria]) -> Vec<InitialFilterCriteria> {
    let mut v: Vec<InitialFilterCriteria> = ifcs.to_vec();
    v.sort_by_key(|i| i.priority);
    v
}

/// The first iFC at or after `from` (in [`ordered`] order) that selects the request.
pub fn next_match(
    ordered: &[InitialFilterCriteria],
    from: usize,
    req: &Request,
    case: SessionCase,
) -> Option<(usize, InitialFilterCriteria)> {
    ordered
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, i)| matches(i, req, case))
        .map(|(n, i)| (n, i.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabConfig;
    use crate::sip::SipMessage;

    fn req(text: &str) -> Request {
        match SipMessage::parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn chat_message() -> Request {
        req("MESSAGE sip:bob@ims.lab SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:alice@ims.lab>;tag=1\nTo: <sip:bob@ims.lab>\nCall-ID: c\nCSeq: 1 MESSAGE\nAccept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg\"\n\n")
    }

    #[test]
    fn default_lab_routes_chat_to_oim_then_tim_and_plain_messages_nowhere() {
        let lab = LabConfig::default_lab();
        let ifcs: Vec<_> = lab
            .default_ifc
            .iter()
            .map(|i| i.to_profile().unwrap())
            .collect();
        let o = ordered(&ifcs);
        let chat = chat_message();
        let (n, oim) = next_match(&o, 0, &chat, SessionCase::Originating).expect("O-IM");
        assert!(oim.application_server.server_name.contains("oim"));
        assert!(
            next_match(&o, n + 1, &chat, SessionCase::Originating).is_none(),
            "only O-IM originating"
        );
        let (_, tim) = next_match(&o, 0, &chat, SessionCase::TerminatingRegistered).expect("T-IM");
        assert!(tim.application_server.server_name.contains("tim"));
        let mut plain = chat.clone();
        plain.headers.remove("Accept-Contact");
        assert!(next_match(&o, 0, &plain, SessionCase::Originating).is_none());
        let reg = req("REGISTER sip:ims.lab SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:alice@ims.lab>;tag=1\nTo: <sip:alice@ims.lab>\nCall-ID: c\nCSeq: 1 REGISTER\n\n");
        let (_, third) =
            next_match(&o, 0, &reg, SessionCase::Originating).expect("3rd-party REGISTER iFC");
        assert!(third.application_server.server_name.contains("tim"));
    }

    /// Group chat: the factory and a group's URI go to CONF on the originating side, before
    /// anything else; the focus's INVITE to a member (Contact `;isfocus`, RFC 4579) skips T-IM
    /// on the terminating side, while a 1-1 chat INVITE (no Contact parameter, or no Contact
    /// at all: a negated header SPT holds when no value matches, TS 29.228 Annex C) still
    /// reaches T-IM.
    #[test]
    fn default_lab_routes_group_chat_to_conf_and_the_focus_invite_past_t_im() {
        let lab = LabConfig::default_lab();
        let ifcs: Vec<_> = lab
            .default_ifc
            .iter()
            .map(|i| i.to_profile().unwrap())
            .collect();
        let o = ordered(&ifcs);
        let invite = |uri: &str, contact: Option<&str>| {
            let contact = contact
                .map(|c| format!("Contact: {c}\n"))
                .unwrap_or_default();
            req(&format!("INVITE {uri} SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:alice@ims.lab>;tag=1\nTo: <{uri}>\nCall-ID: c\nCSeq: 1 INVITE\n{contact}Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"\n\n"))
        };
        let server = |r: &Request, case| {
            next_match(&o, 0, r, case).map(|(_, i)| i.application_server.server_name)
        };
        let conf = Some("sip:conf.ims.lab;transport=tcp".to_string());
        let tim = Some("sip:tim.ims.lab;transport=tcp".to_string());
        let factory = invite(
            "sip:chat-factory@ims.lab",
            Some("<sip:alice@127.0.0.1:5000>"),
        );
        assert_eq!(server(&factory, SessionCase::Originating), conf);
        let mut subscribe = invite("sip:chat-4f2a@ims.lab", None);
        subscribe.method = Method::Subscribe;
        assert_eq!(server(&subscribe, SessionCase::Originating), conf);
        let one_to_one = invite("sip:bob@ims.lab", Some("<sip:alice@127.0.0.1:5000>"));
        assert!(server(&one_to_one, SessionCase::Originating).is_some_and(|s| s.contains("oim")));
        assert_eq!(server(&one_to_one, SessionCase::TerminatingRegistered), tim);
        let no_contact = invite("sip:bob@ims.lab", None);
        assert_eq!(server(&no_contact, SessionCase::TerminatingRegistered), tim);
        let from_focus = invite(
            "sip:bob@ims.lab",
            Some("<sip:chat-4f2a@conf.ims.lab;transport=tcp>;isfocus"),
        );
        assert_eq!(
            server(&from_focus, SessionCase::TerminatingRegistered),
            None,
            "the focus's INVITE goes straight to the member"
        );
        assert_eq!(
            server(&from_focus, SessionCase::TerminatingUnregistered),
            None
        );
    }

    #[test]
    fn cnf_dnf_negation_and_sdp() {
        use crate::profile::{ApplicationServer, TriggerPoint};
        let spt = |g: u32, neg: bool, kind: SptKind| Spt {
            condition_negated: neg,
            group: vec![g],
            kind,
            registration_type: vec![],
        };
        let mut ifc = InitialFilterCriteria {
            priority: 0,
            trigger_point: Some(TriggerPoint {
                condition_type_cnf: false,
                spts: vec![
                    spt(0, false, SptKind::Method("INVITE".into())),
                    spt(
                        0,
                        true,
                        SptKind::SipHeader {
                            header: "Subject".into(),
                            content: Some("secret".into()),
                        },
                    ),
                    spt(
                        1,
                        false,
                        SptKind::SessionDescription {
                            line: "m".into(),
                            content: Some("^audio".into()),
                        },
                    ),
                ],
            }),
            application_server: ApplicationServer::default(),
            profile_part_indicator: None,
        };
        let inv = req("INVITE sip:bob@ims.lab SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:bob@ims.lab>\nCall-ID: c\nCSeq: 1 INVITE\nSubject: hello\nContent-Length: 22\n\nv=0\nm=audio 4000 RTP\n");
        assert!(
            matches(&ifc, &inv, SessionCase::Originating),
            "DNF: group 0 holds"
        );
        let mut secret = inv.clone();
        secret.headers.set("Subject", "top secret");
        assert!(
            matches(&ifc, &secret, SessionCase::Originating),
            "group 1 (SDP audio) still holds"
        );
        ifc.trigger_point.as_mut().unwrap().condition_type_cnf = true;
        assert!(matches(&ifc, &inv, SessionCase::Originating));
        assert!(
            matches(&ifc, &secret, SessionCase::Originating),
            "CNF: INVITE alone satisfies group 0 (an OR)"
        );
        let mut video = inv.clone();
        video.body = bytes::Bytes::from_static(b"v=0\r\nm=video 4000 RTP\r\n");
        assert!(
            !matches(&ifc, &video, SessionCase::Originating),
            "CNF: no m=audio fails group 1"
        );
        ifc.trigger_point.as_mut().unwrap().condition_type_cnf = false;
        let mut msg = video.clone();
        msg.method = Method::Message;
        msg.headers.set("Subject", "secret");
        assert!(
            !matches(&ifc, &msg, SessionCase::Originating),
            "DNF: no group holds"
        );
    }
}
