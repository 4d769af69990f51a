//! Foreign CSCFs on the lab's HSS (TS 29.228 §6.1, §6.5; README "Kamailio I-CSCF/S-CSCF on
//! the rcslab HSS").
//!
//! - A raw Diameter client presents the *same* Origin-Host as the lab's S-CSCF
//!   (`scscf.ims.lab`), assigns itself a user by SAR with its own Server-Name; from then on
//!   UAR/LIR name it and the PPR for its user reaches it over its own connection, while the
//!   lab's S-CSCF keeps getting the pushes for the users it serves.
//! - Kamailio 5.6's IMS I-CSCF and S-CSCF (labs/interop/, run here in the foreground on fixed
//!   ports of 127.0.0.2-5, killed with their process group when the test ends or fails) with
//!   sipp as the UE: digest registration, re-registration, de-registration, PPR and RTR, with
//!   the exact Cx sequence the HSS sees. Installed by `scripts/install-peers.sh`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use rcslab::diameter::codec::{Avp, Message, AVP_RESULT_CODE};
use rcslab::diameter::cx::{self, CxResult};
use rcslab::diameter::peer::{BoxFuture, DiameterHandler, LocalPeer, Peer, PeerInfo};
use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{eventually, flow, lab_with, ue};

/// A foreign S-CSCF's Cx side: answers every HSS request 2001 and remembers it.
#[derive(Clone, Default)]
struct ForeignScscf(Arc<Mutex<Vec<Message>>>);

impl DiameterHandler for ForeignScscf {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        self.0.lock().unwrap().push(request.clone());
        Box::pin(async move {
            let mut a = Message::answer_to(&request);
            a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
            a
        })
    }
}

const FOREIGN_NAME: &str = "sip:127.0.0.9:46099";

fn sar(user: &str, t: cx::ServerAssignmentType) -> Message {
    cx::ServerAssignmentRequest {
        session_id: format!("scscf.ims.lab;foreign;{user};{t:?}"),
        origin_host: "scscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        public_identities: vec![format!("sip:{user}@ims.lab")],
        user_name: Some(format!("{user}@ims.lab")),
        server_name: FOREIGN_NAME.into(),
        assignment_type: t,
        user_data_already_available: cx::UserDataAlreadyAvailable::UserDataNotAvailable,
    }
    .to_message()
}

fn uar(user: &str) -> Message {
    cx::UserAuthorizationRequest {
        session_id: format!("icscf;foreign;{user}"),
        origin_host: "icscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        user_name: format!("{user}@ims.lab"),
        public_identity: format!("sip:{user}@ims.lab"),
        visited_network_identifier: b"ims.lab".to_vec(),
        authorization_type: None,
    }
    .to_message()
}

async fn set_ifc_empty(lab: &rcslab::Lab, user: &str) {
    let sub = lab
        .store
        .find(&format!("sip:{user}@ims.lab"))
        .unwrap()
        .unwrap();
    let body = serde_json::json!({
        "impu": sub.impus, "password": sub.password, "k": sub.aka.k, "opc": sub.aka.opc,
        "amf": sub.aka.amf, "sqn": sub.aka.sqn, "ifc": []
    });
    let (status, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
}

#[tokio::test]
async fn a_foreign_scscf_with_our_origin_host_gets_its_users_pushes_and_ours_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    // alice registers through the lab: the lab's S-CSCF serves her.
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();

    // A foreign S-CSCF with the lab S-CSCF's Origin-Host connects and takes bob.
    let foreign = ForeignScscf::default();
    let conn = Peer::connect(
        lab.addrs.hss,
        LocalPeer {
            origin_host: "scscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            product_name: "foreign S-CSCF".into(),
            watchdog_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(foreign.clone()),
        lab.trace.clone(),
    )
    .await
    .unwrap();
    lab.name_addr(conn.local_addr(), "foreign S-CSCF");
    // A first registration with no S-CSCF assigned: 2001 and the lab's S-CSCF by default.
    let uaa = cx::UserAuthorizationAnswer::from_message(&conn.request(uar("bob")).await.unwrap())
        .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION)
    );
    let saa = cx::ServerAssignmentAnswer::from_message(
        &conn
            .request(sar("bob", cx::ServerAssignmentType::Registration))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(saa.result, CxResult::Base(2001));
    assert!(saa.user_data.unwrap().contains("sip:bob@ims.lab"));
    // §6.1.1.1: now assigned, UAR answers 2002 with the Server-Name of bob's SAR; §6.1.4.1:
    // LIR names it too; and it is kept in sled.
    let uaa = cx::UserAuthorizationAnswer::from_message(&conn.request(uar("bob")).await.unwrap())
        .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION)
    );
    assert_eq!(uaa.server_name.as_deref(), Some(FOREIGN_NAME));
    let lir = cx::LocationInfoRequest {
        session_id: "icscf;foreign;lir".into(),
        origin_host: "icscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        originating_request: false,
        public_identity: "sip:bob@ims.lab".into(),
        authorization_type: None,
    };
    let lia = cx::LocationInfoAnswer::from_message(&conn.request(lir.to_message()).await.unwrap())
        .unwrap();
    assert_eq!(lia.result, CxResult::Base(2001));
    assert_eq!(lia.server_name.as_deref(), Some(FOREIGN_NAME));
    let bob_impi = lab.store.find("sip:bob@ims.lab").unwrap().unwrap().impi;
    assert_eq!(
        lab.store.hss_state(&bob_impi).unwrap().scscf.as_deref(),
        Some(FOREIGN_NAME)
    );

    // bob's profile changes: the PPR goes to the foreign S-CSCF's connection only.
    lab.trace.clear();
    set_ifc_empty(&lab, "bob").await;
    let cx_lines = |lab: &rcslab::Lab| -> Vec<String> {
        flow(lab)
            .into_iter()
            .filter(|l| l.contains("Diameter"))
            .collect()
    };
    assert_eq!(
        cx_lines(&lab),
        [
            "HSS -> foreign S-CSCF Diameter PPR",
            "foreign S-CSCF -> HSS Diameter PPA"
        ]
    );
    {
        let got = foreign.0.lock().unwrap();
        assert_eq!(got.len(), 1, "one PPR at the foreign S-CSCF");
        assert_eq!(got[0].command_code, cx::CMD_PUSH_PROFILE);
        let ppr = cx::PushProfileRequest::from_message(&got[0]).unwrap();
        assert_eq!(ppr.user_name, bob_impi);
    }

    // alice's profile changes: the lab's S-CSCF gets that PPR, the foreign one nothing new.
    lab.trace.clear();
    set_ifc_empty(&lab, "alice").await;
    assert_eq!(
        cx_lines(&lab),
        ["HSS -> S-CSCF Diameter PPR", "S-CSCF -> HSS Diameter PPA"]
    );
    assert_eq!(foreign.0.lock().unwrap().len(), 1);
    let after = lab.scscf.registration("sip:alice@ims.lab").unwrap();
    assert!(after.profile.unwrap().service_profiles[0].ifcs.is_empty());

    // The foreign S-CSCF goes away: a change for bob still applies in the HSS, and nothing
    // is pushed to the lab's S-CSCF in its place.
    conn.disconnect().await;
    eventually("the HSS to see the foreign S-CSCF gone", || !conn.is_open()).await;
    lab.trace.clear();
    let sub = lab.store.find("sip:bob@ims.lab").unwrap().unwrap();
    let body = serde_json::json!({
        "impu": sub.impus, "password": sub.password, "k": sub.aka.k, "opc": sub.aka.opc,
        "amf": sub.aka.amf, "sqn": sub.aka.sqn,
        "ifc": [{ "priority": 1, "server_name": "sip:tim.ims.lab", "spt": [{ "group": 0, "method": "MESSAGE" }] }]
    });
    let (status, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        lab.store
            .find("sip:bob@ims.lab")
            .unwrap()
            .unwrap()
            .ifcs
            .len(),
        1
    );
    assert_eq!(cx_lines(&lab), Vec::<String>::new(), "no PPR to anybody");
    lab.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Kamailio 5.6 IMS I-CSCF + S-CSCF (labs/interop/) on the lab's HSS, sipp as the UE.
// ---------------------------------------------------------------------------------------------

/// Fixed, unusual addresses (other tests use ephemeral ports on 127.0.0.1).
/// Each test has its own pair: (I-CSCF, S-CSCF).
const PAIR_CAPABILITIES: [(&str, u16); 2] = [("127.0.0.2", 47060), ("127.0.0.3", 47080)];
const PAIR_SERVER_NAME: [(&str, u16); 2] = [("127.0.0.4", 47160), ("127.0.0.5", 47180)];
const KAMAILIO: &str = "/usr/sbin/kamailio";
const CX_XSD: &str = "/usr/share/doc/kamailio/examples/ims/scscf/CxDataType_Rel7.xsd";
const IMS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/ims_icscf.so";

/// One Kamailio in the foreground (`-DD -E`) in its own process group; the group is
/// terminated when this is dropped, also when the test fails.
struct Kamailio {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Kamailio {
    fn start(cfg: &std::path::Path, defines: &[String], dir: &std::path::Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = tokio::process::Command::new(KAMAILIO);
        cmd.arg("-f")
            .arg(cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8"]);
        let run = dir.join(format!("{name}.run"));
        std::fs::create_dir_all(&run).unwrap();
        cmd.arg("-Y").arg(run);
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
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

fn kamailio_installed() -> bool {
    std::path::Path::new(KAMAILIO).exists() && std::path::Path::new(IMS_MODULE).exists()
}

/// The cdp config of `node` from labs/interop with the HSS's port.
fn cdp_xml(node: &str, hss_port: u16, dir: &std::path::Path) -> std::path::PathBuf {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("labs/interop/{node}.xml"));
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace("port=\"3868\"", &format!("port=\"{hss_port}\""));
    let p = dir.join(format!("{node}.xml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The HSS-side Diameter ladder lines with the Kamailio nodes (no watchdogs).
fn kamailio_cx(lab: &rcslab::Lab) -> Vec<String> {
    lab.ladder()
        .into_iter()
        .filter(|l| {
            l.protocol == "Diameter"
                // RFC 6733 §5.5 watchdogs come on their own timer.
                && !matches!(l.summary.as_str(), "DWR" | "DWA")
        })
        .filter(|l| l.from.starts_with("Kamailio") || l.to.starts_with("Kamailio"))
        .map(|l| format!("{} -> {} {}", l.from, l.to, l.summary))
        .collect()
}

/// Names the Kamailio Diameter connections in the ladder from their CERs (Product-Name
/// CDiameterPeer, Origin-Host icscf/scscf.ims.lab) once both are up.
async fn name_kamailio_peers(lab: &rcslab::Lab, k: &[&Kamailio]) {
    for _ in 0..300 {
        let mut found = 0;
        for e in lab.trace.events() {
            if e.summary != "CER" || e.direction != rcslab::trace::Direction::Received {
                continue;
            }
            let Ok(m) = Message::decode(&e.bytes) else {
                continue;
            };
            let product = m
                .avp(rcslab::diameter::codec::AVP_PRODUCT_NAME, None)
                .and_then(|a| a.as_str().ok().map(str::to_string))
                .unwrap_or_default();
            if product != "CDiameterPeer" {
                continue;
            }
            match m.origin_host() {
                Some("icscf.ims.lab") => lab.name_addr(e.remote, "Kamailio I-CSCF"),
                Some("scscf.ims.lab") => lab.name_addr(e.remote, "Kamailio S-CSCF"),
                _ => continue,
            }
            found += 1;
        }
        if found >= 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs: Vec<String> = k.iter().map(|k| k.log()).collect();
    panic!(
        "Kamailio did not connect to the HSS within 30 s:\n{}",
        logs.join("\n-----\n")
    );
}

async fn sipp_register(
    k: &KamailioPair,
    dir: &std::path::Path,
    scenario: &std::path::Path,
    user: &str,
    pw: &str,
) -> (Option<i32>, String) {
    let csv = dir.join(format!("{user}.csv"));
    std::fs::write(
        &csv,
        format!(
            "SEQUENTIAL\n{user};ims.lab;[authentication username={user}@ims.lab password={pw}]\n"
        ),
    )
    .unwrap();
    let run = tokio::process::Command::new("sipp")
        .arg(&k.icscf_addr)
        .args(["-sf", scenario.to_str().unwrap()])
        .args(["-inf", csv.to_str().unwrap()])
        // Each pair's UE has its own fixed address: with `-p 0` sipp takes 5060 or the next
        // free port, so two tests' runs could swap ports, and Kamailio's S-CSCF would be asked
        // to de-register a contact it never had (500 "SAR failed").
        .args(["-i", &k.ue.0, "-p", &k.ue.1.to_string(), "-m", "1"])
        // No UDP retransmissions: on a loaded machine a retransmitted REGISTER would be a
        // second UAR at Kamailio's I-CSCF and the Cx flow checked below would not be one
        // registration's. Loopback loses nothing; the -timeout bounds the wait.
        .arg("-nr")
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
    if out.status.code() != Some(0) {
        // The whole screen on stderr; the returned summary is what went wrong, in short.
        eprintln!("{screen}");
        let events = screen
            .split("The following events occurred:")
            .nth(1)
            .unwrap_or(&screen);
        screen = events.lines().take(6).collect::<Vec<_>>().join("\n");
    }
    (out.status.code(), screen)
}

/// A Kamailio I-CSCF and S-CSCF (labs/interop/) connected to `lab`'s HSS, their Diameter
/// connections named in the ladder.
struct KamailioPair {
    icscf: Kamailio,
    scscf: Kamailio,
    /// Where UEs send REGISTER.
    icscf_addr: String,
    /// The S-CSCF's SIP URI (its Server-Name in SAR).
    scscf_uri: String,
    /// The sipp UE's local address: the I-CSCF's IP, its port + 1000.
    ue: (String, u16),
}

impl KamailioPair {
    /// None when Kamailio is not installed (then the test says it skipped).
    async fn start(
        lab: &rcslab::Lab,
        kdir: &std::path::Path,
        [(icscf_ip, icscf_port), (scscf_ip, scscf_port)]: [(&str, u16); 2],
    ) -> Option<KamailioPair> {
        if !kamailio_installed() {
            // scripts/install-peers.sh installs them (CI runs it through scripts/test.sh);
            // only a machine where the packages cannot be installed skips, and says so.
            eprintln!(
                "SKIPPED: {KAMAILIO} or kamailio-ims-modules not installed: run scripts/install-peers.sh"
            );
            return None;
        }
        assert!(
            std::process::Command::new("sipp")
                .arg("-v")
                .output()
                .is_ok(),
            "sipp is not installed: run scripts/install-peers.sh (scripts/test.sh does)"
        );
        let interop = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/interop");
        let db = kdir.join("icscf_db");
        std::fs::create_dir_all(&db).unwrap();
        for t in ["nds_trusted_domains", "s_cscf_capabilities", "version"] {
            std::fs::copy(interop.join("icscf_db").join(t), db.join(t)).unwrap();
        }
        std::fs::write(
            db.join("s_cscf"),
            format!(
                "id(int,auto) name(string) s_cscf_uri(string)\n1:kamailio-scscf:sip\\:{scscf_ip}\\:{scscf_port}\n"
            ),
        )
        .unwrap();
        let hss_port = lab.addrs.hss.port();
        let icscf = Kamailio::start(
            &interop.join("icscf.cfg"),
            &[
                format!("ICSCF_IP={icscf_ip}"),
                format!("ICSCF_PORT={icscf_port}"),
                format!("CDP_XML=\"{}\"", cdp_xml("icscf", hss_port, kdir).display()),
                format!("ICSCF_DB=\"text://{}\"", db.display()),
                format!("CTL_SOCK=\"unix:{}/icscf.ctl\"", kdir.display()),
            ],
            kdir,
            "icscf",
        );
        let scscf_uri = format!("sip:{scscf_ip}:{scscf_port}");
        let mut defines = vec![
            format!("SCSCF_IP={scscf_ip}"),
            format!("SCSCF_PORT={scscf_port}"),
            format!("SCSCF_URI=\"{scscf_uri}\""),
            format!("CDP_XML=\"{}\"", cdp_xml("scscf", hss_port, kdir).display()),
            format!("CTL_SOCK=\"unix:{}/scscf.ctl\"", kdir.display()),
        ];
        // Kamailio's S-CSCF checks the SAA's User-Data against the TS 29.228 schema its
        // package ships in /usr/share/doc (which slim images may leave out).
        if !std::path::Path::new(CX_XSD).exists() {
            eprintln!(
                "NOTE: {CX_XSD} missing: Kamailio's S-CSCF runs without the User-Data XSD check"
            );
            defines.push("NO_XSD".into());
        }
        let scscf = Kamailio::start(&interop.join("scscf.cfg"), &defines, kdir, "scscf");
        name_kamailio_peers(lab, &[&icscf, &scscf]).await;
        Some(KamailioPair {
            icscf,
            scscf,
            icscf_addr: format!("{icscf_ip}:{icscf_port}"),
            scscf_uri,
            ue: (icscf_ip.to_string(), icscf_port + 1000),
        })
    }

    /// Prints the last lines of both logs on stderr (the test's captured output) and returns
    /// a one-line pointer to them: the assertion's own message stays at the end of a failure
    /// output, which is what CI's cut of a long output keeps.
    fn logs(&self) -> String {
        let tail = |log: String| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        eprintln!(
            "--- Kamailio I-CSCF log (last 40 lines):\n{}\n--- Kamailio S-CSCF log (last 40 lines):\n{}",
            tail(self.icscf.log()),
            tail(self.scscf.log())
        );
        "(Kamailio's logs are printed above)".to_string()
    }
}

/// The answers the HSS sent to `to` with this command code, decoded.
fn answers_to(lab: &rcslab::Lab, to: &str, command: &str) -> Vec<Message> {
    lab.trace
        .events()
        .into_iter()
        .filter(|e| e.direction == rcslab::trace::Direction::Sent && e.summary == command)
        .filter(|e| lab.name_of(e.remote) == to)
        .filter_map(|e| Message::decode(&e.bytes).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_icscf_and_scscf_register_a_sipp_user_on_our_hss_and_get_its_pushes() {
    let dir = tempfile::tempdir().unwrap();
    // TS 29.229 §6.1.2: for a first registration the HSS answers Server-Capabilities and each
    // I-CSCF picks from its own S-CSCF list (Kamailio's from its icscf_db table, ours its own
    // S-CSCF). Kamailio's cdp drops a UAA whose Server-Capabilities is empty, hence one
    // optional capability, which Kamailio's S-CSCF is listed with.
    let lab = lab_with(
        dir.path(),
        "[hss]\nserver_capabilities = { mandatory = [], optional = [1] }\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let Some(k) = KamailioPair::start(&lab, dir.path(), PAIR_CAPABILITIES).await else {
        return;
    };
    let (kdir, k_scscf, logs) = (dir.path(), k.scscf_uri.clone(), || k.logs());
    // RFC 6733 §5.3: both Kamailio nodes exchanged capabilities with the HSS, each on its own
    // connection although they present the same Origin-Hosts as the lab's own CSCFs.
    let cx = kamailio_cx(&lab);
    for l in [
        "Kamailio I-CSCF -> HSS CER",
        "HSS -> Kamailio I-CSCF CEA",
        "Kamailio S-CSCF -> HSS CER",
        "HSS -> Kamailio S-CSCF CEA",
    ] {
        assert!(cx.iter().any(|x| x == l), "{l} missing in {cx:?}");
    }
    for to in ["Kamailio I-CSCF", "Kamailio S-CSCF"] {
        let cea = answers_to(&lab, to, "CEA");
        assert_eq!(cea[0].result_code(), Some(2001), "CEA to {to}");
    }

    // bob registers through the lab's own chain: our S-CSCF serves him.
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();

    // TS 29.228 §6.1.1 / §6.3 / §6.1.2 as Kamailio runs them for one digest REGISTER
    // (401 then 200): UAR/MAA for the challenge, UAR/SAR for the authenticated one.
    let reg_flow = [
        "Kamailio I-CSCF -> HSS UAR",
        "HSS -> Kamailio I-CSCF UAA",
        "Kamailio S-CSCF -> HSS MAR",
        "HSS -> Kamailio S-CSCF MAA",
        "Kamailio I-CSCF -> HSS UAR",
        "HSS -> Kamailio I-CSCF UAA",
        "Kamailio S-CSCF -> HSS SAR",
        "HSS -> Kamailio S-CSCF SAA",
    ];
    let reg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/register_digest.xml");
    let alice_impi = lab.store.find("sip:alice@ims.lab").unwrap().unwrap().impi;

    // 1. alice's first registration through Kamailio.
    lab.trace.clear();
    let (code, screen) = sipp_register(&k, kdir, &reg, "alice", "alice-secret").await;
    assert_eq!(
        code,
        Some(0),
        "first registration through Kamailio:\n{screen}\n{}",
        logs()
    );
    assert_eq!(kamailio_cx(&lab), reg_flow, "{}", logs());
    let uaa =
        cx::UserAuthorizationAnswer::from_message(&answers_to(&lab, "Kamailio I-CSCF", "UAA")[0])
            .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION)
    );
    assert_eq!(uaa.server_capabilities.map(|c| c.optional), Some(vec![1]));
    assert_eq!(
        lab.store.hss_state(&alice_impi).unwrap().scscf.as_deref(),
        Some(k_scscf.as_str()),
        "the HSS keeps the Server-Name of Kamailio's SAR"
    );

    // 2. Re-registration: UAA 2002 names the S-CSCF from that SAR.
    lab.trace.clear();
    let (code, screen) = sipp_register(&k, kdir, &reg, "alice", "alice-secret").await;
    assert_eq!(
        code,
        Some(0),
        "re-registration through Kamailio:\n{screen}\n{}",
        logs()
    );
    assert_eq!(kamailio_cx(&lab), reg_flow, "{}", logs());
    let uaa =
        cx::UserAuthorizationAnswer::from_message(&answers_to(&lab, "Kamailio I-CSCF", "UAA")[0])
            .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION)
    );
    assert_eq!(uaa.server_name.as_deref(), Some(k_scscf.as_str()));

    // 3. alice's iFC change: PPR (TS 29.228 §6.5.2) over Kamailio's S-CSCF connection, not
    // to ours with the same Origin-Host. Kamailio 5.6 has no PPR handler: it logs the
    // request and never answers, so the HSS gives up after its request timeout.
    lab.trace.clear();
    set_ifc_empty(&lab, "alice").await;
    assert_eq!(
        kamailio_cx(&lab),
        ["HSS -> Kamailio S-CSCF PPR"],
        "{}",
        logs()
    );
    let ours: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains("Diameter"))
        .collect();
    assert_eq!(
        ours,
        ["HSS -> Kamailio S-CSCF Diameter PPR"],
        "nothing for alice to our S-CSCF"
    );
    eventually("Kamailio's S-CSCF to log the PPR", || {
        k.scscf
            .log()
            .contains("Received unknown request for Cx/Dx command 305")
    })
    .await;
    // bob's iFC change: his PPR goes to our S-CSCF, which answers.
    lab.trace.clear();
    set_ifc_empty(&lab, "bob").await;
    let ours: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains("Diameter"))
        .collect();
    assert_eq!(
        ours,
        ["HSS -> S-CSCF Diameter PPR", "S-CSCF -> HSS Diameter PPA"]
    );

    // 4. De-registration through Kamailio (Expires: 0): SAR USER_DEREGISTRATION.
    let dereg = kdir.join("deregister_digest.xml");
    std::fs::write(
        &dereg,
        std::fs::read_to_string(&reg)
            .unwrap()
            .replace("Expires: 600", "Expires: 0"),
    )
    .unwrap();
    lab.trace.clear();
    let (code, screen) = sipp_register(&k, kdir, &dereg, "alice", "alice-secret").await;
    assert_eq!(
        code,
        Some(0),
        "de-registration through Kamailio:\n{screen}\n{}",
        logs()
    );
    assert_eq!(kamailio_cx(&lab), reg_flow, "{}", logs());
    let sar = lab
        .trace
        .events()
        .into_iter()
        .find(|e| e.summary == "SAR")
        .and_then(|e| Message::decode(&e.bytes).ok())
        .and_then(|m| cx::ServerAssignmentRequest::from_message(&m).ok())
        .unwrap();
    assert_eq!(
        sar.assignment_type,
        cx::ServerAssignmentType::UserDeregistration
    );
    assert_eq!(lab.store.hss_state(&alice_impi).unwrap().scscf, None);

    // 5. Registered again, then her password changes: RTR (TS 29.228 §6.5.1) to Kamailio's
    // S-CSCF, whose RTA comes back on the same connection.
    let (code, screen) = sipp_register(&k, kdir, &reg, "alice", "alice-secret").await;
    assert_eq!(code, Some(0), "registration again:\n{screen}\n{}", logs());
    lab.trace.clear();
    let sub = lab.store.find("sip:alice@ims.lab").unwrap().unwrap();
    let body = serde_json::json!({ "impu": sub.impus, "password": "changed", "k": sub.aka.k, "opc": sub.aka.opc });
    let (status, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        kamailio_cx(&lab),
        ["HSS -> Kamailio S-CSCF RTR", "Kamailio S-CSCF -> HSS RTA"],
        "{}",
        logs()
    );
    let rta = lab
        .trace
        .events()
        .into_iter()
        .find(|e| e.summary == "RTA")
        .and_then(|e| Message::decode(&e.bytes).ok())
        .unwrap();
    assert_eq!(rta.result_code(), Some(2001), "{}", logs());
    eventually("Kamailio's S-CSCF to log the RTR", || {
        k.scscf.log().contains("Received an IMS_RTR")
    })
    .await;
    lab.shutdown().await;
    drop(k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_icscf_follows_the_server_name_the_hss_is_configured_with() {
    let dir = tempfile::tempdir().unwrap();
    let [_, (scscf_ip, scscf_port)] = PAIR_SERVER_NAME;
    // TS 29.228 §6.1.1.1: first registrations get `[hss] scscf_name` as Server-Name.
    let lab = lab_with(
        dir.path(),
        &format!("[hss]\nscscf_name = \"sip:{scscf_ip}:{scscf_port}\"\n"),
    )
    .await;
    let Some(k) = KamailioPair::start(&lab, dir.path(), PAIR_SERVER_NAME).await else {
        return;
    };
    let reg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/register_digest.xml");
    let uaa_to_kamailio = |lab: &rcslab::Lab| {
        answers_to(lab, "Kamailio I-CSCF", "UAA")
            .iter()
            .map(|m| cx::UserAuthorizationAnswer::from_message(m).unwrap())
            .map(|a| (a.result, a.server_name, a.server_capabilities))
            .collect::<Vec<_>>()
    };
    let first = CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION);
    let subsequent = CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION);
    let name = Some(k.scscf_uri.clone());

    lab.trace.clear();
    let (code, screen) = sipp_register(&k, dir.path(), &reg, "carol", "carol-secret").await;
    assert_eq!(code, Some(0), "registration:\n{screen}\n{}", k.logs());
    // 401 round: nothing assigned yet; 200 round: still nothing until the SAR that follows.
    assert_eq!(
        uaa_to_kamailio(&lab),
        [(first, name.clone(), None), (first, name.clone(), None)]
    );
    lab.trace.clear();
    let (code, screen) = sipp_register(&k, dir.path(), &reg, "carol", "carol-secret").await;
    assert_eq!(code, Some(0), "re-registration:\n{screen}\n{}", k.logs());
    assert_eq!(
        uaa_to_kamailio(&lab),
        [
            (subsequent, name.clone(), None),
            (subsequent, name.clone(), None)
        ]
    );
    // §6.1.4.1: LIR names the serving S-CSCF.
    let icscf = Peer::connect(
        lab.addrs.hss,
        LocalPeer {
            origin_host: "icscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            product_name: "raw I-CSCF".into(),
            watchdog_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(ForeignScscf::default()),
        lab.trace.clone(),
    )
    .await
    .unwrap();
    let lir = cx::LocationInfoRequest {
        session_id: "icscf;raw;lir".into(),
        origin_host: "icscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        originating_request: false,
        public_identity: "tel:+15550003".into(),
        authorization_type: None,
    };
    let lia = cx::LocationInfoAnswer::from_message(&icscf.request(lir.to_message()).await.unwrap())
        .unwrap();
    assert_eq!((lia.result, lia.server_name), (CxResult::Base(2001), name));
    icscf.disconnect().await;
    lab.shutdown().await;
    drop(k);
}
