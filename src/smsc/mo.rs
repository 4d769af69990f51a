//! What phones send the IP-SM-GW (TS 24.341 §5.3.1, §5.3.2.5): an SMS-SUBMIT in RP-DATA is
//! stored, flushed, answered `202 Accepted`, then acknowledged in a MESSAGE of its own with an
//! RP-ACK carrying the SMS-SUBMIT-REPORT (or an RP-ERROR with the cause); a phone's RP-ACK
//! or RP-ERROR to what the centre delivered is matched to its delivery by RP-MR; an RP-SMMA
//! (room again) is acknowledged and what waits for the phone goes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cscf::reject;
use crate::sip::{IncomingRequest, Request};
use crate::sms::rp::{cause, CONTENT_TYPE};

use super::pdus::{self, FromPhone};
use super::{lock, unix_now, PhoneAnswer, Smsc};

/// How long a SUBMIT is remembered to recognise it sent again.
const RECENT_FOR: Duration = Duration::from_secs(60);
/// SUBMITs remembered at most.
const RECENT_MAX: usize = 4096;

/// A SUBMIT as sent: its sender, RP-MR and the RP-DATA's octets.
type SubmitKey = (String, u8, Vec<u8>);

/// Recent SUBMITs -> when they came.
#[derive(Default)]
pub(super) struct Recent {
    seen: HashMap<SubmitKey, Instant>,
    order: VecDeque<(SubmitKey, Instant)>,
}

impl Recent {
    /// Whether this SUBMIT came already (and remembers it).
    fn check(&mut self, key: SubmitKey, now: Instant) -> bool {
        while let Some((k, t)) = self.order.front() {
            if now.duration_since(*t) < RECENT_FOR && self.order.len() < RECENT_MAX {
                break;
            }
            if self.seen.get(k) == Some(t) {
                self.seen.remove(k);
            }
            self.order.pop_front();
        }
        if self.seen.contains_key(&key) {
            return true;
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
        false
    }
}

/// Who sent `req`: its P-Asserted-Identity (the P-CSCF set it), else From.
pub(super) fn sender(req: &Request) -> Option<String> {
    let v = req
        .headers
        .values("P-Asserted-Identity")
        .first()
        .copied()
        .or_else(|| req.headers.get("From"))?;
    crate::sip::NameAddr::parse(v).ok().map(|na| na.uri.aor())
}

impl Smsc {
    /// A MESSAGE from a phone (through its S-CSCF and the iFC).
    pub(super) async fn message(self: &Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let ct = req.headers.get("Content-Type").unwrap_or("");
        if !ct.trim().eq_ignore_ascii_case(CONTENT_TYPE) {
            let mut r = reject(
                req,
                415,
                &self.host,
                "the IP-SM-GW takes application/vnd.3gpp.sms",
            );
            r.headers.push("Accept", CONTENT_TYPE);
            inc.tx.respond(r);
            return;
        }
        let Some(who) = sender(req) else {
            inc.tx.respond(reject(
                req,
                400,
                &self.host,
                "no P-Asserted-Identity or From",
            ));
            return;
        };
        let read = pdus::read(&req.body);
        match read {
            Err(r) => {
                let Some(mr) = r.rp_mr else {
                    inc.tx.respond(reject(
                        req,
                        400,
                        &self.host,
                        &format!("the body is no RP message: {}", r.why),
                    ));
                    return;
                };
                tracing::info!(%who, why = %r.why, cause = r.cause, "IP-SM-GW: RP message refused");
                self.accepted(&inc);
                self.answer(&who, pdus::rp_error(mr, r.cause)).await;
            }
            Ok(FromPhone::Submit { rp_mr, submit }) => {
                let key = (who.clone(), rp_mr, req.body.to_vec());
                if lock(&self.recent).check(key, Instant::now()) {
                    // Sent again (it missed our RP-ACK): the same answer, nothing stored twice.
                    self.accepted(&inc);
                    self.answer(&who, pdus::submit_ack(rp_mr, unix_now())).await;
                    return;
                }
                self.submit(inc, &who, rp_mr, submit).await;
            }
            Ok(FromPhone::Ack { rp_mr }) => {
                self.answered(&inc, &who, rp_mr, PhoneAnswer::Ack);
            }
            Ok(FromPhone::Error { rp_mr, cause }) => {
                self.answered(&inc, &who, rp_mr, PhoneAnswer::Error(cause));
            }
            Ok(FromPhone::Smma { rp_mr }) => {
                let mut ok = req.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                self.answer(
                    &who,
                    crate::sms::RpMessage::Ack {
                        dir: crate::sms::Direction::NetworkToMs,
                        mr: rp_mr,
                        tpdu: None,
                    }
                    .encode(),
                )
                .await;
                let mut dests = vec![who.clone()];
                dests.extend(self.number_of(&who));
                for d in dests {
                    lock(&self.queue).wake(&d);
                    self.kick(&d);
                }
            }
        }
    }

    /// 202 Accepted: the answer to an RP-DATA comes in a MESSAGE of its own.
    fn accepted(&self, inc: &IncomingRequest) {
        let mut r = inc.request.response(202, None);
        r.ensure_to_tag();
        inc.tx.respond(r);
    }

    /// An SMS-SUBMIT: stored and flushed, 202, then the RP-ACK; then delivered.
    async fn submit(
        self: &Arc<Self>,
        inc: IncomingRequest,
        who: &str,
        rp_mr: u8,
        submit: crate::sms::tpdu::Submit,
    ) {
        let now = unix_now();
        let from = pdus::sender_address(self.number_of(who).as_deref(), who);
        let stored = self
            .store
            .next_id()
            .map_err(|e| e.to_string())
            .and_then(|id| {
                pdus::stored_from_submit(
                    id,
                    who,
                    &from,
                    &submit,
                    now,
                    self.settings.validity.as_secs(),
                    self.settings.max_validity.as_secs(),
                )
                .map_err(|r| format!("{} (cause {})", r.why, r.cause))
            });
        let m = match stored {
            Ok(m) => m,
            Err(why) => {
                tracing::info!(%who, %why, "IP-SM-GW: SMS-SUBMIT refused");
                self.accepted(&inc);
                let c = if why.contains("no destination") {
                    cause::UNASSIGNED_NUMBER
                } else {
                    cause::INVALID_MANDATORY_INFORMATION
                };
                self.answer(who, pdus::rp_error(rp_mr, c)).await;
                return;
            }
        };
        if !lock(&self.queue).push(m.clone()) {
            tracing::warn!(
                held = self.settings.max_stored,
                "IP-SM-GW: store full, SMS refused (RP cause 42)"
            );
            self.accepted(&inc);
            self.answer(who, pdus::rp_error(rp_mr, cause::CONGESTION))
                .await;
            return;
        }
        let kept = match self.store.put(&m) {
            Ok(()) => self.store.durable().await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "IP-SM-GW: cannot store an SMS (RP cause 41)");
            lock(&self.queue).remove(&m.to, m.id);
            self.accepted(&inc);
            self.answer(who, pdus::rp_error(rp_mr, cause::TEMPORARY_FAILURE))
                .await;
            return;
        }
        self.ep.note(|| {
            format!(
                "SMS {} from {} to {} stored ({} waiting for {})",
                m.id,
                m.from,
                m.to,
                lock(&self.queue).waiting(&m.to),
                m.to
            )
        });
        self.accepted(&inc);
        self.answer(who, pdus::submit_ack(rp_mr, now)).await;
        self.kick(&m.to);
    }

    /// A phone's RP-ACK or RP-ERROR: 200 OK, and the delivery that used `rp_mr` hears it.
    fn answered(&self, inc: &IncomingRequest, who: &str, rp_mr: u8, a: PhoneAnswer) {
        let mut ok = inc.request.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        let number = self.number_of(who);
        let Some(x) = lock(&self.waiting).remove(&rp_mr) else {
            tracing::info!(%who, rp_mr, "IP-SM-GW: RP answer for nothing in flight");
            return;
        };
        let tied = x
            .idents
            .iter()
            .any(|i| i == who || number.as_deref().is_some_and(|n| i.ends_with(n)));
        if !tied {
            // The centre never saw this user's REGISTER bodies: the RP-MR alone decides,
            // which one delivery holds at a time.
            tracing::debug!(%who, rp_mr, "IP-SM-GW: RP answer matched by RP-MR alone");
        }
        let _ = x.tx.send(a);
    }
}
