//! The RTCWeb ↔ IMS gateway of patent KR101499354B1 (MISSION.md §4), socket-free layers:
//! the web protocol codec ([`message`]), the per-session call state machine that translates it
//! to SIP with 100rel (RFC 3261, RFC 3262) as figures 7 and 8 draw it ([`call`]), and the
//! routing table `<sender, receiver, session-id>` with the translation defaults of figure 6
//! ([`route`]), and a page's presence subscription as figure 9 draws it ([`presence`]). The
//! node that owns the WebSocket and SIP sockets sits on top of these.

pub mod call;
pub mod message;
pub mod node;
pub mod presence;
pub mod route;
