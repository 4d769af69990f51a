//! The media bridge's SDP reader (src/media/sdp.rs, RFC 8866): any input gives an audio section
//! or an error, never a panic; what the bridge writes for the IMS side from a parsed section
//! parses back to the same port, address and G.711 codecs. Plain RTP (src/media/rtp.rs) on the
//! same bytes: a parsed packet written back minimally reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::media::rtp::{self, PlainPacket};
use rcslab::media::sdp;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sdp::parse_webrtc(&text);
    if let Ok(a) = sdp::parse_plain(&text) {
        let ip = a.addr.expect("parse_plain guarantees c=");
        let codecs = a.g711();
        if !codecs.is_empty() {
            let out = sdp::plain_sdp(ip, a.port, 1, &codecs);
            let back = sdp::parse_plain(&out)
                .unwrap_or_else(|e| panic!("our own SDP does not parse: {e}\n{out}"));
            assert_eq!((back.port, back.addr), (a.port, a.addr), "SDP round trip");
            assert_eq!(back.g711(), codecs, "codecs round trip");
        }
    }
    if let PlainPacket::Rtp(f, payload) = rtp::read(data) {
        let mut out = Vec::new();
        rtp::write(&f, payload, &mut out);
        assert_eq!(rtp::read(&out), PlainPacket::Rtp(f, payload), "RTP round trip");
    }
});
