//! `rcslab bench ft`: file transfer via HTTP against the content server CS (GSMA RCC.07
//! §3.5.4.8) over loopback, with the rcslab client ([`FtClient`]: the empty POST and its
//! Digest challenge, the multipart upload, the download, each streamed from and to disk and
//! hashed as it goes) and the server in this process. Three phases:
//!
//! - **small**: `count` uploads of a `size` file at `rate` per second (open loop: each upload
//!   has a scheduled start, and its time is measured from there, so a server that falls
//!   behind shows as latency, not as a slower sender; no coordinated omission), at most
//!   `clients` in flight; each upload followed by its download by the same user.
//! - **big**: `count` uploads (and downloads) of a `size` file all scheduled at once.
//! - **huge**: one upload and one download of a `size` file while the process's RSS is
//!   sampled every 20 ms: files must stream, so the peak stays near the start.
//!
//! Every download is checked against the source's size and SHA-256. Bounded: the number of
//! transfers is given, every transfer has the client's own timeouts (nothing moving for 30 s
//! fails it), and the files are removed as soon as they are checked.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::bench::{rss_kib, BenchError};
use crate::lab::{Lab, LabOptions};
use crate::trace::Trace;
use crate::ue::ft::FtClient;
use crate::LabConfig;

const MIB: u64 = 1024 * 1024;

/// What to move.
#[derive(Debug, Clone)]
pub struct FtPlan {
    /// Transfers in flight at once (small phase); also the number of users.
    pub clients: usize,
    /// Small phase: file size (bytes), number of uploads, uploads per second.
    pub small_size: u64,
    pub small_count: usize,
    pub small_rate: u64,
    /// Big phase: file size (bytes) and number of concurrent uploads (0: skipped).
    pub big_size: u64,
    pub big_count: usize,
    /// Huge phase: file size (bytes; 0: skipped).
    pub huge_size: u64,
}

/// One phase's figures.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub size: u64,
    pub count: usize,
    /// Transfers whose download came back whole with the right SHA-256.
    pub ok: usize,
    /// Transfers that failed (the first reasons kept).
    pub failed: usize,
    pub reasons: Vec<String>,
    /// Bytes uploaded and downloaded.
    pub up_bytes: u64,
    pub down_bytes: u64,
    /// From the phase's start to its last transfer's end.
    pub elapsed: Duration,
    /// Upload times from their scheduled start (sorted).
    pub up: Vec<Duration>,
    /// Download times (sorted).
    pub down: Vec<Duration>,
    /// The process's RSS before the phase and its highest sample during it (KiB).
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
}

impl Phase {
    /// Aggregate MB/s (uploads and downloads together, 10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        (self.up_bytes + self.down_bytes) as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct FtBench {
    pub small: Phase,
    pub big: Option<Phase>,
    pub huge: Option<Phase>,
}

impl FtBench {
    /// Every transfer arrived whole and with its SHA-256.
    pub fn clean(&self) -> bool {
        [Some(&self.small), self.big.as_ref(), self.huge.as_ref()]
            .into_iter()
            .flatten()
            .all(|p| p.failed == 0 && p.ok == p.count)
    }
}

/// Runs the benchmark on a fresh in-process lab (ephemeral ports, files under a temp dir).
pub async fn ft(plan: &FtPlan) -> Result<FtBench, BenchError> {
    let largest = plan
        .small_size
        .max(plan.big_size)
        .max(plan.huge_size)
        .max(1);
    let clients = plan.clients.max(1);
    let mut extra = format!(
        "[content]\nmax_file_size = {largest}\nmax_pending_uploads = {}\n\
         max_connections = {}\nbody_timeout_secs = 3600\n",
        (clients + plan.big_count).max(64),
        (4 * (clients + plan.big_count)).max(256),
    );
    for i in 0..clients.max(plan.big_count) {
        extra.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:f{i}@ims.lab\"]\npassword = \"f{i}-pw\"\n"
        ));
    }
    let cfg = LabConfig::from_toml_str(&extra)?.with_ephemeral_ports();
    let dir = std::env::temp_dir().join(format!("rcslab-bench-ft-{}", std::process::id()));
    let lab = Lab::start(
        cfg,
        &dir.join("lab"),
        LabOptions {
            trace: false,
            timers: None,
            hep: None,
        },
    )
    .await?;
    let r = run(&lab, plan, clients, &dir).await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

async fn run(lab: &Lab, plan: &FtPlan, clients: usize, dir: &Path) -> Result<FtBench, BenchError> {
    let cs = format!("http://{}", lab.addrs.content);
    let users: Vec<Arc<FtClient>> = (0..clients.max(plan.big_count))
        .map(|i| {
            Arc::new(FtClient::new(
                &format!("f{i}@ims.lab"),
                &format!("f{i}-pw"),
                Trace::disabled(),
                &format!("UE f{i}"),
            ))
        })
        .collect();
    let src_dir = dir.join("src");
    std::fs::create_dir_all(&src_dir)?;
    let mut out = FtBench::default();

    let (small, small_sha) = source(&src_dir, "small.bin", plan.small_size).await?;
    out.small = phase(
        &cs,
        &users[..clients],
        &small,
        &small_sha,
        plan.small_size,
        plan.small_count,
        plan.small_rate,
    )
    .await;
    let _ = std::fs::remove_file(&small);

    if plan.big_count > 0 && plan.big_size > 0 {
        let (big, sha) = source(&src_dir, "big.bin", plan.big_size).await?;
        let p = phase(
            &cs,
            &users[..plan.big_count],
            &big,
            &sha,
            plan.big_size,
            plan.big_count,
            0,
        )
        .await;
        let _ = std::fs::remove_file(&big);
        out.big = Some(p);
    }
    if plan.huge_size > 0 {
        let (huge, sha) = source(&src_dir, "huge.bin", plan.huge_size).await?;
        let p = phase(&cs, &users[..1], &huge, &sha, plan.huge_size, 1, 0).await;
        let _ = std::fs::remove_file(&huge);
        out.huge = Some(p);
    }
    Ok(out)
}

/// Writes a file of `size` pseudo-random bytes (incompressible, so nothing on the way can
/// shortcut it) in 1 MiB blocks; its path and SHA-256.
async fn source(dir: &Path, name: &str, size: u64) -> Result<(PathBuf, String), BenchError> {
    let path = dir.join(name);
    let mut f = tokio::fs::File::create(&path).await?;
    let mut sha = Sha256::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let n = left.min(MIB) as usize;
        sha.update(&block[..n]);
        f.write_all(&block[..n]).await?;
        left -= n as u64;
    }
    f.flush().await?;
    Ok((path, hex(&sha.finalize())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One phase: `count` uploads of `file` (each then downloaded by its uploader), scheduled at
/// `rate` per second (0: all at once), at most `users.len()` in flight.
#[allow(clippy::too_many_arguments)]
async fn phase(
    cs: &str,
    users: &[Arc<FtClient>],
    file: &Path,
    sha: &str,
    size: u64,
    count: usize,
    rate: u64,
) -> Phase {
    let rss_before = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let slots = Arc::new(Semaphore::new(users.len().max(1)));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let due = if rate == 0 {
            start
        } else {
            start + Duration::from_secs_f64(i as f64 / rate as f64)
        };
        tokio::time::sleep_until(due.into()).await;
        let (cs, file, sha) = (cs.to_string(), file.to_path_buf(), sha.to_string());
        let user = users[i % users.len()].clone();
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            transfer(&user, &cs, &file, &sha, size, due).await
        }));
    }
    let mut p = Phase {
        size,
        count,
        rss_before_kib: rss_before,
        ..Phase::default()
    };
    for t in tasks {
        match t.await {
            Ok(Ok((up, down))) => {
                p.ok += 1;
                p.up_bytes += size;
                p.down_bytes += size;
                p.up.push(up);
                p.down.push(down);
            }
            Ok(Err(why)) => {
                p.failed += 1;
                if p.reasons.len() < 5 {
                    p.reasons.push(why.to_string());
                }
            }
            Err(e) => {
                p.failed += 1;
                if p.reasons.len() < 5 {
                    p.reasons.push(format!("task: {e}"));
                }
            }
        }
    }
    p.elapsed = start.elapsed();
    sampling.abort();
    p.rss_peak_kib = peak.load(Ordering::Relaxed).max(rss_kib());
    p.up.sort();
    p.down.sort();
    p
}

/// Why one transfer failed.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error("upload: {0}")]
    Upload(crate::ue::ft::FtError),
    #[error("download: {0}")]
    Download(crate::ue::ft::FtError),
    #[error("download: {got} bytes, sha256 {got_sha} (sent {size}, {sha})")]
    Differs {
        got: u64,
        got_sha: String,
        size: u64,
        sha: String,
    },
}

/// Uploads `file`, downloads it back (hashed, not saved) and checks it: the upload's time from
/// `due` and the download's time, or why it failed.
async fn transfer(
    user: &FtClient,
    cs: &str,
    file: &Path,
    sha: &str,
    size: u64,
    due: Instant,
) -> Result<(Duration, Duration), TransferError> {
    let info = user.upload(cs, file).await.map_err(TransferError::Upload)?;
    let up = due.elapsed();
    let t = Instant::now();
    let (got, got_sha) = user
        .download_discard(&info, size)
        .await
        .map_err(TransferError::Download)?;
    let down = t.elapsed();
    if got != size || got_sha != sha {
        return Err(TransferError::Differs {
            got,
            got_sha,
            size,
            sha: sha.to_string(),
        });
    }
    Ok((up, down))
}

fn pct(v: &[Duration], q: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    format!("{:.1} ms", v[i].as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn phase_lines(name: &str, p: &Phase, rate: u64, out: &mut String) {
    let how = if rate > 0 {
        format!("{rate}/s scheduled")
    } else {
        "all at once".into()
    };
    out.push_str(&format!(
        "{name}: {} x {} ({how}): {} ok, {} failed; {:.0} MB/s aggregate ({:.0} MB up, {:.0} MB down in {:.2} s)\n",
        p.count,
        mib(p.size),
        p.ok,
        p.failed,
        p.mb_per_s(),
        p.up_bytes as f64 / 1e6,
        p.down_bytes as f64 / 1e6,
        p.elapsed.as_secs_f64(),
    ));
    out.push_str(&format!(
        "  upload (from its scheduled start) p50 {} p99 {} max {}; download p50 {} p99 {}\n",
        pct(&p.up, 0.50),
        pct(&p.up, 0.99),
        pct(&p.up, 1.0),
        pct(&p.down, 0.50),
        pct(&p.down, 0.99),
    ));
    out.push_str(&format!(
        "  RSS {:.1} MiB before, {:.1} MiB peak ({:+.1} MiB)\n",
        p.rss_before_kib as f64 / 1024.0,
        p.rss_peak_kib as f64 / 1024.0,
        (p.rss_peak_kib as f64 - p.rss_before_kib as f64) / 1024.0,
    ));
    for r in &p.reasons {
        out.push_str(&format!("  failed: {r}\n"));
    }
}

/// The report `rcslab bench ft` prints.
pub fn report(r: &FtBench, plan: &FtPlan) -> String {
    let mut out = format!(
        "ft: HTTP file transfer through the content server, {} clients (upload: empty POST + Digest + multipart from disk; download: GET, hashed, not saved; SHA-256 checked)\n",
        plan.clients
    );
    phase_lines("small", &r.small, plan.small_rate, &mut out);
    if let Some(p) = &r.big {
        phase_lines("big", p, 0, &mut out);
    }
    if let Some(p) = &r.huge {
        phase_lines("huge", p, 0, &mut out);
    }
    out.push_str(if r.clean() {
        "every file arrived whole with its SHA-256"
    } else {
        "SOME TRANSFERS FAILED"
    });
    out
}
