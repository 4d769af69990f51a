//! `GET History` and `GET History/{peer}`: the conversations T-IM stored, read from T-IM's
//! history endpoint ([`crate::im::history_api`]) and put in the web form (seed 004: offline
//! store, history numbered by sequence; the client asks for everything after the last one it
//! saw).

use serde_json::{json, Value};

use super::{Gateway, WebError, WebUser};
use crate::im::rcs;

impl Gateway {
    /// Where the gateway reads T-IM's conversations for `GET History`: T-IM's history
    /// endpoint ([`crate::im::history_api`]), over a socket like every other node talk (in a
    /// deployment: the operator's message store).
    pub fn set_history(&self, client: crate::im::history_api::HistoryClient) {
        if let Ok(mut h) = self.history.lock() {
            *h = Some(client);
        }
    }

    /// `GET /{url}/History/{peer}?after=SEQ&limit=N`: the conversation with `peer` as T-IM
    /// numbered it (seed 004: everything after the last sequence number the client saw).
    pub async fn history(
        &self,
        user: &WebUser,
        peer: &str,
        after: u64,
        limit: usize,
    ) -> Result<Value, WebError> {
        let peer = self.aor_of(peer)?;
        let items = self
            .history_client()?
            .history(&user.aor, &peer, after, limit.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .iter()
            .map(|m| self.history_item(m))
            .collect();
        Ok(Value::Array(items))
    }

    /// `GET History/{peer}?last=N`: the newest N messages of the conversation, oldest first.
    pub async fn history_last(
        &self,
        user: &WebUser,
        peer: &str,
        last: usize,
    ) -> Result<Value, WebError> {
        let peer = self.aor_of(peer)?;
        let items = self
            .history_client()?
            .history_tail(&user.aor, &peer, last.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .iter()
            .map(|m| self.history_item(m))
            .collect();
        Ok(Value::Array(items))
    }

    /// `GET History`: the user's conversations, newest first, each with its newest message
    /// (what the browser client lists after a login).
    pub async fn conversations(&self, user: &WebUser, limit: usize) -> Result<Value, WebError> {
        let items = self
            .history_client()?
            .conversations(&user.aor, limit.clamp(1, 1000))
            .await
            .map_err(history_error)?
            .into_iter()
            .map(|c| {
                json!({
                    "peer": self.web_id(&c.peer),
                    "last_seq": c.last_seq,
                    "last": c.last.as_ref().map(|m| self.history_item(m)),
                })
            })
            .collect();
        Ok(Value::Array(items))
    }

    fn history_client(&self) -> Result<crate::im::history_api::HistoryClient, WebError> {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .ok_or_else(|| WebError::NotFound("no message store in this lab".into()))
    }

    fn history_item(&self, m: &crate::im::store::StoredMessage) -> Value {
        let cpim = crate::cpim::Cpim::parse(&m.cpim()).ok();
        let text = cpim.as_ref().and_then(|c| match rcs::content(c) {
            rcs::Content::Text(t) => Some(t),
            _ => None,
        });
        json!({
            "seq": m.seq,
            "message_id": m.message_id,
            "sender": self.web_id(&m.from),
            "recipient": self.web_id(&m.to),
            "text": text,
            "status": m.status,
            "datetime": cpim.as_ref().and_then(|c| c.header("DateTime")).unwrap_or(""),
            "conversation_id": m.conversation_id,
        })
    }
}

/// T-IM's history endpoint failing, as the web client sees it (502: the gateway is fine, the
/// node behind it is not).
fn history_error(e: crate::im::history_api::HistoryError) -> WebError {
    tracing::warn!(error = %e, "WebRSF: history from T-IM failed");
    WebError::BadGateway(e.to_string())
}
