//! Limits of the HTTP listeners (issue 12): slow and idle connections are closed, a
//! listener past its connection cap answers 503 and recovers, WebRSF logins leave no
//! descriptor behind, tokens expire, and `GET /subscribers` pages through the whole base.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::Method;
use rcslab::Lab;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::lab_with;
use crate::web::{call, login, Channel};

/// Reads until the server closes the connection (EOF or reset); what it sent, and when.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the server kept the connection open for {within:?}"
    );
    (got, Instant::now())
}

/// One raw request; the raw answer until the server closes (we ask it to).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request.as_bytes()).await.expect("writes");
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&got).to_string()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A header timeout of 300 ms and a body timeout of 500 ms, on both listeners: a silent
/// connection, a head sent a byte at a time (slowloris), an idle keep-alive connection and a
/// body shorter than its Content-Length are all cut, the last with 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        "[http]\nheader_timeout_ms = 300\nbody_timeout_ms = 500\nidle_timeout_ms = 2000\n\
         [webrsf]\nkeepalive_secs = 1\n",
    )
    .await;
    for addr in [lab.addrs.webrsf, lab.addrs.admin] {
        // Silent.
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let (_, t) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        let took = t - t0;
        assert!(
            took >= Duration::from_millis(250),
            "closed too early: {took:?}"
        );

        // Slowloris: a byte every 100 ms never completes a head in time.
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let head =
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut closed = false;
        for b in head {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if t0.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        if !closed {
            let (got, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
            assert!(
                !String::from_utf8_lossy(&got).contains(" 200 "),
                "a slowloris head was served"
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "slowloris held the connection for {:?}",
            t0.elapsed()
        );

        // Keep-alive: served once, then cut when idle.
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let t0 = Instant::now();
        let (got, t) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        let got = String::from_utf8_lossy(&got).to_string();
        assert!(got.starts_with("HTTP/1.1 "), "{got}");
        assert!(t - t0 >= Duration::from_millis(250), "{:?}", t - t0);

        // A body that never arrives whole: 408 with a JSON body.
        let (path, auth) = if addr == lab.addrs.admin {
            (
                "/subscribers",
                format!("Authorization: {}\r\n", lab.admin.bearer()),
            )
        } else {
            ("/webrsf/v1/alice/Session", String::new())
        };
        let t0 = Instant::now();
        let got = raw(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"password\""
            ),
        )
        .await;
        assert_eq!(status_of(&got), 408, "{got}");
        assert!(got.contains("\"error\""), "{got}");
        assert!(t0.elapsed() < Duration::from_secs(3));
    }
}

/// Four connections held open fill a listener capped at four: a fifth gets 503 with a JSON
/// body and is closed; once the four go, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[http]\nmax_connections = 4\n").await;
    for (addr, path) in [(lab.addrs.admin, "/health"), (lab.addrs.webrsf, "/")] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(addr).await.expect("connects"));
        }
        // The accept loop takes them in order; give it a moment to count the four.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = raw(addr, &request).await;
        assert_eq!(status_of(&got), 503, "{addr}: {got}");
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{got}"
        );
        let body = got.split("\r\n\r\n").nth(1).unwrap_or("");
        let v: Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(v["error"], "service_unavailable");
        // The held connections still work.
        held[0].write_all(request.as_bytes()).await.expect("writes");
        let (got, _) = read_until_closed(&mut held[0], Duration::from_secs(5)).await;
        assert_eq!(status_of(&String::from_utf8_lossy(&got)), 200);
        drop(held);
        let mut served = false;
        for _ in 0..50 {
            if status_of(&raw(addr, &request).await) == 200 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "service resumes once the held connections close");
    }
}

/// Descriptors of this process: what a leak shows in.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// UDP sockets and listening TCP sockets bound to `ip` (a loopback address only this test's
/// lab uses, so tests running alongside do not count).
fn sockets_on(ip: [u8; 4]) -> usize {
    let hex = format!("{:02X}{:02X}{:02X}{:02X}:", ip[3], ip[2], ip[1], ip[0]);
    let count = |file: &str, listening_only: bool| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].starts_with(&hex) && (!listening_only || f[3] == "0A")
            })
            .count()
    };
    count("/proc/net/udp", false) + count("/proc/net/tcp", true)
}

/// 200 failed logins and 200 login + logout leave the process's descriptors where they were:
/// each login used to keep its web UE's UDP socket and TCP listener for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_descriptor_leak_after_logins() {
    const IP: [u8; 4] = [127, 0, 0, 47];
    let dir = tempfile::tempdir().unwrap();
    let nodes = [
        "pcscf",
        "icscf",
        "scscf",
        "hss",
        "admin",
        "oim",
        "tim",
        "oim_msrp",
        "tim_msrp",
        "webrsf",
        "ps",
        "conf",
        "conf_msrp",
        "ipsmgw",
        "smsc",
        "ums",
    ]
    .iter()
    .map(|n| format!("{n} = \"127.0.0.47:0\"\n"))
    .collect::<String>();
    // Hundreds of failed logins on purpose: the rate limit (429) is not what this counts.
    let lab = lab_with(
        dir.path(),
        &format!("[nodes]\n{nodes}[webrsf]\nlogin_max_failures = 100000\n[auth]\ndefault_scheme = \"digest\"\nmax_failures = 100000\nmax_failures_per_address = 100000\n"),
    )
    .await;
    assert_eq!(lab.addrs.webrsf.ip().to_string(), "127.0.0.47");
    let w = lab.addrs.webrsf;
    // One of each first, so that what opens lazily (the P-CSCF's and S-CSCF's connections,
    // sled's files) is open before counting.
    fail_login(&lab).await;
    login_logout(&lab).await;
    let (sockets0, fds0) = (sockets_on(IP), open_fds());

    let mut tasks = Vec::new();
    for i in 0..4 {
        let lab_w = w;
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let (s, v) = call(
                    lab_w,
                    Method::POST,
                    "/webrsf/v1/bob/Session",
                    None,
                    Some(json!({"password": format!("wrong-{i}")})),
                )
                .await;
                assert_eq!(s, 401, "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("failed logins");
    }
    for _ in 0..200 {
        login_logout(&lab).await;
    }
    assert_eq!(lab.webrsf.user_count(), 0);
    assert_eq!(lab.webrsf.token_count(), 0);
    // The UEs' sockets close when their tasks see the signal: give them a moment.
    let mut sockets = sockets_on(IP);
    for _ in 0..100 {
        if sockets <= sockets0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sockets = sockets_on(IP);
    }
    assert!(
        sockets <= sockets0,
        "sockets on 127.0.0.47: {sockets0} before, {sockets} after 400 logins"
    );
    // The whole process: other tests of this binary run alongside and open and close
    // descriptors of their own, so allow some noise; the leak was 2 per login (800 here).
    let fds = open_fds();
    assert!(
        fds <= fds0 + 40,
        "descriptors: {fds0} before, {fds} after 400 logins"
    );
}

async fn fail_login(lab: &Lab) {
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::POST,
        "/webrsf/v1/bob/Session",
        None,
        Some(json!({"password": "wrong"})),
    )
    .await;
    assert_eq!(s, 401, "{v}");
}

async fn login_logout(lab: &Lab) {
    // A loaded machine can make the P-CSCF's overload control answer 503, which the gateway
    // passes on as 503 (try again), not as a wrong password: a browser retries, so does this.
    let mut token = None;
    for _ in 0..50 {
        let (s, v) = call(
            lab.addrs.webrsf,
            Method::POST,
            "/webrsf/v1/alice/Session",
            None,
            Some(json!({"password": "alice-secret"})),
        )
        .await;
        if s == 503 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(s, 200, "login of alice: {v}");
        token = v["token"].as_str().map(str::to_string);
        break;
    }
    let token = token.expect("alice logs in within 50 tries");
    let (s, v) = call(
        lab.addrs.webrsf,
        Method::DELETE,
        "/webrsf/v1/alice/Session",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// A token unused for `token_idle_secs` (and no channel open) expires and its user is logged
/// out; one in use, or with a channel open, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_when_unused() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "[webrsf]\ntoken_idle_secs = 1\n").await;
    let w = lab.addrs.webrsf;
    let alice = login(&lab, "alice", "alice-secret").await;
    let bob = login(&lab, "bob", "bob-secret").await;
    let channel = Channel::open(&lab, "bob", &bob, 0).await;
    assert_eq!(channel.status, 200);
    // In use every 300 ms for 2 s: still valid.
    for _ in 0..7 {
        let (s, v) = call(w, Method::GET, "/webrsf/v1/alice/Chat", Some(&alice), None).await;
        assert_eq!(s, 200, "{v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Unused for 2.5 s: gone, and alice is logged out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, v) = call(w, Method::GET, "/webrsf/v1/alice/Chat", Some(&alice), None).await;
    assert_eq!(s, 401, "{v}");
    crate::eventually("alice's web UE de-registered", || {
        lab.pcscf.bindings_of("sip:alice@ims.lab").is_empty()
    })
    .await;
    // Bob's channel kept him logged in.
    let (s, v) = call(w, Method::GET, "/webrsf/v1/bob/Chat", Some(&bob), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(lab.webrsf.user_count(), 1);
    // Logging in again works and gives a new token.
    let again = login(&lab, "alice", "alice-secret").await;
    assert_ne!(again, alice);
    drop(channel);
}

/// `GET /subscribers` pages through 254 subscribers (250, and the default lab's alice, bob,
/// carol and the UMS's chatbot): each exactly once, in IMPI order;
/// the default page is 100; a bad limit is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_pagination_walks_every_subscriber_once() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let a = lab.addrs.admin;
    let specs: Vec<Value> = (0..250)
        .map(|i| json!({"impu": [format!("sip:p{i:03}@ims.lab")], "password": "pw"}))
        .collect();
    let (s, body) = lab
        .admin
        .call(
            Method::POST,
            "/subscribers",
            Some(Value::Array(specs).to_string()),
        )
        .await
        .expect("admin answers");
    assert_eq!(s, 201, "{body}");

    let api = &lab.admin;
    let get = |path: String| async move {
        let (s, b) = api
            .call(Method::GET, &path, None)
            .await
            .expect("admin answers");
        (s, serde_json::from_str::<Value>(&b).unwrap_or(Value::Null))
    };
    let (s, v) = get("/subscribers".into()).await;
    assert_eq!(s, 200);
    // The answer is still the array of subscribers it always was, each with its fields.
    assert_eq!(v.as_array().map(Vec::len), Some(100));
    assert!(v[0]["impi"].is_string() && v[0]["impus"].is_array());
    // The next page's URL is in a Link header.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(a).await.unwrap();
        c.write_all(
            format!(
                "GET /subscribers?limit=7 HTTP/1.1\r\nHost: {a}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                lab.admin.bearer()
            )
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        assert!(
            text.contains("link: </subscribers?limit=7&after=") && text.contains("rel=\"next\""),
            "{}",
            text.lines().take(8).collect::<Vec<_>>().join("\n")
        );
    }

    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let (s, v) = get(format!(
            "/subscribers?limit=7&after={}",
            rcslab::hss::admin::percent_encode(&after)
        ))
        .await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        let page = v.as_array().expect("a page");
        assert!(page.len() <= 7);
        seen.extend(
            page.iter()
                .map(|s| s["impi"].as_str().unwrap_or("").to_string()),
        );
        if page.len() < 7 {
            break;
        }
        after = seen.last().cloned().unwrap_or_default();
        assert!(pages < 100, "the walk ends");
    }
    assert_eq!(seen.len(), 254, "every subscriber");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 254, "each once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in IMPI order");
    assert_eq!(pages, 254_usize.div_ceil(7));

    let all = lab.admin.list_all().await.expect("list_all");
    assert_eq!(all.len(), 254);
    for bad in ["0", "1001", "x"] {
        let (s, v) = get(format!("/subscribers?limit={bad}")).await;
        assert_eq!(s, 400, "{v}");
    }
}
