//! The UMS's RCS channel: the gateway registers its business identity (`[ums] rcs_user`,
//! `sip:ums@ims.lab` in the default lab) through the P-CSCF as an RCS client that is a
//! chatbot (`+g.gsma.rcs.isbot` in its Contact, GSMA RCC.07 §3.6), and for each recipient the
//! core hands it ([`super::core::RcsJob`]) asks `tel:+N` for its capabilities (OPTIONS) and,
//! when they include chat, sends the message as chat — a chatbot card
//! (`application/vnd.gsma.botmessage.v1.0+json`) when it suggests replies, else plain text.
//! IMDNs come back as status; a chat message not reported delivered in time is revoked
//! (RCC.07 message revocation) before it goes as SMS; users' chat replies and taps on suggestions go to the webhook.
//! Losing the registration turns RCS off (what waits goes as SMS); it registers again with
//! backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use super::core::RcsJob;
use super::Ums;
use crate::content::unix_now;
use crate::cpim::ImdnStatus;
use crate::http_server::stopped;
use crate::rcs::chatbot::{BotMessage, BOT_MESSAGE_TYPE, ISBOT_TAG};
use crate::ue::caps::{takes_chat, Capabilities};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{Ue, UeConfig};

/// How the RCS channel runs.
#[derive(Debug, Clone)]
pub struct RcsSettings {
    /// The chatbot identity's credentials and P-CSCF.
    pub ue: UeConfig,
    /// Seconds a chat message has to be reported delivered before it goes as SMS.
    pub fallback_secs: u64,
    /// Recipients asked or sent to at once.
    pub window: usize,
    /// The FT content server a file goes through (`http://HOST:PORT`).
    pub content_server: String,
    /// Where a medium is written for its upload (a directory of its own per file, removed
    /// once uploaded).
    pub outbox: std::path::PathBuf,
}

/// How long a capability query may wait for its answer.
const CAPS_WAIT: Duration = Duration::from_secs(5);
/// The registration's lifetime (refreshed at half).
const EXPIRES: u32 = 600;
/// Longest wait between two registration attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a revocation request may wait for its 200.
const REVOKE_SEND_WAIT: Duration = Duration::from_secs(10);
/// IMDNs remembered that came before their message was recorded as sent.
const EARLY_REPORTS: usize = 1024;

/// The contact parameters of a chatbot beyond the RCS client's.
pub fn chatbot_tags() -> String {
    format!(";{ISBOT_TAG}")
}

#[derive(Debug, thiserror::Error)]
enum RcsError {
    #[error("cannot bind a SIP socket: {0}")]
    Bind(#[from] std::io::Error),
    #[error("REGISTER: {0}")]
    Register(#[from] crate::ue::UeError),
    #[error("no answer to REGISTER")]
    NoAnswer,
}

/// Registers and serves the RCS channel until `shut`, registering again when the
/// registration is lost.
pub(super) async fn run(ums: Arc<Ums>, rs: RcsSettings, mut shut: watch::Receiver<bool>) {
    // Files a crash left half uploaded.
    let _ = tokio::fs::remove_dir_all(&rs.outbox).await;
    let mut backoff = Duration::from_secs(1);
    loop {
        if *shut.borrow() {
            return;
        }
        let (life_tx, life) = watch::channel(false);
        match connect(&ums, &rs, life).await {
            Ok(chat) => {
                backoff = Duration::from_secs(1);
                tracing::info!(identity = %rs.ue.impu, "UMS: RCS channel up (chatbot registered)");
                session(&ums, &rs, chat, &mut shut).await;
                ums.rcs_state(None);
                tracing::info!(identity = %rs.ue.impu, "UMS: RCS channel down; SMS only until it registers again");
            }
            Err(e) => {
                crate::warn_limited!("ums.rcs_register", identity = %rs.ue.impu, error = %e,
                    "UMS: the chatbot identity does not register; RCS is off, SMS only");
            }
        }
        let _ = life_tx.send(true);
        tokio::select! {
            _ = stopped(&mut shut) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(
    ums: &Ums,
    rs: &RcsSettings,
    life: watch::Receiver<bool>,
) -> Result<ChatUe, RcsError> {
    let mut ue = Ue::start(rs.ue.clone(), ums.trace.clone(), life).await?;
    ums.trace.name_peer(ue.local_addr(), "UMS");
    tokio::time::timeout(Duration::from_secs(10), ue.register(EXPIRES))
        .await
        .map_err(|_| RcsError::NoAnswer)??;
    Ok(ChatUe::start(
        ue,
        ums.trace.clone(),
        ChatOptions {
            disposition: "positive-delivery, display".into(),
            auto_delivered: true,
            refresh_registration: Some(EXPIRES),
            watch_registration: true,
            ..ChatOptions::default()
        },
    ))
}

/// One registration's life: hands out jobs, reads events, falls back on time.
async fn session(
    ums: &Arc<Ums>,
    rs: &RcsSettings,
    mut chat: ChatUe,
    shut: &mut watch::Receiver<bool>,
) {
    let mut events = chat.take_events();
    let chat = Arc::new(chat);
    ums.rcs_state(Some(rs.fallback_secs));
    let permits = Arc::new(Semaphore::new(rs.window.max(1)));
    let (sent_tx, mut sent_rx) = mpsc::channel::<String>(rs.window.max(1));
    let mut early: HashMap<String, ImdnStatus> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        // Recipients waiting, as many as the window takes.
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            let Some(job) = ums.lock().next_rcs() else {
                break;
            };
            let (ums, chat, sent_tx) = (ums.clone(), chat.clone(), sent_tx.clone());
            let rs = rs.clone();
            tokio::spawn(async move {
                if let Some(id) = reach(&ums, &rs, &chat, job).await {
                    let _ = sent_tx.send(id).await;
                }
                drop(permit);
            });
        }
        tokio::select! {
            _ = stopped(shut) => return,
            _ = ums.rcs_wake.notified() => {}
            _ = tick.tick() => {
                let outs = ums.lock().tick(unix_now());
                ums.apply_and_wake(outs);
                revoke_due(ums, &chat);
            }
            // A chat message recorded as sent: an IMDN that came before it counts now.
            Some(id) = sent_rx.recv() => {
                if let Some(status) = early.remove(&id) {
                    let outs = ums.lock().rcs_report(unix_now(), &id, status);
                    ums.apply_and_wake(outs);
                }
            }
            ev = events.recv() => match ev {
                None => return,
                Some(ChatEvent::Deregistered { reason }) => {
                    tracing::info!(%reason, "UMS: the network ended the chatbot's registration");
                    return;
                }
                Some(ev) => on_event(ums, &mut early, ev),
            },
        }
    }
}

/// Sends the revocation requests the core asks for (chat messages past their fallback time);
/// their outcomes come back as [`ChatEvent::Revoked`].
fn revoke_due(ums: &Arc<Ums>, chat: &Arc<ChatUe>) {
    while let Some((to, id)) = ums.lock().next_revoke() {
        let (ums, chat) = (ums.clone(), chat.clone());
        tokio::spawn(async move {
            if !chat
                .revoke(&format!("tel:{to}"), &id, REVOKE_SEND_WAIT)
                .await
            {
                let outs = ums
                    .lock()
                    .rcs_revoke_unsent(unix_now(), &id, "no 2xx to its MESSAGE");
                ums.apply_and_wake(outs);
            }
        });
    }
}

/// Asks one recipient's capabilities and sends it the chat message; the chat message's id
/// when it went out.
async fn reach(ums: &Ums, rs: &RcsSettings, chat: &ChatUe, job: RcsJob) -> Option<String> {
    let to = format!("tel:{}", job.to);
    let no_chat = match chat.capabilities(&to, CAPS_WAIT).await {
        Capabilities::Found(tags) if takes_chat(&tags) => None,
        Capabilities::Found(_) => Some("its client does not take chat".to_string()),
        Capabilities::Failed { status, reason } => Some(format!("OPTIONS {status} {reason}")),
    };
    if let Some(why) = no_chat {
        let outs = ums.lock().rcs_unreachable(unix_now(), &job.key, why);
        ums.apply_and_wake(outs);
        return None;
    }
    if let Some(media) = &job.media {
        let sent = send_media(ums, rs, chat, &to, media).await;
        let outs = match &sent {
            Ok(id) => ums.lock().rcs_sent(unix_now(), &job.key, id.clone()),
            Err(why) => ums
                .lock()
                .rcs_unreachable(unix_now(), &job.key, why.to_string()),
        };
        ums.apply_and_wake(outs);
        return sent.ok();
    }
    let (body, ct) = if job.suggestions.is_empty() {
        (job.text.into_bytes(), "text/plain;charset=UTF-8")
    } else {
        (
            BotMessage::with_replies(&job.text, &job.suggestions).to_json(),
            BOT_MESSAGE_TYPE,
        )
    };
    let id = chat.send_typed(&to, &body, ct).await;
    let outs = if id.is_empty() {
        ums.lock()
            .rcs_unreachable(unix_now(), &job.key, "the chatbot client stopped".into())
    } else {
        ums.lock().rcs_sent(unix_now(), &job.key, id.clone())
    };
    ums.apply_and_wake(outs);
    (!id.is_empty()).then_some(id)
}

/// Why a medium did not go as a file transfer (it goes as MMS).
#[derive(Debug, thiserror::Error)]
enum MediaSendError {
    #[error("media {0} is gone")]
    Gone(String),
    #[error("media store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot write the file for its upload: {0}")]
    Write(#[from] std::io::Error),
    #[error("file transfer: {0}")]
    Transfer(#[from] crate::ue::ft::FtError),
}

/// Sends medium `id` to `to` as a file transfer via HTTP (GSMA RCC.07 §3.2.5): written to a
/// directory of its own under the outbox, uploaded to the content server with the chatbot's
/// credentials, its file-info sent as a chat message; the chat message's id.
async fn send_media(
    ums: &Ums,
    rs: &RcsSettings,
    chat: &ChatUe,
    to: &str,
    id: &str,
) -> Result<String, MediaSendError> {
    let gone = || MediaSendError::Gone(id.to_string());
    let meta = ums.media.meta(id).ok_or_else(gone)?;
    let bytes = ums.media.bytes(id)?.ok_or_else(gone)?;
    let dir = rs.outbox.join(crate::rcs::new_id());
    let path = dir.join(format!(
        "media.{}",
        crate::ue::ft::extension_of(&meta.content_type)
    ));
    let sent = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&path, &bytes).await?;
        Ok::<_, MediaSendError>(
            chat.send_file(to, &path, &rs.content_server)
                .await?
                .message_id,
        )
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    sent
}

fn on_event(ums: &Ums, early: &mut HashMap<String, ImdnStatus>, ev: ChatEvent) {
    let now = unix_now();
    match ev {
        ChatEvent::Status {
            message_id, status, ..
        } => {
            let known = ums.lock().rcs_knows(&message_id);
            if known {
                let outs = ums.lock().rcs_report(now, &message_id, status);
                ums.apply_and_wake(outs);
            } else {
                // Bounded: reports on nothing we sent (or long gone) are not kept for good.
                if early.len() >= EARLY_REPORTS {
                    early.clear();
                }
                early.insert(message_id, status);
            }
        }
        ChatEvent::Revoked {
            message_id,
            revoked,
            ..
        } => {
            let outs = ums.lock().rcs_revoked(now, &message_id, revoked);
            ums.apply_and_wake(outs);
        }
        ChatEvent::SendFailed { message_id, reason } => {
            let outs = ums.lock().rcs_send_failed(now, &message_id, reason);
            ums.apply_and_wake(outs);
        }
        ChatEvent::Message { from, text, .. } => {
            ums.trace.note(ums.local, || {
                format!("RCS reply from {from} to the chatbot: POST to the webhook")
            });
            ums.post(serde_json::json!({
                "type": "mo",
                "channel": "rcs",
                "from": from,
                "text": text,
            }));
        }
        ChatEvent::Tap { from, reply, .. } => {
            ums.trace.note(ums.local, || {
                format!(
                    "{from} tapped \"{}\": POST to the webhook",
                    reply.display_text
                )
            });
            ums.post(serde_json::json!({
                "type": "suggestion",
                "channel": "rcs",
                "from": from,
                "text": reply.display_text,
                "postback": reply.postback.map(|p| p.data),
            }));
        }
        _ => {}
    }
}
