//! The lab: starts every node of a [`LabConfig`] on its own loopback sockets, wires them
//! together by address only (they talk through real sockets), and offers the test-harness API:
//! node addresses, the flight recorder, a ladder of what crossed the wire, and shutdown. Each
//! node has its own start function (`nodes`); [`Lab::start`] (`rcslab up`) runs them all in
//! one process, [`run`] (`rcslab run NODE`) one per process.

pub mod bench;
pub mod bench_bridge;
pub mod bench_ft;
pub mod bench_group;
pub mod bench_presence;
pub mod bench_rtcweb;
pub mod bench_sms;
pub mod bench_web;
pub mod catalog;
pub mod esme;
pub mod eval;
mod nodes;
mod recorder;
pub mod run;
pub mod scenario;
mod start_ums;
pub mod status;
pub mod teach;
pub mod views;

pub use recorder::{registered_names, Recorder};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LabConfig;
use crate::cscf::pcscf::Pcscf;
use crate::cscf::scscf::Scscf;
use crate::diameter::client::{DiameterClient, PeerState};
use crate::im::history_api::{HistoryClient, HistoryToken};
use crate::sip::transaction::TimerConfig;
use crate::sip::Endpoint;
use crate::store::Store;
use crate::trace::Trace;

/// Errors starting a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A socket could not be bound (port in use?).
    #[error("{}", bind_message(what, addr, source))]
    Bind {
        /// Which node.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened (another process holds the data dir?).
    #[error("cannot open the data dir {dir}: {source}")]
    Store {
        /// The directory.
        dir: String,
        /// Why.
        source: crate::store::StoreError,
    },
    /// A CSCF could not open its Diameter link to the lab's own HSS.
    #[error("{what} could not connect to the HSS: {detail}")]
    Diameter {
        /// Which node.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A subscriber in the config is invalid.
    #[error("invalid subscriber in the lab config: {0}")]
    Subscriber(crate::store::StoreError),
    /// The group-chat focus CONF could not open its groups in the store.
    #[error("the conference focus CONF cannot open its groups in the data dir {dir}: {source}")]
    Focus {
        /// The directory.
        dir: String,
        /// Why.
        source: crate::focus::FocusError,
    },
    /// The SMS centre could not open its messages in the store.
    #[error("the SMS centre (IP-SM-GW) cannot open its messages in the data dir {dir}: {source}")]
    Smsc {
        /// The directory.
        dir: String,
        /// Why.
        source: crate::smsc::SmscError,
    },
    /// The unified-messaging gateway UMS could not open its store.
    #[error("the unified-messaging gateway UMS cannot start in {dir}: {source}")]
    Ums {
        /// The directory.
        dir: String,
        /// Why.
        source: crate::ums::UmsStartError,
    },
    /// The FT content server CS could not open its files or its index.
    #[error("the content server CS cannot start in {dir}: {source}")]
    Content {
        /// The directory.
        dir: String,
        /// Why.
        source: crate::content::ContentStartError,
    },
    /// `rcslab run scscfN` for an S-CSCF the lab file does not have.
    #[error("the lab file has no {node}: it lists {more} S-CSCF(s) in [[scscfs]] besides the first (scscf2 is the first [[scscfs]] entry)")]
    NoSuchScscf {
        /// The node asked for.
        node: String,
        /// How many `[[scscfs]]` entries there are.
        more: usize,
    },
}

/// What a failed bind tells the user: which node, and how to move it when the port is taken.
fn bind_message(what: &str, addr: &SocketAddr, e: &std::io::Error) -> String {
    let key = match what {
        "P-CSCF" => "pcscf",
        "P-CSCF WebSocket" => "pcscf_ws",
        "I-CSCF" => "icscf",
        "S-CSCF" => "scscf",
        "HSS" => "hss",
        "admin API" => "admin",
        "O-IM" => "oim",
        "T-IM" => "tim",
        "PS" => "ps",
        "CONF" => "conf",
        "CONF MSRP" => "conf_msrp",
        "IP-SM-GW" => "ipsmgw",
        "SMSC" => "smsc",
        "O-IM MSRP" => "oim_msrp",
        "T-IM MSRP" => "tim_msrp",
        "WebRSF" => "webrsf",
        "T-IM history" => "tim_http",
        "CS" => "content",
        "UMS" => "ums",
        _ => "",
    };
    match e.kind() {
        std::io::ErrorKind::AddrInUse if !key.is_empty() => format!(
            "cannot bind {what} on {addr}: the port is in use (another rcslab, or another program: \
             `ss -lntup 'sport = :{port}'` shows which).\n\
             Stop it, or move the {what} in a lab file and start with `rcslab up --config lab.toml` \
             (or `rcslab run NODE --config lab.toml`):\n\
             [nodes]\n{key} = \"{ip}:{other}\"",
            port = addr.port(),
            ip = addr.ip(),
            other = addr.port().wrapping_add(100),
        ),
        std::io::ErrorKind::AddrInUse => {
            format!("cannot bind {what} on {addr}: the port is in use")
        }
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot bind {what} on {addr}: no interface of this machine has that address"
        ),
        _ => format!("cannot bind {what} on {addr}: {e}"),
    }
}

/// What every node of a process shares, made once for `up` ([`Lab::start`]) and for
/// `run` ([`run`]): the recorder and its HEP tap (the sender task started), SIP timers, the
/// shutdown signal and the metrics registry.
pub(crate) struct Wiring {
    pub(crate) trace: Trace,
    pub(crate) timers: TimerConfig,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) shut_rx: watch::Receiver<bool>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) recorder: Recorder,
}

impl Wiring {
    pub(crate) fn new(config: &LabConfig, opts: &LabOptions) -> Wiring {
        // `[trace] hep` (or `opts.hep`): every message goes live to the HEP collector, named.
        let hep = opts.hep.or_else(|| config.trace.hep_target());
        let (tap, hep_queue) = match hep {
            Some(_) => {
                let (t, q) = crate::trace::hep::HepTap::channel();
                (Some(t), Some(q))
            }
            None => (None, None),
        };
        let trace = Trace::with_ring_and_tap(opts.trace.then(|| config.trace.limits()), tap);
        let (shutdown, shut_rx) = watch::channel(false);
        let recorder = Recorder {
            trace: trace.clone(),
            names: Arc::new(Mutex::new(HashMap::new())),
        };
        if let (Some(target), Some(queue)) = (hep, hep_queue) {
            tokio::spawn(crate::trace::hep::run_sender(
                queue,
                target,
                recorder.hep_namer(),
                shut_rx.clone(),
            ));
        }
        Wiring {
            trace,
            timers: opts.timers.unwrap_or_else(|| config.sip.timers()),
            shutdown,
            shut_rx,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            recorder,
        }
    }
}

/// Start-up options.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Record every message (tests and `--trace`).
    pub trace: bool,
    /// SIP timer values (tests shorten them).
    pub timers: Option<TimerConfig>,
    /// Send every SIP and Diameter message live as HEPv3 to this collector (`--hep`; without
    /// it `[trace] hep` of the lab file, if set).
    pub hep: Option<SocketAddr>,
}

/// The bound address of every node.
#[derive(Debug, Clone, Copy)]
pub struct LabAddrs {
    /// P-CSCF SIP (UDP and TCP).
    pub pcscf: SocketAddr,
    /// P-CSCF SIP over WebSocket (RFC 7118).
    pub pcscf_ws: SocketAddr,
    /// I-CSCF SIP.
    pub icscf: SocketAddr,
    /// S-CSCF SIP.
    pub scscf: SocketAddr,
    /// HSS Diameter.
    pub hss: SocketAddr,
    /// HSS provisioning API.
    pub admin: SocketAddr,
    /// O-IM application server.
    pub oim: SocketAddr,
    /// T-IM application server.
    pub tim: SocketAddr,
    /// The presence server PS.
    pub ps: SocketAddr,
    /// The group-chat conference focus CONF (SIP).
    pub conf: SocketAddr,
    /// O-IM MSRP.
    pub oim_msrp: SocketAddr,
    /// T-IM MSRP.
    pub tim_msrp: SocketAddr,
    /// CONF MSRP (the groups' sessions).
    pub conf_msrp: SocketAddr,
    /// The IP-SM-GW (SIP).
    pub ipsmgw: SocketAddr,
    /// The SMS centre's SMPP listener.
    pub smsc: SocketAddr,
    /// WebRSF HTTP.
    pub webrsf: SocketAddr,
    /// T-IM's history endpoint (HTTP, [`crate::im::history_api`]), which WebRSF reads.
    pub tim_http: SocketAddr,
    /// The RTCWeb gateway's page and WebSocket (`/ws`).
    pub rtcweb: SocketAddr,
    /// The RTCWeb gateway's SIP endpoint.
    pub rtcweb_sip: SocketAddr,
    /// The FT content server CS (HTTP).
    pub content: SocketAddr,
    /// The unified-messaging gateway UMS's business API (HTTP).
    pub ums: SocketAddr,
}

/// One line of a ladder: who sent what to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderLine {
    /// Sender's name (a node name, or `ip:port` for something outside the lab).
    pub from: String,
    /// Receiver's name.
    pub to: String,
    /// `SIP`, `Diameter`, ...
    pub protocol: String,
    /// First line or command name.
    pub summary: String,
}

impl LadderLine {
    /// Keeping a link between nodes up, not a flow: Diameter's capability exchange and
    /// watchdogs, SMPP's enquire_link, and the UMS's own SMPP session with the SMSC (bound at
    /// start-up, as the CSCFs' Diameter links are). Ladders of flows leave these out.
    pub fn is_upkeep(&self) -> bool {
        let s = self.summary.as_str();
        if matches!(s, "DWR" | "DWA" | "CER" | "CEA") {
            return true;
        }
        if self.protocol != "SMPP" {
            return false;
        }
        let command = s.split_whitespace().next().unwrap_or("");
        matches!(command, "enquire_link" | "enquire_link_resp")
            || ((self.from == "UMS" || self.to == "UMS")
                && matches!(
                    command,
                    "bind_transceiver" | "bind_transceiver_resp" | "unbind" | "unbind_resp"
                ))
    }
}

impl std::fmt::Display for LadderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} {} {}",
            self.from, self.to, self.protocol, self.summary
        )
    }
}

/// An S-CSCF besides the first (`[[scscfs]]`), as `rcslab up` runs it.
pub struct MoreScscf {
    /// Its ladder name: `S-CSCF2`, `S-CSCF3`, …
    pub label: &'static str,
    /// Its Diameter Origin-Host (the entry's `name`).
    pub origin_host: String,
    /// Its SIP address (UDP and TCP).
    pub addr: SocketAddr,
    /// The node (tests look at its registrations).
    pub scscf: Arc<Scscf>,
    /// Its own Cx link to the HSS.
    pub hss_link: DiameterClient,
}

/// A running lab.
pub struct Lab {
    /// The configuration it runs.
    pub config: LabConfig,
    /// Where each node listens.
    pub addrs: LabAddrs,
    /// The flight recorder (disabled unless asked for).
    pub trace: Trace,
    /// The subscriber store.
    pub store: Arc<Store>,
    /// How long start-up took.
    pub started_in: Duration,
    /// The P-CSCF (tests look at its bindings).
    pub pcscf: Arc<Pcscf>,
    /// The S-CSCF (tests look at its registrations); the first one when there are several.
    pub scscf: Arc<Scscf>,
    /// The S-CSCFs besides the first (`[[scscfs]]`), in lab order; none in the default lab.
    pub more_scscfs: Vec<MoreScscf>,
    /// The O-IM (tests look at its MSRP relay).
    pub oim: Arc<crate::im::ImServer>,
    /// The T-IM (tests look at who it believes is online).
    pub tim: Arc<crate::im::ImServer>,
    /// The presence server PS.
    pub ps: Arc<crate::ps::PresenceServer>,
    /// The group-chat conference focus CONF (tests look at the groups it holds).
    pub conf: Arc<crate::focus::Focus>,
    /// The SMS centre and its IP-SM-GW (tests look at what it holds).
    pub smsc: Arc<crate::smsc::Smsc>,
    /// The unified-messaging gateway UMS.
    pub ums: Arc<crate::ums::Ums>,
    /// The WebRSF gateway.
    pub webrsf: Arc<crate::webrsf::Gateway>,
    /// The patent's RTCWeb gateway.
    pub rtcweb: Arc<crate::rtcweb::node::RtcwebGateway>,
    /// The FT content server CS (tests look at its files).
    pub content: Arc<crate::content::ContentServer>,
    /// The admin API with the lab's token.
    pub admin: crate::hss::admin_client::AdminClient,
    /// The lab's Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What `rcslab status` reads.
    status: Arc<status::StatusSource>,
    /// Every node's SIP endpoint, by node name.
    endpoints: Vec<(&'static str, Endpoint)>,
    recorder: Recorder,
    shutdown: watch::Sender<bool>,
    data_dir: PathBuf,
    hss_cx: nodes::HssCx,
    scscf_hss: DiameterClient,
    icscf_hss: DiameterClient,
}

impl Lab {
    /// Starts every node. Subscribers of the config that the store lacks are provisioned;
    /// existing ones are left as they are (their SQN moved on).
    pub async fn start(
        config: LabConfig,
        data_dir: &Path,
        opts: LabOptions,
    ) -> Result<Lab, LabError> {
        let t0 = Instant::now();
        let Wiring {
            trace,
            timers,
            shutdown,
            shut_rx,
            metrics,
            recorder,
        } = Wiring::new(&config, &opts);
        let store = Arc::new(nodes::open_store(data_dir)?);
        let n = config.nodes.clone();

        // Every socket first: with ports 0 each node learns the others' real addresses.
        let (hss_listener, hss_addr) = nodes::bind_tcp("HSS", n.hss).await?;
        // Named now: the HEP tap names the Cx handshakes' ends as they happen.
        recorder.name(hss_addr, "HSS");
        let (admin_listener, admin_addr) = nodes::bind_tcp("admin API", n.admin).await?;
        let (oim_msrp_l, _) = nodes::bind_tcp("O-IM MSRP", n.oim_msrp).await?;
        let (tim_msrp_l, _) = nodes::bind_tcp("T-IM MSRP", n.tim_msrp).await?;
        let (conf_msrp_l, _) = nodes::bind_tcp("CONF MSRP", n.conf_msrp).await?;
        let (smpp_l, smpp_addr) = nodes::bind_tcp("SMSC", n.smsc).await?;
        let (ums_l, ums_addr) = nodes::bind_tcp("UMS", n.ums).await?;
        // T-IM's history endpoint: only this process's gateway reads it unless the lab file
        // places it ([`crate::im::history_api`]).
        let tim_http_at = n.tim_http.unwrap_or_else(|| SocketAddr::new(n.tim.ip(), 0));
        let (tim_http_l, tim_http) = nodes::bind_tcp("T-IM history", tim_http_at).await?;
        let (web_listener, web_addr) = nodes::bind_tcp("WebRSF", n.webrsf).await?;
        let (rtcweb_listener, rtcweb_addr) =
            nodes::bind_tcp("RTCWeb", n.rtcweb_or_default()).await?;
        let (content_listener, content_addr) =
            nodes::bind_tcp("CS", n.content_or_default()).await?;
        let mut ctx = nodes::Ctx::new(
            &config,
            recorder.clone(),
            metrics.clone(),
            shut_rx.clone(),
            timers,
        );
        let (scscf_ep, scscf_rx) = ctx.bind_sip("S-CSCF", n.scscf).await?;
        let mut scscfs = nodes::ScscfAt::all(&config);
        let mut more_eps = Vec::new();
        for s in scscfs.iter_mut().skip(1) {
            let (ep, rx) = ctx.bind_sip(s.label, s.addr).await?;
            s.addr = ep.local_addr();
            more_eps.push((ep, rx));
        }
        if let Some(first) = scscfs.first_mut() {
            first.addr = scscf_ep.local_addr();
        }
        let (oim_ep, oim_rx) = ctx.bind_sip("O-IM", n.oim).await?;
        let (tim_ep, tim_rx) = ctx.bind_sip("T-IM", n.tim).await?;
        let (ps_ep, ps_rx) = ctx.bind_sip("PS", n.ps).await?;
        let (conf_ep, conf_rx) = ctx.bind_sip("CONF", n.conf).await?;
        let (ipsmgw_ep, ipsmgw_rx) = ctx.bind_sip("IP-SM-GW", n.ipsmgw).await?;
        let (icscf_ep, icscf_rx) = ctx.bind_sip("I-CSCF", n.icscf).await?;
        let (pcscf_ep, pcscf_rx) = ctx.bind_sip("P-CSCF", n.pcscf).await?;
        let (rtcweb_ep, rtcweb_rx) = ctx.bind_sip("RTCWeb", n.rtcweb_sip_or_default()).await?;
        let pcscf_ws = nodes::listen_ws(&pcscf_ep, n.pcscf_ws_or_default()).await?;
        let peers = nodes::Peers {
            pcscf: pcscf_ep.local_addr(),
            icscf: icscf_ep.local_addr(),
            scscf: scscf_ep.local_addr(),
            scscfs,
            hss: config.diameter.hss_address.unwrap_or(hss_addr),
            oim: oim_ep.local_addr(),
            tim: tim_ep.local_addr(),
            tim_http,
            ps: ps_ep.local_addr(),
            conf: conf_ep.local_addr(),
            content: content_addr,
            ipsmgw: ipsmgw_ep.local_addr(),
        };
        // The application servers by name, at their bound addresses (what SRV would give).
        ctx.set_services(peers.oim, peers.tim, peers.ps, peers.conf, peers.ipsmgw);
        let mut endpoints = vec![
            ("P-CSCF", pcscf_ep.clone()),
            ("I-CSCF", icscf_ep.clone()),
            ("S-CSCF", scscf_ep.clone()),
            ("O-IM", oim_ep.clone()),
            ("T-IM", tim_ep.clone()),
            ("PS", ps_ep.clone()),
            ("CONF", conf_ep.clone()),
            ("IP-SM-GW", ipsmgw_ep.clone()),
            ("RTCWeb", rtcweb_ep.clone()),
        ];
        for ((ep, _), s) in more_eps.iter().zip(&peers.scscfs[1..]) {
            endpoints.push((s.label, ep.clone()));
        }

        // Then each node, in the order the old single start used.
        let oim = nodes::start_oim(&ctx, oim_ep, oim_rx, oim_msrp_l)?;
        let (tim, history_token) = nodes::start_tim(
            &ctx, tim_ep, tim_rx, tim_msrp_l, tim_http_l, &store, data_dir, &peers,
        )?;
        // T-IM and CONF grant file recipients at CS (RCC.07 §3.2.5).
        tim.set_grants(nodes::grant_client(&ctx, data_dir, &peers, "T-IM")?);
        let ps = nodes::start_ps(&ctx, ps_ep, ps_rx, &store, data_dir, &peers)?;
        let conf = nodes::start_conf(
            &ctx,
            conf_ep,
            conf_rx,
            conf_msrp_l,
            &store,
            data_dir,
            &peers,
        )?;
        conf.set_grants(nodes::grant_client(&ctx, data_dir, &peers, "CONF")?);
        let smsc = nodes::start_smsc(&ctx, ipsmgw_ep, ipsmgw_rx, smpp_l, &store, data_dir, &peers)?;
        let ums = start_ums::start_ums(&ctx, ums_l, smpp_addr, &store, data_dir, &peers)?;
        let hss = nodes::start_hss(
            &ctx,
            &store,
            data_dir,
            hss_listener,
            admin_listener,
            &peers.scscfs,
        )?;
        // The lab's own HSS is in this process, so a Cx link that does not open is a start-up
        // error; an external one (`[diameter] hss_address`) may come later: 480 until then.
        let wait_hss = config.diameter.hss_address.is_none();
        let (scscf, scscf_hss) =
            nodes::start_scscf(&ctx, scscf_ep, scscf_rx, &peers, &peers.scscfs[0], wait_hss)
                .await?;
        let mut more_scscfs = Vec::new();
        for ((ep, rx), s) in more_eps.into_iter().zip(&peers.scscfs[1..]) {
            let (node, link) = nodes::start_scscf(&ctx, ep, rx, &peers, s, wait_hss).await?;
            more_scscfs.push(MoreScscf {
                label: s.label,
                origin_host: s.origin_host.clone(),
                addr: s.addr,
                scscf: node,
                hss_link: link,
            });
        }
        let icscf_hss = nodes::start_icscf(&ctx, icscf_ep, icscf_rx, &peers, wait_hss).await?;
        let content =
            nodes::start_content(&ctx, content_listener, &store, data_dir, &peers).await?;
        let pcscf = nodes::start_pcscf(&ctx, pcscf_ep, pcscf_rx, &peers);
        let webrsf = nodes::start_webrsf(
            &ctx,
            web_listener,
            &peers,
            HistoryClient::new(tim_http, HistoryToken::Given(history_token)),
            data_dir,
        )?;
        let rtcweb_sip = rtcweb_ep.local_addr();
        let rtcweb = nodes::start_rtcweb(&ctx, rtcweb_ep, rtcweb_rx, rtcweb_listener, &peers);
        drop(ctx);

        let addrs = LabAddrs {
            pcscf: peers.pcscf,
            pcscf_ws,
            icscf: peers.icscf,
            scscf: peers.scscf,
            hss: hss_addr,
            admin: admin_addr,
            oim: peers.oim,
            tim: peers.tim,
            ps: peers.ps,
            conf: peers.conf,
            oim_msrp: oim.msrp_addr(),
            tim_msrp: tim.msrp_addr(),
            conf_msrp: conf.msrp_addr(),
            ipsmgw: peers.ipsmgw,
            smsc: smpp_addr,
            webrsf: web_addr,
            tim_http,
            rtcweb: rtcweb_addr,
            rtcweb_sip,
            content: content_addr,
            ums: ums_addr,
        };
        recorder.name_all(&addrs);
        for s in &more_scscfs {
            recorder.name(s.addr, s.label);
        }
        let _ = std::fs::write(data_dir.join("admin.addr"), admin_addr.to_string());
        let admin = crate::hss::admin_client::AdminClient::new(addrs.admin, hss.admin_token);
        let status = Arc::new(status::StatusSource {
            endpoints: endpoints.clone(),
            scscfs: std::iter::once(("S-CSCF", scscf.clone()))
                .chain(more_scscfs.iter().map(|s| (s.label, s.scscf.clone())))
                .collect(),
            pcscf: pcscf.clone(),
            oim: oim.clone(),
            tim: tim.clone(),
            ps: ps.clone(),
            webrsf: webrsf.clone(),
            hss_peers: hss.cx.peers.clone(),
            cx_links: [("S-CSCF", scscf_hss.clone()), ("I-CSCF", icscf_hss.clone())]
                .into_iter()
                .chain(more_scscfs.iter().map(|s| (s.label, s.hss_link.clone())))
                .collect(),
            metrics: metrics.clone(),
        });
        let _ = hss.status_slot.set(status.clone());
        Ok(Lab {
            metrics,
            status,
            endpoints,
            config,
            addrs,
            trace,
            store,
            started_in: t0.elapsed(),
            pcscf,
            scscf,
            more_scscfs,
            oim,
            tim,
            ps,
            conf,
            smsc,
            ums,
            webrsf,
            rtcweb,
            content,
            admin,
            recorder,
            shutdown,
            data_dir: data_dir.to_path_buf(),
            hss_cx: hss.cx,
            scscf_hss,
            icscf_hss,
        })
    }

    /// What the lab holds now: registrations, sessions, stored messages, Diameter peers,
    /// queues (what `rcslab status` and `GET /status` show).
    pub fn status(&self) -> status::Status {
        self.status.collect()
    }

    /// What each node's SIP endpoint holds (transactions, forwarded INVITEs), by node name.
    pub fn sip_stats(&self) -> Vec<(&'static str, crate::sip::endpoint::EndpointStats)> {
        self.endpoints
            .iter()
            .map(|(name, ep)| (*name, ep.stats()))
            .collect()
    }

    /// Each node's overload figures (admitted transactions, 503s, connections, drops).
    pub fn sip_load(&self) -> Vec<(&'static str, crate::sip::endpoint::LoadStats)> {
        self.endpoints
            .iter()
            .map(|(name, ep)| (*name, ep.load()))
            .collect()
    }

    /// The state of the S-CSCF's and the I-CSCF's Diameter links to the HSS.
    pub fn hss_links(&self) -> [(&'static str, PeerState); 2] {
        [
            ("S-CSCF", self.scscf_hss.state()),
            ("I-CSCF", self.icscf_hss.state()),
        ]
    }

    /// Restarts the HSS's Diameter side alone, as its peers would see a restarted HSS
    /// process: every Cx connection is closed and nothing listens for `down`, then the HSS
    /// listens again on the same address (its store, subscribers and registrations stay). The
    /// CSCFs reconnect by themselves (RFC 6733 §5.6 Tc).
    pub async fn restart_hss(&self, down: Duration) -> Result<(), LabError> {
        if let Ok(s) = self.hss_cx.stop.lock() {
            let _ = s.send(true);
        }
        tokio::time::sleep(down).await;
        let addr = self.addrs.hss;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| LabError::Bind {
                what: "HSS",
                addr,
                source,
            })?;
        self.hss_cx.serve(l);
        Ok(())
    }

    /// The flight recorder with the lab's address book.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// The ladder in the paper's view: O-CSCF / T-CSCF instead of each CSCF, no HSS
    /// ([`views`]).
    pub fn paper_ladder(&self) -> Vec<LadderLine> {
        let rec = self.recorder.clone();
        views::paper_ladder_of(&self.trace, move |a| rec.name_of(a))
    }

    /// The full ladder with each CSCF named by the side it acts for (`S-CSCF orig`,
    /// `S-CSCF term`, `P-CSCF orig`...).
    pub fn roles_ladder(&self) -> Vec<LadderLine> {
        let rec = self.recorder.clone();
        views::ladder_view(&self.trace, move |a| rec.name_of(a), views::View::Roles)
    }

    /// Gives a name to an address outside the lab (a UE) for ladders.
    pub fn name_addr(&self, addr: SocketAddr, name: &str) {
        if let Ok(mut n) = self.recorder.names.lock() {
            n.insert(addr, name.to_string());
        }
    }

    /// The name of an address, or the address itself.
    pub fn name_of(&self, addr: SocketAddr) -> String {
        self.recorder.name_of(addr)
    }

    /// Everything that crossed the wire so far, each message once, in order: messages sent by
    /// recording sockets, plus messages received from senders that record nothing (sipp...).
    pub fn ladder(&self) -> Vec<LadderLine> {
        ladder_of(&self.trace, |a| self.name_of(a))
    }

    /// What was recorded, as `text`, `mermaid` or `pcap` (see [`crate::trace_view::export`]).
    pub fn export(&self, format: &str) -> Option<Vec<u8>> {
        self.recorder.export(format)
    }

    /// Stops every node and removes the admin address file.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = std::fs::remove_file(self.data_dir.join("admin.addr"));
        let _ =
            std::fs::remove_file(start_ums::ums_dir(&self.data_dir).join(crate::ums::ADDR_FILE));
        // Give tasks a moment to drop their sockets and the store.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.store.durable().await;
    }
}

/// The live ladder `rcslab up --trace` prints: each message as a ladder line and, in time
/// order between them, the nodes' notes on their decisions (`    [S-CSCF] ...`).
pub fn ladder_with_notes(trace: &Trace, name: impl Fn(SocketAddr) -> String) -> Vec<String> {
    timed_ladder_with_notes(trace, name)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// [`ladder_with_notes`] with each line's time (`rcslab up --trace` prints what is newer than
/// what it printed last).
pub fn timed_ladder_with_notes(
    trace: &Trace,
    name: impl Fn(SocketAddr) -> String,
) -> Vec<(Duration, String)> {
    let events = crate::trace_view::export::wire_events(trace);
    let ues = registered_names(&events, &name);
    let named = |a: SocketAddr| ues.get(&a).cloned().unwrap_or_else(|| name(a));
    // The roles view: each CSCF named by the side it acts for (`S-CSCF orig`).
    let mut v: Vec<(Duration, String)> = views::timed_ladder_view(trace, named, views::View::Roles)
        .into_iter()
        .map(|(at, l)| (at, l.to_string()))
        .chain(
            timed_notes(trace, &name)
                .into_iter()
                .map(|(at, n)| (at, format!("    {n}"))),
        )
        .collect();
    v.sort_by_key(|(at, _)| *at);
    v
}

/// Builds a ladder from what `trace` recorded (see [`Lab::ladder`]): [`views::timed_ladder_of`]
/// without the times.
pub fn ladder_of(trace: &Trace, name: impl Fn(SocketAddr) -> String) -> Vec<LadderLine> {
    views::timed_ladder_of(trace, name)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// The nodes' notes with their times, each as `[NODE] text` (the node named as in ladders;
/// a UE by the identity it registered).
pub fn timed_notes(trace: &Trace, name: impl Fn(SocketAddr) -> String) -> Vec<(Duration, String)> {
    let events = crate::trace_view::export::wire_events(trace);
    let ues = registered_names(&events, &name);
    trace
        .notes()
        .into_iter()
        .map(|n| {
            let who = ues
                .get(&n.node)
                .cloned()
                .unwrap_or_else(|| name(trace.resolve_at(n.node, n.at)));
            (n.at, format!("[{who}] {}", n.text))
        })
        .collect()
}
