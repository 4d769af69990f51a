//! SIP over WebSocket at the P-CSCF (RFC 7118), with a client that writes what JsSIP writes:
//! an `.invalid` Via host, a `transport=ws` Contact with `+sip.instance` and `reg-id` (RFC
//! 5626), no Authorization on the first REGISTER, then the digest answer.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;

use rcslab::sip::SipMessage;
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::{flow, lab_with, ue};

/// Exact ladders: no third-party REGISTER to T-IM, no AS on MESSAGE.
const NO_IFC: &str = "default_ifc = []\n";
const WAIT: Duration = Duration::from_secs(5);

/// A SIP client over WebSocket with JsSIP's header shapes ([`rcslab::ue::jssip`]).
type JsSip = rcslab::ue::jssip::JsSipClient;

/// A JsSIP-shaped client of `user` at the lab's P-CSCF WebSocket, named `UE user` in ladders.
async fn jssip(lab: &Lab, user: &str) -> JsSip {
    let c = JsSip::connect(lab.addrs.pcscf_ws, user, "ims.lab")
        .await
        .expect("upgrade with subprotocol sip");
    lab.name_addr(c.local, &format!("UE {user}"));
    c
}

/// Opens the WebSocket upgrade with `protocol` as Sec-WebSocket-Protocol (none: no header).
async fn upgrade(
    addr: SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> Result<(WebSocketStream<TcpStream>, SocketAddr), WsError> {
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    let local = tcp.local_addr().unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    if protocol.is_some() {
        assert_eq!(
            resp.headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok()),
            Some("sip"),
            "RFC 7118 §4: the server names the subprotocol"
        );
    }
    Ok((ws, local))
}

/// One REGISTER round trip through P -> I -> S (as in `registration`).
fn round(user: &str, cx: &str, status: &str) -> Vec<String> {
    let ans = format!("{}A", &cx[..2]);
    [
        format!("UE {user} -> P-CSCF SIP REGISTER"),
        "P-CSCF -> I-CSCF SIP REGISTER".into(),
        "I-CSCF -> HSS Diameter UAR".into(),
        "HSS -> I-CSCF Diameter UAA".into(),
        "I-CSCF -> S-CSCF SIP REGISTER".into(),
        format!("S-CSCF -> HSS Diameter {cx}"),
        format!("HSS -> S-CSCF Diameter {ans}"),
        format!("S-CSCF -> I-CSCF SIP {status}"),
        format!("I-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE {user} SIP {status}"),
    ]
    .into()
}

#[tokio::test]
async fn a_jssip_client_registers_over_websocket_and_exchanges_messages() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = jssip(&lab, "alice").await;

    let ok = alice.register("alice-secret").await.unwrap();
    assert_eq!(ok.status, 200, "{ok:?}");
    let mut expected = round("alice", "MAR", "401");
    expected.extend(round("alice", "SAR", "200"));
    assert_eq!(flow(&lab), expected);
    // RFC 5626 §5.1: the edge proxy's Path carries `ob` for the WebSocket flow.
    assert_eq!(
        ok.headers.values("Path"),
        [format!(
            "<sip:term@{};transport=tcp;lr;ob>",
            lab.addrs.pcscf
        )]
    );
    // RFC 5626 §6: the registrar says it kept the outbound flow.
    assert!(
        ok.headers
            .values("Require")
            .iter()
            .any(|v| v.contains("outbound")),
        "{ok:?}"
    );
    let contact = ok.headers.get("Contact").unwrap_or("");
    assert!(
        contact.contains(&alice.contact) && contact.contains("reg-id=1"),
        "the registrar keeps the RFC 5626 contact: {contact}"
    );
    let b = lab.pcscf.binding("sip:alice@ims.lab").expect("bound");
    assert_eq!(
        b.flow,
        (alice.local, rcslab::sip::Transport::Ws),
        "the binding is the WebSocket flow"
    );
    let notes: Vec<String> = lab.trace.notes().into_iter().map(|n| n.text).collect();
    assert!(
        notes.iter().any(|n| n.contains("REGISTER over WebSocket")
            && n.contains("without credentials")
            && n.contains("alice@ims.lab")
            && n.contains(";ob")),
        "{notes:#?}"
    );

    // bob (UDP) -> alice (WebSocket): the MESSAGE arrives over alice's connection.
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.expect("bob registers");
    lab.trace.clear();
    let sent = tokio::spawn(async move {
        let r = bob.message("sip:alice@ims.lab", "Hi from UDP").await;
        (r, bob)
    });
    let SipMessage::Request(m) = alice.recv().await.unwrap() else {
        panic!("a request")
    };
    assert_eq!(m.method.as_str(), "MESSAGE");
    assert_eq!(
        m.uri.to_string(),
        alice.contact,
        "retargeted to the .invalid contact"
    );
    assert_eq!(&m.body[..], b"Hi from UDP");
    let mut ok = m.response(200, None);
    ok.ensure_to_tag();
    alice
        .send(String::from_utf8(SipMessage::Response(ok).to_bytes()).unwrap())
        .await
        .unwrap();
    let (r, mut bob) = sent.await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        flow(&lab),
        [
            "UE bob -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> P-CSCF SIP MESSAGE",
            "P-CSCF -> UE alice SIP MESSAGE",
            "UE alice -> P-CSCF SIP 200",
            "P-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> I-CSCF SIP 200",
            "I-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE bob SIP 200",
        ]
    );

    // alice (WebSocket) -> bob (UDP).
    lab.trace.clear();
    let answer = tokio::spawn(async move {
        let inc = bob.next_request(WAIT).await.expect("bob gets the MESSAGE");
        let req = inc.request.clone();
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        inc.tx.respond(ok);
        req
    });
    alice
        .message("sip:bob@ims.lab", "Hi from the browser")
        .await
        .unwrap();
    let r = alice.response().await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let delivered = answer.await.unwrap();
    assert_eq!(&delivered.body[..], b"Hi from the browser");
    assert!(
        delivered
            .headers
            .get("P-Asserted-Identity")
            .is_some_and(|p| p.contains("sip:alice@ims.lab")),
        "the P-CSCF asserted alice"
    );
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> P-CSCF SIP MESSAGE",
            "P-CSCF -> UE bob SIP MESSAGE",
            "UE bob -> P-CSCF SIP 200",
            "P-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> I-CSCF SIP 200",
            "I-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE alice SIP 200",
        ]
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_without_the_sip_subprotocol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let ws = lab.addrs.pcscf_ws;
    for (path, protocol, status) in [
        ("/", None, 400),
        ("/", Some("xmpp"), 400),
        ("/other", Some("sip"), 404),
    ] {
        match upgrade(ws, path, protocol).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), status, "{path} {protocol:?}");
                let body =
                    String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains("\"error\""), "a JSON error body: {body}");
            }
            Err(e) => panic!("{path} {protocol:?}: expected an HTTP refusal, got {e}"),
            Ok(_) => panic!("{path} {protocol:?}: the upgrade must be refused"),
        }
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let mut alice = jssip(&lab, "alice").await;
    let mut mallory = jssip(&lab, "carol").await;
    let huge = format!(
        "MESSAGE sip:bob@ims.lab SIP/2.0\r\nContent-Length: 70000\r\n\r\n{}",
        "x".repeat(70_000)
    );
    mallory.send(huge).await.unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, mallory.ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(close.code, CloseCode::Size);
    assert!(
        close.reason.as_str().contains("larger than 65535"),
        "{}",
        close.reason
    );
    // alice's connection is untouched: she registers as before.
    let ok = alice.register("alice-secret").await.unwrap();
    assert_eq!(ok.status, 200, "{ok:?}");
    crate::eventually("the closed connection to leave the count", || {
        lab.sip_load()
            .iter()
            .find(|(n, _)| *n == "P-CSCF")
            .is_some_and(|(_, l)| l.transport.ws_connections == 1)
    })
    .await;
    let st = lab.status();
    let p = st.queues.iter().find(|q| q.node == "P-CSCF").unwrap();
    assert_eq!(
        p.ws_connections, 1,
        "rcslab status counts the WebSocket flows"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn a_udp_ue_calls_a_websocket_ue_and_the_browser_hangs_up() {
    use rcslab::ue::{audio_sdp, uas_response};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = jssip(&lab, "alice").await;
    assert_eq!(alice.register("alice-secret").await.unwrap().status, 200);
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.expect("bob registers");
    lab.trace.clear();

    let caller = tokio::spawn(async move {
        let (resp, dialog) = bob.invite("sip:alice@ims.lab", &audio_sdp(4000)).await;
        (resp, dialog.is_some(), bob)
    });
    let inv = match alice.recv().await.unwrap() {
        SipMessage::Request(r) if r.method.as_str() == "INVITE" => r,
        other => panic!("expected the INVITE, got {other:?}"),
    };
    let rr = inv.headers.values("Record-Route");
    assert_eq!(
        rr.first().map(|s| s.to_string()),
        Some(format!("<sip:{};transport=ws;lr>", lab.addrs.pcscf_ws)),
        "the P-CSCF's entry facing the browser names its WebSocket listener: {rr:?}"
    );
    let ok = uas_response(&inv, 200, "ws1", &alice.contact, Some(&audio_sdp(5000)));
    let to = ok.headers.get("To").unwrap().to_string();
    alice
        .send(String::from_utf8(SipMessage::Response(ok).to_bytes()).unwrap())
        .await
        .unwrap();
    let (resp, dialog, mut bob) = caller.await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(dialog);
    // The ACK reaches the browser over its connection (its contact's .invalid host unused).
    match alice.recv().await.unwrap() {
        SipMessage::Request(r) if r.method.as_str() == "ACK" => {}
        other => panic!("expected the ACK, got {other:?}"),
    }

    // The browser hangs up along the route set (the Record-Route as received, RFC 3261 §12.1.1).
    let routes: String = rr.iter().map(|r| format!("Route: {r}\r\n")).collect();
    let bye = format!(
        "BYE {target} SIP/2.0\r\n\
         Via: SIP/2.0/WS {host};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 69\r\n\
         {routes}\
         To: {from}\r\n\
         From: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 2 BYE\r\n\
         User-Agent: JsSIP 3.10.1\r\n\
         Content-Length: 0\r\n\r\n",
        target = rcslab::sip::NameAddr::parse(inv.headers.get("Contact").unwrap())
            .unwrap()
            .uri,
        host = alice.host,
        branch = rcslab::sip::new_tag(),
        from = inv.headers.get("From").unwrap(),
        call_id = inv.headers.get("Call-ID").unwrap(),
    );
    alice.send(bye).await.unwrap();
    let got = bob.next_request(WAIT).await.expect("bob gets the BYE");
    assert_eq!(got.request.method.as_str(), "BYE");
    got.tx.respond(got.request.response(200, None));
    assert_eq!(alice.response().await.unwrap().status, 200);
    let f = flow(&lab);
    for line in [
        "P-CSCF -> UE alice SIP INVITE",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> UE alice SIP ACK",
        "UE alice -> P-CSCF SIP BYE",
        "P-CSCF -> S-CSCF SIP BYE",
        "P-CSCF -> UE bob SIP BYE",
        "P-CSCF -> UE alice SIP 200",
    ] {
        assert!(f.iter().any(|l| l == line), "{line} missing from {f:#?}");
    }
    lab.shutdown().await;
}

/// RFC 5626 §6 at the registrar: a UE that asks for an outbound flow (`reg-id`,
/// `+sip.instance`) over plain UDP, where the P-CSCF's Path carries no `;ob`, gets 439 First
/// Hop Lacks Outbound Support through the core; the same UE registers without `reg-id`.
#[tokio::test]
async fn reg_id_over_udp_gets_439_first_hop_lacks_outbound_support() {
    use rcslab::sip::{Method, Transport};
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let impu = "sip:alice@ims.lab";
    let mut r =
        alice
            .endpoint()
            .new_request(Method::Register, "sip:ims.lab", impu, 1, Transport::Udp);
    r.headers.push(
        "Contact",
        format!(
            "<{}>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\"",
            alice.contact()
        ),
    );
    r.headers.push("Supported", "path, outbound");
    r.headers.push("Expires", "600");
    let resp = alice.send_tx(r).final_response().await;
    assert_eq!(resp.status, 439, "{resp:?}");
    assert_eq!(resp.reason, "First Hop Lacks Outbound Support");
    alice
        .register(600)
        .await
        .expect("without reg-id it registers");
    lab.shutdown().await;
}
