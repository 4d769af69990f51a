//! The SDP the media bridge reads and writes (RFC 8866), socket-free and fuzzable: the audio
//! m-line of a plain IMS offer/answer (RTP/AVP, RFC 3551 static payload types), the audio
//! m-line of a WebRTC offer/answer (UDP/TLS/RTP/SAVPF with ICE and DTLS, RFC 8829 §5, RFC 8842),
//! the codec choice between them (only G.711 PCMU/PCMA pass through, RFC 3551 §4.5.14), and the
//! plain SDP the bridge hands to the IMS side.
//!
//! Only what the bridge needs is read: the first `m=audio` section, its connection address,
//! payload types, `a=rtpmap`, `a=mid`, and whether ICE credentials and a DTLS fingerprint are
//! present. The WebRTC SDP the browser sees is written by str0m, not here. Every parser returns
//! a [`SdpError`]; none panics on any input (see `fuzz/fuzz_targets/sdp_bridge.rs`).

use std::fmt;
use std::net::IpAddr;

/// Largest SDP body accepted (a Chrome audio+video offer is ~6 KB).
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Most payload types read from one m-line (RTP has 128).
const MAX_FORMATS: usize = 128;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body of {0} bytes is larger than {MAX_SDP_LEN}")]
    TooLarge(usize),
    #[error("SDP does not start with v=0")]
    NoVersion,
    #[error("no m=audio line with a port")]
    NoAudio,
    #[error("malformed m= line: {0:?}")]
    BadMedia(String),
    #[error("malformed c= line: {0:?}")]
    BadConnection(String),
    #[error("no c= line for the audio stream")]
    NoConnection,
    #[error("audio transport {0:?} where {1} was expected")]
    WrongTransport(String, &'static str),
    #[error("WebRTC SDP without {0}")]
    MissingWebRtc(&'static str),
}

/// The two codecs the bridge relays without transcoding (ITU-T G.711, RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// μ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl G711 {
    /// The RFC 3551 static payload type.
    pub fn static_pt(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The encoding name of `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    fn from_rtpmap(name: &str, clock: u32) -> Option<G711> {
        if clock != 8000 {
            return None;
        }
        if name.eq_ignore_ascii_case("PCMU") {
            Some(G711::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(G711::Pcma)
        } else {
            None
        }
    }
}

impl fmt::Display for G711 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One payload type of an m-line, with its `a=rtpmap` when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name and clock rate; for static types without rtpmap, the RFC 3551 one.
    pub encoding: Option<(String, u32)>,
}

impl Format {
    /// The G.711 codec this payload type carries, if any.
    pub fn g711(&self) -> Option<G711> {
        match &self.encoding {
            Some((name, clock)) => G711::from_rtpmap(name, *clock),
            None => None,
        }
    }
}

/// The first audio m-section of an SDP body, as the bridge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSection {
    /// `m=audio <port>`; never 0 (a rejected stream is [`SdpError::NoAudio`]).
    pub port: u16,
    /// The transport protocol, e.g. `RTP/AVP` or `UDP/TLS/RTP/SAVPF`.
    pub proto: String,
    /// The connection address (media-level `c=` over session-level), if any.
    pub addr: Option<IpAddr>,
    /// Payload types in m-line order (the sender's preference, RFC 3264 §5.1).
    pub formats: Vec<Format>,
    /// `a=mid`, if any.
    pub mid: Option<String>,
    /// `a=ice-ufrag` and `a=ice-pwd` at session or media level.
    pub ice: bool,
    /// `a=fingerprint` at session or media level.
    pub fingerprint: bool,
    /// `a=ice-lite` at session level.
    pub ice_lite: bool,
}

impl AudioSection {
    /// The G.711 codecs of the m-line, in its order, each with the payload type it uses there.
    pub fn g711(&self) -> Vec<(G711, u8)> {
        let mut out: Vec<(G711, u8)> = Vec::new();
        for f in &self.formats {
            if let Some(c) = f.g711() {
                if !out.iter().any(|(x, _)| *x == c) {
                    out.push((c, f.pt));
                }
            }
        }
        out
    }

    /// The payload type this m-line uses for `codec`.
    pub fn pt_of(&self, codec: G711) -> Option<u8> {
        self.g711()
            .into_iter()
            .find(|(c, _)| *c == codec)
            .map(|(_, pt)| pt)
    }

    /// The encoding names of the m-line, for error messages ("opus/48000, G722/8000").
    pub fn encodings(&self) -> String {
        let names: Vec<String> = self
            .formats
            .iter()
            .map(|f| match &f.encoding {
                Some((n, c)) => format!("{n}/{c}"),
                None => format!("pt {}", f.pt),
            })
            .collect();
        if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        }
    }
}

/// The RFC 3551 table 4 encoding of a static payload type the bridge may meet without rtpmap.
fn static_encoding(pt: u8) -> Option<(String, u32)> {
    let (name, clock) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some((name.to_string(), clock))
}

/// Parses `c=IN IP4 <addr>` / `c=IN IP6 <addr>` (RFC 8866 §5.7); a TTL or count suffix
/// (`/127`) is ignored.
fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let bad = || SdpError::BadConnection(value.chars().take(80).collect());
    let mut it = value.split_ascii_whitespace();
    if it.next() != Some("IN") {
        return Err(bad());
    }
    let family = it.next().ok_or_else(bad)?;
    let addr = it.next().ok_or_else(bad)?;
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(bad()),
    }
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]` (RFC 8866 §6.6).
fn parse_rtpmap(value: &str) -> Option<(u8, String, u32)> {
    let (pt, rest) = value.split_once(' ')?;
    let pt: u8 = pt.trim().parse().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_string();
    let clock: u32 = parts.next()?.trim().parse().ok()?;
    if name.is_empty() {
        return None;
    }
    Some((pt, name, clock))
}

/// Reads the first audio m-section with a non-zero port of `sdp`.
pub fn parse_audio(sdp: &str) -> Result<AudioSection, SdpError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge(sdp.len()));
    }
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next().map(str::trim) != Some("v=0") {
        return Err(SdpError::NoVersion);
    }
    let mut session_addr = None;
    let mut session_ice = (false, false);
    let mut session_fp = false;
    let mut ice_lite = false;
    // The audio section being read, and whether we are inside it, before it, or past it.
    let mut audio: Option<AudioSection> = None;
    let mut media_ice = (false, false);
    let mut in_audio = false;
    let mut seen_media = false;
    for line in lines {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "m" => {
                seen_media = true;
                if audio.is_some() {
                    // Past the audio section: nothing more to read.
                    break;
                }
                in_audio = false;
                let mut it = value.split_ascii_whitespace();
                let media = it.next().unwrap_or("");
                if media != "audio" {
                    continue;
                }
                let bad = || SdpError::BadMedia(value.chars().take(80).collect());
                let port = it.next().ok_or_else(bad)?;
                let port: u16 = port
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| bad())?;
                let proto = it.next().ok_or_else(bad)?.to_string();
                if port == 0 {
                    continue;
                }
                let mut formats = Vec::new();
                for f in it.take(MAX_FORMATS) {
                    let pt: u8 = f.parse().map_err(|_| bad())?;
                    if pt > 127 {
                        return Err(bad());
                    }
                    if !formats.iter().any(|x: &Format| x.pt == pt) {
                        formats.push(Format {
                            pt,
                            encoding: static_encoding(pt),
                        });
                    }
                }
                if formats.is_empty() {
                    return Err(bad());
                }
                audio = Some(AudioSection {
                    port,
                    proto,
                    addr: None,
                    formats,
                    mid: None,
                    ice: false,
                    fingerprint: false,
                    ice_lite: false,
                });
                in_audio = true;
            }
            "c" => {
                if !seen_media {
                    session_addr = Some(parse_connection(value)?);
                } else if let (true, Some(a)) = (in_audio, audio.as_mut()) {
                    a.addr = Some(parse_connection(value)?);
                }
            }
            "a" => {
                let (name, val) = value.split_once(':').unwrap_or((value, ""));
                if !seen_media {
                    match name {
                        "ice-ufrag" => session_ice.0 = true,
                        "ice-pwd" => session_ice.1 = true,
                        "fingerprint" => session_fp = true,
                        "ice-lite" => ice_lite = true,
                        _ => {}
                    }
                    continue;
                }
                let (true, Some(a)) = (in_audio, audio.as_mut()) else {
                    continue;
                };
                match name {
                    "rtpmap" => {
                        if let Some((pt, enc, clock)) = parse_rtpmap(val) {
                            if let Some(f) = a.formats.iter_mut().find(|f| f.pt == pt) {
                                f.encoding = Some((enc, clock));
                            }
                        }
                    }
                    "mid" => a.mid = Some(val.trim().chars().take(32).collect()),
                    "ice-ufrag" => media_ice.0 = true,
                    "ice-pwd" => media_ice.1 = true,
                    "fingerprint" => a.fingerprint = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut a = audio.ok_or(SdpError::NoAudio)?;
    if a.addr.is_none() {
        a.addr = session_addr;
    }
    a.ice = (session_ice.0 || media_ice.0) && (session_ice.1 || media_ice.1);
    a.fingerprint |= session_fp;
    a.ice_lite = ice_lite;
    Ok(a)
}

/// An audio offer as Chromium makes it (captured from Chromium 156 on loopback: Opus first,
/// G.711 among its codecs, ICE, DTLS fingerprint, BUNDLE, rtcp-mux): what a lab's scripted
/// page offers so that its call crosses the media bridge as a browser's would.
pub const CHROMIUM_OFFER: &str = include_str!("chromium_offer.sdp");

/// The IMS side's SDP: plain RTP (RTP/AVP), with a connection address.
pub fn parse_plain(sdp: &str) -> Result<AudioSection, SdpError> {
    let a = parse_audio(sdp)?;
    if !a.proto.eq_ignore_ascii_case("RTP/AVP") && !a.proto.eq_ignore_ascii_case("RTP/AVPF") {
        return Err(SdpError::WrongTransport(a.proto, "RTP/AVP"));
    }
    if a.addr.is_none() {
        return Err(SdpError::NoConnection);
    }
    Ok(a)
}

/// The browser's SDP: DTLS-SRTP (UDP/TLS/RTP/SAVPF) with ICE credentials and a fingerprint
/// (RFC 8827 §6.5, RFC 8839 §5.4).
pub fn parse_webrtc(sdp: &str) -> Result<AudioSection, SdpError> {
    let a = parse_audio(sdp)?;
    if !a.proto.eq_ignore_ascii_case("UDP/TLS/RTP/SAVPF")
        && !a.proto.eq_ignore_ascii_case("UDP/TLS/RTP/SAVP")
    {
        return Err(SdpError::WrongTransport(a.proto, "UDP/TLS/RTP/SAVPF"));
    }
    if !a.ice {
        return Err(SdpError::MissingWebRtc("a=ice-ufrag/a=ice-pwd"));
    }
    if !a.fingerprint {
        return Err(SdpError::MissingWebRtc("a=fingerprint"));
    }
    Ok(a)
}

/// The G.711 codecs both m-lines carry, in the offerer's order (RFC 3264 §6.1).
pub fn common_g711(offer: &AudioSection, answer: &AudioSection) -> Vec<G711> {
    let theirs = answer.g711();
    offer
        .g711()
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| theirs.iter().any(|(x, _)| x == c))
        .collect()
}

/// A plain RTP/AVP audio SDP for the IMS side: the bridge at `ip:port`, the `codecs` with the
/// payload types given (first one preferred), `sendrecv`; `session_id` goes in the o= line
/// (RFC 8866 §5.2).
pub fn plain_sdp(ip: IpAddr, port: u16, session_id: u64, codecs: &[(G711, u8)]) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(256);
    s.push_str("v=0\r\n");
    s.push_str(&format!(
        "o=rcslab-bridge {session_id} 1 IN {family} {ip}\r\n"
    ));
    s.push_str("s=-\r\n");
    s.push_str(&format!("c=IN {family} {ip}\r\n"));
    s.push_str("t=0 0\r\n");
    let pts: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
    s.push_str(&format!("m=audio {port} RTP/AVP {}\r\n", pts.join(" ")));
    for (c, pt) in codecs {
        s.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", c.name()));
    }
    s.push_str("a=ptime:20\r\n");
    s.push_str("a=sendrecv\r\n");
    s
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
pub(crate) mod tests;
