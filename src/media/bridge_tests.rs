//! The bridge's SDP rewriting on the Chrome and baresip fixtures, and its refusals. Media
//! relaying itself is tested end to end in `tests/e2e/media_bridge.rs`.

use std::time::Duration;

use super::super::sdp::tests::{baresip_answer, BARESIP_OFFER, CHROME_OFFER};
use super::*;

fn cfg() -> BridgeConfig {
    BridgeConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port_min: 0,
        port_max: 0,
        max_calls: 4,
        idle_timeout: Duration::from_secs(30),
    }
}

fn lines_with<'a>(sdp: &'a str, prefix: &str) -> Vec<&'a str> {
    sdp.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[tokio::test]
async fn chrome_offer_to_baresip_and_back() {
    let b = MediaBridge::new(cfg());
    let (id, ims_offer) = b.web_offer(CHROME_OFFER).await.expect("Chrome's offer");
    assert_eq!(b.calls(), 1);
    let st = b.stats(id).unwrap();
    let (web_addr, ims_addr) = (st.web_addr.unwrap(), st.ims_addr.unwrap());
    assert_eq!(st.codec, None);

    // The IMS side sees plain RTP on the bridge's IMS port, G.711 only, Chrome's order.
    let plain = sdp::parse_plain(&ims_offer).expect("plain offer");
    assert_eq!(plain.port, ims_addr.port());
    assert_eq!(plain.addr, Some(ims_addr.ip()));
    assert_eq!(plain.g711(), [(G711::Pcmu, 0), (G711::Pcma, 8)]);
    assert_eq!(plain.formats.len(), 2, "no opus/G722/CN/DTMF: {ims_offer}");
    for webrtc_only in [
        "ice",
        "fingerprint",
        "setup",
        "SAVPF",
        "candidate",
        "ssrc",
        "extmap",
    ] {
        assert!(
            !ims_offer.contains(webrtc_only),
            "{webrtc_only} in {ims_offer}"
        );
    }

    // baresip answers PCMA: the browser's answer carries PCMA alone, ICE-lite, passive DTLS,
    // the bridge's fingerprint and its host candidate on the web port.
    let answer = b
        .ims_answer(id, &baresip_answer(4000))
        .await
        .expect("answer");
    let web = sdp::parse_webrtc(&answer).expect("a WebRTC answer");
    assert!(web.ice_lite, "{answer}");
    assert_eq!(web.g711(), [(G711::Pcma, 8)]);
    assert_eq!(web.formats.len(), 1, "{answer}");
    assert_eq!(web.mid.as_deref(), Some("0"));
    assert_eq!(lines_with(&answer, "a=setup:"), ["a=setup:passive"]);
    assert_eq!(
        lines_with(&answer, "a=fingerprint:sha-256 ").len(),
        1,
        "{answer}"
    );
    assert_eq!(lines_with(&answer, "a=group:BUNDLE 0").len(), 1, "{answer}");
    assert!(answer.contains("a=rtcp-mux"), "{answer}");
    let cands = lines_with(&answer, "a=candidate:");
    assert_eq!(cands.len(), 1, "{answer}");
    let fields: Vec<&str> = cands[0].split_whitespace().collect();
    let (ip, port) = (web_addr.ip().to_string(), web_addr.port().to_string());
    assert_eq!(fields[2].to_ascii_lowercase(), "udp", "{}", cands[0]);
    assert_eq!(
        fields[4..8],
        [ip.as_str(), port.as_str(), "typ", "host"],
        "{}",
        cands[0]
    );
    let st = b.stats(id).unwrap();
    assert_eq!(st.codec, Some(G711::Pcma));
    assert_eq!(st.ims_peer, Some("127.0.0.1:4000".parse().unwrap()));
    assert!(!st.ims_latched && !st.web_connected);

    // A second answer is refused; the call goes on.
    let again = b.ims_answer(id, &baresip_answer(4000)).await.unwrap_err();
    assert!(matches!(again, BridgeError::WrongState { .. }), "{again}");
    b.close(id);
    assert_eq!(b.calls(), 0);
    assert!(b.stats(id).is_none());
}

#[tokio::test]
async fn baresip_offer_to_the_browser() {
    let b = MediaBridge::new(cfg());
    let (id, offer) = b.ims_offer(BARESIP_OFFER).await.expect("baresip's offer");
    let web_addr = b.stats(id).unwrap().web_addr.unwrap();
    let web = sdp::parse_webrtc(&offer).expect("a WebRTC offer");
    // The IMS offer's first G.711 codec only; ICE-lite, actpass, one host candidate.
    assert_eq!(web.g711(), [(G711::Pcmu, 0)]);
    assert_eq!(web.formats.len(), 1, "{offer}");
    assert!(web.ice_lite);
    assert_eq!(lines_with(&offer, "a=setup:"), ["a=setup:actpass"]);
    let cands = lines_with(&offer, "a=candidate:");
    assert_eq!(cands.len(), 1, "{offer}");
    assert!(
        cands[0].contains(&format!("{} {} typ host", web_addr.ip(), web_addr.port())),
        "{}",
        cands[0]
    );
    // An answer before the browser's is refused.
    let wrong = b.ims_answer(id, &baresip_answer(4000)).await.unwrap_err();
    assert!(matches!(wrong, BridgeError::WrongState { .. }), "{wrong}");
    // A browser answer without the offered codec is refused with the codecs it has.
    let opus_answer = CHROME_OFFER
        .replace("a=setup:actpass", "a=setup:active")
        .replace("111 63 9 0 8 13 110 126", "111");
    let err = b.web_answer(id, &opus_answer).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no common codec: the web side offers opus/48000"),
        "{err}"
    );
    b.close(id);
}

#[tokio::test]
async fn refusals_say_why() {
    let b = MediaBridge::new(cfg());
    let bad = b.web_offer("v=0\r\nm=audio x\r\n").await.unwrap_err();
    assert_eq!(
        bad.to_string(),
        "bad web SDP: malformed m= line: \"audio x\""
    );
    let plain_as_web = b.web_offer(BARESIP_OFFER).await.unwrap_err();
    assert!(
        plain_as_web
            .to_string()
            .starts_with("bad web SDP: audio transport"),
        "{plain_as_web}"
    );
    let web_as_plain = b.ims_offer(CHROME_OFFER).await.unwrap_err();
    assert!(
        web_as_plain.to_string().starts_with("bad IMS SDP"),
        "{web_as_plain}"
    );
    let g722 = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 9\r\n";
    let none = b.ims_offer(g722).await.unwrap_err();
    assert_eq!(
        none.to_string(),
        "no common codec: the IMS side offers G722/8000; the bridge relays only PCMU/PCMA \
         (G.711) and does not transcode"
    );
    let opus_only = CHROME_OFFER.replace("111 63 9 0 8 13 110 126", "111 63");
    assert!(matches!(
        b.web_offer(&opus_only).await,
        Err(BridgeError::NoCommonCodec { side: "web", .. })
    ));
    let ghost = LegId(999);
    assert_eq!(
        b.ims_answer(ghost, &baresip_answer(4000))
            .await
            .unwrap_err()
            .to_string(),
        "unknown media leg media-999 (never opened, closed or timed out)"
    );
    assert_eq!(b.calls(), 0, "no refusal leaves a call behind");

    // The IMS answer has none of the offered codecs: refused, the call waits for close().
    let pcmu_only = CHROME_OFFER.replace("111 63 9 0 8 13 110 126", "111 0");
    let (id, _) = b.web_offer(&pcmu_only).await.unwrap();
    let err = b.ims_answer(id, &baresip_answer(4000)).await.unwrap_err();
    assert!(
        matches!(err, BridgeError::NoCommonCodec { side: "IMS", .. }),
        "{err}"
    );
    assert_eq!(b.calls(), 1);
    b.close(id);
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn max_calls_and_the_port_range_are_bounds() {
    // Four ports: two calls' worth. Take a range nothing else in the tests uses.
    let base = 47_310;
    let b = MediaBridge::new(BridgeConfig {
        port_min: base,
        port_max: base + 3,
        max_calls: 3,
        ..cfg()
    });
    let (a, _) = b.ims_offer(BARESIP_OFFER).await.unwrap();
    let (c, _) = b.ims_offer(BARESIP_OFFER).await.unwrap();
    let mut used: Vec<u16> = [a, c]
        .iter()
        .flat_map(|id| {
            let s = b.stats(*id).unwrap();
            [s.web_addr.unwrap().port(), s.ims_addr.unwrap().port()]
        })
        .collect();
    used.sort();
    assert_eq!(used, [base, base + 1, base + 2, base + 3]);
    let err = b.ims_offer(BARESIP_OFFER).await.unwrap_err();
    assert!(matches!(err, BridgeError::NoPort { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("no free UDP port on 127.0.0.1 in {base}-{}", base + 3)
    );
    assert_eq!(b.calls(), 2);

    // Closing one gives its ports back (once its task has dropped the sockets).
    b.close(a);
    let mut reopened = None;
    for _ in 0..100 {
        match b.ims_offer(BARESIP_OFFER).await {
            Ok((id, _)) => {
                reopened = Some(id);
                break;
            }
            Err(BridgeError::NoPort { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let d = reopened.expect("the closed call's ports came back");
    // max_calls: three open calls is the limit even with ports to spare.
    let b2 = MediaBridge::new(BridgeConfig {
        max_calls: 1,
        ..cfg()
    });
    b2.ims_offer(BARESIP_OFFER).await.unwrap();
    let full = b2.ims_offer(BARESIP_OFFER).await.unwrap_err();
    assert_eq!(full.to_string(), "bridge full: 1 calls open (max_calls)");
    for id in [c, d] {
        b.close(id);
    }
}

#[tokio::test]
async fn dropping_the_bridge_ends_its_calls_and_frees_their_ports() {
    let b = MediaBridge::new(cfg());
    let (id, _) = b.web_offer(CHROME_OFFER).await.unwrap();
    let (id2, _) = b.ims_offer(BARESIP_OFFER).await.unwrap();
    let ports: Vec<u16> = [id, id2]
        .iter()
        .flat_map(|id| {
            let s = b.stats(*id).unwrap();
            [s.web_addr.unwrap().port(), s.ims_addr.unwrap().port()]
        })
        .collect();
    drop(b);
    for port in ports {
        let mut free = false;
        for _ in 0..200 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                free = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(free, "port {port} still bound after the bridge was dropped");
    }
}
