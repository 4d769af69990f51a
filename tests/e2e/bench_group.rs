//! `rcslab bench group` in small: a few groups through the conference focus CONF, every
//! message at every member with its IMDN, and the roster NOTIFY on a leave.

/// 3 groups x 3 members, 2 s at 10 messages/s: nothing lost or duplicated, and the report
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_benchmark_delivers_every_message_of_a_few_groups_with_its_imdns() {
    let r = rcslab::lab::bench_group::group(3, 3, 10, 2)
        .await
        .expect("the benchmark runs");
    // Each group's third member leaves halfway (the roster is watched in all three): every
    // message is owed to one other member, and so is its IMDN.
    assert_eq!((r.sent, r.owed, r.received), (20, 20, 20), "{r:?}");
    assert_eq!((r.duplicates, r.complete), (0, 20), "{r:?}");
    assert_eq!((r.imdn_owed, r.imdn_received), (20, 20), "{r:?}");
    assert_eq!((r.leaves, r.notified), (3, 3), "{r:?}");
    assert!(r.clean(), "{r:?}");
    let text = rcslab::lab::bench_group::report(&r, 10, 2);
    for want in [
        "group: 3 groups x 3 members (9 clients)",
        "20 sent, 20 fan-out deliveries owed, 20 received, 0 lost, 0 duplicated",
        "20 IMDN delivered owed, 20 received, 0 lost",
        "scheduled send -> last member delivered p50 ",
        "(20 messages complete)",
        "roster: 3 leaves (BYE) watched, 3 partial NOTIFY, BYE -> NOTIFY p50 ",
        "MiB after the load",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}
