//! `[sip]`: the RFC 3261 timers (T1, T2, T4, Timer C of §16.6) and the overload limits of every
//! node's SIP endpoint (transactions, inbound queue, TCP connections).

use serde::{Deserialize, Serialize};

/// `[sip]`: the RFC 3261 timers every node uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// T1, the round-trip estimate (ms).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// T2, the longest retransmit interval (ms).
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// T4, how long a message may stay in the network (ms).
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// Timer C (RFC 3261 §16.6): how long a proxied INVITE may ring without a final answer
    /// before it is CANCELled and the caller gets 408 (ms, more than 180000 by the RFC).
    #[serde(default = "default_timer_c")]
    pub timer_c_ms: u64,
    /// Server transactions a node takes on at once for out-of-dialog requests; more get 503
    /// with Retry-After (in-dialog requests may use twice this).
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// At the P-CSCF: transactions one source address (ip:port) may hold at once (0: no
    /// limit), so one flooding client cannot starve the others.
    #[serde(default = "default_per_source")]
    pub max_transactions_per_source: usize,
    /// The Retry-After of those 503s (seconds).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
    /// Messages read but not yet handled per node; datagrams beyond are dropped.
    #[serde(default = "default_inbound_queue")]
    pub inbound_queue: usize,
    /// Bytes of those messages at most per node.
    #[serde(default = "default_inbound_bytes")]
    pub inbound_queue_bytes: usize,
    /// Open TCP connections per node; more are closed at once.
    #[serde(default = "default_max_tcp")]
    pub max_tcp_connections: usize,
    /// A TCP connection idle this long is closed (seconds).
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout_secs: u64,
    /// A message must complete within this once its first byte came (ms).
    #[serde(default = "default_tcp_message_timeout")]
    pub tcp_message_timeout_ms: u64,
    /// A TCP connect may take this long (ms).
    #[serde(default = "default_tcp_connect_timeout")]
    pub tcp_connect_timeout_ms: u64,
    /// Completed server transactions a node keeps to answer retransmissions (each waits out
    /// Timer J, 32 s over UDP); past it the oldest go first.
    #[serde(default = "default_max_completed")]
    pub max_completed: usize,
}

fn default_max_completed() -> usize {
    50_000
}

fn default_max_transactions() -> usize {
    2000
}
fn default_per_source() -> usize {
    500
}
fn default_retry_after() -> u32 {
    2
}
fn default_inbound_queue() -> usize {
    4096
}
fn default_inbound_bytes() -> usize {
    32 << 20
}
fn default_max_tcp() -> usize {
    4096
}
fn default_tcp_idle() -> u64 {
    600
}
fn default_tcp_message_timeout() -> u64 {
    10_000
}
fn default_tcp_connect_timeout() -> u64 {
    3000
}

fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4000
}
fn default_t4() -> u64 {
    5000
}
fn default_timer_c() -> u64 {
    180_000
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            t1_ms: default_t1(),
            t2_ms: default_t2(),
            t4_ms: default_t4(),
            timer_c_ms: default_timer_c(),
            max_transactions: default_max_transactions(),
            max_transactions_per_source: default_per_source(),
            retry_after_secs: default_retry_after(),
            inbound_queue: default_inbound_queue(),
            inbound_queue_bytes: default_inbound_bytes(),
            max_tcp_connections: default_max_tcp(),
            tcp_idle_timeout_secs: default_tcp_idle(),
            tcp_message_timeout_ms: default_tcp_message_timeout(),
            tcp_connect_timeout_ms: default_tcp_connect_timeout(),
            max_completed: default_max_completed(),
        }
    }
}

impl SipSection {
    /// The timers as the transaction layer takes them.
    pub fn timers(&self) -> crate::sip::transaction::TimerConfig {
        use std::time::Duration;
        crate::sip::transaction::TimerConfig {
            t1: Duration::from_millis(self.t1_ms.max(1)),
            t2: Duration::from_millis(self.t2_ms.max(1)),
            t4: Duration::from_millis(self.t4_ms),
            c: Duration::from_millis(self.timer_c_ms.max(1)),
        }
    }

    /// The limits of a node's endpoint; `edge`: the P-CSCF, which limits each source.
    pub fn limits(&self, edge: bool) -> crate::sip::limits::SipLimits {
        use std::time::Duration;
        crate::sip::limits::SipLimits {
            max_transactions: self.max_transactions.max(1),
            max_transactions_per_source: if edge {
                self.max_transactions_per_source
            } else {
                0
            },
            retry_after_secs: self.retry_after_secs,
            inbound_queue: self.inbound_queue.max(1),
            inbound_bytes: self.inbound_queue_bytes,
            max_tcp_connections: self.max_tcp_connections.max(1),
            tcp_idle_timeout: Duration::from_secs(self.tcp_idle_timeout_secs.max(1)),
            tcp_message_timeout: Duration::from_millis(self.tcp_message_timeout_ms.max(1)),
            tcp_connect_timeout: Duration::from_millis(self.tcp_connect_timeout_ms.max(1)),
            max_completed: self.max_completed.max(1),
            ..crate::sip::limits::SipLimits::default()
        }
    }
}
