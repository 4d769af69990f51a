//! Real attacker tools against the lab's P-CSCF (sipvicious, installed by
//! scripts/install-peers.sh): svwar cannot tell real users from made-up ones, and svcrack with
//! a 500-word list ending with the real password is throttled and does not find it.

use std::time::Duration;

use tokio::process::Command;

use crate::lab_with;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a sipvicious tool for at most `bound`; its stdout and stderr together.
async fn run(tool: &str, args: &[String], bound: Duration) -> String {
    let child = Command::new(tool)
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output();
    match tokio::time::timeout(bound, child).await {
        Ok(Ok(out)) => {
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        }
        Ok(Err(e)) => panic!("{tool} did not run ({e}); scripts/install-peers.sh installs it"),
        // Still going at the bound: killed (kill_on_drop), and it found nothing by then.
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svwar_cannot_tell_real_users_from_made_up_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let words = dir.path().join("users.txt");
    std::fs::write(
        &words,
        "alice\nbob\ncarol\nmallory\ntrudy\nzed\n1000\n2000\n",
    )
    .unwrap();
    let p = lab.addrs.pcscf;
    let common = |force: bool| {
        let mut a = vec![
            "-p".to_string(),
            p.port().to_string(),
            "-P".into(),
            free_udp_port().to_string(),
            "--domain".into(),
            "ims.lab".into(),
            "-d".into(),
            words.display().to_string(),
        ];
        if force {
            a.push("--force".into());
        }
        a.push(p.ip().to_string());
        a
    };
    // svwar's own sanity check gives up: a made-up user is challenged like a real one.
    let out = run("svwar", &common(false), Duration::from_secs(60)).await;
    assert!(
        out.contains("authentication request for an unknown extension"),
        "{out}"
    );
    // Forced, it scans and lists nobody.
    let out = run("svwar", &common(true), Duration::from_secs(60)).await;
    for user in ["alice", "bob", "carol"] {
        assert!(
            !out.contains(&format!("| {user} ")),
            "svwar found {user}:\n{out}"
        );
    }
    assert!(out.contains("found nothing"), "{out}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcrack_is_throttled_and_does_not_find_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let list = dir.path().join("words.txt");
    let mut words: Vec<String> = (0..499).map(|i| format!("guess{i:03}")).collect();
    words.push("alice-secret".into());
    std::fs::write(&list, words.join("\n") + "\n").unwrap();
    let p = lab.addrs.pcscf;
    let args = vec![
        "-p".to_string(),
        p.port().to_string(),
        "-P".into(),
        free_udp_port().to_string(),
        "--domain".into(),
        "ims.lab".into(),
        "-u".into(),
        "alice".into(),
        "-d".into(),
        list.display().to_string(),
        p.ip().to_string(),
    ];
    let out = run("svcrack", &args, Duration::from_secs(20)).await;
    assert!(
        !out.contains("alice-secret"),
        "svcrack found the password:\n{out}"
    );
    // A handful of answers were looked at; everything else got 403 + Retry-After at once.
    let flow = crate::flow(&lab);
    let evaluated = flow
        .iter()
        .filter(|l| l.as_str() == "S-CSCF -> HSS Diameter MAR")
        .count();
    assert!(evaluated <= 8, "{evaluated} challenges in 20 s");
    let blocked = flow
        .iter()
        .filter(|l| l.starts_with("P-CSCF -> ") && l.ends_with("SIP 403"))
        .count();
    assert!(blocked > 0, "{flow:#?}");
    lab.shutdown().await;
}
