//! `rcslab eval webrsf`: the paper's evaluation reproduced from real flows
//! ([`rcslab::lab::eval`]).

use clap::Subcommand;

use super::Result;

#[derive(Subcommand)]
pub enum EvalCmd {
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

/// Runs one `rcslab eval` subcommand and prints its table.
pub async fn run(cmd: EvalCmd) -> Result<()> {
    match cmd {
        EvalCmd::Webrsf {
            rcs,
            web,
            chats,
            later,
            seed,
        } => {
            let r = rcslab::lab::eval::webrsf(rcs, web, chats, later, seed).await?;
            print!("{}", rcslab::lab::eval::table(&r));
            Ok(())
        }
    }
}
