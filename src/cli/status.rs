//! `rcslab status`: what a running lab holds, from the admin API's `GET /status`
//! ([`rcslab::lab::status`]).

use super::{running_admin, Common, Result};

/// Prints the running lab's status (its JSON as it comes with `json`); fails when no lab
/// answers for the data dir.
pub async fn run(json: bool, common: Common) -> Result<()> {
    let api = running_admin(&common.data_dir).await;
    let text = rcslab::lab::status::fetch(api, &common.data_dir, json).await?;
    print!("{text}");
    Ok(())
}
