//! Fake-clock tests of the MSRP session core: admission (481/501/413/bind), Failure-Report,
//! the §7.1.1 transaction timeout, and reassembly through [`Partials`].

use std::time::{Duration, Instant};

use super::*;
use crate::msrp::limits::{Added, MsrpLimits, Partials};
use crate::msrp::{chunk, Continuation};

const TO: &str = "msrp://127.0.0.1:2855/s1;tcp";
const FROM: &str = "msrp://127.0.0.1:40000/u1;tcp";

fn chunks(mid: &str, body: &[u8], size: usize) -> Vec<MsrpMessage> {
    let mut n = 0;
    chunk(TO, FROM, mid, "message/cpim", body, size, || {
        n += 1;
        format!("t{mid}{n}")
    })
}

fn send(body: &[u8]) -> MsrpMessage {
    chunks("m", body, 2048).remove(0)
}

#[test]
fn a_three_chunk_message_reassembles_byte_for_byte() {
    let t0 = Instant::now();
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let c = chunks("m3", &body, 2048);
    assert_eq!(c.len(), 3);
    assert_eq!(c[0].header("Byte-Range"), Some("1-2048/5000"));
    assert_eq!(c[2].continuation, Continuation::End);
    let mut p = Partials::new(MsrpLimits::default());
    assert_eq!(p.add(t0, "m3", &c[0]), Added::Partial);
    assert_eq!(p.add(t0, "m3", &c[1]), Added::Partial);
    assert_eq!(
        p.add(t0, "m3", &c[2]),
        Added::Whole("message/cpim".into(), body.into())
    );
    assert!(p.is_empty(), "nothing held once whole");
    for m in &c {
        assert_eq!(admit(m, true, 1 << 20), Admit::Chunk);
    }
}

#[test]
fn an_interrupted_message_is_discarded() {
    let t0 = Instant::now();
    let body = vec![b'x'; 5000];
    let c = chunks("m#", &body, 2048);
    let mut p = Partials::new(MsrpLimits::default());
    assert_eq!(p.add(t0, "m#", &c[0]), Added::Partial);
    let mut abort = c[1].clone();
    abort.continuation = Continuation::Abort;
    assert_eq!(p.add(t0, "m#", &abort), Added::Aborted);
    assert!(p.is_empty() && p.bytes() == 0, "its bytes are gone");
    // The last chunk arriving later starts afresh and is not whole (bytes 1..4096 missing).
    assert_eq!(p.add(t0, "m#", &c[2]), Added::Partial);
}

#[test]
fn a_send_transaction_times_out_at_30_s_and_not_before() {
    let t0 = Instant::now();
    let mut t = SendTransactions::default();
    t.start(t0, "tx1", "first");
    t.start(t0 + Duration::from_secs(1), "tx2", "second");
    assert_eq!(t.poll_timeout(), Some(t0 + TRANSACTION_TIMEOUT));
    assert!(t
        .handle_timeout(t0 + TRANSACTION_TIMEOUT - Duration::from_millis(1))
        .is_empty());
    assert_eq!(t.handle_timeout(t0 + TRANSACTION_TIMEOUT), ["first"]);
    assert_eq!(t.len(), 1);
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(31)));
    // Answered in time: ended by its response, never by the timer.
    assert_eq!(t.on_response("tx2"), Some("second"));
    assert!(t.handle_timeout(t0 + Duration::from_secs(60)).is_empty());
    assert!(t.is_empty());
}

#[test]
fn a_response_for_an_unknown_or_finished_transaction_is_ignored() {
    let t0 = Instant::now();
    let mut t = SendTransactions::default();
    t.start(t0, "tx1", 1);
    assert_eq!(t.on_response("nope"), None);
    assert_eq!(t.len(), 1, "the pending one is untouched");
    assert_eq!(t.on_response("tx1"), Some(1));
    assert_eq!(t.on_response("tx1"), None, "a second response to it");
    t.start(t0, "tx2", 2);
    assert_eq!(t.handle_timeout(t0 + TRANSACTION_TIMEOUT), [2]);
    assert_eq!(t.on_response("tx2"), None, "a response after the timeout");
}

#[test]
fn transactions_of_an_ended_session_are_taken_together() {
    let t0 = Instant::now();
    let mut t = SendTransactions::default();
    t.start(t0, "a", (1, 'a'));
    t.start(t0, "b", (2, 'b'));
    t.start(t0, "c", (1, 'c'));
    let mut ended = t.take_where(|(pair, _)| *pair == 1);
    ended.sort();
    assert_eq!(ended, [(1, 'a'), (1, 'c')]);
    assert_eq!(t.len(), 1);
}

#[test]
fn admission_answers_481_501_413_and_binds_as_today() {
    let m = send(b"hi");
    assert_eq!(
        admit(&m, false, 1 << 20),
        Admit::Respond(481, "Session Does Not Exist")
    );
    let mut report = m.clone();
    report.method = Some("REPORT".into());
    assert_eq!(admit(&report, false, 1 << 20), Admit::Drop);
    assert_eq!(admit(&report, true, 1 << 20), Admit::Report);
    let mut other = m.clone();
    other.method = Some("NICKNAME".into());
    assert_eq!(
        admit(&other, true, 1 << 20),
        Admit::Respond(501, "Unknown Method")
    );
    let big = chunks("big", &vec![b'z'; 5000], 2048).remove(0);
    assert_eq!(
        admit(&big, true, 4999),
        Admit::Respond(413, "Message Too Large")
    );
    assert_eq!(admit(&big, true, 5000), Admit::Chunk);
    // Total unknown (`*`, a file streamed as it is written): the bytes it reaches decide.
    let mut open = chunks("open", &vec![b'z'; 5000], 2048).remove(1);
    open.set_header("Byte-Range", "2049-*/*");
    assert_eq!(admit(&open, true, 4096), Admit::Chunk);
    assert_eq!(
        admit(&open, true, 4095),
        Admit::Respond(413, "Message Too Large")
    );
    let bind = MsrpMessage::request("SEND", "b1", TO, FROM);
    assert_eq!(admit(&bind, true, 1 << 20), Admit::Bind);
}

#[test]
fn failure_report_decides_responses() {
    let mut m = send(b"hi");
    assert!(expects_response(&m) && wants_200(&m) && passes_upstream(&m, 200));
    m.set_header("Failure-Report", "partial");
    assert!(expects_response(&m));
    assert!(!wants_200(&m));
    assert!(!passes_upstream(&m, 200), "partial: only failures go back");
    assert!(passes_upstream(&m, 481));
    m.set_header("Failure-Report", "no");
    assert!(!expects_response(&m), "no response, no transaction");
    assert!(!wants_200(&m));
    let mut report = send(b"");
    report.method = Some("REPORT".into());
    assert!(
        !expects_response(&report),
        "REPORTs get no response (§7.1.2)"
    );
}
