//! The SMS steps of a lab file: SMS over IP through the IP-SM-GW (3GPP TS 24.341, the relay
//! layer of TS 24.011, the TPDUs of TS 23.040) and an application over SMPP 3.4.
//!
//! - `register` with `sms = true`: the user's SMS client ([`SmsUe`]) takes the UE *before*
//!   its REGISTER, so an SMS the centre kept for the user is answered as soon as it comes.
//! - `sms`: `user` sends `text` to `to` (a user of the lab, whose `tel:` identity is the
//!   number, or a number: `+15550002`, `tel:+15550002`); the step waits for `expect`:
//!   `delivered` (the default: the status report says the recipient has it, and a recipient
//!   whose client runs here got the text), `accepted` (the centre's RP-ACK only: a recipient
//!   that is away gets it later) or `failed`. Every user a step names who registered gets an
//!   SMS client.
//! - `sms-wait`: waits for `user`'s last SMS to reach `expect` (default `delivered`): after a
//!   `sms` step with `expect = "accepted"` and the recipient's `register`.
//! - `smpp`: application `user` (an account of `[smsc] accounts`, default `lab-app`, binding
//!   with its password) connects to the SMSC's SMPP listener, bind_transceiver, submit_sm of
//!   `text` to `to` from its first short code with registered_delivery (a receipt on the
//!   final outcome), waits for submit_sm_resp and the receipt (deliver_sm, answered with
//!   deliver_sm_resp) saying DELIVRD for that message_id, then unbinds. The ladder names it
//!   `APP <system_id>`.
//!
//! Each step ends once the lab has been quiet for a moment ([`super::group::quiet`]): the
//! RP-ACK MESSAGE a report sets off is in the step's lines, not the next one's.

use std::collections::HashMap;
use std::time::Duration;

use super::Step;
use crate::lab::esme::{submit_sm, Esme, EsmeError, EsmeEvent};
use crate::lab::Lab;
use crate::smpp::MessageState;
use crate::ue::sms::{SmsEvent, SmsId, SmsOptions, SmsUe};
use crate::ue::Ue;

/// How long a step waits for the outcome it expects.
const WAIT: Duration = Duration::from_secs(15);
/// How long the application waits for each SMPP answer.
const SMPP_WAIT: Duration = Duration::from_secs(5);

/// Why an SMS step failed (the lab run reports it as the step's failure).
#[derive(Debug, thiserror::Error)]
pub(super) enum SmsStepError {
    /// The step is missing a field or has a bad one.
    #[error("{0}")]
    Bad(String),
    /// The user named has no registered UE in this run.
    #[error("'{0}' has not registered")]
    NotRegistered(String),
    /// The client refused to send.
    #[error("not sent: {0}")]
    NotSent(#[from] crate::ue::sms::SmsSendError),
    /// The outcome was not the one the lab expects.
    #[error("expected {want}, got {got}")]
    Outcome { want: String, got: String },
    /// Nothing came in time.
    #[error("{0} within {WAIT:?}")]
    Timeout(String),
    /// The application's SMPP exchange failed.
    #[error("SMPP: {0}")]
    Smpp(#[from] EsmeError),
}

/// What a step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted,
    Delivered,
    Failed,
}

impl Expect {
    fn of(s: &Step) -> Result<Expect, SmsStepError> {
        match s.expect.as_deref().unwrap_or("delivered") {
            "delivered" => Ok(Expect::Delivered),
            "accepted" => Ok(Expect::Accepted),
            "failed" => Ok(Expect::Failed),
            other => Err(SmsStepError::Bad(format!(
                "`expect` {other:?}: delivered, accepted or failed"
            ))),
        }
    }
}

/// The SMS clients of a run, and each sender's last submission.
#[derive(Default)]
pub(super) struct Phones {
    clients: HashMap<String, SmsUe>,
    /// user -> (id, recipient user if one of the lab's, text) of the last `sms` step.
    last: HashMap<String, (SmsId, Option<String>, String)>,
}

impl Phones {
    /// Starts `user`'s SMS client on `ue` (registered or about to be).
    pub(super) fn adopt(&mut self, user: &str, ue: &mut Ue) {
        if !self.clients.contains_key(user) {
            let c = SmsUe::start(ue, SmsOptions::default());
            self.clients.insert(user.to_string(), c);
        }
    }

    /// Gives `who` (registered, in `ues`) an SMS client if it has none.
    fn ensure(&mut self, ues: &mut [(String, Ue)], who: &str) -> Result<(), SmsStepError> {
        if self.clients.contains_key(who) {
            return Ok(());
        }
        let (_, ue) = ues
            .iter_mut()
            .find(|(u, _)| u == who)
            .ok_or_else(|| SmsStepError::NotRegistered(who.to_string()))?;
        self.adopt(who, ue);
        Ok(())
    }

    /// Runs one `sms`, `sms-wait` or `smpp` step.
    pub(super) async fn step(
        &mut self,
        lab: &Lab,
        ues: &mut [(String, Ue)],
        s: &Step,
    ) -> Result<(), SmsStepError> {
        let user = s.user.clone().unwrap_or_default();
        match s.action.as_str() {
            "sms" => {
                let expect = Expect::of(s)?;
                let to = s.to.clone().ok_or(SmsStepError::Bad("needs `to`".into()))?;
                let (number, recipient) = number_of(lab, &to)?;
                self.ensure(ues, &user)?;
                // A recipient registered in this run answers through its own SMS client.
                let recipient = recipient.filter(|r| ues.iter().any(|(u, _)| u == r));
                if let Some(r) = &recipient {
                    self.ensure(ues, r)?;
                }
                let text = s.text.clone().unwrap_or_else(|| "hi".into());
                let id = self.client(&user)?.send(&number, &text).await?;
                self.last
                    .insert(user.clone(), (id, recipient.clone(), text.clone()));
                self.outcome(&user, expect).await?;
            }
            "sms-wait" => {
                let expect = Expect::of(s)?;
                let (_, recipient, _) = self
                    .last
                    .get(&user)
                    .cloned()
                    .ok_or(SmsStepError::Bad(format!("'{user}' has sent no SMS")))?;
                if let Some(r) = recipient.filter(|r| ues.iter().any(|(u, _)| u == r)) {
                    self.ensure(ues, &r)?;
                }
                self.outcome(&user, expect).await?;
            }
            "smpp" => smpp_submit(lab, s).await?,
            other => return Err(SmsStepError::Bad(format!("unknown action '{other}'"))),
        }
        super::group::quiet(lab).await;
        Ok(())
    }

    fn client(&mut self, user: &str) -> Result<&mut SmsUe, SmsStepError> {
        self.clients
            .get_mut(user)
            .ok_or_else(|| SmsStepError::NotRegistered(user.to_string()))
    }

    /// Waits for `user`'s last submission to reach `expect`; for `delivered`, also for the
    /// recipient's client (if it runs here) to have the text.
    async fn outcome(&mut self, user: &str, expect: Expect) -> Result<(), SmsStepError> {
        let (id, recipient, text) = self
            .last
            .get(user)
            .cloned()
            .ok_or(SmsStepError::Bad(format!("'{user}' has sent no SMS")))?;
        let deadline = tokio::time::Instant::now() + WAIT;
        let sender = self.client(user)?;
        let got = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match sender.next_event(left).await {
                Some(SmsEvent::Submitted { id: i, .. }) if i == id => {
                    if expect == Expect::Accepted {
                        return Ok(());
                    }
                }
                Some(SmsEvent::Delivered { id: i }) if i == id => break Expect::Delivered,
                Some(SmsEvent::Failed { id: i, reason }) if i == id => {
                    if expect == Expect::Failed {
                        return Ok(());
                    }
                    return Err(SmsStepError::Outcome {
                        want: format!("{expect:?}").to_lowercase(),
                        got: format!("failed: {reason}"),
                    });
                }
                Some(_) => {}
                None => {
                    return Err(SmsStepError::Timeout(format!(
                        "'{user}''s SMS not {}",
                        format!("{expect:?}").to_lowercase()
                    )))
                }
            }
        };
        if got != expect {
            return Err(SmsStepError::Outcome {
                want: format!("{expect:?}").to_lowercase(),
                got: "delivered".into(),
            });
        }
        if let Some(r) = recipient {
            received(self.client(&r)?, &r, &text).await?;
        }
        Ok(())
    }
}

/// Waits until `who`'s client reports `text` received.
async fn received(c: &mut SmsUe, who: &str, text: &str) -> Result<(), SmsStepError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next_event(left).await {
            Some(SmsEvent::Received { text: t, .. }) if t == text => return Ok(()),
            Some(_) => {}
            None => return Err(SmsStepError::Timeout(format!("'{who}' got no {text:?}"))),
        }
    }
}

/// The number to send to, and the lab user it belongs to (when `to` names one, or is the
/// `tel:` identity of one).
pub(super) fn number_of(lab: &Lab, to: &str) -> Result<(String, Option<String>), SmsStepError> {
    let domain = &lab.config.lab.domain;
    let subs = &lab.config.subscribers;
    let digits = to.trim_start_matches("tel:");
    if digits.starts_with('+') {
        let tel = format!("tel:{digits}");
        let user = subs
            .iter()
            .find(|x| x.impu.contains(&tel))
            .and_then(|x| x.impu.iter().find_map(|u| user_of(u, domain)));
        return Ok((tel, user));
    }
    let aor = format!("sip:{to}@{domain}");
    let sub = subs
        .iter()
        .find(|x| x.impu.contains(&aor))
        .ok_or_else(|| SmsStepError::Bad(format!("no user '{to}' in the lab")))?;
    let tel = sub
        .impu
        .iter()
        .find(|u| u.starts_with("tel:"))
        .ok_or_else(|| SmsStepError::Bad(format!("'{to}' has no tel: identity (no number)")))?;
    Ok((tel.clone(), Some(to.to_string())))
}

fn user_of(impu: &str, domain: &str) -> Option<String> {
    impu.strip_prefix("sip:")?
        .strip_suffix(&format!("@{domain}"))
        .map(str::to_string)
}

/// The `smpp` step: bind, submit_sm with a receipt asked for, the receipt, unbind.
async fn smpp_submit(lab: &Lab, s: &Step) -> Result<(), SmsStepError> {
    let system_id = s.user.clone().unwrap_or_else(|| "lab-app".into());
    let account = lab
        .config
        .smsc
        .accounts
        .iter()
        .find(|a| a.system_id == system_id)
        .ok_or_else(|| SmsStepError::Bad(format!("no SMPP account '{system_id}' in [smsc]")))?;
    let source = account
        .short_codes
        .first()
        .cloned()
        .unwrap_or_else(|| system_id.clone());
    let to = s.to.clone().ok_or(SmsStepError::Bad("needs `to`".into()))?;
    let (number, _) = number_of(lab, &to)?;
    let text = s.text.clone().unwrap_or_else(|| "hi".into());
    let mut app = Esme::connect(lab.addrs.smsc).await?;
    lab.name_addr(app.local_addr(), &format!("APP {system_id}"));
    app.bind_transceiver(&system_id, &account.password, SMPP_WAIT)
        .await?;
    let id = app
        .call(
            submit_sm(&source, number.trim_start_matches("tel:"), &text, true),
            "submit_sm_resp",
            SMPP_WAIT,
        )
        .await?
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match app.next_event(left).await {
            Some(EsmeEvent::Deliver {
                receipt: Some(r), ..
            }) if r.id == id => {
                if r.stat != MessageState::Delivered {
                    return Err(SmsStepError::Outcome {
                        want: "a DELIVRD receipt".into(),
                        got: format!("{:?}", r.stat),
                    });
                }
                break;
            }
            Some(EsmeEvent::Closed) => return Err(EsmeError::Closed.into()),
            Some(_) => {}
            None => return Err(SmsStepError::Timeout(format!("no receipt for {id}"))),
        }
    }
    // The deliver_sm_resp is on its way before the unbind (one writer, in order).
    super::group::quiet(lab).await;
    app.unbind(SMPP_WAIT).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lab::scenario::{diff, Scenario};

    fn lab(name: &str) -> Scenario {
        let (_, text) = crate::lab::catalog::LABS
            .iter()
            .find(|(n, _)| n.starts_with(name))
            .expect("the lab is in the catalog");
        Scenario::parse(text, name).expect("the lab parses")
    }

    fn strip(l: &str) -> String {
        ["~ ", "? ", "! "]
            .iter()
            .find_map(|m| l.strip_prefix(m))
            .unwrap_or(l)
            .to_string()
    }

    /// Lab 23's `?` lines: the run where the delivery beats the REGISTER's 200 to the
    /// P-CSCF (480 there, the IP-SM-GW's second try a second later) matches as well as the
    /// run where it does not, and the status report after the barrier is not taken for one
    /// of them.
    #[test]
    fn lab_23_matches_with_and_without_the_delivery_that_beat_the_200() {
        let sc = lab("23-");
        let plain: Vec<String> = sc
            .expected
            .iter()
            .filter(|l| !l.starts_with("? "))
            .map(|l| strip(l))
            .collect();
        assert_eq!(diff(&sc.expected, &plain), None);
        let race: Vec<String> = sc
            .expected
            .iter()
            .filter(|l| l.starts_with("? "))
            .map(|l| strip(l))
            .collect();
        assert_eq!(race.len(), 8);
        let saa = plain
            .iter()
            .rposition(|l| l == "HSS -> S-CSCF Diameter SAA")
            .unwrap();
        let mut raced = plain.clone();
        // Right after the IP-SM-GW's 200 to the third-party REGISTER, before the REGISTER's
        // 200 leaves the S-CSCF.
        let at = saa
            + plain[saa..]
                .iter()
                .position(|l| l == "IP-SM-GW -> S-CSCF SIP 200")
                .unwrap()
            + 1;
        raced.splice(at..at, race.iter().cloned());
        assert_eq!(diff(&sc.expected, &raced), None);
        // A delivery that never came is missed.
        let mut lost = plain.clone();
        let bob = lost
            .iter()
            .position(|l| l == "P-CSCF -> UE bob SIP MESSAGE")
            .unwrap();
        lost.remove(bob);
        assert!(diff(&sc.expected, &lost).is_some());
    }
}
