//! A browser and phones nobody here wrote, through the RTCWeb gateway's media bridge:
//! headless Chromium on the gateway's own page (tests/browser/rtcweb-phone.mjs: fake
//! microphone, ICE, DTLS-SRTP) and Debian's baresip (plain RTP/AVP, a 440 Hz tone from
//! `ausine`), a call each way; Chromium calls linphonec (auto-answering, null audio). A live capture on loopback (tshark) proves the media: on the
//! plain leg between the bridge and baresip, RTP (PCMU) decoded by tshark both ways; on the
//! browser's leg, DTLS-SRTP datagrams both ways. Then the call ends cleanly on both sides and
//! the bridge frees its call.
//!
//! Needs chromium + playwright-core (scripts/install-browser.sh), baresip and tshark
//! (scripts/install-peers.sh), and the right to capture on `lo` (root, or dumpcap's
//! capabilities).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcslab::Lab;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::clients::{name_registered_clients, Baresip, BaresipExtras, Linphone};
use crate::{flow, lab_with};

/// One of these tests at a time: each runs Chromium, a phone and a capture, and two at once
/// would starve the tests running beside them on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// No application servers; media ports chosen by the OS.
const CFG: &str = "default_ifc = []\n[rtcweb]\nmedia_port_min = 0\nmedia_port_max = 0\n";
/// Audio held in the call before counting: 4 s is ~200 packets each way at 20 ms.
const HOLD_MS: u64 = 4000;
/// Packets each way that prove audio flowed (of ~200 sent in HOLD_MS).
const ENOUGH: usize = 100;

/// A live capture of UDP on loopback into a pcap file.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    async fn start(dir: &Path) -> Capture {
        let file = dir.join("media.pcapng");
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", "udp", "-q", "-w"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tshark: run scripts/install-peers.sh");
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let started = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(l)) = err.next_line().await {
                said.push_str(&l);
                said.push('\n');
                if l.contains("Capturing on") {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            started == Ok(true),
            "tshark could not capture on lo (root or dumpcap capabilities needed):\n{said}"
        );
        tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
        Capture { child, file }
    }

    /// Stops the capture (SIGINT: tshark writes out what it has) and gives the file.
    async fn stop(mut self) -> PathBuf {
        // Datagrams still in the kernel's buffer reach the file before tshark stops.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        self.file.clone()
    }
}

/// `(source port, destination port, RTP payload type)` of every packet to or from `port`,
/// decoded as RTP by tshark.
fn rtp_on(file: &Path, port: u16) -> Vec<(u16, u16, u8)> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-d", &format!("udp.port=={port},rtp")])
        .args(["-Y", &format!("rtp && udp.port=={port}")])
        .args([
            "-T",
            "fields",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.p_type",
        ])
        .output()
        .expect("tshark reads the capture");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t').map(|x| x.parse::<u16>().ok());
            Some((f.next()??, f.next()??, u8::try_from(f.next()??).ok()?))
        })
        .collect()
}

/// `(source port, destination port)` of every UDP datagram to or from `port`.
fn udp_on(file: &Path, port: u16) -> Vec<(u16, u16)> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", &format!("udp.port=={port}")])
        .args(["-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport"])
        .output()
        .expect("tshark reads the capture");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once('\t')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// tests/browser/rtcweb-phone.mjs, reading its JSON lines.
struct Page {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Page {
    fn start(lab: &Lab, mode: &str) -> Page {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(
            Path::new("/usr/bin/chromium").exists()
                && root
                    .join("tests/browser/node_modules/playwright-core")
                    .exists(),
            "Chromium or playwright-core is missing: run scripts/install-browser.sh"
        );
        let mut child = Command::new("node")
            .arg(root.join("tests/browser/rtcweb-phone.mjs"))
            .env("RTCWEB_URL", format!("http://{}", lab.addrs.rtcweb))
            .env("MODE", mode)
            .env("CALLEE", "sip:bob@ims.lab")
            .env("HOLD_MS", HOLD_MS.to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node: run scripts/install-browser.sh");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Page { child, lines }
    }

    /// The next line, which must have `key`.
    async fn expect(&mut self, key: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the page said nothing for 60 s (waiting for {key})"))
            .unwrap()
            .unwrap_or_else(|| panic!("the page script ended (waiting for {key})"));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v.get(key).is_some(), "waiting for {key}, the page said {v}");
        v
    }

    async fn exit(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        assert!(
            status
                .as_ref()
                .is_ok_and(|s| s.as_ref().is_ok_and(|s| s.success())),
            "the page script exits cleanly: {status:?}"
        );
    }
}

/// The one bridged call's addresses while it runs: the bridge's browser side, its plain side,
/// and where baresip's RTP comes from.
fn bridged(lab: &Lab) -> (SocketAddr, SocketAddr, SocketAddr) {
    let legs = lab.rtcweb.media_legs();
    assert_eq!(legs.len(), 1, "one bridged call: {legs:?}");
    let bridge = lab.rtcweb.bridge().unwrap();
    let s = bridge.stats(legs[0].1).expect("the call is open");
    assert_eq!(s.codec, Some(rcslab::media::G711::Pcmu), "{s:?}");
    assert!(s.web_connected && s.ims_latched, "{s:?}");
    (
        s.web_addr.unwrap(),
        s.ims_addr.unwrap(),
        s.ims_peer.unwrap(),
    )
}

/// What the capture shows of the call: RTP both ways on the plain leg, DTLS-SRTP both ways
/// on the browser's leg.
fn media_in_capture(file: &Path, web: SocketAddr, ims: SocketAddr, phone: SocketAddr) {
    let plain = rtp_on(file, ims.port());
    let to_phone = plain
        .iter()
        .filter(|(s, d, pt)| *s == ims.port() && *d == phone.port() && *pt == 0)
        .count();
    let from_phone = plain
        .iter()
        .filter(|(s, d, pt)| *s == phone.port() && *d == ims.port() && *pt == 0)
        .count();
    assert!(
        to_phone >= ENOUGH && from_phone >= ENOUGH,
        "RTP PCMU on the plain leg: {to_phone} to baresip, {from_phone} from it"
    );
    let browser = udp_on(file, web.port());
    let to_browser = browser.iter().filter(|(s, _)| *s == web.port()).count();
    let from_browser = browser.iter().filter(|(_, d)| *d == web.port()).count();
    assert!(
        to_browser >= ENOUGH && from_browser >= ENOUGH,
        "DTLS-SRTP on the browser's leg: {to_browser} to the browser, {from_browser} from it"
    );
}

/// The gateway's SIP lines of the ladder (no 100 Trying) from the first INVITE after `from`
/// (the page's registration comes before it).
fn gateway_sip(lab: &Lab, from: usize) -> Vec<String> {
    flow(lab)
        .into_iter()
        .skip(from)
        .filter(|l| l.contains("RTCWeb") && l.contains(" SIP ") && !l.ends_with(" 100"))
        .skip_while(|l| !l.ends_with(" INVITE"))
        .collect()
}

/// The page has had its audio: its stats show PCMU both ways; gives the bridged call's
/// addresses.
async fn audio_checked(lab: &Lab, page: &mut Page) -> (SocketAddr, SocketAddr, SocketAddr) {
    let stats = page.expect("sent").await;
    let media = bridged(lab);
    for k in ["sent", "received"] {
        assert!(stats[k].as_u64().unwrap_or(0) >= ENOUGH as u64, "{stats}");
    }
    assert_eq!(stats["codec"], "audio/PCMU", "{stats}");
    media
}

/// After the hang-up: the page script ends cleanly, the bridge and the gateway forget the
/// call, and the capture shows the media.
async fn ended(
    lab: &Lab,
    page: Page,
    cap: Capture,
    (web, ims, phone): (SocketAddr, SocketAddr, SocketAddr),
) {
    page.exit().await;
    crate::eventually("the bridge's call closed", || {
        lab.rtcweb.bridge().unwrap().calls() == 0 && lab.rtcweb.stats().calls == 0
    })
    .await;
    media_in_capture(&cap.stop().await, web, ims, phone);
}

/// `secs` seconds of a 440 Hz tone, 8 kHz 16-bit mono, as a WAV file (RIFF, PCM).
fn tone_wav(secs: u32) -> Vec<u8> {
    let samples = 8000 * secs;
    let data = samples * 2;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes()); // bytes per second
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for i in 0..samples {
        let x = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin();
        w.extend_from_slice(&((x * 8000.0) as i16).to_le_bytes());
    }
    w
}

async fn baresip_bob(lab: &Lab, dir: &Path) -> Baresip {
    let extras = BaresipExtras {
        sine: true,
        ..Default::default()
    };
    let mut bob = Baresip::start_with(dir, "bob", "alice", lab.addrs.pcscf, false, extras).await;
    bob.command("answermode", "auto").await;
    name_registered_clients(lab);
    bob
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_calls_baresip_through_the_bridge_and_rtp_flows_both_ways() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let mut bob = baresip_bob(&lab, dir.path()).await;
    let cap = Capture::start(dir.path()).await;
    let start = flow(&lab).len();

    let mut page = Page::start(&lab, "call");
    page.expect("ready").await;
    page.expect("connected").await;
    bob.event("CALL_ESTABLISHED").await;
    let media = audio_checked(&lab, &mut page).await;
    page.expect("done").await;
    bob.event("CALL_CLOSED").await;
    ended(&lab, page, cap, media).await;

    // baresip 1.0 has no 100rel: its 420 makes the gateway send the INVITE again without
    // Require (RFC 3261 §8.1.3.5); its 180 is unreliable, so no PRACK.
    let sip = gateway_sip(&lab, start);
    let expected = [
        "RTCWeb -> P-CSCF SIP INVITE",
        "P-CSCF -> RTCWeb SIP 420",
        "RTCWeb -> P-CSCF SIP ACK",
        "RTCWeb -> P-CSCF SIP INVITE",
        "P-CSCF -> RTCWeb SIP 180",
        "P-CSCF -> RTCWeb SIP 200",
        "RTCWeb -> P-CSCF SIP ACK",
        "RTCWeb -> P-CSCF SIP BYE",
        "P-CSCF -> RTCWeb SIP 200",
    ];
    assert_eq!(sip, expected, "\n{}", sip.join("\n"));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_chromium_through_the_bridge_and_rtp_flows_both_ways() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let mut bob = baresip_bob(&lab, dir.path()).await;
    let mut page = Page::start(&lab, "answer");
    page.expect("ready").await;
    let cap = Capture::start(dir.path()).await;
    let start = flow(&lab).len();

    bob.command("dial", "sip:alice@ims.lab").await;
    page.expect("connected").await;
    bob.event("CALL_ESTABLISHED").await;
    let media = audio_checked(&lab, &mut page).await;
    bob.command("hangup", "").await;
    bob.event("CALL_CLOSED").await;
    page.expect("done").await;
    ended(&lab, page, cap, media).await;

    let sip = gateway_sip(&lab, start);
    let expected = [
        "P-CSCF -> RTCWeb SIP INVITE",
        "RTCWeb -> P-CSCF SIP 180",
        "RTCWeb -> P-CSCF SIP 200",
        "P-CSCF -> RTCWeb SIP ACK",
        "P-CSCF -> RTCWeb SIP BYE",
        "RTCWeb -> P-CSCF SIP 200",
    ];
    assert_eq!(sip, expected, "\n{}", sip.join("\n"));
    lab.shutdown().await;
}

/// linphonec (auto-answer, null audio) as the phone: Chromium's call reaches it through the
/// bridge, RTP flows both ways on the plain leg, and the page's hang-up ends it on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_calls_linphonec_through_the_bridge_and_rtp_flows_both_ways() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let mut bob = Linphone::start_with(dir.path(), "bob", lab.addrs.pcscf, false, false).await;
    // linphonec's microphone is a file (`use_files`): a tone it plays into the call.
    let tone = dir.path().join("tone.wav");
    std::fs::write(&tone, tone_wav(10)).unwrap();
    name_registered_clients(&lab);
    let cap = Capture::start(dir.path()).await;
    let start = flow(&lab).len();

    let mut page = Page::start(&lab, "call");
    page.expect("ready").await;
    page.expect("connected").await;
    bob.send(&format!("play {}", tone.display())).await;
    let media = audio_checked(&lab, &mut page).await;
    page.expect("done").await;
    bob.out.wait_n("ended", 1, "linphonec").await;
    ended(&lab, page, cap, media).await;

    let sip = gateway_sip(&lab, start);
    assert_eq!(
        sip.first().map(String::as_str),
        Some("RTCWeb -> P-CSCF SIP INVITE"),
        "\n{}",
        sip.join("\n")
    );
    let tail = &sip[sip.len().saturating_sub(4)..];
    assert_eq!(
        tail,
        [
            "P-CSCF -> RTCWeb SIP 200",
            "RTCWeb -> P-CSCF SIP ACK",
            "RTCWeb -> P-CSCF SIP BYE",
            "P-CSCF -> RTCWeb SIP 200",
        ],
        "\n{}",
        sip.join("\n")
    );
    lab.shutdown().await;
}
