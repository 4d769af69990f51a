//! Turning submit_sm, data_sm and submit_multi (SMPP 3.4 §4.4, §4.7, §4.5) into what the
//! service centre takes ([`Submitted`]), with the checks the SMSC makes first (§5.2: empty
//! destination, schedule_delivery_time, validity_period §7.1.1, short_message and
//! message_payload both present).

use std::time::SystemTime;

use super::validity;
use super::Submitted;
use crate::smpp::{Body, CommandStatus, DataSm, Sm, SubmitMultiResp, Tlv, UnsuccessSme};

/// The submit_multi_resp for the first accepted id and the refused destinations; none
/// accepted: ESME_RSUBMITFAIL (the list still goes out).
pub(super) fn multi_resp(
    message_id: Option<String>,
    unsuccess: Vec<UnsuccessSme>,
) -> (CommandStatus, Body) {
    let status = if message_id.is_some() {
        CommandStatus::Ok
    } else {
        CommandStatus::SubmitFail
    };
    let body = Body::SubmitMultiResp(SubmitMultiResp {
        message_id: message_id.unwrap_or_default(),
        unsuccess,
        tlvs: Vec::new(),
    });
    (status, body)
}

pub(super) fn unix(wall: SystemTime) -> u64 {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// submit_sm (or one submit_multi destination) as the SC takes it, or the status refusing it.
pub fn submitted_of_sm(
    system_id: &str,
    sm: &Sm,
    unix_now: u64,
) -> Result<Submitted, CommandStatus> {
    if !sm.params.schedule_delivery_time.is_empty() {
        return Err(CommandStatus::InvSched);
    }
    if sm.dest.addr.is_empty() {
        return Err(CommandStatus::InvDstAdr);
    }
    let has_payload = sm.tlvs.iter().any(|t| matches!(t, Tlv::MessagePayload(_)));
    if has_payload && !sm.params.short_message.is_empty() {
        return Err(CommandStatus::InvMsgLen);
    }
    let validity_secs = validity::seconds_until(&sm.params.validity_period, unix_now)
        .map_err(|_| CommandStatus::InvExpiry)?;
    Ok(Submitted {
        system_id: system_id.to_string(),
        source: sm.source.clone(),
        dest: sm.dest.clone(),
        data_coding: sm.params.data_coding.0,
        esm_class: sm.params.esm_class.0,
        payload: sm.payload().to_vec(),
        registered_delivery: sm.params.registered_delivery.0,
        validity_secs,
    })
}

/// data_sm as the SC takes it: the payload from message_payload, the validity from
/// qos_time_to_live (§5.3.2.9).
pub fn submitted_of_data_sm(system_id: &str, d: &DataSm) -> Result<Submitted, CommandStatus> {
    if d.dest.addr.is_empty() {
        return Err(CommandStatus::InvDstAdr);
    }
    let payload = crate::smpp::find_tlv(&d.tlvs, |t| match t {
        Tlv::MessagePayload(p) => Some(p.clone()),
        _ => None,
    });
    let validity_secs = crate::smpp::find_tlv(&d.tlvs, |t| match t {
        Tlv::QosTimeToLive(s) => Some(u64::from(*s)),
        _ => None,
    });
    Ok(Submitted {
        system_id: system_id.to_string(),
        source: d.source.clone(),
        dest: d.dest.clone(),
        data_coding: d.data_coding.0,
        esm_class: d.esm_class.0,
        payload: payload.unwrap_or_default(),
        registered_delivery: d.registered_delivery.0,
        validity_secs,
    })
}
