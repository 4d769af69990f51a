//! The TCP driver of one SMPP connection: frames the stream (§3.2, bounded by max_pdu), feeds
//! the [`Session`] core, runs the service centre's submissions (at most `window` at once; the
//! socket is not read meanwhile), writes what the core sends (a write blocked for
//! response_timeout closes the connection) and sleeps until the core's next deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::server::{Command, Link, Registration, SmppServer};
use super::session::{CloseReason, Session, SessionConfig, SessionEvent, Transmit};
use super::DeliverError;
use crate::smpp::{frame, CommandStatus, Framing};
use crate::trace::Direction;

type Submits = JoinSet<(u64, Vec<Result<String, CommandStatus>>)>;

/// What one connection's task holds besides the core.
struct Conn {
    server: Arc<SmppServer>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    id: u64,
    link: Link,
    registration: Option<Registration>,
    /// The system_id and kind once bound, for the close log.
    bound_as: Option<(String, super::session::BindKind)>,
    /// deliver_sm sent, by sequence_number: who waits and the window slot.
    waiting: HashMap<
        u32,
        (
            oneshot::Sender<Result<(), DeliverError>>,
            OwnedSemaphorePermit,
        ),
    >,
    submits: Submits,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Serves one accepted connection until it closes. `_slot` is its place under
/// max_connections.
pub(super) async fn serve(
    server: Arc<SmppServer>,
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut shut: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let config = SessionConfig::from(&server.settings);
    let max_pdu = server.settings.max_pdu;
    let write_timeout = config.response_timeout;
    let (tx, mut rx) = mpsc::channel(config.window);
    let link = Link {
        tx,
        slots: Arc::new(Semaphore::new(config.window)),
    };
    let mut session = Session::new(config, now());
    let mut c = Conn {
        local: stream.local_addr().ok(),
        server,
        peer,
        id,
        link,
        registration: None,
        bound_as: None,
        waiting: HashMap::new(),
        submits: JoinSet::new(),
    };
    tracing::debug!(%peer, "SMPP connection");
    let mut buf = BytesMut::with_capacity(4096);
    let mut shutting = *shut.borrow();
    if shutting {
        session.unbind(now());
    }
    'conn: loop {
        // Whole PDUs already read, while the window has room.
        while session.can_read() {
            match frame(&buf, max_pdu) {
                Framing::Incomplete => break,
                Framing::Complete(n) => {
                    let pdu = buf.split_to(n);
                    c.record(Direction::Received, &pdu, || super::session::summary(&pdu));
                    session.handle_frame(now(), SystemTime::now(), &pdu);
                    c.drive(&mut session);
                }
                Framing::BadLength(h) => {
                    tracing::debug!(%peer, length = h.command_length, "SMPP: bad command_length, closing");
                    session.bad_framing(&h);
                    buf.clear();
                }
            }
        }
        c.drive(&mut session);
        while let Some(t) = session.poll_transmit() {
            if !c.write(&mut stream, &t, write_timeout).await {
                session.transport_closed();
                c.drive(&mut session);
                break 'conn;
            }
        }
        if session.closed().is_some() {
            break;
        }
        let deadline = session.poll_timeout().map(Instant::from_std);
        tokio::select! {
            r = stream.read_buf(&mut buf), if session.can_read() => match r {
                Ok(0) | Err(_) => session.transport_closed(),
                Ok(_) => {}
            },
            Some(done) = c.submits.join_next(), if !c.submits.is_empty() => {
                if let Ok((token, results)) = done {
                    session.submitted(token, results);
                }
            }
            Some(cmd) = rx.recv() => match cmd {
                Command::Deliver { sm, reply, permit } => match session.deliver(now(), sm) {
                    Ok(seq) => {
                        c.waiting.insert(seq, (reply, permit));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            },
            _ = sleep_until(deadline), if deadline.is_some() => session.handle_timeout(now()),
            _ = shut.changed(), if !shutting => {
                shutting = true;
                session.unbind(now());
            }
        }
        c.drive(&mut session);
    }
    c.drive(&mut session);
    c.link.slots.close();
    c.registration = None;
    c.submits.abort_all();
    let _ = tokio::time::timeout(write_timeout, stream.shutdown()).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Records one PDU to the trace, if there is one.
    fn record(&self, direction: Direction, bytes: &[u8], summary: impl FnOnce() -> String) {
        let (Some(trace), Some(local)) = (&self.server.trace, self.local) else {
            return;
        };
        trace.record(
            direction,
            crate::trace::Protocol::Smpp,
            local,
            self.peer,
            bytes,
            summary,
        );
    }

    /// Writes one PDU; false when the socket failed or stayed blocked for `limit`.
    async fn write(
        &self,
        stream: &mut TcpStream,
        t: &Transmit,
        limit: std::time::Duration,
    ) -> bool {
        self.record(Direction::Sent, &t.bytes, || t.summary.clone());
        match tokio::time::timeout(limit, stream.write_all(&t.bytes)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "SMPP: write failed");
                false
            }
            Err(_) => {
                crate::warn_limited!("smsc.smpp.write", peer = %self.peer,
                    "SMPP: peer does not read, closing");
                false
            }
        }
    }

    /// Does the work the core asks for.
    fn drive(&mut self, session: &mut Session) {
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Bind {
                    sequence,
                    kind,
                    bind,
                } => {
                    let answer = self.server.authorize(
                        &bind,
                        kind,
                        self.peer.ip(),
                        self.id,
                        self.link.clone(),
                    );
                    match answer {
                        Ok(reg) => {
                            tracing::info!(system_id = %bind.system_id, peer = %self.peer,
                                kind = kind.name(), "SMPP bind");
                            session.bind_answer(now(), sequence, Ok(bind.system_id.clone()));
                            self.registration = Some(reg);
                            self.bound_as = Some((bind.system_id.clone(), kind));
                            if kind.receives() {
                                self.server.sc.bound(&bind.system_id);
                            }
                        }
                        Err(status) => session.bind_answer(now(), sequence, Err(status)),
                    }
                }
                SessionEvent::Submit {
                    token, messages, ..
                } => {
                    let sc = self.server.sc.clone();
                    let deadline = Instant::now() + self.server.settings.response_timeout;
                    self.submits.spawn(async move {
                        let mut out = Vec::with_capacity(messages.len());
                        for m in messages {
                            let r = tokio::time::timeout_at(deadline, sc.submit(m)).await;
                            out.push(r.unwrap_or(Err(CommandStatus::SysErr)));
                        }
                        (token, out)
                    });
                }
                SessionEvent::Delivered { sequence, result } => {
                    if let Some((reply, _slot)) = self.waiting.remove(&sequence) {
                        let _ = reply.send(result);
                    }
                }
                SessionEvent::Closed(reason) => {
                    if let Some((system_id, kind)) = &self.bound_as {
                        let how = match reason {
                            CloseReason::Unbound => "SMPP unbind",
                            CloseReason::Shutdown => "SMPP unbind (shutdown)",
                            _ => "SMPP session lost",
                        };
                        tracing::info!(%system_id, peer = %self.peer, kind = kind.name(),
                            reason = ?reason, "{how}");
                    } else {
                        tracing::debug!(peer = %self.peer, reason = ?reason, "SMPP connection closed");
                    }
                    // No more deliveries to this session; waiting ones get Closed.
                    self.registration = None;
                    self.link.slots.close();
                    self.waiting.clear();
                }
            }
        }
    }
}
