//! Files for WebRSF's web users (GSMA RCC.07 file transfer via HTTP through the gateway):
//! a photo from the web to an RCS UE (same SHA-256, a thumbnail in the file-info, the web
//! sender told "delivered"), from an RCS UE to the web (the event with the file, thumbnail
//! and file through the gateway byte for byte, a `Range`, a stranger refused), a file to a
//! group from the web, and bad input (over the content server's limit: 413 and nothing left
//! on disk; no peer, no name, an unknown group or peer).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rcslab::cpim::ImdnStatus;
use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use rcslab::Lab;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::chat::chat_ue;
use crate::lab_with;
use crate::web::{call, login, Channel};

/// A JPEG photo of `w`×`h` (a gradient with some noise).
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(w, h, |i, j| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x & 0x1f) as u8;
        image::Rgb([
            ((i * 255 / w) as u8).wrapping_add(n),
            ((j * 255 / h) as u8).wrapping_add(n),
            (((i + j) * 127 / (w + h)) as u8).wrapping_add(n),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("a JPEG");
    out.into_inner()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One raw request to the gateway: status, headers, body. `chunked`: the body goes without
/// a Content-Length, in 16 KiB chunks.
async fn raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    chunked: bool,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if chunked {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = body
            .chunks(16 * 1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    } else {
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    let resp = sender
        .send_request(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body within 10 s")
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (status, headers, bytes)
}

/// A POST whose body comes in `n` chunks `gap` apart (a slow link): the status.
async fn post_slowly(addr: SocketAddr, path: &str, token: &str, n: usize, gap: Duration) -> u16 {
    use futures_util::StreamExt;
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let frames = futures_util::stream::iter(0..n).then(move |i| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![i as u8; 1000])))
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(StreamBody::new(frames))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    resp.status().as_u16()
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

/// The path part of a gateway URL (`https://HOST/webrsf/...` -> `/webrsf/...`).
fn path_of(url: &str) -> String {
    let i = url.find("/webrsf/").expect("a gateway URL");
    url[i..].to_string()
}

/// A channel with what it showed so far: each wait looks at what came before too.
struct Events {
    ch: Channel,
    seen: Vec<Value>,
}

impl Events {
    async fn open(lab: &Lab, user: &str, token: &str) -> Events {
        Events {
            ch: Channel::open(lab, user, token, 0).await,
            seen: Vec::new(),
        }
    }

    async fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&want) {
            return self.seen.remove(i);
        }
        let end = Instant::now() + Duration::from_secs(15);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.ch.try_next(left).await {
                Some(e) if want(&e) => return e,
                Some(e) => self.seen.push(e),
                None => break,
            }
        }
        panic!("no {what} within 15 s; the channel had: {:#?}", self.seen);
    }
}

async fn next_ue(ue: &mut ChatUe) -> ChatEvent {
    loop {
        match ue
            .next_event(Duration::from_secs(15))
            .await
            .expect("an event within 15 s")
        {
            ChatEvent::Session { .. } | ChatEvent::Stored { .. } => continue,
            ev => return ev,
        }
    }
}

fn offered_opts() -> ChatOptions {
    ChatOptions {
        disposition: "positive-delivery".into(),
        files: None,
        ..ChatOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_from_the_web_reaches_an_rcs_ue_with_its_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = chat_ue(&lab, "bob", &shut, offered_opts()).await;
    let token = login(&lab, "alice", "alice-secret").await;
    let mut ev = Events::open(&lab, "alice", &token).await;
    let jpeg = photo(640, 480);

    let (s, _, b) = raw(
        lab.addrs.webrsf,
        Method::POST,
        "/webrsf/v1/alice/FileTransfer?to=bob&name=holiday%20photo.jpg",
        Some(&token),
        &[("content-type", "image/jpeg")],
        jpeg.clone(),
        false,
    )
    .await;
    let v = json_of(&b);
    assert_eq!(s, 201, "{v}");
    let mid = v["message_id"].as_str().expect("message_id").to_string();
    assert_eq!(v["file"]["name"], "holiday photo.jpg", "{v}");
    assert_eq!(v["file"]["size"], jpeg.len() as u64, "{v}");
    assert_eq!(v["file"]["content_type"], "image/jpeg", "{v}");
    assert!(v["file"]["thumbnail"]["url"].is_string(), "{v}");

    // bob's UE is offered the file-info (with a thumbnail) and downloads it from CS.
    let info = match next_ue(&mut bob).await {
        ChatEvent::FileOffered {
            from,
            group,
            info,
            message_id,
        } => {
            assert_eq!(
                (from.as_str(), group, message_id.as_str()),
                ("sip:alice@ims.lab", None, mid.as_str())
            );
            info
        }
        other => panic!("expected the file, got {other:?}"),
    };
    assert_eq!(info.file.name, "holiday photo.jpg");
    let t = info
        .thumbnail
        .as_ref()
        .expect("a thumbnail in the file-info");
    assert_eq!(t.content_type, "image/jpeg");
    let got = tempfile::tempdir().unwrap();
    let saved = bob
        .file_client()
        .download(&info, got.path(), u64::MAX)
        .await
        .expect("bob downloads it");
    assert_eq!(saved.sha256, sha(&jpeg), "bob has the bytes alice sent");

    // alice's page hears "delivered", as for a text.
    let st = ev
        .until("delivered", |e| {
            e["type"] == "messageStatusNotification" && e["data"]["message_id"] == mid.as_str()
        })
        .await;
    assert_eq!(st["data"]["status"], "delivered", "{st}");
    // The conversation keeps it (for a reload), with the file.
    let id = v["instance_id"].as_str().unwrap();
    let (s, msgs) = call(
        lab.addrs.webrsf,
        Method::GET,
        &format!("/webrsf/v1/alice/Chat/{id}/Messages"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let m = msgs
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == mid.as_str())
        .expect("the file in the conversation");
    assert_eq!(m["file"]["name"], "holiday photo.jpg", "{m}");
    assert_eq!(m["status"], "delivered", "{m}");
    // Nothing of the upload is left under the gateway's data dir.
    let uploads = dir.path().join("webrsf").join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "temporary uploads left in {}", uploads.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_from_an_rcs_ue_reaches_the_web_with_its_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut bob = chat_ue(&lab, "bob", &shut, offered_opts()).await;
    let token = login(&lab, "alice", "alice-secret").await;
    let carol = login(&lab, "carol", "carol-secret").await;
    let mut ev = Events::open(&lab, "alice", &token).await;
    let files = tempfile::tempdir().unwrap();
    let jpeg = photo(800, 600);
    let src = files.path().join("beach.jpg");
    std::fs::write(&src, &jpeg).unwrap();

    let sent = bob
        .send_file(
            "sip:alice@ims.lab",
            &src,
            &format!("http://{}", lab.addrs.content),
        )
        .await
        .expect("bob uploads and sends");
    // The file-info came in the INVITE: the page hears of the chat, then of the file.
    let n = ev
        .until("the file", |e| {
            e["type"] == "messageNotification"
                && e["data"]["message_id"] == sent.message_id.as_str()
        })
        .await;
    let file = n["data"]["file"].clone();
    assert_eq!(file["name"], "beach.jpg", "{n}");
    assert_eq!(file["size"], jpeg.len() as u64, "{n}");
    assert_eq!(file["content_type"], "image/jpeg", "{n}");
    assert_eq!(n["data"]["sender"], "bob", "{n}");
    let id = n["instance"].as_str().unwrap().rsplit('/').next().unwrap();
    // Chat/Media has it too; the page's acknowledgement is bob's "delivered".
    let (s, media) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/alice/Chat/Media",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    // NDJSON of one line reads as that object.
    let m = if media.is_array() {
        media[0].clone()
    } else {
        media
    };
    assert_eq!(m["file"]["file_id"], file["file_id"], "{m}");
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::PUT,
        &format!("/webrsf/v1/alice/Chat/{id}"),
        Some(&token),
        Some(json!({"status": "delivered", "message_id": sent.message_id})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    match next_ue(&mut bob).await {
        ChatEvent::Status {
            message_id, status, ..
        } => assert_eq!(
            (message_id.as_str(), status),
            (sent.message_id.as_str(), ImdnStatus::Delivered)
        ),
        other => panic!("expected delivered, got {other:?}"),
    }

    // A second file goes over the session now up (MSRP SEND): the same for the page.
    let note = files.path().join("note.txt");
    std::fs::write(&note, b"see you at the beach").unwrap();
    let second = bob
        .send_file(
            "sip:alice@ims.lab",
            &note,
            &format!("http://{}", lab.addrs.content),
        )
        .await
        .expect("the second file");
    let n2 = ev
        .until("the second file", |e| {
            e["type"] == "messageNotification"
                && e["data"]["message_id"] == second.message_id.as_str()
        })
        .await;
    assert_eq!(n2["data"]["file"]["name"], "note.txt", "{n2}");
    assert_eq!(n2["data"]["file"]["thumbnail"], Value::Null, "{n2}");
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::PUT,
        &format!("/webrsf/v1/alice/Chat/{id}"),
        Some(&token),
        Some(json!({"status": "delivered", "message_id": second.message_id})),
    )
    .await;
    assert_eq!(s, 200);
    match next_ue(&mut bob).await {
        ChatEvent::Status {
            message_id, status, ..
        } => assert_eq!(
            (message_id.as_str(), status),
            (second.message_id.as_str(), ImdnStatus::Delivered)
        ),
        other => panic!("expected delivered, got {other:?}"),
    }
    let (s, h, body) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &path_of(n2["data"]["file"]["url"].as_str().unwrap()),
        Some(&token),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!((s, body.as_slice()), (200, &b"see you at the beach"[..]));
    assert_eq!(
        h["content-type"], "application/octet-stream",
        "not a media type: served as bytes"
    );

    // The file and its thumbnail through the gateway, with alice's token.
    let url = path_of(file["url"].as_str().unwrap());
    let (s, h, body) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &url,
        Some(&token),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sha(&body), sha(&jpeg), "the same bytes");
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .contains("beach.jpg"),
        "{h:?}"
    );
    let turl = path_of(file["thumbnail"]["url"].as_str().expect("a thumbnail"));
    let (s, h, thumb) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &turl,
        Some(&token),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "image/jpeg");
    let img = image::load_from_memory(&thumb).expect("the thumbnail decodes");
    assert!(img.width() <= 128 && img.height() <= 128);
    let cs_id = sent.info.file.url.rsplit('/').next().unwrap();
    assert_eq!(
        thumb,
        std::fs::read(lab.content.path_of(cs_id, true)).unwrap(),
        "the thumbnail CS has"
    );
    // A range passes through.
    let (s, h, part) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &url,
        Some(&token),
        &[("range", "bytes=100-199")],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 206);
    assert_eq!(part, jpeg[100..200]);
    assert_eq!(
        h["content-range"],
        format!("bytes 100-199/{}", jpeg.len()).as_str()
    );

    // Nobody else gets it: no token 401, carol's token on alice's path 403, carol's own
    // path 404 (the id is not hers).
    let fid = file["file_id"].as_str().unwrap();
    let (s, _, b) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &url,
        None,
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&b));
    let (s, _, b) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &url,
        Some(&carol),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["error"], "forbidden");
    let (s, _, b) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &format!("/webrsf/v1/carol/FileTransfer/{fid}"),
        Some(&carol),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["error"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_to_a_group_from_the_web() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let ta = login(&lab, "alice", "alice-secret").await;
    let tb = login(&lab, "bob", "bob-secret").await;
    let mut ea = Events::open(&lab, "alice", &ta).await;
    let mut eb = Events::open(&lab, "bob", &tb).await;
    let (s, g) = call(
        lab.addrs.webrsf,
        Method::POST,
        "/webrsf/v1/alice/Group",
        Some(&ta),
        Some(json!({"subject": "photos", "participants": ["bob"]})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["group_id"].as_str().unwrap().to_string();
    eb.until("joined", |e| {
        e["type"] == "groupChatEventNotification"
            && e["data"]["group_id"] == gid.as_str()
            && e["data"]["status"] == "joined"
    })
    .await;

    let png = {
        let img = image::RgbImage::from_fn(300, 200, |i, j| {
            image::Rgb([(i % 256) as u8, (j % 256) as u8, 90])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let (s, _, b) = raw(
        lab.addrs.webrsf,
        Method::POST,
        &format!("/webrsf/v1/alice/Group/{gid}/FileTransfer?name=chart.png"),
        Some(&ta),
        &[],
        png.clone(),
        true,
    )
    .await;
    let v = json_of(&b);
    assert_eq!(s, 201, "{v}");
    let mid = v["message_id"].as_str().unwrap().to_string();
    assert_eq!(v["group_id"], gid.as_str());

    let m = eb
        .until("the group's file", |e| {
            e["type"] == "chatMessageNotification" && e["data"]["message_id"] == mid.as_str()
        })
        .await;
    assert_eq!(m["data"]["sender"], "alice", "{m}");
    assert_eq!(m["data"]["group_id"], gid.as_str(), "{m}");
    let file = &m["data"]["file"];
    assert_eq!(file["name"], "chart.png", "{m}");
    assert_eq!(file["content_type"], "image/png", "{m}");
    let (s, _, body) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &path_of(file["url"].as_str().unwrap()),
        Some(&tb),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(sha(&body), sha(&png), "bob has alice's bytes");
    let (s, _, thumb) = raw(
        lab.addrs.webrsf,
        Method::GET,
        &path_of(file["thumbnail"]["url"].as_str().expect("a thumbnail")),
        Some(&tb),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 200);
    image::load_from_memory(&thumb).expect("the thumbnail decodes");
    // The writer hears bob got it.
    let st = ea
        .until("delivered by bob", |e| {
            e["type"] == "messageStatusNotification"
                && e["data"]["message_id"] == mid.as_str()
                && e["data"]["status"] == "delivered"
        })
        .await;
    assert_eq!(st["data"]["sender"], "bob", "{st}");
    assert_eq!(st["data"]["group_id"], gid.as_str(), "{st}");
    let (s, msgs) = call(
        lab.addrs.webrsf,
        Method::GET,
        &format!("/webrsf/v1/alice/Group/{gid}/Messages"),
        Some(&ta),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        msgs.as_array()
            .unwrap()
            .iter()
            .any(|m| m["message_id"] == mid.as_str() && m["file"]["name"] == "chart.png"),
        "{msgs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_requests_get_json_errors_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[content]\nmax_file_size = 100000\n[http]\nbody_timeout_ms = 500\n",
    )
    .await;
    let token = login(&lab, "alice", "alice-secret").await;
    let mut ev = Events::open(&lab, "alice", &token).await;
    let gw = lab.addrs.webrsf;
    let post = |path: String, body: Vec<u8>, chunked: bool| {
        let token = token.clone();
        async move { raw(gw, Method::POST, &path, Some(&token), &[], body, chunked).await }
    };
    let path = "/webrsf/v1/alice/FileTransfer?to=bob&name=big.bin".to_string();
    // Over the content server's limit: with a Content-Length, and streamed without one.
    for chunked in [false, true] {
        let (s, _, b) = post(path.clone(), vec![7u8; 100_001], chunked).await;
        assert_eq!(s, 413, "chunked {chunked}: {}", String::from_utf8_lossy(&b));
        assert_eq!(json_of(&b)["error"], "payload_too_large");
    }
    let uploads = dir.path().join("webrsf").join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "temporary uploads left in {}", uploads.display());
    // A file that takes longer than `[http] body_timeout_ms` to come (a slow link) is still
    // taken: uploads have CS's body timeout.
    let slow = post_slowly(
        gw,
        "/webrsf/v1/alice/FileTransfer?to=bob&name=slow.bin",
        &token,
        8,
        Duration::from_millis(150),
    )
    .await;
    assert_eq!(slow, 201, "a slow upload");
    // Four uploads of one user at once; a fifth is refused until they are through.
    let mut slow = Vec::new();
    for i in 0..rcslab::webrsf::MAX_UPLOADS_PER_USER {
        let token = token.clone();
        slow.push(tokio::spawn(async move {
            let path = format!("/webrsf/v1/alice/FileTransfer?to=bob&name=part{i}.bin");
            post_slowly(gw, &path, &token, 16, Duration::from_millis(150)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (s, _, b) = post(path.replace("big", "fifth"), b"x".to_vec(), false).await;
    assert_eq!(s, 429, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json_of(&b)["error"], "too_many_uploads");
    for t in slow {
        assert_eq!(t.await.unwrap(), 201);
    }
    let (s, _, b) = post(path.replace("big", "sixth"), b"x".to_vec(), false).await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    // No peer, a peer that is no URI, no name, ourselves: 400.
    for p in [
        "/webrsf/v1/alice/FileTransfer?name=a.txt",
        "/webrsf/v1/alice/FileTransfer?to=bad%3Cpeer%3E&name=a.txt",
        "/webrsf/v1/alice/FileTransfer?to=bob",
        "/webrsf/v1/alice/FileTransfer?to=alice&name=a.txt",
    ] {
        let (s, _, b) = post(p.to_string(), b"hello".to_vec(), false).await;
        assert_eq!(s, 400, "{p}: {}", String::from_utf8_lossy(&b));
        assert_eq!(json_of(&b)["error"], "bad_request", "{p}");
    }
    // An unknown group: 404; no token: 401.
    let (s, _, b) = post(
        "/webrsf/v1/alice/Group/chat-nosuch/FileTransfer?name=a.txt".into(),
        b"hello".to_vec(),
        false,
    )
    .await;
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&b));
    let (s, _, _) = raw(gw, Method::POST, &path, None, &[], b"x".to_vec(), false).await;
    assert_eq!(s, 401);
    // A file that is not ours to fetch.
    let (s, _, b) = raw(
        gw,
        Method::GET,
        "/webrsf/v1/alice/FileTransfer/0123456789abcdef",
        Some(&token),
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(json_of(&b)["error"], "not_found");
    // A user the network does not know: the file is taken, then reported failed (as a text).
    let (s, _, b) = post(
        "/webrsf/v1/alice/FileTransfer?to=nobody&name=note.txt".into(),
        b"for nobody".to_vec(),
        false,
    )
    .await;
    let v = json_of(&b);
    assert_eq!(s, 201, "{v}");
    let mid = v["message_id"].as_str().unwrap().to_string();
    let st = ev
        .until("failed", |e| {
            e["type"] == "messageStatusNotification" && e["data"]["message_id"] == mid.as_str()
        })
        .await;
    assert_eq!(st["data"]["status"], "failed", "{st}");
}
