//! Bounds on what an MSRP peer can make us hold (RFC 4975 §7.1.1, §7.1.2, §10): partial
//! messages per connection (how many, how many bytes, how long without a chunk), the queue of
//! bytes waiting for a peer to read, idle connections and connections per listener. Pure code:
//! time is passed in.
//!
//! RFC 4975 gives the answers: a chunk that would make a message larger than we accept gets
//! 413 (§7.1.1, §10: "the sender SHOULD abort the message"); a message that stops arriving is
//! interrupted, and a sender that asked for failure reports (§7.1.2) gets a REPORT whose
//! Status is `000 408` for the bytes we had.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::msrp::{MsrpMessage, Reassembly};

/// The chunk size of a file sent over MSRP (RFC 5547): 10 KiB, rcsjta's
/// `MsrpConstants.CHUNK_MAX_SIZE`; well within what a relay buffers per connection
/// ([`MsrpLimits::max_partial_bytes_per_conn`]) and one frame ([`crate::msrp::MAX_FRAME`]).
pub const FILE_CHUNK_SIZE: usize = 10 * 1024;

/// The limits, from the lab file's `[im]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrpLimits {
    /// Largest whole message (413 above).
    pub max_size: u64,
    /// Largest file of an RFC 5547 file transfer, whose chunks a relay streams on without
    /// reassembling them (413 when a Byte-Range says more).
    pub max_file_size: u64,
    /// A partial message that gets no chunk for this long is dropped.
    pub partial_timeout: Duration,
    /// Partial messages one connection may have open at once (413 for a new one above).
    pub max_partials_per_conn: usize,
    /// Bytes of partial messages buffered per connection (413 above).
    pub max_partial_bytes_per_conn: u64,
    /// Bytes queued for a peer that does not read; past it the connection is closed.
    pub max_queued_bytes: usize,
    /// A connection that binds no session for this long is closed.
    pub idle_timeout: Duration,
    /// Connections one listener holds at once (more are closed at accept).
    pub max_connections: usize,
}

impl Default for MsrpLimits {
    fn default() -> Self {
        MsrpLimits {
            max_size: 1 << 20,
            max_file_size: 100 << 20,
            partial_timeout: Duration::from_secs(30),
            max_partials_per_conn: 32,
            max_partial_bytes_per_conn: 4 << 20,
            max_queued_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// What one chunk did to the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// The message is whole: its Content-Type (of the first chunk) and body.
    Whole(String, Bytes),
    /// More chunks to come.
    Partial,
    /// A `#` chunk ended it (§7.1.1); its state is gone.
    Aborted,
    /// Over the message size, or over the connection's byte budget: answer 413, and its state
    /// is gone.
    TooLarge,
    /// The connection already has as many partial messages as allowed: answer 413.
    TooMany,
}

/// A partial message dropped because no chunk came in time.
#[derive(Debug)]
pub struct Expired<K> {
    /// Its key.
    pub key: K,
    /// The first chunk seen, body left out (for the paths, Message-ID and Failure-Report).
    pub first: MsrpMessage,
    /// Bytes we had of it.
    pub had: u64,
}

#[derive(Debug)]
struct Partial {
    r: Reassembly,
    first: MsrpMessage,
    bytes: u64,
    last: Instant,
}

/// The partial messages of one connection (or one client session), keyed by whatever names
/// a message there (Message-ID, with the leg for a relay).
#[derive(Debug)]
pub struct Partials<K> {
    limits: MsrpLimits,
    map: HashMap<K, Partial>,
    bytes: u64,
}

impl<K: Hash + Eq + Clone> Partials<K> {
    /// An empty table.
    pub fn new(limits: MsrpLimits) -> Self {
        Partials {
            limits,
            map: HashMap::new(),
            bytes: 0,
        }
    }

    /// Partial messages held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Body bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn remove(&mut self, key: &K) {
        if let Some(p) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(p.bytes);
        }
    }

    /// Adds one SEND chunk (with a body) of message `key`.
    pub fn add(&mut self, now: Instant, key: K, m: &MsrpMessage) -> Added {
        let whole_in_one = m.continuation == crate::msrp::Continuation::End
            && m.byte_range().is_none_or(|b| b.start == 1);
        if !self.map.contains_key(&key) {
            if !whole_in_one && self.map.len() >= self.limits.max_partials_per_conn {
                return Added::TooMany;
            }
            let mut first = m.clone();
            first.body = Bytes::new();
            self.map.insert(
                key.clone(),
                Partial {
                    r: Reassembly::default(),
                    first,
                    bytes: 0,
                    last: now,
                },
            );
        }
        let n = m.body.len() as u64;
        if !whole_in_one && self.bytes.saturating_add(n) > self.limits.max_partial_bytes_per_conn {
            self.remove(&key);
            return Added::TooLarge;
        }
        let Some(p) = self.map.get_mut(&key) else {
            return Added::Partial;
        };
        p.last = now;
        match p.r.add(m, self.limits.max_size) {
            Ok(Some(body)) => {
                let ct = p.r.content_type().unwrap_or("message/cpim").to_string();
                self.remove(&key);
                Added::Whole(ct, body)
            }
            Ok(None) if p.r.aborted() => {
                self.remove(&key);
                Added::Aborted
            }
            Ok(None) => {
                p.bytes += n;
                self.bytes += n;
                Added::Partial
            }
            Err(_) => {
                self.remove(&key);
                Added::TooLarge
            }
        }
    }

    /// Drops the partial messages whose last chunk is older than the timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired<K>> {
        let after = self.limits.partial_timeout;
        let old: Vec<K> = self
            .map
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last) >= after)
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|k| {
                let p = self.map.remove(&k)?;
                self.bytes = self.bytes.saturating_sub(p.bytes);
                Some(Expired {
                    key: k,
                    first: p.first,
                    had: p.bytes,
                })
            })
            .collect()
    }

    /// Forgets the messages `keep` says no to (their session ended).
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self.map.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.remove(&k);
        }
    }
}

/// RFC 4975 §7.1.2: the failure REPORT for a message that stopped arriving, when its sender
/// asked for one (Failure-Report absent, `yes` or `partial`). Sent back towards the sender:
/// To-Path is the first chunk's From-Path, From-Path our URI (its To-Path's first URI).
pub fn timeout_report(first: &MsrpMessage, had: u64, tid: &str) -> Option<MsrpMessage> {
    if first.header("Failure-Report") == Some("no") {
        return None;
    }
    let to = first.header("From-Path")?.to_string();
    let from = first
        .header("To-Path")?
        .split_whitespace()
        .next()?
        .to_string();
    let mut r = MsrpMessage::request("REPORT", tid, &to, &from);
    if let Some(id) = first.header("Message-ID") {
        r.set_header("Message-ID", id);
    }
    let total = first
        .byte_range()
        .and_then(|b| b.total)
        .map_or("*".to_string(), |t| t.to_string());
    r.set_header("Byte-Range", format!("1-{}/{total}", had.max(1)));
    r.set_header("Status", "000 408 Partial Message Timed Out");
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msrp::{chunk, Continuation};

    fn limits() -> MsrpLimits {
        MsrpLimits {
            max_size: 100_000,
            partial_timeout: Duration::from_secs(5),
            max_partials_per_conn: 2,
            max_partial_bytes_per_conn: 7_000,
            ..MsrpLimits::default()
        }
    }

    fn chunks(mid: &str, len: usize) -> Vec<MsrpMessage> {
        let body = vec![b'a'; len];
        let mut n = 0;
        chunk(
            "msrp://a:1/x;tcp",
            "msrp://b:2/y;tcp",
            mid,
            "text/plain",
            &body,
            2048,
            || {
                n += 1;
                format!("t{n}")
            },
        )
    }

    #[test]
    fn a_message_that_stops_arriving_expires_with_a_408_report() {
        let t0 = Instant::now();
        let mut p = Partials::new(limits());
        let c = chunks("m1", 5000);
        assert_eq!(p.add(t0, "m1", &c[0]), Added::Partial);
        assert_eq!((p.len(), p.bytes()), (1, 2048));
        assert!(p.expire(t0 + Duration::from_secs(4)).is_empty());
        let gone = p.expire(t0 + Duration::from_secs(5));
        assert_eq!(gone.len(), 1);
        assert_eq!((p.len(), p.bytes()), (0, 0));
        let r = timeout_report(&gone[0].first, gone[0].had, "r1").unwrap();
        assert_eq!(r.method.as_deref(), Some("REPORT"));
        assert_eq!(r.header("To-Path"), Some("msrp://b:2/y;tcp"));
        assert_eq!(
            r.header("Status"),
            Some("000 408 Partial Message Timed Out")
        );
        assert_eq!(r.header("Byte-Range"), Some("1-2048/5000"));
    }

    #[test]
    fn caps_on_count_and_bytes_answer_413_and_whole_messages_still_pass() {
        let t0 = Instant::now();
        let mut p = Partials::new(limits());
        assert_eq!(p.add(t0, "a", &chunks("a", 5000)[0]), Added::Partial);
        assert_eq!(p.add(t0, "b", &chunks("b", 5000)[0]), Added::Partial);
        assert_eq!(p.add(t0, "c", &chunks("c", 5000)[0]), Added::TooMany);
        // A one-chunk message needs no slot.
        assert!(matches!(
            p.add(t0, "d", &chunks("d", 10)[0]),
            Added::Whole(..)
        ));
        // Bytes: 4096 held; "a" grows to 6144, and past 7000 the budget is gone.
        assert_eq!(p.add(t0, "a", &chunks("a", 9000)[1]), Added::Partial);
        assert_eq!(p.add(t0, "a", &chunks("a", 9000)[2]), Added::TooLarge);
        assert_eq!((p.len(), p.bytes()), (1, 2048));
        // An aborted message frees its slot.
        let mut abort = chunks("b", 5000)[1].clone();
        abort.continuation = Continuation::Abort;
        assert_eq!(p.add(t0, "b", &abort), Added::Aborted);
        assert!(p.is_empty());
    }
}
