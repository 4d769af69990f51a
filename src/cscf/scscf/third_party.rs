//! Third-party REGISTER (TS 24.229 §5.4.1.7, TS 23.218 §6.7): after a registration changes
//! (registered, refreshed, de-registered, expired, terminated by the HSS) the S-CSCF tells
//! each AS whose iFC matches REGISTER, with a REGISTER of its own: From the S-CSCF, To the
//! user's public identity, Contact the S-CSCF, Expires what the user was granted (0 when it
//! is gone). Socket-free: which ASes, and the request; the driver resolves and sends.
//!
//! An AS whose iFC has `<IncludeRegisterRequest/>` or `<IncludeRegisterResponse/>` (TS 29.228
//! Annex B) gets the user's REGISTER, the S-CSCF's 200 OK to it, or both, as `message/sip`
//! bodies (both: `multipart/mixed`, TS 24.229 §5.4.1.7 steps 7–8): the IP-SM-GW reads the
//! Contact's `+g.3gpp.smsip` in one and the user's tel URI (P-Associated-URI) in the other.

use crate::cscf::ifc::{self, SessionCase};
use crate::profile::{ApplicationServer, InitialFilterCriteria};
use crate::sip::{Method, Request, Response};

/// The ASes (in iFC order) owed a third-party REGISTER: those whose iFC matches a REGISTER
/// to the home `domain` with `expires` (TS 24.229 §5.4.1.7: the iFC are evaluated for the
/// originating case, the Expires value may be part of the trigger).
pub fn targets(
    ordered: &[InitialFilterCriteria],
    domain: &str,
    expires: u32,
) -> Vec<ApplicationServer> {
    let mut probe = Request::new(Method::Register, format!("sip:{domain}"));
    probe.headers.push("Expires", expires.to_string());
    let mut out = Vec::new();
    let mut idx = 0;
    while let Some((n, ifc)) = ifc::next_match(ordered, idx, &probe, SessionCase::Originating) {
        idx = n + 1;
        out.push(ifc.application_server.clone());
    }
    out
}

/// The body the AS `server` asked for (content type, bytes): the user's `register` and our
/// `ok` to it as `message/sip`, one or both; None when it asked for neither or there is no
/// REGISTER behind this change (an expiry, a de-registration by the HSS).
pub fn body(
    server: &ApplicationServer,
    register: Option<(&Request, &Response)>,
) -> Option<(String, Vec<u8>)> {
    let (req, ok) = register?;
    let mut parts = Vec::new();
    if server.include_register_request {
        parts.push(crate::sip::multipart::Part::new(
            "message/sip",
            req.to_bytes(),
        ));
    }
    if server.include_register_response {
        parts.push(crate::sip::multipart::Part::new(
            "message/sip",
            ok.to_bytes(),
        ));
    }
    match parts.len() {
        0 => None,
        1 => Some(("message/sip".into(), parts.remove(0).body.to_vec())),
        _ => {
            let (ct, b) = crate::sip::multipart::build("3pty-register", &parts);
            Some((ct, b))
        }
    }
}

/// Fresh identifiers for one third-party REGISTER (random in the driver, fixed in tests).
#[derive(Debug, Clone)]
pub struct Ids {
    /// Our Via (with its branch) for the transport used.
    pub via: String,
    /// The From tag.
    pub tag: String,
    /// The Call-ID.
    pub call_id: String,
}

/// The third-party REGISTER to `server` for `impu` (TS 24.229 §5.4.1.7 steps 1–6): `me` is
/// the S-CSCF's own URI (From and Contact).
pub fn register_request(server: &str, me: &str, impu: &str, expires: u32, ids: Ids) -> Request {
    let mut r = Request::new(Method::Register, server.to_string());
    r.headers.push("Via", ids.via);
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", format!("<{me}>;tag={}", ids.tag));
    r.headers.push("To", format!("<{impu}>"));
    r.headers.push("Call-ID", ids.call_id);
    r.headers.push("CSeq", "1 REGISTER");
    r.headers.push("Contact", format!("<{me}>"));
    r.headers.push("Expires", expires.to_string());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            via: "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKtp1".into(),
            tag: "t1".into(),
            call_id: "c1@127.0.0.1".into(),
        }
    }

    #[test]
    fn the_request_names_the_user_and_the_scscf_with_the_granted_expiry() {
        let r = register_request(
            "sip:127.0.0.1:5091",
            "sip:127.0.0.1:5080",
            "sip:alice@ims.lab",
            600,
            ids(),
        );
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.uri.to_string(), "sip:127.0.0.1:5091");
        let h = |n| r.headers.get(n).map(str::to_string);
        assert_eq!(
            h("Via").as_deref(),
            Some("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKtp1")
        );
        assert_eq!(h("Max-Forwards").as_deref(), Some("70"));
        assert_eq!(h("From").as_deref(), Some("<sip:127.0.0.1:5080>;tag=t1"));
        assert_eq!(h("To").as_deref(), Some("<sip:alice@ims.lab>"));
        assert_eq!(h("Call-ID").as_deref(), Some("c1@127.0.0.1"));
        assert_eq!(h("CSeq").as_deref(), Some("1 REGISTER"));
        assert_eq!(h("Contact").as_deref(), Some("<sip:127.0.0.1:5080>"));
        assert_eq!(h("Expires").as_deref(), Some("600"));
        // The order of the headers on the wire.
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "Via",
                "Max-Forwards",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Contact",
                "Expires"
            ]
        );
        let gone = register_request("sip:as", "sip:me", "sip:alice@ims.lab", 0, ids());
        assert_eq!(gone.headers.get("Expires"), Some("0"));
    }

    #[test]
    fn only_ases_whose_ifc_matches_register_are_targets() {
        let xml = r#"<?xml version="1.0"?>
<IMSSubscription><PrivateID>alice@ims.lab</PrivateID>
<ServiceProfile><PublicIdentity><Identity>sip:alice@ims.lab</Identity></PublicIdentity>
<InitialFilterCriteria><Priority>2</Priority><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>
<SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>REGISTER</Method></SPT></TriggerPoint>
<ApplicationServer><ServerName>sip:127.0.0.1:5091</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>
<InitialFilterCriteria><Priority>1</Priority><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>
<SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>MESSAGE</Method></SPT></TriggerPoint>
<ApplicationServer><ServerName>sip:127.0.0.1:5090</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>
</ServiceProfile></IMSSubscription>"#;
        let p = crate::profile::ImsSubscription::parse(xml).unwrap();
        let ordered = super::super::ifc_chain::ordered_ifcs(&p);
        assert_eq!(ordered.len(), 2);
        let names = |e| {
            targets(&ordered, "ims.lab", e)
                .into_iter()
                .map(|a| a.server_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(600), vec!["sip:127.0.0.1:5091"]);
        assert_eq!(names(0), vec!["sip:127.0.0.1:5091"]);
        assert!(targets(&[], "ims.lab", 600).is_empty());
    }

    #[test]
    fn an_as_that_asks_gets_the_register_and_the_ok_as_message_sip() {
        let mut reg = Request::new(Method::Register, "sip:ims.lab");
        reg.headers
            .push("Contact", "<sip:alice@127.0.0.1:5000>;+g.3gpp.smsip");
        let mut ok = reg.response(200, Some("OK"));
        ok.headers
            .push("P-Associated-URI", "<sip:alice@ims.lab>, <tel:+15550001>");
        let mut asrv = ApplicationServer {
            server_name: "sip:smsc.ims.lab".into(),
            ..Default::default()
        };
        assert_eq!(body(&asrv, Some((&reg, &ok))), None);
        asrv.include_register_request = true;
        let (ct, b) = body(&asrv, Some((&reg, &ok))).unwrap();
        assert_eq!(ct, "message/sip");
        assert_eq!(b, reg.to_bytes());
        assert_eq!(body(&asrv, None), None);
        asrv.include_register_response = true;
        let (ct, b) = body(&asrv, Some((&reg, &ok))).unwrap();
        let parts = crate::sip::multipart::parse(&ct, &b).unwrap();
        assert!(ct.starts_with("multipart/mixed"));
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0].body[..], &reg.to_bytes()[..]);
        assert_eq!(&parts[1].body[..], &ok.to_bytes()[..]);
    }
}
