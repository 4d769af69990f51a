//! SMPP 3.4 optional parameters (TLVs, §5.3): tag (2 octets), length (2 octets), value. Every
//! tag of §5.3.2 has a typed variant; other tags (vendor 0x1400–0x3FFF, reserved) stay raw.

use super::status::CommandStatus;
use super::wire::Fault;
use super::SmppError;

/// network_error_code (§5.3.2.31): network type (1 GSM, 2 ANSI-136, 3 IS-95…) and its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkErrorCode {
    /// 1 ANSI-136, 2 IS-95, 3 GSM, 4 reserved… (§5.3.2.31).
    pub network_type: u8,
    /// The network's error code.
    pub error_code: u16,
}

macro_rules! tlvs {
    ($($(#[$doc:meta])* $variant:ident = $tag:literal, $name:literal, $kind:ident $(($($arg:expr),*))?;)*) => {
        /// One optional parameter (SMPP 3.4 §5.3.2). Values are checked against the length
        /// §5.3.2 gives their type; C-Octet String values are held without their NUL.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Tlv {
            $($(#[$doc])* $variant(tlvs!(@ty $kind)),)*
            /// A tag 3.4 does not define, kept as it came.
            Raw {
                /// The tag.
                tag: u16,
                /// The value octets.
                value: Vec<u8>,
            },
        }

        impl Tlv {
            /// The tag on the wire.
            pub fn tag(&self) -> u16 {
                match self {
                    $(Self::$variant(_) => $tag,)*
                    Self::Raw { tag, .. } => *tag,
                }
            }

            /// The §5.3.2 name (`message_payload`), or `None` for a raw tag.
            pub fn name(&self) -> Option<&'static str> {
                match self {
                    $(Self::$variant(_) => Some($name),)*
                    Self::Raw { .. } => None,
                }
            }

            fn decode_value(tag: u16, v: &[u8]) -> Result<Self, Fault> {
                Ok(match tag {
                    $($tag => Self::$variant(tlvs!(@dec $kind $(($($arg),*))?, $name, v)),)*
                    _ => Self::Raw { tag, value: v.to_vec() },
                })
            }

            fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), SmppError> {
                match self {
                    $(Self::$variant(x) => tlvs!(@enc $kind $(($($arg),*))?, $name, x, out),)*
                    Self::Raw { value, .. } => out.extend_from_slice(value),
                }
                Ok(())
            }
        }
    };
    (@ty U8) => { u8 };
    (@ty U16) => { u16 };
    (@ty U32) => { u32 };
    (@ty Empty) => { () };
    (@ty CStr) => { String };
    (@ty Octets) => { Vec<u8> };
    (@ty NetErr) => { NetworkErrorCode };
    (@dec U8, $n:literal, $v:ident) => { fixed::<1>($n, $v)?[0] };
    (@dec U16, $n:literal, $v:ident) => { u16::from_be_bytes(fixed::<2>($n, $v)?) };
    (@dec U32, $n:literal, $v:ident) => { u32::from_be_bytes(fixed::<4>($n, $v)?) };
    (@dec Empty, $n:literal, $v:ident) => { { fixed::<0>($n, $v)?; } };
    (@dec CStr($max:expr), $n:literal, $v:ident) => { tlv_cstr($n, $v, $max)? };
    (@dec Octets($min:expr, $max:expr), $n:literal, $v:ident) => { octets($n, $v, $min, $max)? };
    (@dec NetErr, $n:literal, $v:ident) => { {
        let b = fixed::<3>($n, $v)?;
        NetworkErrorCode { network_type: b[0], error_code: u16::from_be_bytes([b[1], b[2]]) }
    } };
    (@enc U8, $n:literal, $x:ident, $out:ident) => { $out.push(*$x) };
    (@enc U16, $n:literal, $x:ident, $out:ident) => { $out.extend_from_slice(&$x.to_be_bytes()) };
    (@enc U32, $n:literal, $x:ident, $out:ident) => { $out.extend_from_slice(&$x.to_be_bytes()) };
    (@enc Empty, $n:literal, $x:ident, $out:ident) => { { let () = *$x; } };
    (@enc CStr($max:expr), $n:literal, $x:ident, $out:ident) => {
        super::wire::put_cstr($out, $n, $x, $max)?
    };
    (@enc Octets($min:expr, $max:expr), $n:literal, $x:ident, $out:ident) => { {
        if !($min..=$max).contains(&$x.len()) {
            return Err(SmppError::Encode { field: $n, why: "value length outside its range" });
        }
        $out.extend_from_slice($x)
    } };
    (@enc NetErr, $n:literal, $x:ident, $out:ident) => { {
        $out.push($x.network_type);
        $out.extend_from_slice(&$x.error_code.to_be_bytes())
    } };
}

/// A value whose length §5.3.2 fixes; another length is ESME_RINVPARLEN (5.0: RINVTLVLEN).
fn fixed<const N: usize>(name: &'static str, v: &[u8]) -> Result<[u8; N], Fault> {
    v.try_into().map_err(|_| {
        Fault::new(
            name,
            "TLV length wrong for its type",
            CommandStatus::InvParLen,
        )
    })
}

fn octets(name: &'static str, v: &[u8], min: usize, max: usize) -> Result<Vec<u8>, Fault> {
    if !(min..=max).contains(&v.len()) {
        return Err(Fault::new(
            name,
            "TLV length outside its range",
            CommandStatus::InvParLen,
        ));
    }
    Ok(v.to_vec())
}

/// A C-Octet String TLV of at most `max` octets with its NUL. A missing final NUL is accepted
/// (several ESMEs leave it out of receipted_message_id); a NUL inside is not.
fn tlv_cstr(name: &'static str, v: &[u8], max: usize) -> Result<String, Fault> {
    let text = v.strip_suffix(&[0]).unwrap_or(v);
    if text.len() + 1 > max {
        return Err(Fault::new(
            name,
            "TLV longer than its maximum size",
            CommandStatus::InvParLen,
        ));
    }
    if text.contains(&0) {
        return Err(Fault::new(
            name,
            "NUL inside a C-Octet String TLV",
            CommandStatus::InvOptParamVal,
        ));
    }
    std::str::from_utf8(text)
        .map(str::to_string)
        .map_err(|_| Fault::new(name, "not ASCII/UTF-8 text", CommandStatus::InvOptParamVal))
}

tlvs! {
    /// dest_addr_subunit (§5.3.2.1).
    DestAddrSubunit = 0x0005, "dest_addr_subunit", U8;
    /// dest_network_type (§5.3.2.3).
    DestNetworkType = 0x0006, "dest_network_type", U8;
    /// dest_bearer_type (§5.3.2.5).
    DestBearerType = 0x0007, "dest_bearer_type", U8;
    /// dest_telematics_id (§5.3.2.7).
    DestTelematicsId = 0x0008, "dest_telematics_id", U16;
    /// source_addr_subunit (§5.3.2.2).
    SourceAddrSubunit = 0x000D, "source_addr_subunit", U8;
    /// source_network_type (§5.3.2.4).
    SourceNetworkType = 0x000E, "source_network_type", U8;
    /// source_bearer_type (§5.3.2.6).
    SourceBearerType = 0x000F, "source_bearer_type", U8;
    /// source_telematics_id (§5.3.2.8).
    SourceTelematicsId = 0x0010, "source_telematics_id", U8;
    /// qos_time_to_live in seconds (§5.3.2.9).
    QosTimeToLive = 0x0017, "qos_time_to_live", U32;
    /// payload_type (§5.3.2.10).
    PayloadType = 0x0019, "payload_type", U8;
    /// additional_status_info_text (§5.3.2.11).
    AdditionalStatusInfoText = 0x001D, "additional_status_info_text", CStr(256);
    /// receipted_message_id: the SMSC message id a receipt is about (§5.3.2.12).
    ReceiptedMessageId = 0x001E, "receipted_message_id", CStr(65);
    /// ms_msg_wait_facilities (§5.3.2.13).
    MsMsgWaitFacilities = 0x0030, "ms_msg_wait_facilities", U8;
    /// privacy_indicator (§5.3.2.14).
    PrivacyIndicator = 0x0201, "privacy_indicator", U8;
    /// source_subaddress (§5.3.2.15).
    SourceSubaddress = 0x0202, "source_subaddress", Octets(2, 23);
    /// dest_subaddress (§5.3.2.16).
    DestSubaddress = 0x0203, "dest_subaddress", Octets(2, 23);
    /// user_message_reference (§5.3.2.17).
    UserMessageReference = 0x0204, "user_message_reference", U16;
    /// user_response_code (§5.3.2.18).
    UserResponseCode = 0x0205, "user_response_code", U8;
    /// source_port (§5.3.2.20).
    SourcePort = 0x020A, "source_port", U16;
    /// destination_port (§5.3.2.21).
    DestinationPort = 0x020B, "destination_port", U16;
    /// sar_msg_ref_num: concatenation reference (§5.3.2.22).
    SarMsgRefNum = 0x020C, "sar_msg_ref_num", U16;
    /// language_indicator (§5.3.2.19).
    LanguageIndicator = 0x020D, "language_indicator", U8;
    /// sar_total_segments (§5.3.2.23).
    SarTotalSegments = 0x020E, "sar_total_segments", U8;
    /// sar_segment_seqnum (§5.3.2.24).
    SarSegmentSeqnum = 0x020F, "sar_segment_seqnum", U8;
    /// sc_interface_version, in bind responses (§5.3.2.25).
    ScInterfaceVersion = 0x0210, "sc_interface_version", U8;
    /// callback_num_pres_ind (§5.3.2.37).
    CallbackNumPresInd = 0x0302, "callback_num_pres_ind", U8;
    /// callback_num_atag (§5.3.2.38).
    CallbackNumAtag = 0x0303, "callback_num_atag", Octets(0, 65);
    /// number_of_messages (§5.3.2.39).
    NumberOfMessages = 0x0304, "number_of_messages", U8;
    /// callback_num (§5.3.2.36).
    CallbackNum = 0x0381, "callback_num", Octets(4, 19);
    /// dpf_result (§5.3.2.28).
    DpfResult = 0x0420, "dpf_result", U8;
    /// set_dpf (§5.3.2.29).
    SetDpf = 0x0421, "set_dpf", U8;
    /// ms_availability_status (§5.3.2.30).
    MsAvailabilityStatus = 0x0422, "ms_availability_status", U8;
    /// network_error_code (§5.3.2.31).
    NetworkError = 0x0423, "network_error_code", NetErr;
    /// message_payload: up to 64K octets instead of short_message (§5.3.2.32).
    MessagePayload = 0x0424, "message_payload", Octets(0, 65535);
    /// delivery_failure_reason (§5.3.2.33).
    DeliveryFailureReason = 0x0425, "delivery_failure_reason", U8;
    /// more_messages_to_send (§5.3.2.34).
    MoreMessagesToSend = 0x0426, "more_messages_to_send", U8;
    /// message_state, as octet (§5.3.2.35; see [`super::MessageState`]).
    MessageStateTlv = 0x0427, "message_state", U8;
    /// ussd_service_op (§5.3.2.44).
    UssdServiceOp = 0x0501, "ussd_service_op", U8;
    /// display_time (§5.3.2.26).
    DisplayTime = 0x1201, "display_time", U8;
    /// sms_signal (§5.3.2.40).
    SmsSignal = 0x1203, "sms_signal", U16;
    /// ms_validity (§5.3.2.27).
    MsValidity = 0x1204, "ms_validity", U8;
    /// alert_on_message_delivery, no value (§5.3.2.41).
    AlertOnMessageDelivery = 0x130C, "alert_on_message_delivery", Empty;
    /// its_reply_type (§5.3.2.42).
    ItsReplyType = 0x1380, "its_reply_type", U8;
    /// its_session_info (§5.3.2.43).
    ItsSessionInfo = 0x1383, "its_session_info", U16;
}

/// Reads TLVs up to the end of the body (§3.2.1: they follow the mandatory parameters). Fewer
/// than 4 octets left, or a length that runs past the body, is ESME_RINVOPTPARSTREAM
/// (5.0: RINVTLVSTREAM).
pub(crate) fn decode_tlvs(mut rest: &[u8]) -> Result<Vec<Tlv>, Fault> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(Fault::new(
                "TLV",
                "fewer than 4 octets left for a TLV header",
                CommandStatus::InvOptParStream,
            ));
        }
        let tag = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if rest.len() - 4 < len {
            return Err(Fault::new(
                "TLV",
                "TLV length runs past the body",
                CommandStatus::InvOptParStream,
            ));
        }
        out.push(Tlv::decode_value(tag, &rest[4..4 + len])?);
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Appends TLVs in order.
pub(crate) fn encode_tlvs(tlvs: &[Tlv], out: &mut Vec<u8>) -> Result<(), SmppError> {
    for t in tlvs {
        out.extend_from_slice(&t.tag().to_be_bytes());
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        t.encode_value(out)?;
        let len = u16::try_from(out.len() - at - 2).map_err(|_| SmppError::Encode {
            field: t.name().unwrap_or("TLV"),
            why: "value longer than 65535 octets",
        })?;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// The first TLV of `tlvs` that `pick` accepts, e.g.
/// `find(&tlvs, |t| match t { Tlv::SarMsgRefNum(n) => Some(*n), _ => None })`.
pub fn find<T>(tlvs: &[Tlv], pick: impl Fn(&Tlv) -> Option<T>) -> Option<T> {
    tlvs.iter().find_map(pick)
}
