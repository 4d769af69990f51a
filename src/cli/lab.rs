//! `rcslab lab list | run | check`: the teaching labs (`labs/*.toml`).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, Result};

#[derive(Subcommand)]
pub enum LabCmd {
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

/// The labs of a directory, or the compiled-in ones.
fn lab_set(dir: Option<&Path>) -> Result<Vec<(String, rcslab::lab::scenario::Scenario)>> {
    match dir {
        Some(d) => rcslab::lab::catalog::from_dir(d),
        None => rcslab::lab::catalog::compiled_in(),
    }
    .map_err(CliError::from)
}

/// Runs one `rcslab lab` subcommand.
pub async fn run(cmd: LabCmd) -> Result<()> {
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
                return Err(CliError::Usage(format!(
                    "--view {view}: full, paper, both or roles"
                )));
            }
            if !matches!(format.as_str(), "text" | "html" | "mermaid") {
                return Err(CliError::Usage(format!(
                    "--format {format}: text, html or mermaid"
                )));
            }
            let (_, s) = rcslab::lab::catalog::find(&file)?;
            let export = (format != "text").then_some(format.as_str());
            let r = s.run_report(export).await?;
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
                    std::fs::write(&p, &bytes).map_err(|e| CliError::File {
                        path: p.clone(),
                        detail: e.to_string(),
                    })?;
                    print!("{text}");
                    println!("wrote {} ({format})", p.display());
                }
                None => std::io::stdout().write_all(&bytes)?,
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
                return Err(CliError::LabsDiffer(failed));
            }
            Ok(())
        }
    }
}
