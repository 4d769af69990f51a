//! The flight recorder with the lab's address book: names for addresses (nodes, UEs by the
//! identity they registered, far ends the nodes named), exports and ladder views of what the
//! [`Trace`] holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::lab::views;
use crate::trace::filter::TraceFilter;
use crate::trace::{Trace, TraceEvent};
use crate::trace_view::export;

/// The flight recorder with the lab's address book: what `rcslab trace export` reads.
#[derive(Clone)]
pub struct Recorder {
    pub(super) trace: Trace,
    pub(super) names: Arc<Mutex<HashMap<SocketAddr, String>>>,
}

impl Recorder {
    /// True when the lab records (`rcslab up --trace`, tests).
    pub fn is_enabled(&self) -> bool {
        self.trace.is_enabled()
    }

    /// Names the capturing node of a HEP packet: the address's own name, or the name of the
    /// node an ephemeral socket (an outgoing TCP connection) belongs to; `None` outside the lab.
    pub(super) fn hep_namer(&self) -> crate::trace::hep::Namer {
        let names = self.names.clone();
        let trace = self.trace.clone();
        Arc::new(move |a, at| {
            let own = names.lock().ok().and_then(|n| n.get(&a).cloned());
            own.or_else(|| {
                let node = trace.resolve_at(a, at);
                names.lock().ok().and_then(|n| n.get(&node).cloned())
            })
        })
    }

    /// Gives a name to an address for ladders and exports.
    pub fn name(&self, addr: SocketAddr, name: &str) {
        if let Ok(mut n) = self.names.lock() {
            n.insert(addr, name.to_string());
        }
    }

    /// Names every node's address for ladders.
    pub fn name_all(&self, a: &super::LabAddrs) {
        let names = [
            (a.pcscf, "P-CSCF"),
            (a.pcscf_ws, "P-CSCF"),
            (a.icscf, "I-CSCF"),
            (a.scscf, "S-CSCF"),
            (a.hss, "HSS"),
            (a.admin, "HSS-admin"),
            (a.oim, "O-IM"),
            (a.tim, "T-IM"),
            (a.ps, "PS"),
            (a.conf, "CONF"),
            (a.oim_msrp, "O-IM"),
            (a.tim_msrp, "T-IM"),
            (a.conf_msrp, "CONF"),
            (a.ipsmgw, "IP-SM-GW"),
            (a.smsc, "SMSC"),
            (a.webrsf, "WebRSF"),
            (a.tim_http, "T-IM"),
            (a.rtcweb, "RTCWeb"),
            (a.rtcweb_sip, "RTCWeb"),
            (a.content, "CS"),
            (a.ums, "UMS"),
        ];
        if let Ok(mut n) = self.names.lock() {
            n.extend(names.into_iter().map(|(a, s)| (a, s.to_string())));
        }
    }

    /// The node name of an address; else, for an address that is no alias of a node's
    /// connection, the name a node gave it ([`Trace::name_peer`]: an MSRP relay names the
    /// connection a user bound a leg from); else the address.
    pub fn name_of(&self, addr: SocketAddr) -> String {
        self.names
            .lock()
            .ok()
            .and_then(|n| n.get(&addr).cloned())
            .or_else(|| {
                (self.trace.resolve(addr) == addr)
                    .then(|| self.trace.peer_name(addr))
                    .flatten()
            })
            .unwrap_or_else(|| addr.to_string())
    }

    /// Forgets every recorded message and note (`rcslab trace clear`); returns how many
    /// messages it dropped.
    pub fn clear(&self) -> usize {
        self.trace.clear()
    }

    /// The recorder's time now.
    pub fn elapsed(&self) -> std::time::Duration {
        self.trace.elapsed()
    }

    /// The ladder in the paper's view (`paper`) or with CSCF roles (`roles`), one line per
    /// message.
    pub fn view_text(&self, view: &str) -> Vec<u8> {
        let v = if view == "paper" {
            views::View::Paper
        } else {
            views::View::Roles
        };
        let events = export::wire_events(&self.trace);
        let own = |a: SocketAddr| self.name_of(a);
        let ues = registered_names(&events, &own);
        views::ladder_view(
            &self.trace,
            |a| ues.get(&a).cloned().unwrap_or_else(|| self.name_of(a)),
            v,
        )
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
    }

    /// What was recorded, as `text`, `mermaid`, `html` or `pcap`.
    pub fn export(&self, format: &str) -> Option<Vec<u8>> {
        self.export_filtered(format, &TraceFilter::default())
    }

    /// What `filter` keeps of what was recorded, as `text`, `mermaid`, `html` or `pcap`.
    pub fn export_filtered(&self, format: &str, filter: &TraceFilter) -> Option<Vec<u8>> {
        let events: Vec<TraceEvent> = export::wire_events(&self.trace)
            .into_iter()
            .map(|mut e| {
                // Name the sockets of outgoing TCP connections after the node that owns them
                // (unless the socket has a name of its own).
                let known = |a: SocketAddr| self.name_of(a) != a.to_string();
                if !known(e.local) {
                    e.local = self.trace.resolve_at(e.local, e.at);
                }
                if !known(e.remote) {
                    e.remote = self.trace.resolve_at(e.remote, e.at);
                }
                e
            })
            .collect();
        let own = |a: SocketAddr| self.name_of(a);
        let ues = registered_names(&events, &own);
        let name = |a: SocketAddr| ues.get(&a).cloned().unwrap_or_else(|| self.name_of(a));
        let (events, notes) =
            crate::trace_view::filter::apply(filter, events, self.trace.notes(), &name);
        match format {
            "text" => Some(export::text(&events, &notes, &name).into_bytes()),
            "mermaid" => Some(export::mermaid(&events, &notes, &name).into_bytes()),
            "html" => {
                Some(export::html(&events, &notes, &name, "rcslab flight recorder").into_bytes())
            }
            "pcap" => Some(export::pcap(&events)),
            _ => None,
        }
    }
}

/// Clients outside the lab (unnamed addresses) named by the identity they registered
/// (`UE alice`).
pub fn registered_names(
    events: &[TraceEvent],
    name: &dyn Fn(SocketAddr) -> String,
) -> HashMap<SocketAddr, String> {
    let mut ues: HashMap<SocketAddr, String> = HashMap::new();
    for e in events {
        if e.bytes.starts_with(b"REGISTER ") && name(e.src()) == e.src().to_string() {
            if let Ok(crate::sip::SipMessage::Request(r)) = crate::sip::SipMessage::parse(&e.bytes)
            {
                if let Some(na) = r
                    .headers
                    .get("From")
                    .and_then(|f| crate::sip::NameAddr::parse(f).ok())
                {
                    let user = na.uri.aor();
                    let user = user
                        .strip_prefix("sip:")
                        .and_then(|u| u.split('@').next())
                        .unwrap_or(&user)
                        .to_string();
                    ues.insert(e.src(), format!("UE {user}"));
                }
            }
        }
    }
    ues
}

/// The admin API reads the recorder through [`crate::trace::source::TraceSource`], so the
/// HSS never names the lab.
impl crate::trace::source::TraceSource for Recorder {
    fn is_enabled(&self) -> bool {
        Recorder::is_enabled(self)
    }
    fn elapsed(&self) -> std::time::Duration {
        Recorder::elapsed(self)
    }
    fn clear(&self) -> usize {
        Recorder::clear(self)
    }
    fn view_text(&self, view: &str) -> Vec<u8> {
        Recorder::view_text(self, view)
    }
    fn export_filtered(&self, format: &str, filter: &TraceFilter) -> Option<Vec<u8>> {
        Recorder::export_filtered(self, format, filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_name_names_an_address_that_has_no_name_and_no_alias() {
        let trace = Trace::enabled();
        let rec = Recorder {
            trace: trace.clone(),
            names: Arc::default(),
        };
        let (ue, node, conn): (SocketAddr, SocketAddr, SocketAddr) = (
            "127.0.0.1:40001".parse().unwrap(),
            "127.0.0.1:5090".parse().unwrap(),
            "127.0.0.1:40002".parse().unwrap(),
        );
        assert_eq!(rec.name_of(ue), "127.0.0.1:40001");
        trace.name_peer(ue, "UE alice");
        assert_eq!(rec.name_of(ue), "UE alice");
        rec.name(ue, "UE alice's phone");
        assert_eq!(
            rec.name_of(ue),
            "UE alice's phone",
            "the address book first"
        );
        // A node's own outgoing connection is an alias: ladders resolve it to the node.
        trace.alias(conn, node);
        trace.name_peer(conn, "UE bob");
        assert_eq!(rec.name_of(conn), "127.0.0.1:40002");
    }
}
