use super::*;
use crate::presence::pidf::{Basic, Pidf, Tuple};
use crate::sip::SipMessage;

fn req(text: &str) -> Request {
    match SipMessage::parse(text.replace('\n', "\r\n").as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn publish(extra: &str, body: &str) -> Request {
    req(&format!(
        "PUBLISH sip:alice@ims.lab SIP/2.0\n\
         Via: SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKp1\n\
         From: <sip:alice@ims.lab>;tag=a1\n\
         To: <sip:alice@ims.lab>\n\
         Call-ID: pub-1\n\
         CSeq: 1 PUBLISH\n\
         P-Asserted-Identity: <sip:alice@ims.lab>\n\
         P-Served-User: <sip:alice@ims.lab>;sescase=term;regstate=reg\n\
         {extra}Content-Length: {}\n\n{body}",
        body.len()
    ))
}

#[test]
fn a_publish_is_checked_in_rfc_3903_order() {
    let ok = publish(
        "Event: presence\nExpires: 120\nContent-Type: application/pidf+xml\n",
        "<x/>",
    );
    let i = publish_input(&ok).unwrap();
    assert_eq!(i.presentity, "sip:alice@ims.lab");
    assert_eq!(i.expires, Some(120));
    assert_eq!(i.body.as_deref(), Some(&b"<x/>"[..]));
    let e = publish_input(&publish("Event: foo\n", "")).unwrap_err();
    assert_eq!(e.status_code(), 489);
    assert_eq!(e.extra_headers(), [("Allow-Events", "presence")]);
    assert_eq!(
        publish_input(&publish("", "")).unwrap_err().status_code(),
        489
    );
    let e = publish_input(&publish(
        "Event: presence\nContent-Type: text/plain\n",
        "hi",
    ))
    .unwrap_err();
    assert_eq!(e.status_code(), 415);
    let e = publish_input(&publish("Event: presence\nExpires: soon\n", "")).unwrap_err();
    assert_eq!(e.status_code(), 400);
    let mut other = publish("Event: presence\n", "");
    other
        .headers
        .set("P-Asserted-Identity", "<sip:bob@ims.lab>");
    assert_eq!(publish_input(&other).unwrap_err().status_code(), 403);
    other.headers.remove("P-Asserted-Identity");
    assert_eq!(publish_input(&other).unwrap_err().status_code(), 403);
    let refresh = publish("Event: presence;id=1\nSIP-If-Match: abc\n", "");
    let i = publish_input(&refresh).unwrap();
    assert_eq!((i.if_match.as_deref(), i.body), (Some("abc"), None));
}

fn subscribe(extra: &str) -> Request {
    req(&format!(
        "SUBSCRIBE sip:alice@ims.lab SIP/2.0\n\
         Via: SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKs1\n\
         From: <sip:bob@ims.lab>;tag=b1\n\
         To: <sip:alice@ims.lab>\n\
         Call-ID: sub-1\n\
         CSeq: 7 SUBSCRIBE\n\
         Record-Route: <sip:127.0.0.1:5080;transport=tcp;lr;term>\n\
         Record-Route: <sip:127.0.0.1:5080;transport=tcp;lr;orig>, <sip:127.0.0.1:5060;lr>\n\
         P-Asserted-Identity: <sip:bob@ims.lab>, <tel:+15550002>\n\
         {extra}Content-Length: 0\n\n"
    ))
}

#[test]
fn the_uas_dialog_and_its_notifys_follow_rfc_3261_section_12() {
    let s = subscribe("Event: presence\nContact: <sip:bob@127.0.0.1:6000;transport=tcp>\nAccept: application/pidf+xml\n");
    assert!(check_event(&s).is_ok() && check_accept(&s).is_ok());
    assert_eq!(watcher_of(&s).as_deref(), Some("sip:bob@ims.lab"));
    assert_eq!(presentity_of(&s).unwrap(), "sip:alice@ims.lab");
    let mut d = NotifyDialog::from_subscribe(&s, "ps1").unwrap();
    assert_eq!(d.id, DialogId::new("sub-1", "ps1", "b1"));
    assert_eq!(d.route_set.len(), 3);
    let ok = subscribe_ok(&s, &d, "<sip:127.0.0.1:5094;transport=tcp>", 600);
    assert_eq!(ok.headers.get("To"), Some("<sip:alice@ims.lab>;tag=ps1"));
    assert_eq!(ok.headers.get_all("Record-Route").count(), 2);
    assert_eq!(ok.headers.get("Expires"), Some("600"));

    let mut doc = Pidf::empty("sip:alice@ims.lab");
    doc.tuples.push(Tuple::new("t1", Basic::Open));
    let n = Notify {
        dialog: d.id.clone(),
        presentity: "sip:alice@ims.lab".into(),
        watcher: "sip:bob@ims.lab".into(),
        state: SubscriptionState::Active { expires: 600 },
        body: Some(doc),
    };
    let r = d.notify_request(&n, "<sip:127.0.0.1:5094;transport=tcp>");
    assert_eq!(r.uri, "sip:bob@127.0.0.1:6000;transport=tcp");
    assert_eq!(r.headers.values("Route").len(), 3);
    assert!(r.headers.values("Route")[0].contains("term"));
    assert_eq!(r.headers.get("CSeq"), Some("1 NOTIFY"));
    assert_eq!(r.headers.get("From"), Some("<sip:alice@ims.lab>;tag=ps1"));
    assert_eq!(r.headers.get("To"), Some("<sip:bob@ims.lab>;tag=b1"));
    assert_eq!(
        r.headers.get("Subscription-State"),
        Some("active;expires=600")
    );
    assert_eq!(r.headers.get("Content-Type"), Some("application/pidf+xml"));
    assert!(std::str::from_utf8(&r.body).unwrap().contains("open"));
    assert_eq!(in_dialog_id_of_notify(&r), d.id);
    let pending = Notify {
        state: SubscriptionState::Pending { expires: 600 },
        body: None,
        ..n
    };
    let r = d.notify_request(&pending, "<sip:ps>");
    assert_eq!(r.headers.get("CSeq"), Some("2 NOTIFY"));
    assert!(r.body.is_empty() && r.headers.get("Content-Type").is_none());

    let e = NotifyDialog::from_subscribe(&subscribe("Event: presence\n"), "t").unwrap_err();
    assert_eq!(e.status_code(), 400);
    let e = check_accept(&subscribe("Accept: application/reginfo+xml\n")).unwrap_err();
    assert_eq!(e.status_code(), 406);
    assert_eq!(
        check_event(&subscribe("Event: presence.winfo\n"))
            .unwrap_err()
            .status_code(),
        489
    );
}
