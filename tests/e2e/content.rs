//! The FT content server CS (GSMA RCC.07 File Transfer via HTTP) end to end, over real HTTP/1.1
//! on loopback as rcsjta's HttpUploadManager / HttpDownloadManager speak it: the empty POST and
//! its Digest challenge (HA1 from the HSS over Cx), the multipart upload and its file-info,
//! downloads with Range, a 100 MB upload cut halfway and resumed, expiry, grants, limits and
//! bad input, and tshark reading the multipart frames.

use std::path::Path;
use std::time::Duration;

use rcslab::auth::digest::{self, Challenge};
use rcslab::fthttp::{FileInfo, ResumeInfo};
use rcslab::Lab;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod disk;

/// One HTTP response, its body read whole (small ones) or only hashed (files).
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes of the body and their SHA-256 (hex), whether kept or not.
    len: u64,
    sha256: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads a response from `s`; bodies up to `keep` bytes are kept.
async fn read_response(s: &mut TcpStream, keep: usize) -> Resp {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp).await.expect("read head");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: u64 = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut rest = buf[head_end + 4..].to_vec();
    let mut h = Sha256::new();
    let mut got = 0u64;
    let mut body = Vec::new();
    loop {
        let take = rest.len().min((len - got) as usize);
        h.update(&rest[..take]);
        if body.len() + take <= keep {
            body.extend_from_slice(&rest[..take]);
        }
        got += take as u64;
        if got >= len {
            break;
        }
        let n = s.read(&mut tmp).await.expect("read body");
        assert!(n > 0, "closed in the body after {got} of {len}");
        rest = tmp[..n].to_vec();
    }
    Resp {
        status,
        headers,
        body,
        len,
        sha256: hex::encode(h.finalize()),
    }
}

/// A Digest client of one user: the nonce of the last challenge, the nonce count.
struct DigestUser {
    user: String,
    password: String,
    challenge: Option<Challenge>,
    nc: u32,
}

impl DigestUser {
    fn new(user: &str, password: &str) -> DigestUser {
        DigestUser {
            user: user.into(),
            password: password.into(),
            challenge: None,
            nc: 0,
        }
    }

    /// The Authorization header line of a request, if a challenge was seen.
    fn authorization(&mut self, method: &str, uri: &str) -> String {
        let Some(c) = &self.challenge else {
            return String::new();
        };
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = digest::new_cnonce();
        let ha1 = digest::ha1_hex(&self.user, &c.realm, self.password.as_bytes());
        let resp = digest::response_hex(
            &ha1,
            &c.nonce,
            Some(&nc),
            Some(&cnonce),
            Some("auth"),
            method,
            uri,
        );
        format!(
            "Authorization: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"\r\n",
            self.user, c.realm, c.nonce
        )
    }

    fn learn(&mut self, r: &Resp) {
        if let Some(v) = r.header("www-authenticate") {
            self.challenge = Some(Challenge::parse(v).expect("a Digest challenge"));
            self.nc = 0;
        }
    }
}

/// Sends one request on a new connection and reads the answer; with a 401 the client learns
/// the challenge and sends it once more.
async fn request(
    lab: &Lab,
    who: &mut DigestUser,
    method: &str,
    uri: &str,
    extra: &str,
    body: &[u8],
) -> Resp {
    for _ in 0..2 {
        let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
        let head = format!(
            "{method} {uri} HTTP/1.1\r\nHost: {}\r\n{}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
            lab.addrs.content,
            who.authorization(method, uri),
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let r = read_response(&mut s, 1 << 20).await;
        if r.status == 401 && who.challenge.is_none() {
            who.learn(&r);
            continue;
        }
        if r.status == 401
            && r.header("www-authenticate")
                .is_some_and(|v| v.contains("stale=TRUE"))
        {
            who.learn(&r);
            continue;
        }
        return r;
    }
    panic!("two 401s for {method} {uri}");
}

const BOUNDARY: &str = "rcslab-test-boundary-1f2e3d";

/// A multipart body: tid, optional thumbnail, file.
fn multipart(tid: &str, thumb: Option<&[u8]>, name: &str, ct: &str, file: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"tid\"\r\nContent-Type: text/plain\r\n\r\n{tid}\r\n"
    )
    .into_bytes();
    if let Some(t) = thumb {
        b.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"Thumbnail\"; filename=\"thumb.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes());
        b.extend_from_slice(t);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"{name}\"\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn multipart_header() -> String {
    format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n")
}

/// Deterministic bytes (xorshift), `n` of them.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The path and query of a URL the server handed out.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/')
        .map(|i| rest[i..].to_string())
        .unwrap_or("/".into())
}

/// The lab's grant secret (what T-IM / CONF will present), from its token file.
fn grant_secret(lab: &Lab, dir: &Path) -> String {
    let s = &lab.content.settings().grant_secret;
    assert!(!s.is_empty());
    let file = std::fs::read_to_string(dir.join("content/grants.token")).unwrap();
    assert_eq!(file.trim(), s);
    s.clone()
}

async fn grant(lab: &Lab, secret: &str, file: &str, users: &[&str]) -> Resp {
    let body = serde_json::json!({"file": file, "users": users}).to_string();
    let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
    let head = format!(
        "POST /grants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    read_response(&mut s, 1 << 16).await
}

async fn content_lab(dir: &Path, extra: &str) -> Lab {
    crate::lab_with(dir, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_with_digest_then_download_by_a_recipient_with_range_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let lab = content_lab(dir.path(), "").await;
    let mut alice = DigestUser::new("alice@ims.lab", "alice-secret");

    // RCC.07: the empty POST first: 401 with a Digest challenge in the home domain.
    let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: cs\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, 4096).await;
    assert_eq!(r.status, 401);
    let ch = r.header("www-authenticate").expect("challenge");
    assert!(
        ch.starts_with("Digest realm=\"ims.lab\"")
            && ch.contains("qop=\"auth\"")
            && ch.contains("algorithm=MD5"),
        "{ch}"
    );
    assert_eq!(r.json()["error"], "unauthorized");
    alice.learn(&r);
    let r = request(&lab, &mut alice, "POST", "/", "", b"").await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));

    // The upload: tid, Thumbnail, File.
    let file = bytes(7, 200_000);
    let thumb = bytes(9, 3_000);
    let body = multipart("tid-1", Some(&thumb), "photo.jpg", "image/jpeg", &file);
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.gsma.rcs-ft-http+xml")
    );
    let info = FileInfo::parse(&r.body).expect("file-info");
    assert_eq!(info.file.size, 200_000);
    assert_eq!(info.file.name, "photo.jpg");
    assert_eq!(info.file.content_type, "image/jpeg");
    let t = info.thumbnail.clone().expect("thumbnail info");
    assert_eq!((t.size, t.content_type.as_str()), (3_000, "image/jpeg"));
    let base = format!("http://{}/files/", lab.addrs.content);
    assert!(info.file.url.starts_with(&base), "{}", info.file.url);
    assert_eq!(t.url, format!("{}/thumbnail", info.file.url));
    assert_eq!(t.until, info.file.until);
    // until: seven days from now, RFC 3339.
    let id = info.file.url.rsplit('/').next().unwrap().to_string();
    let rec = lab.content.record(&id).expect("indexed");
    let week = rec.until - rec.created;
    assert!((604_799..=604_801).contains(&week), "{week}");
    assert!(
        info.file.until.ends_with('Z') && info.file.until.len() == 20,
        "{}",
        info.file.until
    );
    assert_eq!(rec.sha256.as_deref(), Some(sha(&file).as_str()));
    assert_eq!(rec.owner, "sip:alice@ims.lab");
    assert_eq!(
        std::fs::read(lab.content.path_of(&id, false)).unwrap(),
        file
    );
    // get_download_info gives the same document; a tid of nobody's is 404.
    let r = request(
        &lab,
        &mut alice,
        "GET",
        "/?tid=tid-1&get_download_info",
        "",
        b"",
    )
    .await;
    assert_eq!(
        (r.status, FileInfo::parse(&r.body).unwrap()),
        (200, info.clone())
    );
    let r = request(
        &lab,
        &mut alice,
        "GET",
        "/?tid=nope&get_upload_info",
        "",
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );

    // Bob is not a recipient yet: 403, the same as for a file that does not exist.
    let mut bob = DigestUser::new("bob@ims.lab", "bob-secret");
    let file_path = path_of(&info.file.url);
    let r = request(&lab, &mut bob, "GET", &file_path, "", b"").await;
    assert_eq!(r.status, 403);
    let none = request(
        &lab,
        &mut bob,
        "GET",
        "/files/00112233445566778899aabbccddeeff",
        "",
        b"",
    )
    .await;
    assert_eq!(none.status, 403);
    assert_eq!(
        r.body, none.body,
        "no difference between not granted and not there"
    );
    assert_eq!(r.json()["error"], "forbidden");

    // The messaging server grants bob (the internal API, with the lab's secret).
    let secret = grant_secret(&lab, dir.path());
    let g = grant(&lab, &secret, &info.file.url, &["sip:bob@ims.lab"]).await;
    assert_eq!(g.status, 200, "{}", String::from_utf8_lossy(&g.body));
    assert_eq!(g.json()["grants"], serde_json::json!(["sip:bob@ims.lab"]));
    let r = request(&lab, &mut bob, "GET", &file_path, "", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!((r.len, r.sha256.clone()), (200_000, sha(&file)));
    assert_eq!(r.body, file);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // A download that resumes: 206 with Content-Range.
    let r = request(
        &lab,
        &mut bob,
        "GET",
        &file_path,
        "Range: bytes=150000-\r\n",
        b"",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 150000-199999/200000")
    );
    assert_eq!(r.body, &file[150_000..]);
    let r = request(
        &lab,
        &mut bob,
        "GET",
        &file_path,
        "Range: bytes=200000-\r\n",
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */200000"))
    );
    let r = request(&lab, &mut bob, "GET", &path_of(&t.url), "", b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, thumb.as_slice()));

    // Carol is not granted: 403.
    let mut carol = DigestUser::new("carol@ims.lab", "carol-secret");
    let r = request(&lab, &mut carol, "GET", &file_path, "", b"").await;
    assert_eq!(r.status, 403);

    // A wrong password and an unknown user get the same 401.
    let mut wrong = DigestUser::new("alice@ims.lab", "guess");
    let a = request(&lab, &mut wrong, "GET", &file_path, "", b"").await;
    let mut ghost = DigestUser::new("ghost@ims.lab", "guess");
    let b = request(&lab, &mut ghost, "GET", &file_path, "", b"").await;
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.body, b.body);
    let names = |r: &Resp| {
        r.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b));

    // The grant API wants the secret, which never shows in the trace.
    for bad in ["", "not-the-secret-at-all"] {
        let g = grant(&lab, bad, &id, &["sip:carol@ims.lab"]).await;
        assert_eq!(
            (g.status, g.json()["error"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    let g = grant(&lab, &secret, "ffff", &["sip:carol@ims.lab"]).await;
    assert_eq!(g.status, 404);
    let g = grant(&lab, &secret, &id, &["bob"]).await;
    assert_eq!(g.status, 400);
    let text = String::from_utf8(lab.export("text").unwrap()).unwrap();
    assert!(
        !text.contains(&secret),
        "the grant secret is masked in the trace"
    );

    // The ladder: HTTP between the UEs and CS, and CS asking the HSS for alice's HA1.
    let flow = crate::flow(&lab);
    for want in [
        "UE alice -> CS HTTP POST /",
        "CS -> UE alice HTTP HTTP/1.1 200 OK",
        "CS -> HSS Diameter MAR",
        "HSS -> CS Diameter MAA",
        "UE bob -> CS HTTP GET /files/",
        "CS -> UE bob HTTP HTTP/1.1 206 Partial Content",
    ] {
        assert!(
            flow.iter().any(|l| l.starts_with(want)),
            "{want} in {flow:#?}"
        );
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_input_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lab = content_lab(dir.path(), "[content]\nmax_file_size = 100000\n").await;
    let mut alice = DigestUser::new("alice", "alice-secret");
    let r = request(&lab, &mut alice, "POST", "/", "", b"").await;
    assert_eq!(r.status, 204);

    // Over the limit by Content-Length: 413 before the body is sent at all.
    let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{}{}Content-Length: 200000000\r\n\r\n",
        alice.authorization("POST", "/"),
        multipart_header()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[b'x'; 1000]).await.unwrap();
    let r = read_response(&mut s, 4096).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");
    assert!(
        r.json()["detail"].as_str().unwrap().contains("100000"),
        "{:?}",
        r.json()
    );

    // Over the limit without a Content-Length (chunked): 413 once the file passes it, and
    // nothing stays.
    let big = multipart(
        "tid-big",
        None,
        "big.bin",
        "application/octet-stream",
        &bytes(1, 150_000),
    );
    let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{}{}Transfer-Encoding: chunked\r\n\r\n",
        alice.authorization("POST", "/"),
        multipart_header()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for c in big.chunks(16 * 1024) {
        let _ = s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await;
        let _ = s.write_all(c).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let r = read_response(&mut s, 4096).await;
    assert_eq!(r.status, 413);
    assert_eq!(lab.content.file_count(), 0);
    assert_eq!(lab.content.pending_count(), 0);

    // Bad multipart: 400 with JSON; a body that is not multipart: 415.
    for (ct, body, code) in [
        (multipart_header(), b"no boundary anywhere".to_vec(), 400),
        (
            "Content-Type: multipart/form-data\r\n".to_string(),
            b"--x--".to_vec(),
            400,
        ),
        (
            multipart_header(),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"File\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n").into_bytes(),
            400,
        ),
        (
            multipart_header(),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"tid\"\r\n\r\nt\r\n--{BOUNDARY}--\r\n").into_bytes(),
            400,
        ),
        (
            multipart_header(),
            format!("--{BOUNDARY}\r\nno colon\r\n\r\nabc\r\n--{BOUNDARY}--\r\n").into_bytes(),
            400,
        ),
        ("Content-Type: text/plain\r\n".to_string(), b"hello".to_vec(), 415),
    ] {
        let r = request(&lab, &mut alice, "POST", "/", &ct, &body).await;
        assert_eq!(r.status, code, "{}", String::from_utf8_lossy(&body));
        let j = r.json();
        assert!(j["error"].is_string() && j["detail"].is_string(), "{j}");
    }
    // A truncated multipart body (no closing boundary): 400, and what arrived of the file is
    // kept for resume.
    let mut cut = multipart(
        "tid-cut",
        None,
        "a.bin",
        "application/octet-stream",
        &bytes(2, 5000),
    );
    cut.truncate(cut.len() - 40);
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &cut).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("closing boundary"),
        "{:?}",
        r.json()
    );
    let r = request(
        &lab,
        &mut alice,
        "GET",
        "/?tid=tid-cut&get_upload_info",
        "",
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let ri = ResumeInfo::parse(&r.body).unwrap();
    assert!(ri.next_byte() > 4000 && ri.next_byte() <= 5000, "{ri:?}");
    // Unknown paths and methods.
    let r = request(&lab, &mut alice, "GET", "/nothing", "", b"").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = request(&lab, &mut alice, "DELETE", "/", "", b"").await;
    assert_eq!(r.status, 405);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_cut_halfway_resumes_and_arrives_with_the_same_sha256() {
    const SIZE: u64 = 100 * 1024 * 1024;
    const BLOCK: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let lab = content_lab(dir.path(), "[content]\nmax_file_size = 104857600\n").await;
    // The file, generated block by block (the test never holds more than a block).
    let src = dir.path().join("big.bin");
    let mut want = Sha256::new();
    {
        let mut f = tokio::fs::File::create(&src).await.unwrap();
        for i in 0..(SIZE as usize / BLOCK) {
            let b = bytes(i as u64 + 11, BLOCK);
            want.update(&b);
            f.write_all(&b).await.unwrap();
        }
        f.flush().await.unwrap();
    }
    let want = hex::encode(want.finalize());
    let mut alice = DigestUser::new("alice@ims.lab", "alice-secret");
    assert_eq!(
        request(&lab, &mut alice, "POST", "/", "", b"").await.status,
        204
    );

    // The upload, cut after half the file: the connection is dropped mid-body.
    let head_part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"tid\"\r\n\r\nbig-1\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let total = head_part.len() as u64 + SIZE + tail.len() as u64;
    let t0 = std::time::Instant::now();
    {
        let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\n{}{}Content-Length: {total}\r\n\r\n",
            alice.authorization("POST", "/"),
            multipart_header()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(head_part.as_bytes()).await.unwrap();
        let mut f = tokio::fs::File::open(&src).await.unwrap();
        let mut buf = vec![0u8; BLOCK];
        for _ in 0..(SIZE as usize / BLOCK / 2) {
            f.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        }
        s.flush().await.unwrap();
        // Dropped here: the server sees the body end early.
    }
    // Resume: ask what arrived, PUT the rest (again while the cut upload is still being
    // wound up: 409).
    let mut done = None;
    for _ in 0..100 {
        let r = request(
            &lab,
            &mut alice,
            "GET",
            "/?tid=big-1&get_upload_info",
            "",
            b"",
        )
        .await;
        if r.status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let ri = ResumeInfo::parse(&r.body).unwrap();
        let from = ri.next_byte();
        // What arrived so far (the cut upload may still be winding up: then the PUT gets 409
        // and the client asks again).
        assert!(from > 0 && from <= SIZE / 2, "{from}");
        let uri = path_of(&ri.url);
        assert_eq!(uri, "/upload/big-1");
        let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
        let head = format!(
            "PUT {uri} HTTP/1.1\r\nHost: x\r\n{}Content-Range: bytes {from}-{}/{SIZE}\r\nContent-Length: {}\r\n\r\n",
            alice.authorization("PUT", &uri),
            SIZE - 1,
            SIZE - from
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut f = tokio::fs::File::open(&src).await.unwrap();
        f.seek(std::io::SeekFrom::Start(from)).await.unwrap();
        let mut buf = vec![0u8; BLOCK];
        let mut sent = 0;
        let mut early = None;
        while sent < SIZE - from {
            let n = f.read(&mut buf).await.unwrap();
            if s.write_all(&buf[..n]).await.is_err() {
                early = Some(read_response(&mut s, 4096).await);
                break;
            }
            sent += n as u64;
        }
        let r = match early {
            Some(r) => r,
            None => read_response(&mut s, 1 << 16).await,
        };
        if r.status == 409 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        done = Some(FileInfo::parse(&r.body).unwrap());
        break;
    }
    let info = done.expect("the resumed upload completes");
    assert_eq!(info.file.size, SIZE);
    let id = info.file.url.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        lab.content.record(&id).unwrap().sha256.as_deref(),
        Some(want.as_str())
    );
    // The download, hashed as it streams.
    let uri = path_of(&info.file.url);
    let mut s = TcpStream::connect(lab.addrs.content).await.unwrap();
    let head = format!(
        "GET {uri} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        alice.authorization("GET", &uri)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let r = read_response(&mut s, 0).await;
    assert_eq!((r.status, r.len), (200, SIZE));
    assert_eq!(
        r.sha256, want,
        "the same SHA-256 after the cut and the resume"
    );
    assert_eq!(r.header("etag"), Some(format!("\"{want}\"").as_str()));
    eprintln!("100 MB: cut, resumed and downloaded in {:?}", t0.elapsed());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_removes_the_file_and_a_later_download_gets_404() {
    let dir = tempfile::tempdir().unwrap();
    let lab = content_lab(dir.path(), "[content]\nvalidity_secs = 2\nsweep_secs = 1\n").await;
    let mut alice = DigestUser::new("alice@ims.lab", "alice-secret");
    let file = bytes(3, 10_000);
    let body = multipart("tid-exp", Some(b"thumb"), "x.txt", "text/plain", &file);
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 200);
    let info = FileInfo::parse(&r.body).unwrap();
    let id = info.file.url.rsplit('/').next().unwrap().to_string();
    let uri = path_of(&info.file.url);
    let r = request(&lab, &mut alice, "GET", &uri, "", b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, file.as_slice()));
    let path = lab.content.path_of(&id, false);
    let thumb = lab.content.path_of(&id, true);
    assert!(path.exists() && thumb.exists());
    for _ in 0..100 {
        if !path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !path.exists() && !thumb.exists(),
        "the sweep deleted the file and its thumbnail"
    );
    assert_eq!(
        lab.content.record(&id).map(|r| r.state),
        Some(rcslab::content::FileState::Expired)
    );
    let r = request(&lab, &mut alice, "GET", &uri, "", b"").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = request(
        &lab,
        &mut alice,
        "GET",
        &format!("{uri}/thumbnail"),
        "",
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    // Someone who never had it still gets 403.
    let mut bob = DigestUser::new("bob@ims.lab", "bob-secret");
    assert_eq!(
        request(&lab, &mut bob, "GET", &uri, "", b"").await.status,
        403
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_the_multipart_upload_and_the_answers() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is missing: run scripts/install-peers.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = content_lab(dir.path(), "").await;
    let mut alice = DigestUser::new("alice@ims.lab", "alice-secret");
    let body = multipart(
        "tid-wire",
        Some(b"\xff\xd8thumb"),
        "note.txt",
        "text/plain",
        b"hello, wire\n",
    );
    let r = request(&lab, &mut alice, "POST", "/", &multipart_header(), &body).await;
    assert_eq!(r.status, 200);
    let info = FileInfo::parse(&r.body).unwrap();
    let r = request(&lab, &mut alice, "GET", &path_of(&info.file.url), "", b"").await;
    assert_eq!(r.body, b"hello, wire\n");
    let pcap = dir.path().join("ft.pcap");
    std::fs::write(&pcap, lab.export("pcap").unwrap()).unwrap();
    let run = crate::tshark_on(&lab, &pcap);
    let methods = run(&[
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.method",
    ]);
    assert!(
        methods.lines().filter(|l| *l == "POST").count() >= 2,
        "{methods}"
    );
    assert!(methods.lines().any(|l| l == "GET"), "{methods}");
    let parts = run(&[
        "-Y",
        "mime_multipart",
        "-T",
        "fields",
        "-e",
        "mime_multipart.header.content-disposition",
    ]);
    for want in ["name=\"tid\"", "name=\"Thumbnail\"", "name=\"File\""] {
        assert!(parts.contains(want), "{want} in {parts}");
    }
    let types = run(&[
        "-Y",
        "http.response",
        "-T",
        "fields",
        "-e",
        "http.content_type",
    ]);
    assert!(
        types
            .lines()
            .any(|l| l == "application/vnd.gsma.rcs-ft-http+xml"),
        "{types}"
    );
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(bad.trim().is_empty(), "malformed frames: {bad}");
    lab.shutdown().await;
}

/// `rcslab run content`: the content server alone (here with `[content] auth = false`: the
/// empty POST gets 204 and anyone may up- and download).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_content_alone_without_auth() {
    use rcslab::lab::run::{start, Node};
    let dir = tempfile::tempdir().unwrap();
    let cfg = rcslab::LabConfig::from_toml_str("[content]\nauth = false\n")
        .unwrap()
        .with_ephemeral_ports();
    let node: Node = "content".parse().unwrap();
    let running = start(node, &cfg, dir.path(), Default::default())
        .await
        .expect("CS starts alone");
    let (name, addr, _) = running.listening[0];
    assert_eq!(name, "CS");
    assert!(dir.path().join("content/grants.token").exists());
    let talk = |req: Vec<u8>| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&req).await.unwrap();
        read_response(&mut s, 1 << 16).await
    };
    let r = talk(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
    assert_eq!(r.status, 204);
    let body = multipart("t-run", None, "a.txt", "text/plain", b"alone");
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{}Content-Length: {}\r\n\r\n",
        multipart_header(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = talk(req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info = FileInfo::parse(&r.body).unwrap();
    assert!(info.file.url.starts_with(&format!("http://{addr}/files/")));
    let get = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        path_of(&info.file.url)
    );
    let r = talk(get.into_bytes()).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"alone"[..]));
    running.shutdown().await;
}
