//! Next-hop resolution for SIP URIs (a lab-sized subset of RFC 3263).
//!
//! Lab node names (`scscf.ims.lab`, ...) resolve through a static host table, IP literals are
//! used as they are, anything else goes to the system resolver. No NAPTR/SRV: the port is the
//! URI's or 5060, the transport is the URI's `transport=` parameter or UDP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::sip::transport::Transport;
use crate::sip::uri::Uri;

/// Resolves URIs to socket addresses.
#[derive(Clone, Default)]
pub struct Resolver {
    hosts: Arc<HashMap<String, IpAddr>>,
    services: Arc<HashMap<String, SocketAddr>>,
}

impl Resolver {
    /// A resolver with a static host table (names are matched case-insensitively).
    pub fn new(hosts: HashMap<String, IpAddr>) -> Resolver {
        let hosts = hosts
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Resolver {
            hosts: Arc::new(hosts),
            services: Arc::new(HashMap::new()),
        }
    }

    /// Adds service names: a URI naming one of these hosts without a port goes to the given
    /// socket (what a DNS SRV record would say), e.g. `sip:oim.ims.lab` -> the O-IM's port.
    pub fn with_services(mut self, services: HashMap<String, SocketAddr>) -> Resolver {
        let s = services
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        self.services = Arc::new(s);
        self
    }

    /// Resolves a URI string (`sip:host:port;transport=tcp`, possibly inside `<...>`).
    pub async fn resolve_str(&self, uri: &str) -> Option<(SocketAddr, Transport)> {
        let inner = uri.trim().trim_start_matches('<');
        let inner = inner.split('>').next().unwrap_or(inner);
        let u = Uri::parse(inner).ok()?;
        self.resolve(&u).await
    }

    /// Resolves a parsed URI. `tel:` URIs have no host and give `None`.
    pub async fn resolve(&self, uri: &Uri) -> Option<(SocketAddr, Transport)> {
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if uri.port().is_none() {
            if let Some(addr) = self.services.get(&host) {
                let transport = match uri.param("transport") {
                    Some(Some(t)) => Transport::parse(t).unwrap_or(Transport::Udp),
                    _ => Transport::Udp,
                };
                return Some((*addr, transport));
            }
        }
        let port = uri.port().unwrap_or(5060);
        let transport = match uri.param("transport") {
            Some(Some(t)) => Transport::parse(t).unwrap_or(Transport::Udp),
            _ => Transport::Udp,
        };
        let ip = if let Ok(ip) = host.parse::<IpAddr>() {
            ip
        } else if let Some(ip) = self.hosts.get(&host) {
            *ip
        } else {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()?
                .next()?
                .ip()
        };
        Some((SocketAddr::new(ip, port), transport))
    }
}
