//! Small AVP helpers shared by the Cx command codecs: 3GPP vendor AVPs (TS 29.229 §6.3,
//! V and M set), typed look-ups that fail with [`CxError`], and the fixed head of every Cx
//! request and answer (TS 29.229 §6.1 ABNF: Session-Id, Vendor-Specific-Application-Id,
//! [Result-Code / Experimental-Result], Auth-Session-State, Origin-Host, Origin-Realm).

use crate::diameter::codec::*;

use super::{CxError, CxResult, APP_ID_CX, VENDOR_3GPP};

/// The 3GPP vendor id as an AVP's vendor.
pub(super) const V: Option<u32> = Some(VENDOR_3GPP);

/// A 3GPP OctetString AVP (V, M).
pub(super) fn v(code: u32, data: &[u8]) -> Avp {
    Avp::octets(code, V, true, data)
}

/// A 3GPP UTF8String AVP (V, M).
pub(super) fn vs(code: u32, s: &str) -> Avp {
    Avp::utf8(code, V, true, s)
}

/// A 3GPP Unsigned32 / Enumerated AVP (V, M).
pub(super) fn vu(code: u32, n: u32) -> Avp {
    Avp::u32(code, V, true, n)
}

/// The error for a mandatory AVP that is not there (DIAMETER_MISSING_AVP).
pub(super) fn missing(code: u32, vendor_id: Option<u32>) -> CxError {
    CxError::MissingAvp { code, vendor_id }
}

/// A mandatory UTF8String AVP at the top level.
pub(super) fn req_str(m: &Message, code: u32, vendor: Option<u32>) -> Result<String, CxError> {
    Ok(m.avp(code, vendor)
        .ok_or(missing(code, vendor))?
        .as_str()
        .map(str::to_string)?)
}

/// An optional UTF8String AVP among `avps`.
pub(super) fn opt_str(
    avps: &[Avp],
    code: u32,
    vendor: Option<u32>,
) -> Result<Option<String>, CxError> {
    match avps
        .iter()
        .find(|a| a.code == code && a.vendor_id == vendor)
    {
        Some(a) => Ok(Some(a.as_str()?.to_string())),
        None => Ok(None),
    }
}

/// An optional Unsigned32 AVP among `avps`.
pub(super) fn opt_u32(
    avps: &[Avp],
    code: u32,
    vendor: Option<u32>,
) -> Result<Option<u32>, CxError> {
    match avps
        .iter()
        .find(|a| a.code == code && a.vendor_id == vendor)
    {
        Some(a) => Ok(Some(a.as_u32()?)),
        None => Ok(None),
    }
}

/// A mandatory Unsigned32 AVP among `avps`.
pub(super) fn req_u32(avps: &[Avp], code: u32, vendor: Option<u32>) -> Result<u32, CxError> {
    opt_u32(avps, code, vendor)?.ok_or(missing(code, vendor))
}

/// An optional OctetString AVP among `avps`.
pub(super) fn opt_bytes(avps: &[Avp], code: u32, vendor: Option<u32>) -> Option<Vec<u8>> {
    avps.iter()
        .find(|a| a.code == code && a.vendor_id == vendor)
        .map(|a| a.data.to_vec())
}

/// Every UTF8String AVP `code` (3GPP vendor) at the top level, in order.
pub(super) fn all_str(m: &Message, code: u32) -> Result<Vec<String>, CxError> {
    Ok(m.avps_of(code, V)
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Result<_, _>>()?)
}

/// User-Data (TS 29.229 §6.3.7, OctetString): the TS 29.228 IMSSubscription XML as text.
pub(super) fn opt_user_data(m: &Message) -> Result<Option<String>, CxError> {
    match opt_bytes(&m.avps, super::AVP_USER_DATA, V) {
        Some(b) => Ok(Some(String::from_utf8(b).map_err(|_| {
            CxError::InvalidAvp {
                code: super::AVP_USER_DATA,
                why: "User-Data is not UTF-8 XML",
            }
        })?)),
        None => Ok(None),
    }
}

/// Vendor-Specific-Application-Id {Vendor-Id 10415, Auth-Application-Id Cx}.
fn vendor_specific_application_id() -> Avp {
    Avp::grouped(
        AVP_VENDOR_SPECIFIC_APPLICATION_ID,
        None,
        true,
        vec![
            Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP),
            Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, APP_ID_CX),
        ],
    )
}

/// The AVPs every Cx request starts with (TS 29.229 §6.1 ABNF).
pub(super) fn request_head(
    cmd: u32,
    session_id: &str,
    origin_host: &str,
    origin_realm: &str,
) -> Message {
    let mut m = Message::request(cmd, APP_ID_CX);
    m.push(Avp::utf8(AVP_SESSION_ID, None, true, session_id));
    m.push(vendor_specific_application_id());
    m.push(Avp::u32(AVP_AUTH_SESSION_STATE, None, true, 1)); // NO_STATE_MAINTAINED
    m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, origin_host));
    m.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, origin_realm));
    m
}

/// [Destination-Host] and Destination-Realm, in that order.
pub(super) fn destination(m: &mut Message, host: Option<&str>, realm: &str) {
    if let Some(h) = host {
        m.push(Avp::utf8(AVP_DESTINATION_HOST, None, true, h));
    }
    m.push(Avp::utf8(AVP_DESTINATION_REALM, None, true, realm));
}

/// The AVPs every Cx answer starts with (TS 29.229 §6.1 ABNF).
pub(super) fn answer_head(
    cmd: u32,
    session_id: &str,
    result: &CxResult,
    origin_host: &str,
    origin_realm: &str,
) -> Message {
    let mut m = Message {
        flags: CMD_FLAG_PROXIABLE,
        command_code: cmd,
        application_id: APP_ID_CX,
        hop_by_hop: 0,
        end_to_end: 0,
        avps: Vec::new(),
    };
    m.push(Avp::utf8(AVP_SESSION_ID, None, true, session_id));
    m.push(vendor_specific_application_id());
    m.push(result.to_avp());
    m.push(Avp::u32(AVP_AUTH_SESSION_STATE, None, true, 1));
    m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, origin_host));
    m.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, origin_realm));
    m
}

/// Session-Id, Origin-Host, Origin-Realm of a received command.
pub(super) struct Head {
    pub(super) session_id: String,
    pub(super) origin_host: String,
    pub(super) origin_realm: String,
}

/// Reads the [`Head`] (all three are mandatory in every Cx command).
pub(super) fn read_head(m: &Message) -> Result<Head, CxError> {
    Ok(Head {
        session_id: req_str(m, AVP_SESSION_ID, None)?,
        origin_host: req_str(m, AVP_ORIGIN_HOST, None)?,
        origin_realm: req_str(m, AVP_ORIGIN_REALM, None)?,
    })
}

/// Result-Code or Experimental-Result of an answer (one of them is mandatory).
pub(super) fn read_result(m: &Message) -> Result<CxResult, CxError> {
    CxResult::from_message(m).ok_or(missing(AVP_RESULT_CODE, None))
}
