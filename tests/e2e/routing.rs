//! Session routing through the IMS core (TS 24.229 §5.2.6, §5.3.2, §5.4.3): pager MESSAGE
//! (RFC 3428) from one registered UE to another, hop by hop, and its error cases.

use std::time::Duration;

use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{flow, lab_with, ue};

#[tokio::test]
async fn message_a_to_b_crosses_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    lab.trace.clear();

    let answer = tokio::spawn(async move {
        let inc = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("bob gets the MESSAGE");
        let req = inc.request.clone();
        let mut ok = req.response(200, None);
        let to = ok.headers.get("To").unwrap_or("").to_string();
        ok.headers.set("To", format!("{to};tag=bob1"));
        inc.tx.respond(ok);
        (req, bob)
    });
    let resp = alice.message("sip:bob@ims.lab", "Hello?").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let (delivered, _bob) = answer.await.unwrap();
    assert_eq!(&delivered.body[..], b"Hello?", "the body passes untouched");
    let pai = delivered.headers.get("P-Asserted-Identity").unwrap_or("");
    assert!(
        pai.contains("sip:alice@ims.lab"),
        "the P-CSCF asserted alice: {pai}"
    );
    assert!(
        delivered.uri.contains("127.0.0.1"),
        "retargeted to bob's contact: {}",
        delivered.uri
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
async fn message_to_unregistered_and_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    // No iFC: carol has no services for the unregistered state, so LIA says 5003.
    let lab = lab_with(dir.path(), "default_ifc = []\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    lab.trace.clear();
    let r = alice.message("sip:carol@ims.lab", "are you there?").await;
    assert_eq!(r.status, 480, "carol exists but is not registered: {r:?}");
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP 480",
            "S-CSCF -> P-CSCF SIP 480",
            "P-CSCF -> UE alice SIP 480",
        ]
    );
    let r = alice.message("sip:nobody@ims.lab", "hello?").await;
    assert_eq!(r.status, 404, "unknown user: {r:?}");
    // Unregistered UEs may not send anything but REGISTER.
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    let r = bob.message("sip:alice@ims.lab", "sneaky").await;
    assert_eq!(r.status, 403, "{r:?}");
    lab.shutdown().await;
}

/// The OMA CPM chat feature tag as RCS clients put it in Accept-Contact.
const CPM_MSG: &str = "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg\"";

/// TS 24.229 §5.4.3.3: default handling is for an AS that fails itself. T-IM passes the
/// MESSAGE on (it comes back to the S-CSCF with its odi token), so the 500 bob answers is
/// relayed as it is: the S-CSCF must not treat it as T-IM failing and send the MESSAGE to bob
/// a second time (a real client answers that one 482 Loop Detected).
#[tokio::test]
async fn an_error_an_as_relays_is_not_the_as_failing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    crate::eventually("T-IM to learn bob is online", || {
        lab.tim.is_online("sip:bob@ims.lab")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.trace.clear();
    let answer = tokio::spawn(async move {
        let inc = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("bob gets the chat MESSAGE");
        let mut err = inc.request.response(500, Some("Server Internal Error"));
        let to = err.headers.get("To").unwrap_or("").to_string();
        err.headers.set("To", format!("{to};tag=bob1"));
        inc.tx.respond(err);
        let again = bob.next_request(Duration::from_secs(1)).await;
        assert!(
            again.is_none(),
            "bob got the MESSAGE twice: {:?}",
            again.map(|i| i.request.method)
        );
    });
    let resp = alice
        .message_with("sip:bob@ims.lab", "Hello?", &[("Accept-Contact", CPM_MSG)])
        .await;
    assert_eq!(resp.status, 500, "{resp:?}");
    answer.await.unwrap();
    let f = flow(&lab);
    assert_eq!(
        f.iter()
            .filter(|l| *l == "P-CSCF -> UE bob SIP MESSAGE")
            .count(),
        1,
        "{f:#?}"
    );
    assert!(f.contains(&"T-IM -> S-CSCF SIP 500".to_string()), "{f:#?}");
    assert!(
        f.contains(&"P-CSCF -> UE alice SIP 500".to_string()),
        "{f:#?}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn chat_message_visits_o_im_and_t_im_by_ifc_and_register_is_third_partied() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    // Third-party REGISTER (TS 24.229 §5.7.1.1): the iFC on REGISTER tells T-IM alice is online.
    crate::eventually("T-IM to learn alice is online", || {
        lab.tim.is_online("sip:alice@ims.lab")
    })
    .await;
    let f = flow(&lab);
    assert!(
        f.contains(&"S-CSCF -> T-IM SIP REGISTER".to_string()),
        "{f:#?}"
    );
    assert!(f.contains(&"T-IM -> S-CSCF SIP 200".to_string()), "{f:#?}");
    bob.register(600).await.unwrap();
    crate::eventually("T-IM to learn bob is online", || {
        lab.tim.is_online("sip:bob@ims.lab")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.trace.clear();

    let answer = tokio::spawn(async move {
        let inc = bob
            .next_request(Duration::from_secs(5))
            .await
            .expect("bob gets the chat MESSAGE");
        let mut ok = inc.request.response(200, None);
        let to = ok.headers.get("To").unwrap_or("").to_string();
        ok.headers.set("To", format!("{to};tag=bob1"));
        inc.tx.respond(ok);
        bob
    });
    let resp = alice
        .message_with("sip:bob@ims.lab", "Hello?", &[("Accept-Contact", CPM_MSG)])
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let _bob = answer.await.unwrap();
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> O-IM SIP MESSAGE",
            "O-IM -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> T-IM SIP MESSAGE",
            "T-IM -> S-CSCF SIP MESSAGE",
            "S-CSCF -> P-CSCF SIP MESSAGE",
            "P-CSCF -> UE bob SIP MESSAGE",
            "UE bob -> P-CSCF SIP 200",
            "P-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> T-IM SIP 200",
            "T-IM -> S-CSCF SIP 200",
            "S-CSCF -> I-CSCF SIP 200",
            "I-CSCF -> S-CSCF SIP 200",
            "S-CSCF -> O-IM SIP 200",
            "O-IM -> S-CSCF SIP 200",
            "S-CSCF -> P-CSCF SIP 200",
            "P-CSCF -> UE alice SIP 200",
        ]
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn chat_to_an_unregistered_user_reaches_t_im_through_the_unregistered_profile() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // third-party REGISTER settles
    lab.trace.clear();
    let r = alice
        .message_with(
            "sip:carol@ims.lab",
            "are you there?",
            &[("Accept-Contact", CPM_MSG)],
        )
        .await;
    // T-IM only proxies for now (store-and-forward comes with the RCS chat issue): 480.
    assert_eq!(r.status, 480, "{r:?}");
    assert_eq!(
        flow(&lab),
        [
            "UE alice -> P-CSCF SIP MESSAGE",
            "P-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> O-IM SIP MESSAGE",
            "O-IM -> S-CSCF SIP MESSAGE",
            "S-CSCF -> I-CSCF SIP MESSAGE",
            "I-CSCF -> HSS Diameter LIR",
            "HSS -> I-CSCF Diameter LIA",
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> HSS Diameter SAR",
            "HSS -> S-CSCF Diameter SAA",
            "S-CSCF -> T-IM SIP MESSAGE",
            "T-IM -> S-CSCF SIP MESSAGE",
            "S-CSCF -> T-IM SIP 480",
            "T-IM -> S-CSCF SIP 480",
            "S-CSCF -> I-CSCF SIP 480",
            "I-CSCF -> S-CSCF SIP 480",
            "S-CSCF -> O-IM SIP 480",
            "O-IM -> S-CSCF SIP 480",
            "S-CSCF -> P-CSCF SIP 480",
            "P-CSCF -> UE alice SIP 480",
        ]
    );
    // The HSS now knows carol's S-CSCF (unregistered state): a later LIA names it directly.
    let st = lab.store.hss_state("carol@ims.lab").unwrap();
    assert!(st.scscf.is_some() && !st.registered, "{st:?}");
    lab.shutdown().await;
}

/// An AS that cannot be reached: SESSION_CONTINUED skips it, SESSION_TERMINATED fails the
/// request (TS 23.218 §6.4.4). Port 9 on loopback refuses TCP at once.
fn dead_as_lab(handling: &str) -> String {
    format!(
        "[[default_ifc]]\npriority = 1\nserver_name = \"sip:127.0.0.1:9;transport=tcp\"\ndefault_handling = \"{handling}\"\nspt = [ {{ group = 0, method = \"MESSAGE\" }}, {{ group = 1, session_case = \"originating\" }} ]\n"
    )
}

#[tokio::test]
async fn default_handling_decides_what_happens_when_the_as_is_down() {
    for (handling, expect) in [("continue", 200), ("terminate", 503)] {
        let dir = tempfile::tempdir().unwrap();
        let lab = lab_with(dir.path(), &dead_as_lab(handling)).await;
        let (_stop, shut) = watch::channel(false);
        let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
        let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
        alice.register(600).await.unwrap();
        bob.register(600).await.unwrap();
        let answer = tokio::spawn(async move {
            if let Some(inc) = bob.next_request(Duration::from_secs(3)).await {
                let mut ok = inc.request.response(200, None);
                let to = ok.headers.get("To").unwrap_or("").to_string();
                ok.headers.set("To", format!("{to};tag=b"));
                inc.tx.respond(ok);
            }
            bob
        });
        let r = alice.message("sip:bob@ims.lab", "hi").await;
        assert_eq!(r.status, expect, "{handling}: {r:?}");
        if handling == "terminate" {
            assert!(
                r.headers
                    .get("Reason")
                    .unwrap_or("")
                    .contains("transport error"),
                "{r:?}"
            );
        }
        let _ = answer.await;
        lab.shutdown().await;
    }
}

/// With `[hss.server_capabilities]` the HSS names no S-CSCF for a user it has not assigned
/// (TS 29.229 §6.1.2, §6.1.6): the I-CSCF picks one by capabilities, for the first REGISTER
/// (UAA) and for a request to an unregistered user with unregistered services (LIA).
#[tokio::test]
async fn the_i_cscf_picks_the_s_cscf_by_capabilities_in_uaa_and_lia() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[hss.server_capabilities]\noptional = [1]\n").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    lab.trace.clear();
    let _ = alice
        .message_with(
            "sip:carol@ims.lab",
            "are you there?",
            &[("Accept-Contact", CPM_MSG)],
        )
        .await;
    let f = flow(&lab);
    let lia = f
        .iter()
        .position(|l| l == "HSS -> I-CSCF Diameter LIA")
        .expect("an LIA");
    assert_eq!(
        f[lia + 1..lia + 4],
        [
            "I-CSCF -> S-CSCF SIP MESSAGE",
            "S-CSCF -> HSS Diameter SAR",
            "HSS -> S-CSCF Diameter SAA",
        ],
        "{f:#?}"
    );
    assert!(
        f.contains(&"S-CSCF -> T-IM SIP MESSAGE".to_string()),
        "{f:#?}"
    );
    lab.shutdown().await;
}
