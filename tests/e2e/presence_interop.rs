//! Presence with clients nobody here wrote (RFC 3856, RFC 3903, RFC 6665 through the core, as
//! TS 24.141 routes them): Debian's baresip with its `presence` module, and linphonec, each
//! registered through the lab's P-CSCF, subscribe to a user of ours and publish their own
//! state; the other side is the rcslab CLI UE (`rcslab ue ... status` / `watch`). Every
//! request goes UE -> P-CSCF -> S-CSCF -> I-CSCF -> S-CSCF -> PS (iFC), each NOTIFY comes back
//! PS -> S-CSCF -> P-CSCF -> UE, and the tests read both off the lab's flight recorder, one
//! transaction at a time (by Call-ID and CSeq method), next to what the clients print.
//!
//! baresip 1.0.0 knows four states (Unknown, Online, Offline, Busy) and reads a NOTIFY with
//! regular expressions (modules/presence/subscriber.c): `<basic>open</basic>` is Online,
//! `<rpid:busy/>` Busy, and `<rpid:away/>` Offline — its own mapping, so alice `away` shows
//! there as Offline. It publishes (`;pubint=` on the account) once registered, and again on
//! `/presence_offline` and `/presence_online` (modules/presence/publisher.c).

use std::time::Duration;

use rcslab::trace::Protocol;
use rcslab::Lab;
use tokio::io::AsyncBufReadExt;

use crate::clients::{name_registered_clients, Baresip, BaresipExtras, Linphone, Output};
use crate::{eventually, lab_with, rcslab_ue};

const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";
const WAIT: Duration = Duration::from_secs(15);

/// One SIP message as it crossed the wire, with the parts the tests look at.
#[derive(Clone, Debug)]
struct Sip {
    /// `FROM -> TO SIP METHOD` (or the status code), the ladder line of [`crate::flow`].
    line: String,
    call_id: String,
    /// The method of its CSeq: a response is filed with its request.
    cseq_method: String,
    /// True for a request.
    request: bool,
    text: String,
}

impl Sip {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.text, name)
    }

    fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// The value of header `name` (full name, case-insensitive) in a SIP message's head.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Every SIP message the lab recorded, in order, its ends named as in ladders.
fn sip_messages(lab: &Lab) -> Vec<Sip> {
    rcslab::trace_view::export::wire_events(&lab.trace)
        .into_iter()
        .filter(|e| matches!(e.protocol, Protocol::SipUdp | Protocol::SipTcp))
        .map(|e| {
            let text = String::from_utf8_lossy(&e.bytes).to_string();
            let request = !e.summary.starts_with("SIP/2.0 ");
            let what = if request {
                e.summary.split_whitespace().next()
            } else {
                e.summary.split_whitespace().nth(1)
            }
            .unwrap_or("")
            .to_string();
            let cseq_method = header(&text, "CSeq")
                .and_then(|c| c.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string();
            Sip {
                line: format!(
                    "{} -> {} SIP {what}",
                    lab.name_of(e.src()),
                    lab.name_of(e.dst())
                ),
                call_id: header(&text, "Call-ID").unwrap_or("").to_string(),
                cseq_method,
                request,
                text,
            }
        })
        .collect()
}

/// The ladder lines of `method` transactions (requests and their responses) with `call_id`.
fn lines(lab: &Lab, call_id: &str, method: &str) -> Vec<String> {
    sip_messages(lab)
        .into_iter()
        .filter(|m| m.call_id == call_id && m.cseq_method == method)
        .map(|m| m.line)
        .collect()
}

/// Waits until the `method` transactions of `call_id` have `n` ladder lines, and returns them.
async fn lines_once(lab: &Lab, call_id: &str, method: &str, n: usize) -> Vec<String> {
    let what = format!("{n} lines of {method} in {call_id}");
    eventually(&what, || lines(lab, call_id, method).len() >= n).await;
    lines(lab, call_id, method)
}

/// The requests `from` sent of `method` (e.g. `UE bob`, `PUBLISH`), in order.
fn requests_from(lab: &Lab, from: &str, method: &str) -> Vec<Sip> {
    let head = format!("{from} -> ");
    let tail = format!(" SIP {method}");
    sip_messages(lab)
        .into_iter()
        .filter(|m| m.request && m.line.starts_with(&head) && m.line.ends_with(&tail))
        .collect()
}

/// The messages delivered to `to` (e.g. `UE bob`) of `method` transactions, in order.
fn delivered_to(lab: &Lab, to: &str, method: &str, request: bool) -> Vec<Sip> {
    let arrow = format!(" -> {to} SIP ");
    sip_messages(lab)
        .into_iter()
        .filter(|m| m.request == request && m.cseq_method == method && m.line.contains(&arrow))
        .collect()
}

/// A request from `user`'s client to the PS of the user it names, and the PS's answer back,
/// through the core: the SIP of TS 24.229's terminating-side iFC routing (the Cx LIR/LIA of
/// the I-CSCF carry no Call-ID, so they are not in a transaction's lines).
fn to_ps(user: &str, method: &str, status: &str) -> Vec<String> {
    [
        format!("UE {user} -> P-CSCF SIP {method}"),
        format!("P-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> I-CSCF SIP {method}"),
        format!("I-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> PS SIP {method}"),
        format!("PS -> S-CSCF SIP {status}"),
        format!("S-CSCF -> I-CSCF SIP {status}"),
        format!("I-CSCF -> S-CSCF SIP {status}"),
        format!("S-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE {user} SIP {status}"),
    ]
    .into()
}

/// A NOTIFY from the PS to `user`'s client along the subscription's route set, and its 200.
fn notify_to(user: &str) -> Vec<String> {
    [
        "PS -> S-CSCF SIP NOTIFY".to_string(),
        "S-CSCF -> P-CSCF SIP NOTIFY".into(),
        format!("P-CSCF -> UE {user} SIP NOTIFY"),
        format!("UE {user} -> P-CSCF SIP 200"),
        "P-CSCF -> S-CSCF SIP 200".into(),
        "S-CSCF -> PS SIP 200".into(),
    ]
    .into()
}

/// `s` without ANSI colour sequences (baresip colours presence states).
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until a client has printed `needle` (colours aside).
async fn printed(out: &Output, needle: &str, who: &str) {
    let end = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < end {
        if plain(&out.text()).contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{who} never printed {needle:?}; it printed:\n{}",
        plain(&out.text())
    );
}

/// The state baresip's `/contacts` shows for `aor` (`Unknown`, `Online`, `Offline`, `Busy`).
async fn contact_status(b: &mut Baresip, aor: &str) -> String {
    let r = b.command("contacts", "").await;
    let listing = plain(r["data"].as_str().unwrap_or(""));
    listing
        .lines()
        .find(|l| l.contains(&format!("<{aor}>")))
        .and_then(|l| l.trim_start_matches([' ', '>']).split_whitespace().next())
        .unwrap_or_else(|| panic!("{aor} is not in baresip's contacts:\n{listing}"))
        .to_string()
}

/// `rcslab ue --user USER ARGS...` run to its end (its entity-tag file in `dir`): stdout.
async fn ue_cli(lab: &Lab, dir: &std::path::Path, user: &str, args: &[&str]) -> String {
    let out = rcslab_ue(lab, user, args).env("TMPDIR", dir).output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("rcslab ue finishes")
        .expect("rcslab ue runs");
    assert!(
        out.status.success(),
        "rcslab ue --user {user} {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `rcslab ue --user USER watch TARGET` running: the next line it prints, within [`WAIT`].
struct Watch {
    _child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Watch {
    fn start(lab: &Lab, dir: &std::path::Path, user: &str, target: &str) -> Watch {
        let mut child = rcslab_ue(lab, user, &["watch", target])
            .env("TMPDIR", dir)
            .spawn()
            .expect("rcslab ue watch starts");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        Watch {
            _child: child,
            lines,
        }
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the watcher prints a line in time")
            .expect("the watcher's stdout")
            .expect("the watcher still runs")
    }
}

/// baresip, registered as bob, subscribes to alice as its contact list says (`;presence=p2p`):
/// the SUBSCRIBE reaches the PS through the core, the NOTIFYs come back along the route set,
/// and each status alice sets with `rcslab ue ... status` shows in baresip as its own state.
#[tokio::test]
async fn baresip_watches_alice_through_the_core_and_sees_each_status_she_sets() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // alice stays registered (the PS shows a user with no registration offline); her
    // `rcslab ue ... status` commands come and go beside this contact.
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    let presence = BaresipExtras {
        subscribe: true,
        pubint: 0,
        ..Default::default()
    };
    let mut bob =
        Baresip::start_with(dir.path(), "bob", "alice", lab.addrs.pcscf, false, presence).await;
    name_registered_clients(&lab);

    // baresip subscribes a second after it starts. alice has published nothing: her document
    // has no tuple, no <basic>, and baresip reads that as Offline.
    printed(&bob.out, "Subscribing to 1 contacts", "baresip").await;
    eventually("baresip's SUBSCRIBE", || {
        !requests_from(&lab, "UE bob", "SUBSCRIBE").is_empty()
    })
    .await;
    let sub = requests_from(&lab, "UE bob", "SUBSCRIBE").remove(0);
    assert!(sub
        .text
        .starts_with(&format!("SUBSCRIBE {ALICE} SIP/2.0\r\n")));
    assert_eq!(sub.header("Event"), Some("presence"));
    assert!(sub.header("From").unwrap().contains(BOB), "{}", sub.text);
    let call_id = sub.call_id.clone();
    assert_eq!(
        lines_once(&lab, &call_id, "SUBSCRIBE", 10).await,
        to_ps("bob", "SUBSCRIBE", "200")
    );
    assert_eq!(
        lines_once(&lab, &call_id, "NOTIFY", 6).await,
        notify_to("bob")
    );
    let first = delivered_to(&lab, "UE bob", "NOTIFY", true).remove(0);
    assert!(
        first
            .header("Subscription-State")
            .is_some_and(|s| s.starts_with("active;expires=")),
        "{}",
        first.text
    );
    assert_eq!(first.header("Content-Type"), Some("application/pidf+xml"));
    assert!(
        first.body().contains(&format!("entity=\"{ALICE}\"")),
        "{}",
        first.text
    );
    assert_eq!(contact_status(&mut bob, ALICE).await, "Offline");

    // alice sets a status: one NOTIFY more in bob's dialog, the PIDF saying it, and baresip
    // reports the change in its own words.
    let steps: [(&[&str], &str, &[&str]); 4] = [
        (
            &["status", "busy", "on a call"],
            "Busy",
            &[
                "<basic>open</basic>",
                "<rpid:busy/>",
                "<dm:note>on a call</dm:note>",
            ],
        ),
        (
            &["status", "away", "in a meeting"],
            "Offline",
            &[
                "<basic>open</basic>",
                "<rpid:away/>",
                "<dm:note>in a meeting</dm:note>",
            ],
        ),
        (&["status", "online"], "Online", &["<basic>open</basic>"]),
        (
            &["status", "offline"],
            "Offline",
            &["<basic>closed</basic>"],
        ),
    ];
    let mut was = "Offline";
    for (i, (args, shows, pidf)) in steps.into_iter().enumerate() {
        let said = ue_cli(&lab, dir.path(), "alice", args).await;
        assert!(said.starts_with("published: "), "{said}");
        printed(
            &bob.out,
            &format!("<{ALICE}> changed status from {was} to {shows}"),
            "baresip",
        )
        .await;
        assert_eq!(contact_status(&mut bob, ALICE).await, shows, "{args:?}");
        let notifys = lines_once(&lab, &call_id, "NOTIFY", 6 * (i + 2)).await;
        assert_eq!(
            notifys.len(),
            6 * (i + 2),
            "one NOTIFY per PUBLISH: {notifys:#?}"
        );
        assert_eq!(notifys[6 * (i + 1)..], notify_to("bob"), "{args:?}");
        let got = delivered_to(&lab, "UE bob", "NOTIFY", true)
            .pop()
            .expect("a NOTIFY");
        assert_eq!(got.call_id, call_id);
        for needle in pidf {
            assert!(got.body().contains(needle), "{needle} in\n{}", got.text);
        }
        if matches!(args[1], "online" | "offline") {
            assert!(!got.body().contains("<rpid:"), "{}", got.text);
        }
        was = shows;
    }

    // baresip drops the module: it unsubscribes (RFC 6665 §4.1.2.3) in the dialog, along the
    // route set it took from the 200 or from the first NOTIFY, whichever came first (the
    // NOTIFY may overtake the 200, §4.1.2.4): both carry the core's Record-Route, so the
    // unsubscribe goes through the P-CSCF and the S-CSCF, never straight to the PS's Contact.
    bob.command("rmmod", "presence").await;
    let at_ps = |lab: &Lab| -> Vec<Sip> {
        sip_messages(lab)
            .into_iter()
            .filter(|m| {
                m.request && m.call_id == call_id && m.line.ends_with("-> PS SIP SUBSCRIBE")
            })
            .collect()
    };
    eventually("baresip's unsubscribe at the PS", || at_ps(&lab).len() == 2).await;
    let unsubscribe = at_ps(&lab).pop().unwrap();
    assert_eq!(
        unsubscribe.header("Expires"),
        Some("0"),
        "{}",
        unsubscribe.text
    );
    let got = lines(&lab, &call_id, "SUBSCRIBE");
    let through_the_core = [
        "UE bob -> P-CSCF SIP SUBSCRIBE",
        "P-CSCF -> S-CSCF SIP SUBSCRIBE",
        "S-CSCF -> PS SIP SUBSCRIBE",
    ]
    .map(String::from);
    assert_eq!(got.get(10..13), Some(&through_the_core[..]), "{got:#?}");
    assert_eq!(
        lines_once(&lab, &call_id, "SUBSCRIBE", 16).await[10..],
        [
            "UE bob -> P-CSCF SIP SUBSCRIBE",
            "P-CSCF -> S-CSCF SIP SUBSCRIBE",
            "S-CSCF -> PS SIP SUBSCRIBE",
            "PS -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE bob SIP 200",
        ]
    );
    lab.shutdown().await;
}

/// baresip, registered as bob with `;pubint=600`, publishes its presence through the core on
/// `/presence_online` and `/presence_offline`, each after the first a modification of the
/// last (SIP-If-Match, RFC 3903 §4.4); alice's `rcslab ue ... watch bob` prints each state.
///
/// The module is loaded once bob is registered (`/insmod presence`): loaded at start, it
/// publishes 10 ms later (a timer) and again on REGISTER_OK, two initial publications when the
/// REGISTER wins the race (as it does against a lab in the same process); baresip keeps the
/// entity-tag of one, so the other stays open at the PS whatever it publishes next. Loaded
/// later, the timer's PUBLISH carries `<basic>unknown</basic>` (its state before any
/// `/presence_*`), which is no RFC 3863 §4.1.4 status: the PS answers 400 and says why.
#[tokio::test]
async fn baresip_publishes_and_an_rcslab_watcher_sees_it_change() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let presence = BaresipExtras {
        subscribe: false,
        pubint: 600,
        ..Default::default()
    };
    let mut bob =
        Baresip::start_with(dir.path(), "bob", "alice", lab.addrs.pcscf, false, presence).await;
    name_registered_clients(&lab);
    let mut watch = Watch::start(&lab, dir.path(), "alice", "bob");
    // bob has published nothing yet.
    assert_eq!(watch.next_line().await, "sip:bob@ims.lab: closed");

    bob.command("insmod", "presence").await;
    printed(&bob.out, "publisher got error response 400", "baresip").await;
    let unknown = requests_from(&lab, "UE bob", "PUBLISH").remove(0);
    assert!(
        unknown.body().contains("<basic>unknown</basic>"),
        "{}",
        unknown.text
    );
    assert_eq!(
        lines_once(&lab, &unknown.call_id, "PUBLISH", 10).await,
        to_ps("bob", "PUBLISH", "400")
    );
    let refusal = delivered_to(&lab, "UE bob", "PUBLISH", false).remove(0);
    assert!(
        refusal
            .header("Warning")
            .is_some_and(|w| w.contains("ps.ims.lab") && w.contains("<basic> is 'unknown'")),
        "{}",
        refusal.text
    );

    let answered = |lab: &Lab| {
        delivered_to(lab, "UE bob", "PUBLISH", false)
            .iter()
            .filter(|r| r.text.starts_with("SIP/2.0 200 "))
            .count()
    };
    for (k, (command, basic)) in [
        ("presence_online", "open"),
        ("presence_offline", "closed"),
        ("presence_online", "open"),
    ]
    .into_iter()
    .enumerate()
    {
        bob.command(command, "").await;
        assert_eq!(watch.next_line().await, format!("sip:bob@ims.lab: {basic}"));
        // baresip names the entity-tag of this PUBLISH's 200 in its next one, so the 200 must
        // be there first (the NOTIFY the watcher printed may overtake it: its path is
        // shorter); a command after it is handled after it by baresip's one event loop.
        eventually("the 200 back at baresip", || answered(&lab) == k + 1).await;
        bob.command("reginfo", "").await;
    }

    // On the wire: the three PUBLISHes the PS took, each through the core, each but the first
    // naming the entity-tag the last one got.
    let publishes = requests_from(&lab, "UE bob", "PUBLISH");
    assert_eq!(publishes.len(), 4, "{publishes:#?}");
    let mut etag: Option<String> = None;
    for (p, basic) in publishes[1..].iter().zip(["open", "closed", "open"]) {
        assert_eq!(
            lines_once(&lab, &p.call_id, "PUBLISH", 10).await,
            to_ps("bob", "PUBLISH", "200")
        );
        assert_eq!(p.header("Event"), Some("presence"));
        assert_eq!(p.header("Content-Type"), Some("application/pidf+xml"));
        assert_eq!(p.header("Expires"), Some("600"));
        assert_eq!(p.header("SIP-If-Match"), etag.as_deref(), "{}", p.text);
        let body = p.body();
        assert!(body.contains(&format!("entity=\"{BOB}\"")), "{body}");
        assert!(body.contains(&format!("<basic>{basic}</basic>")), "{body}");
        let ok = delivered_to(&lab, "UE bob", "PUBLISH", false)
            .into_iter()
            .find(|r| r.call_id == p.call_id)
            .expect("the 200");
        etag = Some(ok.header("SIP-ETag").expect("SIP-ETag").to_string());
    }
    lab.shutdown().await;
}

/// linphonec, registered as carol with `publish=1`, publishes its presence through the core
/// (bob's `rcslab ue ... watch carol` sees it open, then closed when linphonec quits and
/// withdraws it), and subscribes to a friend added with `friend add`: alice's statuses reach
/// it as NOTIFYs along the route set and linphonec prints each (`Friend ... is Busy`).
///
/// linphonec 5.1 has no command to set its own status (`status` reports `register`,
/// `autoanswer` and `hook`), so what it publishes is liblinphone's default, open, from
/// registration until it quits.
#[tokio::test]
async fn linphonec_publishes_and_watches_alice_through_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // alice stays registered (the PS shows a user with no registration offline); her
    // `rcslab ue ... status` commands come and go beside this contact.
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let mut alice = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    let mut watch = Watch::start(&lab, dir.path(), "bob", "carol");
    // carol has published nothing yet.
    assert_eq!(watch.next_line().await, "sip:carol@ims.lab: closed");
    let mut carol = Linphone::start_with(dir.path(), "carol", lab.addrs.pcscf, false, true).await;
    name_registered_clients(&lab);
    assert_eq!(watch.next_line().await, "sip:carol@ims.lab: open");
    let publish = requests_from(&lab, "UE carol", "PUBLISH").remove(0);
    assert_eq!(
        lines_once(&lab, &publish.call_id, "PUBLISH", 10).await,
        to_ps("carol", "PUBLISH", "200")
    );
    assert_eq!(publish.header("Event"), Some("presence"));
    assert!(
        publish.body().contains("<basic>open</basic>")
            && publish.body().contains("entity=\"sip:carol@ims.lab\""),
        "{}",
        publish.text
    );

    carol.send("friend add alice sip:alice@ims.lab").await;
    eventually("linphonec's SUBSCRIBE", || {
        !requests_from(&lab, "UE carol", "SUBSCRIBE").is_empty()
    })
    .await;
    let sub = requests_from(&lab, "UE carol", "SUBSCRIBE").remove(0);
    assert!(sub
        .text
        .starts_with(&format!("SUBSCRIBE {ALICE} SIP/2.0\r\n")));
    assert_eq!(
        lines_once(&lab, &sub.call_id, "SUBSCRIBE", 10).await,
        to_ps("carol", "SUBSCRIBE", "200")
    );
    assert_eq!(
        lines_once(&lab, &sub.call_id, "NOTIFY", 6).await,
        notify_to("carol")
    );
    // alice has published nothing.
    printed(
        &carol.out,
        "Friend \"alice\" <sip:alice@ims.lab> is Offline",
        "linphonec",
    )
    .await;

    let mut n = 1;
    for (args, shows) in [
        (&["status", "busy", "on a call"][..], "Busy"),
        (&["status", "away", "in a meeting"], "Away"),
        (&["status", "online"], "Online"),
    ] {
        ue_cli(&lab, dir.path(), "alice", args).await;
        printed(
            &carol.out,
            &format!("Friend \"alice\" <sip:alice@ims.lab> is {shows}"),
            "linphonec",
        )
        .await;
        n += 1;
        let notifys = lines_once(&lab, &sub.call_id, "NOTIFY", 6 * n).await;
        assert_eq!(notifys[6 * (n - 1)..], notify_to("carol"), "{args:?}");
    }

    // linphonec quits: it withdraws its publication (Expires 0), which bob sees.
    carol.send("quit").await;
    let line = watch.next_line().await;
    assert!(line.starts_with("sip:carol@ims.lab: closed"), "{line}");
    // On the wire: the withdrawal (RFC 3903 §4.5: the entity-tag, Expires 0, no body) and
    // the unsubscription (RFC 6665 §4.1.2.3), in the dialog along the route set the 200 gave
    // (P-CSCF, S-CSCF), each answered 200 by the PS.
    let withdraw = requests_from(&lab, "UE carol", "PUBLISH").pop().unwrap();
    assert_eq!(withdraw.header("Expires"), Some("0"), "{}", withdraw.text);
    assert!(
        withdraw.header("SIP-If-Match").is_some(),
        "{}",
        withdraw.text
    );
    assert!(withdraw.body().is_empty(), "{}", withdraw.text);
    // (liblinphone sends all its PUBLISHes with one Call-ID)
    let n = requests_from(&lab, "UE carol", "PUBLISH")
        .iter()
        .filter(|p| p.call_id == withdraw.call_id)
        .count();
    assert_eq!(
        lines_once(&lab, &withdraw.call_id, "PUBLISH", 10 * n).await[10 * (n - 1)..],
        to_ps("carol", "PUBLISH", "200")
    );
    let unsubscribe = requests_from(&lab, "UE carol", "SUBSCRIBE").pop().unwrap();
    assert_eq!(unsubscribe.call_id, sub.call_id);
    assert_eq!(unsubscribe.header("Expires"), Some("0"));
    assert_eq!(
        lines_once(&lab, &sub.call_id, "SUBSCRIBE", 16).await[10..],
        [
            "UE carol -> P-CSCF SIP SUBSCRIBE",
            "P-CSCF -> S-CSCF SIP SUBSCRIBE",
            "S-CSCF -> PS SIP SUBSCRIBE",
            "PS -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE carol SIP 200",
        ]
    );
    lab.shutdown().await;
}
