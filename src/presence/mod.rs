//! Presence (3GPP TS 24.141, RFC 3856): the socket-free layers a presence server node sits on.
//!
//! - [`pidf`]: the presence document (PIDF, RFC 3863) with RPID activities (RFC 4480) and the
//!   OMA/RCS service description, parsed and printed.
//! - [`publication`]: the Event State Compositor of RFC 3903 (PUBLISH: SIP-ETag, SIP-If-Match,
//!   expiry, several devices composed into one document, "last seen").
//! - [`subscription`]: the notifier side of the `presence` event package (RFC 6665, RFC 3856
//!   §6): watcher authorization, subscription states and the NOTIFYs they call for.
//! - [`rlmi`]: the Resource List Server pieces of RFC 4662 (RLMI documents, the
//!   `multipart/related` NOTIFY body, full and partial state).
//!
//! Nothing here owns a socket or reads a clock: every entry point takes `now`, and work comes
//! out as values (outcomes, queued NOTIFYs, `poll_timeout()`), as STYLE.md §1 asks.

pub mod pidf;
pub mod publication;
pub mod rlmi;
pub mod subscription;
mod xml;
