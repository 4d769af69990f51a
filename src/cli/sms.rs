//! `rcslab ue ... sms`: one short message over IP (3GPP TS 24.341) through the UE's SMS
//! client (`rcslab::ue::sms`), its outcome printed as one line scripts rely on, as `ue send`
//! prints a chat message's.

use std::time::Duration;

use rcslab::ue::chat::{ChatOptions, ChatUe};
use rcslab::ue::sms::{SmsEvent, SmsOptions, SmsUe};
use rcslab::ue::Ue;

use super::{CliError, Result};

/// Sends `text` to `to` through service centre `smsc` from the registered `ue`, prints what
/// became of it and de-registers, as `ue send` does.
pub async fn run(
    mut ue: Ue,
    trace: rcslab::trace::Trace,
    to: &str,
    text: &str,
    timeout: u64,
    smsc: String,
) -> Result<()> {
    let mut sms = SmsUe::start(&mut ue, SmsOptions { smsc });
    // The chat client serves whatever else comes (OPTIONS...) and de-registers at the end.
    let chat = ChatUe::start(ue, trace, ChatOptions::default());
    let outcome = tokio::select! {
        r = send(&mut sms, to, text, timeout) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    };
    // Leave no contact registered behind us (TS 24.229 §5.1.1.6), whatever the outcome.
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await,
        Ok(true)
    ) {
        eprintln!("rcslab ue: de-registration got no 200; the contact lapses by itself");
    }
    outcome
}

/// `ue sms`: sends `text` to `to` and waits for what becomes of it: prints `delivered`
/// (status reports for every part say so), `failed: REASON` (`RP-ERROR cause 30 (unknown
/// subscriber)`, `MESSAGE answered 403 Forbidden`, `no RP-ACK within 30 s`, `TP-ST 0x46 (SM
/// validity period expired)`) or, `timeout` seconds after the service centre took the last
/// part, `pending: ...` (exit 1: not delivered, but not lost either).
async fn send(sms: &mut SmsUe, to: &str, text: &str, timeout: u64) -> Result<()> {
    let id = sms
        .send(to, text)
        .await
        .map_err(|e| CliError::Sms(e.to_string()))?;
    // Until the centre took every part the SMS client itself gives up (no RP-ACK in 30 s
    // per part); then `timeout` for the reports.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(tokio::time::Instant::now()),
            None => Duration::from_secs(86_400),
        };
        match sms.next_event(left).await {
            Some(SmsEvent::Submitted { id: i, .. }) if i == id => {
                deadline = Some(tokio::time::Instant::now() + Duration::from_secs(timeout));
            }
            Some(SmsEvent::Delivered { id: i }) if i == id => {
                println!("delivered");
                return Ok(());
            }
            Some(SmsEvent::Failed { id: i, reason }) if i == id => {
                println!("failed: {reason}");
                return Err(CliError::NotDelivered(reason));
            }
            Some(_) => {}
            None if deadline.is_none() => {
                let why = "the SMS client stopped".to_string();
                println!("failed: {why}");
                return Err(CliError::NotDelivered(why));
            }
            None => {
                println!("pending: no delivery report within {timeout} s (the service centre took the message and reports by status report)");
                return Err(CliError::NotDelivered("timeout".into()));
            }
        }
    }
}
