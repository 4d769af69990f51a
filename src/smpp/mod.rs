//! SMPP 3.4 codec (SMPP v3.4 Issue 1.2, §3–§5 and Appendix B): the PDUs an SMSC and its
//! ESMEs exchange over TCP, as typed values with `decode` / `encode`, a stream framer, the
//! command_status table, the optional parameters (TLVs) and the delivery receipt text. Pure
//! functions over bytes, no I/O: the SMSC node drives a socket with them.
//!
//! Errors and the answer each calls for ([`SmppError::reply`]). §4.3 reserves generic_nack
//! for a PDU whose header cannot be used; a PDU whose header is good but whose body is not
//! is answered with its own response carrying the status of the fault, so the ESME matches
//! it to the request (§4.3 names only an invalid command_length and an unknown command_id as
//! generic_nack cases):
//!
//! | fault                                                   | answer                        |
//! |---------------------------------------------------------|-------------------------------|
//! | command_length < 16, > the limit, or ≠ the octets given | generic_nack ESME_RINVCMDLEN  |
//! | unknown command_id                                      | generic_nack ESME_RINVCMDID   |
//! | body ends before a mandatory field, or octets after the last one of a command without TLVs | `_resp` ESME_RINVCMDLEN |
//! | sm_length > 254 or past the body                        | `_resp` ESME_RINVMSGLEN       |
//! | C-Octet String without NUL within its maximum size      | `_resp` with the field's status: RINVSYSID, RINVPASWD, RINVSYSTYP, RINVSERTYP, RINVSRCADR, RINVDSTADR, RINVMSGID, RINVSCHED, RINVEXPIRY, RINVDLNAME, else RINVPARLEN |
//! | TLV header cut short, or TLV length past the body       | `_resp` ESME_RINVOPTPARSTREAM (5.0: RINVTLVSTREAM) |
//! | TLV length wrong for its tag (§5.3.2)                   | `_resp` ESME_RINVPARLEN (5.0: RINVTLVLEN) |
//! | TLV value invalid (NUL inside a string TLV)             | `_resp` ESME_RINVOPTPARAMVAL  |
//! | submit_multi: number_of_dests > 254 / dest_flag not 1 or 2 | `_resp` RINVNUMDESTS / RINVDESTFLAG |
//!
//! A bad body in a response, outbind or alert_notification (which have no response of their
//! own) gets a generic_nack with the status; a bad generic_nack gets nothing, so that two
//! peers never nack each other's nacks.

mod body;
mod pdu;
pub mod receipt;
mod status;
mod tlv;
mod types;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;

pub use body::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, DestAddress, MessageIdResp, Outbind,
    QuerySm, QuerySmResp, ReplaceSm, Sm, SmParams, SubmitMulti, SubmitMultiResp, UnsuccessSme,
    MAX_DESTS, MAX_SHORT_MESSAGE,
};
pub use pdu::{frame, Body, CommandId, Framing, Header, Pdu, DEFAULT_MAX_PDU, HEADER_LEN};
pub use receipt::DeliveryReceipt;
pub use status::CommandStatus;
pub use tlv::{find as find_tlv, NetworkErrorCode, Tlv};
pub use types::{Address, DataCoding, EsmClass, MessageState, RegisteredDelivery};

/// SMPP 3.4 interface_version (§5.2.4).
pub const INTERFACE_VERSION: u8 = 0x34;

/// Why bytes are not an SMPP PDU, or a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmppError {
    /// Fewer than the 16 octets of a header.
    #[error("SMPP PDU of {0} octets is shorter than its 16-octet header")]
    Short(usize),
    /// command_length below 16, above the framer limit, or not the octets given.
    #[error("SMPP command_length {length} invalid ({actual} octets given)")]
    BadLength {
        /// command_length from the header.
        length: u32,
        /// Octets actually given to the decoder.
        actual: usize,
        /// sequence_number from the header, echoed in the generic_nack.
        sequence: u32,
    },
    /// A command_id SMPP 3.4 does not define.
    #[error("unknown SMPP command_id 0x{command_id:08X}")]
    UnknownCommand {
        /// The command_id.
        command_id: u32,
        /// Its sequence_number.
        sequence: u32,
    },
    /// The header is good, the body is not.
    #[error("SMPP {}: {field}: {why} ({status})", command.name())]
    Body {
        /// The command whose body failed.
        command: CommandId,
        /// Its sequence_number.
        sequence: u32,
        /// The parameter at fault.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
        /// The command_status to answer with.
        status: CommandStatus,
    },
    /// A delivery receipt text (Appendix B) that cannot be read.
    #[error("SMPP delivery receipt: {0}")]
    Receipt(&'static str),
    /// A value that the peer's decoder would refuse (too long, NUL inside…).
    #[error("cannot encode SMPP {field}: {why}")]
    Encode {
        /// The parameter.
        field: &'static str,
        /// Why.
        why: &'static str,
    },
}

impl SmppError {
    /// The command_status a server answers this error with.
    pub fn status(&self) -> CommandStatus {
        match self {
            SmppError::Short(_) | SmppError::BadLength { .. } => CommandStatus::InvCmdLen,
            SmppError::UnknownCommand { .. } => CommandStatus::InvCmdId,
            SmppError::Body { status, .. } => *status,
            SmppError::Receipt(_) | SmppError::Encode { .. } => CommandStatus::SysErr,
        }
    }

    /// The PDU to send back for bytes that failed to decode (see the module table), or
    /// `None` when nothing should be sent (a bad generic_nack, an encoding error).
    pub fn reply(&self) -> Option<Pdu> {
        let nack = |sequence| Pdu {
            status: self.status(),
            sequence,
            body: Body::GenericNack,
        };
        match self {
            SmppError::Short(_) => Some(nack(0)),
            SmppError::BadLength { sequence, .. } | SmppError::UnknownCommand { sequence, .. } => {
                Some(nack(*sequence))
            }
            SmppError::Body {
                command, sequence, ..
            } => match command.response().and_then(Body::empty_response) {
                Some(body) => Some(Pdu {
                    status: self.status(),
                    sequence: *sequence,
                    body,
                }),
                None if *command == CommandId::GenericNack => None,
                None => Some(nack(*sequence)),
            },
            SmppError::Receipt(_) | SmppError::Encode { .. } => None,
        }
    }
}

/// The generic_nack ESME_RINVCMDLEN for a stream the framer refused ([`Framing::BadLength`]).
pub fn bad_length_nack(h: &Header) -> Pdu {
    Pdu {
        status: CommandStatus::InvCmdLen,
        sequence: h.sequence_number,
        body: Body::GenericNack,
    }
}
