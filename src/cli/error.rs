//! `CliError`: why an `rcslab` command failed. Its `Display` is the line printed after
//! `rcslab: ` on standard error (exit code 1); the texts are the ones scripts already match.

use std::path::PathBuf;

use rcslab::config::ConfigError;
use rcslab::lab::run::UnknownNode;
use rcslab::lab::scenario::ScenarioError;
use rcslab::lab::LabError;
use rcslab::store::StoreError;
use rcslab::ue::UeError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The lab file does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lab (or one node of it) does not start.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A teaching lab does not load or run.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The subscriber store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `rcslab run NODE` with a node it does not know.
    #[error(transparent)]
    UnknownNode(#[from] UnknownNode),
    /// The simulated UE failed (registration refused…).
    #[error(transparent)]
    Ue(#[from] UeError),
    /// Reading or writing standard input/output, or talking to the admin API.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A JSON body that does not encode or decode.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A TOML document that does not encode.
    #[error("{0}")]
    Toml(#[from] toml::ser::Error),
    /// A file named on the command line that cannot be read, parsed or written.
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    /// `rcslab trace …` while no lab answers for the data dir.
    #[error("no lab is running on {} (start one with `rcslab up --trace --data-dir {}`)", .0.display(), .0.display())]
    NoTraceLab(PathBuf),
    /// `rcslab presence …` while no lab answers for the data dir.
    #[error("no lab is running on {} (start one with `rcslab up --data-dir {}`)", .0.display(), .0.display())]
    NoLab(PathBuf),
    /// The admin API answered with an unexpected status.
    #[error("the lab answered {status}: {body}")]
    Answered { status: u16, body: String },
    /// The admin API refused a change.
    #[error("the lab refused: {0}")]
    Refused(String),
    /// The admin API answered 200 with a body this client does not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// A line of `subscriber import`'s file that does not read (the text names the line).
    #[error("{0}")]
    Import(String),
    /// `subscriber import` of a file without a subscriber.
    #[error("no subscriber in the file")]
    EmptyImport,
    /// The data dir cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A read-only command on a data dir where no lab has run.
    #[error("no lab data in {} (no lab has run with this --data-dir; `rcslab up --data-dir {}` creates it)", .0.display(), .0.display())]
    NoData(PathBuf),
    /// No subscriber with this identity.
    #[error("no subscriber {0}")]
    NoSubscriber(String),
    /// A flag value or argument the command does not take (the text says which ones it does).
    #[error("{0}")]
    Usage(String),
    /// `rcslab lab check`: some labs' ladders differ from the expected ones.
    #[error("{0} lab(s) differ from their expected ladder")]
    LabsDiffer(usize),
    /// `rcslab bench chat`: the benchmark lost or duplicated messages.
    #[error("messages lost or duplicated")]
    ChatLost,
    /// `rcslab bench webrsf`: the benchmark lost messages or could not hold its channels.
    #[error("messages lost or channels not held")]
    WebLost,
    /// `rcslab bench presence`: a PUBLISH was refused or a NOTIFY it owed never came.
    #[error("PUBLISHes refused or NOTIFYs lost")]
    PresenceLost,
    /// `rcslab bench rtcweb`: calls failed or were not set up in time.
    #[error("calls failed")]
    RtcwebLost,
    /// `rcslab bench bridge`: packets lost or p99 latency at 20 ms or more.
    #[error("media packets lost or p99 latency at 20 ms or more")]
    BridgeTarget,
    /// `rcslab bench group`: a group message, an IMDN or a roster NOTIFY never came, or a
    /// member got a message twice.
    #[error("group messages, IMDNs or roster NOTIFYs lost, or duplicated")]
    GroupLost,
    /// `rcslab bench ft`: a file did not come back whole or with its SHA-256.
    #[error("file transfers failed or came back different")]
    FtFailed,
    /// `rcslab bench sms`: a submit_sm refused or unanswered, a receipt that never came or
    /// did not say DELIVRD, or one that came twice.
    #[error("SMS refused, lost or duplicated")]
    SmsLost,
    /// `rcslab bench bridge` could not set its calls up.
    #[error(transparent)]
    BridgeBench(#[from] rcslab::lab::bench_bridge::BridgeBenchError),
    /// `rcslab ue send`: the message was not delivered (the reason, or `timeout`).
    #[error("{0}")]
    NotDelivered(String),
    /// `rcslab ue sms`: the recipient, the service centre or the text refused before
    /// sending (not a number, over 2,000 characters).
    #[error("sms: {0}")]
    Sms(String),
    /// `rcslab ue sendfile`: the file could not be read or uploaded (the reason).
    #[error("sendfile: {0}")]
    FileTransfer(String),
    /// `rcslab ue listen --files DIR`: DIR is not a directory we can write to.
    #[error("--files {0}: {1}")]
    FilesDir(PathBuf, String),
    /// `rcslab ue status` / `watch`: the PUBLISH or every SUBSCRIBE was refused, or the
    /// status word is unknown.
    #[error("{0}")]
    Presence(String),
    /// `rcslab ue group …`: the focus refused or did not answer (what, status and reason).
    #[error("group {0}")]
    Group(String),
    /// `rcslab ue caps`: the OPTIONS got no 200 (the status and reason).
    #[error("caps: {0}")]
    NoCapabilities(String),
    /// `rcslab ue --user U` for a user the lab file does not know, without `--password`.
    #[error("no user '{0}' in the lab file; for a subscriber added with `rcslab subscriber add`, give --password (and --impi if it is not user@domain)")]
    UnknownUser(String),
    /// Ctrl-C ended `rcslab ue`.
    #[error("interrupted")]
    Interrupted,
    /// The UE cannot bind its socket or gets no answer (the text names the address).
    #[error("{0}")]
    UeStart(String),
    /// `rcslab status` found no lab, or the lab's answer did not do.
    #[error(transparent)]
    Status(#[from] rcslab::lab::status::StatusError),
    /// `rcslab bench chat` did not run to the end.
    #[error(transparent)]
    Bench(#[from] rcslab::lab::bench::BenchError),
    /// `rcslab eval` did not run to the end.
    #[error(transparent)]
    Eval(#[from] rcslab::lab::eval::EvalError),
    /// `rcslab bench webrsf` (or its channel holder) did not run to the end.
    #[error(transparent)]
    WebBench(#[from] rcslab::lab::bench_web::WebBenchError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripts match these lines after `rcslab: `; they are the texts the commands printed
    /// when their errors were plain strings.
    #[test]
    fn messages_are_the_ones_scripts_know() {
        let d = PathBuf::from("/tmp/lab");
        let cases: Vec<(CliError, &str)> = vec![
            (
                CliError::NoTraceLab(d.clone()),
                "no lab is running on /tmp/lab (start one with `rcslab up --trace --data-dir /tmp/lab`)",
            ),
            (
                CliError::NoData(d.clone()),
                "no lab data in /tmp/lab (no lab has run with this --data-dir; `rcslab up --data-dir /tmp/lab` creates it)",
            ),
            (
                CliError::Answered {
                    status: 500,
                    body: "x".into(),
                },
                "the lab answered 500: x",
            ),
            (CliError::Refused("{}".into()), "the lab refused: {}"),
            (CliError::Unexpected("{}".into()), "unexpected answer: {}"),
            (CliError::NoSubscriber("u1".into()), "no subscriber u1"),
            (
                CliError::LabsDiffer(2),
                "2 lab(s) differ from their expected ladder",
            ),
            (CliError::ChatLost, "messages lost or duplicated"),
            (CliError::WebLost, "messages lost or channels not held"),
            (CliError::PresenceLost, "PUBLISHes refused or NOTIFYs lost"),
            (CliError::RtcwebLost, "calls failed"),
            (
                CliError::BridgeTarget,
                "media packets lost or p99 latency at 20 ms or more",
            ),
            (
                CliError::GroupLost,
                "group messages, IMDNs or roster NOTIFYs lost, or duplicated",
            ),
            (
                CliError::FtFailed,
                "file transfers failed or came back different",
            ),
            (CliError::SmsLost, "SMS refused, lost or duplicated"),
            (CliError::Interrupted, "interrupted"),
            (
                CliError::WebBench(rcslab::lab::bench_web::WebBenchError::HolderSlow),
                "the holder did not open its channels within 120 s",
            ),
            (
                CliError::File {
                    path: "a.html".into(),
                    detail: "Permission denied (os error 13)".into(),
                },
                "a.html: Permission denied (os error 13)",
            ),
            (
                CliError::UnknownNode(UnknownNode("x".into())),
                "unknown node 'x': rcslab run takes one of pcscf, icscf, scscf, hss, oim, tim, webrsf, ps, conf, rtcweb, content, smsc, ums (or scscf2 … scscf9 for the [[scscfs]] entries)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
