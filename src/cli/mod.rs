//! The subcommands of the `rcslab` binary, one file each; `main.rs` keeps the clap
//! definitions and the dispatch.

use std::path::{Path, PathBuf};

use clap::Args;

use rcslab::config::LabConfig;
use rcslab::hss::admin_client::AdminClient;

pub mod bench;
pub mod error;
pub mod eval;
pub mod group;
pub mod lab;
pub mod presence;
pub mod run;
pub mod sms;
pub mod status;
pub mod subscriber;
pub mod trace;
pub mod ue;
pub mod ums;
pub mod up;
pub mod watch;

pub use error::CliError;

/// What a command returns: nothing, or why it failed (printed, exit code 1).
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Lab file (TOML) merged over the compiled-in default lab.
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Where sled keeps the lab's data.
    #[arg(long, global = true, default_value = "./rcslab-data")]
    pub(crate) data_dir: PathBuf,
}

/// The lab file of `--config`, or the compiled-in default lab.
pub(crate) fn load_config(common: &Common) -> Result<LabConfig> {
    Ok(match &common.config {
        Some(p) => LabConfig::load(p)?,
        None => LabConfig::default_lab(),
    })
}

/// The running lab's admin API (address and token), if one answers for this data dir.
pub(crate) async fn running_admin(data_dir: &Path) -> Option<AdminClient> {
    let api = AdminClient::from_data_dir(data_dir)?;
    api.health().await.then_some(api)
}
