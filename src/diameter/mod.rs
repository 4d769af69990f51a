//! Diameter (RFC 6733) and its 3GPP Cx application (TS 29.229): the pure codec, the Cx
//! dictionary and typed commands, and the peer state machine over TCP.

pub mod codec;
pub mod cx;
pub mod peer;
pub mod peer_table;
