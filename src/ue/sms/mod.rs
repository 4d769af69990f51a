//! SMS over IP in the simulated UE (3GPP TS 24.341): short messages in SIP MESSAGEs whose
//! body is an RP message (`application/vnd.3gpp.sms`, the relay layer of TS 24.011) carrying
//! a TPDU (TS 23.040), exchanged with the network's IP-SM-GW / service centre through the
//! P-CSCF like every other request of the UE.
//!
//! ```text
//! UE                                   network (IP-SM-GW / SC, tel:+15559999)
//!  │ MESSAGE tel:+15559999  RP-DATA(SMS-SUBMIT)  ──>│
//!  │<── 202 Accepted                                │
//!  │<── MESSAGE  RP-ACK(SMS-SUBMIT-REPORT)          │   (or RP-ERROR: failed)
//!  │ 200 OK ──>                                     │
//!  │                    ... delivered to the recipient ...
//!  │<── MESSAGE  RP-DATA(SMS-STATUS-REPORT)         │
//!  │ 200 OK ──>                                     │
//!  │ MESSAGE tel:+15559999  RP-ACK  ──>             │
//! ```
//! A message to us comes as RP-DATA(SMS-DELIVER) and is answered the same way (200, then an
//! RP-ACK in a MESSAGE of our own). The UE registers with `+g.3gpp.smsip` in its Contact
//! ([`SMSIP_FEATURE_TAG`], TS 24.341 §5.3.1.1).
//!
//! `core.rs` decides without sockets (unit-tested with a fake network in `core_tests.rs`),
//! `mo.rs` builds what is sent, `mt.rs` keeps what is received (copies dropped, parts put
//! together); `driver.rs` is the tokio task. [`SmsUe::start`] puts that task in front of a
//! [`Ue`]'s incoming requests: it keeps the SMS MESSAGEs and hands everything else on, so a
//! [`crate::ue::chat::ChatUe`] started on the same `Ue` afterwards serves the rest.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::ue::Ue;

pub mod core;
mod driver;
pub mod mms;
pub mod mo;
pub mod mt;
pub mod names;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod driver_tests;

pub use self::core::{SmsCore, RP_ACK_WAIT};
pub use self::mo::MAX_SMS_CHARS;

/// The Contact feature tag of an SMS-over-IP capable UE (TS 24.341 §5.3.1.1, RFC 3840).
pub const SMSIP_FEATURE_TAG: &str = ";+g.3gpp.smsip";

/// The service centre (SC address, and the Request-URI `tel:` of MO MESSAGEs) by default.
pub const DEFAULT_SMSC: &str = "+15559999";

/// A submission: one text sent (in one or more parts), as [`SmsEvent`]s name it.
pub type SmsId = u64;

/// What the UE tells its application about SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsEvent {
    /// The service centre took every part of submission `id` (an RP-ACK for each).
    Submitted { id: SmsId, parts: usize },
    /// Status reports for every part say the recipient has it (TP-ST 0x00-0x1F).
    Delivered { id: SmsId },
    /// Submission `id` failed: `RP-ERROR cause 30 (unknown subscriber)`, `MESSAGE answered
    /// 403 Forbidden`, `no RP-ACK within 30 s`, `TP-ST 0x46 (SM validity period expired)`.
    Failed { id: SmsId, reason: String },
    /// A short message arrived (its parts together): `from` is `tel:+15550001`, or the text
    /// of an alphanumeric sender.
    Received { from: String, text: String },
    /// An MMS notification arrived (its parts together) and its Content-Location was
    /// fetched, or not (`fetched` says why).
    Mms {
        from: String,
        notification: crate::mms::Notification,
        fetched: Result<mms::Fetched, mms::FetchError>,
    },
}

impl SmsEvent {
    /// How `listen` prints a received message, or None for the sender's own events: `FROM:
    /// TEXT`, or for an MMS `FROM: [MMS] SUBJECT (TYPE, N bytes) URL`.
    pub fn received_line(&self) -> Option<String> {
        match self {
            SmsEvent::Received { from, text } => Some(format!("{from}: {text}")),
            SmsEvent::Mms {
                from,
                notification: n,
                fetched,
            } => {
                let subject = n.subject.as_deref().unwrap_or("(no subject)");
                let what = match fetched {
                    Ok(f) => format!("{}, {} bytes", f.content_type, f.body.len()),
                    Err(e) => format!("not fetched: {e}"),
                };
                Some(format!(
                    "{from}: [MMS] {subject} ({what}) {}",
                    n.content_location
                ))
            }
            _ => None,
        }
    }
}

/// Why a text is not sent at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsSendError {
    /// The recipient is not a phone number.
    #[error("not a phone number: '{0}' (give tel:+15550002, +15550002 or sip:+15550002@DOMAIN;user=phone)")]
    Recipient(String),
    /// The service centre address is not a phone number.
    #[error("not a service centre number: '{0}'")]
    Smsc(String),
    /// Over [`MAX_SMS_CHARS`].
    #[error("the text has {0} characters (at most {MAX_SMS_CHARS})")]
    TooLong(usize),
    /// A PDU does not encode.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// The UE's SMS task is gone.
    #[error("the SMS client stopped")]
    Stopped,
}

/// Checks what [`SmsUe::send`] would refuse, without sending.
pub fn check(to: &str, text: &str, smsc: &str) -> Result<(), SmsSendError> {
    mo::recipient_number(smsc).map_err(|_| SmsSendError::Smsc(smsc.into()))?;
    mo::prepare(to, text).map(|_| ())
}

/// How the UE's SMS client behaves.
#[derive(Debug, Clone)]
pub struct SmsOptions {
    /// The service centre's number ([`DEFAULT_SMSC`]).
    pub smsc: String,
}

impl Default for SmsOptions {
    fn default() -> Self {
        SmsOptions {
            smsc: DEFAULT_SMSC.to_string(),
        }
    }
}

enum Cmd {
    Send {
        to: String,
        text: String,
        reply: oneshot::Sender<Result<SmsId, SmsSendError>>,
    },
}

/// The application's handle on a UE's SMS client.
pub struct SmsUe {
    cmd: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<SmsEvent>,
}

impl SmsUe {
    /// Starts the SMS client of `ue` (registered or about to be): it takes the UE's incoming
    /// requests, serves the `application/vnd.3gpp.sms` MESSAGEs and hands every other one
    /// back to `ue` (its [`Ue::next_request`], or a `ChatUe` started on it next).
    pub fn start(ue: &mut Ue, opts: SmsOptions) -> SmsUe {
        let sip_in = ue.take_incoming();
        let (pass, rest) = mpsc::unbounded_channel();
        ue.rx = rest;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let d = driver::Driver::new(ue, opts, ev_tx);
        tokio::spawn(d.run(sip_in, pass, cmd_rx));
        SmsUe {
            cmd: cmd_tx,
            events: ev_rx,
        }
    }

    /// Sends `text` to `to` (`tel:+15550002`, `+15550002` or `sip:+15550002@ims.lab;user=phone`)
    /// through the service centre: `Err` when refused before sending (not a number, over
    /// [`MAX_SMS_CHARS`]); else its id, and its fate comes as [`SmsEvent::Submitted`] then
    /// [`SmsEvent::Delivered`], or [`SmsEvent::Failed`].
    pub async fn send(&self, to: &str, text: &str) -> Result<SmsId, SmsSendError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Cmd::Send {
            to: to.to_string(),
            text: text.to_string(),
            reply: tx,
        });
        rx.await.unwrap_or(Err(SmsSendError::Stopped))
    }

    /// The next event, if one comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<SmsEvent> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}
