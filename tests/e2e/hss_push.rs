//! HSS-initiated Cx (TS 29.228 §6.5): removing a subscriber or changing its credentials sends
//! RTR and the S-CSCF drops the registration; changing its iFC sends PPR and the S-CSCF uses
//! the new profile from then on.

use hyper::Method;
use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{eventually, flow, lab_with, ue};

fn cx_lines(lab: &rcslab::Lab) -> Vec<String> {
    flow(lab)
        .into_iter()
        .filter(|l| l.contains("Diameter"))
        .collect()
}

#[tokio::test]
async fn removing_a_registered_subscriber_sends_rtr() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    lab.trace.clear();
    let (status, body) = lab
        .admin
        .call(Method::DELETE, "/subscribers/sip%3Aalice%40ims.lab", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        cx_lines(&lab),
        ["HSS -> S-CSCF Diameter RTR", "S-CSCF -> HSS Diameter RTA"]
    );
    assert!(
        lab.scscf.registration("sip:alice@ims.lab").is_none(),
        "the S-CSCF dropped alice"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn a_credentials_change_sends_rtr_and_an_ifc_change_sends_ppr() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let before = lab.scscf.registration("sip:alice@ims.lab").unwrap();
    let ifcs = |r: &rcslab::cscf::scscf::Registration| {
        r.profile
            .as_ref()
            .map(|p| p.service_profiles[0].ifcs.len())
            .unwrap_or(0)
    };
    assert_eq!(
        ifcs(&before),
        10,
        "the default lab's ten iFC arrived in the SAA"
    );
    let sub = lab.store.find("sip:alice@ims.lab").unwrap().unwrap();
    lab.trace.clear();
    // Same credentials, no iFC: PPR.
    let body = serde_json::json!({
        "impu": sub.impus, "password": sub.password, "k": sub.aka.k, "opc": sub.aka.opc,
        "amf": sub.aka.amf, "sqn": sub.aka.sqn, "ifc": []
    });
    let (status, text) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        cx_lines(&lab),
        ["HSS -> S-CSCF Diameter PPR", "S-CSCF -> HSS Diameter PPA"]
    );
    let after = lab
        .scscf
        .registration("sip:alice@ims.lab")
        .expect("still registered");
    assert_eq!(ifcs(&after), 0, "the S-CSCF uses the pushed profile");
    // A new password: RTR.
    lab.trace.clear();
    let body = serde_json::json!({ "impu": sub.impus, "password": "changed", "k": sub.aka.k, "opc": sub.aka.opc });
    let (status, _) = lab
        .admin
        .call(Method::POST, "/subscribers", Some(body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let f = cx_lines(&lab);
    assert_eq!(
        &f[..2],
        ["HSS -> S-CSCF Diameter RTR", "S-CSCF -> HSS Diameter RTA"],
        "{f:?}"
    );
    eventually("alice to be gone", || {
        lab.scscf.registration("sip:alice@ims.lab").is_none()
    })
    .await;
    // Her old password no longer works; the new one does.
    match alice.register(600).await {
        Err(rcslab::ue::UeError::Rejected(403, _)) => {}
        other => panic!("old password must fail: {other:?}"),
    }
    alice.cfg.password = "changed".into();
    alice.register(600).await.expect("new password works");
    lab.shutdown().await;
}
