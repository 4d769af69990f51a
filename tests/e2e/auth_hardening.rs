//! SIP authentication as a careful operator configures it (issue 13): the answers do not tell
//! who exists, a challenge is worth one guess, an answer is held to the challenge it names, and
//! failures block the identity and the address for a while.

use std::net::SocketAddr;
use std::time::Duration;

use rcslab::auth::digest::{ha1_hex, response_hex, Challenge, Credentials};
use rcslab::trace::Direction;
use tokio::net::UdpSocket;

use crate::lab_with;

const NO_IFC: &str = "default_ifc = []\n";

/// A change made to credentials before they are hashed.
type Tweak = Box<dyn FnOnce(&mut Credentials)>;

/// A bare SIP client on its own UDP socket: the REGISTERs an attacker's tool sends.
struct Raw {
    sock: UdpSocket,
    pcscf: SocketAddr,
    call_id: String,
    cseq: u32,
}

/// What came back: status, WWW-Authenticate, Warning, Retry-After.
#[derive(Debug, Clone, Default)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    warning: Option<String>,
    retry_after: Option<String>,
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

impl Raw {
    async fn new(pcscf: SocketAddr) -> Raw {
        Raw {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            pcscf,
            call_id: format!("raw-{}@127.0.0.1", rand::random::<u64>()),
            cseq: 0,
        }
    }

    /// REGISTER for `user` (IMPU sip:user@ims.lab), with `authorization` if given.
    async fn register(&mut self, user: &str, impi: &str, authorization: Option<String>) -> Answer {
        self.cseq += 1;
        let me = self.sock.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_else(|| {
                format!(
                    "Authorization: Digest username=\"{impi}\", realm=\"ims.lab\", nonce=\"\", uri=\"sip:ims.lab\", response=\"\"\r\n"
                )
            });
        let msg = format!(
            "REGISTER sip:ims.lab SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bK{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@ims.lab>;tag=t{}\r\nTo: <sip:{user}@ims.lab>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 600\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            rand::random::<u64>(),
            self.cseq,
            self.call_id,
            self.cseq
        );
        self.sock.send_to(msg.as_bytes(), self.pcscf).await.unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("an answer within 5 s")
                    .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let status: u16 = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if status < 200 {
                continue;
            }
            return Answer {
                status,
                challenge: header(&text, "WWW-Authenticate"),
                warning: header(&text, "Warning"),
                retry_after: header(&text, "Retry-After"),
            };
        }
    }
}

/// Credentials answering `ch` with `password`; `tweak` changes them before the hash is made.
fn answer(ch: &str, impi: &str, password: &str, tweak: impl FnOnce(&mut Credentials)) -> String {
    let ch = Challenge::parse(ch).expect("a Digest challenge");
    let mut c = Credentials {
        username: impi.into(),
        realm: ch.realm.clone(),
        nonce: ch.nonce.clone(),
        uri: "sip:ims.lab".into(),
        response: String::new(),
        algorithm: Some("MD5".into()),
        cnonce: Some("0a4f113b".into()),
        nc: Some("00000001".into()),
        qop: Some("auth".into()),
        ..Default::default()
    };
    tweak(&mut c);
    let ha1 = ha1_hex(impi, &c.realm, password.as_bytes());
    c.response = response_hex(
        &ha1,
        &c.nonce,
        c.nc.as_deref(),
        c.cnonce.as_deref(),
        c.qop.as_deref(),
        "REGISTER",
        &c.uri,
    );
    c.to_string()
}

/// The shape of a challenge: its parameter names and every value but the nonce.
fn shape(ch: &str) -> Vec<String> {
    let mut v: Vec<String> = ch
        .trim_start_matches("Digest")
        .split(',')
        .map(|p| p.trim().to_string())
        .map(|p| {
            if p.starts_with("nonce=") {
                "nonce=..".into()
            } else {
                p
            }
        })
        .collect();
    v.sort();
    v
}

/// Three rounds against one identity: challenge, wrong answer, wrong answer.
async fn three_rounds(lab: &rcslab::Lab, user: &str, impi: &str) -> Vec<Answer> {
    let mut c = Raw::new(lab.addrs.pcscf).await;
    let mut seen = Vec::new();
    let first = c.register(user, impi, None).await;
    seen.push(first.clone());
    let mut ch = first.challenge.clone().expect("a challenge");
    for _ in 0..2 {
        let a = c
            .register(user, impi, Some(answer(&ch, impi, "guess", |_| {})))
            .await;
        seen.push(a.clone());
        if let Some(next) = a.challenge {
            ch = next;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_get_the_answers_a_wrong_password_gets() {
    let dir = tempfile::tempdir().unwrap();
    // Six failures from one address: more than blocks it by default.
    let lab = lab_with(
        dir.path(),
        &format!("{NO_IFC}[auth]\ndefault_scheme = \"digest\"\nmax_failures_per_address = 100\n"),
    )
    .await;
    let known = three_rounds(&lab, "alice", "alice@ims.lab").await;
    let unknown = three_rounds(&lab, "mallory", "mallory@ims.lab").await;
    // bob's IMPI claiming carol's IMPU.
    let foreign = three_rounds(&lab, "carol", "bob@ims.lab").await;
    for (who, seen) in [
        ("known", &known),
        ("unknown", &unknown),
        ("foreign", &foreign),
    ] {
        let statuses: Vec<u16> = seen.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [401, 401, 403], "{who}: {seen:?}");
        assert_eq!(
            seen[2].warning.as_deref(),
            Some("399 scscf \"authentication failed\""),
            "{who}: the 403 says no more than that"
        );
        assert!(seen[2].retry_after.is_none(), "{who}");
        for i in 0..2 {
            assert_eq!(
                shape(seen[i].challenge.as_deref().unwrap()),
                shape(known[i].challenge.as_deref().unwrap()),
                "{who}: challenge {i} looks like alice's"
            );
        }
    }
    // The reason is in the trace's notes, for the teacher.
    let notes = String::from_utf8(lab.export("text").unwrap()).unwrap();
    assert!(
        notes
            .lines()
            .any(|l| l.contains("decoy") && l.contains("mallory")),
        "{notes}"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_one_guess_and_an_answer_is_held_to_its_challenge() {
    let dir = tempfile::tempdir().unwrap();
    // Blocks out of the way: this test counts rechallenges.
    let lab = lab_with(dir.path(), &format!("{NO_IFC}[auth]\ndefault_scheme = \"digest\"\nmax_failures = 100\nmax_failures_per_address = 100\n")).await;
    let impi = "alice@ims.lab";
    let mut c = Raw::new(lab.addrs.pcscf).await;
    let ch = c.register("alice", impi, None).await.challenge.unwrap();
    // A wrong guess spends the nonce: the right password on the same nonce is not even
    // looked at (a fresh, stale challenge comes back).
    let a = c
        .register("alice", impi, Some(answer(&ch, impi, "guess-1", |_| {})))
        .await;
    assert_eq!(a.status, 401);
    let again = c
        .register(
            "alice",
            impi,
            Some(answer(&ch, impi, "alice-secret", |x| {
                x.nc = Some("00000002".into())
            })),
        )
        .await;
    assert_eq!(
        again.status, 401,
        "the spent nonce does not let the right password in"
    );
    assert!(
        again
            .challenge
            .as_deref()
            .unwrap()
            .to_ascii_lowercase()
            .contains("stale=true"),
        "{again:?}"
    );

    // The right password, but answers that do not fit the challenge, each count as a failure.
    let tweaks: Vec<(&str, Tweak)> = vec![
        (
            "SHA-256 label on an MD5 challenge",
            Box::new(|x| x.algorithm = Some("SHA-256".into())),
        ),
        ("no qop (RFC 2069 downgrade)", Box::new(|x| x.qop = None)),
        (
            "another realm",
            Box::new(|x| x.realm = "other.example".into()),
        ),
        (
            "another digest-uri",
            Box::new(|x| x.uri = "sip:elsewhere.example".into()),
        ),
        (
            "nonce count zero",
            Box::new(|x| x.nc = Some("00000000".into())),
        ),
    ];
    let mut ch = again.challenge.unwrap();
    for (what, tweak) in tweaks {
        let mut fresh = Raw::new(lab.addrs.pcscf).await;
        let first = fresh.register("alice", impi, None).await;
        ch = first.challenge.unwrap_or(ch);
        let a = fresh
            .register(
                "alice",
                impi,
                Some(answer(&ch, impi, "alice-secret", tweak)),
            )
            .await;
        assert_ne!(a.status, 200, "{what} was accepted");
    }
    // The plain right answer still works.
    let mut ok = Raw::new(lab.addrs.pcscf).await;
    let ch = ok.register("alice", impi, None).await.challenge.unwrap();
    let a = ok
        .register(
            "alice",
            impi,
            Some(answer(&ch, impi, "alice-secret", |_| {})),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_block_the_identity_with_retry_after_then_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!(
            "{NO_IFC}[auth]\ndefault_scheme = \"digest\"\nmax_failures = 4\nmax_failures_per_address = 3\nblock_secs = 2\n"
        ),
    )
    .await;
    let impi = "alice@ims.lab";
    let mut seen = three_rounds(&lab, "alice", impi).await;
    seen.extend(three_rounds(&lab, "alice", impi).await);
    let statuses: Vec<u16> = seen.iter().map(|a| a.status).collect();
    // 401; F1 -> 401; F2 -> 403; 401; F3 -> 401; F4 -> blocked.
    assert_eq!(statuses, [401, 401, 403, 401, 401, 403]);
    assert_eq!(seen[5].retry_after.as_deref(), Some("2"), "{:?}", seen[5]);
    // While blocked, even the right password gets 403 + Retry-After, without a challenge or
    // a question to the HSS.
    lab.trace.clear();
    let mut c = Raw::new(lab.addrs.pcscf).await;
    let a = c.register("alice", impi, None).await;
    assert_eq!((a.status, a.retry_after.is_some()), (403, true), "{a:?}");
    assert!(
        !crate::flow(&lab).iter().any(|l| l.contains("MAR")),
        "no MAR while blocked: {:?}",
        crate::flow(&lab)
    );
    // One client address (on loopback: its IP and port) failing for several identities is
    // blocked as an address after max_failures_per_address (3 here) of them.
    let mut d = Raw::new(lab.addrs.pcscf).await;
    let mut statuses = Vec::new();
    for user in ["bob", "carol", "dave"] {
        let impi = format!("{user}@ims.lab");
        let first = d.register(user, &impi, None).await;
        let Some(ch) = first.challenge.clone() else {
            statuses.push((first.status, first.retry_after.is_some()));
            break;
        };
        let a = d
            .register(user, &impi, Some(answer(&ch, &impi, "x", |_| {})))
            .await;
        statuses.push((a.status, a.retry_after.is_some()));
    }
    // bob: 1st failure of the address (one more challenge), carol: 2nd, dave: 3rd -> blocked.
    assert_eq!(
        statuses,
        [(401, false), (401, false), (403, true)],
        "{statuses:?}"
    );
    let e = d.register("erin", "erin@ims.lab", None).await;
    assert_eq!(
        (e.status, e.retry_after.is_some()),
        (403, true),
        "the address waits: {e:?}"
    );
    // After the block, the right password works.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut ok = Raw::new(lab.addrs.pcscf).await;
    let ch = ok
        .register("alice", impi, None)
        .await
        .challenge
        .expect("challenged again");
    let a = ok
        .register(
            "alice",
            impi,
            Some(answer(&ch, impi, "alice-secret", |_| {})),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    // The trace's 403s were recorded as sent to the client.
    assert!(lab
        .trace
        .events()
        .iter()
        .any(|e| e.direction == Direction::Sent
            && String::from_utf8_lossy(&e.bytes).contains("Retry-After")));
    lab.shutdown().await;
}
