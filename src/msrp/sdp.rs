//! The SDP of an MSRP session (RFC 4975 §8, RFC 6135 for `a=setup`), as RCS chat uses it:
//! `m=message <port> TCP/MSRP *`, `a=path`, `a=accept-types`, `a=accept-wrapped-types`.

use crate::msrp::{MsrpError, MsrpUri};

/// The MSRP media description of an offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpSdp {
    /// Our address (c= and o=).
    pub host: String,
    /// The MSRP port (m=).
    pub port: u16,
    /// `a=path` URIs, first hop first.
    pub path: Vec<String>,
    /// `a=accept-types`.
    pub accept_types: Vec<String>,
    /// `a=accept-wrapped-types`.
    pub accept_wrapped_types: Vec<String>,
    /// `a=setup` (active, passive, actpass).
    pub setup: Option<String>,
    /// o= session id and version.
    pub session_id: u64,
}

impl MsrpSdp {
    /// What an RCS chat endpoint offers: CPIM and is-composing, with text and IMDN wrapped
    /// (without `message/imdn+xml` a network server never delivers stored IMDNs).
    pub fn rcs_chat(host: &str, port: u16, path: &str, setup: &str) -> MsrpSdp {
        MsrpSdp {
            host: host.to_string(),
            port,
            path: vec![path.to_string()],
            accept_types: vec![
                "message/cpim".into(),
                "application/im-iscomposing+xml".into(),
            ],
            accept_wrapped_types: vec!["text/plain".into(), "message/imdn+xml".into()],
            setup: Some(setup.to_string()),
            session_id: rand::random::<u32>() as u64,
        }
    }

    /// The SDP body.
    pub fn to_sdp(&self) -> String {
        let mut s = format!(
            "v=0\r\no=- {id} {id} IN IP4 {h}\r\ns=-\r\nc=IN IP4 {h}\r\nt=0 0\r\nm=message {p} TCP/MSRP *\r\n",
            id = self.session_id,
            h = self.host,
            p = self.port
        );
        s.push_str(&format!(
            "a=accept-types:{}\r\n",
            self.accept_types.join(" ")
        ));
        if !self.accept_wrapped_types.is_empty() {
            s.push_str(&format!(
                "a=accept-wrapped-types:{}\r\n",
                self.accept_wrapped_types.join(" ")
            ));
        }
        s.push_str(&format!("a=path:{}\r\n", self.path.join(" ")));
        if let Some(setup) = &self.setup {
            s.push_str(&format!("a=setup:{setup}\r\n"));
        }
        s.push_str("a=sendrecv\r\n");
        s
    }

    /// Parses the MSRP media description of an SDP body.
    pub fn parse(sdp: &str) -> Result<MsrpSdp, MsrpError> {
        let bad = |w: &str| MsrpError::Malformed(format!("SDP: {w}"));
        let mut out = MsrpSdp {
            host: String::new(),
            port: 0,
            path: Vec::new(),
            accept_types: Vec::new(),
            accept_wrapped_types: Vec::new(),
            setup: None,
            session_id: 0,
        };
        let mut in_msrp = false;
        for line in sdp.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("m=") {
                let f: Vec<&str> = m.split_whitespace().collect();
                in_msrp = f.first() == Some(&"message")
                    && f.get(2).is_some_and(|t| {
                        t.eq_ignore_ascii_case("TCP/MSRP") || t.eq_ignore_ascii_case("TCP/TLS/MSRP")
                    });
                if in_msrp {
                    out.port = f
                        .get(1)
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| bad("bad m= port"))?;
                }
            } else if let Some(c) = line.strip_prefix("c=") {
                if out.host.is_empty() || in_msrp {
                    out.host = c.split_whitespace().nth(2).unwrap_or("").to_string();
                }
            } else if let Some(o) = line.strip_prefix("o=") {
                out.session_id = o
                    .split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
            } else if in_msrp {
                if let Some(p) = line.strip_prefix("a=path:") {
                    out.path = p.split_whitespace().map(str::to_string).collect();
                } else if let Some(t) = line.strip_prefix("a=accept-types:") {
                    out.accept_types = t.split_whitespace().map(str::to_string).collect();
                } else if let Some(t) = line.strip_prefix("a=accept-wrapped-types:") {
                    out.accept_wrapped_types = t.split_whitespace().map(str::to_string).collect();
                } else if let Some(t) = line.strip_prefix("a=setup:") {
                    out.setup = Some(t.trim().to_string());
                }
            }
        }
        if out.port == 0 && out.path.is_empty() {
            return Err(bad("no m=message TCP/MSRP media"));
        }
        if out.path.is_empty() {
            return Err(bad("MSRP media without a=path"));
        }
        for p in &out.path {
            MsrpUri::parse(p)?;
        }
        Ok(out)
    }

    /// The last URI of the path: the endpoint's own MSRP URI.
    pub fn endpoint(&self) -> Option<MsrpUri> {
        self.path.last().and_then(|p| MsrpUri::parse(p).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcs_chat_offer_round_trips() {
        let s = MsrpSdp::rcs_chat("127.0.0.1", 2855, "msrp://127.0.0.1:2855/abc;tcp", "active");
        let text = s.to_sdp();
        assert!(text.contains("m=message 2855 TCP/MSRP *\r\n"));
        assert!(text.contains("a=accept-types:message/cpim application/im-iscomposing+xml\r\n"));
        assert!(text.contains("a=accept-wrapped-types:text/plain message/imdn+xml\r\n"));
        assert_eq!(MsrpSdp::parse(&text).unwrap(), s);
        assert_eq!(s.endpoint().unwrap().session_id, "abc");
        assert!(MsrpSdp::parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n").is_err());
        assert!(MsrpSdp::parse("m=message 1 TCP/MSRP *\r\na=path:sip:nope\r\n").is_err());
    }
}
