//! A Kamailio 5.6 IMS P-CSCF (labs/interop/pcscf.cfg) in front of the lab's I-CSCF and
//! S-CSCF (README "A Kamailio P-CSCF in front of rcslab"), sipp as the UEs.
//!
//! Kamailio runs in the foreground on a fixed address (127.0.0.6:47260, its own range beside
//! tests/e2e/kamailio.rs's 127.0.0.2-5), the sipp UEs on 127.0.0.7:47290-47292; the process
//! group is killed when the test ends or fails, and Kamailio's log is printed with any failed
//! assertion. The lab's recorder sees every leg that touches its nodes: Kamailio's REGISTERs
//! at the I-CSCF, the 401 and 200 back, the MESSAGE legs Kamailio -> S-CSCF -> I-CSCF ->
//! S-CSCF -> Kamailio, and a call's INVITE/ACK/BYE the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{eventually, flow, lab_with};

const KAMAILIO: &str = "/usr/sbin/kamailio";
const PCSCF_MODULE: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/ims_registrar_pcscf.so";
/// Kamailio's P-CSCF (UDP towards the UEs and from the S-CSCF, TCP towards the I-CSCF and
/// S-CSCF, both on this address).
const PCSCF: (&str, u16) = ("127.0.0.6", 47260);
/// The sipp UEs' address and ports (a UE's registration and its later requests share a port).
const UE_IP: &str = "127.0.0.7";
const ALICE_PORT: u16 = 47290;
const BOB_PORT: u16 = 47291;
const CAROL_PORT: u16 = 47292;

/// Kamailio in the foreground (`-DD -E`) in its own process group, terminated on drop.
struct Kamailio {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Kamailio {
    fn start(cfg: &Path, defines: &[String], dir: &Path) -> Self {
        let log = dir.join("pcscf.log");
        let out = std::fs::File::create(&log).unwrap();
        let run = dir.join("pcscf.run");
        std::fs::create_dir_all(&run).unwrap();
        let mut cmd = tokio::process::Command::new(KAMAILIO);
        cmd.arg("-f")
            .arg(cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(run);
        for d in defines {
            cmd.args(["-A", d]);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("kamailio starts");
        Kamailio { child, log }
    }

    fn log(&self) -> String {
        format!(
            "--- Kamailio P-CSCF log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group: Kamailio forks its workers.
            for sig in ["-TERM", "-KILL"] {
                let _ = std::process::Command::new("kill")
                    .args([sig, "--", &format!("-{pid}")])
                    .stderr(std::process::Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Waits until Kamailio answers a SIP request on its UDP socket (any answer: an OPTIONS from
/// an unregistered address gets 403).
async fn wait_until_up(k: &Kamailio, addr: SocketAddr) {
    let sock = tokio::net::UdpSocket::bind((UE_IP, 0)).await.unwrap();
    let me = sock.local_addr().unwrap();
    for i in 0..100 {
        let probe = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@ims.lab>;tag=p{i}\r\nTo: <sip:{addr}>\r\n\
             Call-ID: probe{i}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(probe.as_bytes(), addr).await.unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
        {
            if buf[..n].starts_with(b"SIP/2.0 ") {
                return;
            }
        }
    }
    panic!("Kamailio's P-CSCF did not answer within 20 s\n{}", k.log());
}

/// One sipp run as a UE on `UE_IP:port`: the exit code and its screen and error log.
async fn sipp(
    dir: &Path,
    remote: Option<&str>,
    scenario: &Path,
    port: u16,
    csv: Option<&Path>,
) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new("sipp");
    if let Some(r) = remote {
        cmd.arg(r);
    }
    cmd.args(["-sf", scenario.to_str().unwrap()]);
    if let Some(csv) = csv {
        cmd.args(["-inf", csv.to_str().unwrap()]);
    }
    let run = cmd
        .args(["-i", UE_IP, "-p", &port.to_string(), "-m", "1"])
        .args([
            "-timeout",
            "20s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("sipp finishes in time")
        .expect("sipp runs");
    let mut screen = String::from_utf8_lossy(&out.stdout).to_string();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with("_errors.log") {
            screen.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    (out.status.code(), screen)
}

/// The injection file of `user` (field3: whom to write to).
fn csv(dir: &Path, user: &str, peer: &str) -> PathBuf {
    let f = dir.join(format!("{user}.csv"));
    std::fs::write(
        &f,
        format!(
            "SEQUENTIAL\n{user};ims.lab;[authentication username={user}@ims.lab password={user}-secret];{peer}\n"
        ),
    )
    .unwrap();
    f
}

/// The first recorded message whose summary starts with `summary`, received by a lab node
/// from `peer` (or, when `sent`, sent by one to `peer`), as text.
fn message(lab: &rcslab::Lab, peer: SocketAddr, sent: bool, summary: &str) -> String {
    let dir = if sent {
        rcslab::trace::Direction::Sent
    } else {
        rcslab::trace::Direction::Received
    };
    lab.trace
        .events()
        .into_iter()
        .find(|e| e.direction == dir && e.remote == peer && e.summary.starts_with(summary))
        .map(|e| String::from_utf8_lossy(&e.bytes).to_string())
        .unwrap_or_else(|| panic!("no {summary:?} {} {peer}", if sent { "to" } else { "from" }))
}

/// The value of header `name` in SIP message `text`.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_pcscf_registers_sipp_users_with_digest_and_routes_a_message_between_them() {
    if !(Path::new(KAMAILIO).exists() && Path::new(PCSCF_MODULE).exists()) {
        // scripts/install-peers.sh installs them (CI runs it through scripts/test.sh); only a
        // machine where the packages cannot be installed skips, and says so.
        eprintln!(
            "SKIPPED: {KAMAILIO} or kamailio-ims-modules not installed: run scripts/install-peers.sh"
        );
        return;
    }
    assert!(
        std::process::Command::new("sipp")
            .arg("-v")
            .output()
            .is_ok(),
        "sipp is not installed: run scripts/install-peers.sh (scripts/test.sh does)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let kdir = dir.path();
    // The lab file of the README's set-up (its fixed ports become ephemeral here).
    let lab = lab_with(
        kdir,
        &std::fs::read_to_string(root.join("labs/interop/pcscf-rcslab.toml")).unwrap(),
    )
    .await;
    let pcscf: SocketAddr = format!("{}:{}", PCSCF.0, PCSCF.1).parse().unwrap();
    let k = Kamailio::start(
        &root.join("labs/interop/pcscf.cfg"),
        &[
            format!("PCSCF_IP={}", PCSCF.0),
            format!("PCSCF_PORT={}", PCSCF.1),
            format!("ICSCF_URI=\"sip:{};transport=tcp\"", lab.addrs.icscf),
            format!("CTL_SOCK=\"unix:{}/pcscf.ctl\"", kdir.display()),
        ],
        kdir,
    );
    // UDP and TCP (tcp_reuse_port + force_send_socket) both from its listening address.
    lab.name_addr(pcscf, "Kamailio P-CSCF");
    wait_until_up(&k, pcscf).await;
    let logs = || k.log();
    let reg = root.join("tests/sipp/register_digest.xml");
    let (alice_csv, bob_csv) = (csv(kdir, "alice", "bob"), csv(kdir, "bob", "alice"));
    let remote = pcscf.to_string();

    // 1. bob registers through Kamailio: REGISTER -> 401 -> REGISTER -> 200, every leg at the
    // lab's nodes in order (TS 24.229 §5.2.2, §5.3.1, §5.4.1; TS 29.228 UAR/MAR/SAR).
    let register_ladder = [
        "Kamailio P-CSCF -> I-CSCF SIP REGISTER",
        "I-CSCF -> HSS Diameter UAR",
        "HSS -> I-CSCF Diameter UAA",
        "I-CSCF -> S-CSCF SIP REGISTER",
        "S-CSCF -> HSS Diameter MAR",
        "HSS -> S-CSCF Diameter MAA",
        "S-CSCF -> I-CSCF SIP 401",
        "I-CSCF -> Kamailio P-CSCF SIP 401",
        "Kamailio P-CSCF -> I-CSCF SIP REGISTER",
        "I-CSCF -> HSS Diameter UAR",
        "HSS -> I-CSCF Diameter UAA",
        "I-CSCF -> S-CSCF SIP REGISTER",
        "S-CSCF -> HSS Diameter SAR",
        "HSS -> S-CSCF Diameter SAA",
        "S-CSCF -> I-CSCF SIP 200",
        "I-CSCF -> Kamailio P-CSCF SIP 200",
    ];
    // The default iFC's third-party REGISTERs to T-IM, CONF and the IP-SM-GW follow the 200
    // (in their own time, in any order).
    let tim_ladder = [
        "CONF -> S-CSCF SIP 200",
        "IP-SM-GW -> S-CSCF SIP 200",
        "S-CSCF -> CONF SIP REGISTER",
        "S-CSCF -> IP-SM-GW SIP REGISTER",
        "S-CSCF -> T-IM SIP REGISTER",
        "T-IM -> S-CSCF SIP 200",
    ];
    let split = |lab: &rcslab::Lab| -> (Vec<String>, Vec<String>) {
        let (mut third, rest): (Vec<String>, Vec<String>) = flow(lab)
            .into_iter()
            .partition(|l| l.contains("T-IM") || l.contains("CONF") || l.contains("IP-SM-GW"));
        third.sort();
        (third, rest)
    };
    lab.trace.clear();
    let (code, screen) = sipp(kdir, Some(&remote), &reg, BOB_PORT, Some(&bob_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "bob registers through Kamailio:\n{screen}\n{}",
        logs()
    );
    eventually("T-IM to answer bob's third-party REGISTER", || {
        split(&lab).0 == tim_ladder
    })
    .await;
    assert_eq!(split(&lab).1, register_ladder, "{}", logs());
    // What Kamailio added (RFC 3327 Path to itself, TS 24.229 P-Visited-Network-ID and
    // P-Charging-Vector) and what its pcscf_save kept from the 200 (Service-Route).
    let register = message(&lab, pcscf, false, "REGISTER");
    assert_eq!(
        header(&register, "Path"),
        Some(format!("<sip:term@{pcscf};lr>").as_str()),
        "{register}"
    );
    assert_eq!(header(&register, "P-Visited-Network-ID"), Some("ims.lab"));
    assert!(
        header(&register, "P-Charging-Vector").is_some_and(|v| v.contains("icid-value=")),
        "{register}"
    );
    let ok = message(&lab, pcscf, true, "SIP/2.0 200");
    let service_route = format!("<sip:orig@{};transport=tcp;lr>", lab.addrs.scscf);
    assert_eq!(header(&ok, "Service-Route"), Some(service_route.as_str()));
    assert_eq!(
        lab.scscf.registration("sip:bob@ims.lab").map(|r| r
            .bindings
            .iter()
            .map(|b| b.path.clone())
            .collect::<Vec<_>>()),
        Some(vec![vec![format!("<sip:term@{pcscf};lr>")]]),
        "the S-CSCF keeps bob's Path through Kamailio"
    );

    // 2. alice registers the same way.
    lab.trace.clear();
    let (code, screen) = sipp(kdir, Some(&remote), &reg, ALICE_PORT, Some(&alice_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "alice registers through Kamailio:\n{screen}\n{}",
        logs()
    );
    eventually("T-IM to answer alice's third-party REGISTER", || {
        split(&lab).0 == tim_ladder
    })
    .await;
    assert_eq!(split(&lab).1, register_ladder, "{}", logs());

    // 3. bob's sipp answers on his registered port; alice's MESSAGE goes Kamailio (originating:
    // P-Asserted-Identity, Service-Route) -> S-CSCF -> I-CSCF (LIR) -> S-CSCF -> Kamailio (Path)
    // -> bob's contact, and the 200 comes back the same way.
    let uas = root.join("tests/sipp/uas_message_call.xml");
    let uas_dir = kdir.join("uas");
    std::fs::create_dir_all(&uas_dir).unwrap();
    let bob_uas = tokio::spawn(async move { sipp(&uas_dir, None, &uas, BOB_PORT, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.trace.clear();
    let uac = root.join("tests/sipp/uac_message.xml");
    let (code, screen) = sipp(kdir, Some(&remote), &uac, ALICE_PORT, Some(&alice_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "alice's MESSAGE gets 200:\n{screen}\n{}",
        logs()
    );
    let (code, screen) = bob_uas.await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "bob's sipp got the MESSAGE:\n{screen}\n{}",
        logs()
    );
    assert_eq!(
        flow(&lab),
        [
            "Kamailio P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> Kamailio P-CSCF SIP MESSAGE",
            "Kamailio P-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> I-CSCF SIP 200",
            "I-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> Kamailio P-CSCF SIP 200",
        ],
        "{}",
        logs()
    );
    let orig = message(&lab, pcscf, false, "MESSAGE");
    assert_eq!(
        header(&orig, "Route"),
        Some(service_route.as_str()),
        "{orig}"
    );
    assert_eq!(
        header(&orig, "P-Asserted-Identity"),
        Some("<sip:alice@ims.lab>"),
        "{orig}"
    );
    let term = message(&lab, pcscf, true, "MESSAGE");
    assert!(
        term.starts_with(&format!("MESSAGE sip:bob@{UE_IP}:{BOB_PORT};")),
        "{term}"
    );
    assert_eq!(
        header(&term, "Route"),
        Some(format!("<sip:term@{pcscf};lr>").as_str()),
        "{term}"
    );

    // 4. A call the same way (beyond MESSAGE): INVITE -> 180 -> 200, then ACK and BYE along
    // the route set both P-CSCFs' and the S-CSCF's Record-Routes made (the I-CSCF stays out).
    let uas = root.join("tests/sipp/uas_message_call.xml");
    let uas_dir = kdir.join("uas-call");
    std::fs::create_dir_all(&uas_dir).unwrap();
    let bob_uas = tokio::spawn(async move { sipp(&uas_dir, None, &uas, BOB_PORT, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.trace.clear();
    let uac_call = root.join("tests/sipp/uac_call.xml");
    let (code, screen) = sipp(kdir, Some(&remote), &uac_call, ALICE_PORT, Some(&alice_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "alice's call through Kamailio:\n{screen}\n{}",
        logs()
    );
    let (code, screen) = bob_uas.await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "bob's sipp took the call:\n{screen}\n{}",
        logs()
    );
    let f = flow(&lab);
    for l in [
        "Kamailio P-CSCF -> S-CSCF SIP INVITE",
        "S-CSCF -> I-CSCF SIP INVITE",
        "I-CSCF -> HSS Diameter LIR",
        "I-CSCF -> S-CSCF SIP INVITE",
        "S-CSCF -> Kamailio P-CSCF SIP INVITE",
        "Kamailio P-CSCF -> S-CSCF SIP 180",
        "S-CSCF -> Kamailio P-CSCF SIP 180",
        "Kamailio P-CSCF -> S-CSCF SIP 200",
        "S-CSCF -> Kamailio P-CSCF SIP 200",
        "Kamailio P-CSCF -> S-CSCF SIP ACK",
        "S-CSCF -> Kamailio P-CSCF SIP ACK",
        "Kamailio P-CSCF -> S-CSCF SIP BYE",
        "S-CSCF -> Kamailio P-CSCF SIP BYE",
    ] {
        assert!(
            f.contains(&l.to_string()),
            "missing {l}: {f:#?}\n{}",
            logs()
        );
    }
    assert!(
        !f.iter()
            .any(|l| l.contains("I-CSCF") && (l.contains("ACK") || l.contains("BYE"))),
        "in-dialog requests bypass the I-CSCF: {f:#?}"
    );
    let invite = message(&lab, pcscf, false, "INVITE");
    assert!(
        header(&invite, "Record-Route").is_some_and(|r| r.contains(&pcscf.to_string())),
        "Kamailio record-routes the INVITE: {invite}"
    );

    // 5. carol never registered: Kamailio's registrar refuses her MESSAGE (403) and nothing
    // reaches the lab.
    let refused = kdir.join("uac_message_403.xml");
    std::fs::write(
        &refused,
        std::fs::read_to_string(&uac)
            .unwrap()
            .replace("<recv response=\"200\" />", "<recv response=\"403\" />"),
    )
    .unwrap();
    lab.trace.clear();
    let carol_csv = csv(kdir, "carol", "bob");
    let (code, screen) = sipp(kdir, Some(&remote), &refused, CAROL_PORT, Some(&carol_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "carol's MESSAGE gets 403 from Kamailio:\n{screen}\n{}",
        logs()
    );
    assert_eq!(
        flow(&lab),
        Vec::<String>::new(),
        "nothing for carol reached the lab"
    );
    // Nor can she pass for the core: a request with Kamailio's Path entry as Route from a UE
    // address gets 403 too (only CORE_IP may send terminating requests).
    let spoofed = kdir.join("uac_message_term_403.xml");
    std::fs::write(
        &spoofed,
        std::fs::read_to_string(&refused).unwrap().replace(
            "      Max-Forwards: 70\n",
            &format!("      Max-Forwards: 70\n      Route: <sip:term@{pcscf};lr>\n"),
        ),
    )
    .unwrap();
    let (code, screen) = sipp(kdir, Some(&remote), &spoofed, CAROL_PORT, Some(&carol_csv)).await;
    assert_eq!(
        code,
        Some(0),
        "a UE's request with Route sip:term@ gets 403 from Kamailio:\n{screen}\n{}",
        logs()
    );
    assert_eq!(flow(&lab), Vec::<String>::new(), "nothing reached the lab");
    assert!(
        std::fs::read_to_string(&spoofed)
            .unwrap()
            .contains(&format!("Route: <sip:term@{pcscf};lr>")),
        "the spoofed scenario carries the Route"
    );
    assert!(
        k.log()
            .contains(&format!("P-CSCF: terminating request from {UE_IP} refused")),
        "refused as a terminating request, not as an unregistered UE's:\n{}",
        logs()
    );
    lab.shutdown().await;
    drop(k);
}
