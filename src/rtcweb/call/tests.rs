//! Figure 7 and figure 8 walked step by step with a fake clock: each step's outputs, in order.

use std::time::{Duration, Instant};

use super::*;

const OFFER_SDP: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER_SDP: &str = "v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";

fn cfg() -> CallConfig {
    let mut c = CallConfig::new(
        "TCP",
        "127.0.0.1:5070",
        "<sip:rtcweb@127.0.0.1:5070;transport=tcp>",
    );
    c.outbound = Some("<sip:127.0.0.1:6060;lr>".into());
    c
}

fn drain(c: &mut Call) -> Vec<CallOutput> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// `web OK(PRANSWER)`, `sip PRACK`, `sip 200 BYE`: one output in a word or two.
fn show(o: &CallOutput) -> String {
    match o {
        CallOutput::Web(m) => match m.of {
            Some(k) => format!("web {}({k})", m.kind),
            None => format!("web {}", m.kind),
        },
        CallOutput::Request(r) => format!("sip {}", r.method),
        CallOutput::Response(r) => {
            let m = r
                .headers
                .get("CSeq")
                .unwrap_or("")
                .split_whitespace()
                .nth(1)
                .unwrap_or("");
            format!("sip {} {m}", r.status)
        }
    }
}

fn step(c: &mut Call) -> (Vec<String>, Vec<CallOutput>) {
    let out = drain(c);
    (out.iter().map(show).collect(), out)
}

fn req(o: &CallOutput) -> &Request {
    match o {
        CallOutput::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn resp(o: &CallOutput) -> &Response {
    match o {
        CallOutput::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn web(o: &CallOutput) -> &WebMessage {
    match o {
        CallOutput::Web(m) => m,
        other => panic!("not a web message: {other:?}"),
    }
}

fn page(kind: Kind) -> WebMessage {
    WebMessage::for_session(kind, "s1")
}

/// The callee's response to `r` (through the S-CSCF, which record-routes).
fn callee(r: &Request, status: u16, rseq: Option<u32>, sdp: Option<&str>) -> Response {
    let mut x = r.response(status, None);
    let to = x.headers.get("To").unwrap().to_string();
    if !to.contains("tag=") {
        x.headers.set("To", format!("{to};tag=bob1"));
    }
    if r.method == Method::Invite {
        x.headers.push("Record-Route", "<sip:127.0.0.1:6060;lr>");
        x.headers.push("Contact", "<sip:bob@127.0.0.1:5099>");
    }
    if let Some(n) = rseq {
        x.headers.push("Require", "100rel");
        x.headers.push("RSeq", n.to_string());
    }
    if let Some(s) = sdp {
        x.headers.push("Content-Type", "application/sdp");
        x.body = Bytes::copy_from_slice(s.as_bytes());
    }
    x
}

/// A call set up from the page up to the INVITE; returns the call and the INVITE.
fn calling(t: Instant) -> (Call, Request) {
    let mut offer = page(Kind::Offer).with_sdp(Some(OFFER_SDP));
    offer.to = Some(BOB.into());
    let mut c = Call::offer(t, cfg(), &offer, ALICE).unwrap();
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web WAITING", "sip INVITE"]);
    (c, req(&out[1]).clone())
}

/// Figure 8 to the end: the page's call is InCall; returns the call and the INVITE.
fn in_call(t: Instant) -> (Call, Request) {
    let (mut c, invite) = calling(t);
    c.handle_response(t, &callee(&invite, 180, None, Some(ANSWER_SDP)));
    c.handle_response(t, &callee(&invite, 200, None, Some(ANSWER_SDP)));
    c.handle_web(t, &page(Kind::Answer));
    let (s, _) = step(&mut c);
    assert_eq!(s, ["web Ringing", "web OK(OFFER)", "sip ACK"]);
    assert_eq!(c.state(), ClientState::InCall);
    (c, invite)
}

#[test]
fn figure_8_step_by_step() {
    let t = Instant::now();
    // S806-S812: OFFER -> WAITING, then the INVITE via the S-CSCF.
    let (mut c, invite) = calling(t);
    assert_eq!(c.state(), ClientState::Calling);
    assert_eq!(c.direction(), Direction::WebToIms);
    assert_eq!(invite.uri, BOB);
    let h = &invite.headers;
    assert_eq!(h.get("Supported"), Some("100rel"));
    assert_eq!(h.get("Require"), Some("100rel"));
    assert_eq!(h.get("CSeq"), Some("1 INVITE"));
    assert_eq!(h.get("Route"), Some("<sip:127.0.0.1:6060;lr>"));
    assert_eq!(h.get("P-Preferred-Identity"), Some("<sip:alice@ims.lab>"));
    assert!(h
        .get("From")
        .unwrap()
        .starts_with("<sip:alice@ims.lab>;tag="));
    assert_eq!(h.get("To"), Some("<sip:bob@ims.lab>"));
    assert_eq!(h.get("Content-Type"), Some("application/sdp"));
    assert!(h
        .get("Via")
        .unwrap()
        .starts_with("SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK"));
    assert_eq!(&invite.body[..], OFFER_SDP.as_bytes());
    assert_eq!(c.call_id(), h.get("Call-ID").unwrap());

    c.handle_response(t, &invite.response(100, None));
    assert!(step(&mut c).0.is_empty());

    // S814: 183 Session Progress, reliable, with the SDP answer: figure 8 gives the page
    // nothing; the gateway PRACKs it (RFC 3262 §4).
    c.handle_response(t, &callee(&invite, 183, Some(1), Some(ANSWER_SDP)));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip PRACK"]);
    let prack = req(&out[0]);
    assert_eq!(prack.uri, "sip:bob@127.0.0.1:5099");
    assert_eq!(prack.headers.get("RAck"), Some("1 1 INVITE"));
    assert_eq!(prack.headers.get("CSeq"), Some("2 PRACK"));
    assert_eq!(prack.headers.get("Route"), Some("<sip:127.0.0.1:6060;lr>"));
    assert!(prack.headers.get("To").unwrap().ends_with(";tag=bob1"));
    c.handle_response(t, &callee(prack, 200, None, None));
    assert!(step(&mut c).0.is_empty());
    // A retransmitted 183 is not PRACKed again.
    c.handle_response(t, &callee(&invite, 183, Some(1), Some(ANSWER_SDP)));
    assert!(step(&mut c).0.is_empty());

    // S816-S820: 180 Ringing -> "Ringing", with the callee's SDP the page has not had yet.
    c.handle_response(t, &callee(&invite, 180, Some(2), None));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web Ringing"]);
    assert_eq!(web(&out[0]).sdp.as_deref(), Some(ANSWER_SDP));

    // S822-S826: PRANSWER -> PRACK for the 180.
    c.handle_web(t, &page(Kind::Pranswer));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip PRACK"]);
    let prack = req(&out[0]).clone();
    assert_eq!(prack.headers.get("RAck"), Some("2 1 INVITE"));
    assert_eq!(prack.headers.get("CSeq"), Some("3 PRACK"));

    // S828-S832: 200 OK (PRACK) -> "OK".
    c.handle_response(t, &callee(&prack, 200, None, None));
    assert_eq!(step(&mut c).0, ["web OK(PRANSWER)"]);

    // S834: ANSWER, where the figure sends it; the ACK waits for the 2xx (RFC 3261 §13.2.2.4).
    c.handle_web(t, &page(Kind::Answer));
    assert!(step(&mut c).0.is_empty());
    assert_eq!(c.state(), ClientState::Calling);

    // The 200 to the INVITE (not drawn): OK for OFFER to the page, then S838's ACK.
    c.handle_response(t, &callee(&invite, 200, None, Some(ANSWER_SDP)));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web OK(OFFER)", "sip ACK"]);
    assert_eq!(web(&out[0]).sdp, None, "the page has the SDP from Ringing");
    let ack = req(&out[1]).clone();
    assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
    assert_eq!(ack.uri, "sip:bob@127.0.0.1:5099");
    assert_eq!(c.state(), ClientState::InCall);

    // A retransmitted 2xx gets the same ACK.
    c.handle_response(t, &callee(&invite, 200, None, Some(ANSWER_SDP)));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip ACK"]);
    assert_eq!(req(&out[0]), &ack);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn the_2xx_before_answer_waits_for_the_page_then_gives_up() {
    let t = Instant::now();
    let (mut c, invite) = calling(t);
    c.handle_response(t, &callee(&invite, 200, None, Some(ANSWER_SDP)));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web OK(OFFER)"]);
    assert_eq!(web(&out[0]).sdp.as_deref(), Some(ANSWER_SDP));
    assert_eq!(c.poll_timeout(), Some(t + DEFAULT_ANSWER_WAIT));
    // Its retransmissions are not the page's business, nor do they move the timer.
    c.handle_response(
        t + Duration::from_secs(1),
        &callee(&invite, 200, None, Some(ANSWER_SDP)),
    );
    assert!(step(&mut c).0.is_empty());
    assert_eq!(c.poll_timeout(), Some(t + DEFAULT_ANSWER_WAIT));
    // A PRANSWER now has nothing to PRACK: OK at once.
    c.handle_web(t, &page(Kind::Pranswer));
    assert_eq!(step(&mut c).0, ["web OK(PRANSWER)"]);

    let (mut c2, invite2) = calling(t);
    c2.handle_response(t, &callee(&invite2, 200, None, Some(ANSWER_SDP)));
    drain(&mut c2);
    c2.handle_web(t, &page(Kind::Answer));
    assert_eq!(step(&mut c2).0, ["sip ACK"]);
    assert_eq!(c2.state(), ClientState::InCall);

    // No ANSWER in time: ACK, BYE (RFC 3261 §15), the page told.
    c.handle_timeout(t + DEFAULT_ANSWER_WAIT);
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip ACK", "sip BYE", "web BYE"]);
    assert_eq!(req(&out[1]).headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(
        web(&out[2]).reason.as_deref(),
        Some("no ANSWER from the page")
    );
    assert_eq!(c.state(), ClientState::Hangup);
    assert!(c.is_finished());
}

#[test]
fn refused_call_hangs_up_with_the_status() {
    let t = Instant::now();
    let (mut c, invite) = calling(t);
    c.handle_response(t, &callee(&invite, 486, None, None));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web BYE"]);
    assert_eq!(web(&out[0]).reason.as_deref(), Some("486 Busy Here"));
    assert_eq!(c.state(), ClientState::Hangup);
    assert!(c.is_finished());
}

#[test]
fn page_hangs_up_while_calling_cancels() {
    let t = Instant::now();
    // Before any provisional: the CANCEL waits for one (RFC 3261 §9.1).
    let (mut c, invite) = calling(t);
    c.handle_web(t, &page(Kind::Bye));
    assert_eq!(step(&mut c).0, ["web OK(BYE)"]);
    assert_eq!(c.state(), ClientState::Hangup);
    c.handle_response(t, &callee(&invite, 180, Some(1), None));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip CANCEL"]);
    assert_eq!(req(&out[0]).headers.get("Via"), invite.headers.get("Via"));
    assert!(!c.is_finished());
    c.handle_response(t, &callee(&invite, 487, None, None));
    assert!(step(&mut c).0.is_empty());
    assert!(c.is_finished());

    // After Ringing: CANCEL at once; a 2xx racing it gets ACK and BYE (RFC 3261 §15).
    let (mut c, invite) = calling(t);
    c.handle_response(t, &callee(&invite, 180, None, None));
    drain(&mut c);
    c.web_disconnected(t);
    assert_eq!(step(&mut c).0, ["sip CANCEL"]);
    c.handle_response(t, &callee(&invite, 200, None, Some(ANSWER_SDP)));
    assert_eq!(step(&mut c).0, ["sip ACK", "sip BYE"]);
}

#[test]
fn hang_up_both_ways() {
    let t = Instant::now();
    let (mut c, _) = in_call(t);
    c.handle_web(t, &page(Kind::Bye));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip BYE", "web OK(BYE)"]);
    let bye = req(&out[0]).clone();
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(c.state(), ClientState::Hangup);
    c.handle_response(t, &callee(&bye, 200, None, None));
    assert!(step(&mut c).0.is_empty());
    assert!(c.is_finished());

    let (mut c, _) = in_call(t);
    let mut bye = Request::new(Method::Bye, "sip:rtcweb@127.0.0.1:5070");
    bye.headers.push("From", "<sip:bob@ims.lab>;tag=bob1");
    bye.headers.push("To", "<sip:alice@ims.lab>;tag=x");
    bye.headers.push("Call-ID", c.call_id().to_string());
    bye.headers.push("CSeq", "7 BYE");
    c.handle_request(t, &bye);
    assert_eq!(step(&mut c).0, ["sip 200 BYE", "web BYE"]);
    assert_eq!(c.state(), ClientState::Hangup);
    // A BYE of another dialog: 481, the call untouched.
    let (mut c, _) = in_call(t);
    bye.headers.set("Call-ID", "other@x");
    c.handle_request(t, &bye);
    assert_eq!(step(&mut c).0, ["sip 481 BYE"]);
    assert_eq!(c.state(), ClientState::InCall);
}

#[test]
fn reload_and_back_to_in_call() {
    let t = Instant::now();
    let (mut c, _) = in_call(t);
    c.web_disconnected(t);
    assert!(step(&mut c).0.is_empty(), "the IMS dialog is kept");
    assert_eq!(c.state(), ClientState::Reloading);
    assert_eq!(c.poll_timeout(), Some(t + DEFAULT_RELOAD_GRACE));
    c.handle_timeout(t + Duration::from_secs(5));
    assert_eq!(c.state(), ClientState::Reloading);
    c.handle_web(t + Duration::from_secs(5), &page(Kind::Reload));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web STATE"]);
    let m = web(&out[0]);
    assert_eq!(m.state, Some(ClientState::InCall));
    assert_eq!(m.from.as_deref(), Some(BOB));
    assert_eq!(m.sdp.as_deref(), Some(ANSWER_SDP));
    assert_eq!(c.state(), ClientState::InCall);
    assert_eq!(c.poll_timeout(), None);
    // And a BYE from the page still ends the dialog it kept.
    c.handle_web(t, &page(Kind::Bye));
    assert_eq!(step(&mut c).0, ["sip BYE", "web OK(BYE)"]);
}

#[test]
fn reload_grace_expiry_ends_the_call() {
    let t = Instant::now();
    let (mut c, _) = in_call(t);
    c.web_disconnected(t);
    c.handle_timeout(t + DEFAULT_RELOAD_GRACE);
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip BYE"], "no page to tell");
    assert_eq!(req(&out[0]).headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(c.state(), ClientState::Hangup);
    assert!(c.is_finished());
    // A page coming back too late is told so.
    c.handle_web(t, &page(Kind::Reload));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web ERROR(RELOAD)"]);
    assert_eq!(
        web(&out[0]).reason.as_deref(),
        Some("the call is not reloading")
    );
}

#[test]
fn reloading_page_hangs_up_or_ims_ends_it() {
    let t = Instant::now();
    let (mut c, _) = in_call(t);
    c.web_disconnected(t);
    let mut bye = Request::new(Method::Bye, "sip:rtcweb@127.0.0.1:5070");
    bye.headers.push("Call-ID", c.call_id().to_string());
    bye.headers.push("CSeq", "9 BYE");
    c.handle_request(t, &bye);
    assert_eq!(step(&mut c).0, ["sip 200 BYE"]);
    assert_eq!(c.state(), ClientState::Hangup);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn wrong_state_messages_get_an_error_and_change_nothing() {
    let t = Instant::now();
    let (mut c, invite) = calling(t);
    let cases = [
        (
            page(Kind::Pranswer),
            "web ERROR(PRANSWER)",
            "no Ringing to acknowledge",
        ),
        (
            page(Kind::Reload),
            "web ERROR(RELOAD)",
            "the call is not reloading",
        ),
        (
            page(Kind::Ringing),
            "web ERROR(Ringing)",
            "not a message for this direction of call",
        ),
        (
            page(Kind::Waiting),
            "web ERROR(WAITING)",
            "not a message a page sends in a call",
        ),
        (
            page(Kind::Offer),
            "web ERROR(OFFER)",
            "this session has a call already",
        ),
        (
            WebMessage::for_session(Kind::Answer, "s2"),
            "web ERROR(ANSWER)",
            "not this call's session",
        ),
    ];
    for (m, shown, reason) in cases {
        c.handle_web(t, &m);
        let (s, out) = step(&mut c);
        assert_eq!(s, [shown]);
        assert_eq!(web(&out[0]).reason.as_deref(), Some(reason));
        assert_eq!(web(&out[0]).session.as_deref(), Some("s1"));
        assert_eq!(c.state(), ClientState::Calling);
    }
    // The call goes on as figure 8 draws it.
    c.handle_response(t, &callee(&invite, 180, Some(5), None));
    assert_eq!(step(&mut c).0, ["web Ringing"]);
    c.handle_web(t, &page(Kind::Pranswer));
    assert_eq!(step(&mut c).0, ["sip PRACK"]);
    c.handle_web(t, &page(Kind::Pranswer));
    assert_eq!(step(&mut c).0, ["web ERROR(PRANSWER)"]);
    c.handle_web(t, &page(Kind::Answer));
    c.handle_web(t, &page(Kind::Answer));
    assert_eq!(step(&mut c).0, ["web ERROR(ANSWER)"]);
    assert_eq!(c.state(), ClientState::Calling);
}

#[test]
fn a_bad_offer_is_refused() {
    let t = Instant::now();
    let mut offer = page(Kind::Offer).with_sdp(Some(" "));
    offer.to = Some(BOB.into());
    let e = Call::offer(t, cfg(), &offer, ALICE).unwrap_err();
    assert_eq!(e.kind, Kind::Error);
    assert_eq!(e.of, Some(Kind::Offer));
    offer.to = None;
    assert!(Call::offer(t, cfg(), &offer, ALICE).is_err());
}

/// An IMS UE's INVITE to a web user, through the S-CSCF.
fn ims_invite(supported: bool) -> Request {
    let mut r = Request::new(Method::Invite, "sip:rtcweb@127.0.0.1:5070;transport=tcp");
    r.headers
        .push("Via", "SIP/2.0/TCP 127.0.0.1:6060;branch=z9hG4bKs1");
    r.headers
        .push("Via", "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKb1");
    r.headers.push("Record-Route", "<sip:127.0.0.1:6060;lr>");
    r.headers.push("From", "\"Bob\" <sip:bob@ims.lab>;tag=b9");
    r.headers.push("To", "<sip:alice@ims.lab>");
    r.headers.push("Call-ID", "in-1@bob");
    r.headers.push("CSeq", "10 INVITE");
    r.headers.push("Contact", "<sip:bob@127.0.0.1:5099>");
    if supported {
        r.headers.push("Supported", "100rel, timer");
    }
    r.headers.push("Content-Type", "application/sdp");
    r.body = Bytes::copy_from_slice(OFFER_SDP.as_bytes());
    r
}

fn ims_in_dialog(method: Method, seq: u32, to_tag_from: &Response) -> Request {
    let mut r = Request::new(method.clone(), "sip:rtcweb@127.0.0.1:5070");
    r.headers.push("From", "<sip:bob@ims.lab>;tag=b9");
    r.headers
        .push("To", to_tag_from.headers.get("To").unwrap().to_string());
    r.headers.push("Call-ID", "in-1@bob");
    r.headers.push("CSeq", format!("{seq} {method}"));
    r
}

#[test]
fn ims_calls_the_page() {
    let t = Instant::now();
    let invite = ims_invite(true);
    let mut c = Call::incoming(t, cfg(), "g1", &invite).unwrap();
    assert_eq!(c.direction(), Direction::ImsToWeb);
    let (s, out) = step(&mut c);
    assert_eq!(s, ["web OFFER"]);
    assert_eq!(
        web(&out[0]).to_json(),
        format!(
            "{{\"type\":\"OFFER\",\"session\":\"g1\",\"to\":\"{ALICE}\",\"from\":\"{BOB}\",\"sdp\":{}}}",
            serde_json::to_string(OFFER_SDP).unwrap()
        )
    );
    let g = |k: Kind| WebMessage::for_session(k, "g1");

    // Ringing -> reliable 180 (RFC 3262 §3).
    c.handle_web(t, &g(Kind::Ringing));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip 180 INVITE"]);
    let ringing = resp(&out[0]).clone();
    assert_eq!(ringing.headers.get("Require"), Some("100rel"));
    let rseq: u32 = ringing.headers.get("RSeq").unwrap().parse().unwrap();
    assert!(ringing.headers.get("To").unwrap().contains(";tag="));
    assert_eq!(
        ringing.headers.get("Record-Route"),
        Some("<sip:127.0.0.1:6060;lr>")
    );
    assert_eq!(
        ringing.headers.get("Contact"),
        Some("<sip:rtcweb@127.0.0.1:5070;transport=tcp>")
    );
    // Retransmitted at T1 until PRACKed.
    c.handle_timeout(t + Duration::from_millis(500));
    assert_eq!(step(&mut c).0, ["sip 180 INVITE"]);
    assert_eq!(c.poll_timeout(), Some(t + Duration::from_millis(1500)));

    // A PRACK with the wrong RAck: 481; the right one: 200 and OK for Ringing.
    let mut prack = ims_in_dialog(Method::Prack, 11, &ringing);
    prack
        .headers
        .push("RAck", format!("{} 10 INVITE", rseq.wrapping_add(1)));
    c.handle_request(t, &prack);
    assert_eq!(step(&mut c).0, ["sip 481 PRACK"]);
    prack.headers.set("RAck", format!("{rseq} 10 INVITE"));
    c.handle_request(t, &prack);
    assert_eq!(step(&mut c).0, ["sip 200 PRACK", "web OK(Ringing)"]);
    assert_eq!(c.poll_timeout(), Some(t + DEFAULT_RING_TIMEOUT));
    c.handle_request(t, &prack);
    assert_eq!(step(&mut c).0, ["sip 481 PRACK"], "acknowledged already");

    // ANSWER -> 200 with the SDP answer, retransmitted until the ACK.
    c.handle_web(t, &g(Kind::Answer));
    assert_eq!(
        step(&mut c).0,
        ["web ERROR(ANSWER)"],
        "ANSWER needs the SDP"
    );
    c.handle_web(t, &g(Kind::Answer).with_sdp(Some(ANSWER_SDP)));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip 200 INVITE"]);
    let ok = resp(&out[0]).clone();
    assert_eq!(&ok.body[..], ANSWER_SDP.as_bytes());
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(ok.headers.get("To"), ringing.headers.get("To"));
    c.handle_timeout(t + Duration::from_millis(500));
    assert_eq!(step(&mut c).0, ["sip 200 INVITE"]);
    assert_eq!(c.state(), ClientState::Calling);

    // ACK -> InCall, OK for ANSWER.
    c.handle_request(t, &ims_in_dialog(Method::Ack, 10, &ok));
    assert_eq!(step(&mut c).0, ["web OK(ANSWER)"]);
    assert_eq!(c.state(), ClientState::InCall);
    assert_eq!(c.poll_timeout(), None);

    // The page hangs up: BYE to the IMS UE, in the dialog the INVITE made.
    c.handle_web(t, &g(Kind::Bye));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip BYE", "web OK(BYE)"]);
    let bye = req(&out[0]);
    assert_eq!(bye.uri, "sip:bob@127.0.0.1:5099");
    assert_eq!(bye.headers.get("Route"), Some("<sip:127.0.0.1:6060;lr>"));
    assert_eq!(
        bye.headers.get("To"),
        Some("\"Bob\" <sip:bob@ims.lab>;tag=b9")
    );
    assert_eq!(bye.headers.get("From"), ok.headers.get("To"));
    assert_eq!(bye.headers.get("CSeq"), Some("1 BYE"));
    assert_eq!(c.state(), ClientState::Hangup);
}

#[test]
fn ims_call_without_100rel_rings_unreliably() {
    let t = Instant::now();
    let mut c = Call::incoming(t, cfg(), "g1", &ims_invite(false)).unwrap();
    drain(&mut c);
    c.handle_web(t, &WebMessage::for_session(Kind::Ringing, "g1"));
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip 180 INVITE"]);
    assert_eq!(resp(&out[0]).headers.get("RSeq"), None);
    assert_eq!(c.poll_timeout(), Some(t + DEFAULT_RING_TIMEOUT));
    // No ANSWER: 480 and the page told.
    c.handle_timeout(t + DEFAULT_RING_TIMEOUT);
    assert_eq!(step(&mut c).0, ["sip 480 INVITE", "web BYE"]);
    assert_eq!(c.state(), ClientState::Hangup);
}

#[test]
fn ims_call_declined_cancelled_or_unacked() {
    let t = Instant::now();
    let g = |k: Kind| WebMessage::for_session(k, "g1");
    // Declined by the page.
    let mut c = Call::incoming(t, cfg(), "g1", &ims_invite(true)).unwrap();
    drain(&mut c);
    c.handle_web(t, &g(Kind::Bye));
    assert_eq!(step(&mut c).0, ["sip 603 INVITE", "web OK(BYE)"]);
    // Cancelled by the caller.
    let invite = ims_invite(true);
    let mut c = Call::incoming(t, cfg(), "g1", &invite).unwrap();
    drain(&mut c);
    c.handle_request(t, &invite.cancel());
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip 200 CANCEL", "sip 487 INVITE", "web BYE"]);
    assert_eq!(web(&out[2]).reason.as_deref(), Some("CANCEL"));
    assert_eq!(c.state(), ClientState::Hangup);
    // Answered, never ACKed: 2xx retransmissions up to 64*T1, then BYE (RFC 3261 §13.3.1.4).
    let mut c = Call::incoming(t, cfg(), "g1", &ims_invite(true)).unwrap();
    drain(&mut c);
    c.handle_web(t, &g(Kind::Answer).with_sdp(Some(ANSWER_SDP)));
    drain(&mut c);
    let mut now = t;
    let mut sent = 0;
    while let Some(at) = c.poll_timeout() {
        now = at;
        c.handle_timeout(now);
        for o in drain(&mut c) {
            if matches!(&o, CallOutput::Response(r) if r.status == 200) {
                sent += 1;
            } else {
                assert!(matches!(show(&o).as_str(), "sip BYE" | "web BYE"), "{o:?}");
            }
        }
    }
    assert!(now >= t + Duration::from_secs(32) && sent >= 9, "{sent}");
    assert_eq!(c.state(), ClientState::Hangup);
}

#[test]
fn incoming_invites_the_gateway_cannot_take() {
    let t = Instant::now();
    let mut i = ims_invite(true);
    i.headers.push("Require", "precondition");
    let r = Call::incoming(t, cfg(), "g1", &i).unwrap_err();
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get("Unsupported"), Some("precondition"));
    let mut i = ims_invite(true);
    i.body = Bytes::new();
    assert_eq!(Call::incoming(t, cfg(), "g1", &i).unwrap_err().status, 488);
    let mut i = ims_invite(true);
    i.headers.remove("CSeq");
    assert_eq!(Call::incoming(t, cfg(), "g1", &i).unwrap_err().status, 400);
}

#[test]
fn one_calls_error_leaves_another_call_alone() {
    let t = Instant::now();
    let (mut a, _) = in_call(t);
    let (mut b, _) = in_call(t);
    a.handle_web(t, &page(Kind::Pranswer));
    assert_eq!(step(&mut a).0, ["web ERROR(PRANSWER)"]);
    assert!(step(&mut b).0.is_empty());
    assert_eq!(
        (a.state(), b.state()),
        (ClientState::InCall, ClientState::InCall)
    );
}

#[test]
fn a_prack_after_the_2xx_still_gets_200() {
    let t = Instant::now();
    let g = |k: Kind| WebMessage::for_session(k, "g1");
    let mut c = Call::incoming(t, cfg(), "g1", &ims_invite(true)).unwrap();
    drain(&mut c);
    c.handle_web(t, &g(Kind::Ringing));
    let (_, out) = step(&mut c);
    let ringing = resp(&out[0]).clone();
    let rseq = ringing.headers.get("RSeq").unwrap().to_string();
    c.handle_web(t, &g(Kind::Answer).with_sdp(Some(ANSWER_SDP)));
    assert_eq!(step(&mut c).0, ["sip 200 INVITE"]);
    let mut prack = ims_in_dialog(Method::Prack, 11, &ringing);
    prack.headers.push("RAck", format!("{rseq} 10 INVITE"));
    c.handle_request(t, &prack);
    assert_eq!(step(&mut c).0, ["sip 200 PRACK", "web OK(Ringing)"]);
    // The 2xx is still retransmitted until the ACK.
    c.handle_timeout(t + Duration::from_millis(500));
    assert_eq!(step(&mut c).0, ["sip 200 INVITE"]);
}

/// A callee without RFC 3262 answers 420 with `Unsupported: 100rel` (baresip 1.0 does): the
/// INVITE goes once more without Require (RFC 3261 §8.1.3.5), next CSeq, new branch, same
/// dialog identifiers and SDP; its unreliable 180 rings the page and PRANSWER is OK at once.
#[test]
fn a_420_for_100rel_sends_the_invite_again_without_require() {
    let t = Instant::now();
    let (mut c, invite) = calling(t);
    let mut bad = callee(&invite, 420, None, None);
    bad.headers.push("Unsupported", "100rel");
    c.handle_response(t, &bad);
    let (s, out) = step(&mut c);
    assert_eq!(s, ["sip INVITE"], "no page frame: the call goes on");
    let again = req(&out[0]);
    let (h, h0) = (&again.headers, &invite.headers);
    assert_eq!(h.get("Require"), None);
    assert_eq!(h.get("Supported"), Some("100rel"));
    assert_eq!(h.get("CSeq"), Some("2 INVITE"));
    assert_ne!(h.get("Via"), h0.get("Via"), "a new transaction");
    for name in ["Call-ID", "From", "To"] {
        assert_eq!(h.get(name), h0.get(name), "{name}");
    }
    assert_eq!(again.body, invite.body);
    assert_eq!(c.state(), ClientState::Calling);

    c.handle_response(t, &callee(again, 180, None, None));
    c.handle_web(t, &page(Kind::Pranswer));
    c.handle_response(t, &callee(again, 200, None, Some(ANSWER_SDP)));
    c.handle_web(t, &page(Kind::Answer));
    let (s, out) = step(&mut c);
    assert_eq!(
        s,
        [
            "web Ringing",
            "web OK(PRANSWER)",
            "web OK(OFFER)",
            "sip ACK"
        ]
    );
    assert_eq!(req(&out[3]).headers.get("CSeq"), Some("2 ACK"));
    assert_eq!(c.state(), ClientState::InCall);

    // A second 420 (to the INVITE without Require) ends the call as any failure does.
    let (mut c, invite) = calling(t);
    let refuse = |r: &Request| {
        let mut x = callee(r, 420, None, None);
        x.headers.push("Unsupported", "100rel");
        x
    };
    c.handle_response(t, &refuse(&invite));
    let (_, out) = step(&mut c);
    c.handle_response(t, &refuse(req(&out[0])));
    let (s, _) = step(&mut c);
    assert_eq!(s, ["web BYE"]);
    assert_eq!(c.state(), ClientState::Hangup);
}
