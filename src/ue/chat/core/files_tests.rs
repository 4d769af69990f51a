//! Files received, in the core with a fake clock: a file-info in an INVITE is not reported
//! delivered before the 200, its download starts once the session is up and its "delivered"
//! goes over MSRP once it is saved; a failed download reports "failed"; a copy is dropped;
//! without a files directory the file is offered and reported like a text.

use std::path::PathBuf;
use std::time::Instant;

use super::super::invites::{IncomingInvite, InviteInfo};
use super::super::tests::{core, drain, events, from_bob, msrp_cpims, up, BOB, ME};
use super::super::{ChatCore, Input, Output};
use crate::cpim::{Cpim, ImdnStatus};
use crate::fthttp::{FileDesc, FileInfo};
use crate::rcs::{self, Content};
use crate::ue::chat::{ChatEvent, ChatOptions};
use crate::ue::ft::{FtError, SavedFile};

fn info() -> FileInfo {
    FileInfo {
        thumbnail: None,
        file: FileDesc {
            size: 5,
            name: "photo.jpg".into(),
            content_type: "image/jpeg".into(),
            url: "http://127.0.0.1:8083/files/ab".into(),
            until: "2030-01-01T00:00:00Z".into(),
            disposition: None,
        },
    }
}

/// Bob's file-info message, asking for "delivered".
fn bobs_file(id: &str) -> Cpim {
    bobs_file_asking(id, "positive-delivery")
}

fn bobs_file_asking(id: &str, disposition: &str) -> Cpim {
    Cpim::new(
        BOB,
        ME,
        id,
        "2030-01-01T00:00:00Z",
        Some(disposition),
        rcs::FT_HTTP_TYPE,
        info().to_xml().as_bytes(),
    )
}

fn with_files() -> ChatCore {
    core(ChatOptions {
        files: Some(PathBuf::from("/tmp/files")),
        ..ChatOptions::default()
    })
}

fn invite(c: &mut ChatCore, now: Instant, first: Cpim) {
    c.handle(
        now,
        Input::Invite {
            tx: IncomingInvite(1),
            peer: BOB.into(),
            call_id: "call-b".into(),
            first: Some(first),
            info: InviteInfo::default(),
        },
    );
}

fn downloads(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Download {
                message_id,
                info: i,
            } => {
                assert_eq!(**i, info());
                Some(message_id.clone())
            }
            _ => None,
        })
        .collect()
}

fn saved() -> SavedFile {
    SavedFile {
        path: PathBuf::from("/tmp/files/photo.jpg"),
        size: 5,
        sha256: "ab".repeat(32),
    }
}

fn reports(out: &[Output]) -> Vec<(String, ImdnStatus)> {
    msrp_cpims(out)
        .iter()
        .filter_map(|c| match rcs::content(c) {
            Content::Imdn(i) => Some((i.message_id, i.status)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_file_in_an_invite_downloads_once_the_session_is_up_then_is_delivered() {
    let mut c = with_files();
    let t0 = Instant::now();
    invite(&mut c, t0, bobs_file("f1"));
    let out = drain(&mut c);
    let [Output::Answer { imdn, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        *imdn, None,
        "no delivered before the 200: the file is not here yet"
    );
    let out = up(&mut c, t0);
    assert_eq!(downloads(&out), ["f1"], "the download follows the binding");
    assert!(reports(&out).is_empty());
    c.handle(
        t0,
        Input::FileDone {
            message_id: "f1".into(),
            result: Ok(saved()),
        },
    );
    let out = drain(&mut c);
    assert_eq!(
        events(&out),
        vec![ChatEvent::File {
            from: BOB.into(),
            group: None,
            name: "photo.jpg".into(),
            path: PathBuf::from("/tmp/files/photo.jpg"),
            size: 5,
            sha256: "ab".repeat(32),
            content_type: "image/jpeg".into(),
            message_id: "f1".into(),
        }]
    );
    assert_eq!(reports(&out), [("f1".to_string(), ImdnStatus::Delivered)]);
    // A copy sent again (the network restarted): dropped, "delivered" again.
    c.handle(
        t0,
        Input::Msrp {
            peer: BOB.into(),
            msg: from_bob(&bobs_file("f1")),
        },
    );
    let out = drain(&mut c);
    assert!(
        downloads(&out).is_empty() && events(&out).is_empty(),
        "{out:?}"
    );
    assert_eq!(reports(&out), [("f1".to_string(), ImdnStatus::Delivered)]);
}

#[test]
fn a_file_over_msrp_downloads_at_once_and_a_failure_is_reported_failed() {
    let mut c = with_files();
    let t0 = Instant::now();
    invite(&mut c, t0, rcs::text_message(BOB, ME, "t1", "hi", None));
    up(&mut c, t0);
    c.handle(
        t0,
        Input::Msrp {
            peer: BOB.into(),
            msg: from_bob(&bobs_file("f2")),
        },
    );
    let out = drain(&mut c);
    assert_eq!(downloads(&out), ["f2"]);
    assert!(
        reports(&out).is_empty(),
        "nothing reported before the file is here"
    );
    c.handle(
        t0,
        Input::FileDone {
            message_id: "f2".into(),
            result: Err(FtError::Refused {
                status: 403,
                error: "forbidden".into(),
                detail: "no file of that id is shared with you".into(),
            }),
        },
    );
    let out = drain(&mut c);
    match &events(&out)[..] {
        [ChatEvent::FileFailed {
            name,
            message_id,
            reason,
            ..
        }] => {
            assert_eq!((name.as_str(), message_id.as_str()), ("photo.jpg", "f2"));
            assert!(reason.contains("403"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reports(&out), [("f2".to_string(), ImdnStatus::Failed)]);
}

#[test]
fn without_a_files_directory_a_file_is_offered_and_reported_like_a_text() {
    let mut c = core(ChatOptions::default());
    let t0 = Instant::now();
    invite(&mut c, t0, rcs::text_message(BOB, ME, "t1", "hi", None));
    up(&mut c, t0);
    c.handle(
        t0,
        Input::Msrp {
            peer: BOB.into(),
            msg: from_bob(&bobs_file("f3")),
        },
    );
    let out = drain(&mut c);
    assert!(downloads(&out).is_empty());
    assert_eq!(
        events(&out),
        vec![ChatEvent::FileOffered {
            from: BOB.into(),
            group: None,
            info: Box::new(info()),
            message_id: "f3".into(),
        }]
    );
    assert_eq!(reports(&out), [("f3".to_string(), ImdnStatus::Delivered)]);
}

#[test]
fn with_auto_displayed_a_file_in_an_invite_is_delivered_then_displayed_once_here() {
    let mut c = core(ChatOptions {
        files: Some(PathBuf::from("/tmp/files")),
        auto_displayed: true,
        ..ChatOptions::default()
    });
    let t0 = Instant::now();
    invite(
        &mut c,
        t0,
        bobs_file_asking("f4", "positive-delivery, display"),
    );
    drain(&mut c);
    let out = up(&mut c, t0);
    assert_eq!(downloads(&out), ["f4"]);
    assert!(
        reports(&out).is_empty(),
        "not displayed before it is here: {out:?}"
    );
    c.handle(
        t0,
        Input::FileDone {
            message_id: "f4".into(),
            result: Ok(saved()),
        },
    );
    let out = drain(&mut c);
    assert_eq!(
        reports(&out),
        [
            ("f4".to_string(), ImdnStatus::Delivered),
            ("f4".to_string(), ImdnStatus::Displayed)
        ]
    );
}

#[test]
fn a_held_invite_with_a_file_is_offered_and_delivered_when_accepted() {
    // WebRSF's UE: INVITEs held for the web client, files offered, not downloaded.
    let mut c = core(ChatOptions {
        hold_invites: true,
        auto_delivered: false,
        ..ChatOptions::default()
    });
    let t0 = Instant::now();
    invite(&mut c, t0, bobs_file("f9"));
    let out = drain(&mut c);
    let evs = events(&out);
    assert!(
        matches!(&evs[..], [ChatEvent::Invited { message_id, text: None, .. }, ChatEvent::FileOffered { .. }] if message_id == "f9"),
        "{evs:?}"
    );
    assert_eq!(
        evs[1],
        ChatEvent::FileOffered {
            from: BOB.into(),
            group: None,
            info: Box::new(info()),
            message_id: "f9".into(),
        }
    );
    assert!(downloads(&out).is_empty());
    c.handle(
        t0,
        Input::Accept {
            peer: BOB.into(),
            delivered: true,
        },
    );
    let out = drain(&mut c);
    let [Output::Answer { imdn, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(
        imdn.is_some(),
        "delivered goes before the 200, as for a text"
    );
}
