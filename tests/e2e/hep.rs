//! Live HEPv3 capture (`rcslab up --hep HOST:PORT`): a UDP socket in the test is the collector;
//! a registration and a MESSAGE through a lab that records nothing else (no `--trace`) arrive
//! as HEP3 packets, decoded here by a decoder of the test's own, each with the capturing node's
//! name, the SIP Call-ID as correlation id, and the Cx exchanges with the HSS. tshark decodes
//! the same packets (with `scripts/hep3.lua`: tshark has no HEP dissector of its own).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcslab::trace::{Direction, Protocol, TraceEvent};
use rcslab::ue::AuthMode;
use rcslab::{Lab, LabConfig, LabOptions};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::ue;

/// One HEP3 packet as this test reads it (HEP3 spec: `HEP3`, length, vendor/type/length chunks).
#[derive(Debug, Clone)]
struct Hep {
    ip_proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
    ts: Duration,
    proto_type: u8,
    capture_id: u32,
    correlation_id: Option<String>,
    node: Option<String>,
    payload: Vec<u8>,
}

fn decode(p: &[u8]) -> Hep {
    assert_eq!(&p[..4], b"HEP3", "HEP3 magic");
    assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len(), "length");
    let mut chunks: HashMap<u16, &[u8]> = HashMap::new();
    let mut at = 6;
    while at < p.len() {
        assert_eq!(&p[at..at + 2], &[0, 0], "generic vendor");
        let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
        let len = u16::from_be_bytes([p[at + 4], p[at + 5]]) as usize;
        assert!(len >= 6 && at + len <= p.len(), "chunk length");
        assert!(
            chunks.insert(kind, &p[at + 6..at + len]).is_none(),
            "chunk twice"
        );
        at += len;
    }
    let c = |k: u16| *chunks.get(&k).unwrap_or_else(|| panic!("no chunk {k:#x}"));
    let u32_of = |k: u16| u32::from_be_bytes(c(k).try_into().unwrap());
    let ip = |k: u16| IpAddr::from(<[u8; 4]>::try_from(c(k)).unwrap());
    assert_eq!(c(1), [2], "IPv4 family");
    let port = |k: u16| u16::from_be_bytes(c(k).try_into().unwrap());
    let text = |k: u16| {
        chunks
            .get(&k)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    Hep {
        ip_proto: c(2)[0],
        src: SocketAddr::new(ip(3), port(7)),
        dst: SocketAddr::new(ip(4), port(8)),
        ts: Duration::new(u32_of(9) as u64, u32_of(10) * 1000),
        proto_type: c(11)[0],
        capture_id: u32_of(12),
        correlation_id: text(0x11),
        node: text(0x13),
        payload: c(15).to_vec(),
    }
}

/// What a packet carries, short: `NODE SIP REGISTER -> dst`, `NODE SIP 401 REGISTER -> dst`
/// (a response with its CSeq method), `NODE Diameter 300R -> dst` (R request, A answer).
fn line(h: &Hep, lab: &Lab) -> String {
    let node = h.node.clone().unwrap_or_else(|| "?".into());
    let what = if h.proto_type == 1 {
        let first = String::from_utf8_lossy(&h.payload)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let w = match first.strip_prefix("SIP/2.0 ") {
            Some(rest) => {
                let method = sip_header(&h.payload, "CSeq")
                    .and_then(|c| c.split_whitespace().nth(1))
                    .unwrap_or("");
                format!("{} {method}", rest.split(' ').next().unwrap_or(""))
            }
            None => first.split(' ').next().unwrap_or("").to_string(),
        };
        format!("SIP {w}")
    } else {
        let code = u32::from_be_bytes([0, h.payload[5], h.payload[6], h.payload[7]]);
        let r = if h.payload[4] & 0x80 != 0 { "R" } else { "A" };
        format!("Diameter {code}{r}")
    };
    format!("{node} {what} -> {}", lab.name_of(h.dst))
}

fn sip_header<'a>(payload: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(payload).ok()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hep_collector_gets_every_leg_with_node_names_and_tshark_decodes_them() {
    let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::from_toml_str(
        "default_ifc = []\n[pcscf]\nsubscribe_reg = false\n[ums]\nrcs_user = \"\"\n",
    )
    .unwrap()
    .with_ephemeral_ports();
    let opts = LabOptions {
        trace: false,
        timers: None,
        hep: Some(collector.local_addr().unwrap()),
    };
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let lab = Lab::start(cfg, dir.path(), opts).await.expect("lab starts");
    assert!(!lab.trace.is_enabled(), "HEP works without the ring");
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    bob.register(600).await.expect("bob registers");
    let callee = tokio::spawn(async move {
        if let Some(inc) = bob.next_request(Duration::from_secs(5)).await {
            let mut ok = inc.request.response(200, None);
            let to = ok.headers.get("To").unwrap_or("").to_string();
            ok.headers.set("To", format!("{to};tag=b"));
            inc.tx.respond(ok);
        }
        bob
    });
    // The whole answer on failure: its Warning or Reason says which node refused and why.
    let answer = alice.message("sip:bob@ims.lab", "over HEP").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let _bob = callee.await.unwrap();

    // Collect until the collector has been quiet for a while.
    let mut raw: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok((n, from))) =
        tokio::time::timeout(Duration::from_millis(1000), collector.recv_from(&mut buf)).await
    {
        raw.push((from, buf[..n].to_vec()));
    }
    let t1 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let pkts: Vec<Hep> = raw.iter().map(|(_, p)| decode(p)).collect();
    let lines: Vec<String> = pkts.iter().map(|h| line(h, &lab)).collect();
    let has = |l: &str| lines.iter().filter(|x| x.as_str() == l).count();

    // Registration (TS 24.229 §5.2-5.4): two rounds per user (401, then 200), each leg once,
    // captured by the node that sent it.
    let all = lines.join("\n");
    for (l, n) in [
        ("UE alice SIP REGISTER -> P-CSCF", 2),
        ("P-CSCF SIP REGISTER -> I-CSCF", 4),
        ("I-CSCF SIP REGISTER -> S-CSCF", 4),
        ("S-CSCF SIP 401 REGISTER -> I-CSCF", 2),
        ("I-CSCF SIP 401 REGISTER -> P-CSCF", 2),
        ("P-CSCF SIP 401 REGISTER -> UE alice", 1),
        ("S-CSCF SIP 200 REGISTER -> I-CSCF", 2),
        ("I-CSCF SIP 200 REGISTER -> P-CSCF", 2),
        ("P-CSCF SIP 200 REGISTER -> UE bob", 1),
    ] {
        assert_eq!(has(l), n, "{l}:\n{all}");
    }
    // Cx (TS 29.229) with the HSS, each message once: UAR per REGISTER, MAR before the 401,
    // SAR before the 200.
    for (node, code, n) in [("I-CSCF", 300, 4), ("S-CSCF", 303, 2), ("S-CSCF", 301, 2)] {
        let req = format!("{node} Diameter {code}R -> HSS");
        let ans = format!("HSS Diameter {code}A -> {node}");
        assert_eq!(has(&req), n, "{req}:\n{all}");
        assert_eq!(has(&ans), n, "{ans}:\n{all}");
    }
    // The MESSAGE, routed by LIR (302) at the terminating I-CSCF.
    assert!(has("UE alice SIP MESSAGE -> P-CSCF") == 1, "{lines:#?}");
    assert!(has("S-CSCF SIP MESSAGE -> P-CSCF") == 1, "{lines:#?}");
    assert!(has("I-CSCF Diameter 302R -> HSS") >= 1, "{lines:#?}");

    let mw_tcp = lab.config.lab.mw_transport == "tcp";
    for h in &pkts {
        assert!(h.node.is_some(), "every packet names its node: {h:?}");
        assert_eq!(h.capture_id, rcslab::trace::hep::CAPTURE_ID);
        assert!(h.ts >= t0 && h.ts <= t1, "{h:?}");
        match h.proto_type {
            1 => {
                // The correlation id is the Call-ID.
                let cid = sip_header(&h.payload, "Call-ID");
                assert_eq!(h.correlation_id.as_deref(), cid, "{}", line(h, &lab));
                // UEs use UDP to the P-CSCF, the CSCFs the Mw transport: HEP says which.
                let ue_leg = h.node.as_deref().unwrap().starts_with("UE ")
                    || lab.name_of(h.dst).starts_with("UE ");
                let want = if ue_leg || !mw_tcp { 17 } else { 6 };
                assert_eq!(h.ip_proto, want, "{}", line(h, &lab));
            }
            0x38 => {
                assert_eq!(h.ip_proto, 6);
                assert!(h.src == lab.addrs.hss || h.dst == lab.addrs.hss, "{h:?}");
            }
            t => panic!("unexpected HEP protocol type {t}"),
        }
    }
    // Both REGISTER rounds of alice share her Call-ID on every leg.
    let alice_reg: Vec<&Hep> = pkts
        .iter()
        .filter(|h| h.payload.starts_with(b"REGISTER ") && lab.name_of(h.src) != "UE bob")
        .filter(|h| sip_header(&h.payload, "From").is_some_and(|f| f.contains("alice")))
        .collect();
    assert_eq!(alice_reg.len(), 6, "3 legs x 2 rounds");
    let cids: std::collections::HashSet<_> =
        alice_reg.iter().map(|h| h.correlation_id.clone()).collect();
    assert_eq!(cids.len(), 1, "one Call-ID: {cids:?}");
    // Secrets stay out of the capture as out of the flight recorder (Digest-HA1 in the MAA).
    let ha1 = {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(b"alice@ims.lab:ims.lab:alice-secret"))
    };
    assert!(
        !pkts
            .iter()
            .any(|h| String::from_utf8_lossy(&h.payload).contains(&ha1)),
        "HA1 sent to the collector"
    );
    assert_eq!(lab.trace.hep_dropped(), 0);

    // tshark: the datagrams as UDP to port 9060 in a pcap, HEP decoded by scripts/hep3.lua.
    require("tshark");
    let hep_port: SocketAddr = (Ipv4Addr::LOCALHOST, 9060).into();
    let events: Vec<TraceEvent> = raw
        .iter()
        .map(|(from, p)| TraceEvent {
            at: Duration::ZERO,
            wall: SystemTime::now(),
            direction: Direction::Sent,
            protocol: Protocol::SipUdp,
            local: *from,
            remote: hep_port,
            summary: String::new(),
            bytes: p.clone(),
        })
        .collect();
    let pcap = dir.path().join("hep.pcap");
    std::fs::write(&pcap, rcslab::trace_view::export::pcap(&events)).unwrap();
    let lua = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hep3.lua");
    let tshark = |extra: &[&str]| {
        let out = std::process::Command::new("tshark")
            .arg("-X")
            .arg(format!("lua_script:{}", lua.display()))
            .arg("-r")
            .arg(&pcap)
            .args(["-d", "udp.port==9060,hep"])
            .args(extra)
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let fields = tshark(&[
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "hep.node_name",
        "-e",
        "sip.Method",
        "-e",
        "sip.Status-Code",
        "-e",
        "diameter.cmd.code",
        "-e",
        "hep.correlation_id",
    ]);
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), pkts.len(), "one row per datagram:\n{fields}");
    let count = |node: &str, col: usize, v: &str| {
        rows.iter()
            .filter(|r| r.len() == 5 && r[0] == node && r[col] == v)
            .count()
    };
    assert_eq!(count("P-CSCF", 1, "REGISTER"), 4, "{fields}");
    assert_eq!(count("I-CSCF", 1, "REGISTER"), 4, "{fields}");
    assert!(count("S-CSCF", 2, "401") >= 2, "{fields}");
    assert!(count("S-CSCF", 2, "200") >= 2, "{fields}");
    assert_eq!(count("I-CSCF", 3, "300"), 4, "UAR: {fields}");
    assert_eq!(count("HSS", 3, "303"), 2, "MAA: {fields}");
    assert!(count("UE alice", 1, "MESSAGE") == 1, "{fields}");
    let bad = tshark(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed in tshark:\n{bad}");
    lab.shutdown().await;
}

fn require(tool: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/install-peers.sh (scripts/test.sh does)"
    );
}

/// sngrep, headless (`-N -q`), listening for HEP as in the README (`sngrep -L udp:...`): what
/// it writes out (`-O`, the decapsulated messages) holds the internal legs of a registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sngrep_listening_for_hep_sees_the_internal_legs() {
    require("sngrep");
    require("tshark");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sngrep.pcap");
    // A free UDP port for sngrep; it listens once the port shows in /proc/net/udp (binding it
    // to find out could take it from sngrep at the wrong moment).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sngrep = tokio::process::Command::new("sngrep")
        .args(["-N", "-q", "-F", "-L"])
        .arg(format!("udp:127.0.0.1:{port}"))
        .arg("-O")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sngrep starts");
    let bound = format!(":{port:04X} ");
    crate::eventually("sngrep listening", || {
        std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&bound))
    })
    .await;
    let cfg = LabConfig::from_toml_str(
        "default_ifc = []\n[pcscf]\nsubscribe_reg = false\n[ums]\nrcs_user = \"\"\n",
    )
    .unwrap()
    .with_ephemeral_ports();
    let opts = LabOptions {
        trace: false,
        timers: None,
        hep: Some(([127, 0, 0, 1], port).into()),
    };
    let lab = Lab::start(cfg, dir.path(), opts).await.expect("lab starts");
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // sngrep writes its -O file when it stops (SIGINT, as Ctrl-C).
    let pid = sngrep.id().expect("sngrep runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let done = tokio::time::timeout(Duration::from_secs(10), sngrep.wait_with_output())
        .await
        .expect("sngrep stops on SIGINT")
        .unwrap();
    let seen = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&out)
        .args(["-Y", "sip", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport"])
        .args(["-e", "sip.Method", "-e", "sip.Status-Code"])
        .output()
        .expect("tshark runs");
    let seen = String::from_utf8_lossy(&seen.stdout).to_string();
    let a = lab.addrs;
    let leg = |from: SocketAddr, to: SocketAddr, what: &str| {
        seen.lines()
            .filter(|l| {
                let f: Vec<&str> = l.split('|').collect();
                f.len() == 4
                    && f[0] == from.port().to_string()
                    && f[1] == to.port().to_string()
                    && (f[2] == what || f[3] == what)
            })
            .count()
    };
    let why = format!(
        "sngrep wrote:\n{seen}\nsngrep said: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(leg(a.pcscf, a.icscf, "REGISTER"), 2, "{why}");
    assert_eq!(leg(a.icscf, a.scscf, "REGISTER"), 2, "{why}");
    assert_eq!(leg(a.scscf, a.icscf, "401"), 1, "{why}");
    assert_eq!(leg(a.scscf, a.icscf, "200"), 1, "{why}");
    assert_eq!(leg(a.icscf, a.pcscf, "200"), 1, "{why}");
    lab.shutdown().await;
}

/// A bad `--hep` target is refused with a message that says what is expected.
#[test]
fn a_bad_hep_target_is_a_clear_error() {
    let e = rcslab::trace::hep::parse_target("nohost")
        .unwrap_err()
        .to_string();
    assert!(e.contains("HOST:PORT") && e.contains("nohost"), "{e}");
    let e = LabConfig::from_toml_str("[trace]\nhep = \"127.0.0.1:x\"\n").unwrap_err();
    assert!(e.to_string().contains("[trace] hep"), "{e}");
    let ok = LabConfig::from_toml_str("[trace]\nhep = \"127.0.0.1:9060\"\n").unwrap();
    assert_eq!(
        ok.trace.hep_target(),
        Some("127.0.0.1:9060".parse().unwrap())
    );
}
