//! The P-CSCF's side of SIP over WebSocket (RFC 7118): recognising our WebSocket listener in
//! a Route, the flow of a WebSocket UE's contact, `.invalid` hosts, and the trace note on a
//! REGISTER that came over a WebSocket.

use std::net::SocketAddr;

use super::Pcscf;
use crate::sip::{NameAddr, Request, Transport};

/// True when `uri`'s host is a made-up `.invalid` name (RFC 7118 §5, RFC 6761 §6.4): only a
/// WebSocket flow reaches it, and it must never go to DNS.
pub(super) fn is_invalid_host(uri: &str) -> bool {
    crate::sip::Uri::parse(uri)
        .ok()
        .and_then(|u| {
            u.host()
                .map(|h| h.to_ascii_lowercase().ends_with(".invalid"))
        })
        .unwrap_or(false)
}

impl Pcscf {
    /// True when `route` names our WebSocket listener (our Record-Route entry on a WebSocket
    /// UE's side, or the Route a browser preloads towards us).
    pub(super) fn is_ws_uri(&self, route: &str) -> bool {
        let Some(ws) = self.ep.ws_addr() else {
            return false;
        };
        NameAddr::parse(route)
            .ok()
            .and_then(|na| na.uri.as_sip().map(|u| (u.host.clone(), u.port)))
            .is_some_and(|(host, port)| {
                port == Some(ws.port()) && host.trim_matches(['[', ']']) == ws.ip().to_string()
            })
    }

    /// The WebSocket flow of the UE whose contact `uri` is, if it registered over one.
    pub(super) fn ws_flow_of_contact(&self, uri: &str) -> Option<(SocketAddr, Transport)> {
        self.binding_of_contact(uri)
            .map(|b| b.flow)
            .filter(|f| f.1 == Transport::Ws)
    }

    /// What we did for a REGISTER that came over a WebSocket flow, and why (the trace).
    pub(super) fn note_ws_register(&self, request: &Request, source: SocketAddr, path: &str) {
        self.ep.note(|| {
            let via = request
                .headers
                .first_value("Via")
                .and_then(|v| crate::sip::Via::parse(v).ok())
                .map(|v| v.host)
                .unwrap_or_default();
            let contacts: Vec<String> = request
                .headers
                .values("Contact")
                .iter()
                .filter_map(|c| NameAddr::parse(c).ok())
                .map(|na| na.uri.to_string())
                .collect();
            let creds = if request.headers.has("Authorization") {
                "with credentials".to_string()
            } else {
                let impi = request
                    .headers
                    .get("To")
                    .and_then(|t| NameAddr::parse(t).ok())
                    .and_then(|na| crate::store::default_impi(&na.uri.aor()).ok())
                    .unwrap_or_else(|| "?".into());
                format!("without credentials (challenge first; the S-CSCF derives the IMPI {impi} from To)")
            };
            format!(
                "REGISTER over WebSocket from {source} {creds}: Via host {via} is not used \
                 (received/rport added, answers go back over this connection, RFC 7118 §5); \
                 contact {} is reached over this flow, never resolved; Path {path} (ob: \
                 RFC 5626 §5.1 outbound flow)",
                contacts.join(", ")
            )
        });
    }
}
