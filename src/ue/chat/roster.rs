//! A group chat member's roster: one subscription to the conference event package (RFC 4575
//! over RFC 6665) per group, `SUBSCRIBE Event: conference` to the group's conference URI; the
//! focus answers with the whole roster (`state="full"`), then a partial document at each
//! join and leave. The client reads each NOTIFY's `conference-info` into a
//! [`ConferenceInfo`] and hands it to the application as a [`RosterEvent`].
//!
//! It runs beside [`super::ChatUe`] on the same UE: [`RosterParts::take`] sets the UE's
//! `Event: conference` NOTIFYs apart before the chat client takes the UE (as
//! [`crate::ue::Ue::split_presence_notifies`] does for presence). A subscription is refreshed
//! by a new one at half its granted Expires; a NOTIFY of a dialog the client no longer
//! follows (an older one, a group it stopped watching) is answered 481, which ends that
//! subscription at the focus (RFC 6665 §4.1.3).
//!
//! ```text
//!  watch ──> SUBSCRIBE (new Call-ID) ──2xx──> [Up] ──half of Expires──> SUBSCRIBE (new Call-ID)
//!               │ non-2xx / no answer                 NOTIFY (this Call-ID) ──> RosterEvent::Info
//!               └──> RosterEvent::Ended (the reason)  NOTIFY terminated      ──> RosterEvent::Ended
//!  unwatch ──> forget the Call-ID (its next NOTIFY gets 481)
//! ```

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::conf::conference_info::{self, ConferenceInfo, InfoLimits};
use crate::sip::endpoint::Incoming;
use crate::sip::{new_call_id, Endpoint, IncomingRequest, Method, Request};
use crate::ue::{Ue, UeConfig};

/// The Expires asked for.
pub const ROSTER_EXPIRES: u32 = 3600;
/// How long a SUBSCRIBE may go unanswered.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);
/// Groups one client follows at most (more `watch` calls are ignored).
pub const MAX_ROSTERS: usize = 256;

/// What the application hears about a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterEvent {
    /// A NOTIFY's document: the whole roster (`info.state` full) or the users that changed.
    Info {
        /// The group's conference URI, as given to [`RosterWatcher::watch`].
        group: String,
        /// What the focus says.
        info: ConferenceInfo,
    },
    /// The subscription could not be made or the focus ended it.
    Ended {
        /// The group's conference URI.
        group: String,
        /// Why (the SIP answer or the Subscription-State).
        reason: String,
    },
}

/// Is this a NOTIFY of the conference event package (RFC 4575 §3)?
pub fn is_conference_notify(req: &Request) -> bool {
    req.method == Method::Notify
        && req.headers.get("Event").is_some_and(|e| {
            let pkg = e.split(';').next().unwrap_or("").trim();
            pkg.eq_ignore_ascii_case(conference_info::EVENT)
        })
}

/// The parts of a UE the roster subscriptions need, taken before the chat client takes it.
pub struct RosterParts {
    ep: Endpoint,
    cfg: UeConfig,
    contact: String,
    notifies: mpsc::UnboundedReceiver<IncomingRequest>,
}

impl RosterParts {
    /// Sets the UE's conference NOTIFYs apart; everything else keeps coming where it did.
    pub fn take(ue: &mut Ue) -> RosterParts {
        let (rest_tx, rest_rx) = mpsc::unbounded_channel();
        let (conf_tx, conf_rx) = mpsc::unbounded_channel();
        let mut all = std::mem::replace(&mut ue.rx, rest_rx);
        tokio::spawn(async move {
            while let Some(inc) = all.recv().await {
                match inc {
                    Incoming::Request(r) if is_conference_notify(&r.request) => {
                        if let Err(mpsc::error::SendError(r)) = conf_tx.send(r) {
                            let mut no = r.request.response(481, None);
                            no.ensure_to_tag();
                            r.tx.respond(no);
                        }
                    }
                    other => {
                        let _ = rest_tx.send(other);
                    }
                }
            }
        });
        // The subscriptions need the identity and the P-CSCF, not the credentials.
        let mut cfg = ue.cfg.clone();
        cfg.password.clear();
        cfg.k = [0; 16];
        cfg.opc = [0; 16];
        RosterParts {
            ep: ue.endpoint().clone(),
            cfg,
            contact: ue.contact(),
            notifies: conf_rx,
        }
    }
}

/// Why a roster SUBSCRIBE did not make a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SubscribeError {
    /// A non-2xx final answer.
    #[error("{0} {1}")]
    Refused(u16, String),
    /// No final answer within [`SUBSCRIBE_WAIT`].
    #[error("no answer to SUBSCRIBE")]
    NoAnswer,
}

enum RosterCmd {
    Watch(String),
    Unwatch(String),
    /// A SUBSCRIBE's final answer: the granted Expires, or why not.
    Answered {
        group: String,
        call_id: String,
        result: Result<u32, SubscribeError>,
    },
    /// Half of a subscription's Expires passed: a new one, if it is still the group's newest.
    Refresh(String, String),
}

/// The application's handle on the roster subscriptions; dropping it ends the driver.
pub struct RosterWatcher {
    cmd: mpsc::UnboundedSender<RosterCmd>,
}

impl RosterWatcher {
    /// Starts the driver on `parts`; events come on the receiver.
    pub fn start(parts: RosterParts) -> (RosterWatcher, mpsc::UnboundedReceiver<RosterEvent>) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            parts,
            cmd_tx: cmd_tx.downgrade(),
            events: ev_tx,
            by_call: HashMap::new(),
            current: HashMap::new(),
            cseq: 0,
        };
        tokio::spawn(driver.run(cmd_rx));
        (RosterWatcher { cmd: cmd_tx }, ev_rx)
    }

    /// Follows the roster of the group at `group` (its conference URI); a group already
    /// followed is subscribed again (a fresh full state).
    pub fn watch(&self, group: &str) {
        let _ = self.cmd.send(RosterCmd::Watch(group.to_string()));
    }

    /// Stops following `group`.
    pub fn unwatch(&self, group: &str) {
        let _ = self.cmd.send(RosterCmd::Unwatch(group.to_string()));
    }
}

struct Driver {
    parts: RosterParts,
    cmd_tx: mpsc::WeakUnboundedSender<RosterCmd>,
    events: mpsc::UnboundedSender<RosterEvent>,
    /// Call-ID of a subscription we follow -> its group.
    by_call: HashMap<String, String>,
    /// Group -> the Call-ID of its newest subscription.
    current: HashMap<String, String>,
    cseq: u32,
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<RosterCmd>) {
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.on_cmd(c),
                    None => return,
                },
                n = self.parts.notifies.recv() => match n {
                    Some(n) => self.on_notify(n),
                    None => return,
                },
            }
        }
    }

    fn on_cmd(&mut self, c: RosterCmd) {
        match c {
            RosterCmd::Watch(group) => {
                if !self.current.contains_key(&group) && self.current.len() >= MAX_ROSTERS {
                    tracing::warn!(%group, "too many rosters followed: not subscribing");
                    return;
                }
                self.subscribe(group);
            }
            RosterCmd::Unwatch(group) => {
                if let Some(c) = self.current.remove(&group) {
                    self.by_call.remove(&c);
                }
            }
            RosterCmd::Answered {
                group,
                call_id,
                result,
            } => {
                if self.current.get(&group) != Some(&call_id) {
                    return; // superseded or unwatched meanwhile
                }
                match result {
                    Ok(expires) if expires > 0 => {
                        let weak = self.cmd_tx.clone();
                        let half = Duration::from_secs((expires as u64 / 2).max(30));
                        tokio::spawn(async move {
                            tokio::time::sleep(half).await;
                            if let Some(tx) = weak.upgrade() {
                                let _ = tx.send(RosterCmd::Refresh(group, call_id));
                            }
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.current.remove(&group);
                        self.by_call.remove(&call_id);
                        let reason = e.to_string();
                        let _ = self.events.send(RosterEvent::Ended { group, reason });
                    }
                }
            }
            RosterCmd::Refresh(group, call_id) => {
                // Only the newest subscription of a group still followed is refreshed.
                if self.current.get(&group) == Some(&call_id) {
                    self.subscribe(group);
                }
            }
        }
    }

    /// A new subscription (new dialog) for `group`; an older one is forgotten.
    fn subscribe(&mut self, group: String) {
        let p = &self.parts;
        self.cseq += 1;
        let mut r = p.ep.new_request(
            Method::Subscribe,
            &group,
            &p.cfg.impu,
            self.cseq,
            p.cfg.transport,
        );
        let call_id = r
            .headers
            .get("Call-ID")
            .map(str::to_string)
            .unwrap_or_else(|| new_call_id(&p.ep.local_addr().ip().to_string()));
        r.headers.push("Contact", format!("<{}>", p.contact));
        r.headers.push("Event", conference_info::EVENT);
        r.headers.push("Accept", conference_info::CONTENT_TYPE);
        r.headers.push("Expires", ROSTER_EXPIRES.to_string());
        if let Some(old) = self.current.insert(group.clone(), call_id.clone()) {
            self.by_call.remove(&old);
        }
        self.by_call.insert(call_id.clone(), group.clone());
        let tx = p.ep.send_request(r, p.cfg.pcscf, p.cfg.transport);
        let back = self.cmd_tx.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(SUBSCRIBE_WAIT, tx.final_response()).await {
                Ok(resp) if resp.is_success() => Ok(resp
                    .headers
                    .get("Expires")
                    .and_then(|e| e.trim().parse().ok())
                    .unwrap_or(ROSTER_EXPIRES)),
                Ok(resp) => Err(SubscribeError::Refused(
                    resp.status,
                    resp.reason.to_string(),
                )),
                Err(_) => Err(SubscribeError::NoAnswer),
            };
            if let Some(tx) = back.upgrade() {
                let _ = tx.send(RosterCmd::Answered {
                    group,
                    call_id,
                    result,
                });
            }
        });
    }

    fn on_notify(&mut self, inc: IncomingRequest) {
        let req = &inc.request;
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let Some(group) = self.by_call.get(&call_id).cloned() else {
            let mut no = req.response(481, Some("Subscription does not exist"));
            no.ensure_to_tag();
            inc.tx.respond(no);
            return;
        };
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        let state = req
            .headers
            .get("Subscription-State")
            .unwrap_or("")
            .to_string();
        let info = (!req.body.is_empty())
            .then(|| ConferenceInfo::parse(&req.body, &InfoLimits::default()));
        inc.tx.respond(ok);
        match info {
            Some(Ok(info)) => {
                let _ = self.events.send(RosterEvent::Info {
                    group: group.clone(),
                    info,
                });
            }
            Some(Err(e)) => tracing::info!(%group, error = %e, "conference NOTIFY not read"),
            None => {}
        }
        if state.trim().to_ascii_lowercase().starts_with("terminated") {
            self.by_call.remove(&call_id);
            if self.current.get(&group) == Some(&call_id) {
                self.current.remove(&group);
                let _ = self.events.send(RosterEvent::Ended {
                    group,
                    reason: state,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_conference_notifies_are_set_apart() {
        let mut n = Request::new(Method::Notify, "sip:a@x".to_string());
        n.headers.push("Event", "conference;id=1");
        assert!(is_conference_notify(&n));
        let mut p = Request::new(Method::Notify, "sip:a@x".to_string());
        p.headers.push("Event", "presence");
        assert!(!is_conference_notify(&p));
        let mut s = Request::new(Method::Subscribe, "sip:a@x".to_string());
        s.headers.push("Event", "conference");
        assert!(!is_conference_notify(&s));
    }
}
