//! The CSCFs' Cx links survive the HSS going away (RFC 6733 §5.6 reconnect): a TCP proxy
//! between the CSCFs and the HSS is killed (its connections dropped, nothing listening) and
//! brought back; the HSS's Diameter side is restarted alone. Meanwhile a REGISTER gets a quick
//! 480 naming the dead peer, afterwards registrations work again within seconds and the HSS
//! still reaches the S-CSCF (RTR) over the new connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use rcslab::diameter::client::PeerState;
use rcslab::ue::{AuthMode, Ue, UeError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{eventually, lab_with, ue};

/// A TCP proxy the test can kill: `kill` drops every relayed connection and stops listening
/// (the CSCFs see their connection reset, then connection refused); `revive` listens again on
/// the same port.
struct CxProxy {
    addr: SocketAddr,
    upstream: watch::Sender<Option<SocketAddr>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CxProxy {
    async fn start() -> CxProxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = CxProxy {
            addr: l.local_addr().unwrap(),
            upstream: watch::channel(None).0,
            tasks: Arc::default(),
        };
        p.listen(l);
        p
    }

    fn listen(&self, l: TcpListener) {
        let (tasks, upstream) = (self.tasks.clone(), self.upstream.subscribe());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let mut up_addr = upstream.clone();
                let relay = tokio::spawn(async move {
                    // Until the test names the HSS, hold the connection.
                    let Ok(a) = up_addr.wait_for(Option::is_some).await.map(|a| a.unwrap()) else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(a).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                tasks.lock().unwrap().push(relay);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn set_upstream(&self, hss: SocketAddr) {
        self.upstream.send_replace(Some(hss));
    }

    /// Drops every connection (both ends see it closed) and stops listening.
    fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn revive(&self) {
        self.listen(TcpListener::bind(self.addr).await.expect("same port again"));
    }
}

async fn links_are(lab: &rcslab::Lab, state: PeerState) {
    eventually(&format!("both Cx links {state:?}"), || {
        lab.hss_links().iter().all(|(_, s)| *s == state)
    })
    .await;
}

/// A REGISTER while the HSS is away: a 480 from the I-CSCF (its UAR cannot go out), quickly,
/// with a Warning that names the HSS peer.
async fn register_gets_480_quickly(ue: &mut Ue, hss: &str) {
    let t = Instant::now();
    match ue.register(600).await {
        Err(UeError::Rejected(480, why)) => {
            eprintln!("480 after {:?}: {why}", t.elapsed());
            assert!(
                why.contains("HSS unreachable") && why.contains(hss),
                "the Warning names the dead peer: {why}"
            );
        }
        other => panic!("a 480 while the HSS is away, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "failed fast, not after a timeout: {:?}",
        t.elapsed()
    );
}

/// Registers `ue` again and again until it works; how long that took.
async fn register_until_ok(ue: &mut Ue, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        match ue.register(600).await {
            Ok(_) => {
                eprintln!("registered after {:?}", t.elapsed());
                return t.elapsed();
            }
            Err(e) if t.elapsed() < within => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

/// Deleting `user` at the HSS sends RTR to the S-CSCF, which drops the registration.
async fn rtr_reaches_the_scscf(lab: &rcslab::Lab, user: &str) {
    assert!(lab
        .scscf
        .registration(&format!("sip:{user}@ims.lab"))
        .is_some());
    let (status, body) = lab
        .admin
        .call(
            Method::DELETE,
            &format!("/subscribers/sip%3A{user}%40ims.lab"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    eventually("the RTR to drop the registration", || {
        lab.scscf
            .registration(&format!("sip:{user}@ims.lab"))
            .is_none()
    })
    .await;
}

#[tokio::test]
async fn a_killed_hss_connection_heals_and_registration_works_again_within_seconds() {
    let proxy = CxProxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(
        dir.path(),
        &format!("[diameter]\nhss_address = \"{}\"\n", proxy.addr),
    )
    .await;
    proxy.set_upstream(lab.addrs.hss);
    links_are(&lab, PeerState::IOpen).await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice
        .register(600)
        .await
        .expect("registered through the proxy");

    // The proxy dies: both connections drop, and nothing answers at the HSS address.
    proxy.kill();
    links_are(&lab, PeerState::Closed).await;
    register_gets_480_quickly(&mut bob, &proxy.addr.to_string()).await;

    // It comes back: the links reconnect (Tc, or at once on demand) and bob registers.
    proxy.revive().await;
    let took = register_until_ok(&mut bob, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "healed in {took:?}");
    links_are(&lab, PeerState::IOpen).await;
    // The HSS reaches the S-CSCF over its new connection (alice registered over the old one).
    rtr_reaches_the_scscf(&lab, "alice").await;
    lab.shutdown().await;
}

#[tokio::test]
async fn a_restarted_hss_is_reached_again_without_restarting_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let (_stop, shut) = watch::channel(false);
    let mut alice = ue(&lab, "alice", AuthMode::Digest, &shut).await;
    let mut bob = ue(&lab, "bob", AuthMode::Digest, &shut).await;
    alice.register(600).await.unwrap();

    // The HSS goes away for a while: a REGISTER meanwhile gets a quick 480.
    let restart = lab.restart_hss(Duration::from_millis(1500));
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        register_gets_480_quickly(&mut bob, &lab.addrs.hss.to_string()).await;
    };
    let (r, ()) = tokio::join!(restart, during);
    r.expect("the HSS listens again");
    let took = register_until_ok(&mut bob, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "healed in {took:?}");
    rtr_reaches_the_scscf(&lab, "alice").await;
    lab.shutdown().await;
}

/// RFC 6733 §5.3: the HSS takes only its configured peers. A peer claiming an Origin-Host the
/// lab does not know gets CEA 3010 (DIAMETER_UNKNOWN_PEER) and the connection is closed; the
/// lab's own S-CSCF identity from loopback is taken.
#[tokio::test]
async fn the_hss_refuses_an_unknown_diameter_peer() {
    use rcslab::diameter::peer::{BoxFuture, DiameterHandler, LocalPeer, Peer, PeerInfo};
    struct Nothing;
    impl DiameterHandler for Nothing {
        fn handle(
            &self,
            _from: PeerInfo,
            r: rcslab::diameter::codec::Message,
        ) -> BoxFuture<'static, rcslab::diameter::codec::Message> {
            Box::pin(async move { rcslab::diameter::codec::Message::answer_to(&r) })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(dir.path(), "").await;
    let local = |host: &str| LocalPeer {
        origin_host: host.into(),
        origin_realm: "ims.lab".into(),
        host_ip: "127.0.0.1".parse().unwrap(),
        product_name: "probe".into(),
        watchdog_interval: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
    };
    let refused = Peer::connect(
        lab.addrs.hss,
        local("hss-reader.evil.example"),
        Arc::new(Nothing),
        rcslab::trace::Trace::disabled(),
    )
    .await;
    match refused {
        Err(e) => assert!(e.to_string().contains("3010"), "{e}"),
        Ok(_) => panic!("an unknown peer was accepted"),
    }
    let ok = Peer::connect(
        lab.addrs.hss,
        local("scscf.ims.lab"),
        Arc::new(Nothing),
        rcslab::trace::Trace::disabled(),
    )
    .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    lab.shutdown().await;
}

/// `[[hss.peers]]` replaces the default list: a peer outside it is refused even with the lab's
/// own Origin-Host, and a bad address is a config error.
#[tokio::test]
async fn configured_hss_peers_replace_the_defaults() {
    let cfg = rcslab::LabConfig::from_toml_str(
        "[[hss.peers]]\norigin_host = \"scscf.ims.lab\"\naddress = \"nowhere\"\n",
    );
    assert!(cfg.is_err(), "a bad peer address is refused at load");
    let c = rcslab::LabConfig::from_toml_str(
        "[[hss.peers]]\norigin_host = \"scscf.kamailio.lab\"\naddress = \"127.0.0.3\"\n",
    )
    .unwrap();
    let p = c
        .hss
        .peer_policy("ims.lab", c.nodes.icscf, c.nodes.scscf)
        .unwrap();
    assert!(p.allows("scscf.kamailio.lab", "127.0.0.3".parse().unwrap()));
    assert!(!p.allows("scscf.ims.lab", "127.0.0.1".parse().unwrap()));
}
