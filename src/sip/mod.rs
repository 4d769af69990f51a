//! SIP (RFC 3261): the message codec, the UDP/TCP transport, transactions, and the small
//! amount of proxy plumbing every CSCF shares.
//!
//! Layering: `message`, `headers` and `uri` are pure codecs (no I/O, never panic);
//! `transport` owns sockets and framing; `transaction` holds the RFC 3261 §17 state machines
//! (socket-free, time passed in) and the [`Endpoint`] that drives them over a transport.

pub mod dialog;
pub mod embedded;
pub mod endpoint;
pub mod headers;
pub mod limits;
pub mod message;
pub mod multipart;
pub mod reginfo;
pub mod resolve;
pub mod server_table;
pub mod stateless;
pub mod transaction;
pub mod transport;
pub mod uri;

pub use endpoint::{ClientTx, Endpoint, IncomingRequest, ServerTx};
pub use headers::*;
pub use message::*;
pub use transport::{SipTransport, Transport};
pub use uri::*;
