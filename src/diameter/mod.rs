//! Diameter (RFC 6733) and its 3GPP Cx application (TS 29.229): the pure codec, the Cx
//! dictionary and typed commands, the peer connections over TCP, and the client side's
//! self-healing link (RFC 6733 §5.6 state machine with reconnect).

pub mod capabilities;
pub mod client;
pub mod codec;
pub mod cx;
pub mod dict;
pub mod metered;
pub mod peer;
pub mod peer_fsm;
pub mod peer_policy;
pub mod peer_table;
pub mod watchdog;
