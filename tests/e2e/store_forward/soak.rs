//! The soak: users coming and going at random (seeded), RCS clients and web users, some
//! leaving dead contacts (or open gateway sessions) behind.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatUe};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::watch;

use super::{delivered_only, pending_total, users_toml};
use crate::{lab_with, ue};

/// What the soak's clients saw, across all their incarnations.
#[derive(Default)]
struct SoakLog {
    /// Per recipient: (sender, text) in arrival order.
    got: HashMap<String, Vec<(String, String)>>,
    /// Per message id: the "delivered" reports its sender got.
    delivered: HashMap<String, usize>,
    /// Messages the sending client itself reported failed (MSRP error on a dying session).
    send_failed: HashSet<String>,
}

impl SoakLog {
    /// The message reached `to` and its sender has the IMDN (or the sender's client itself
    /// reported it failed).
    fn arrived(&self, to: &str, text: &str, id: &str) -> bool {
        self.send_failed.contains(id)
            || (self.delivered.contains_key(id)
                && self
                    .got
                    .get(to)
                    .is_some_and(|g| g.iter().any(|(_, t)| t == text)))
    }
}

/// One registered incarnation of a soak user: an RCS client, or a web user logged in to the
/// WebRSF gateway with its notification channel open.
struct Incarnation {
    /// The RCS client (None for a web user).
    chat: Option<ChatUe>,
    /// A web user's token (Some for a web user).
    token: Option<String>,
    stop: watch::Sender<bool>,
    /// A web user's client task: on leaving, it finishes acknowledging what it fetched before
    /// it logs out (a client that logs out between `GET Chat/Media` and its `PUT` leaves
    /// those messages unacknowledged: T-IM keeps them `sent`, their sender gets no IMDN).
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Soak users from this index on are web users of the WebRSF gateway (`RCSLAB_SOAK_WEB=0`
/// leaves them out).
const FIRST_WEB: usize = 15;

fn web_users() -> bool {
    std::env::var("RCSLAB_SOAK_WEB").map_or(true, |v| v != "0")
}

async fn come_online(lab: &Lab, user: &str, log: &Arc<Mutex<SoakLog>>) -> Incarnation {
    let index: usize = user.trim_start_matches('s').parse().unwrap_or(0);
    if web_users() && index >= FIRST_WEB {
        come_online_web(lab, user, log).await
    } else {
        come_online_rcs(lab, user, log).await
    }
}

/// A web user as the paper's client behaves: on each chat or message notification it reads
/// `Chat/Media` and acknowledges each message with `PUT Chat/{id}` (status delivered), which
/// sends the sender its IMDN.
async fn come_online_web(lab: &Lab, user: &str, log: &Arc<Mutex<SoakLog>>) -> Incarnation {
    use crate::web::{call, call_raw, login, Channel};
    use hyper::Method as Http;
    let token = login(lab, user, &format!("{user}-pw")).await;
    let mut ch = Channel::open(lab, user, &token, 0).await;
    let (stop, mut stopped) = watch::channel(false);
    let (w, log, me, user, tok) = (
        lab.addrs.webrsf,
        log.clone(),
        format!("sip:{user}@ims.lab"),
        user.to_string(),
        token.clone(),
    );
    let task = tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                e = ch.try_next(Duration::from_secs(120)) => e,
                _ = stopped.changed() => return,
            };
            let Some(ev) = ev else { return };
            let incoming = (ev["type"] == "chat" && ev["data"]["status"] == "initiate")
                || ev["type"] == "messageNotification";
            if !incoming {
                continue;
            }
            let path = format!("/webrsf/v1/{user}/Chat/Media");
            let (s, body) = call_raw(w, Http::GET, &path, Some(&tok), None).await;
            if s != 200 {
                continue;
            }
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(m) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                let (Some(mid), Some(inst), Some(sender), Some(text)) = (
                    m["message_id"].as_str(),
                    m["instance_id"].as_str(),
                    m["sender"].as_str(),
                    m["text"].as_str(),
                ) else {
                    continue;
                };
                if let Ok(mut l) = log.lock() {
                    l.got
                        .entry(me.clone())
                        .or_default()
                        .push((format!("sip:{sender}@ims.lab"), text.to_string()));
                }
                let body = serde_json::json!({"status": "delivered", "message_id": mid});
                let path = format!("/webrsf/v1/{user}/Chat/{inst}");
                let _ = call(w, Http::PUT, &path, Some(&tok), Some(body)).await;
            }
        }
    });
    Incarnation {
        chat: None,
        token: Some(token),
        stop,
        task: Some(task),
    }
}

impl Incarnation {
    /// Goes offline properly: an RCS client de-registers, a web user logs out.
    async fn leave(self, lab: &Lab, user: &str) {
        if let Some(chat) = &self.chat {
            assert!(chat.deregister().await, "{user} de-registers");
        }
        if let Some(token) = &self.token {
            let _ = self.stop.send(true);
            if let Some(task) = self.task {
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
            let (s, v) = crate::web::call(
                lab.addrs.webrsf,
                hyper::Method::DELETE,
                &format!("/webrsf/v1/{user}/Session"),
                Some(token),
                None,
            )
            .await;
            assert!(s == 200 || s == 204, "{user} logs out: {s} {v}");
        }
    }
}

async fn come_online_rcs(lab: &Lab, user: &str, log: &Arc<Mutex<SoakLog>>) -> Incarnation {
    let (stop, shut) = watch::channel(false);
    let mut u = ue(lab, user, AuthMode::Digest, &shut).await;
    u.register(600).await.expect("registers");
    let mut chat = ChatUe::start(u, lab.trace.clone(), delivered_only());
    let mut events = chat.take_events();
    let (log, me) = (log.clone(), format!("sip:{user}@ims.lab"));
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Ok(mut l) = log.lock() else { return };
            match ev {
                ChatEvent::Message { from, text, .. } => {
                    l.got.entry(me.clone()).or_default().push((from, text))
                }
                ChatEvent::Status {
                    message_id,
                    status: ImdnStatus::Delivered,
                    ..
                } => *l.delivered.entry(message_id).or_default() += 1,
                ChatEvent::SendFailed { message_id, .. } if !message_id.is_empty() => {
                    l.send_failed.insert(message_id);
                }
                _ => {}
            }
        }
    });
    Incarnation {
        chat: Some(chat),
        token: None,
        stop,
        task: None,
    }
}

/// The soak: 20 users (15 RCS clients, 5 web users of the WebRSF gateway) go offline
/// (de-registering or logging out, or vanishing and leaving a dead contact or an open gateway
/// session registered) and come back at random (seeded) while online ones send to random others; at
/// the end everyone is online and every message has arrived exactly once, in order per
/// sender, every sender has exactly one IMDN "delivered" per message, and T-IM holds nothing
/// pending or owed.
#[tokio::test]
async fn soak_users_come_and_go_and_everything_arrives_exactly_once_in_order() {
    const USERS: usize = 20;
    const ROUNDS: usize = 8;
    // RCSLAB_SOAK_LOG=rcslab::im=debug shows T-IM's decisions with a failure.
    if let Ok(filter) = std::env::var("RCSLAB_SOAK_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml("s", USERS)).await;
    let log = Arc::new(Mutex::new(SoakLog::default()));
    // Deterministic; RCSLAB_SOAK_SEED picks another run of the same soak.
    let seed = std::env::var("RCSLAB_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let name = |i: usize| format!("s{i}");
    let aor = |i: usize| format!("sip:s{i}@ims.lab");
    let mut online: Vec<Option<Incarnation>> = (0..USERS).map(|_| None).collect();
    for (i, slot) in online.iter_mut().enumerate() {
        if rng.gen_bool(0.5) {
            *slot = Some(come_online(&lab, &name(i), &log).await);
        }
    }
    // (from, to, text, id), in sending order.
    let mut sent: Vec<(String, String, String, String)> = Vec::new();
    let mut vanished = 0;
    // Messages whose sender vanished before T-IM had them (see the vanish step).
    let mut died_with: HashSet<String> = HashSet::new();
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        for (i, slot) in online.iter_mut().enumerate() {
            if !rng.gen_bool(0.35) {
                continue;
            }
            match slot.take() {
                Some(inc) if rng.gen_bool(0.3) => {
                    // What this client sent and the network has not taken yet dies with it
                    // (a crashed phone loses its outbox): excused if T-IM never got it.
                    let me = aor(i);
                    for (from, _, _, id) in &sent {
                        if *from == me && lab.tim.store().unwrap().by_message_id(id).is_none() {
                            died_with.insert(id.clone());
                        }
                    }
                    // Vanish: the process dies, its contact stays registered (dead); a web
                    // user closes the page without logging out (the gateway stays
                    // registered for it).
                    let _ = inc.stop.send(true);
                    drop(inc);
                    vanished += 1;
                }
                Some(inc) => inc.leave(&lab, &name(i)).await,
                None => *slot = Some(come_online(&lab, &name(i), &log).await),
            }
        }
        for (i, slot) in online.iter().enumerate() {
            let Some(chat) = slot.as_ref().and_then(|inc| inc.chat.as_ref()) else {
                continue;
            };
            if !rng.gen_bool(0.7) {
                continue;
            }
            let mut j = rng.gen_range(0..USERS - 1);
            if j >= i {
                j += 1;
            }
            let text = format!("s{i}->s{j} r{round} {}", sent.len());
            let id = chat.send(&aor(j), &text).await;
            sent.push((aor(i), aor(j), text, id));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Everyone comes back.
    for (i, slot) in online.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(come_online(&lab, &name(i), &log).await);
        }
    }
    // The network must deliver everything it accepted; only what a vanished client never
    // handed over may be missing.
    let excused =
        |id: &str| died_with.contains(id) && lab.tim.store().unwrap().by_message_id(id).is_none();
    let done = |log: &SoakLog| {
        sent.iter()
            .all(|(_, to, text, id)| excused(id) || log.arrived(to, text, id))
    };
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let ok = done(&log.lock().unwrap())
            && pending_total(&lab) == 0
            && (0..USERS).all(|i| lab.tim.store().unwrap().owed_to(&aor(i)).is_empty());
        if ok {
            break;
        }
        if Instant::now() > until {
            let l = log.lock().unwrap();
            let missing: Vec<_> = sent
                .iter()
                .filter(|(_, to, text, id)| !excused(id) && !l.arrived(to, text, id))
                .map(|(from, to, text, id)| {
                    let received = l
                        .got
                        .get(to)
                        .is_some_and(|g| g.iter().any(|(_, t)| t == text));
                    let status = lab
                        .tim
                        .store()
                        .and_then(|st| st.by_message_id(id))
                        .map(|m| m.status);
                    let owed = lab.tim.store().map(|st| st.owed_to(from).len());
                    format!(
                        "{text} (id {id}: received {received}, delivered reports {:?}, T-IM status {status:?}, IMDNs owed to the sender {owed:?})",
                        l.delivered.get(id)
                    )
                })
                .collect();
            panic!(
                "not everything arrived within 40 s: {} pending at T-IM, missing {missing:#?}",
                pending_total(&lab)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failed = {
        let l = log.lock().unwrap();
        let failed = l.send_failed.len();
        for (from, to, text, id) in &sent {
            if l.send_failed.contains(id) || excused(id) {
                continue;
            }
            let times = l.got[to].iter().filter(|(_, t)| t == text).count();
            assert_eq!(times, 1, "'{text}' arrived {times} times");
            assert_eq!(
                l.delivered.get(id),
                Some(&1),
                "one IMDN delivered for '{text}' to {from}"
            );
        }
        // In order per sender (what each recipient got from each sender follows the sending order).
        for (to, got) in &l.got {
            let mut by_sender: HashMap<&str, Vec<&str>> = HashMap::new();
            for (from, text) in got {
                by_sender.entry(from).or_default().push(text);
            }
            for (from, texts) in by_sender {
                let order: Vec<&str> = sent
                    .iter()
                    .filter(|(f, t, text, _)| {
                        f == from && t == to && texts.contains(&text.as_str())
                    })
                    .map(|(_, _, text, _)| text.as_str())
                    .collect();
                assert_eq!(texts, order, "{from} -> {to} out of order");
            }
        }
        // The History API's view: none of them is left `pending` (or `sent` without a report).
        for (_, _, text, id) in &sent {
            if let Some(m) = lab.tim.store().unwrap().by_message_id(id) {
                assert_eq!(m.status, "delivered", "'{text}' in T-IM's history");
            }
        }
        failed
    };
    let to_web = sent
        .iter()
        .filter(|(_, to, _, _)| {
            to.trim_start_matches("sip:s")
                .split('@')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| web_users() && n >= FIRST_WEB)
        })
        .count();
    eprintln!(
        "soak (seed {seed}): {} messages ({to_web} to web users), {vanished} dead contacts or closed pages left behind, {failed} refused by the sending client, {} lost with a vanished sender before T-IM had them, {:?}",
        sent.len(),
        sent.iter().filter(|(_, _, _, id)| excused(id)).count(),
        t0.elapsed()
    );
    assert!(
        sent.len() >= 20 && vanished >= 3 && (to_web >= 5 || !web_users()),
        "the soak did something"
    );
    lab.shutdown().await;
}
