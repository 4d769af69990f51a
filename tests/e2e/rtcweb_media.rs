//! The RTCWeb gateway's media: a call between a page and a phone crosses the WebRTC media
//! bridge (the eIMS-AGW of TS 24.371). The page here is a WebSocket client of the gateway
//! with a real WebRTC stack behind it (str0m, full ICE, DTLS-SRTP; the Chromium version is in
//! `rtcweb_phones.rs`), the phone an rcslab UE answering by hand plus a plain UDP socket for
//! its RTP. Checked: what each side's SDP is, the exact signalling ladder, audio both ways
//! through the gateway's bridge, and that hanging up frees the bridge's call.

use std::net::SocketAddr;
use std::time::Duration;

use rcslab::media::sdp::{parse_plain, parse_webrtc, CHROMIUM_OFFER};
use rcslab::media::G711;
use rcslab::sip::Method;
use rcslab::ue::uas_response;
use rcslab::Lab;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::media_bridge::{browser_to_phone, phone_sdp, phone_to_browser, Browser, N, WRAP};
use crate::rtcweb::{bob_registered, gateway_ladder, ladder_after_page_bye, Page};
use crate::{flow, lab_with};

const WAIT: Duration = Duration::from_secs(5);
/// No application servers; media ports chosen by the OS (tests run side by side).
const CFG: &str = "default_ifc = []\n[rtcweb]\nmedia_port_min = 0\nmedia_port_max = 0\n";

fn bridge(lab: &Lab) -> &rcslab::media::MediaBridge {
    lab.rtcweb
        .bridge()
        .expect("the gateway runs its media bridge")
}

/// A page calls bob's phone: the INVITE carries the bridge's plain RTP/AVP offer (the page's
/// G.711 codecs in its order), bob's plain answer reaches the page as the bridge's WebRTC
/// answer; then audio crosses both ways and the page's BYE frees the bridge's call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_calls_a_phone_and_audio_crosses_the_bridge_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let contact = bob.contact();
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let mut browser = Browser::new().await;
    let offer = browser.offer().await;
    let start = flow(&lab).len();

    page.send(json!({"type": "OFFER", "session": "m1", "to": "sip:bob@ims.lab", "sdp": offer}))
        .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    let r = &inv.request;
    assert_eq!(r.method, Method::Invite);
    let body = std::str::from_utf8(&r.body).unwrap();
    let plain = parse_plain(body).expect("bob is offered plain RTP/AVP");
    assert!(!plain.ice && !plain.fingerprint, "{body}");
    assert_eq!(plain.g711(), [(G711::Pcmu, 0)], "the page's G.711 codec");
    assert_eq!(plain.addr, Some(lab.addrs.rtcweb_sip.ip()));
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let leg = lab
        .rtcweb
        .media_leg("m1")
        .expect("the call has a bridge leg");
    assert_eq!(bridge(&lab).stats(leg).unwrap().ims_addr, Some(bridge_ims));

    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let answer = phone_sdp(phone_addr.port());
    inv.tx
        .respond(uas_response(r, 200, "b1", &contact, Some(&answer)));
    let ok = page.expect("OK", Some("OFFER")).await;
    let web_answer = ok["sdp"].as_str().expect("the page gets an answer");
    let w = parse_webrtc(web_answer).expect("the page's answer is WebRTC");
    assert!(w.ice_lite, "{web_answer}");
    assert!(!web_answer.contains(&answer), "never the phone's own SDP");
    browser.accept_answer(web_answer).await;
    page.send(json!({"type": "ANSWER", "session": "m1"})).await;
    let ack = bob.next_request(WAIT).await.expect("ACK");
    assert_eq!(ack.request.method, Method::Ack);

    browser.connect(bridge(&lab), leg).await;
    browser_to_phone(&mut browser, &phone).await;
    phone_to_browser(&mut browser, &phone, bridge_ims, WRAP).await;
    let s = bridge(&lab).stats(leg).unwrap();
    assert_eq!((s.codec, s.ims_peer), (Some(G711::Pcmu), Some(phone_addr)));

    page.send(json!({"type": "BYE", "session": "m1"})).await;
    let bye = bob.next_request(WAIT).await.expect("BYE");
    assert_eq!(bye.request.method, Method::Bye);
    bye.tx
        .respond(uas_response(&bye.request, 200, "b1", &contact, None));
    page.expect("OK", Some("BYE")).await;
    let ladder = ladder_after_page_bye(&lab, start).await;
    assert_eq!(bridge(&lab).calls(), 0, "the bridge's call closed");
    assert_eq!(
        ladder,
        [
            "Page -> RTCWeb HTTP ws OFFER",
            "RTCWeb -> Page HTTP ws WAITING",
            "RTCWeb -> P-CSCF SIP INVITE",
            "P-CSCF -> RTCWeb SIP 200",
            "RTCWeb -> Page HTTP ws OK (OFFER)",
            "Page -> RTCWeb HTTP ws ANSWER",
            "RTCWeb -> P-CSCF SIP ACK",
            "Page -> RTCWeb HTTP ws BYE",
            "RTCWeb -> P-CSCF SIP BYE",
            "RTCWeb -> Page HTTP ws OK (BYE)",
            "P-CSCF -> RTCWeb SIP 200",
        ],
        "\n{}",
        ladder.join("\n")
    );
    let notes: Vec<String> = lab.trace.notes().into_iter().map(|n| n.text).collect();
    let notes = notes.join("\n");
    assert!(
        notes.contains("the page's WebRTC offer goes to sip:bob@ims.lab as plain RTP/AVP"),
        "{notes}"
    );
    lab.shutdown().await;
}

/// bob's phone calls a page: the page is offered the bridge's WebRTC offer, its answer goes
/// back to bob as the bridge's plain answer in the 200; audio crosses; bob's BYE ends it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_calls_a_page_through_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let mut browser = Browser::new().await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_offer = phone_sdp(phone.local_addr().unwrap().port());

    let inv = bob.build_invite("sip:alice@ims.lab", &phone_offer);
    let ctx = bob.send_tx(inv.clone());
    let offer = page.expect("OFFER", None).await;
    let session = offer["session"].as_str().unwrap().to_string();
    let web_offer = offer["sdp"].as_str().unwrap();
    let w = parse_webrtc(web_offer).expect("the page is offered WebRTC");
    assert!(w.ice_lite && w.g711() == [(G711::Pcmu, 0)], "{web_offer}");
    let leg = lab.rtcweb.media_leg(&session).expect("a bridge leg");

    let web_answer = browser.answer(web_offer).await;
    page.send(json!({"type": "ANSWER", "session": session, "sdp": web_answer}))
        .await;
    let ok = ctx.final_response().await;
    assert_eq!(ok.status, 200);
    let plain = parse_plain(std::str::from_utf8(&ok.body).unwrap()).expect("bob gets RTP/AVP");
    assert_eq!(plain.g711(), [(G711::Pcmu, 0)]);
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let d = bob.dialog_from(&inv, &ok);
    let inv_cseq = d.cseq;
    bob.ack(&d, inv_cseq).await;
    page.expect("OK", Some("ANSWER")).await;

    browser.connect(bridge(&lab), leg).await;
    phone_to_browser(&mut browser, &phone, bridge_ims, WRAP).await;
    browser_to_phone(&mut browser, &phone).await;

    let mut d = d;
    let bye = bob.bye(&mut d).await;
    assert_eq!(bye.status, 200);
    page.expect("BYE", None).await;
    crate::eventually("the bridge's call closed", || bridge(&lab).calls() == 0).await;
    lab.shutdown().await;
}

/// A page offering no G.711 (Chromium's offer without PCMU/PCMA): the bridge cannot relay
/// it, so no INVITE leaves; the page is told why and the call ends; a second call works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_the_bridge_cannot_carry_ends_the_call_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let mut page = Page::login(&lab, "Page", "alice", "alice-secret").await;
    let opus_only: String = CHROMIUM_OFFER
        .replace(" 111 63 9 0 8 13 110 126", " 111 63 13 110 126")
        .lines()
        .filter(|l| !l.contains("PCMU") && !l.contains("PCMA"))
        .map(|l| format!("{l}\n"))
        .collect();
    let start = flow(&lab).len();
    page.send(json!({"type": "OFFER", "session": "o1", "to": "sip:bob@ims.lab", "sdp": opus_only}))
        .await;
    page.expect("WAITING", None).await;
    let mut frames = Vec::new();
    while let Some(f) = page.try_recv(Duration::from_secs(2)).await {
        let done = f["type"] == "BYE";
        frames.push(f);
        if done {
            break;
        }
    }
    let text = format!("{frames:?}");
    assert!(
        frames.iter().any(|f| f["type"] == "ERROR"
            && f["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no common codec"))),
        "{text}"
    );
    assert_eq!(
        frames.last().map(|f| f["type"].clone()),
        Some(json!("BYE")),
        "{text}"
    );
    crate::eventually("the call forgotten", || lab.rtcweb.stats().calls == 0).await;
    assert!(
        !gateway_ladder(&lab, start)
            .iter()
            .any(|l| l.contains("INVITE")),
        "nothing left for IMS"
    );
    assert!(bob.next_request(Duration::from_millis(300)).await.is_none());
    assert_eq!(bridge(&lab).calls(), 0);

    // The gateway goes on: the next call with a browser's offer reaches bob.
    page.send(
        json!({"type": "OFFER", "session": "o2", "to": "sip:bob@ims.lab", "sdp": CHROMIUM_OFFER}),
    )
    .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    assert!(parse_plain(std::str::from_utf8(&inv.request.body).unwrap()).is_ok());
    lab.shutdown().await;
}

/// Figure 7 with media: a page in a bridged call reloads. The IMS side hears nothing; the
/// page takes the call back (RELOAD -> STATE InCall) and the bridge offers its new browser
/// new media in the same session (OFFER -> ANSWER -> OK), on the same port; audio crosses
/// both ways again with the phone's socket, SDP and numbering unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_page_gets_new_media_and_the_phone_sees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), CFG).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = bob_registered(&lab, &shut).await;
    let contact = bob.contact();
    let mut page = Page::open(&lab, "Page").await;
    page.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": "alice-secret"}))
        .await;
    let token = page.expect("OK", Some("REGISTER")).await["body"]
        .as_str()
        .unwrap()
        .to_string();
    let mut browser = Browser::new().await;
    let offer = browser.offer().await;
    page.send(json!({"type": "OFFER", "session": "r1", "to": "sip:bob@ims.lab", "sdp": offer}))
        .await;
    page.expect("WAITING", None).await;
    let inv = bob.next_request(WAIT).await.expect("INVITE");
    let plain = parse_plain(std::str::from_utf8(&inv.request.body).unwrap()).unwrap();
    let bridge_ims: SocketAddr = (plain.addr.unwrap(), plain.port).into();
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer = phone_sdp(phone.local_addr().unwrap().port());
    inv.tx.respond(uas_response(
        &inv.request,
        200,
        "b1",
        &contact,
        Some(&answer),
    ));
    let ok = page.expect("OK", Some("OFFER")).await;
    browser.accept_answer(ok["sdp"].as_str().unwrap()).await;
    page.send(json!({"type": "ANSWER", "session": "r1"})).await;
    bob.next_request(WAIT).await.expect("ACK");
    let leg = lab.rtcweb.media_leg("r1").unwrap();
    browser.connect(bridge(&lab), leg).await;
    phone_to_browser(&mut browser, &phone, bridge_ims, WRAP).await;
    let web_port = bridge(&lab).stats(leg).unwrap().web_addr;

    // The page reloads: its WebSocket and its RTCPeerConnection go.
    drop((page, browser));
    crate::eventually("Reloading", || {
        lab.rtcweb.call_state("r1") == Some(rcslab::rtcweb::message::ClientState::Reloading)
    })
    .await;
    let start = flow(&lab).len();
    let mut page = Page::open(&lab, "Page2").await;
    page.send(json!({"type": "REGISTER", "from": "sip:alice@ims.lab", "password": token}))
        .await;
    page.expect("OK", Some("REGISTER")).await;
    page.send(json!({"type": "RELOAD", "session": "r1"})).await;
    let st = page.expect("STATE", None).await;
    assert_eq!(st["state"], "InCall");
    let reoffer = page.expect("OFFER", None).await;
    assert_eq!(reoffer["session"], "r1", "the same call: {reoffer}");
    assert_eq!(reoffer["from"], "sip:bob@ims.lab");
    let sdp = reoffer["sdp"].as_str().unwrap();
    assert!(parse_webrtc(sdp).is_ok_and(|w| w.ice_lite), "{sdp}");
    let mut browser = Browser::new().await;
    let answer = browser.answer(sdp).await;
    page.send(json!({"type": "ANSWER", "session": "r1", "sdp": answer}))
        .await;
    page.expect("OK", Some("ANSWER")).await;
    assert_eq!(
        lab.rtcweb.media_leg("r1"),
        Some(leg),
        "the same bridge call"
    );
    assert_eq!(bridge(&lab).stats(leg).unwrap().web_addr, web_port);
    browser.connect(bridge(&lab), leg).await;
    phone_to_browser(&mut browser, &phone, bridge_ims, WRAP.wrapping_add(2 * N)).await;
    browser_to_phone(&mut browser, &phone).await;
    assert!(
        bob.next_request(Duration::from_millis(300)).await.is_none(),
        "the IMS side heard nothing"
    );
    let sip: Vec<String> = gateway_ladder(&lab, start)
        .into_iter()
        .filter(|l| {
            l.contains(" SIP ")
                && !l.contains("REGISTER")
                && !l.ends_with(" 401")
                && !l.ends_with(" 200")
        })
        .collect();
    assert!(sip.is_empty(), "no SIP for the reload: {sip:?}");
    let notes: Vec<String> = lab.trace.notes().into_iter().map(|n| n.text).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("reloaded page gets a new WebRTC offer")),
        "{notes:?}"
    );
    lab.shutdown().await;
}
