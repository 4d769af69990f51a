//! The `rcslab` binary as a newcomer meets it: `up` in a pipe, a second `up` on a used data
//! dir or port, `ue --password --local-port` for a subscriber added from the CLI, read-only
//! commands on a missing data dir, and README's sipp users file imported and shown as TOML.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_rcslab");

/// Free loopback ports (UDP and TCP both free) for a lab file.
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = t.local_addr().expect("addr").port();
        if let Ok(u) = std::net::UdpSocket::bind(("127.0.0.1", p)) {
            ports.push(p);
            held.push((t, u));
        }
    }
    ports
}

/// A lab file on free ports; returns it with the P-CSCF's port.
fn lab_toml() -> (String, u16) {
    let p = free_ports(16);
    let names = [
        "pcscf",
        "icscf",
        "scscf",
        "hss",
        "admin",
        "oim",
        "tim",
        "oim_msrp",
        "tim_msrp",
        "webrsf",
        "ps",
        "conf",
        "conf_msrp",
        "ipsmgw",
        "smsc",
        "ums",
    ];
    let mut t = String::from("[nodes]\n");
    for (n, port) in names.iter().zip(&p) {
        t.push_str(&format!("{n} = \"127.0.0.1:{port}\"\n"));
    }
    (t, p[0])
}

fn rcslab(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run(args: &[&str]) -> Output {
    tokio::time::timeout(Duration::from_secs(30), rcslab(args).output())
        .await
        .unwrap_or_else(|_| panic!("rcslab {args:?} did not finish"))
        .expect("rcslab runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `rcslab up` in the background; returns once it printed that it is ready.
async fn up(config: &Path, dir: &Path) -> Child {
    let mut child = rcslab(&[
        "up",
        "--config",
        &config.display().to_string(),
        "--data-dir",
        &dir.display().to_string(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("rcslab up starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("rcslab: lab") && l.contains("ready") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready.ok(), Some(true), "rcslab up did not get ready");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_piped_to_head_ends_cleanly_when_head_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (toml, _) = lab_toml();
    let config = tmp.path().join("lab.toml");
    std::fs::write(&config, toml).unwrap();
    let cmd = format!(
        "'{BIN}' up --config '{}' --data-dir '{}' | head -1",
        config.display(),
        tmp.path().join("data").display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("bash")
            .args(["-c", &format!("{cmd}; echo \"status ${{PIPESTATUS[*]}}\"")])
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("`rcslab up | head -1` ends by itself")
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("rcslab: lab 'ims.lab' ready")),
        "{stdout}"
    );
    assert_eq!(lines.next(), Some("status 0 0"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("standard output closed: shutting down"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_data_dir_or_port_gets_an_answer_that_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let (toml, pcscf) = lab_toml();
    let config = tmp.path().join("lab.toml");
    std::fs::write(&config, toml).unwrap();
    let data = tmp.path().join("data");
    let mut lab = up(&config, &data).await;
    let (c, d) = (config.display().to_string(), data.display().to_string());

    let again = run(&["up", "--config", &c, "--data-dir", &d]).await;
    assert_eq!(again.status.code(), Some(1));
    let e = text(&again.stderr);
    assert!(e.contains(&format!("another rcslab is using {d}")), "{e}");
    assert!(!e.contains("Os {"), "{e}");

    let other = tmp.path().join("other");
    let o = other.display().to_string();
    let clash = run(&["up", "--config", &c, "--data-dir", &o]).await;
    assert_eq!(clash.status.code(), Some(1));
    let e = text(&clash.stderr);
    assert!(e.contains("the port is in use"), "{e}");
    assert!(e.contains("[nodes]"), "{e}");
    assert!(e.contains("rcslab up --config lab.toml"), "{e}");

    // A subscriber added from the CLI (through the running lab's admin API) is usable with
    // `ue --password`, on the local port asked for.
    let added = run(&[
        "subscriber",
        "add",
        "sip:u9@ims.lab",
        "--password",
        "pw9",
        "--data-dir",
        &d,
    ])
    .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    let lab_addr = format!("127.0.0.1:{pcscf}");
    let local = free_ports(1)[0];
    let mut listen = rcslab(&[
        "ue",
        "--user",
        "u9",
        "--password",
        "pw9",
        "--lab",
        &lab_addr,
        "--local-port",
        &local.to_string(),
        "listen",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
    let registered = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(l)) = err.next_line().await {
            if l.contains("sip:u9@ims.lab registered, listening") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        registered.ok(),
        Some(true),
        "ue --password did not register"
    );
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", local)).is_err(),
        "the UE does not hold --local-port {local}"
    );
    let sent = run(&[
        "ue",
        "--user",
        "alice",
        "--lab",
        &lab_addr,
        "send",
        "sip:u9@ims.lab",
        "hi u9",
    ])
    .await;
    assert_eq!(
        text(&sent.stdout).trim(),
        "delivered",
        "{}",
        text(&sent.stderr)
    );
    let mut out = BufReader::new(listen.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("u9 prints the message")
        .unwrap();
    assert_eq!(line.as_deref(), Some("sip:alice@ims.lab: hi u9"));
    let _ = listen.start_kill();

    let wrong = run(&[
        "ue",
        "--user",
        "u9",
        "--password",
        "nope",
        "--lab",
        &lab_addr,
        "send",
        "alice",
        "x",
    ])
    .await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains("403"),
        "{}",
        text(&wrong.stderr)
    );
    let unknown = run(&[
        "ue", "--user", "nobody", "--lab", &lab_addr, "send", "alice", "x",
    ])
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("give --password"),
        "{}",
        text(&unknown.stderr)
    );
    let _ = lab.start_kill();
    let _ = lab.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_leave_a_missing_data_dir_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let m = missing.display().to_string();
    for args in [
        vec!["subscriber", "list", "--data-dir", &m],
        vec!["subscriber", "show", "alice", "--data-dir", &m],
        vec!["subscriber", "ifc", "alice", "--data-dir", &m],
        vec!["subscriber", "remove", "alice", "--data-dir", &m],
        vec!["trace", "export", "--data-dir", &m],
    ] {
        let out = run(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!text(&out.stderr).contains("panicked"), "{args:?}");
        assert!(!missing.exists(), "{args:?} created {m}");
    }
    let out = run(&["subscriber", "list", "--data-dir", &m]).await;
    assert!(
        text(&out.stderr).contains("no lab data in"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readmes_sipp_users_file_imports_and_show_prints_toml_that_set_takes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data").display().to_string();
    let users = tmp.path().join("users.csv");
    // What README's sipp recipe writes.
    std::fs::write(
        &users,
        "SEQUENTIAL\nalice;ims.lab;[authentication username=alice@ims.lab password=alice-secret]\nu5;ims.lab;[authentication username=u5@ims.lab password=pw5]\n",
    )
    .unwrap();
    let out = run(&[
        "subscriber",
        "import",
        &users.display().to_string(),
        "--data-dir",
        &d,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "added 2 subscribers");

    let bad = tmp.path().join("bad.csv");
    std::fs::write(
        &bad,
        "SEQUENTIAL\nu6;ims.lab;[authentication username=u6@ims.lab pw=x]\n",
    )
    .unwrap();
    let out = run(&[
        "subscriber",
        "import",
        &bad.display().to_string(),
        "--data-dir",
        &d,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2: "),
        "{}",
        text(&out.stderr)
    );

    let show = run(&["subscriber", "show", "sip:u5@ims.lab", "--data-dir", &d]).await;
    let shown = text(&show.stdout);
    assert!(shown.contains("impi = \"u5@ims.lab\""), "{shown}");
    assert!(shown.contains("[[ifc]]"), "{shown}");
    assert!(!shown.contains("pw5") && !shown.contains('{'), "{shown}");
    let file = tmp.path().join("u5.toml");
    std::fs::write(&file, &shown).unwrap();
    let n_ifc = shown.matches("[[ifc]]").count();
    let set = run(&[
        "subscriber",
        "ifc",
        "u5@ims.lab",
        "--set",
        &file.display().to_string(),
        "--data-dir",
        &d,
    ])
    .await;
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert_eq!(text(&set.stdout).trim(), format!("u5@ims.lab: {n_ifc} iFC"));
    let ifc = run(&["subscriber", "ifc", "u5@ims.lab", "--data-dir", &d]).await;
    assert_eq!(
        text(&ifc.stdout).matches("[[ifc]]").count(),
        n_ifc,
        "{}",
        text(&ifc.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_key_or_section_stops_up_with_the_nearest_valid_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    for (toml, want) in [
        (
            "[nodes]\npcsf = \"127.0.0.1:5999\"\n",
            "did you mean `pcscf`",
        ),
        (
            "[webrfs]\ntoken_lifetime_secs = 60\n",
            "did you mean `webrsf`",
        ),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, toml).unwrap();
        let out = run(&[
            "up",
            "--config",
            &file.display().to_string(),
            "--data-dir",
            &d.display().to_string(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{toml}");
        let e = text(&out.stderr);
        assert!(e.contains(want), "{toml}: {e}");
        assert!(!d.exists(), "a refused lab file left a data dir behind");
    }
}
