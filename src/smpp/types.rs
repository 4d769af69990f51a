//! Small typed views of SMPP 3.4 one-octet fields: esm_class (§5.2.12), registered_delivery
//! (§5.2.17), data_coding (§5.2.19), message_state (§5.2.28) and the TON/NPI address triple
//! (§5.2.5, §5.2.6).

/// An address with its type of number and numbering plan (`*_addr_ton`, `*_addr_npi`,
/// `*_addr`, SMPP 3.4 §5.2.5–5.2.8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Address {
    /// Type of number: 0 unknown, 1 international, 2 national, 5 alphanumeric… (§5.2.5).
    pub ton: u8,
    /// Numbering plan indicator: 0 unknown, 1 ISDN (E.163/E.164)… (§5.2.6).
    pub npi: u8,
    /// The address digits or text.
    pub addr: String,
}

impl Address {
    /// An international E.164 number (TON 1, NPI 1).
    pub fn international(digits: &str) -> Self {
        Address {
            ton: 1,
            npi: 1,
            addr: digits.to_string(),
        }
    }

    /// An alphanumeric sender (TON 5, NPI 0).
    pub fn alphanumeric(text: &str) -> Self {
        Address {
            ton: 5,
            npi: 0,
            addr: text.to_string(),
        }
    }
}

/// esm_class (SMPP 3.4 §5.2.12): messaging mode (bits 1–0), message type (bits 5–2) and GSM
/// network features (bits 7–6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EsmClass(pub u8);

impl EsmClass {
    /// Store and forward mode (bits 1–0 = 11).
    pub const STORE_AND_FORWARD: u8 = 0x03;
    /// Datagram mode (bits 1–0 = 01).
    pub const DATAGRAM: u8 = 0x01;
    /// Transaction (forward) mode (bits 1–0 = 10).
    pub const FORWARD: u8 = 0x02;
    /// Message type: SMSC delivery receipt (bits 5–2 = 0001).
    pub const DELIVERY_RECEIPT: u8 = 0x04;
    /// Message type: SME delivery acknowledgement (0010).
    pub const DELIVERY_ACK: u8 = 0x08;
    /// Message type: SME manual/user acknowledgement (0100).
    pub const USER_ACK: u8 = 0x10;
    /// Message type: conversation abort (0110, Korean CDMA).
    pub const CONVERSATION_ABORT: u8 = 0x18;
    /// Message type: intermediate delivery notification (1000).
    pub const INTERMEDIATE_NOTIFICATION: u8 = 0x20;
    /// GSM: the short message starts with a User Data Header (UDHI, bit 6).
    pub const UDHI: u8 = 0x40;
    /// GSM: reply path set (bit 7).
    pub const REPLY_PATH: u8 = 0x80;

    /// Messaging mode, bits 1–0.
    pub fn mode(self) -> u8 {
        self.0 & 0x03
    }

    /// Message type, bits 5–2 kept in place (compare with [`EsmClass::DELIVERY_RECEIPT`]…).
    pub fn message_type(self) -> u8 {
        self.0 & 0x3C
    }

    /// A deliver_sm carrying an SMSC delivery receipt (Appendix B).
    pub fn is_delivery_receipt(self) -> bool {
        self.message_type() == Self::DELIVERY_RECEIPT
    }

    /// The short_message (or message_payload) starts with a User Data Header.
    pub fn udhi(self) -> bool {
        self.0 & Self::UDHI != 0
    }
}

/// registered_delivery (SMPP 3.4 §5.2.17): SMSC receipt (bits 1–0), SME acknowledgement
/// (bits 3–2), intermediate notification (bit 4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegisteredDelivery(pub u8);

impl RegisteredDelivery {
    /// No SMSC delivery receipt.
    pub const NONE: u8 = 0x00;
    /// A receipt on final outcome, success or failure (bits 1–0 = 01).
    pub const ON_FINAL: u8 = 0x01;
    /// A receipt on failure only (bits 1–0 = 10).
    pub const ON_FAILURE: u8 = 0x02;
    /// Intermediate notification requested (bit 4).
    pub const INTERMEDIATE: u8 = 0x10;

    /// SMSC delivery receipt bits 1–0: 0 none, 1 success or failure, 2 failure.
    pub fn smsc_receipt(self) -> u8 {
        self.0 & 0x03
    }

    /// Whether a receipt is due for a message that ended delivered (`true`) or failed.
    pub fn wants_receipt(self, delivered: bool) -> bool {
        match self.smsc_receipt() {
            1 => true,
            2 => !delivered,
            _ => false,
        }
    }

    /// SME originated acknowledgement bits 3–2 (0 none, 1 delivery, 2 manual/user, 3 both).
    pub fn sme_ack(self) -> u8 {
        (self.0 >> 2) & 0x03
    }

    /// Intermediate notification requested (bit 4).
    pub fn intermediate(self) -> bool {
        self.0 & Self::INTERMEDIATE != 0
    }
}

/// data_coding (SMPP 3.4 §5.2.19).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DataCoding(pub u8);

impl DataCoding {
    /// SMSC default alphabet (GSM 03.38 on most SMSCs).
    pub const DEFAULT: Self = DataCoding(0x00);
    /// IA5 (CCITT T.50) / ASCII.
    pub const IA5: Self = DataCoding(0x01);
    /// Octet unspecified (8-bit binary).
    pub const BINARY: Self = DataCoding(0x02);
    /// Latin 1 (ISO-8859-1).
    pub const LATIN1: Self = DataCoding(0x03);
    /// Octet unspecified (8-bit binary), the other code.
    pub const BINARY2: Self = DataCoding(0x04);
    /// JIS (X 0208-1990).
    pub const JIS: Self = DataCoding(0x05);
    /// Cyrillic (ISO-8859-5).
    pub const CYRILLIC: Self = DataCoding(0x06);
    /// Latin/Hebrew (ISO-8859-8).
    pub const HEBREW: Self = DataCoding(0x07);
    /// UCS2 (ISO/IEC-10646), big endian.
    pub const UCS2: Self = DataCoding(0x08);
    /// Pictogram encoding.
    pub const PICTOGRAM: Self = DataCoding(0x09);
    /// ISO-2022-JP (music codes).
    pub const ISO_2022_JP: Self = DataCoding(0x0A);
    /// Extended Kanji JIS (X 0212-1990).
    pub const KANJI: Self = DataCoding(0x0D);
    /// KS C 5601.
    pub const KSC5601: Self = DataCoding(0x0E);

    /// The name of the coding as §5.2.19 lists it, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "SMSC default alphabet",
            0x01 => "IA5 (ASCII)",
            0x02 | 0x04 => "octet unspecified (8-bit binary)",
            0x03 => "Latin 1 (ISO-8859-1)",
            0x05 => "JIS (X 0208-1990)",
            0x06 => "Cyrillic (ISO-8859-5)",
            0x07 => "Latin/Hebrew (ISO-8859-8)",
            0x08 => "UCS2 (ISO/IEC-10646)",
            0x09 => "Pictogram",
            0x0A => "ISO-2022-JP",
            0x0D => "Extended Kanji JIS (X 0212-1990)",
            0x0E => "KS C 5601",
            0xF0..=0xFF => "GSM message class control",
            _ => "reserved",
        }
    }

    /// Two octets per character (UCS2).
    pub fn is_ucs2(self) -> bool {
        self == Self::UCS2
    }
}

/// message_state (SMPP 3.4 §5.2.28), as in query_sm_resp, the message_state TLV and, by its
/// short name, the `stat:` of a delivery receipt (Appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// 1: in enroute state.
    Enroute,
    /// 2: delivered to destination.
    Delivered,
    /// 3: validity period expired.
    Expired,
    /// 4: deleted.
    Deleted,
    /// 5: undeliverable.
    Undeliverable,
    /// 6: accepted (read on behalf of the subscriber by customer service).
    Accepted,
    /// 7: invalid or unknown state.
    Unknown,
    /// 8: rejected.
    Rejected,
    /// A value §5.2.28 does not define.
    Other(u8),
}

impl MessageState {
    /// The octet on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Enroute => 1,
            Self::Delivered => 2,
            Self::Expired => 3,
            Self::Deleted => 4,
            Self::Undeliverable => 5,
            Self::Accepted => 6,
            Self::Unknown => 7,
            Self::Rejected => 8,
            Self::Other(v) => v,
        }
    }

    /// The state for an octet.
    pub fn from_code(v: u8) -> Self {
        match v {
            1 => Self::Enroute,
            2 => Self::Delivered,
            3 => Self::Expired,
            4 => Self::Deleted,
            5 => Self::Undeliverable,
            6 => Self::Accepted,
            7 => Self::Unknown,
            8 => Self::Rejected,
            v => Self::Other(v),
        }
    }

    /// The 7-letter `stat:` word of a delivery receipt (Appendix B table B-2).
    pub fn receipt_stat(self) -> &'static str {
        match self {
            Self::Enroute => "ENROUTE",
            Self::Delivered => "DELIVRD",
            Self::Expired => "EXPIRED",
            Self::Deleted => "DELETED",
            Self::Undeliverable => "UNDELIV",
            Self::Accepted => "ACCEPTD",
            Self::Rejected => "REJECTD",
            Self::Unknown | Self::Other(_) => "UNKNOWN",
        }
    }

    /// The state named by a receipt's `stat:` word.
    pub fn from_receipt_stat(word: &str) -> Option<Self> {
        Some(match word {
            "ENROUTE" => Self::Enroute,
            "DELIVRD" => Self::Delivered,
            "EXPIRED" => Self::Expired,
            "DELETED" => Self::Deleted,
            "UNDELIV" => Self::Undeliverable,
            "ACCEPTD" => Self::Accepted,
            "UNKNOWN" => Self::Unknown,
            "REJECTD" => Self::Rejected,
            _ => return None,
        })
    }

    /// A final state: the message will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Enroute | Self::Unknown | Self::Other(_))
    }
}
