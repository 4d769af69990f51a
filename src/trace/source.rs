//! [`TraceSource`]: what a reader of the flight recorder needs (the admin API's `/trace`),
//! without knowing who keeps the recorder (the lab's `Recorder`, with its address book).

use std::time::Duration;

use super::filter::TraceFilter;

/// The flight recorder as `GET /trace` and `DELETE /trace` read it.
pub trait TraceSource: Send + Sync {
    /// True when messages are being recorded (`rcslab up --trace`).
    fn is_enabled(&self) -> bool;
    /// The recorder's time now (what `since` counts back from).
    fn elapsed(&self) -> Duration;
    /// Forgets every recorded message and note; returns how many messages it dropped.
    fn clear(&self) -> usize;
    /// The ladder in the paper's view (`paper`) or with CSCF roles (`roles`), one line per
    /// message.
    fn view_text(&self, view: &str) -> Vec<u8>;
    /// What `filter` keeps of the recording as `text`, `mermaid`, `html` or `pcap`; `None`
    /// for another format.
    fn export_filtered(&self, format: &str, filter: &TraceFilter) -> Option<Vec<u8>>;
}
