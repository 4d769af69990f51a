//! `rcslab bench ft` in small: a few uploads and downloads through the content server, every
//! file back whole with its SHA-256, and the report saying so.

use rcslab::lab::bench_ft::{self, FtPlan};

/// 20 x 64 KiB at 20/s, 2 x 2 MiB at once, one 8 MiB file: nothing fails, the report names
/// each phase with its figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ft_benchmark_moves_every_file_back_whole() {
    const KIB: u64 = 1024;
    let plan = FtPlan {
        clients: 4,
        small_size: 64 * KIB,
        small_count: 20,
        small_rate: 20,
        big_size: 2048 * KIB,
        big_count: 2,
        huge_size: 8192 * KIB,
    };
    let r = bench_ft::ft(&plan).await.expect("the benchmark runs");
    assert_eq!((r.small.ok, r.small.failed), (20, 0), "{r:?}");
    assert_eq!(r.small.up_bytes, 20 * 64 * KIB);
    assert_eq!(r.small.up.len(), 20);
    let big = r.big.as_ref().expect("a big phase");
    assert_eq!((big.ok, big.failed, big.down_bytes), (2, 0, 2 * 2048 * KIB));
    let huge = r.huge.as_ref().expect("a huge phase");
    assert_eq!((huge.ok, huge.failed), (1, 0));
    assert!(r.clean());
    let text = bench_ft::report(&r, &plan);
    for want in [
        "small: 20 x 65536 bytes (20/s scheduled): 20 ok, 0 failed;",
        "big: 2 x 2 MiB (all at once): 2 ok, 0 failed;",
        "huge: 1 x 8 MiB (all at once): 1 ok, 0 failed;",
        "upload (from its scheduled start) p50 ",
        "MiB peak (",
        "every file arrived whole with its SHA-256",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}
