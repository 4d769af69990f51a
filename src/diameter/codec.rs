//! Diameter base protocol wire format (RFC 6733 §3 header, §4 AVPs): pure encode/decode,
//! stream framing, and the base constants. Never panics on input.
//!
//! ```text
//!  0                   1                   2                   3
//!  Version | Message Length (24)  | Flags (RPET) | Command Code (24)
//!  Application-ID (32) | Hop-by-Hop Identifier (32) | End-to-End Identifier (32) | AVPs...
//!  AVP: Code (32) | Flags VMP (8) | Length (24) | [Vendor-ID (32)] | Data | pad to 4
//! ```

use std::net::IpAddr;

use bytes::Bytes;

/// Request bit (RFC 6733 §3).
pub const CMD_FLAG_REQUEST: u8 = 0x80;
/// Proxiable bit.
pub const CMD_FLAG_PROXIABLE: u8 = 0x40;
/// Error bit.
pub const CMD_FLAG_ERROR: u8 = 0x20;
/// Potentially retransmitted bit.
pub const CMD_FLAG_RETRANSMIT: u8 = 0x10;
/// AVP Vendor-Specific bit (§4.1).
pub const AVP_FLAG_VENDOR: u8 = 0x80;
/// AVP Mandatory bit.
pub const AVP_FLAG_MANDATORY: u8 = 0x40;
/// AVP Protected bit.
pub const AVP_FLAG_PROTECTED: u8 = 0x20;

/// Largest message accepted.
pub const MAX_MESSAGE: usize = 1 << 20;

// Base AVP codes (RFC 6733 §4.5).
/// User-Name
pub const AVP_USER_NAME: u32 = 1;
/// Host-IP-Address
pub const AVP_HOST_IP_ADDRESS: u32 = 257;
/// Auth-Application-Id
pub const AVP_AUTH_APPLICATION_ID: u32 = 258;
/// Acct-Application-Id
pub const AVP_ACCT_APPLICATION_ID: u32 = 259;
/// Vendor-Specific-Application-Id
pub const AVP_VENDOR_SPECIFIC_APPLICATION_ID: u32 = 260;
/// Session-Id
pub const AVP_SESSION_ID: u32 = 263;
/// Origin-Host
pub const AVP_ORIGIN_HOST: u32 = 264;
/// Supported-Vendor-Id
pub const AVP_SUPPORTED_VENDOR_ID: u32 = 265;
/// Vendor-Id
pub const AVP_VENDOR_ID: u32 = 266;
/// Firmware-Revision
pub const AVP_FIRMWARE_REVISION: u32 = 267;
/// Result-Code
pub const AVP_RESULT_CODE: u32 = 268;
/// Product-Name
pub const AVP_PRODUCT_NAME: u32 = 269;
/// Disconnect-Cause
pub const AVP_DISCONNECT_CAUSE: u32 = 273;
/// Auth-Session-State
pub const AVP_AUTH_SESSION_STATE: u32 = 277;
/// Origin-State-Id
pub const AVP_ORIGIN_STATE_ID: u32 = 278;
/// Failed-AVP
pub const AVP_FAILED_AVP: u32 = 279;
/// Error-Message
pub const AVP_ERROR_MESSAGE: u32 = 281;
/// Destination-Realm
pub const AVP_DESTINATION_REALM: u32 = 283;
/// Destination-Host
pub const AVP_DESTINATION_HOST: u32 = 293;
/// Origin-Realm
pub const AVP_ORIGIN_REALM: u32 = 296;
/// Experimental-Result
pub const AVP_EXPERIMENTAL_RESULT: u32 = 297;
/// Experimental-Result-Code
pub const AVP_EXPERIMENTAL_RESULT_CODE: u32 = 298;
/// Inband-Security-Id
pub const AVP_INBAND_SECURITY_ID: u32 = 299;

// Base commands.
/// Capabilities-Exchange-Request/Answer
pub const CMD_CAPABILITIES_EXCHANGE: u32 = 257;
/// Device-Watchdog-Request/Answer
pub const CMD_DEVICE_WATCHDOG: u32 = 280;
/// Disconnect-Peer-Request/Answer
pub const CMD_DISCONNECT_PEER: u32 = 282;

// Result codes (§7.1).
/// DIAMETER_SUCCESS
pub const DIAMETER_SUCCESS: u32 = 2001;
/// DIAMETER_COMMAND_UNSUPPORTED
pub const DIAMETER_COMMAND_UNSUPPORTED: u32 = 3001;
/// DIAMETER_UNABLE_TO_DELIVER
pub const DIAMETER_UNABLE_TO_DELIVER: u32 = 3002;
/// DIAMETER_APPLICATION_UNSUPPORTED
pub const DIAMETER_APPLICATION_UNSUPPORTED: u32 = 3007;
/// Result-Code: the peer has more requests in hand than it takes (RFC 6733 §7.1.3).
pub const DIAMETER_TOO_BUSY: u32 = 3004;
/// A CER from a peer the server is not configured for (RFC 6733 §7.1.3).
pub const DIAMETER_UNKNOWN_PEER: u32 = 3010;
/// DIAMETER_INVALID_HDR_BITS
pub const DIAMETER_INVALID_HDR_BITS: u32 = 3008;
/// DIAMETER_INVALID_AVP_BITS
pub const DIAMETER_INVALID_AVP_BITS: u32 = 3009;
/// DIAMETER_AVP_UNSUPPORTED
pub const DIAMETER_AVP_UNSUPPORTED: u32 = 5001;
/// DIAMETER_INVALID_AVP_VALUE
pub const DIAMETER_INVALID_AVP_VALUE: u32 = 5004;
/// DIAMETER_MISSING_AVP
pub const DIAMETER_MISSING_AVP: u32 = 5005;
/// DIAMETER_NO_COMMON_APPLICATION
pub const DIAMETER_NO_COMMON_APPLICATION: u32 = 5010;
/// DIAMETER_UNABLE_TO_COMPLY
pub const DIAMETER_UNABLE_TO_COMPLY: u32 = 5012;
/// DIAMETER_INVALID_AVP_LENGTH
pub const DIAMETER_INVALID_AVP_LENGTH: u32 = 5014;

/// Errors of the Diameter layer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DiameterError {
    /// The bytes are not a valid Diameter message.
    #[error("malformed Diameter message: {0}")]
    Malformed(String),
    /// An AVP's data does not fit its type.
    #[error("AVP {code} has an invalid value: {why}")]
    InvalidAvp {
        /// AVP code.
        code: u32,
        /// Why.
        why: &'static str,
    },
    /// A mandatory AVP is missing (answered with DIAMETER_MISSING_AVP).
    #[error("missing mandatory AVP {code} (vendor {vendor_id:?})")]
    MissingAvp {
        /// AVP code.
        code: u32,
        /// Vendor.
        vendor_id: Option<u32>,
    },
    /// No answer in time.
    #[error("no answer from the Diameter peer in time")]
    Timeout,
    /// The connection is gone.
    #[error("Diameter connection closed")]
    Closed,
    /// The connection has as many requests in flight (or bytes queued) as it takes.
    #[error("Diameter connection busy: too many requests in flight")]
    Busy,
    /// The peer refused the capabilities exchange.
    #[error("capabilities exchange failed: {0}")]
    Handshake(String),
    /// Socket error.
    #[error("Diameter I/O: {0}")]
    Io(String),
    /// No open connection to the peer (RFC 6733 §5.6: not in I-Open); a reconnect is under
    /// way or scheduled.
    #[error("Diameter peer {peer} is down ({why}); reconnecting")]
    PeerDown {
        /// The peer's name and address, e.g. `hss.ims.lab (127.0.0.1:3868)`.
        peer: String,
        /// Why the last connection or attempt failed.
        why: String,
    },
}

/// One AVP (RFC 6733 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avp {
    /// AVP code.
    pub code: u32,
    /// V/M/P flags.
    pub flags: u8,
    /// Vendor-ID when the V bit is set.
    pub vendor_id: Option<u32>,
    /// The data, unpadded.
    pub data: Bytes,
}

impl Avp {
    /// An AVP with raw data; the V bit follows `vendor_id`.
    pub fn new(code: u32, vendor_id: Option<u32>, mandatory: bool, data: impl Into<Bytes>) -> Avp {
        let mut flags = 0;
        if vendor_id.is_some() {
            flags |= AVP_FLAG_VENDOR;
        }
        if mandatory {
            flags |= AVP_FLAG_MANDATORY;
        }
        Avp {
            code,
            flags,
            vendor_id,
            data: data.into(),
        }
    }
    /// UTF8String / DiameterIdentity.
    pub fn utf8(code: u32, vendor_id: Option<u32>, mandatory: bool, s: &str) -> Avp {
        Avp::new(
            code,
            vendor_id,
            mandatory,
            Bytes::copy_from_slice(s.as_bytes()),
        )
    }
    /// Unsigned32 / Enumerated.
    pub fn u32(code: u32, vendor_id: Option<u32>, mandatory: bool, v: u32) -> Avp {
        Avp::new(
            code,
            vendor_id,
            mandatory,
            Bytes::copy_from_slice(&v.to_be_bytes()),
        )
    }
    /// Unsigned64.
    pub fn u64(code: u32, vendor_id: Option<u32>, mandatory: bool, v: u64) -> Avp {
        Avp::new(
            code,
            vendor_id,
            mandatory,
            Bytes::copy_from_slice(&v.to_be_bytes()),
        )
    }
    /// OctetString.
    pub fn octets(code: u32, vendor_id: Option<u32>, mandatory: bool, v: &[u8]) -> Avp {
        Avp::new(code, vendor_id, mandatory, Bytes::copy_from_slice(v))
    }
    /// Grouped.
    pub fn grouped(code: u32, vendor_id: Option<u32>, mandatory: bool, avps: Vec<Avp>) -> Avp {
        let mut b = Vec::new();
        for a in &avps {
            a.encode_into(&mut b);
        }
        Avp::new(code, vendor_id, mandatory, b)
    }
    /// Address (RFC 6733 §4.3.1: 2-byte address family, then the address).
    pub fn address(code: u32, vendor_id: Option<u32>, mandatory: bool, ip: IpAddr) -> Avp {
        let mut b = Vec::new();
        match ip {
            IpAddr::V4(v) => {
                b.extend_from_slice(&1u16.to_be_bytes());
                b.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                b.extend_from_slice(&2u16.to_be_bytes());
                b.extend_from_slice(&v.octets());
            }
        }
        Avp::new(code, vendor_id, mandatory, b)
    }
    /// As Unsigned32.
    pub fn as_u32(&self) -> Result<u32, DiameterError> {
        let b: [u8; 4] = self.data[..]
            .try_into()
            .map_err(|_| DiameterError::InvalidAvp {
                code: self.code,
                why: "not 4 octets",
            })?;
        Ok(u32::from_be_bytes(b))
    }
    /// As Unsigned64.
    pub fn as_u64(&self) -> Result<u64, DiameterError> {
        let b: [u8; 8] = self.data[..]
            .try_into()
            .map_err(|_| DiameterError::InvalidAvp {
                code: self.code,
                why: "not 8 octets",
            })?;
        Ok(u64::from_be_bytes(b))
    }
    /// As UTF8String.
    pub fn as_str(&self) -> Result<&str, DiameterError> {
        std::str::from_utf8(&self.data).map_err(|_| DiameterError::InvalidAvp {
            code: self.code,
            why: "not UTF-8",
        })
    }
    /// The raw data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
    /// As Grouped.
    pub fn as_grouped(&self) -> Result<Vec<Avp>, DiameterError> {
        decode_avps(&self.data, 1)
    }
    /// As Address.
    pub fn as_address(&self) -> Result<IpAddr, DiameterError> {
        let bad = DiameterError::InvalidAvp {
            code: self.code,
            why: "not an IPv4/IPv6 Address",
        };
        let d = &self.data[..];
        match (d.get(..2), d.len()) {
            (Some([0, 1]), 6) => Ok(IpAddr::from(
                <[u8; 4]>::try_from(&d[2..]).map_err(|_| bad.clone())?,
            )),
            (Some([0, 2]), 18) => Ok(IpAddr::from(
                <[u8; 16]>::try_from(&d[2..]).map_err(|_| bad.clone())?,
            )),
            _ => Err(bad),
        }
    }
    /// M bit.
    pub fn is_mandatory(&self) -> bool {
        self.flags & AVP_FLAG_MANDATORY != 0
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let header = if self.vendor_id.is_some() { 12 } else { 8 };
        let len = header + self.data.len();
        out.extend_from_slice(&self.code.to_be_bytes());
        let mut flags = self.flags & !AVP_FLAG_VENDOR;
        if self.vendor_id.is_some() {
            flags |= AVP_FLAG_VENDOR;
        }
        out.push(flags);
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        if let Some(v) = self.vendor_id {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out.resize(out.len() + (4 - len % 4) % 4, 0);
    }
}

fn decode_avps(mut b: &[u8], depth: usize) -> Result<Vec<Avp>, DiameterError> {
    if depth > 16 {
        return Err(DiameterError::Malformed(
            "grouped AVPs nested too deep".into(),
        ));
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 8 {
            return Err(DiameterError::Malformed("truncated AVP header".into()));
        }
        let code = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let len = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        let vendor = flags & AVP_FLAG_VENDOR != 0;
        let header = if vendor { 12 } else { 8 };
        if len < header || len > b.len() {
            return Err(DiameterError::Malformed(format!(
                "AVP {code} has a bad length {len}"
            )));
        }
        let vendor_id = if vendor {
            Some(u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
        } else {
            None
        };
        out.push(Avp {
            code,
            flags,
            vendor_id,
            data: Bytes::copy_from_slice(&b[header..len]),
        });
        let padded = (len + 3) & !3;
        b = &b[padded.min(b.len())..];
    }
    Ok(out)
}

/// A Diameter message (RFC 6733 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// R/P/E/T flags.
    pub flags: u8,
    /// Command code.
    pub command_code: u32,
    /// Application-ID.
    pub application_id: u32,
    /// Hop-by-Hop Identifier.
    pub hop_by_hop: u32,
    /// End-to-End Identifier.
    pub end_to_end: u32,
    /// AVPs in order.
    pub avps: Vec<Avp>,
}

impl Message {
    /// A request (R and P set; identifiers are assigned by the peer when sent).
    pub fn request(command_code: u32, application_id: u32) -> Message {
        Message {
            flags: CMD_FLAG_REQUEST | CMD_FLAG_PROXIABLE,
            command_code,
            application_id,
            hop_by_hop: 0,
            end_to_end: 0,
            avps: Vec::new(),
        }
    }

    /// An answer to `req`: same command, application and identifiers; Session-Id copied first.
    pub fn answer_to(req: &Message) -> Message {
        let mut m = Message {
            flags: req.flags & CMD_FLAG_PROXIABLE,
            command_code: req.command_code,
            application_id: req.application_id,
            hop_by_hop: req.hop_by_hop,
            end_to_end: req.end_to_end,
            avps: Vec::new(),
        };
        if let Some(s) = req.avp(AVP_SESSION_ID, None) {
            m.avps.push(s.clone());
        }
        m
    }

    /// An error answer (§7.1.3 sets E for protocol errors 3xxx; §7.5 Failed-AVP).
    pub fn error_answer(
        req: &Message,
        result_code: u32,
        failed_avp: Option<Avp>,
        error_message: Option<&str>,
    ) -> Message {
        let mut m = Message::answer_to(req);
        if (3000..4000).contains(&result_code) {
            m.flags |= CMD_FLAG_ERROR;
        }
        m.push(Avp::u32(AVP_RESULT_CODE, None, true, result_code));
        if let Some(e) = error_message {
            m.push(Avp::utf8(AVP_ERROR_MESSAGE, None, false, e));
        }
        if let Some(f) = failed_avp {
            m.push(Avp::grouped(AVP_FAILED_AVP, None, true, vec![f]));
        }
        m
    }

    /// R bit.
    pub fn is_request(&self) -> bool {
        self.flags & CMD_FLAG_REQUEST != 0
    }
    /// E bit.
    pub fn is_error(&self) -> bool {
        self.flags & CMD_FLAG_ERROR != 0
    }
    /// First AVP with this code and vendor.
    pub fn avp(&self, code: u32, vendor_id: Option<u32>) -> Option<&Avp> {
        self.avps
            .iter()
            .find(|a| a.code == code && a.vendor_id == vendor_id)
    }
    /// All AVPs with this code and vendor.
    pub fn avps_of(&self, code: u32, vendor_id: Option<u32>) -> impl Iterator<Item = &Avp> {
        self.avps
            .iter()
            .filter(move |a| a.code == code && a.vendor_id == vendor_id)
    }
    /// Appends an AVP.
    pub fn push(&mut self, avp: Avp) -> &mut Self {
        self.avps.push(avp);
        self
    }
    /// Session-Id.
    pub fn session_id(&self) -> Option<&str> {
        self.avp(AVP_SESSION_ID, None).and_then(|a| a.as_str().ok())
    }
    /// Origin-Host.
    pub fn origin_host(&self) -> Option<&str> {
        self.avp(AVP_ORIGIN_HOST, None)
            .and_then(|a| a.as_str().ok())
    }
    /// Origin-Realm.
    pub fn origin_realm(&self) -> Option<&str> {
        self.avp(AVP_ORIGIN_REALM, None)
            .and_then(|a| a.as_str().ok())
    }
    /// Result-Code, else Experimental-Result-Code.
    pub fn result_code(&self) -> Option<u32> {
        if let Some(r) = self
            .avp(AVP_RESULT_CODE, None)
            .and_then(|a| a.as_u32().ok())
        {
            return Some(r);
        }
        let er = self.avp(AVP_EXPERIMENTAL_RESULT, None)?.as_grouped().ok()?;
        er.iter()
            .find(|a| a.code == AVP_EXPERIMENTAL_RESULT_CODE)
            .and_then(|a| a.as_u32().ok())
    }
    /// Short command name for traces ("UAR", "CEA"...).
    pub fn command_name(&self) -> String {
        let base = match self.command_code {
            CMD_CAPABILITIES_EXCHANGE => "CE",
            CMD_DEVICE_WATCHDOG => "DW",
            CMD_DISCONNECT_PEER => "DP",
            300 => "UA",
            301 => "SA",
            302 => "LI",
            303 => "MA",
            304 => "RT",
            305 => "PP",
            c => return format!("cmd-{c}-{}", if self.is_request() { "R" } else { "A" }),
        };
        format!("{base}{}", if self.is_request() { "R" } else { "A" })
    }

    /// Serialises.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.push(self.flags);
        out.extend_from_slice(&self.command_code.to_be_bytes()[1..]);
        out.extend_from_slice(&self.application_id.to_be_bytes());
        out.extend_from_slice(&self.hop_by_hop.to_be_bytes());
        out.extend_from_slice(&self.end_to_end.to_be_bytes());
        for a in &self.avps {
            a.encode_into(&mut out);
        }
        let len = (out.len() as u32).to_be_bytes();
        out[1..4].copy_from_slice(&len[1..]);
        out
    }

    /// Parses one whole message.
    pub fn decode(buf: &[u8]) -> Result<Message, DiameterError> {
        if buf.len() < 20 {
            return Err(DiameterError::Malformed("shorter than a header".into()));
        }
        if buf[0] != 1 {
            return Err(DiameterError::Malformed(format!("version {}", buf[0])));
        }
        let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
        if len < 20 || len > buf.len() || !len.is_multiple_of(4) {
            return Err(DiameterError::Malformed(format!(
                "bad message length {len}"
            )));
        }
        Ok(Message {
            flags: buf[4],
            command_code: u32::from_be_bytes([0, buf[5], buf[6], buf[7]]),
            application_id: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            hop_by_hop: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
            end_to_end: u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]),
            avps: decode_avps(&buf[20..len], 0)?,
        })
    }
}

/// Stream framing: `Ok(None)` needs more bytes, `Ok(Some(n))` the first message is `n` bytes.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, DiameterError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != 1 {
        return Err(DiameterError::Malformed(format!("version {}", buf[0])));
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
    if len < 20 {
        return Err(DiameterError::Malformed(format!(
            "length {len} below the header size"
        )));
    }
    if len > MAX_MESSAGE {
        return Err(DiameterError::Malformed(format!(
            "length {len} over the limit"
        )));
    }
    Ok((buf.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_avp_layout() {
        let mut m = Message::request(300, 16777216);
        m.hop_by_hop = 0x01020304;
        m.end_to_end = 0x05060708;
        m.push(Avp::utf8(AVP_SESSION_ID, None, true, "abc"));
        m.push(Avp::u32(601, Some(10415), true, 7));
        let b = m.encode();
        assert_eq!(
            &b[..20],
            &[1, 0, 0, 48, 0xc0, 0, 1, 44, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8][..],
            "version, length 48, R|P, command 300, app 16777216, ids"
        );
        // Session-Id: code 263, M, length 11, "abc", 1 byte pad.
        assert_eq!(
            &b[20..32],
            &[0, 0, 1, 7, 0x40, 0, 0, 11, b'a', b'b', b'c', 0]
        );
        // Vendor AVP: V|M, length 16, vendor 10415.
        assert_eq!(
            &b[32..44],
            &[0, 0, 2, 0x59, 0xc0, 0, 0, 16, 0, 0, 0x28, 0xaf]
        );
        assert_eq!(Message::decode(&b).unwrap(), m);
        assert_eq!(frame(&b), Ok(Some(48)));
        assert_eq!(frame(&b[..30]), Ok(None));
    }

    #[test]
    fn grouped_address_and_errors() {
        let g = Avp::grouped(
            AVP_EXPERIMENTAL_RESULT,
            None,
            true,
            vec![
                Avp::u32(AVP_VENDOR_ID, None, true, 10415),
                Avp::u32(AVP_EXPERIMENTAL_RESULT_CODE, None, true, 2001),
            ],
        );
        let mut m = Message::request(301, 16777216);
        m.push(g);
        m.push(Avp::address(
            AVP_HOST_IP_ADDRESS,
            None,
            true,
            "127.0.0.1".parse().unwrap(),
        ));
        let d = Message::decode(&m.encode()).unwrap();
        assert_eq!(d.result_code(), Some(2001));
        assert_eq!(
            d.avp(AVP_HOST_IP_ADDRESS, None)
                .unwrap()
                .as_address()
                .unwrap()
                .to_string(),
            "127.0.0.1"
        );
        let e = Message::error_answer(&d, DIAMETER_COMMAND_UNSUPPORTED, None, Some("no"));
        assert!(e.is_error() && !e.is_request());
        assert_eq!(e.command_name(), "SAA");
    }

    #[test]
    fn garbage_never_panics() {
        let mut m = Message::request(303, 16777216);
        m.push(Avp::grouped(
            612,
            Some(10415),
            true,
            vec![Avp::utf8(608, Some(10415), true, "SIP Digest")],
        ));
        let b = m.encode();
        for i in 0..=b.len() {
            let _ = Message::decode(&b[..i]);
            let _ = frame(&b[..i]);
        }
        use rand::Rng;
        let mut rng = rand::thread_rng();
        for _ in 0..20_000 {
            let mut x = b.clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..x.len());
                x[at] = rng.gen();
            }
            if let Ok(m) = Message::decode(&x) {
                for a in &m.avps {
                    let _ = a.as_grouped();
                    let _ = a.as_address();
                }
            }
            let _ = frame(&x);
        }
        assert!(frame(&[2, 0, 0, 20]).is_err());
        assert!(frame(&[1, 0, 0, 4]).is_err());
    }
}
