//! A Diameter client's link to one peer (the CSCFs' link to the HSS), kept up by the
//! initiator side of the RFC 6733 §5.6 peer state machine with the RFC 3539 §3.4 watchdog:
//! connect, CER/CEA, DWR/DWA while open, and a reconnect with back-off (the Tc timer) whenever
//! the connection fails, the peer closes it or the watchdog gives up on it. Requests fail fast
//! with [`DiameterError::PeerDown`] while the peer is away, so a CSCF answers its SIP request
//! at once instead of hanging.
//!
//! ```text
//!            Start, Tc expiry (or a request while Closed, at most once per Tc_min)
//!   Closed ──────────────────> Wait-Conn-Ack ──conn ack──> Wait-I-CEA ──CEA 2001──> I-Open
//!    ^ ^                         │ conn nack, Ts expiry      │ bad CEA, Ts expiry     │  │
//!    │ └───── Disconnect, Tc ────┴───────────────────────────┴─────── peer disc ─────┘  │
//!    │        (back-off doubles: Tc_min .. Tc_max)              Tw, Tw again w/o DWA ───┘
//!    └──── DPA, Ts expiry, peer disc ──── Closing <──── Stop (DPR) ──── I-Open
//! ```
//!
//! [`PeerFsm`] (`peer_fsm.rs`) is the socket-free core (time passed in, work out through
//! [`PeerFsm::poll_action`] and [`PeerFsm::poll_timeout`]); [`DiameterClient`] is its tokio
//! driver, which owns the sockets and a [`Peer`] per connection. Every connection gets the same
//! [`DiameterHandler`], so requests the peer sends (RTR, PPR) are served over each new one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::diameter::codec::*;
use crate::diameter::peer::{open_tcp, DiameterHandler, LocalPeer, Peer};
use crate::diameter::peer_fsm::DisconnectCause;
pub use crate::diameter::peer_fsm::{PeerAction, PeerEvent, PeerFsm, PeerState, PeerTimers};
use crate::trace::Trace;

/// How a [`DiameterClient`] reaches its peer.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The peer's name for logs and errors (its Origin-Host as configured).
    pub peer_name: String,
    /// Our identity; its `request_timeout` bounds each request.
    pub local: LocalPeer,
    /// State machine timers.
    pub timers: PeerTimers,
    /// Told each connection's local address (the lab names it after its node in ladders;
    /// not a trace alias, so an export keeps the connection's own port and tshark decodes it
    /// as Diameter).
    pub on_connect: Option<OnConnect>,
}

/// A callback with the local address of each new connection.
#[derive(Clone)]
pub struct OnConnect(pub Arc<dyn Fn(SocketAddr) + Send + Sync>);

impl std::fmt::Debug for OnConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnConnect")
    }
}

#[derive(Clone)]
struct Link {
    state: PeerState,
    peer: Option<Peer>,
    why: String,
}

struct Shared {
    name: String,
    addr: SocketAddr,
    /// Counts the requests sent ([`DiameterClient::set_metrics`]).
    metrics: std::sync::OnceLock<crate::metrics::DiameterSent>,
    link: watch::Sender<Link>,
    kick: mpsc::Sender<oneshot::Sender<bool>>,
    /// How long a request waits for a connection attempt in progress.
    connect_wait: Duration,
}

/// A self-healing connection to one Diameter peer. Cheap to clone.
#[derive(Clone)]
pub struct DiameterClient {
    shared: Arc<Shared>,
}

enum Internal {
    Connected(TcpStream),
    ConnFailed(String),
    Opened(Peer),
    HandshakeFailed(String),
    Dwa,
    Dpa,
}

impl DiameterClient {
    /// Starts the driver: it connects at once and keeps reconnecting until `shutdown`.
    pub fn start(
        opts: ClientOptions,
        handler: Arc<dyn DiameterHandler>,
        trace: Trace,
        shutdown: watch::Receiver<bool>,
    ) -> DiameterClient {
        let name = format!("{} ({})", opts.peer_name, opts.addr);
        let (link, _) = watch::channel(Link {
            state: PeerState::Closed,
            peer: None,
            why: "not connected yet".into(),
        });
        let (kick, kick_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            name,
            addr: opts.addr,
            metrics: std::sync::OnceLock::new(),
            link,
            kick,
            connect_wait: opts.timers.ts,
        });
        let (ev_tx, ev_rx) = mpsc::channel(16);
        let driver = Driver {
            fsm: PeerFsm::new(opts.timers).with_tw_jitter(rand::random()),
            shared: shared.clone(),
            opts,
            handler,
            trace,
            peer: None,
            stream: None,
            attempt: None,
            gen: 0,
            ev_tx,
            warned: false,
            stopping: false,
            traffic_seen: None,
        };
        tokio::spawn(driver.run(ev_rx, kick_rx, shutdown));
        DiameterClient { shared }
    }

    /// The peer's name and address, as logs and errors give it.
    pub fn peer_name(&self) -> &str {
        &self.shared.name
    }

    /// The current RFC 6733 §5.6 state.
    pub fn state(&self) -> PeerState {
        self.shared.link.borrow().state
    }

    /// Our socket address on the open connection.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared
            .link
            .borrow()
            .peer
            .as_ref()
            .map(|p| p.local_addr())
    }

    /// The peer's address (where it connects to).
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The open connection's peer (its Origin-Host from the CEA) and our requests waiting
    /// for answers on it; `None` while the link is down.
    pub fn open_peer_info(&self) -> Option<(String, usize)> {
        let link = self.shared.link.borrow();
        let p = link.peer.as_ref().filter(|p| p.is_open())?;
        Some((p.remote().origin_host.clone(), p.pending_requests()))
    }

    /// Waits up to `timeout` for the link to be open.
    pub async fn wait_open(&self, timeout: Duration) -> Result<(), DiameterError> {
        let mut rx = self.shared.link.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|l| l.state == PeerState::IOpen)).await;
        match r {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.down()),
        }
    }

    fn down(&self) -> DiameterError {
        DiameterError::PeerDown {
            peer: self.shared.name.clone(),
            why: self.shared.link.borrow().why.clone(),
        }
    }

    /// Sends a request over the open connection and waits for its answer. While the peer is
    /// down this fails at once with [`DiameterError::PeerDown`] (after waiting at most Ts for
    /// a connection attempt already under way, or one this request starts).
    pub async fn request(&self, msg: Message) -> Result<Message, DiameterError> {
        let command = msg.command_code;
        let answer = match self.open_peer().await {
            Ok(peer) => peer.request(msg).await,
            Err(e) => Err(e),
        };
        if let Some(m) = self.shared.metrics.get() {
            let (result, error) = match &answer {
                Ok(a) => (a.result_code().unwrap_or(0), ""),
                Err(DiameterError::Timeout) => (0, "timeout"),
                Err(DiameterError::PeerDown { .. }) => (0, "down"),
                Err(DiameterError::Closed) => (0, "closed"),
                Err(DiameterError::Busy) => (0, "busy"),
                Err(_) => (0, "error"),
            };
            m.count(command, result, error);
        }
        answer
    }

    /// Counts every request sent from now on (`/metrics`); the first call wins.
    pub fn set_metrics(&self, counter: crate::metrics::DiameterSent) {
        let _ = self.shared.metrics.set(counter);
    }

    async fn open_peer(&self) -> Result<Peer, DiameterError> {
        let mut rx = self.shared.link.subscribe();
        let deadline = tokio::time::Instant::now() + self.shared.connect_wait;
        let mut kicked = false;
        loop {
            let state = {
                let l = rx.borrow_and_update();
                match (&l.state, &l.peer) {
                    (PeerState::IOpen, Some(p)) if p.is_open() => return Ok(p.clone()),
                    (s, _) => *s,
                }
            };
            match state {
                PeerState::Closing => return Err(self.down()),
                PeerState::Closed if kicked => return Err(self.down()),
                PeerState::Closed => {
                    kicked = true;
                    let (tx, started) = oneshot::channel();
                    if self.shared.kick.try_send(tx).is_err() || started.await != Ok(true) {
                        return Err(self.down());
                    }
                }
                // Connecting, or open on a connection that just closed (the driver will say).
                _ => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(self.down()),
            }
        }
    }
}

struct Driver {
    fsm: PeerFsm,
    shared: Arc<Shared>,
    opts: ClientOptions,
    handler: Arc<dyn DiameterHandler>,
    trace: Trace,
    peer: Option<Peer>,
    stream: Option<TcpStream>,
    attempt: Option<JoinHandle<()>>,
    gen: u64,
    ev_tx: mpsc::Sender<(u64, Internal)>,
    /// A failure was logged at WARN since the link was last open (later ones go to INFO).
    warned: bool,
    /// The lab is shutting down: a peer going away is expected, not worth a warning.
    stopping: bool,
    /// The last arrival already reported to the core as [`PeerEvent::RcvAny`].
    traffic_seen: Option<Instant>,
}

impl Driver {
    async fn run(
        mut self,
        mut ev_rx: mpsc::Receiver<(u64, Internal)>,
        mut kick_rx: mpsc::Receiver<oneshot::Sender<bool>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.feed(Instant::now(), PeerEvent::Start);
        let mut stopping = false;
        let shutting_down = shutdown.clone();
        loop {
            while let Some(a) = self.fsm.poll_action() {
                self.perform(a);
            }
            self.publish();
            if self.fsm.is_finished() {
                return;
            }
            let deadline = self.fsm.poll_timeout().map(tokio::time::Instant::from_std);
            let peer = self.peer.clone();
            tokio::select! {
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.report_traffic();
                    self.fsm.handle_timeout(Instant::now());
                }
                Some((gen, ev)) = ev_rx.recv() => {
                    if gen == self.gen {
                        self.on_internal(ev);
                    }
                }
                Some(reply) = kick_rx.recv() => {
                    let before = self.fsm.state();
                    self.feed(Instant::now(), PeerEvent::Kick);
                    let started = before == PeerState::Closed && self.fsm.state() == PeerState::WaitConnAck;
                    let _ = reply.send(started);
                }
                _ = async {
                    match &peer {
                        Some(p) => p.closed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    // The HSS of a lab that shuts down may close first.
                    self.stopping |= *shutting_down.borrow();
                    let ev = match self.peer.take().and_then(|p| p.disconnect_cause()) {
                        Some(c) => PeerEvent::RcvDpr(DisconnectCause::from_u32(c)),
                        None => PeerEvent::PeerDisc("connection closed".into()),
                    };
                    self.feed(now, ev);
                }
                r = shutdown.wait_for(|v| *v), if !stopping => {
                    let _ = r;
                    stopping = true;
                    self.feed(Instant::now(), PeerEvent::Stop);
                }
            }
        }
    }

    /// Feeds the core one event; one that means nothing in the current state (a late answer
    /// from a dropped attempt) is logged and changes nothing.
    fn feed(&mut self, now: Instant, ev: PeerEvent) {
        let what = format!("{ev:?}");
        if let crate::diameter::peer_fsm::Handled::Ignored(why) = self.fsm.handle(now, ev) {
            tracing::debug!(peer = %self.shared.name, event = %what, %why, "Diameter peer event ignored");
        }
    }

    /// RFC 3539 §3.4.1: any message received sets the watchdog again. The connection notes
    /// when it last received one; the core hears of it (at that instant) before its timers run.
    fn report_traffic(&mut self) {
        let Some(at) = self.peer.as_ref().and_then(|p| p.last_received()) else {
            return;
        };
        if self.traffic_seen.is_some_and(|t| t >= at) {
            return;
        }
        self.traffic_seen = Some(at);
        self.feed(at, PeerEvent::RcvAny);
    }

    fn publish(&self) {
        let state = self.fsm.state();
        let peer = if state == PeerState::IOpen {
            self.peer.clone()
        } else {
            None
        };
        self.shared.link.send_modify(|l| {
            l.state = state;
            l.peer = peer;
        });
    }

    fn on_internal(&mut self, ev: Internal) {
        let now = Instant::now();
        match ev {
            Internal::Connected(s) => {
                if let (Some(f), Ok(local)) = (&self.opts.on_connect, s.local_addr()) {
                    (f.0)(local);
                }
                self.stream = Some(s);
                self.feed(now, PeerEvent::ConnAck);
            }
            Internal::ConnFailed(why) => self.feed(now, PeerEvent::ConnNack(why)),
            Internal::Opened(p) => {
                self.peer = Some(p);
                self.traffic_seen = None;
                self.feed(now, PeerEvent::RcvCea);
            }
            Internal::HandshakeFailed(why) => self.feed(now, PeerEvent::RcvBadCea(why)),
            Internal::Dwa => self.feed(now, PeerEvent::RcvDwa),
            Internal::Dpa => self.feed(now, PeerEvent::RcvDpa),
        }
    }

    fn spawn(&mut self, work: impl std::future::Future<Output = Internal> + Send + 'static) {
        let (tx, gen) = (self.ev_tx.clone(), self.gen);
        self.attempt = Some(tokio::spawn(async move {
            let ev = work.await;
            let _ = tx.send((gen, ev)).await;
        }));
    }

    fn perform(&mut self, a: PeerAction) {
        let name = &self.shared.name;
        match a {
            PeerAction::Connect => {
                self.gen += 1;
                let (addr, ts) = (self.opts.addr, self.opts.timers.ts);
                self.spawn(async move {
                    match open_tcp(addr, ts).await {
                        Ok(s) => Internal::Connected(s),
                        Err(e) => Internal::ConnFailed(e.to_string()),
                    }
                });
            }
            PeerAction::SendCer => {
                let Some(stream) = self.stream.take() else {
                    return self.feed(Instant::now(), PeerEvent::RcvBadCea("no connection".into()));
                };
                let (addr, local, handler, trace) = (
                    self.opts.addr,
                    self.opts.local.clone(),
                    self.handler.clone(),
                    self.trace.clone(),
                );
                self.spawn(async move {
                    match Peer::handshake(stream, addr, local, handler, trace, false).await {
                        Ok(p) => Internal::Opened(p),
                        Err(e) => Internal::HandshakeFailed(e.to_string()),
                    }
                });
            }
            PeerAction::SendDwr | PeerAction::SendDpr => {
                let Some(peer) = self.peer.clone() else {
                    return;
                };
                let dwr = matches!(a, PeerAction::SendDwr);
                let (tx, gen) = (self.ev_tx.clone(), self.gen);
                tokio::spawn(async move {
                    let m = if dwr {
                        let mut m = Message::request(CMD_DEVICE_WATCHDOG, 0);
                        m.push(Avp::u32(
                            AVP_ORIGIN_STATE_ID,
                            None,
                            true,
                            std::process::id(),
                        ));
                        m
                    } else {
                        let mut m = Message::request(CMD_DISCONNECT_PEER, 0);
                        m.push(Avp::u32(AVP_DISCONNECT_CAUSE, None, true, 0));
                        m
                    };
                    let mut m = m;
                    m.flags = CMD_FLAG_REQUEST;
                    if peer.request(m).await.is_ok() {
                        let ev = if dwr { Internal::Dwa } else { Internal::Dpa };
                        let _ = tx.send((gen, ev)).await;
                    }
                });
            }
            PeerAction::Disconnect => {
                if let Some(t) = self.attempt.take() {
                    t.abort();
                }
                self.stream = None;
                if let Some(p) = self.peer.take() {
                    p.close();
                }
            }
            PeerAction::Up => {
                let (conn, local) = self
                    .peer
                    .as_ref()
                    .map(|p| (p.remote().conn.to_string(), p.local_addr().to_string()))
                    .unwrap_or_default();
                tracing::info!(peer = %name, %conn, %local, "Diameter peer open (CER/CEA done)");
                self.warned = false;
                self.shared.link.send_modify(|l| l.why.clear());
            }
            PeerAction::Suspect => {
                tracing::warn!(peer = %name, "Diameter peer suspect: no DWA within Tw");
            }
            PeerAction::Down {
                why,
                retry_in,
                was_open,
            } => {
                let retry_ms = retry_in.map(|d| d.as_millis() as u64);
                if self.stopping {
                    tracing::debug!(peer = %name, %why, "Diameter peer down while shutting down");
                } else if was_open || !self.warned {
                    self.warned = true;
                    tracing::warn!(peer = %name, %why, ?retry_ms, "Diameter peer down: requests to it fail until it is back");
                } else {
                    tracing::info!(peer = %name, %why, ?retry_ms, "Diameter peer still unreachable");
                }
                self.shared.link.send_modify(|l| l.why = why);
            }
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
