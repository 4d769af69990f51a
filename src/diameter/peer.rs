//! Diameter peer connections over TCP (RFC 6733 §5): capabilities exchange (CER/CEA,
//! advertising Cx), device watchdog (DWR/DWA), disconnect (DPR/DPA), and requests matched to
//! answers by Hop-by-Hop Identifier. Both ends of a connection are the same [`Peer`] type, so
//! the HSS can send requests (RTR, PPR) over a connection an S-CSCF opened. A server keeps its
//! open connections per connection in a [`PeerTable`] (`peer_table.rs`). A `Peer` is one
//! connection and ends with it; a client that must reconnect (the CSCFs to the HSS) holds a
//! [`crate::diameter::client::DiameterClient`], which opens a new `Peer` each time.
//!
//! ```text
//!  client: connect --CER--> wait CEA(2001) --> Open <--DWR/DWA every watchdog_interval-->
//!  server: accept  <--CER-- check Cx --CEA--> Open          DPR -> DPA -> closed
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::diameter::capabilities::{cer_avps, offers_cx};
use crate::diameter::codec::*;
use crate::diameter::cx::APP_ID_CX;
use crate::diameter::peer_fsm::{CerCheck, Responder, ResponderAction};
use crate::diameter::peer_policy::PeerPolicy;
pub use crate::diameter::peer_table::{ConnId, PeerTable, MAX_PEERS};
use crate::diameter::watchdog::{Watchdog, WatchdogAction};
use crate::trace::{Direction, Protocol, Trace};

/// Our side's identity.
#[derive(Clone, Debug)]
pub struct LocalPeer {
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Host-IP-Address.
    pub host_ip: IpAddr,
    /// Product-Name.
    pub product_name: String,
    /// DWR interval (RFC 3539 Tw).
    pub watchdog_interval: Duration,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
}

/// Who is at the other end.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its Origin-Host from CER/CEA.
    pub origin_host: String,
    /// Its Origin-Realm.
    pub origin_realm: String,
    /// Its socket address.
    pub addr: SocketAddr,
    /// The connection this peer is on.
    pub conn: ConnId,
}

/// A boxed future, for handler results.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers application requests (everything but CER/DWR/DPR).
pub trait DiameterHandler: Send + Sync + 'static {
    /// Produces the answer to `request` from `from`.
    fn handle(&self, from: PeerInfo, request: Message) -> BoxFuture<'static, Message>;
}

/// Messages queued for writing on one connection; past it a request fails with
/// [`DiameterError::Busy`] (an answer that cannot be queued is dropped, as on a lost link).
const OUT_QUEUE: usize = 4096;
/// Our requests awaiting an answer on one connection.
const MAX_PENDING: usize = 4096;
/// The peer's requests being answered at once on one connection.
const MAX_SERVING: usize = 1024;
/// Queued messages are written together up to about this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

struct Inner {
    info: PeerInfo,
    local: LocalPeer,
    local_addr: SocketAddr,
    out: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
    /// Requests from the peer being answered now (at most [`MAX_SERVING`]).
    serving: Arc<tokio::sync::Semaphore>,
    next_id: AtomicU32,
    /// True while open; set to false once, which ends the reader and writer tasks (and so
    /// closes the socket).
    open: watch::Sender<bool>,
    trace: Trace,
    /// When the last message arrived (RFC 3539: any message sets the watchdog again).
    last_rx: Mutex<Option<std::time::Instant>>,
    /// The Disconnect-Cause of the DPR the peer sent, once it has.
    dpr_cause: Mutex<Option<u32>>,
}

/// One open Diameter connection. Cheap to clone.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

fn io_err(e: std::io::Error) -> DiameterError {
    DiameterError::Io(e.to_string())
}

/// Reads one whole message from `rd` (bytes beyond it stay in `buf`).
async fn read_message(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<(Message, Vec<u8>), DiameterError> {
    loop {
        if let Some(n) = frame(buf)? {
            let raw = buf.split_to(n).to_vec();
            let m = Message::decode(&raw)?;
            return Ok((m, raw));
        }
        let n = rd.read_buf(buf).await.map_err(io_err)?;
        if n == 0 {
            return Err(DiameterError::Closed);
        }
    }
}

/// A TCP connection to `addr` within `timeout` (a dead address must not hold the caller).
pub(crate) async fn open_tcp(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, DiameterError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r.map_err(io_err),
        Err(_) => Err(DiameterError::Io(format!(
            "no TCP connection to {addr} within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl Peer {
    /// Connects (within `local.request_timeout`), exchanges capabilities (we offer Cx) and
    /// starts the connection's tasks, watchdog included. A connection that must come back
    /// after a failure is a [`crate::diameter::client::DiameterClient`] instead.
    pub async fn connect(
        addr: SocketAddr,
        local: LocalPeer,
        handler: Arc<dyn DiameterHandler>,
        trace: Trace,
    ) -> Result<Peer, DiameterError> {
        let stream = open_tcp(addr, local.request_timeout).await?;
        Peer::handshake(stream, addr, local, handler, trace, true).await
    }

    /// The initiator's capabilities exchange on a connected `stream` (RFC 6733 §5.3): CER,
    /// then a CEA with 2001 within `local.request_timeout`; then the connection's tasks start
    /// (with our own DWR timer when `watchdog`, otherwise the caller sends DWRs).
    pub(crate) async fn handshake(
        stream: TcpStream,
        addr: SocketAddr,
        local: LocalPeer,
        handler: Arc<dyn DiameterHandler>,
        trace: Trace,
        watchdog: bool,
    ) -> Result<Peer, DiameterError> {
        stream.set_nodelay(true).map_err(io_err)?;
        let local_addr = stream.local_addr().map_err(io_err)?;
        let (mut rd, mut wr) = stream.into_split();
        let mut cer = Message::request(CMD_CAPABILITIES_EXCHANGE, 0);
        cer.flags = CMD_FLAG_REQUEST;
        cer.hop_by_hop = rand::random();
        cer.end_to_end = rand::random();
        cer_avps(&local, &mut cer);
        let bytes = cer.encode();
        trace.record(
            Direction::Sent,
            Protocol::Diameter,
            local_addr,
            addr,
            &bytes,
            || "CER".into(),
        );
        wr.write_all(&bytes).await.map_err(io_err)?;
        let mut buf = BytesMut::with_capacity(4096);
        let (cea, raw) =
            tokio::time::timeout(local.request_timeout, read_message(&mut rd, &mut buf))
                .await
                .map_err(|_| DiameterError::Timeout)??;
        trace.record(
            Direction::Received,
            Protocol::Diameter,
            local_addr,
            addr,
            &raw,
            || cea.command_name(),
        );
        if cea.command_code != CMD_CAPABILITIES_EXCHANGE || cea.is_request() {
            return Err(DiameterError::Handshake("first answer is not a CEA".into()));
        }
        if cea.result_code() != Some(DIAMETER_SUCCESS) {
            return Err(DiameterError::Handshake(format!(
                "CEA Result-Code {:?}",
                cea.result_code()
            )));
        }
        let info = PeerInfo {
            origin_host: cea.origin_host().unwrap_or("").to_string(),
            origin_realm: cea.origin_realm().unwrap_or("").to_string(),
            addr,
            conn: ConnId::next(),
        };
        Ok(Peer::start(
            info, local, local_addr, rd, wr, buf, handler, trace, None, watchdog,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        info: PeerInfo,
        local: LocalPeer,
        local_addr: SocketAddr,
        rd: OwnedReadHalf,
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        buf: BytesMut,
        handler: Arc<dyn DiameterHandler>,
        trace: Trace,
        shutdown: Option<watch::Receiver<bool>>,
        watchdog: bool,
    ) -> Peer {
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        let (open, _) = watch::channel(true);
        let peer = Peer {
            inner: Arc::new(Inner {
                info,
                local,
                local_addr,
                out,
                pending: Mutex::new(HashMap::new()),
                serving: Arc::new(tokio::sync::Semaphore::new(MAX_SERVING)),
                next_id: AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff),
                open,
                trace,
                last_rx: Mutex::new(None),
                dpr_cause: Mutex::new(None),
            }),
        };
        let writer = peer.clone();
        tokio::spawn(async move {
            loop {
                let b = tokio::select! {
                    b = out_rx.recv() => b,
                    // Closed: what was queued before (a DPA) still goes out, then the FIN.
                    _ = writer.closed() => out_rx.try_recv().ok(),
                };
                let Some(mut b) = b else { break };
                // What queued up meanwhile goes out in the same write.
                while b.len() < WRITE_BATCH {
                    match out_rx.try_recv() {
                        Ok(more) => b.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if tokio::time::timeout(writer.inner.local.request_timeout, wr.write_all(&b))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    break;
                }
            }
            writer.close();
            let _ = wr.shutdown().await;
        });
        let reader = peer.clone();
        tokio::spawn(async move { reader.read_loop(rd, buf, handler, shutdown).await });
        if watchdog {
            let dog = peer.clone();
            tokio::spawn(async move { dog.watchdog().await });
        }
        peer
    }

    async fn read_loop(
        self,
        mut rd: OwnedReadHalf,
        mut buf: BytesMut,
        handler: Arc<dyn DiameterHandler>,
        mut shutdown: Option<watch::Receiver<bool>>,
    ) {
        let stopped = async {
            match shutdown.as_mut() {
                Some(s) => {
                    let _ = s.wait_for(|v| *v).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(stopped);
        // This connection is open (CEA 2001 sent or received): the responder core decides
        // what a CER or DPR on it gets (RFC 6733 §5.6 R-Open).
        let mut rfsm = Responder::open();
        loop {
            let r = tokio::select! {
                r = read_message(&mut rd, &mut buf) => r,
                _ = &mut stopped => break,
                _ = self.closed() => break,
            };
            let (msg, raw) = match r {
                Ok(v) => v,
                Err(DiameterError::Closed) => break,
                Err(e) => {
                    tracing::warn!(peer = %self.inner.info.origin_host, error = %e, "closing Diameter connection");
                    break;
                }
            };
            let i = &self.inner;
            i.trace.record(
                Direction::Received,
                Protocol::Diameter,
                i.local_addr,
                i.info.addr,
                &raw,
                || msg.command_name(),
            );
            if let Ok(mut t) = i.last_rx.lock() {
                *t = Some(std::time::Instant::now());
            }
            if !msg.is_request() {
                let waiter = i
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&msg.hop_by_hop));
                match waiter {
                    Some(w) => {
                        let _ = w.send(msg);
                    }
                    None => tracing::debug!(hbh = msg.hop_by_hop, "answer matches no request"),
                }
                continue;
            }
            match msg.command_code {
                CMD_DEVICE_WATCHDOG => {
                    let mut a = Message::answer_to(&msg);
                    a.push(Avp::u32(AVP_RESULT_CODE, None, true, DIAMETER_SUCCESS));
                    self.send_answer(a);
                }
                CMD_DISCONNECT_PEER => {
                    let cause = msg
                        .avp(AVP_DISCONNECT_CAUSE, None)
                        .and_then(|a| a.as_u32().ok())
                        .unwrap_or(0);
                    if let Ok(mut c) = i.dpr_cause.lock() {
                        *c = Some(cause);
                    }
                    if rfsm.on_dpr() == Some(ResponderAction::SendDpaAndClose) {
                        let mut a = Message::answer_to(&msg);
                        a.push(Avp::u32(AVP_RESULT_CODE, None, true, DIAMETER_SUCCESS));
                        self.send_answer(a);
                        break;
                    }
                }
                CMD_CAPABILITIES_EXCHANGE => {
                    let code = match rfsm.on_cer(CerCheck::default()) {
                        ResponderAction::Refuse(code) => code,
                        _ => DIAMETER_UNABLE_TO_COMPLY,
                    };
                    self.send_answer(Message::error_answer(
                        &msg,
                        code,
                        None,
                        Some("already open"),
                    ));
                }
                _ if msg.application_id != APP_ID_CX => {
                    self.send_answer(Message::error_answer(
                        &msg,
                        DIAMETER_APPLICATION_UNSUPPORTED,
                        None,
                        Some("only Cx is supported"),
                    ));
                }
                _ => {
                    // A bounded number answered at once; past it the peer hears TOO_BUSY at
                    // once (RFC 6733 §7.1.3) rather than its requests piling up here.
                    let Ok(permit) = i.serving.clone().try_acquire_owned() else {
                        crate::warn_limited!("diameter.busy", peer = %i.info.origin_host, "Diameter requests beyond {MAX_SERVING} in hand answered DIAMETER_TOO_BUSY");
                        self.send_answer(Message::error_answer(
                            &msg,
                            DIAMETER_TOO_BUSY,
                            None,
                            Some("too many requests in hand"),
                        ));
                        continue;
                    };
                    let me = self.clone();
                    let h = handler.clone();
                    tokio::spawn(async move {
                        let (hbh, e2e) = (msg.hop_by_hop, msg.end_to_end);
                        let mut a = h.handle(me.inner.info.clone(), msg).await;
                        drop(permit);
                        a.hop_by_hop = hbh;
                        a.end_to_end = e2e;
                        me.send_answer(a);
                    });
                }
            }
        }
        self.close();
    }

    /// Closes the connection: waiting requests fail at once with [`DiameterError::Closed`],
    /// the reader and writer stop and the socket is shut.
    pub fn close(&self) {
        self.inner.open.send_replace(false);
        if let Ok(mut p) = self.inner.pending.lock() {
            p.clear();
        }
    }

    /// Resolves once the connection is closed (by either side, or by [`Peer::close`]).
    pub async fn closed(&self) {
        let mut rx = self.inner.open.subscribe();
        let _ = rx.wait_for(|open| !*open).await;
    }

    fn with_origin(&self, mut m: Message) -> Message {
        let i = &self.inner;
        if m.avp(AVP_ORIGIN_HOST, None).is_none() {
            m.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, &i.local.origin_host));
        }
        if m.avp(AVP_ORIGIN_REALM, None).is_none() {
            m.push(Avp::utf8(
                AVP_ORIGIN_REALM,
                None,
                true,
                &i.local.origin_realm,
            ));
        }
        m
    }

    fn write(&self, m: &Message) -> Result<(), DiameterError> {
        let i = &self.inner;
        let bytes = m.encode();
        i.trace.record(
            Direction::Sent,
            Protocol::Diameter,
            i.local_addr,
            i.info.addr,
            &bytes,
            || m.command_name(),
        );
        i.out.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DiameterError::Busy,
            mpsc::error::TrySendError::Closed(_) => DiameterError::Closed,
        })
    }

    fn send_answer(&self, a: Message) {
        let a = self.with_origin(a);
        if let Err(e) = self.write(&a) {
            tracing::debug!(error = %e, "answer not sent");
        }
    }

    /// Sends a request and waits for its answer (matched by Hop-by-Hop Identifier).
    pub async fn request(&self, msg: Message) -> Result<Message, DiameterError> {
        if !self.is_open() {
            return Err(DiameterError::Closed);
        }
        let mut m = self.with_origin(msg);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        m.hop_by_hop = id;
        m.end_to_end = id ^ ((std::process::id() & 0xfff) << 20);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            if p.len() >= MAX_PENDING {
                return Err(DiameterError::Busy);
            }
            p.insert(id, tx);
        }
        if let Err(e) = self.write(&m) {
            if let Ok(mut p) = self.inner.pending.lock() {
                p.remove(&id);
            }
            return Err(e);
        }
        match tokio::time::timeout(self.inner.local.request_timeout, rx).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(_)) => Err(DiameterError::Closed),
            Err(_) => {
                if let Ok(mut p) = self.inner.pending.lock() {
                    p.remove(&id);
                }
                Err(DiameterError::Timeout)
            }
        }
    }

    /// RFC 3539 §3.4.1 on this connection, decided by the [`Watchdog`] core: a DWR after Tw
    /// without traffic, SUSPECT when it goes unanswered for Tw, and the connection closed
    /// after one more Tw.
    async fn watchdog(self) {
        let mut dog = Watchdog::new(self.inner.local.watchdog_interval).with_jitter(rand::random());
        dog.open(std::time::Instant::now());
        let (dwa_tx, mut dwa_rx) = mpsc::channel::<std::time::Instant>(4);
        let mut seen = None;
        loop {
            let Some(at) = dog.poll_timeout() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                Some(t) = dwa_rx.recv() => {
                    dog.on_dwa(t);
                    continue;
                }
                _ = self.closed() => return,
            }
            if let Some(t) = self.last_received() {
                if seen != Some(t) {
                    seen = Some(t);
                    dog.on_message(t);
                }
            }
            match dog.handle_timeout(std::time::Instant::now()) {
                Some(WatchdogAction::SendDwr) => {
                    let mut dwr = Message::request(CMD_DEVICE_WATCHDOG, 0);
                    dwr.flags = CMD_FLAG_REQUEST;
                    dwr.push(Avp::u32(
                        AVP_ORIGIN_STATE_ID,
                        None,
                        true,
                        std::process::id(),
                    ));
                    let (me, tx) = (self.clone(), dwa_tx.clone());
                    tokio::spawn(async move {
                        if me.request(dwr).await.is_ok() {
                            let _ = tx.send(std::time::Instant::now()).await;
                        }
                    });
                }
                Some(WatchdogAction::Suspect) => {
                    tracing::info!(peer = %self.inner.info.origin_host, "Diameter peer suspect: no DWA within Tw");
                }
                Some(WatchdogAction::Down) => {
                    tracing::warn!(peer = %self.inner.info.origin_host, "no DWA twice: closing the connection");
                    self.close();
                    return;
                }
                None => {}
            }
        }
    }

    /// Who is at the other end.
    pub fn remote(&self) -> &PeerInfo {
        &self.inner.info
    }

    /// Our socket address on this connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// When the last message from the peer arrived on this connection.
    pub(crate) fn last_received(&self) -> Option<std::time::Instant> {
        self.inner.last_rx.lock().ok().and_then(|t| *t)
    }

    /// The Disconnect-Cause (RFC 6733 §5.4.3) of the DPR the peer sent, if it sent one.
    pub(crate) fn disconnect_cause(&self) -> Option<u32> {
        self.inner.dpr_cause.lock().ok().and_then(|c| *c)
    }

    /// Our requests on this connection still waiting for their answer.
    pub fn pending_requests(&self) -> usize {
        self.inner.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// True until the connection closes.
    pub fn is_open(&self) -> bool {
        *self.inner.open.borrow() && !self.inner.out.is_closed()
    }

    /// Sends DPR (Disconnect-Cause REBOOTING), waits briefly for DPA, closes.
    pub async fn disconnect(&self) {
        let mut dpr = Message::request(CMD_DISCONNECT_PEER, 0);
        dpr.flags = CMD_FLAG_REQUEST;
        dpr.push(Avp::u32(AVP_DISCONNECT_CAUSE, None, true, 0));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.request(dpr)).await;
        self.close();
    }
}

/// Accepts peers on `listener`: CER must come first and offer Cx (else CEA 5010 and close).
/// Any Origin-Host from anywhere: see [`serve_with_policy`].
pub async fn serve(
    listener: TcpListener,
    local: LocalPeer,
    handler: Arc<dyn DiameterHandler>,
    peers: PeerTable,
    trace: Trace,
    shutdown: watch::Receiver<bool>,
) {
    serve_with_policy(
        listener,
        local,
        handler,
        peers,
        trace,
        Arc::new(PeerPolicy::any()),
        shutdown,
    )
    .await
}

/// [`serve`] accepting only the peers `policy` names (Origin-Host and source address); others
/// get CEA DIAMETER_UNKNOWN_PEER (3010) and are closed (RFC 6733 §5.3).
pub async fn serve_with_policy(
    listener: TcpListener,
    local: LocalPeer,
    handler: Arc<dyn DiameterHandler>,
    peers: PeerTable,
    trace: Trace,
    policy: Arc<PeerPolicy>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "Diameter accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (local, handler, peers, trace, sd, policy) = (
            local.clone(),
            handler.clone(),
            peers.clone(),
            trace.clone(),
            shutdown.clone(),
            policy.clone(),
        );
        tokio::spawn(async move {
            let conn = Accepted {
                stream,
                remote,
                policy,
            };
            if let Err(e) = accept_one(conn, local, handler, peers, trace, sd).await {
                crate::warn_limited!("diameter.refused", %remote, error = %e, "Diameter peer refused");
            }
        });
    }
}

/// A connection just accepted, and who may be on it.
struct Accepted {
    stream: TcpStream,
    remote: SocketAddr,
    policy: Arc<PeerPolicy>,
}

async fn accept_one(
    conn: Accepted,
    local: LocalPeer,
    handler: Arc<dyn DiameterHandler>,
    peers: PeerTable,
    trace: Trace,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DiameterError> {
    let Accepted {
        stream,
        remote,
        policy,
    } = conn;
    let _ = stream.set_nodelay(true);
    let local_addr = stream.local_addr().map_err(io_err)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let (cer, raw) = tokio::time::timeout(local.request_timeout, read_message(&mut rd, &mut buf))
        .await
        .map_err(|_| DiameterError::Timeout)??;
    trace.record(
        Direction::Received,
        Protocol::Diameter,
        local_addr,
        remote,
        &raw,
        || cer.command_name(),
    );
    if cer.command_code != CMD_CAPABILITIES_EXCHANGE || !cer.is_request() {
        return Err(DiameterError::Handshake(
            "first message is not a CER".into(),
        ));
    }
    let mut cea = Message::answer_to(&cer);
    let known = policy.allows(cer.origin_host().unwrap_or(""), remote.ip());
    let cx = offers_cx(&cer);
    // The decision is the responder core's (RFC 6733 §5.3; `peer_fsm.rs`).
    let code = match Responder::new().on_cer(CerCheck {
        known,
        offers_cx: cx,
        room: peers.has_room(),
    }) {
        ResponderAction::SendCea(code) => code,
        _ => DIAMETER_UNABLE_TO_COMPLY,
    };
    let ok = code == DIAMETER_SUCCESS;
    cea.push(Avp::u32(AVP_RESULT_CODE, None, true, code));
    cer_avps(&local, &mut cea);
    let bytes = cea.encode();
    trace.record(
        Direction::Sent,
        Protocol::Diameter,
        local_addr,
        remote,
        &bytes,
        || "CEA".into(),
    );
    wr.write_all(&bytes).await.map_err(io_err)?;
    if !known {
        return Err(DiameterError::Handshake(format!(
            "unknown peer: Origin-Host '{}' from {} is not one of the configured peers (answered 3010)",
            cer.origin_host().unwrap_or(""),
            remote.ip()
        )));
    }
    if !cx {
        return Err(DiameterError::Handshake(
            "peer does not offer Cx (answered 5010)".into(),
        ));
    }
    if !ok {
        return Err(DiameterError::Handshake(format!(
            "{MAX_PEERS} peers already connected (answered 5012)"
        )));
    }
    let info = PeerInfo {
        origin_host: cer.origin_host().unwrap_or("").to_string(),
        origin_realm: cer.origin_realm().unwrap_or("").to_string(),
        addr: remote,
        conn: ConnId::next(),
    };
    let p = Peer::start(
        info,
        local,
        local_addr,
        rd,
        wr,
        buf,
        handler,
        trace,
        Some(shutdown),
        true,
    );
    peers.insert(p);
    Ok(())
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
