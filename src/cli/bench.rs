//! `rcslab bench chat | webrsf | presence | rtcweb | bridge | group | ft | sms`: benchmarks on an
//! in-process lab ([`rcslab::lab::bench`], [`rcslab::lab::bench_web`],
//! [`rcslab::lab::bench_presence`], [`rcslab::lab::bench_rtcweb`],
//! [`rcslab::lab::bench_bridge`], [`rcslab::lab::bench_group`], [`rcslab::lab::bench_ft`],
//! [`rcslab::lab::bench_sms`]).

use std::path::PathBuf;

use clap::Subcommand;

use super::{CliError, Result};

#[derive(Subcommand)]
pub enum BenchCmd {
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
    /// Presence through the RLS: users in buddy groups, each subscribed to its own list of
    /// the group's others; PUBLISHes at a rate, each owing a NOTIFY to every watcher.
    Presence {
        /// Buddy groups.
        #[arg(long, default_value_t = 20)]
        groups: usize,
        /// Watchers per user (a group is watchers + 1 users; each list has this many members).
        #[arg(long, default_value_t = 50)]
        watchers: usize,
        /// PUBLISHes per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The RTCWeb gateway (signalling only): pages calling rcslab UEs as figure 8 draws it
    /// (100rel), and idle pages held by a child process for the memory per page.
    Rtcweb {
        /// Pages placing calls (each logged in: registered to IMS by the gateway).
        #[arg(long, default_value_t = 200)]
        pages: usize,
        /// rcslab UEs answering the calls.
        #[arg(long, default_value_t = 50)]
        callees: usize,
        /// Idle pages held open by a child process (memory per connected client).
        #[arg(long, default_value_t = 1000)]
        idle: usize,
        /// Calls set up (and torn down) per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The WebRTC media bridge: concurrent calls between WebRTC peers and plain RTP phones,
    /// audio both ways; latency from each packet's scheduled send time.
    Bridge {
        /// Calls at once.
        #[arg(long, default_value_t = 100)]
        calls: usize,
        /// Seconds of audio.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Group chat through the conference focus CONF: groups of members, each member an RCS
    /// client; messages at a rate fanned out to every member, each with its IMDN; the roster
    /// NOTIFY on a member's leave.
    Group {
        /// Groups.
        #[arg(long, default_value_t = 5)]
        groups: usize,
        /// Members per group (the creator included).
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Group messages per second, all groups together.
        #[arg(long, default_value_t = 50)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// File transfer via HTTP through the content server: uploads and downloads of small
    /// files at a rate, big files at once, and one huge file with the RSS watched.
    Ft {
        /// Transfers in flight at once (small files); one user each.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Small files: size in MiB.
        #[arg(long, default_value_t = 1)]
        small_mb: u64,
        /// Small files: how many.
        #[arg(long, default_value_t = 200)]
        small: usize,
        /// Small files: uploads scheduled per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Big files: size in MiB.
        #[arg(long, default_value_t = 100)]
        big_mb: u64,
        /// Big files: how many, all at once (0: none).
        #[arg(long, default_value_t = 4)]
        big: usize,
        /// One huge file with the RSS sampled: size in MiB (0: none).
        #[arg(long, default_value_t = 1024)]
        huge_mb: u64,
    },
    /// SMS from an application over SMPP to IMS phones: open-loop steps of rising submit_sm
    /// rates, each message timed from its scheduled send to its submit_sm_resp and to its
    /// DELIVRD receipt.
    Sms {
        /// Phones registered (each an SMS client answering with its RP-ACK).
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// submit_sm per second of each step, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,3000")]
        rates: Vec<u64>,
        /// Seconds each step lasts.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// submit_sm unanswered at most.
        #[arg(long, default_value_t = 20)]
        window: usize,
    },
    /// (internal) Holds RTCWeb pages for `bench rtcweb` in a process of its own.
    #[command(hide = true)]
    RtcwebHold {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        from: usize,
        #[arg(long)]
        count: usize,
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

/// Runs one `rcslab bench` subcommand and prints its figures.
pub async fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Chat {
            pairs,
            messages,
            rate,
            trace,
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
                return Err(CliError::ChatLost);
            }
            Ok(())
        }
        BenchCmd::Webrsf {
            users,
            channels,
            pairs,
            messages,
            rate,
        } => {
            let exe = std::env::current_exe()?;
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
                return Err(CliError::WebLost);
            }
            Ok(())
        }
        BenchCmd::Presence {
            groups,
            watchers,
            rate,
            seconds,
        } => {
            let r = rcslab::lab::bench_presence::presence(groups, watchers, rate, seconds).await?;
            println!(
                "presence: {} users, each watching {watchers} through the RLS; {} PUBLISH at {rate}/s for {seconds} s, {} accepted; {} NOTIFY owed, {} delivered, {} lost",
                r.users,
                r.published,
                r.accepted,
                r.owed,
                r.delivered,
                r.owed.saturating_sub(r.delivered)
            );
            println!(
                "presence: {:.0} NOTIFY/s delivered; scheduled PUBLISH -> NOTIFY p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; list SUBSCRIBE -> full state ({watchers} members) p99 {:.1} ms; RSS {} MiB",
                r.delivered as f64 / r.elapsed.as_secs_f64().max(1e-3),
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0,
                r.max.as_secs_f64() * 1000.0,
                r.subscribe_p99.as_secs_f64() * 1000.0,
                r.rss_kib / 1024
            );
            println!(
                "presence: scheduled PUBLISH -> 200 p99 {:.1} ms; {:.1} CPU s in the load phase (lab and UEs, one process){}",
                r.publish_p99.as_secs_f64() * 1000.0,
                r.cpu_secs,
                if r.refused.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; refused: {}",
                        r.refused
                            .iter()
                            .map(|(s, n)| format!("{n} x {s}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            if r.delivered < r.owed || r.accepted < r.published {
                return Err(CliError::PresenceLost);
            }
            Ok(())
        }
        BenchCmd::Rtcweb {
            pages,
            callees,
            idle,
            rate,
            seconds,
        } => {
            let holder = std::env::current_exe().map_err(CliError::Io)?;
            let r = rcslab::lab::bench_rtcweb::rtcweb(pages, callees, idle, rate, seconds, &holder)
                .await?;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            println!(
                "rtcweb: {pages} pages calling {callees} UEs at {rate}/s for {seconds} s: {} calls scheduled, {} set up and torn down ({:.0}/s), {} failed",
                r.scheduled,
                r.completed,
                r.completed as f64 / r.elapsed.as_secs_f64().max(1e-3),
                r.scheduled.saturating_sub(r.completed)
            );
            println!(
                "rtcweb: scheduled OFFER -> Ringing p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; -> OK (OFFER) p99 {:.1} ms; {}RSS {} MiB{}",
                ms(r.ringing[0]),
                ms(r.ringing[1]),
                ms(r.ringing[2]),
                ms(r.setup_p99),
                if r.idle > 0 {
                    format!(
                        "{} idle pages: {:.1} KiB each (lab RSS growth); ",
                        r.idle, r.idle_kib_per_page
                    )
                } else {
                    String::new()
                },
                r.rss_kib / 1024,
                if r.failures.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; failures: {}",
                        r.failures
                            .iter()
                            .map(|(w, n)| format!("{n}x {w}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            if r.completed < r.scheduled {
                return Err(CliError::RtcwebLost);
            }
            Ok(())
        }
        BenchCmd::Bridge { calls, seconds } => {
            let r = rcslab::lab::bench_bridge::bridge(calls, seconds).await?;
            println!("{}", rcslab::lab::bench_bridge::report(&r, seconds));
            if !rcslab::lab::bench_bridge::met_target(&r) {
                return Err(CliError::BridgeTarget);
            }
            Ok(())
        }
        BenchCmd::Group {
            groups,
            members,
            rate,
            seconds,
        } => {
            let r = rcslab::lab::bench_group::group(groups, members, rate, seconds).await?;
            println!("{}", rcslab::lab::bench_group::report(&r, rate, seconds));
            if !r.clean() {
                return Err(CliError::GroupLost);
            }
            Ok(())
        }
        BenchCmd::Ft {
            clients,
            small_mb,
            small,
            rate,
            big_mb,
            big,
            huge_mb,
        } => {
            const MIB: u64 = 1024 * 1024;
            let plan = rcslab::lab::bench_ft::FtPlan {
                clients,
                small_size: small_mb * MIB,
                small_count: small,
                small_rate: rate,
                big_size: big_mb * MIB,
                big_count: big,
                huge_size: huge_mb * MIB,
            };
            let r = rcslab::lab::bench_ft::ft(&plan).await?;
            println!("{}", rcslab::lab::bench_ft::report(&r, &plan));
            if !r.clean() {
                return Err(CliError::FtFailed);
            }
            Ok(())
        }
        BenchCmd::Sms {
            users,
            rates,
            secs,
            window,
        } => {
            let plan = rcslab::lab::bench_sms::SmsPlan {
                users,
                rates,
                secs,
                window,
            };
            let r = rcslab::lab::bench_sms::sms(&plan).await?;
            println!("{}", rcslab::lab::bench_sms::report(&r, &plan));
            if !r.clean() {
                return Err(CliError::SmsLost);
            }
            Ok(())
        }
        BenchCmd::RtcwebHold { addr, from, count } => {
            rcslab::lab::bench_rtcweb::hold(addr, from, count)
                .await
                .map_err(CliError::Io)
        }
        BenchCmd::WebrsfHold {
            addr,
            tokens,
            channels,
            singles,
        } => Ok(rcslab::lab::bench_web::hold(addr, &tokens, channels, singles).await?),
    }
}
