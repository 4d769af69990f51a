//! Push-Profile-Request (TS 29.229 §6.1.11; procedure TS 29.228 §6.5.2): the HSS sends the
//! serving S-CSCF a user's changed profile. Its answer (PPA, §6.1.12) is
//! [`simple_answer`](super::simple_answer).

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

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

impl CxMessage for PushProfileRequest {
    const COMMAND_CODE: u32 = CMD_PUSH_PROFILE;
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
            Some(&self.destination_host),
            &self.destination_realm,
        );
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        if let Some(d) = &self.user_data {
            m.push(v(AVP_USER_DATA, d.as_bytes()));
        }
        m
    }

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        let user_data = opt_user_data(m)?;
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
