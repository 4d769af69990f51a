//! Server-Assignment-Request/Answer (TS 29.229 §6.1.3, §6.1.4; procedure TS 29.228 §6.1.2):
//! the S-CSCF tells the HSS it serves (or stops serving) a user and gets the user profile.

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

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

impl CxMessage for ServerAssignmentRequest {
    const COMMAND_CODE: u32 = CMD_SERVER_ASSIGNMENT;
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

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        let t = req_u32(&m.avps, AVP_SERVER_ASSIGNMENT_TYPE, V)?;
        let u = req_u32(&m.avps, AVP_USER_DATA_ALREADY_AVAILABLE, V)?;
        Ok(ServerAssignmentRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            public_identities: all_str(m, AVP_PUBLIC_IDENTITY)?,
            user_name: opt_str(&m.avps, AVP_USER_NAME, None)?,
            server_name: req_str(m, AVP_SERVER_NAME, V)?,
            assignment_type: ServerAssignmentType::from_u32(t).ok_or(CxError::InvalidAvp {
                code: AVP_SERVER_ASSIGNMENT_TYPE,
                why: "unknown Server-Assignment-Type",
            })?,
            user_data_already_available: UserDataAlreadyAvailable::from_u32(u).ok_or(
                CxError::InvalidAvp {
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

impl CxMessage for ServerAssignmentAnswer {
    const COMMAND_CODE: u32 = CMD_SERVER_ASSIGNMENT;
    const IS_REQUEST: bool = false;

    fn encode(&self) -> Message {
        let mut m = answer_head(
            Self::COMMAND_CODE,
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

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        let user_data = opt_user_data(m)?;
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
