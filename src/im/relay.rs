//! The MSRP side of O-IM and T-IM (RFC 4975): each chat session through the server is a
//! *pair* of MSRP legs, one towards the side that opened it (A) and one towards the other
//! user (B). The server is an MSRP back-to-back endpoint, as RCS messaging servers are: each
//! leg has its own URI in our SDP (`a=path`), the remote side binds a leg by sending the first
//! (empty) SEND on its connection (§5.4), and a SEND arriving on one leg is sent on along the
//! other with its Message-ID, Byte-Range and body unchanged and fresh To-Path / From-Path /
//! transaction id. The 200 for a relayed chunk goes back only once the next hop answered, so a
//! sender's 200 means "the far end has it" (and the hop-by-hop order of the paper's figure 2).
//!
//! When the other leg is not up, the node decides ([`Unbound`]): T-IM keeps the message
//! (answers 200 itself, and hands the whole message to the node to store); O-IM answers 481.
//! Malformed streams are closed (by [`crate::msrp::conn`]); requests naming no leg of ours get
//! 481; messages over the size limit get 413; unknown methods 501. What a peer can make the
//! hub hold is bounded ([`limits`]). An RFC 5547 file transfer's pair ([`Hub::set_file`]) is
//! not reassembled: its chunks stream through one at a time, up to its own size limit.
//!
//! This file holds the pairs and their legs; `forward.rs` the relaying between legs,
//! `connect.rs` the legs and messages the hub opens itself, `limits.rs` the bounds.

mod connect;
mod forward;
#[cfg(test)]
mod hold_tests;
mod limits;
#[cfg(test)]
mod naming_tests;
#[cfg(test)]
mod ready_tests;

pub use limits::MsrpStats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::msrp::conn::{accept_loop, MsrpConn};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::session::SendTransactions;
use crate::msrp::MsrpMessage;
use crate::trace::Trace;
use connect::finish_local;
use forward::answer_when_kept;

/// Which leg of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Towards the user who opened the session (for T-IM: O-IM).
    A,
    /// Towards the other user.
    B,
}

impl Side {
    fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What to do with a message whose onward leg is not up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// Answer 200 and hand the message to the node (store and forward).
    Store,
    /// Answer 481.
    Reject,
}

/// What the hub tells its node.
#[derive(Debug)]
pub enum HubEvent {
    /// A leg's remote side bound it (or our connection to it is up).
    Bound {
        /// The pair.
        pair: u64,
        /// The leg.
        side: Side,
    },
    /// A whole message arrived on a leg.
    Message {
        /// The pair.
        pair: u64,
        /// The leg it came in on.
        from: Side,
        /// Its Content-Type.
        content_type: String,
        /// The reassembled body.
        body: Bytes,
        /// True when it was sent on along the other leg; false when it was kept here.
        relayed: bool,
    },
    /// A leg's connection went away.
    Closed {
        /// The pair.
        pair: u64,
        /// The leg.
        side: Side,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Idle,
    Connecting,
    Bound,
    Ready,
}

#[derive(Debug)]
struct Leg {
    local_id: String,
    remote: Option<String>,
    /// Who binds this leg (`UE alice`), to name their connection in the flight recorder.
    owner: Option<String>,
    conn: Option<MsrpConn>,
    state: LegState,
    queued: Vec<(MsrpConn, MsrpMessage)>,
    /// Messages for this leg being handed to the keeper right now (the leg was not ready
    /// when they came): [`Hub::set_ready_if`] waits for them, so nothing kept can be overtaken
    /// by a message relayed live.
    keeping: u32,
}

#[derive(Debug)]
struct Pair {
    legs: [Leg; 2],
    /// An RFC 5547 file transfer ([`Hub::set_file`]): chunks stream through, never
    /// reassembled, up to [`MsrpLimits::max_file_size`].
    file: bool,
}

enum Tx {
    Relay {
        upstream: MsrpConn,
        request: Box<MsrpMessage>,
        /// The pair and the leg it was sent on along.
        pair: u64,
        onward: Side,
    },
    Local {
        waiter: Arc<Mutex<LocalSend>>,
        pair: u64,
    },
}

struct LocalSend {
    left: usize,
    done: Option<oneshot::Sender<u16>>,
}

#[derive(Default)]
struct St {
    ids: HashMap<String, (u64, Side)>,
    pairs: HashMap<u64, Pair>,
    /// Our SENDs awaiting their response (RFC 4975 §7.1.1 timeout: [`session`]).
    txs: SendTransactions<Tx>,
    /// Every connection being served, with its partial messages.
    conns: HashMap<limits::ConnKey, limits::ConnEntry>,
}

struct Inner {
    addr: SocketAddr,
    trace: Trace,
    unbound: Unbound,
    /// Leg B becomes ready only when the node says so (T-IM first empties its store).
    manual_ready_b: bool,
    limits: MsrpLimits,
    counters: limits::Counters,
    live: Arc<std::sync::atomic::AtomicUsize>,
    st: Mutex<St>,
    events: mpsc::UnboundedSender<HubEvent>,
    seq: AtomicU64,
    keeper: std::sync::OnceLock<Keeper>,
    gate: std::sync::OnceLock<Gate>,
    /// Whole messages counted for `/metrics` ([`Hub::set_metrics`]).
    metrics: std::sync::OnceLock<crate::metrics::MsrpCounter>,
}

/// Takes custody of a whole message whose onward leg is down (pair, leg it came in on,
/// Content-Type, body). It writes at once (so messages keep their order) and returns a future
/// that resolves once the write is on disk: true, and the sender gets the 200 of the last
/// chunk; false (not stored), and it gets a 500. So a 200 means "stored, durably".
pub type Keeper = Box<dyn Fn(u64, Side, &str, &Bytes) -> KeepFuture + Send + Sync>;

/// What a [`Keeper`] returns: resolves to true once the message is durably kept.
pub type KeepFuture = futures_util::future::BoxFuture<'static, bool>;

/// Looks at a whole message before it goes on or is kept (pair, leg it came in on,
/// Content-Type, body): `Some(work)` when something must be done first (T-IM grants a file's
/// recipient at the content server, RCC.07 §3.2.5); the message's last chunk waits for
/// `work`, and so do the messages after it on the same connection (their order holds). The
/// node bounds `work` (a grant gives up after 2 s and the message goes on).
pub type Gate = Box<dyn Fn(u64, Side, &str, &Bytes) -> Option<GateFuture> + Send + Sync>;

/// What a [`Gate`] asks the message to wait for.
pub type GateFuture = futures_util::future::BoxFuture<'static, ()>;

/// An MSRP listener and the pairs of legs through it. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// How a hub behaves.
#[derive(Debug, Clone, Copy)]
pub struct HubOptions {
    /// Messages whose onward leg is down.
    pub unbound: Unbound,
    /// Leg B waits for [`Hub::set_ready`].
    pub manual_ready_b: bool,
    /// What a peer can make the hub hold (largest message: 413 above).
    pub limits: MsrpLimits,
}

impl Hub {
    /// Starts a hub on `listener`; events go to the returned receiver.
    pub fn start(
        listener: TcpListener,
        trace: Trace,
        opts: HubOptions,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<(Hub, mpsc::UnboundedReceiver<HubEvent>)> {
        let addr = listener.local_addr()?;
        trace.recorder(addr);
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Hub {
            inner: Arc::new(Inner {
                addr,
                trace: trace.clone(),
                unbound: opts.unbound,
                manual_ready_b: opts.manual_ready_b,
                limits: opts.limits,
                counters: limits::Counters::default(),
                live: Arc::default(),
                st: Mutex::new(St::default()),
                events: tx,
                seq: AtomicU64::new(1),
                keeper: std::sync::OnceLock::new(),
                gate: std::sync::OnceLock::new(),
                metrics: std::sync::OnceLock::new(),
            }),
        };
        let h = hub.clone();
        tokio::spawn(accept_loop(
            listener,
            trace,
            shutdown.clone(),
            opts.limits,
            hub.inner.live.clone(),
            move |c, rx| h.serve_conn(c, rx),
        ));
        let h = hub.clone();
        let mut shut = shutdown;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        h.expire_txs(Instant::now());
                        h.sweep_conns(Instant::now());
                    }
                    _ = shut.changed() => return,
                }
            }
        });
        Ok((hub, rx))
    }

    /// Counts each whole message (the last chunk of a SEND) from now on; the first call wins.
    pub fn set_metrics(&self, counter: crate::metrics::MsrpCounter) {
        let _ = self.inner.metrics.set(counter);
    }

    /// Installs the function that stores messages kept here ([`Unbound::Store`]).
    pub fn set_keeper(&self, k: Keeper) {
        let _ = self.inner.keeper.set(k);
    }

    /// Installs the function that looks at whole messages before they go on ([`Gate`]).
    pub fn set_gate(&self, g: Gate) {
        let _ = self.inner.gate.set(g);
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    fn uri_of(&self, id: &str) -> String {
        format!("msrp://{}/{id};tcp", self.inner.addr)
    }

    fn next_id(&self) -> String {
        format!(
            "{}{:x}",
            crate::im::rcs::new_id().get(..10).unwrap_or("s"),
            self.inner.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A new pair; returns its id and our URIs for legs A and B.
    pub fn new_pair(&self) -> (u64, String, String) {
        let pair = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (self.next_id(), self.next_id());
        let leg = |id: &str| Leg {
            local_id: id.to_string(),
            remote: None,
            owner: None,
            conn: None,
            state: LegState::Idle,
            queued: Vec::new(),
            keeping: 0,
        };
        if let Ok(mut st) = self.inner.st.lock() {
            st.ids.insert(a.clone(), (pair, Side::A));
            st.ids.insert(b.clone(), (pair, Side::B));
            st.pairs.insert(
                pair,
                Pair {
                    legs: [leg(&a), leg(&b)],
                    file: false,
                },
            );
        }
        (pair, self.uri_of(&a), self.uri_of(&b))
    }

    /// Our URI for a leg.
    pub fn local_uri(&self, pair: u64, side: Side) -> Option<String> {
        let id = self.with_leg(pair, side, |l| l.local_id.clone())?;
        Some(self.uri_of(&id))
    }

    /// Says who will bind a leg (`UE alice`): when they do, the flight recorder names the
    /// connection they bound it from after them ([`Trace::name_peer`]) instead of its
    /// ephemeral address.
    pub fn set_owner(&self, pair: u64, side: Side, owner: &str) {
        self.with_leg(pair, side, |l| l.owner = Some(owner.to_string()));
    }

    /// Sets the far end's URI of a leg (from its SDP `a=path`, last URI).
    pub fn set_remote(&self, pair: u64, side: Side, uri: &str) {
        self.with_leg(pair, side, |l| l.remote = Some(uri.to_string()));
    }

    /// True when a leg carries messages now.
    pub fn is_ready(&self, pair: u64, side: Side) -> bool {
        self.leg_state(pair, side) == Some(LegState::Ready)
    }

    /// True when a leg's far end has bound it (ready or not).
    pub fn is_bound(&self, pair: u64, side: Side) -> bool {
        matches!(
            self.leg_state(pair, side),
            Some(LegState::Bound | LegState::Ready)
        )
    }

    fn leg_state(&self, pair: u64, side: Side) -> Option<LegState> {
        self.with_leg(pair, side, |l| l.state)
    }

    /// Runs `f` on a leg under the lock; `None` when the pair is gone.
    fn with_leg<R>(&self, pair: u64, side: Side, f: impl FnOnce(&mut Leg) -> R) -> Option<R> {
        let mut st = self.inner.st.lock().ok()?;
        let p = st.pairs.get_mut(&pair)?;
        Some(f(&mut p.legs[side.idx()]))
    }

    /// Forgets a pair (session ended).
    pub fn remove_pair(&self, pair: u64) {
        let mut closing = Vec::new();
        let mut ended = Vec::new();
        if let Ok(mut st) = self.inner.st.lock() {
            ended = limits::take_txs_of(&mut st, pair);
            for c in st.conns.values_mut() {
                c.partials.retain(|(p, _, _)| *p != pair);
            }
            if let Some(p) = st.pairs.remove(&pair) {
                for l in p.legs {
                    st.ids.remove(&l.local_id);
                    if let Some(c) = l.conn {
                        closing.push(c);
                    }
                }
            }
            // A connection no other session uses goes away with the pair.
            closing.retain(|c| {
                !st.pairs.values().any(|p| {
                    p.legs.iter().any(|l| {
                        l.conn.as_ref().is_some_and(|o| {
                            o.local_addr() == c.local_addr() && o.peer_addr() == c.peer_addr()
                        })
                    })
                })
            });
        }
        for c in closing {
            c.close();
        }
        limits::end_txs(ended);
    }

    /// Ends one leg (its far end said BYE): no more messages go on along it; its connection
    /// closes unless another session uses it.
    pub fn close_leg(&self, pair: u64, side: Side) {
        let Some(conn) = self
            .with_leg(pair, side, |l| {
                l.state = LegState::Idle;
                l.conn.take()
            })
            .flatten()
        else {
            return;
        };
        let shared = self.inner.st.lock().is_ok_and(|st| {
            st.pairs.values().any(|p| {
                p.legs.iter().any(|l| {
                    l.conn.as_ref().is_some_and(|o| {
                        o.local_addr() == conn.local_addr() && o.peer_addr() == conn.peer_addr()
                    })
                })
            })
        });
        if !shared {
            conn.close();
        }
        let _ = self.inner.events.send(HubEvent::Closed { pair, side });
    }

    /// Marks a bound leg ready, as [`Hub::set_ready`] does, only when no message for it is
    /// being kept at this moment and `nothing_kept()` says the store holds nothing more for it
    /// (checked under the relay's lock, so a message kept after the check finds the leg ready
    /// and is relayed live instead). False when the caller must send what was kept first and
    /// try again; true when the leg is ready, or no longer bound.
    pub fn set_ready_if(&self, pair: u64, side: Side, nothing_kept: impl FnOnce() -> bool) -> bool {
        let queued = self
            .with_leg(pair, side, |leg| match leg.state {
                LegState::Bound if leg.keeping == 0 && nothing_kept() => {
                    leg.state = LegState::Ready;
                    Some(std::mem::take(&mut leg.queued))
                }
                LegState::Bound => None,
                _ => Some(Vec::new()),
            })
            .unwrap_or(Some(Vec::new()));
        let Some(queued) = queued else {
            return false;
        };
        for (up, m) in queued {
            self.forward(pair, side, &up, &m);
        }
        true
    }

    /// Holds what arrives for a leg its far end has not bound yet in the leg's queue (bounded
    /// by [`MsrpLimits::max_queued_bytes`]) until it binds, instead of keeping or refusing
    /// it: an RFC 5547 file transfer's receiver binds only after the ACK, and its chunks must
    /// neither be stored nor lost meanwhile.
    pub fn hold_until_bound(&self, pair: u64, side: Side) {
        self.with_leg(pair, side, |l| {
            if l.state == LegState::Idle && l.conn.is_none() {
                l.state = LegState::Connecting;
            }
        });
    }

    /// The largest whole message the hub relays (`[im] max_message_size`; 413 above).
    pub fn max_message_size(&self) -> u64 {
        self.inner.limits.max_size
    }

    /// The largest file a file-transfer pair carries (`[im] max_file_size`; 413 above).
    pub fn max_file_size(&self) -> u64 {
        self.inner.limits.max_file_size
    }

    /// Marks a pair as an RFC 5547 file transfer: each chunk goes on as it arrives (same
    /// Message-ID, Byte-Range, Content-Type) and is forgotten once its 200 went upstream, so
    /// what the hub holds of a file is the chunk or two in flight, whatever the file's size.
    /// Nothing is reassembled, kept or shown to the node; the limit is
    /// [`MsrpLimits::max_file_size`], checked on each chunk's Byte-Range. A chunk for a leg
    /// not ready yet waits in its bounded queue; for a leg that went away it gets 481.
    pub fn set_file(&self, pair: u64) {
        if let Ok(mut st) = self.inner.st.lock() {
            if let Some(p) = st.pairs.get_mut(&pair) {
                p.file = true;
            }
        }
    }

    fn is_file(&self, pair: u64) -> bool {
        self.inner
            .st
            .lock()
            .is_ok_and(|st| st.pairs.get(&pair).is_some_and(|p| p.file))
    }

    /// Marks a bound leg ready and sends on what queued for it.
    pub fn set_ready(&self, pair: u64, side: Side) {
        let queued = self
            .with_leg(pair, side, |leg| {
                (leg.state == LegState::Bound).then(|| {
                    leg.state = LegState::Ready;
                    std::mem::take(&mut leg.queued)
                })
            })
            .flatten()
            .unwrap_or_default();
        for (up, m) in queued {
            self.forward(pair, side, &up, &m);
        }
    }
}
