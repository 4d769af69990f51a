//! Cx requests the HSS sends to the S-CSCF (TS 29.228 §6.1.3, §6.1.4; TS 29.229 §6.1.9,
//! §6.1.11): Registration-Termination (the user's registrations end now: removed, with
//! third-party REGISTERs and `rejected` NOTIFYs) and Push-Profile (a new user profile for the
//! registered sets of a private identity). The decisions on the registrar are socket-free
//! ([`terminate`], [`push_profile`]); the Diameter handler ([`ScscfCx`]) answers.

use std::sync::{Arc, OnceLock, Weak};

use super::registrar::{RegistrarCore, Registration};
use super::Scscf;
use crate::cscf::regevent::ContactEvent;
use crate::diameter::codec::{
    Avp, DiameterError, Message, DIAMETER_COMMAND_UNSUPPORTED, DIAMETER_MISSING_AVP,
    DIAMETER_UNABLE_TO_COMPLY,
};
use crate::diameter::cx::{self, CxResult, PushProfileRequest, RegistrationTerminationRequest};
use crate::diameter::peer::{BoxFuture, DiameterHandler, PeerInfo};
use crate::profile::ImsSubscription;

/// RTR (TS 29.228 §6.1.3): removes the registrations of the request's public identities, or
/// of its private identity when it lists none, and returns them.
pub fn terminate(
    core: &mut RegistrarCore,
    rtr: &RegistrationTerminationRequest,
) -> Vec<Registration> {
    let regs = core.of(&rtr.user_name, &rtr.public_identities);
    for reg in &regs {
        core.remove(reg);
    }
    regs
}

/// PPR (TS 29.228 §6.1.4): the new profile goes to every registered set of the private
/// identity. DIAMETER_ERROR_USER_UNKNOWN when it has none; User-Data that is not an
/// IMSSubscription is refused and changes nothing.
pub fn push_profile(
    core: &mut RegistrarCore,
    ppr: &PushProfileRequest,
) -> Result<CxResult, DiameterError> {
    let regs = core.of(&ppr.user_name, &[]);
    if regs.is_empty() {
        return Ok(CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN));
    }
    if let Some(xml) = &ppr.user_data {
        let profile = ImsSubscription::parse(xml).map_err(|_| DiameterError::InvalidAvp {
            code: cx::AVP_USER_DATA,
            why: "User-Data is not a valid IMSSubscription",
        })?;
        for mut reg in regs {
            reg.profile = Some(profile.clone());
            tracing::info!(impi = %reg.impi, "new user profile from the HSS (PPR)");
            core.store(reg);
        }
    }
    Ok(CxResult::Base(2001))
}

/// Handles requests the HSS sends to a CSCF over Cx. Registration-Termination and
/// Push-Profile (TS 29.229 §6.1.3, §6.1.7) are not implemented yet: they are answered with
/// DIAMETER_COMMAND_UNSUPPORTED so the HSS sees a clear refusal rather than silence.
pub struct CxClientHandler;

impl DiameterHandler for CxClientHandler {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        Box::pin(async move {
            Message::error_answer(
                &request,
                DIAMETER_COMMAND_UNSUPPORTED,
                None,
                Some("not supported by this CSCF yet"),
            )
        })
    }
}

/// The S-CSCF's handler for HSS-initiated Cx requests: Registration-Termination (TS 29.229
/// §6.1.9, the user is de-registered now) and Push-Profile (§6.1.11, the profile changed).
/// It is created before the S-CSCF it serves, which is attached with [`ScscfCx::attach`].
#[derive(Clone, Default)]
pub struct ScscfCx {
    scscf: Arc<OnceLock<Weak<Scscf>>>,
}

impl ScscfCx {
    /// Points the handler at its S-CSCF.
    pub fn attach(&self, scscf: &Arc<Scscf>) {
        let _ = self.scscf.set(Arc::downgrade(scscf));
    }
}

impl DiameterHandler for ScscfCx {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        let scscf = self.scscf.get().and_then(|w| w.upgrade());
        Box::pin(async move {
            let Some(s) = scscf else {
                return Message::error_answer(&request, DIAMETER_UNABLE_TO_COMPLY, None, None);
            };
            let r = match request.command_code {
                cx::CMD_REGISTRATION_TERMINATION => s.on_rtr(&request),
                cx::CMD_PUSH_PROFILE => s.on_ppr(&request),
                _ => {
                    return Message::error_answer(
                        &request,
                        DIAMETER_COMMAND_UNSUPPORTED,
                        None,
                        None,
                    )
                }
            };
            match r {
                Ok(a) => a,
                Err(DiameterError::MissingAvp { code, vendor_id }) => Message::error_answer(
                    &request,
                    DIAMETER_MISSING_AVP,
                    Some(Avp::new(code, vendor_id, true, Vec::<u8>::new())),
                    None,
                ),
                Err(e) => Message::error_answer(
                    &request,
                    DIAMETER_UNABLE_TO_COMPLY,
                    None,
                    Some(&e.to_string()),
                ),
            }
        })
    }
}

impl Scscf {
    fn on_rtr(&self, req: &Message) -> Result<Message, DiameterError> {
        let rtr = RegistrationTerminationRequest::from_message(req)?;
        let regs = match self.regs.lock() {
            Ok(mut core) => terminate(&mut core, &rtr),
            Err(_) => Vec::new(),
        };
        for reg in &regs {
            if let Some(i) = reg.impus.first() {
                self.third_party_register(reg, i, 0, None);
            }
            self.notify_all(reg, ContactEvent::Rejected);
            tracing::info!(
                impi = %reg.impi,
                reason = ?rtr.reason.code,
                info = rtr.reason.info.as_deref().unwrap_or(""),
                "registration terminated by the HSS (RTR)"
            );
        }
        Ok(cx::simple_answer(
            req,
            CxResult::Base(2001),
            &self.origin_host,
            &self.domain,
        ))
    }

    fn on_ppr(&self, req: &Message) -> Result<Message, DiameterError> {
        let ppr = PushProfileRequest::from_message(req)?;
        let result = match self.regs.lock() {
            Ok(mut core) => push_profile(&mut core, &ppr)?,
            Err(_) => CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN),
        };
        Ok(cx::simple_answer(
            req,
            result,
            &self.origin_host,
            &self.domain,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cscf::scscf::registrar::tests::register;
    use std::time::Instant;

    fn core_with_alice() -> RegistrarCore {
        let mut core = RegistrarCore::new(crate::config::Registrar {
            default_expires: 600,
            min_expires: 60,
            max_expires: 3600,
        });
        let req = register(&["<sip:alice@10.0.0.1:5062>"], Some(600));
        core.save(
            Instant::now(),
            &req,
            "alice@ims.lab",
            "sip:alice@ims.lab",
            None,
            None,
        )
        .unwrap();
        core
    }

    fn ppr(user_data: Option<&str>, impi: &str) -> PushProfileRequest {
        PushProfileRequest {
            session_id: "s".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            destination_host: "scscf.ims.lab".into(),
            destination_realm: "ims.lab".into(),
            user_name: impi.into(),
            user_data: user_data.map(str::to_string),
        }
    }

    const PROFILE: &str =
        "<?xml version=\"1.0\"?><IMSSubscription><PrivateID>alice@ims.lab</PrivateID>\
        <ServiceProfile><PublicIdentity><Identity>sip:alice@ims.lab</Identity></PublicIdentity>\
        </ServiceProfile></IMSSubscription>";

    #[test]
    fn ppr_replaces_the_profile_of_a_registered_impi_only() {
        let mut core = core_with_alice();
        assert_eq!(
            push_profile(&mut core, &ppr(Some(PROFILE), "ALICE@ims.lab")),
            Ok(CxResult::Base(2001))
        );
        assert!(core.get("sip:alice@ims.lab").unwrap().profile.is_some());
        assert_eq!(
            push_profile(&mut core, &ppr(Some(PROFILE), "bob@ims.lab")),
            Ok(CxResult::Experimental(cx::DIAMETER_ERROR_USER_UNKNOWN))
        );
        assert!(matches!(
            push_profile(&mut core, &ppr(Some("<not-a-profile/>"), "alice@ims.lab")),
            Err(DiameterError::InvalidAvp { .. })
        ));
    }

    #[test]
    fn rtr_removes_the_listed_identities_or_every_set_of_the_impi() {
        let rtr = |impus: &[&str]| RegistrationTerminationRequest {
            session_id: "s".into(),
            origin_host: "hss.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            destination_host: "scscf.ims.lab".into(),
            destination_realm: "ims.lab".into(),
            user_name: "alice@ims.lab".into(),
            public_identities: impus.iter().map(|s| s.to_string()).collect(),
            reason: cx::DeregistrationReason {
                code: cx::ReasonCode::PermanentTermination,
                info: None,
            },
        };
        let mut core = core_with_alice();
        assert!(terminate(&mut core, &rtr(&["sip:bob@ims.lab"])).is_empty());
        assert_eq!(core.len(), 1);
        let gone = terminate(&mut core, &rtr(&["sip:alice@ims.lab"]));
        assert_eq!(gone.len(), 1);
        assert!(core.get("sip:alice@ims.lab").is_none());

        let mut core = core_with_alice();
        assert_eq!(terminate(&mut core, &rtr(&[])).len(), 1);
        assert_eq!(core.len(), 0);
    }
}
