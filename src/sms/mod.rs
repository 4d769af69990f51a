//! SMS over IP codecs (pure, socket-free): the relay layer of 3GPP TS 24.011 ([`rp`]: the
//! body of an `application/vnd.3gpp.sms` SIP MESSAGE, TS 24.341), the transfer layer's PDUs
//! of TS 23.040 ([`tpdu`]: SMS-SUBMIT, SMS-DELIVER, the reports), their user data
//! ([`user_data`]: GSM 7-bit, UCS-2, the user data header), addresses and time stamps
//! ([`address`]), the GSM 7-bit default alphabet ([`gsm7`], TS 23.038) and long texts cut
//! into concatenated parts and put back together ([`concat`]).
//!
//! An MO message as it crosses the lab, from the phone's SIP MESSAGE body inwards:
//!
//! ```text
//! RP-DATA (MS→N) mr=0x2a  RP-OA: (none)  RP-DA: +15559999 (the service centre)
//!   └─ RP-User-Data: SMS-SUBMIT  TP-MR=7  TP-DA=+15550002  TP-DCS=00 (GSM 7-bit)
//!        └─ TP-UD: "hello"
//! ```

pub mod address;
pub mod concat;
pub mod gsm7;
pub mod rp;
pub mod tpdu;
pub mod user_data;

pub use address::{Address, Timestamp};
pub use rp::RpMessage;
pub use tpdu::Tpdu;
pub use user_data::UserData;

/// Which way an RP message or TPDU goes: it decides how TP-MTI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the phone (mobile station) to the network: MO.
    MsToNetwork,
    /// From the network to the phone: MT.
    NetworkToMs,
}

/// Why an SMS PDU cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// It ends before this field.
    #[error("truncated: {0} missing")]
    Short(&'static str),
    /// A field holds what it may not.
    #[error("{0}")]
    Invalid(String),
    /// A PDU the lab does not handle.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// Over a length limit.
    #[error("too long: {0}")]
    TooLong(String),
}
