//! A full disk at the content server: the upload that does not fit gets 507 (RFC 4918 §11.5)
//! with a JSON error, nothing of it stays on disk, and the file stored before is still whole
//! and downloadable. The files' directory is a 512 KiB tmpfs the test mounts (needs root, as
//! CI runs; skipped with a message otherwise).

use super::*;

/// Unmounts (and removes) the test's tmpfs, also when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Names in `dir` (the content server's files directory).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_507_leaves_nothing_half_written_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("cs-files");
    std::fs::create_dir_all(&files).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=512k",
            "rcslab-test",
            files.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let _guard = Mount(files.clone());
    let lab = content_lab(
        dir.path(),
        &format!(
            "[content]\nauth = true\nmax_file_size = 3000000\ndir = \"{}\"\n",
            files.display()
        ),
    )
    .await;
    let mut alice = DigestUser::new("alice", "alice-secret");

    // A file that fits is stored.
    let first = bytes(11, 100_000);
    let body = multipart(
        "tid-fits",
        None,
        "fits.bin",
        "application/octet-stream",
        &first,
    );
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info = FileInfo::parse(&r.body).expect("a file-info document");
    let before = names(&files);

    // One that does not fit (1 MB into what is left of 512 KiB): 507, a JSON error, and the
    // directory as it was.
    let big = bytes(12, 1_000_000);
    let body = multipart(
        "tid-full",
        None,
        "full.bin",
        "application/octet-stream",
        &big,
    );
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["error"], "insufficient_storage", "{j}");
    assert!(j["detail"].is_string(), "{j}");
    assert_eq!(names(&files), before, "nothing half-written stays");
    // Nor is there an upload to resume: the tid is unknown.
    let r = request(
        &lab,
        &mut alice,
        "GET",
        "/?tid=tid-full&get_upload_info",
        "",
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));

    // The stored file is whole.
    let r = request(&lab, &mut alice, "GET", &path_of(&info.file.url), "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!((r.len, r.sha256.clone()), (first.len() as u64, sha(&first)));

    // Room again (the stored file is small): the next upload that fits goes through.
    let body = multipart(
        "tid-after",
        None,
        "after.bin",
        "application/octet-stream",
        &bytes(13, 50_000),
    );
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    lab.shutdown().await;
}
