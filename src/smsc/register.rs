//! What a third-party REGISTER tells the IP-SM-GW (TS 24.341 §5.3.3.1, TS 24.229 §5.4.1.7):
//! the user (To), whether it is registered (Expires), and from the `message/sip` bodies the
//! lab's iFC asks for (`IncludeRegisterRequest`, `IncludeRegisterResponse`) whether its
//! contact can take SMS over IP (`+g.3gpp.smsip`) and its tel URI (P-Associated-URI of the
//! S-CSCF's 200 OK). Pure.

use crate::sip::{Request, SipMessage};

use super::store::UserInfo;

/// The feature tag of a contact that takes SMS over IP (TS 24.341 §5.3.1.1).
pub const SMSIP_TAG: &str = "+g.3gpp.smsip";

/// A third-party REGISTER, read: the user, whether registered, and what its bodies say
/// (None: the REGISTER carried no bodies, keep what is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThirdParty {
    pub impu: String,
    pub registered: bool,
    pub info: Option<UserInfo>,
}

/// Reads `req`; None when it names no user.
pub fn read(req: &Request) -> Option<ThirdParty> {
    let to = req.headers.get("To")?;
    let impu = crate::sip::NameAddr::parse(to).ok()?.uri.aor();
    let registered = req
        .headers
        .get("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .is_some_and(|e| e > 0);
    let mut info: Option<UserInfo> = None;
    for m in crate::sip::embedded::messages(req) {
        let i = info.get_or_insert_with(UserInfo::default);
        match m {
            SipMessage::Request(r) => {
                i.smsip |= r
                    .headers
                    .values("Contact")
                    .iter()
                    .any(|c| c.to_ascii_lowercase().contains(SMSIP_TAG));
            }
            SipMessage::Response(r) => {
                i.number = r
                    .headers
                    .values("P-Associated-URI")
                    .iter()
                    .filter_map(|v| crate::sip::NameAddr::parse(v).ok())
                    .find_map(|na| {
                        let u = na.uri.aor();
                        u.strip_prefix("tel:")
                            .map(|n| n.split(';').next().unwrap_or(n).to_string())
                    });
            }
        }
    }
    if let Some(i) = info.as_mut() {
        i.registered = registered;
    }
    Some(ThirdParty {
        impu,
        registered,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Method;

    fn third_party(expires: u32, body: Option<(String, Vec<u8>)>) -> Request {
        let mut r = Request::new(Method::Register, "sip:ipsmgw.ims.lab");
        r.headers.push("To", "<sip:bob@ims.lab>");
        r.headers.push("Expires", expires.to_string());
        if let Some((ct, b)) = body {
            r.headers.push("Content-Type", ct);
            r.body = b.into();
        }
        r
    }

    #[test]
    fn the_register_and_the_ok_tell_the_capability_and_the_number() {
        let mut reg = Request::new(Method::Register, "sip:ims.lab");
        reg.headers
            .push("Via", "SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1");
        reg.headers.push("From", "<sip:bob@ims.lab>;tag=1");
        reg.headers.push("To", "<sip:bob@ims.lab>");
        reg.headers.push("Call-ID", "c1");
        reg.headers.push("CSeq", "1 REGISTER");
        reg.headers.push(
            "Contact",
            "<sip:bob@127.0.0.1:5000>;+g.3gpp.smsip;+sip.instance=\"<urn:uuid:1>\"",
        );
        let mut ok = reg.response(200, Some("OK"));
        ok.headers
            .push("P-Associated-URI", "<sip:bob@ims.lab>, <tel:+15550002>");
        let parts = [
            crate::sip::multipart::Part::new("message/sip", reg.to_bytes()),
            crate::sip::multipart::Part::new("message/sip", ok.to_bytes()),
        ];
        let (ct, b) = crate::sip::multipart::build("b1", &parts);
        let t = read(&third_party(600, Some((ct, b)))).unwrap();
        assert_eq!(t.impu, "sip:bob@ims.lab");
        assert!(t.registered);
        assert_eq!(
            t.info,
            Some(UserInfo {
                number: Some("+15550002".into()),
                smsip: true,
                registered: true
            })
        );
        // Only the 200: the number, and no capability.
        let t = read(&third_party(
            600,
            Some(("message/sip".into(), ok.to_bytes())),
        ))
        .unwrap();
        let i = t.info.unwrap();
        assert_eq!((i.number.as_deref(), i.smsip), (Some("+15550002"), false));
    }

    #[test]
    fn a_de_registration_without_bodies_says_only_that() {
        let t = read(&third_party(0, None)).unwrap();
        assert_eq!(
            t,
            ThirdParty {
                impu: "sip:bob@ims.lab".into(),
                registered: false,
                info: None
            }
        );
        let mut r = third_party(0, None);
        r.headers.remove("To");
        assert_eq!(read(&r), None);
    }
}
