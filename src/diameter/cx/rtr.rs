//! Registration-Termination-Request (TS 29.229 §6.1.9; procedure TS 29.228 §6.2.2): the HSS
//! tells the serving S-CSCF to de-register a user. Its answer (RTA, §6.1.10) is
//! [`simple_answer`](super::simple_answer).

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

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

impl CxMessage for RegistrationTerminationRequest {
    const COMMAND_CODE: u32 = CMD_REGISTRATION_TERMINATION;
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

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        let dr = m
            .avp(AVP_DEREGISTRATION_REASON, V)
            .ok_or(missing(AVP_DEREGISTRATION_REASON, V))?
            .as_grouped()?;
        let code = req_u32(&dr, AVP_REASON_CODE, V)?;
        Ok(RegistrationTerminationRequest {
            destination_host: req_str(m, AVP_DESTINATION_HOST, None)?,
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            public_identities: all_str(m, AVP_PUBLIC_IDENTITY)?,
            reason: DeregistrationReason {
                code: ReasonCode::from_u32(code).ok_or(CxError::InvalidAvp {
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
