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
//! [`PeerFsm`] is the socket-free core (time passed in, work out through
//! [`PeerFsm::poll_action`] and [`PeerFsm::poll_timeout`]); [`DiameterClient`] is its tokio
//! driver, which owns the sockets and a [`Peer`] per connection. Every connection gets the same
//! [`DiameterHandler`], so requests the peer sends (RTR, PPR) are served over each new one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::diameter::codec::*;
use crate::diameter::peer::{open_tcp, DiameterHandler, LocalPeer, Peer};
use crate::trace::Trace;

/// RFC 6733 §5.6 states of the initiator (the responder states are `serve`'s business).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// No connection; a reconnect is scheduled (Tc) unless stopped.
    Closed,
    /// TCP connect in progress.
    WaitConnAck,
    /// CER sent, waiting for the CEA.
    WaitICea,
    /// Open: requests flow.
    IOpen,
    /// DPR sent, waiting for the DPA.
    Closing,
}

/// What happened (RFC 6733 §5.6 event names in the comments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// Start: begin connecting.
    Start,
    /// I-Rcv-Conn-Ack: the TCP connection is up.
    ConnAck,
    /// I-Rcv-Conn-Nack: the TCP connection failed.
    ConnNack(String),
    /// I-Rcv-CEA with DIAMETER_SUCCESS.
    RcvCea,
    /// I-Rcv-CEA with an error, I-Rcv-Non-CEA, or the connection failed before the CEA.
    RcvBadCea(String),
    /// A DWA came back (RFC 3539: the peer is alive).
    RcvDwa,
    /// I-Peer-Disc: the connection closed under us.
    PeerDisc(String),
    /// A request found the peer down: reconnect now rather than at Tc expiry, unless an
    /// attempt started less than Tc_min ago.
    Kick,
    /// Stop: leave (DPR when open) and do not reconnect.
    Stop,
    /// I-Rcv-DPA.
    RcvDpa,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAction {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send CER on the new connection and wait for the CEA.
    SendCer,
    /// Send a DWR.
    SendDwr,
    /// Send DPR (Disconnect-Cause REBOOTING).
    SendDpr,
    /// Drop the connection or the attempt in progress.
    Disconnect,
    /// The peer is open: requests may flow.
    Up,
    /// RFC 3539 SUSPECT: a DWR went unanswered for Tw.
    Suspect,
    /// The peer is down (or an attempt failed); `retry_in` is Tc, `None` once stopped.
    Down {
        /// Why.
        why: String,
        /// When the next attempt starts.
        retry_in: Option<Duration>,
        /// True when this ends an open connection (not one more failed attempt).
        was_open: bool,
    },
}

/// The timers of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// RFC 6733 §5.6 Tc: the next connection attempt.
    Tc = 0,
    /// RFC 3539 Tw: the watchdog.
    Tw = 1,
    /// How long a connect, a CEA or a DPA may take.
    Ts = 2,
}

/// Timer values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTimers {
    /// RFC 3539 Tw (30 s in the RFC).
    pub tw: Duration,
    /// The first reconnect delay; it doubles on each failed attempt...
    pub tc_min: Duration,
    /// ...up to Tc (30 s in RFC 6733; a lab wants it shorter).
    pub tc_max: Duration,
    /// Allowed for the TCP connect, for the CEA and for the DPA.
    pub ts: Duration,
}

impl Default for PeerTimers {
    fn default() -> Self {
        PeerTimers {
            tw: Duration::from_secs(30),
            tc_min: Duration::from_millis(500),
            tc_max: Duration::from_secs(10),
            ts: Duration::from_secs(2),
        }
    }
}

/// The socket-free initiator state machine.
#[derive(Debug)]
pub struct PeerFsm {
    state: PeerState,
    cfg: PeerTimers,
    timers: [Option<Instant>; 3],
    backoff: Duration,
    /// RFC 3539 `pending`: a DWR is unanswered.
    dwr_pending: bool,
    /// RFC 3539 SUSPECT.
    suspect: bool,
    stopped: bool,
    last_attempt: Option<Instant>,
    actions: VecDeque<PeerAction>,
}

impl PeerFsm {
    /// A machine in Closed, waiting for [`PeerEvent::Start`].
    pub fn new(cfg: PeerTimers) -> PeerFsm {
        PeerFsm {
            state: PeerState::Closed,
            cfg,
            timers: [None; 3],
            backoff: cfg.tc_min,
            dwr_pending: false,
            suspect: false,
            stopped: false,
            last_attempt: None,
            actions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// True once stopped and closed: the driver may end.
    pub fn is_finished(&self) -> bool {
        self.stopped && self.state == PeerState::Closed
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<PeerAction> {
        self.actions.pop_front()
    }

    /// When [`PeerFsm::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.timers[t as usize] {
            Some(at) if at <= now => {
                self.timers[t as usize] = None;
                true
            }
            _ => false,
        }
    }

    /// Feeds one event.
    pub fn handle(&mut self, now: Instant, ev: PeerEvent) {
        use PeerState::*;
        match (self.state, ev) {
            (Closed, PeerEvent::Start) if !self.stopped => self.attempt(now),
            (Closed, PeerEvent::Kick) if !self.stopped => {
                let recent = self
                    .last_attempt
                    .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.tc_min);
                if !recent {
                    self.attempt(now);
                }
            }
            (WaitConnAck, PeerEvent::ConnAck) => {
                self.state = WaitICea;
                self.set(Timer::Ts, Some(now + self.cfg.ts));
                self.actions.push_back(PeerAction::SendCer);
            }
            (WaitConnAck, PeerEvent::ConnNack(why)) => self.fail(now, why),
            (WaitICea, PeerEvent::RcvCea) => {
                self.state = IOpen;
                self.backoff = self.cfg.tc_min;
                self.dwr_pending = false;
                self.suspect = false;
                self.set(Timer::Ts, None);
                self.set(Timer::Tw, Some(now + self.cfg.tw));
                self.actions.push_back(PeerAction::Up);
            }
            (WaitICea, PeerEvent::RcvBadCea(why) | PeerEvent::PeerDisc(why)) => self.fail(now, why),
            (IOpen, PeerEvent::RcvDwa) => {
                // RFC 3539 §3.4.1: any answer sets the watchdog again and ends SUSPECT.
                self.dwr_pending = false;
                self.suspect = false;
                self.set(Timer::Tw, Some(now + self.cfg.tw));
            }
            (IOpen, PeerEvent::PeerDisc(why)) => self.fail(now, why),
            (IOpen, PeerEvent::Stop) => {
                self.stopped = true;
                self.state = Closing;
                self.set(Timer::Tw, None);
                self.set(Timer::Ts, Some(now + self.cfg.ts));
                self.actions.push_back(PeerAction::SendDpr);
            }
            (Closing, PeerEvent::RcvDpa | PeerEvent::PeerDisc(_)) => self.closed_for_good(),
            (WaitConnAck | WaitICea, PeerEvent::Stop) => {
                self.stopped = true;
                self.actions.push_back(PeerAction::Disconnect);
                self.closed_for_good();
            }
            (Closed, PeerEvent::Stop) => {
                self.stopped = true;
                self.closed_for_good();
            }
            // Anything else (a late DWA, a kick while connecting...) changes nothing.
            _ => {}
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        use PeerState::*;
        if self.expired(Timer::Tc, now) && self.state == Closed && !self.stopped {
            self.attempt(now);
        }
        if self.expired(Timer::Ts, now) {
            match self.state {
                WaitConnAck => self.fail(now, "no TCP connection in time".into()),
                WaitICea => self.fail(now, "no CEA in time".into()),
                Closing => {
                    self.actions.push_back(PeerAction::Disconnect);
                    self.closed_for_good();
                }
                _ => {}
            }
        }
        if self.expired(Timer::Tw, now) && self.state == IOpen {
            // RFC 3539 §3.4.1: OKAY sends a DWR; a DWR still pending at the next Tw makes the
            // peer SUSPECT; SUSPECT at the next Tw is DOWN (the connection is closed).
            if self.suspect {
                let secs = (self.cfg.tw * 2).as_secs_f32();
                return self.fail(now, format!("no DWA for {secs:.1} s (RFC 3539 watchdog)"));
            }
            if self.dwr_pending {
                self.suspect = true;
                self.actions.push_back(PeerAction::Suspect);
            } else {
                self.dwr_pending = true;
                self.actions.push_back(PeerAction::SendDwr);
            }
            self.set(Timer::Tw, Some(now + self.cfg.tw));
        }
    }

    fn attempt(&mut self, now: Instant) {
        self.state = PeerState::WaitConnAck;
        self.last_attempt = Some(now);
        self.set(Timer::Tc, None);
        self.set(Timer::Ts, Some(now + self.cfg.ts));
        self.actions.push_back(PeerAction::Connect);
    }

    fn fail(&mut self, now: Instant, why: String) {
        let was_open = self.state == PeerState::IOpen;
        self.state = PeerState::Closed;
        self.set(Timer::Ts, None);
        self.set(Timer::Tw, None);
        self.actions.push_back(PeerAction::Disconnect);
        let retry_in = (!self.stopped).then_some(self.backoff);
        self.set(Timer::Tc, retry_in.map(|d| now + d));
        self.backoff = (self.backoff * 2).min(self.cfg.tc_max);
        self.actions.push_back(PeerAction::Down {
            why,
            retry_in,
            was_open,
        });
    }

    fn closed_for_good(&mut self) {
        self.state = PeerState::Closed;
        self.timers = [None; 3];
    }
}

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
            fsm: PeerFsm::new(opts.timers),
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
            m.count(command, answer.as_ref());
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
}

impl Driver {
    async fn run(
        mut self,
        mut ev_rx: mpsc::Receiver<(u64, Internal)>,
        mut kick_rx: mpsc::Receiver<oneshot::Sender<bool>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.fsm.handle(Instant::now(), PeerEvent::Start);
        let mut stopping = false;
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
                } => self.fsm.handle_timeout(Instant::now()),
                Some((gen, ev)) = ev_rx.recv() => {
                    if gen == self.gen {
                        self.on_internal(ev);
                    }
                }
                Some(reply) = kick_rx.recv() => {
                    let before = self.fsm.state();
                    self.fsm.handle(Instant::now(), PeerEvent::Kick);
                    let started = before == PeerState::Closed && self.fsm.state() == PeerState::WaitConnAck;
                    let _ = reply.send(started);
                }
                _ = async {
                    match &peer {
                        Some(p) => p.closed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.peer = None;
                    self.fsm.handle(Instant::now(), PeerEvent::PeerDisc("connection closed".into()));
                }
                r = shutdown.wait_for(|v| *v), if !stopping => {
                    let _ = r;
                    stopping = true;
                    self.fsm.handle(Instant::now(), PeerEvent::Stop);
                }
            }
        }
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
                self.fsm.handle(now, PeerEvent::ConnAck);
            }
            Internal::ConnFailed(why) => self.fsm.handle(now, PeerEvent::ConnNack(why)),
            Internal::Opened(p) => {
                self.peer = Some(p);
                self.fsm.handle(now, PeerEvent::RcvCea);
            }
            Internal::HandshakeFailed(why) => self.fsm.handle(now, PeerEvent::RcvBadCea(why)),
            Internal::Dwa => self.fsm.handle(now, PeerEvent::RcvDwa),
            Internal::Dpa => self.fsm.handle(now, PeerEvent::RcvDpa),
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
                    return self
                        .fsm
                        .handle(Instant::now(), PeerEvent::RcvBadCea("no connection".into()));
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
                if was_open || !self.warned {
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
