//! Registration end to end (TS 24.229 §5.1-5.4, TS 29.229 Cx): the exact message sequence.

use rcslab::sip::Transport;
use rcslab::ue::{AuthMode, UeError};
use tokio::sync::watch;

use crate::{eventually, flow, lab_with, ue};

/// Exact registration ladders without the default lab's third-party REGISTER to T-IM.
const NO_IFC: &str = "default_ifc = []\n";

/// One REGISTER round trip through P -> I -> S with the Cx exchanges each CSCF makes.
fn round(user: &str, s_cscf_cx: &[&str], status: &str) -> Vec<String> {
    let mut v = vec![
        format!("UE {user} -> P-CSCF SIP REGISTER"),
        "P-CSCF -> I-CSCF SIP REGISTER".to_string(),
        "I-CSCF -> HSS Diameter UAR".to_string(),
        "HSS -> I-CSCF Diameter UAA".to_string(),
        "I-CSCF -> S-CSCF SIP REGISTER".to_string(),
    ];
    for c in s_cscf_cx {
        // MAR -> MAA, SAR -> SAA
        let (req, ans) = (c.to_string(), format!("{}A", &c[..2]));
        v.push(format!("S-CSCF -> HSS Diameter {req}"));
        v.push(format!("HSS -> S-CSCF Diameter {ans}"));
    }
    v.push(format!("S-CSCF -> I-CSCF SIP {status}"));
    v.push(format!("I-CSCF -> P-CSCF SIP {status}"));
    v.push(format!("P-CSCF -> UE {user} SIP {status}"));
    v
}

#[tokio::test]
async fn digest_registration_has_the_ts_24_229_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let reg = alice.register(600).await.expect("alice registers");

    let mut expected = round("alice", &["MAR"], "401");
    expected.extend(round("alice", &["SAR"], "200"));
    assert_eq!(flow(&lab), expected);

    // What the 200 OK must carry (TS 24.229 §5.4.1.2.2).
    assert_eq!(reg.expires, 600);
    assert_eq!(reg.contacts.len(), 1);
    // Every URI a peer must use is an IP literal with the Mw transport (no DNS needed).
    assert_eq!(
        reg.service_route,
        [format!("<sip:orig@{};transport=tcp;lr>", lab.addrs.scscf)]
    );
    assert_eq!(
        reg.path,
        [format!("<sip:term@{};transport=tcp;lr>", lab.addrs.pcscf)],
        "Path echoed"
    );
    let assoc = reg.associated.join(",");
    assert!(
        assoc.contains("sip:alice@ims.lab") && assoc.contains("tel:+15550001"),
        "{assoc}"
    );
    // Both registrars agree.
    assert!(lab.scscf.registration("sip:alice@ims.lab").is_some());
    assert!(
        lab.scscf.registration("tel:+15550001").is_some(),
        "implicit set"
    );
    assert!(lab.pcscf.binding("sip:alice@ims.lab").is_some());
    let st = lab.store.hss_state("alice@ims.lab").unwrap();
    assert_eq!(
        st.scscf,
        Some(format!("sip:{};transport=tcp", lab.addrs.scscf))
    );
    assert!(st.registered);
    lab.shutdown().await;
}

#[tokio::test]
async fn aka_registration_over_tcp_has_the_same_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = ue(&lab, "bob", AuthMode::Aka, &shut).await;
    bob.cfg.transport = Transport::Tcp;
    bob.register(600).await.expect("bob registers with AKA");
    let mut expected = round("bob", &["MAR"], "401");
    expected.extend(round("bob", &["SAR"], "200"));
    assert_eq!(flow(&lab), expected);
    // The UE's USIM accepted the HSS's SQN, and the HSS moved on (persisted).
    assert!(bob.cfg.sqn_ms >= 32);
    let sub = lab.store.find("sip:bob@ims.lab").unwrap().unwrap();
    assert!(sub.aka.sqn > bob.cfg.sqn_ms);
    lab.shutdown().await;
}

#[tokio::test]
async fn aka_sync_failure_resynchronises_with_auts() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut carol = ue(&lab, "carol", AuthMode::Aka, &shut).await;
    // The USIM has seen far higher SQNs than the HSS will use: the first AUTN is stale.
    carol.cfg.sqn_ms = 1 << 30;
    carol
        .register(600)
        .await
        .expect("carol registers after resync");
    let mut expected = round("carol", &["MAR"], "401");
    expected.extend(round("carol", &["MAR"], "401")); // AUTS -> MAR with RAND||AUTS
    expected.extend(round("carol", &["SAR"], "200"));
    assert_eq!(flow(&lab), expected);
    let sub = lab.store.find("sip:carol@ims.lab").unwrap().unwrap();
    assert!(
        sub.aka.sqn > 1 << 30,
        "HSS SQN re-synchronised past the USIM's: {}",
        sub.aka.sqn
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn reregistration_and_deregistration() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    let again = alice.register(1200).await.unwrap();
    assert_eq!(again.expires, 1200);
    assert_eq!(again.contacts.len(), 1, "same contact refreshed, not added");
    lab.trace.clear();
    let gone = alice.register(0).await.unwrap();
    assert!(gone.contacts.is_empty());
    let f = flow(&lab);
    assert!(
        f.contains(&"S-CSCF -> HSS Diameter SAR".to_string()),
        "{f:?}"
    );
    assert!(lab.scscf.registration("sip:alice@ims.lab").is_none());
    let st = lab.store.hss_state("alice@ims.lab").unwrap();
    assert!(
        !st.registered && st.scscf.is_none(),
        "HSS forgot the S-CSCF: {st:?}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn registrations_expire_on_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[registrar]\nmin_expires = 1\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(1).await.unwrap();
    assert!(lab.scscf.registration("sip:alice@ims.lab").is_some());
    let store = lab.store.clone();
    eventually("the S-CSCF to expire alice and tell the HSS", || {
        lab.scscf.registration("sip:alice@ims.lab").is_none()
            && !store
                .hss_state("alice@ims.lab")
                .map(|s| s.registered)
                .unwrap_or(true)
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test]
async fn wrong_password_gets_one_more_challenge_then_403() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.cfg.password = "not-the-password".into();
    match alice.register(600).await {
        Err(UeError::Rejected(403, why)) => assert!(why.contains("authentication failed"), "{why}"),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut expected = round("alice", &["MAR"], "401");
    expected.extend(round("alice", &["MAR"], "401"));
    expected.extend(round("alice", &[], "403"));
    assert_eq!(flow(&lab), expected);
    lab.shutdown().await;
}

/// An unknown user crosses the same nodes with the same messages as a known one with a wrong
/// password (the I-CSCF sends it on after UAA USER_UNKNOWN; the S-CSCF's MAA USER_UNKNOWN
/// becomes a decoy challenge): nothing on the wire tells who exists.
#[tokio::test]
async fn unknown_user_gets_the_same_sequence_as_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), NO_IFC).await;
    let (_stop, shut) = watch::channel(false);
    let mut cfg = rcslab::ue::UeConfig::from_lab(&lab.config, "alice", lab.addrs.pcscf).unwrap();
    cfg.impu = "sip:mallory@ims.lab".into();
    cfg.impi = "mallory@ims.lab".into();
    let mut m = rcslab::ue::Ue::start(cfg, lab.trace.clone(), shut.clone())
        .await
        .unwrap();
    lab.name_addr(m.local_addr(), "UE mallory");
    match m.register(600).await {
        Err(UeError::Rejected(403, why)) => assert!(why.contains("authentication failed"), "{why}"),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut expected = round("mallory", &["MAR"], "401");
    expected.extend(round("mallory", &["MAR"], "401"));
    expected.extend(round("mallory", &[], "403"));
    assert_eq!(flow(&lab), expected);
    lab.shutdown().await;
}

#[tokio::test]
async fn subscribers_survive_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    {
        let lab = lab_with(dir.path(), NO_IFC).await;
        rcslab::hss::admin::add_subscribers(
            &lab.store,
            &[rcslab::config::SubscriberConfig {
                impi: None,
                impu: vec!["sip:dave@ims.lab".into()],
                password: "dave-pw".into(),
                k: None,
                opc: None,
                amf: None,
                sqn: None,
                ifc: None,
            }],
            &[],
        )
        .unwrap();
        lab.shutdown().await;
    }
    // sled releases the directory when the last handle goes; give it a moment.
    let mut lab = None;
    for _ in 0..50 {
        let cfg = rcslab::LabConfig::default_lab().with_ephemeral_ports();
        match rcslab::Lab::start(
            cfg,
            dir.path(),
            rcslab::LabOptions {
                trace: true,
                timers: None,
                hep: None,
            },
        )
        .await
        {
            Ok(l) => {
                lab = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let lab = lab.expect("lab restarts on the same data dir");
    let (_stop, shut) = watch::channel(false);
    let mut cfg = rcslab::ue::UeConfig::from_lab(&lab.config, "alice", lab.addrs.pcscf).unwrap();
    cfg.impu = "sip:dave@ims.lab".into();
    cfg.impi = "dave@ims.lab".into();
    cfg.password = "dave-pw".into();
    let mut dave = rcslab::ue::Ue::start(cfg, lab.trace.clone(), shut)
        .await
        .unwrap();
    dave.register(600)
        .await
        .expect("dave, added before the restart, registers");
    lab.shutdown().await;
}
