//! An application server that stops answering (TS 24.229 §5.4.3.2 / §5.4.3.3, TS 23.218
//! §6.4.4, TS 29.228 DefaultHandling): the S-CSCF sends a request to the AS an iFC names, the AS
//! never answers, and once the transaction times out the S-CSCF applies the iFC's default
//! handling: SESSION_CONTINUED (the request goes on to the user) or SESSION_TERMINATED (the
//! caller gets the error, 408). Either way every node's transactions end.

use std::time::Duration;

use rcslab::ue::{audio_sdp, uas_response, AuthMode};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::{lab_with, ue};

/// A lab whose only iFC sends the originating MESSAGE and INVITE to `dead` (which never
/// answers), with short timers: T1 = 50 ms, so the S-CSCF gives up on the AS after 32*T1 =
/// 1.6 s for the MESSAGE (before the P-CSCF's own Timer F, 64*T1) and at Timer B (3.2 s) for
/// the INVITE.
fn lab_file(dead: std::net::SocketAddr, handling: &str) -> String {
    format!(
        "[sip]\nt1_ms = 50\nt2_ms = 400\nt4_ms = 500\n\n[[default_ifc]]\npriority = 1\nserver_name = \"sip:{dead};transport=udp\"\ndefault_handling = \"{handling}\"\nspt = [\n  {{ group = 0, method = \"MESSAGE\" }},\n  {{ group = 0, method = \"INVITE\" }},\n  {{ group = 1, session_case = \"originating\" }},\n]\n"
    )
}

/// Waits until no node holds a transaction or a forwarded INVITE (15 s at most).
async fn all_idle(lab: &rcslab::Lab) {
    let until = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let busy: Vec<_> = lab
            .sip_stats()
            .into_iter()
            .filter(|(_, s)| *s != Default::default())
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "state left behind: {busy:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The dead AS saw the request (so the iFC did send it there).
async fn dead_got(dead: &UdpSocket, method: &str) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), dead.recv_from(&mut buf))
            .await
            .expect("the AS gets the request")
            .unwrap();
        if buf[..n].starts_with(method.as_bytes()) {
            return;
        }
    }
}

async fn run(handling: &str) {
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &lab_file(dead.local_addr().unwrap(), handling)).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    // bob over TCP: the P-CSCF's INVITE transaction towards him ends at once after his 486
    // (Timer D is 0 on a reliable transport, 32 s on UDP: RFC 3261 §17.1.1.2).
    bob.cfg.transport = rcslab::sip::Transport::Tcp;
    alice.register(600).await.unwrap();
    bob.register(600).await.unwrap();
    let bob_contact = bob.contact();
    // bob takes the MESSAGE and refuses the call (486: the INVITE reached him, no dialog).
    let callee = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(inc) = bob.next_request(Duration::from_secs(12)).await {
            got.push(inc.request.method.to_string());
            let invite = got.last().is_some_and(|m| m == "INVITE");
            let code = if invite { 486 } else { 200 };
            inc.tx
                .respond(uas_response(&inc.request, code, "b1", &bob_contact, None));
            if invite {
                break;
            }
        }
        got
    });

    let t0 = std::time::Instant::now();
    let r = alice.message("sip:bob@ims.lab", "anyone there?").await;
    dead_got(&dead, "MESSAGE").await;
    let took = t0.elapsed();
    let (inv, _) = alice.invite("sip:bob@ims.lab", &audio_sdp(4000)).await;
    dead_got(&dead, "INVITE").await;
    if handling == "continue" {
        assert_eq!(r.status, 200, "the MESSAGE goes on to bob: {r:?}");
        assert_eq!(inv.status, 486, "the INVITE goes on to bob: {inv:?}");
    } else {
        assert!(
            [408, 500, 504].contains(&r.status),
            "the sender gets a clear error: {r:?}"
        );
        assert!(
            [408, 500, 504].contains(&inv.status),
            "the caller gets a clear error: {inv:?}"
        );
    }
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "only after the AS timed out: {took:?}"
    );
    all_idle(&lab).await;
    let got = callee.await.unwrap();
    if handling == "continue" {
        assert_eq!(got, ["MESSAGE", "INVITE"]);
    } else {
        assert!(got.is_empty(), "{got:?}");
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn an_as_that_never_answers_is_skipped_with_default_handling_continue() {
    run("continue").await;
}

#[tokio::test]
async fn an_as_that_never_answers_fails_the_request_with_default_handling_terminate() {
    run("terminate").await;
}
