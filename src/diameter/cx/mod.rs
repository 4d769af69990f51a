//! The Cx application (3GPP TS 29.229, procedures in TS 29.228): AVP codes, result codes,
//! enumerations and the typed commands, one file per command pair, each a [`CxMessage`]:
//! `encode` to a [`Message`], `decode` from one.
//!
//! | file | commands | TS 29.229 |
//! |---|---|---|
//! | `uar.rs` | User-Authorization-Request/Answer, Server-Capabilities | §6.1.1, §6.1.2, §6.3.4 |
//! | `mar.rs` | Multimedia-Auth-Request/Answer, SIP-Auth-Data-Item | §6.1.7, §6.1.8, §6.3.13 |
//! | `sar.rs` | Server-Assignment-Request/Answer | §6.1.3, §6.1.4 |
//! | `lir.rs` | Location-Info-Request/Answer | §6.1.5, §6.1.6 |
//! | `rtr.rs` | Registration-Termination-Request (RTA: [`simple_answer`]) | §6.1.9, §6.1.10 |
//! | `ppr.rs` | Push-Profile-Request (PPA: [`simple_answer`]) | §6.1.11, §6.1.12 |
//!
//! AVP flags follow TS 29.229 §6.3 table 6.3.1 as Wireshark's `TGPP.xml` lists them: codes
//! 600-633 carry V and M, SIP-Digest-Authenticate (635) only V; the RFC 4740 Digest-* AVPs
//! inside it have no vendor. A request missing a mandatory AVP decodes to
//! [`CxError::MissingAvp`] so the receiver can answer DIAMETER_MISSING_AVP (5005,
//! [`CxError::to_answer`]); the `from_message` methods kept for callers give the same error as
//! a [`DiameterError`].

use crate::diameter::codec::*;

mod avp;
mod lir;
mod mar;
mod ppr;
mod rtr;
mod sar;
#[cfg(test)]
mod tests;
mod uar;

pub use lir::{LocationInfoAnswer, LocationInfoRequest};
pub use mar::{
    MultimediaAuthAnswer, MultimediaAuthRequest, SipAuthDataItem, SipDigestAuthenticate,
};
pub use ppr::PushProfileRequest;
pub use rtr::{DeregistrationReason, RegistrationTerminationRequest};
pub use sar::{ServerAssignmentAnswer, ServerAssignmentRequest};
pub use uar::{ServerCapabilities, UserAuthorizationAnswer, UserAuthorizationRequest};

/// Cx Application-ID.
pub const APP_ID_CX: u32 = 16_777_216;
/// 3GPP vendor id.
pub const VENDOR_3GPP: u32 = 10_415;

/// User-Authorization-Request/Answer.
pub const CMD_USER_AUTHORIZATION: u32 = 300;
/// Server-Assignment-Request/Answer.
pub const CMD_SERVER_ASSIGNMENT: u32 = 301;
/// Location-Info-Request/Answer.
pub const CMD_LOCATION_INFO: u32 = 302;
/// Multimedia-Auth-Request/Answer.
pub const CMD_MULTIMEDIA_AUTH: u32 = 303;
/// Registration-Termination-Request/Answer.
pub const CMD_REGISTRATION_TERMINATION: u32 = 304;
/// Push-Profile-Request/Answer.
pub const CMD_PUSH_PROFILE: u32 = 305;

/// Visited-Network-Identifier (OctetString).
pub const AVP_VISITED_NETWORK_IDENTIFIER: u32 = 600;
/// Public-Identity (UTF8String).
pub const AVP_PUBLIC_IDENTITY: u32 = 601;
/// Server-Name (UTF8String).
pub const AVP_SERVER_NAME: u32 = 602;
/// Server-Capabilities (Grouped).
pub const AVP_SERVER_CAPABILITIES: u32 = 603;
/// Mandatory-Capability (Unsigned32).
pub const AVP_MANDATORY_CAPABILITY: u32 = 604;
/// Optional-Capability (Unsigned32).
pub const AVP_OPTIONAL_CAPABILITY: u32 = 605;
/// User-Data (OctetString).
pub const AVP_USER_DATA: u32 = 606;
/// SIP-Number-Auth-Items (Unsigned32).
pub const AVP_SIP_NUMBER_AUTH_ITEMS: u32 = 607;
/// SIP-Authentication-Scheme (UTF8String).
pub const AVP_SIP_AUTHENTICATION_SCHEME: u32 = 608;
/// SIP-Authenticate (OctetString).
pub const AVP_SIP_AUTHENTICATE: u32 = 609;
/// SIP-Authorization (OctetString).
pub const AVP_SIP_AUTHORIZATION: u32 = 610;
/// SIP-Authentication-Context (OctetString).
pub const AVP_SIP_AUTHENTICATION_CONTEXT: u32 = 611;
/// SIP-Auth-Data-Item (Grouped).
pub const AVP_SIP_AUTH_DATA_ITEM: u32 = 612;
/// SIP-Item-Number (Unsigned32).
pub const AVP_SIP_ITEM_NUMBER: u32 = 613;
/// Server-Assignment-Type (Enumerated).
pub const AVP_SERVER_ASSIGNMENT_TYPE: u32 = 614;
/// Deregistration-Reason (Grouped).
pub const AVP_DEREGISTRATION_REASON: u32 = 615;
/// Reason-Code (Enumerated).
pub const AVP_REASON_CODE: u32 = 616;
/// Reason-Info (UTF8String).
pub const AVP_REASON_INFO: u32 = 617;
/// User-Authorization-Type (Enumerated).
pub const AVP_USER_AUTHORIZATION_TYPE: u32 = 623;
/// User-Data-Already-Available (Enumerated).
pub const AVP_USER_DATA_ALREADY_AVAILABLE: u32 = 624;
/// Confidentiality-Key (OctetString).
pub const AVP_CONFIDENTIALITY_KEY: u32 = 625;
/// Integrity-Key (OctetString).
pub const AVP_INTEGRITY_KEY: u32 = 626;
/// Originating-Request (Enumerated).
pub const AVP_ORIGINATING_REQUEST: u32 = 633;
/// SIP-Digest-Authenticate (Grouped, V only).
pub const AVP_SIP_DIGEST_AUTHENTICATE: u32 = 635;
/// Digest-Realm (RFC 4740, no vendor).
pub const AVP_DIGEST_REALM: u32 = 104;
/// Digest-QoP (RFC 4740).
pub const AVP_DIGEST_QOP: u32 = 110;
/// Digest-Algorithm (RFC 4740).
pub const AVP_DIGEST_ALGORITHM: u32 = 111;
/// Digest-HA1 (RFC 4740).
pub const AVP_DIGEST_HA1: u32 = 121;

/// DIAMETER_FIRST_REGISTRATION (Experimental-Result, TS 29.229 §6.2.1.1).
pub const DIAMETER_FIRST_REGISTRATION: u32 = 2001;
/// DIAMETER_SUBSEQUENT_REGISTRATION.
pub const DIAMETER_SUBSEQUENT_REGISTRATION: u32 = 2002;
/// DIAMETER_UNREGISTERED_SERVICE.
pub const DIAMETER_UNREGISTERED_SERVICE: u32 = 2003;
/// DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED.
pub const DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED: u32 = 2004;
/// DIAMETER_ERROR_USER_UNKNOWN (§6.2.2.1).
pub const DIAMETER_ERROR_USER_UNKNOWN: u32 = 5001;
/// DIAMETER_ERROR_IDENTITIES_DONT_MATCH.
pub const DIAMETER_ERROR_IDENTITIES_DONT_MATCH: u32 = 5002;
/// DIAMETER_ERROR_IDENTITY_NOT_REGISTERED.
pub const DIAMETER_ERROR_IDENTITY_NOT_REGISTERED: u32 = 5003;
/// DIAMETER_ERROR_ROAMING_NOT_ALLOWED.
pub const DIAMETER_ERROR_ROAMING_NOT_ALLOWED: u32 = 5004;
/// DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED.
pub const DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED: u32 = 5005;
/// DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED.
pub const DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED: u32 = 5006;
/// DIAMETER_ERROR_IN_ASSIGNMENT_TYPE.
pub const DIAMETER_ERROR_IN_ASSIGNMENT_TYPE: u32 = 5007;
/// DIAMETER_ERROR_TOO_MUCH_DATA.
pub const DIAMETER_ERROR_TOO_MUCH_DATA: u32 = 5008;
/// DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA.
pub const DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA: u32 = 5009;
/// DIAMETER_ERROR_FEATURE_UNSUPPORTED.
pub const DIAMETER_ERROR_FEATURE_UNSUPPORTED: u32 = 5011;

/// The outcome of a Cx answer: Result-Code, or Experimental-Result with vendor 10415.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CxResult {
    /// Result-Code (RFC 6733).
    Base(u32),
    /// Experimental-Result-Code (TS 29.229 §6.2).
    Experimental(u32),
}

impl CxResult {
    /// 2xxx.
    pub fn is_success(&self) -> bool {
        let c = match self {
            CxResult::Base(c) | CxResult::Experimental(c) => *c,
        };
        (2000..3000).contains(&c)
    }
    /// The AVP carrying it.
    pub fn to_avp(&self) -> Avp {
        match self {
            CxResult::Base(c) => Avp::u32(AVP_RESULT_CODE, None, true, *c),
            CxResult::Experimental(c) => Avp::grouped(
                AVP_EXPERIMENTAL_RESULT,
                None,
                true,
                vec![
                    Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP),
                    Avp::u32(AVP_EXPERIMENTAL_RESULT_CODE, None, true, *c),
                ],
            ),
        }
    }
    /// Reads it from an answer.
    pub fn from_message(m: &Message) -> Option<CxResult> {
        if let Some(r) = m.avp(AVP_RESULT_CODE, None).and_then(|a| a.as_u32().ok()) {
            return Some(CxResult::Base(r));
        }
        let g = m.avp(AVP_EXPERIMENTAL_RESULT, None)?.as_grouped().ok()?;
        g.iter()
            .find(|a| a.code == AVP_EXPERIMENTAL_RESULT_CODE)
            .and_then(|a| a.as_u32().ok())
            .map(CxResult::Experimental)
    }
}

macro_rules! cx_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $v:ident = $n:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $v = $n),* }
        impl $name {
            /// From the wire value.
            pub fn from_u32(v: u32) -> Option<$name> {
                match v { $($n => Some($name::$v),)* _ => None }
            }
        }
    };
}

cx_enum!(
    /// Server-Assignment-Type (TS 29.229 §6.3.15).
    ServerAssignmentType {
        /// NO_ASSIGNMENT
        NoAssignment = 0,
        /// REGISTRATION
        Registration = 1,
        /// RE_REGISTRATION
        ReRegistration = 2,
        /// UNREGISTERED_USER
        UnregisteredUser = 3,
        /// TIMEOUT_DEREGISTRATION
        TimeoutDeregistration = 4,
        /// USER_DEREGISTRATION
        UserDeregistration = 5,
        /// TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME
        TimeoutDeregistrationStoreServerName = 6,
        /// USER_DEREGISTRATION_STORE_SERVER_NAME
        UserDeregistrationStoreServerName = 7,
        /// ADMINISTRATIVE_DEREGISTRATION
        AdministrativeDeregistration = 8,
        /// AUTHENTICATION_FAILURE
        AuthenticationFailure = 9,
        /// AUTHENTICATION_TIMEOUT
        AuthenticationTimeout = 10,
        /// DEREGISTRATION_TOO_MUCH_DATA
        DeregistrationTooMuchData = 11,
        /// AAA_USER_DATA_REQUEST
        AaaUserDataRequest = 12,
        /// PGW_UPDATE
        PgwUpdate = 13,
        /// RESTORATION
        Restoration = 14,
    }
);

cx_enum!(
    /// User-Authorization-Type (§6.3.24).
    UserAuthorizationType {
        /// REGISTRATION
        Registration = 0,
        /// DE_REGISTRATION
        DeRegistration = 1,
        /// REGISTRATION_AND_CAPABILITIES
        RegistrationAndCapabilities = 2,
    }
);

cx_enum!(
    /// User-Data-Already-Available (§6.3.26).
    UserDataAlreadyAvailable {
        /// USER_DATA_NOT_AVAILABLE
        UserDataNotAvailable = 0,
        /// USER_DATA_ALREADY_AVAILABLE
        UserDataAlreadyAvailable = 1,
    }
);

cx_enum!(
    /// Reason-Code of Deregistration-Reason (§6.3.17).
    ReasonCode {
        /// PERMANENT_TERMINATION
        PermanentTermination = 0,
        /// NEW_SERVER_ASSIGNED
        NewServerAssigned = 1,
        /// SERVER_CHANGE
        ServerChange = 2,
        /// REMOVE_S-CSCF
        RemoveScscf = 3,
    }
);

/// A Cx command's typed form, paired with its wire form (the hickory `BinEncodable` /
/// `BinDecodable` pattern): `decode(&encode(x)) == x` for every command, and the bytes
/// `encode` gives are the bytes the lab has always sent (`tests.rs` checks both).
pub trait CxMessage: Sized {
    /// Command-Code (TS 29.229 §6.1, table 6.1.1).
    const COMMAND_CODE: u32;
    /// True for the request of the pair (the R bit).
    const IS_REQUEST: bool;
    /// The Diameter message, AVPs in the order of the TS 29.229 §6.1 ABNF.
    fn encode(&self) -> Message;
    /// Reads the typed command; a missing mandatory AVP or a value out of range is a
    /// [`CxError`] naming the AVP.
    fn decode(m: &Message) -> Result<Self, CxError>;
}

/// Why a Cx command could not be decoded; [`CxError::result_code`] is what the receiver
/// answers (RFC 6733 §7.1.5: DIAMETER_MISSING_AVP with the AVP in Failed-AVP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CxError {
    /// A mandatory AVP is missing (answered DIAMETER_MISSING_AVP, 5005).
    #[error("missing mandatory AVP {code} (vendor {vendor_id:?})")]
    MissingAvp {
        /// AVP code.
        code: u32,
        /// Vendor.
        vendor_id: Option<u32>,
    },
    /// An AVP's value does not fit its type or enumeration.
    #[error("AVP {code} has an invalid value: {why}")]
    InvalidAvp {
        /// AVP code.
        code: u32,
        /// Why.
        why: &'static str,
    },
    /// A grouped AVP that does not parse.
    #[error("malformed Diameter message: {0}")]
    Malformed(String),
}

impl CxError {
    /// The Result-Code the HSS answers with: DIAMETER_MISSING_AVP (5005) for a missing AVP,
    /// DIAMETER_UNABLE_TO_COMPLY (5012) otherwise — what the HSS has always answered (RFC 6733
    /// §7.1.5 would allow DIAMETER_INVALID_AVP_VALUE, 5004, for an invalid one).
    pub fn result_code(&self) -> u32 {
        match self {
            CxError::MissingAvp { .. } => DIAMETER_MISSING_AVP,
            CxError::InvalidAvp { .. } | CxError::Malformed(_) => DIAMETER_UNABLE_TO_COMPLY,
        }
    }

    /// The error answer to `req` (RFC 6733 §7.2, E bit set): Result-Code, a Failed-AVP naming
    /// a missing AVP (§7.5: the AVP with empty data) and an Error-Message.
    pub fn to_answer(&self, req: &Message) -> Message {
        match self {
            CxError::MissingAvp { code, vendor_id } => Message::error_answer(
                req,
                self.result_code(),
                Some(Avp::new(*code, *vendor_id, true, Vec::<u8>::new())),
                Some("missing mandatory AVP"),
            ),
            _ => Message::error_answer(req, self.result_code(), None, Some(&self.to_string())),
        }
    }
}

impl From<DiameterError> for CxError {
    fn from(e: DiameterError) -> CxError {
        match e {
            DiameterError::MissingAvp { code, vendor_id } => {
                CxError::MissingAvp { code, vendor_id }
            }
            DiameterError::InvalidAvp { code, why } => CxError::InvalidAvp { code, why },
            DiameterError::Malformed(s) => CxError::Malformed(s),
            other => CxError::Malformed(other.to_string()),
        }
    }
}

impl From<CxError> for DiameterError {
    fn from(e: CxError) -> DiameterError {
        match e {
            CxError::MissingAvp { code, vendor_id } => {
                DiameterError::MissingAvp { code, vendor_id }
            }
            CxError::InvalidAvp { code, why } => DiameterError::InvalidAvp { code, why },
            CxError::Malformed(s) => DiameterError::Malformed(s),
        }
    }
}

/// The `to_message` / `from_message` pair every command had before [`CxMessage`]; callers
/// in the CSCFs and the HSS keep using them.
macro_rules! message_methods {
    ($($t:ty),* $(,)?) => {$(
        impl $t {
            /// Encodes ([`CxMessage::encode`]).
            pub fn to_message(&self) -> Message {
                CxMessage::encode(self)
            }
            /// Decodes ([`CxMessage::decode`], its error as a [`DiameterError`]).
            pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
                <Self as CxMessage>::decode(m).map_err(DiameterError::from)
            }
        }
    )*};
}

message_methods!(
    UserAuthorizationRequest,
    UserAuthorizationAnswer,
    MultimediaAuthRequest,
    MultimediaAuthAnswer,
    ServerAssignmentRequest,
    ServerAssignmentAnswer,
    LocationInfoRequest,
    LocationInfoAnswer,
    RegistrationTerminationRequest,
    PushProfileRequest,
);

/// The answer to an RTR or PPR (RTA §6.1.10, PPA §6.1.12): just the result.
pub fn simple_answer(
    req: &Message,
    result: CxResult,
    origin_host: &str,
    origin_realm: &str,
) -> Message {
    let mut m = avp::answer_head(
        req.command_code,
        req.session_id().unwrap_or(""),
        &result,
        origin_host,
        origin_realm,
    );
    m.hop_by_hop = req.hop_by_hop;
    m.end_to_end = req.end_to_end;
    m
}

/// Which of `n` servers serves `key` (an IMPI for the HSS, an IMPI or IMPU for the I-CSCF):
/// FNV-1a (64 bit) of the lowercased key, modulo `n`. Deterministic across runs and hosts,
/// unlike std's randomly seeded hasher, so a lab's spread of users can be written down.
pub fn pick_by_key(key: &str, n: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0000_0100_0000_01b3)
    });
    if n == 0 {
        0
    } else {
        (h % n as u64) as usize
    }
}
