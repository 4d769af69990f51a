//! Delivery (TS 24.341 §5.3.2.4, TS 23.040 §3.2): one destination at a time, oldest message
//! first. The centre sends a phone a MESSAGE with RP-DATA (an SMS-DELIVER, or an
//! SMS-STATUS-REPORT on a message it sent) through the I-CSCF, which finds the phone's
//! S-CSCF; the phone answers 200 and then its own MESSAGE with RP-ACK, which [`super::mo`]
//! hands back here by RP-MR. A phone that is away (480, no answer, no RP-ACK, RP-ERROR
//! memory full) keeps its messages, in order, until its retry time or its registration; an
//! unknown number or a refusal ends the message with a report that says why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::sip::{Method, Transport};
use crate::sms::rp::{cause, CONTENT_TYPE};
use crate::sms::tpdu::status;

use super::store::{Origin, ReportOf, StoredSm};
use super::{lock, pdus, unix_now, PhoneAnswer, Smsc, Waiter};

/// How long the centre waits for the final answer to a MESSAGE it sent (Timer F is 32 s).
const MESSAGE_WAIT: Duration = Duration::from_secs(40);

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Delivered,
    /// Not now: try again later.
    Later(String),
    /// Never: TP-ST and why.
    Failed(u8, String),
    /// The lab stops: the message stays as it is stored.
    Stopped,
}

/// What a final SIP answer to a delivery means (before the phone's RP-ACK).
pub(super) fn classify(status_code: u16) -> Option<Outcome> {
    match status_code {
        200..=299 => None,
        404 | 410 | 484 | 604 => Some(Outcome::Failed(
            status::INCOMPATIBLE_DESTINATION,
            format!("{status_code}: no such subscriber"),
        )),
        408 | 480 | 486 | 500 | 503 | 504 | 600 => {
            Some(Outcome::Later(format!("{status_code}: not reachable now")))
        }
        c => Some(Outcome::Failed(
            status::INCOMPATIBLE_DESTINATION,
            format!("{c}: refused"),
        )),
    }
}

/// TP-ST and why, for an outcome that ends a message (None: the lab stops).
fn final_status(o: &Outcome) -> Option<(u8, String)> {
    match o {
        Outcome::Delivered => Some((status::RECEIVED, String::new())),
        Outcome::Failed(st, why) => Some((*st, why.clone())),
        Outcome::Later(why) => Some((status::NO_RESPONSE, why.clone())),
        Outcome::Stopped => None,
    }
}

/// What a phone's RP answer means.
pub(super) fn classify_answer(a: PhoneAnswer) -> Outcome {
    match a {
        PhoneAnswer::Ack => Outcome::Delivered,
        PhoneAnswer::Error(c) if c == cause::MEMORY_CAPACITY_EXCEEDED => {
            Outcome::Later("RP-ERROR 22: memory capacity exceeded".into())
        }
        PhoneAnswer::Error(c) => Outcome::Failed(
            status::INCOMPATIBLE_DESTINATION,
            format!("RP-ERROR cause {c}"),
        ),
    }
}

impl Smsc {
    /// Starts delivering to `dest` unless that runs already or `dest` waits for its retry.
    pub(super) fn kick(self: &Arc<Self>, dest: &str) {
        {
            let q = lock(&self.queue);
            if q.waiting(dest) == 0 || q.deferred(dest, Instant::now()) {
                return;
            }
        }
        if !lock(&self.active).insert(dest.to_string()) {
            return;
        }
        let me = self.clone();
        let dest = dest.to_string();
        tokio::spawn(async move {
            me.drain(&dest).await;
            lock(&me.active).remove(&dest);
            // A message queued after the drain's last look and before it let go would wait
            // for nothing: look again.
            if !*me.stop.borrow() {
                me.kick(&dest);
            }
        });
    }

    /// Delivers `dest`'s messages in order until none is left or one must wait.
    async fn drain(self: &Arc<Self>, dest: &str) {
        if let Some(system_id) = dest.strip_prefix("esme:") {
            return self.drain_receipts(dest, system_id).await;
        }
        loop {
            let m = {
                let mut q = lock(&self.queue);
                if q.deferred(dest, Instant::now()) {
                    return;
                }
                let Some(m) = q.first(dest).cloned() else {
                    return;
                };
                q.begin_attempt(dest);
                m
            };
            let outcome = if m.expires <= unix_now() {
                Outcome::Failed(status::EXPIRED, "validity period expired".into())
            } else {
                tokio::select! {
                    o = self.attempt(&m) => o,
                    _ = self.stopped() => Outcome::Stopped,
                }
            };
            match outcome {
                Outcome::Stopped => return,
                Outcome::Later(why) => {
                    let mut m = m;
                    m.attempts += 1;
                    if let Err(e) = self.store.put(&m) {
                        tracing::warn!(error = %e, "IP-SM-GW: cannot note an attempt");
                    }
                    let mut q = lock(&self.queue);
                    q.update(&m);
                    let deferred = q.defer(dest, Instant::now() + self.settings.retry);
                    drop(q);
                    if !deferred {
                        // Its phone registered while this attempt ran: again, now.
                        continue;
                    }
                    self.ep.note(|| {
                        format!(
                            "SMS {} to {dest} not delivered ({why}); kept, next try in {} s or when it registers",
                            m.id,
                            self.settings.retry.as_secs()
                        )
                    });
                    return;
                }
                done => self.finish(m, done).await,
            }
        }
    }

    /// Delivers the receipts waiting for the application `system_id` (destination `dest`):
    /// up to the SMPP window of deliver_sm outstanding at once (SMPP 3.4 §2.8), as an
    /// application's own submit_sm are, rather than one round trip each; they go out oldest
    /// first, and the receipts a batch delivered leave the store under one flush. A receipt
    /// names its message, so nothing hangs on their order. A batch with one that must wait
    /// (the application is not bound, or full) defers the destination as [`Smsc::drain`]
    /// does; the ones that went are done.
    async fn drain_receipts(self: &Arc<Self>, dest: &str, system_id: &str) {
        let window = self.smpp.get().map_or(1, |s| s.window());
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                if q.deferred(dest, Instant::now()) {
                    return;
                }
                let batch = q.oldest(dest, window);
                if batch.is_empty() {
                    return;
                }
                q.begin_attempt(dest);
                batch
            };
            let now = unix_now();
            let sends = batch.iter().map(|m| async move {
                if m.expires <= now {
                    Outcome::Failed(status::EXPIRED, "validity period expired".into())
                } else {
                    self.to_application(system_id, m).await
                }
            });
            let outcomes = tokio::select! {
                o = futures_util::future::join_all(sends) => o,
                _ = self.stopped() => return,
            };
            let mut later = None;
            for (m, outcome) in batch.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Stopped => return,
                    Outcome::Later(why) => {
                        let mut m = m;
                        m.attempts += 1;
                        if let Err(e) = self.store.put(&m) {
                            tracing::warn!(error = %e, "IP-SM-GW: cannot note an attempt");
                        }
                        lock(&self.queue).update(&m);
                        later.get_or_insert((m.id, why));
                    }
                    done if m.report_of.is_none() => self.finish(m, done).await,
                    done => {
                        if let Some((st, why)) = final_status(&done) {
                            if st != status::RECEIVED {
                                tracing::info!(id = m.id, to = %m.to, %why, "IP-SM-GW: status report not delivered, dropped");
                            }
                        }
                        lock(&self.queue).remove(&m.to, m.id);
                        if let Err(e) = self.store.remove(m.id) {
                            tracing::warn!(error = %e, "IP-SM-GW: cannot drop a delivered receipt");
                        }
                    }
                }
            }
            let _ = self.store.durable().await;
            let Some((id, why)) = later else { continue };
            let deferred = lock(&self.queue).defer(dest, Instant::now() + self.settings.retry);
            if !deferred {
                // The application bound again while this batch ran: again, now.
                continue;
            }
            self.ep.note(|| {
                format!(
                    "receipt {id} to {dest} not delivered ({why}); kept, next try in {} s or when it binds",
                    self.settings.retry.as_secs()
                )
            });
            return;
        }
    }

    /// `m`'s outcome is final: it leaves the store, and its sender gets the report it asked
    /// for (kept and delivered like a message).
    async fn finish(self: &Arc<Self>, m: StoredSm, outcome: Outcome) {
        lock(&self.queue).remove(&m.to, m.id);
        if let Err(e) = self.store.remove(m.id) {
            tracing::warn!(error = %e, "IP-SM-GW: cannot drop a delivered SMS");
        }
        let Some((st, why)) = final_status(&outcome) else {
            return;
        };
        if m.report_of.is_some() {
            if st != status::RECEIVED {
                tracing::info!(id = m.id, to = %m.to, %why, "IP-SM-GW: status report not delivered, dropped");
            }
            let _ = self.store.durable().await;
            return;
        }
        if st != status::RECEIVED {
            self.ep
                .note(|| format!("SMS {} to {} failed: {why}", m.id, m.to));
        }
        if let Some(r) = self.report_for(&m, st) {
            let dest = r.to.clone();
            lock(&self.queue).push(r.clone());
            if let Err(e) = self.store.put(&r) {
                tracing::warn!(error = %e, "IP-SM-GW: cannot keep a status report");
            }
            let _ = self.store.durable().await;
            self.kick(&dest);
        } else {
            let _ = self.store.durable().await;
        }
    }

    /// The report on `m` with TP-ST `st`, if its sender asked for one: to the phone that sent
    /// it (an SMS-STATUS-REPORT from the centre's number), or to the application (a delivery
    /// receipt from the recipient to the application's source address).
    fn report_for(&self, m: &StoredSm, st: u8) -> Option<StoredSm> {
        if !m.report || (m.failure_only && st == status::RECEIVED) {
            return None;
        }
        let sc = &self.settings.address;
        let (to, tp_mr, from, from_toa) = match &m.origin {
            Origin::Phone { impu, tp_mr } => (
                self.number_of(impu).unwrap_or_else(|| impu.clone()),
                *tp_mr,
                sc.clone(),
                pdus::toa_of(sc),
            ),
            Origin::Esme { system_id } => {
                (format!("esme:{system_id}"), 0, m.from.clone(), m.from_toa)
            }
        };
        let id = self.store.next_id().ok()?;
        let now = unix_now();
        Some(StoredSm {
            id,
            origin: m.origin.clone(),
            from,
            from_toa,
            to,
            pid: 0,
            dcs: 0,
            udhi: false,
            ud: vec![0],
            report: false,
            received: now,
            expires: now.saturating_add(self.settings.validity.as_secs()),
            attempts: 0,
            report_of: Some(ReportOf {
                status: st,
                tp_mr,
                recipient: m.to.clone(),
                received: m.received,
                message_id: m.given_id.unwrap_or(m.id),
            }),
            failure_only: false,
            given_id: None,
        })
    }

    /// One attempt to deliver `m`.
    async fn attempt(self: &Arc<Self>, m: &StoredSm) -> Outcome {
        if let Some(system_id) = self.application_of(&m.to) {
            return self.to_application(&system_id, m).await;
        }
        let Ok(_permit) = self.deliveries.acquire().await else {
            return Outcome::Later("shutting down".into());
        };
        let target = if m.to.starts_with("sip:") || m.to.starts_with("tel:") {
            m.to.clone()
        } else {
            format!("tel:{}", m.to)
        };
        let mut idents = vec![target.clone()];
        if let Some(i) = self.impu_of(&m.to) {
            idents.push(i);
        }
        let (mr, rx) = self.wait_for_answer(idents);
        let sc = &self.settings.address;
        let body = match &m.report_of {
            Some(r) => pdus::status_report(r, m.received, mr, sc),
            None => pdus::deliver(m, mr, sc),
        };
        let outcome = match body {
            Ok(body) => self.send_rp_data(&target, body, rx).await,
            Err(e) => Outcome::Failed(
                status::INCOMPATIBLE_DESTINATION,
                format!("cannot encode it: {e}"),
            ),
        };
        lock(&self.waiting).remove(&mr);
        outcome
    }

    /// An RP-MR no delivery holds, and the channel its phone's answer comes on.
    fn wait_for_answer(&self, idents: Vec<String>) -> (u8, oneshot::Receiver<PhoneAnswer>) {
        let (tx, rx) = oneshot::channel();
        let mut w = lock(&self.waiting);
        let mut n = lock(&self.next_mr);
        // At most MAX_IN_FLIGHT (< 256) are held: a free one is always found.
        for _ in 0..256 {
            *n = n.wrapping_add(1);
            if !w.contains_key(&*n) {
                break;
            }
        }
        let mr = *n;
        w.insert(mr, Waiter { idents, tx });
        (mr, rx)
    }

    /// Sends `body` (RP-DATA) to `target` and waits for the 200 and then the RP-ACK.
    async fn send_rp_data(
        &self,
        target: &str,
        body: Vec<u8>,
        rx: oneshot::Receiver<PhoneAnswer>,
    ) -> Outcome {
        let status = match self.send(target, body).await {
            Some(s) => s,
            None => return Outcome::Later("no answer to the MESSAGE".into()),
        };
        if let Some(o) = classify(status) {
            return o;
        }
        match tokio::time::timeout(self.settings.ack_timeout, rx).await {
            Ok(Ok(a)) => classify_answer(a),
            _ => Outcome::Later(format!(
                "no RP-ACK within {} s",
                self.settings.ack_timeout.as_secs()
            )),
        }
    }

    /// A MESSAGE with `body` from the centre to `target`; its final status (None: none came).
    async fn send(&self, target: &str, body: Vec<u8>) -> Option<u16> {
        let sc = format!("tel:{}", self.settings.address);
        let mut req = self
            .ep
            .new_request(Method::Message, target, &sc, 1, Transport::Tcp);
        if let Some(r) = self.icscf.get() {
            req.headers.push("Route", r.clone());
        }
        req.headers.push("P-Asserted-Identity", format!("<{sc}>"));
        req.headers.push("Accept-Contact", "*;+g.3gpp.smsip");
        req.headers.push("Content-Type", CONTENT_TYPE);
        req.body = body.into();
        let (dest, t) = crate::cscf::next_hop(&self.resolver, &req).await?;
        let resp = tokio::time::timeout(
            MESSAGE_WAIT,
            self.ep.send_request(req, dest, t).final_response(),
        )
        .await
        .ok()?;
        Some(resp.status)
    }

    /// Sends the RP-ACK or RP-ERROR `body` to the phone `who` (answered 200, no RP answer
    /// follows).
    pub(super) async fn answer(&self, who: &str, body: Result<Vec<u8>, crate::sms::SmsError>) {
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "IP-SM-GW: cannot encode an RP answer");
                return;
            }
        };
        let sent = tokio::select! {
            s = self.send(who, body) => s,
            _ = self.stopped() => return,
        };
        match sent {
            Some(200..=299) => {}
            s => tracing::info!(%who, status = ?s, "IP-SM-GW: RP answer not taken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_answers_and_rp_answers_decide_between_later_and_never() {
        assert_eq!(classify(200), None);
        assert_eq!(classify(202), None);
        assert!(matches!(classify(480), Some(Outcome::Later(_))));
        assert!(matches!(classify(408), Some(Outcome::Later(_))));
        assert!(matches!(
            classify(404),
            Some(Outcome::Failed(status::INCOMPATIBLE_DESTINATION, _))
        ));
        assert!(matches!(classify(415), Some(Outcome::Failed(..))));
        assert_eq!(classify_answer(PhoneAnswer::Ack), Outcome::Delivered);
        assert!(matches!(
            classify_answer(PhoneAnswer::Error(22)),
            Outcome::Later(_)
        ));
        assert!(matches!(
            classify_answer(PhoneAnswer::Error(111)),
            Outcome::Failed(..)
        ));
    }
}
