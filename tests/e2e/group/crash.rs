//! A SIGKILL of the lab in the middle of a group conversation loses no acknowledged message
//! and shows none twice: the real `rcslab up` as a child process on a data directory that
//! survives it, killed at seeded random moments while alice and bob write to their group with
//! carol, restarted on the same directory and ports. Every message the focus acknowledged to
//! its writer (its MSRP 200, or the 200 of the INVITE that carried it) must be shown exactly
//! once to each other member; messages never acknowledged may be lost, never shown twice.
//! `RCSLAB_CRASH_SEED` picks the moments (default: the clock, printed).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rcslab::trace::Trace;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::{Ue, UeConfig};
use rcslab::LabConfig;
use tokio::sync::watch;

use crate::crash::{reregister, sigkill, start_fresh_lab, start_lab};

#[derive(Default)]
struct Log {
    /// Message id -> its writer.
    sent: HashMap<String, String>,
    /// Acknowledged to their writer.
    acked: HashSet<String>,
    /// Message id -> who showed it (once per showing).
    shown: HashMap<String, Vec<String>>,
}

async fn member(
    cfg: &LabConfig,
    user: &str,
    shutdown: &watch::Receiver<bool>,
    log: &Arc<Mutex<Log>>,
) -> ChatUe {
    let ucfg = UeConfig::from_lab(cfg, user, cfg.nodes.pcscf).expect("user in lab");
    let mut ue = Ue::start(ucfg, Trace::disabled(), shutdown.clone())
        .await
        .expect("UE binds");
    ue.register(600).await.expect("registers");
    let opts = ChatOptions {
        report_acks: true,
        ..ChatOptions::default()
    };
    let mut c = ChatUe::start(ue, Trace::disabled(), opts);
    let mut events = c.take_events();
    let (log, me) = (log.clone(), format!("sip:{user}@ims.lab"));
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Ok(mut l) = log.lock() else { return };
            match ev {
                ChatEvent::Acked {
                    message_id,
                    report: None,
                } => {
                    l.acked.insert(message_id);
                }
                ChatEvent::GroupMessage { message_id, .. } => {
                    l.shown.entry(message_id).or_default().push(me.clone());
                }
                _ => {}
            }
        }
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_group_conversation_loses_no_acknowledged_message_and_shows_none_twice() {
    let seed = std::env::var("RCSLAB_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(7)
        });
    eprintln!("group crash test: seed {seed} (RCSLAB_CRASH_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config: PathBuf = tmp.path().join("lab.toml");
    let data = tmp.path().join("data");
    let (cfg, mut lab) = start_fresh_lab(&config, &data).await;
    let (_stop, shutdown) = watch::channel(false);
    let log = Arc::new(Mutex::new(Log::default()));
    let alice = member(&cfg, "alice", &shutdown, &log).await;
    let bob = member(&cfg, "bob", &shutdown, &log).await;
    let carol = member(&cfg, "carol", &shutdown, &log).await;
    let group = alice
        .create_group("Crash", &["bob", "carol"])
        .await
        .expect("group created");
    const MESSAGES: usize = 400;
    const KILLS: usize = 2;
    let slice = MESSAGES / KILLS;
    let mut kill_at: Vec<usize> = (0..KILLS)
        .map(|k| k * slice + slice / 4 + rng.gen_range(0..slice / 2))
        .collect();
    let started = Instant::now();
    let writers = [&alice, &bob];
    for i in 0..MESSAGES {
        if kill_at.first() == Some(&i) {
            kill_at.remove(0);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..60))).await;
            sigkill(&lab);
            let _ = lab.wait().await;
            eprintln!(
                "group crash test: killed at message {i} ({:?})",
                started.elapsed()
            );
            lab = start_lab(&config, &data).await;
            // Registering again brings everyone back into the group (CONF's third-party
            // REGISTER); a writer's next message rejoins with an INVITE anyway.
            for c in [&alice, &bob, &carol] {
                reregister(c).await;
            }
        }
        let w = writers[rng.gen_range(0..writers.len())];
        let id = w.send(&group, &format!("g{i}")).await;
        if let Ok(mut l) = log.lock() {
            l.sent.insert(id, w.impu.clone());
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    }
    let members = ["sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"];
    // Each acknowledged message, to each member but its writer.
    let missing = |l: &Log| -> Vec<(String, String)> {
        l.acked
            .iter()
            .filter_map(|id| Some((id, l.sent.get(id)?)))
            .flat_map(|(id, writer)| {
                members
                    .iter()
                    .filter(move |m| *m != writer)
                    .filter(|m| !l.shown.get(id).is_some_and(|s| s.iter().any(|x| x == *m)))
                    .map(move |m| (id.clone(), m.to_string()))
            })
            .collect()
    };
    let until = Instant::now() + Duration::from_secs(45);
    loop {
        let n = log.lock().map(|l| missing(&l).len()).unwrap_or(1);
        if n == 0 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let l = log.lock().expect("log");
    let lost = missing(&l);
    let twice: Vec<_> = l
        .shown
        .iter()
        .filter(|(_, s)| {
            let set: HashSet<&String> = s.iter().collect();
            set.len() != s.len()
        })
        .collect();
    let by_writer: Vec<_> = l
        .shown
        .iter()
        .filter(|(id, s)| l.sent.get(*id).is_some_and(|w| s.contains(w)))
        .collect();
    eprintln!(
        "group crash test: {} sent, {} acknowledged, {} shown, {:?}",
        l.sent.len(),
        l.acked.len(),
        l.shown.len(),
        started.elapsed()
    );
    assert!(
        twice.is_empty(),
        "seed {seed}: shown twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert!(by_writer.is_empty(), "seed {seed}: shown to their writer");
    assert!(
        lost.is_empty(),
        "seed {seed}: acknowledged, never shown: {} (first {:?})",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        l.acked.len() * 2 >= l.sent.len(),
        "seed {seed}: only {} of {} acknowledged",
        l.acked.len(),
        l.sent.len()
    );
    drop(l);
    sigkill(&lab);
}
