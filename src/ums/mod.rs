//! UMS, the unified-messaging gateway (seed 003: a Korean UMS / AlimTalk-style sender):
//! businesses send to phone numbers through a REST API ([`http`]), from templates the
//! operator approved or as plain text; in this step its channels are SMS/LMS through the
//! lab's SMS centre, to which it is an SMPP 3.4 application ([`esme`]), and MMS as a
//! notification over SMS pointing at media uploaded here ([`mms`]). Receipts give each
//! recipient its final state; phones' SMS to its short code (MO) go to the business's
//! webhook ([`webhook`]) with every status change.
//!
//! The state is [`core::UmsCore`], socket-free; this file holds it behind a lock and joins it
//! to its store ([`store`]: templates and messages, flushed before the 201/202 that tells of
//! them) and its drivers.

pub mod core;
mod esme;
mod http;
pub mod mms;
pub mod rcs;
pub mod store;
pub mod template;
mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use self::core::{Key, Limits, Output, UmsCore};
use self::store::UmsStore;
use crate::http_server::HttpLimits;
use crate::store::{GroupCommit, StoreError};
use crate::trace::Trace;

pub use self::core::{Channel, Status, UmsError};
pub use self::mms::MediaLimits;
pub use self::webhook::post as post_webhook;

/// File names of the tokens under the gateway's data directory.
pub const API_TOKEN_FILE: &str = "api.token";
/// The operator's token file.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The file `rcslab up` writes the API's address to, beside the tokens.
pub const ADDR_FILE: &str = "api.addr";

/// Why the gateway does not start.
#[derive(Debug, thiserror::Error)]
pub enum UmsStartError {
    /// Its trees do not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Its listener has no address.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct UmsSettings {
    /// The business API's Bearer token.
    pub token: String,
    /// The operator's Bearer token (approves templates).
    pub operator_token: String,
    /// Its SMPP account at the centre.
    pub system_id: String,
    pub password: String,
    /// The source address of its SMS.
    pub sender: String,
    /// Where events are POSTed (`http://`), empty for none.
    pub webhook: String,
    pub webhook_queue: usize,
    pub limits: Limits,
    /// submit_sm outstanding at once.
    pub window: usize,
    /// Media uploads' bounds (MMS).
    pub media: MediaLimits,
    /// The SMS centre's SMPP listener.
    pub smsc: SocketAddr,
    pub http: HttpLimits,
    /// The RCS channel (None: SMS only).
    pub rcs: Option<rcs::RcsSettings>,
}

/// The running gateway.
pub struct Ums {
    settings: UmsSettings,
    core: Mutex<UmsCore>,
    store: UmsStore,
    /// Uploaded media, sent as MMS.
    media: mms::MediaStore,
    /// Wakes the SMPP session: something to submit.
    wake: Notify,
    /// Wakes the RCS channel: a recipient to reach.
    rcs_wake: Notify,
    webhook: Option<mpsc::Sender<serde_json::Value>>,
    trace: Trace,
    bound: AtomicBool,
    local: SocketAddr,
}

use crate::content::unix_now;

impl Ums {
    /// Opens its trees in `db`, restores what they hold, serves the API on `listener` and
    /// binds to the centre, until `shut`.
    pub fn start(
        settings: UmsSettings,
        db: &sled::Db,
        commit: GroupCommit,
        listener: TcpListener,
        trace: Trace,
        shut: watch::Receiver<bool>,
    ) -> Result<Arc<Ums>, UmsStartError> {
        let store = UmsStore::open(db, commit)?;
        let media = mms::MediaStore::open(db, settings.media)?;
        let (templates, messages) = store.load();
        let core = UmsCore::restore(settings.limits, templates, messages);
        let local = listener.local_addr()?;
        let webhook = (!settings.webhook.is_empty()).then(|| {
            let (tx, rx) = mpsc::channel(settings.webhook_queue.max(1));
            tokio::spawn(webhook::run(settings.webhook.clone(), rx, shut.clone()));
            tx
        });
        let ums = Arc::new(Ums {
            settings,
            core: Mutex::new(core),
            store,
            media,
            wake: Notify::new(),
            rcs_wake: Notify::new(),
            webhook,
            trace,
            bound: AtomicBool::new(false),
            local,
        });
        tokio::spawn(http::serve(ums.clone(), listener, shut.clone()));
        if let Some(rs) = ums.settings.rcs.clone() {
            tokio::spawn(rcs::run(ums.clone(), rs, shut.clone()));
        }
        tokio::spawn(esme::run(ums.clone(), shut));
        Ok(ums)
    }

    /// The API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The business API's and the operator's Bearer tokens (for the lab's own steps).
    pub(crate) fn tokens(&self) -> (&str, &str) {
        (&self.settings.token, &self.settings.operator_token)
    }

    /// True while bound to the SMS centre.
    pub fn is_bound(&self) -> bool {
        self.bound.load(Ordering::Relaxed)
    }

    /// Recipients not yet final, and waiting to be submitted.
    pub fn load(&self) -> (usize, usize) {
        self.lock().load()
    }

    fn set_bound(&self, b: bool) {
        self.bound.store(b, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, UmsCore> {
        // A panic while holding it leaves plain data behind: keep serving.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores and posts what the core said.
    fn apply(&self, outs: Vec<Output>) {
        for o in outs {
            let r = match o {
                Output::Store(id) => {
                    let m = self.lock().message(&id).ok().cloned();
                    match m {
                        Some(m) => self.store.put_message(&m),
                        None => Ok(()),
                    }
                }
                Output::Forget(id) => self.store.remove_message(&id),
                Output::Webhook(v) => {
                    self.post(v);
                    Ok(())
                }
            };
            if let Err(e) = r {
                crate::warn_limited!("ums.store", error = %e, "UMS: cannot write a message");
            }
        }
    }

    /// [`Ums::apply`], then wakes the SMPP session for what fell back to SMS.
    fn apply_and_wake(&self, outs: Vec<Output>) {
        let any = !outs.is_empty();
        self.apply(outs);
        if any {
            self.wake.notify_one();
        }
    }

    /// RCS on (the chatbot registered; the fallback time) or off.
    fn rcs_state(&self, fallback_secs: Option<u64>) {
        let outs = self.lock().set_rcs(unix_now(), fallback_secs);
        self.apply_and_wake(outs);
    }

    /// True while the chatbot identity is registered (RCS is offered).
    pub fn rcs_on(&self) -> bool {
        self.lock().rcs_on()
    }

    fn post(&self, v: serde_json::Value) {
        if let Some(tx) = &self.webhook {
            if tx.try_send(v).is_err() {
                crate::warn_limited!("ums.webhook_full", "UMS: webhook queue full; event dropped");
            }
        }
    }

    fn submitted(&self, key: &Key, result: Result<String, (bool, String)>) {
        let retry = matches!(result, Err((true, _)));
        let outs = self.lock().submitted(unix_now(), key, result);
        self.apply(outs);
        if retry {
            self.wake.notify_one();
        }
    }

    fn receipt(&self, smsc_id: &str, delivered: bool, why: String) {
        let outs = self.lock().receipt(unix_now(), smsc_id, delivered, why);
        self.apply(outs);
    }

    fn mo(&self, mo: esme::Mo) {
        self.trace.note(self.local, || {
            format!("MO from {} to {}: POST to the webhook", mo.from, mo.to)
        });
        self.post(serde_json::json!({
            "type": "mo",
            "from": mo.from,
            "to": mo.to,
            "text": mo.text,
        }));
    }
}
