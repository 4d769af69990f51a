//! End-to-end tests: each starts a whole lab on ephemeral loopback ports inside `cargo test`
//! and checks what crossed the wire. One test binary (modules below) keeps linking fast.

mod admin_security;
mod as_failure;
mod attackers;
mod auth_hardening;
mod bench_ft;
mod bench_group;
mod bench_sms;
mod calls;
mod caps;
pub mod chat;
mod cli;
pub mod clients;
mod content;
mod crash;
mod diameter;
mod errors;
mod forking;
mod ft_http;
mod ft_msrp;
mod group;
mod hep;
mod hss_push;
mod http_limits;
mod kamailio;
mod kamailio_pcscf;
pub mod media_bridge;
mod msrp_limits;
mod multi_scscf;
mod netns;
mod notify_route;
mod overload;
mod peers;
mod presence;
mod presence_interop;
mod regevent;
mod registration;
mod revoke;
mod rls;
mod routing;
pub mod rtcweb;
mod rtcweb_media;
mod rtcweb_phones;
pub mod run_nodes;
mod sip_ws;
mod smpp_codec;
mod smpp_crash;
mod smpp_interop;
mod sms;
mod sms_codec;
mod status;
mod store_forward;
mod trust_domain;
mod ue_sms;
mod ums;
mod ums_rcs;
pub mod web;
mod web_ft;
mod web_group;
mod web_presence;
mod web_security;

use std::path::Path;

use rcslab::lab::LadderLine;
use rcslab::ue::{AuthMode, Ue, UeConfig};
use rcslab::{Lab, LabConfig, LabOptions};
use tokio::sync::watch;

/// A lab on ephemeral ports with tracing on, `extra` TOML merged over the default lab. The
/// P-CSCF's own reg-event subscription is off so exact ladders hold only the flow under test
/// (`lab_with_reg_sub` keeps it).
pub async fn lab_with(dir: &Path, extra: &str) -> Lab {
    lab_from(dir, &format!("{extra}\n[pcscf]\nsubscribe_reg = false\n")).await
}

/// `[[hss.peers]]` for tests that talk Cx themselves as `probe.ims.lab` from loopback, beside
/// the lab's own CSCFs (the list replaces the default one).
pub const PROBE_PEER: &str =
    "[[hss.peers]]\norigin_host = \"icscf.ims.lab\"\naddress = \"127.0.0.0/8\"\n\
[[hss.peers]]\norigin_host = \"scscf.ims.lab\"\naddress = \"127.0.0.0/8\"\n\
[[hss.peers]]\norigin_host = \"probe.ims.lab\"\naddress = \"127.0.0.0/8\"\n";

/// [`lab_with`] with the P-CSCF subscribing to reg events, as the default lab does.
pub async fn lab_with_reg_sub(dir: &Path, extra: &str) -> Lab {
    lab_from(dir, extra).await
}

async fn lab_from(dir: &Path, extra: &str) -> Lab {
    let mut cfg = LabConfig::from_toml_str(extra)
        .expect("valid lab config")
        .with_ephemeral_ports();
    // The UMS's chatbot registers itself in the default lab (RCS first): a test that is not
    // about it keeps its ladders and registration counts without it, and says
    // `rcs_user = "ums"` when it is.
    if !extra.contains("rcs_user") {
        cfg.ums.rcs_user.clear();
    }
    Lab::start(
        cfg,
        dir,
        LabOptions {
            trace: true,
            timers: None,
            hep: None,
        },
    )
    .await
    .expect("lab starts")
}

/// A UE of the default lab, named in the lab's ladders as `UE <user>`.
pub async fn ue(lab: &Lab, user: &str, auth: AuthMode, shutdown: &watch::Receiver<bool>) -> Ue {
    let mut cfg = UeConfig::from_lab(&lab.config, user, lab.addrs.pcscf).expect("user in lab");
    cfg.auth = auth;
    let ue = Ue::start(cfg, lab.trace.clone(), shutdown.clone())
        .await
        .expect("UE binds");
    lab.name_addr(ue.local_addr(), &format!("UE {user}"));
    ue
}

/// The ladder without Diameter watchdogs, each line as `FROM -> TO PROTO SUMMARY`, with SIP
/// start lines cut to method/status so tests don't depend on URIs' ports.
pub fn flow(lab: &Lab) -> Vec<String> {
    lab.ladder()
        .into_iter()
        .filter(|l| !l.is_upkeep())
        .map(|l| short(&l))
        .collect()
}

fn short(l: &LadderLine) -> String {
    let s = &l.summary;
    let summary = if let Some(rest) = s.strip_prefix("SIP/2.0 ") {
        rest.split_whitespace().next().unwrap_or("").to_string()
    } else if l.protocol == "SIP" {
        s.split_whitespace().next().unwrap_or("").to_string()
    } else {
        s.clone()
    };
    format!("{} -> {} {} {}", l.from, l.to, l.protocol, summary)
}

/// Waits until `f` holds (bounded), polling.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `rcslab ue --user USER --lab <the lab's P-CSCF> ARGS...` as a child process.
pub fn rcslab_ue(lab: &Lab, user: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"));
    c.args(["ue", "--user", user, "--lab"])
        .arg(lab.addrs.pcscf.to_string())
        .args(args)
        .env("RUST_LOG", "warn")
        // `ue status` keeps its entity-tags in the temporary directory: cargo's for tests,
        // not /tmp.
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// `n` loopback ports free for TCP and UDP now, picked at random below Linux's ephemeral
/// range (32768 and up): a lab restarted on the same ports after a SIGKILL must find them
/// free, and the kernel never hands these to another test's outgoing connection or port-0
/// bind in between (an ephemeral port did get taken that way, now and then).
pub fn stable_free_ports(n: usize) -> Vec<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let p: u16 = rng.gen_range(20_000..32_000);
        if ports.contains(&p) {
            continue;
        }
        let Ok(t) = std::net::TcpListener::bind(("127.0.0.1", p)) else {
            continue;
        };
        if let Ok(u) = std::net::UdpSocket::bind(("127.0.0.1", p)) {
            ports.push(p);
            held.push((t, u));
        }
    }
    ports
}

/// Is `impu` registered with at least one contact at the (first) S-CSCF?
pub fn registered(lab: &Lab, impu: &str) -> bool {
    lab.scscf
        .registration(impu)
        .is_some_and(|r| !r.bindings.is_empty())
}

/// tshark on an exported pcap, told which of the lab's (non-standard) ports carry SIP,
/// Diameter, MSRP, HTTP and SMPP; returns a runner taking the extra arguments, giving stdout.
pub fn tshark_on(lab: &rcslab::Lab, pcap: &std::path::Path) -> impl Fn(&[&str]) -> String {
    let a = lab.addrs;
    let mut args: Vec<String> = vec!["-r".into(), pcap.to_str().unwrap().into()];
    for p in [
        a.pcscf, a.icscf, a.scscf, a.oim, a.tim, a.ps, a.conf, a.ipsmgw,
    ]
    .map(|x| x.port())
    {
        args.extend(["-d".into(), format!("tcp.port=={p},sip")]);
        args.extend(["-d".into(), format!("udp.port=={p},sip")]);
    }
    args.extend(["-d".into(), format!("tcp.port=={},diameter", a.hss.port())]);
    for p in [a.oim_msrp, a.tim_msrp, a.conf_msrp].map(|x| x.port()) {
        args.extend(["-d".into(), format!("tcp.port=={p},msrp")]);
    }
    args.extend(["-d".into(), format!("tcp.port=={},http", a.webrsf.port())]);
    args.extend(["-d".into(), format!("tcp.port=={},http", a.content.port())]);
    args.extend(["-d".into(), format!("tcp.port=={},smpp", a.smsc.port())]);
    move |extra: &[&str]| {
        let mut c = std::process::Command::new("tshark");
        c.args(&args).args(extra);
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    }
}
