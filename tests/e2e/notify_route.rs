//! The route set of a presence subscription, whichever message the subscriber learns it from
//! (RFC 6665 §4.3, §4.1.2.4; RFC 3261 §12.1): the PS's first NOTIFY may overtake its 200, and
//! a subscriber that builds the dialog from that NOTIFY (baresip does) takes the route set
//! from the NOTIFY's Record-Route, in order, where one that waits for the 200 takes the 200's,
//! reversed. The S-CSCF and the P-CSCF record-route the NOTIFY as they did the SUBSCRIBE, so
//! both give the same route set, and the subscriber's refreshes go through the core. One that
//! skips the core and sends straight to the PS's Contact is refused 403 (the PS takes requests
//! from the S-CSCF only), and the subscription it tried to end goes on.

use std::net::SocketAddr;
use std::time::Duration;

use rcslab::presence::pidf::Basic;
use rcslab::sip::{IncomingRequest, Method, NameAddr, Request, Response, Transport};
use rcslab::ue::Ue;
use rcslab::Lab;

use crate::flow;
use crate::presence::{
    alice_and_bob, flow_of, header, interleaves, notify_to, pidf, publish, to_ps,
};

const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";

/// bob's initial SUBSCRIBE to alice's presence, the first NOTIFY he gets (answered 200) and
/// the SUBSCRIBE's 200, whichever of the two comes first.
async fn subscribe(bob: &mut Ue) -> (Request, IncomingRequest, Response) {
    let mut sub = bob
        .endpoint()
        .new_request(Method::Subscribe, ALICE, BOB, 1, Transport::Udp);
    sub.headers.push("Contact", format!("<{}>", bob.contact()));
    sub.headers.push("Event", "presence");
    sub.headers.push("Accept", "application/pidf+xml");
    sub.headers.push("Expires", "600");
    let tx = bob.send_tx(sub.clone());
    let first = bob
        .next_request(Duration::from_secs(5))
        .await
        .expect("the first NOTIFY");
    assert_eq!(first.request.method, Method::Notify);
    first.tx.respond(first.request.response(200, None));
    let ok = tx.final_response().await;
    assert_eq!(ok.status, 200, "{ok:?}");
    (sub, first, ok)
}

/// The next NOTIFY bob gets within `wait`, answered 200: its Subscription-State.
async fn next_notify(bob: &mut Ue, wait: Duration) -> String {
    let inc = bob.next_request(wait).await.expect("a NOTIFY comes");
    assert_eq!(inc.request.method, Method::Notify);
    inc.tx.respond(inc.request.response(200, None));
    inc.request
        .headers
        .get("Subscription-State")
        .unwrap_or_default()
        .to_string()
}

/// A SUBSCRIBE in the dialog as a subscriber that created it from `notify` builds it
/// (RFC 6665 §4.1.2.4 with RFC 3261 §12.1.1, UAS side): Request-URI the NOTIFY's Contact,
/// Route the NOTIFY's Record-Route in order, To the NOTIFY's From.
fn subscribe_from_notify(bob: &Ue, sub: &Request, notify: &Request, expires: u32) -> Request {
    let target = NameAddr::parse(notify.headers.get("Contact").expect("a Contact"))
        .expect("Contact parses")
        .uri
        .to_string();
    let mut r = Request::new(Method::Subscribe, target);
    r.headers
        .push("Via", bob.endpoint().new_via(Transport::Udp));
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", sub.headers.get("From").unwrap());
    r.headers.push("To", notify.headers.get("From").unwrap());
    r.headers
        .push("Call-ID", sub.headers.get("Call-ID").unwrap());
    r.headers.push("CSeq", "2 SUBSCRIBE");
    for route in notify.headers.values("Record-Route") {
        r.headers.push("Route", route);
    }
    r.headers.push("Contact", format!("<{}>", bob.contact()));
    r.headers.push("Event", "presence");
    r.headers.push("Expires", expires.to_string());
    r
}

/// Where a URI (a Route value or a Contact) sends a request: its host and port, its transport.
fn address_of(uri: &str) -> (SocketAddr, Transport) {
    let na = NameAddr::parse(uri).expect("a URI");
    let sip = na.uri.as_sip().expect("a sip: URI");
    let at: SocketAddr = format!("{}:{}", sip.host, sip.port.unwrap_or(5060))
        .parse()
        .expect("an IP literal");
    let tcp = uri.contains("transport=tcp");
    (at, if tcp { Transport::Tcp } else { Transport::Udp })
}

/// The ladder lines of bob's SUBSCRIBE inside the dialog, through P-CSCF and S-CSCF to the PS
/// (no I-CSCF: the route set names the S-CSCF), and its 200 back.
fn in_dialog_to_ps(status: &str) -> Vec<String> {
    [
        "UE bob -> P-CSCF SIP SUBSCRIBE".to_string(),
        "P-CSCF -> S-CSCF SIP SUBSCRIBE".into(),
        "S-CSCF -> PS SIP SUBSCRIBE".into(),
        format!("PS -> S-CSCF SIP {status}"),
        format!("S-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE bob SIP {status}"),
    ]
    .into()
}

/// The S-CSCF's and the P-CSCF's Record-Route entries, as bob's route set lists them.
fn core_entries(lab: &Lab, route_set: &[String]) -> (usize, usize) {
    let port = |p: u16| format!(":{p}");
    let scscf = port(lab.addrs.scscf.port());
    let pcscf = port(lab.addrs.pcscf.port());
    (
        route_set.iter().filter(|r| r.contains(&scscf)).count(),
        route_set.iter().filter(|r| r.contains(&pcscf)).count(),
    )
}

/// (a) The first NOTIFY carries Record-Route (the P-CSCF's and the S-CSCF's entries, the very
/// values of the SUBSCRIBE's), and the route set it gives (in order) is the one the 200 gives
/// (reversed). (b) A refresh sent along the NOTIFY's route set goes UE -> P-CSCF -> S-CSCF ->
/// PS and is answered 200 there, with the NOTIFY a refresh calls for.
#[tokio::test]
async fn the_first_notify_gives_the_route_set_of_the_200_and_a_refresh_along_it_reaches_the_ps() {
    let (_dir, lab, _stop, _alice, mut bob) = alice_and_bob("").await;
    lab.trace.clear();
    let (sub, first, ok) = subscribe(&mut bob).await;
    let got = flow_of(&lab, 18).await;
    assert!(
        interleaves(&got, &to_ps("bob", "SUBSCRIBE", "200"), &notify_to("bob")),
        "{got:#?}"
    );

    // (a) RFC 3261 §12.1.2: the 200's Record-Route reversed; §12.1.1: the NOTIFY's in order.
    let from_200: Vec<String> = ok
        .headers
        .values("Record-Route")
        .iter()
        .rev()
        .map(|s| s.to_string())
        .collect();
    let from_notify: Vec<String> = first
        .request
        .headers
        .values("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(from_notify, from_200, "{:?}", first.request);
    // S-CSCF as orig and term; P-CSCF once per side when the transports differ (RFC 5658).
    let (scscf, pcscf) = core_entries(&lab, &from_notify);
    assert_eq!(scscf, 2, "{from_notify:?}");
    assert!(pcscf >= 1, "{from_notify:?}");
    assert_eq!(scscf + pcscf, from_notify.len(), "{from_notify:?}");
    assert_eq!(
        address_of(&from_notify[0]).0,
        lab.addrs.pcscf,
        "the route set starts at the P-CSCF: {from_notify:?}"
    );
    // The NOTIFY names the dialog the 200 names.
    assert_eq!(first.request.headers.get("From"), ok.headers.get("To"));

    // (b) A subscriber that built its dialog from the NOTIFY refreshes along its route set.
    lab.trace.clear();
    let refresh = subscribe_from_notify(&bob, &sub, &first.request, 600);
    let (to, t) = address_of(&from_notify[0]);
    let tx = bob.endpoint().send_request(refresh, to, t);
    let state = next_notify(&mut bob, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;expires="), "{state}");
    let r = tx.final_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "Expires"), "600");
    let got = flow_of(&lab, 12).await;
    assert!(
        interleaves(&got, &in_dialog_to_ps("200"), &notify_to("bob")),
        "{got:#?}"
    );
    assert_eq!(lab.ps.subscriptions(), 1);
    lab.shutdown().await;
}

/// (c) An unsubscribe sent straight to the PS's Contact (the Call-ID and tags right, the core
/// skipped, as a client with an empty route set would send it) is refused 403 with the reason
/// in a Warning, and so is a PUBLISH sent there; the subscription goes on: alice's next
/// publication still reaches bob, along the route set. The unsubscribe along the route set
/// then ends it.
#[tokio::test]
async fn a_subscribe_or_publish_that_skips_the_core_is_refused_and_the_subscription_goes_on() {
    let (_dir, lab, _stop, alice, mut bob) = alice_and_bob("").await;
    lab.trace.clear();
    let (sub, first, _ok) = subscribe(&mut bob).await;
    let contact = first.request.headers.get("Contact").unwrap().to_string();
    let (ps, t) = address_of(&contact);
    assert_eq!(ps, lab.addrs.ps, "{contact}");
    // The NOTIFY's 200 may still be on its way to the PS.
    flow_of(&lab, 18).await;

    lab.trace.clear();
    let mut bypass = subscribe_from_notify(&bob, &sub, &first.request, 0);
    bypass.headers.remove("Route");
    bypass.headers.set("Via", bob.endpoint().new_via(t));
    let r = bob
        .endpoint()
        .send_request(bypass, ps, t)
        .final_response()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let warning = header(&r, "Warning");
    assert!(
        warning.contains("ps.ims.lab") && warning.contains("did not come through the S-CSCF"),
        "{r:?}"
    );
    assert_eq!(
        flow(&lab),
        ["UE bob -> PS SIP SUBSCRIBE", "PS -> UE bob SIP 403"]
    );
    assert_eq!(lab.ps.subscriptions(), 1);

    // A PUBLISH with an asserted identity of its own making, straight to the PS: 403.
    lab.trace.clear();
    let mut forged = bob
        .endpoint()
        .new_request(Method::Publish, ALICE, ALICE, 1, t);
    forged
        .headers
        .push("P-Asserted-Identity", format!("<{ALICE}>"));
    forged.headers.push("Event", "presence");
    forged.headers.push("Expires", "600");
    forged.headers.push("Content-Type", "application/pidf+xml");
    forged.body = bytes::Bytes::from(pidf(ALICE, Basic::Closed));
    let r = bob
        .endpoint()
        .send_request(forged, ps, t)
        .final_response()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        header(&r, "Warning").contains("did not come through the S-CSCF"),
        "{r:?}"
    );
    assert!(lab.ps.document(ALICE).is_none(), "nothing was published");
    assert!(bob.next_request(Duration::from_millis(300)).await.is_none());

    // The subscription is still there: alice's PUBLISH through the core reaches bob.
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
    let state = next_notify(&mut bob, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;"), "{state}");
    // Her first publication: the PS subscribes to her registration before it answers.
    let got = flow_of(&lab, 22).await;
    assert!(
        crate::presence::first_publish("alice")
            .iter()
            .any(|first| interleaves(&got, first, &notify_to("bob"))),
        "{got:#?}"
    );

    // Along the route set the unsubscribe is taken: 200, the final NOTIFY, nothing left.
    lab.trace.clear();
    let bye = subscribe_from_notify(&bob, &sub, &first.request, 0);
    let (to, t) = address_of(bye.headers.get("Route").unwrap());
    let tx = bob.endpoint().send_request(bye, to, t);
    let state = next_notify(&mut bob, Duration::from_secs(5)).await;
    assert_eq!(state, "terminated;reason=timeout");
    let r = tx.final_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = flow_of(&lab, 12).await;
    assert!(
        interleaves(&got, &in_dialog_to_ps("200"), &notify_to("bob")),
        "{got:#?}"
    );
    crate::eventually("the subscription gone", || lab.ps.subscriptions() == 0).await;
    lab.shutdown().await;
}
