//! The bodies of the SMPP 3.4 PDUs (§4.1–§4.12): mandatory parameters in their order, then
//! TLVs where §4 allows them. Each body reads from a [`Reader`] and appends to a `Vec<u8>`.

use super::status::CommandStatus;
use super::tlv::{decode_tlvs, encode_tlvs, Tlv};
use super::types::{Address, DataCoding, EsmClass, MessageState, RegisteredDelivery};
use super::wire::{put_cstr, Fault, Reader};
use super::SmppError;

type Enc = Result<(), SmppError>;

/// Maximum sizes of C-Octet Strings, NUL included (§4 tables).
const SYSTEM_ID: usize = 16;
const PASSWORD: usize = 9;
const SYSTEM_TYPE: usize = 13;
const ADDRESS_RANGE: usize = 41;
const SERVICE_TYPE: usize = 6;
const ADDR21: usize = 21;
const ADDR65: usize = 65;
const TIME: usize = 17;
const MESSAGE_ID: usize = 65;
/// short_message is at most 254 octets (§5.2.22); longer text goes in message_payload.
pub const MAX_SHORT_MESSAGE: usize = 254;
/// submit_multi carries at most 254 destinations (§4.5.1).
pub const MAX_DESTS: usize = 254;

fn read_addr(
    r: &mut Reader,
    name: &'static str,
    max: usize,
    bad: CommandStatus,
) -> Result<Address, Fault> {
    Ok(Address {
        ton: r.u8(name)?,
        npi: r.u8(name)?,
        addr: r.cstr(name, max, bad)?,
    })
}

fn put_addr(out: &mut Vec<u8>, name: &'static str, a: &Address, max: usize) -> Enc {
    out.push(a.ton);
    out.push(a.npi);
    put_cstr(out, name, &a.addr, max)
}

/// A body with no optional part (§4 lists no TLVs): anything left over means the
/// command_length is wrong for the command.
fn no_more(r: &Reader, field: &'static str) -> Result<(), Fault> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(Fault::new(
            field,
            "octets after the last mandatory field",
            CommandStatus::InvCmdLen,
        ))
    }
}

/// bind_transmitter / bind_receiver / bind_transceiver (§4.1.1, §4.1.3, §4.1.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Bind {
    /// ESME identity (max 15 characters).
    pub system_id: String,
    /// Password (max 8 characters).
    pub password: String,
    /// Type of ESME (max 12 characters).
    pub system_type: String,
    /// SMPP version the ESME supports: 0x34 for 3.4 (§5.2.4).
    pub interface_version: u8,
    /// TON, NPI and address range the ESME serves (regular expression, max 40 characters).
    pub address_range: Address,
}

impl Bind {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let b = Bind {
            system_id: r.cstr("system_id", SYSTEM_ID, CommandStatus::InvSysId)?,
            password: r.cstr("password", PASSWORD, CommandStatus::InvPaswd)?,
            system_type: r.cstr("system_type", SYSTEM_TYPE, CommandStatus::InvSysTyp)?,
            interface_version: r.u8("interface_version")?,
            address_range: read_addr(r, "address_range", ADDRESS_RANGE, CommandStatus::InvParLen)?,
        };
        no_more(r, "address_range")?;
        Ok(b)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "system_id", &self.system_id, SYSTEM_ID)?;
        put_cstr(out, "password", &self.password, PASSWORD)?;
        put_cstr(out, "system_type", &self.system_type, SYSTEM_TYPE)?;
        out.push(self.interface_version);
        put_addr(out, "address_range", &self.address_range, ADDRESS_RANGE)
    }
}

/// bind_*_resp (§4.1.2, §4.1.4, §4.1.6): the SMSC's system_id and the sc_interface_version TLV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BindResp {
    /// SMSC identity.
    pub system_id: String,
    /// Optional parameters (sc_interface_version).
    pub tlvs: Vec<Tlv>,
}

impl BindResp {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(BindResp {
            system_id: r.cstr("system_id", SYSTEM_ID, CommandStatus::InvSysId)?,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "system_id", &self.system_id, SYSTEM_ID)?;
        encode_tlvs(&self.tlvs, out)
    }
}

/// outbind (§4.1.7): the SMSC asks a receiver ESME to bind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Outbind {
    /// SMSC identity.
    pub system_id: String,
    /// Password.
    pub password: String,
}

impl Outbind {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let o = Outbind {
            system_id: r.cstr("system_id", SYSTEM_ID, CommandStatus::InvSysId)?,
            password: r.cstr("password", PASSWORD, CommandStatus::InvPaswd)?,
        };
        no_more(r, "password")?;
        Ok(o)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "system_id", &self.system_id, SYSTEM_ID)?;
        put_cstr(out, "password", &self.password, PASSWORD)
    }
}

/// The parameters submit_sm, deliver_sm and submit_multi share, from esm_class to
/// short_message (§4.4.1, §4.5.1, §4.6.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SmParams {
    /// Message mode and type (§5.2.12).
    pub esm_class: EsmClass,
    /// GSM TP-Protocol-Identifier (§5.2.13).
    pub protocol_id: u8,
    /// Priority 0–3 (§5.2.14).
    pub priority_flag: u8,
    /// Absolute or relative time, `YYMMDDhhmmsstnnp` or empty for now (§7.1.1).
    pub schedule_delivery_time: String,
    /// Expiry time, same format, or empty for the SMSC default (§7.1.1).
    pub validity_period: String,
    /// Receipt and acknowledgement requests (§5.2.17).
    pub registered_delivery: RegisteredDelivery,
    /// Replace a message with the same source, destination and service_type (§5.2.18).
    pub replace_if_present_flag: u8,
    /// Character set of short_message (§5.2.19).
    pub data_coding: DataCoding,
    /// Index of a canned message, 0 if unused (§5.2.20).
    pub sm_default_msg_id: u8,
    /// Up to 254 octets of user data (§5.2.22); sm_length on the wire.
    pub short_message: Vec<u8>,
}

impl SmParams {
    fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(SmParams {
            esm_class: EsmClass(r.u8("esm_class")?),
            protocol_id: r.u8("protocol_id")?,
            priority_flag: r.u8("priority_flag")?,
            schedule_delivery_time: r.cstr(
                "schedule_delivery_time",
                TIME,
                CommandStatus::InvSched,
            )?,
            validity_period: r.cstr("validity_period", TIME, CommandStatus::InvExpiry)?,
            registered_delivery: RegisteredDelivery(r.u8("registered_delivery")?),
            replace_if_present_flag: r.u8("replace_if_present_flag")?,
            data_coding: DataCoding(r.u8("data_coding")?),
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: short_message(r)?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Enc {
        out.push(self.esm_class.0);
        out.push(self.protocol_id);
        out.push(self.priority_flag);
        put_cstr(
            out,
            "schedule_delivery_time",
            &self.schedule_delivery_time,
            TIME,
        )?;
        put_cstr(out, "validity_period", &self.validity_period, TIME)?;
        out.push(self.registered_delivery.0);
        out.push(self.replace_if_present_flag);
        out.push(self.data_coding.0);
        out.push(self.sm_default_msg_id);
        put_short_message(out, &self.short_message)
    }
}

/// sm_length then short_message: over 254, or past the body, is ESME_RINVMSGLEN.
fn short_message(r: &mut Reader) -> Result<Vec<u8>, Fault> {
    let len = usize::from(r.u8("sm_length")?);
    if len > MAX_SHORT_MESSAGE {
        return Err(Fault::new(
            "sm_length",
            "above 254",
            CommandStatus::InvMsgLen,
        ));
    }
    if r.rest().len() < len {
        return Err(Fault::new(
            "sm_length",
            "runs past the body",
            CommandStatus::InvMsgLen,
        ));
    }
    Ok(r.take(len, "short_message")?.to_vec())
}

fn put_short_message(out: &mut Vec<u8>, sm: &[u8]) -> Enc {
    if sm.len() > MAX_SHORT_MESSAGE {
        return Err(SmppError::Encode {
            field: "short_message",
            why: "longer than 254 octets (use message_payload)",
        });
    }
    out.push(sm.len() as u8);
    out.extend_from_slice(sm);
    Ok(())
}

/// submit_sm (§4.4.1) and deliver_sm (§4.6.1), which have the same layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Sm {
    /// SMS application service (max 5 characters), empty for the default.
    pub service_type: String,
    /// Originator.
    pub source: Address,
    /// Recipient.
    pub dest: Address,
    /// The shared parameters, short_message among them.
    pub params: SmParams,
    /// Optional parameters.
    pub tlvs: Vec<Tlv>,
}

impl Sm {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(Sm {
            service_type: r.cstr("service_type", SERVICE_TYPE, CommandStatus::InvSerTyp)?,
            source: read_addr(r, "source_addr", ADDR21, CommandStatus::InvSrcAdr)?,
            dest: read_addr(r, "destination_addr", ADDR21, CommandStatus::InvDstAdr)?,
            params: SmParams::decode(r)?,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "service_type", &self.service_type, SERVICE_TYPE)?;
        put_addr(out, "source_addr", &self.source, ADDR21)?;
        put_addr(out, "destination_addr", &self.dest, ADDR21)?;
        self.params.encode(out)?;
        encode_tlvs(&self.tlvs, out)
    }

    /// The user data: message_payload when present, else short_message (§5.3.2.32).
    pub fn payload(&self) -> &[u8] {
        self.tlvs
            .iter()
            .find_map(|t| match t {
                Tlv::MessagePayload(p) => Some(p.as_slice()),
                _ => None,
            })
            .unwrap_or(&self.params.short_message)
    }
}

/// submit_sm_resp, deliver_sm_resp and data_sm_resp (§4.4.2, §4.6.2, §4.7.2): a message id
/// (NULL in deliver_sm_resp) and, in data_sm_resp, TLVs. An empty body (sent by some peers
/// with an error status, as §4.4.2 allows) reads as the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MessageIdResp {
    /// The SMSC's id for the message.
    pub message_id: String,
    /// Optional parameters (data_sm_resp: delivery_failure_reason, network_error_code…).
    pub tlvs: Vec<Tlv>,
}

impl MessageIdResp {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(MessageIdResp {
            message_id: r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        encode_tlvs(&self.tlvs, out)
    }
}

/// One dest_address of submit_multi (§4.5.1.1): dest_flag 1 an SME address, 2 a distribution
/// list name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestAddress {
    /// dest_flag 1.
    Sme(Address),
    /// dest_flag 2: the name of a distribution list held by the SMSC (max 20 characters).
    DistributionList(String),
}

/// submit_multi (§4.5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SubmitMulti {
    /// SMS application service.
    pub service_type: String,
    /// Originator.
    pub source: Address,
    /// 1 to 254 destinations (number_of_dests on the wire).
    pub dests: Vec<DestAddress>,
    /// The shared parameters, short_message among them.
    pub params: SmParams,
    /// Optional parameters.
    pub tlvs: Vec<Tlv>,
}

impl SubmitMulti {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let service_type = r.cstr("service_type", SERVICE_TYPE, CommandStatus::InvSerTyp)?;
        let source = read_addr(r, "source_addr", ADDR21, CommandStatus::InvSrcAdr)?;
        let n = usize::from(r.u8("number_of_dests")?);
        if n > MAX_DESTS {
            return Err(Fault::new(
                "number_of_dests",
                "above 254",
                CommandStatus::InvNumDests,
            ));
        }
        let mut dests = Vec::with_capacity(n);
        for _ in 0..n {
            dests.push(match r.u8("dest_flag")? {
                1 => DestAddress::Sme(read_addr(
                    r,
                    "dest_address",
                    ADDR21,
                    CommandStatus::InvDstAdr,
                )?),
                2 => DestAddress::DistributionList(r.cstr(
                    "dl_name",
                    ADDR21,
                    CommandStatus::InvDlName,
                )?),
                _ => {
                    return Err(Fault::new(
                        "dest_flag",
                        "neither 1 nor 2",
                        CommandStatus::InvDestFlag,
                    ))
                }
            });
        }
        Ok(SubmitMulti {
            service_type,
            source,
            dests,
            params: SmParams::decode(r)?,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "service_type", &self.service_type, SERVICE_TYPE)?;
        put_addr(out, "source_addr", &self.source, ADDR21)?;
        if self.dests.len() > MAX_DESTS {
            return Err(SmppError::Encode {
                field: "number_of_dests",
                why: "above 254",
            });
        }
        out.push(self.dests.len() as u8);
        for d in &self.dests {
            match d {
                DestAddress::Sme(a) => {
                    out.push(1);
                    put_addr(out, "dest_address", a, ADDR21)?;
                }
                DestAddress::DistributionList(name) => {
                    out.push(2);
                    put_cstr(out, "dl_name", name, ADDR21)?;
                }
            }
        }
        self.params.encode(out)?;
        encode_tlvs(&self.tlvs, out)
    }
}

/// One unsuccess_sme of submit_multi_resp (§4.5.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnsuccessSme {
    /// The destination that failed.
    pub dest: Address,
    /// Why, as a command_status.
    pub error_status: CommandStatus,
}

/// submit_multi_resp (§4.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SubmitMultiResp {
    /// The SMSC's id for the message.
    pub message_id: String,
    /// Destinations the SMSC refused (no_unsuccess on the wire).
    pub unsuccess: Vec<UnsuccessSme>,
    /// Optional parameters (SMPP 5.0 allows some; 3.4 none).
    pub tlvs: Vec<Tlv>,
}

impl SubmitMultiResp {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let message_id = r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?;
        let n = usize::from(r.u8("no_unsuccess")?);
        let mut unsuccess = Vec::with_capacity(n);
        for _ in 0..n {
            unsuccess.push(UnsuccessSme {
                dest: read_addr(r, "unsuccess_sme", ADDR21, CommandStatus::InvDstAdr)?,
                error_status: CommandStatus::from_code(r.u32("error_status_code")?),
            });
        }
        Ok(SubmitMultiResp {
            message_id,
            unsuccess,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        let n = u8::try_from(self.unsuccess.len()).map_err(|_| SmppError::Encode {
            field: "no_unsuccess",
            why: "above 255",
        })?;
        out.push(n);
        for u in &self.unsuccess {
            put_addr(out, "unsuccess_sme", &u.dest, ADDR21)?;
            out.extend_from_slice(&u.error_status.code().to_be_bytes());
        }
        encode_tlvs(&self.tlvs, out)
    }
}

/// data_sm (§4.7.1): like submit_sm without short_message; the data goes in message_payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DataSm {
    /// SMS application service.
    pub service_type: String,
    /// Originator (max 64 characters).
    pub source: Address,
    /// Recipient (max 64 characters).
    pub dest: Address,
    /// Message mode and type.
    pub esm_class: EsmClass,
    /// Receipt requests.
    pub registered_delivery: RegisteredDelivery,
    /// Character set of the payload.
    pub data_coding: DataCoding,
    /// Optional parameters, message_payload among them.
    pub tlvs: Vec<Tlv>,
}

impl DataSm {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(DataSm {
            service_type: r.cstr("service_type", SERVICE_TYPE, CommandStatus::InvSerTyp)?,
            source: read_addr(r, "source_addr", ADDR65, CommandStatus::InvSrcAdr)?,
            dest: read_addr(r, "destination_addr", ADDR65, CommandStatus::InvDstAdr)?,
            esm_class: EsmClass(r.u8("esm_class")?),
            registered_delivery: RegisteredDelivery(r.u8("registered_delivery")?),
            data_coding: DataCoding(r.u8("data_coding")?),
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "service_type", &self.service_type, SERVICE_TYPE)?;
        put_addr(out, "source_addr", &self.source, ADDR65)?;
        put_addr(out, "destination_addr", &self.dest, ADDR65)?;
        out.push(self.esm_class.0);
        out.push(self.registered_delivery.0);
        out.push(self.data_coding.0);
        encode_tlvs(&self.tlvs, out)
    }
}

/// query_sm (§4.8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QuerySm {
    /// The SMSC's id of the message asked about.
    pub message_id: String,
    /// Its originator, as submitted.
    pub source: Address,
}

impl QuerySm {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let q = QuerySm {
            message_id: r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?,
            source: read_addr(r, "source_addr", ADDR21, CommandStatus::InvSrcAdr)?,
        };
        no_more(r, "source_addr")?;
        Ok(q)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        put_addr(out, "source_addr", &self.source, ADDR21)
    }
}

/// query_sm_resp (§4.8.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuerySmResp {
    /// The id asked about.
    pub message_id: String,
    /// When the message reached its final state, empty if it has not (§7.1.1 format).
    pub final_date: String,
    /// Its state (§5.2.28).
    pub message_state: MessageState,
    /// Network error code, 0 if none.
    pub error_code: u8,
}

impl Default for QuerySmResp {
    fn default() -> Self {
        QuerySmResp {
            message_id: String::new(),
            final_date: String::new(),
            message_state: MessageState::Unknown,
            error_code: 0,
        }
    }
}

impl QuerySmResp {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let q = QuerySmResp {
            message_id: r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?,
            final_date: r.cstr("final_date", TIME, CommandStatus::InvParLen)?,
            message_state: MessageState::from_code(r.u8("message_state")?),
            error_code: r.u8("error_code")?,
        };
        no_more(r, "error_code")?;
        Ok(q)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        put_cstr(out, "final_date", &self.final_date, TIME)?;
        out.push(self.message_state.code());
        out.push(self.error_code);
        Ok(())
    }
}

/// cancel_sm (§4.9.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CancelSm {
    /// With an empty message_id: cancel the messages of this service type.
    pub service_type: String,
    /// The message to cancel, or empty.
    pub message_id: String,
    /// Originator, as submitted.
    pub source: Address,
    /// Recipient, as submitted.
    pub dest: Address,
}

impl CancelSm {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let c = CancelSm {
            service_type: r.cstr("service_type", SERVICE_TYPE, CommandStatus::InvSerTyp)?,
            message_id: r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?,
            source: read_addr(r, "source_addr", ADDR21, CommandStatus::InvSrcAdr)?,
            dest: read_addr(r, "destination_addr", ADDR21, CommandStatus::InvDstAdr)?,
        };
        no_more(r, "destination_addr")?;
        Ok(c)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "service_type", &self.service_type, SERVICE_TYPE)?;
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        put_addr(out, "source_addr", &self.source, ADDR21)?;
        put_addr(out, "destination_addr", &self.dest, ADDR21)
    }
}

/// replace_sm (§4.10.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReplaceSm {
    /// The message to replace.
    pub message_id: String,
    /// Its originator, as submitted.
    pub source: Address,
    /// New scheduled delivery time, or empty to keep.
    pub schedule_delivery_time: String,
    /// New validity period, or empty to keep.
    pub validity_period: String,
    /// New receipt requests.
    pub registered_delivery: RegisteredDelivery,
    /// New canned message index.
    pub sm_default_msg_id: u8,
    /// New text, at most 254 octets.
    pub short_message: Vec<u8>,
}

impl ReplaceSm {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        let x = ReplaceSm {
            message_id: r.cstr("message_id", MESSAGE_ID, CommandStatus::InvMsgId)?,
            source: read_addr(r, "source_addr", ADDR21, CommandStatus::InvSrcAdr)?,
            schedule_delivery_time: r.cstr(
                "schedule_delivery_time",
                TIME,
                CommandStatus::InvSched,
            )?,
            validity_period: r.cstr("validity_period", TIME, CommandStatus::InvExpiry)?,
            registered_delivery: RegisteredDelivery(r.u8("registered_delivery")?),
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: short_message(r)?,
        };
        no_more(r, "short_message")?;
        Ok(x)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_cstr(out, "message_id", &self.message_id, MESSAGE_ID)?;
        put_addr(out, "source_addr", &self.source, ADDR21)?;
        put_cstr(
            out,
            "schedule_delivery_time",
            &self.schedule_delivery_time,
            TIME,
        )?;
        put_cstr(out, "validity_period", &self.validity_period, TIME)?;
        out.push(self.registered_delivery.0);
        out.push(self.sm_default_msg_id);
        put_short_message(out, &self.short_message)
    }
}

/// alert_notification (§4.12.1): a mobile that had set_dpf became available.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AlertNotification {
    /// The mobile now available (max 64 characters).
    pub source: Address,
    /// The ESME that asked to be told (max 64 characters).
    pub esme: Address,
    /// Optional parameters (ms_availability_status).
    pub tlvs: Vec<Tlv>,
}

impl AlertNotification {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, Fault> {
        Ok(AlertNotification {
            source: read_addr(r, "source_addr", ADDR65, CommandStatus::InvSrcAdr)?,
            esme: read_addr(r, "esme_addr", ADDR65, CommandStatus::InvDstAdr)?,
            tlvs: decode_tlvs(r.rest())?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Enc {
        put_addr(out, "source_addr", &self.source, ADDR65)?;
        put_addr(out, "esme_addr", &self.esme, ADDR65)?;
        encode_tlvs(&self.tlvs, out)
    }
}
