//! `rcslab bench webrsf`: many concurrent WebRSF notification channels plus a message load
//! through the gateway. The channels are held by a child process (`rcslab bench
//! webrsf-hold`), so the lab process's RSS growth is the gateway's cost per channel alone and
//! neither process runs out of file descriptors. Messages go web user -> WebRSF (HTTP, one
//! keep-alive connection per sender) -> SIP/MSRP through P-CSCF, S-CSCF, O-IM, T-IM -> an RCS
//! UE; latency is from the web send to the RCS UE's receipt. Bounded in count and time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::lab::bench::rss_kib;
use crate::lab::{Lab, LabOptions};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{Ue, UeConfig};
use crate::webrsf::client::{WebClient, WebClientError};
use crate::LabConfig;

/// Why `rcslab bench webrsf` (or its channel holder, `bench webrsf-hold`) did not run to the
/// end; the texts are the ones the command printed when they were plain strings, with the
/// file named where one could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WebBenchError {
    /// The benchmark's lab file does not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The benchmark's lab does not start.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// A web user does not log in, or a send through the gateway fails.
    #[error(transparent)]
    Web(#[from] WebClientError),
    /// A subscriber the benchmark added is not in the lab.
    #[error("bench user missing")]
    UserMissing,
    /// A benchmark UE cannot bind its sockets.
    #[error("{0}")]
    UeStart(std::io::Error),
    /// A benchmark UE does not register.
    #[error(transparent)]
    Ue(#[from] crate::ue::UeError),
    /// The file of `user token` lines handed to the holder cannot be written or read.
    #[error("{}: {source}", path.display())]
    Tokens {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The holder process does not start.
    #[error("cannot start the channel holder: {0}")]
    HolderStart(std::io::Error),
    /// The holder's standard output is not there to read.
    #[error("no stdout")]
    HolderNoStdout,
    /// The holder did not report within 120 s.
    #[error("the holder did not open its channels within 120 s")]
    HolderSlow,
    /// Reading the holder's report failed.
    #[error("{0}")]
    HolderRead(std::io::Error),
    /// The holder exited before its report.
    #[error("the holder exited")]
    HolderExited,
    /// The holder reported something other than `held N` (its line).
    #[error("holder said '{0}'")]
    HolderSaid(String),
    /// The gateway's answer to a send is not JSON.
    #[error("{0}")]
    Answer(#[from] serde_json::Error),
    /// A sender task panicked or was cancelled.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    /// The RCS UEs had not received everything 60 s after the senders finished.
    #[error("receivers did not finish")]
    ReceiversSlow,
    /// `--singles` is not below the number of users in the tokens file.
    #[error("more single-channel users than users")]
    TooManySingles {
        /// Users asked to hold one channel each.
        singles: usize,
        /// Users in the tokens file.
        users: usize,
    },
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct WebBench {
    /// Web users logged in (each registered to IMS).
    pub users: usize,
    /// Notification channels held open at once.
    pub channels: usize,
    /// Lab process RSS before the channels opened (KiB).
    pub rss_before_kib: u64,
    /// ... and with all of them open.
    pub rss_channels_kib: u64,
    /// Messages sent by web users.
    pub sent: usize,
    /// Messages received by the RCS UEs (distinct).
    pub received: usize,
    /// Load phase wall time.
    pub elapsed: Duration,
    /// Web send -> RCS UE receipt, p50.
    pub p50: Duration,
    /// ... p99.
    pub p99: Duration,
}

/// Runs the benchmark on a fresh in-process lab. `holder` is the rcslab binary that holds the
/// channels in a child process.
pub async fn webrsf(
    users: usize,
    channels: usize,
    pairs: usize,
    messages: usize,
    rate: u64,
    holder: &Path,
) -> Result<WebBench, WebBenchError> {
    // The senders hold one channel each, like real users; the other users hold the rest.
    let users = users.max(pairs + 1);
    let per_user = channels
        .saturating_sub(pairs)
        .div_ceil(users - pairs)
        .max(1);
    let mut extra = format!(
        "[webrsf]\nmax_channels_per_user = {}\nkeepalive_secs = 30\n",
        per_user + 1
    );
    for i in 0..users {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:w{i}@ims.lab\"]\npassword = \"w{i}-pw\"\n"
        ));
    }
    for i in 0..pairs {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:r{i}@ims.lab\"]\npassword = \"r{i}-pw\"\n"
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-web-{}", std::process::id()));
    let lab = Lab::start(cfg, &dir, LabOptions::default()).await?;
    let web = lab.addrs.webrsf;
    let r = run(&lab, users, channels, pairs, messages, rate, holder, &dir).await;
    let _ = web;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[allow(clippy::too_many_arguments)]
async fn run(
    lab: &Lab,
    users: usize,
    channels: usize,
    pairs: usize,
    messages: usize,
    rate: u64,
    holder: &Path,
    dir: &Path,
) -> Result<WebBench, WebBenchError> {
    let web = lab.addrs.webrsf;
    // Web users log in (REGISTER each through the core), 20 at a time.
    let mut clients = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(20) {
        let logins = chunk.iter().map(|&i| async move {
            WebClient::login(web, &format!("w{i}"), &format!("w{i}-pw")).await
        });
        for c in futures_util::future::join_all(logins).await {
            clients.push(c?);
        }
    }
    let (_stop, shut) = watch::channel(false);
    let mut rcs = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let c = UeConfig::from_lab(&lab.config, &format!("r{i}"), lab.addrs.pcscf)
            .ok_or(WebBenchError::UserMissing)?;
        let mut ue = Ue::start(c, lab.trace.clone(), shut.clone())
            .await
            .map_err(WebBenchError::UeStart)?;
        ue.register(600).await?;
        rcs.push(ChatUe::start(
            ue,
            lab.trace.clone(),
            ChatOptions {
                disposition: "positive-delivery".into(),
                ..ChatOptions::default()
            },
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = rss_kib();

    // The channels, held by a child process.
    let tokens = dir.join("tokens.txt");
    let list: String = clients
        .iter()
        .map(|c| format!("{} {}\n", c.user, c.token))
        .collect();
    std::fs::write(&tokens, list).map_err(|source| WebBenchError::Tokens {
        path: tokens.clone(),
        source,
    })?;
    let mut child = tokio::process::Command::new(holder)
        .args(["bench", "webrsf-hold", "--addr"])
        .arg(web.to_string())
        .arg("--tokens")
        .arg(&tokens)
        .arg("--channels")
        .arg(channels.to_string())
        .arg("--singles")
        .arg(pairs.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(WebBenchError::HolderStart)?;
    let out = child.stdout.take().ok_or(WebBenchError::HolderNoStdout)?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let held = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .map_err(|_| WebBenchError::HolderSlow)?
        .map_err(WebBenchError::HolderRead)?
        .ok_or(WebBenchError::HolderExited)?;
    let held: usize = held
        .strip_prefix("held ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| WebBenchError::HolderSaid(held.clone()))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_channels_kib = rss_kib();

    // Message load: web user w_p -> RCS UE r_p, paced to `rate` in total.
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let lat: Arc<Mutex<Vec<Duration>>> = Default::default();
    let mut receivers = Vec::new();
    for (p, mut ue) in rcs.into_iter().enumerate() {
        let (sent_at, lat) = (sent_at.clone(), lat.clone());
        receivers.push(tokio::spawn(async move {
            let mut got = 0usize;
            // The warm-up message, then `messages`.
            while got < messages + 1 {
                match ue.next_event(Duration::from_secs(10)).await {
                    Some(ChatEvent::Message { text, .. }) => {
                        got += 1;
                        if let Some(t) = sent_at.lock().ok().and_then(|mut m| m.remove(&text)) {
                            if let Ok(mut l) = lat.lock() {
                                l.push(t.elapsed());
                            }
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            let _ = p;
            got.saturating_sub(1)
        }));
    }
    let gap = if rate > 0 {
        Some(Duration::from_secs_f64(pairs as f64 / rate as f64))
    } else {
        None
    };
    let mut senders = Vec::new();
    let t0 = Instant::now();
    for (p, c) in clients.iter().take(pairs).cloned().enumerate() {
        let sent_at = sent_at.clone();
        senders.push(tokio::spawn(async move {
            let mut tx = crate::http_client::connect(web)
                .await
                .map_err(|source| WebClientError::Connect { addr: web, source })?;
            let mut post = async |path: String, body: Value| -> Result<Value, WebBenchError> {
                tx.ready().await.map_err(WebClientError::Exchange)?;
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header("host", web.to_string())
                    .header("authorization", format!("Bearer {}", c.token))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .map_err(WebClientError::Request)?;
                let resp = tx
                    .send_request(req)
                    .await
                    .map_err(WebClientError::Exchange)?;
                let b = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(WebClientError::Exchange)?
                    .to_bytes();
                Ok(serde_json::from_slice(&b)?)
            };
            let base = format!("/webrsf/v1/{}", c.user);
            let v = post(
                format!("{base}/Chat"),
                json!({"to": format!("r{p}"), "text": format!("p{p} warm-up")}),
            )
            .await?;
            let id = v["instance_id"].as_str().unwrap_or_default().to_string();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let start = Instant::now();
            for i in 0..messages {
                if let Some(g) = gap {
                    let due = start + g * i as u32;
                    tokio::time::sleep_until(due.into()).await;
                }
                let text = format!("p{p} m{i}");
                if let Ok(mut m) = sent_at.lock() {
                    m.insert(text.clone(), Instant::now());
                }
                post(format!("{base}/Chat/{id}/Messages"), json!({"text": text})).await?;
            }
            Ok::<(), WebBenchError>(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let mut received = 0;
    for r in receivers {
        received += tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .map_err(|_| WebBenchError::ReceiversSlow)?
            .unwrap_or(0);
    }
    let elapsed = t0.elapsed();
    if let Some(stdin) = child.stdin.take() {
        drop(stdin);
    }
    let _ = child.kill().await;
    let mut all = lat.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(WebBench {
        users,
        channels: held,
        rss_before_kib,
        rss_channels_kib,
        sent: pairs * messages,
        received,
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    })
}

/// The child side: opens `channels` notification channels round-robin over the users in
/// `tokens` (`user token` lines) with plain sockets, prints `held N`, and keeps reading them
/// until stdin closes.
/// The first `singles` users get one channel each.
pub async fn hold(
    addr: std::net::SocketAddr,
    tokens: &Path,
    channels: usize,
    singles: usize,
) -> Result<(), WebBenchError> {
    let text = std::fs::read_to_string(tokens).map_err(|source| WebBenchError::Tokens {
        path: tokens.to_path_buf(),
        source,
    })?;
    let users: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(u, t)| (u.to_string(), t.to_string()))
        .collect();
    if users.len() <= singles {
        return Err(WebBenchError::TooManySingles {
            singles,
            users: users.len(),
        });
    }
    let rest = users.len() - singles;
    let mut opened = 0usize;
    let mut tasks = Vec::with_capacity(channels);
    for batch in (0..channels).collect::<Vec<_>>().chunks(200) {
        let opens = batch.iter().map(|&i| {
            let who = if i < singles {
                i
            } else {
                singles + (i - singles) % rest
            };
            let (u, t) = users[who].clone();
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
                let req = format!(
                    "POST /webrsf/v1/{u}/Notification/Streaming HTTP/1.1\r\nhost: {addr}\r\n\
                     authorization: Bearer {t}\r\ncontent-length: 0\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.ok()?;
                let mut buf = vec![0u8; 512];
                let n = s.read(&mut buf).await.ok()?;
                if !buf[..n].starts_with(b"HTTP/1.1 200") {
                    return None;
                }
                Some(s)
            }
        });
        for s in futures_util::future::join_all(opens)
            .await
            .into_iter()
            .flatten()
        {
            opened += 1;
            tasks.push(tokio::spawn(async move {
                let mut s = s;
                let mut buf = [0u8; 256];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    }
    println!("held {opened}");
    let mut stdin = tokio::io::stdin();
    let mut b = [0u8; 1];
    let _ = stdin.read(&mut b).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_holder_refuses_a_tokens_file_it_cannot_use() {
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let dir = std::env::temp_dir().join(format!("rcslab-hold-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.txt");
        match hold(addr, &missing, 1, 0).await {
            Err(WebBenchError::Tokens { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a tokens-file error, got {other:?}"),
        }
        let one = dir.join("one.txt");
        std::fs::write(&one, "w0 t0\n").unwrap();
        let e = hold(addr, &one, 1, 1).await.unwrap_err();
        assert!(matches!(
            e,
            WebBenchError::TooManySingles {
                singles: 1,
                users: 1
            }
        ));
        assert_eq!(e.to_string(), "more single-channel users than users");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
