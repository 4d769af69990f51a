//! `rcslab`: run an IMS/RCS lab, manage its subscribers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hyper::Method;

use rcslab::config::{LabConfig, SubscriberConfig};
use rcslab::hss::admin;
use rcslab::hss::admin_client::AdminClient;
use rcslab::store::Store;
use rcslab::{Lab, LabOptions};

// glibc malloc was ~30 % of the lab's CPU under REGISTER load (perf); mimalloc is far cheaper
// for many small, short-lived allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rcslab",
    version,
    about = "A complete IMS/RCS network in one binary"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Lab file (TOML) merged over the compiled-in default lab.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where sled keeps the lab's data.
    #[arg(long, global = true, default_value = "./rcslab-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every node and run until Ctrl-C.
    Up {
        #[command(flatten)]
        common: Common,
        /// Print every message that crosses the wire as it happens.
        #[arg(long)]
        trace: bool,
    },
    /// Teaching labs (`labs/*.toml`): list them, run one, or check them all.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// What a running `rcslab up --trace` recorded.
    Trace {
        #[command(subcommand)]
        cmd: TraceCmd,
        #[command(flatten)]
        common: Common,
    },
    /// An RCS client against a running lab: interactive chat, or `send` / `listen` for scripts.
    Ue {
        /// The user (user part of a default-lab identity, e.g. `alice`).
        #[arg(long)]
        user: String,
        /// The P-CSCF to use (default: the lab config's P-CSCF).
        #[arg(long, value_name = "HOST:PORT")]
        lab: Option<std::net::SocketAddr>,
        /// Lab file the credentials come from (default: the compiled-in default lab).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: Option<UeCmd>,
    },
    /// Reproduces the paper's evaluation from real flows.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Benchmarks on an in-process lab.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Manage the HSS's subscribers (works with or without a running lab).
    Subscriber {
        #[command(subcommand)]
        cmd: SubCmd,
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
enum UeCmd {
    /// Send one message, wait for its IMDN, print `delivered` (or `displayed`, or the
    /// failure); exit code 1 on failure.
    Send {
        /// The recipient (`sip:bob@ims.lab`, or just `bob`).
        to: String,
        /// The text.
        text: String,
        /// Seconds to wait for the IMDN.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Stay registered; print each message as `FROM: TEXT` and answer with IMDNs.
    Listen,
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

#[derive(Subcommand)]
enum SubCmd {
    /// Add (or replace) a subscriber: `rcslab subscriber add sip:u1@ims.lab --password pw1`.
    Add {
        /// Default public identity (sip: URI).
        impu: String,
        /// Digest password.
        #[arg(long)]
        password: String,
        /// Private identity (default: user@domain of the IMPU).
        #[arg(long)]
        impi: Option<String>,
        /// More public identities, e.g. tel:+15550100 (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// AKA key K (32 hex digits; random when absent).
        #[arg(long)]
        k: Option<String>,
        /// AKA OPc (32 hex digits; random when absent).
        #[arg(long)]
        opc: Option<String>,
        /// AKA AMF (4 hex digits).
        #[arg(long, default_value = "8000")]
        amf: String,
        /// Initial SQN.
        #[arg(long, default_value_t = 32)]
        sqn: u64,
    },
    /// Add many subscribers from a file of `impu;password` lines (sipp injection style).
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
    },
    /// List all subscribers.
    List,
    /// Show one subscriber (by IMPI or IMPU).
    Show {
        /// IMPI or IMPU.
        id: String,
    },
    /// Remove a subscriber (by IMPI or IMPU). A running lab de-registers it with RTR.
    Remove {
        /// IMPI or IMPU.
        id: String,
    },
    /// Show or replace a subscriber's initial filter criteria. A running lab pushes the new
    /// profile to the serving S-CSCF with PPR.
    Ifc {
        /// IMPI or IMPU.
        id: String,
        /// A TOML file of `[[ifc]]` entries (same keys as the lab file's `[[default_ifc]]`).
        #[arg(long, conflicts_with = "clear")]
        set: Option<PathBuf>,
        /// Remove every iFC.
        #[arg(long)]
        clear: bool,
    },
}

/// `--set FILE`: the `[[ifc]]` list of a TOML file.
#[derive(serde::Deserialize)]
struct IfcFile {
    #[serde(default)]
    ifc: Vec<rcslab::config::IfcConfig>,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
            Cmd::Up { common, trace } => up(common, trace).await,
            Cmd::Subscriber { cmd, common } => subscriber(cmd, common).await,
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
            Cmd::Ue {
                user,
                lab,
                config,
                cmd,
            } => ue_cmd(&user, lab, config, cmd).await,
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

fn load_config(common: &Common) -> Result<LabConfig, String> {
    match &common.config {
        Some(p) => LabConfig::load(p).map_err(|e| e.to_string()),
        None => Ok(LabConfig::default_lab()),
    }
}

async fn up(common: Common, trace: bool) -> Result<(), String> {
    let config = load_config(&common)?;
    let lab = Lab::start(
        config,
        &common.data_dir,
        LabOptions {
            trace,
            timers: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let a = lab.addrs;
    println!(
        "rcslab: lab '{}' ready in {:.1} ms (data in {})",
        lab.config.lab.domain,
        lab.started_in.as_secs_f64() * 1000.0,
        common.data_dir.display()
    );
    println!("  {:<8} {:<22} protocol", "node", "address");
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
        println!("  {n:<8} {addr:<22} {p}");
    }
    println!(
        "  web client: http://{}/ (log in as bob / bob-secret)",
        a.webrsf
    );
    let subs = lab.store.subscribers().map(|s| s.len()).unwrap_or(0);
    println!("  {subs} subscribers (rcslab subscriber list); Ctrl-C stops the lab");
    let printer = if trace {
        let t = lab.trace.clone();
        let rec = lab.recorder();
        Some(tokio::spawn(async move {
            let mut last: Option<std::time::Duration> = None;
            let mut dropped = 0;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                // Every message as it crosses the wire, with the nodes' notes on their
                // decisions (which iFC matched, which S-CSCF the HSS chose, why a 401).
                let lines = rcslab::lab::timed_ladder_with_notes(&t, |x| rec.name_of(x));
                for (at, l) in &lines {
                    if last.is_none_or(|p| *at > p) {
                        println!("{l}");
                    }
                }
                if let Some((at, _)) = lines.last() {
                    last = Some(last.map_or(*at, |p| p.max(*at)));
                }
                // The recorder is a ring ([trace] capacity): say when it lets old messages go.
                let d = t.dropped();
                if d > dropped {
                    println!(
                        "    [recorder] {d} oldest messages dropped so far ([trace] capacity)"
                    );
                    dropped = d;
                }
            }
        }))
    } else {
        None
    };
    let _ = tokio::signal::ctrl_c().await;
    if let Some(p) = printer {
        p.abort();
    }
    println!("rcslab: shutting down");
    lab.shutdown().await;
    Ok(())
}

/// The running lab's admin API (address and token), if one answers for this data dir.
async fn running_admin(data_dir: &Path) -> Option<AdminClient> {
    let api = AdminClient::from_data_dir(data_dir)?;
    api.health().await.then_some(api)
}

fn open_store(data_dir: &Path) -> Result<Store, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    Store::open(data_dir).map_err(|e| {
        format!(
            "{e}\n(is another rcslab using {}? a running lab is reached through its admin API, but none answered)",
            data_dir.display()
        )
    })
}

fn print_json(body: &str) {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_string())
        ),
        Err(_) => println!("{body}"),
    }
}

async fn subscriber(cmd: SubCmd, common: Common) -> Result<(), String> {
    let api = running_admin(&common.data_dir).await;
    let specs = match &cmd {
        SubCmd::Add {
            impu,
            password,
            impi,
            aliases,
            k,
            opc,
            amf,
            sqn,
        } => {
            let mut ids = vec![impu.clone()];
            ids.extend(aliases.iter().cloned());
            Some(vec![SubscriberConfig {
                impi: impi.clone(),
                impu: ids,
                password: password.clone(),
                k: k.clone(),
                opc: opc.clone(),
                amf: Some(amf.clone()),
                sqn: Some(*sqn),
                ifc: None,
            }])
        }
        SubCmd::Import { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
            } else {
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            let mut v = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty()
                    || line.starts_with('#')
                    || line.eq_ignore_ascii_case("SEQUENTIAL")
                    || line.eq_ignore_ascii_case("RANDOM")
                {
                    continue;
                }
                let mut parts = line.split(';');
                let (Some(impu), Some(pw)) = (parts.next(), parts.next()) else {
                    return Err(format!("line {}: expected impu;password", n + 1));
                };
                let impu = if impu.contains(':') {
                    impu.to_string()
                } else {
                    format!("sip:{impu}")
                };
                v.push(SubscriberConfig {
                    impi: None,
                    impu: vec![impu],
                    password: pw.trim().to_string(),
                    k: None,
                    opc: None,
                    amf: None,
                    sqn: None,
                    ifc: None,
                });
            }
            Some(v)
        }
        _ => None,
    };
    if let Some(specs) = specs {
        let n = specs.len();
        if let Some(api) = &api {
            let body = serde_json::to_string(&specs).map_err(|e| e.to_string())?;
            let (status, body) = api
                .call(Method::POST, "/subscribers", Some(body))
                .await
                .map_err(|e| e.to_string())?;
            if status != 201 {
                return Err(format!("the lab refused: {body}"));
            }
        } else {
            let store = open_store(&common.data_dir)?;
            let lab = load_config(&common)?;
            admin::add_subscribers(&store, &specs, &lab.default_ifc).map_err(|e| e.to_string())?;
        }
        println!("added {n} subscriber{}", if n == 1 { "" } else { "s" });
        return Ok(());
    }
    let removing = matches!(cmd, SubCmd::Remove { .. });
    if let SubCmd::Ifc { id, set, clear } = &cmd {
        return subscriber_ifc(api.as_ref(), &common, id, set.as_deref(), *clear).await;
    }
    match cmd {
        SubCmd::List => {
            let subs = match &api {
                Some(api) => api.list_all().await.map_err(|e| e.to_string())?,
                None => open_store(&common.data_dir)?
                    .subscribers()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(admin::SubscriberView::from)
                    .collect(),
            };
            println!("{:<28} public identities", "private identity");
            for s in subs {
                println!("{:<28} {}", s.impi, s.impus.join(", "));
            }
            Ok(())
        }
        SubCmd::Show { id } | SubCmd::Remove { id } if api.is_some() => {
            let api = api.ok_or("no admin API")?;
            let method = if removing {
                Method::DELETE
            } else {
                Method::GET
            };
            let path = format!("/subscribers/{}", admin::percent_encode(&id));
            let (status, body) = api
                .call(method, &path, None)
                .await
                .map_err(|e| e.to_string())?;
            match (status, removing) {
                (200, false) => {
                    print_json(&body);
                    Ok(())
                }
                (200, true) => {
                    println!("removed {id}");
                    Ok(())
                }
                (404, _) => Err(format!("no subscriber {id}")),
                _ => Err(format!("the lab answered {status}: {body}")),
            }
        }
        SubCmd::Show { id } => {
            let s = open_store(&common.data_dir)?
                .find(&id)
                .map_err(|e| e.to_string())?;
            match s {
                Some(s) => {
                    let view = admin::SubscriberView::from(&s);
                    print_json(&serde_json::to_string(&view).map_err(|e| e.to_string())?);
                    Ok(())
                }
                None => Err(format!("no subscriber {id}")),
            }
        }
        SubCmd::Remove { id } => {
            let st = open_store(&common.data_dir)?;
            let s = st.remove(&id).map_err(|e| e.to_string())?;
            st.flush().map_err(|e| e.to_string())?;
            match s {
                Some(s) => {
                    println!("removed {}", s.impi);
                    Ok(())
                }
                None => Err(format!("no subscriber {id}")),
            }
        }
        SubCmd::Add { .. } | SubCmd::Import { .. } | SubCmd::Ifc { .. } => Ok(()),
    }
}

async fn subscriber_ifc(
    api: Option<&AdminClient>,
    common: &Common,
    id: &str,
    set: Option<&Path>,
    clear: bool,
) -> Result<(), String> {
    let new_ifc: Option<Vec<rcslab::config::IfcConfig>> = match (set, clear) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            let parsed: IfcFile =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
            for i in &parsed.ifc {
                i.to_profile().map_err(|e| e.to_string())?;
            }
            Some(parsed.ifc)
        }
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    let path = format!("/subscribers/{}", admin::percent_encode(id));
    let Some(new_ifc) = new_ifc else {
        // Show the iFCs as they are now.
        let ifcs = match api {
            Some(api) => {
                let (status, body) = api
                    .call(Method::GET, &path, None)
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!("no subscriber {id}"));
                }
                serde_json::from_str::<admin::SubscriberView>(&body)
                    .map_err(|e| e.to_string())?
                    .ifcs
            }
            None => open_store(&common.data_dir)?
                .find(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no subscriber {id}"))?
                .ifcs
                .clone(),
        };
        print_json(&serde_json::to_string(&ifcs).map_err(|e| e.to_string())?);
        return Ok(());
    };
    let n = new_ifc.len();
    let impi = match api {
        Some(api) => {
            let body = serde_json::to_string(&new_ifc).map_err(|e| e.to_string())?;
            let (status, body) = api
                .call(Method::PUT, &format!("{path}/ifc"), Some(body))
                .await
                .map_err(|e| e.to_string())?;
            match status {
                200 => {
                    serde_json::from_str::<admin::SubscriberView>(&body)
                        .map_err(|e| e.to_string())?
                        .impi
                }
                404 => return Err(format!("no subscriber {id}")),
                _ => return Err(format!("the lab refused: {body}")),
            }
        }
        None => {
            let store = open_store(&common.data_dir)?;
            let mut sub = store
                .find(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no subscriber {id}"))?;
            sub.ifcs = new_ifc
                .iter()
                .map(|i| i.to_profile())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            store.put_subscriber(&sub).map_err(|e| e.to_string())?;
            store.flush().map_err(|e| e.to_string())?;
            sub.impi
        }
    };
    println!("{impi}: {n} iFC");
    Ok(())
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

/// `ue send`: sends one message and waits for what becomes of it: prints `delivered`,
/// `displayed`, `delivered (pager mode)` (T-IM fell back to a SIP MESSAGE), `stored` (the
/// recipient is offline; T-IM keeps it and reports later by IMDN), `failed: REASON`, or
/// `pending: ...` when no report came in time (exit 1: not delivered, but not lost either).
async fn send_one(
    chat: &mut rcslab::ue::chat::ChatUe,
    to: &str,
    text: &str,
    timeout: u64,
) -> Result<(), String> {
    use rcslab::cpim::ImdnStatus;
    use rcslab::ue::chat::ChatEvent;
    use std::time::Duration;
    let id = chat.send(to, text).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match chat.next_event(left).await {
            Some(ChatEvent::Status {
                message_id,
                status,
                note,
                ..
            }) if message_id == id => {
                let pager = note.as_deref() == Some("pager-mode");
                return match status {
                    ImdnStatus::Failed => {
                        let why = note
                            .map(|n| n.trim_start_matches("failed: ").to_string())
                            .unwrap_or_else(|| "the network reports the message failed".into());
                        println!("failed: {why}");
                        Err(why)
                    }
                    ImdnStatus::Delivered if pager => {
                        println!("delivered (pager mode)");
                        Ok(())
                    }
                    ImdnStatus::Delivered => {
                        println!("delivered");
                        Ok(())
                    }
                    ImdnStatus::Displayed => {
                        println!("displayed");
                        Ok(())
                    }
                };
            }
            Some(ChatEvent::Stored { message_id, .. }) if message_id == id => {
                println!("stored");
                return Ok(());
            }
            Some(ChatEvent::SendFailed { message_id, reason }) if message_id == id => {
                println!("failed: {reason}");
                return Err(reason);
            }
            Some(_) => {}
            None => {
                // Accepted (no SendFailed) but not reported yet: the recipient is registered
                // yet does not answer, and T-IM keeps retrying. Not delivered, not lost.
                println!(
                    "pending: no delivery report within {timeout} s (T-IM keeps the message, retries and reports by IMDN)"
                );
                return Err("timeout".into());
            }
        }
    }
}

/// `rcslab ue`: a registered RCS client (see `rcslab::ue::chat`).
async fn ue_cmd(
    user: &str,
    pcscf: Option<std::net::SocketAddr>,
    config: Option<PathBuf>,
    cmd: Option<UeCmd>,
) -> Result<(), String> {
    use rcslab::cpim::ImdnStatus;
    use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
    use std::time::Duration;
    let cfg = match &config {
        Some(p) => LabConfig::load(p).map_err(|e| e.to_string())?,
        None => LabConfig::default_lab(),
    };
    let pcscf = pcscf.unwrap_or(cfg.nodes.pcscf);
    let domain = cfg.lab.domain.clone();
    let ue_cfg = rcslab::ue::UeConfig::from_lab(&cfg, user, pcscf)
        .ok_or_else(|| format!("no user '{user}' in the lab config"))?;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let trace = rcslab::trace::Trace::disabled();
    let mut ue = rcslab::ue::Ue::start(ue_cfg, trace.clone(), shut)
        .await
        .map_err(|e| e.to_string())?;
    let reg = tokio::time::timeout(Duration::from_secs(10), ue.register(600))
        .await
        .map_err(|_| format!("no answer from the P-CSCF at {pcscf} (is `rcslab up` running?)"))?
        .map_err(|e| e.to_string())?;
    // `listen` and the interactive client run for hours: they re-register at half-life.
    let keep = ChatOptions {
        refresh_registration: Some(reg.expires.max(60)),
        ..ChatOptions::default()
    };
    let target = |to: &str| {
        if to.contains(':') {
            to.to_string()
        } else {
            format!("sip:{to}@{domain}")
        }
    };
    match cmd {
        Some(UeCmd::Send { to, text, timeout }) => {
            let mut chat = ChatUe::start(ue, trace, ChatOptions::default());
            let to = target(&to);
            let outcome = tokio::select! {
                r = send_one(&mut chat, &to, &text, timeout) => r,
                _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
            };
            // Leave no contact registered behind us (TS 24.229 §5.1.1.6: REGISTER with
            // Expires 0), whatever the outcome, also after Ctrl-C.
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await,
                Ok(true)
            ) {
                eprintln!("rcslab ue: de-registration got no 200; the contact lapses by itself");
            }
            outcome
        }
        Some(UeCmd::Listen) => {
            let mut chat = ChatUe::start(ue, trace, keep);
            eprintln!(
                "rcslab ue: {} registered, listening (Ctrl-C stops)",
                chat.impu
            );
            loop {
                tokio::select! {
                    ev = chat.next_event(Duration::from_secs(3600)) => {
                        if let Some(ChatEvent::Message { from, text, message_id }) = ev {
                            println!("{from}: {text}");
                            // Printed is shown: IMDN displayed (delivered went out on receipt).
                            chat.displayed(&message_id);
                        }
                    }
                    _ = tokio::signal::ctrl_c() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                        return Ok(());
                    }
                }
            }
        }
        None => {
            let mut chat = ChatUe::start(ue, trace, keep);
            println!(
                "rcslab ue: {} registered. Type `PEER TEXT` (e.g. `bob Hello?`), `/typing PEER`, `/quit`.",
                chat.impu
            );
            let mut lines =
                tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
            let mut sent: std::collections::HashMap<String, String> = Default::default();
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let line = match line {
                            Ok(Some(l)) if l.trim() != "/quit" => l,
                            _ => {
                                let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                                return Ok(());
                            }
                        };
                        let line = line.trim();
                        if let Some(peer) = line.strip_prefix("/typing ") {
                            chat.composing(&target(peer.trim()), true);
                            continue;
                        }
                        let Some((peer, text)) = line.split_once(' ') else { continue };
                        let id = chat.send(&target(peer), text).await;
                        sent.insert(id, text.to_string());
                    }
                    _ = tokio::signal::ctrl_c() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                        return Ok(());
                    }
                    ev = chat.next_event(Duration::from_secs(3600)) => match ev {
                        Some(ChatEvent::Message { from, text, message_id }) => {
                            println!("{from}: {text}");
                            chat.displayed(&message_id);
                        }
                        Some(ChatEvent::Status { message_id, status, note, .. }) => {
                            let tick = match status {
                                ImdnStatus::Delivered => "✓ delivered",
                                ImdnStatus::Displayed => "✓✓ displayed",
                                ImdnStatus::Failed => "✗ failed",
                            };
                            let what = sent.get(&message_id).cloned().unwrap_or(message_id);
                            match note {
                                Some(n) => println!("  {tick} ({n}): {what}"),
                                None => println!("  {tick}: {what}"),
                            }
                        }
                        Some(ChatEvent::Composing { from, active: true }) => println!("  ({from} is typing...)"),
                        Some(ChatEvent::SendFailed { reason, .. }) => println!("  ✗ {reason}"),
                        Some(ChatEvent::Stored { message_id, .. }) => {
                            let what = sent.get(&message_id).cloned().unwrap_or(message_id);
                            println!("  … stored (recipient offline): {what}");
                        }
                        Some(ChatEvent::Session { peer, status, reason }) => {
                            println!("  (session with {peer} {}{}{reason})", status.as_str(), if reason.is_empty() { "" } else { ": " });
                        }
                        Some(_) | None => {}
                    }
                }
            }
        }
    }
}
