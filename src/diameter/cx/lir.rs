//! Location-Info-Request/Answer (TS 29.229 §6.1.5, §6.1.6; procedure TS 29.228 §6.1.4):
//! the I-CSCF asks the HSS which S-CSCF serves a called identity.

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

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

impl CxMessage for LocationInfoRequest {
    const COMMAND_CODE: u32 = CMD_LOCATION_INFO;
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
        if self.originating_request {
            m.push(vu(AVP_ORIGINATING_REQUEST, 0)); // ORIGINATING (§6.3.32)
        }
        m.push(vs(AVP_PUBLIC_IDENTITY, &self.public_identity));
        if let Some(t) = self.authorization_type {
            m.push(vu(AVP_USER_AUTHORIZATION_TYPE, t as u32));
        }
        m
    }

    fn decode(m: &Message) -> Result<Self, CxError> {
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

/// Location-Info-Answer (§6.1.6): the same AVPs as the UAA.
pub type LocationInfoAnswer = super::uar::ServingAnswer<CMD_LOCATION_INFO>;
