//! `rcslab bench sms`: an application submits SMS over SMPP 3.4 to IMS phones, through the
//! whole lab (issue 20): SMPP listener, the centre's store (flushed before each
//! submit_sm_resp), the IP-SM-GW, I-CSCF (LIR), S-CSCF, P-CSCF to `users` phones registered
//! in this process, each an SMS client ([`SmsUe`]: 200, then its RP-ACK in a MESSAGE of its
//! own, TS 24.341 §5.3.2.4); the RP-ACK makes the message delivered and the centre sends the
//! application its receipt (deliver_sm, SMPP Appendix B), which the application answers.
//!
//! The application is one transceiver session of our own codec ([`Esme`]) that keeps at most
//! `window` submit_sm unanswered. Load comes in steps of rising `rates`, each
//! `secs` long, open loop: message k of a step is *scheduled* at start + k/rate, and both of
//! its times are measured from there — to its submit_sm_resp and to its DELIVRD receipt — so
//! a window that is full, or a centre that falls behind, shows as latency rather than as a
//! slower sender (no coordinated omission). After each step the run waits for the step's
//! receipts (a bounded drain); a message accepted whose receipt did not come by then is
//! lost, a second receipt for one id is a duplicate.
//!
//! Bounded: `rates` x `secs` messages in all (at most [`MAX_MESSAGES`]), deadlines for the
//! set-up and each drain.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use super::bench::{rss_kib, BenchError};
use crate::lab::esme::{submit_sm, Esme, EsmeError, EsmeEvent};
use crate::lab::{Lab, LabOptions};
use crate::smpp::MessageState;
use crate::ue::sms::{SmsEvent, SmsOptions, SmsUe};
use crate::ue::{Ue, UeConfig, UeError};
use crate::LabConfig;

/// The most messages one run sends, all steps together.
pub const MAX_MESSAGES: u64 = 1_000_000;
/// Registrations under way at once during set-up.
const SETUP_AT_ONCE: usize = 32;
/// After a step's last submit, how long its receipts may take without any progress...
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// ...and at most.
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// The application's account (the lab's default).
const SYSTEM_ID: &str = "lab-app";
const PASSWORD: &str = "app-pw";
const SHORT_CODE: &str = "4000";

/// What to run.
#[derive(Debug, Clone)]
pub struct SmsPlan {
    /// Phones registered (each an SMS client); messages go to them round robin.
    pub users: usize,
    /// submit_sm per second of each step, in order.
    pub rates: Vec<u64>,
    /// Seconds each step lasts.
    pub secs: u64,
    /// submit_sm unanswered at most (the application's window).
    pub window: usize,
}

/// One step's figures.
#[derive(Debug, Clone, Default)]
pub struct SmsStep {
    /// Offered submit_sm/s.
    pub rate: u64,
    /// submit_sm sent.
    pub sent: usize,
    /// submit_sm_resp with ESME_ROK.
    pub accepted: usize,
    /// submit_sm refused (an error status) or never answered.
    pub errors: usize,
    /// Distinct DELIVRD receipts for accepted messages.
    pub delivered: usize,
    /// Receipts that said anything other than DELIVRD.
    pub undelivered: usize,
    /// Second receipts for the same message id.
    pub duplicates: usize,
    /// From the first scheduled send to the last submit_sm_resp, and to the last receipt.
    pub send_span: Duration,
    pub receipt_span: Duration,
    /// Scheduled send -> submit_sm_resp, p50 / p99 / max.
    pub resp: [Duration; 3],
    /// Scheduled send -> receipt, p50 / p99 / max.
    pub receipt: [Duration; 3],
    /// The process's RSS at the end of the step (KiB).
    pub rss_kib: u64,
}

impl SmsStep {
    /// Accepted messages whose receipt never came.
    pub fn lost(&self) -> usize {
        self.accepted
            .saturating_sub(self.delivered + self.undelivered)
    }

    /// Accepted submit_sm per second over the step.
    pub fn accepted_per_s(&self) -> f64 {
        self.accepted as f64 / self.send_span.as_secs_f64().max(1e-3)
    }

    /// Receipts per second, from the step's first scheduled send to its last receipt.
    pub fn delivered_per_s(&self) -> f64 {
        self.delivered as f64 / self.receipt_span.as_secs_f64().max(1e-3)
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct SmsBench {
    pub users: usize,
    pub window: usize,
    /// Registering every phone.
    pub setup: Duration,
    pub steps: Vec<SmsStep>,
    /// Short messages the phones got (distinct) and copies they got twice.
    pub phone_received: usize,
    pub phone_duplicates: usize,
    /// RSS after set-up (KiB).
    pub rss_setup_kib: u64,
    /// Nodes that shed load during the run: (node, requests answered 503 as overloaded, at
    /// the socket or over the transaction budget; datagrams dropped). A phone's RP-ACK refused so is never sent again: its message
    /// waits for the centre's RP-ACK timeout and retry, past the bench's drain.
    pub overload: Vec<(&'static str, u64, u64)>,
}

impl SmsBench {
    /// No errors, nothing lost, nothing duplicated, every receipt DELIVRD.
    pub fn clean(&self) -> bool {
        self.phone_duplicates == 0
            && self
                .steps
                .iter()
                .all(|s| s.errors == 0 && s.lost() == 0 && s.duplicates == 0 && s.undelivered == 0)
    }
}

/// What `rcslab bench sms` prints (scripts and the test read the lines).
pub fn report(r: &SmsBench, plan: &SmsPlan) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = format!(
        "sms: {} phones registered in {:.1} s, one SMPP transceiver (window {}), steps of {} s; RSS {} MiB after set-up\n",
        r.users,
        r.setup.as_secs_f64(),
        r.window,
        plan.secs,
        r.rss_setup_kib / 1024
    );
    for s in &r.steps {
        out.push_str(&format!(
            "sms: offered {}/s: {} sent, {:.0} submit_sm/s accepted, {:.0} delivered/s, {} errors, {} lost, {} duplicates; submit->resp p50 {:.1} ms p99 {:.1} ms; submit->receipt p50 {:.1} ms p99 {:.1} ms max {:.1} ms; RSS {} MiB\n",
            s.rate,
            s.sent,
            s.accepted_per_s(),
            s.delivered_per_s(),
            s.errors + s.undelivered,
            s.lost(),
            s.duplicates,
            ms(s.resp[0]),
            ms(s.resp[1]),
            ms(s.receipt[0]),
            ms(s.receipt[1]),
            ms(s.receipt[2]),
            s.rss_kib / 1024,
        ));
    }
    if !r.overload.is_empty() {
        let nodes: Vec<String> = r
            .overload
            .iter()
            .map(|(n, shed, dropped)| format!("{n} {shed} 503s, {dropped} datagrams dropped"))
            .collect();
        out.push_str(&format!("sms: overload: {}\n", nodes.join("; ")));
    }
    out.push_str(&format!(
        "sms: the phones got {} messages, {} twice",
        r.phone_received, r.phone_duplicates
    ));
    out
}

/// The number of bench phone `i`.
fn number(i: usize) -> String {
    format!("+1777{i:07}")
}

/// Runs the benchmark on a fresh in-process lab (ephemeral ports, a temporary data dir).
pub async fn sms(plan: &SmsPlan) -> Result<SmsBench, BenchError> {
    let users = plan.users.max(1);
    let total: u64 = plan.rates.iter().map(|r| r * plan.secs).sum();
    if total > MAX_MESSAGES {
        return Err(BenchError::SendFailed(format!(
            "{total} messages: at most {MAX_MESSAGES} a run"
        )));
    }
    let mut extra = format!(
        "[pcscf]\nsubscribe_reg = false\n[smsc]\nsmpp_window = {}\n",
        plan.window.max(32)
    );
    for i in 0..users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:s{i}@ims.lab\", \"tel:{}\"]\npassword = \"s{i}-pw\"\n",
            number(i)
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!(
        "rcslab-bench-sms-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let lab = Lab::start(
        cfg,
        &dir,
        LabOptions {
            trace: false,
            timers: None,
            hep: None,
        },
    )
    .await?;
    let r = run(&lab, plan, users).await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// What the phones saw: the texts they got, and copies.
#[derive(Default)]
struct Phones {
    got: Mutex<HashSet<String>>,
    duplicates: AtomicUsize,
}

async fn register(ue: &mut Ue) -> Result<(), BenchError> {
    let mut tries = 0;
    loop {
        match ue.register(3600).await {
            Ok(_) => return Ok(()),
            Err(UeError::Rejected(503, _)) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn run(lab: &Lab, plan: &SmsPlan, users: usize) -> Result<SmsBench, BenchError> {
    let (_stop, shut) = watch::channel(false);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(SETUP_AT_ONCE));
    let phones = Arc::new(Phones::default());
    let mut starting = Vec::with_capacity(users);
    for i in 0..users {
        let c = UeConfig::from_lab(&lab.config, &format!("s{i}"), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let (trace, shut, gate, phones) = (
            lab.trace.clone(),
            shut.clone(),
            gate.clone(),
            phones.clone(),
        );
        starting.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            let mut ue = Ue::start(c, trace, shut).await?;
            let mut sms = SmsUe::start(&mut ue, SmsOptions::default());
            register(&mut ue).await?;
            // The phone's application: counts what comes (and keeps the UE alive).
            tokio::spawn(async move {
                let _ue = ue;
                while let Some(ev) = sms.next_event(Duration::from_secs(3600)).await {
                    if let SmsEvent::Received { text, .. } = ev {
                        let fresh = phones.got.lock().map(|mut g| g.insert(text));
                        if !fresh.unwrap_or(true) {
                            phones.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
            Ok::<_, BenchError>(())
        }));
    }
    for s in starting {
        s.await.map_err(|_| BenchError::UserMissing)??;
    }
    // The centre learns each phone's number from its third-party REGISTER.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..users).any(|i| {
        !lab.smsc
            .user(&format!("sip:s{i}@ims.lab"))
            .is_some_and(|u| u.registered && u.number.is_some())
    }) {
        if Instant::now() > deadline {
            return Err(BenchError::SendFailed(
                "the IP-SM-GW did not learn every phone's number within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let setup = started.elapsed();
    let rss_setup_kib = rss_kib();

    let esme_err = |e: EsmeError| BenchError::SendFailed(format!("SMPP: {e}"));
    let mut app = Esme::connect(lab.addrs.smsc).await.map_err(esme_err)?;
    app.bind_transceiver(SYSTEM_ID, PASSWORD, Duration::from_secs(5))
        .await
        .map_err(esme_err)?;
    let mut steps = Vec::with_capacity(plan.rates.len());
    let mut next = 0usize;
    for &rate in &plan.rates {
        let n = (rate * plan.secs) as usize;
        let s = step(&mut app, rate, n, plan.window.max(1), users, &mut next).await?;
        steps.push(s);
    }
    let _ = app.unbind(Duration::from_secs(5)).await;
    let phone_received = phones.got.lock().map(|g| g.len()).unwrap_or(0);
    let overload = lab
        .sip_load()
        .into_iter()
        .map(|(n, l)| (n, l.shed, l.transport.udp_dropped))
        .filter(|(_, shed, dropped)| shed + dropped > 0)
        .collect();
    Ok(SmsBench {
        users,
        window: plan.window,
        setup,
        steps,
        phone_received,
        phone_duplicates: phones.duplicates.load(Ordering::Relaxed),
        rss_setup_kib,
        overload,
    })
}

/// One message of a step.
struct Msg {
    scheduled: Instant,
    resp: Option<Instant>,
    receipts: usize,
}

/// One step: `n` submit_sm at `rate`, then the drain. `next` numbers messages across steps
/// (their texts are unique, so the phones can tell copies).
async fn step(
    app: &mut Esme,
    rate: u64,
    n: usize,
    window: usize,
    users: usize,
    next: &mut usize,
) -> Result<SmsStep, BenchError> {
    let mut msgs: Vec<Msg> = Vec::with_capacity(n);
    // sequence_number -> message; message_id -> message.
    let mut by_seq: HashMap<u32, usize> = HashMap::with_capacity(window * 2);
    let mut by_id: HashMap<String, usize> = HashMap::with_capacity(n);
    // Receipts for ids not known yet (a receipt overtaking its submit_sm_resp).
    let mut early: HashMap<String, (Instant, bool)> = HashMap::new();
    let mut r = SmsStep {
        rate,
        ..SmsStep::default()
    };
    let mut resp_lat = Vec::with_capacity(n);
    let mut receipt_lat = Vec::with_capacity(n);
    let mut last_resp = None;
    let mut last_receipt = None;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now() + Duration::from_millis(10);
    let mut last_progress = Instant::now();
    let mut sent_all: Option<Instant> = None;
    loop {
        let k = msgs.len();
        let outstanding = by_seq.len();
        let can_send = k < n && outstanding < window;
        let due = start + interval.mul_f64(k as f64);
        if k == n && sent_all.is_none() {
            sent_all = Some(Instant::now());
        }
        if let Some(t) = sent_all {
            let done = outstanding == 0 && r.delivered + r.undelivered >= r.accepted;
            if done || last_progress.elapsed() >= DRAIN_IDLE || t.elapsed() >= DRAIN_MAX {
                break;
            }
        }
        tokio::select! {
            ev = app.recv() => {
                let Some(ev) = ev else {
                    return Err(BenchError::SendFailed("SMPP: the SMSC closed the session".into()));
                };
                match ev {
                    EsmeEvent::Response { sequence, status, message_id, at } => {
                        let Some(k) = by_seq.remove(&sequence) else { continue };
                        last_progress = Instant::now();
                        msgs[k].resp = Some(at);
                        last_resp = Some(at);
                        resp_lat.push(at.saturating_duration_since(msgs[k].scheduled));
                        match (status.is_ok(), message_id) {
                            (true, Some(id)) => {
                                r.accepted += 1;
                                if let Some((at, ok)) = early.remove(&id) {
                                    last_receipt = last_receipt.max(Some(at));
                                    receipt_of(&mut msgs[k], at, ok, &mut r, &mut receipt_lat);
                                }
                                by_id.insert(id, k);
                            }
                            _ => r.errors += 1,
                        }
                    }
                    EsmeEvent::Deliver { receipt: Some(rc), at, .. } => {
                        last_progress = Instant::now();
                        let ok = rc.stat == MessageState::Delivered;
                        match by_id.get(&rc.id) {
                            Some(&k) => {
                                last_receipt = Some(at);
                                receipt_of(&mut msgs[k], at, ok, &mut r, &mut receipt_lat);
                            }
                            None => {
                                if early.insert(rc.id, (at, ok)).is_some() {
                                    r.duplicates += 1;
                                }
                            }
                        }
                    }
                    EsmeEvent::Deliver { .. } => {}
                    EsmeEvent::Closed => {
                        return Err(BenchError::SendFailed("SMPP: the SMSC closed the session".into()));
                    }
                }
            }
            _ = tokio::time::sleep_until(due.into()), if can_send => {
                let i = *next;
                *next += 1;
                let to = number(i % users);
                let text = format!("bench {i}");
                let seq = app
                    .send(submit_sm(SHORT_CODE, &to, &text, true))
                    .map_err(|e| BenchError::SendFailed(format!("SMPP: {e}")))?;
                by_seq.insert(seq, k);
                msgs.push(Msg { scheduled: due, resp: None, receipts: 0 });
                r.sent += 1;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    // Never answered: errors too.
    r.errors += msgs.iter().filter(|m| m.resp.is_none()).count();
    r.send_span = last_resp
        .map(|t| t.saturating_duration_since(start))
        .unwrap_or_default();
    r.receipt_span = last_receipt
        .map(|t| t.saturating_duration_since(start))
        .unwrap_or_default();
    r.resp = percentiles(&mut resp_lat);
    r.receipt = percentiles(&mut receipt_lat);
    r.rss_kib = rss_kib();
    Ok(r)
}

/// Counts a receipt for `m` that came `at`: delivered or not, or a duplicate.
fn receipt_of(m: &mut Msg, at: Instant, ok: bool, r: &mut SmsStep, lat: &mut Vec<Duration>) {
    m.receipts += 1;
    if m.receipts > 1 {
        r.duplicates += 1;
    } else if ok {
        r.delivered += 1;
        lat.push(at.saturating_duration_since(m.scheduled));
    } else {
        r.undelivered += 1;
    }
}

/// p50, p99 and max of `v`.
fn percentiles(v: &mut [Duration]) -> [Duration; 3] {
    if v.is_empty() {
        return [Duration::ZERO; 3];
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.50), at(0.99), v[v.len() - 1]]
}
