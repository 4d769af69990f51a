//! The capabilities exchange's content (RFC 6733 §5.3, TS 29.229 §6 for Cx): the AVPs we put
//! in a CER/CEA and whether the other side's offers Cx. The decision on a CER is
//! [`crate::diameter::peer_fsm::Responder`]'s.

use crate::diameter::codec::*;
use crate::diameter::cx::{APP_ID_CX, VENDOR_3GPP};
use crate::diameter::peer::LocalPeer;

/// Our capabilities AVPs for a CER or CEA: identity, Product-Name, Origin-State-Id, and Cx
/// (3GPP vendor) as the one application.
pub(crate) fn cer_avps(local: &LocalPeer, m: &mut Message) {
    m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, &local.origin_host));
    m.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, &local.origin_realm));
    m.push(Avp::address(AVP_HOST_IP_ADDRESS, None, true, local.host_ip));
    m.push(Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP));
    m.push(Avp::utf8(
        AVP_PRODUCT_NAME,
        None,
        false,
        &local.product_name,
    ));
    m.push(Avp::u32(
        AVP_ORIGIN_STATE_ID,
        None,
        true,
        std::process::id(),
    ));
    m.push(Avp::u32(AVP_SUPPORTED_VENDOR_ID, None, true, VENDOR_3GPP));
    m.push(Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, APP_ID_CX));
    m.push(Avp::grouped(
        AVP_VENDOR_SPECIFIC_APPLICATION_ID,
        None,
        true,
        vec![
            Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP),
            Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, APP_ID_CX),
        ],
    ));
}

/// True when a CER/CEA offers Cx (directly, inside Vendor-Specific-Application-Id, or relay).
pub(crate) fn offers_cx(m: &Message) -> bool {
    let direct = m
        .avps_of(AVP_AUTH_APPLICATION_ID, None)
        .any(|a| matches!(a.as_u32(), Ok(APP_ID_CX) | Ok(0xffff_ffff)));
    let vsai = m
        .avps_of(AVP_VENDOR_SPECIFIC_APPLICATION_ID, None)
        .any(|a| {
            a.as_grouped()
                .map(|g| {
                    g.iter()
                        .any(|x| x.code == AVP_AUTH_APPLICATION_ID && x.as_u32() == Ok(APP_ID_CX))
                })
                .unwrap_or(false)
        });
    direct || vsai
}
