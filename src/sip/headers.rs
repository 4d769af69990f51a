//! Structured views of single SIP header values (RFC 3261 §20, §25.1): parameters, Via,
//! name-addr (From, To, Contact, Route, Path, Service-Route, P-Asserted-Identity...), CSeq,
//! and top-level list splitting.
//!
//! Ours rather than rsip's typed headers because those fail on quoted Contact parameters
//! (`+sip.instance="<urn:...>"`, `+g.3gpp.icsi-ref="urn%3A..."`), several values on one line
//! and multi-hop Via lines, all of which IMS clients send.

use std::fmt;

use crate::sip::message::{Method, SipError};
use crate::sip::uri::{split_host_port, Uri};

/// Ordered header or URI parameters. Values are kept verbatim (quotes included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (a leading `;` is optional). Never fails; `;` inside quotes is kept.
    pub fn parse(s: &str) -> Params {
        let mut out = Vec::new();
        for part in split_outside_quotes(s, b';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => out.push((k.trim().to_string(), Some(v.trim().to_string()))),
                None => out.push((part.to_string(), None)),
            }
        }
        Params(out)
    }

    /// `Some(Some(v))` for `name=v`, `Some(None)` for a flag, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of `name=value`, quotes removed.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(|v| {
            v.strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v)
        })
    }

    /// True when present (flag or value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replacing in place) or appends a parameter.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(e) => e.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    /// Removes a parameter.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Iterates in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

/// Splits on `sep` outside double quotes (with `\"` escapes) and angle brackets.
fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start, mut i) = (false, 0i32, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle += 1,
            b'>' if !quoted && angle > 0 => angle -= 1,
            c if c == sep && !quoted && angle == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start <= s.len() {
        out.push(&s[start.min(s.len())..]);
    }
    out
}

/// Splits a header value into its comma-separated elements (RFC 3261 §7.3.1), honouring
/// quoted strings and `<...>`; trims and drops empty elements.
pub fn split_list(value: &str) -> Vec<&str> {
    split_outside_quotes(value, b',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One Via hop (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=...;received=...;rport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, ...
    pub transport: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters.
    pub params: Params,
}

impl Via {
    /// Parses one Via value.
    pub fn parse(s: &str) -> Result<Via, SipError> {
        let bad = |why: &str| {
            SipError::Malformed(format!(
                "bad Via '{}': {why}",
                s.chars().take(80).collect::<String>()
            ))
        };
        // RFC 3261 §25.1 allows LWS around the '/' of sent-protocol.
        let mut norm = s.trim().to_string();
        while norm.contains(" /")
            || norm.contains("/ ")
            || norm.contains("\t/")
            || norm.contains("/\t")
        {
            let n = norm
                .replace(" /", "/")
                .replace("/ ", "/")
                .replace("\t/", "/")
                .replace("/\t", "/");
            if n == norm {
                break;
            }
            norm = n;
        }
        let t = norm.as_str();
        let (proto, rest) = t
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("no sent-by"))?;
        let mut parts = proto.split('/').map(str::trim);
        let (Some(name), Some(_ver), Some(transport), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("bad protocol"));
        };
        if !name.eq_ignore_ascii_case("SIP") || transport.is_empty() {
            return Err(bad("bad protocol"));
        }
        let rest = rest.trim();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i..])),
            None => (rest, Params::default()),
        };
        let sent_by: String = sent_by.chars().filter(|c| !c.is_whitespace()).collect();
        let (host, port) = split_host_port(&sent_by).ok_or_else(|| bad("bad sent-by"))?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `Some(None)` for a bare `rport`, `Some(Some(p))` with a value, `None` when absent.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport,
            self.sent_by(),
            self.params
        )
    }
}

/// A name-addr or addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written (quotes included when they were).
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (tag, expires, feature tags...).
    pub params: Params,
}

impl NameAddr {
    /// Wraps a URI.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    /// Parses `"Name" <uri>;params`, `<uri>;params` or a bare `uri;params` (whose parameters are
    /// header parameters, §20.10).
    pub fn parse(s: &str) -> Result<NameAddr, SipError> {
        let t = s.trim();
        let bad = |why: &str| {
            SipError::Malformed(format!(
                "bad name-addr '{}': {why}",
                t.chars().take(80).collect::<String>()
            ))
        };
        // Find '<' outside quotes.
        let b = t.as_bytes();
        let (mut quoted, mut lt) = (false, None);
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => {
                    lt = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        if let Some(lt) = lt {
            let gt = t[lt..]
                .find('>')
                .map(|g| g + lt)
                .ok_or_else(|| bad("no '>'"))?;
            let display = t[..lt].trim();
            let uri = Uri::parse(&t[lt + 1..gt])?;
            Ok(NameAddr {
                display: (!display.is_empty()).then(|| display.to_string()),
                uri,
                params: Params::parse(&t[gt + 1..]),
            })
        } else {
            let (u, p) = match t.find(';') {
                Some(i) => (&t[..i], &t[i..]),
                None => (t, ""),
            };
            if u.contains(char::is_whitespace) {
                return Err(bad("display name without <uri>"));
            }
            Ok(NameAddr {
                display: None,
                uri: Uri::parse(u)?,
                params: Params::parse(p),
            })
        }
    }

    /// The tag parameter (From/To).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1 REGISTER`.
    pub fn parse(s: &str) -> Result<CSeq, SipError> {
        let mut it = s.split_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return Err(SipError::Malformed(format!("bad CSeq '{s}'")));
        };
        let seq = n
            .parse()
            .map_err(|_| SipError::Malformed(format!("bad CSeq number '{n}'")))?;
        Ok(CSeq {
            seq,
            method: Method::parse(m),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport;received=10.0.0.1")
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by(), "127.0.0.1:5060");
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport;received=10.0.0.1"
        );
        let v6 = Via::parse("SIP / 2.0 / tcp [::1]:5061 ;rport=7").unwrap();
        assert_eq!(v6.host, "[::1]");
        assert_eq!(v6.rport(), Some(Some(7)));
        for bad in [
            "",
            "SIP/2.0/UDP",
            "HTTP/1.1/TCP x",
            "SIP/2.0/UDP host:99999",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms_with_ims_feature_tags() {
        let c = NameAddr::parse(
            "\"Alice, A.\" <sip:alice@127.0.0.1:5062;transport=tcp>;expires=600;+sip.instance=\"<urn:gsma:imei:35-1;x>\";+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"",
        )
        .unwrap();
        assert_eq!(c.display.as_deref(), Some("\"Alice, A.\""));
        assert_eq!(c.params.value("expires"), Some("600"));
        assert_eq!(
            c.params.value("+sip.instance"),
            Some("<urn:gsma:imei:35-1;x>")
        );
        assert_eq!(c.uri.param("transport"), Some(Some("tcp")));
        let bare = NameAddr::parse("sip:bob@ims.lab;tag=99").unwrap();
        assert_eq!(bare.tag(), Some("99"));
        assert_eq!(bare.uri.to_string(), "sip:bob@ims.lab");
        assert_eq!(bare.to_string(), "<sip:bob@ims.lab>;tag=99");
        let tel = NameAddr::parse("<tel:+15550001>").unwrap();
        assert_eq!(tel.uri.aor(), "tel:+15550001");
        assert!(NameAddr::parse("Alice sip:x@y").is_err());
        assert!(NameAddr::parse("<sip:x@y").is_err());
    }

    #[test]
    fn list_splitting_respects_quotes_and_brackets() {
        let v = split_list("<sip:a@x;lr>, \"B, b\" <sip:b@y>;q=0.5 ,, <sip:c@z?h=1,2>");
        assert_eq!(
            v,
            [
                "<sip:a@x;lr>",
                "\"B, b\" <sip:b@y>;q=0.5",
                "<sip:c@z?h=1,2>"
            ]
        );
        assert_eq!(CSeq::parse("7 REGISTER").unwrap().to_string(), "7 REGISTER");
        assert!(CSeq::parse("x REGISTER").is_err());
    }
}
