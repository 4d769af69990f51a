//! Capability discovery (issue 16; GSMA RCC.07 §2.6.1.1, TS 24.229 §5.4.3): an OPTIONS from
//! one user to another crosses the core like any request outside a dialog (no iFC of the
//! default lab matches OPTIONS), and the target UE answers with its feature tags byte-exact as
//! it registered them; a target that is not registered gets 480 from its S-CSCF and one that
//! does not exist 404 from the I-CSCF, which is what a client falls back on.

use std::time::Duration;

use rcslab::rcs::caps::{self, RCSLAB_UE_TAGS};
use rcslab::ue::caps::Capabilities;
use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{flow, lab_with, rcslab_ue, registered, ue};

/// One request A -> B and its final answer back, as the ladder shows them.
fn across(method: &str, status: &str) -> Vec<String> {
    [
        format!("UE alice -> P-CSCF SIP {method}"),
        format!("P-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> I-CSCF SIP {method}"),
        "I-CSCF -> HSS Diameter LIR".into(),
        "HSS -> I-CSCF Diameter LIA".into(),
        format!("I-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> P-CSCF SIP {method}"),
        format!("P-CSCF -> UE bob SIP {method}"),
        format!("UE bob -> P-CSCF SIP {status}"),
        format!("P-CSCF -> S-CSCF SIP {status}"),
        format!("S-CSCF -> I-CSCF SIP {status}"),
        format!("I-CSCF -> S-CSCF SIP {status}"),
        format!("S-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE alice SIP {status}"),
    ]
    .into()
}

#[tokio::test]
async fn options_through_the_core_brings_back_the_tags_bob_registered() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    bob.register(600).await.expect("bob registers");

    // What bob registered, as the S-CSCF keeps it (RFC 3840 feature tags in Contact): the
    // RCS tags and SMS over IP (TS 24.341 §5.3.1.1), which OPTIONS does not bring back.
    let reg = lab.scscf.registration("sip:bob@ims.lab").expect("bob");
    let registered = caps::feature_tags(&reg.bindings[0].contact_header).unwrap();
    assert_eq!(
        registered
            .iter()
            .map(|t| format!(";{t}"))
            .collect::<String>(),
        format!("{RCSLAB_UE_TAGS};+g.3gpp.smsip")
    );
    let rcs_tags: Vec<_> = registered
        .iter()
        .filter(|t| *t != "+g.3gpp.smsip")
        .cloned()
        .collect();

    lab.trace.clear();
    let answer = tokio::spawn(async move {
        let inc = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("bob gets the OPTIONS");
        assert_eq!(inc.request.method, rcslab::sip::Method::Options);
        // RCC.07 §2.6.1.1.1: the asker's own tags come along in its Contact.
        let asked = inc
            .request
            .headers
            .get("Contact")
            .unwrap_or_default()
            .to_string();
        let ok = bob.answer_options(&inc.request);
        inc.tx.respond(ok);
        asked
    });
    let found = alice
        .capabilities("sip:bob@ims.lab", Duration::from_secs(5))
        .await;
    let asked = answer.await.unwrap();
    assert_eq!(
        caps::feature_tags(&asked).unwrap(),
        rcs_tags,
        "alice's OPTIONS carries her RCS tags"
    );
    assert_eq!(found, Capabilities::Found(rcs_tags.clone()));
    let Capabilities::Found(tags) = found else {
        unreachable!()
    };
    assert!(caps::has_ref(&tags, caps::ICSI_CPM_SESSION));
    assert_eq!(flow(&lab), across("OPTIONS", "200"));

    // carol is a subscriber but not registered: her S-CSCF fetches her profile (SAR
    // UNREGISTERED_USER), no iFC takes an OPTIONS, 480.
    lab.trace.clear();
    let found = alice
        .capabilities("sip:carol@ims.lab", Duration::from_secs(5))
        .await;
    match found {
        Capabilities::Failed { status: 480, .. } => {}
        other => panic!("carol: {other:?}"),
    }
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP OPTIONS",
            "P-CSCF -> S-CSCF SIP OPTIONS",
            "S-CSCF -> I-CSCF SIP OPTIONS",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP OPTIONS",
            "S-CSCF -> HSS Diameter SAR",
            "HSS -> S-CSCF Diameter SAA",
            "S-CSCF -> I-CSCF SIP 480",
            "I-CSCF -> S-CSCF SIP 480",
            "S-CSCF -> P-CSCF SIP 480",
            "P-CSCF -> UE alice SIP 480",
        ]
    );

    // Nobody of that name: the HSS says so to the I-CSCF's LIR, 404.
    lab.trace.clear();
    let found = alice
        .capabilities("sip:nobody@ims.lab", Duration::from_secs(5))
        .await;
    match found {
        Capabilities::Failed { status: 404, .. } => {}
        other => panic!("nobody: {other:?}"),
    }
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP OPTIONS",
            "P-CSCF -> S-CSCF SIP OPTIONS",
            "S-CSCF -> I-CSCF SIP OPTIONS",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP 404",
            "S-CSCF -> P-CSCF SIP 404",
            "P-CSCF -> UE alice SIP 404",
        ]
    );
    lab.shutdown().await;
}

/// `rcslab ue ... caps` as scripts use it, against `rcslab ue ... listen` (the RCS client
/// answers OPTIONS itself): bob's tags one per line on stdout, exit 0; for carol (not
/// registered) nothing on stdout, `caps: 480 ...` on stderr, exit 1. Neither client leaves a
/// contact registered behind.
#[tokio::test]
async fn ue_caps_prints_the_tags_of_ue_listen_and_exits_1_on_480() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let _listen = rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    crate::eventually("bob registered by `ue listen`", || {
        registered(&lab, "sip:bob@ims.lab")
    })
    .await;

    let out = rcslab_ue(&lab, "alice", &["caps", "bob"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected: String = RCSLAB_UE_TAGS[1..]
        .split(';')
        .map(|t| format!("{t}\n"))
        .collect();
    assert_eq!(stdout, expected);
    assert!(
        !registered(&lab, "sip:alice@ims.lab"),
        "alice de-registered"
    );

    let out = rcslab_ue(&lab, "alice", &["caps", "sip:carol@ims.lab"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("rcslab: caps: 480 Temporarily Unavailable"),
        "{stderr}"
    );
    lab.shutdown().await;
}
