//! `rcslab run NODE`: one node as its own process ([`rcslab::lab::run`]).

use rcslab::LabOptions;

use super::up::{live_ladder, out, until_stopped};
use super::{load_config, Common, Result};

/// Starts `node` with the lab file's addresses and runs it until it is stopped.
pub async fn run_node(node: &str, common: Common, trace: bool) -> Result<()> {
    let node: rcslab::lab::run::Node = node.parse()?;
    let config = load_config(&common)?;
    let opts = LabOptions {
        trace,
        ..Default::default()
    };
    let running = rcslab::lab::run::start(node, &config, &common.data_dir, opts).await?;
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
