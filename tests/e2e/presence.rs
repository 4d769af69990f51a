//! Presence (issue 16; TS 24.141, RFC 3856, RFC 3903, RFC 6665): PUBLISH and SUBSCRIBE of the
//! `presence` event package for a user of ours reach the presence server PS through the
//! terminating S-CSCF's iFC (default lab, priority 40); NOTIFYs come back in the subscription
//! dialog along its route set (S-CSCF, P-CSCF). Plain `Ue`s send the requests, over real
//! sockets, and the ladders are asserted line by line.
//!
//! A response and a NOTIFY the PS sends right after it travel at once (the 200 back along the
//! Vias, the NOTIFY along the route set, which is shorter), so where both are on the wire the
//! test asserts that the ladder is an interleaving of the two exact sequences.

use std::time::Duration;

use rcslab::presence::pidf::{Basic, Pidf, PidfLimits, Tuple};
use rcslab::sip::{Method, NameAddr, Request, Response, Transport};
use rcslab::ue::{AuthMode, Ue};
use rcslab::Lab;
use tokio::sync::watch;

use crate::{flow, lab_with, rcslab_ue, tshark_on, ue};

const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";

/// A lab (default, with `extra` merged in) with alice and bob registered: the directory and
/// the shutdown sender must live as long as the test.
pub(crate) async fn alice_and_bob(
    extra: &str,
) -> (tempfile::TempDir, Lab, watch::Sender<bool>, Ue, Ue) {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), extra).await;
    let (stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    bob.register(600).await.expect("bob registers");
    (dir, lab, stop, alice, bob)
}

/// A PIDF of `entity` with one tuple.
pub(crate) fn pidf(entity: &str, basic: Basic) -> String {
    let mut d = Pidf::empty(entity);
    d.tuples.push(Tuple::new("t1", basic));
    d.to_xml()
}

/// A PUBLISH of `ue`'s own presence (`identity`), sent through its P-CSCF.
pub(crate) async fn publish(
    ue: &Ue,
    identity: &str,
    event: &str,
    if_match: Option<&str>,
    expires: u32,
    body: Option<(&str, &str)>,
) -> Response {
    let mut r = ue
        .endpoint()
        .new_request(Method::Publish, identity, identity, 1, Transport::Udp);
    r.headers.push("Event", event);
    r.headers.push("Expires", expires.to_string());
    if let Some(tag) = if_match {
        r.headers.push("SIP-If-Match", tag);
    }
    if let Some((ct, b)) = body {
        r.headers.push("Content-Type", ct);
        r.body = bytes::Bytes::copy_from_slice(b.as_bytes());
    }
    ue.send_tx(r).final_response().await
}

/// The initial SUBSCRIBE of `watcher` (`ue`) to `presentity`, and its final response.
async fn subscribe(ue: &Ue, watcher: &str, presentity: &str) -> (Request, Response) {
    let mut r =
        ue.endpoint()
            .new_request(Method::Subscribe, presentity, watcher, 1, Transport::Udp);
    r.headers.push("Contact", format!("<{}>", ue.contact()));
    r.headers.push("Event", "presence");
    r.headers.push("Accept", "application/pidf+xml");
    r.headers.push("Expires", "600");
    let resp = ue.send_tx(r.clone()).final_response().await;
    (r, resp)
}

/// A SUBSCRIBE inside the dialog `sub` / `ok` opened (RFC 3261 §12.2.1.1: the route set is
/// the 200's Record-Route reversed), with `to` as the To header.
pub(crate) fn resubscribe(
    ue: &Ue,
    sub: &Request,
    ok: &Response,
    to: &str,
    expires: u32,
) -> Request {
    let target = ok
        .headers
        .get("Contact")
        .and_then(|c| NameAddr::parse(c).ok())
        .map(|na| na.uri.to_string())
        .expect("the 200 names the PS's Contact");
    let mut r = Request::new(Method::Subscribe, target);
    r.headers.push("Via", ue.endpoint().new_via(Transport::Udp));
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", sub.headers.get("From").unwrap());
    r.headers.push("To", to);
    r.headers
        .push("Call-ID", sub.headers.get("Call-ID").unwrap());
    r.headers.push("CSeq", "2 SUBSCRIBE");
    for route in ok.headers.values("Record-Route").iter().rev() {
        r.headers.push("Route", *route);
    }
    r.headers.push("Contact", format!("<{}>", ue.contact()));
    r.headers.push("Event", "presence");
    r.headers.push("Expires", expires.to_string());
    r
}

/// The next NOTIFY `ue` gets within `wait`, answered 200: its Subscription-State and body.
async fn notify(ue: &mut Ue, wait: Duration) -> (String, Option<Pidf>) {
    let inc = ue.next_request(wait).await.expect("a NOTIFY comes");
    assert_eq!(inc.request.method, Method::Notify);
    assert_eq!(inc.request.headers.get("Event"), Some("presence"));
    let state = inc
        .request
        .headers
        .get("Subscription-State")
        .unwrap_or_default()
        .to_string();
    let body = (!inc.request.body.is_empty()).then(|| {
        assert_eq!(
            inc.request.headers.get("Content-Type"),
            Some("application/pidf+xml")
        );
        Pidf::parse(&inc.request.body, &PidfLimits::default()).expect("a PIDF")
    });
    inc.tx.respond(inc.request.response(200, None));
    (state, body)
}

/// One request from `ue` to the PS of `target` and its final answer back, `status`.
pub(crate) fn to_ps(user: &str, method: &str, status: &str) -> Vec<String> {
    [
        format!("UE {user} -> P-CSCF SIP {method}"),
        format!("P-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> I-CSCF SIP {method}"),
        "I-CSCF -> HSS Diameter LIR".into(),
        "HSS -> I-CSCF Diameter LIA".into(),
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

/// The two ladders of a presentity's first PUBLISH (`status` = 200): before it answers, the
/// PS subscribes to the user's reg event at the S-CSCF and takes the first NOTIFY (the
/// S-CSCF's 200 and NOTIFY may cross).
pub(crate) fn first_publish(user: &str) -> [Vec<String>; 2] {
    let ps = to_ps(user, "PUBLISH", "200");
    let (to, back) = ps.split_at(7);
    [
        ["S-CSCF -> PS SIP 200", "S-CSCF -> PS SIP NOTIFY"],
        ["S-CSCF -> PS SIP NOTIFY", "S-CSCF -> PS SIP 200"],
    ]
    .map(|mid| {
        let mut want: Vec<String> = to.to_vec();
        want.push("PS -> S-CSCF SIP SUBSCRIBE".into());
        want.extend(mid.iter().map(|s| s.to_string()));
        want.push("PS -> S-CSCF SIP 200".into());
        want.extend(back.iter().cloned());
        want
    })
}

/// True when `got` is the ladder of `user`'s first PUBLISH ([`first_publish`]).
pub(crate) fn is_first_publish(got: &[String], user: &str) -> bool {
    first_publish(user).iter().any(|w| got == w.as_slice())
}

/// A NOTIFY from the PS to `user` along the route set, and its 200 back.
pub(crate) fn notify_to(user: &str) -> Vec<String> {
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

/// True when `got` is `a` and `b` interleaved, each in its order.
pub(crate) fn interleaves(got: &[String], a: &[String], b: &[String]) -> bool {
    if got.len() != a.len() + b.len() {
        return false;
    }
    // ok[i][j]: got[..i+j] is an interleaving of a[..i] and b[..j].
    let mut ok = vec![vec![false; b.len() + 1]; a.len() + 1];
    ok[0][0] = true;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            if i > 0 && ok[i - 1][j] && got[i + j - 1] == a[i - 1] {
                ok[i][j] = true;
            }
            if j > 0 && ok[i][j - 1] && got[i + j - 1] == b[j - 1] {
                ok[i][j] = true;
            }
        }
    }
    ok[a.len()][b.len()]
}

/// The ladder once it holds `n` lines (the last 200 of a NOTIFY may still be on its way).
pub(crate) async fn flow_of(lab: &Lab, n: usize) -> Vec<String> {
    crate::eventually(&format!("{n} ladder lines"), || flow(lab).len() >= n).await;
    flow(lab)
}

pub(crate) fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers.get(name).unwrap_or_default()
}

#[tokio::test]
async fn alice_publishes_refreshes_and_gets_412_and_423() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");

    lab.trace.clear();
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = header(&r, "SIP-ETag").to_string();
    assert!(!etag.is_empty());
    assert_eq!(header(&r, "Expires"), "600");
    let got = flow(&lab);
    assert!(is_first_publish(&got, "alice"), "{got:#?}");
    assert!(lab.ps.document(ALICE).expect("composed").is_open());

    // RFC 3903 §4.3: a refresh names the entity-tag and has no body; a new tag comes back.
    let r = publish(&alice, ALICE, "presence", Some(&etag), 300, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let refreshed = header(&r, "SIP-ETag");
    assert!(!refreshed.is_empty() && refreshed != etag, "{r:?}");
    assert_eq!(header(&r, "Expires"), "300");

    // The old tag is gone with the refresh (§4.1): 412.
    lab.trace.clear();
    let r = publish(&alice, ALICE, "presence", Some(&etag), 300, None).await;
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(flow(&lab), to_ps("alice", "PUBLISH", "412"));

    // Shorter than [presence] min_expires: 423 with Min-Expires (§6 step 5).
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        1,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 423, "{r:?}");
    assert_eq!(header(&r, "Min-Expires"), "60");
    lab.shutdown().await;
}

#[tokio::test]
async fn bob_watches_alice_open_then_closed_then_unsubscribes() {
    let (_dir, lab, _stop, alice, mut bob) = alice_and_bob("").await;
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = header(&r, "SIP-ETag").to_string();

    // The subscription: 200 with our Expires, and at once the first NOTIFY (RFC 6665 §4.2.1.2)
    // with alice's document: bob is in her buddy group, so active.
    lab.trace.clear();
    let (sub, ok) = subscribe(&bob, BOB, ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(header(&ok, "Expires"), "600");
    assert!(NameAddr::parse(header(&ok, "To")).unwrap().tag().is_some());
    let (state, body) = notify(&mut bob, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;expires="), "{state}");
    let body = body.expect("the document");
    assert_eq!(body.entity, ALICE);
    assert!(body.is_open());
    let got = flow_of(&lab, 18).await;
    assert!(
        interleaves(&got, &to_ps("bob", "SUBSCRIBE", "200"), &notify_to("bob")),
        "{got:#?}"
    );

    // alice closes: bob hears of it at once.
    lab.trace.clear();
    let closed = pidf(ALICE, Basic::Closed);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", &closed)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (state, body) = notify(&mut bob, Duration::from_millis(200)).await;
    assert!(state.starts_with("active;"), "{state}");
    assert!(!body.expect("the document").is_open());
    let got = flow_of(&lab, 18).await;
    assert!(
        interleaves(&got, &to_ps("alice", "PUBLISH", "200"), &notify_to("bob")),
        "{got:#?}"
    );

    // Two PUBLISHes at once: one NOTIFY at a time per dialog, so they arrive in CSeq order
    // (a newer one may replace one still waiting) and the last says what alice published last.
    let etag = header(&r, "SIP-ETag").to_string();
    let busy = pidf(ALICE, Basic::Open);
    let r1 = publish(
        &alice,
        ALICE,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", &busy)),
    )
    .await;
    assert_eq!(r1.status, 200, "{r1:?}");
    let r2 = publish(
        &alice,
        ALICE,
        "presence",
        Some(header(&r1, "SIP-ETag")),
        600,
        Some(("application/pidf+xml", &closed)),
    );
    let r3 = async {
        let mut seen = Vec::new();
        while let Some(inc) = bob.next_request(Duration::from_millis(500)).await {
            let cseq: u32 = inc
                .request
                .headers
                .get("CSeq")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let doc = Pidf::parse(&inc.request.body, &PidfLimits::default()).unwrap();
            inc.tx.respond(inc.request.response(200, None));
            seen.push((cseq, doc.is_open()));
        }
        seen
    };
    let (r2, seen) = tokio::join!(r2, r3);
    assert_eq!(r2.status, 200, "{r2:?}");
    assert!(
        !seen.is_empty() && seen.windows(2).all(|w| w[0].0 < w[1].0),
        "{seen:?}"
    );
    assert!(
        !seen.last().unwrap().1,
        "the last NOTIFY says closed: {seen:?}"
    );

    // A SUBSCRIBE in a dialog the PS does not hold: 481 (RFC 6665 §4.1.2.2).
    let wrong = resubscribe(&bob, &sub, &ok, &format!("<{ALICE}>;tag=nosuch"), 600);
    let r = bob.send_tx(wrong).final_response().await;
    assert_eq!(r.status, 481, "{r:?}");

    // Unsubscribe in the dialog (Expires 0): 200, then the final NOTIFY.
    lab.trace.clear();
    let bye = resubscribe(&bob, &sub, &ok, header(&ok, "To"), 0);
    let r = bob.send_tx(bye).final_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "Expires"), "0");
    let (state, _) = notify(&mut bob, Duration::from_secs(5)).await;
    assert_eq!(state, "terminated;reason=timeout");
    let got = flow_of(&lab, 12).await;
    let in_dialog: Vec<String> = [
        "UE bob -> P-CSCF SIP SUBSCRIBE",
        "P-CSCF -> S-CSCF SIP SUBSCRIBE",
        "S-CSCF -> PS SIP SUBSCRIBE",
        "PS -> S-CSCF SIP 200",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE bob SIP 200",
    ]
    .map(String::from)
    .into();
    assert!(interleaves(&got, &in_dialog, &notify_to("bob")), "{got:#?}");
    crate::eventually("the subscription gone", || lab.ps.subscriptions() == 0).await;
    lab.shutdown().await;
}

#[tokio::test]
async fn a_watcher_off_the_buddy_list_is_pending_and_sees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[presence]\nbuddy_groups = [[\"sip:alice@ims.lab\", \"sip:bob@ims.lab\"]]\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut carol = ue(&lab, "carol", AuthMode::Digest, &shut).await;
    let mut alice = alice;
    alice.register(600).await.expect("alice registers");
    carol.register(600).await.expect("carol registers");
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let (_, ok) = subscribe(&carol, "sip:carol@ims.lab", ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // RFC 3856 §6.6.2: pending, and no state of alice's.
    let (state, body) = notify(&mut carol, Duration::from_secs(5)).await;
    assert!(state.starts_with("pending;expires="), "{state}");
    assert!(body.is_none());

    // alice changes: carol, still pending, hears nothing.
    let closed = pidf(ALICE, Basic::Closed);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &closed)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(carol
        .next_request(Duration::from_millis(300))
        .await
        .is_none());
    lab.shutdown().await;
}

#[tokio::test]
async fn a_bad_event_gets_489_and_a_bad_pidf_400() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");

    // Through the core, a malformed PIDF reaches the PS and gets 400 with the reason.
    lab.trace.clear();
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some((
            "application/pidf+xml",
            "<presence entity=\"sip:alice@ims.lab\"><tuple",
        )),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(header(&r, "Warning").contains("ps.ims.lab"), "{r:?}");
    assert_eq!(flow(&lab), to_ps("alice", "PUBLISH", "400"));
    // Not a PIDF at all: 415 with Accept.
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("text/plain", "here")),
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(header(&r, "Accept"), "application/pidf+xml");

    // `Event: foo` matches no iFC, so through the core it never reaches the PS. On the PS's
    // own ISC interface (as an S-CSCF would hand it over), an initial SUBSCRIBE gets 489 with
    // Allow-Events; a PUBLISH there from anyone but the S-CSCF is refused first (403).
    for method in [Method::Publish, Method::Subscribe] {
        let mut req = alice
            .endpoint()
            .new_request(method.clone(), ALICE, ALICE, 1, Transport::Udp);
        req.headers
            .push("P-Asserted-Identity", format!("<{ALICE}>"));
        req.headers
            .push("Contact", format!("<{}>", alice.contact()));
        req.headers.push("Event", "foo");
        let r = alice
            .endpoint()
            .send_request(req, lab.addrs.ps, Transport::Udp)
            .final_response()
            .await;
        if method == Method::Publish {
            assert_eq!(r.status, 403, "{method}: {r:?}");
            assert!(header(&r, "Warning").contains("did not come through the S-CSCF"));
            continue;
        }
        assert_eq!(r.status, 489, "{method}: {r:?}");
        assert_eq!(header(&r, "Allow-Events"), "presence");
    }
    lab.shutdown().await;
}

/// The tick: a publication nobody refreshes lapses (RFC 3903 §4.1) and its watchers hear the
/// presentity closed, with when it was last seen; a subscription that lapses gets its final
/// NOTIFY (RFC 6665 §4.2.2).
#[tokio::test]
async fn a_lapsed_publication_and_a_lapsed_subscription_are_notified() {
    let (_dir, lab, _stop, alice, mut bob) = alice_and_bob("[presence]\nmin_expires = 1\n").await;
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        1,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, ok) = subscribe(&bob, BOB, ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let (_, body) = notify(&mut bob, Duration::from_secs(5)).await;
    assert!(body.expect("the document").is_open());
    // Within a second or two the publication lapses at the next tick.
    let (state, body) = notify(&mut bob, Duration::from_secs(4)).await;
    assert!(state.starts_with("active;"), "{state}");
    let body = body.expect("the document");
    assert!(!body.is_open());
    assert!(body.tuples[0].timestamp.is_some(), "last seen: {body:?}");

    // A subscription of 2 s that bob does not refresh ends with a final NOTIFY.
    let mut r = bob
        .endpoint()
        .new_request(Method::Subscribe, ALICE, BOB, 1, Transport::Udp);
    r.headers.push("Contact", format!("<{}>", bob.contact()));
    r.headers.push("Event", "presence");
    r.headers.push("Expires", "2");
    let ok = bob.send_tx(r).final_response().await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(header(&ok, "Expires"), "2");
    let (state, _) = notify(&mut bob, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;"), "{state}");
    let (state, _) = notify(&mut bob, Duration::from_secs(5)).await;
    assert_eq!(state, "terminated;reason=timeout");
    lab.shutdown().await;
}

/// `rcslab run ps`: the PS alone, as its own process would start it, serving on its address.
#[tokio::test]
async fn rcslab_run_ps_serves_alone() {
    use rcslab::lab::run::{start, Node};
    let dir = tempfile::tempdir().unwrap();
    let cfg = rcslab::LabConfig::from_toml_str("")
        .unwrap()
        .with_ephemeral_ports();
    let node = start(Node::Ps, &cfg, dir.path(), rcslab::LabOptions::default())
        .await
        .expect("the PS starts");
    assert_eq!(node.listening.len(), 1);
    let (name, at, _) = node.listening[0];
    assert_eq!(name, "PS");
    let (_stop, shut) = watch::channel(false);
    let (ep, _rx) = rcslab::sip::Endpoint::bind(
        "probe",
        "127.0.0.1:0".parse().unwrap(),
        rcslab::sip::transaction::TimerConfig::default(),
        rcslab::trace::Trace::disabled(),
        shut,
    )
    .await
    .unwrap();
    let mut req = ep.new_request(Method::Subscribe, ALICE, BOB, 1, Transport::Udp);
    req.headers.push("Event", "presence");
    // No Contact: no dialog can be made (RFC 6665 §4.1.2.1).
    let r = ep
        .send_request(req, at, Transport::Udp)
        .final_response()
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(header(&r, "Warning").contains("Contact"), "{r:?}");
    node.shutdown().await;
}

/// `rcslab ue ... status` and `rcslab ue ... watch` as a user runs them: bob watches alice;
/// alice publishes `away "in a meeting"`, then `offline`; bob's watch prints each change on
/// one line, and `status` says what it published.
#[tokio::test]
async fn ue_status_and_watch_from_the_command_line() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // alice stays registered beside her `status` commands (the PS shows a user with no
    // registration offline).
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    let mut watch = rcslab_ue(&lab, "bob", &["watch", "alice"]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line within 5 s")
            .unwrap()
            .expect("watch still runs")
    };
    // The first NOTIFY: alice has published nothing yet.
    let first = next_line().await;
    assert!(first.starts_with("sip:alice@ims.lab: "), "{first}");

    let out = rcslab_ue(&lab, "alice", &["status", "away", "in a meeting"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "published: open away (in a meeting) for 3600 s\n"
    );
    assert_eq!(
        next_line().await,
        "sip:alice@ims.lab: open away (in a meeting)"
    );

    let out = rcslab_ue(&lab, "alice", &["status", "offline"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = next_line().await;
    assert!(line.starts_with("sip:alice@ims.lab: closed"), "{line}");

    let out = rcslab_ue(&lab, "alice", &["status", "dancing"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown status 'dancing'"));
    lab.shutdown().await;
}

/// Wireshark reads what the PS and the UEs put on the wire: the lab's pcap export of a
/// subscription and a publication (with an RPID activity and note) decodes with tshark as SIP
/// PUBLISH / SUBSCRIBE / NOTIFY whose PIDF bodies its XML dissector takes apart (the
/// `presence` root, `tuple`, `basic`, the RPID `activities`), and nothing is malformed.
#[tokio::test]
async fn tshark_decodes_publish_subscribe_notify_and_their_pidf() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let (dir, lab, _stop, mut alice, mut bob) = alice_and_bob("").await;
    lab.trace.clear();
    let (_, ok) = subscribe(&bob, BOB, ALICE).await;
    assert_eq!(ok.status, 200);
    notify(&mut bob, Duration::from_secs(2)).await;
    let resp = alice
        .publish(
            rcslab::ue::presence::Status::Away,
            Some("in a meeting"),
            600,
            None,
        )
        .await;
    assert_eq!(resp.status, 200);
    let (_, doc) = notify(&mut bob, Duration::from_secs(2)).await;
    assert_eq!(
        rcslab::ue::presence::describe(&doc.expect("a PIDF")),
        "open away (in a meeting)"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pcap = dir.path().join("presence.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = tshark_on(&lab, &pcap);
    let methods = run(&["-Y", "sip.Method", "-T", "fields", "-e", "sip.Method"]);
    for m in ["SUBSCRIBE", "NOTIFY", "PUBLISH"] {
        assert!(methods.lines().any(|l| l == m), "{m} in {methods}");
    }
    // The PIDF bodies, as the XML dissector reads them (application/pidf+xml).
    let xml = run(&["-Y", "xml", "-V"]);
    for tag in [
        "<presence",
        "<tuple",
        "<basic",
        "<rpid:activities",
        "<rpid:away",
        "<dm:note",
    ] {
        assert!(xml.contains(tag), "{tag} in the decoded PIDF: {xml}");
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed packets:\n{bad}");
    lab.shutdown().await;
}

/// "Last seen" (seed 004): alice publishes, bob watches; alice de-registers. The S-CSCF tells
/// the PS (its reg subscription, made before alice's first PUBLISH was answered) that her
/// registration ended; the PS withdraws her publication and bob's NOTIFY says she is closed
/// and when she was last seen. The PS's part of the ladder, exactly.
#[tokio::test]
async fn last_seen_after_de_registration() {
    let (_dir, lab, _stop, mut alice, mut bob) = alice_and_bob("").await;
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, ok) = subscribe(&bob, BOB, ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let (_, body) = notify(&mut bob, Duration::from_secs(5)).await;
    assert!(body.expect("her document").is_open());
    // bob's 200 for that NOTIFY reaches the PS before the window opens.
    crate::eventually("bob's 200 at the PS", || {
        flow(&lab)
            .last()
            .is_some_and(|l| l == "S-CSCF -> PS SIP 200")
    })
    .await;

    lab.trace.clear();
    alice.register(0).await.expect("alice de-registers");
    let (state, body) = notify(&mut bob, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;"), "{state}");
    let doc = body.expect("her document");
    assert!(!doc.is_open());
    let line = rcslab::ue::presence::describe(&doc);
    assert!(line.starts_with("closed (last seen 20"), "{line}");
    assert!(lab.ps.document(ALICE).is_some_and(|d| !d.is_open()));
    crate::eventually("bob's 200 reaches the PS", || {
        flow(&lab).iter().filter(|l| l.contains("PS")).count() >= 4
    })
    .await;
    let ps: Vec<String> = flow(&lab)
        .into_iter()
        .filter(|l| l.contains("PS"))
        .collect();
    assert_eq!(
        ps,
        [
            "S-CSCF -> PS SIP NOTIFY",
            "PS -> S-CSCF SIP 200",
            "PS -> S-CSCF SIP NOTIFY",
            "S-CSCF -> PS SIP 200",
        ],
        "{:#?}",
        flow(&lab)
    );
    lab.shutdown().await;
}

/// Bad input never costs what is stored: alice's publication stands; then a PIDF larger than
/// `[presence] max_document_bytes` gets 413 and a malformed one 400, each with its reason,
/// through the core (an unknown event package's 489: `a_bad_event_gets_489_and_a_bad_pidf_400`);
/// her document and bob's subscription are as they were (bob hears nothing), and her next
/// good PUBLISH, with the same entity-tag, reaches him.
#[tokio::test]
async fn bad_publishes_get_413_and_400_and_lose_nothing() {
    let (_dir, lab, _stop, alice, mut bob) =
        alice_and_bob("[presence]\nmax_document_bytes = 2048\n").await;
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = header(&r, "SIP-ETag").to_string();
    let (_, ok) = subscribe(&bob, BOB, ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let _ = notify(&mut bob, Duration::from_secs(5)).await;
    let before = lab.ps.document(ALICE).expect("her document");

    // 2,500 bytes of note: over the 2,048 the lab allows.
    let mut big = Pidf::empty(ALICE);
    let mut t = Tuple::new("t1", Basic::Open);
    t.notes.push("x".repeat(2500));
    big.tuples.push(t);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", &big.to_xml())),
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(header(&r, "Warning").contains("2048"), "{r:?}");
    let r = publish(
        &alice,
        ALICE,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", "<presence><tuple>")),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(header(&r, "Warning").contains("PIDF"), "{r:?}");
    assert_eq!(lab.ps.document(ALICE), Some(before));
    assert!(bob.next_request(Duration::from_millis(300)).await.is_none());

    let closed = pidf(ALICE, Basic::Closed);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", &closed)),
    )
    .await;
    assert_eq!(r.status, 200, "the entity-tag still holds: {r:?}");
    let (_, doc) = notify(&mut bob, Duration::from_secs(2)).await;
    assert!(!doc.expect("her document").is_open());
    lab.shutdown().await;
}

/// Watcher authorization at run time (RFC 3856 §6.6): carol, in no buddy group with alice,
/// waits `pending`; alice's rule, written through the admin API, allows her: her next NOTIFY
/// (exactly PS -> S-CSCF -> P-CSCF -> carol) is `active` with alice's document. Blocking her
/// ends the subscription `rejected` with no document. The rule is kept across a restart.
#[tokio::test]
async fn a_pending_watcher_turns_active_when_allowed_then_rejected_when_blocked() {
    use hyper::Method as Http;
    use rcslab::hss::admin_client::AdminClient;
    let dir = tempfile::tempdir().unwrap();
    let groups = "[presence]\nbuddy_groups = [[\"sip:alice@ims.lab\", \"sip:bob@ims.lab\"]]\n";
    let lab = lab_with(dir.path(), groups).await;
    let (_stop, shut) = watch::channel(false);
    let alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut carol = ue(&lab, "carol", AuthMode::Digest, &shut).await;
    let mut alice = alice;
    alice.register(600).await.expect("alice registers");
    carol.register(600).await.expect("carol registers");
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, ok) = subscribe(&carol, "sip:carol@ims.lab", ALICE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let (state, body) = notify(&mut carol, Duration::from_secs(5)).await;
    assert!(state.starts_with("pending;"), "{state}");
    assert!(body.is_none());

    let admin = AdminClient::from_data_dir(dir.path()).expect("the lab's admin API");
    let path = "/presence/sip%3Aalice%40ims.lab/watchers";
    let (code, body) = admin.call(Http::GET, path, None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["pending"], serde_json::json!(["sip:carol@ims.lab"]));
    assert_eq!(v["allow"], serde_json::json!(["sip:bob@ims.lab"]));

    crate::eventually("carol's 200 at the PS", || {
        flow(&lab)
            .last()
            .is_some_and(|l| l == "S-CSCF -> PS SIP 200")
    })
    .await;
    lab.trace.clear();
    let rule = r#"{"allow": ["sip:bob@ims.lab", "sip:carol@ims.lab"]}"#;
    let (code, body) = admin
        .call(Http::PUT, path, Some(rule.into()))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["pending"], serde_json::json!([]));
    let (state, body) = notify(&mut carol, Duration::from_secs(2)).await;
    assert!(state.starts_with("active;"), "{state}");
    assert!(body.expect("alice's document").is_open());
    let got = flow_of(&lab, 6).await;
    assert_eq!(got, notify_to("carol"));

    let (code, body) = admin
        .call(
            Http::PUT,
            path,
            Some(r#"{"block": ["sip:carol@ims.lab"]}"#.into()),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (state, body) = notify(&mut carol, Duration::from_secs(2)).await;
    assert_eq!(state, "terminated;reason=rejected");
    assert!(body.is_none());
    let (code, body) = admin
        .call(Http::PUT, path, Some(r#"{"allow": ["alice"]}"#.into()))
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    lab.shutdown().await;
    drop((alice, carol));

    let lab = lab_with(dir.path(), groups).await;
    let admin = AdminClient::from_data_dir(dir.path()).expect("the lab's admin API");
    let (code, body) = admin.call(Http::GET, path, None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["block"], serde_json::json!(["sip:carol@ims.lab"]));
    assert_eq!(v["allow"], serde_json::json!([]));
    lab.shutdown().await;
}

/// The PS's reg subscription is renewed at half of what the S-CSCF granted while the user
/// still publishes, so a registration that ends later is still heard: here the registrar
/// grants 4 s (to the registration and to the reg subscription alike); the PS subscribes
/// again within ~2 s, and when alice's registration lapses her presence is withdrawn.
#[tokio::test]
async fn the_reg_subscription_is_renewed_and_a_lapsed_registration_withdraws_presence() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[registrar]\nmin_expires = 1\nmax_expires = 4\n[presence]\nmin_expires = 1\n",
    )
    .await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(4).await.expect("alice registers");
    let open = pidf(ALICE, Basic::Open);
    let r = publish(
        &alice,
        ALICE,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let reg_subscribes = || {
        flow(&lab)
            .iter()
            .filter(|l| *l == "PS -> S-CSCF SIP SUBSCRIBE")
            .count()
    };
    assert_eq!(reg_subscribes(), 1);
    crate::eventually("a renewed reg subscription", || reg_subscribes() >= 2).await;
    // The renewal is a refresh in the subscription's dialog (RFC 6665 §4.1.2.1): same
    // Call-ID, the S-CSCF's To tag, the next CSeq, so a NOTIFY racing it still matches.
    let reg_subs: Vec<Request> = lab
        .trace
        .events()
        .into_iter()
        .filter(|e| e.local == lab.addrs.ps && e.direction == rcslab::trace::Direction::Sent)
        .filter_map(|e| match rcslab::sip::SipMessage::parse(&e.bytes) {
            Ok(rcslab::sip::SipMessage::Request(r)) => Some(r),
            _ => None,
        })
        .filter(|r| r.method == Method::Subscribe && r.headers.get("Event") == Some("reg"))
        .collect();
    assert!(reg_subs.len() >= 2, "{}", reg_subs.len());
    let (first, refresh) = (&reg_subs[0], &reg_subs[1]);
    assert_eq!(first.headers.get("Call-ID"), refresh.headers.get("Call-ID"));
    let to_tag = |r: &Request| {
        NameAddr::parse(r.headers.get("To").unwrap())
            .unwrap()
            .tag()
            .map(str::to_string)
    };
    assert_eq!(to_tag(first), None);
    assert!(to_tag(refresh).is_some(), "{refresh:?}");
    assert_eq!(refresh.headers.get("CSeq"), Some("2 SUBSCRIBE"));
    // alice does not refresh: her registration lapses at the S-CSCF, which tells the PS.
    let t0 = std::time::Instant::now();
    while lab.ps.document(ALICE).is_some_and(|d| d.is_open()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "presence not withdrawn after the registration lapsed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lab.ps.document(ALICE).is_some_and(|d| !d.is_open()));
    lab.shutdown().await;
}
