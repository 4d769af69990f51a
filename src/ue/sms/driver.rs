//! The SMS client's tokio task: stands between the UE's SIP endpoint and whatever else serves
//! it (the chat client), answers each `application/vnd.3gpp.sms` MESSAGE addressed to us with
//! 200 OK (TS 24.341 §5.3.2.4: the RP answer goes in a MESSAGE of its own) and feeds it to
//! the [`SmsCore`], sends the core's MESSAGEs through the P-CSCF and runs its timer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::core::{Input, Origin, Output, SmsCore};
use super::{Cmd, SmsEvent, SmsOptions};
use crate::sip::endpoint::Incoming;
use crate::sip::{Endpoint, IncomingRequest, Method, NameAddr, Request, Response};
use crate::sms::rp::CONTENT_TYPE;
use crate::ue::{Ue, UeConfig};

/// Sends of an RP answer at most, when the network answers 503 with Retry-After.
const RP_ANSWER_TRIES: u32 = 3;
/// The longest Retry-After an RP answer waits for (the centre waits 20 s for it in all).
const RP_ANSWER_MAX_WAIT: Duration = Duration::from_secs(5);

/// How long to wait before sending again, for a 503 with Retry-After (RFC 3261 §20.33).
pub(super) fn retry_after(r: &Response) -> Option<Duration> {
    if r.status != 503 {
        return None;
    }
    let v = r.headers.get("Retry-After")?;
    let secs: u64 = v.split([';', '(', ' ']).next()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(RP_ANSWER_MAX_WAIT))
}

/// True for a MESSAGE whose body is an RP message.
pub(super) fn is_sms(req: &Request) -> bool {
    req.method == Method::Message
        && req.headers.get("Content-Type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
        })
}

pub(super) struct Driver {
    ep: Endpoint,
    cfg: UeConfig,
    contact: String,
    opts: SmsOptions,
    core: SmsCore,
    events: mpsc::UnboundedSender<SmsEvent>,
    answers_tx: mpsc::UnboundedSender<Input>,
    answers: mpsc::UnboundedReceiver<Input>,
}

impl Driver {
    pub(super) fn new(
        ue: &Ue,
        opts: SmsOptions,
        events: mpsc::UnboundedSender<SmsEvent>,
    ) -> Driver {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        Driver {
            ep: ue.endpoint().clone(),
            cfg: ue.cfg.clone(),
            contact: ue.contact(),
            opts,
            core: SmsCore::new(rand::random()),
            events,
            answers_tx,
            answers,
        }
    }

    /// Serves until the UE's endpoint stops. Everything that is not ours goes on to `pass`;
    /// when the application lets go of its handle, SMS MESSAGEs are still answered.
    pub(super) async fn run(
        mut self,
        mut sip: mpsc::UnboundedReceiver<Incoming>,
        pass: mpsc::UnboundedSender<Incoming>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) {
        loop {
            let due = self.core.poll_timeout();
            let timer = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                inc = sip.recv() => match inc {
                    Some(Incoming::Request(r)) if self.ours(&r) => self.on_sms(r),
                    Some(other) => {
                        let _ = pass.send(other);
                    }
                    None => break,
                },
                Some(c) = cmds.recv() => match c {
                    Cmd::Send { to, text, reply } => {
                        let r = self.core.submit(Instant::now(), &to, &text, &self.opts.smsc);
                        let _ = reply.send(r);
                    }
                },
                Some(a) = self.answers.recv() => self.core.handle(Instant::now(), a),
                _ = timer => self.core.handle_timeout(Instant::now()),
            }
            self.drive();
        }
    }

    fn ours(&self, inc: &IncomingRequest) -> bool {
        // A request for another contact is left to the chat client, which answers 404.
        is_sms(&inc.request) && crate::ue::addressed_to(&inc.request, &self.contact, &self.cfg.impu)
    }

    fn on_sms(&mut self, inc: IncomingRequest) {
        let req = &inc.request;
        let from = req
            .headers
            .get("From")
            .and_then(|f| NameAddr::parse(f).ok())
            .map(|na| na.uri.to_string());
        let mut ok = req.response(if from.is_some() { 200 } else { 400 }, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        if let Some(uri) = from {
            let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
            let from = Origin { uri, call_id };
            let body = req.body.to_vec();
            self.core
                .handle(Instant::now(), Input::Message { from, body });
        }
    }

    fn drive(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
                Output::Mms { from, notification } => {
                    // The fetch is bounded (size, time); SMS go on meanwhile.
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        let fetched = super::mms::fetch(&notification.content_location).await;
                        let _ = events.send(SmsEvent::Mms {
                            from,
                            notification,
                            fetched,
                        });
                    });
                }
                Output::Message {
                    to,
                    body,
                    about,
                    in_reply_to,
                } => {
                    let ep = self.ep.clone();
                    let (pcscf, t) = (self.cfg.pcscf, self.cfg.transport);
                    let impu = self.cfg.impu.clone();
                    let body = Bytes::from(body);
                    let in_reply_to = in_reply_to.filter(|c| !c.is_empty());
                    let request = move |cseq: u32| {
                        let mut req = ep.new_request(Method::Message, &to, &impu, cseq, t);
                        if let Some(call_id) = &in_reply_to {
                            req.headers.push("In-Reply-To", call_id.clone());
                        }
                        req.headers.push("Content-Type", CONTENT_TYPE);
                        req.body = body.clone();
                        req
                    };
                    let ep = self.ep.clone();
                    let answers = self.answers_tx.clone();
                    tokio::spawn(async move {
                        let mut tries = 1;
                        let r = loop {
                            let r = ep
                                .send_request(request(tries), pcscf, t)
                                .final_response()
                                .await;
                            // An RP-ACK / RP-ERROR has no answer of its own that would make
                            // the core send it again: one the network refused as overloaded
                            // goes again after its Retry-After (RFC 3261 §21.5.4), as a CS
                            // phone repeats its CP-DATA (TS 24.011 §5.3.2.1); otherwise the
                            // centre holds the message for its whole RP-ACK timeout and retry.
                            match retry_after(&r) {
                                Some(wait) if about.is_none() && tries < RP_ANSWER_TRIES => {
                                    tries += 1;
                                    tokio::time::sleep(wait).await;
                                }
                                _ => break r,
                            }
                        };
                        if let Some((id, rp_mr)) = about {
                            let _ = answers.send(Input::Answered {
                                id,
                                rp_mr,
                                status: r.status,
                                reason: r.reason,
                            });
                        }
                    });
                }
            }
        }
    }
}
