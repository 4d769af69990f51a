//! `rcslab bench rtcweb`: the patent's RTCWeb gateway under load (signalling only). `pages`
//! WebSocket clients log in (the gateway registers each in IMS) and place calls at `rate` per
//! second to `callees` rcslab UEs, each call as figure 8 draws it: OFFER -> WAITING, INVITE
//! (100rel) through the core, a reliable 180 -> Ringing, PRANSWER -> PRACK -> OK, 200 -> OK,
//! ANSWER -> ACK; then the page hangs up (BYE -> OK). Latency from each call's *scheduled*
//! OFFER time (no coordinated omission) to its Ringing and to its OK (OFFER).
//!
//! Memory per idle connected client: `idle` more pages log in from a child process
//! (`rcslab bench rtcweb-hold`) and stay connected; the lab process's RSS growth divided by
//! their number is the gateway's cost per page (with the user's IMS registration at the
//! P-CSCF and S-CSCF, which share the process), the client's own buffers left out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::bench::{rss_kib, BenchError};
use crate::lab::{Lab, LabOptions};
use crate::sip::Method;
use crate::ue::{audio_sdp, uas_response, Ue, UeConfig};
use crate::LabConfig;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RtcwebBench {
    /// Pages placing calls.
    pub pages: usize,
    /// Calls scheduled.
    pub scheduled: usize,
    /// Calls set up (OK for the OFFER) and torn down (OK for the BYE).
    pub completed: usize,
    /// From the first scheduled OFFER to the last call's end.
    pub elapsed: Duration,
    /// Scheduled OFFER -> Ringing, p50 / p99 / max.
    pub ringing: [Duration; 3],
    /// Scheduled OFFER -> OK (OFFER), p99.
    pub setup_p99: Duration,
    /// Idle pages held by the child process.
    pub idle: usize,
    /// Lab RSS growth per idle page (KiB).
    pub idle_kib_per_page: f64,
    /// RSS after the run (KiB).
    pub rss_kib: u64,
    /// Why calls failed, with counts.
    pub failures: Vec<(String, usize)>,
}

type Ws = WebSocketStream<TcpStream>;
/// One call's outcome: (to Ringing, to OK (OFFER)), or why it failed.
type CallResult = Result<(Duration, Duration), CallFailure>;

/// Why a benchmark call failed.
#[derive(Debug, Clone, thiserror::Error)]
enum CallFailure {
    /// The page could not send.
    #[error("send: {0}")]
    Send(String),
    /// Another frame came.
    #[error("{got} where {wanted} was due")]
    Unexpected { wanted: &'static str, got: String },
    /// Nothing came within 10 s.
    #[error("no {0}")]
    Missing(&'static str),
}

async fn page_login(addr: std::net::SocketAddr, user: &str, password: &str) -> Option<Ws> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .ok()?;
    let reg =
        json!({"type": "REGISTER", "from": format!("sip:{user}@ims.lab"), "password": password});
    ws.send(Message::Text(reg.to_string().into())).await.ok()?;
    let ok = frame(&mut ws).await?;
    (ok["type"] == "OK").then_some(ws)
}

/// The next text frame (10 s at most).
async fn frame(ws: &mut Ws) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn expect(ws: &mut Ws, kind: &'static str) -> Result<Value, CallFailure> {
    match frame(ws).await {
        Some(v) if v["type"] == kind => Ok(v),
        Some(v) => Err(CallFailure::Unexpected {
            wanted: kind,
            got: format!(
                "{} ({})",
                v["type"].as_str().unwrap_or("?"),
                v["reason"].as_str().unwrap_or("")
            ),
        }),
        None => Err(CallFailure::Missing(kind)),
    }
}

/// One call from a page, timed from `scheduled`: (to Ringing, to OK (OFFER)).
async fn one_call(ws: &mut Ws, session: &str, to: &str, scheduled: Instant) -> CallResult {
    let send = |v: Value| Message::Text(v.to_string().into());
    let offer = json!({"type": "OFFER", "session": session, "to": to, "sdp": audio_sdp(4000)});
    ws.send(send(offer))
        .await
        .map_err(|e| CallFailure::Send(e.to_string()))?;
    expect(ws, "WAITING").await?;
    expect(ws, "Ringing").await?;
    let ringing = scheduled.elapsed();
    let pr = json!({"type": "PRANSWER", "session": session});
    ws.send(send(pr))
        .await
        .map_err(|e| CallFailure::Send(e.to_string()))?;
    expect(ws, "OK").await?;
    expect(ws, "OK").await?;
    let setup = scheduled.elapsed();
    let answer = json!({"type": "ANSWER", "session": session});
    ws.send(send(answer))
        .await
        .map_err(|e| CallFailure::Send(e.to_string()))?;
    let bye = json!({"type": "BYE", "session": session});
    ws.send(send(bye))
        .await
        .map_err(|e| CallFailure::Send(e.to_string()))?;
    expect(ws, "OK").await?;
    Ok((ringing, setup))
}

/// A callee: answers every INVITE with a reliable 180, its PRACK with 200 and then the 200
/// for the INVITE; BYE with 200.
fn callee(mut ue: Ue, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let contact = ue.contact();
        let mut invites = std::collections::HashMap::new();
        loop {
            let inc = tokio::select! {
                i = ue.next_request(Duration::from_secs(1)) => i,
                _ = stop.changed() => return,
            };
            let Some(inc) = inc else { continue };
            let call_id = inc.request.headers.get("Call-ID").unwrap_or("").to_string();
            match inc.request.method {
                Method::Invite => {
                    let mut r = uas_response(&inc.request, 180, "b", &contact, None);
                    r.headers.push("Require", "100rel");
                    r.headers.push("RSeq", "1");
                    inc.tx.respond(r);
                    invites.insert(call_id, inc);
                }
                Method::Prack => {
                    inc.tx
                        .respond(uas_response(&inc.request, 200, "b", &contact, None));
                    if let Some(inv) = invites.remove(&call_id) {
                        inv.tx.respond(uas_response(
                            &inv.request,
                            200,
                            "b",
                            &contact,
                            Some(&audio_sdp(5000)),
                        ));
                    }
                }
                Method::Ack => {}
                _ => inc
                    .tx
                    .respond(uas_response(&inc.request, 200, "b", &contact, None)),
            }
        }
    })
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs the benchmark on a fresh in-process lab (ephemeral ports); `holder` is the rcslab
/// binary that holds the idle pages.
pub async fn rtcweb(
    pages: usize,
    callees: usize,
    idle: usize,
    rate: u64,
    seconds: u64,
    holder: &std::path::Path,
) -> Result<RtcwebBench, BenchError> {
    // Signalling only: the pages' SDP is a plain one and passes untouched (the media bridge
    // has its own benchmark, `rcslab bench bridge`).
    let mut extra = format!(
        "default_ifc = []\n[pcscf]\nsubscribe_reg = false\n[rtcweb]\nmedia_bridge = false\nmax_users = {}\nmax_connections = {}\n",
        pages + idle + 10,
        pages + idle + 100
    );
    for i in 0..pages + idle {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:w{i}@ims.lab\"]\npassword = \"pw{i}\"\n"
        ));
    }
    for i in 0..callees {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:c{i}@ims.lab\"]\npassword = \"cpw{i}\"\n"
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-rtcweb-{}", std::process::id()));
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
    let addr = lab.addrs.rtcweb;

    let mut loops = Vec::new();
    for i in 0..callees {
        let c = UeConfig::from_lab(&lab.config, &format!("c{i}"), lab.addrs.pcscf)
            .ok_or(BenchError::UserMissing)?;
        let mut ue = Ue::start(c, lab.trace.clone(), shut.clone()).await?;
        ue.register(3600).await?;
        loops.push(callee(ue, shut.clone()));
    }

    // The idle pages, in a child process: the lab's RSS growth is the gateway's cost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let mut child = tokio::process::Command::new(holder)
        .args(["bench", "rtcweb-hold", "--addr"])
        .arg(addr.to_string())
        .arg("--from")
        .arg(pages.to_string())
        .arg("--count")
        .arg(idle.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::SendFailed(format!("rtcweb-hold: {e}")))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::SendFailed("rtcweb-hold: no stdout".into()))?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let said = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .map_err(|_| BenchError::SendFailed("rtcweb-hold: not ready in 120 s".into()))?
        .ok()
        .flatten()
        .unwrap_or_default();
    let held: usize = said
        .strip_prefix("held ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| BenchError::SendFailed(format!("rtcweb-hold said: {said}")))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    let idle_kib_per_page = after.saturating_sub(before) as f64 / held.max(1) as f64;

    // The calling pages, 64 logging in at a time.
    let gate = Arc::new(Semaphore::new(64));
    let mut logins = Vec::new();
    for i in 0..pages {
        let gate = gate.clone();
        logins.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            page_login(addr, &format!("w{i}"), &format!("pw{i}")).await
        }));
    }
    let mut jobs = Vec::new();
    let results: Arc<Mutex<Vec<CallResult>>> = Default::default();
    let mut workers = Vec::new();
    for (i, l) in logins.into_iter().enumerate() {
        let Some(mut ws) = l.await.ok().flatten() else {
            return Err(BenchError::SendFailed(format!("page w{i} did not log in")));
        };
        let (tx, mut rx) = mpsc::channel::<(String, String, Instant)>(64);
        jobs.push(tx);
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            while let Some((session, to, at)) = rx.recv().await {
                let r = one_call(&mut ws, &session, &to, at).await;
                if let Ok(mut v) = results.lock() {
                    v.push(r);
                }
            }
        }));
    }

    // The load: one call every 1/rate s, round-robin over pages and callees.
    let scheduled = (rate * seconds) as usize;
    let t0 = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    for k in 0..scheduled {
        let at = t0 + period * k as u32;
        tokio::time::sleep_until(at.into()).await;
        let to = format!("sip:c{}@ims.lab", k % callees.max(1));
        let _ = jobs[k % pages].try_send((format!("b{k}"), to, at));
    }
    drop(jobs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for w in workers {
        let _ = tokio::time::timeout_at(deadline, w).await;
    }
    let elapsed = t0.elapsed();
    let _ = stop.send(true);
    drop(child);
    let results = results.lock().map(|v| v.clone()).unwrap_or_default();
    let mut ringing = Vec::new();
    let mut setup = Vec::new();
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    for r in results {
        match r {
            Ok((a, b)) => {
                ringing.push(a);
                setup.push(b);
            }
            Err(e) => *failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let completed = ringing.len();
    let r = RtcwebBench {
        pages,
        scheduled,
        completed,
        elapsed,
        ringing: [
            pct(&mut ringing, 0.5),
            pct(&mut ringing, 0.99),
            pct(&mut ringing, 1.0),
        ],
        setup_p99: pct(&mut setup, 0.99),
        idle: held,
        idle_kib_per_page,
        rss_kib: rss_kib(),
        failures: failures.into_iter().collect(),
    };
    lab.shutdown().await;
    for l in loops {
        l.abort();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

/// `rcslab bench rtcweb-hold`: logs pages `w{from}`… in (`count` of them, password `pw{i}`)
/// at the gateway at `addr`, prints `held N`, and keeps them connected until stdin closes.
pub async fn hold(addr: std::net::SocketAddr, from: usize, count: usize) -> std::io::Result<()> {
    let gate = Arc::new(Semaphore::new(100));
    let mut tasks = Vec::new();
    for i in from..from + count {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            page_login(addr, &format!("w{i}"), &format!("pw{i}")).await
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            held.push(ws);
        }
    }
    println!("held {}", held.len());
    // Answer the gateway's pings while waiting for stdin to close.
    let keep = tokio::spawn(async move {
        let mut streams = futures_util::stream::select_all(held.into_iter().map(|ws| ws.boxed()));
        while streams.next().await.is_some() {}
    });
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    keep.abort();
    Ok(())
}
