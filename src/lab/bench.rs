//! `rcslab bench chat`: N UE pairs chatting over the full chain (P-CSCF, S-CSCF, O-IM, T-IM,
//! MSRP both hops), every message asking for IMDN "delivered". Prints messages/s delivered
//! with their IMDN, p50/p99 from send to the IMDN at the sender, lost / duplicated messages,
//! and the process RSS. Bounded: `messages` per pair, and a deadline.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cpim::ImdnStatus;
use crate::lab::{Lab, LabOptions};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{Ue, UeConfig};
use crate::LabConfig;

/// Why the chat benchmark did not run to the end; the texts are the ones `rcslab bench chat`
/// has always printed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The benchmark's lab file does not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The benchmark's lab does not start.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// A benchmark UE cannot bind its sockets.
    #[error("{0}")]
    UeStart(#[from] std::io::Error),
    /// A benchmark UE does not register.
    #[error(transparent)]
    Ue(#[from] crate::ue::UeError),
    /// A subscriber the benchmark added is not in the lab.
    #[error("bench user missing")]
    UserMissing,
    /// The warm-up message failed (the UE's reason).
    #[error("{0}")]
    SendFailed(String),
    /// The warm-up message got no delivery report in time.
    #[error("warm-up message not delivered")]
    NotDelivered,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct ChatBench {
    /// Messages sent.
    pub sent: usize,
    /// IMDN "delivered" received by senders (distinct messages).
    pub delivered: usize,
    /// Messages received by recipients (distinct).
    pub received: usize,
    /// Messages received more than once.
    pub duplicates: usize,
    /// Wall time of the load phase.
    pub elapsed: Duration,
    /// Send -> IMDN delivered, p50.
    pub p50: Duration,
    /// Send -> IMDN delivered, p99.
    pub p99: Duration,
    /// RSS after the run (KiB).
    pub rss_kib: u64,
}

/// The process's resident set size (KiB), from /proc.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the chat benchmark on a fresh in-process lab (ephemeral ports). `rate` is the total
/// target messages/s (0 = as fast as the senders go).
/// With `trace`, the flight recorder keeps every message (what `rcslab up --trace` costs).
pub async fn chat(
    pairs: usize,
    messages: usize,
    rate: u64,
    trace: bool,
) -> Result<ChatBench, BenchError> {
    let mut extra = String::new();
    for i in 0..pairs * 2 {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:b{i}@ims.lab\"]\npassword = \"b{i}-pw\"\n"
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-{}", std::process::id()));
    let lab = Lab::start(
        cfg,
        &dir,
        LabOptions {
            trace,
            timers: None,
            hep: None,
        },
    )
    .await?;
    let (_stop, shut) = watch::channel(false);
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let mut ues = Vec::new();
    for i in 0..pairs * 2 {
        let c = UeConfig::from_lab(&lab.config, &format!("b{i}"), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let mut ue = Ue::start(c, lab.trace.clone(), shut.clone()).await?;
        ue.register(600).await?;
        ues.push(ChatUe::start(ue, lab.trace.clone(), opts.clone()));
    }
    // Sessions up: one message each way, waited for.
    let mut pairs_v = Vec::new();
    let mut it = ues.into_iter();
    while let (Some(mut a), Some(mut b)) = (it.next(), it.next()) {
        let to = b.impu.clone();
        let id = a.send(&to, "warm-up").await;
        wait_delivered(&mut a, &id).await?;
        while b.next_event(Duration::from_millis(20)).await.is_some() {}
        pairs_v.push((a, b));
    }
    let per_pair_gap = if rate > 0 {
        Some(Duration::from_secs_f64(pairs as f64 / rate as f64))
    } else {
        None
    };
    let t0 = Instant::now();
    let deadline = Duration::from_secs(120);
    let mut tasks = Vec::new();
    for (mut a, mut b) in pairs_v {
        let to = b.impu.clone();
        tasks.push(tokio::spawn(async move {
            let recv = tokio::spawn(async move {
                let mut seen: HashSet<String> = HashSet::new();
                let mut dups = 0usize;
                while seen.len() < messages {
                    match b.next_event(Duration::from_secs(10)).await {
                        Some(ChatEvent::Message { message_id, .. }) => {
                            if !seen.insert(message_id) {
                                dups += 1;
                            }
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                (seen.len(), dups)
            });
            let mut sent_at: HashMap<String, Instant> = HashMap::new();
            let mut lat = Vec::with_capacity(messages);
            let start = Instant::now();
            for i in 0..messages {
                if let Some(g) = per_pair_gap {
                    // Paced: read IMDNs as they arrive while waiting for the next send slot,
                    // so their latency is measured when they come, not at the next send.
                    let due = start + g * i as u32;
                    loop {
                        let left = due.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if let Some(ev) = a.next_event(left).await {
                            note(&ev, &mut sent_at, &mut lat);
                        }
                    }
                }
                let id = a.send(&to, &format!("message {i}")).await;
                sent_at.insert(id, Instant::now());
                // Collect whatever IMDNs are already in.
                while let Some(ev) = a.next_event(Duration::ZERO).await {
                    note(&ev, &mut sent_at, &mut lat);
                }
            }
            while !sent_at.is_empty() && t0.elapsed() < deadline {
                match a.next_event(Duration::from_secs(10)).await {
                    Some(ev) => note(&ev, &mut sent_at, &mut lat),
                    None => break,
                }
            }
            let (received, dups) = recv.await.unwrap_or((0, 0));
            (lat, received, dups)
        }));
    }
    let mut all = Vec::new();
    let (mut received, mut duplicates) = (0, 0);
    for t in tasks {
        if let Ok((lat, r, d)) = t.await {
            all.extend(lat);
            received += r;
            duplicates += d;
        }
    }
    let elapsed = t0.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let r = ChatBench {
        sent: pairs * messages,
        delivered: all.len(),
        received,
        duplicates,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        rss_kib: rss_kib(),
    };
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

fn note(ev: &ChatEvent, sent_at: &mut HashMap<String, Instant>, lat: &mut Vec<Duration>) {
    if let ChatEvent::Status {
        message_id,
        status: ImdnStatus::Delivered,
        ..
    } = ev
    {
        if let Some(t) = sent_at.remove(message_id) {
            lat.push(t.elapsed());
        }
    }
}

async fn wait_delivered(a: &mut ChatUe, id: &str) -> Result<(), BenchError> {
    loop {
        match a.next_event(Duration::from_secs(10)).await {
            Some(ChatEvent::Status { message_id, .. }) if message_id == id => return Ok(()),
            Some(ChatEvent::SendFailed { reason, .. }) => {
                return Err(BenchError::SendFailed(reason))
            }
            Some(_) => {}
            None => return Err(BenchError::NotDelivered),
        }
    }
}
