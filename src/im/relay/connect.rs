//! Legs the hub opens itself and messages of its own: it connects to a leg's far end as the
//! active party and binds it with an empty SEND (RFC 4975 §5.4, RFC 6135 connection model),
//! and sends whole messages chunked (RFC 4975 §5.1) tracking each chunk's transaction
//! (§7.1.1).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Hub, HubEvent, LegState, LocalSend, Side, Tx};
use crate::msrp::conn::MsrpConn;
use crate::msrp::{chunk, MsrpMessage, MsrpUri, CHUNK_SIZE};

impl Hub {
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

    pub(super) fn leg_down(&self, pair: u64, side: Side) {
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

    pub(super) fn track_local(&self, tid: &str, pair: u64, n: usize, done: oneshot::Sender<u16>) {
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
}

pub(super) fn finish_local(waiter: &Arc<Mutex<LocalSend>>, status: u16) {
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
