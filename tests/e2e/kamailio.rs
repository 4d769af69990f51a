//! The HSS serving a foreign S-CSCF next to the lab's own (TS 29.228 §6.1, §6.5): a raw
//! Diameter client presents the *same* Origin-Host as the lab's S-CSCF (`scscf.ims.lab`),
//! assigns itself a user by SAR with its own Server-Name, and from then on UAR/LIR name it and
//! the PPR for its user reaches it over its own connection, while the lab's S-CSCF keeps
//! getting the pushes for the users it serves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use rcslab::diameter::codec::{Avp, Message, AVP_RESULT_CODE};
use rcslab::diameter::cx::{self, CxResult};
use rcslab::diameter::peer::{BoxFuture, DiameterHandler, LocalPeer, Peer, PeerInfo};
use rcslab::hss::admin;
use rcslab::ue::AuthMode;
use tokio::sync::watch;

use crate::{eventually, flow, lab_with, ue};

/// A foreign S-CSCF's Cx side: answers every HSS request 2001 and remembers it.
#[derive(Clone, Default)]
struct ForeignScscf(Arc<Mutex<Vec<Message>>>);

impl DiameterHandler for ForeignScscf {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        self.0.lock().unwrap().push(request.clone());
        Box::pin(async move {
            let mut a = Message::answer_to(&request);
            a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
            a
        })
    }
}

const FOREIGN_NAME: &str = "sip:127.0.0.9:46099";

fn sar(user: &str, t: cx::ServerAssignmentType) -> Message {
    cx::ServerAssignmentRequest {
        session_id: format!("scscf.ims.lab;foreign;{user};{t:?}"),
        origin_host: "scscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        public_identities: vec![format!("sip:{user}@ims.lab")],
        user_name: Some(format!("{user}@ims.lab")),
        server_name: FOREIGN_NAME.into(),
        assignment_type: t,
        user_data_already_available: cx::UserDataAlreadyAvailable::UserDataNotAvailable,
    }
    .to_message()
}

fn uar(user: &str) -> Message {
    cx::UserAuthorizationRequest {
        session_id: format!("icscf;foreign;{user}"),
        origin_host: "icscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        user_name: format!("{user}@ims.lab"),
        public_identity: format!("sip:{user}@ims.lab"),
        visited_network_identifier: b"ims.lab".to_vec(),
        authorization_type: None,
    }
    .to_message()
}

async fn set_ifc_empty(lab: &rcslab::Lab, user: &str) {
    let sub = lab
        .store
        .find(&format!("sip:{user}@ims.lab"))
        .unwrap()
        .unwrap();
    let body = serde_json::json!({
        "impu": sub.impus, "password": sub.password, "k": sub.aka.k, "opc": sub.aka.opc,
        "amf": sub.aka.amf, "sqn": sub.aka.sqn, "ifc": []
    });
    let (status, text) = admin::call(
        lab.addrs.admin,
        Method::POST,
        "/subscribers",
        Some(body.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{text}");
}

#[tokio::test]
async fn a_foreign_scscf_with_our_origin_host_gets_its_users_pushes_and_ours_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    // alice registers through the lab: the lab's S-CSCF serves her.
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();

    // A foreign S-CSCF with the lab S-CSCF's Origin-Host connects and takes bob.
    let foreign = ForeignScscf::default();
    let conn = Peer::connect(
        lab.addrs.hss,
        LocalPeer {
            origin_host: "scscf.ims.lab".into(),
            origin_realm: "ims.lab".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            product_name: "foreign S-CSCF".into(),
            watchdog_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(foreign.clone()),
        lab.trace.clone(),
    )
    .await
    .unwrap();
    lab.name_addr(conn.local_addr(), "foreign S-CSCF");
    // A first registration with no S-CSCF assigned: 2001 and the lab's S-CSCF by default.
    let uaa = cx::UserAuthorizationAnswer::from_message(&conn.request(uar("bob")).await.unwrap())
        .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_FIRST_REGISTRATION)
    );
    let saa = cx::ServerAssignmentAnswer::from_message(
        &conn
            .request(sar("bob", cx::ServerAssignmentType::Registration))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(saa.result, CxResult::Base(2001));
    assert!(saa.user_data.unwrap().contains("sip:bob@ims.lab"));
    // §6.1.1.1: now assigned, UAR answers 2002 with the Server-Name of bob's SAR; §6.1.4.1:
    // LIR names it too; and it is kept in sled.
    let uaa = cx::UserAuthorizationAnswer::from_message(&conn.request(uar("bob")).await.unwrap())
        .unwrap();
    assert_eq!(
        uaa.result,
        CxResult::Experimental(cx::DIAMETER_SUBSEQUENT_REGISTRATION)
    );
    assert_eq!(uaa.server_name.as_deref(), Some(FOREIGN_NAME));
    let lir = cx::LocationInfoRequest {
        session_id: "icscf;foreign;lir".into(),
        origin_host: "icscf.ims.lab".into(),
        origin_realm: "ims.lab".into(),
        destination_realm: "ims.lab".into(),
        destination_host: None,
        originating_request: false,
        public_identity: "sip:bob@ims.lab".into(),
        authorization_type: None,
    };
    let lia = cx::LocationInfoAnswer::from_message(&conn.request(lir.to_message()).await.unwrap())
        .unwrap();
    assert_eq!(lia.result, CxResult::Base(2001));
    assert_eq!(lia.server_name.as_deref(), Some(FOREIGN_NAME));
    let bob_impi = lab.store.find("sip:bob@ims.lab").unwrap().unwrap().impi;
    assert_eq!(
        lab.store.hss_state(&bob_impi).unwrap().scscf.as_deref(),
        Some(FOREIGN_NAME)
    );

    // bob's profile changes: the PPR goes to the foreign S-CSCF's connection only.
    lab.trace.clear();
    set_ifc_empty(&lab, "bob").await;
    let cx_lines = |lab: &rcslab::Lab| -> Vec<String> {
        flow(lab)
            .into_iter()
            .filter(|l| l.contains("Diameter"))
            .collect()
    };
    assert_eq!(
        cx_lines(&lab),
        [
            "HSS -> foreign S-CSCF Diameter PPR",
            "foreign S-CSCF -> HSS Diameter PPA"
        ]
    );
    {
        let got = foreign.0.lock().unwrap();
        assert_eq!(got.len(), 1, "one PPR at the foreign S-CSCF");
        assert_eq!(got[0].command_code, cx::CMD_PUSH_PROFILE);
        let ppr = cx::PushProfileRequest::from_message(&got[0]).unwrap();
        assert_eq!(ppr.user_name, bob_impi);
    }

    // alice's profile changes: the lab's S-CSCF gets that PPR, the foreign one nothing new.
    lab.trace.clear();
    set_ifc_empty(&lab, "alice").await;
    assert_eq!(
        cx_lines(&lab),
        ["HSS -> S-CSCF Diameter PPR", "S-CSCF -> HSS Diameter PPA"]
    );
    assert_eq!(foreign.0.lock().unwrap().len(), 1);
    let after = lab.scscf.registration("sip:alice@ims.lab").unwrap();
    assert!(after.profile.unwrap().service_profiles[0].ifcs.is_empty());

    // The foreign S-CSCF goes away: a change for bob still applies in the HSS, and nothing
    // is pushed to the lab's S-CSCF in its place.
    conn.disconnect().await;
    eventually("the HSS to see the foreign S-CSCF gone", || !conn.is_open()).await;
    lab.trace.clear();
    let sub = lab.store.find("sip:bob@ims.lab").unwrap().unwrap();
    let body = serde_json::json!({
        "impu": sub.impus, "password": sub.password, "k": sub.aka.k, "opc": sub.aka.opc,
        "amf": sub.aka.amf, "sqn": sub.aka.sqn,
        "ifc": [{ "priority": 1, "server_name": "sip:tim.ims.lab", "spt": [{ "group": 0, "method": "MESSAGE" }] }]
    });
    let (status, text) = admin::call(
        lab.addrs.admin,
        Method::POST,
        "/subscribers",
        Some(body.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        lab.store
            .find("sip:bob@ims.lab")
            .unwrap()
            .unwrap()
            .ifcs
            .len(),
        1
    );
    assert_eq!(cx_lines(&lab), Vec::<String>::new(), "no PPR to anybody");
    lab.shutdown().await;
}
