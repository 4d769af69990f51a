//! Reading the flight recorder: exporters (text, Mermaid, HTML, pcap), the SIP/Diameter
//! pretty-printer and the export filter. They decode SIP and Diameter, so they sit above the
//! codecs, while the recorder itself (`crate::trace`) sits below them and the transports
//! record into it.

pub mod export;
pub mod filter;
