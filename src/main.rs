//! `rcslab`: run an IMS/RCS lab, manage its subscribers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hyper::Method;

use rcslab::config::LabConfig;
use rcslab::hss::admin_client::AdminClient;
use rcslab::{Lab, LabOptions};

mod cli;

// glibc malloc was ~30 % of the lab's CPU under REGISTER load (perf); mimalloc is far cheaper
// for many small, short-lived allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rcslab",
    version,
    about = "A complete IMS/RCS network in one binary",
    after_help = "Examples:\n  rcslab up --trace                          # the lab, every message printed\n  rcslab ue --user bob listen                # an RCS client (another terminal)\n  rcslab ue --user alice send bob \"Hello?\"\n  rcslab status                              # who is registered, what is stored\n  rcslab lab run 06 --format html --out 06.html\n\nREADME.md walks through each command."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Lab file (TOML) merged over the compiled-in default lab.
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Where sled keeps the lab's data.
    #[arg(long, global = true, default_value = "./rcslab-data")]
    pub(crate) data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every node and run until Ctrl-C (or SIGTERM, or its standard output closing).
    #[command(
        after_help = "Examples:\n  rcslab up\n  rcslab up --trace --data-dir /tmp/lab\n  rcslab up --config lab.toml --hep 127.0.0.1:9060   # with `sngrep -L udp:127.0.0.1:9060`"
    )]
    Up {
        #[command(flatten)]
        common: Common,
        /// Print every message that crosses the wire as it happens.
        #[arg(long)]
        trace: bool,
        /// Send every SIP and Diameter message live as HEPv3 over UDP to HOST:PORT, with the
        /// capturing node's name (sngrep -L udp:HOST:PORT, Homer).
        #[arg(long, value_name = "HOST:PORT", value_parser = rcslab::trace::hep::parse_target)]
        hep: Option<std::net::SocketAddr>,
    },
    /// Run one node as its own process; it reaches the others at the lab file's `[nodes]`
    /// addresses (seven `rcslab run` processes make the same lab as `rcslab up`).
    #[command(
        after_help = "Examples:\n  rcslab run hss --data-dir /tmp/lab          # data in /tmp/lab/hss\n  rcslab run scscf --config lab.toml --trace\n  rcslab run tim --data-dir /tmp/lab          # data in /tmp/lab/tim\n  rcslab run webrsf --data-dir /tmp/lab       # reads /tmp/lab/tim/history.token\n\nNodes: pcscf, icscf, scscf, hss, oim, tim, webrsf."
    )]
    Run {
        /// pcscf, icscf, scscf, hss, oim, tim or webrsf.
        node: String,
        #[command(flatten)]
        common: Common,
        /// Print every message this node sends or receives as it happens.
        #[arg(long)]
        trace: bool,
    },
    /// Teaching labs (`labs/*.toml`): list them, run one, or check them all.
    #[command(
        after_help = "Examples:\n  rcslab lab list\n  rcslab lab run 06                          # numbered, timed, with the nodes' notes\n  rcslab lab run 06 --format html --out 06.html\n  rcslab lab check"
    )]
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// What a running `rcslab up --trace` recorded.
    #[command(
        after_help = "Examples:\n  rcslab trace export --format html --out lab.html\n  rcslab trace export --user alice --since 60\n  rcslab trace export --format pcap --out lab.pcap\n  rcslab trace clear"
    )]
    Trace {
        #[command(subcommand)]
        cmd: TraceCmd,
        #[command(flatten)]
        common: Common,
    },
    /// What a running lab holds: registrations, sessions, stored messages, Diameter peers,
    /// queues (exit code 1 when no lab answers for the data dir).
    #[command(
        after_help = "Examples:\n  rcslab status\n  rcslab status --json --data-dir /tmp/lab"
    )]
    Status {
        /// Print the JSON of the admin API's `GET /status` as it comes.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// An RCS client against a running lab: interactive chat, or `send` / `listen` for scripts.
    #[command(
        after_help = "Examples:\n  rcslab ue --user bob listen\n  rcslab ue --user alice send sip:bob@ims.lab \"Hello?\"   # delivered | stored | failed: ...\n  rcslab ue --user u1 --password pw1 --local-port 5099   # interactive, a CLI-added user"
    )]
    Ue {
        #[command(flatten)]
        args: cli::ue::UeArgs,
        #[command(subcommand)]
        cmd: Option<cli::ue::UeCmd>,
    },
    /// Reproduces the paper's evaluation from real flows.
    #[command(
        after_help = "Example:\n  rcslab eval webrsf --rcs 100 --web 100 --chats 25 --later 2 --seed 7"
    )]
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Benchmarks on an in-process lab.
    #[command(
        after_help = "Examples:\n  rcslab bench chat --pairs 50 --messages 400\n  rcslab bench webrsf --users 100 --channels 10000"
    )]
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Manage the HSS's subscribers (works with or without a running lab).
    #[command(
        after_help = "Examples:\n  rcslab subscriber add sip:u1@ims.lab --password pw1\n  rcslab subscriber import users.csv         # sipp's injection file, or IMPU;PASSWORD lines\n  rcslab subscriber show u1@ims.lab          # TOML\n  rcslab subscriber ifc u1@ims.lab --set my-ifc.toml"
    )]
    Subscriber {
        #[command(subcommand)]
        cmd: cli::subscriber::SubCmd,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum EvalCmd {
    /// RCS clients and WebRSF clients start 1-to-1 chats (a Poisson number each); prints the
    /// SIP, MSRP and HTTP messages each kind of client handles during set-up and after it,
    /// beside the paper's figures.
    Webrsf {
        /// RCS clients (simulated UEs).
        #[arg(long, default_value_t = 8)]
        rcs: usize,
        /// WebRSF clients (web users of the gateway).
        #[arg(long, default_value_t = 8)]
        web: usize,
        /// Mean number of chats each user starts (the paper's Poisson(25)).
        #[arg(long, default_value_t = 25.0)]
        chats: f64,
        /// Messages after the first one in each chat.
        #[arg(long, default_value_t = 2)]
        later: usize,
        /// Random seed (peers, Poisson draws).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// N UE pairs chatting over the full chain, every message with its IMDN delivered.
    Chat {
        /// UE pairs.
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        /// Messages per pair.
        #[arg(long, default_value_t = 400)]
        messages: usize,
        /// Target total messages/s (0: as fast as it goes).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Record every message (the flight recorder on, as with `rcslab up --trace`).
        #[arg(long)]
        trace: bool,
    },
    /// WebRSF: many notification channels held open plus web -> RCS messages through them.
    Webrsf {
        /// Web users logged in (each registered to IMS).
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Notification channels held open at once (spread over the users).
        #[arg(long, default_value_t = 10_000)]
        channels: usize,
        /// Web user -> RCS UE pairs sending messages.
        #[arg(long, default_value_t = 20)]
        pairs: usize,
        /// Messages per pair.
        #[arg(long, default_value_t = 250)]
        messages: usize,
        /// Target total messages/s (0: as fast as it goes).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
    },
    /// (internal) Holds WebRSF channels for `bench webrsf` in a process of its own.
    #[command(hide = true)]
    WebrsfHold {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long)]
        channels: usize,
        #[arg(long, default_value_t = 0)]
        singles: usize,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// The labs, with what each teaches (the compiled-in ones, or those of a directory).
    List {
        /// Directory of lab files (default: the labs compiled into rcslab).
        dir: Option<PathBuf>,
    },
    /// Run one lab on a fresh lab and print its ladder: each line numbered, timed from the
    /// first message, with the lab's `~`/`!` markers, the figure's steps and the nodes' notes
    /// (and how it differs from the expected ladder).
    Run {
        /// A lab file, or a compiled-in lab by number or name (`06`,
        /// `06-rcs-chat-first-message`).
        file: String,
        /// `full` (every node), `paper` (O-CSCF / T-CSCF as the paper draws them), `both`, or
        /// `roles` (every node, CSCFs named orig / term by the side they act for).
        #[arg(long, default_value = "full")]
        view: String,
        /// `text` (the numbered ladder), or the run as `html` (a page with every message) or
        /// `mermaid` (a sequence diagram); html and mermaid show every node.
        #[arg(long, default_value = "text")]
        format: String,
        /// Write the `--format` output here (the text ladder is still printed).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run every lab and compare each ladder with its expected one; exit 1 on a difference.
    Check {
        /// Directory of lab files (default: the labs compiled into rcslab).
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Write every recorded message: `text` (ladder), `mermaid` (sequence diagram), `html` (a
    /// page with the ladder and every message's bytes) or `pcap`.
    Export {
        /// text, mermaid, html or pcap.
        #[arg(long, default_value = "text")]
        format: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `full` (every node), or with `--format text`: `paper` (O-CSCF / T-CSCF as the
        /// paper draws them) or `roles` (CSCFs named by session case).
        #[arg(long, default_value = "full")]
        view: String,
        /// Only this SIP Call-ID's messages (and the MSRP of the sessions it set up).
        #[arg(long)]
        call_id: Option<String>,
        /// Only messages about this user (`alice` or `sip:alice@ims.lab`): SIP naming them in
        /// From, To, P-Asserted-Identity or the Request-URI, Cx requests for them with their
        /// answers, their MSRP.
        #[arg(long)]
        user: Option<String>,
        /// Only the last SECONDS.
        #[arg(long)]
        since: Option<f64>,
    },
    /// Forget every recorded message and note (prints how many messages it dropped).
    Clear,
}

/// `trace export`'s filters, sent as query parameters of `GET /trace`.
struct TraceQuery {
    call_id: Option<String>,
    user: Option<String>,
    since: Option<f64>,
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e` (v2 and v3 headers): committing
/// arenas lazily keeps an idle lab under 10 MiB instead of ~48 MiB.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before Rust's runtime allocates anything (an ELF constructor), so the option applies
/// to mimalloc's first arena.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_LAZY_COMMIT: extern "C" fn() = {
    extern "C" fn lazy_commit() {
        // SAFETY: setting a mimalloc option has no memory-safety preconditions.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
    lazy_commit
};

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // Colour only on a terminal (and not with NO_COLOR): a log file or a pipe gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sled=warn".into()),
        )
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Up { .. } | Cmd::Run { .. }) {
        // A command whose reader went away (`rcslab subscriber list | head -1`) ends quietly,
        // as Unix tools do, instead of failing on EPIPE. `up` keeps SIGPIPE ignored: it notices
        // a closed stdout and shuts the lab down cleanly (see `stdout_closed`).
        // SAFETY: called before any other thread exists; restoring a default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rcslab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up { common, trace, hep } => up(common, trace, hep).await,
            Cmd::Run {
                node,
                common,
                trace,
            } => run_node(&node, common, trace).await,
            Cmd::Subscriber { cmd, common } => cli::subscriber::run(cmd, common).await,
            Cmd::Lab { cmd } => lab_cmd(cmd).await,
            Cmd::Bench {
                cmd:
                    BenchCmd::Chat {
                        pairs,
                        messages,
                        rate,
                        trace,
                    },
            } => {
                let r = rcslab::lab::bench::chat(pairs, messages, rate, trace).await?;
                println!(
                    "chat: {pairs} pairs x {messages} messages{}{}: {} sent, {} delivered with IMDN, {} received, {} lost, {} duplicated",
                    if rate > 0 { format!(" at {rate}/s") } else { String::new() },
                    if trace { " (recording on)" } else { "" },
                    r.sent,
                    r.delivered,
                    r.received,
                    r.sent.saturating_sub(r.received),
                    r.duplicates
                );
                println!(
                    "chat: {:.0} messages/s delivered with IMDN; send->IMDN p50 {:.2} ms, p99 {:.2} ms; RSS {} MiB",
                    r.delivered as f64 / r.elapsed.as_secs_f64(),
                    r.p50.as_secs_f64() * 1000.0,
                    r.p99.as_secs_f64() * 1000.0,
                    r.rss_kib / 1024
                );
                if r.delivered < r.sent || r.duplicates > 0 {
                    return Err("messages lost or duplicated".into());
                }
                Ok(())
            }
            Cmd::Bench {
                cmd:
                    BenchCmd::Webrsf {
                        users,
                        channels,
                        pairs,
                        messages,
                        rate,
                    },
            } => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let r = rcslab::lab::bench_web::webrsf(users, channels, pairs, messages, rate, &exe)
                    .await?;
                let per = (r.rss_channels_kib.saturating_sub(r.rss_before_kib) as f64 * 1024.0)
                    / r.channels.max(1) as f64;
                println!(
                    "webrsf: {} users logged in; {} notification channels held; lab RSS {} MiB -> {} MiB: {:.1} KiB per channel",
                    r.users,
                    r.channels,
                    r.rss_before_kib / 1024,
                    r.rss_channels_kib / 1024,
                    per / 1024.0
                );
                println!(
                    "webrsf: {pairs} web->RCS pairs x {messages} messages{}: {} sent, {} received, {} lost; {:.0} messages/s; web send -> RCS receive p50 {:.2} ms, p99 {:.2} ms",
                    if rate > 0 { format!(" at {rate}/s") } else { String::new() },
                    r.sent,
                    r.received,
                    r.sent.saturating_sub(r.received),
                    r.received as f64 / r.elapsed.as_secs_f64(),
                    r.p50.as_secs_f64() * 1000.0,
                    r.p99.as_secs_f64() * 1000.0,
                );
                if r.received < r.sent || r.channels < channels {
                    return Err("messages lost or channels not held".into());
                }
                Ok(())
            }
            Cmd::Bench {
                cmd:
                    BenchCmd::WebrsfHold {
                        addr,
                        tokens,
                        channels,
                        singles,
                    },
            } => rcslab::lab::bench_web::hold(addr, &tokens, channels, singles).await,
            Cmd::Eval {
                cmd:
                    EvalCmd::Webrsf {
                        rcs,
                        web,
                        chats,
                        later,
                        seed,
                    },
            } => {
                let r = rcslab::lab::eval::webrsf(rcs, web, chats, later, seed).await?;
                print!("{}", rcslab::lab::eval::table(&r));
                Ok(())
            }
            Cmd::Ue { args, cmd } => cli::ue::run(args, cmd).await,
            Cmd::Trace {
                cmd:
                    TraceCmd::Export {
                        format,
                        out,
                        view,
                        call_id,
                        user,
                        since,
                    },
                common,
            } => {
                let filter = TraceQuery {
                    call_id,
                    user,
                    since,
                };
                trace_export(&common, &format, &view, &filter, out.as_deref()).await
            }
            Cmd::Trace {
                cmd: TraceCmd::Clear,
                common,
            } => trace_clear(&common).await,
            Cmd::Status { json, common } => {
                let api = running_admin(&common.data_dir).await;
                let text = rcslab::lab::status::fetch(api, &common.data_dir, json).await?;
                print!("{text}");
                Ok(())
            }
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rcslab: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn load_config(common: &Common) -> Result<LabConfig, String> {
    match &common.config {
        Some(p) => LabConfig::load(p).map_err(|e| e.to_string()),
        None => Ok(LabConfig::default_lab()),
    }
}

/// Set when a write to standard output failed: the reader of `rcslab up | ...` went away.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `up`'s printing: a failed write (EPIPE once the reader of a pipe has gone) is remembered
/// instead of panicking like `println!`, and the lab then shuts down cleanly.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            STDOUT_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }};
}

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
async fn until_stopped() -> &'static str {
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

async fn up(common: Common, trace: bool, hep: Option<std::net::SocketAddr>) -> Result<(), String> {
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
    .await
    .map_err(|e| e.to_string())?;
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
        ("I-CSCF", a.icscf, "SIP UDP+TCP"),
        ("S-CSCF", a.scscf, "SIP UDP+TCP"),
        ("HSS", a.hss, "Diameter Cx (TCP)"),
        ("HSS-API", a.admin, "HTTP (provisioning)"),
        ("O-IM", a.oim, "SIP (ISC, RCS messaging AS)"),
        ("T-IM", a.tim, "SIP (ISC, RCS messaging AS)"),
        ("O-IM", a.oim_msrp, "MSRP (TCP)"),
        ("T-IM", a.tim_msrp, "MSRP (TCP)"),
        ("WebRSF", a.webrsf, "HTTP (REST + notification channel)"),
    ] {
        out!("  {n:<8} {addr:<22} {p}");
    }
    out!(
        "  web client: http://{}/ (log in as bob / bob-secret)",
        a.webrsf
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
fn live_ladder(t: rcslab::trace::Trace, rec: rcslab::lab::Recorder) -> tokio::task::JoinHandle<()> {
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

/// `rcslab run NODE`: one node as its own process ([`rcslab::lab::run`]).
async fn run_node(node: &str, common: Common, trace: bool) -> Result<(), String> {
    let node: rcslab::lab::run::Node = node.parse().map_err(|e| format!("{e}"))?;
    let config = load_config(&common)?;
    let opts = LabOptions {
        trace,
        ..Default::default()
    };
    let running = rcslab::lab::run::start(node, &config, &common.data_dir, opts)
        .await
        .map_err(|e| e.to_string())?;
    out!(
        "rcslab: {} of lab '{}' running{}",
        node.label(),
        config.lab.domain,
        running
            .data_dir
            .as_ref()
            .map(|d| format!(" (data in {})", d.display()))
            .unwrap_or_default()
    );
    for (n, addr, p) in &running.listening {
        out!("  {n:<8} {addr:<22} {p}");
    }
    out!("  Ctrl-C stops it");
    let printer = trace.then(|| live_ladder(running.trace.clone(), running.recorder()));
    let why = until_stopped().await;
    if let Some(p) = printer {
        p.abort();
    }
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "rcslab: {why}: shutting down");
    }
    running.shutdown().await;
    Ok(())
}

/// The running lab's admin API (address and token), if one answers for this data dir.
pub(crate) async fn running_admin(data_dir: &Path) -> Option<AdminClient> {
    let api = AdminClient::from_data_dir(data_dir)?;
    api.health().await.then_some(api)
}

/// The running lab's admin API, or why there is none.
async fn trace_admin(common: &Common) -> Result<AdminClient, String> {
    running_admin(&common.data_dir).await.ok_or_else(|| {
        format!(
            "no lab is running on {} (start one with `rcslab up --trace --data-dir {}`)",
            common.data_dir.display(),
            common.data_dir.display()
        )
    })
}

async fn trace_export(
    common: &Common,
    format: &str,
    view: &str,
    filter: &TraceQuery,
    out: Option<&Path>,
) -> Result<(), String> {
    let api = trace_admin(common).await?;
    let enc = rcslab::hss::admin::percent_encode;
    let mut q = format!("/trace?format={}&view={}", enc(format), enc(view));
    if let Some(c) = &filter.call_id {
        q.push_str(&format!("&call_id={}", enc(c)));
    }
    if let Some(u) = &filter.user {
        q.push_str(&format!("&user={}", enc(u)));
    }
    if let Some(s) = filter.since {
        q.push_str(&format!("&since={s}"));
    }
    let (status, body) = api
        .call_bytes(Method::GET, &q, None)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!(
            "the lab answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    match out {
        Some(p) => std::fs::write(p, &body).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&body)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `trace clear`: `DELETE /trace` on the running lab.
async fn trace_clear(common: &Common) -> Result<(), String> {
    let api = trace_admin(common).await?;
    let (status, body) = api
        .call(Method::DELETE, "/trace", None)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("the lab answered {status}: {body}"));
    }
    let dropped = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["dropped"].as_u64())
        .ok_or_else(|| format!("unexpected answer: {body}"))?;
    println!("cleared the flight recorder: {dropped} messages dropped");
    Ok(())
}

/// The labs of a directory, or the compiled-in ones.
fn lab_set(dir: Option<&Path>) -> Result<Vec<(String, rcslab::lab::scenario::Scenario)>, String> {
    match dir {
        Some(d) => rcslab::lab::catalog::from_dir(d),
        None => rcslab::lab::catalog::compiled_in(),
    }
    .map_err(|e| e.to_string())
}

async fn lab_cmd(cmd: LabCmd) -> Result<(), String> {
    use rcslab::lab::scenario::diff;
    use rcslab::lab::teach::{numbered, Expected};
    match cmd {
        LabCmd::List { dir } => {
            for (p, s) in lab_set(dir.as_deref())? {
                let name = Path::new(&p)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                println!("{name:<40} {}\n{:<40} {}", s.title, "", s.teaches);
            }
            Ok(())
        }
        LabCmd::Run {
            file,
            view,
            format,
            out,
        } => {
            if !matches!(view.as_str(), "full" | "paper" | "both" | "roles") {
                return Err(format!("--view {view}: full, paper, both or roles"));
            }
            if !matches!(format.as_str(), "text" | "html" | "mermaid") {
                return Err(format!("--format {format}: text, html or mermaid"));
            }
            let (_, s) = rcslab::lab::catalog::find(&file).map_err(|e| e.to_string())?;
            let export = (format != "text").then_some(format.as_str());
            let r = s.run_report(export).await.map_err(|e| e.to_string())?;
            let mut text = format!("# {}\n# {}\n", s.title, s.teaches);
            let lines = |v: &[(std::time::Duration, String)]| -> Vec<String> {
                v.iter().map(|(_, l)| l.clone()).collect()
            };
            if view == "roles" {
                text.push_str(&numbered(Expected::default(), &r.roles, &r.notes));
            }
            if view == "full" || view == "both" {
                let e = Expected {
                    lines: &s.expected,
                    figure_steps: &s.figure_steps,
                };
                text.push_str(&numbered(e, &r.full, &r.notes));
                if !s.expected.is_empty() {
                    if let Some(d) = diff(&s.expected, &lines(&r.full)) {
                        text.push_str(&format!("\ndiffers from the expected ladder:\n{d}"));
                    }
                }
            }
            if view == "paper" || view == "both" {
                text.push_str("\n# the paper's view (O-CSCF: the sender's P-CSCF and S-CSCF; T-CSCF: the receiver's I-CSCF, S-CSCF and P-CSCF)\n");
                let e = Expected {
                    lines: &s.expected_paper,
                    figure_steps: &[],
                };
                text.push_str(&numbered(e, &r.paper, &r.notes));
                if !s.expected_paper.is_empty() {
                    if let Some(d) = diff(&s.expected_paper, &lines(&r.paper)) {
                        text.push_str(&format!("\ndiffers from the expected paper view:\n{d}"));
                    }
                }
            }
            let bytes = r.export.unwrap_or_else(|| text.clone().into_bytes());
            use std::io::Write;
            match out {
                Some(p) => {
                    std::fs::write(&p, &bytes).map_err(|e| format!("{}: {e}", p.display()))?;
                    print!("{text}");
                    println!("wrote {} ({format})", p.display());
                }
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| e.to_string())?,
            }
            Ok(())
        }
        LabCmd::Check { dir } => {
            let labs = lab_set(dir.as_deref())?;
            let mut failed = 0;
            let t0 = std::time::Instant::now();
            for (name, s) in &labs {
                match s.run_views().await {
                    Ok((got, paper)) => match diff(&s.expected, &got).or_else(|| {
                        if s.expected_paper.is_empty() {
                            None
                        } else {
                            diff(&s.expected_paper, &paper).map(|d| format!("(paper view)\n{d}"))
                        }
                    }) {
                        None => println!("ok    {name}  ({} messages)", got.len()),
                        Some(d) => {
                            failed += 1;
                            println!("FAIL  {name}\n{d}");
                        }
                    },
                    Err(e) => {
                        failed += 1;
                        println!("FAIL  {name}: {e}");
                    }
                }
            }
            println!(
                "labs: {} match their expected ladder, {failed} differ ({:.1} s)",
                labs.len() - failed,
                t0.elapsed().as_secs_f64()
            );
            if failed > 0 {
                return Err(format!("{failed} lab(s) differ from their expected ladder"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Words of an example line as a shell would split them (double quotes only), without
    /// its `# comment`.
    fn words(line: &str) -> Vec<String> {
        let line = line.split(" #").next().unwrap_or("");
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                _ => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    #[test]
    fn every_help_example_parses() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut helps = vec![cmd.get_after_help().map(|h| h.to_string())];
        helps.extend(
            cmd.get_subcommands()
                .map(|s| s.get_after_help().map(|h| h.to_string())),
        );
        let mut n = 0;
        for help in helps.into_iter().flatten() {
            for line in help
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("rcslab "))
            {
                let args = words(line);
                if let Err(e) = Cli::try_parse_from(&args) {
                    panic!("`{line}` does not parse: {e}");
                }
                n += 1;
            }
        }
        assert!(n >= 20, "only {n} examples");
    }
}
