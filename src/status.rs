//! What a running lab holds, as plain data: the snapshot behind `rcslab status`,
//! `GET /status` and `GET /registrations`. The lab fills it from its nodes
//! ([`crate::lab::status`]); the HSS's admin API serves it without knowing the lab.
//!
//! The JSON field names are a contract: scripts read `rcslab status --json`. Add fields, do
//! not rename them.

use serde::{Deserialize, Serialize};

/// Registered users listed at most (the count is always exact).
pub const MAX_USERS: usize = 1000;
/// Contacts listed at most per user.
pub const MAX_CONTACTS: usize = 64;
/// Keys of the T-IM pending queue read at most for the per-recipient counts.
pub const MAX_PENDING_KEYS: usize = 100_000;

/// Everything `rcslab status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Who is registered, with which contacts.
    pub registrations: Registrations,
    /// Sessions the nodes hold.
    pub sessions: Sessions,
    /// Messages the T-IM keeps for recipients who were offline.
    pub stored_messages: StoredMessages,
    /// Diameter peers: the HSS's connections and the CSCFs' links to the HSS.
    pub diameter_peers: Vec<DiameterPeer>,
    /// Each SIP node's queue and transactions.
    pub queues: Vec<NodeQueues>,
}

/// The S-CSCF's registrar (TS 24.229 §5.4.1) and the P-CSCF's bindings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registrations {
    /// Registered implicit registration sets at the S-CSCF.
    pub count: usize,
    /// Bindings the P-CSCF holds (one per registered contact).
    pub pcscf_bindings: usize,
    /// `users` stops at [`MAX_USERS`].
    pub truncated: bool,
    /// One entry per registration set, by default IMPU.
    pub users: Vec<RegisteredUser>,
    /// Registration sets per S-CSCF (ladder name), the first S-CSCF first.
    #[serde(default)]
    pub scscfs: Vec<NodeCount>,
}

/// One registration set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegisteredUser {
    /// The default public identity.
    pub impu: String,
    /// The private identity that registered.
    pub impi: String,
    /// Every public identity of the set (the default one first).
    pub impus: Vec<String>,
    /// Contacts bound at the S-CSCF (at most [`MAX_CONTACTS`]).
    pub contacts: Vec<ContactStatus>,
    /// How many contacts there are in all.
    pub contacts_total: usize,
    /// The P-CSCF's live bindings of the default IMPU.
    pub pcscf_bindings: usize,
    /// The S-CSCF that serves the user (its ladder name: `S-CSCF`, `S-CSCF2`...).
    #[serde(default)]
    pub scscf: String,
}

/// One bound contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactStatus {
    /// The Contact URI.
    pub contact: String,
    /// Seconds until it lapses.
    pub expires_in_secs: u64,
    /// The Path recorded at registration (RFC 3327).
    pub path: Vec<String>,
}

/// Sessions in progress, as the nodes track them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    /// Chat sessions: O-IM's proxied chat INVITEs, T-IM's sessions.
    pub chat: Vec<NodeCount>,
    /// MSRP leg pairs each relay holds.
    pub msrp_pairs: Vec<NodeCount>,
    /// Forwarded INVITEs without a final response yet, per SIP node.
    pub invites_in_progress: Vec<NodeCount>,
    /// Web users logged in at the WebRSF gateway.
    pub webrsf_users: usize,
    /// Their notification channels (SSE and WebSocket) open.
    pub webrsf_channels: usize,
}

/// A count for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCount {
    /// Node name (`T-IM`).
    pub node: String,
    /// The count.
    pub count: usize,
}

/// The T-IM's store-and-forward queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredMessages {
    /// Pending messages counted (all of them unless `truncated`).
    pub total: u64,
    /// Per recipient, sorted by recipient.
    pub per_user: Vec<UserCount>,
    /// Counting stopped at [`MAX_PENDING_KEYS`] keys or [`MAX_USERS`] recipients.
    pub truncated: bool,
}

/// A count for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCount {
    /// The recipient's IMPU.
    pub user: String,
    /// Messages waiting for them.
    pub count: u64,
}

/// One Diameter peer as one node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiameterPeer {
    /// The node this is seen from (`HSS`, `S-CSCF`, `I-CSCF`).
    pub node: String,
    /// `accepted` (the peer connected to the node) or `connects` (the node's own link).
    pub direction: String,
    /// The peer's Origin-Host (from its CER or CEA; the configured name while down).
    pub origin_host: String,
    /// The peer's address.
    pub address: String,
    /// `up` or `down`.
    pub state: String,
    /// The RFC 6733 §5.6 state of a link (`IOpen`, `Closed`...); `Open` for accepted ones.
    pub peer_state: String,
    /// The node's requests to this peer still waiting for their answer.
    pub pending_requests: usize,
}

/// A SIP node's queue and transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeQueues {
    /// Node name.
    pub node: String,
    /// Messages read and not yet taken by the node's dispatcher.
    pub sip_inbound_queued: usize,
    /// The inbound queue's size.
    pub sip_inbound_capacity: usize,
    /// Client transactions in progress.
    pub client_transactions: usize,
    /// Server transactions in progress.
    pub server_transactions: usize,
    /// Completed server transactions kept for Timer J.
    pub completed_server_transactions: usize,
    /// Open SIP TCP connections (WebSocket ones included).
    pub tcp_connections: usize,
    /// Of those, SIP over WebSocket connections (RFC 7118, the P-CSCF's browser clients).
    #[serde(default)]
    pub ws_connections: usize,
}
