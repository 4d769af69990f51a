//! The registration event package (RFC 3680): a UE subscribes to its own registration state
//! at the S-CSCF and is told about refreshes and about the network removing it (RTR).

use std::time::Duration;

use hyper::Method as HttpMethod;
use rcslab::sip::Method;
use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

async fn next_notify(ue: &mut rcslab::ue::Ue) -> (String, String) {
    let inc = ue
        .next_request(Duration::from_secs(5))
        .await
        .expect("a NOTIFY");
    assert_eq!(inc.request.method, Method::Notify);
    let state = inc
        .request
        .headers
        .get("Subscription-State")
        .unwrap_or("")
        .to_string();
    let body = String::from_utf8_lossy(&inc.request.body).to_string();
    let mut ok = inc.request.response(200, None);
    let to = ok.headers.get("To").unwrap_or("").to_string();
    if !to.contains("tag=") {
        ok.headers.set("To", format!("{to};tag=n1"));
    }
    inc.tx.respond(ok);
    (state, body)
}

#[tokio::test]
async fn reg_event_notifies_on_subscribe_refresh_and_rtr() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    lab.trace.clear();
    let (resp, _) = alice.subscribe_reg(600).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let (state, body) = next_notify(&mut alice).await;
    assert!(state.starts_with("active"), "{state}");
    assert!(
        body.contains("<reginfo")
            && body.contains("state=\"active\"")
            && body.contains("event=\"registered\""),
        "{body}"
    );
    assert!(
        body.contains("aor=\"tel:+15550001\""),
        "the whole implicit set: {body}"
    );
    // Our 200 to the NOTIFY is sent by the transaction a moment after we answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let f = flow(&lab);
    for l in [
        "UE alice -> P-CSCF SIP SUBSCRIBE",
        "P-CSCF -> S-CSCF SIP SUBSCRIBE",
        "S-CSCF -> P-CSCF SIP 200",
        "P-CSCF -> UE alice SIP 200",
        "S-CSCF -> P-CSCF SIP NOTIFY",
        "P-CSCF -> UE alice SIP NOTIFY",
        "UE alice -> P-CSCF SIP 200",
        "P-CSCF -> S-CSCF SIP 200",
    ] {
        assert!(f.contains(&l.to_string()), "missing {l}: {f:#?}");
    }
    // A re-registration is notified as a refresh.
    alice.register(600).await.unwrap();
    let (_, body) = next_notify(&mut alice).await;
    assert!(
        body.contains("event=\"refreshed\"") && body.contains("version=\"1\""),
        "{body}"
    );
    // The network removes alice (RTR): the last NOTIFY says so and ends the subscription.
    let (status, _) = lab
        .admin
        .call(HttpMethod::DELETE, "/subscribers/alice%40ims.lab", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (state, body) = next_notify(&mut alice).await;
    assert!(state.starts_with("terminated"), "{state}");
    assert!(
        body.contains("event=\"rejected\"") && body.contains("state=\"terminated\""),
        "{body}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn the_p_cscf_subscribes_and_forgets_a_ue_the_network_deregisters() {
    let dir = tempfile::tempdir().unwrap();
    let lab = crate::lab_with_reg_sub(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    crate::eventually("the P-CSCF's reg subscription and first NOTIFY", || {
        let f = flow(&lab);
        f.contains(&"P-CSCF -> S-CSCF SIP SUBSCRIBE".to_string())
            && f.contains(&"S-CSCF -> P-CSCF SIP NOTIFY".to_string())
            && f.contains(&"P-CSCF -> S-CSCF SIP 200".to_string())
    })
    .await;
    assert!(lab.pcscf.binding("sip:alice@ims.lab").is_some());
    let (status, _) = lab
        .admin
        .call(HttpMethod::DELETE, "/subscribers/alice%40ims.lab", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    crate::eventually("the P-CSCF to drop alice after the RTR's NOTIFY", || {
        lab.pcscf.binding("sip:alice@ims.lab").is_none()
    })
    .await;
    lab.shutdown().await;
}

/// RFC 3680 §5.2: bob may not watch alice's registration (he would learn her contact
/// address); alice may watch her own.
#[tokio::test]
async fn only_the_user_may_subscribe_to_its_reg_event() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.unwrap();
    let (resp, _) = bob.subscribe_reg_of("sip:alice@ims.lab", 600).await;
    assert_eq!(resp.status, 403, "{resp:?}");
    assert!(
        bob.next_request(Duration::from_millis(500)).await.is_none(),
        "no NOTIFY with alice's contacts reaches bob"
    );
    let (resp, _) = alice.subscribe_reg(600).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let (_, body) = next_notify(&mut alice).await;
    assert!(body.contains("sip:alice@ims.lab"), "{body}");
    lab.shutdown().await;
}
