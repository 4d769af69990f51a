//! The patent's RTCWeb gateway (seed 001, KR101499354B1): a page speaks the patent's messages
//! over a WebSocket; the gateway registers its user in IMS and translates to SIP as figures 7,
//! 8 and 9 draw it. The IMS side here is an rcslab UE answering by hand with reliable
//! provisional responses (RFC 3262), so every message of figure 8 is on the wire.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rcslab::sip::Method;
use rcslab::ue::{audio_sdp, uas_response, AuthMode, Ue};
use rcslab::Lab;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{flow, lab_with, ue};

const WAIT: Duration = Duration::from_secs(5);
/// No application servers on the way: the ladders are the gateway's and the CSCFs' only.
/// The media bridge is off: these tests are the patent's signalling, and their SDPs (a plain
/// offer from the "page") pass untouched; the bridge's part is in `rtcweb_media.rs`.
const NO_IFC: &str = "default_ifc = []\n[rtcweb]\nmedia_bridge = false\n";

/// A browser page of the gateway, speaking its JSON frames.
pub struct Page {
    ws: WebSocketStream<TcpStream>,
}

impl Page {
    /// Opens `/ws` (the HTTP upgrade) and names the page `name` in ladders.
    pub async fn open(lab: &Lab, name: &str) -> Page {
        let tcp = TcpStream::connect(lab.addrs.rtcweb).await.expect("connect");
        let local = tcp.local_addr().unwrap();
        lab.name_addr(local, name);
        let url = format!("ws://{}/ws", lab.addrs.rtcweb);
        let (ws, resp) = tokio_tungstenite::client_async(url, tcp)
            .await
            .expect("WebSocket upgrade");
        assert_eq!(resp.status(), 101);
        Page { ws }
    }

    /// Opens a page and logs `user` in with `password`; expects `OK (REGISTER)`.
    pub async fn login(lab: &Lab, name: &str, user: &str, password: &str) -> Page {
        let mut p = Page::open(lab, name).await;
        p.send(json!({"type": "REGISTER", "from": format!("sip:{user}@ims.lab"), "password": password}))
            .await;
        let ok = p.recv().await;
        assert_eq!(
            (ok["type"].as_str(), ok["for"].as_str()),
            (Some("OK"), Some("REGISTER")),
            "{ok}"
        );
        p
    }

    /// Sends one frame.
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends one text frame as it is.
    pub async fn send_text(&mut self, t: &str) {
        self.ws
            .send(Message::Text(t.to_string().into()))
            .await
            .expect("send");
    }

    /// The next frame (pings skipped), within 5 s.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(WAIT).await.expect("a frame within 5 s")
    }

    /// The next frame within `wait`, if any.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match m.ok()? {
                Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next frame, which must be of `kind` (and for `of`, when given).
    pub async fn expect(&mut self, kind: &str, of: Option<&str>) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"].as_str(), Some(kind), "{v}");
        if let Some(of) = of {
            assert_eq!(v["for"].as_str(), Some(of), "{v}");
        }
        v
    }
}

/// The gateway's ladder from `start` once a page's BYE is over: the call forgotten and the
/// BYE's 200 in. The page is told at once that its BYE is taken; the SIP BYE races that
/// frame, so the two are put in the order the tests list them.
pub(crate) async fn ladder_after_page_bye(lab: &Lab, start: usize) -> Vec<String> {
    crate::eventually("the call forgotten", || lab.rtcweb.stats().calls == 0).await;
    crate::eventually("the BYE's 200 at the gateway", || {
        gateway_ladder(lab, start).last().map(String::as_str) == Some("P-CSCF -> RTCWeb SIP 200")
    })
    .await;
    let mut ladder = gateway_ladder(lab, start);
    let n = ladder.len();
    if n > 3 && ladder[n - 3].ends_with("OK (BYE)") {
        ladder.swap(n - 3, n - 2);
    }
    ladder
}

/// The lines of the ladder the gateway is part of, without 100 Trying.
pub(crate) fn gateway_ladder(lab: &Lab, from: usize) -> Vec<String> {
    flow(lab)
        .into_iter()
        .skip(from)
        .filter(|l| l.contains("RTCWeb") && !l.ends_with(" 100"))
        .collect()
}

/// A 1xx sent reliably (RFC 3262 §3): Require 100rel and RSeq.
fn reliable(
    inv: &rcslab::sip::Request,
    status: u16,
    rseq: u32,
    contact: &str,
) -> rcslab::sip::Response {
    let mut r = uas_response(inv, status, "b1", contact, Some(&audio_sdp(5000)));
    r.headers.push("Require", "100rel");
    r.headers.push("RSeq", rseq.to_string());
    r
}

pub(crate) async fn bob_registered(lab: &Lab, shut: &watch::Receiver<bool>) -> Ue {
    let mut bob = ue(lab, "bob", AuthMode::Digest, shut).await;
    bob.register(600).await.expect("bob registers");
    bob
}

/// Figure 8, message by message: OFFER -> WAITING and INVITE (100rel); the 183 is PRACKed
/// by the gateway itself; 180 -> Ringing; PRANSWER -> PRACK; its 200 -> OK; the INVITE's
/// 200 -> OK (OFFER) with the answer; ANSWER -> ACK. Then the page hangs up: BYE both ways.
#[tokio::test]
async fn figure_8_a_page_calls_an_ims_ue() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let contact = bob.contact();
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let start = flow(&lab).len();

    page.send(
        json!({"type": "OFFER", "session": "s1", "to": "sip:bob@ims.lab", "sdp": audio_sdp(4000)}),
    )
    .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    let r = &inv.request;
    assert_eq!(r.method, Method::Invite);
    assert!(
        r.headers
            .get("Require")
            .is_some_and(|v| v.contains("100rel")),
        "{r:?}"
    );
    assert_eq!(
        r.headers.get("P-Asserted-Identity"),
        Some("<sip:alice@ims.lab>")
    );
    assert_eq!(
        &r.body[..],
        audio_sdp(4000).as_bytes(),
        "the page's SDP, untouched"
    );

    inv.tx.respond(reliable(r, 183, 1, &contact));
    let prack = bob.next_request(WAIT).await.expect("PRACK of the 183");
    assert_eq!(prack.request.method, Method::Prack);
    assert_eq!(prack.request.headers.get("RAck"), Some("1 1 INVITE"));
    prack
        .tx
        .respond(uas_response(&prack.request, 200, "b1", &contact, None));
    tokio::time::sleep(Duration::from_millis(100)).await;

    inv.tx.respond(reliable(r, 180, 2, &contact));
    let ringing = page.expect("Ringing", None).await;
    assert_eq!(ringing["session"], "s1");
    // The 183's SDP answer reaches the page with the Ringing (figure 8 draws no 183 frame).
    assert_eq!(ringing["sdp"].as_str(), Some(audio_sdp(5000).as_str()));
    page.send(json!({"type": "PRANSWER", "session": "s1"}))
        .await;
    let prack = bob.next_request(WAIT).await.expect("PRACK of the 180");
    assert_eq!(prack.request.headers.get("RAck"), Some("2 1 INVITE"));
    prack
        .tx
        .respond(uas_response(&prack.request, 200, "b1", &contact, None));
    page.expect("OK", Some("PRANSWER")).await;

    inv.tx
        .respond(uas_response(r, 200, "b1", &contact, Some(&audio_sdp(5000))));
    let ok = page.expect("OK", Some("OFFER")).await;
    assert!(ok["sdp"].is_null(), "the page has the answer already: {ok}");
    page.send(json!({"type": "ANSWER", "session": "s1"})).await;
    let ack = bob.next_request(WAIT).await.expect("ACK");
    assert_eq!(ack.request.method, Method::Ack);
    assert_eq!(
        lab.rtcweb.call_state("s1"),
        Some(rcslab::rtcweb::message::ClientState::InCall)
    );

    page.send(json!({"type": "BYE", "session": "s1"})).await;
    let bye = bob.next_request(WAIT).await.expect("BYE");
    assert_eq!(bye.request.method, Method::Bye);
    bye.tx
        .respond(uas_response(&bye.request, 200, "b1", &contact, None));
    page.expect("OK", Some("BYE")).await;
    let ladder = ladder_after_page_bye(&lab, start).await;
    let expected = [
        "Page -> RTCWeb HTTP ws OFFER",
        "RTCWeb -> Page HTTP ws WAITING",
        "RTCWeb -> P-CSCF SIP INVITE",
        "P-CSCF -> RTCWeb SIP 183",
        "RTCWeb -> P-CSCF SIP PRACK",
        "P-CSCF -> RTCWeb SIP 200",
        "P-CSCF -> RTCWeb SIP 180",
        "RTCWeb -> Page HTTP ws Ringing",
        "Page -> RTCWeb HTTP ws PRANSWER",
        "RTCWeb -> P-CSCF SIP PRACK",
        "P-CSCF -> RTCWeb SIP 200",
        "RTCWeb -> Page HTTP ws OK (PRANSWER)",
        "P-CSCF -> RTCWeb SIP 200",
        "RTCWeb -> Page HTTP ws OK (OFFER)",
        "Page -> RTCWeb HTTP ws ANSWER",
        "RTCWeb -> P-CSCF SIP ACK",
        "Page -> RTCWeb HTTP ws BYE",
        "RTCWeb -> P-CSCF SIP BYE",
        "RTCWeb -> Page HTTP ws OK (BYE)",
        "P-CSCF -> RTCWeb SIP 200",
    ];
    assert_eq!(ladder, expected, "\n{}", ladder.join("\n"));
    lab.shutdown().await;
}

/// The reverse call (the patent draws none): bob's INVITE (with `Supported: 100rel`) reaches
/// alice's page as OFFER; Ringing -> a reliable 180 that bob PRACKs (-> OK (Ringing)); ANSWER
/// -> 200 with the page's SDP; the ACK -> OK (ANSWER), InCall. Bob hangs up: BYE to the page.
#[tokio::test]
async fn an_ims_ue_calls_a_page_and_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let start = flow(&lab).len();

    let mut inv = bob.build_invite("sip:alice@ims.lab", &audio_sdp(5000));
    inv.headers.push("Supported", "100rel");
    let mut ctx = bob.send_tx(inv.clone());
    let offer = page.expect("OFFER", None).await;
    assert_eq!(offer["from"], "sip:bob@ims.lab");
    assert_eq!(offer["sdp"].as_str(), Some(audio_sdp(5000).as_str()));
    let session = offer["session"].as_str().unwrap().to_string();

    page.send(json!({"type": "Ringing", "session": session}))
        .await;
    let ringing = loop {
        let r = ctx.next().await.expect("a response");
        if r.status != 100 {
            break r;
        }
    };
    assert_eq!(ringing.status, 180);
    assert!(ringing
        .headers
        .get("Require")
        .is_some_and(|v| v.contains("100rel")));
    let rseq: u32 = ringing.headers.get("RSeq").unwrap().trim().parse().unwrap();
    let mut early = bob.dialog_from(&inv, &ringing);
    let inv_cseq = early.cseq;
    let pr = bob.prack(&mut early, rseq, inv_cseq).await;
    assert_eq!(pr.status, 200);
    page.expect("OK", Some("Ringing")).await;

    page.send(json!({"type": "ANSWER", "session": session, "sdp": audio_sdp(4000)}))
        .await;
    let ok = ctx.final_response().await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        &ok.body[..],
        audio_sdp(4000).as_bytes(),
        "the page's SDP answer"
    );
    let mut d = bob.dialog_from(&inv, &ok);
    d.cseq = early.cseq;
    bob.ack(&d, inv_cseq).await;
    page.expect("OK", Some("ANSWER")).await;
    assert_eq!(
        lab.rtcweb.call_state(&session),
        Some(rcslab::rtcweb::message::ClientState::InCall)
    );

    let bye = bob.bye(&mut d).await;
    assert_eq!(bye.status, 200, "{bye:?}\n{}", flow(&lab).join("\n"));
    let b = page.expect("BYE", None).await;
    assert_eq!(b["session"], session.as_str());
    crate::eventually("the call forgotten", || lab.rtcweb.stats().calls == 0).await;

    let ladder = gateway_ladder(&lab, start);
    let expected = [
        "P-CSCF -> RTCWeb SIP INVITE",
        "RTCWeb -> Page HTTP ws OFFER",
        "Page -> RTCWeb HTTP ws Ringing",
        "RTCWeb -> P-CSCF SIP 180",
        "P-CSCF -> RTCWeb SIP PRACK",
        "RTCWeb -> P-CSCF SIP 200",
        "RTCWeb -> Page HTTP ws OK (Ringing)",
        "Page -> RTCWeb HTTP ws ANSWER",
        "RTCWeb -> P-CSCF SIP 200",
        "P-CSCF -> RTCWeb SIP ACK",
        "RTCWeb -> Page HTTP ws OK (ANSWER)",
        "P-CSCF -> RTCWeb SIP BYE",
        "RTCWeb -> P-CSCF SIP 200",
        "RTCWeb -> Page HTTP ws BYE",
    ];
    let mut got = ladder.clone();
    // The 200 to a request and the frame the same request causes leave at once.
    for pair in [("SIP 200", "ws OK (Ringing)"), ("SIP 200", "ws BYE")] {
        if let Some(i) = got.iter().position(|l| l.ends_with(pair.1)) {
            if i > 0
                && !got[i - 1].ends_with(pair.0)
                && got.get(i + 1).is_some_and(|l| l.ends_with(pair.0))
            {
                got.swap(i, i + 1);
            }
        }
    }
    assert_eq!(got, expected, "\n{}", ladder.join("\n"));
    lab.shutdown().await;
}

/// Figure 9: the page's SUBSCRIBE -> OK at once and a SUBSCRIBE to the IMS side (through the
/// core to the PS); its 200 -> OK; the PS's NOTIFY -> NOTIFY to the page, and again when bob
/// publishes. `expires: 0` ends it (un-SUBSCRIBE in the dialog).
#[tokio::test]
async fn figure_9_a_page_watches_an_ims_user() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let bob = bob_registered(&lab, &shut).await;
    let open = crate::presence::pidf("sip:bob@ims.lab", rcslab::presence::pidf::Basic::Open);
    let r = crate::presence::publish(
        &bob,
        "sip:bob@ims.lab",
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let start = flow(&lab).len();

    page.send(json!({"type": "SUBSCRIBE", "to": "sip:bob@ims.lab"}))
        .await;
    let first = page.expect("OK", Some("SUBSCRIBE")).await;
    assert_eq!(first["to"], "sip:bob@ims.lab");
    let mut frames = vec![page.recv().await, page.recv().await];
    frames.sort_by_key(|f| f["type"].as_str().unwrap_or("").to_string());
    assert_eq!(frames[0]["type"], "NOTIFY", "{frames:?}");
    assert_eq!(frames[1]["type"], "OK", "{frames:?}");
    assert_eq!(frames[0]["from"], "sip:bob@ims.lab");
    let body = frames[0]["body"].as_str().unwrap_or("");
    assert!(body.contains("<basic>open</basic>"), "{body}");

    let closed = crate::presence::pidf("sip:bob@ims.lab", rcslab::presence::pidf::Basic::Closed);
    let r = crate::presence::publish(
        &bob,
        "sip:bob@ims.lab",
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &closed)),
    )
    .await;
    assert_eq!(r.status, 200);
    let n = page.expect("NOTIFY", None).await;
    assert!(
        n["body"]
            .as_str()
            .unwrap_or("")
            .contains("<basic>closed</basic>"),
        "{n}"
    );

    let ladder = gateway_ladder(&lab, start);
    let web: Vec<&str> = ladder
        .iter()
        .filter(|l| l.contains("Page"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        web[..2],
        [
            "Page -> RTCWeb HTTP ws SUBSCRIBE",
            "RTCWeb -> Page HTTP ws OK (SUBSCRIBE)"
        ]
    );
    let sip: Vec<&str> = ladder
        .iter()
        .filter(|l| !l.contains("Page"))
        .map(String::as_str)
        .collect();
    assert_eq!(sip[0], "RTCWeb -> P-CSCF SIP SUBSCRIBE", "{ladder:#?}");
    for l in [
        "P-CSCF -> RTCWeb SIP 200",
        "P-CSCF -> RTCWeb SIP NOTIFY",
        "RTCWeb -> P-CSCF SIP 200",
        "RTCWeb -> Page HTTP ws NOTIFY",
    ] {
        assert!(
            ladder.iter().any(|x| x == l),
            "{l} missing:\n{}",
            ladder.join("\n")
        );
    }
    // Each NOTIFY reaches the page only after it came from the core.
    let first_notify_in = ladder
        .iter()
        .position(|l| l == "P-CSCF -> RTCWeb SIP NOTIFY")
        .unwrap();
    let first_notify_out = ladder
        .iter()
        .position(|l| l == "RTCWeb -> Page HTTP ws NOTIFY")
        .unwrap();
    assert!(first_notify_in < first_notify_out);

    page.send(json!({"type": "SUBSCRIBE", "to": "sip:bob@ims.lab", "expires": 0}))
        .await;
    page.expect("OK", Some("SUBSCRIBE")).await;
    crate::eventually("the subscription ended", || {
        lab.rtcweb.stats().subscriptions == 0
    })
    .await;
    lab.shutdown().await;
}

/// Figure 7's reload: the page of a call in progress goes away (InCall -> Reloading, the IMS
/// side hears nothing); a new page of the same user re-attaches with the resume token and
/// RELOAD -> STATE InCall with the peer's SDP. A page that does not come back within the grace
/// ends the call with BYE.
#[tokio::test]
async fn figure_7_a_reload_keeps_the_call_and_a_page_that_stays_away_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &format!("{NO_IFC}reload_grace_secs = 2\n")).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let contact = bob.contact();
    let mut page = Page::open(&lab, "Page").await;
    page.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": "alice-secret"}))
        .await;
    let ok = page.expect("OK", Some("REGISTER")).await;
    let token = ok["body"].as_str().unwrap().to_string();

    // A call, up.
    page.send(
        json!({"type": "OFFER", "session": "s7", "to": "sip:bob@ims.lab", "sdp": audio_sdp(4000)}),
    )
    .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    inv.tx.respond(uas_response(
        &inv.request,
        200,
        "b1",
        &contact,
        Some(&audio_sdp(5000)),
    ));
    let ok = page.expect("OK", Some("OFFER")).await;
    assert_eq!(ok["sdp"].as_str(), Some(audio_sdp(5000).as_str()));
    page.send(json!({"type": "ANSWER", "session": "s7"})).await;
    bob.next_request(WAIT).await.expect("ACK");

    // The page reloads: its WebSocket goes, a new one comes.
    drop(page);
    crate::eventually("Reloading", || {
        lab.rtcweb.call_state("s7") == Some(rcslab::rtcweb::message::ClientState::Reloading)
    })
    .await;
    let mut page = Page::open(&lab, "Page2").await;
    // The resume token, not the password: a reloaded page has none.
    page.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": token}))
        .await;
    page.expect("OK", Some("REGISTER")).await;
    page.send(json!({"type": "RELOAD", "session": "s7"})).await;
    let st = page.expect("STATE", None).await;
    assert_eq!(st["state"], "InCall");
    assert_eq!(st["sdp"].as_str(), Some(audio_sdp(5000).as_str()));
    assert!(
        bob.next_request(Duration::from_millis(300)).await.is_none(),
        "no BYE at bob"
    );

    // Away for good: after the grace the call ends with a BYE.
    drop(page);
    let bye = bob
        .next_request(Duration::from_secs(6))
        .await
        .expect("BYE after the grace");
    assert_eq!(bye.request.method, Method::Bye);
    bye.tx
        .respond(uas_response(&bye.request, 200, "b1", &contact, None));
    crate::eventually("the call forgotten", || lab.rtcweb.stats().calls == 0).await;
    lab.shutdown().await;
}

/// Bad input: a frame that is not JSON, an unknown type, a message for no call, a message in
/// the wrong state, another user's session, an oversized frame: each gets ERROR with a reason,
/// the page stays connected and a call in progress is untouched. A wrong password gets the
/// same answer as an unknown user.
#[tokio::test]
async fn bad_frames_get_error_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let contact = bob.contact();

    let mut p = Page::open(&lab, "Page").await;
    p.send(json!({"type": "OFFER", "session": "x", "to": "sip:bob@ims.lab", "sdp": "v=0"}))
        .await;
    let e = p.expect("ERROR", Some("OFFER")).await;
    assert_eq!(e["reason"], "REGISTER first");
    p.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": "wrong"}))
        .await;
    let wrong = p.expect("ERROR", Some("REGISTER")).await;
    p.send(json!({"type": "REGISTER", "from": "sip:nobody@ims.lab", "password": "x"}))
        .await;
    let unknown = p.expect("ERROR", Some("REGISTER")).await;
    assert_eq!(
        wrong["reason"], unknown["reason"],
        "no telling which users exist"
    );
    assert_eq!(wrong["reason"], "wrong user or password");

    let mut page = Page::login(&lab, "Page2", "alice", "alice-secret").await;
    page.send(
        json!({"type": "OFFER", "session": "c1", "to": "sip:bob@ims.lab", "sdp": audio_sdp(4000)}),
    )
    .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    inv.tx.respond(uas_response(
        &inv.request,
        200,
        "b1",
        &contact,
        Some(&audio_sdp(5000)),
    ));
    page.expect("OK", Some("OFFER")).await;
    page.send(json!({"type": "ANSWER", "session": "c1"})).await;
    bob.next_request(WAIT).await.expect("ACK");

    for (frame, reason) in [
        ("not json".to_string(), "not a JSON object"),
        (json!({"type": "DANCE"}).to_string(), "unknown message type \"DANCE\""),
        (json!({"type": "BYE", "session": "nope"}).to_string(), "no such call"),
        (json!({"type": "PRANSWER", "session": "c1"}).to_string(), ""),
        (json!({"type": "OFFER", "session": "c1", "to": "sip:bob@ims.lab", "sdp": "v=0"}).to_string(), "this session has a call already"),
        (format!("{{\"type\":\"OFFER\",\"session\":\"big\",\"to\":\"sip:bob@ims.lab\",\"sdp\":\"{}\"}}", "a".repeat(70_000)), "larger than"),
    ] {
        page.send_text(&frame).await;
        let e = page.expect("ERROR", None).await;
        assert!(e["reason"].as_str().unwrap_or("").contains(reason), "{frame:.60}: {e}");
    }
    // bob's page-less colleague: another user's session is unknown to this page.
    let mut carol = Page::login(&lab, "Page3", "carol", "carol-secret").await;
    carol.send(json!({"type": "BYE", "session": "c1"})).await;
    let e = carol.expect("ERROR", Some("BYE")).await;
    assert_eq!(e["reason"], "no such call");
    assert_eq!(
        lab.rtcweb.call_state("c1"),
        Some(rcslab::rtcweb::message::ClientState::InCall),
        "the call is untouched"
    );
    assert!(
        bob.next_request(Duration::from_millis(200)).await.is_none(),
        "no BYE at bob"
    );
    page.send(json!({"type": "BYE", "session": "c1"})).await;
    let bye = bob.next_request(WAIT).await.expect("BYE");
    bye.tx
        .respond(uas_response(&bye.request, 200, "b1", &contact, None));
    page.expect("OK", Some("BYE")).await;
    lab.shutdown().await;
}

/// A page calls another page of the gateway: the INVITE goes out through the core and comes
/// back (both legs share the Call-ID at the gateway, told apart by their tags); both SDPs pass
/// end to end, untouched.
#[tokio::test]
async fn a_page_calls_another_page_through_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let mut alice = Page::login(&lab, "PageA", "alice", "alice-secret").await;
    let mut bob = Page::login(&lab, "PageB", "bob", "bob-secret").await;
    let (offer_sdp, answer_sdp) = (audio_sdp(4000), audio_sdp(5000));
    alice
        .send(json!({"type": "OFFER", "session": "ab", "to": "sip:bob@ims.lab", "sdp": offer_sdp}))
        .await;
    alice.expect("WAITING", None).await;
    let offer = bob.expect("OFFER", None).await;
    assert_eq!(offer["from"], "sip:alice@ims.lab");
    assert_eq!(offer["sdp"].as_str(), Some(offer_sdp.as_str()));
    let s = offer["session"].as_str().unwrap().to_string();
    bob.send(json!({"type": "Ringing", "session": s})).await;
    alice.expect("Ringing", None).await;
    alice
        .send(json!({"type": "PRANSWER", "session": "ab"}))
        .await;
    // bob's page hears its Ringing confirmed when alice's PRACK reaches it.
    bob.expect("OK", Some("Ringing")).await;
    alice.expect("OK", Some("PRANSWER")).await;
    bob.send(json!({"type": "ANSWER", "session": s, "sdp": answer_sdp}))
        .await;
    let ok = alice.expect("OK", Some("OFFER")).await;
    assert_eq!(ok["sdp"].as_str(), Some(answer_sdp.as_str()));
    alice.send(json!({"type": "ANSWER", "session": "ab"})).await;
    bob.expect("OK", Some("ANSWER")).await;
    use rcslab::rtcweb::message::ClientState::InCall;
    assert_eq!(lab.rtcweb.call_state("ab"), Some(InCall));
    assert_eq!(lab.rtcweb.call_state(&s), Some(InCall));
    assert_eq!(lab.rtcweb.stats().calls, 2);

    bob.send(json!({"type": "BYE", "session": s})).await;
    bob.expect("OK", Some("BYE")).await;
    alice.expect("BYE", None).await;
    crate::eventually("both legs forgotten", || lab.rtcweb.stats().calls == 0).await;
    lab.shutdown().await;
}

/// Password guessing through the gateway stops at the gateway: after three wrong passwords
/// alice waits (even with the right one), another user still logs in, and each wrong try
/// cost the S-CSCF one failed authentication only (the gateway does not answer the
/// re-challenge), so the gateway's shared flow is never blocked there.
#[tokio::test]
async fn failed_logins_are_limited_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let mut p = Page::open(&lab, "Page").await;
    let start = flow(&lab).len();
    for _ in 0..3 {
        p.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": "guess"}))
            .await;
        let e = p.expect("ERROR", Some("REGISTER")).await;
        assert_eq!(e["reason"], "wrong user or password");
    }
    let registers = flow(&lab)[start..]
        .iter()
        .filter(|l| *l == "RTCWeb -> P-CSCF SIP REGISTER")
        .count();
    // The first without credentials, the answer to its challenge; a re-challenge is not
    // answered.
    assert_eq!(registers, 6, "two REGISTERs per try");
    p.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": "alice-secret"}))
        .await;
    let e = p.expect("ERROR", Some("REGISTER")).await;
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("too many failed logins"),
        "{e}"
    );
    Page::login(&lab, "Page2", "carol", "carol-secret").await;
    lab.shutdown().await;
}
