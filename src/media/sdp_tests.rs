//! Tests of the bridge's SDP reading and writing, on fixtures shaped like what Chrome 120+ and
//! baresip send.

use super::*;

/// An audio-only offer as Chrome 120+ produces it once ICE gathering is complete (checked
/// against Chromium 156 with `--use-fake-device-for-media-stream`; its host address here made
/// loopback): BUNDLE, UDP and TCP host candidates, trickle ICE options, sha-256 fingerprint,
/// actpass, Opus/RED/G722/PCMU/PCMA/CN/telephone-event, rtcp-mux, rtcp-xr, header extensions,
/// SSRC lines.
pub(crate) const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 8f9a4b2e-6c1d-4d7e-9f3a-2b5c8e1d0a47\r\n\
m=audio 51820 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 127.0.0.1\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 127.0.0.1 51820 typ host generation 0 network-id 1\r\n\
a=candidate:3757362031 1 udp 2122265343 fd00::2 32952 typ host generation 0 network-id 2\r\n\
a=candidate:2789819719 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active generation 0 network-id 1\r\n\
a=ice-ufrag:Yx8P\r\n\
a=ice-pwd:Vn6BqAVvM0wJ1sUhRnCOfiPK\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendrecv\r\n\
a=msid:8f9a4b2e-6c1d-4d7e-9f3a-2b5c8e1d0a47 5c0e7d3f-1a2b-4c3d-8e9f-0a1b2c3d4e5f\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtcp-xr:rcvr-rtt=all\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1718386010 cname:oLMnrKwL9dDTmb6G\r\n\
a=ssrc:1718386010 msid:8f9a4b2e-6c1d-4d7e-9f3a-2b5c8e1d0a47 5c0e7d3f-1a2b-4c3d-8e9f-0a1b2c3d4e5f\r\n";

/// A baresip offer (its default audio codecs narrowed to G.711 plus DTMF).
pub(crate) const BARESIP_OFFER: &str = "v=0\r\n\
o=- 1701788226 1701788226 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:2948575640 cname:sip:bob@ims.lab\r\n";

/// baresip's answer to an offer of PCMU and PCMA when it prefers PCMA.
pub(crate) fn baresip_answer(port: u16) -> String {
    format!(
        "v=0\r\n\
o=- 2938422211 2938422212 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio {port} RTP/AVP 8\r\n\
b=AS:96\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    )
}

#[test]
fn reads_chromes_audio_offer() {
    let a = parse_webrtc(CHROME_OFFER).expect("a Chrome offer parses");
    assert_eq!(a.port, 51820);
    assert_eq!(a.proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(a.addr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(a.mid.as_deref(), Some("0"));
    assert!(a.ice && a.fingerprint && !a.ice_lite);
    let pts: Vec<u8> = a.formats.iter().map(|f| f.pt).collect();
    assert_eq!(pts, [111, 63, 9, 0, 8, 13, 110, 126]);
    assert_eq!(a.formats[0].encoding, Some(("opus".into(), 48000)));
    assert_eq!(a.g711(), [(G711::Pcmu, 0), (G711::Pcma, 8)]);
    assert_eq!(a.pt_of(G711::Pcma), Some(8));
}

#[test]
fn reads_baresips_offer_and_answer() {
    let o = parse_plain(BARESIP_OFFER).expect("baresip offer parses");
    assert_eq!((o.port, o.proto.as_str()), (10000, "RTP/AVP"));
    assert_eq!(o.addr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(o.g711(), [(G711::Pcmu, 0), (G711::Pcma, 8)]);
    assert!(!o.ice && !o.fingerprint);
    let a = parse_plain(&baresip_answer(10002)).unwrap();
    assert_eq!(a.port, 10002);
    assert_eq!(a.g711(), [(G711::Pcma, 8)]);
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let sdp = "v=0\r\nc=IN IP4 10.0.0.7\r\nm=audio 4000 RTP/AVP 8 0\r\n";
    let a = parse_plain(sdp).unwrap();
    assert_eq!(a.g711(), [(G711::Pcma, 8), (G711::Pcmu, 0)]);
}

#[test]
fn dynamic_pt_names_g711_by_rtpmap_and_clock() {
    let sdp = "v=0\nc=IN IP4 10.0.0.7\nm=audio 4000 RTP/AVP 96 97\na=rtpmap:96 pcmu/8000\na=rtpmap:97 PCMA/16000\n";
    let a = parse_plain(sdp).unwrap();
    // PCMA at 16 kHz is not G.711.
    assert_eq!(a.g711(), [(G711::Pcmu, 96)]);
}

#[test]
fn media_level_connection_wins_and_second_m_line_is_ignored() {
    let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\n\
m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4002 RTP/AVP 8\r\nc=IN IP4 10.0.0.3\r\n";
    let a = parse_plain(sdp).unwrap();
    assert_eq!((a.port, a.addr), (4000, Some("10.0.0.2".parse().unwrap())));
    assert_eq!(a.g711(), [(G711::Pcmu, 0)]);
}

#[test]
fn a_rejected_audio_line_is_skipped() {
    let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 8\r\n";
    assert_eq!(parse_plain(sdp).unwrap().port, 4002);
    let only_rejected = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
    assert_eq!(parse_plain(only_rejected), Err(SdpError::NoAudio));
}

#[test]
fn ipv6_connection() {
    let sdp = "v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(parse_plain(sdp).unwrap().addr, Some("::1".parse().unwrap()));
    let mixed = "v=0\r\nc=IN IP4 ::1\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert!(matches!(
        parse_plain(mixed),
        Err(SdpError::BadConnection(_))
    ));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::NoVersion),
        ("hello", SdpError::NoVersion),
        ("v=0\r\n", SdpError::NoAudio),
        ("v=0\r\nm=video 4000 RTP/AVP 96\r\n", SdpError::NoAudio),
        ("v=0\r\nm=audio\r\n", SdpError::BadMedia("audio".into())),
        (
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            SdpError::BadMedia("audio x RTP/AVP 0".into()),
        ),
        (
            "v=0\r\nm=audio 4000 RTP/AVP\r\n",
            SdpError::BadMedia("audio 4000 RTP/AVP".into()),
        ),
        (
            "v=0\r\nm=audio 4000 RTP/AVP 0 200\r\n",
            SdpError::BadMedia("audio 4000 RTP/AVP 0 200".into()),
        ),
        (
            "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            SdpError::BadMedia("audio 99999 RTP/AVP 0".into()),
        ),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", SdpError::NoConnection),
        (
            "v=0\r\nc=IN IP4 nope\r\nm=audio 4000 RTP/AVP 0\r\n",
            SdpError::BadConnection("IN IP4 nope".into()),
        ),
        (
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 0\r\n",
            SdpError::WrongTransport("UDP/TLS/RTP/SAVPF".into(), "RTP/AVP"),
        ),
    ];
    for (sdp, want) in cases {
        assert_eq!(parse_plain(sdp).as_ref().err(), Some(want), "{sdp:?}");
    }
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_LEN));
    assert!(matches!(parse_plain(&huge), Err(SdpError::TooLarge(_))));
    // A plain offer is not WebRTC, and a WebRTC offer is not plain.
    assert_eq!(
        parse_webrtc(BARESIP_OFFER),
        Err(SdpError::WrongTransport(
            "RTP/AVP".into(),
            "UDP/TLS/RTP/SAVPF"
        ))
    );
    assert!(matches!(
        parse_plain(CHROME_OFFER),
        Err(SdpError::WrongTransport(..))
    ));
    let no_fp = CHROME_OFFER.replace("a=fingerprint:", "a=x-fingerprint:");
    assert_eq!(
        parse_webrtc(&no_fp),
        Err(SdpError::MissingWebRtc("a=fingerprint"))
    );
    let no_pwd = CHROME_OFFER.replace("a=ice-pwd:", "a=x-pwd:");
    assert_eq!(
        parse_webrtc(&no_pwd),
        Err(SdpError::MissingWebRtc("a=ice-ufrag/a=ice-pwd"))
    );
    // Arbitrary bytes, truncations and multi-byte characters at every cut never panic.
    let text = format!("{CHROME_OFFER}m=audio 1 RTP/AVP 0\r\na=rtpmap:0 ü/€\r\n");
    for cut in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
        let _ = parse_webrtc(&text[..cut]);
        let _ = parse_plain(&text[cut..]);
    }
}

#[test]
fn common_codec_follows_the_offerers_order() {
    let chrome = parse_webrtc(CHROME_OFFER).unwrap();
    let answer = parse_plain(&baresip_answer(4000)).unwrap();
    assert_eq!(common_g711(&chrome, &answer), [G711::Pcma]);
    let baresip = parse_plain(BARESIP_OFFER).unwrap();
    assert_eq!(common_g711(&chrome, &baresip), [G711::Pcmu, G711::Pcma]);
    let opus_only = CHROME_OFFER.replace(
        "m=audio 51820 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "m=audio 51820 UDP/TLS/RTP/SAVPF 111 63",
    );
    let opus_only = parse_webrtc(&opus_only).unwrap();
    assert!(opus_only.g711().is_empty());
    assert!(common_g711(&opus_only, &baresip).is_empty());
    assert_eq!(opus_only.encodings(), "opus/48000, red/48000");
}

#[test]
fn plain_sdp_is_what_baresip_reads() {
    let ip = "127.0.0.1".parse().unwrap();
    let s = plain_sdp(ip, 30000, 42, &[(G711::Pcmu, 0), (G711::Pcma, 8)]);
    assert_eq!(
        s,
        "v=0\r\no=rcslab-bridge 42 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=ptime:20\r\na=sendrecv\r\n"
    );
    // It reads back as what was written, with no WebRTC attribute in it.
    let back = parse_plain(&s).unwrap();
    assert_eq!((back.port, back.addr), (30000, Some(ip)));
    assert_eq!(back.g711(), [(G711::Pcmu, 0), (G711::Pcma, 8)]);
    assert!(!back.ice && !back.fingerprint && back.mid.is_none());
    for attr in [
        "ice-",
        "fingerprint",
        "setup",
        "rtcp-mux",
        "SAVP",
        "candidate",
    ] {
        assert!(!s.contains(attr), "{attr} in {s}");
    }
    let v6 = plain_sdp("::1".parse().unwrap(), 30000, 1, &[(G711::Pcma, 8)]);
    assert!(v6.contains("c=IN IP6 ::1\r\n"), "{v6}");
    assert_eq!(parse_plain(&v6).unwrap().g711(), [(G711::Pcma, 8)]);
}
