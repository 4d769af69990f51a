//! Files received (GSMA RCC.07 §3.2.5 "File Transfer via HTTP"): a chat message whose content
//! is a file-info document (`application/vnd.gsma.rcs-ft-http+xml`) is a file on a content
//! server. With [`ChatOptions::files`](crate::ue::chat::ChatOptions::files) set, the core
//! asks the driver to download it ([`Output::Download`]) and reports it delivered only once
//! it is saved (the sender's "delivered" means the file is here), or "failed" when it cannot
//! be had; without, it is offered to the application ([`ChatEvent::FileOffered`]) and
//! reported like a text.
//!
//! A file that came with an INVITE waits for the session that will carry its report (so the
//! download follows the MSRP binding, and the report goes over MSRP as for any message);
//! otherwise it starts at once. At most [`MAX_FILES`] downloads are pending at once.
//!
//! ```text
//!   file-info message ──> Waiting ──session up / failed / none──> Download ──FileDone──┬─ File + delivered
//!                                                                                      └─ FileFailed + failed
//! ```

use std::time::Instant;

use crate::cpim::{Cpim, ImdnStatus};
use crate::fthttp::FileInfo;
use crate::ue::ft::{FtError, SavedFile};

use super::super::ChatEvent;
use super::{ChatCore, Output, Received, SessState};

/// Files being received at once, at most.
pub(super) const MAX_FILES: usize = 64;

/// A file being received.
#[derive(Debug)]
pub(in crate::ue::chat) struct PendingFile {
    peer: String,
    from: String,
    group: Option<String>,
    info: FileInfo,
    /// The driver was told to download it.
    started: bool,
}

impl ChatCore {
    /// A file-info message from `peer` (over MSRP when `in_session`).
    pub(super) fn on_file(
        &mut self,
        now: Instant,
        peer: &str,
        c: Cpim,
        info: FileInfo,
        in_session: bool,
    ) {
        let id = c.message_id().unwrap_or("").to_string();
        let fresh = id.is_empty() || self.seen.insert(&id);
        let (from, group) = self.origin(peer, &c);
        if !fresh {
            // A copy of one we have: once the file is here, "delivered" again (the network
            // sends again what it did not record as delivered); still downloading: later.
            if in_session && self.opts.auto_delivered && !self.files.contains_key(&id) {
                self.report_on(now, peer, &c, ImdnStatus::Delivered);
            }
            return;
        }
        if self.opts.files.is_none() {
            self.event(ChatEvent::FileOffered {
                from,
                group,
                info: Box::new(info),
                message_id: id,
            });
            self.reports_on_receipt(now, peer, c, in_session, true);
            return;
        }
        if self.files.len() >= MAX_FILES {
            self.event(ChatEvent::FileFailed {
                from,
                group,
                name: info.file.name,
                message_id: id,
                reason: format!("{MAX_FILES} files are being received already"),
            });
            self.report_on(now, peer, &c, ImdnStatus::Failed);
            return;
        }
        let key = if id.is_empty() {
            crate::rcs::new_id()
        } else {
            id.clone()
        };
        if !id.is_empty() && (c.wants("positive-delivery") || c.wants("display")) {
            // Kept for its reports: "delivered" once the file is saved.
            self.received.insert(
                id,
                Received {
                    peer: peer.to_string(),
                    cpim: c,
                    delivered: false,
                },
            );
        }
        self.files.insert(
            key,
            PendingFile {
                peer: peer.to_string(),
                from,
                group,
                info,
                started: false,
            },
        );
    }

    /// True when message `id` is a file being received (its "delivered" waits for it).
    pub(super) fn is_pending_file(&self, id: &str) -> bool {
        self.files.contains_key(id)
    }

    /// Downloads start for the files whose session is no longer coming up.
    pub(super) fn start_downloads(&mut self) {
        if self.files.values().all(|f| f.started) {
            return;
        }
        let sessions = &self.sessions;
        let mut ready: Vec<(String, FileInfo)> = Vec::new();
        for (id, f) in self.files.iter_mut() {
            let waiting = sessions
                .get(&f.peer)
                .is_some_and(|s| s.state == SessState::Inviting);
            if !f.started && !waiting {
                f.started = true;
                ready.push((id.clone(), f.info.clone()));
            }
        }
        ready.sort_by(|a, b| a.0.cmp(&b.0));
        for (message_id, info) in ready {
            self.out.push_back(Output::Download {
                message_id,
                info: Box::new(info),
            });
        }
    }

    /// The download of `message_id` ended.
    pub(super) fn file_done(
        &mut self,
        now: Instant,
        message_id: &str,
        result: Result<SavedFile, FtError>,
    ) {
        let Some(f) = self.files.remove(message_id) else {
            return;
        };
        match result {
            Ok(saved) => {
                self.event(ChatEvent::File {
                    from: f.from,
                    group: f.group,
                    name: f.info.file.name,
                    path: saved.path,
                    size: saved.size,
                    sha256: saved.sha256,
                    content_type: f.info.file.content_type,
                    message_id: message_id.to_string(),
                });
                if self.opts.auto_delivered {
                    self.report(now, message_id, ImdnStatus::Delivered);
                }
                if self.opts.auto_displayed {
                    self.report(now, message_id, ImdnStatus::Displayed);
                }
            }
            Err(e) => {
                self.event(ChatEvent::FileFailed {
                    from: f.from,
                    group: f.group,
                    name: f.info.file.name,
                    message_id: message_id.to_string(),
                    reason: e.to_string(),
                });
                // RFC 5438 §7.2.1.1: the sender learns it did not arrive.
                self.report(now, message_id, ImdnStatus::Failed);
            }
        }
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
