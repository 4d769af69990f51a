//! The SMSC's SMPP 3.4 listener (SMPP v3.4 Issue 1.2): ESMEs bind, submit short messages and
//! receive deliver_sm (MO messages and delivery receipts).
//!
//! Layout, as STYLE.md §1 asks: [`session`] is the socket-free core of one connection (state,
//! timers, windows, the answer to every PDU), with time passed in; [`guard`] throttles failed
//! binds; [`validity`] reads the time formats of §7.1.1; `server` owns the listener, the
//! registry of bound sessions and [`SmppServer::deliver`]; `conn` is the TCP driver of one
//! connection. The service centre behind it is the [`ServiceCentre`] trait.
//!
//! ```text
//!            bind_* ok                    unbind (either side)
//!   Open ─────────────────> Bound(kind) ───────────────────────> Closed
//!    │  bind timeout,            │ idle, no enquire_link_resp,
//!    │  bad framing              │ bad framing, write stalled
//!    └───────────────────────────┴─────────────────────────────> Closed
//! ```
//!
//! Choices where SMPP 3.4 is silent or leaves a choice to the SMSC:
//! - A bind with bad credentials, an unknown system_id, a blocked system_id or peer, or a ninth
//!   session of one system_id ([`MAX_SESSIONS_PER_SYSTEM_ID`]) all get ESME_RBINDFAIL with
//!   the same (empty) body.
//! - schedule_delivery_time is not supported: a non-empty one is refused with ESME_RINVSCHED
//!   rather than silently delivered at once.
//! - An empty short message is accepted (the spec allows sm_length 0). short_message and
//!   message_payload both present is refused with ESME_RINVMSGLEN (§5.3.2.32).
//! - A validity_period in the past, or one that §7.1.1 cannot read, is ESME_RINVEXPIRY.
//! - submit_multi is split into one [`ServiceCentre::submit`] per SME destination; failed ones
//!   (and every distribution list: ESME_RCNTSUBDL) are listed in submit_multi_resp, whose
//!   message_id is the first accepted one; none accepted: ESME_RSUBMITFAIL.
//! - query_sm, cancel_sm and replace_sm are not supported by the lab: they are answered with
//!   ESME_RQUERYFAIL, ESME_RCANCELFAIL and ESME_RREPLACEFAIL.
//! - enquire_link is answered in any state, before bind too.
//! - A [`ServiceCentre::submit`] that takes longer than `response_timeout` is answered with
//!   ESME_RSYSERR (the ESME may retry; the SC may have stored the message meanwhile).

mod conn;
mod events;
pub mod guard;
mod server;
pub mod session;
mod submit;
pub mod validity;

#[cfg(test)]
mod tests_core;
#[cfg(test)]
mod tests_tcp;

use std::time::Duration;

use crate::smpp::{Address, CommandStatus};

pub use server::SmppServer;

/// A boxed future that can cross tasks.
pub type BoxFut<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The system_id the SMSC gives in bind_*_resp (§4.1.2).
pub const SMSC_SYSTEM_ID: &str = "rcslab";
/// Bound sessions one system_id may hold at once; one more bind gets ESME_RBINDFAIL.
pub const MAX_SESSIONS_PER_SYSTEM_ID: usize = 8;
/// The window in which [`SmppSettings::max_bind_failures`] failed binds start a block.
pub const BIND_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The longest a block lasts however often it doubled.
pub const MAX_BIND_BLOCK: Duration = Duration::from_secs(15 * 60);

/// A short message an ESME submitted (submit_sm, data_sm or one destination of submit_multi),
/// as the SC takes it.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The system_id of the session it came on.
    pub system_id: String,
    /// source_addr.
    pub source: Address,
    /// destination_addr.
    pub dest: Address,
    /// data_coding (§5.2.19).
    pub data_coding: u8,
    /// esm_class (§5.2.12): the UDHI bit (0x40) says the payload starts with a UDH.
    pub esm_class: u8,
    /// short_message, or the message_payload TLV when sm_length is 0 (data_sm: the TLV).
    pub payload: Vec<u8>,
    /// registered_delivery (§5.2.17): low 2 bits 1 = receipt on final outcome, 2 = on failure.
    pub registered_delivery: u8,
    /// Seconds from now the message stays valid, from validity_period (§7.1.1, absolute or
    /// relative) or data_sm's qos_time_to_live; `None`: the SC's default.
    pub validity_secs: Option<u64>,
}

/// What the SMPP server asks of the SC.
pub trait ServiceCentre: Send + Sync + 'static {
    /// Stores the message durably (or refuses it); `Ok(message_id)` only once it is on disk,
    /// and only then does the server send submit_sm_resp / data_sm_resp with that id.
    fn submit(&self, m: Submitted) -> BoxFut<Result<String, CommandStatus>>;
    /// An ESME bound as receiver or transceiver: the SC may now hand it what waits for it.
    fn bound(&self, system_id: &str);
}

/// Why a deliver_sm did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// No session of that system_id is bound as receiver or transceiver.
    #[error("no SMPP session bound to receive")]
    NotBound,
    /// The ESME answered deliver_sm_resp (or generic_nack) with this status; a deliver_sm the
    /// codec cannot encode (a field over its size) is `Refused(ESME_RSYSERR)` without being sent.
    #[error("deliver_sm refused: {0}")]
    Refused(CommandStatus),
    /// No free window slot, or no deliver_sm_resp, within `response_timeout`.
    #[error("no deliver_sm_resp in time")]
    Timeout,
    /// The session closed before the answer.
    #[error("SMPP session closed")]
    Closed,
}

/// One ESME account.
#[derive(Clone)]
pub struct SmppAccount {
    /// system_id (max 15 characters on the wire).
    pub system_id: String,
    /// password (max 8 characters on the wire).
    pub password: String,
}

impl std::fmt::Debug for SmppAccount {
    /// Without the password: settings may be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppAccount")
            .field("system_id", &self.system_id)
            .finish_non_exhaustive()
    }
}

/// The listener's limits and accounts.
#[derive(Debug, Clone)]
pub struct SmppSettings {
    /// Who may bind.
    pub accounts: Vec<SmppAccount>,
    /// Open connections at most; more are closed at accept (default 64).
    pub max_connections: usize,
    /// Outstanding deliver_sm per session, and requests of one ESME processed at once
    /// (default 32); beyond it the socket is not read (TCP backpressure).
    pub window: usize,
    /// No successful bind within it: close (default 10 s).
    pub bind_timeout: Duration,
    /// No PDU at all for it: close (default 120 s). After a quarter of it without a PDU the
    /// server sends enquire_link and closes without an answer within `response_timeout`.
    pub idle_timeout: Duration,
    /// The wait for deliver_sm_resp, enquire_link_resp, unbind_resp, a blocked write and the
    /// service centre (default 10 s).
    pub response_timeout: Duration,
    /// Failed binds per system_id and per peer IP within [`BIND_FAILURE_WINDOW`] that start a
    /// block (default 5).
    pub max_bind_failures: u32,
    /// The first block (default 30 s); each next one doubles, up to [`MAX_BIND_BLOCK`].
    pub bind_block: Duration,
    /// The framer limit (default [`crate::smpp::DEFAULT_MAX_PDU`]).
    pub max_pdu: usize,
}

impl Default for SmppSettings {
    fn default() -> Self {
        SmppSettings {
            accounts: Vec::new(),
            max_connections: 64,
            window: 32,
            bind_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            response_timeout: Duration::from_secs(10),
            max_bind_failures: 5,
            bind_block: Duration::from_secs(30),
            max_pdu: crate::smpp::DEFAULT_MAX_PDU,
        }
    }
}
