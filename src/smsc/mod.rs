//! The SMS service centre (SMS-SC, TS 23.040) and its IP-SM-GW (TS 23.204, TS 24.341): one
//! node with a SIP side, an application server the S-CSCF reaches by iFC for MESSAGEs that
//! carry `application/vnd.3gpp.sms`, and a store-and-forward core in sled.
//!
//! ```text
//!  MO  alice -> P-CSCF -> S-CSCF --iFC--> IP-SM-GW   MESSAGE tel:+15559999  RP-DATA(SMS-SUBMIT)
//!      IP-SM-GW: stored, flushed                     202 Accepted
//!      IP-SM-GW -> I-CSCF -> S-CSCF -> P-CSCF -> alice   MESSAGE  RP-ACK(SMS-SUBMIT-REPORT)
//!  MT  IP-SM-GW -> I-CSCF -> S-CSCF -> P-CSCF -> bob     MESSAGE tel:+15550002  RP-DATA(SMS-DELIVER)
//!      bob 200 OK, then bob -> ... --iFC--> IP-SM-GW      MESSAGE tel:+15559999  RP-ACK
//!  SR  IP-SM-GW -> ... -> alice                          MESSAGE  RP-DATA(SMS-STATUS-REPORT), her RP-ACK
//! ```
//!
//! A phone that is not reachable (480, no answer, no RP-ACK) keeps its messages, in order;
//! they go when its third-party REGISTER says it is back, or at the next retry, until they
//! expire (the sender's report then says so). The centre learns each user's tel URI and
//! `+g.3gpp.smsip` capability from the third-party REGISTER's bodies ([`register`]).
//! Files: [`pdus`] (the bodies), [`queue`] (who waits for what), [`store`] (sled), [`mo`]
//! (what phones send), [`mt`] (delivery and reports).

pub mod esme;
mod mo;
mod mt;
pub mod pdus;
pub mod queue;
pub mod register;
pub mod smpp;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::cscf::reject;
use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::{Endpoint, IncomingRequest, Method};
use crate::store::GroupCommit;

use self::queue::Queue;
use self::store::{SmscStore, UserInfo};

/// Deliveries to phones at once (each holds one RP-MR of the 256 until its RP-ACK).
const MAX_IN_FLIGHT: usize = 200;
/// Users whose tel URI and capability the centre remembers.
const MAX_USERS: usize = 100_000;
/// After a third-party REGISTER, the queue of the user is looked at again this much later
/// (a delivery that beat the REGISTER's 200 to the P-CSCF got 480).
const REGISTER_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How the centre behaves (`[smsc]`).
#[derive(Debug, Clone)]
pub struct SmscSettings {
    /// Its number, `+15559999`.
    pub address: String,
    pub validity: Duration,
    pub max_validity: Duration,
    pub retry: Duration,
    pub ack_timeout: Duration,
    pub max_stored: usize,
    pub max_parts: usize,
    /// Short code -> the system_id of the application it belongs to.
    pub short_codes: HashMap<String, String>,
}

impl Default for SmscSettings {
    fn default() -> Self {
        SmscSettings {
            address: "+15559999".into(),
            validity: Duration::from_secs(2 * 86_400),
            max_validity: Duration::from_secs(7 * 86_400),
            retry: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(20),
            max_stored: 100_000,
            max_parts: 14,
            short_codes: HashMap::new(),
        }
    }
}

/// Why the centre cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SmscError {
    /// Its sled trees cannot be opened.
    #[error("cannot open the SMS centre's store: {0}")]
    Store(#[from] sled::Error),
}

/// What a phone answered an RP-DATA with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhoneAnswer {
    Ack,
    Error(u8),
}

/// A delivery waiting for the phone's RP-ACK.
struct Waiter {
    /// Who may answer it: the Request-URI it went to and the public identity behind it.
    idents: Vec<String>,
    tx: oneshot::Sender<PhoneAnswer>,
}

/// The centre.
pub struct Smsc {
    ep: Endpoint,
    resolver: Resolver,
    host: String,
    settings: SmscSettings,
    store: SmscStore,
    /// Where requests it originates go (the I-CSCF, as a Route).
    icscf: OnceLock<String>,
    users: Mutex<HashMap<String, UserInfo>>,
    /// Number -> public identity, from `users`.
    by_number: Mutex<HashMap<String, String>>,
    queue: Mutex<Queue>,
    /// Destinations being delivered to now.
    active: Mutex<std::collections::HashSet<String>>,
    /// RP-MR -> the delivery that used it.
    waiting: Mutex<HashMap<u8, Waiter>>,
    next_mr: Mutex<u8>,
    deliveries: Semaphore,
    /// Recent SUBMITs (a phone resending one whose RP-ACK it missed gets the RP-ACK again).
    recent: Mutex<mo::Recent>,
    /// Set when the lab stops: deliveries under way give up (their messages stay stored).
    stop: watch::Sender<bool>,
    /// The SMPP listener, which applications bind to.
    smpp: OnceLock<Arc<smpp::SmppServer>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

use crate::content::unix_now;

impl Smsc {
    /// A centre on `ep` whose host name is `host` (`ipsmgw.ims.lab`), keeping its messages in
    /// `db` (flushed through `commit` before anything is acknowledged). What the store holds
    /// from before is queued again.
    pub fn new(
        ep: Endpoint,
        resolver: Resolver,
        host: &str,
        db: &sled::Db,
        commit: GroupCommit,
        settings: SmscSettings,
    ) -> Result<Arc<Smsc>, SmscError> {
        let store = SmscStore::open(db, commit)?;
        let mut queue = Queue::new(settings.max_stored);
        let now = Instant::now();
        let kept = store.messages();
        for m in kept {
            let dest = m.to.clone();
            queue.push(m);
            // Tried again after start-up at the first sweep.
            queue.defer(&dest, now);
        }
        let mut users = HashMap::new();
        let mut by_number = HashMap::new();
        for (impu, mut u) in store.users() {
            // Nobody is known to be registered until a third-party REGISTER says so.
            u.registered = false;
            if let Some(n) = &u.number {
                by_number.insert(n.clone(), impu.clone());
            }
            users.insert(impu, u);
        }
        Ok(Arc::new(Smsc {
            ep,
            resolver,
            host: host.to_string(),
            settings,
            store,
            icscf: OnceLock::new(),
            users: Mutex::new(users),
            by_number: Mutex::new(by_number),
            queue: Mutex::new(queue),
            active: Mutex::new(Default::default()),
            waiting: Mutex::new(HashMap::new()),
            next_mr: Mutex::new(0),
            deliveries: Semaphore::new(MAX_IN_FLIGHT),
            recent: Mutex::new(mo::Recent::default()),
            stop: watch::channel(false).0,
            smpp: OnceLock::new(),
        }))
    }

    /// Requests it originates (deliveries, RP-ACKs, reports) go to the I-CSCF at `addr`,
    /// which finds the recipient's S-CSCF (LIR) as for any request from outside.
    pub fn set_icscf(&self, addr: SocketAddr) {
        let uri = crate::cscf::node_uri_at(addr, None, crate::sip::Transport::Tcp);
        let _ = self.icscf.set(format!("<{uri};lr>"));
    }

    /// Serves SMPP on `listener` for the applications of `settings` (their submissions come
    /// here, MO messages to their short codes and their receipts go to them) until `shutdown`.
    pub fn serve_smpp(
        self: &Arc<Self>,
        settings: smpp::SmppSettings,
        listener: tokio::net::TcpListener,
        trace: Option<crate::trace::Trace>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<smpp::SmppServer> {
        let handle = Arc::new(esme::ScHandle(Arc::downgrade(self)));
        let server = smpp::SmppServer::new(settings, handle, trace);
        let _ = self.smpp.set(server.clone());
        tokio::spawn(server.clone().run(listener, shutdown));
        server
    }

    /// Messages and reports held.
    pub fn held(&self) -> usize {
        lock(&self.queue).len()
    }

    /// What the centre knows of `impu`.
    pub fn user(&self, impu: &str) -> Option<UserInfo> {
        lock(&self.users).get(impu).cloned()
    }

    /// Serves `rx` until `shutdown`; every second, destinations whose retry time came are
    /// tried again.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                inc = rx.recv() => match inc {
                    Some(Incoming::Request(r)) => {
                        let me = self.clone();
                        tokio::spawn(async move { me.on_request(r).await });
                    }
                    Some(Incoming::StrayResponse { .. }) => {}
                    None => break,
                },
                _ = tick.tick() => {
                    let due = lock(&self.queue).due(Instant::now());
                    for d in due {
                        self.kick(&d);
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        // However it ended (the stop signal, or the endpoint closing first on it), deliveries
        // under way give up now: they hold the centre, and with it the store.
        self.stop.send_replace(true);
    }

    /// Resolves when the lab stops.
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    async fn on_request(self: &Arc<Self>, inc: IncomingRequest) {
        let from_core = self.ep.is_trusted(inc.source);
        if matches!(inc.request.method, Method::Message | Method::Register) && !from_core {
            // A phone's SMS or registration reaches the IP-SM-GW through its S-CSCF (the
            // iFC), which vouches for who sent it: anything else could claim any sender.
            crate::warn_limited!(
                "ipsmgw.not_from_core",
                "IP-SM-GW: {} from {} did not come through an S-CSCF: refused with 403",
                inc.request.method,
                inc.source
            );
            inc.tx.respond(reject(
                &inc.request,
                403,
                &self.host,
                "the IP-SM-GW takes requests from the core (its S-CSCFs) only",
            ));
            return;
        }
        match inc.request.method {
            Method::Message => self.message(inc).await,
            Method::Register => self.third_party(inc),
            Method::Options => {
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                ok.headers.push("Allow", "MESSAGE, REGISTER, OPTIONS");
                ok.headers.push("Accept", crate::sms::rp::CONTENT_TYPE);
                inc.tx.respond(ok);
            }
            Method::Ack => {}
            _ => {
                let mut r = reject(
                    &inc.request,
                    405,
                    &self.host,
                    "the IP-SM-GW takes MESSAGE (application/vnd.3gpp.sms) and REGISTER",
                );
                r.headers.push("Allow", "MESSAGE, REGISTER, OPTIONS");
                inc.tx.respond(r);
            }
        }
    }

    /// A third-party REGISTER (TS 24.341 §5.3.3.1): who the user is, its number and whether
    /// it takes SMS over IP; a user who is back gets what waits for it.
    fn third_party(self: &Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let Some(t) = register::read(req) else {
            inc.tx.respond(reject(
                req,
                400,
                &self.host,
                "the REGISTER names no user (To)",
            ));
            return;
        };
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        if let Some(e) = req.headers.get("Expires") {
            ok.headers.push("Expires", e.to_string());
        }
        inc.tx.respond(ok);
        let info = {
            let mut users = lock(&self.users);
            if users.len() >= MAX_USERS && !users.contains_key(&t.impu) {
                tracing::warn!(
                    max = MAX_USERS,
                    "IP-SM-GW: user table full, not remembering {}",
                    t.impu
                );
                None
            } else {
                let u = users.entry(t.impu.clone()).or_default();
                if let Some(i) = &t.info {
                    u.number = i.number.clone().or(u.number.take());
                    u.smsip = i.smsip;
                }
                u.registered = t.registered;
                Some(u.clone())
            }
        };
        let Some(info) = info else { return };
        if let Some(n) = &info.number {
            lock(&self.by_number).insert(n.clone(), t.impu.clone());
        }
        if let Err(e) = self.store.put_user(&t.impu, &info) {
            tracing::warn!(error = %e, "IP-SM-GW: cannot keep {}", t.impu);
        }
        if t.registered {
            // Whatever waits for the user's number or identity goes now.
            let mut dests = vec![t.impu.clone()];
            dests.extend(info.number.clone());
            for d in &dests {
                lock(&self.queue).wake(d);
                self.kick(d);
            }
            // The S-CSCF tells us before the REGISTER's 200 has reached the P-CSCF: an
            // attempt that beats it gets 480 there and would wait a whole retry period.
            // Look once more a second later (nothing happens if nothing waits). A weak
            // handle: a lab that stops meanwhile lets its centre (and its store) go.
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(REGISTER_RECHECK).await;
                let Some(me) = me.upgrade() else { return };
                if *me.stop.borrow() {
                    return;
                }
                for d in &dests {
                    lock(&me.queue).wake(d);
                    me.kick(d);
                }
            });
        }
    }

    /// The number of `impu`, if the centre knows it.
    fn number_of(&self, impu: &str) -> Option<String> {
        lock(&self.users).get(impu).and_then(|u| u.number.clone())
    }

    /// The public identity behind `number`.
    fn impu_of(&self, number: &str) -> Option<String> {
        lock(&self.by_number).get(number).cloned()
    }
}
