//! `rcslab ue … group` as scripts use it: the command forms and outputs are a contract.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::*;
use crate::rcslab_ue;

/// Runs `rcslab ue --user USER ARGS…` to the end: (exit code, stdout, stderr).
async fn ue_run(lab: &Lab, user: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), rcslab_ue(lab, user, args).output())
        .await
        .expect("rcslab ue ends in time")
        .expect("rcslab ue runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_create_send_add_leave_list_and_listen_prints_group_messages() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // bob listens; carol is offline.
    let mut listen = rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(l)) = err.next_line().await {
            if l.contains("registered, listening") {
                return;
            }
        }
    })
    .await
    .expect("bob listening");
    let mut out = BufReader::new(listen.stdout.take().unwrap()).lines();
    // listen's lines up to the first that `want` takes (roster lines come between the
    // others, as members join, go away and come back): that line, and those before it.
    let mut seen: Vec<String> = Vec::new();
    let mut until = async |want: &dyn Fn(&str) -> bool| -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            let l = tokio::time::timeout(Duration::from_secs(10), out.next_line())
                .await
                .unwrap_or_else(|_| panic!("no such line from listen; it printed {seen:#?}"))
                .unwrap()
                .unwrap();
            seen.push(l.clone());
            if want(&l) {
                return (l, before);
            }
            before.push(l);
        }
    };

    // create: the group id alone on the last line.
    let (code, stdout, stderr) = ue_run(
        &lab,
        "alice",
        &["group", "create", "Friday lunch", "bob", "carol"],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let gid = stdout.lines().last().unwrap().trim().to_string();
    assert!(!gid.is_empty() && !gid.contains(' '), "{stdout}");
    let g = lab.conf.group(&gid).expect("the focus has it");
    assert_eq!(g.subject.as_deref(), Some("Friday lunch"));
    let (l, before) = until(&|l| !l.contains(": members: ")).await;
    assert_eq!(l, format!("{gid}: joined"), "{before:?}");
    // Once in, listen follows the group's roster (RFC 4575): the whole of it first.
    let (l, _) = until(&|l| l.contains(": members: ")).await;
    assert!(
        l.starts_with(&format!("{gid}: members: sip:alice@ims.lab (chairman"))
            && l.contains("sip:bob@ims.lab")
            && l.contains("sip:carol@ims.lab ("),
        "{l}"
    );

    // send: `sent` once stored; bob's listen prints GROUP/FROM: TEXT.
    let (code, stdout, stderr) = ue_run(
        &lab,
        "alice",
        &["group", "send", &gid, "lunch at noon?", "--timeout", "1"],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.lines().next(), Some("sent"), "{stdout}");
    let (_, before) = until(&|l| l == format!("{gid}/sip:alice@ims.lab: lunch at noon?")).await;
    // Roster changes only, as they happen around the subscription's first NOTIFY: alice's
    // commands each de-register at the end (away) and come back with the next one, bob is
    // connected once our ACK is in, carol's INVITE gets 480 (away).
    assert!(
        before.iter().all(|l| {
            let Some((who, what)) = l
                .strip_prefix(&format!("{gid}: "))
                .and_then(|r| r.split_once(' '))
            else {
                return false;
            };
            ["sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"].contains(&who)
                && ["joined", "away", "invited"].contains(&what)
        }),
        "{before:?}"
    );

    // add (carol is already invited: nothing new, still fine); remove by a non-chairman: 403.
    let (code, stdout, _) = ue_run(&lab, "alice", &["group", "add", &gid, "carol"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim(), "added: carol");
    let (code, _, stderr) = ue_run(&lab, "bob", &["group", "remove", &gid, "alice"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("403"), "{stderr}");

    // carol leaves for good (she joins the session, then BYE).
    let (code, stdout, stderr) = ue_run(&lab, "carol", &["group", "leave", &gid]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), format!("left {gid}"));
    assert!(!lab.conf.group(&gid).unwrap().is_member("sip:carol@ims.lab"));
    until(&|l| l == format!("{gid}: sip:carol@ims.lab left")).await;

    // list: what the focus says about each group alice knows.
    let (code, stdout, stderr) = ue_run(&lab, "alice", &["group", "list"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), format!("{gid}  Friday lunch  (2 members)"));
    let _ = listen.start_kill();
}
