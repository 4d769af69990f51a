//! Which Diameter peers a server accepts (RFC 6733 §5.3: a CER from a peer not configured gets
//! DIAMETER_UNKNOWN_PEER). A peer is an Origin-Host and the addresses it may connect from; the
//! HSS believed any Origin-Host from anyone. Pure code.

use std::net::IpAddr;

/// One accepted peer: its Origin-Host and where it connects from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeer {
    /// Origin-Host (compared without case, RFC 6733 DiamIdent).
    pub origin_host: String,
    /// Network it connects from: an address and a prefix length.
    pub network: (IpAddr, u8),
}

/// The peers a server accepts; [`PeerPolicy::any`] accepts everyone (tests of the codec).
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allowed: Option<Vec<AllowedPeer>>,
}

/// Why a peer's network does not read ([`parse_network`]); the text names the value given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// Neither an address nor `address/prefix`.
    #[error("'{0}' is not an IP address or network")]
    NotAnAddress(String),
    /// A prefix length that is not a number up to the address's width.
    #[error("'{network}': prefix length must be 0..={max}")]
    PrefixLength {
        /// The network as given.
        network: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

/// Parses `192.0.2.1`, `127.0.0.0/8` or `::1/128`.
pub fn parse_network(s: &str) -> Result<(IpAddr, u8), NetworkError> {
    let (ip, len) = match s.trim().split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s.trim(), None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| NetworkError::NotAnAddress(s.to_string()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
            NetworkError::PrefixLength {
                network: s.to_string(),
                max,
            }
        })?,
        None => max,
    };
    Ok((ip, len))
}

fn contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl PeerPolicy {
    /// Everyone is accepted.
    pub fn any() -> PeerPolicy {
        PeerPolicy { allowed: None }
    }

    /// Only these peers.
    pub fn only(allowed: Vec<AllowedPeer>) -> PeerPolicy {
        PeerPolicy {
            allowed: Some(allowed),
        }
    }

    /// True when a peer claiming `origin_host` and connecting from `ip` is accepted.
    pub fn allows(&self, origin_host: &str, ip: IpAddr) -> bool {
        match &self.allowed {
            None => true,
            Some(list) => list.iter().any(|p| {
                p.origin_host.eq_ignore_ascii_case(origin_host) && contains(p.network, ip)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: &str, net: &str) -> AllowedPeer {
        AllowedPeer {
            origin_host: host.into(),
            network: parse_network(net).unwrap(),
        }
    }

    #[test]
    fn origin_host_and_source_must_both_match() {
        let p = PeerPolicy::only(vec![
            peer("scscf.ims.lab", "127.0.0.0/8"),
            peer("icscf.ims.lab", "192.0.2.10"),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.allows("scscf.ims.lab", ip("127.0.0.1")));
        assert!(p.allows("SCSCF.ims.lab", ip("127.0.0.3")));
        assert!(
            p.allows("scscf.ims.lab", ip("::ffff:127.0.0.1")),
            "v4-mapped"
        );
        assert!(!p.allows("scscf.ims.lab", ip("192.0.2.10")));
        assert!(p.allows("icscf.ims.lab", ip("192.0.2.10")));
        assert!(!p.allows("icscf.ims.lab", ip("192.0.2.11")));
        assert!(!p.allows("hss.evil.example", ip("127.0.0.1")));
        assert!(PeerPolicy::any().allows("anyone", ip("203.0.113.5")));
        assert!(!PeerPolicy::only(vec![]).allows("scscf.ims.lab", ip("127.0.0.1")));
    }

    #[test]
    fn networks_parse_with_their_limits() {
        assert_eq!(parse_network("10.0.0.0/8").unwrap().1, 8);
        assert_eq!(parse_network("::1").unwrap().1, 128);
        assert_eq!(
            parse_network("10.0.0.0/33").unwrap_err().to_string(),
            "'10.0.0.0/33': prefix length must be 0..=32"
        );
        assert_eq!(
            parse_network("nowhere").unwrap_err().to_string(),
            "'nowhere' is not an IP address or network"
        );
        assert!(contains(
            parse_network("0.0.0.0/0").unwrap(),
            "8.8.8.8".parse().unwrap()
        ));
    }
}
