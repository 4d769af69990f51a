//! SIP messages carried as `message/sip` bodies (RFC 3261 §7.4, §27.5): what an AS reads
//! from a third-party REGISTER whose iFC asked for `IncludeRegisterRequest` /
//! `IncludeRegisterResponse` (TS 29.228 Annex B, TS 24.229 §5.4.1.7 steps 7–8) — the user's
//! REGISTER, the S-CSCF's 200 OK to it, one as the body or both in `multipart/mixed`. Pure.

use super::{NameAddr, Request, SipMessage};

/// The SIP messages `req` carries as `message/sip` (the body itself, or parts of a
/// multipart body); parts that do not parse are left out (logged at debug).
pub fn messages(req: &Request) -> Vec<SipMessage> {
    let ct = req
        .headers
        .get("Content-Type")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut raw: Vec<bytes::Bytes> = Vec::new();
    if ct.starts_with("message/sip") {
        raw.push(req.body.clone());
    } else if ct.starts_with("multipart/") {
        let full = req.headers.get("Content-Type").unwrap_or("");
        if let Ok(parts) = super::multipart::parse(full, &req.body) {
            raw.extend(
                parts
                    .into_iter()
                    .filter(|p| {
                        p.content_type
                            .to_ascii_lowercase()
                            .starts_with("message/sip")
                    })
                    .map(|p| p.body),
            );
        }
    }
    raw.iter()
        .filter_map(|b| match SipMessage::parse(b) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(error = %e, "a message/sip body is no SIP message");
                None
            }
        })
        .collect()
}

/// The public identities of the user's implicit registration set (TS 24.229 §5.4.1.2.2: the
/// P-Associated-URI of the 200 OK to its REGISTER), as AoRs in order, from the responses
/// `req` carries; empty when it carries none.
pub fn associated_uris(req: &Request) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in messages(req) {
        if let SipMessage::Response(r) = m {
            for v in r.headers.values("P-Associated-URI") {
                if let Ok(na) = NameAddr::parse(v) {
                    let aor = na.uri.aor();
                    if !out.contains(&aor) {
                        out.push(aor);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Method, Response};

    fn ok() -> Response {
        let mut reg = Request::new(Method::Register, "sip:ims.lab");
        reg.headers
            .push("Via", "SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1");
        reg.headers.push("From", "<sip:bob@ims.lab>;tag=1");
        reg.headers.push("To", "<sip:bob@ims.lab>");
        reg.headers.push("Call-ID", "c1");
        reg.headers.push("CSeq", "1 REGISTER");
        let mut ok = reg.response(200, None);
        ok.headers
            .push("P-Associated-URI", "<sip:bob@ims.lab>, <tel:+15550002>");
        ok
    }

    #[test]
    fn the_ok_as_the_body_or_as_a_part_names_the_set() {
        let mut r = Request::new(Method::Register, "sip:tim.ims.lab");
        r.headers.push("Content-Type", "message/sip");
        r.body = ok().to_bytes().into();
        assert_eq!(
            associated_uris(&r),
            vec!["sip:bob@ims.lab".to_string(), "tel:+15550002".to_string()]
        );
        let parts = vec![
            crate::sip::multipart::Part::new("text/plain", b"x".to_vec()),
            crate::sip::multipart::Part::new("message/sip", ok().to_bytes()),
        ];
        let (ct, b) = crate::sip::multipart::build("b1", &parts);
        let mut r = Request::new(Method::Register, "sip:tim.ims.lab");
        r.headers.push("Content-Type", ct);
        r.body = b.into();
        assert_eq!(associated_uris(&r).len(), 2);
    }

    #[test]
    fn no_body_or_garbage_names_nothing() {
        let mut r = Request::new(Method::Register, "sip:tim.ims.lab");
        assert!(associated_uris(&r).is_empty());
        r.headers.push("Content-Type", "message/sip");
        r.body = bytes::Bytes::from_static(b"\x00\x01 not sip");
        assert!(associated_uris(&r).is_empty());
    }
}
