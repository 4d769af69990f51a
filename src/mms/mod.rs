//! MMS as a link-based notification (pure, socket-free): the M-Notification.ind of the OMA
//! MMS Encapsulation (OMA-TS-MMS_ENC-V1_3 §6.2, binary encoding §7) in [`pdu`], inside a
//! connectionless WAP Push (WAP-230 WSP §8.2.4.1, headers §8.4) in [`wsp`], carried over SMS
//! as 8-bit data with the WAP Push application-port header (TS 23.040 §9.2.3.24.4, port 2948)
//! in [`bearer`], cut into concatenated parts when it does not fit one SMS.
//!
//! ```text
//! SMS-DELIVER  TP-DCS 0x04  TP-UDHI
//!   └─ UDH: 00 03 ref n i (concatenation) · 05 04 0B84 23F0 (dest port 2948, source 9200)
//!        └─ WSP Push: TID · 06 · headers length · BE (application/vnd.wap.mms-message) · AF 84
//!             └─ M-Notification.ind: 8C 82 · 98 tid · 8D 92 · 89 from · 96 subject · 8A 80
//!                                    · 8E size · 88 expiry · 83 http://…/ums/v1/media/ID
//! ```
//!
//! The phone fetches the message from the URL itself (X-Mms-Content-Location): the lab's
//! gateway serves the media bytes there.

pub mod bearer;
pub mod pdu;
pub mod wsp;

pub use pdu::{Expiry, MessageClass, Notification};
pub use wsp::Push;

/// Why an MMS PDU, a WSP Push or its SMS parts cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmsError {
    /// It ends before this field.
    #[error("truncated: {0} missing")]
    Short(&'static str),
    /// A field holds what it may not.
    #[error("{0}")]
    Invalid(String),
    /// Over a bound.
    #[error("too long: {0}")]
    TooLong(String),
}

fn invalid(s: impl Into<String>) -> MmsError {
    MmsError::Invalid(s.into())
}
