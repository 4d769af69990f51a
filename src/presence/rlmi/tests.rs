//! Tests of the RLMI document, the list body and the RLS state (RFC 4662).

use super::*;
use crate::presence::pidf::{Basic, Tuple};

const LIST: &str = "sip:alice-buddies@ims.rcslab.test";
const BOB: &str = "sip:bob@ims.rcslab.test";
const CAROL: &str = "sip:carol@ims.rcslab.test";
const DAVE: &str = "sip:dave@ims.rcslab.test";

fn active(uri: &str, basic: Basic) -> MemberState {
    let mut d = Pidf::empty(uri);
    d.tuples.push(Tuple::new("t", basic));
    MemberState {
        uri: uri.into(),
        state: InstanceState::Active,
        doc: Some(d),
    }
}

fn pending(uri: &str) -> MemberState {
    MemberState {
        uri: uri.into(),
        state: InstanceState::Pending,
        doc: None,
    }
}

fn read(b: &ListBody) -> ParsedListBody {
    parse_body(&b.content_type, &b.body, &RlmiLimits::default()).unwrap()
}

/// RFC 4662 §5's example document, shortened.
const RFC_RLMI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:adam-friends@pres.vancouver.example.com"
  version="1" fullState="true">
  <name xml:lang="en">Buddy List at COM</name>
  <resource uri="sip:bob@vancouver.example.com">
<name>Bob Smith</name>
<instance id="juwigmtboe" state="active" cid="bUZBsM@pres.vancouver.example.com"/>
  </resource>
  <resource uri="sip:dave@vancouver.example.com">
<name>Dave Jones</name>
<instance id="hqzsuxtfyq" state="active" cid="ZvSvkz@pres.vancouver.example.com"/>
  </resource>
  <resource uri="sip:ed@dallas.example.net"><name>Ed at NET</name></resource>
  <resource uri="sip:adam-friends@stockholm.example.org"><name>My Friends at ORG</name></resource>
  <resource uri="sip:eve@x"><instance id="x" state="terminated" reason="rejected"/></resource>
</list>"#;

#[test]
fn the_rfc_example_parses_and_round_trips() {
    let r = Rlmi::parse(RFC_RLMI.as_bytes(), &RlmiLimits::default()).unwrap();
    assert_eq!(r.uri, "sip:adam-friends@pres.vancouver.example.com");
    assert_eq!(r.version, 1);
    assert!(r.full_state);
    assert_eq!(r.names, ["Buddy List at COM"]);
    assert_eq!(r.resources.len(), 5);
    assert_eq!(
        r.resources[0].instances[0].cid.as_deref(),
        Some("bUZBsM@pres.vancouver.example.com")
    );
    assert!(r.resources[2].instances.is_empty());
    assert_eq!(
        r.resources[4].instances[0].state,
        InstanceState::Terminated {
            reason: Some("rejected".into())
        }
    );
    let again = Rlmi::parse(r.to_xml().as_bytes(), &RlmiLimits::default()).unwrap();
    assert_eq!(again, r);
}

#[test]
fn rlmi_errors_are_typed() {
    let l = RlmiLimits::default();
    assert_eq!(Rlmi::parse(b"<list/>", &l), Err(RlmiError::NotRlmi));
    let doc = |attrs: &str| format!("<list xmlns=\"{RLMI_NS}\" {attrs}/>");
    assert!(matches!(
        Rlmi::parse(doc("uri=\"a\" fullState=\"true\"").as_bytes(), &l),
        Err(RlmiError::Missing(_))
    ));
    assert!(matches!(
        Rlmi::parse(
            doc("uri=\"a\" version=\"-1\" fullState=\"true\"").as_bytes(),
            &l
        ),
        Err(RlmiError::BadAttribute {
            name: "version",
            ..
        })
    ));
    assert!(matches!(
        Rlmi::parse(
            doc("uri=\"a\" version=\"0\" fullState=\"yes\"").as_bytes(),
            &l
        ),
        Err(RlmiError::BadAttribute {
            name: "fullState",
            ..
        })
    ));
    let small = RlmiLimits {
        max_resources: 2,
        ..l
    };
    assert_eq!(
        Rlmi::parse(RFC_RLMI.as_bytes(), &small),
        Err(RlmiError::TooManyResources(2))
    );
}

#[test]
fn full_state_then_partial_with_versions() {
    let mut rls = ListNotifier::new(LIST, "rls.rcslab.test");
    assert_eq!(rls.version(), None);
    let members = vec![active(BOB, Basic::Open), pending(CAROL)];
    let first = rls.full_state(&members);
    assert_eq!(rls.version(), Some(0));
    assert!(first
        .content_type
        .starts_with("multipart/related;type=\"application/rlmi+xml\";start=\"<"));
    let got = read(&first);
    assert_eq!(got.rlmi, first.rlmi);
    assert_eq!(got.rlmi.version, 0);
    assert!(got.rlmi.full_state);
    assert_eq!(got.rlmi.resources.len(), 2);
    assert_eq!(got.documents.len(), 1, "only the active member has a part");
    assert_eq!(got.documents[0].1.entity, BOB);
    let bob_id = got.rlmi.resources[0].instances[0].id.clone();
    assert_eq!(got.rlmi.resources[1].instances[0].cid, None);

    // Nothing changed: no NOTIFY.
    assert_eq!(rls.partial(&members), None);
    assert_eq!(rls.version(), Some(0));

    // Bob goes offline and Carol accepts: a partial NOTIFY with both, version 1.
    let members = vec![active(BOB, Basic::Closed), active(CAROL, Basic::Open)];
    let second = rls.partial(&members).unwrap();
    let got = read(&second);
    assert_eq!(got.rlmi.version, 1);
    assert!(!got.rlmi.full_state);
    assert_eq!(got.documents.len(), 2);
    assert_eq!(got.rlmi.resources[0].instances[0].id, bob_id, "stable ids");
    assert!(!got.documents[0].1.is_open());

    // Only Carol changes: Bob is left out.
    let members = vec![active(BOB, Basic::Closed), active(CAROL, Basic::Closed)];
    let third = read(&rls.partial(&members).unwrap());
    assert_eq!(third.rlmi.version, 2);
    let uris: Vec<&str> = third
        .rlmi
        .resources
        .iter()
        .map(|r| r.uri.as_str())
        .collect();
    assert_eq!(uris, [CAROL]);

    // Carol leaves the list, Dave joins.
    let members = vec![active(BOB, Basic::Closed), active(DAVE, Basic::Open)];
    let fourth = read(&rls.partial(&members).unwrap());
    assert_eq!(fourth.rlmi.version, 3);
    let carol = fourth
        .rlmi
        .resources
        .iter()
        .find(|r| r.uri == CAROL)
        .unwrap();
    assert_eq!(
        carol.instances[0].state,
        InstanceState::Terminated {
            reason: Some("deactivated".into())
        }
    );
    assert!(fourth.rlmi.resources.iter().any(|r| r.uri == DAVE));

    // A resync is a full state again, with the next version.
    let full = read(&rls.full_state(&members));
    assert_eq!(full.rlmi.version, 4);
    assert!(full.rlmi.full_state);
    assert_eq!(full.rlmi.resources.len(), 2);
}

#[test]
fn the_first_partial_is_a_full_state() {
    let mut rls = ListNotifier::new(LIST, "rls.rcslab.test");
    let b = rls.partial(&[active(BOB, Basic::Open)]).unwrap();
    assert!(b.rlmi.full_state);
    assert_eq!(b.rlmi.version, 0);
}

#[test]
fn list_bodies_that_do_not_hold_together_are_refused() {
    let l = RlmiLimits::default();
    let mut rls = ListNotifier::new(LIST, "rls.rcslab.test");
    let b = rls.full_state(&[active(BOB, Basic::Open)]);
    assert!(matches!(
        parse_body("multipart/mixed;boundary=x", &b.body, &l),
        Err(RlmiError::Structure(_))
    ));
    // Drop the PIDF part: the instance's cid names nothing.
    let ct = b.content_type.clone();
    let bnd = multipart::boundary(&ct).unwrap();
    let parts = multipart::parse(&ct, &b.body).unwrap();
    let (_, only_root) = multipart::build(&bnd, &parts[..1]);
    assert!(matches!(
        parse_body(&ct, &only_root, &l),
        Err(RlmiError::NoPart(_))
    ));
    let tiny = RlmiLimits { max_body: 10, ..l };
    assert!(matches!(
        parse_body(&ct, &b.body, &tiny),
        Err(RlmiError::TooLarge { .. })
    ));
}

#[test]
fn member_states_follow_each_members_policy() {
    use crate::presence::subscription::SubscriptionLimits;
    let t0 = std::time::Instant::now();
    let alice = "sip:alice@ims.rcslab.test";
    let docs: HashMap<String, Pidf> =
        HashMap::from([(BOB.to_string(), active(BOB, Basic::Open).doc.unwrap())]);
    let mut n = Notifier::new(SubscriptionLimits::default());
    n.update_policy(t0, BOB, &docs, |p| p.allow(alice));
    n.update_policy(t0, DAVE, &docs, |p| p.block(alice));
    let mut list = ResourceList::new(LIST, 8);
    for m in [BOB, CAROL, DAVE] {
        list.add(m).unwrap();
    }
    let states = list.member_states(alice, &n, &docs);
    assert_eq!(states[0], active(BOB, Basic::Open));
    assert_eq!(states[1], pending(CAROL));
    assert_eq!(
        states[2].state,
        InstanceState::Terminated {
            reason: Some("rejected".into())
        }
    );
    let body = ListNotifier::new(LIST, "rls.rcslab.test").full_state(&states);
    assert_eq!(read(&body).documents.len(), 1);
}

#[test]
fn resource_lists_are_capped() {
    let mut l = ResourceList::new(LIST, 2);
    assert_eq!(l.uri(), LIST);
    assert_eq!(l.add(BOB), Ok(true));
    assert_eq!(l.add(BOB), Ok(false));
    assert_eq!(l.add(CAROL), Ok(true));
    assert_eq!(l.add(DAVE), Err(RlmiError::TooManyResources(2)));
    assert!(l.remove(BOB));
    assert!(!l.remove(BOB));
    assert_eq!(l.add(DAVE), Ok(true));
    assert_eq!(l.members(), [CAROL, DAVE]);
}
