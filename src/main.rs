//! `rcslab`: run an IMS/RCS lab, manage its subscribers.

//!
//! This file holds the clap definitions, the allocator set-up and the dispatch; each
//! command's code is in `cli/` (one file per command), its errors are [`cli::CliError`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::bench::BenchCmd;
use cli::eval::EvalCmd;
use cli::lab::LabCmd;
use cli::trace::{TraceCmd, TraceQuery};
use cli::Common;

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
    /// addresses (eight `rcslab run` processes make the same lab as `rcslab up`).
    #[command(
        after_help = "Examples:\n  rcslab run hss --data-dir /tmp/lab          # data in /tmp/lab/hss\n  rcslab run scscf --config lab.toml --trace\n  rcslab run tim --data-dir /tmp/lab          # data in /tmp/lab/tim\n  rcslab run webrsf --data-dir /tmp/lab       # reads /tmp/lab/tim/history.token\n\nNodes: pcscf, icscf, scscf, hss, oim, tim, webrsf, ps, conf, rtcweb."
    )]
    Run {
        /// pcscf, icscf, scscf, hss, oim, tim, webrsf, ps, conf or rtcweb.
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
    /// The presence server's resource lists and watcher rules (needs a running lab).
    #[command(
        after_help = "Examples:\n  rcslab presence lists alice                   # rcs sip:alice;pres-list=rcs@ims.lab: sip:bob@ims.lab, ...\n  rcslab presence list alice work bob tel:+15550003\n  rcslab presence watchers alice                # allow / block / pending\n  rcslab presence allow alice carol"
    )]
    Presence {
        #[command(subcommand)]
        cmd: cli::presence::PresenceCmd,
        #[command(flatten)]
        common: Common,
    },
    /// Business messaging through the unified-messaging gateway UMS (needs a running lab).
    #[command(
        after_help = "Examples:\n  rcslab ums template add otp 'Your code is #{code}'\n  rcslab ums template approve otp               # the operator's token\n  rcslab ums send --to +15550002 --template otp --var code=1234\n  rcslab ums send --to +15550002 --to +15550003 --text 'Sale today'\n  rcslab ums status m42"
    )]
    Ums {
        #[command(subcommand)]
        cmd: cli::ums::UmsCmd,
        #[command(flatten)]
        common: Common,
    },
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
            Cmd::Up { common, trace, hep } => cli::up::up(common, trace, hep).await,
            Cmd::Run {
                node,
                common,
                trace,
            } => cli::run::run_node(&node, common, trace).await,
            Cmd::Subscriber { cmd, common } => cli::subscriber::run(cmd, common).await,
            Cmd::Presence { cmd, common } => cli::presence::run(cmd, common).await,
            Cmd::Ums { cmd, common } => cli::ums::run(cmd, common).await,
            Cmd::Lab { cmd } => cli::lab::run(cmd).await,
            Cmd::Bench { cmd } => cli::bench::run(cmd).await,
            Cmd::Eval { cmd } => cli::eval::run(cmd).await,
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
                cli::trace::export(&common, &format, &view, &filter, out.as_deref()).await
            }
            Cmd::Trace {
                cmd: TraceCmd::Clear,
                common,
            } => cli::trace::clear(&common).await,
            Cmd::Status { json, common } => cli::status::run(json, common).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Words of an example line as a shell would split them (single and double quotes),
    /// without its `# comment` (a `#` starting a word outside quotes).
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur) = (Vec::new(), String::new());
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (c, quote) {
                ('"' | '\'', None) => quote = Some(c),
                (q, Some(open)) if q == open => quote = None,
                ('#', None) if cur.is_empty() => break,
                (' ', None) => {
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
