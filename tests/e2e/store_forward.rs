//! Store and forward at T-IM (its per-user delivery workers, `src/im/delivery.rs`): delivery
//! that does not depend on the order of the REGISTER 200 and the third-party REGISTER, the
//! pager-mode fallback for clients that refuse MSRP, `ue send` / `ue listen` as users run
//! them, and a seeded soak of users coming and going (some leaving dead contacts behind).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rcslab::cpim::{Cpim, ImdnStatus};
use rcslab::sip::{Method, Transport};
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::{mpsc, watch};

use crate::chat::{chat_flow, chat_ue, FIGURE_1};
use crate::{eventually, flow, lab_with, ue};

/// Subscribers `{prefix}0..n`, after the default lab's alice, bob and carol (a lab file's
/// `[[subscribers]]` replaces the default list).
fn users_toml(prefix: &str, n: usize) -> String {
    let mut t = String::new();
    for u in ["alice", "bob", "carol"] {
        t.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{u}@ims.lab\"]\npassword = \"{u}-secret\"\n"
        ));
    }
    for i in 0..n {
        t.push_str(&format!(
            "[[subscribers]]\nimpu = [\"sip:{prefix}{i}@ims.lab\"]\npassword = \"{prefix}{i}-pw\"\n"
        ));
    }
    t
}

fn delivered_only() -> ChatOptions {
    ChatOptions {
        disposition: "positive-delivery".into(),
        ..ChatOptions::default()
    }
}

/// Waits for `pred` on `ue`'s events (others skipped) within `wait`.
async fn wait_event(
    ue: &mut ChatUe,
    wait: Duration,
    what: &str,
    mut pred: impl FnMut(&ChatEvent) -> bool,
) -> ChatEvent {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match ue.next_event(left).await {
            Some(ev) if pred(&ev) => return ev,
            Some(_) => {}
            None => panic!("no {what} within {wait:?}"),
        }
    }
}

fn pending_total(lab: &Lab) -> usize {
    lab.tim.store().map(|s| s.all_pending().len()).unwrap_or(0)
}

/// The first-registration race, 20 times: a message is stored for a user who is offline; the
/// user registers and listens; T-IM's first delivery INVITE may reach the P-CSCF before the
/// REGISTER's 200 did (480) and the retry one second later delivers. Within a few seconds,
/// every time.
#[tokio::test]
async fn stored_message_arrives_within_seconds_of_the_first_registration_20_times() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml("r", 20)).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    for i in 0..20 {
        let to = format!("sip:r{i}@ims.lab");
        let text = format!("waiting for r{i}");
        let id = alice.send(&to, &text).await;
        // T-IM says it stored it (Warning 399 on its 200).
        match wait_event(&mut alice, Duration::from_secs(5), "stored notice", |e| {
            matches!(e, ChatEvent::Stored { .. } | ChatEvent::SendFailed { .. })
        })
        .await
        {
            ChatEvent::Stored { message_id, reason } => {
                assert_eq!(message_id, id);
                assert!(reason.contains("stored: recipient offline"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lab.tim.store().unwrap().pending_for(&to).len(),
            1,
            "on disk for r{i}"
        );
        let t0 = Instant::now();
        let mut r = chat_ue(&lab, &format!("r{i}"), &shut, delivered_only()).await;
        match wait_event(&mut r, Duration::from_secs(6), "the stored message", |e| {
            matches!(e, ChatEvent::Message { .. })
        })
        .await
        {
            ChatEvent::Message {
                from,
                text: t,
                message_id,
            } => {
                assert_eq!((from.as_str(), t.as_str()), ("sip:alice@ims.lab", &*text));
                assert_eq!(message_id, id);
            }
            _ => unreachable!(),
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(5), "round {i} took {took:?}");
        wait_event(&mut alice, Duration::from_secs(5), "IMDN delivered", |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, .. } if *message_id == id)
        })
        .await;
        assert!(lab.tim.store().unwrap().pending_for(&to).is_empty());
        // Nothing arrives twice.
        while let Some(ev) = r.next_event(Duration::from_millis(100)).await {
            assert!(!matches!(ev, ChatEvent::Message { .. }), "twice: {ev:?}");
        }
        drop(r);
    }
    // How often the delivery INVITE met the race (480 from the P-CSCF, then a retry).
    let races = flow(&lab)
        .iter()
        .filter(|l| l.as_str() == "P-CSCF -> S-CSCF SIP 480")
        .count();
    eprintln!("first-registration race: {races} of 20 first INVITEs got 480 and were retried");
    lab.shutdown().await;
}

/// What the plain SIP client saw.
#[derive(Debug)]
enum Seen {
    Invite { at: Instant, accept_contact: String },
    Cancel,
    Bye,
    Message { content_type: String, body: String },
}

/// A plain SIP UA (no RCS, no MSRP; registered with digest through the P-CSCF, its Contact
/// without CPM feature tags): answers INVITEs with `refuse` and MESSAGEs with 200.
async fn plain_ua(
    lab: &Lab,
    user: &str,
    refuse: u16,
    shut: &watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<Seen> {
    plain_ua_answering(lab, user, vec![refuse], 200, shut).await
}

/// [`plain_ua`] answering INVITEs with `answers` in turn (the last one from then on); 180
/// means: ring and never answer (a voice-only phone nobody picks up), until CANCEL (487); 200
/// means: pick up as a voice call (audio SDP answer).
async fn plain_ua_answering(
    lab: &Lab,
    user: &str,
    answers: Vec<u16>,
    message_status: u16,
    shut: &watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<Seen> {
    let mut u = ue(lab, user, AuthMode::Digest, shut).await;
    u.register(600).await.expect("registers");
    let (tx, rx) = mpsc::unbounded_channel();
    let contact = u.contact();
    tokio::spawn(async move {
        let mut answers = answers.into_iter();
        let mut last = 488;
        let mut ringing: HashMap<String, rcslab::sip::IncomingRequest> = HashMap::new();
        while let Some(inc) = u.next_request(Duration::from_secs(60)).await {
            let req = &inc.request;
            let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
            match req.method {
                Method::Invite => {
                    let _ = tx.send(Seen::Invite {
                        at: Instant::now(),
                        accept_contact: req.headers.get("Accept-Contact").unwrap_or("").into(),
                    });
                    last = answers.next().unwrap_or(last);
                    let r = if last == 200 {
                        rcslab::ue::uas_response(
                            req,
                            200,
                            &rcslab::sip::new_tag(),
                            &contact,
                            Some(&rcslab::ue::audio_sdp(4000)),
                        )
                    } else {
                        let mut r = req.response(last, None);
                        r.ensure_to_tag();
                        r
                    };
                    inc.tx.respond(r);
                    if last == 180 {
                        ringing.insert(call_id, inc);
                    }
                }
                Method::Cancel => {
                    let _ = tx.send(Seen::Cancel);
                    inc.tx.respond(req.response(200, None));
                    if let Some(inv) = ringing.remove(&call_id) {
                        let mut r = inv.request.response(487, None);
                        r.ensure_to_tag();
                        inv.tx.respond(r);
                    }
                }
                Method::Message => {
                    let _ = tx.send(Seen::Message {
                        content_type: req.headers.get("Content-Type").unwrap_or("").to_string(),
                        body: String::from_utf8_lossy(&req.body).to_string(),
                    });
                    let mut r = req.response(message_status, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
                Method::Ack => {}
                Method::Bye => {
                    let _ = tx.send(Seen::Bye);
                    let mut r = req.response(200, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
                _ => {
                    let mut r = req.response(200, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
            }
        }
    });
    rx
}

/// The fallback flow after alice's chat INVITE is answered by T-IM (figure 1 up to step 12,
/// [`crate::chat::FIGURE_1`]):
/// T-IM's INVITE is refused, it sends the text in a pager-mode MESSAGE, and the IMDN
/// "delivered" (noted pager-mode) goes back to alice over her MSRP session.
const FALLBACK: &[&str] = &[
    "! T-IM -> S-CSCF SIP INVITE",
    "S-CSCF -> P-CSCF SIP INVITE",
    "P-CSCF -> UE dave SIP INVITE",
    "UE dave -> P-CSCF SIP REFUSED",
    "~ P-CSCF -> UE dave SIP ACK", // RFC 3261 §17.1.1.3: hop-by-hop ACK of the refusal
    "P-CSCF -> S-CSCF SIP REFUSED",
    "~ S-CSCF -> P-CSCF SIP ACK",
    "S-CSCF -> T-IM SIP REFUSED",
    "~ T-IM -> S-CSCF SIP ACK",
    "! T-IM -> S-CSCF SIP MESSAGE", // pager mode (RFC 3428), text/plain
    "S-CSCF -> P-CSCF SIP MESSAGE",
    "P-CSCF -> UE dave SIP MESSAGE",
    "UE dave -> P-CSCF SIP 200",
    "P-CSCF -> S-CSCF SIP 200",
    "S-CSCF -> T-IM SIP 200",
    "T-IM -> O-IM MSRP SEND",
    "O-IM -> UE alice MSRP SEND",
    "UE alice -> O-IM MSRP 200",
    "O-IM -> T-IM MSRP 200",
];

async fn falls_back_to_pager_mode(refuse: u16) {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", refuse, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = flow(&lab).len();
    let id = alice.send("sip:dave@ims.lab", "hi dave, no MSRP?").await;
    let ev = wait_event(&mut alice, Duration::from_secs(10), "a status", |e| {
        matches!(e, ChatEvent::Status { .. } | ChatEvent::SendFailed { .. })
    })
    .await;
    match ev {
        ChatEvent::Status {
            message_id,
            status,
            note,
            ..
        } => {
            assert_eq!(message_id, id);
            assert_eq!(status, ImdnStatus::Delivered);
            assert_eq!(note.as_deref(), Some("pager-mode"));
        }
        other => panic!("{other:?}"),
    }
    match dave.recv().await {
        Some(Seen::Invite { accept_contact, .. }) => assert_eq!(
            accept_contact,
            "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\";require;explicit",
            "RFC 3841: a voice-only client must not match"
        ),
        other => panic!("{other:?}"),
    }
    match dave.recv().await {
        Some(Seen::Message { content_type, body }) => {
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            assert_eq!(body, "hi dave, no MSRP?");
        }
        other => panic!("{other:?}"),
    }
    // Nothing stays stored; the history knows how it went.
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("sip:dave@ims.lab")
        .is_empty());
    assert_eq!(
        lab.tim.store().unwrap().by_message_id(&id).unwrap().status,
        "delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = chat_flow(&lab, start);
    let upto = FIGURE_1
        .iter()
        .position(|l| *l == "! T-IM -> S-CSCF SIP INVITE")
        .unwrap();
    let expected: Vec<String> = FIGURE_1[..upto]
        .iter()
        .chain(FALLBACK)
        .map(|l| l.replace("REFUSED", &refuse.to_string()))
        .collect();
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!("fallback ladder differs:\n{d}");
    }
    // No more INVITEs or MESSAGEs for dave.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(dave.try_recv().is_err());
    lab.shutdown().await;
}

#[tokio::test]
async fn a_client_that_refuses_msrp_with_488_gets_a_pager_message() {
    falls_back_to_pager_mode(488).await;
}

#[tokio::test]
async fn a_client_that_answers_500_gets_a_pager_message() {
    falls_back_to_pager_mode(500).await;
}

/// A delivery INVITE answered 480 (the P-CSCF does not know the contact yet, the race of the
/// first registration) is retried with backoff, 1 s, 2 s, 4 s, while the user stays
/// registered; here the fourth attempt is refused and pager mode delivers.
#[tokio::test]
async fn a_480_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua_answering(&lab, "dave", vec![480, 480, 480, 488], 200, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "eventually").await;
    let mut at = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_secs(10), dave.recv()).await {
            Ok(Some(Seen::Invite { at: t, .. })) => at.push(t),
            other => panic!("{other:?} after {at:?}\n{}", chat_flow(&lab, 0).join("\n")),
        }
    }
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= want * 0.9 && *gap < want + 1.5,
            "retry gaps {gaps:?}, want about 1, 2, 4 s"
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Message { body, .. })) => assert_eq!(body, "eventually"),
        other => panic!("{other:?}"),
    }
    wait_event(
        &mut alice,
        Duration::from_secs(5),
        "delivered (pager mode)",
        |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, note, .. }
            if *message_id == id && note.as_deref() == Some("pager-mode"))
        },
    )
    .await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// `rcslab ue --user USER --lab <the lab's P-CSCF> ARGS...` as a child process.
fn rcslab_ue(lab: &Lab, user: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"));
    c.args(["ue", "--user", user, "--lab"])
        .arg(lab.addrs.pcscf.to_string())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

fn registered(lab: &Lab, impu: &str) -> bool {
    lab.scscf
        .registration(impu)
        .is_some_and(|r| !r.bindings.is_empty())
}

/// `rcslab ue send` prints `stored` for an offline recipient and `delivered` for an online one,
/// exits 0 both times, and leaves no contact registered (it de-registers before exiting).
#[tokio::test]
async fn ue_send_says_stored_or_delivered_and_deregisters_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let out = rcslab_ue(&lab, "carol", &["send", "bob", "are you there?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "stored");
    assert!(
        !registered(&lab, "sip:carol@ims.lab"),
        "carol de-registered"
    );
    assert_eq!(
        lab.tim
            .store()
            .unwrap()
            .pending_for("sip:bob@ims.lab")
            .len(),
        1
    );
    // bob comes: he gets it; carol is away, so its IMDN is owed to her.
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    wait_event(
        &mut bob,
        Duration::from_secs(5),
        "carol's message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "are you there?"),
    )
    .await;
    eventually("the IMDN owed to carol", || {
        lab.tim.store().unwrap().owed_to("sip:carol@ims.lab").len() == 1
    })
    .await;
    let out = rcslab_ue(&lab, "carol", &["send", "sip:bob@ims.lab", "now?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "delivered");
    assert!(
        !registered(&lab, "sip:carol@ims.lab"),
        "carol de-registered"
    );
    lab.shutdown().await;
}

/// `rcslab ue listen` prints a CPIM text whose inner part is base64
/// (`Content-Transfer-Encoding: base64`) decoded, and de-registers on Ctrl-C (SIGINT).
#[tokio::test]
async fn ue_listen_decodes_base64_cpim_and_deregisters_on_sigint() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut listen = rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(listen.stdout.take().unwrap()).lines();
    eventually("bob registered by `ue listen`", || {
        registered(&lab, "sip:bob@ims.lab")
    })
    .await;
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut cpim = Cpim::new(
        "sip:alice@ims.lab",
        "sip:bob@ims.lab",
        "b64-1",
        "2026-11-30T12:00:00.000Z",
        None,
        "text/plain;charset=UTF-8",
        b"SGVsbG8sIGJvYiAobm90IGJhc2U2NCBhbnkgbW9yZSk=",
    );
    cpim.content_headers
        .push(("Content-Transfer-Encoding".into(), "base64".into()));
    let mut req = alice.endpoint().new_request(
        Method::Message,
        "sip:bob@ims.lab",
        "sip:alice@ims.lab",
        1,
        Transport::Udp,
    );
    req.headers.push("Content-Type", "message/cpim");
    req.body = cpim.to_bytes().into();
    let resp = alice.send_tx(req).final_response().await;
    assert_eq!(resp.status, 200);
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("a line within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(line, "sip:alice@ims.lab: Hello, bob (not base64 any more)");
    let pid = listen.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), listen.wait())
        .await
        .expect("listen exits on SIGINT")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!registered(&lab, "sip:bob@ims.lab"), "bob de-registered");
    lab.shutdown().await;
}

/// What the soak's clients saw, across all their incarnations.
#[derive(Default)]
struct SoakLog {
    /// Per recipient: (sender, text) in arrival order.
    got: HashMap<String, Vec<(String, String)>>,
    /// Per message id: the "delivered" reports its sender got.
    delivered: HashMap<String, usize>,
    /// Messages the sending client itself reported failed (MSRP error on a dying session).
    send_failed: HashSet<String>,
}

impl SoakLog {
    /// The message reached `to` and its sender has the IMDN (or the sender's client itself
    /// reported it failed).
    fn arrived(&self, to: &str, text: &str, id: &str) -> bool {
        self.send_failed.contains(id)
            || (self.delivered.contains_key(id)
                && self
                    .got
                    .get(to)
                    .is_some_and(|g| g.iter().any(|(_, t)| t == text)))
    }
}

/// One registered incarnation of a soak user.
struct Incarnation {
    chat: ChatUe,
    stop: watch::Sender<bool>,
}

async fn come_online(lab: &Lab, user: &str, log: &Arc<Mutex<SoakLog>>) -> Incarnation {
    let (stop, shut) = watch::channel(false);
    let mut u = ue(lab, user, AuthMode::Digest, &shut).await;
    u.register(600).await.expect("registers");
    let mut chat = ChatUe::start(u, lab.trace.clone(), delivered_only());
    let mut events = chat.take_events();
    let (log, me) = (log.clone(), format!("sip:{user}@ims.lab"));
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Ok(mut l) = log.lock() else { return };
            match ev {
                ChatEvent::Message { from, text, .. } => {
                    l.got.entry(me.clone()).or_default().push((from, text))
                }
                ChatEvent::Status {
                    message_id,
                    status: ImdnStatus::Delivered,
                    ..
                } => *l.delivered.entry(message_id).or_default() += 1,
                ChatEvent::SendFailed { message_id, .. } if !message_id.is_empty() => {
                    l.send_failed.insert(message_id);
                }
                _ => {}
            }
        }
    });
    Incarnation { chat, stop }
}

/// The soak: 20 users go offline (de-registering, or vanishing and leaving a dead contact
/// registered) and come back at random (seeded) while online ones send to random others; at
/// the end everyone is online and every message has arrived exactly once, in order per
/// sender, every sender has exactly one IMDN "delivered" per message, and T-IM holds nothing
/// pending or owed.
#[tokio::test]
async fn soak_users_come_and_go_and_everything_arrives_exactly_once_in_order() {
    const USERS: usize = 20;
    const ROUNDS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &users_toml("s", USERS)).await;
    let log = Arc::new(Mutex::new(SoakLog::default()));
    // Deterministic; RCSLAB_SOAK_SEED picks another run of the same soak.
    let seed = std::env::var("RCSLAB_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let name = |i: usize| format!("s{i}");
    let aor = |i: usize| format!("sip:s{i}@ims.lab");
    let mut online: Vec<Option<Incarnation>> = (0..USERS).map(|_| None).collect();
    for (i, slot) in online.iter_mut().enumerate() {
        if rng.gen_bool(0.5) {
            *slot = Some(come_online(&lab, &name(i), &log).await);
        }
    }
    // (from, to, text, id), in sending order.
    let mut sent: Vec<(String, String, String, String)> = Vec::new();
    let mut vanished = 0;
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        for (i, slot) in online.iter_mut().enumerate() {
            if !rng.gen_bool(0.35) {
                continue;
            }
            match slot.take() {
                Some(inc) if rng.gen_bool(0.3) => {
                    // Vanish: the process dies, its contact stays registered (dead).
                    let _ = inc.stop.send(true);
                    drop(inc);
                    vanished += 1;
                }
                Some(inc) => {
                    assert!(inc.chat.deregister().await, "s{i} de-registers");
                }
                None => *slot = Some(come_online(&lab, &name(i), &log).await),
            }
        }
        for (i, slot) in online.iter().enumerate() {
            let Some(inc) = slot else { continue };
            if !rng.gen_bool(0.7) {
                continue;
            }
            let mut j = rng.gen_range(0..USERS - 1);
            if j >= i {
                j += 1;
            }
            let text = format!("s{i}->s{j} r{round} {}", sent.len());
            let id = inc.chat.send(&aor(j), &text).await;
            sent.push((aor(i), aor(j), text, id));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Everyone comes back.
    for (i, slot) in online.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(come_online(&lab, &name(i), &log).await);
        }
    }
    let done = |log: &SoakLog| {
        sent.iter()
            .all(|(_, to, text, id)| log.arrived(to, text, id))
    };
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let ok = done(&log.lock().unwrap())
            && pending_total(&lab) == 0
            && (0..USERS).all(|i| lab.tim.store().unwrap().owed_to(&aor(i)).is_empty());
        if ok {
            break;
        }
        if Instant::now() > until {
            let l = log.lock().unwrap();
            let missing: Vec<_> = sent
                .iter()
                .filter(|(_, to, text, id)| !l.arrived(to, text, id))
                .map(|(_, _, text, id)| {
                    format!("{text} (delivered reports: {:?})", l.delivered.get(id))
                })
                .collect();
            panic!(
                "not everything arrived within 40 s: {} pending at T-IM, missing {missing:#?}",
                pending_total(&lab)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failed = {
        let l = log.lock().unwrap();
        let failed = l.send_failed.len();
        for (from, to, text, id) in &sent {
            if l.send_failed.contains(id) {
                continue;
            }
            let times = l.got[to].iter().filter(|(_, t)| t == text).count();
            assert_eq!(times, 1, "'{text}' arrived {times} times");
            assert_eq!(
                l.delivered.get(id),
                Some(&1),
                "one IMDN delivered for '{text}' to {from}"
            );
        }
        // In order per sender (what each recipient got from each sender follows the sending order).
        for (to, got) in &l.got {
            let mut by_sender: HashMap<&str, Vec<&str>> = HashMap::new();
            for (from, text) in got {
                by_sender.entry(from).or_default().push(text);
            }
            for (from, texts) in by_sender {
                let order: Vec<&str> = sent
                    .iter()
                    .filter(|(f, t, text, _)| {
                        f == from && t == to && texts.contains(&text.as_str())
                    })
                    .map(|(_, _, text, _)| text.as_str())
                    .collect();
                assert_eq!(texts, order, "{from} -> {to} out of order");
            }
        }
        // The History API's view: none of them is left `pending` (or `sent` without a report).
        for (_, _, text, id) in &sent {
            if let Some(m) = lab.tim.store().unwrap().by_message_id(id) {
                assert_eq!(m.status, "delivered", "'{text}' in T-IM's history");
            }
        }
        failed
    };
    eprintln!(
        "soak (seed {seed}): {} messages, {vanished} dead contacts left behind, {failed} refused by the sending client, {:?}",
        sent.len(),
        t0.elapsed()
    );
    assert!(sent.len() >= 20 && vanished >= 3, "the soak did something");
    lab.shutdown().await;
}

/// A voice-only client that rings and never answers the chat INVITE (linphone): T-IM CANCELs
/// it after RING_LIMIT (12 s) and sends the text in pager mode; the sender learns it.
#[tokio::test]
async fn a_client_that_only_rings_is_cancelled_and_gets_a_pager_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", 180, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "pick up?").await;
    let at = match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Invite { at, .. })) => at,
        other => panic!("{other:?}"),
    };
    match tokio::time::timeout(Duration::from_secs(20), dave.recv()).await {
        Ok(Some(Seen::Cancel)) => {
            let waited = at.elapsed().as_secs_f64();
            assert!((11.0..15.0).contains(&waited), "CANCEL after {waited} s");
        }
        other => panic!("{other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Message { body, .. })) => assert_eq!(body, "pick up?"),
        other => panic!("{other:?}"),
    }
    wait_event(
        &mut alice,
        Duration::from_secs(5),
        "delivered (pager mode)",
        |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, note, .. }
            if *message_id == id && note.as_deref() == Some("pager-mode"))
        },
    )
    .await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// When pager mode fails too, the sender is told why, at once: `rcslab ue send` prints
/// `failed: <reason>` and exits 1; nothing stays stored.
#[tokio::test]
async fn ue_send_prints_the_reason_when_pager_mode_fails_too() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua_answering(&lab, "dave", vec![488], 403, &shut).await;
    let out = rcslab_ue(&lab, "alice", &["send", "sip:dave@ims.lab", "hello?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("failed: chat refused (488 ")
            && stdout.contains("pager MESSAGE answered 403"),
        "{stdout}"
    );
    assert!(matches!(dave.recv().await, Some(Seen::Invite { .. })));
    assert!(matches!(dave.recv().await, Some(Seen::Message { .. })));
    assert_eq!(pending_total(&lab), 0);
    let h = lab
        .tim
        .store()
        .unwrap()
        .history("sip:alice@ims.lab", "sip:dave@ims.lab", 0, 10);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].status, "failed");
    assert!(
        !registered(&lab, "sip:alice@ims.lab"),
        "alice de-registered"
    );
    lab.shutdown().await;
}

/// A web user who logs out and in again, several times, while an RCS user writes to them:
/// what was stored meanwhile arrives within seconds of each login (the web client accepts and
/// reports delivered), the sender gets every IMDN, and T-IM's History shows nothing left
/// `pending`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_user_logging_out_and_in_gets_everything_and_nothing_stays_pending() {
    use crate::web::{call, login, Channel};
    use hyper::Method as Http;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = chat_ue(&lab, "alice", &shut, delivered_only()).await;
    let w = lab.addrs.webrsf;
    let mut ids = Vec::new();
    for round in 0..3 {
        // While bob is away: two messages, stored.
        for k in 0..2 {
            ids.push(
                alice
                    .send("sip:bob@ims.lab", &format!("r{round} m{k}"))
                    .await,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t0 = Instant::now();
        let start = flow(&lab).len();
        let token = login(&lab, "bob", "bob-secret").await;
        let mut ch = Channel::open(&lab, "bob", &token, 0).await;
        let mut delivered = 0;
        while delivered < 2 {
            let Some(ev) = ch.try_next(Duration::from_secs(5)).await else {
                panic!(
                    "round {round}: no event within 5 s; pending at T-IM: {}; ladder:\n{}",
                    pending_total(&lab),
                    chat_flow(&lab, start).join("\n")
                );
            };
            let inst = ev["instance"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("")
                .to_string();
            let mid = ev["data"]["message_id"].as_str().unwrap_or("").to_string();
            let incoming = (ev["type"] == "chat" && ev["data"]["status"] == "initiate")
                || ev["type"] == "messageNotification";
            if !incoming || mid.is_empty() {
                continue;
            }
            let (s, v) = call(
                w,
                Http::PUT,
                &format!("/webrsf/v1/bob/Chat/{inst}"),
                Some(&token),
                Some(json!({"status": "delivered", "message_id": mid})),
            )
            .await;
            assert_eq!(s, 200, "{v}");
            delivered += 1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "round {round}: {:?}",
            t0.elapsed()
        );
        for id in &ids[ids.len() - 2..] {
            wait_event(&mut alice, Duration::from_secs(5), "IMDN delivered", |e| {
                matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, .. } if message_id == id)
            })
            .await;
        }
        // The History API: nothing left pending or merely sent (T-IM records the IMDN as
        // it relays it, a moment after alice has it).
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let (s, hist) = call(
                w,
                Http::GET,
                "/webrsf/v1/bob/History/alice",
                Some(&token),
                None,
            )
            .await;
            assert_eq!(s, 200);
            statuses = hist
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["status"].as_str().unwrap_or("").to_string())
                .collect();
            if statuses.iter().all(|s| s == "delivered") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(statuses.len(), ids.len());
        assert!(
            statuses.iter().all(|s| s == "delivered"),
            "round {round}: {statuses:?}"
        );
        let (s, _) = call(
            w,
            Http::DELETE,
            "/webrsf/v1/bob/Session",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(s, 200);
        drop(ch);
        eventually("bob logged out", || !registered(&lab, "sip:bob@ims.lab")).await;
    }
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// A voice-only phone that picks the chat up as a call (200 with audio, no MSRP): T-IM hangs
/// up (BYE) and sends the text in pager mode; nothing is lost or left stored.
#[tokio::test]
async fn a_phone_that_answers_the_chat_as_a_call_gets_a_bye_and_a_pager_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", 200, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "not a call").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
            Ok(Some(Seen::Invite { .. })) => seen.push("INVITE".to_string()),
            Ok(Some(Seen::Bye)) => seen.push("BYE".to_string()),
            Ok(Some(Seen::Message { body, .. })) => seen.push(format!("MESSAGE {body}")),
            other => panic!("{other:?} after {seen:?}"),
        }
    }
    assert_eq!(seen, ["INVITE", "BYE", "MESSAGE not a call"]);
    wait_event(
        &mut alice,
        Duration::from_secs(5),
        "delivered (pager mode)",
        |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, note, .. }
            if *message_id == id && note.as_deref() == Some("pager-mode"))
        },
    )
    .await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}
