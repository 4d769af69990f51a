//! User-Authorization-Request/Answer (TS 29.229 §6.1.1, §6.1.2; procedure TS 29.228
//! §6.1.1): the I-CSCF asks the HSS whether a user may register and which S-CSCF serves it.

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

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
    /// The grouped AVP: Mandatory-Capability*, Optional-Capability*, Server-Name*.
    pub(super) fn to_avp(&self) -> Avp {
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

    /// Reads it from an answer, if there.
    pub(super) fn from_avps(m: &Message) -> Result<Option<ServerCapabilities>, CxError> {
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

impl CxMessage for UserAuthorizationRequest {
    const COMMAND_CODE: u32 = CMD_USER_AUTHORIZATION;
    const IS_REQUEST: bool = true;

    fn encode(&self) -> Message {
        let mut m = request_head(
            Self::COMMAND_CODE,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(
            &mut m,
            self.destination_host.as_deref(),
            &self.destination_realm,
        );
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

    fn decode(m: &Message) -> Result<Self, CxError> {
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

/// The answer that names the serving S-CSCF, or what it must be able to do: the
/// User-Authorization-Answer (§6.1.2) and the Location-Info-Answer (§6.1.6) carry the same
/// AVPs (TS 29.229 §6.1.2, §6.1.6: Server-Name or Server-Capabilities), so one type serves
/// both, told apart by the command code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingAnswer<const CMD: u32> {
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

/// User-Authorization-Answer (§6.1.2).
pub type UserAuthorizationAnswer = ServingAnswer<CMD_USER_AUTHORIZATION>;

impl<const CMD: u32> CxMessage for ServingAnswer<CMD> {
    const COMMAND_CODE: u32 = CMD;
    const IS_REQUEST: bool = false;

    fn encode(&self) -> Message {
        let mut m = answer_head(
            Self::COMMAND_CODE,
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

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        Ok(ServingAnswer {
            result: read_result(m)?,
            server_name: opt_str(&m.avps, AVP_SERVER_NAME, V)?,
            server_capabilities: ServerCapabilities::from_avps(m)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}
