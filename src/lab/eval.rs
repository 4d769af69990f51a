//! `rcslab eval webrsf`: the paper's evaluation (seed 000 §5) from real flows instead of a
//! model. A population of RCS clients (simulated UEs speaking SIP and MSRP) and WebRSF clients
//! (web users speaking HTTP to the gateway) each start 1-to-1 chats, a Poisson-distributed
//! number of them (mean `chats`, the paper's Poisson(25)), to random peers of either kind. A
//! chat is: session set-up carrying the first message, `later` messages over the session,
//! close. Every message that crosses a client's socket is counted from the flight recorder,
//! by client kind, protocol and phase (set-up: everything up to the session being bound and the
//! first message reported delivered; after: later messages, their reports, the close).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Mutex};

use crate::cpim::ImdnStatus;
use crate::lab::{Lab, LabOptions};
use crate::trace::Protocol;
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{Ue, UeConfig};
use crate::webrsf::client::WebClient;
use crate::LabConfig;

/// Why the evaluation did not run to the end; the texts are the ones `rcslab eval` has always
/// printed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation's lab file does not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The evaluation's lab does not start.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// An RCS UE cannot bind its sockets.
    #[error("{0}")]
    UeStart(#[from] std::io::Error),
    /// An RCS UE does not register.
    #[error(transparent)]
    Ue(#[from] crate::ue::UeError),
    /// A user the evaluation added or planned is not there (the text says which kind).
    #[error("{0}")]
    Missing(&'static str),
    /// A web user's login, channel or request failed.
    #[error(transparent)]
    Web(#[from] crate::webrsf::client::WebClientError),
    /// A chat task panicked or was cancelled.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Messages counted for one client kind in one phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// SIP messages at the client.
    pub sip: u64,
    /// MSRP messages at the client.
    pub msrp: u64,
    /// HTTP requests, responses and event chunks at the client.
    pub http: u64,
}

impl Counts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.sip + self.msrp + self.http
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// RCS clients, WebRSF clients.
    pub users: (usize, usize),
    /// Chats completed.
    pub chats: usize,
    /// Chat participations by RCS clients and by web clients (sender or receiver).
    pub participations: (u64, u64),
    /// RCS clients: set-up, after.
    pub rcs: (Counts, Counts),
    /// Web clients: set-up, after.
    pub web: (Counts, Counts),
    /// Wall time.
    pub elapsed: Duration,
}

fn poisson(mean: f64, rng: &mut impl Rng) -> usize {
    // Knuth's method (means up to a few hundred are fine).
    let l = (-mean).exp();
    let (mut k, mut p) = (0usize, 1.0f64);
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// One lock per unordered pair of users.
type PairLocks = HashMap<(usize, usize), Arc<Mutex<()>>>;

enum Who {
    Rcs,
    Web,
}

/// Runs the evaluation on a fresh in-process lab.
pub async fn webrsf(
    rcs_users: usize,
    web_users: usize,
    chats: f64,
    later: usize,
    seed: u64,
) -> Result<EvalReport, EvalError> {
    let mut extra = String::new();
    for i in 0..rcs_users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:r{i}@ims.lab\"]\npassword = \"r{i}-pw\"\n"
        ));
    }
    for i in 0..web_users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:w{i}@ims.lab\"]\npassword = \"w{i}-pw\"\n"
        ));
    }
    extra.push_str("[pcscf]\nsubscribe_reg = false\n[webrsf]\nkeepalive_secs = 600\n");
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-eval-{}", std::process::id()));
    let lab = Lab::start(
        cfg,
        &dir,
        LabOptions {
            trace: true,
            timers: None,
            hep: None,
        },
    )
    .await?;
    let r = run(&lab, rcs_users, web_users, chats, later, seed).await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

async fn run(
    lab: &Lab,
    rcs_users: usize,
    web_users: usize,
    mean: f64,
    later: usize,
    seed: u64,
) -> Result<EvalReport, EvalError> {
    let (_stop, shut) = watch::channel(false);
    let opts = ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    };
    let mut rcs = Vec::new();
    for i in 0..rcs_users {
        let c = UeConfig::from_lab(&lab.config, &format!("r{i}"), lab.addrs.pcscf)
            .ok_or(EvalError::Missing("eval user missing"))?;
        let mut ue = Ue::start(c, lab.trace.clone(), shut.clone()).await?;
        lab.name_addr(ue.local_addr(), &format!("UE r{i}"));
        ue.register(600).await?;
        rcs.push(ChatUe::start(ue, lab.trace.clone(), opts.clone()));
    }
    // Web users: logged in, channel open, the paper's client answering events; reports about
    // their own messages go to their chat driver.
    let mut webs = Vec::new();
    for i in 0..web_users {
        let c = WebClient::login(lab.addrs.webrsf, &format!("w{i}"), &format!("w{i}-pw")).await?;
        let mut ch = c.channel(0).await?;
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        let answerer = c.clone();
        tokio::spawn(async move {
            while let Some(ev) = ch.recv().await {
                if ev["type"] == "messageStatusNotification" {
                    let _ = tx.send(ev);
                } else if let Err(e) = answerer.answer(&ev).await {
                    tracing::warn!(error = %e, "eval web client");
                }
            }
        });
        webs.push((c, rx));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.trace.clear();

    let n = rcs_users + web_users;
    let aor = |k: usize| {
        if k < rcs_users {
            format!("sip:r{k}@ims.lab")
        } else {
            format!("sip:w{}@ims.lab", k - rcs_users)
        }
    };
    // One chat at a time per pair of users (no INVITE glare).
    let pair_locks: Arc<PairLocks> = Arc::new(
        (0..n)
            .flat_map(|a| ((a + 1)..n).map(move |b| (a, b)))
            .map(|k| (k, Arc::new(Mutex::new(()))))
            .collect(),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut plans: Vec<Vec<usize>> = Vec::new();
    for me in 0..n {
        let k = poisson(mean, &mut rng);
        plans.push(
            (0..k)
                .map(|_| loop {
                    let p = rng.gen_range(0..n);
                    if p != me {
                        break p;
                    }
                })
                .collect(),
        );
    }
    let firsts: Arc<std::sync::Mutex<HashSet<String>>> = Default::default();
    let participations = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let mut rcs_it = rcs.into_iter();
    let mut web_it = webs.into_iter();
    for (me, plan) in plans.into_iter().enumerate() {
        let who = if me < rcs_users { Who::Rcs } else { Who::Web };
        let locks = pair_locks.clone();
        let firsts = firsts.clone();
        let parts = participations.clone();
        let peers: Vec<String> = plan.iter().map(|&p| aor(p)).collect();
        let kinds: Vec<bool> = plan.iter().map(|&p| p < rcs_users).collect();
        match who {
            Who::Rcs => {
                let mut ue = rcs_it.next().ok_or(EvalError::Missing("missing UE"))?;
                tasks.push(tokio::spawn(async move {
                    let mut done = 0usize;
                    for (i, (&p, peer)) in plan.iter().zip(&peers).enumerate() {
                        let key = (me.min(p), me.max(p));
                        let _g = locks[&key].lock().await;
                        let first = ue.send(peer, &format!("chat {i}")).await;
                        if let Ok(mut f) = firsts.lock() {
                            f.insert(first.clone());
                        }
                        if !wait_rcs(&mut ue, &first).await {
                            continue;
                        }
                        for j in 0..later {
                            let id = ue.send(peer, &format!("chat {i} msg {j}")).await;
                            wait_rcs(&mut ue, &id).await;
                        }
                        ue.close(peer);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        count(&parts, true, kinds[i]);
                        done += 1;
                    }
                    // Keep the client (and its sessions) alive until everyone is done.
                    (done, Some(ue), None)
                }));
            }
            Who::Web => {
                let (c, mut rx) = web_it
                    .next()
                    .ok_or(EvalError::Missing("missing web user"))?;
                tasks.push(tokio::spawn(async move {
                    let mut done = 0usize;
                    for (i, (&p, peer)) in plan.iter().zip(&peers).enumerate() {
                        let key = (me.min(p), me.max(p));
                        let _g = locks[&key].lock().await;
                        let Ok((201, v)) = c
                            .call(
                                Method::POST,
                                "/Chat",
                                Some(json!({"to": peer, "text": format!("chat {i}")})),
                            )
                            .await
                        else {
                            continue;
                        };
                        let inst = v["instance_id"].as_str().unwrap_or_default().to_string();
                        let first = v["message_id"].as_str().unwrap_or_default().to_string();
                        if let Ok(mut f) = firsts.lock() {
                            f.insert(first.clone());
                        }
                        if !wait_web(&mut rx, &first).await {
                            continue;
                        }
                        for j in 0..later {
                            if let Ok((201, v)) = c
                                .call(
                                    Method::POST,
                                    &format!("/Chat/{inst}/Messages"),
                                    Some(json!({"text": format!("chat {i} msg {j}")})),
                                )
                                .await
                            {
                                wait_web(&mut rx, v["message_id"].as_str().unwrap_or("")).await;
                            }
                        }
                        let _ = c
                            .call(
                                Method::PUT,
                                &format!("/Chat/{inst}"),
                                Some(json!({"status": "closed"})),
                            )
                            .await;
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        count(&parts, false, kinds[i]);
                        done += 1;
                    }
                    (done, None, Some((c, rx)))
                }));
            }
        }
    }
    let mut chats = 0;
    let mut keep = Vec::new();
    for t in tasks {
        let (d, ue, web) = t.await?;
        chats += d;
        keep.push((ue, web));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = t0.elapsed();
    let firsts = firsts.lock().map(|f| f.clone()).unwrap_or_default();
    let (rcs_c, web_c) = tally(lab, &firsts);
    let parts = participations.lock().map(|p| *p).unwrap_or((0, 0));
    drop(keep);
    Ok(EvalReport {
        users: (rcs_users, web_users),
        chats,
        participations: parts,
        rcs: rcs_c,
        web: web_c,
        elapsed,
    })
}

fn count(parts: &std::sync::Mutex<(u64, u64)>, me_rcs: bool, peer_rcs: bool) {
    if let Ok(mut p) = parts.lock() {
        for rcs in [me_rcs, peer_rcs] {
            if rcs {
                p.0 += 1;
            } else {
                p.1 += 1;
            }
        }
    }
}

async fn wait_rcs(ue: &mut ChatUe, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ue.next_event(left).await {
            Some(ChatEvent::Status {
                message_id,
                status: ImdnStatus::Delivered,
                ..
            }) if message_id == id => return true,
            Some(ChatEvent::SendFailed { message_id, .. }) if message_id == id => return false,
            Some(_) => {}
            None => return false,
        }
    }
}

async fn wait_web(rx: &mut mpsc::UnboundedReceiver<Value>, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ev)) if ev["data"]["message_id"] == id => {
                return ev["data"]["status"] == "delivered";
            }
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}

/// Counts, from the recorder, what crossed each client's sockets, by kind and phase.
fn tally(lab: &Lab, firsts: &HashSet<String>) -> ((Counts, Counts), (Counts, Counts)) {
    let rec = lab.recorder();
    let trace = &lab.trace;
    // Web clients speak only HTTP and UEs never do, and ephemeral ports get reused over a run
    // (an old HTTP connection's name must not stick to a new MSRP connection): HTTP is named
    // by the address itself, SIP and MSRP through the connection aliases first.
    let named = |a: SocketAddr, http: bool, at: Duration| {
        if http {
            return rec.name_of(a);
        }
        let via = trace.resolve_at(a, at);
        if via != a {
            rec.name_of(via)
        } else {
            rec.name_of(a)
        }
    };
    let mut rcs = (Counts::default(), Counts::default());
    let mut web = (Counts::default(), Counts::default());
    // MSRP transaction ids and HTTP connections that are part of a set-up.
    let mut setup_tids: HashSet<String> = HashSet::new();
    let mut setup_http: HashMap<SocketAddr, bool> = HashMap::new();
    let mentions_first = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        firsts
            .iter()
            .any(|f| !f.is_empty() && s.contains(f.as_str()))
    };
    for e in crate::trace_view::export::wire_events(trace) {
        let http = matches!(e.protocol, Protocol::Http);
        let (src, dst) = (named(e.src(), http, e.at), named(e.dst(), http, e.at));
        let client_rcs = !http && (src.starts_with("UE ") || dst.starts_with("UE "));
        let client_web = http && (src.starts_with("Web ") || dst.starts_with("Web "));
        if !client_rcs && !client_web {
            continue;
        }
        let setup = match e.protocol {
            Protocol::SipUdp | Protocol::SipTcp => {
                // The INVITE transaction and the IMDN MESSAGE of figure 1 are set-up; BYE
                // (the close) is after.
                let cseq = String::from_utf8_lossy(&e.bytes)
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("CSeq:")
                            .or_else(|| l.strip_prefix("CSeq :"))
                            .map(|v| v.trim().to_string())
                    })
                    .unwrap_or_default();
                !cseq.ends_with("BYE")
            }
            Protocol::Msrp => {
                let tid = e
                    .summary
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let is_request = e.summary.ends_with(" SEND") || e.summary.ends_with(" REPORT");
                if is_request {
                    let body_start = e
                        .bytes
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|p| p + 4)
                        .unwrap_or(e.bytes.len());
                    let bind = e.bytes.len() <= body_start
                        || !e.bytes[body_start..]
                            .iter()
                            .any(|b| !b.is_ascii_whitespace() && *b != b'-');
                    // A bind (empty SEND) or the IMDN about a first message.
                    let s = bind
                        || (mentions_first(&e.bytes)
                            && String::from_utf8_lossy(&e.bytes).contains("imdn+xml"));
                    if s {
                        setup_tids.insert(tid);
                    }
                    s
                } else {
                    setup_tids.contains(&tid)
                }
            }
            Protocol::Http => {
                let text = String::from_utf8_lossy(&e.bytes);
                let client = if src.starts_with("Web ") {
                    e.src()
                } else {
                    e.dst()
                };
                if src.starts_with("Web ") {
                    // A request: POST Chat (the INVITE), or the PUT that acknowledges a first
                    // message, opens a set-up exchange; its response follows on the connection.
                    let first_line = text.lines().next().unwrap_or("");
                    let path = first_line.split_whitespace().nth(1).unwrap_or("");
                    let s = (first_line.starts_with("POST ") && path.ends_with("/Chat"))
                        || (first_line.starts_with("PUT ")
                            && mentions_first(&e.bytes)
                            && !text.contains("\"closed\""));
                    setup_http.insert(client, s);
                    s
                } else if text.starts_with("HTTP/1.1 ") {
                    setup_http.get(&client).copied().unwrap_or(false)
                } else {
                    // An event chunk.
                    text.contains("\"initiate\"")
                        || text.contains("\"accepted\"")
                        || (text.contains("messageStatusNotification") && mentions_first(&e.bytes))
                }
            }
            Protocol::Diameter | Protocol::Smpp => continue,
        };
        let add = |c: &mut Counts| match e.protocol {
            Protocol::SipUdp | Protocol::SipTcp => c.sip += 1,
            Protocol::Msrp => c.msrp += 1,
            Protocol::Http => c.http += 1,
            Protocol::Diameter | Protocol::Smpp => {}
        };
        let target = if client_rcs { &mut rcs } else { &mut web };
        if setup {
            add(&mut target.0);
        } else {
            add(&mut target.1);
        }
        // A message between two clients of different kinds does not exist (they meet only
        // through the network), so each message is counted once.
    }
    (rcs, web)
}

/// The report as a table beside the paper's figures.
pub fn table(r: &EvalReport) -> String {
    let per = |c: &Counts, n: u64| {
        let n = n.max(1) as f64;
        (
            c.sip as f64 / n,
            c.msrp as f64 / n,
            c.http as f64 / n,
            c.total() as f64 / n,
        )
    };
    let (pr, pw) = r.participations;
    let mut out = format!(
        "rcslab eval webrsf: {} RCS clients + {} WebRSF clients, {} chats (set-up, later messages, close) in {:.1} s\n\n",
        r.users.0,
        r.users.1,
        r.chats,
        r.elapsed.as_secs_f64()
    );
    out.push_str("messages a client handles per chat it takes part in\n");
    out.push_str("phase    client   SIP     MSRP    HTTP    total   web vs RCS   paper (SIP)\n");
    for (phase, rc, wc, paper) in [
        ("set-up", &r.rcs.0, &r.web.0, "-17 %"),
        ("after", &r.rcs.1, &r.web.1, "+25 %"),
    ] {
        let a = per(rc, pr);
        let b = per(wc, pw);
        let diff = if a.3 > 0.0 {
            format!("{:+.0} %", (b.3 - a.3) / a.3 * 100.0)
        } else {
            "n/a".into()
        };
        out.push_str(&format!(
            "{phase:<8} RCS      {:<7.2} {:<7.2} {:<7.2} {:<7.2}\n",
            a.0, a.1, a.2, a.3
        ));
        out.push_str(&format!(
            "{:<8} WebRSF   {:<7.2} {:<7.2} {:<7.2} {:<7.2} {diff:<12} {paper}\n",
            "", b.0, b.1, b.2, b.3
        ));
    }
    out
}
