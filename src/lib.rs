//! rcslab: a complete IMS/RCS network in one binary.
//!
//! Every node (P-CSCF, I-CSCF, S-CSCF, HSS) is a tokio task on its own loopback socket and
//! talks to the others only through real sockets in real wire formats (SIP RFC 3261, Diameter
//! RFC 6733 with 3GPP Cx), so a capture on `lo` shows the real flow. See `DESIGN.md` in the
//! shared docs and README.md for the layout: codecs (`sip`, `diameter`, `auth`, `profile`) are
//! pure; transports and state machines sit on them; the nodes (`cscf`, `hss`, `ue`) hold only
//! node logic; `lab` starts a whole network.

pub mod auth;
pub mod conf;
pub mod config;
pub mod content;
pub mod cpim;
pub mod cscf;
pub mod diameter;
pub mod focus;
pub mod fthttp;
pub mod hss;
pub mod http_client;
pub mod http_server;
pub mod im;
pub mod lab;
pub mod lograte;
pub mod media;
pub mod metrics;
pub mod mms;
pub mod msrp;
pub mod presence;
pub mod profile;
pub mod ps;
pub mod rcs;
pub mod rtcweb;
pub mod shrink;
pub mod sip;
pub mod smpp;
pub mod sms;
pub mod smsc;
pub mod status;
pub mod store;
pub mod trace;
pub mod trace_view;
pub mod ue;
pub mod ums;
pub mod webrsf;

pub use config::LabConfig;
pub use lab::{Lab, LabOptions};
