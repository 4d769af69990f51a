//! The SMPP listener: accepts connections (at most `max_connections`), authorises binds
//! (accounts, constant-time password check, [`BindGuard`] throttling, at most
//! [`MAX_SESSIONS_PER_SYSTEM_ID`] sessions per system_id), keeps the registry of bound
//! sessions and sends deliver_sm to them ([`SmppServer::deliver`], round robin).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::guard::BindGuard;
use super::session::BindKind;
use super::{DeliverError, ServiceCentre, SmppSettings, MAX_SESSIONS_PER_SYSTEM_ID};
use crate::smpp::{Bind, CommandStatus, Sm};

/// Work the server hands to a connection's task.
pub(super) enum Command {
    /// Send deliver_sm; the permit is the window slot it holds until its outcome.
    Deliver {
        sm: Sm,
        reply: oneshot::Sender<Result<(), DeliverError>>,
        permit: OwnedSemaphorePermit,
    },
}

/// How the server reaches one connection.
#[derive(Clone)]
pub(super) struct Link {
    pub tx: mpsc::Sender<Command>,
    /// `window` slots for outstanding deliver_sm.
    pub slots: Arc<Semaphore>,
}

struct Entry {
    id: u64,
    kind: BindKind,
    link: Link,
}

/// Bound sessions by system_id: bounded by the accounts times [`MAX_SESSIONS_PER_SYSTEM_ID`].
#[derive(Default)]
struct Registry {
    by_system: HashMap<String, Vec<Entry>>,
    /// Round-robin position per system_id.
    turn: HashMap<String, usize>,
}

/// A bound session's place in the registry; dropping it takes the session out.
pub(super) struct Registration {
    registry: Arc<Mutex<Registry>>,
    system_id: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = lock(&self.registry);
        if let Some(list) = r.by_system.get_mut(&self.system_id) {
            list.retain(|e| e.id != self.id);
            if list.is_empty() {
                r.by_system.remove(&self.system_id);
                r.turn.remove(&self.system_id);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compares without an early exit, so that the time taken says nothing about how much of
/// the password was right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(x));
    }
    diff == 0
}

/// The SMSC's SMPP server.
pub struct SmppServer {
    pub(super) settings: SmppSettings,
    accounts: HashMap<String, String>,
    pub(super) sc: Arc<dyn ServiceCentre>,
    pub(super) trace: Option<crate::trace::Trace>,
    guard: Mutex<BindGuard>,
    registry: Arc<Mutex<Registry>>,
    connections: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl SmppServer {
    /// A server for `settings`, handing submissions to `sc`, recording PDUs to `trace`.
    pub fn new(
        settings: SmppSettings,
        sc: Arc<dyn ServiceCentre>,
        trace: Option<crate::trace::Trace>,
    ) -> Arc<SmppServer> {
        let accounts = settings
            .accounts
            .iter()
            .map(|a| (a.system_id.clone(), a.password.clone()))
            .collect();
        Arc::new(SmppServer {
            guard: Mutex::new(BindGuard::new(
                settings.max_bind_failures,
                settings.bind_block,
            )),
            connections: Arc::new(Semaphore::new(settings.max_connections)),
            accounts,
            sc,
            trace,
            registry: Arc::default(),
            next_id: AtomicU64::new(1),
            settings,
        })
    }

    /// Serves the bound listener until `shut` says stop; then unbinds every session (waiting
    /// up to response_timeout for unbind_resp) and returns when they are closed.
    pub async fn run(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        mut shut: watch::Receiver<bool>,
    ) {
        let mut tasks = JoinSet::new();
        if let (Some(t), Ok(a)) = (&self.trace, listener.local_addr()) {
            t.recorder(a);
        }
        while !*shut.borrow() {
            tokio::select! {
                _ = shut.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match self.connections.clone().try_acquire_owned() {
                        Ok(permit) => {
                            // PDUs are small and answered one by one: without this, Nagle
                            // holds a deliver_sm behind an unacknowledged submit_sm_resp
                            // until the ESME's delayed ACK (~40 ms on Linux).
                            let _ = stream.set_nodelay(true);
                            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                            let conn = super::conn::serve(
                                self.clone(), stream, peer, id, shut.clone(), permit,
                            );
                            tasks.spawn(conn);
                        }
                        Err(_) => {
                            crate::warn_limited!("smsc.smpp.max_connections", %peer,
                                max = self.settings.max_connections,
                                "SMPP: connection refused, too many connections");
                            drop(stream);
                        }
                    },
                    Err(e) => {
                        crate::warn_limited!("smsc.smpp.accept", error = %e, "SMPP: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        // Each connection unbinds and waits at most response_timeout (twice: unbind_resp and
        // the last write); then whatever is left is aborted.
        let grace = self.settings.response_timeout * 2 + Duration::from_secs(1);
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.shutdown().await;
    }

    /// Sends deliver_sm (an MO message or a delivery receipt; `sm` is its body, esm_class set
    /// by the caller) to a session of `system_id` bound as receiver or transceiver (round
    /// robin if several), waiting at most response_timeout for a window slot and again at
    /// most response_timeout for deliver_sm_resp.
    pub async fn deliver(&self, system_id: &str, sm: Sm) -> Result<(), DeliverError> {
        let link = self.pick(system_id).ok_or(DeliverError::NotBound)?;
        let wait = self.settings.response_timeout;
        let permit = match tokio::time::timeout(wait, link.slots.clone().acquire_owned()).await {
            Err(_) => return Err(DeliverError::Timeout),
            Ok(Err(_)) => return Err(DeliverError::Closed),
            Ok(Ok(p)) => p,
        };
        let (reply, answer) = oneshot::channel();
        link.tx
            .try_send(Command::Deliver { sm, reply, permit })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => DeliverError::Timeout,
                mpsc::error::TrySendError::Closed(_) => DeliverError::Closed,
            })?;
        match tokio::time::timeout(wait, answer).await {
            Err(_) => Err(DeliverError::Timeout),
            Ok(Err(_)) => Err(DeliverError::Closed),
            Ok(Ok(r)) => r,
        }
    }

    /// deliver_sm a session may have unanswered at once (SMPP 3.4 §2.8: the window).
    pub fn window(&self) -> usize {
        self.settings.window.max(1)
    }

    /// Whether `system_id` has a session bound as receiver or transceiver (one that
    /// [`SmppServer::deliver`] can reach).
    pub fn is_bound(&self, system_id: &str) -> bool {
        lock(&self.registry)
            .by_system
            .get(system_id)
            .is_some_and(|l| l.iter().any(|e| e.kind.receives()))
    }

    /// Bound sessions (any kind) now.
    pub fn sessions(&self) -> usize {
        lock(&self.registry).by_system.values().map(Vec::len).sum()
    }

    /// The next receiving session of `system_id`, round robin.
    fn pick(&self, system_id: &str) -> Option<Link> {
        let mut r = lock(&self.registry);
        let receivers: Vec<Link> = r
            .by_system
            .get(system_id)?
            .iter()
            .filter(|e| e.kind.receives())
            .map(|e| e.link.clone())
            .collect();
        if receivers.is_empty() {
            return None;
        }
        let turn = r.turn.entry(system_id.to_string()).or_insert(0);
        let link = receivers[*turn % receivers.len()].clone();
        *turn = turn.wrapping_add(1);
        Some(link)
    }

    /// Checks a bind and registers the session: Err(ESME_RBINDFAIL) for a blocked system_id or
    /// peer (without checking the password), bad credentials or an unknown system_id (the
    /// same answer), or a system_id at its session limit.
    pub(super) fn authorize(
        &self,
        bind: &Bind,
        kind: BindKind,
        ip: IpAddr,
        id: u64,
        link: Link,
    ) -> Result<Registration, CommandStatus> {
        let now = Instant::now();
        {
            let mut guard = lock(&self.guard);
            if guard.is_blocked(&bind.system_id, ip, now) {
                tracing::debug!(system_id = %bind.system_id, peer = %ip, "SMPP bind refused: blocked");
                return Err(CommandStatus::BindFail);
            }
            let stored = self.accounts.get(&bind.system_id);
            // An unknown system_id is compared too, so both failures take the same time.
            let expected = stored.map_or(&b"\x00unknown"[..], |p| p.as_bytes());
            let matches = ct_eq(expected, bind.password.as_bytes());
            if !(stored.is_some() & matches) {
                for b in guard.failed(&bind.system_id, ip, now) {
                    tracing::warn!(blocked = %b.key, seconds = b.duration.as_secs(),
                        "SMPP: binds blocked after repeated failures");
                }
                crate::warn_limited!("smsc.smpp.bind", system_id = %bind.system_id, peer = %ip,
                    "SMPP bind refused: bad credentials");
                return Err(CommandStatus::BindFail);
            }
            guard.succeeded(&bind.system_id, ip);
        }
        let mut r = lock(&self.registry);
        let list = r.by_system.entry(bind.system_id.clone()).or_default();
        if list.len() >= MAX_SESSIONS_PER_SYSTEM_ID {
            crate::warn_limited!("smsc.smpp.sessions", system_id = %bind.system_id, peer = %ip,
                max = MAX_SESSIONS_PER_SYSTEM_ID, "SMPP bind refused: too many sessions");
            return Err(CommandStatus::BindFail);
        }
        list.push(Entry { id, kind, link });
        Ok(Registration {
            registry: self.registry.clone(),
            system_id: bind.system_id.clone(),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret1"));
        assert!(!ct_eq(b"secret", b""));
        assert!(!ct_eq(b"\x00", b""));
    }
}
