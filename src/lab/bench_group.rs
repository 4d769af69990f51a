//! `rcslab bench group`: group chat through the conference focus CONF over the full chain
//! (P-CSCF, S-CSCF, CONF by iFC, MSRP both hops; OMA SIMPLE IM, GSMA RCC.07 §3.4). `groups`
//! groups of `members` members, every member an RCS client ([`ChatUe`]) in this process; the
//! first member of each group creates it with the others (RFC 5366) and the lab starts with
//! every member provisioned as a `[[subscribers]]` entry.
//!
//! Messages go out at `rate` per second in all, round-robin over the groups and, within a
//! group, over its members; the focus fans each out to the group's other members, and each
//! member's client sends IMDN "delivered" back to the writer (RFC 5438). For each message:
//! the time from its *scheduled* send time (no coordinated omission) to the last member's
//! receipt (send-to-last-member-delivered), the members that never got it by the end and a
//! drain (lost), copies a member got twice (duplicated), and the IMDNs its writer got.
//!
//! The roster (RFC 4575): in a few groups a second device of the first member subscribes to
//! the conference event; halfway through the load the last member of each of those groups
//! leaves (BYE), and the time from the BYE to the partial NOTIFY naming it deleted is measured
//! at the watcher. Those leaving members neither send nor are owed messages. Bounded: the
//! number of messages (`rate` x `seconds`), deadlines for set-up and a drain after the load.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use super::bench::{rss_kib, BenchError};
use super::bench_presence::cpu_secs;
use crate::conf::conference_info::{ConferenceInfo, InfoLimits, State};
use crate::cpim::ImdnStatus;
use crate::focus::group::MemberState;
use crate::lab::{Lab, LabOptions};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{Ue, UeConfig, UeError};
use crate::LabConfig;

/// Registrations (and group creations) under way at once during set-up.
const SETUP_AT_ONCE: usize = 64;
const CREATE_AT_ONCE: usize = 16;
/// How long set-up (all groups created and every member in) may take.
const SETUP_WAIT: Duration = Duration::from_secs(120);
/// After the load, how long the last receipts may take without any progress.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest drain, progress or not.
const DRAIN_MAX: Duration = Duration::from_secs(60);
/// A set-up request the P-CSCF refused with 503 (overload control, RFC 3261 §21.5.4) is tried
/// again after a pause, this many times at most.
const RETRIES: usize = 5;
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Groups whose roster is watched (at most).
const WATCHED: usize = 5;

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct GroupBench {
    pub groups: usize,
    pub members: usize,
    /// From the first REGISTER to every member of every group in its session.
    pub setup: Duration,
    /// Group messages sent in the load phase.
    pub sent: usize,
    /// Receipts owed: each message x the group's other (staying) members.
    pub owed: usize,
    /// Owed receipts that came (distinct message and member).
    pub received: usize,
    /// Copies a member got of a message it already had.
    pub duplicates: usize,
    /// Messages every staying member got.
    pub complete: usize,
    /// IMDN "delivered" owed to writers (one per owed receipt) and received (distinct).
    pub imdn_owed: usize,
    pub imdn_received: usize,
    /// From the first scheduled send to the last receipt or IMDN.
    pub elapsed: Duration,
    /// Scheduled send -> last member's receipt, of complete messages: p50, p99, max.
    pub latency: [Duration; 3],
    /// Roster: leaves watched, partial NOTIFYs that came, BYE -> NOTIFY p50 / max.
    pub leaves: usize,
    pub notified: usize,
    pub notify: [Duration; 2],
    /// Set-up requests (REGISTER, the creating INVITE, SUBSCRIBE) tried again after a 503
    /// from the P-CSCF's overload control (as a client honours Retry-After).
    pub retries: usize,
    /// RSS after set-up and after the run (KiB).
    pub rss_setup_kib: u64,
    pub rss_kib: u64,
    /// CPU seconds of the process during the load phase (lab and clients together).
    pub cpu_secs: f64,
}

impl GroupBench {
    /// Owed receipts that never came.
    pub fn lost(&self) -> usize {
        self.owed.saturating_sub(self.received)
    }

    /// IMDNs that never came.
    pub fn imdn_lost(&self) -> usize {
        self.imdn_owed.saturating_sub(self.imdn_received)
    }

    /// Nothing lost (messages, IMDNs, roster NOTIFYs) and nothing duplicated.
    pub fn clean(&self) -> bool {
        self.lost() == 0
            && self.duplicates == 0
            && self.imdn_lost() == 0
            && self.notified == self.leaves
    }
}

/// What `rcslab bench group` prints (scripts read the lines).
pub fn report(r: &GroupBench, rate: u64, seconds: u64) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let secs = r.elapsed.as_secs_f64().max(1e-3);
    format!(
        "group: {} groups x {} members ({} clients), all in their sessions in {:.1} s ({} set-up requests tried again after a 503); {} messages at {rate}/s for {seconds} s\n\
group: {} sent, {} fan-out deliveries owed, {} received, {} lost, {} duplicated; {} IMDN delivered owed, {} received, {} lost\n\
group: {:.0} messages/s fanned out ({:.0} deliveries/s, {:.0} IMDN/s); scheduled send -> last member delivered p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} messages complete)\n\
group: roster: {} leaves (BYE) watched, {} partial NOTIFY, BYE -> NOTIFY p50 {:.1} ms, max {:.1} ms; RSS {} MiB after set-up, {} MiB after the load; {:.1} CPU s in the load phase (lab and clients, one process)",
        r.groups,
        r.members,
        r.groups * r.members,
        r.setup.as_secs_f64(),
        r.retries,
        r.sent,
        r.sent,
        r.owed,
        r.received,
        r.lost(),
        r.duplicates,
        r.imdn_owed,
        r.imdn_received,
        r.imdn_lost(),
        r.complete as f64 / secs,
        r.received as f64 / secs,
        r.imdn_received as f64 / secs,
        ms(r.latency[0]),
        ms(r.latency[1]),
        ms(r.latency[2]),
        r.complete,
        r.leaves,
        r.notified,
        ms(r.notify[0]),
        ms(r.notify[1]),
        r.rss_setup_kib / 1024,
        r.rss_kib / 1024,
        r.cpu_secs,
    )
}

/// Registers `ue`, again after a 503 (up to [`RETRIES`] times); how many tries it took beyond
/// the first.
async fn register(ue: &mut Ue) -> Result<usize, BenchError> {
    let mut tries = 0;
    loop {
        match ue.register(3600).await {
            Ok(_) => return Ok(tries),
            Err(UeError::Rejected(503, _)) if tries < RETRIES => {
                tries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What one client's event reader saw.
#[derive(Default)]
struct Seen {
    /// Group messages: imdn.Message-ID -> when it came (the first copy).
    messages: HashMap<String, Instant>,
    duplicates: usize,
    /// IMDN "delivered" on our messages: (imdn.Message-ID, reporter) -> when.
    reports: HashMap<(String, String), Instant>,
}

/// Counters the drain watches.
#[derive(Default)]
struct Progress {
    /// Receipts by staying members.
    received: AtomicUsize,
    /// IMDNs from staying members.
    reports: AtomicUsize,
}

/// Reads one client's events until `stop`.
async fn read_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>,
    staying: bool,
    leavers: Arc<HashSet<String>>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = stop.changed() => return seen,
        };
        let now = Instant::now();
        match ev {
            Some(ChatEvent::GroupMessage { message_id, .. }) => {
                if let Entry::Vacant(e) = seen.messages.entry(message_id) {
                    e.insert(now);
                    if staying {
                        progress.received.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    seen.duplicates += 1;
                }
            }
            Some(ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                from,
                ..
            }) => {
                let staying_reporter = !leavers.contains(&from);
                if seen.reports.insert((message_id, from), now).is_none() && staying_reporter {
                    progress.reports.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(_) => {}
            None => return seen,
        }
    }
}

/// p50, p99, max of `v` (sorted here).
fn pct(v: &mut [Duration]) -> [Duration; 3] {
    if v.is_empty() {
        return [Duration::ZERO; 3];
    }
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.50), at(0.99), v[v.len() - 1]]
}

/// Waits until `done()` or `DRAIN` without `count()` moving, at most `DRAIN_MAX`.
async fn drain(done: impl Fn() -> bool, count: impl Fn() -> usize) {
    let start = Instant::now();
    let mut last = (count(), Instant::now());
    while !done() && last.1.elapsed() < DRAIN && start.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = count();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
}

/// Runs the benchmark on a fresh in-process lab (ephemeral ports).
pub async fn group(
    groups: usize,
    members: usize,
    rate: u64,
    seconds: u64,
) -> Result<GroupBench, BenchError> {
    let (groups, members) = (groups.max(1), members.max(2));
    let users = groups * members;
    let name = |i: usize| format!("g{i}");
    let uri = |i: usize| format!("sip:g{i}@ims.lab");
    // In watched groups the last member leaves halfway; a group of two would be left with
    // one, so only groups of three or more are watched.
    let watched = if members >= 3 { groups.min(WATCHED) } else { 0 };

    let mut extra = String::new();
    for i in 0..users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"{}\"]\npassword = \"pw{i}\"\n",
            uri(i)
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-group-{}", std::process::id()));
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
    let r = run(&lab, groups, members, watched, rate, seconds, &name, &uri).await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = r?;
    r.leaves = watched;
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    lab: &Lab,
    groups: usize,
    members: usize,
    watched: usize,
    rate: u64,
    seconds: u64,
    name: &dyn Fn(usize) -> String,
    uri: &dyn Fn(usize) -> String,
) -> Result<GroupBench, BenchError> {
    let users = groups * members;
    let is_leaver = |i: usize| i / members < watched && i % members == members - 1;
    let (stop, shut) = watch::channel(false);
    let started = Instant::now();

    // Every member registered and running as an RCS client, SETUP_AT_ONCE at a time.
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let gate = Arc::new(Semaphore::new(SETUP_AT_ONCE));
    let mut starting = Vec::with_capacity(users);
    for i in 0..users {
        let c = UeConfig::from_lab(&lab.config, &name(i), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let (trace, shut, gate, opts) =
            (lab.trace.clone(), shut.clone(), gate.clone(), opts.clone());
        starting.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            let mut ue = Ue::start(c, trace.clone(), shut).await?;
            let retried = register(&mut ue).await?;
            Ok::<_, BenchError>((ChatUe::start(ue, trace, opts), retried))
        }));
    }
    let leavers: Arc<HashSet<String>> =
        Arc::new((0..users).filter(|&i| is_leaver(i)).map(uri).collect());
    let progress = Arc::new(Progress::default());
    let mut retries = 0;
    let mut ues = Vec::with_capacity(users);
    let mut readers = Vec::with_capacity(users);
    for (i, s) in starting.into_iter().enumerate() {
        let (mut ue, retried) = s.await.map_err(|_| BenchError::UserMissing)??;
        retries += retried;
        readers.push(tokio::spawn(read_events(
            ue.take_events(),
            !is_leaver(i),
            leavers.clone(),
            progress.clone(),
            shut.clone(),
        )));
        ues.push(Arc::new(ue));
    }

    // Each group created by its first member with the others, CREATE_AT_ONCE at a time.
    let gate = Arc::new(Semaphore::new(CREATE_AT_ONCE));
    let mut creating = Vec::with_capacity(groups);
    for g in 0..groups {
        let creator = ues[g * members].clone();
        let others: Vec<String> = (1..members).map(|k| name(g * members + k)).collect();
        let gate = gate.clone();
        creating.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            let mut tries = 0;
            loop {
                match creator.create_group(&format!("bench {g}"), &others).await {
                    Err(e) if tries < RETRIES && e.status() == Some(503) => {
                        tries += 1;
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    r => return (r, tries),
                }
            }
        }));
    }
    let mut group_uris = Vec::with_capacity(groups);
    for (g, c) in creating.into_iter().enumerate() {
        let (u, retried) = c.await.map_err(|_| BenchError::UserMissing)?;
        retries += retried;
        let u = u.map_err(|e| BenchError::SendFailed(format!("group {g} not created: {e}")))?;
        group_uris.push(u);
    }
    let gid = |u: &str| {
        u.strip_prefix("sip:chat-")
            .and_then(|g| g.split_once('@'))
            .map(|(g, _)| g.to_string())
            .unwrap_or_default()
    };
    let gids: Vec<String> = group_uris.iter().map(|u| gid(u)).collect();
    let all_in = || {
        gids.iter().all(|g| {
            lab.conf.group(g).is_some_and(|g| {
                g.members.len() == members
                    && g.members.iter().all(|m| m.state == MemberState::Connected)
            })
        })
    };
    while !all_in() {
        if started.elapsed() > SETUP_WAIT {
            let n = gids
                .iter()
                .filter_map(|g| lab.conf.group(g))
                .flat_map(|g| g.members)
                .filter(|m| m.state == MemberState::Connected)
                .count();
            return Err(BenchError::SendFailed(format!(
                "{n} of {users} members in their group sessions after {SETUP_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A warm-up message per group from its creator, waited for at every staying member: every
    // MSRP leg is bound before the load.
    let warm_owed: usize = (0..groups)
        .map(|g| {
            (1..members)
                .filter(|&k| !is_leaver(g * members + k))
                .count()
        })
        .sum();
    for (g, u) in group_uris.iter().enumerate() {
        ues[g * members].send(u, "warm-up").await;
    }
    drain(
        || progress.received.load(Ordering::Relaxed) >= warm_owed,
        || progress.received.load(Ordering::Relaxed),
    )
    .await;
    if progress.received.load(Ordering::Relaxed) < warm_owed {
        return Err(BenchError::NotDelivered);
    }
    let setup = started.elapsed();

    // The roster watchers: a second device of the first member of each watched group.
    let notified: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for (g, group_uri) in group_uris.iter().enumerate().take(watched) {
        let c = UeConfig::from_lab(&lab.config, &name(g * members), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let mut w = Ue::start(c, lab.trace.clone(), shut.clone()).await?;
        retries += register(&mut w).await?;
        let mut tries = 0;
        let resp = loop {
            let (resp, _) = w
                .subscribe_event(
                    group_uri,
                    "conference",
                    "application/conference-info+xml",
                    600,
                )
                .await;
            if resp.status != 503 || tries == RETRIES {
                break resp;
            }
            tries += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        };
        retries += tries;
        if resp.status != 200 {
            return Err(BenchError::SendFailed(format!(
                "conference SUBSCRIBE to group {g}: {} {}",
                resp.status, resp.reason
            )));
        }
        let (gone, notified, mut stop) = (
            uri(g * members + members - 1),
            notified.clone(),
            shut.clone(),
        );
        watchers.push(tokio::spawn(async move {
            loop {
                let inc = tokio::select! {
                    inc = w.next_request(Duration::from_secs(1)) => inc,
                    _ = stop.changed() => return,
                };
                let Some(inc) = inc else { continue };
                let now = Instant::now();
                let info = ConferenceInfo::parse(&inc.request.body, &InfoLimits::default());
                let mut ok = inc.request.response(200, None);
                ok.ensure_to_tag();
                inc.tx.respond(ok);
                let left = info.is_ok_and(|i| {
                    i.state == State::Partial
                        && i.users
                            .iter()
                            .any(|u| u.entity == gone && u.state == State::Deleted)
                });
                if left {
                    if let Ok(mut n) = notified.lock() {
                        n.entry(g).or_insert(now);
                    }
                }
            }
        }));
    }
    let rss_setup_kib = rss_kib();

    // The load: message k due at t0 + k/rate, to group k mod groups, by its members in turn
    // (the leaving member of a watched group does not send). Halfway, the leaves.
    let total = (rate * seconds) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let senders: Vec<Vec<usize>> = (0..groups)
        .map(|g| {
            (0..members)
                .map(|k| g * members + k)
                .filter(|&i| !is_leaver(i))
                .collect()
        })
        .collect();
    let mut turn = vec![0usize; groups];
    let mut left_at: HashMap<usize, Instant> = HashMap::new();
    let cpu0 = cpu_secs();
    let t0 = Instant::now() + Duration::from_millis(100);
    let mut sending = Vec::with_capacity(total);
    for k in 0..total {
        let due = t0 + gap * k as u32;
        tokio::time::sleep_until(due.into()).await;
        if k == total / 2 {
            for (g, u) in group_uris.iter().enumerate().take(watched) {
                left_at.insert(g, Instant::now());
                ues[g * members + members - 1].close(u);
            }
        }
        let g = k % groups;
        let i = senders[g][turn[g] % senders[g].len()];
        turn[g] += 1;
        let (ue, to) = (ues[i].clone(), group_uris[g].clone());
        sending.push(tokio::spawn(async move {
            (ue.send(&to, &format!("bench {k}")).await, i, g, due)
        }));
    }
    if total == 0 {
        // No load: the leaves still happen, for the roster figure.
        for (g, u) in group_uris.iter().enumerate().take(watched) {
            left_at.insert(g, Instant::now());
            ues[g * members + members - 1].close(u);
        }
    }
    let mut sent = Vec::with_capacity(total);
    for s in sending {
        if let Ok((id, i, g, due)) = s.await {
            sent.push((id, i, g, due));
        }
    }
    let staying_others = |i: usize, g: usize| {
        (0..members)
            .map(|k| g * members + k)
            .filter(|&j| j != i && !is_leaver(j))
            .count()
    };
    let owed: usize = sent.iter().map(|(_, i, g, _)| staying_others(*i, *g)).sum();
    let base = warm_owed;
    // Warm-up IMDNs came too (from staying members): they are in the count.
    let imdn_base = warm_owed;
    drain(
        || {
            progress.received.load(Ordering::Relaxed) >= base + owed
                && progress.reports.load(Ordering::Relaxed) >= imdn_base + owed
                && notified.lock().map(|n| n.len()).unwrap_or(0) >= watched
        },
        || {
            progress.received.load(Ordering::Relaxed)
                + progress.reports.load(Ordering::Relaxed)
                + notified.lock().map(|n| n.len()).unwrap_or(0)
        },
    )
    .await;
    let cpu = cpu_secs() - cpu0;
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(users);
    for r in readers {
        seen.push(r.await.unwrap_or_default());
    }
    for w in watchers {
        let _ = w.await;
    }

    // Per message: every staying other member's receipt, its writer's IMDNs.
    let mut r = GroupBench {
        groups,
        members,
        setup,
        sent: sent.len(),
        owed,
        duplicates: seen.iter().map(|s| s.duplicates).sum(),
        imdn_owed: owed,
        rss_setup_kib,
        retries,
        cpu_secs: cpu,
        ..GroupBench::default()
    };
    let mut last_lat = Vec::with_capacity(sent.len());
    let mut latest = t0;
    for (id, i, g, due) in &sent {
        let mut last: Option<Instant> = None;
        let mut all = true;
        for j in (0..members).map(|k| g * members + k) {
            if j == *i || is_leaver(j) {
                continue;
            }
            match seen[j].messages.get(id) {
                Some(&at) => {
                    r.received += 1;
                    last = Some(last.map_or(at, |l| l.max(at)));
                }
                None => all = false,
            }
            if let Some(&at) = seen[*i].reports.get(&(id.clone(), uri(j))) {
                r.imdn_received += 1;
                latest = latest.max(at);
            }
        }
        if let Some(l) = last {
            latest = latest.max(l);
            if all {
                r.complete += 1;
                last_lat.push(l.saturating_duration_since(*due));
            }
        }
    }
    r.elapsed = latest.saturating_duration_since(t0);
    r.latency = pct(&mut last_lat);
    let mut notify_lat: Vec<Duration> = notified
        .lock()
        .map(|n| {
            n.iter()
                .filter_map(|(g, at)| Some(at.saturating_duration_since(*left_at.get(g)?)))
                .collect()
        })
        .unwrap_or_default();
    r.notified = notify_lat.len();
    let p = pct(&mut notify_lat);
    r.notify = [p[0], p[2]];
    r.rss_kib = rss_kib();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ms = Duration::from_millis;
        let mut v: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(pct(&mut v), [ms(50), ms(99), ms(100)]);
        assert_eq!(pct(&mut []), [Duration::ZERO; 3]);
    }

    #[test]
    fn a_run_with_anything_lost_is_not_clean() {
        let ok = GroupBench {
            owed: 4,
            received: 4,
            imdn_owed: 4,
            imdn_received: 4,
            leaves: 1,
            notified: 1,
            ..GroupBench::default()
        };
        assert!(ok.clean());
        assert!(!GroupBench {
            received: 3,
            ..ok.clone()
        }
        .clean());
        assert!(!GroupBench {
            duplicates: 1,
            ..ok.clone()
        }
        .clean());
        assert!(!GroupBench {
            imdn_received: 3,
            ..ok.clone()
        }
        .clean());
        assert!(!GroupBench { notified: 0, ..ok }.clean());
    }
}
