//! The lab: starts every node of a [`LabConfig`] on its own loopback sockets, wires them
//! together by address only (they talk through real sockets), and offers the test-harness API:
//! node addresses, the flight recorder, a ladder of what crossed the wire, and shutdown.

pub mod bench;
pub mod bench_web;
pub mod catalog;
pub mod eval;
mod recorder;
pub mod scenario;
pub mod status;
pub mod teach;
pub mod views;

pub use recorder::{registered_names, Recorder};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LabConfig;
use crate::cscf::icscf::Icscf;
use crate::cscf::pcscf::Pcscf;
use crate::cscf::scscf::Scscf;
use crate::diameter::client::{ClientOptions, DiameterClient, PeerState};
use crate::diameter::peer::{self, DiameterHandler, LocalPeer, PeerTable};
use crate::hss::{admin, CxServer, Hss};
use crate::sip::resolve::Resolver;
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
}

/// What a failed bind tells the user: which node, and how to move it when the port is taken.
fn bind_message(what: &str, addr: &SocketAddr, e: &std::io::Error) -> String {
    let key = match what {
        "P-CSCF" => "pcscf",
        "I-CSCF" => "icscf",
        "S-CSCF" => "scscf",
        "HSS" => "hss",
        "admin API" => "admin",
        "O-IM" => "oim",
        "T-IM" => "tim",
        "O-IM MSRP" => "oim_msrp",
        "T-IM MSRP" => "tim_msrp",
        "WebRSF" => "webrsf",
        _ => "",
    };
    match e.kind() {
        std::io::ErrorKind::AddrInUse if !key.is_empty() => format!(
            "cannot bind {what} on {addr}: the port is in use (another rcslab, or another program: \
             `ss -lntup 'sport = :{port}'` shows which).\n\
             Stop it, or move the {what} in a lab file and start with `rcslab up --config lab.toml`:\n\
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
    /// O-IM MSRP.
    pub oim_msrp: SocketAddr,
    /// T-IM MSRP.
    pub tim_msrp: SocketAddr,
    /// WebRSF HTTP.
    pub webrsf: SocketAddr,
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

impl std::fmt::Display for LadderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} {} {}",
            self.from, self.to, self.protocol, self.summary
        )
    }
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
    /// The S-CSCF (tests look at its registrations).
    pub scscf: Arc<Scscf>,
    /// The O-IM (tests look at its MSRP relay).
    pub oim: Arc<crate::im::ImServer>,
    /// The T-IM (tests look at who it believes is online).
    pub tim: Arc<crate::im::ImServer>,
    /// The WebRSF gateway.
    pub webrsf: Arc<crate::webrsf::Gateway>,
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
    hss_cx: HssCx,
    scscf_hss: DiameterClient,
    icscf_hss: DiameterClient,
}

/// What it takes to (re)start the HSS's Diameter side: [`Lab::restart_hss`].
struct HssCx {
    local: LocalPeer,
    handler: Arc<dyn DiameterHandler>,
    peers: PeerTable,
    trace: Trace,
    lab_shutdown: watch::Receiver<bool>,
    /// The peers it accepts.
    policy: Arc<crate::diameter::peer_policy::PeerPolicy>,
    /// Stops the running instance (its listener and every connection it accepted).
    stop: Mutex<watch::Sender<bool>>,
}

impl HssCx {
    /// Serves Cx on `listener` until the lab stops or [`HssCx::stop`] is used.
    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let mut lab = self.lab_shutdown.clone();
        let fwd = stop.clone();
        tokio::spawn(async move {
            let _ = lab.wait_for(|v| *v).await;
            let _ = fwd.send(true);
        });
        if let Ok(mut s) = self.stop.lock() {
            let _ = s.send(true);
            *s = stop;
        }
        tokio::spawn(peer::serve_with_policy(
            listener,
            self.local.clone(),
            self.handler.clone(),
            self.peers.clone(),
            self.trace.clone(),
            self.policy.clone(),
            stopped,
        ));
    }
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
        let hep = opts.hep.or_else(|| config.trace.hep_target());
        let (tap, hep_queue) = match hep {
            Some(_) => {
                let (t, q) = crate::trace::hep::HepTap::channel();
                (Some(t), Some(q))
            }
            None => (None, None),
        };
        let trace = Trace::with_ring_and_tap(opts.trace.then(|| config.trace.limits()), tap);
        let timers = opts.timers.unwrap_or_else(|| config.sip.timers());
        let (shutdown, shut_rx) = watch::channel(false);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let status_slot: crate::hss::admin_status::StatusSlot = Arc::default();
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
        std::fs::create_dir_all(data_dir).map_err(|e| LabError::Store {
            dir: data_dir.display().to_string(),
            source: crate::store::StoreError::Invalid(e.to_string()),
        })?;
        let store = Store::open(data_dir).map_err(|source| LabError::Store {
            dir: data_dir.display().to_string(),
            source,
        })?;
        // The admin API's token: made at the first start, kept in the data dir (0600).
        let admin_token = crate::hss::admin_auth::load_or_create_token(data_dir).map_err(|e| {
            LabError::Store {
                dir: data_dir.display().to_string(),
                source: crate::store::StoreError::Invalid(format!(
                    "{}: {e}",
                    crate::hss::admin_auth::TOKEN_FILE
                )),
            }
        })?;
        let missing: Vec<_> = config
            .subscribers
            .iter()
            .filter(|s| {
                s.impu
                    .first()
                    .map(|i| store.find(i).ok().flatten().is_none())
                    .unwrap_or(false)
            })
            .cloned()
            .collect();
        admin::add_subscribers(&store, &missing, &config.default_ifc)
            .map_err(LabError::Subscriber)?;
        let store = Arc::new(store);
        let domain = config.lab.domain.clone();
        let mw = crate::sip::Transport::parse(&config.lab.mw_transport)
            .unwrap_or(crate::sip::Transport::Tcp);
        let n = &config.nodes;

        let hosts: HashMap<String, IpAddr> = [
            (format!("pcscf.{domain}"), n.pcscf.ip()),
            (format!("icscf.{domain}"), n.icscf.ip()),
            (format!("scscf.{domain}"), n.scscf.ip()),
            (format!("hss.{domain}"), n.hss.ip()),
            (format!("oim.{domain}"), n.oim.ip()),
            (format!("tim.{domain}"), n.tim.ip()),
        ]
        .into_iter()
        .collect();
        let mut resolver = Resolver::new(hosts);

        // HSS: Diameter listener and the admin API.
        let hss_listener = TcpListener::bind(n.hss)
            .await
            .map_err(|source| LabError::Bind {
                what: "HSS",
                addr: n.hss,
                source,
            })?;
        let hss_addr = hss_listener.local_addr().map_err(|source| LabError::Bind {
            what: "HSS",
            addr: n.hss,
            source,
        })?;
        // Named now: the HEP tap names the Cx handshakes' ends as they happen.
        recorder.name(hss_addr, "HSS");
        let admin_listener = TcpListener::bind(n.admin)
            .await
            .map_err(|source| LabError::Bind {
                what: "admin API",
                addr: n.admin,
                source,
            })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| LabError::Bind {
                what: "admin API",
                addr: n.admin,
                source,
            })?;

        // The S-CSCF's SIP socket first: the HSS names it in Server-Name.
        let sip_cfg = config.sip.clone();
        let bind_sip = |what: &'static str, addr: SocketAddr| {
            let trace = trace.clone();
            let shut = shut_rx.clone();
            let limits = sip_cfg.limits(what == "P-CSCF");
            let counters = metrics.sip(what);
            async move {
                let (ep, rx) = Endpoint::bind_with(what, addr, timers, limits, trace, shut)
                    .await
                    .map_err(|source| LabError::Bind { what, addr, source })?;
                ep.set_metrics(counters);
                Ok::<_, LabError>((ep, rx))
            }
        };
        let (scscf_ep, scscf_rx) = bind_sip("S-CSCF", n.scscf).await?;
        let scscf_ep_kept = scscf_ep.clone();
        // The application servers, by name (what SRV records would give).
        let (oim_ep, oim_rx) = bind_sip("O-IM", n.oim).await?;
        let (tim_ep, tim_rx) = bind_sip("T-IM", n.tim).await?;
        let (oim_ep_kept, tim_ep_kept) = (oim_ep.clone(), tim_ep.clone());
        resolver = resolver.with_services(
            [
                (format!("oim.{domain}"), oim_ep.local_addr()),
                (format!("tim.{domain}"), tim_ep.local_addr()),
            ]
            .into_iter()
            .collect(),
        );
        let hub_for = |what: &'static str, addr: SocketAddr, opts: crate::im::relay::HubOptions| {
            let trace = trace.clone();
            let shut = shut_rx.clone();
            async move {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| LabError::Bind { what, addr, source })?;
                crate::im::relay::Hub::start(l, trace, opts, shut)
                    .map_err(|source| LabError::Bind { what, addr, source })
            }
        };
        let limits = config.im.msrp_limits();
        let (oim_hub, oim_hub_rx) = hub_for(
            "O-IM MSRP",
            n.oim_msrp,
            crate::im::relay::HubOptions {
                unbound: crate::im::relay::Unbound::Reject,
                manual_ready_b: false,
                limits,
            },
        )
        .await?;
        let (tim_hub, tim_hub_rx) = hub_for(
            "T-IM MSRP",
            n.tim_msrp,
            crate::im::relay::HubOptions {
                unbound: crate::im::relay::Unbound::Store,
                manual_ready_b: true,
                limits,
            },
        )
        .await?;
        oim_hub.set_metrics(metrics.msrp("O-IM"));
        tim_hub.set_metrics(metrics.msrp("T-IM"));
        let im_store = crate::im::store::ImStore::open(store.db(), store.commit().clone())
            .map_err(|source| LabError::Store {
                dir: data_dir.display().to_string(),
                source,
            })?
            .with_history_cap(config.im.history_per_conversation);
        let ttl = Duration::from_secs(config.im.store_ttl_secs);
        let history_store = im_store.clone();
        let oim = crate::im::ImServer::new(
            oim_ep.clone(),
            resolver.clone(),
            crate::im::ImRole::Originating,
            &format!("oim.{domain}"),
            oim_hub,
            None,
            ttl,
        );
        tokio::spawn(oim.clone().run(oim_rx, oim_hub_rx, shut_rx.clone()));
        let tim = crate::im::ImServer::new(
            tim_ep.clone(),
            resolver.clone(),
            crate::im::ImRole::Terminating,
            &format!("tim.{domain}"),
            tim_hub,
            Some(im_store),
            ttl,
        );
        tim.set_scscf(scscf_ep.local_addr(), &domain);
        tokio::spawn(tim.clone().run(tim_rx, tim_hub_rx, shut_rx.clone()));
        let scscf_name = Scscf::server_name(&scscf_ep, &domain, mw);

        let hss_peers = PeerTable::default();
        let hss = Hss::new(
            (*store).clone(),
            hss_peers.clone(),
            &config.hss.origin_host,
            &config.hss.origin_realm,
            config.hss.scscf_selection(&scscf_name),
        );
        let dia = &config.diameter;
        let request_timeout = Duration::from_millis(dia.request_timeout_ms.max(1));
        let hss_local = LocalPeer {
            origin_host: config.hss.origin_host.clone(),
            origin_realm: config.hss.origin_realm.clone(),
            host_ip: hss_addr.ip(),
            product_name: "rcslab HSS".into(),
            watchdog_interval: dia.timers().tw,
            request_timeout,
        };
        let hss_cx =
            HssCx {
                local: hss_local,
                handler: metrics.diameter("HSS", Arc::new(CxServer(hss.clone()))),
                peers: hss_peers,
                trace: trace.clone(),
                lab_shutdown: shut_rx.clone(),
                policy: Arc::new(config.hss.peer_policy(&domain, n.icscf, n.scscf).map_err(
                    |e| LabError::Diameter {
                        what: "HSS",
                        detail: e.to_string(),
                    },
                )?),
                stop: Mutex::new(watch::channel(false).0),
            };
        hss_cx.serve(hss_listener);
        tokio::spawn(admin::serve(
            admin_listener,
            crate::http_server::HttpLimits::from(&config.http),
            hss.clone(),
            recorder.clone(),
            config.default_ifc.clone(),
            admin_token.clone(),
            status_slot.clone(),
            shut_rx.clone(),
        ));

        let mut names: HashMap<SocketAddr, String> = HashMap::new();
        // The CSCFs' Cx links (RFC 6733 §5.6: they reconnect when the HSS goes away). The lab's
        // own HSS is in this process, so a link that does not open is a start-up error; an
        // external one (`[diameter] hss_address`) may come later: requests get 480 until then.
        let hss_target = dia.hss_address.unwrap_or(hss_addr);
        let external = dia.hss_address.is_some();
        let cx_link = |what: &'static str,
                       origin_host: String,
                       node: SocketAddr,
                       handler: Arc<dyn DiameterHandler>| {
            let opts = ClientOptions {
                addr: hss_target,
                peer_name: config.hss.origin_host.clone(),
                local: LocalPeer {
                    origin_host,
                    origin_realm: domain.clone(),
                    host_ip: node.ip(),
                    product_name: "rcslab".into(),
                    watchdog_interval: dia.timers().tw,
                    request_timeout,
                },
                timers: dia.timers(),
                on_connect: Some({
                    let names = recorder.names.clone();
                    crate::diameter::client::OnConnect(Arc::new(move |local| {
                        if let Ok(mut n) = names.lock() {
                            n.insert(local, what.to_string());
                        }
                    }))
                }),
            };
            let link = DiameterClient::start(opts, handler, trace.clone(), shut_rx.clone());
            link.set_metrics(metrics.diameter_sent(what));
            async move {
                if external {
                    tracing::info!(node = what, hss = %link.peer_name(), "connecting to the external HSS (in the background)");
                } else {
                    let wait = dia.timers().ts * 2;
                    link.wait_open(wait).await.map_err(|e| LabError::Diameter {
                        what,
                        detail: e.to_string(),
                    })?;
                }
                Ok::<_, LabError>(link)
            }
        };

        // S-CSCF.
        let scscf_cx = crate::cscf::scscf::ScscfCx::default();
        let scscf_hss = cx_link(
            "S-CSCF",
            format!("scscf.{domain}"),
            scscf_ep.local_addr(),
            metrics.diameter("S-CSCF", Arc::new(scscf_cx.clone())),
        )
        .await?;
        let scscf = Scscf::new(
            scscf_ep.clone(),
            scscf_hss.clone(),
            crate::cscf::scscf::ScscfSettings {
                domain: domain.clone(),
                origin_host: format!("scscf.{domain}"),
                registrar: config.registrar.clone(),
                default_scheme: config.auth.default_scheme.clone(),
                mw,
                resolver: resolver.clone(),
                auth: config.auth.limits(),
            },
        );
        scscf_cx.attach(&scscf);
        tokio::spawn(scscf.clone().run(scscf_rx, shut_rx.clone()));

        // I-CSCF.
        let (icscf_ep, icscf_rx) = bind_sip("I-CSCF", n.icscf).await?;
        let icscf_ep_kept = icscf_ep.clone();
        let icscf_hss = cx_link(
            "I-CSCF",
            format!("icscf.{domain}"),
            icscf_ep.local_addr(),
            metrics.diameter("I-CSCF", Arc::new(crate::cscf::scscf::CxClientHandler)),
        )
        .await?;
        scscf.set_icscf(icscf_ep.local_addr());
        scscf.set_as_wait(timers.t1 * 32);
        let icscf = Icscf::new(
            icscf_ep.clone(),
            icscf_hss.clone(),
            resolver.clone(),
            &domain,
            &format!("icscf.{domain}"),
            vec![(scscf_name.clone(), Vec::new())],
        );
        tokio::spawn(icscf.run(icscf_rx));

        // P-CSCF.
        let (pcscf_ep, pcscf_rx) = bind_sip("P-CSCF", n.pcscf).await?;
        let pcscf_ep_kept = pcscf_ep.clone();
        // The per-source limit faces UEs: the core's nodes are trusted.
        pcscf_ep.trust(vec![
            icscf_ep.local_addr(),
            scscf_ep_kept.local_addr(),
            oim_ep_kept.local_addr(),
            tim_ep_kept.local_addr(),
        ]);
        let pcscf = Pcscf::new(
            pcscf_ep.clone(),
            icscf_ep.local_addr(),
            mw,
            resolver.clone(),
            &domain,
        );
        // The I-CSCF follows a Route only to nodes of the network (no open relay).
        icscf_ep.trust(vec![
            pcscf_ep.local_addr(),
            scscf_ep_kept.local_addr(),
            oim_ep_kept.local_addr(),
            tim_ep_kept.local_addr(),
        ]);
        pcscf.set_subscribe_reg(config.pcscf.subscribe_reg);
        tokio::spawn(pcscf.clone().run(pcscf_rx));

        // WebRSF: an HTTP server whose web users register through the P-CSCF like UEs.
        let web_listener = TcpListener::bind(n.webrsf)
            .await
            .map_err(|source| LabError::Bind {
                what: "WebRSF",
                addr: n.webrsf,
                source,
            })?;
        let web_addr = web_listener.local_addr().map_err(|source| LabError::Bind {
            what: "WebRSF",
            addr: n.webrsf,
            source,
        })?;
        let namer_rec = recorder.clone();
        let webrsf = crate::webrsf::Gateway::new(
            config.webrsf.clone(),
            &domain,
            pcscf_ep.local_addr(),
            trace.clone(),
            Arc::new(move |a, name| namer_rec.name(a, name)),
            shut_rx.clone(),
        );
        webrsf.set_http_addr(web_addr);
        webrsf.set_history_store(history_store);
        tokio::spawn(crate::webrsf::http::serve(
            webrsf.clone(),
            web_listener,
            crate::http_server::HttpLimits::from(&config.http),
        ));

        let addrs = LabAddrs {
            pcscf: pcscf_ep.local_addr(),
            icscf: icscf_ep.local_addr(),
            scscf: scscf_ep.local_addr(),
            hss: hss_addr,
            admin: admin_addr,
            oim: oim_ep.local_addr(),
            tim: tim_ep.local_addr(),
            oim_msrp: oim.msrp_addr(),
            tim_msrp: tim.msrp_addr(),
            webrsf: web_addr,
        };
        names.insert(addrs.pcscf, "P-CSCF".into());
        names.insert(addrs.icscf, "I-CSCF".into());
        names.insert(addrs.scscf, "S-CSCF".into());
        names.insert(addrs.hss, "HSS".into());
        names.insert(addrs.admin, "HSS-admin".into());
        names.insert(addrs.oim, "O-IM".into());
        names.insert(addrs.tim, "T-IM".into());
        names.insert(oim.msrp_addr(), "O-IM".into());
        names.insert(tim.msrp_addr(), "T-IM".into());
        names.insert(web_addr, "WebRSF".into());
        if let Ok(mut n) = recorder.names.lock() {
            n.extend(names);
        }
        let _ = std::fs::write(data_dir.join("admin.addr"), admin_addr.to_string());
        let endpoints = vec![
            ("P-CSCF", pcscf_ep_kept),
            ("I-CSCF", icscf_ep_kept),
            ("S-CSCF", scscf_ep_kept),
            ("O-IM", oim_ep_kept),
            ("T-IM", tim_ep_kept),
        ];
        let admin = crate::hss::admin_client::AdminClient::new(addrs.admin, admin_token);
        let status = Arc::new(status::StatusSource {
            endpoints: endpoints.clone(),
            scscf: scscf.clone(),
            pcscf: pcscf.clone(),
            oim: oim.clone(),
            tim: tim.clone(),
            webrsf: webrsf.clone(),
            hss_peers: hss_cx.peers.clone(),
            cx_links: vec![("S-CSCF", scscf_hss.clone()), ("I-CSCF", icscf_hss.clone())],
            metrics: metrics.clone(),
        });
        let _ = status_slot.set(status.clone());
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
            oim: oim.clone(),
            tim,
            webrsf,
            admin,
            recorder,
            shutdown,
            data_dir: data_dir.to_path_buf(),
            hss_cx,
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

    /// What was recorded, as `text`, `mermaid` or `pcap` (see [`crate::trace::export`]).
    pub fn export(&self, format: &str) -> Option<Vec<u8>> {
        self.recorder.export(format)
    }

    /// Stops every node and removes the admin address file.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = std::fs::remove_file(self.data_dir.join("admin.addr"));
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
    let events = crate::trace::export::wire_events(trace);
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
    let events = crate::trace::export::wire_events(trace);
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
