//! The back-to-back relaying of the hub (RFC 4975 §7): requests on a connection are admitted
//! by the session core, an empty SEND binds its leg (§5.4), and a SEND is sent on along the
//! other leg with fresh To-Path / From-Path and transaction id; its 200 goes upstream once the
//! next hop answered (§7.1.1, §7.2). The hub terminates each leg rather than acting as an
//! RFC 4976 relay (no path is kept across the pair). A message whose onward leg is down is
//! queued, stored ([`Unbound::Store`], answered once it is on disk) or refused with 481.

use std::time::Instant;

use super::limits;
use super::{finish_local, GateFuture, Hub, HubEvent, KeepFuture, LegState, Side, Tx, Unbound};
use crate::msrp::conn::{MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::session::{self, Admit};
use crate::msrp::{MsrpMessage, MsrpUri};

impl Hub {
    pub(super) fn serve_conn(&self, conn: MsrpConn, mut rx: MsrpEvents) {
        self.conn_opened(&conn);
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    MsrpEvent::Message(m) => {
                        // A message the node's gate holds back keeps the ones after it on
                        // this connection waiting too (bounded by the node).
                        if let Some(held) = hub.on_message(&conn, m) {
                            held.await;
                        }
                    }
                    MsrpEvent::Closed(_) => break,
                }
            }
            hub.conn_closed(&conn);
        });
    }

    pub(super) fn conn_closed(&self, conn: &MsrpConn) {
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

    /// Serves one message from `conn`; `Some` when the node's gate holds a whole message
    /// back: the future does the gate's work, then sends the message on (or keeps it).
    pub(super) fn on_message(&self, conn: &MsrpConn, m: MsrpMessage) -> Option<GateFuture> {
        if m.method.is_none() {
            self.on_response(m);
            return None;
        }
        let to = m.header("To-Path").unwrap_or("").to_string();
        let id = to
            .split_whitespace()
            .next()
            .and_then(|u| MsrpUri::parse(u).ok())
            .map(|u| u.session_id);
        let found = id.and_then(|id| {
            let st = self.inner.st.lock().ok()?;
            let (pair, side) = st.ids.get(&id).copied()?;
            Some((pair, side, st.pairs.get(&pair).is_some_and(|p| p.file)))
        });
        let wants_200 = session::wants_200(&m);
        // What the request gets is the session core's decision (RFC 4975 §7); a file
        // transfer has its own size limit.
        let (pair, side, file) = found.unwrap_or((0, Side::A, false));
        let limits = &self.inner.limits;
        let max = if file {
            limits.max_file_size
        } else {
            limits.max_size
        };
        match session::admit(&m, found.is_some(), max) {
            Admit::Respond(status, comment) => {
                if file && status == 413 {
                    tracing::info!(remote = %conn.peer_addr(), byte_range = ?m.header("Byte-Range"), max, "MSRP file chunk refused: past [im] max_file_size");
                }
                let _ = conn.send(&m.response_to(status, comment));
                return None;
            }
            Admit::Drop => return None,
            Admit::Report => {
                // Success reports travel on like the message they report on.
                self.forward(pair, side.other(), conn, &m);
                return None;
            }
            Admit::Bind => {
                self.bind(pair, side, conn, &m);
                return None;
            }
            Admit::Chunk => {}
        }
        if file {
            // RFC 5547 through the hub: each chunk goes on as it comes, nothing reassembled.
            if m.continuation == crate::msrp::Continuation::End {
                if let Some(c) = self.inner.metrics.get() {
                    c.inc();
                }
            }
            self.stream(conn, &m, pair, side);
            return None;
        }
        // Whole messages for the node.
        let whole = self.reassemble(conn, pair, side, &m)?;
        if m.continuation == crate::msrp::Continuation::End {
            if let Some(c) = self.inner.metrics.get() {
                c.inc();
            }
        }
        let held = match (&whole, self.inner.gate.get()) {
            (Some((ct, body)), Some(gate)) => gate(pair, side, ct, body),
            _ => None,
        };
        match held {
            None => {
                self.route(conn, m, pair, side, whole, wants_200);
                None
            }
            Some(work) => {
                let (hub, conn) = (self.clone(), conn.clone());
                Some(Box::pin(async move {
                    work.await;
                    hub.route(&conn, m, pair, side, whole, wants_200);
                }))
            }
        }
    }

    /// Sends a chunk on along the other leg, queues it, keeps it (T-IM) or refuses it, as the
    /// other leg's state says; a whole message (`whole`, after its last chunk) then goes to
    /// the node.
    fn route(
        &self,
        conn: &MsrpConn,
        m: MsrpMessage,
        pair: u64,
        side: Side,
        whole: Option<(String, bytes::Bytes)>,
        wants_200: bool,
    ) {
        let other = side.other();
        // The state, and for a message the keeper will take, a mark on the leg in the same
        // lock: the leg cannot turn ready under a message on its way to the store.
        let keep = self.inner.unbound == Unbound::Store && whole.is_some();
        let state = self
            .with_leg(pair, other, |leg| {
                let s = leg.state;
                if keep && matches!(s, LegState::Idle | LegState::Bound) {
                    leg.keeping += 1;
                }
                s
            })
            .unwrap_or(LegState::Idle);
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
                    if keep {
                        self.with_leg(pair, other, |leg| {
                            leg.keeping = leg.keeping.saturating_sub(1)
                        });
                    }
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

    /// A chunk of a file transfer ([`Hub::set_file`]): on along the other leg now, or into
    /// that leg's bounded queue while it comes up (the recipient binds after its ACK); 481
    /// once the leg went away. Never kept: a file is relayed, not stored.
    fn stream(&self, conn: &MsrpConn, m: &MsrpMessage, pair: u64, side: Side) {
        let other = side.other();
        match self.leg_state(pair, other) {
            Some(LegState::Ready) => self.forward(pair, other, conn, m),
            Some(LegState::Connecting | LegState::Bound) => self.queue(pair, other, conn, m),
            Some(LegState::Idle) | None => {
                let _ = conn.send(&m.response_to(481, "Session Does Not Exist"));
            }
        }
    }

    pub(super) fn bind(&self, pair: u64, side: Side, conn: &MsrpConn, m: &MsrpMessage) {
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

    pub(super) fn queue(&self, pair: u64, side: Side, upstream: &MsrpConn, m: &MsrpMessage) {
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
    pub(super) fn forward(&self, pair: u64, side: Side, upstream: &MsrpConn, m: &MsrpMessage) {
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

    pub(super) fn on_response(&self, r: MsrpMessage) {
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
    pub(super) fn keep_after_failure(
        &self,
        pair: u64,
        onward: Side,
        m: &MsrpMessage,
    ) -> Option<KeepFuture> {
        if self.inner.unbound != Unbound::Store
            || m.method.as_deref() != Some("SEND")
            || self.is_file(pair)
        {
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
pub(super) fn answer_when_kept(
    kept: KeepFuture,
    upstream: MsrpConn,
    ok: MsrpMessage,
    failed: MsrpMessage,
) {
    tokio::spawn(async move {
        let r = if kept.await { ok } else { failed };
        let _ = upstream.send(&r);
    });
}
