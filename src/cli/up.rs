//! `rcslab up`: every node in one process until Ctrl-C, SIGTERM or standard output closing;
//! and the live ladder of `--trace` (shared with `rcslab run`).

use rcslab::{Lab, LabOptions};

use super::{load_config, Common, Result};

/// Set when a write to standard output failed: the reader of `rcslab up | ...` went away.
pub(crate) static STDOUT_GONE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `up`'s printing: a failed write (EPIPE once the reader of a pipe has gone) is remembered
/// instead of panicking like `println!`, and the lab then shuts down cleanly.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            $crate::cli::up::STDOUT_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }};
}
pub(crate) use out;

/// Whether standard output is a pipe whose reader has closed it (poll reports POLLERR on the
/// write end, see pipe(7)), so `rcslab up | head -1` ends when `head` does, even when the
/// lab has nothing more to print.
fn stdout_reader_gone() -> bool {
    let mut p = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd and a zero timeout; poll does not keep the pointer.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & libc::POLLERR != 0
}

/// Waits for what ends `rcslab up`: Ctrl-C, SIGTERM, or standard output gone.
pub(crate) async fn until_stopped() -> &'static str {
    let stdout = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if STDOUT_GONE.load(std::sync::atomic::Ordering::Relaxed) || stdout_reader_gone() {
                return;
            }
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term => "terminated",
        _ = stdout => "standard output closed",
    }
}

pub async fn up(common: Common, trace: bool, hep: Option<std::net::SocketAddr>) -> Result<()> {
    let config = load_config(&common)?;
    let hep = hep.or_else(|| config.trace.hep_target());
    let lab = Lab::start(
        config,
        &common.data_dir,
        LabOptions {
            trace,
            timers: None,
            hep,
        },
    )
    .await?;
    let a = lab.addrs;
    out!(
        "rcslab: lab '{}' ready in {:.1} ms (data in {})",
        lab.config.lab.domain,
        lab.started_in.as_secs_f64() * 1000.0,
        common.data_dir.display()
    );
    out!("  {:<8} {:<22} protocol", "node", "address");
    for (n, addr, p) in [
        ("P-CSCF", a.pcscf, "SIP UDP+TCP"),
        (
            "P-CSCF",
            a.pcscf_ws,
            "SIP over WebSocket (ws://, subprotocol sip)",
        ),
        ("I-CSCF", a.icscf, "SIP UDP+TCP"),
        ("S-CSCF", a.scscf, "SIP UDP+TCP"),
        ("HSS", a.hss, "Diameter Cx (TCP)"),
        ("HSS-API", a.admin, "HTTP (provisioning)"),
        ("O-IM", a.oim, "SIP (ISC, RCS messaging AS)"),
        ("T-IM", a.tim, "SIP (ISC, RCS messaging AS)"),
        ("PS", a.ps, "SIP (ISC, presence server)"),
        ("CONF", a.conf, "SIP (ISC, group chat focus)"),
        ("O-IM", a.oim_msrp, "MSRP (TCP)"),
        ("T-IM", a.tim_msrp, "MSRP (TCP)"),
        ("CONF", a.conf_msrp, "MSRP (TCP)"),
        ("WebRSF", a.webrsf, "HTTP (REST + notification channel)"),
        ("RTCWeb", a.rtcweb, "HTTP + WebSocket /ws (patent gateway)"),
        ("RTCWeb", a.rtcweb_sip, "SIP UDP+TCP (registers web users)"),
        ("CS", a.content, "HTTP (FT content server, RCC.07)"),
        ("IP-SM-GW", a.ipsmgw, "SIP (ISC, SMS over IP, TS 24.341)"),
        ("SMSC", a.smsc, "SMPP 3.4 (TCP, applications bind here)"),
        (
            "UMS",
            a.ums,
            "HTTP (business messaging API /ums/v1, token in ums/api.token)",
        ),
    ] {
        out!("  {n:<8} {addr:<22} {p}");
    }
    out!(
        "  web client: http://{}/ (log in as bob / bob-secret)",
        a.webrsf
    );
    out!(
        "  RTCWeb phone: http://{}/ (log in as alice / alice-secret, call sip:bob@{})",
        a.rtcweb,
        lab.config.lab.domain
    );
    let subs = lab.store.subscribers().map(|s| s.len()).unwrap_or(0);
    out!("  {subs} subscribers (rcslab subscriber list); Ctrl-C stops the lab");
    if let Some(h) = hep {
        out!("  HEPv3: every SIP and Diameter message to udp:{h} (sngrep -L udp:{h})");
    }
    let printer = trace.then(|| live_ladder(lab.trace.clone(), lab.recorder()));
    let why = until_stopped().await;
    if let Some(p) = printer {
        p.abort();
    }
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "rcslab: {why}: shutting down");
    }
    lab.shutdown().await;
    Ok(())
}

/// `--trace`: prints every message as it crosses the wire, with the nodes' notes on their
/// decisions (which iFC matched, which S-CSCF the HSS chose, why a 401).
pub(crate) fn live_ladder(
    t: rcslab::trace::Trace,
    rec: rcslab::lab::Recorder,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<std::time::Duration> = None;
        let mut dropped = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let lines = rcslab::lab::timed_ladder_with_notes(&t, |x| rec.name_of(x));
            for (at, l) in &lines {
                if last.is_none_or(|p| *at > p) {
                    out!("{l}");
                }
            }
            if let Some((at, _)) = lines.last() {
                last = Some(last.map_or(*at, |p| p.max(*at)));
            }
            // The recorder is a ring ([trace] capacity): say when it lets old messages go.
            let d = t.dropped();
            if d > dropped {
                out!("    [recorder] {d} oldest messages dropped so far ([trace] capacity)");
                dropped = d;
            }
        }
    })
}
