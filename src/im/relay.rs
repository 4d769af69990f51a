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
//! hub hold is bounded ([`limits`]).

mod limits;
#[cfg(test)]
mod naming_tests;

pub use limits::MsrpStats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::msrp::conn::{accept_loop, MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::session::{self, Admit, SendTransactions};
use crate::msrp::{chunk, MsrpMessage, MsrpUri, CHUNK_SIZE};
use crate::trace::Trace;

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
}

#[derive(Debug)]
struct Pair {
    legs: [Leg; 2],
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
        };
        if let Ok(mut st) = self.inner.st.lock() {
            st.ids.insert(a.clone(), (pair, Side::A));
            st.ids.insert(b.clone(), (pair, Side::B));
            st.pairs.insert(
                pair,
                Pair {
                    legs: [leg(&a), leg(&b)],
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

    /// Connects to the far end of a leg (we are the active party, RFC 4975 §5.4 / RFC 6135)
    /// and binds it with an empty SEND. Messages for the leg queue meanwhile.
    pub fn connect_leg(&self, pair: u64, side: Side) {
        let Some(remote) = self.with_leg(pair, side, |leg| {
            leg.state = LegState::Connecting;
            leg.remote.clone()
        }) else {
            return;
        };
        let Some(remote) = remote.and_then(|r| MsrpUri::parse(&r).ok()) else {
            self.leg_down(pair, side);
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            let Some(addr) = tokio::net::lookup_host(remote.authority())
                .await
                .ok()
                .and_then(|mut a| a.next())
            else {
                hub.leg_down(pair, side);
                return;
            };
            let (conn, rx) = match MsrpConn::connect(addr, hub.inner.trace.clone()).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "MSRP connect failed");
                    hub.leg_down(pair, side);
                    return;
                }
            };
            // The ladder names this connection after the node, not an ephemeral port.
            hub.inner.trace.alias(conn.local_addr(), hub.inner.addr);
            hub.serve_conn(conn.clone(), rx);
            let Some(local) = hub.local_uri(pair, side) else {
                return;
            };
            let bind = MsrpMessage::request(
                "SEND",
                &crate::im::rcs::new_id()[..16],
                &remote.to_string(),
                &local,
            );
            let (tx, rx) = oneshot::channel();
            hub.track_local(&bind.transaction_id, pair, 1, tx);
            let _ = conn.send(&bind);
            let ok = matches!(rx.await, Ok(200));
            let queued = {
                let Ok(mut st) = hub.inner.st.lock() else {
                    return;
                };
                let Some(p) = st.pairs.get_mut(&pair) else {
                    return;
                };
                let leg = &mut p.legs[side.idx()];
                if ok {
                    leg.conn = Some(conn);
                    leg.state = LegState::Ready;
                } else {
                    leg.state = LegState::Idle;
                }
                std::mem::take(&mut leg.queued)
            };
            if ok {
                for (up, m) in queued {
                    hub.forward(pair, side, &up, &m);
                }
                let _ = hub.inner.events.send(HubEvent::Bound { pair, side });
            } else {
                for (up, m) in queued {
                    let _ = up.send(&m.response_to(481, "Session Does Not Exist"));
                }
                let _ = hub.inner.events.send(HubEvent::Closed { pair, side });
            }
        });
    }

    fn leg_down(&self, pair: u64, side: Side) {
        let queued = self
            .with_leg(pair, side, |leg| {
                leg.state = LegState::Idle;
                leg.conn = None;
                std::mem::take(&mut leg.queued)
            })
            .unwrap_or_default();
        for (up, m) in queued {
            let _ = up.send(&m.response_to(481, "Session Does Not Exist"));
        }
        let _ = self.inner.events.send(HubEvent::Closed { pair, side });
    }

    /// Sends a whole message of ours on a leg (chunked at 2048 bytes); resolves with the
    /// status of the far end (200 when every chunk got its 200), or 481 when the leg is down.
    pub fn send(
        &self,
        pair: u64,
        side: Side,
        content_type: &str,
        body: &[u8],
    ) -> oneshot::Receiver<u16> {
        let (tx, rx) = oneshot::channel();
        let leg = self
            .with_leg(pair, side, |l| {
                (l.state == LegState::Ready || l.state == LegState::Bound)
                    .then(|| (l.conn.clone(), l.remote.clone(), l.local_id.clone()))
            })
            .flatten();
        let Some((Some(conn), Some(remote), local)) = leg else {
            let _ = tx.send(481);
            return rx;
        };
        let chunks = chunk(
            &remote,
            &self.uri_of(&local),
            &crate::im::rcs::new_id(),
            content_type,
            body,
            CHUNK_SIZE,
            || crate::im::rcs::new_id()[..16].to_string(),
        );
        let waiter = Arc::new(Mutex::new(LocalSend {
            left: chunks.len(),
            done: Some(tx),
        }));
        if let Ok(mut st) = self.inner.st.lock() {
            let now = Instant::now();
            for c in &chunks {
                st.txs.start(
                    now,
                    &c.transaction_id,
                    Tx::Local {
                        waiter: waiter.clone(),
                        pair,
                    },
                );
            }
        }
        for c in &chunks {
            if conn.send(c).is_err() {
                // The connection is gone: say so now rather than after the 30 s expiry.
                if let Ok(mut st) = self.inner.st.lock() {
                    for c in &chunks {
                        st.txs.cancel(&c.transaction_id);
                    }
                }
                finish_local(&waiter, 481);
                break;
            }
        }
        rx
    }

    fn track_local(&self, tid: &str, pair: u64, n: usize, done: oneshot::Sender<u16>) {
        if let Ok(mut st) = self.inner.st.lock() {
            st.txs.start(
                Instant::now(),
                tid,
                Tx::Local {
                    waiter: Arc::new(Mutex::new(LocalSend {
                        left: n,
                        done: Some(done),
                    })),
                    pair,
                },
            );
        }
    }

    fn serve_conn(&self, conn: MsrpConn, mut rx: MsrpEvents) {
        self.conn_opened(&conn);
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    MsrpEvent::Message(m) => hub.on_message(&conn, m),
                    MsrpEvent::Closed(_) => break,
                }
            }
            hub.conn_closed(&conn);
        });
    }

    fn conn_closed(&self, conn: &MsrpConn) {
        let mut gone = Vec::new();
        if let Ok(mut st) = self.inner.st.lock() {
            st.conns.remove(&limits::key(conn));
            for (id, p) in st.pairs.iter_mut() {
                for (i, l) in p.legs.iter_mut().enumerate() {
                    let same = l.conn.as_ref().is_some_and(|c| {
                        c.local_addr() == conn.local_addr() && c.peer_addr() == conn.peer_addr()
                    });
                    if same {
                        l.conn = None;
                        l.state = LegState::Idle;
                        gone.push((*id, if i == 0 { Side::A } else { Side::B }));
                    }
                }
            }
        }
        for (pair, side) in gone {
            let _ = self.inner.events.send(HubEvent::Closed { pair, side });
        }
    }

    fn on_message(&self, conn: &MsrpConn, m: MsrpMessage) {
        if m.method.is_none() {
            self.on_response(m);
            return;
        }
        let to = m.header("To-Path").unwrap_or("").to_string();
        let id = to
            .split_whitespace()
            .next()
            .and_then(|u| MsrpUri::parse(u).ok())
            .map(|u| u.session_id);
        let found = id.and_then(|id| {
            let st = self.inner.st.lock().ok()?;
            st.ids.get(&id).copied()
        });
        let wants_200 = session::wants_200(&m);
        // What the request gets is the session core's decision (RFC 4975 §7).
        let (pair, side) = found.unwrap_or((0, Side::A));
        match session::admit(&m, found.is_some(), self.inner.limits.max_size) {
            Admit::Respond(status, comment) => {
                let _ = conn.send(&m.response_to(status, comment));
                return;
            }
            Admit::Drop => return,
            Admit::Report => {
                // Success reports travel on like the message they report on.
                self.forward(pair, side.other(), conn, &m);
                return;
            }
            Admit::Bind => {
                self.bind(pair, side, conn, &m);
                return;
            }
            Admit::Chunk => {}
        }
        // Whole messages for the node.
        let Some(whole) = self.reassemble(conn, pair, side, &m) else {
            return;
        };
        if m.continuation == crate::msrp::Continuation::End {
            if let Some(c) = self.inner.metrics.get() {
                c.inc();
            }
        }
        let other = side.other();
        let state = self.leg_state(pair, other).unwrap_or(LegState::Idle);
        let relayed = match state {
            LegState::Ready => {
                self.forward(pair, other, conn, &m);
                true
            }
            LegState::Connecting => {
                self.queue(pair, other, conn, &m);
                true
            }
            LegState::Bound if self.inner.unbound == Unbound::Reject => {
                self.queue(pair, other, conn, &m);
                true
            }
            _ => match self.inner.unbound {
                Unbound::Store => {
                    let kept = match (&whole, self.inner.keeper.get()) {
                        (Some((ct, body)), Some(k)) => Some(k(pair, side, ct, body)),
                        // A chunk before the last: its 200 promises nothing yet.
                        _ => None,
                    };
                    let ok = wants_200.then(|| m.response_to(200, "OK"));
                    match kept {
                        None => {
                            if let Some(ok) = ok {
                                let _ = conn.send(&ok);
                            }
                        }
                        Some(kept) => {
                            // The 200 waits for the disk, in a task of its own so this
                            // connection's other messages keep flowing.
                            let (conn, failed) =
                                (conn.clone(), m.response_to(500, "Could Not Store"));
                            tokio::spawn(async move {
                                match (kept.await, ok) {
                                    (true, Some(ok)) => {
                                        let _ = conn.send(&ok);
                                    }
                                    (true, None) => {}
                                    (false, _) => {
                                        let _ = conn.send(&failed);
                                    }
                                }
                            });
                        }
                    }
                    false
                }
                Unbound::Reject => {
                    let _ = conn.send(&m.response_to(481, "Session Does Not Exist"));
                    return;
                }
            },
        };
        if let Some((content_type, body)) = whole {
            let _ = self.inner.events.send(HubEvent::Message {
                pair,
                from: side,
                content_type,
                body,
                relayed,
            });
        }
    }

    fn bind(&self, pair: u64, side: Side, conn: &MsrpConn, m: &MsrpMessage) {
        let Some((newly, owner)) = self.with_leg(pair, side, |leg| {
            if leg.remote.is_none() {
                leg.remote = m
                    .header("From-Path")
                    .and_then(|f| f.split_whitespace().next())
                    .map(str::to_string);
            }
            let newly = leg.conn.is_none();
            leg.conn = Some(conn.clone());
            if newly {
                leg.state = if side == Side::B && self.inner.manual_ready_b {
                    LegState::Bound
                } else {
                    LegState::Ready
                };
            }
            (newly, leg.owner.clone())
        }) else {
            return;
        };
        if let (true, Some(o)) = (newly, owner) {
            self.inner.trace.name_peer(conn.peer_addr(), &o);
        }
        let _ = conn.send(&m.response_to(200, "OK"));
        if newly {
            let _ = self.inner.events.send(HubEvent::Bound { pair, side });
        }
    }

    fn queue(&self, pair: u64, side: Side, upstream: &MsrpConn, m: &MsrpMessage) {
        let budget = self.inner.limits.max_queued_bytes;
        let Some(send_now) = self.with_leg(pair, side, |leg| {
            if leg.state == LegState::Ready {
                Some(true)
            } else if limits::queued_bytes(&leg.queued) + m.body.len() > budget {
                None
            } else {
                leg.queued.push((upstream.clone(), m.clone()));
                Some(false)
            }
        }) else {
            return;
        };
        match send_now {
            Some(true) => self.forward(pair, side, upstream, m),
            Some(false) => {}
            None => {
                // The onward leg takes too long to come up for what is piling up: drop it,
                // everything queued (and this message) gets 481.
                tracing::warn!(
                    pair,
                    ?side,
                    budget,
                    "MSRP leg queue full before the leg came up; dropping the leg"
                );
                let _ = upstream.send(&m.response_to(481, "Session Does Not Exist"));
                self.leg_down(pair, side);
            }
        }
    }

    /// Sends `m` (which arrived from `upstream`) on along leg `side`.
    fn forward(&self, pair: u64, side: Side, upstream: &MsrpConn, m: &MsrpMessage) {
        let leg = self.with_leg(pair, side, |l| {
            (l.conn.clone(), l.remote.clone(), l.local_id.clone())
        });
        let Some((Some(conn), Some(remote), local)) = leg else {
            if m.method.as_deref() == Some("SEND") {
                let _ = upstream.send(&m.response_to(481, "Session Does Not Exist"));
            }
            return;
        };
        let mut out = m.clone();
        out.transaction_id = crate::im::rcs::new_id()[..16].to_string();
        out.set_header("To-Path", remote);
        out.set_header("From-Path", self.uri_of(&local));
        let expects_answer = session::expects_response(&out);
        if expects_answer {
            if let Ok(mut st) = self.inner.st.lock() {
                st.txs.start(
                    Instant::now(),
                    &out.transaction_id,
                    Tx::Relay {
                        upstream: upstream.clone(),
                        request: Box::new(m.clone()),
                        pair,
                        onward: side,
                    },
                );
            }
        }
        if conn.send(&out).is_err() && expects_answer {
            if let Ok(mut st) = self.inner.st.lock() {
                st.txs.cancel(&out.transaction_id);
            }
            let _ = upstream.send(&m.response_to(481, "Session Does Not Exist"));
        }
    }

    fn on_response(&self, r: MsrpMessage) {
        let tx = self
            .inner
            .st
            .lock()
            .ok()
            .and_then(|mut st| st.txs.on_response(&r.transaction_id));
        match tx {
            Some(Tx::Relay {
                upstream,
                request,
                pair,
                onward,
                ..
            }) => {
                if r.status != 200 {
                    if let Some(kept) = self.keep_after_failure(pair, onward, &request) {
                        let failed = request.response_to(r.status, &r.comment);
                        answer_when_kept(kept, upstream, request.response_to(200, "OK"), failed);
                        return;
                    }
                }
                if session::passes_upstream(&request, r.status) {
                    let _ = upstream.send(&request.response_to(r.status, &r.comment));
                }
            }
            Some(Tx::Local { waiter, .. }) => finish_local(&waiter, r.status),
            None => {}
        }
    }

    /// Store and forward (T-IM) when the onward leg turns out dead only on relaying (the far
    /// relay forgot the session, 481, or never answered, 408): a whole single-chunk message
    /// (an IMDN, a short text) is kept like one whose leg was down, and the leg is marked
    /// down so later messages are kept at once. `None` when it cannot be kept here; else
    /// the keeper's durability future.
    fn keep_after_failure(&self, pair: u64, onward: Side, m: &MsrpMessage) -> Option<KeepFuture> {
        if self.inner.unbound != Unbound::Store || m.method.as_deref() != Some("SEND") {
            return None;
        }
        let whole = m.continuation == crate::msrp::Continuation::End
            && m.byte_range()
                .is_some_and(|b| b.start == 1 && b.end.is_some() && b.end == b.total);
        let keeper = self.inner.keeper.get()?;
        if !whole {
            return None;
        }
        let ct = m
            .header("Content-Type")
            .unwrap_or("message/cpim")
            .to_string();
        let kept = keeper(pair, onward.other(), &ct, &m.body);
        self.leg_down(pair, onward);
        Some(kept)
    }
}

/// Sends `ok` upstream once `kept` says the message is durably stored, else `failed`.
fn answer_when_kept(kept: KeepFuture, upstream: MsrpConn, ok: MsrpMessage, failed: MsrpMessage) {
    tokio::spawn(async move {
        let r = if kept.await { ok } else { failed };
        let _ = upstream.send(&r);
    });
}

fn finish_local(waiter: &Arc<Mutex<LocalSend>>, status: u16) {
    if let Ok(mut w) = waiter.lock() {
        if status != 200 {
            if let Some(d) = w.done.take() {
                let _ = d.send(status);
            }
            return;
        }
        w.left = w.left.saturating_sub(1);
        if w.left == 0 {
            if let Some(d) = w.done.take() {
                let _ = d.send(200);
            }
        }
    }
}
