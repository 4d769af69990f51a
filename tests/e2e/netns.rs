//! Issue 15: the lab spread over network namespaces, as a teacher runs it with
//! `scripts/netns-lab.sh up`: each of the seven `rcslab run` processes in its own namespace,
//! the UEs in another, all linked by veth pairs to a bridge in a hub namespace. Two `rcslab ue`
//! clients in the UE namespace register and chat through the lab (alice's `send` prints
//! `delivered`, bob's `listen` prints her message), a web user logs in to WebRSF (which
//! registers through the P-CSCF from its own namespace), and a capture inside a node's
//! namespace holds only what that node sees: the HSS's only Diameter (UAR from the I-CSCF,
//! MAR/SAR from the S-CSCF) and nothing of the UE, the P-CSCF's the UE's SIP and no Diameter or
//! MSRP, the S-CSCF's SIP and Diameter but never a packet of the UE. `down` leaves no
//! namespace behind (also when the test fails: a guard runs it).
//!
//! Needs root and `ip netns` (CI runs as root); skips with a message otherwise. The capture
//! checks need `dumpcap` and `tshark` (skipped with a message without them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_rcslab");
/// The script's default subnet and host numbers.
const PCSCF: &str = "10.47.0.11";
const SCSCF: &str = "10.47.0.13";
const ICSCF: &str = "10.47.0.12";
const UE: &str = "10.47.0.100";
const WEBRSF: &str = "10.47.0.17:8080";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/netns-lab.sh")
}

/// Runs a command to its end (bounded by `timeout`), returning (success, stdout, stderr).
fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (false, String::new(), e.to_string()),
    }
}

fn has(tool: &str) -> bool {
    run(std::process::Command::new("sh").args(["-c", &format!("command -v {tool}")])).0
}

/// Why network namespaces cannot be used here, if they cannot.
fn netns_unavailable() -> Option<String> {
    let (_, uid, _) = run(std::process::Command::new("id").arg("-u"));
    if uid.trim() != "0" {
        return Some(format!("not root (uid {})", uid.trim()));
    }
    if !has("ip") {
        return Some("no `ip` command (iproute2)".into());
    }
    let probe = format!("rcsnt-probe{}", std::process::id());
    let (ok, _, err) = run(std::process::Command::new("ip").args(["netns", "add", &probe]));
    if !ok {
        return Some(format!("`ip netns add` fails: {}", err.trim()));
    }
    let (ok, _, err) = run(std::process::Command::new("ip").args([
        "-n", &probe, "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1",
    ]));
    run(std::process::Command::new("ip").args(["netns", "del", &probe]));
    if !ok {
        return Some(format!("no veth links: {}", err.trim()));
    }
    None
}

/// The script with this run's prefix and directory.
fn netns_lab(prefix: &str, dir: &Path, action: &str) -> (bool, String, String) {
    run(std::process::Command::new("timeout")
        .args(["120", "bash"])
        .arg(script())
        .arg(action)
        .env("RCSLAB", BIN)
        .env("NETNS_PREFIX", prefix)
        .env("NETNS_DIR", dir)
        .env("NETNS_TIMEOUT", "20")
        .env("RUST_LOG", "warn"))
}

fn namespaces_of(prefix: &str) -> Vec<String> {
    let (_, out, _) = run(std::process::Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Namespaces of an earlier run of this test that died before its guard ran (its pid gone).
fn remove_stale_runs() {
    for ns in namespaces_of("rcsnt") {
        if let Some(pid) = ns.strip_prefix("rcsnt-probe") {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                run(std::process::Command::new("ip").args(["netns", "del", &ns]));
            }
            continue;
        }
        let Some(pid) = ns
            .strip_prefix("rcsnt")
            .and_then(|r| r.strip_suffix("-hub"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let dir = tempfile::tempdir().unwrap();
            let (ok, out, err) = netns_lab(&format!("rcsnt{pid}-"), dir.path(), "down");
            eprintln!("netns: removed a stale run's namespaces ({ok}): {out}{err}");
        }
    }
}

/// Takes the lab down when dropped, also when an assertion failed.
struct Guard {
    prefix: String,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (ok, out, err) = netns_lab(&self.prefix, &self.dir, "down");
        if !ok {
            eprintln!("netns: down failed: {out}{err}");
        }
    }
}

/// `ip netns exec NS ARGS...`, stdout and stderr piped.
fn in_ns(ns: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ip netns exec runs")
}

/// Reads lines until one contains `what` (bounded), returning all read.
async fn until<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>, what: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(what) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no line with '{what}' in:\n{seen}");
    seen
}

/// A capture of everything in namespace `ns` (`dumpcap -i any`), once it runs.
struct Capture {
    child: Child,
    file: PathBuf,
}

async fn capture(ns: &str, file: PathBuf) -> Capture {
    let mut child = in_ns(
        ns,
        &["dumpcap", "-i", "any", "-w", &file.display().to_string()],
    );
    let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
    until(&mut err, "Capturing on").await;
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    Capture { child, file }
}

impl Capture {
    /// Stops dumpcap (SIGTERM) and returns its file once written.
    async fn stop(mut self) -> PathBuf {
        let pid = self.child.id().expect("dumpcap runs").to_string();
        run(std::process::Command::new("kill").args(["-TERM", &pid]));
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("dumpcap stops on SIGTERM")
            .expect("wait");
        self.file
    }
}

/// How many packets of `file` match the display filter.
fn count(file: &Path, filter: &str) -> usize {
    let (ok, out, err) = run(std::process::Command::new("timeout").args([
        "60",
        "tshark",
        "-n",
        "-r",
        &file.display().to_string(),
        "-Y",
        filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]));
    assert!(ok, "tshark -Y '{filter}' failed: {err}");
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_in_network_namespaces_registers_routes_and_chats() {
    if let Some(why) = netns_unavailable() {
        eprintln!("SKIPPED netns test: network namespaces are unavailable here: {why}");
        return;
    }
    let captures = has("dumpcap") && has("tshark");
    if !captures {
        eprintln!("netns: no dumpcap/tshark: the per-namespace capture checks are skipped");
    }
    remove_stale_runs();
    let prefix = format!("rcsnt{}-", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let _guard = Guard {
        prefix: prefix.clone(),
        dir: dir.clone(),
    };
    let ns = |n: &str| format!("{prefix}{n}");

    let (ok, out, err) = netns_lab(&prefix, &dir, "up");
    assert!(ok, "netns-lab.sh up failed:\n{out}\n{err}");
    assert!(
        out.contains(&format!("ip netns exec {prefix}scscf tshark")),
        "{out}"
    );
    for n in [
        "hub", "pcscf", "icscf", "scscf", "hss", "oim", "tim", "ps", "webrsf", "ue",
    ] {
        assert!(namespaces_of(&prefix).contains(&ns(n)), "no {n}: {out}");
    }
    let lab = std::fs::read_to_string(dir.join("lab.toml")).unwrap();
    assert!(lab.contains(&format!("pcscf = \"{PCSCF}:5060\"")), "{lab}");
    // Each node process is in its namespace, on its own address only.
    let (_, addrs, _) =
        run(std::process::Command::new("ip").args(["-n", &ns("hss"), "-4", "-o", "addr"]));
    assert!(addrs.contains("10.47.0.14/24"), "{addrs}");
    assert!(!addrs.contains(PCSCF), "{addrs}");
    // `up` again is a no-op.
    let (ok, again, _) = netns_lab(&prefix, &dir, "up");
    assert!(ok && again.contains("already up"), "{again}");

    let (hss_cap, pcscf_cap, scscf_cap) = if captures {
        (
            Some(capture(&ns("hss"), tmp.path().join("hss.pcapng")).await),
            Some(capture(&ns("pcscf"), tmp.path().join("pcscf.pcapng")).await),
            Some(capture(&ns("scscf"), tmp.path().join("scscf.pcapng")).await),
        )
    } else {
        (None, None, None)
    };

    // bob listens, alice sends: both `rcslab ue` in the UE namespace, towards the P-CSCF.
    let lab_arg = format!("{PCSCF}:5060");
    let mut bob = in_ns(
        &ns("ue"),
        &[BIN, "ue", "--lab", &lab_arg, "--user", "bob", "listen"],
    );
    let mut bob_out = BufReader::new(bob.stdout.take().expect("stdout")).lines();
    let mut bob_err = BufReader::new(bob.stderr.take().expect("stderr")).lines();
    let said = until(&mut bob_err, "registered, listening").await;
    assert!(said.contains("sip:bob@ims.lab"), "{said}");
    tokio::spawn(async move { while let Ok(Some(_)) = bob_err.next_line().await {} });

    let text = "Hello across namespaces";
    let sent = tokio::time::timeout(
        Duration::from_secs(40),
        in_ns(
            &ns("ue"),
            &[
                BIN, "ue", "--lab", &lab_arg, "--user", "alice", "send", "bob", text,
            ],
        )
        .wait_with_output(),
    )
    .await
    .expect("ue send finishes")
    .expect("ue send runs");
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.trim() == "delivered",
        "ue send: {}\n{stdout}\n{}",
        sent.status,
        String::from_utf8_lossy(&sent.stderr)
    );
    until(&mut bob_out, &format!("sip:alice@ims.lab: {text}")).await;

    // A web user: WebRSF registers bob through the P-CSCF from its own namespace.
    if has("curl") {
        let (ok, login, err) = run(std::process::Command::new("ip").args([
            "netns",
            "exec",
            &ns("ue"),
            "curl",
            "-s",
            "-m",
            "20",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            "{\"password\":\"bob-secret\"}",
            &format!("http://{WEBRSF}/webrsf/v1/bob/Session"),
        ]));
        assert!(
            ok && login.contains("\"token\""),
            "WebRSF login: {login}{err}"
        );
    } else {
        eprintln!("netns: no curl: the WebRSF login is skipped");
    }

    let (ok, st, _) = netns_lab(&prefix, &dir, "status");
    assert!(ok, "{st}");
    assert_eq!(st.matches("running, pid").count(), 8, "{st}");

    drop(bob);
    if let (Some(h), Some(p), Some(s)) = (hss_cap, pcscf_cap, scscf_cap) {
        // libpcap's TPACKET_V3 ring hands packets to dumpcap a block at a time: when a block
        // is full or its timeout passes. A dumpcap stopped before that loses a partly filled
        // block, which with the HSS's few Diameter packets was all of them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (h, p, s) = (h.stop().await, p.stop().await, s.stop().await);
        let ue = format!("ip.addr == {UE}");
        for (name, f) in [("HSS", &h), ("P-CSCF", &p), ("S-CSCF", &s)] {
            eprintln!(
                "netns: {name}'s namespace captured {} packets: {} SIP, {} Diameter, {} MSRP, {} of the UE",
                count(f, "frame"),
                count(f, "sip"),
                count(f, "diameter"),
                count(f, "msrp"),
                count(f, &ue)
            );
        }
        // The HSS: Diameter Cx only, from both CSCFs; nothing of the UE, no SIP.
        assert!(
            count(&h, "diameter.cmd.code == 300") > 0,
            "no UAR at the HSS"
        );
        assert!(
            count(
                &h,
                &format!("diameter.cmd.code == 300 && ip.src == {ICSCF}")
            ) > 0,
            "the UAR comes from the I-CSCF"
        );
        assert!(
            count(
                &h,
                &format!("diameter.cmd.code == 303 && ip.src == {SCSCF}")
            ) > 0,
            "the MAR comes from the S-CSCF"
        );
        assert!(
            count(&h, "diameter.cmd.code == 301") > 0,
            "no SAR at the HSS"
        );
        assert_eq!(count(&h, "sip"), 0, "SIP in the HSS's namespace");
        assert_eq!(count(&h, &ue), 0, "the UE's packets in the HSS's namespace");
        // The P-CSCF: the UE's SIP (its REGISTERs, the chat's INVITE), no Diameter, no MSRP.
        assert!(
            count(&p, &format!("sip.Method == \"REGISTER\" && ip.src == {UE}")) > 0,
            "no REGISTER from the UE at the P-CSCF"
        );
        assert!(
            count(&p, &format!("sip.Method == \"INVITE\" && ip.src == {UE}")) > 0,
            "no INVITE from the UE at the P-CSCF"
        );
        assert_eq!(count(&p, "diameter"), 0, "Diameter at the P-CSCF");
        assert_eq!(
            count(&p, "msrp"),
            0,
            "MSRP goes UE <-> O-IM/T-IM, not via the P-CSCF"
        );
        // The S-CSCF: SIP and Diameter, but never a packet to or from the UE.
        assert!(count(&s, "sip") > 0, "no SIP at the S-CSCF");
        assert!(count(&s, "diameter") > 0, "no Diameter at the S-CSCF");
        assert_eq!(
            count(&s, &ue),
            0,
            "the UE's packets in the S-CSCF's namespace"
        );
    }

    // A node that died: status says so (exit 1), and up makes the lab whole again.
    let tim_pid = std::fs::read_to_string(dir.join("tim.pid")).unwrap();
    run(std::process::Command::new("kill").args(["-TERM", tim_pid.trim()]));
    let tim_line = |st: &str| {
        st.lines()
            .find(|l| l.starts_with(&format!("{} ", ns("tim"))))
            .unwrap_or("")
            .to_string()
    };
    let mut st = String::new();
    for _ in 0..50 {
        st = netns_lab(&prefix, &dir, "status").1;
        if tim_line(&st).contains("not running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tim_line(&st).ends_with("not running"), "{st}");
    assert_eq!(st.matches("running, pid").count(), 7, "{st}");
    assert!(
        !netns_lab(&prefix, &dir, "status").0,
        "status exits 1 with a node down"
    );
    let (ok, out, err) = netns_lab(&prefix, &dir, "up");
    assert!(ok && !out.contains("already up"), "{out}{err}");
    assert!(netns_lab(&prefix, &dir, "status").0, "whole again");

    // down: no namespace of this run is left; a second down is a no-op.
    let (ok, out, err) = netns_lab(&prefix, &dir, "down");
    assert!(ok, "down: {out}{err}");
    assert!(
        namespaces_of(&prefix).is_empty(),
        "{:?}",
        namespaces_of(&prefix)
    );
    let (ok, out, err) = netns_lab(&prefix, &dir, "down");
    assert!(ok, "second down: {out}{err}");
}
