//! Real SIP clients nobody here wrote — baresip and linphonec, headless with null audio and
//! their own config dirs — against a default lab started by the test: registration with
//! digest, MESSAGE both ways, and a call each way with ACK, hold and resume (re-INVITE) and a
//! BYE from the callee, over UDP and over TCP. The callee's in-dialog requests follow the
//! route set the P-CSCF recorded, so this is what proves Record-Route (RFC 5658 double
//! Record-Route at the P-CSCF) — sipp ignores the route set and proves nothing about it.
//!
//! The clients are Debian's `baresip` and `linphone-cli`, installed by
//! scripts/install-peers.sh.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcslab::Lab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use crate::lab_with;

const WAIT: Duration = Duration::from_secs(15);

fn require(bin: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{bin} is not installed: run scripts/install-peers.sh (Debian baresip, linphone-cli)"
    );
}

/// A loopback port free for both UDP and TCP (clients listen on both).
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = t.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A port `p` free for UDP and TCP whose neighbour `p + 1` is free too (baresip's TLS).
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// What a child process prints (stdout and stderr), collected as it comes.
#[derive(Clone, Default)]
pub(crate) struct Output(Arc<Mutex<String>>);

impl Output {
    fn collect(&self, mut r: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                if let Ok(mut s) = me.0.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// Waits until `needle` has been printed `n` times.
    pub(crate) async fn wait_n(&self, needle: &str, n: usize, who: &str) {
        let end = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < end {
            if self.count(needle) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{who} never printed {needle:?} ({n}x); it printed:\n{}",
            self.text()
        );
    }
}

fn spawn(cmd: &mut Command, out: &Output) -> (Child, ChildStdin) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("client starts");
    out.collect(child.stdout.take().expect("stdout"));
    out.collect(child.stderr.take().expect("stderr"));
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// What baresip is to do besides calls and messages with null audio. Presence: subscribe to
/// the peer's presence (`;presence=p2p` on its contact; the module is loaded at start) and
/// publish its own every `pubint` seconds (`;pubint=` on the account, 0: never; without
/// `subscribe` the module waits for `/insmod presence`). `sine`: its microphone is a 440 Hz
/// tone (the `ausine` module) instead of silence.
#[derive(Clone, Copy, Default)]
pub(crate) struct BaresipExtras {
    pub(crate) subscribe: bool,
    pub(crate) pubint: u32,
    pub(crate) sine: bool,
}

/// baresip driven through its ctrl_tcp module (netstring JSON commands and events).
pub(crate) struct Baresip {
    _child: Child,
    _stdin: ChildStdin,
    pub(crate) out: Output,
    ctrl: tokio::net::TcpStream,
    buf: Vec<u8>,
    events: Vec<serde_json::Value>,
}

impl Baresip {
    async fn start(dir: &Path, user: &str, peer: &str, pcscf: SocketAddr, tcp: bool) -> Baresip {
        Self::start_with(dir, user, peer, pcscf, tcp, BaresipExtras::default()).await
    }

    /// [`Baresip::start`] with the `presence` module loaded and the microphone a tone when
    /// `presence` asks for them.
    pub(crate) async fn start_with(
        dir: &Path,
        user: &str,
        peer: &str,
        pcscf: SocketAddr,
        tcp: bool,
        presence: BaresipExtras,
    ) -> Baresip {
        require("baresip");
        let presence_module = if presence.subscribe {
            "module_app presence.so\n"
        } else {
            ""
        };
        let source = if presence.sine {
            // ausine makes 48 kHz stereo only; baresip resamples it for the codec.
            "module ausine.so\naudio_source ausine,440\nausrc_srate 48000\nausrc_channels 2\n"
        } else {
            "audio_source aubridge,nil\n"
        };
        let dir = dir.join(format!("baresip-{user}"));
        std::fs::create_dir_all(&dir).expect("config dir");
        // baresip binds SIP on UDP, TCP and TLS (the next port): another test may take one
        // of them between our check and its bind, so a start that fails is tried again.
        let mut attempts = 0;
        let (child, stdin, out, ctrl) = loop {
            attempts += 1;
            let sip = free_port_pair();
            let ctrl_port = free_port();
            std::fs::write(
                dir.join("config"),
                format!(
                    "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
                     call_local_timeout 120\nmodule_path /usr/lib/baresip/modules\n\
                     module g711.so\nmodule aubridge.so\nmodule stdio.so\n\
                     module_app account.so\nmodule_app menu.so\nmodule_app contact.so\n\
                     {presence_module}module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
                     audio_player aubridge,nil\n{source}audio_alert aubridge,nil\n"
                ),
            )
            .expect("config");
            // The account line README gives, with the P-CSCF as outbound proxy.
            let t = if tcp { ";transport=tcp" } else { "" };
            let pubint = match presence.pubint {
                0 => String::new(),
                n => format!(";pubint={n}"),
            };
            std::fs::write(
                dir.join("accounts"),
                format!(
                    "<sip:{user}@ims.lab{t}>;auth_user={user}@ims.lab;auth_pass={user}-secret;\
                     outbound=\"sip:{pcscf}{t}\";regint=600{pubint}\n"
                ),
            )
            .expect("accounts");
            let p2p = if presence.subscribe {
                ";presence=p2p"
            } else {
                ""
            };
            std::fs::write(dir.join("contacts"), format!("<sip:{peer}@ims.lab>{p2p}\n"))
                .expect("contacts");
            let out = Output::default();
            let (child, stdin) = spawn(
                Command::new("stdbuf")
                    .args(["-oL", "-eL", "baresip", "-f"])
                    .arg(&dir),
                &out,
            );
            let mut ctrl = None;
            for _ in 0..100 {
                if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", ctrl_port)).await {
                    ctrl = Some(s);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            match ctrl {
                Some(c) => break (child, stdin, out, c),
                None if attempts < 3 && out.text().contains("Address already in use") => continue,
                None => panic!("baresip ctrl_tcp never listened:\n{}", out.text()),
            }
        };

        let b = Baresip {
            _child: child,
            _stdin: stdin,
            out,
            ctrl,
            buf: Vec::new(),
            events: Vec::new(),
        };
        // (REGISTER_OK may come before the control connection is up: read it from the log.)
        b.out.wait_n("registered successfully", 1, "baresip").await;
        b
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, self.ctrl.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("baresip went quiet; it printed:\n{}", self.out.text()))
            .expect("ctrl read");
        assert!(
            n > 0,
            "baresip closed its control connection:\n{}",
            self.out.text()
        );
        self.buf.extend_from_slice(&chunk[..n]);
        // Netstrings: `len:json,`.
        while let Some(colon) = self.buf.iter().position(|b| *b == b':') {
            let Ok(len) = std::str::from_utf8(&self.buf[..colon])
                .unwrap_or("")
                .parse::<usize>()
            else {
                panic!("bad netstring from baresip: {:?}", self.buf);
            };
            if self.buf.len() < colon + 1 + len + 1 {
                break;
            }
            let v: serde_json::Value =
                serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len]).expect("json");
            self.events.push(v);
            self.buf.drain(..colon + 1 + len + 1);
        }
    }

    /// Sends a command (as typed after `/` in baresip's menu) and waits for its response,
    /// which it returns (what the command printed is its `data`).
    pub(crate) async fn command(&mut self, command: &str, params: &str) -> serde_json::Value {
        let m =
            serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        self.ctrl
            .write_all(format!("{}:{m},", m.len()).as_bytes())
            .await
            .expect("ctrl write");
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["response"] == true && e["token"] == command)
            {
                let r = self.events.remove(i);
                assert_eq!(r["ok"], true, "baresip refused /{command} {params}: {r}");
                return r;
            }
            self.read_more().await;
        }
    }

    /// Waits for the next event of `kind` (CALL_ESTABLISHED, CALL_CLOSED, ...).
    pub(crate) async fn event(&mut self, kind: &str) -> serde_json::Value {
        loop {
            if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
                return self.events.remove(i);
            }
            self.read_more().await;
        }
    }
}

/// linphonec driven through its command line (stdin), auto-answering calls.
pub(crate) struct Linphone {
    _child: Child,
    stdin: ChildStdin,
    pub(crate) out: Output,
}

impl Linphone {
    async fn start(dir: &Path, user: &str, pcscf: SocketAddr, tcp: bool) -> Linphone {
        Self::start_with(dir, user, pcscf, tcp, false).await
    }

    /// [`Linphone::start`], publishing its presence (RFC 3903) once registered when `publish`.
    pub(crate) async fn start_with(
        dir: &Path,
        user: &str,
        pcscf: SocketAddr,
        tcp: bool,
        publish: bool,
    ) -> Linphone {
        require("linphonec");
        let home = dir.join(format!("linphone-{user}"));
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("home");
        let port = free_port();
        let (udp, tcp_port, t) = if tcp {
            (0, port, "tcp")
        } else {
            (port, 0, "udp")
        };
        // Proxy and outbound route as README says (Linphone: proxy/outbound sip:P-CSCF).
        let rc = format!(
            "[sip]\nsip_port={udp}\nsip_tcp_port={tcp_port}\nsip_tls_port=0\nuse_ipv6=0\n\
             default_proxy=0\n[rtp]\naudio_rtp_port={rtp}\n[sound]\nuse_files=1\n\
             echocancellation=0\n[video]\nenabled=0\ncapture=0\ndisplay=0\n\
             [proxy_0]\nreg_proxy=<sip:{pcscf};transport={t}>\n\
             reg_route=<sip:{pcscf};transport={t};lr>\nreg_identity=sip:{user}@ims.lab\n\
             reg_expires=600\nreg_sendregister=1\npublish={publish}\n\
             [auth_info_0]\nusername={user}\nuserid={user}@ims.lab\npasswd={user}-secret\n\
             realm=ims.lab\ndomain=ims.lab\n",
            rtp = free_port(),
            publish = u8::from(publish),
        );
        let rc_path: PathBuf = home.join("linphonerc");
        std::fs::write(&rc_path, rc).expect("linphonerc");
        let out = Output::default();
        let (child, stdin) = spawn(
            Command::new("linphonec")
                .arg("-c")
                .arg(&rc_path)
                .arg("-a")
                .env("HOME", &home),
            &out,
        );
        let mut l = Linphone {
            _child: child,
            stdin,
            out,
        };
        for _ in 0..60 {
            l.send("status register").await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            if l.out.text().contains("registered, identity=") {
                return l;
            }
        }
        panic!("linphonec did not register; it printed:\n{}", l.out.text());
    }

    pub(crate) async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("linphonec stdin");
        self.stdin.flush().await.expect("flush");
    }
}

/// Names each client in the lab's ladders (`UE alice`) after the identity it registered, so
/// the names survive clearing the trace.
pub(crate) fn name_registered_clients(lab: &Lab) {
    let events = rcslab::trace_view::export::wire_events(&lab.trace);
    for (addr, name) in rcslab::lab::registered_names(&events, &|a| lab.name_of(a)) {
        lab.name_addr(addr, &name);
    }
}

/// The SIP a UE sent or received during a call, by side: `UE alice -> P-CSCF INVITE`, ... (no
/// 100 Trying, no registration or messaging; a UDP retransmission shows once).
fn call_legs(lab: &Lab, ue: &str) -> Vec<String> {
    let mut v: Vec<String> = crate::flow(lab)
        .into_iter()
        .filter(|l| l.contains(&format!("UE {ue} ")) || l.ends_with(&format!("UE {ue}")))
        .filter_map(|l| {
            let (who, what) = l.split_once(" SIP ")?;
            let keep = matches!(what, "INVITE" | "ACK" | "BYE" | "CANCEL")
                || (what.len() == 3 && what != "100" && l.contains(" SIP "));
            keep.then(|| {
                let who = who.replace(" orig", "").replace(" term", "");
                format!("{who} {what}")
            })
        })
        .collect();
    // Responses to MESSAGE/REGISTER carry a status only; keep those of the call by position:
    // the trace was cleared right before the call, and nothing else runs meanwhile.
    v.dedup();
    v
}

/// One call: `caller` dials `callee`; the callee holds and resumes it (re-INVITEs) and hangs
/// up. Each side's legs must be exactly the RFC 3261 sequence, ACK and BYE included.
fn expected_call(caller: &str, callee: &str) -> (Vec<String>, Vec<String>) {
    let c = format!("UE {caller}");
    let e = format!("UE {callee}");
    let up = |from: &str, what: &str| format!("{from} -> P-CSCF {what}");
    let down = |to: &str, what: &str| format!("P-CSCF -> {to} {what}");
    let caller_side = vec![
        up(&c, "INVITE"),
        down(&c, "180"),
        down(&c, "200"),
        up(&c, "ACK"),
        // hold, resume: re-INVITEs from the callee
        down(&c, "INVITE"),
        up(&c, "200"),
        down(&c, "ACK"),
        down(&c, "INVITE"),
        up(&c, "200"),
        down(&c, "ACK"),
        down(&c, "BYE"),
        up(&c, "200"),
    ];
    let callee_side = vec![
        down(&e, "INVITE"),
        up(&e, "180"),
        up(&e, "200"),
        down(&e, "ACK"),
        up(&e, "INVITE"),
        down(&e, "200"),
        up(&e, "ACK"),
        up(&e, "INVITE"),
        down(&e, "200"),
        up(&e, "ACK"),
        up(&e, "BYE"),
        down(&e, "200"),
    ];
    (caller_side, callee_side)
}

async fn baresip_and_linphone(tcp: bool) {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let p = lab.addrs.pcscf;
    let mut alice = Baresip::start(dir.path(), "alice", "bob", p, tcp).await;
    let mut bob = Linphone::start(dir.path(), "bob", p, tcp).await;
    name_registered_clients(&lab);

    // MESSAGE both ways (pager mode, text/plain).
    alice.command("message", "hello from baresip").await;
    bob.out
        .wait_n(
            "Message received from sip:alice@ims.lab: hello from baresip",
            1,
            "linphonec",
        )
        .await;
    bob.send("chat sip:alice@ims.lab hello from linphone").await;
    alice
        .out
        .wait_n("sip:bob@ims.lab: \"hello from linphone\"", 1, "baresip")
        .await;

    // baresip calls linphonec; linphonec (auto-answer) holds, resumes and hangs up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.trace.clear();
    alice.command("dial", "sip:bob@ims.lab").await;
    alice.event("CALL_ESTABLISHED").await;
    bob.out.wait_n("connected.", 1, "linphonec").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send("pause 1").await;
    bob.out.wait_n("is now paused", 1, "linphonec").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send("resume 1").await;
    bob.out
        .wait_n("Media streams established", 2, "linphonec")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send("terminate").await;
    alice.event("CALL_CLOSED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (caller, callee) = expected_call("alice", "bob");
    assert_eq!(
        call_legs(&lab, "alice"),
        caller,
        "baresip's side of the call"
    );
    assert_eq!(
        call_legs(&lab, "bob"),
        callee,
        "linphonec's side of the call"
    );

    // linphonec calls baresip; baresip (auto-answer) holds, resumes and hangs up.
    alice.command("answermode", "auto").await;
    lab.trace.clear();
    bob.send("call sip:alice@ims.lab").await;
    alice.event("CALL_ESTABLISHED").await;
    bob.out.wait_n("connected.", 2, "linphonec").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.command("hold", "").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    alice.command("resume", "").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    alice.command("hangup", "").await;
    alice.event("CALL_CLOSED").await;
    bob.out.wait_n("ended", 2, "linphonec").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (caller, callee) = expected_call("bob", "alice");
    assert_eq!(
        call_legs(&lab, "bob"),
        caller,
        "linphonec's side of the call"
    );
    assert_eq!(
        call_legs(&lab, "alice"),
        callee,
        "baresip's side of the call"
    );
    // Credentials a client sends are for the core (the S-CSCF's registrar): no request the
    // P-CSCF passes to a UE carries them.
    for e in rcslab::trace_view::export::wire_events(&lab.trace) {
        let text = String::from_utf8_lossy(&e.bytes);
        if lab.name_of(e.src()) == "P-CSCF" && lab.name_of(e.dst()).starts_with("UE ") {
            assert!(
                !text.contains("Authorization:"),
                "credentials leaked to a UE:\n{text}"
            );
        }
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn baresip_and_linphonec_message_and_call_both_ways_over_udp() {
    baresip_and_linphone(false).await;
}

#[tokio::test]
async fn baresip_and_linphonec_message_and_call_both_ways_over_tcp() {
    baresip_and_linphone(true).await;
}

/// The rcslab UE and baresip call each other: ours calls and hangs up (caller BYE), then
/// baresip calls and hangs up while ours answers.
#[tokio::test]
async fn the_rcslab_ue_and_baresip_call_each_other() {
    use rcslab::sip::Method;
    use rcslab::ue::{audio_sdp, uas_response, AuthMode};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = crate::ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut bob = Baresip::start(dir.path(), "bob", "alice", lab.addrs.pcscf, false).await;
    name_registered_clients(&lab);
    bob.command("answermode", "auto").await;

    lab.trace.clear();
    let (resp, dialog) = alice.invite("sip:bob@ims.lab", &audio_sdp(4000)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    bob.event("CALL_ESTABLISHED").await;
    let mut d = dialog.expect("dialog");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alice.bye(&mut d).await.status, 200);
    bob.event("CALL_CLOSED").await;
    let f: Vec<String> = call_legs(&lab, "bob");
    assert_eq!(
        f,
        [
            "P-CSCF -> UE bob INVITE",
            "UE bob -> P-CSCF 180",
            "UE bob -> P-CSCF 200",
            "P-CSCF -> UE bob ACK",
            "P-CSCF -> UE bob BYE",
            "UE bob -> P-CSCF 200",
        ]
    );

    lab.trace.clear();
    bob.command("dial", "sip:alice@ims.lab").await;
    let wait = Duration::from_secs(10);
    let inv = alice.next_request(wait).await.expect("INVITE from baresip");
    assert_eq!(inv.request.method, Method::Invite);
    let contact = alice.contact();
    inv.tx.respond(uas_response(
        &inv.request,
        200,
        "a1",
        &contact,
        Some(&audio_sdp(4002)),
    ));
    let ack = alice.next_request(wait).await.expect("ACK from baresip");
    assert_eq!(ack.request.method, Method::Ack);
    bob.event("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.command("hangup", "").await;
    let bye = alice.next_request(wait).await.expect("BYE from baresip");
    assert_eq!(bye.request.method, Method::Bye);
    bye.tx
        .respond(uas_response(&bye.request, 200, "a1", &contact, None));
    bob.event("CALL_CLOSED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        call_legs(&lab, "bob"),
        [
            "UE bob -> P-CSCF INVITE",
            "P-CSCF -> UE bob 200",
            "UE bob -> P-CSCF ACK",
            "UE bob -> P-CSCF BYE",
            "P-CSCF -> UE bob 200",
        ]
    );
    lab.shutdown().await;
}

/// Runs `rcslab ue --lab P-CSCF --user USER send TO TEXT` (the CLI contract) and checks it
/// succeeds saying `says`.
async fn ue_send_says(lab: &Lab, user: &str, to: &str, text: &str, says: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_rcslab"))
        .args(["ue", "--lab"])
        .arg(lab.addrs.pcscf.to_string())
        .args(["--user", user, "send", to, text])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("ue send finishes")
        .expect("ue send runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(says),
        "ue send: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RCS chat to a plain SIP client: baresip refuses T-IM's MSRP INVITE, T-IM falls back to
/// a pager-mode MESSAGE, baresip prints the text, the sender's `rcslab ue send` says so and
/// nothing stays stored.
#[tokio::test]
async fn an_rcs_chat_to_baresip_falls_back_to_pager_mode() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let alice = Baresip::start(dir.path(), "alice", "carol", lab.addrs.pcscf, false).await;
    name_registered_clients(&lab);
    crate::eventually("T-IM to learn alice is online", || {
        lab.tim.is_online("sip:alice@ims.lab")
    })
    .await;
    ue_send_says(
        &lab,
        "carol",
        "sip:alice@ims.lab",
        "hi from rcs",
        "delivered (pager mode)",
    )
    .await;
    alice
        .out
        .wait_n("sip:carol@ims.lab: \"hi from rcs\"", 1, "baresip")
        .await;
    let f = crate::flow(&lab);
    assert!(
        f.contains(&"P-CSCF -> UE alice SIP INVITE".to_string())
            && f.contains(&"P-CSCF -> UE alice SIP MESSAGE".to_string()),
        "the chat INVITE, then the pager MESSAGE: {f:#?}"
    );
    let store = lab.tim.store().expect("T-IM store");
    assert!(
        store.pending_for("sip:alice@ims.lab").is_empty(),
        "nothing stays stored"
    );
    lab.shutdown().await;
}

/// The same with linphonec, which answers calls by itself (-a): whatever it does with T-IM's
/// MSRP INVITE (refuse it, or pick it up as a call without MSRP), the text reaches it as a
/// pager-mode MESSAGE and nothing stays stored.
#[tokio::test]
async fn an_rcs_chat_to_linphonec_falls_back_to_pager_mode() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let bob = Linphone::start(dir.path(), "bob", lab.addrs.pcscf, false).await;
    name_registered_clients(&lab);
    crate::eventually("T-IM to learn bob is online", || {
        lab.tim.is_online("sip:bob@ims.lab")
    })
    .await;
    ue_send_says(
        &lab,
        "carol",
        "sip:bob@ims.lab",
        "hi linphone",
        "delivered (pager mode)",
    )
    .await;
    bob.out
        .wait_n(
            "Message received from sip:carol@ims.lab: hi linphone",
            1,
            "linphonec",
        )
        .await;
    let store = lab.tim.store().expect("T-IM store");
    assert!(store.pending_for("sip:bob@ims.lab").is_empty());
    lab.shutdown().await;
}

/// Capability discovery against a client nobody here wrote: baresip, registered as alice,
/// answers carol's OPTIONS (`rcslab ue caps`) through the core with 200 and a Contact with no
/// RCS feature tag (it is not an RCS client), which is how a client learns to fall back to
/// a pager MESSAGE or SMS (exit 0: the 200 came back to carol's client through the core).
#[tokio::test]
async fn rcslab_ue_caps_asks_baresip_which_answers_without_rcs_tags() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let _alice = Baresip::start(dir.path(), "alice", "carol", lab.addrs.pcscf, false).await;
    name_registered_clients(&lab);
    lab.trace.clear();
    let out = crate::rcslab_ue(&lab, "carol", &["caps", "alice"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let tags = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !tags.contains("+g.3gpp.icsi-ref") && !tags.contains("+g.oma.sip-im"),
        "baresip claims no RCS service: {tags}"
    );
    let f = crate::flow(&lab);
    for l in [
        "S-CSCF -> P-CSCF SIP OPTIONS",
        "P-CSCF -> UE alice SIP OPTIONS",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
    ] {
        assert!(f.contains(&l.to_string()), "{l}: {f:#?}");
    }
    lab.shutdown().await;
}
