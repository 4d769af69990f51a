//! T-IM's delivery of what it keeps (OMA CPM store and forward, TS 24.229 §5.7.5 for T-IM as a
//! UA): one worker per recipient, so one user's dead contact never delays another user.
//!
//! A worker starts when a user is registered and has something waiting (a third-party
//! REGISTER, TS 24.229 §5.4.1.7, a message or IMDN stored for them while online) and stops when
//! nothing is left or the user is no longer registered. Each round it sends the IMDNs owed to
//! the user (pager mode, RFC 5438 §8.2), then, for every sender with pending messages at once,
//! INVITEs the user with the oldest message (or flushes over a leg already up). A round that
//! fails is retried with exponential backoff (1 s, 2 s, 4 s ... 30 s); a new registration
//! retries at once.
//!
//! ```text
//!            kick (REGISTER, new message, owed IMDN)
//!   idle ──────────────────────────────► round ──all delivered──► idle (worker retires)
//!                                         │  ▲
//!                       failed (480/408)  ▼  │ backoff elapsed / kicked
//!                                       backoff
//! ```
//!
//! A client that refuses MSRP (400/405/415/488/500/501/606, or rings without answering within
//! [`RING_LIMIT`]) gets the messages in pager mode (RFC 3428 MESSAGE, `text/plain`, or
//! `message/cpim` when its answer's Accept lists it), and the sender an IMDN `delivered` or
//! `failed` whose [`crate::cpim::Imdn::note`] says so.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::relay::Side;
use super::store::{self, OwedReport, StoredMessage};
use super::{rcs, ImServer, TimSession};
use crate::cpim::{Cpim, ImdnStatus};
use crate::cscf::next_hop;
use crate::sip::{Method, Request, Response, Transport};

/// First retry delay after a failed round.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A delivery INVITE with no sign of the UE (nothing but 100 Trying) is CANCELled after this
/// and retried later: the contact is probably dead.
pub const SILENT_LIMIT: Duration = Duration::from_secs(10);
/// A delivery INVITE that rings (180/183) without a final answer is CANCELled after this and
/// the messages go in pager mode: a voice-only client alerting its user for a chat.
pub const RING_LIMIT: Duration = Duration::from_secs(12);
/// How long a message flushed over the recipient's leg may wait for its 200.
pub const FLUSH_WAIT: Duration = Duration::from_secs(10);
/// After a CANCEL, how long the final answer (487, or a 200 that crossed it) may take.
/// How long a MESSAGE in flight may still answer after its user registered again.
const REREGISTER_GRACE: Duration = Duration::from_secs(3);
const CANCEL_WAIT: Duration = Duration::from_secs(4);
/// A session that got its 200 but whose MSRP leg is still not up after this is stale.
const BIND_LIMIT: Duration = Duration::from_secs(15);
/// Workers at most (one per recipient with work); more wait for the next kick.
const MAX_WORKERS: usize = 10_000;

/// How one delivery INVITE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InviteOutcome {
    /// 2xx: the first message is delivered and the recipient binds its MSRP leg.
    Accepted,
    /// Not reachable now (480, 408, 503, no answer): retry later.
    Unreachable(String),
    /// The client does not take MSRP chat: fall back to pager mode. `cpim`: its Accept lists
    /// message/cpim.
    Refused { why: String, cpim: bool },
    /// The user declined (486/600/603): the messages fail.
    Declined(String),
    /// Nothing to send, or the session is gone / already delivering.
    Nothing,
}

/// A recipient's worker slot: kicks wake it; `epoch` moves on with each registration.
pub(super) struct Worker {
    kicks: u64,
    wake: Arc<Notify>,
    epoch: watch::Sender<u64>,
}

/// How one sender's messages fared in a round.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    InProgress,
    Retry,
}

impl ImServer {
    /// Wakes (or starts) the delivery worker of `user`. `registered`: a new registration,
    /// which cuts short an attempt towards an old contact and resets the backoff.
    pub(super) fn kick(self: &Arc<Self>, user: &str, registered: bool) {
        if self.store.is_none() {
            return;
        }
        let Ok(mut w) = self.workers.lock() else {
            return;
        };
        if let Some(slot) = w.get_mut(user) {
            slot.kicks += 1;
            if registered {
                slot.epoch.send_modify(|e| *e += 1);
            }
            slot.wake.notify_one();
            return;
        }
        if w.len() >= MAX_WORKERS {
            tracing::warn!(%user, "delivery workers at their limit; delivery waits for the next kick");
            return;
        }
        let wake = Arc::new(Notify::new());
        let (epoch, _) = watch::channel(0);
        w.insert(
            user.to_string(),
            Worker {
                kicks: 0,
                wake: wake.clone(),
                epoch,
            },
        );
        drop(w);
        let me = self.clone();
        let user = user.to_string();
        tokio::spawn(async move { me.worker(user, wake).await });
    }

    /// Delivery workers running (tests, monitoring).
    pub fn delivery_workers(&self) -> usize {
        self.workers.lock().map(|w| w.len()).unwrap_or(0)
    }

    fn kicks_of(&self, user: &str) -> u64 {
        self.workers
            .lock()
            .ok()
            .and_then(|w| w.get(user).map(|s| s.kicks))
            .unwrap_or(0)
    }

    pub(super) fn epoch_of(&self, user: &str) -> Option<watch::Receiver<u64>> {
        let w = self.workers.lock().ok()?;
        Some(w.get(user)?.epoch.subscribe())
    }

    /// The worker leaves when nobody kicked it since `seen`; else it goes round again.
    fn retire(&self, user: &str, seen: u64) -> bool {
        let Ok(mut w) = self.workers.lock() else {
            return true;
        };
        if w.get(user).is_some_and(|s| s.kicks != seen) {
            return false;
        }
        w.remove(user);
        true
    }

    async fn worker(self: Arc<Self>, user: String, wake: Arc<Notify>) {
        let mut backoff = BACKOFF_FIRST;
        let mut epoch = self.epoch_of(&user);
        // Senders whose messages go in pager mode to this user (their client refused MSRP).
        let mut pager: HashMap<String, bool> = HashMap::new();
        loop {
            let seen = self.kicks_of(&user);
            if let Some(e) = epoch.as_mut() {
                if e.has_changed().unwrap_or(false) {
                    e.borrow_and_update();
                    backoff = BACKOFF_FIRST;
                    pager.clear();
                }
            }
            if !self.is_online(&user) {
                tracing::debug!(%user, "not registered: delivery worker stops");
                if self.retire(&user, seen) {
                    return;
                }
                continue;
            }
            let mut failed = !self.pay_owed(&user).await;
            let mut busy = false;
            if !failed {
                let st = match &self.store {
                    Some(st) => st.clone(),
                    None => return,
                };
                let senders = senders_of(&st.pending_for(&user));
                let steps = futures_util::future::join_all(senders.iter().map(|from| {
                    let mode = pager.get(from).copied();
                    self.clone().deliver_from(user.clone(), from.clone(), mode)
                }))
                .await;
                tracing::debug!(%user, ?senders, ?steps, "delivery round");
                for (from, (step, mode)) in senders.iter().zip(steps) {
                    if let Some(cpim) = mode {
                        pager.insert(from.clone(), cpim);
                    }
                    match step {
                        Step::Done => {}
                        Step::InProgress => busy = true,
                        Step::Retry => failed = true,
                    }
                }
            }
            let left = self.store.as_ref().is_some_and(|st| {
                !st.owed_to(&user).is_empty() || !st.pending_for(&user).is_empty()
            });
            if !left {
                if self.retire(&user, seen) {
                    return;
                }
                continue;
            }
            let pause = if failed {
                let p = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tracing::info!(%user, retry_in = ?p, "delivery failed; retrying while the user is registered");
                p
            } else if busy {
                Duration::from_millis(200)
            } else {
                Duration::ZERO
            };
            if !failed {
                backoff = BACKOFF_FIRST;
            }
            let _ = tokio::time::timeout(pause, wake.notified()).await;
        }
    }

    /// One sender's pending messages to `user`: over a leg already up, by a new INVITE, or in
    /// pager mode (`pager`: Some(cpim accepted) once the client refused MSRP). Returns the
    /// step and the pager mode learnt.
    async fn deliver_from(
        self: Arc<Self>,
        user: String,
        from: String,
        pager: Option<bool>,
    ) -> (Step, Option<bool>) {
        let Some(st) = self.store.clone() else {
            return (Step::Done, None);
        };
        let waiting = |st: &store::ImStore| {
            st.pending_for(&user)
                .into_iter()
                .filter(|m| m.from == from)
                .count()
        };
        if waiting(&st) == 0 {
            return (Step::Done, None);
        }
        if let Some(cpim) = pager {
            return (self.pager_deliver(&user, &from, cpim, None).await, None);
        }
        let sessions: Vec<TimSession> = self
            .sessions
            .lock()
            .map(|s| {
                s.values()
                    .filter(|t| t.from == from && t.to == user)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut live = None;
        for s in &sessions {
            if self.hub.is_ready(s.pair, Side::B) {
                // The recipient's leg is up: what waits goes over it.
                self.clone().flush(s.pair).await;
                return if waiting(&st) == 0 {
                    (Step::Done, None)
                } else {
                    (Step::Retry, None)
                };
            }
            if s.delivering {
                tracing::debug!(%from, to = %user, pair = s.pair, "waiting: flushing over the recipient's leg");
                return (Step::InProgress, None);
            }
            if s.down_call.is_some() {
                if s.down_at.is_some_and(|t| t.elapsed() < BIND_LIMIT) {
                    tracing::debug!(%from, to = %user, pair = s.pair, "waiting: delivery INVITE or binding under way");
                    return (Step::InProgress, None);
                }
                // A stale record (its leg never came up) must not block the sender.
                tracing::info!(%from, to = %user, "stale delivery session dropped");
                self.drop_session(s.pair);
                continue;
            }
            let up_ok = s.up_call.is_some()
                && s.acked
                && !s.up_closed
                && self.hub.is_ready(s.pair, Side::A);
            if up_ok && live.is_none() {
                live = Some(s.pair);
            } else if s.up_call.is_some()
                && !s.up_closed
                && s.opened_at.elapsed() < Duration::from_secs(5)
            {
                // A chat being opened (ACK or the sender's MSRP binding still to come):
                // deliver within it once it is up, as figure 1 does.
                tracing::debug!(%from, to = %user, pair = s.pair, "waiting: the sender's chat is being opened");
                return (Step::InProgress, None);
            }
        }
        let (pair, fresh) = match live {
            Some(p) => (p, false),
            None => (self.new_forward_session(&user, &from), true),
        };
        let outcome = self.clone().invite_recipient(pair).await;
        tracing::debug!(%user, %from, pair, fresh, ?outcome, "delivery INVITE");
        if fresh && outcome != InviteOutcome::Accepted {
            self.drop_session(pair);
        }
        match outcome {
            InviteOutcome::Accepted => {
                // The recipient binds its leg and flush() sends the rest; wait for that.
                // The recipient binds its leg and flush() sends the rest; wait for that (or for
                // the leg to go away again: the recipient may be gone already).
                let until = Instant::now() + BIND_LIMIT;
                while Instant::now() < until {
                    let Some(s) = self.session(pair) else { break };
                    let flushed =
                        !s.delivering && (waiting(&st) == 0 || self.hub.is_ready(pair, Side::B));
                    if flushed || s.down_call.is_none() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if waiting(&st) == 0 {
                    (Step::Done, None)
                } else if self.hub.is_ready(pair, Side::B) {
                    // More came meanwhile: next round.
                    (Step::InProgress, None)
                } else {
                    (Step::Retry, None)
                }
            }
            InviteOutcome::Unreachable(why) => {
                tracing::info!(to = %user, %from, %why, "delivery INVITE failed; messages stay in the store");
                (Step::Retry, None)
            }
            InviteOutcome::Refused { why, cpim } => {
                self.ep.note(|| {
                    format!("{user} refused the chat ({why}): pager-mode MESSAGE instead")
                });
                let step = self.pager_deliver(&user, &from, cpim, Some(&why)).await;
                (step, Some(cpim))
            }
            InviteOutcome::Declined(why) => {
                for m in st.pending_for(&user).into_iter().filter(|m| m.from == from) {
                    if st.unqueue(&m, "failed").is_ok() {
                        self.report_to_sender(
                            &m,
                            ImdnStatus::Failed,
                            Some(&format!("failed: {why}")),
                        )
                        .await;
                    }
                }
                (Step::Done, None)
            }
            InviteOutcome::Nothing => (Step::InProgress, None),
        }
    }

    /// A store-and-forward session (no originating dialog) for `from`'s messages to `user`.
    fn new_forward_session(&self, user: &str, from: &str) -> u64 {
        let (pair, _, _) = self.hub.new_pair();
        self.hub
            .set_owner(pair, crate::im::relay::Side::B, &super::ue_name(user));
        let m = self
            .store
            .as_ref()
            .and_then(|st| st.pending_for(user).into_iter().find(|m| m.from == from));
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(
                pair,
                TimSession {
                    pair,
                    from: from.to_string(),
                    to: user.to_string(),
                    contribution_id: m
                        .as_ref()
                        .map(|m| m.contribution_id.clone())
                        .unwrap_or_default(),
                    conversation_id: m
                        .as_ref()
                        .map(|m| m.conversation_id.clone())
                        .unwrap_or_default(),
                    up_call: None,
                    acked: true,
                    route_back: Vec::new(),
                    down_call: None,
                    down_at: None,
                    opened_at: Instant::now(),
                    delivering: false,
                    up_closed: false,
                },
            );
        }
        pair
    }

    pub(super) fn drop_session(&self, pair: u64) {
        let gone = self.sessions.lock().ok().and_then(|mut s| s.remove(&pair));
        if let Some(t) = gone {
            if let (Some(c), Ok(mut own)) = (t.down_call, self.own_calls.lock()) {
                own.remove(&c);
            }
        }
        self.hub.remove_pair(pair);
    }

    /// `from`'s messages waiting for `user`, oldest first, without those being revoked.
    pub(super) fn deliverable(&self, user: &str, from: &str) -> Vec<StoredMessage> {
        let Some(st) = &self.store else {
            return Vec::new();
        };
        st.pending_for(user)
            .into_iter()
            .filter(|m| m.from == from && !self.revocations.is_revoking(&m.message_id))
            .collect()
    }

    /// Sends a delivery INVITE and waits for its final answer, bounded: [`SILENT_LIMIT`] while
    /// only 100 Trying came, [`RING_LIMIT`] once it rings, then CANCEL (RFC 3261 §9.1) and
    /// [`CANCEL_WAIT`] for the 487 (or a 200 that crossed the CANCEL, which counts).
    /// A new registration of the user cuts a silent wait short.
    pub(super) async fn await_invite(
        &self,
        user: &str,
        req: &Request,
        dest: std::net::SocketAddr,
        t: Transport,
        revoked: Option<&Notify>,
    ) -> (Response, bool) {
        let mut tx = self.ep.send_request(req.clone(), dest, t);
        let start = tokio::time::Instant::now();
        let mut rang = false;
        let mut epoch = self.epoch_of(user);
        if let Some(e) = epoch.as_mut() {
            e.borrow_and_update();
        }
        // A new registration while the INVITE is silent: it may have gone to a dead contact
        // only, so the wait is cut short — after a grace, since the S-CSCF forks and a live
        // client may merely be slow (it would show the message twice if we sent again).
        let mut cut: Option<tokio::time::Instant> = None;
        loop {
            let limit = if rang { RING_LIMIT } else { SILENT_LIMIT };
            let deadline = match cut {
                Some(c) if !rang => c.min(start + limit),
                _ => start + limit,
            };
            let reregistered = async {
                match epoch.as_mut() {
                    Some(e) if !rang && cut.is_none() => {
                        let _ = e.changed().await;
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tx.next() => match r {
                    Some(r) if r.status < 200 => {
                        rang |= r.status > 100;
                        // Capabilities known: a client alerting with a Contact that lacks the
                        // CPM chat feature tag (RFC 3840 §9) is not an RCS client; do not let
                        // it ring for RING_LIMIT.
                        if r.status > 100 && contact_lacks_chat(&r) {
                            tracing::info!(%user, "ringing client without the CPM feature tag");
                        } else {
                            continue;
                        }
                    }
                    Some(r) => return (r, rang),
                    None => return (no_answer(req, "transaction ended"), rang),
                },
                _ = tokio::time::sleep_until(deadline) => {}
                // The sender revokes the message this INVITE carries: CANCEL it.
                _ = async {
                    match revoked {
                        Some(n) => n.notified().await,
                        None => std::future::pending::<()>().await,
                    }
                } => {}
                _ = reregistered => {
                    cut = Some(tokio::time::Instant::now() + REREGISTER_GRACE);
                    continue;
                }
            }
            // RFC 3261 §9.1, bounded: a CANCEL nobody answers must not hold the worker.
            let _ = tokio::time::timeout(
                CANCEL_WAIT,
                crate::cscf::cancel_forwarded(&self.ep, req, dest, t),
            )
            .await;
            let fin = tokio::time::timeout(CANCEL_WAIT, async {
                while let Some(r) = tx.next().await {
                    if r.status >= 200 {
                        return Some(r);
                    }
                }
                None
            })
            .await
            .ok()
            .flatten();
            return match fin {
                Some(r) => (r, rang),
                None => (no_answer(req, "no final answer after CANCEL"), rang),
            };
        }
    }

    /// Pager-mode fallback (RFC 3428; OMA CPM pager mode): each pending message from `from` to
    /// `user` as a MESSAGE. 2xx: delivered, and the sender gets IMDN `delivered` noted
    /// `pager-mode`; 408/480/503: stays (retry); anything else: failed, IMDN `failed` with the
    /// reason.
    async fn pager_deliver(
        self: &Arc<Self>,
        user: &str,
        from: &str,
        cpim: bool,
        why: Option<&str>,
    ) -> Step {
        let Some(st) = self.store.clone() else {
            return Step::Done;
        };
        for m in self.deliverable(user, from) {
            let Some(_carry) = self.revocations.carry(&m.message_id) else {
                continue;
            };
            let raw = m.cpim();
            let Ok(doc) = Cpim::parse(&raw) else {
                let _ = st.unqueue(&m, "failed");
                continue;
            };
            let mut req = self
                .ep
                .new_request(Method::Message, user, from, 1, Transport::Tcp);
            let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
            req.headers.push("P-Asserted-Identity", format!("<{from}>"));
            if let Some(route) = self.scscf_route_for(user) {
                req.headers.push("Route", route);
            }
            if cpim {
                req.headers.push("Content-Type", "message/cpim");
                req.body = Bytes::from(raw.clone());
            } else {
                let text = match rcs::content(&doc) {
                    rcs::Content::Text(t) => t,
                    _ => String::from_utf8_lossy(&doc.body).to_string(),
                };
                req.headers.push("Content-Type", "text/plain;charset=UTF-8");
                req.body = Bytes::from(text.into_bytes());
            }
            if let Ok(mut o) = self.own_calls.lock() {
                o.insert(call_id.clone());
            }
            let resp = match next_hop(&self.resolver, &req).await {
                Some((dest, t)) => self.send_message(user, &req, dest, t).await,
                None => no_answer(&req, "no route to the S-CSCF"),
            };
            if let Ok(mut o) = self.own_calls.lock() {
                o.remove(&call_id);
            }
            let chat = why
                .map(|w| format!("chat refused ({w}); "))
                .unwrap_or_default();
            if resp.is_success() {
                if st.unqueue(&m, "delivered").is_ok() && doc.wants("positive-delivery") {
                    self.report_to_sender(&m, ImdnStatus::Delivered, Some("pager-mode"))
                        .await;
                }
                // Off the queue (and the IMDN owed) on disk before the next one goes.
                let _ = st.durable().await;
            } else if matches!(resp.status, 408 | 480 | 503) {
                return Step::Retry;
            } else {
                let note = format!(
                    "failed: {chat}pager MESSAGE answered {} {}",
                    resp.status, resp.reason
                );
                if st.unqueue(&m, "failed").is_ok() {
                    self.report_to_sender(&m, ImdnStatus::Failed, Some(&note))
                        .await;
                }
            }
        }
        Step::Done
    }

    /// Tells the sender of `m` what became of it (RFC 5438 §7.2.1): over its session's leg when
    /// up, else owed and sent by the sender's own worker.
    pub(super) async fn report_to_sender(
        self: &Arc<Self>,
        m: &StoredMessage,
        status: ImdnStatus,
        note: Option<&str>,
    ) {
        let Some(st) = &self.store else { return };
        let Ok(orig) = Cpim::parse(&m.cpim()) else {
            return;
        };
        let body = rcs::imdn_message_noted(&m.to, &m.from, &orig, status, note).to_bytes();
        let pair = self.sessions.lock().ok().and_then(|s| {
            s.values()
                .filter(|t| t.from == m.from && t.to == m.to)
                .map(|t| t.pair)
                .find(|p| self.hub.is_ready(*p, Side::A))
        });
        if let Some(pair) = pair {
            if matches!(
                self.hub.send(pair, Side::A, "message/cpim", &body).await,
                Ok(200)
            ) {
                return;
            }
        }
        let _ = st.owe(&OwedReport {
            from: m.to.clone(),
            to: m.from.clone(),
            cpim_b64: store::b64(&body),
        });
        self.kick(&m.from, false);
    }

    /// Sends the IMDNs owed to `user` as SIP MESSAGEs (pager mode, RFC 5438 §8.2), oldest
    /// first; only this user's worker pays them, so none goes twice. False when one failed.
    pub(super) async fn pay_owed(&self, user: &str) -> bool {
        let Some(st) = &self.store else { return true };
        let owed = st.owed_to(user);
        if owed.is_empty() {
            return true;
        }
        for (seq, r) in owed {
            let mut req = self
                .ep
                .new_request(Method::Message, user, &r.from, 1, Transport::Tcp);
            let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
            req.headers
                .push("P-Asserted-Identity", format!("<{}>", r.from));
            req.headers.push("Accept-Contact", rcs::ACCEPT_IMDN);
            if let Some(route) = self.scscf_route_for(user) {
                req.headers.push("Route", route);
            }
            req.headers.push("Content-Type", "message/cpim");
            req.body = Bytes::from(r.cpim());
            if let Ok(mut o) = self.own_calls.lock() {
                o.insert(call_id.clone());
            }
            let Some((dest, t)) = next_hop(&self.resolver, &req).await else {
                return false;
            };
            let resp = self.send_message(user, &req, dest, t).await;
            if let Ok(mut o) = self.own_calls.lock() {
                o.remove(&call_id);
            }
            if resp.is_success() {
                let _ = st.paid(user, seq);
            } else {
                let _ = st.durable().await;
                return false;
            }
        }
        // Paid reports are forgotten on disk (a crash before this sends them again; the
        // client drops a report it already had).
        let _ = st.durable().await;
        true
    }
}

impl ImServer {
    /// A MESSAGE to `user` and its final answer, bounded (Timer F, 32 s, and a guard), and cut
    /// short when the user registers again: a MESSAGE lost on a dead contact must not hold up
    /// what waits for the fresh one. (Cut short, it counts as not delivered and goes again.)
    async fn send_message(
        &self,
        user: &str,
        req: &Request,
        dest: std::net::SocketAddr,
        t: Transport,
    ) -> Response {
        let mut epoch = self.epoch_of(user);
        if let Some(e) = epoch.as_mut() {
            e.borrow_and_update();
        }
        let reregistered = async {
            match epoch.as_mut() {
                Some(e) => {
                    let _ = e.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let answer = self.ep.send_request(req.clone(), dest, t).final_response();
        tokio::pin!(answer);
        tokio::select! {
            r = &mut answer => r,
            _ = tokio::time::sleep(Duration::from_secs(40)) => no_answer(req, "no answer to the MESSAGE"),
            _ = reregistered => {
                // The S-CSCF forks to every contact, so the MESSAGE in flight may still reach a
                // live client that is merely slow: give it a moment before counting it lost
                // (sending again too early would deliver it twice).
                match tokio::time::timeout(REREGISTER_GRACE, &mut answer).await {
                    Ok(r) => r,
                    Err(_) => no_answer(req, "the user registered again meanwhile"),
                }
            }
        }
    }
}

/// Classifies the final answer to a delivery INVITE (`rang`: the client sent 180/183).
pub(super) fn classify(resp: &Response, rang: bool) -> InviteOutcome {
    let why = format!("{} {}", resp.status, resp.reason);
    let accepts_cpim = resp
        .headers
        .values("Accept")
        .iter()
        .any(|a| a.to_ascii_lowercase().contains("message/cpim"));
    match resp.status {
        200..=299 => InviteOutcome::Accepted,
        // RFC 3261 §21: the client cannot do this session (bad or unsupported body, media,
        // method); a 500 from a plain SIP phone (baresip) means the same here.
        400 | 405 | 415 | 488 | 500 | 501 | 606 => InviteOutcome::Refused {
            why,
            cpim: accepts_cpim,
        },
        // It rang and nobody answered the chat (CANCELled by us): a voice-only client.
        408 | 487 if rang => InviteOutcome::Refused {
            why: format!("rang without answering ({why})"),
            cpim: false,
        },
        486 | 600 | 603 => InviteOutcome::Declined(why),
        _ => InviteOutcome::Unreachable(why),
    }
}

/// True when a response has a Contact and none of its values carries the CPM chat ICSI.
fn contact_lacks_chat(r: &Response) -> bool {
    let contacts = r.headers.values("Contact");
    !contacts.is_empty()
        && !contacts
            .iter()
            .any(|c| c.contains("3gpp-service.ims.icsi.oma.cpm.session"))
}

fn no_answer(req: &Request, why: &str) -> Response {
    let mut r = req.response(408, None);
    r.headers
        .push("Reason", format!("SIP;cause=408;text=\"{why}\""));
    r
}

/// Senders with something pending for a user, in the order of their oldest message.
pub(super) fn senders_of(pending: &[StoredMessage]) -> Vec<String> {
    let mut seen = HashSet::new();
    pending
        .iter()
        .filter(|m| seen.insert(m.from.clone()))
        .map(|m| m.from.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, accept: Option<&str>) -> Response {
        let mut req = Request::new(Method::Invite, "sip:b@x");
        req.headers
            .push("Via", "SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx");
        req.headers.push("From", "<sip:a@x>;tag=1");
        req.headers.push("To", "<sip:b@x>");
        req.headers.push("Call-ID", "c");
        req.headers.push("CSeq", "1 INVITE");
        let mut r = req.response(status, None);
        if let Some(a) = accept {
            r.headers.push("Accept", a);
        }
        r
    }

    #[test]
    fn invite_answers_pick_retry_pager_or_failure() {
        assert_eq!(classify(&resp(200, None), false), InviteOutcome::Accepted);
        for s in [400, 415, 488, 500, 606] {
            assert!(
                matches!(
                    classify(&resp(s, None), false),
                    InviteOutcome::Refused { cpim: false, .. }
                ),
                "{s}"
            );
        }
        assert!(matches!(
            classify(&resp(415, Some("text/plain, message/cpim")), false),
            InviteOutcome::Refused { cpim: true, .. }
        ));
        for s in [408, 480, 503, 487] {
            assert!(
                matches!(
                    classify(&resp(s, None), false),
                    InviteOutcome::Unreachable(_)
                ),
                "{s}"
            );
        }
        assert!(matches!(
            classify(&resp(487, None), true),
            InviteOutcome::Refused { .. }
        ));
        assert!(matches!(
            classify(&resp(603, None), false),
            InviteOutcome::Declined(_)
        ));
    }
}
