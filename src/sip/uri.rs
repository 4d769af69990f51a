//! SIP and tel URIs (RFC 3261 §19.1, RFC 3966), parsed without panicking on any input.
//!
//! Ours rather than rsip's because rsip 0.4 rejects `tel:` URIs and IPv6 hosts; plain `sip:`
//! URIs are cross-checked against `rsip::Uri` in the tests.

use std::fmt;

use crate::sip::headers::Params;
use crate::sip::message::SipError;

/// A URI as found in a Request-URI or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other absolute URI (`urn:`, `mailto:`...), kept verbatim.
    Other(String),
}

/// `sip:user:password@host:port;params?headers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, verbatim (may contain escapes and `;` user params).
    pub user: Option<String>,
    /// Password part (deprecated, kept).
    pub password: Option<String>,
    /// Domain, IPv4 or `[IPv6]`.
    pub host: String,
    /// Port.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: Params,
    /// Headers after `?`, verbatim.
    pub headers: Option<String>,
}

/// `tel:+number;params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelUri {
    /// The number as written (with `+` for global numbers).
    pub number: String,
    /// Parameters.
    pub params: Params,
}

fn malformed(s: &str, why: &str) -> SipError {
    SipError::Malformed(format!(
        "bad URI '{}': {why}",
        s.chars().take(80).collect::<String>()
    ))
}

impl SipUri {
    /// A URI from parts.
    pub fn new(user: Option<&str>, host: &str, port: Option<u16>) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// Parses `sip:` / `sips:` URIs.
    pub fn parse(s: &str) -> Result<SipUri, SipError> {
        let t = s.trim();
        let (secure, rest) = if has_scheme(t, "sips:") {
            (true, &t[5..])
        } else if has_scheme(t, "sip:") {
            (false, &t[4..])
        } else {
            return Err(malformed(s, "not a sip: URI"));
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((a, b)) => (a, Some(b.to_string())),
            None => (rest, None),
        };
        // userinfo ends at the last '@' before any parameters of the host part.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        if user.as_deref() == Some("") {
            return Err(malformed(s, "empty user part"));
        }
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], Params::parse(&hostpart[i..])),
            None => (hostpart, Params::default()),
        };
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| malformed(s, "bad host or port"))?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// Canonical address-of-record: `sip:user@host` (host lowercased, no port or params).
    pub fn aor(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        let scheme = if self.secure { "sips" } else { "sip" };
        match &self.user {
            Some(u) => format!("{scheme}:{u}@{host}"),
            None => format!("{scheme}:{host}"),
        }
    }
}

/// Case-insensitive scheme prefix test that never slices inside a character.
fn has_scheme(t: &str, scheme: &str) -> bool {
    t.get(..scheme.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
}

/// Splits `host[:port]` with IPv6 in brackets. `None` on an invalid port or empty host.
pub(crate) fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        // IPv6reference (RFC 3261 §25.1): hex digits, ':' and '.' (an embedded IPv4) only.
        let inner = &rest[..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let host = format!("[{inner}]");
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((host.to_string(), port))
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl TelUri {
    /// Parses `tel:` URIs.
    pub fn parse(s: &str) -> Result<TelUri, SipError> {
        let t = s.trim();
        if !has_scheme(t, "tel:") {
            return Err(malformed(s, "not a tel: URI"));
        }
        let rest = &t[4..];
        let (number, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i..])),
            None => (rest, Params::default()),
        };
        let ok = !number.is_empty()
            && number
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(&b));
        if !ok {
            return Err(malformed(s, "bad telephone number"));
        }
        Ok(TelUri {
            number: number.to_string(),
            params,
        })
    }

    /// `tel:+15550001` with visual separators removed.
    pub fn aor(&self) -> String {
        let n: String = self
            .number
            .chars()
            .filter(|c| !"-.()".contains(*c))
            .collect();
        format!("tel:{n}")
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

impl Uri {
    /// Parses any URI; `sip`, `sips` and `tel` structurally, others verbatim.
    pub fn parse(s: &str) -> Result<Uri, SipError> {
        let t = s.trim();
        // No URI may hold these (RFC 3986 §2, RFC 3261 §25.1): one that did would print as a
        // name-addr `<...>` that reads back as a different URI.
        if t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
        {
            return Err(malformed(s, "character not allowed in a URI"));
        }
        let scheme = t.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sip" | "sips" => SipUri::parse(t).map(Uri::Sip),
            "tel" => TelUri::parse(t).map(Uri::Tel),
            _ if t.contains(':')
                && !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !t.contains(char::is_whitespace) =>
            {
                Ok(Uri::Other(t.to_string()))
            }
            _ => Err(malformed(s, "no scheme")),
        }
    }

    /// Canonical address-of-record for lookups.
    pub fn aor(&self) -> String {
        match self {
            Uri::Sip(u) => u.aor(),
            Uri::Tel(t) => t.aor(),
            Uri::Other(s) => s.clone(),
        }
    }

    /// User part (sip) or number (tel).
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other(_) => None,
        }
    }

    /// Host (sip only).
    pub fn host(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => Some(&u.host),
            _ => None,
        }
    }

    /// Port (sip only).
    pub fn port(&self) -> Option<u16> {
        match self {
            Uri::Sip(u) => u.port,
            _ => None,
        }
    }

    /// A URI parameter: `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        match self {
            Uri::Sip(u) => u.params.get(name),
            Uri::Tel(t) => t.params.get(name),
            Uri::Other(_) => None,
        }
    }

    /// The SIP URI, if it is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => t.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris_round_trip_and_match_rsip() {
        for s in [
            "sip:alice@ims.lab",
            "sip:alice@127.0.0.1:5060;transport=tcp",
            "sips:bob:secret@example.com:5061;lr;maddr=1.2.3.4?subject=hi",
            "sip:ims.lab",
            "sip:orig@scscf.ims.lab:5080;lr",
            "sip:+15550001;phone-context=ims.lab@ims.lab;user=phone",
        ] {
            let u = SipUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(u.to_string(), s);
        }
        let plain = "sip:alice@ims.lab:5060";
        let r = rsip::Uri::try_from(plain).expect("rsip parses plain sip");
        let ours = SipUri::parse(plain).unwrap();
        assert_eq!(r.user(), ours.user.as_deref());
        assert_eq!(r.host().to_string(), ours.host);
    }

    #[test]
    fn ipv6_tel_and_aor() {
        let u = Uri::parse("sip:alice@[::1]:5060").unwrap();
        assert_eq!(u.host(), Some("[::1]"));
        assert_eq!(u.port(), Some(5060));
        let t = Uri::parse("tel:+1-555-0001;phone-context=ims.lab").unwrap();
        assert_eq!(t.aor(), "tel:+15550001");
        assert_eq!(t.to_string(), "tel:+1-555-0001;phone-context=ims.lab");
        assert_eq!(
            Uri::parse("sip:Alice@IMS.Lab:5060;x").unwrap().aor(),
            "sip:Alice@ims.lab"
        );
        assert!(matches!(
            Uri::parse("urn:uuid:1234").unwrap(),
            Uri::Other(_)
        ));
    }

    #[test]
    fn bad_uris_are_errors() {
        for s in [
            "",
            "sip:",
            "sip:@host",
            "sip:a@host:99999",
            "sip:a@ho st",
            "tel:",
            "tel:abc!",
            "nonsense",
            "sip:[::1",
        ] {
            assert!(Uri::parse(s).is_err(), "{s:?} should fail");
        }
    }

    /// Found by the `sip_headers` fuzz target: a bare addr-spec whose URI held a `>` printed
    /// as `<tel7.0.0.1:5070>>`, which reads back as a different URI.
    #[test]
    fn fuzz_uri_with_angle_bracket_is_refused() {
        let input = "tel7.0.0.1:5070>;+s:+1-555-001051+;+hone";
        assert!(crate::sip::NameAddr::parse(input).is_err());
        for s in [
            "tel7.0.0.1:5070>",
            "sip:a>b@h",
            "sip:h;p=\"x\"",
            "sip:a b@h",
            "x:\u{7f}",
        ] {
            assert!(Uri::parse(s).is_err(), "{s:?} should fail");
        }
        let n = crate::sip::NameAddr::parse("<urn:x:y>;tag=1").unwrap();
        assert_eq!(crate::sip::NameAddr::parse(&n.to_string()).unwrap(), n);
    }

    /// Found by the `sip_rsip_diff` fuzz target: `[/ 1]` was taken as an IPv6 sent-by (rsip
    /// refused the Via, rightly).
    #[test]
    fn fuzz_ipv6_reference_must_be_an_address() {
        assert!(crate::sip::Via::parse("SIP/2.0/UDP [/ 1]:5060;branch=z9hG4bKm1").is_err());
        assert!(Uri::parse("sip:[x]").is_err());
        assert!(Uri::parse("sip:[]:5060").is_err());
        assert_eq!(
            split_host_port("[2001:db8::1.2.3.4]:5060"),
            Some(("[2001:db8::1.2.3.4]".into(), Some(5060)))
        );
    }
}
