//! T-IM grants file recipients at the content server (GSMA RCC.07 §3.2.5 File Transfer via
//! HTTP): a chat message whose content is a file-info document
//! (`application/vnd.gsma.rcs-ft-http+xml`) names a file on CS; before T-IM passes it on
//! (or keeps it for a recipient who is away: the grant is made when T-IM takes the message,
//! so the download works when they register later), it tells CS that the message's
//! recipient may download it ([`crate::content::GrantClient`], `POST /grants`).
//!
//! Where: the first message of a chat INVITE (before T-IM's 200), every whole message on an
//! MSRP leg (the hub's [`super::relay::Gate`]: its last chunk waits), and a pager-mode
//! MESSAGE passing through. Bounded: a grant that does not succeed within its wait (2 s) is
//! logged and the message goes on all the same.

use std::sync::Arc;

use super::relay::Side;
use super::{rcs, ImServer};
use crate::content::GrantClient;
use crate::cpim::Cpim;

impl ImServer {
    /// From now on, T-IM grants file recipients at the content server with `client`.
    pub fn set_grants(self: &Arc<Self>, client: GrantClient) {
        if self.grants.set(client).is_err() {
            return;
        }
        let me = Arc::downgrade(self);
        self.hub.set_gate(Box::new(move |pair, from, ct, body| {
            let me = me.upgrade()?;
            let url = file_url(ct, body)?;
            let s = me.session(pair)?;
            let recipient = match from {
                Side::A => s.to,
                Side::B => s.from,
            };
            Some(Box::pin(async move { me.grant(&url, &recipient).await }))
        }));
    }

    /// Grants `recipient` the file of a CPIM message (`body`, of type `ct`), if it is a
    /// file-info message and grants are on; bounded, never fails the caller.
    pub(super) async fn grant_if_file(&self, ct: &str, body: &[u8], recipient: &str) {
        if self.grants.get().is_none() {
            return;
        }
        if let Some(url) = file_url(ct, body) {
            self.grant(&url, recipient).await;
        }
    }

    async fn grant(&self, url: &str, recipient: &str) {
        let Some(client) = self.grants.get() else {
            return;
        };
        // A file sent to a number is downloaded by its owner under the identity they
        // registered: grant the recipient's whole registration set.
        let who = self.registration_set(recipient);
        match client.grant(url, &who).await {
            Ok(()) => self
                .ep
                .note(|| format!("granted {recipient} the file {url} at the content server")),
            Err(e) => {
                crate::warn_limited!("tim.grant", %recipient, error = %e, "file not granted; the message goes on");
                self.ep
                    .note(|| format!("file {url} not granted to {recipient} ({e}): sent on"));
            }
        }
    }
}

/// How far into a CPIM document its content type is looked for.
const HEAD_SCAN: usize = 4096;

/// The file URL of a file-info message (CPIM with `application/vnd.gsma.rcs-ft-http+xml`).
fn file_url(ct: &str, body: &[u8]) -> Option<String> {
    if !ct.trim().to_ascii_lowercase().starts_with("message/cpim") {
        return None;
    }
    // Cheap before parsing: most messages are text. The content type is in the CPIM
    // document's head (its headers, then the MIME headers).
    if !contains(
        &body[..body.len().min(HEAD_SCAN)],
        rcs::FT_HTTP_TYPE.as_bytes(),
    ) {
        return None;
    }
    let cpim = Cpim::parse(body).ok()?;
    match rcs::content(&cpim) {
        rcs::Content::File(info) => Some(info.file.url),
        _ => None,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_file_info_messages_have_a_file_url() {
        let info = crate::fthttp::FileInfo {
            thumbnail: None,
            file: crate::fthttp::FileDesc {
                size: 1,
                name: "a".into(),
                content_type: "text/plain".into(),
                url: "http://127.0.0.1:8083/files/ab".into(),
                until: "2030-01-01T00:00:00Z".into(),
                disposition: None,
            },
        };
        let file = Cpim::new(
            "sip:a@x",
            "sip:b@x",
            "m1",
            "2030-01-01T00:00:00Z",
            None,
            rcs::FT_HTTP_TYPE,
            info.to_xml().as_bytes(),
        )
        .to_bytes();
        assert_eq!(
            file_url("message/cpim", &file).as_deref(),
            Some("http://127.0.0.1:8083/files/ab")
        );
        assert_eq!(file_url("text/plain", &file), None);
        let text = rcs::text_message("sip:a@x", "sip:b@x", "m2", "hi", None).to_bytes();
        assert_eq!(file_url("message/cpim", &text), None);
    }
}
