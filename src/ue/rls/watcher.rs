//! The tokio driver of a list subscription ([`super::ListSubscription`], [`super::BuddyList`]):
//! it sends the SUBSCRIBEs through the UE's P-CSCF from the UE's own endpoint, keeps the
//! dialog (RFC 6665 §4.1.2: made by the 2xx or by a NOTIFY that comes first; the route set
//! from Record-Route, RFC 3261 §12.1), answers the NOTIFYs and reports what changed.

use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    list_uri, parse_body, BuddyList, Endpoint, Incoming, IncomingRequest, ListChange, ListError,
    ListSubscription, Method, NameAddr, Request, Response, RlmiLimits, SubState,
    SubscriptionStatus, Transmit, Ue, UeConfig, ACCEPT, END_WAIT,
};

/// What the watcher tells its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEvent {
    /// The subscription's state changed.
    Status(SubscriptionStatus),
    /// A NOTIFY changed buddies.
    Changed(ListChange),
}

/// The application's handle on a running list subscription.
pub struct ListWatcher {
    /// The list URI.
    pub uri: String,
    stop: mpsc::Sender<oneshot::Sender<()>>,
    settled: watch::Receiver<bool>,
}

/// The subscription dialog, on the subscriber's side.
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    /// Our From (with our tag).
    from: String,
    local_tag: String,
    /// To: with the RLS's tag once established.
    to: String,
    established: bool,
    target: String,
    route: Vec<String>,
    cseq: u32,
}

/// The tag parameter of a From/To value (also when its URI does not parse).
fn tag_of(v: &str) -> Option<String> {
    if let Ok(na) = NameAddr::parse(v) {
        return na.tag().map(str::to_string);
    }
    let params = v.rsplit_once('>').map_or(v, |(_, p)| p);
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| v.trim().to_string())
    })
}

fn uri_of(v: &str) -> Option<String> {
    NameAddr::parse(v).ok().map(|na| na.uri.to_string())
}

/// Is this a NOTIFY of the `presence` event package (RFC 3856 §6.2)?
pub fn is_presence_notify(req: &Request) -> bool {
    req.method == Method::Notify
        && req.headers.get("Event").is_some_and(|e| {
            let pkg = e.split(';').next().unwrap_or("").trim();
            pkg.eq_ignore_ascii_case("presence")
        })
}

impl Ue {
    /// Sets the UE's presence NOTIFYs apart: they come out of the returned receiver, every
    /// other request keeps coming where it did (the chat client that takes the UE's incoming
    /// requests next). A NOTIFY that nobody takes any more is answered 481 (RFC 6665 §4.1.3).
    pub fn split_presence_notifies(&mut self) -> mpsc::UnboundedReceiver<IncomingRequest> {
        let (rest_tx, rest_rx) = mpsc::unbounded_channel();
        let (pres_tx, pres_rx) = mpsc::unbounded_channel();
        let mut all = std::mem::replace(&mut self.rx, rest_rx);
        tokio::spawn(async move {
            while let Some(inc) = all.recv().await {
                match inc {
                    Incoming::Request(r) if is_presence_notify(&r.request) => {
                        if let Err(mpsc::error::SendError(r)) = pres_tx.send(r) {
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
        pres_rx
    }
}

struct Driver {
    ep: Endpoint,
    cfg: UeConfig,
    contact: String,
    uri: String,
    list: BuddyList,
    sub: ListSubscription,
    dialog: Option<Dialog>,
    answers_tx: mpsc::UnboundedSender<(String, Response)>,
    events: mpsc::Sender<ListEvent>,
    status: Option<SubscriptionStatus>,
    settled: watch::Sender<bool>,
    limits: RlmiLimits,
}

impl ListWatcher {
    /// Subscribes to the RCS list of the UE's identity (`cfg.impu`) for `expires` seconds,
    /// from `ep` (the UE's endpoint, `contact` its Contact), reading the NOTIFYs that
    /// [`Ue::split_presence_notifies`] set apart. `None` when the identity has no list URI.
    /// Events come on the receiver (64 at most in flight; the watcher waits for room).
    pub fn start(
        ep: Endpoint,
        cfg: UeConfig,
        contact: String,
        notifies: mpsc::UnboundedReceiver<IncomingRequest>,
        expires: u32,
    ) -> Option<(ListWatcher, mpsc::Receiver<ListEvent>)> {
        let uri = list_uri(&cfg.impu)?;
        let limits = RlmiLimits::default();
        let (events, events_rx) = mpsc::channel(64);
        let (stop, stop_rx) = mpsc::channel(1);
        let (settled, settled_rx) = watch::channel(false);
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let d = Driver {
            ep,
            cfg,
            contact,
            list: BuddyList::new(&uri, limits.max_resources),
            uri: uri.clone(),
            sub: ListSubscription::new(expires),
            dialog: None,
            answers_tx,
            events,
            status: None,
            settled,
            limits,
        };
        tokio::spawn(d.run(notifies, answers_rx, stop_rx));
        Some((
            ListWatcher {
                uri,
                stop,
                settled: settled_rx,
            },
            events_rx,
        ))
    }

    /// Waits (at most `wait`) until the first full state came, or the subscription failed;
    /// true when it did within the time.
    /// (The future does not borrow the watcher.)
    pub fn settled(
        &self,
        wait: std::time::Duration,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut rx = self.settled.clone();
        async move {
            tokio::time::timeout(wait, rx.wait_for(|s| *s))
                .await
                .is_ok_and(|r| r.is_ok())
        }
    }

    /// Ends the subscription (`Expires: 0`, RFC 6665 §4.1.2.3) and waits for it to end,
    /// at most [`END_WAIT`] and a little.
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(END_WAIT + std::time::Duration::from_secs(1), rx).await;
        }
    }
}

impl Driver {
    async fn run(
        mut self,
        mut notifies: mpsc::UnboundedReceiver<IncomingRequest>,
        mut answers: mpsc::UnboundedReceiver<(String, Response)>,
        mut stop: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        self.sub.start();
        let mut stopping = false;
        let mut done: Option<oneshot::Sender<()>> = None;
        let mut end_by: Option<tokio::time::Instant> = None;
        loop {
            self.flush();
            self.report().await;
            if self.sub.is_ended() {
                break;
            }
            let timer = self
                .sub
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .into_iter()
                .chain(end_by)
                .min();
            tokio::select! {
                inc = notifies.recv() => match inc {
                    Some(inc) => self.on_notify(inc).await,
                    // The UE's endpoint is gone: nothing to end.
                    None => break,
                },
                Some((call_id, resp)) = answers.recv() => self.on_answer(&call_id, &resp),
                _ = sleep_until(timer) => {
                    if end_by.is_some_and(|e| e <= tokio::time::Instant::now()) {
                        break;
                    }
                    self.sub.handle_timeout(Instant::now());
                }
                s = stop.recv(), if !stopping => {
                    stopping = true;
                    done = s;
                    let has_dialog = self.dialog.as_ref().is_some_and(|d| d.established);
                    self.sub.stop(has_dialog);
                    end_by = Some(tokio::time::Instant::now() + END_WAIT);
                }
            }
        }
        let _ = self.settled.send(true);
        if let Some(d) = done {
            let _ = d.send(());
        }
    }

    /// Sends what the subscription wants sent.
    fn flush(&mut self) {
        while let Some(t) = self.sub.poll_transmit() {
            let req = match t {
                Transmit::Subscribe(expires) => Some(self.initial(expires)),
                Transmit::Refresh(expires) => self.in_dialog(expires),
                Transmit::Unsubscribe => self.in_dialog(0),
            };
            let Some(req) = req else {
                // No dialog to refresh in: as if the refresh failed (a new one later).
                self.sub.on_response(Instant::now(), 481, None, None);
                continue;
            };
            let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
            let tx = self
                .ep
                .send_request(req, self.cfg.pcscf, self.cfg.transport);
            let back = self.answers_tx.clone();
            // Bounded by the transaction's Timer F (RFC 3261 §17.1.2.2: 408 after 64*T1).
            tokio::spawn(async move {
                let r = tx.final_response().await;
                let _ = back.send((call_id, r));
            });
        }
    }

    fn headers(&self, r: &mut Request, expires: u32) {
        r.headers.push("Contact", format!("<{}>", self.contact));
        r.headers.push("Event", "presence");
        // RFC 4662 §4.1: we take lists.
        r.headers.push("Supported", "eventlist");
        r.headers.push("Accept", ACCEPT);
        r.headers.push("Expires", expires.to_string());
    }

    /// An initial SUBSCRIBE: a new dialog (RFC 6665 §4.1.2.1), whose versions start again.
    fn initial(&mut self, expires: u32) -> Request {
        let mut r = self.ep.new_request(
            Method::Subscribe,
            &self.uri,
            &self.cfg.impu,
            1,
            self.cfg.transport,
        );
        self.headers(&mut r, expires);
        let from = r.headers.get("From").unwrap_or_default().to_string();
        self.dialog = Some(Dialog {
            call_id: r.headers.get("Call-ID").unwrap_or_default().to_string(),
            local_tag: tag_of(&from).unwrap_or_default(),
            from,
            to: r.headers.get("To").unwrap_or_default().to_string(),
            established: false,
            target: self.uri.clone(),
            route: Vec::new(),
            cseq: 1,
        });
        self.list.new_subscription();
        r
    }

    /// A SUBSCRIBE inside the dialog (RFC 3261 §12.2.1.1); `None` when there is none.
    fn in_dialog(&mut self, expires: u32) -> Option<Request> {
        let d = self.dialog.as_mut().filter(|d| d.established)?;
        d.cseq += 1;
        let d = d.clone();
        let mut r = Request::new(Method::Subscribe, d.target.clone());
        r.headers.push("Via", self.ep.new_via(self.cfg.transport));
        r.headers.push("Max-Forwards", "70");
        r.headers.push("From", d.from.clone());
        r.headers.push("To", d.to.clone());
        r.headers.push("Call-ID", d.call_id.clone());
        r.headers.push("CSeq", format!("{} SUBSCRIBE", d.cseq));
        for route in &d.route {
            r.headers.push("Route", route.clone());
        }
        self.headers(&mut r, expires);
        Some(r)
    }

    fn on_answer(&mut self, call_id: &str, resp: &Response) {
        let Some(d) = self.dialog.as_mut().filter(|d| d.call_id == call_id) else {
            return; // an answer in a dialog given up already
        };
        if resp.is_success() && !d.established {
            d.established = true;
            d.to = resp.headers.get("To").unwrap_or_default().to_string();
            if let Some(t) = resp.headers.get("Contact").and_then(uri_of) {
                d.target = t;
            }
        }
        // The route set (RFC 3261 §12.1.2: the 2xx's Record-Route, reversed), also when a
        // NOTIFY that came first made the dialog: proxies record-route the SUBSCRIBE, not
        // the in-dialog NOTIFY, so the NOTIFY gave none.
        if resp.is_success() && d.route.is_empty() {
            d.route = resp
                .headers
                .values("Record-Route")
                .iter()
                .rev()
                .map(|s| s.to_string())
                .collect();
        }
        let num = |h: &str| resp.headers.get(h).and_then(|v| v.trim().parse().ok());
        if resp.status >= 300 {
            tracing::info!(list = %self.uri, status = resp.status, "list subscription refused");
        }
        self.sub.on_response(
            Instant::now(),
            resp.status,
            num("Expires"),
            num("Min-Expires"),
        );
    }

    async fn on_notify(&mut self, inc: IncomingRequest) {
        let req = &inc.request;
        let call_id = req.headers.get("Call-ID").unwrap_or_default();
        let to_tag = req.headers.get("To").and_then(tag_of);
        let Some(d) = self
            .dialog
            .as_mut()
            .filter(|d| d.call_id == call_id && to_tag.as_deref() == Some(d.local_tag.as_str()))
        else {
            // RFC 6665 §4.1.3: no such subscription (an old one: the RLS ends it on a 481).
            let mut no = req.response(481, None);
            no.ensure_to_tag();
            inc.tx.respond(no);
            return;
        };
        if !d.established {
            // RFC 6665 §4.1.2.4: the NOTIFY may come before the 2xx; it makes the dialog.
            d.established = true;
            d.to = req.headers.get("From").unwrap_or_default().to_string();
            d.route = req
                .headers
                .values("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        if let Some(t) = req.headers.get("Contact").and_then(uri_of) {
            d.target = t;
        }
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        let state = req
            .headers
            .get("Subscription-State")
            .and_then(SubState::parse)
            .unwrap_or(SubState::Active(None));
        let now = Instant::now();
        self.sub.on_notify(now, &state);
        if !req.body.is_empty() {
            let ct = req
                .headers
                .get("Content-Type")
                .unwrap_or_default()
                .to_string();
            let body = req.body.clone();
            self.apply(&ct, &body).await;
        }
        // The RLS answered with a NOTIFY (RFC 6665 §4.1.2.4): whatever its body, the first
        // state is in (and, when it was a list, reported).
        let _ = self.settled.send(true);
    }

    /// Applies a NOTIFY body to the list and reports what changed.
    async fn apply(&mut self, ct: &str, body: &[u8]) {
        let applied = parse_body(ct, body, &self.limits)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let full = p.rlmi.full_state;
                self.list
                    .apply(&p, SystemTime::now())
                    .map(|c| (full, c))
                    .map_err(|e| {
                        if matches!(e, ListError::VersionGap { .. }) {
                            // RFC 4662 §5: the state is unknown; a new subscription resyncs.
                            self.sub.resync();
                        }
                        e.to_string()
                    })
            });
        match applied {
            Ok((full, change)) => {
                if !change.is_empty() || full {
                    let _ = self.events.send(ListEvent::Changed(change)).await;
                }
            }
            Err(e) => {
                crate::warn_limited!("ue.rls", list = %self.uri, "list NOTIFY not applied: {e}");
            }
        }
    }

    /// Reports a change of the subscription's state.
    async fn report(&mut self) {
        let s = self.sub.status();
        if self.status != Some(s) {
            self.status = Some(s);
            if matches!(s, SubscriptionStatus::Failed | SubscriptionStatus::Retrying) {
                let _ = self.settled.send(true);
            }
            let _ = self.events.send(ListEvent::Status(s)).await;
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
