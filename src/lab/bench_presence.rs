//! `rcslab bench presence`: presence fan-out through the RLS over the full chain. Users come
//! in buddy groups of `watchers + 1`; each user registers and subscribes to its own list `rcs`
//! (the group's `watchers` others, RFC 4662) through P-CSCF and S-CSCF, and the PS answers
//! with a full-state NOTIFY. Then PUBLISHes go out at `rate` per second, round-robin over the
//! users, each modifying that user's publication (SIP-If-Match) with a note naming its
//! sequence number; every PUBLISH owes one partial NOTIFY to each of the `watchers` others.
//!
//! Latency is measured from each PUBLISH's *scheduled* send time (no coordinated omission) to
//! each watcher's receipt of the NOTIFY that carries its note. Printed: NOTIFYs owed and
//! delivered, NOTIFYs/s, p50/p99/max PUBLISH-to-NOTIFY, list SUBSCRIBE-to-full-state p99,
//! RSS. Bounded: `seconds` of load and a deadline for the stragglers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use super::bench::{rss_kib, BenchError};
use crate::lab::{Lab, LabOptions};
use crate::presence::pidf::{Basic, Person, Pidf, Tuple};
use crate::sip::{Method, Transport};
use crate::ue::{Ue, UeConfig};
use crate::LabConfig;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct PresenceBench {
    /// Users (each a watcher and a presentity).
    pub users: usize,
    /// PUBLISHes sent in the load phase.
    pub published: usize,
    /// PUBLISHes answered 200.
    pub accepted: usize,
    /// NOTIFYs owed (accepted x watchers).
    pub owed: usize,
    /// NOTIFYs that came with their PUBLISH's note (distinct watcher and PUBLISH).
    pub delivered: usize,
    /// From the first scheduled PUBLISH to the last NOTIFY.
    pub elapsed: Duration,
    /// Scheduled PUBLISH -> NOTIFY at the watcher.
    pub p50: Duration,
    /// The same, p99.
    pub p99: Duration,
    /// The same, the worst.
    pub max: Duration,
    /// List SUBSCRIBE -> its full-state NOTIFY, p99.
    pub subscribe_p99: Duration,
    /// RSS after the run (KiB).
    pub rss_kib: u64,
    /// CPU seconds the process used during the load phase (lab and UEs together).
    pub cpu_secs: f64,
    /// Statuses of PUBLISHes not answered 200, with their counts.
    pub refused: Vec<(u16, usize)>,
    /// Scheduled PUBLISH -> its 200, p99.
    pub publish_p99: Duration,
}

/// CPU seconds (user + system) this process has used, from /proc.
pub(crate) fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) : utime is the 14th field.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The marker a PUBLISH's note carries.
const MARK: &str = "bench-seq-";

/// A PIDF for `entity` whose note names `seq`.
fn document(entity: &str, seq: u64) -> String {
    let mut d = Pidf::empty(entity);
    let basic = if seq.is_multiple_of(2) {
        Basic::Open
    } else {
        Basic::Closed
    };
    d.tuples.push(Tuple::new("bench", basic));
    d.person = Some(Person {
        id: "p1".into(),
        activities: Vec::new(),
        note: Some(format!("{MARK}{seq}")),
        timestamp: None,
    });
    d.to_xml()
}

/// Every `MARK` number in `body`.
fn marks(body: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(body);
    text.match_indices(MARK)
        .filter_map(|(i, _)| {
            let rest = &text[i + MARK.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// What one watcher saw.
#[derive(Default)]
struct Seen {
    /// PUBLISH sequence -> when its NOTIFY came.
    notes: HashMap<u64, Instant>,
    /// When the first (full-state) NOTIFY came.
    first: Option<Instant>,
}

/// Runs the benchmark on a fresh in-process lab (ephemeral ports).
pub async fn presence(
    groups: usize,
    watchers: usize,
    rate: u64,
    seconds: u64,
) -> Result<PresenceBench, BenchError> {
    let users = groups * (watchers + 1);
    let name = |i: usize| format!("p{i}");
    let mut extra = String::from("[presence]\nbuddy_groups = [\n");
    for g in 0..groups {
        let members: Vec<String> = (0..=watchers)
            .map(|k| format!("\"sip:{}@ims.lab\"", name(g * (watchers + 1) + k)))
            .collect();
        extra.push_str(&format!("  [{}],\n", members.join(", ")));
    }
    extra.push_str(&format!(
        "]\nmax_subscriptions = {}\nmax_presentities = {}\n",
        users * 2 + 100,
        users * 2 + 100
    ));
    for i in 0..users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{}@ims.lab\"]\npassword = \"pw{i}\"\n",
            name(i)
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-presence-{}", std::process::id()));
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
    let (stop, shut) = watch::channel(false);

    // Register everyone, 64 at a time.
    let gate = Arc::new(Semaphore::new(64));
    let mut starting = Vec::new();
    for i in 0..users {
        let c = UeConfig::from_lab(&lab.config, &name(i), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let (trace, shut, gate) = (lab.trace.clone(), shut.clone(), gate.clone());
        starting.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            let mut ue = Ue::start(c, trace, shut).await?;
            ue.register(3600).await?;
            Ok::<Ue, BenchError>(ue)
        }));
    }
    let mut ues = Vec::new();
    for s in starting {
        ues.push(s.await.map_err(|_| BenchError::UserMissing)??);
    }

    // Each watcher owns its UE: it answers NOTIFYs and notes what they carry.
    let seen: Vec<Arc<Mutex<Seen>>> = (0..users).map(|_| Arc::default()).collect();
    let mut eps = Vec::new();
    let mut subscribed_at = Vec::new();
    let mut loops = Vec::new();
    for (i, mut ue) in ues.into_iter().enumerate() {
        eps.push((ue.endpoint().clone(), ue.cfg.impu.clone(), ue.cfg.pcscf));
        let t = Instant::now();
        let (_, ok) = ue.subscribe_list("rcs", 3600).await;
        if ok.status != 200 {
            return Err(BenchError::SendFailed(format!(
                "list SUBSCRIBE of {}: {} {}",
                name(i),
                ok.status,
                ok.reason
            )));
        }
        subscribed_at.push(t);
        let (seen, mut stop) = (seen[i].clone(), shut.clone());
        loops.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    inc = ue.next_request(Duration::from_secs(1)) => {
                        let Some(inc) = inc else { continue };
                        let now = Instant::now();
                        let found = marks(&inc.request.body);
                        let mut ok = inc.request.response(200, None);
                        ok.ensure_to_tag();
                        inc.tx.respond(ok);
                        if let Ok(mut s) = seen.lock() {
                            s.first.get_or_insert(now);
                            for m in found {
                                s.notes.entry(m).or_insert(now);
                            }
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    // Every full state in (or 10 s).
    let wait_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < wait_until
        && seen
            .iter()
            .any(|s| s.lock().map(|s| s.first.is_none()).unwrap_or(false))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sub_lat: Vec<Duration> = seen
        .iter()
        .zip(&subscribed_at)
        .filter_map(|(s, t)| s.lock().ok()?.first.map(|f| f - *t))
        .collect();
    sub_lat.sort();

    // Each user's first publication (its entity-tag for what follows), paced like the load.
    let etags: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let publish = |i: usize, seq: u64, if_match: Option<String>| {
        let (ep, impu, pcscf) = eps[i].clone();
        async move {
            let mut r = ep.new_request(Method::Publish, &impu, &impu, 1, Transport::Udp);
            r.headers.push("Event", "presence");
            r.headers.push("Expires", "3600");
            if let Some(t) = if_match {
                r.headers.push("SIP-If-Match", t);
            }
            r.headers.push("Content-Type", "application/pidf+xml");
            r.body = bytes::Bytes::from(document(&impu, seq));
            ep.send_request(r, pcscf, Transport::Udp)
                .final_response()
                .await
        }
    };
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let warm0 = Instant::now();
    let mut warm = Vec::new();
    for i in 0..users {
        tokio::time::sleep_until((warm0 + gap * i as u32).into()).await;
        let (p, etags) = (publish(i, u64::MAX / 2, None), etags.clone());
        warm.push(tokio::spawn(async move {
            let r = p.await;
            if let (200, Some(t)) = (r.status, r.headers.get("SIP-ETag")) {
                if let Ok(mut e) = etags.lock() {
                    e.insert(i, t.to_string());
                }
            }
        }));
    }
    for w in warm {
        let _ = w.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The load: PUBLISH k at t0 + k/rate, by user k mod users.
    let total = (rate * seconds) as usize;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut sent = Vec::new();
    for k in 0..total {
        let due = t0 + gap * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let i = k % users;
        let tag = etags.lock().ok().and_then(|e| e.get(&i).cloned());
        let (p, etags) = (publish(i, k as u64, tag), etags.clone());
        sent.push(tokio::spawn(async move {
            let r = p.await;
            let answered = due.elapsed();
            if let (200, Some(t)) = (r.status, r.headers.get("SIP-ETag")) {
                if let Ok(mut e) = etags.lock() {
                    e.insert(i, t.to_string());
                }
            }
            (r.status, answered)
        }));
    }
    let mut accepted_seqs = Vec::new();
    let mut refused: HashMap<u16, usize> = HashMap::new();
    let mut publish_lat = Vec::new();
    for (k, s) in sent.into_iter().enumerate() {
        let (status, answered) = s.await.unwrap_or((0, Duration::ZERO));
        if status == 200 {
            accepted_seqs.push(k);
            publish_lat.push(answered);
        } else {
            *refused.entry(status).or_default() += 1;
        }
    }
    publish_lat.sort();
    // Stragglers: until every owed NOTIFY is in, or 10 s without progress.
    let group_of = |i: usize| i / (watchers + 1);
    let count = || -> usize {
        accepted_seqs
            .iter()
            .map(|&k| {
                let p = k % users;
                (0..users)
                    .filter(|&w| w != p && group_of(w) == group_of(p))
                    .filter(|&w| {
                        seen[w]
                            .lock()
                            .map(|s| s.notes.contains_key(&(k as u64)))
                            .unwrap_or(false)
                    })
                    .count()
            })
            .sum()
    };
    let owed = accepted_seqs.len() * watchers;
    let mut last = (count(), Instant::now());
    while last.0 < owed && last.1.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = count();
        if n > last.0 {
            last = (n, Instant::now());
        }
    }
    let cpu = cpu_secs() - cpu0;
    let _ = stop.send(true);
    for l in loops {
        let _ = l.await;
    }

    let mut lat = Vec::new();
    let mut latest = t0;
    for &k in &accepted_seqs {
        let p = k % users;
        let due = t0 + gap * k as u32;
        for w in (0..users).filter(|&w| w != p && group_of(w) == group_of(p)) {
            if let Some(at) = seen[w]
                .lock()
                .ok()
                .and_then(|s| s.notes.get(&(k as u64)).copied())
            {
                lat.push(at.saturating_duration_since(due));
                latest = latest.max(at);
            }
        }
    }
    lat.sort();
    let pct = |v: &[Duration], p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let r = PresenceBench {
        users,
        published: total,
        accepted: accepted_seqs.len(),
        owed,
        delivered: lat.len(),
        elapsed: latest - t0,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
        subscribe_p99: pct(&sub_lat, 0.99),
        rss_kib: rss_kib(),
        cpu_secs: cpu,
        refused: {
            let mut v: Vec<(u16, usize)> = refused.into_iter().collect();
            v.sort();
            v
        },
        publish_p99: pct(&publish_lat, 0.99),
    };
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_carry_their_sequence_numbers() {
        let d = document("sip:p1@ims.lab", 42);
        assert_eq!(marks(d.as_bytes()), [42]);
        assert_eq!(marks(b"x bench-seq-7< bench-seq-8"), [7, 8]);
        assert!(marks(b"nothing").is_empty());
    }
}
