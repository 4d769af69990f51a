//! Tests of the Diameter connection over real sockets: requests both ways with watchdogs,
//! TOO_BUSY past the requests in hand, CEA 5010 and a garbage peer closed.

use super::*;

struct Echo;
impl DiameterHandler for Echo {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        Box::pin(async move {
            let mut a = Message::answer_to(&request);
            a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
            if let Some(u) = request.avp(AVP_USER_NAME, None) {
                a.push(u.clone());
            }
            a
        })
    }
}

fn local(name: &str) -> LocalPeer {
    LocalPeer {
        origin_host: name.into(),
        origin_realm: "ims.lab".into(),
        host_ip: "127.0.0.1".parse().unwrap(),
        product_name: "test".into(),
        watchdog_interval: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
    }
}

async fn server() -> (SocketAddr, PeerTable, watch::Sender<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let table = PeerTable::default();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(serve(
        l,
        local("hss.ims.lab"),
        Arc::new(Echo),
        table.clone(),
        Trace::disabled(),
        rx,
    ));
    (addr, table, tx)
}

#[tokio::test]
async fn requests_both_ways_concurrently_with_watchdogs() {
    let (addr, table, _stop) = server().await;
    let trace = Trace::enabled();
    let client = Peer::connect(addr, local("scscf.ims.lab"), Arc::new(Echo), trace.clone())
        .await
        .unwrap();
    assert_eq!(client.remote().origin_host, "hss.ims.lab");
    let mut handles = Vec::new();
    for n in 0..200 {
        let c = client.clone();
        handles.push(tokio::spawn(async move {
            let mut r = Message::request(300, APP_ID_CX);
            r.push(Avp::utf8(AVP_SESSION_ID, None, true, &format!("s;{n}")));
            r.push(Avp::utf8(AVP_USER_NAME, None, true, &format!("u{n}")));
            let a = c.request(r).await.unwrap();
            assert_eq!(
                a.avp(AVP_USER_NAME, None).unwrap().as_str().unwrap(),
                format!("u{n}")
            );
            assert_eq!(a.session_id().unwrap(), format!("s;{n}"));
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // The server can use the connection the client opened.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let back = table
        .get("SCSCF.ims.lab")
        .expect("registered by Origin-Host");
    let a = back
        .request(Message::request(304, APP_ID_CX))
        .await
        .unwrap();
    assert_eq!(a.result_code(), Some(2001));
    // Watchdogs flow.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let names: Vec<String> = trace.events().iter().map(|e| e.summary.clone()).collect();
    assert!(
        names.iter().any(|n| n == "DWR") && names.iter().any(|n| n == "DWA"),
        "{names:?}"
    );
    // Non-Cx application -> 3007.
    let a = client
        .request(Message::request(316, 16_777_251))
        .await
        .unwrap();
    assert_eq!(a.result_code(), Some(DIAMETER_APPLICATION_UNSUPPORTED));
    assert!(a.is_error());
    client.disconnect().await;
    assert!(!client.is_open());
    assert!(client
        .request(Message::request(300, APP_ID_CX))
        .await
        .is_err());
}

/// Holds every request until the gate opens.
struct Gate(Arc<tokio::sync::Semaphore>);
impl DiameterHandler for Gate {
    fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        let gate = self.0.clone();
        Box::pin(async move {
            let _open = gate.acquire().await;
            let mut a = Message::answer_to(&request);
            a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
            a
        })
    }
}

#[tokio::test]
async fn past_the_requests_in_hand_the_peer_hears_too_busy_at_once() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(serve(
        l,
        local("hss.ims.lab"),
        Arc::new(Gate(gate.clone())),
        PeerTable::default(),
        Trace::disabled(),
        rx,
    ));
    let client = Peer::connect(
        addr,
        local("scscf.ims.lab"),
        Arc::new(Echo),
        Trace::disabled(),
    )
    .await
    .unwrap();
    let (tx, mut answers) = mpsc::unbounded_channel();
    const EXTRA: usize = 10;
    for _ in 0..MAX_SERVING + EXTRA {
        let (c, tx) = (client.clone(), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(c.request(Message::request(300, APP_ID_CX)).await);
        });
    }
    // The ones beyond what the server takes in hand are answered while the rest wait.
    for _ in 0..EXTRA {
        let a = tokio::time::timeout(Duration::from_secs(1), answers.recv())
            .await
            .expect("TOO_BUSY at once")
            .unwrap()
            .unwrap();
        assert_eq!(a.result_code(), Some(DIAMETER_TOO_BUSY));
        assert!(a.is_error(), "a protocol error: the E bit");
    }
    gate.add_permits(MAX_SERVING);
    for _ in 0..MAX_SERVING {
        let a = answers.recv().await.unwrap().unwrap();
        assert_eq!(a.result_code(), Some(2001));
    }
}

#[tokio::test]
async fn cer_without_cx_gets_5010_and_garbage_is_closed() {
    let (addr, _t, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut cer = Message::request(CMD_CAPABILITIES_EXCHANGE, 0);
    cer.push(Avp::utf8(AVP_ORIGIN_HOST, None, true, "x"));
    cer.push(Avp::utf8(AVP_ORIGIN_REALM, None, true, "y"));
    cer.push(Avp::u32(AVP_AUTH_APPLICATION_ID, None, true, 4));
    s.write_all(&cer.encode()).await.unwrap();
    let (mut rd, _wr) = s.into_split();
    let mut buf = BytesMut::new();
    let (cea, _) = read_message(&mut rd, &mut buf).await.unwrap();
    assert_eq!(cea.result_code(), Some(DIAMETER_NO_COMMON_APPLICATION));
    let mut g = TcpStream::connect(addr).await.unwrap();
    g.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), g.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "garbage peer is closed");
}

#[tokio::test]
async fn the_server_closes_a_peer_that_stops_answering_its_dwrs() {
    let (addr, table, _stop) = server().await;
    // A raw client: CER, read the CEA, then read everything and answer nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut cer = Message::request(CMD_CAPABILITIES_EXCHANGE, 0);
    cer_avps(&local("mute.ims.lab"), &mut cer);
    s.write_all(&cer.encode()).await.unwrap();
    let (mut rd, _wr) = s.into_split();
    let mut buf = BytesMut::new();
    let (cea, _) = read_message(&mut rd, &mut buf).await.unwrap();
    assert_eq!(cea.result_code(), Some(DIAMETER_SUCCESS));
    let t0 = std::time::Instant::now();
    let mut dwrs = 0;
    // Tw = 100 ms: DWR at Tw, SUSPECT at 2 Tw, closed at 3 Tw.
    loop {
        match tokio::time::timeout(Duration::from_secs(3), read_message(&mut rd, &mut buf)).await {
            Ok(Ok((m, _))) => {
                assert_eq!(m.command_code, CMD_DEVICE_WATCHDOG);
                dwrs += 1;
            }
            Ok(Err(_)) => break,
            Err(_) => panic!("the server never closed the mute peer"),
        }
    }
    let took = t0.elapsed();
    assert_eq!(dwrs, 1, "one DWR, then SUSPECT, then DOWN");
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_secs(2),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(table.get("mute.ims.lab").is_none(), "gone from the table");
}
