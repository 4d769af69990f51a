//! The `sendfile` step of a teaching lab: `user` sends a generated file of `size` bytes named
//! `file` to `to`, over HTTP (GSMA RCC.07 §3.2.5: upload to CS, file-info in a chat message,
//! download) or, with `msrp = true`, over MSRP (RFC 5547: its own INVITE, the file in
//! chunks). The step waits for the sender's "delivered" and for the recipient's client to
//! report the file saved with the SHA-256 of what was sent (the file is checked, not just
//! announced); both clients save into a temporary directory removed afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Step;
use crate::cpim::ImdnStatus;
use crate::lab::Lab;
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::Ue;

/// The largest file a lab step generates.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// How long the step waits for "delivered", then for the recipient's file.
const WAIT: Duration = Duration::from_secs(20);

/// Why a `sendfile` step failed (the text goes in the step's error).
#[derive(Debug, thiserror::Error)]
pub(super) enum FileStepError {
    /// The step is missing a field or has a bad one.
    #[error("{0}")]
    Bad(String),
    /// A user has not registered (or is an RCS client without files already).
    #[error("'{0}' has not registered (or is already a chat client without files)")]
    NotRegistered(String),
    /// The generated file could not be written.
    #[error("cannot write the file to send: {0}")]
    Io(#[from] std::io::Error),
    /// The transfer failed or did not end in time.
    #[error("{0}")]
    Transfer(String),
}

/// A temporary directory for one step's files, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes (the same file every run, so the ladder is the same).
fn content(n: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs a `sendfile` step: the users' RCS clients (saving files) are made from their
/// registered UEs in `ues` the first time, and kept in `files` for later steps.
pub(super) async fn send_file(
    lab: &Lab,
    ues: &mut Vec<(String, Ue)>,
    files: &mut HashMap<String, ChatUe>,
    s: &Step,
) -> Result<(), FileStepError> {
    let user = s.user.clone().unwrap_or_default();
    let to =
        s.to.clone()
            .ok_or_else(|| FileStepError::Bad("needs `to`".into()))?;
    let size = s.size.unwrap_or(20_000);
    if size == 0 || size > MAX_FILE_SIZE {
        return Err(FileStepError::Bad(format!(
            "`size` must be 1 to {MAX_FILE_SIZE} bytes"
        )));
    }
    let name = s.file.clone().unwrap_or_else(|| "notes.txt".into());
    if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
        return Err(FileStepError::Bad(format!(
            "`file` {name:?} is not a plain file name"
        )));
    }
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "rcslab-lab-files-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )));
    for who in [&user, &to] {
        std::fs::create_dir_all(scratch.0.join(who))?;
        if files.contains_key(who) {
            continue;
        }
        let at = ues
            .iter()
            .position(|(u, _)| u == who)
            .ok_or_else(|| FileStepError::NotRegistered(who.clone()))?;
        let (_, ue) = ues.remove(at);
        let opts = ChatOptions {
            disposition: "positive-delivery".into(),
            files: Some(scratch.0.join(who)),
            ..ChatOptions::default()
        };
        files.insert(who.clone(), ChatUe::start(ue, lab.trace.clone(), opts));
    }
    let data = content(size);
    let want = hex::encode(Sha256::digest(&data));
    let src = scratch.0.join(&name);
    std::fs::write(&src, &data)?;
    drop(data);
    let target = format!("sip:{to}@{}", lab.config.lab.domain);
    let sender = files
        .get_mut(&user)
        .ok_or_else(|| FileStepError::NotRegistered(user.clone()))?;
    let id = if s.msrp {
        sender
            .send_file_msrp(&target, &src)
            .await
            .map_err(|e| FileStepError::Transfer(e.to_string()))?
            .message_id
    } else {
        let cs = format!("http://{}", lab.addrs.content);
        sender
            .send_file(&target, &src, &cs)
            .await
            .map_err(|e| FileStepError::Transfer(e.to_string()))?
            .message_id
    };
    delivered(sender, &id).await?;
    let recipient = files
        .get_mut(&to)
        .ok_or_else(|| FileStepError::NotRegistered(to.clone()))?;
    received(recipient, &want, &scratch.0.join(&to)).await?;
    super::settle().await;
    Ok(())
}

async fn delivered(sender: &mut ChatUe, id: &str) -> Result<(), FileStepError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match sender.next_event(left).await {
            Some(ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                ..
            }) if message_id == id => return Ok(()),
            Some(ChatEvent::SendFailed { message_id, reason }) if message_id == id => {
                return Err(FileStepError::Transfer(reason))
            }
            Some(_) => {}
            None => {
                return Err(FileStepError::Transfer(format!(
                    "not delivered within {} s",
                    WAIT.as_secs()
                )))
            }
        }
    }
}

async fn received(recipient: &mut ChatUe, want: &str, dir: &Path) -> Result<(), FileStepError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recipient.next_event(left).await {
            Some(ChatEvent::File { sha256, path, .. }) => {
                if sha256 != want || !path.starts_with(dir) {
                    return Err(FileStepError::Transfer(format!(
                        "the recipient saved {} with SHA-256 {sha256}, not {want}",
                        path.display()
                    )));
                }
                return Ok(());
            }
            Some(ChatEvent::FileFailed { reason, .. }) => {
                return Err(FileStepError::Transfer(format!(
                    "the recipient did not get the file: {reason}"
                )))
            }
            Some(_) => {}
            None => {
                return Err(FileStepError::Transfer(format!(
                    "the recipient reported no file within {} s",
                    WAIT.as_secs()
                )))
            }
        }
    }
}
