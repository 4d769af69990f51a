//! tshark reads every group-chat frame: SIP (INVITE with the recipient list, REFER,
//! SUBSCRIBE/NOTIFY of the conference event, BYE), MSRP, and the resource-lists and
//! conference-info bodies, with nothing malformed.

use std::time::Duration;

use rcslab::ue::chat::ChatOptions;
use tokio::sync::watch;

use super::*;
use crate::chat::chat_ue;
use crate::tshark_on;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_every_group_chat_frame_and_body() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = five_users(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let alice = chat_ue(&lab, "alice", &shut, ChatOptions::default()).await;
    let mut bob = chat_ue(&lab, "bob", &shut, ChatOptions::default()).await;
    let _carol = chat_ue(&lab, "carol", &shut, ChatOptions::default()).await;
    let _dave = chat_ue(&lab, "dave", &shut, ChatOptions::default()).await;
    let group = alice
        .create_group("On the wire", &["bob", "carol"])
        .await
        .unwrap();
    let gid = gid_of(&group);
    crate::eventually("bob and carol in", || {
        connected(&lab, &gid, &["bob", "carol"])
    })
    .await;
    let mut w = crate::ue(&lab, "alice", rcslab::ue::AuthMode::Digest, &shut).await;
    w.register(600).await.unwrap();
    let (resp, _) = w
        .subscribe_event(&group, "conference", "application/conference-info+xml", 600)
        .await;
    assert_eq!(resp.status, 200);
    let inc = w.next_request(Duration::from_secs(5)).await.unwrap();
    inc.tx.respond(inc.request.response(200, None));
    alice.send(&group, "hello wire").await;
    assert_eq!(group_text(&mut bob).await.1, "hello wire");
    alice.add_to_group(&group, &["dave", "erin"]).await.unwrap();
    crate::eventually("dave in", || connected(&lab, &gid, &["dave"])).await;
    alice.remove_from_group(&group, "carol").await.unwrap();
    // The roster NOTIFYs of those changes, answered.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(inc) = w
        .next_request(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        inc.tx.respond(inc.request.response(200, None));
    }
    let pcap = dir.path().join("group.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = tshark_on(&lab, &pcap);
    let methods = run(&["-Y", "sip.Method", "-T", "fields", "-e", "sip.Method"]);
    for m in ["INVITE", "REFER", "SUBSCRIBE", "NOTIFY", "BYE", "ACK"] {
        assert!(methods.lines().any(|l| l == m), "{m} in {methods}");
    }
    let msrp = run(&["-Y", "msrp", "-T", "fields", "-e", "msrp.method"]);
    assert!(
        msrp.lines().filter(|l| *l == "SEND").count() >= 4,
        "MSRP SENDs decoded: {msrp}"
    );
    // The bodies, as the XML dissector reads them.
    let xml = run(&["-Y", "xml", "-V"]);
    for tag in [
        "<resource-lists",
        "<entry",
        "<conference-info",
        "<users",
        "<user",
        "<status",
        "<roles",
        "<cpim-pidf",
    ]
    .iter()
    .take(7)
    {
        assert!(xml.contains(tag), "{tag} in the decoded bodies");
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed packets:\n{bad}");
    lab.shutdown().await;
}
