//! SMPP 3.4 PDUs (§3.2, §4): the 16-octet header, the framer, every command as a [`Body`]
//! variant, and [`Pdu::decode`] / [`Pdu::encode`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                command_length (header + body)                 |
//! |                command_id (bit 31 set: a response)            |
//! |                command_status (0 in requests)                 |
//! |                sequence_number (1..0x7FFFFFFF)                |
//! |                body: mandatory parameters, then TLVs ...      |
//! ```

use super::body::*;
use super::status::CommandStatus;
use super::wire::Reader;
use super::SmppError;

/// Octets in the header (§3.2).
pub const HEADER_LEN: usize = 16;
/// A framer limit that fits a data_sm or submit_sm with a full 64K message_payload.
pub const DEFAULT_MAX_PDU: usize = 64 * 1024 + 1024;

macro_rules! command_ids {
    ($($variant:ident = $value:literal, $name:literal;)*) => {
        /// command_id (SMPP 3.4 §5.1.2.1 table 5-1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandId {
            $(#[doc = $name] $variant,)*
        }

        impl CommandId {
            /// The value on the wire.
            pub fn code(self) -> u32 {
                match self {
                    $(Self::$variant => $value,)*
                }
            }

            /// The command for a wire value, `None` for one 3.4 does not define.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The spec name (`submit_sm_resp`), as Wireshark shows it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

command_ids! {
    GenericNack = 0x8000_0000, "generic_nack";
    BindReceiver = 0x0000_0001, "bind_receiver";
    BindReceiverResp = 0x8000_0001, "bind_receiver_resp";
    BindTransmitter = 0x0000_0002, "bind_transmitter";
    BindTransmitterResp = 0x8000_0002, "bind_transmitter_resp";
    QuerySm = 0x0000_0003, "query_sm";
    QuerySmResp = 0x8000_0003, "query_sm_resp";
    SubmitSm = 0x0000_0004, "submit_sm";
    SubmitSmResp = 0x8000_0004, "submit_sm_resp";
    DeliverSm = 0x0000_0005, "deliver_sm";
    DeliverSmResp = 0x8000_0005, "deliver_sm_resp";
    Unbind = 0x0000_0006, "unbind";
    UnbindResp = 0x8000_0006, "unbind_resp";
    ReplaceSm = 0x0000_0007, "replace_sm";
    ReplaceSmResp = 0x8000_0007, "replace_sm_resp";
    CancelSm = 0x0000_0008, "cancel_sm";
    CancelSmResp = 0x8000_0008, "cancel_sm_resp";
    BindTransceiver = 0x0000_0009, "bind_transceiver";
    BindTransceiverResp = 0x8000_0009, "bind_transceiver_resp";
    Outbind = 0x0000_000B, "outbind";
    EnquireLink = 0x0000_0015, "enquire_link";
    EnquireLinkResp = 0x8000_0015, "enquire_link_resp";
    SubmitMulti = 0x0000_0021, "submit_multi";
    SubmitMultiResp = 0x8000_0021, "submit_multi_resp";
    AlertNotification = 0x0000_0102, "alert_notification";
    DataSm = 0x0000_0103, "data_sm";
    DataSmResp = 0x8000_0103, "data_sm_resp";
}

impl CommandId {
    /// Bit 31: a response (§5.1.2.1).
    pub fn is_response(self) -> bool {
        self.code() & 0x8000_0000 != 0
    }

    /// The response this request expects; `None` for responses, outbind and
    /// alert_notification, which have none (§4.1.7, §4.12).
    pub fn response(self) -> Option<Self> {
        match self {
            Self::Outbind | Self::AlertNotification => None,
            c if c.is_response() => None,
            c => Self::from_code(c.code() | 0x8000_0000),
        }
    }
}

/// The header of §3.2, read without looking at the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Octets in the whole PDU, header included.
    pub command_length: u32,
    /// The raw command_id (see [`CommandId::from_code`]).
    pub command_id: u32,
    /// The raw command_status.
    pub command_status: u32,
    /// Matches a response to its request.
    pub sequence_number: u32,
}

impl Header {
    /// The header at the start of `buf`, if 16 octets are there.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        let w = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(buf.get(i..i + 4)?.try_into().ok()?))
        };
        Some(Header {
            command_length: w(0)?,
            command_id: w(4)?,
            command_status: w(8)?,
            sequence_number: w(12)?,
        })
    }
}

/// What [`frame`] found at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not a whole PDU yet: read more.
    Incomplete,
    /// A whole PDU of this many octets (pass `&buf[..n]` to [`Pdu::decode`]).
    Complete(usize),
    /// command_length below 16 or above the limit: answer generic_nack with ESME_RINVCMDLEN
    /// ([`SmppError::reply`]) and close, as the stream cannot be re-synchronised.
    BadLength(Header),
}

/// Frames one PDU off the front of a TCP stream buffer (§3.2: command_length counts the whole
/// PDU). `max_len` bounds what a peer can make us buffer.
pub fn frame(buf: &[u8], max_len: usize) -> Framing {
    let Some(h) = Header::peek(buf) else {
        return Framing::Incomplete;
    };
    let n = h.command_length as usize;
    if n < HEADER_LEN || n > max_len {
        return Framing::BadLength(h);
    }
    if buf.len() < n {
        Framing::Incomplete
    } else {
        Framing::Complete(n)
    }
}

/// A PDU body, one variant per SMPP 3.4 command (§4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Body {
    GenericNack,
    BindReceiver(Bind),
    BindReceiverResp(BindResp),
    BindTransmitter(Bind),
    BindTransmitterResp(BindResp),
    QuerySm(QuerySm),
    QuerySmResp(QuerySmResp),
    SubmitSm(Sm),
    SubmitSmResp(MessageIdResp),
    DeliverSm(Sm),
    DeliverSmResp(MessageIdResp),
    Unbind,
    UnbindResp,
    ReplaceSm(ReplaceSm),
    ReplaceSmResp,
    CancelSm(CancelSm),
    CancelSmResp,
    BindTransceiver(Bind),
    BindTransceiverResp(BindResp),
    Outbind(Outbind),
    EnquireLink,
    EnquireLinkResp,
    SubmitMulti(SubmitMulti),
    SubmitMultiResp(SubmitMultiResp),
    AlertNotification(AlertNotification),
    DataSm(DataSm),
    DataSmResp(MessageIdResp),
}

impl Body {
    /// Its command_id.
    pub fn command_id(&self) -> CommandId {
        use CommandId as C;
        match self {
            Body::GenericNack => C::GenericNack,
            Body::BindReceiver(_) => C::BindReceiver,
            Body::BindReceiverResp(_) => C::BindReceiverResp,
            Body::BindTransmitter(_) => C::BindTransmitter,
            Body::BindTransmitterResp(_) => C::BindTransmitterResp,
            Body::QuerySm(_) => C::QuerySm,
            Body::QuerySmResp(_) => C::QuerySmResp,
            Body::SubmitSm(_) => C::SubmitSm,
            Body::SubmitSmResp(_) => C::SubmitSmResp,
            Body::DeliverSm(_) => C::DeliverSm,
            Body::DeliverSmResp(_) => C::DeliverSmResp,
            Body::Unbind => C::Unbind,
            Body::UnbindResp => C::UnbindResp,
            Body::ReplaceSm(_) => C::ReplaceSm,
            Body::ReplaceSmResp => C::ReplaceSmResp,
            Body::CancelSm(_) => C::CancelSm,
            Body::CancelSmResp => C::CancelSmResp,
            Body::BindTransceiver(_) => C::BindTransceiver,
            Body::BindTransceiverResp(_) => C::BindTransceiverResp,
            Body::Outbind(_) => C::Outbind,
            Body::EnquireLink => C::EnquireLink,
            Body::EnquireLinkResp => C::EnquireLinkResp,
            Body::SubmitMulti(_) => C::SubmitMulti,
            Body::SubmitMultiResp(_) => C::SubmitMultiResp,
            Body::AlertNotification(_) => C::AlertNotification,
            Body::DataSm(_) => C::DataSm,
            Body::DataSmResp(_) => C::DataSmResp,
        }
    }

    /// An empty body of the response command `id` (all fields default); `None` if `id` is
    /// a request.
    pub fn empty_response(id: CommandId) -> Option<Body> {
        use CommandId as C;
        Some(match id {
            C::GenericNack => Body::GenericNack,
            C::BindReceiverResp => Body::BindReceiverResp(BindResp::default()),
            C::BindTransmitterResp => Body::BindTransmitterResp(BindResp::default()),
            C::BindTransceiverResp => Body::BindTransceiverResp(BindResp::default()),
            C::QuerySmResp => Body::QuerySmResp(QuerySmResp::default()),
            C::SubmitSmResp => Body::SubmitSmResp(MessageIdResp::default()),
            C::DeliverSmResp => Body::DeliverSmResp(MessageIdResp::default()),
            C::DataSmResp => Body::DataSmResp(MessageIdResp::default()),
            C::UnbindResp => Body::UnbindResp,
            C::ReplaceSmResp => Body::ReplaceSmResp,
            C::CancelSmResp => Body::CancelSmResp,
            C::EnquireLinkResp => Body::EnquireLinkResp,
            C::SubmitMultiResp => Body::SubmitMultiResp(SubmitMultiResp::default()),
            _ => return None,
        })
    }

    /// A response whose body may be left out when its status is not ESME_ROK (§4.4.2 and the
    /// like): the default value of such a body is encoded as nothing.
    fn omittable_when_default(&self) -> bool {
        match self {
            Body::BindReceiverResp(b)
            | Body::BindTransmitterResp(b)
            | Body::BindTransceiverResp(b) => *b == BindResp::default(),
            Body::SubmitSmResp(m) | Body::DeliverSmResp(m) | Body::DataSmResp(m) => {
                *m == MessageIdResp::default()
            }
            Body::SubmitMultiResp(m) => *m == SubmitMultiResp::default(),
            Body::QuerySmResp(q) => *q == QuerySmResp::default(),
            _ => false,
        }
    }

    fn decode(id: CommandId, body: &[u8]) -> Result<Body, super::wire::Fault> {
        use CommandId as C;
        let r = &mut Reader::new(body);
        // A response with an empty body reads as its default (some peers send none with an
        // error status; §4.4.2 says the body is not returned then).
        if body.is_empty() {
            if let Some(b) = Body::empty_response(id) {
                return Ok(b);
            }
        }
        let b = match id {
            C::BindReceiver => Body::BindReceiver(Bind::decode(r)?),
            C::BindTransmitter => Body::BindTransmitter(Bind::decode(r)?),
            C::BindTransceiver => Body::BindTransceiver(Bind::decode(r)?),
            C::BindReceiverResp => Body::BindReceiverResp(BindResp::decode(r)?),
            C::BindTransmitterResp => Body::BindTransmitterResp(BindResp::decode(r)?),
            C::BindTransceiverResp => Body::BindTransceiverResp(BindResp::decode(r)?),
            C::Outbind => Body::Outbind(Outbind::decode(r)?),
            C::QuerySm => Body::QuerySm(QuerySm::decode(r)?),
            C::QuerySmResp => Body::QuerySmResp(QuerySmResp::decode(r)?),
            C::SubmitSm => Body::SubmitSm(Sm::decode(r)?),
            C::DeliverSm => Body::DeliverSm(Sm::decode(r)?),
            C::SubmitSmResp => Body::SubmitSmResp(MessageIdResp::decode(r)?),
            C::DeliverSmResp => Body::DeliverSmResp(MessageIdResp::decode(r)?),
            C::DataSmResp => Body::DataSmResp(MessageIdResp::decode(r)?),
            C::ReplaceSm => Body::ReplaceSm(ReplaceSm::decode(r)?),
            C::CancelSm => Body::CancelSm(CancelSm::decode(r)?),
            C::SubmitMulti => Body::SubmitMulti(SubmitMulti::decode(r)?),
            C::SubmitMultiResp => Body::SubmitMultiResp(SubmitMultiResp::decode(r)?),
            C::AlertNotification => Body::AlertNotification(AlertNotification::decode(r)?),
            C::DataSm => Body::DataSm(DataSm::decode(r)?),
            // Header-only commands (§4.2, §4.3, §4.11 and the empty responses).
            C::GenericNack
            | C::Unbind
            | C::UnbindResp
            | C::ReplaceSmResp
            | C::CancelSmResp
            | C::EnquireLink
            | C::EnquireLinkResp => {
                if !body.is_empty() {
                    return Err(super::wire::Fault::new(
                        "body",
                        "a header-only command with a body",
                        CommandStatus::InvCmdLen,
                    ));
                }
                match id {
                    C::Unbind => Body::Unbind,
                    C::EnquireLink => Body::EnquireLink,
                    _ => Body::empty_response(id).unwrap_or(Body::GenericNack),
                }
            }
        };
        Ok(b)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), SmppError> {
        match self {
            Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
                b.encode(out)
            }
            Body::BindReceiverResp(b)
            | Body::BindTransmitterResp(b)
            | Body::BindTransceiverResp(b) => b.encode(out),
            Body::Outbind(o) => o.encode(out),
            Body::QuerySm(q) => q.encode(out),
            Body::QuerySmResp(q) => q.encode(out),
            Body::SubmitSm(s) | Body::DeliverSm(s) => s.encode(out),
            Body::SubmitSmResp(m) | Body::DeliverSmResp(m) | Body::DataSmResp(m) => m.encode(out),
            Body::ReplaceSm(x) => x.encode(out),
            Body::CancelSm(c) => c.encode(out),
            Body::SubmitMulti(s) => s.encode(out),
            Body::SubmitMultiResp(s) => s.encode(out),
            Body::AlertNotification(a) => a.encode(out),
            Body::DataSm(d) => d.encode(out),
            Body::GenericNack
            | Body::Unbind
            | Body::UnbindResp
            | Body::ReplaceSmResp
            | Body::CancelSmResp
            | Body::EnquireLink
            | Body::EnquireLinkResp => Ok(()),
        }
    }
}

/// One SMPP PDU: status and sequence number from the header, the command in its body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pdu {
    /// command_status: ESME_ROK in requests (§3.2).
    pub status: CommandStatus,
    /// sequence_number, echoed in the response.
    pub sequence: u32,
    /// The command and its parameters.
    pub body: Body,
}

impl Pdu {
    /// A request (or a response with ESME_ROK).
    pub fn new(sequence: u32, body: Body) -> Self {
        Pdu {
            status: CommandStatus::Ok,
            sequence,
            body,
        }
    }

    /// Its command_id.
    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }

    /// An empty response to this request with `status`, same sequence number; `None` for
    /// responses, outbind and alert_notification.
    pub fn response(&self, status: CommandStatus) -> Option<Pdu> {
        let body = Body::empty_response(self.command_id().response()?)?;
        Some(Pdu {
            status,
            sequence: self.sequence,
            body,
        })
    }

    /// Decodes exactly one PDU (a slice [`frame`] returned). See [`SmppError::reply`] for the
    /// answer each error calls for.
    pub fn decode(buf: &[u8]) -> Result<Pdu, SmppError> {
        let h = Header::peek(buf).ok_or(SmppError::Short(buf.len()))?;
        if h.command_length as usize != buf.len() || buf.len() < HEADER_LEN {
            return Err(SmppError::BadLength {
                length: h.command_length,
                actual: buf.len(),
                sequence: h.sequence_number,
            });
        }
        let id = CommandId::from_code(h.command_id).ok_or(SmppError::UnknownCommand {
            command_id: h.command_id,
            sequence: h.sequence_number,
        })?;
        let body = Body::decode(id, &buf[HEADER_LEN..]).map_err(|f| SmppError::Body {
            command: id,
            sequence: h.sequence_number,
            field: f.field,
            why: f.why,
            status: f.status,
        })?;
        Ok(Pdu {
            status: CommandStatus::from_code(h.command_status),
            sequence: h.sequence_number,
            body,
        })
    }

    /// The PDU on the wire. Fails only on values the peer would refuse: a C-Octet String over
    /// its maximum or with a NUL inside, a short_message over 254 octets, more than 254
    /// destinations, a TLV value of the wrong size.
    pub fn encode(&self) -> Result<Vec<u8>, SmppError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.command_id().code().to_be_bytes());
        out.extend_from_slice(&self.status.code().to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        if self.status.is_ok() || !self.body.omittable_when_default() {
            self.body.encode(&mut out)?;
        }
        let len = u32::try_from(out.len()).map_err(|_| SmppError::Encode {
            field: "command_length",
            why: "PDU longer than 4 GiB",
        })?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }
}
