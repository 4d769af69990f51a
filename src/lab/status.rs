//! What the running lab holds: the snapshot behind `rcslab status`, `GET /status`,
//! `GET /registrations` and the gauges of `GET /metrics`.
//!
//! A [`Status`] is read from the nodes' own read-only accessors (the S-CSCF's registrar, the
//! P-CSCF's bindings, the IM servers' sessions and MSRP relays, the T-IM store's pending
//! queue, the Diameter peer tables and links, each SIP endpoint's queues and transactions).
//! Each accessor takes its node's lock only to copy or count; lists are capped
//! ([`MAX_USERS`], [`MAX_CONTACTS`], [`MAX_PENDING_KEYS`]) and say when they stopped short.
//!
//! The JSON field names are a contract: scripts read `rcslab status --json`. Add fields, do
//! not rename them.

use std::sync::Arc;
use std::time::Instant;

use crate::cscf::pcscf::Pcscf;
use crate::cscf::scscf::Scscf;
use crate::diameter::client::{DiameterClient, PeerState};
use crate::diameter::peer::PeerTable;
use crate::im::ImServer;
use crate::metrics::{Metrics, Sample};
use crate::sip::Endpoint;

pub use crate::status::{
    ContactStatus, DiameterPeer, NodeCount, NodeQueues, RegisteredUser, Registrations, Sessions,
    Status, StoredMessages, UserCount, MAX_CONTACTS, MAX_PENDING_KEYS, MAX_USERS,
};

/// The lab's nodes, as the snapshot reads them. Built once by [`crate::lab::Lab::start`].
pub struct StatusSource {
    pub(crate) endpoints: Vec<(&'static str, Endpoint)>,
    /// Every S-CSCF by ladder name, the first first.
    pub(crate) scscfs: Vec<(&'static str, Arc<Scscf>)>,
    pub(crate) pcscf: Arc<Pcscf>,
    pub(crate) oim: Arc<ImServer>,
    pub(crate) tim: Arc<ImServer>,
    pub(crate) ps: Arc<crate::ps::PresenceServer>,
    pub(crate) webrsf: Arc<crate::webrsf::Gateway>,
    pub(crate) hss_peers: PeerTable,
    pub(crate) cx_links: Vec<(&'static str, DiameterClient)>,
    pub(crate) metrics: Arc<Metrics>,
}

impl StatusSource {
    /// Reads the snapshot.
    pub fn collect(&self) -> Status {
        Status {
            registrations: self.registrations(),
            sessions: self.sessions(),
            stored_messages: self.stored(),
            diameter_peers: self.peers(),
            queues: self.queues(),
        }
    }

    /// The registrations part alone (`GET /registrations`): every S-CSCF's registrar (TS
    /// 29.228 §6.1.1: each user is served by one of them), the first S-CSCF first.
    pub fn registrations(&self) -> Registrations {
        let now = Instant::now();
        let mut users = Vec::new();
        let mut count = 0;
        let mut scscfs = Vec::new();
        for (label, scscf) in &self.scscfs {
            let (regs, n) = scscf.registrations(MAX_USERS.saturating_sub(users.len()));
            count += n;
            scscfs.push(NodeCount {
                node: (*label).into(),
                count: n,
            });
            users.extend(regs.into_iter().map(|r| {
                let impu = r.impus.first().cloned().unwrap_or_default();
                RegisteredUser {
                    pcscf_bindings: self.pcscf.bindings_of(&impu).len(),
                    contacts_total: r.bindings.len(),
                    contacts: r
                        .bindings
                        .iter()
                        .take(MAX_CONTACTS)
                        .map(|b| ContactStatus {
                            contact: b.contact.clone(),
                            expires_in_secs: b.expires_at.saturating_duration_since(now).as_secs(),
                            path: b.path.clone(),
                        })
                        .collect(),
                    impu,
                    impi: r.impi,
                    impus: r.impus,
                    scscf: (*label).into(),
                }
            }));
        }
        Registrations {
            count,
            pcscf_bindings: self.pcscf.binding_count(),
            truncated: users.len() < count,
            users,
            scscfs,
        }
    }

    fn sessions(&self) -> Sessions {
        let im = [("O-IM", &self.oim), ("T-IM", &self.tim)];
        Sessions {
            chat: im
                .iter()
                .map(|(n, s)| NodeCount {
                    node: (*n).into(),
                    count: s.sessions_open(),
                })
                .collect(),
            msrp_pairs: im
                .iter()
                .map(|(n, s)| NodeCount {
                    node: (*n).into(),
                    count: s.msrp_stats().pairs,
                })
                .collect(),
            invites_in_progress: self
                .endpoints
                .iter()
                .map(|(n, ep)| NodeCount {
                    node: (*n).into(),
                    count: ep.stats().forwarded_invites,
                })
                .collect(),
            webrsf_users: self.webrsf.users_logged_in(),
            webrsf_channels: self.webrsf.channels_open(),
        }
    }

    fn stored(&self) -> StoredMessages {
        let Some(store) = self.tim.store() else {
            return StoredMessages::default();
        };
        let (counts, truncated) = store.pending_counts(MAX_USERS, MAX_PENDING_KEYS);
        StoredMessages {
            total: counts.values().sum(),
            per_user: counts
                .into_iter()
                .map(|(user, count)| UserCount { user, count })
                .collect(),
            truncated,
        }
    }

    fn peers(&self) -> Vec<DiameterPeer> {
        let mut v: Vec<DiameterPeer> = self
            .hss_peers
            .all()
            .into_iter()
            .map(|p| DiameterPeer {
                node: "HSS".into(),
                direction: "accepted".into(),
                origin_host: p.remote().origin_host.clone(),
                address: p.remote().addr.to_string(),
                state: "up".into(),
                peer_state: "Open".into(),
                pending_requests: p.pending_requests(),
            })
            .collect();
        v.sort_by(|a, b| (&a.origin_host, &a.address).cmp(&(&b.origin_host, &b.address)));
        v.truncate(MAX_USERS);
        for (node, link) in &self.cx_links {
            let state = link.state();
            let open = link.open_peer_info();
            let configured = link
                .peer_name()
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_string();
            v.push(DiameterPeer {
                node: (*node).into(),
                direction: "connects".into(),
                origin_host: open.as_ref().map(|o| o.0.clone()).unwrap_or(configured),
                address: link.peer_addr().to_string(),
                state: if state == PeerState::IOpen && open.is_some() {
                    "up"
                } else {
                    "down"
                }
                .into(),
                peer_state: format!("{state:?}"),
                pending_requests: open.map(|o| o.1).unwrap_or(0),
            });
        }
        v
    }

    fn queues(&self) -> Vec<NodeQueues> {
        self.endpoints
            .iter()
            .map(|(n, ep)| {
                let s = ep.stats();
                let (queued, cap) = ep.inbound_queue();
                NodeQueues {
                    node: (*n).into(),
                    sip_inbound_queued: queued,
                    sip_inbound_capacity: cap,
                    client_transactions: s.client_transactions,
                    server_transactions: s.server_transactions,
                    completed_server_transactions: s.completed_server_transactions,
                    tcp_connections: ep.load().transport.tcp_connections,
                    ws_connections: ep.load().transport.ws_connections,
                }
            })
            .collect()
    }

    /// `/metrics` in the Prometheus 0.0.4 text format (`openmetrics`: the OpenMetrics text),
    /// with the gauges read now.
    pub fn metrics_text(&self, openmetrics: bool) -> String {
        self.metrics
            .scrape(&sample_of(&self.collect()), openmetrics)
    }
}

/// The gauges of `/metrics` from a snapshot.
pub fn sample_of(s: &Status) -> Sample {
    let node = |n: &str| -> &'static str {
        match n {
            "P-CSCF" => "P-CSCF",
            "I-CSCF" => "I-CSCF",
            "S-CSCF" => "S-CSCF",
            "O-IM" => "O-IM",
            "T-IM" => "T-IM",
            "HSS" => "HSS",
            _ => "other",
        }
    };
    let mut peers_up: Vec<(&'static str, i64)> = Vec::new();
    for p in &s.diameter_peers {
        let n = node(&p.node);
        let up = i64::from(p.state == "up");
        match peers_up.iter_mut().find(|(k, _)| *k == n) {
            Some((_, c)) => *c += up,
            None => peers_up.push((n, up)),
        }
    }
    Sample {
        registrations: s.registrations.count as i64,
        contacts: s
            .registrations
            .users
            .iter()
            .map(|u| u.contacts_total as i64)
            .sum(),
        transactions: s
            .queues
            .iter()
            .map(|q| {
                (
                    node(&q.node),
                    (q.client_transactions + q.server_transactions) as i64,
                )
            })
            .collect(),
        stored_messages: s.stored_messages.total as i64,
        stored_by_user: s
            .stored_messages
            .per_user
            .iter()
            .map(|u| (u.user.clone(), u.count as i64))
            .collect(),
        chat_sessions: s
            .sessions
            .chat
            .iter()
            .map(|c| (node(&c.node), c.count as i64))
            .collect(),
        webrsf_channels: s.sessions.webrsf_channels as i64,
        diameter_peers_up: peers_up,
    }
}

impl crate::hss::admin_status::LabStatus for StatusSource {
    fn snapshot(&self) -> Status {
        self.collect()
    }
    fn registrations(&self) -> Registrations {
        StatusSource::registrations(self)
    }
    fn metrics(&self, openmetrics: bool) -> String {
        self.metrics_text(openmetrics)
    }
    fn lists(&self, owner: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        self.ps.lists_of(owner)
    }
    fn put_list(
        &self,
        owner: String,
        name: String,
        members: Vec<String>,
    ) -> crate::diameter::peer::BoxFuture<
        'static,
        Result<Vec<String>, crate::hss::admin_status::ListWriteError>,
    > {
        use crate::hss::admin_status::ListWriteError;
        use crate::ps::lists::ListError;
        let ps = self.ps.clone();
        Box::pin(async move {
            ps.put_list(&owner, &name, &members)
                .await
                .map_err(|e| match e {
                    ListError::Store(s) => ListWriteError::Store(s.to_string()),
                    e => ListWriteError::Invalid(e.to_string()),
                })
        })
    }
    fn watchers(&self, presentity: &str) -> crate::hss::admin_status::WatchersView {
        let w = self.ps.watchers_of(presentity);
        crate::hss::admin_status::WatchersView {
            allow: w.allow,
            block: w.block,
            pending: w.pending,
        }
    }
    fn put_watchers(
        &self,
        presentity: String,
        allow: Vec<String>,
        block: Vec<String>,
    ) -> crate::diameter::peer::BoxFuture<
        'static,
        Result<crate::hss::admin_status::WatchersView, crate::hss::admin_status::ListWriteError>,
    > {
        use crate::hss::admin_status::{ListWriteError, WatchersView};
        use crate::ps::RuleError;
        let ps = self.ps.clone();
        Box::pin(async move {
            ps.set_watchers(&presentity, &allow, &block)
                .await
                .map(|w| WatchersView {
                    allow: w.allow,
                    block: w.block,
                    pending: w.pending,
                })
                .map_err(|e| match e {
                    RuleError::Store(s) => ListWriteError::Store(s.to_string()),
                    e => ListWriteError::Invalid(e.to_string()),
                })
        })
    }
}

/// `rcslab status` for people: a section per thing, in the spirit of `kamcmd ul.dump`.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let r = &s.registrations;
    let _ = writeln!(
        o,
        "registrations: {} (P-CSCF bindings: {})",
        r.count, r.pcscf_bindings
    );
    // With several S-CSCFs, who serves whom (one S-CSCF: the output as it always was).
    let several = r.scscfs.len() > 1;
    if several {
        let by: Vec<String> = r
            .scscfs
            .iter()
            .map(|c| format!("{} {}", c.node, c.count))
            .collect();
        let _ = writeln!(o, "  by S-CSCF: {}", by.join(", "));
    }
    for u in &r.users {
        let at = if several {
            format!("  at {}", u.scscf)
        } else {
            String::new()
        };
        if u.contacts.is_empty() {
            let _ = writeln!(o, "  {}  no contact{at}", u.impu);
        }
        for c in &u.contacts {
            let _ = writeln!(
                o,
                "  {}  contact <{}>  expires in {} s{at}",
                u.impu, c.contact, c.expires_in_secs
            );
        }
        if u.contacts_total > u.contacts.len() {
            let _ = writeln!(
                o,
                "  {}  ... {} more contacts",
                u.impu,
                u.contacts_total - u.contacts.len()
            );
        }
    }
    if r.truncated {
        let _ = writeln!(o, "  ... {} more (not listed)", r.count - r.users.len());
    }
    let counts = |v: &[NodeCount]| {
        v.iter()
            .map(|c| format!("{} {}", c.node, c.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ss = &s.sessions;
    // No one total: a chat through O-IM and T-IM is held by both.
    let _ = writeln!(o, "sessions:");
    let _ = writeln!(o, "  chat: {}", counts(&ss.chat));
    let _ = writeln!(o, "  MSRP pairs: {}", counts(&ss.msrp_pairs));
    let _ = writeln!(
        o,
        "  INVITEs in progress: {}",
        counts(&ss.invites_in_progress)
    );
    let _ = writeln!(
        o,
        "  WebRSF: {} users, {} channels",
        ss.webrsf_users, ss.webrsf_channels
    );
    let st = &s.stored_messages;
    let _ = write!(o, "stored messages: {}", st.total);
    for u in &st.per_user {
        let _ = write!(o, "  {} {}", u.user, u.count);
    }
    if st.truncated {
        let _ = write!(o, "  (counting stopped short)");
    }
    o.push('\n');
    let _ = writeln!(o, "diameter peers:");
    for p in &s.diameter_peers {
        let arrow = if p.direction == "accepted" {
            "<-"
        } else {
            "->"
        };
        let _ = writeln!(
            o,
            "  {} {} {} {} {}{}",
            p.node,
            arrow,
            p.origin_host,
            p.address,
            p.state,
            if p.pending_requests > 0 {
                format!(" ({} pending)", p.pending_requests)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(o, "queues:");
    for q in &s.queues {
        let _ = writeln!(
            o,
            "  {:<7} sip inbound {}/{}  transactions {} client, {} server ({} completed)  tcp {}{}",
            q.node,
            q.sip_inbound_queued,
            q.sip_inbound_capacity,
            q.client_transactions,
            q.server_transactions,
            q.completed_server_transactions,
            q.tcp_connections,
            if q.ws_connections > 0 {
                format!(" (ws {})", q.ws_connections)
            } else {
                String::new()
            }
        );
    }
    o
}

/// Why `rcslab status` has nothing to print.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No lab answers for the data dir.
    #[error("no lab is running on {} (start one with `rcslab up --data-dir {}`)", .0.display(), .0.display())]
    NoLab(std::path::PathBuf),
    /// The admin API could not be reached or read.
    #[error("the lab's admin API at {addr} failed: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The admin API answered with another status than 200.
    #[error("the lab answered {code}: {body}")]
    Answered { code: u16, body: String },
    /// `GET /status` answered a body that is no status.
    #[error("the lab's status did not parse: {0}")]
    Parse(#[from] serde_json::Error),
}

/// What `rcslab status` prints: `GET /status` of the lab behind `api` (the one running on
/// `data_dir`, `None` when none answers), rendered for people or, with `json`, as the API
/// gave it. The error names the data dir; the caller exits with 1.
pub async fn fetch(
    api: Option<crate::hss::admin_client::AdminClient>,
    data_dir: &std::path::Path,
    json: bool,
) -> Result<String, StatusError> {
    let Some(api) = api else {
        return Err(StatusError::NoLab(data_dir.to_path_buf()));
    };
    let (code, body) = api
        .call(hyper::Method::GET, "/status", None)
        .await
        .map_err(|source| StatusError::Admin {
            addr: api.addr,
            source,
        })?;
    if code != 200 {
        return Err(StatusError::Answered { code, body });
    }
    if json {
        return Ok(format!("{}\n", body.trim_end()));
    }
    let s: Status = serde_json::from_str(&body)?;
    Ok(render(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_each_contact_and_stored_counts() {
        let s = Status {
            registrations: Registrations {
                count: 1,
                pcscf_bindings: 1,
                truncated: false,
                users: vec![RegisteredUser {
                    impu: "sip:alice@ims.lab".into(),
                    impi: "alice@ims.lab".into(),
                    impus: vec!["sip:alice@ims.lab".into()],
                    contacts: vec![ContactStatus {
                        contact: "sip:alice@127.0.0.1:40000".into(),
                        expires_in_secs: 583,
                        path: vec![],
                    }],
                    contacts_total: 1,
                    pcscf_bindings: 1,
                    scscf: "S-CSCF".into(),
                }],
                scscfs: vec![NodeCount {
                    node: "S-CSCF".into(),
                    count: 1,
                }],
            },
            stored_messages: StoredMessages {
                total: 1,
                per_user: vec![UserCount {
                    user: "sip:carol@ims.lab".into(),
                    count: 1,
                }],
                truncated: false,
            },
            ..Status::default()
        };
        let text = render(&s);
        assert!(text.contains(
            "  sip:alice@ims.lab  contact <sip:alice@127.0.0.1:40000>  expires in 583 s\n"
        ));
        assert!(text.contains("stored messages: 1  sip:carol@ims.lab 1\n"));
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let g = sample_of(&s);
        assert_eq!((g.registrations, g.contacts, g.stored_messages), (1, 1, 1));
    }
}
