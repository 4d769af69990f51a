//! `rcslab bench sms` in small: 50 submit_sm at 50/s over SMPP to five IMS phones, every one
//! accepted, delivered once and receipted once, and the report saying so.

use rcslab::lab::bench_sms::{self, SmsPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_benchmark_gets_a_receipt_for_every_message_and_no_copies() {
    let plan = SmsPlan {
        users: 5,
        rates: vec![50],
        secs: 1,
        window: 20,
    };
    let r = bench_sms::sms(&plan).await.expect("the benchmark runs");
    assert_eq!(r.steps.len(), 1);
    let s = &r.steps[0];
    assert_eq!((s.sent, s.accepted, s.errors), (50, 50, 0), "{r:?}");
    assert_eq!(
        (s.delivered, s.lost(), s.duplicates, s.undelivered),
        (50, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!((r.phone_received, r.phone_duplicates), (50, 0), "{r:?}");
    assert!(s.resp[0] <= s.resp[1] && s.resp[1] <= s.receipt[2], "{s:?}");
    assert!(r.clean());
    let text = bench_sms::report(&r, &plan);
    for want in [
        "sms: 5 phones registered in ",
        "one SMPP transceiver (window 20), steps of 1 s;",
        "sms: offered 50/s: 50 sent, ",
        " submit_sm/s accepted, ",
        " delivered/s, 0 errors, 0 lost, 0 duplicates; submit->resp p50 ",
        "; submit->receipt p50 ",
        "sms: the phones got 50 messages, 0 twice",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}
