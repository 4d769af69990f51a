//! The pager-mode fallback (RFC 3428) for clients that refuse MSRP, ring without answering
//! or pick the chat up as a call, and the retry of a delivery INVITE answered 480.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rcslab::cpim::ImdnStatus;
use rcslab::sip::Method;
use rcslab::ue::chat::{ChatEvent, ChatOptions};
use rcslab::ue::AuthMode;
use rcslab::Lab;
use tokio::sync::{mpsc, watch};

use super::{pending_total, rcslab_ue, registered, users_toml, wait_event};
use crate::chat::{chat_flow, chat_ue, FIGURE_1};
use crate::{flow, lab_with, ue};

/// What the plain SIP client saw.
#[derive(Debug)]
enum Seen {
    Invite { at: Instant, accept_contact: String },
    Cancel,
    Bye,
    Message { content_type: String, body: String },
}

/// An answer for [`plain_ua`]: 180 Ringing with the UA's Contact (no CPM feature tag), as
/// linphone sends it; plain 180 carries no Contact.
const RING_WITH_CONTACT: u16 = 1180;

/// A plain SIP UA (no RCS, no MSRP; registered with digest through the P-CSCF, its Contact
/// without CPM feature tags): answers INVITEs with `refuse` and MESSAGEs with 200.
/// The default lab plus dave, a plain SIP user.
async fn dave_lab(dir: &std::path::Path) -> Lab {
    lab_with(
        dir,
        &format!(
            "{}[[subscribers]]\nimpu = [\"sip:dave@ims.lab\"]\npassword = \"dave-pw\"\n",
            users_toml("x", 0)
        ),
    )
    .await
}

/// Waits for the sender's IMDN `delivered` noted `pager-mode` for message `id`.
async fn pager_delivered(alice: &mut rcslab::ue::chat::ChatUe, id: &str) {
    wait_event(
        alice,
        Duration::from_secs(5),
        "delivered (pager mode)",
        |e| {
            matches!(e, ChatEvent::Status { message_id, status: ImdnStatus::Delivered, note, .. }
            if *message_id == id && note.as_deref() == Some("pager-mode"))
        },
    )
    .await;
}

async fn plain_ua(
    lab: &Lab,
    user: &str,
    refuse: u16,
    shut: &watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<Seen> {
    plain_ua_answering(lab, user, vec![refuse], 200, shut).await
}

/// [`plain_ua`] answering INVITEs with `answers` in turn (the last one from then on); 180
/// means: ring and never answer (a voice-only phone nobody picks up), until CANCEL (487); 200
/// means: pick up as a voice call (audio SDP answer).
async fn plain_ua_answering(
    lab: &Lab,
    user: &str,
    answers: Vec<u16>,
    message_status: u16,
    shut: &watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<Seen> {
    let mut u = ue(lab, user, AuthMode::Digest, shut).await;
    u.register(600).await.expect("registers");
    let (tx, rx) = mpsc::unbounded_channel();
    let contact = u.contact();
    tokio::spawn(async move {
        let mut answers = answers.into_iter();
        let mut last = 488;
        let mut ringing: HashMap<String, rcslab::sip::IncomingRequest> = HashMap::new();
        while let Some(inc) = u.next_request(Duration::from_secs(60)).await {
            let req = &inc.request;
            let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
            match req.method {
                Method::Invite => {
                    let _ = tx.send(Seen::Invite {
                        at: Instant::now(),
                        accept_contact: req.headers.get("Accept-Contact").unwrap_or("").into(),
                    });
                    last = answers.next().unwrap_or(last);
                    let r = if last == RING_WITH_CONTACT {
                        rcslab::ue::uas_response(req, 180, "ring1", &contact, None)
                    } else if last == 200 {
                        rcslab::ue::uas_response(
                            req,
                            200,
                            &rcslab::sip::new_tag(),
                            &contact,
                            Some(&rcslab::ue::audio_sdp(4000)),
                        )
                    } else {
                        let mut r = req.response(last, None);
                        r.ensure_to_tag();
                        r
                    };
                    inc.tx.respond(r);
                    if last == 180 || last == RING_WITH_CONTACT {
                        ringing.insert(call_id, inc);
                    }
                }
                Method::Cancel => {
                    let _ = tx.send(Seen::Cancel);
                    inc.tx.respond(req.response(200, None));
                    if let Some(inv) = ringing.remove(&call_id) {
                        let mut r = inv.request.response(487, None);
                        r.ensure_to_tag();
                        inv.tx.respond(r);
                    }
                }
                Method::Message => {
                    let _ = tx.send(Seen::Message {
                        content_type: req.headers.get("Content-Type").unwrap_or("").to_string(),
                        body: String::from_utf8_lossy(&req.body).to_string(),
                    });
                    let mut r = req.response(message_status, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
                Method::Ack => {}
                Method::Bye => {
                    let _ = tx.send(Seen::Bye);
                    let mut r = req.response(200, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
                _ => {
                    let mut r = req.response(200, None);
                    r.ensure_to_tag();
                    inc.tx.respond(r);
                }
            }
        }
    });
    rx
}

/// The fallback flow after alice's chat INVITE is answered by T-IM (figure 1 up to step 12,
/// [`crate::chat::FIGURE_1`]):
/// T-IM's INVITE is refused, it sends the text in a pager-mode MESSAGE, and the IMDN
/// "delivered" (noted pager-mode) goes back to alice over her MSRP session.
const FALLBACK: &[&str] = &[
    "! T-IM -> S-CSCF SIP INVITE",
    "S-CSCF -> P-CSCF SIP INVITE",
    "P-CSCF -> UE dave SIP INVITE",
    "UE dave -> P-CSCF SIP REFUSED",
    "~ P-CSCF -> UE dave SIP ACK", // RFC 3261 §17.1.1.3: hop-by-hop ACK of the refusal
    "P-CSCF -> S-CSCF SIP REFUSED",
    "~ S-CSCF -> P-CSCF SIP ACK",
    "S-CSCF -> T-IM SIP REFUSED",
    "~ T-IM -> S-CSCF SIP ACK",
    "! T-IM -> S-CSCF SIP MESSAGE", // pager mode (RFC 3428), text/plain
    "S-CSCF -> P-CSCF SIP MESSAGE",
    "P-CSCF -> UE dave SIP MESSAGE",
    "UE dave -> P-CSCF SIP 200",
    "P-CSCF -> S-CSCF SIP 200",
    "S-CSCF -> T-IM SIP 200",
    "T-IM -> O-IM MSRP SEND",
    "O-IM -> UE alice MSRP SEND",
    "UE alice -> O-IM MSRP 200",
    "O-IM -> T-IM MSRP 200",
];

async fn falls_back_to_pager_mode(refuse: u16) {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", refuse, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = flow(&lab).len();
    let id = alice.send("sip:dave@ims.lab", "hi dave, no MSRP?").await;
    let ev = wait_event(&mut alice, Duration::from_secs(10), "a status", |e| {
        matches!(e, ChatEvent::Status { .. } | ChatEvent::SendFailed { .. })
    })
    .await;
    match ev {
        ChatEvent::Status {
            message_id,
            status,
            note,
            ..
        } => {
            assert_eq!(message_id, id);
            assert_eq!(status, ImdnStatus::Delivered);
            assert_eq!(note.as_deref(), Some("pager-mode"));
        }
        other => panic!("{other:?}"),
    }
    match dave.recv().await {
        Some(Seen::Invite { accept_contact, .. }) => assert_eq!(
            accept_contact,
            "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\";require;explicit",
            "RFC 3841: a voice-only client must not match"
        ),
        other => panic!("{other:?}"),
    }
    match dave.recv().await {
        Some(Seen::Message { content_type, body }) => {
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            assert_eq!(body, "hi dave, no MSRP?");
        }
        other => panic!("{other:?}"),
    }
    // Nothing stays stored; the history knows how it went.
    assert!(lab
        .tim
        .store()
        .unwrap()
        .pending_for("sip:dave@ims.lab")
        .is_empty());
    assert_eq!(
        lab.tim.store().unwrap().by_message_id(&id).unwrap().status,
        "delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = chat_flow(&lab, start);
    let upto = FIGURE_1
        .iter()
        .position(|l| *l == "! T-IM -> S-CSCF SIP INVITE")
        .unwrap();
    let expected: Vec<String> = FIGURE_1[..upto]
        .iter()
        .chain(FALLBACK)
        .map(|l| l.replace("REFUSED", &refuse.to_string()))
        .collect();
    if let Some(d) = rcslab::lab::scenario::diff(&expected, &got) {
        panic!("fallback ladder differs:\n{d}");
    }
    // No more INVITEs or MESSAGEs for dave.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(dave.try_recv().is_err());
    lab.shutdown().await;
}

#[tokio::test]
async fn a_client_that_refuses_msrp_with_488_gets_a_pager_message() {
    falls_back_to_pager_mode(488).await;
}

#[tokio::test]
async fn a_client_that_answers_500_gets_a_pager_message() {
    falls_back_to_pager_mode(500).await;
}

/// A delivery INVITE answered 480 (the P-CSCF does not know the contact yet, the race of the
/// first registration) is retried with backoff, 1 s, 2 s, 4 s, while the user stays
/// registered; here the fourth attempt is refused and pager mode delivers.
#[tokio::test]
async fn a_480_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua_answering(&lab, "dave", vec![480, 480, 480, 488], 200, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "eventually").await;
    let mut at = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_secs(10), dave.recv()).await {
            Ok(Some(Seen::Invite { at: t, .. })) => at.push(t),
            other => panic!("{other:?} after {at:?}\n{}", chat_flow(&lab, 0).join("\n")),
        }
    }
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= want * 0.9 && *gap < want + 1.5,
            "retry gaps {gaps:?}, want about 1, 2, 4 s"
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Message { body, .. })) => assert_eq!(body, "eventually"),
        other => panic!("{other:?}"),
    }
    pager_delivered(&mut alice, &id).await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// A voice-only client that rings and never answers the chat INVITE (linphone): T-IM CANCELs
/// it after RING_LIMIT (12 s) and sends the text in pager mode; the sender learns it.
#[tokio::test]
async fn a_client_that_only_rings_is_cancelled_and_gets_a_pager_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", 180, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "pick up?").await;
    let at = match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Invite { at, .. })) => at,
        other => panic!("{other:?}"),
    };
    match tokio::time::timeout(Duration::from_secs(20), dave.recv()).await {
        Ok(Some(Seen::Cancel)) => {
            let waited = at.elapsed().as_secs_f64();
            assert!((11.0..15.0).contains(&waited), "CANCEL after {waited} s");
        }
        other => panic!("{other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Message { body, .. })) => assert_eq!(body, "pick up?"),
        other => panic!("{other:?}"),
    }
    pager_delivered(&mut alice, &id).await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// When pager mode fails too, the sender is told why, at once: `rcslab ue send` prints
/// `failed: <reason>` and exits 1; nothing stays stored.
#[tokio::test]
async fn ue_send_prints_the_reason_when_pager_mode_fails_too() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua_answering(&lab, "dave", vec![488], 403, &shut).await;
    let out = rcslab_ue(&lab, "alice", &["send", "sip:dave@ims.lab", "hello?"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("failed: chat refused (488 ")
            && stdout.contains("pager MESSAGE answered 403"),
        "{stdout}"
    );
    assert!(matches!(dave.recv().await, Some(Seen::Invite { .. })));
    assert!(matches!(dave.recv().await, Some(Seen::Message { .. })));
    assert_eq!(pending_total(&lab), 0);
    let h = lab
        .tim
        .store()
        .unwrap()
        .history("sip:alice@ims.lab", "sip:dave@ims.lab", 0, 10);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].status, "failed");
    assert!(
        !registered(&lab, "sip:alice@ims.lab"),
        "alice de-registered"
    );
    lab.shutdown().await;
}

/// A voice-only phone that picks the chat up as a call (200 with audio, no MSRP): T-IM hangs
/// up (BYE) and sends the text in pager mode; nothing is lost or left stored.
#[tokio::test]
async fn a_phone_that_answers_the_chat_as_a_call_gets_a_bye_and_a_pager_message() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", 200, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "not a call").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
            Ok(Some(Seen::Invite { .. })) => seen.push("INVITE".to_string()),
            Ok(Some(Seen::Bye)) => seen.push("BYE".to_string()),
            Ok(Some(Seen::Message { body, .. })) => seen.push(format!("MESSAGE {body}")),
            other => panic!("{other:?} after {seen:?}"),
        }
    }
    assert_eq!(seen, ["INVITE", "BYE", "MESSAGE not a call"]);
    pager_delivered(&mut alice, &id).await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}

/// Capabilities known: a client that rings with a Contact lacking the CPM chat feature tag is
/// CANCELled at once (not after 12 s) and served in pager mode.
#[tokio::test]
async fn a_ringing_client_without_the_chat_tag_is_cancelled_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dave_lab(dir.path()).await;
    let (_stop, shut) = watch::channel(false);
    let mut dave = plain_ua(&lab, "dave", RING_WITH_CONTACT, &shut).await;
    let mut alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let id = alice.send("sip:dave@ims.lab", "ring ring").await;
    let at = match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Invite { at, .. })) => at,
        other => panic!("{other:?}"),
    };
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Cancel)) => assert!(at.elapsed() < Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(5), dave.recv()).await {
        Ok(Some(Seen::Message { body, .. })) => assert_eq!(body, "ring ring"),
        other => panic!("{other:?}"),
    }
    pager_delivered(&mut alice, &id).await;
    assert_eq!(pending_total(&lab), 0);
    lab.shutdown().await;
}
