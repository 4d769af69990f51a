//! WebRSF logins (issue 13): one answer for every refusal, a rate limit with Retry-After, and
//! no cached password (a password changed on the HSS ends what was logged in with the old one).

use hyper::Method;
use serde_json::{json, Value};

use crate::lab_with;
use crate::web::{call, login};

/// The S-CSCF's own limits out of the way: these tests count the gateway's.
const WEB: &str =
    "[auth]\ndefault_scheme = \"digest\"\nmax_failures = 100\nmax_failures_per_address = 100\n";

async fn try_login(lab: &rcslab::Lab, user: &str, password: &str) -> (u16, Value) {
    call(
        lab.addrs.webrsf,
        Method::POST,
        &format!("/webrsf/v1/{user}/Session"),
        None,
        Some(json!({ "password": password })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_login_says_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), WEB).await;
    let (s1, wrong) = try_login(&lab, "carol", "not-it").await;
    let (s2, unknown) = try_login(&lab, "mallory", "whatever").await;
    assert_eq!((s1, s2), (401, 401), "{wrong} {unknown}");
    assert_eq!(
        wrong, unknown,
        "a known and an unknown user get the same body"
    );
    assert_eq!(wrong["detail"], "wrong user or password");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!("{WEB}[webrsf]\nlogin_max_failures = 3\nlogin_block_secs = 2\n"),
    )
    .await;
    for i in 0..2 {
        let (s, v) = try_login(&lab, "carol", &format!("guess{i}")).await;
        assert_eq!(s, 401, "{v}");
    }
    let (s, v) = try_login(&lab, "carol", "guess2").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (429, Some("too_many_attempts")),
        "{v}"
    );
    // Blocked: the right password too, without a registration attempt.
    let (s, _) = try_login(&lab, "carol", "carol-secret").await;
    assert_eq!(s, 429);
    let raw = crate::web::call_raw(
        lab.addrs.webrsf,
        Method::POST,
        "/webrsf/v1/carol/Session",
        None,
        Some(r#"{"password":"carol-secret"}"#.into()),
    )
    .await;
    assert_eq!(raw.0, 429);
    // Other users are not affected.
    login(&lab, "alice", "alice-secret").await;
    // After the block, the right password works.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    login(&lab, "carol", "carol-secret").await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_on_the_hss_ends_logins_with_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), WEB).await;
    let old_token = login(&lab, "carol", "carol-secret").await;
    // Logging in again asks the IMS core; the same password keeps the session (both tokens
    // work).
    let (s, v) = try_login(&lab, "carol", "carol-secret").await;
    assert_eq!(s, 200, "{v}");
    let second = v["token"].as_str().unwrap().to_string();
    for t in [&old_token, &second] {
        let (s, _) = call(
            lab.addrs.webrsf,
            Method::GET,
            "/webrsf/v1/carol/Chat",
            Some(t),
            None,
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, v) = lab
        .admin
        .call(
            Method::POST,
            "/subscribers",
            Some(r#"{"impu":["sip:carol@ims.lab"],"password":"carol-new"}"#.into()),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    // The RTR ended carol's registration; the S-CSCF told her gateway UE (reg event) and the
    // web session of the old password is over at once.
    let mut ended = false;
    for _ in 0..100 {
        let (s, _) = call(
            lab.addrs.webrsf,
            Method::GET,
            "/webrsf/v1/carol/Chat",
            Some(&old_token),
            None,
        )
        .await;
        if s == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ended, "the old session's token still works");
    // The old password no longer logs in (nothing cached in the gateway).
    let (s, v) = try_login(&lab, "carol", "carol-secret").await;
    assert_eq!(s, 401, "{v}");
    // The new one does, and the session of the old password is over.
    lab.trace.clear();
    let (s, v) = try_login(&lab, "carol", "carol-new").await;
    if s != 200 {
        eprintln!("{}", String::from_utf8_lossy(&lab.export("text").unwrap()));
    }
    assert_eq!(s, 200, "{v}");
    let new_token = v["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, old_token);
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/carol/Chat",
        Some(&old_token),
        None,
    )
    .await;
    assert_eq!(s, 401, "the old session's token is gone");
    let (s, _) = call(
        lab.addrs.webrsf,
        Method::GET,
        "/webrsf/v1/carol/Chat",
        Some(&new_token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    lab.shutdown().await;
}

/// A token ends at its stated lifetime; `PUT /Session` gives a new one and ends the old; a token
/// in the URL is refused; the browser's channels take a single-use ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_end_on_time_refresh_and_tickets_are_single_use() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!("{WEB}[webrsf]\ntoken_lifetime_secs = 2\n"),
    )
    .await;
    let w = lab.addrs.webrsf;
    let (s, v) = try_login(&lab, "carol", "carol-secret").await;
    assert_eq!((s, v["expires"].as_u64()), (200, Some(2)), "{v}");
    let first = v["token"].as_str().unwrap().to_string();
    let get = |t: String| async move {
        call(w, Method::GET, "/webrsf/v1/carol/Chat", Some(&t), None)
            .await
            .0
    };
    assert_eq!(get(first.clone()).await, 200);
    // In the URL: refused, saying where it goes.
    let (s, v) = call(
        w,
        Method::GET,
        &format!("/webrsf/v1/carol/Chat?token={first}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        v["detail"].as_str().unwrap().contains("Authorization"),
        "{v}"
    );
    // Refresh: a new token, the old one ends.
    let (s, v) = call(
        w,
        Method::PUT,
        "/webrsf/v1/carol/Session",
        Some(&first),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let second = v["token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(get(first).await, 401);
    assert_eq!(get(second.clone()).await, 200);
    // A ticket opens one SSE channel, once.
    let ticket = crate::web::channel_ticket(&lab, "carol", &second).await;
    let sse = |t: String| async move {
        let stream = tokio::net::TcpStream::connect(w).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let c = tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(Method::GET)
            .uri(format!("/webrsf/v1/carol/Notification/SSE?ticket={t}"))
            .header("host", w.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let status = sender.send_request(req).await.unwrap().status().as_u16();
        c.abort();
        status
    };
    assert_eq!(sse(ticket.clone()).await, 200);
    assert_eq!(sse(ticket).await, 401, "a ticket works once");
    // The lifetime is the lifetime.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(get(second).await, 401, "expired on time");
    lab.shutdown().await;
}
