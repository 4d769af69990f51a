//! The command-line contract against the real lab: `rcslab ue ... sms` prints `delivered` once
//! the status report comes, and `listen` prints each SMS once, whole, as `FROM: TEXT` — a
//! long Korean text crossing as concatenated UCS-2 parts included.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{eventually, lab_with, rcslab_ue};

#[tokio::test]
async fn sms_prints_delivered_and_listen_prints_each_text_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let mut listen = rcslab_ue(&lab, "bob", &["listen"]).spawn().unwrap();
    let mut out = BufReader::new(listen.stdout.take().unwrap()).lines();
    eventually("bob to be known to the IP-SM-GW", || {
        lab.smsc
            .user("sip:bob@ims.lab")
            .is_some_and(|u| u.registered && u.smsip && u.number.as_deref() == Some("+15550002"))
    })
    .await;
    let long = "안녕하세요, 밥! 오늘 저녁에 시간 있어요? ".repeat(6);
    for text in ["hi bob", long.as_str()] {
        let sent = rcslab_ue(&lab, "alice", &["sms", "tel:+15550002", text])
            .output()
            .await
            .unwrap();
        assert!(sent.status.success(), "{sent:?}");
        assert_eq!(String::from_utf8_lossy(&sent.stdout), "delivered\n");
        let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
            .await
            .expect("bob prints it")
            .unwrap()
            .unwrap();
        assert_eq!(line, format!("tel:+15550001: {text}"));
    }
    // Nothing twice.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), out.next_line())
            .await
            .is_err(),
        "bob printed more"
    );
    let _ = listen.kill().await;
    lab.shutdown().await;
}
