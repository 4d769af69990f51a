//! Unit tests of the MSRP file transfer of the client (`msrp_ft.rs`).
use super::*;

/// Two ends of one MSRP connection over loopback.
async fn pair() -> ((MsrpConn, MsrpEvents), (MsrpConn, MsrpEvents)) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(MsrpConn::connect(addr, Trace::disabled()), l.accept());
    let b = MsrpConn::adopt(b.unwrap().0, Trace::disabled());
    (a.unwrap(), b)
}

fn file(dir: &Path, data: &[u8]) -> OutgoingFile {
    let path = dir.join("src.bin");
    std::fs::write(&path, data).unwrap();
    OutgoingFile {
        path,
        name: "a/../b.bin".into(),
        content_type: "application/octet-stream".into(),
        size: data.len() as u64,
        sha1: sha1::Sha1::digest(data).to_vec(),
        transfer_id: "t1".into(),
    }
}

fn incoming(f: &OutgoingFile, sha1: Vec<u8>) -> Incoming {
    Incoming {
        name: f.name.clone(),
        content_type: f.content_type.clone(),
        size: f.size,
        sha1: Some(FileHash {
            algorithm: "sha-1".into(),
            value: sha1,
        }),
    }
}

const TO: &str = "msrp://127.0.0.1:1/r;tcp";
const ME: &str = "msrp://127.0.0.1:2/s;tcp";

#[tokio::test]
async fn a_file_in_chunks_is_saved_under_a_safe_name_with_its_hashes_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..25_000u32).map(|i| (i * 7) as u8).collect();
    let f = file(dir.path(), &data);
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let ((a, mut arx), (b, brx)) = pair().await;
    let want = incoming(&f, f.sha1.clone());
    let recv = tokio::spawn({
        let inbox = inbox.clone();
        async move {
            let r = receive(&b, brx, &inbox, &want).await;
            b.close();
            r
        }
    });
    send_chunks(&a, &mut arx, TO, ME, &f).await.unwrap();
    a.close();
    let saved = recv.await.unwrap().unwrap();
    assert_eq!(
        saved.path,
        inbox.join("a___b.bin"),
        "no path out of the inbox"
    );
    assert_eq!(std::fs::read(&saved.path).unwrap(), data);
    assert_eq!(saved.sha256, hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        1,
        "no part file"
    );
}

#[tokio::test]
async fn a_file_whose_sha1_is_not_the_announced_one_gets_400_and_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![7u8; 15_000];
    let f = file(dir.path(), &data);
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let ((a, mut arx), (b, brx)) = pair().await;
    let want = incoming(&f, vec![0; 20]);
    let recv = tokio::spawn({
        let inbox = inbox.clone();
        async move { receive(&b, brx, &inbox, &want).await }
    });
    match send_chunks(&a, &mut arx, TO, ME, &f).await {
        Err(SendError::Chunk { status: 400, .. }) => {}
        other => panic!("expected a 400 for the last chunk, got {other:?}"),
    }
    assert!(matches!(recv.await.unwrap(), Err(ReceiveError::Hash)));
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "nothing kept"
    );
}

#[tokio::test]
async fn more_than_announced_gets_413_and_a_file_that_stops_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![1u8; 12_000];
    let f = file(dir.path(), &data);
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let ((a, mut arx), (b, brx)) = pair().await;
    let mut want = incoming(&f, f.sha1.clone());
    want.size = 5_000;
    let recv = tokio::spawn({
        let inbox = inbox.clone();
        async move { receive(&b, brx, &inbox, &want).await }
    });
    match send_chunks(&a, &mut arx, TO, ME, &f).await {
        Err(SendError::Chunk { status: 413, .. }) => {}
        other => panic!("expected 413, got {other:?}"),
    }
    assert!(matches!(
        recv.await.unwrap(),
        Err(ReceiveError::TooLong(5_000))
    ));
    // The connection goes after one chunk of two: nothing kept either.
    let ((a, _arx), (b, brx)) = pair().await;
    let want = incoming(&f, f.sha1.clone());
    let recv = tokio::spawn({
        let inbox = inbox.clone();
        async move { receive(&b, brx, &inbox, &want).await }
    });
    let mut m = MsrpMessage::request("SEND", "x1", TO, ME);
    m.set_header("Message-ID", "t1");
    m.set_header("Byte-Range", "1-10240/12000");
    m.body = Bytes::from(vec![1u8; 10_240]);
    m.continuation = Continuation::More;
    a.send(&m).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.close();
    assert!(matches!(
        recv.await.unwrap(),
        Err(ReceiveError::Closed { got: 10_240, .. })
    ));
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0);
}
