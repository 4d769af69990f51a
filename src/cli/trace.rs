//! `rcslab trace export | clear`: what a running `rcslab up --trace` recorded, through the
//! admin API's `/trace`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use hyper::Method;

use rcslab::hss::admin_client::AdminClient;

use super::{running_admin, CliError, Common, Result};

#[derive(Subcommand)]
pub enum TraceCmd {
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
pub struct TraceQuery {
    pub call_id: Option<String>,
    pub user: Option<String>,
    pub since: Option<f64>,
}

/// The running lab's admin API, or why there is none.
async fn trace_admin(common: &Common) -> Result<AdminClient> {
    running_admin(&common.data_dir)
        .await
        .ok_or_else(|| CliError::NoTraceLab(common.data_dir.clone()))
}

/// `trace export`: `GET /trace` on the running lab, to a file or standard output.
pub async fn export(
    common: &Common,
    format: &str,
    view: &str,
    filter: &TraceQuery,
    out: Option<&Path>,
) -> Result<()> {
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
    let (status, body) = api.call_bytes(Method::GET, &q, None).await?;
    if status != 200 {
        return Err(CliError::Answered {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    match out {
        Some(p) => std::fs::write(p, &body).map_err(|e| CliError::File {
            path: p.to_path_buf(),
            detail: e.to_string(),
        })?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&body)?;
        }
    }
    Ok(())
}

/// `trace clear`: `DELETE /trace` on the running lab.
pub async fn clear(common: &Common) -> Result<()> {
    let api = trace_admin(common).await?;
    let (status, body) = api.call(Method::DELETE, "/trace", None).await?;
    if status != 200 {
        return Err(CliError::Answered { status, body });
    }
    let dropped = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["dropped"].as_u64())
        .ok_or_else(|| CliError::Unexpected(body.clone()))?;
    println!("cleared the flight recorder: {dropped} messages dropped");
    Ok(())
}
