//! The Cx application (3GPP TS 29.229, procedures in TS 29.228): AVP codes, result codes,
//! enumerations and typed commands with `to_message` / `from_message`.
//!
//! AVP flags follow TS 29.229 §6.3 table 6.3.1 as Wireshark's `TGPP.xml` lists them: codes
//! 600-633 carry V and M, SIP-Digest-Authenticate (635) only V; the RFC 4740 Digest-* AVPs
//! inside it have no vendor. A request missing a mandatory AVP decodes to
//! [`DiameterError::MissingAvp`] so the receiver can answer DIAMETER_MISSING_AVP (5005).

use crate::diameter::codec::*;

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

fn v(code: u32, data: &[u8]) -> Avp {
    Avp::octets(code, Some(VENDOR_3GPP), true, data)
}
fn vs(code: u32, s: &str) -> Avp {
    Avp::utf8(code, Some(VENDOR_3GPP), true, s)
}
fn vu(code: u32, n: u32) -> Avp {
    Avp::u32(code, Some(VENDOR_3GPP), true, n)
}

fn missing(code: u32, vendor_id: Option<u32>) -> DiameterError {
    DiameterError::MissingAvp { code, vendor_id }
}

fn req_str(m: &Message, code: u32, vendor: Option<u32>) -> Result<String, DiameterError> {
    m.avp(code, vendor)
        .ok_or(missing(code, vendor))?
        .as_str()
        .map(str::to_string)
}
fn opt_str(m: &[Avp], code: u32, vendor: Option<u32>) -> Result<Option<String>, DiameterError> {
    match m.iter().find(|a| a.code == code && a.vendor_id == vendor) {
        Some(a) => a.as_str().map(|s| Some(s.to_string())),
        None => Ok(None),
    }
}
fn opt_u32(m: &[Avp], code: u32, vendor: Option<u32>) -> Result<Option<u32>, DiameterError> {
    match m.iter().find(|a| a.code == code && a.vendor_id == vendor) {
        Some(a) => a.as_u32().map(Some),
        None => Ok(None),
    }
}
fn opt_bytes(m: &[Avp], code: u32, vendor: Option<u32>) -> Option<Vec<u8>> {
    m.iter()
        .find(|a| a.code == code && a.vendor_id == vendor)
        .map(|a| a.data.to_vec())
}

const V: Option<u32> = Some(VENDOR_3GPP);

/// The AVPs every Cx request starts with (TS 29.229 §6.1 ABNF).
fn request_head(m: &mut Message, session_id: &str, origin_host: &str, origin_realm: &str) {
    m.push(Avp::utf8(AVP_SESSION_ID, None, true, session_id));
    m.push(Avp::grouped(
        AVP_VENDOR_SPECIFIC_APPLICATION_ID,
        None,
        true,
        vec![
            Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP),
            Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, APP_ID_CX),
        ],
    ));
    m.push(Avp::u32(AVP_AUTH_SESSION_STATE, None, true, 1)); // NO_STATE_MAINTAINED
    m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, origin_host));
    m.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, origin_realm));
}

fn destination(m: &mut Message, host: &Option<String>, realm: &str) {
    if let Some(h) = host {
        m.push(Avp::utf8(AVP_DESTINATION_HOST, None, true, h));
    }
    m.push(Avp::utf8(AVP_DESTINATION_REALM, None, true, realm));
}

fn answer_head(
    cmd: u32,
    session_id: &str,
    result: &CxResult,
    origin_host: &str,
    origin_realm: &str,
) -> Message {
    let mut m = Message {
        flags: CMD_FLAG_PROXIABLE,
        command_code: cmd,
        application_id: APP_ID_CX,
        hop_by_hop: 0,
        end_to_end: 0,
        avps: Vec::new(),
    };
    m.push(Avp::utf8(AVP_SESSION_ID, None, true, session_id));
    m.push(Avp::grouped(
        AVP_VENDOR_SPECIFIC_APPLICATION_ID,
        None,
        true,
        vec![
            Avp::u32(AVP_VENDOR_ID, None, true, VENDOR_3GPP),
            Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, APP_ID_CX),
        ],
    ));
    m.push(result.to_avp());
    m.push(Avp::u32(AVP_AUTH_SESSION_STATE, None, true, 1));
    m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, origin_host));
    m.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, origin_realm));
    m
}

struct Head {
    session_id: String,
    origin_host: String,
    origin_realm: String,
}

fn read_head(m: &Message) -> Result<Head, DiameterError> {
    Ok(Head {
        session_id: req_str(m, AVP_SESSION_ID, None)?,
        origin_host: req_str(m, AVP_ORIGIN_HOST, None)?,
        origin_realm: req_str(m, AVP_ORIGIN_REALM, None)?,
    })
}

fn read_result(m: &Message) -> Result<CxResult, DiameterError> {
    CxResult::from_message(m).ok_or(missing(AVP_RESULT_CODE, None))
}

/// Server-Capabilities (§6.3.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCapabilities {
    /// Mandatory-Capability values.
    pub mandatory: Vec<u32>,
    /// Optional-Capability values.
    pub optional: Vec<u32>,
    /// Server-Name values.
    pub server_names: Vec<String>,
}

impl ServerCapabilities {
    fn to_avp(&self) -> Avp {
        let mut g = Vec::new();
        g.extend(
            self.mandatory
                .iter()
                .map(|c| vu(AVP_MANDATORY_CAPABILITY, *c)),
        );
        g.extend(
            self.optional
                .iter()
                .map(|c| vu(AVP_OPTIONAL_CAPABILITY, *c)),
        );
        g.extend(self.server_names.iter().map(|s| vs(AVP_SERVER_NAME, s)));
        Avp::grouped(AVP_SERVER_CAPABILITIES, V, true, g)
    }
    fn from_avps(m: &Message) -> Result<Option<ServerCapabilities>, DiameterError> {
        let Some(a) = m.avp(AVP_SERVER_CAPABILITIES, V) else {
            return Ok(None);
        };
        let g = a.as_grouped()?;
        let mut c = ServerCapabilities::default();
        for x in &g {
            match x.code {
                AVP_MANDATORY_CAPABILITY => c.mandatory.push(x.as_u32()?),
                AVP_OPTIONAL_CAPABILITY => c.optional.push(x.as_u32()?),
                AVP_SERVER_NAME => c.server_names.push(x.as_str()?.to_string()),
                _ => {}
            }
        }
        Ok(Some(c))
    }
}

/// User-Authorization-Request (§6.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthorizationRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// Destination-Host.
    pub destination_host: Option<String>,
    /// User-Name (IMPI).
    pub user_name: String,
    /// Public-Identity (IMPU).
    pub public_identity: String,
    /// Visited-Network-Identifier.
    pub visited_network_identifier: Vec<u8>,
    /// User-Authorization-Type.
    pub authorization_type: Option<UserAuthorizationType>,
}

impl UserAuthorizationRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_USER_AUTHORIZATION, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(&mut m, &self.destination_host, &self.destination_realm);
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        m.push(vs(AVP_PUBLIC_IDENTITY, &self.public_identity));
        m.push(v(
            AVP_VISITED_NETWORK_IDENTIFIER,
            &self.visited_network_identifier,
        ));
        if let Some(t) = self.authorization_type {
            m.push(vu(AVP_USER_AUTHORIZATION_TYPE, t as u32));
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(UserAuthorizationRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            public_identity: req_str(m, AVP_PUBLIC_IDENTITY, V)?,
            visited_network_identifier: opt_bytes(&m.avps, AVP_VISITED_NETWORK_IDENTIFIER, V)
                .ok_or(missing(AVP_VISITED_NETWORK_IDENTIFIER, V))?,
            authorization_type: opt_u32(&m.avps, AVP_USER_AUTHORIZATION_TYPE, V)?
                .and_then(UserAuthorizationType::from_u32),
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// User-Authorization-Answer (§6.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthorizationAnswer {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Result.
    pub result: CxResult,
    /// Server-Name.
    pub server_name: Option<String>,
    /// Server-Capabilities.
    pub server_capabilities: Option<ServerCapabilities>,
}

impl UserAuthorizationAnswer {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = answer_head(
            CMD_USER_AUTHORIZATION,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        if let Some(s) = &self.server_name {
            m.push(vs(AVP_SERVER_NAME, s));
        }
        if let Some(c) = &self.server_capabilities {
            m.push(c.to_avp());
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(UserAuthorizationAnswer {
            result: read_result(m)?,
            server_name: opt_str(&m.avps, AVP_SERVER_NAME, V)?,
            server_capabilities: ServerCapabilities::from_avps(m)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// SIP-Digest-Authenticate (§6.3.36): what the S-CSCF needs to check SIP Digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipDigestAuthenticate {
    /// Digest-Realm.
    pub realm: String,
    /// Digest-QoP.
    pub qop: Option<String>,
    /// Digest-HA1 (lowercase hex).
    pub ha1: String,
    /// Digest-Algorithm.
    pub algorithm: Option<String>,
}

/// SIP-Auth-Data-Item (§6.3.13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipAuthDataItem {
    /// SIP-Item-Number.
    pub item_number: Option<u32>,
    /// SIP-Authentication-Scheme (`SIP Digest`, `Digest-AKAv1-MD5`, `Unknown`).
    pub scheme: String,
    /// SIP-Authenticate (AKA: RAND || AUTN).
    pub authenticate: Option<Vec<u8>>,
    /// SIP-Authorization (AKA: XRES; in a MAR: RAND || AUTS for re-synchronisation).
    pub authorization: Option<Vec<u8>>,
    /// Confidentiality-Key.
    pub confidentiality_key: Option<Vec<u8>>,
    /// Integrity-Key.
    pub integrity_key: Option<Vec<u8>>,
    /// SIP-Digest-Authenticate.
    pub digest: Option<SipDigestAuthenticate>,
}

impl SipAuthDataItem {
    fn to_avp(&self) -> Avp {
        let mut g = Vec::new();
        if let Some(n) = self.item_number {
            g.push(vu(AVP_SIP_ITEM_NUMBER, n));
        }
        if !self.scheme.is_empty() {
            g.push(vs(AVP_SIP_AUTHENTICATION_SCHEME, &self.scheme));
        }
        if let Some(b) = &self.authenticate {
            g.push(v(AVP_SIP_AUTHENTICATE, b));
        }
        if let Some(b) = &self.authorization {
            g.push(v(AVP_SIP_AUTHORIZATION, b));
        }
        if let Some(b) = &self.confidentiality_key {
            g.push(v(AVP_CONFIDENTIALITY_KEY, b));
        }
        if let Some(b) = &self.integrity_key {
            g.push(v(AVP_INTEGRITY_KEY, b));
        }
        if let Some(d) = &self.digest {
            let mut dg = vec![Avp::utf8(AVP_DIGEST_REALM, None, true, &d.realm)];
            if let Some(a) = &d.algorithm {
                dg.push(Avp::utf8(AVP_DIGEST_ALGORITHM, None, true, a));
            }
            if let Some(q) = &d.qop {
                dg.push(Avp::utf8(AVP_DIGEST_QOP, None, true, q));
            }
            dg.push(Avp::utf8(AVP_DIGEST_HA1, None, true, &d.ha1));
            g.push(Avp::grouped(AVP_SIP_DIGEST_AUTHENTICATE, V, false, dg));
        }
        Avp::grouped(AVP_SIP_AUTH_DATA_ITEM, V, true, g)
    }

    fn from_avp(a: &Avp) -> Result<SipAuthDataItem, DiameterError> {
        let g = a.as_grouped()?;
        let digest = match g
            .iter()
            .find(|x| x.code == AVP_SIP_DIGEST_AUTHENTICATE && x.vendor_id == V)
        {
            Some(d) => {
                let dg = d.as_grouped()?;
                Some(SipDigestAuthenticate {
                    realm: opt_str(&dg, AVP_DIGEST_REALM, None)?
                        .ok_or(missing(AVP_DIGEST_REALM, None))?,
                    qop: opt_str(&dg, AVP_DIGEST_QOP, None)?,
                    ha1: opt_str(&dg, AVP_DIGEST_HA1, None)?
                        .ok_or(missing(AVP_DIGEST_HA1, None))?,
                    algorithm: opt_str(&dg, AVP_DIGEST_ALGORITHM, None)?,
                })
            }
            None => None,
        };
        Ok(SipAuthDataItem {
            item_number: opt_u32(&g, AVP_SIP_ITEM_NUMBER, V)?,
            scheme: opt_str(&g, AVP_SIP_AUTHENTICATION_SCHEME, V)?.unwrap_or_default(),
            authenticate: opt_bytes(&g, AVP_SIP_AUTHENTICATE, V),
            authorization: opt_bytes(&g, AVP_SIP_AUTHORIZATION, V),
            confidentiality_key: opt_bytes(&g, AVP_CONFIDENTIALITY_KEY, V),
            integrity_key: opt_bytes(&g, AVP_INTEGRITY_KEY, V),
            digest,
        })
    }
}

/// Multimedia-Auth-Request (§6.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimediaAuthRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// Destination-Host.
    pub destination_host: Option<String>,
    /// User-Name (IMPI).
    pub user_name: String,
    /// Public-Identity.
    pub public_identity: String,
    /// Server-Name of the asking S-CSCF.
    pub server_name: String,
    /// SIP-Number-Auth-Items wanted.
    pub number_auth_items: u32,
    /// SIP-Auth-Data-Item: the scheme, and RAND||AUTS for re-synchronisation.
    pub auth_data: SipAuthDataItem,
}

impl MultimediaAuthRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_MULTIMEDIA_AUTH, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(&mut m, &self.destination_host, &self.destination_realm);
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        m.push(vs(AVP_PUBLIC_IDENTITY, &self.public_identity));
        m.push(self.auth_data.to_avp());
        m.push(vu(AVP_SIP_NUMBER_AUTH_ITEMS, self.number_auth_items));
        m.push(vs(AVP_SERVER_NAME, &self.server_name));
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(MultimediaAuthRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            public_identity: req_str(m, AVP_PUBLIC_IDENTITY, V)?,
            auth_data: SipAuthDataItem::from_avp(
                m.avp(AVP_SIP_AUTH_DATA_ITEM, V)
                    .ok_or(missing(AVP_SIP_AUTH_DATA_ITEM, V))?,
            )?,
            number_auth_items: opt_u32(&m.avps, AVP_SIP_NUMBER_AUTH_ITEMS, V)?
                .ok_or(missing(AVP_SIP_NUMBER_AUTH_ITEMS, V))?,
            server_name: req_str(m, AVP_SERVER_NAME, V)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Multimedia-Auth-Answer (§6.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimediaAuthAnswer {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Result.
    pub result: CxResult,
    /// User-Name.
    pub user_name: Option<String>,
    /// Public-Identity.
    pub public_identity: Option<String>,
    /// SIP-Number-Auth-Items.
    pub number_auth_items: Option<u32>,
    /// SIP-Auth-Data-Items.
    pub items: Vec<SipAuthDataItem>,
}

impl MultimediaAuthAnswer {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = answer_head(
            CMD_MULTIMEDIA_AUTH,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        if let Some(u) = &self.user_name {
            m.push(Avp::utf8(AVP_USER_NAME, None, true, u));
        }
        if let Some(p) = &self.public_identity {
            m.push(vs(AVP_PUBLIC_IDENTITY, p));
        }
        if let Some(n) = self.number_auth_items {
            m.push(vu(AVP_SIP_NUMBER_AUTH_ITEMS, n));
        }
        for i in &self.items {
            m.push(i.to_avp());
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(MultimediaAuthAnswer {
            result: read_result(m)?,
            user_name: opt_str(&m.avps, AVP_USER_NAME, None)?,
            public_identity: opt_str(&m.avps, AVP_PUBLIC_IDENTITY, V)?,
            number_auth_items: opt_u32(&m.avps, AVP_SIP_NUMBER_AUTH_ITEMS, V)?,
            items: m
                .avps_of(AVP_SIP_AUTH_DATA_ITEM, V)
                .map(SipAuthDataItem::from_avp)
                .collect::<Result<_, _>>()?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Server-Assignment-Request (§6.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAssignmentRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// Destination-Host.
    pub destination_host: Option<String>,
    /// Public-Identity values.
    pub public_identities: Vec<String>,
    /// User-Name.
    pub user_name: Option<String>,
    /// Server-Name.
    pub server_name: String,
    /// Server-Assignment-Type.
    pub assignment_type: ServerAssignmentType,
    /// User-Data-Already-Available.
    pub user_data_already_available: UserDataAlreadyAvailable,
}

impl ServerAssignmentRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_SERVER_ASSIGNMENT, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(&mut m, &self.destination_host, &self.destination_realm);
        if let Some(u) = &self.user_name {
            m.push(Avp::utf8(AVP_USER_NAME, None, true, u));
        }
        for p in &self.public_identities {
            m.push(vs(AVP_PUBLIC_IDENTITY, p));
        }
        m.push(vs(AVP_SERVER_NAME, &self.server_name));
        m.push(vu(AVP_SERVER_ASSIGNMENT_TYPE, self.assignment_type as u32));
        m.push(vu(
            AVP_USER_DATA_ALREADY_AVAILABLE,
            self.user_data_already_available as u32,
        ));
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        let t = opt_u32(&m.avps, AVP_SERVER_ASSIGNMENT_TYPE, V)?
            .ok_or(missing(AVP_SERVER_ASSIGNMENT_TYPE, V))?;
        let u = opt_u32(&m.avps, AVP_USER_DATA_ALREADY_AVAILABLE, V)?
            .ok_or(missing(AVP_USER_DATA_ALREADY_AVAILABLE, V))?;
        Ok(ServerAssignmentRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            public_identities: m
                .avps_of(AVP_PUBLIC_IDENTITY, V)
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Result<_, _>>()?,
            user_name: opt_str(&m.avps, AVP_USER_NAME, None)?,
            server_name: req_str(m, AVP_SERVER_NAME, V)?,
            assignment_type: ServerAssignmentType::from_u32(t).ok_or(
                DiameterError::InvalidAvp {
                    code: AVP_SERVER_ASSIGNMENT_TYPE,
                    why: "unknown Server-Assignment-Type",
                },
            )?,
            user_data_already_available: UserDataAlreadyAvailable::from_u32(u).ok_or(
                DiameterError::InvalidAvp {
                    code: AVP_USER_DATA_ALREADY_AVAILABLE,
                    why: "unknown value",
                },
            )?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Server-Assignment-Answer (§6.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAssignmentAnswer {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Result.
    pub result: CxResult,
    /// User-Name.
    pub user_name: Option<String>,
    /// User-Data: the TS 29.228 IMSSubscription XML.
    pub user_data: Option<String>,
}

impl ServerAssignmentAnswer {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = answer_head(
            CMD_SERVER_ASSIGNMENT,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        if let Some(u) = &self.user_name {
            m.push(Avp::utf8(AVP_USER_NAME, None, true, u));
        }
        if let Some(d) = &self.user_data {
            m.push(v(AVP_USER_DATA, d.as_bytes()));
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        let user_data = match opt_bytes(&m.avps, AVP_USER_DATA, V) {
            Some(b) => Some(String::from_utf8(b).map_err(|_| DiameterError::InvalidAvp {
                code: AVP_USER_DATA,
                why: "User-Data is not UTF-8 XML",
            })?),
            None => None,
        };
        Ok(ServerAssignmentAnswer {
            result: read_result(m)?,
            user_name: opt_str(&m.avps, AVP_USER_NAME, None)?,
            user_data,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Location-Info-Request (§6.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationInfoRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// Destination-Host.
    pub destination_host: Option<String>,
    /// Originating-Request present.
    pub originating_request: bool,
    /// Public-Identity.
    pub public_identity: String,
    /// User-Authorization-Type (only REGISTRATION_AND_CAPABILITIES is meaningful here).
    pub authorization_type: Option<UserAuthorizationType>,
}

impl LocationInfoRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_LOCATION_INFO, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(&mut m, &self.destination_host, &self.destination_realm);
        if self.originating_request {
            m.push(vu(AVP_ORIGINATING_REQUEST, 0)); // ORIGINATING
        }
        m.push(vs(AVP_PUBLIC_IDENTITY, &self.public_identity));
        if let Some(t) = self.authorization_type {
            m.push(vu(AVP_USER_AUTHORIZATION_TYPE, t as u32));
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(LocationInfoRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            originating_request: m.avp(AVP_ORIGINATING_REQUEST, V).is_some(),
            public_identity: req_str(m, AVP_PUBLIC_IDENTITY, V)?,
            authorization_type: opt_u32(&m.avps, AVP_USER_AUTHORIZATION_TYPE, V)?
                .and_then(UserAuthorizationType::from_u32),
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Location-Info-Answer (§6.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationInfoAnswer {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Result.
    pub result: CxResult,
    /// Server-Name.
    pub server_name: Option<String>,
    /// Server-Capabilities.
    pub server_capabilities: Option<ServerCapabilities>,
}

impl LocationInfoAnswer {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = answer_head(
            CMD_LOCATION_INFO,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        if let Some(s) = &self.server_name {
            m.push(vs(AVP_SERVER_NAME, s));
        }
        if let Some(c) = &self.server_capabilities {
            m.push(c.to_avp());
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        Ok(LocationInfoAnswer {
            result: read_result(m)?,
            server_name: opt_str(&m.avps, AVP_SERVER_NAME, V)?,
            server_capabilities: ServerCapabilities::from_avps(m)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Deregistration-Reason (§6.3.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeregistrationReason {
    /// Reason-Code.
    pub code: ReasonCode,
    /// Reason-Info: text for the user.
    pub info: Option<String>,
}

/// Registration-Termination-Request, HSS to S-CSCF (§6.1.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationTerminationRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Host (the S-CSCF).
    pub destination_host: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// User-Name (IMPI).
    pub user_name: String,
    /// Public-Identity values (empty: every identity of the IMPI).
    pub public_identities: Vec<String>,
    /// Deregistration-Reason.
    pub reason: DeregistrationReason,
}

impl RegistrationTerminationRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_REGISTRATION_TERMINATION, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(
            &mut m,
            &Some(self.destination_host.clone()),
            &self.destination_realm,
        );
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        for p in &self.public_identities {
            m.push(vs(AVP_PUBLIC_IDENTITY, p));
        }
        let mut g = vec![vu(AVP_REASON_CODE, self.reason.code as u32)];
        if let Some(i) = &self.reason.info {
            g.push(vs(AVP_REASON_INFO, i));
        }
        m.push(Avp::grouped(AVP_DEREGISTRATION_REASON, V, true, g));
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        let dr = m
            .avp(AVP_DEREGISTRATION_REASON, V)
            .ok_or(missing(AVP_DEREGISTRATION_REASON, V))?
            .as_grouped()?;
        let code = opt_u32(&dr, AVP_REASON_CODE, V)?.ok_or(missing(AVP_REASON_CODE, V))?;
        Ok(RegistrationTerminationRequest {
            destination_host: req_str(m, AVP_DESTINATION_HOST, None)?,
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            public_identities: m
                .avps_of(AVP_PUBLIC_IDENTITY, V)
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Result<_, _>>()?,
            reason: DeregistrationReason {
                code: ReasonCode::from_u32(code).ok_or(DiameterError::InvalidAvp {
                    code: AVP_REASON_CODE,
                    why: "unknown Reason-Code",
                })?,
                info: opt_str(&dr, AVP_REASON_INFO, V)?,
            },
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Push-Profile-Request, HSS to S-CSCF (§6.1.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushProfileRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Host (the S-CSCF).
    pub destination_host: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// User-Name (IMPI).
    pub user_name: String,
    /// User-Data: the new IMSSubscription XML.
    pub user_data: Option<String>,
}

impl PushProfileRequest {
    /// Encodes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CMD_PUSH_PROFILE, APP_ID_CX);
        request_head(
            &mut m,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(
            &mut m,
            &Some(self.destination_host.clone()),
            &self.destination_realm,
        );
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        if let Some(d) = &self.user_data {
            m.push(v(AVP_USER_DATA, d.as_bytes()));
        }
        m
    }
    /// Decodes.
    pub fn from_message(m: &Message) -> Result<Self, DiameterError> {
        let h = read_head(m)?;
        let user_data = match opt_bytes(&m.avps, AVP_USER_DATA, V) {
            Some(b) => Some(String::from_utf8(b).map_err(|_| DiameterError::InvalidAvp {
                code: AVP_USER_DATA,
                why: "User-Data is not UTF-8 XML",
            })?),
            None => None,
        };
        Ok(PushProfileRequest {
            destination_host: req_str(m, AVP_DESTINATION_HOST, None)?,
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            user_data,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// The answer to an RTR or PPR (RTA §6.1.10, PPA §6.1.12): just the result.
pub fn simple_answer(
    req: &Message,
    result: CxResult,
    origin_host: &str,
    origin_realm: &str,
) -> Message {
    let mut m = answer_head(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<T: PartialEq + std::fmt::Debug>(
        msg: Message,
        dec: impl Fn(&Message) -> Result<T, DiameterError>,
        orig: &T,
    ) {
        let bytes = msg.encode();
        let back = Message::decode(&bytes).expect("decodes");
        assert_eq!(&dec(&back).expect("typed decode"), orig);
    }

    #[test]
    fn every_cx_command_round_trips() {
        let uar = UserAuthorizationRequest {
            session_id: "icscf;1;2".into(),
            origin_host: "icscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            destination_realm: "ims.lab".into(),
            destination_host: None,
            user_name: "alice@ims.lab".into(),
            public_identity: "sip:alice@ims.lab".into(),
            visited_network_identifier: b"ims.lab".to_vec(),
            authorization_type: Some(UserAuthorizationType::Registration),
        };
        rt(
            uar.to_message(),
            UserAuthorizationRequest::from_message,
            &uar,
        );
        let uaa = UserAuthorizationAnswer {
            session_id: "icscf;1;2".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            result: CxResult::Experimental(DIAMETER_FIRST_REGISTRATION),
            server_name: Some("sip:scscf.ims.lab:5080".into()),
            server_capabilities: Some(ServerCapabilities {
                mandatory: vec![1],
                optional: vec![2, 3],
                server_names: vec!["sip:s2".into()],
            }),
        };
        rt(
            uaa.to_message(),
            UserAuthorizationAnswer::from_message,
            &uaa,
        );
        let mar = MultimediaAuthRequest {
            session_id: "s".into(),
            origin_host: "scscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            destination_realm: "ims.lab".into(),
            destination_host: Some("hss.ims.lab".into()),
            user_name: "bob@ims.lab".into(),
            public_identity: "sip:bob@ims.lab".into(),
            server_name: "sip:scscf.ims.lab:5080".into(),
            number_auth_items: 1,
            auth_data: SipAuthDataItem {
                scheme: "Digest-AKAv1-MD5".into(),
                authorization: Some(vec![1; 30]),
                ..Default::default()
            },
        };
        rt(mar.to_message(), MultimediaAuthRequest::from_message, &mar);
        let maa = MultimediaAuthAnswer {
            session_id: "s".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            result: CxResult::Base(2001),
            user_name: Some("bob@ims.lab".into()),
            public_identity: Some("sip:bob@ims.lab".into()),
            number_auth_items: Some(2),
            items: vec![
                SipAuthDataItem {
                    item_number: Some(1),
                    scheme: "Digest-AKAv1-MD5".into(),
                    authenticate: Some(vec![2; 32]),
                    authorization: Some(vec![3; 8]),
                    confidentiality_key: Some(vec![4; 16]),
                    integrity_key: Some(vec![5; 16]),
                    digest: None,
                },
                SipAuthDataItem {
                    item_number: Some(2),
                    scheme: "SIP Digest".into(),
                    digest: Some(SipDigestAuthenticate {
                        realm: "ims.lab".into(),
                        qop: Some("auth".into()),
                        ha1: "0123456789abcdef0123456789abcdef".into(),
                        algorithm: Some("MD5".into()),
                    }),
                    ..Default::default()
                },
            ],
        };
        rt(maa.to_message(), MultimediaAuthAnswer::from_message, &maa);
        let sar = ServerAssignmentRequest {
            session_id: "s".into(),
            origin_host: "scscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            destination_realm: "ims.lab".into(),
            destination_host: None,
            public_identities: vec!["sip:a@ims.lab".into(), "tel:+1".into()],
            user_name: Some("a@ims.lab".into()),
            server_name: "sip:scscf".into(),
            assignment_type: ServerAssignmentType::UserDeregistration,
            user_data_already_available: UserDataAlreadyAvailable::UserDataAlreadyAvailable,
        };
        rt(
            sar.to_message(),
            ServerAssignmentRequest::from_message,
            &sar,
        );
        let saa = ServerAssignmentAnswer {
            session_id: "s".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            result: CxResult::Base(2001),
            user_name: Some("a@ims.lab".into()),
            user_data: Some("<IMSSubscription/>".into()),
        };
        rt(saa.to_message(), ServerAssignmentAnswer::from_message, &saa);
        let lir = LocationInfoRequest {
            session_id: "s".into(),
            origin_host: "icscf".into(),
            origin_realm: "ims.lab".into(),
            destination_realm: "ims.lab".into(),
            destination_host: None,
            originating_request: true,
            public_identity: "sip:bob@ims.lab".into(),
            authorization_type: Some(UserAuthorizationType::RegistrationAndCapabilities),
        };
        rt(lir.to_message(), LocationInfoRequest::from_message, &lir);
        let lia = LocationInfoAnswer {
            session_id: "s".into(),
            origin_host: "hss".into(),
            origin_realm: "ims.lab".into(),
            result: CxResult::Experimental(DIAMETER_ERROR_IDENTITY_NOT_REGISTERED),
            server_name: None,
            server_capabilities: None,
        };
        rt(lia.to_message(), LocationInfoAnswer::from_message, &lia);
        let rtr = RegistrationTerminationRequest {
            session_id: "s".into(),
            origin_host: "hss".into(),
            origin_realm: "ims.lab".into(),
            destination_host: "scscf.ims.lab".into(),
            destination_realm: "ims.lab".into(),
            user_name: "a@ims.lab".into(),
            public_identities: vec!["sip:a@ims.lab".into()],
            reason: DeregistrationReason {
                code: ReasonCode::PermanentTermination,
                info: Some("removed".into()),
            },
        };
        rt(
            rtr.to_message(),
            RegistrationTerminationRequest::from_message,
            &rtr,
        );
        let ppr = PushProfileRequest {
            session_id: "s".into(),
            origin_host: "hss".into(),
            origin_realm: "ims.lab".into(),
            destination_host: "scscf.ims.lab".into(),
            destination_realm: "ims.lab".into(),
            user_name: "a@ims.lab".into(),
            user_data: Some("<IMSSubscription/>".into()),
        };
        rt(ppr.to_message(), PushProfileRequest::from_message, &ppr);
        let rta = simple_answer(&rtr.to_message(), CxResult::Base(2001), "scscf", "ims.lab");
        assert_eq!(rta.command_name(), "RTA");
        assert_eq!(rta.result_code(), Some(2001));
    }

    #[test]
    fn missing_mandatory_avps_are_named() {
        let mut m = Message::request(CMD_USER_AUTHORIZATION, APP_ID_CX);
        request_head(&mut m, "s", "h", "r");
        m.push(Avp::utf8(AVP_DESTINATION_REALM, None, true, "r"));
        m.push(Avp::utf8(AVP_USER_NAME, None, true, "u"));
        assert_eq!(
            UserAuthorizationRequest::from_message(&m),
            Err(DiameterError::MissingAvp {
                code: AVP_PUBLIC_IDENTITY,
                vendor_id: V
            })
        );
        assert!(CxResult::Experimental(2002).is_success());
        assert!(!CxResult::Experimental(5001).is_success());
    }
}
