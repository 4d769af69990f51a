//! Names and data types of the commands and AVPs rcslab speaks, for people: the flight
//! recorder's HTML export draws each Diameter message as an AVP tree with them. Base protocol
//! from RFC 6733 §3.3 / §4.5, Digest AVPs from RFC 4590 §3, Cx from TS 29.229 §6.3.

use crate::diameter::codec::{Avp, Message};
use crate::diameter::cx::VENDOR_3GPP;

/// How an AVP's data reads (RFC 6733 §4.2, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvpType {
    /// UTF8String, DiameterIdentity, DiameterURI.
    Utf8,
    /// Unsigned32 (and Enumerated: see [`enum_name`]).
    U32,
    /// Unsigned64.
    U64,
    /// Grouped: AVPs inside.
    Grouped,
    /// Address.
    Address,
    /// OctetString.
    Octets,
}

use AvpType::*;

/// (code, 3GPP vendor?, name, type).
const AVPS: &[(u32, bool, &str, AvpType)] = &[
    (1, false, "User-Name", Utf8),
    (104, false, "Digest-Realm", Utf8),
    (110, false, "Digest-QoP", Utf8),
    (111, false, "Digest-Algorithm", Utf8),
    (121, false, "Digest-HA1", Utf8),
    (257, false, "Host-IP-Address", Address),
    (258, false, "Auth-Application-Id", U32),
    (259, false, "Acct-Application-Id", U32),
    (260, false, "Vendor-Specific-Application-Id", Grouped),
    (263, false, "Session-Id", Utf8),
    (264, false, "Origin-Host", Utf8),
    (265, false, "Supported-Vendor-Id", U32),
    (266, false, "Vendor-Id", U32),
    (267, false, "Firmware-Revision", U32),
    (268, false, "Result-Code", U32),
    (269, false, "Product-Name", Utf8),
    (273, false, "Disconnect-Cause", U32),
    (277, false, "Auth-Session-State", U32),
    (278, false, "Origin-State-Id", U32),
    (279, false, "Failed-AVP", Grouped),
    (281, false, "Error-Message", Utf8),
    (283, false, "Destination-Realm", Utf8),
    (284, false, "Proxy-Info", Grouped),
    (293, false, "Destination-Host", Utf8),
    (296, false, "Origin-Realm", Utf8),
    (297, false, "Experimental-Result", Grouped),
    (298, false, "Experimental-Result-Code", U32),
    (299, false, "Inband-Security-Id", U32),
    (600, true, "Visited-Network-Identifier", Octets),
    (601, true, "Public-Identity", Utf8),
    (602, true, "Server-Name", Utf8),
    (603, true, "Server-Capabilities", Grouped),
    (604, true, "Mandatory-Capability", U32),
    (605, true, "Optional-Capability", U32),
    (606, true, "User-Data", Octets),
    (607, true, "SIP-Number-Auth-Items", U32),
    (608, true, "SIP-Authentication-Scheme", Utf8),
    (609, true, "SIP-Authenticate", Octets),
    (610, true, "SIP-Authorization", Octets),
    (611, true, "SIP-Authentication-Context", Octets),
    (612, true, "SIP-Auth-Data-Item", Grouped),
    (613, true, "SIP-Item-Number", U32),
    (614, true, "Server-Assignment-Type", U32),
    (615, true, "Deregistration-Reason", Grouped),
    (616, true, "Reason-Code", U32),
    (617, true, "Reason-Info", Utf8),
    (623, true, "User-Authorization-Type", U32),
    (624, true, "User-Data-Already-Available", U32),
    (625, true, "Confidentiality-Key", Octets),
    (626, true, "Integrity-Key", Octets),
    (628, true, "Supported-Features", Grouped),
    (629, true, "Feature-List-ID", U32),
    (630, true, "Feature-List", U32),
    (633, true, "Originating-Request", U32),
    (635, true, "SIP-Digest-Authenticate", Grouped),
];

/// An AVP's name and type, when rcslab knows it.
pub fn avp_info(code: u32, vendor_id: Option<u32>) -> Option<(&'static str, AvpType)> {
    let tgpp = vendor_id == Some(VENDOR_3GPP);
    if vendor_id.is_some() && !tgpp {
        return None;
    }
    AVPS.iter()
        .find(|(c, v, _, _)| *c == code && *v == tgpp)
        .map(|(_, _, n, t)| (*n, *t))
}

/// A command's full name (`User-Authorization-Request`).
pub fn command_name(m: &Message) -> String {
    let base = match m.command_code {
        257 => "Capabilities-Exchange",
        280 => "Device-Watchdog",
        282 => "Disconnect-Peer",
        300 => "User-Authorization",
        301 => "Server-Assignment",
        302 => "Location-Info",
        303 => "Multimedia-Auth",
        304 => "Registration-Termination",
        305 => "Push-Profile",
        c => return format!("command {c}"),
    };
    format!(
        "{base}-{}",
        if m.is_request() { "Request" } else { "Answer" }
    )
}

/// The name of an Enumerated value or a result code, where it has one.
pub fn enum_name(code: u32, vendor_id: Option<u32>, v: u32) -> Option<&'static str> {
    let tgpp = vendor_id == Some(VENDOR_3GPP);
    Some(match (code, tgpp, v) {
        (268, false, 2001) => "DIAMETER_SUCCESS",
        (268, false, 3001) => "DIAMETER_COMMAND_UNSUPPORTED",
        (268, false, 3002) => "DIAMETER_UNABLE_TO_DELIVER",
        (268, false, 3004) => "DIAMETER_TOO_BUSY",
        (268, false, 3007) => "DIAMETER_APPLICATION_UNSUPPORTED",
        (268, false, 3010) => "DIAMETER_UNKNOWN_PEER",
        (268, false, 4001) => "DIAMETER_AUTHENTICATION_REJECTED",
        (268, false, 5001) => "DIAMETER_AVP_UNSUPPORTED",
        (268, false, 5004) => "DIAMETER_INVALID_AVP_VALUE",
        (268, false, 5005) => "DIAMETER_MISSING_AVP",
        (268, false, 5012) => "DIAMETER_UNABLE_TO_COMPLY",
        (298, false, 2001) => "DIAMETER_FIRST_REGISTRATION",
        (298, false, 2002) => "DIAMETER_SUBSEQUENT_REGISTRATION",
        (298, false, 2003) => "DIAMETER_UNREGISTERED_SERVICE",
        (298, false, 2004) => "DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED",
        (298, false, 5001) => "DIAMETER_ERROR_USER_UNKNOWN",
        (298, false, 5002) => "DIAMETER_ERROR_IDENTITIES_DONT_MATCH",
        (298, false, 5003) => "DIAMETER_ERROR_IDENTITY_NOT_REGISTERED",
        (298, false, 5004) => "DIAMETER_ERROR_ROAMING_NOT_ALLOWED",
        (298, false, 5005) => "DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED",
        (298, false, 5006) => "DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED",
        (298, false, 5007) => "DIAMETER_ERROR_IN_ASSIGNMENT_TYPE",
        (298, false, 5008) => "DIAMETER_ERROR_TOO_MUCH_DATA",
        (298, false, 5009) => "DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA",
        (298, false, 5011) => "DIAMETER_ERROR_FEATURE_UNSUPPORTED",
        (273, false, 0) => "REBOOTING",
        (273, false, 1) => "BUSY",
        (273, false, 2) => "DO_NOT_WANT_TO_TALK_TO_YOU",
        (277, false, 0) => "STATE_MAINTAINED",
        (277, false, 1) => "NO_STATE_MAINTAINED",
        (614, true, 0) => "NO_ASSIGNMENT",
        (614, true, 1) => "REGISTRATION",
        (614, true, 2) => "RE_REGISTRATION",
        (614, true, 3) => "UNREGISTERED_USER",
        (614, true, 4) => "TIMEOUT_DEREGISTRATION",
        (614, true, 5) => "USER_DEREGISTRATION",
        (614, true, 8) => "ADMINISTRATIVE_DEREGISTRATION",
        (614, true, 9) => "AUTHENTICATION_FAILURE",
        (614, true, 10) => "AUTHENTICATION_TIMEOUT",
        (616, true, 0) => "PERMANENT_TERMINATION",
        (616, true, 1) => "NEW_SERVER_ASSIGNED",
        (616, true, 2) => "SERVER_CHANGE",
        (616, true, 3) => "REMOVE_S-CSCF",
        (623, true, 0) => "REGISTRATION",
        (623, true, 1) => "DE_REGISTRATION",
        (623, true, 2) => "REGISTRATION_AND_CAPABILITIES",
        (624, true, 0) => "USER_DATA_NOT_AVAILABLE",
        (624, true, 1) => "USER_DATA_ALREADY_AVAILABLE",
        (633, true, 0) => "ORIGINATING",
        _ => return None,
    })
}

/// One AVP's value as text: strings as they are, numbers with their enumerated name, grouped
/// AVPs as `(N AVPs)`, other octets as text when printable, else hex (the first 64 bytes).
pub fn avp_value(a: &Avp) -> String {
    let kind = avp_info(a.code, a.vendor_id).map(|(_, t)| t);
    let printable = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .filter(|s| {
                !s.chars()
                    .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t'))
            })
            .map(str::to_string)
    };
    let hex = |b: &[u8]| {
        let mut s: String = b.iter().take(64).map(|x| format!("{x:02x}")).collect();
        if b.len() > 64 {
            s.push_str(&format!("… ({} bytes)", b.len()));
        }
        format!("0x{s}")
    };
    match kind {
        Some(Grouped) => match a.as_grouped() {
            Ok(v) => format!("({} AVPs)", v.len()),
            Err(_) => hex(a.as_bytes()),
        },
        Some(U32) => match a.as_u32() {
            Ok(v) => match enum_name(a.code, a.vendor_id, v) {
                Some(n) => format!("{v} {n}"),
                None => v.to_string(),
            },
            Err(_) => hex(a.as_bytes()),
        },
        Some(U64) => a
            .as_u64()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| hex(a.as_bytes())),
        Some(Address) => a
            .as_address()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| hex(a.as_bytes())),
        Some(Utf8) | Some(Octets) | None => {
            printable(a.as_bytes()).unwrap_or_else(|| hex(a.as_bytes()))
        }
    }
}

/// True for a grouped AVP (its children are drawn under it).
pub fn is_grouped(a: &Avp) -> bool {
    avp_info(a.code, a.vendor_id).is_some_and(|(_, t)| t == Grouped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diameter::codec::AVP_RESULT_CODE;

    #[test]
    fn names_types_and_values_read_as_the_specs_write_them() {
        assert_eq!(
            avp_info(601, Some(VENDOR_3GPP)),
            Some(("Public-Identity", Utf8))
        );
        assert_eq!(avp_info(601, None), None, "a 3GPP code without the vendor");
        assert_eq!(
            avp_value(&Avp::u32(AVP_RESULT_CODE, None, true, 2001)),
            "2001 DIAMETER_SUCCESS"
        );
        assert_eq!(
            avp_value(&Avp::u32(614, Some(VENDOR_3GPP), true, 1)),
            "1 REGISTRATION"
        );
        assert_eq!(
            avp_value(&Avp::octets(609, Some(VENDOR_3GPP), true, &[0, 1, 0xff])),
            "0x0001ff"
        );
        let m = Message::request(300, 16_777_216);
        assert_eq!(command_name(&m), "User-Authorization-Request");
    }
}
