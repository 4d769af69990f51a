//! The Resource List Server (issue 16; RFC 4662): alice's SUBSCRIBE to her own buddy list
//! `sip:alice;pres-list=rcs@ims.lab` reaches the PS by her originating iFC (default lab,
//! priority 39) and the PS answers it itself; NOTIFYs carry `multipart/related` bodies with
//! the RLMI document and one PIDF per member she may see: the full state first, then partial
//! NOTIFYs as members change. Ladders are asserted line by line.

use std::time::Duration;

use rcslab::presence::pidf::Basic;
use rcslab::presence::rlmi::{parse_body, InstanceState, ParsedListBody, RlmiLimits};
use rcslab::sip::{Method, Request, Response, Transport};
use rcslab::ue::presence::{notice_line, notices};
use rcslab::ue::{AuthMode, Ue};
use tokio::sync::watch;

use crate::presence::{
    alice_and_bob, flow_of, header, interleaves, notify_to, pidf, publish, resubscribe,
};
use crate::{flow, lab_with, rcslab_ue, ue};

const ALICE: &str = "sip:alice@ims.lab";
const BOB: &str = "sip:bob@ims.lab";
const CAROL: &str = "sip:carol@ims.lab";
const LIST: &str = "sip:alice;pres-list=rcs@ims.lab";

/// A SUBSCRIBE from `ue` (`watcher`) to the list `uri`, with `extra` headers (RFC 4662 §4.4
/// asks for `Supported: eventlist` and an Accept with the list types; tests leave them out).
async fn subscribe_list(
    ue: &Ue,
    watcher: &str,
    uri: &str,
    extra: &[(&str, &str)],
) -> (Request, Response) {
    let mut r = ue
        .endpoint()
        .new_request(Method::Subscribe, uri, watcher, 1, Transport::Udp);
    r.headers.push("Contact", format!("<{}>", ue.contact()));
    r.headers.push("Event", "presence");
    r.headers.push("Expires", "600");
    for (k, v) in extra {
        r.headers.push(k, *v);
    }
    let resp = ue.send_tx(r.clone()).final_response().await;
    (r, resp)
}

const LIST_HEADERS: [(&str, &str); 2] = [
    ("Supported", "eventlist"),
    (
        "Accept",
        "application/pidf+xml, application/rlmi+xml, multipart/related",
    ),
];

/// The next list NOTIFY `ue` gets within `wait`, answered 200: its Subscription-State and
/// body, read.
async fn list_notify(ue: &mut Ue, wait: Duration) -> (String, ParsedListBody, Request) {
    let inc = ue.next_request(wait).await.expect("a NOTIFY comes");
    let req = inc.request.clone();
    assert_eq!(req.method, Method::Notify);
    assert_eq!(req.headers.get("Event"), Some("presence"));
    assert_eq!(req.headers.get("Require"), Some("eventlist"));
    let ct = req.headers.get("Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("multipart/related;type=\"application/rlmi+xml\""),
        "{ct}"
    );
    let body = parse_body(ct, &req.body, &RlmiLimits::default()).expect("an RLMI body");
    inc.tx.respond(req.response(200, None));
    let state = header_of(&req, "Subscription-State");
    (state, body, req)
}

fn header_of(r: &Request, name: &str) -> String {
    r.headers.get(name).unwrap_or_default().to_string()
}

/// Each resource as (uri, instance state).
fn states(p: &ParsedListBody) -> Vec<(String, InstanceState)> {
    p.rlmi
        .resources
        .iter()
        .map(|r| (r.uri.clone(), r.instances[0].state.clone()))
        .collect()
}

/// A request of `user` that its originating S-CSCF hands to the PS by iFC, and the PS's
/// answer `status` back.
fn to_rls(user: &str, method: &str, status: &str) -> Vec<String> {
    [
        format!("UE {user} -> P-CSCF SIP {method}"),
        format!("P-CSCF -> S-CSCF SIP {method}"),
        format!("S-CSCF -> PS SIP {method}"),
        format!("PS -> S-CSCF SIP {status}"),
        format!("S-CSCF -> P-CSCF SIP {status}"),
        format!("P-CSCF -> UE {user} SIP {status}"),
    ]
    .into()
}

#[tokio::test]
async fn alice_subscribes_to_her_list_full_state_then_partial_then_last_seen() {
    let (_dir, lab, _stop, mut alice, bob) = alice_and_bob("").await;
    let open = pidf(BOB, Basic::Open);
    let r = publish(
        &bob,
        BOB,
        "presence",
        None,
        600,
        Some(("application/pidf+xml", &open)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = header(&r, "SIP-ETag").to_string();

    // The subscription: 200 with Require: eventlist, then the full state at once: bob open,
    // carol (in the same buddy group, nothing published) active with an empty document.
    lab.trace.clear();
    let (sub, ok) = subscribe_list(&alice, ALICE, LIST, &LIST_HEADERS).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(header(&ok, "Require"), "eventlist");
    assert_eq!(header(&ok, "Expires"), "600");
    let (state, full, _) = list_notify(&mut alice, Duration::from_secs(5)).await;
    assert!(state.starts_with("active;expires="), "{state}");
    assert!(full.rlmi.full_state);
    assert_eq!(full.rlmi.version, 0);
    assert_eq!(full.rlmi.uri, LIST);
    assert_eq!(
        states(&full),
        [
            (BOB.to_string(), InstanceState::Active),
            (CAROL.to_string(), InstanceState::Active),
        ]
    );
    assert_eq!(full.documents.len(), 2);
    let bob_cid = full.rlmi.resources[0].instances[0].cid.clone().unwrap();
    let bob_doc = &full
        .documents
        .iter()
        .find(|(c, _)| *c == bob_cid)
        .unwrap()
        .1;
    assert!(bob_doc.is_open());
    let got = flow_of(&lab, 12).await;
    assert!(
        interleaves(
            &got,
            &to_rls("alice", "SUBSCRIBE", "200"),
            &notify_to("alice")
        ),
        "{got:#?}"
    );

    // bob closes: a partial NOTIFY with bob alone, version 1, the same instance id.
    lab.trace.clear();
    let closed = pidf(BOB, Basic::Closed);
    let r = publish(
        &bob,
        BOB,
        "presence",
        Some(&etag),
        600,
        Some(("application/pidf+xml", &closed)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let etag = header(&r, "SIP-ETag").to_string();
    let (_, partial, _) = list_notify(&mut alice, Duration::from_secs(2)).await;
    assert!(!partial.rlmi.full_state);
    assert_eq!(partial.rlmi.version, 1);
    assert_eq!(states(&partial), [(BOB.to_string(), InstanceState::Active)]);
    assert_eq!(
        partial.rlmi.resources[0].instances[0].id,
        full.rlmi.resources[0].instances[0].id
    );
    assert!(!partial.documents[0].1.is_open());
    let got = flow_of(&lab, 18).await;
    assert!(
        interleaves(
            &got,
            &crate::presence::to_ps("bob", "PUBLISH", "200"),
            &notify_to("alice")
        ),
        "{got:#?}"
    );

    // bob removes his publication: the partial NOTIFY says when he was last seen.
    let r = publish(&bob, BOB, "presence", Some(&etag), 0, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, _, req) = list_notify(&mut alice, Duration::from_secs(2)).await;
    let lines: Vec<String> = notices(&req).unwrap().iter().map(notice_line).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("sip:bob@ims.lab: closed (last seen 20"),
        "{lines:?}"
    );

    // A refresh in the dialog: the full state again (RFC 4662 §5.2), version 3.
    let mut again = resubscribe(&alice, &sub, &ok, header(&ok, "To"), 600);
    again.headers.push("Supported", "eventlist");
    let r = alice.send_tx(again).final_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, refreshed, _) = list_notify(&mut alice, Duration::from_secs(2)).await;
    assert!(refreshed.rlmi.full_state);
    assert_eq!(refreshed.rlmi.version, 3);

    // Expires 0 ends it: the final NOTIFY, with the full state.
    let mut end = resubscribe(&alice, &sub, &ok, header(&ok, "To"), 0);
    end.headers.set("CSeq", "3 SUBSCRIBE");
    let r = alice.send_tx(end).final_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    let (state, last, _) = list_notify(&mut alice, Duration::from_secs(2)).await;
    assert_eq!(state, "terminated;reason=timeout");
    assert!(last.rlmi.full_state);
    crate::eventually("the PS holds no subscription", || {
        lab.ps.subscriptions() == 0
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test]
async fn list_subscriptions_are_checked_421_403_404_406() {
    let (_dir, lab, _stop, alice, _bob) = alice_and_bob("").await;
    // RFC 4662 §4.4: no Supported: eventlist -> 421 with Require: eventlist.
    lab.trace.clear();
    let (_, r) = subscribe_list(&alice, ALICE, LIST, &[]).await;
    assert_eq!(r.status, 421, "{r:?}");
    assert_eq!(header(&r, "Require"), "eventlist");
    assert!(header(&r, "Warning").contains("resource list"), "{r:?}");
    assert_eq!(flow(&lab), to_rls("alice", "SUBSCRIBE", "421"));
    // Someone else's list: 403, whether or not it exists.
    let (_, r) = subscribe_list(
        &alice,
        ALICE,
        "sip:bob;pres-list=rcs@ims.lab",
        &LIST_HEADERS,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let (_, r) = subscribe_list(
        &alice,
        ALICE,
        "sip:zed;pres-list=rcs@ims.lab",
        &LIST_HEADERS,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    // Her own list that does not exist: 404.
    let (_, r) = subscribe_list(
        &alice,
        ALICE,
        "sip:alice;pres-list=work@ims.lab",
        &LIST_HEADERS,
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        header(&r, "Warning").contains("has no list 'work'"),
        "{r:?}"
    );
    // An Accept without the list types: 406.
    let (_, r) = subscribe_list(
        &alice,
        ALICE,
        LIST,
        &[
            ("Supported", "eventlist"),
            ("Accept", "application/pidf+xml"),
        ],
    )
    .await;
    assert_eq!(r.status, 406, "{r:?}");
    assert_eq!(lab.ps.subscriptions(), 0);
    lab.shutdown().await;
}

/// A list from the lab file with 100 members (most of them nobody): one full-state NOTIFY
/// lists every one, active for the buddy-group member, pending for the others.
#[tokio::test]
async fn a_hundred_member_list_from_the_lab_file_comes_in_one_notify() {
    let mut members: Vec<String> = vec![BOB.to_string()];
    members.extend((1..100).map(|i| format!("\"sip:user{i}@ims.lab\"")));
    members[0] = format!("\"{BOB}\"");
    let extra = format!(
        "[presence]\nbuddy_groups = [[\"{ALICE}\", \"{BOB}\"]]\n\
         [[presence.lists]]\nowner = \"{ALICE}\"\nname = \"big\"\nmembers = [{}]\n",
        members.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), &extra).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    let (_, ok) = subscribe_list(
        &alice,
        ALICE,
        "sip:alice;pres-list=big@ims.lab",
        &LIST_HEADERS,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let (_, full, _) = list_notify(&mut alice, Duration::from_secs(5)).await;
    let st = states(&full);
    assert_eq!(st.len(), 100);
    assert_eq!(st[0], (BOB.to_string(), InstanceState::Active));
    assert!(st[1..].iter().all(|(_, s)| *s == InstanceState::Pending));
    assert_eq!(full.documents.len(), 1);
    lab.shutdown().await;
}

/// `rcslab ue --user alice watch --list`: one subscription to her `rcs` list, a line per
/// member, then a line per change.
#[tokio::test]
async fn watch_list_from_the_command_line() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    // bob stays registered beside his `status` command (the PS shows a user with no
    // registration offline); then he de-registers, and alice's watch says when he was last
    // seen.
    let (_stop, shut) = watch::channel(false);
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    bob.register(600).await.expect("bob registers");
    let mut watch = rcslab_ue(&lab, "alice", &["watch", "--list"])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line within 5 s")
            .unwrap()
            .expect("watch still runs")
    };
    // The full state: bob and carol, neither has published.
    assert_eq!(next_line().await, "sip:bob@ims.lab: closed");
    assert_eq!(next_line().await, "sip:carol@ims.lab: closed");

    let out = rcslab_ue(&lab, "bob", &["status", "busy", "on a call"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(next_line().await, "sip:bob@ims.lab: open busy (on a call)");
    bob.register(0).await.expect("bob de-registers");
    let line = next_line().await;
    assert!(
        line.starts_with("sip:bob@ims.lab: closed (last seen 20"),
        "{line}"
    );
    lab.shutdown().await;
}

/// The admin API writes alice's list: her subscription gets a partial NOTIFY with who came
/// and who went; a bad member is a 400 that changes nothing; the list is kept across a
/// restart of the lab.
#[tokio::test]
async fn the_admin_api_edits_a_list_live_and_it_survives_a_restart() {
    use hyper::Method as Http;
    use rcslab::hss::admin_client::AdminClient;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.expect("alice registers");
    let (_, ok) = subscribe_list(&alice, ALICE, LIST, &LIST_HEADERS).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let _ = list_notify(&mut alice, Duration::from_secs(5)).await;

    let admin = AdminClient::from_data_dir(dir.path()).expect("the lab's admin API");
    let path = "/lists/sip%3Aalice%40ims.lab";
    let (code, body) = admin
        .call(
            Http::PUT,
            &format!("{path}/rcs"),
            Some(r#"{"members": ["sip:bob@ims.lab", "sip:dave@ims.lab"]}"#.into()),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["uri"], LIST);
    assert_eq!(v["members"][1], "sip:dave@ims.lab");
    let (_, partial, _) = list_notify(&mut alice, Duration::from_secs(2)).await;
    assert!(!partial.rlmi.full_state);
    assert_eq!(
        states(&partial),
        [
            ("sip:dave@ims.lab".to_string(), InstanceState::Pending),
            (
                CAROL.to_string(),
                InstanceState::Terminated {
                    reason: Some("deactivated".into())
                }
            ),
        ]
    );

    let (code, body) = admin
        .call(
            Http::PUT,
            &format!("{path}/rcs"),
            Some(r#"{"members": ["bob"]}"#.into()),
        )
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a sip: or tel: URI"), "{body}");
    assert!(alice
        .next_request(Duration::from_millis(300))
        .await
        .is_none());
    lab.shutdown().await;
    drop(alice);

    let lab = lab_with(dir.path(), "").await;
    let admin = AdminClient::from_data_dir(dir.path()).expect("the lab's admin API");
    let (code, body) = admin.call(Http::GET, path, None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["lists"]["rcs"],
        serde_json::json!(["sip:bob@ims.lab", "sip:dave@ims.lab"])
    );
    lab.shutdown().await;
}

/// Wireshark reads the RLS's bodies: the lab's pcap export of a list subscription and a
/// partial NOTIFY decodes with tshark as SIP whose `multipart/related` bodies its multipart
/// dissector splits into the RLMI document (`<list>`, `<resource>`, `<instance>`) and the
/// PIDF parts, and nothing is malformed.
#[tokio::test]
async fn tshark_decodes_the_rlmi_and_pidf_parts() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let (dir, lab, _stop, mut alice, mut bob) = alice_and_bob("").await;
    lab.trace.clear();
    let (_, ok) = subscribe_list(&alice, ALICE, LIST, &LIST_HEADERS).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let _ = list_notify(&mut alice, Duration::from_secs(5)).await;
    let r = bob
        .publish(
            rcslab::ue::presence::Status::Busy,
            Some("on a call"),
            600,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, partial, _) = list_notify(&mut alice, Duration::from_secs(2)).await;
    assert_eq!(partial.documents.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pcap = dir.path().join("rls.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    let types = run(&[
        "-Y",
        "sip.Method == \"NOTIFY\"",
        "-T",
        "fields",
        "-e",
        "sip.Content-Type",
    ]);
    assert!(
        types
            .lines()
            .any(|l| l.starts_with("multipart/related;type=\"application/rlmi+xml\"")),
        "{types}"
    );
    // The parts, as the multipart and XML dissectors read them.
    let parts = run(&["-Y", "mime_multipart", "-V"]);
    for want in [
        "application/rlmi+xml",
        "application/pidf+xml",
        "<list",
        "<resource",
        "<instance",
        "<presence",
        "<rpid:busy",
    ] {
        assert!(parts.contains(want), "{want} in the decoded parts: {parts}");
    }
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed packets:\n{bad}");
    lab.shutdown().await;
}

/// `rcslab presence` against the running lab (its admin API, found through --data-dir):
/// lists shown and written, watcher rules shown and edited, a bad member refused (exit 1).
#[tokio::test]
async fn rcslab_presence_reads_and_writes_lists_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let cli = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rcslab"));
        c.arg("presence")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "warn");
        c
    };
    let run = |args: &'static [&'static str]| {
        let mut c = cli(args);
        async move {
            let out = c.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (code, out, err) = run(&["lists", "alice"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "rcs sip:alice;pres-list=rcs@ims.lab: sip:bob@ims.lab, sip:carol@ims.lab\n"
    );
    let (code, out, err) = run(&["list", "alice", "work", "bob", "tel:+15550003"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "work sip:alice;pres-list=work@ims.lab: sip:bob@ims.lab, tel:+15550003\n"
    );
    let (code, out, _) = run(&["watchers", "alice"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "allow: sip:bob@ims.lab, sip:carol@ims.lab\nblock: \npending: \n"
    );
    let (code, out, _) = run(&["block", "alice", "carol"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "allow: sip:bob@ims.lab\nblock: sip:carol@ims.lab\npending: \n"
    );
    let (code, out, err) = run(&["list", "alice", "work", "sip:bad user@x"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("the lab refused"), "{err}");
    lab.shutdown().await;
}
