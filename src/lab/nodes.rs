//! One start function per node. Each takes the sockets it serves on (bound by the caller) and
//! the addresses of the nodes it talks to ([`Peers`]), and reaches those nodes only through
//! sockets. [`super::Lab::start`] (`rcslab up`) binds every socket first, so that ports 0 work
//! and each node learns the others' real addresses, then calls these in sequence;
//! [`super::run`] (`rcslab run NODE`) binds one node's sockets and calls one of these, with
//! the others' addresses from `[nodes]`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::{LabError, Recorder};
use crate::config::LabConfig;
use crate::cscf::icscf::Icscf;
use crate::cscf::pcscf::Pcscf;
use crate::cscf::scscf::Scscf;
use crate::diameter::client::{ClientOptions, DiameterClient};
use crate::diameter::peer::{self, DiameterHandler, LocalPeer, PeerTable};
use crate::hss::{admin, CxServer, Hss};
use crate::im::history_api::HistoryClient;
use crate::metrics::Metrics;
use crate::sip::resolve::Resolver;
use crate::sip::transaction::TimerConfig;
use crate::sip::{Endpoint, Transport};
use crate::store::Store;
use crate::trace::Trace;

/// What a node's SIP endpoint hands it.
pub(crate) type SipRx = mpsc::UnboundedReceiver<crate::sip::endpoint::Incoming>;

/// What every node of one process shares: settings, the recorder, metrics, the stop signal.
pub(crate) struct Ctx<'a> {
    pub config: &'a LabConfig,
    pub trace: Trace,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub shut: watch::Receiver<bool>,
    pub timers: TimerConfig,
    pub domain: String,
    /// SIP transport between the CSCFs (Mw).
    pub mw: Transport,
    pub resolver: Resolver,
}

/// Where the nodes a node talks to are: bound addresses in `up`, `[nodes]` in `run`.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    pub pcscf: SocketAddr,
    pub icscf: SocketAddr,
    /// The first S-CSCF (`scscfs[0]`).
    pub scscf: SocketAddr,
    /// Every S-CSCF, the first first (`[nodes] scscf`, then `[[scscfs]]`).
    pub scscfs: Vec<ScscfAt>,
    pub hss: SocketAddr,
    pub oim: SocketAddr,
    pub tim: SocketAddr,
    pub tim_http: SocketAddr,
    /// The presence server.
    pub ps: SocketAddr,
    /// The group-chat conference focus.
    pub conf: SocketAddr,
    /// The FT content server CS (HTTP).
    pub content: SocketAddr,
    /// The IP-SM-GW (the SMS centre's SIP side).
    pub ipsmgw: SocketAddr,
}

/// One S-CSCF of the lab: its ladder name, Diameter Origin-Host, SIP address, capabilities.
#[derive(Debug, Clone)]
pub(crate) struct ScscfAt {
    pub label: &'static str,
    pub origin_host: String,
    pub addr: SocketAddr,
    pub capabilities: Vec<u32>,
}

impl ScscfAt {
    /// Every S-CSCF of `config` at its configured address.
    pub fn all(config: &LabConfig) -> Vec<ScscfAt> {
        config
            .scscf_list()
            .into_iter()
            .map(|(label, origin_host, addr, capabilities)| ScscfAt {
                label,
                origin_host,
                addr,
                capabilities,
            })
            .collect()
    }
}

impl Peers {
    /// Everything from the lab file (`rcslab run`).
    pub fn from_config(config: &LabConfig) -> Peers {
        let n = &config.nodes;
        Peers {
            pcscf: n.pcscf,
            icscf: n.icscf,
            scscf: n.scscf,
            scscfs: ScscfAt::all(config),
            hss: n.hss,
            oim: n.oim,
            tim: n.tim,
            tim_http: n.tim_http_or_default(),
            ps: n.ps,
            conf: n.conf,
            content: n.content_or_default(),
            ipsmgw: n.ipsmgw,
        }
    }

    /// Every S-CSCF's SIP address.
    pub fn scscf_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.scscfs.iter().map(|s| s.addr)
    }
}

impl<'a> Ctx<'a> {
    /// The shared parts for `config` (the recorder's trace records for every node); the
    /// resolver names the application servers `oim.DOMAIN` / `tim.DOMAIN` at their `[nodes]`
    /// addresses (what SRV records would give; see [`Ctx::set_services`]).
    pub fn new(
        config: &'a LabConfig,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        shut: watch::Receiver<bool>,
        timers: TimerConfig,
    ) -> Ctx<'a> {
        let domain = config.lab.domain.clone();
        let n = &config.nodes;
        let hosts: HashMap<String, IpAddr> = [
            (format!("pcscf.{domain}"), n.pcscf.ip()),
            (format!("icscf.{domain}"), n.icscf.ip()),
            (format!("scscf.{domain}"), n.scscf.ip()),
            (format!("hss.{domain}"), n.hss.ip()),
            (format!("oim.{domain}"), n.oim.ip()),
            (format!("tim.{domain}"), n.tim.ip()),
            (format!("ps.{domain}"), n.ps.ip()),
            (format!("conf.{domain}"), n.conf.ip()),
            (format!("ipsmgw.{domain}"), n.ipsmgw.ip()),
        ]
        .into_iter()
        .chain(
            config
                .scscfs
                .iter()
                .map(|s| (s.name.clone(), s.address.ip())),
        )
        .collect();
        let mut ctx = Ctx {
            mw: Transport::parse(&config.lab.mw_transport).unwrap_or(Transport::Tcp),
            config,
            trace: recorder.trace.clone(),
            recorder,
            metrics,
            shut,
            timers,
            domain,
            resolver: Resolver::new(hosts),
        };
        ctx.set_services(n.oim, n.tim, n.ps, n.conf, n.ipsmgw);
        ctx
    }

    /// Names the application servers at `oim`, `tim`, `ps`, `conf` and `ipsmgw` (`rcslab
    /// up` with ports 0: their bound addresses).
    pub fn set_services(
        &mut self,
        oim: SocketAddr,
        tim: SocketAddr,
        ps: SocketAddr,
        conf: SocketAddr,
        ipsmgw: SocketAddr,
    ) {
        let d = &self.domain;
        self.resolver = self.resolver.clone().with_services(
            [
                (format!("oim.{d}"), oim),
                (format!("tim.{d}"), tim),
                (format!("ps.{d}"), ps),
                (format!("conf.{d}"), conf),
                (format!("ipsmgw.{d}"), ipsmgw),
            ]
            .into_iter()
            .collect(),
        );
    }

    /// Binds a node's SIP endpoint (UDP and TCP) on `addr`.
    pub async fn bind_sip(
        &self,
        what: &'static str,
        addr: SocketAddr,
    ) -> Result<(Endpoint, SipRx), LabError> {
        let limits = self.config.sip.limits(what == "P-CSCF");
        let (ep, rx) = Endpoint::bind_with(
            what,
            addr,
            self.timers,
            limits,
            self.trace.clone(),
            self.shut.clone(),
        )
        .await
        .map_err(|source| LabError::Bind { what, addr, source })?;
        ep.set_metrics(self.metrics.sip(what));
        Ok((ep, rx))
    }

    /// The Diameter Cx link of a CSCF to the HSS at `hss` (RFC 6733 §5.6: it reconnects with
    /// backoff when the HSS goes away or is not up yet). With `wait`, start-up fails when the
    /// link does not open within 2 Ts (the lab's own HSS in `up`); without, the link opens in
    /// the background and requests get 480 until then (`run`, an external HSS).
    pub async fn cx_link(
        &self,
        what: &'static str,
        node: SocketAddr,
        handler: Arc<dyn DiameterHandler>,
        hss: SocketAddr,
        wait: bool,
    ) -> Result<DiameterClient, LabError> {
        let origin_host = format!(
            "{}.{}",
            what.to_ascii_lowercase().replace('-', ""),
            self.domain
        );
        self.cx_link_as(what, origin_host, node, handler, hss, wait)
            .await
    }

    /// [`Ctx::cx_link`] with its own Diameter Origin-Host (each S-CSCF has its own, TS 29.229).
    pub async fn cx_link_as(
        &self,
        what: &'static str,
        origin_host: String,
        node: SocketAddr,
        handler: Arc<dyn DiameterHandler>,
        hss: SocketAddr,
        wait: bool,
    ) -> Result<DiameterClient, LabError> {
        let dia = &self.config.diameter;
        let opts = self.cx_options(what, origin_host, node, hss);
        let link = DiameterClient::start(opts, handler, self.trace.clone(), self.shut.clone());
        link.set_metrics(self.metrics.diameter_sent(what));
        if wait {
            let wait = dia.timers().ts * 2;
            link.wait_open(wait).await.map_err(|e| LabError::Diameter {
                what,
                detail: e.to_string(),
            })?;
        } else {
            tracing::info!(node = what, hss = %hss, "connecting to the HSS (in the background)");
        }
        Ok(link)
    }

    /// How a Cx client of `what` (as `origin_host`, on `node`'s address) reaches the HSS at
    /// `hss`: the lab's Diameter timers, and each connection named after `what` in ladders.
    pub fn cx_options(
        &self,
        what: &'static str,
        origin_host: String,
        node: SocketAddr,
        hss: SocketAddr,
    ) -> ClientOptions {
        let dia = &self.config.diameter;
        ClientOptions {
            addr: hss,
            peer_name: self.config.hss.origin_host.clone(),
            local: LocalPeer {
                origin_host,
                origin_realm: self.domain.clone(),
                host_ip: node.ip(),
                product_name: "rcslab".into(),
                watchdog_interval: dia.timers().tw,
                request_timeout: Duration::from_millis(dia.request_timeout_ms.max(1)),
            },
            timers: dia.timers(),
            on_connect: Some({
                let names = self.recorder.names.clone();
                crate::diameter::client::OnConnect(Arc::new(move |local| {
                    if let Ok(mut n) = names.lock() {
                        n.insert(local, what.to_string());
                    }
                }))
            }),
        }
    }
}

/// Binds a TCP listener for `what`.
/// Opens the P-CSCF's SIP over WebSocket listener (RFC 7118) on `addr`.
pub(crate) async fn listen_ws(ep: &Endpoint, addr: SocketAddr) -> Result<SocketAddr, LabError> {
    ep.listen_ws(addr).await.map_err(|source| LabError::Bind {
        what: "P-CSCF WebSocket",
        addr,
        source,
    })
}

pub(crate) async fn bind_tcp(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), LabError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| LabError::Bind { what, addr, source })?;
    let a = l
        .local_addr()
        .map_err(|source| LabError::Bind { what, addr, source })?;
    Ok((l, a))
}

/// Opens (creating it) a data directory's sled store.
pub(crate) fn open_store(data_dir: &Path) -> Result<Store, LabError> {
    std::fs::create_dir_all(data_dir).map_err(|e| LabError::Store {
        dir: data_dir.display().to_string(),
        source: crate::store::StoreError::Invalid(e.to_string()),
    })?;
    Store::open(data_dir).map_err(|source| LabError::Store {
        dir: data_dir.display().to_string(),
        source,
    })
}

/// A token file in a data directory (made at the first start, mode 0600).
pub(crate) fn token(data_dir: &Path, file: &str) -> Result<String, LabError> {
    crate::hss::admin_auth::load_or_create_token_file(data_dir, file).map_err(|e| LabError::Store {
        dir: data_dir.display().to_string(),
        source: crate::store::StoreError::Invalid(format!("{file}: {e}")),
    })
}

/// The S-CSCF's SIP URI as the HSS hands it out in Server-Name (TS 29.228 §6.3.4): an IP
/// literal with the Mw transport, so nobody needs DNS to reach it.
pub(crate) fn scscf_name(scscf: SocketAddr, mw: Transport) -> String {
    crate::cscf::node_uri_at(scscf, None, mw)
}

/// What it takes to (re)start the HSS's Diameter side: [`super::Lab::restart_hss`].
pub(crate) struct HssCx {
    pub local: LocalPeer,
    pub handler: Arc<dyn DiameterHandler>,
    pub peers: PeerTable,
    pub trace: Trace,
    pub lab_shutdown: watch::Receiver<bool>,
    /// The peers it accepts.
    pub policy: Arc<crate::diameter::peer_policy::PeerPolicy>,
    /// Stops the running instance (its listener and every connection it accepted).
    pub stop: Mutex<watch::Sender<bool>>,
}

impl HssCx {
    /// Serves Cx on `listener` until the lab stops or [`HssCx::stop`] is used.
    pub fn serve(&self, listener: TcpListener) {
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

/// The running HSS: its Cx side and its admin API.
pub(crate) struct HssNode {
    pub cx: HssCx,
    pub admin_token: String,
    pub status_slot: crate::hss::admin_status::StatusSlot,
}

/// HSS (TS 29.228/29.229 Cx over RFC 6733): provisions the config's subscribers the store
/// lacks (existing ones stay as they are: their SQN moved on), serves Cx on `cx` and the
/// provisioning API on `admin` (token in `DIR/admin.token`).
pub(crate) fn start_hss(
    ctx: &Ctx<'_>,
    store: &Arc<Store>,
    data_dir: &Path,
    cx: TcpListener,
    admin_listener: TcpListener,
    scscfs: &[ScscfAt],
) -> Result<HssNode, LabError> {
    let config = ctx.config;
    let admin_token = token(data_dir, crate::hss::admin_auth::TOKEN_FILE)?;
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
    admin::add_subscribers(store, &missing, &config.default_ifc).map_err(LabError::Subscriber)?;
    let hss_addr = cx.local_addr().map_err(|source| LabError::Bind {
        what: "HSS",
        addr: config.nodes.hss,
        source,
    })?;
    let peers = PeerTable::default();
    let names: Vec<String> = scscfs.iter().map(|s| scscf_name(s.addr, ctx.mw)).collect();
    let hss = Hss::new(
        (**store).clone(),
        peers.clone(),
        &config.hss.origin_host,
        &config.hss.origin_realm,
        config.hss.scscf_selection(&names),
        names
            .iter()
            .zip(scscfs)
            .map(|(n, s)| (n.clone(), s.origin_host.clone()))
            .collect(),
    );
    let dia = &config.diameter;
    let n = &config.nodes;
    let hss_cx = HssCx {
        local: LocalPeer {
            origin_host: config.hss.origin_host.clone(),
            origin_realm: config.hss.origin_realm.clone(),
            host_ip: hss_addr.ip(),
            product_name: "rcslab HSS".into(),
            watchdog_interval: dia.timers().tw,
            request_timeout: Duration::from_millis(dia.request_timeout_ms.max(1)),
        },
        handler: crate::diameter::metered::metered(
            ctx.metrics.diameter_answered("HSS"),
            Arc::new(CxServer(hss.clone())),
        ),
        peers,
        trace: ctx.trace.clone(),
        lab_shutdown: ctx.shut.clone(),
        policy: Arc::new(
            config
                .hss
                .peer_policy_with(
                    &ctx.domain,
                    n.icscf,
                    &ScscfAt::all(config)
                        .into_iter()
                        .map(|s| (s.origin_host, s.addr))
                        .chain([config.content_peer()])
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| LabError::Diameter {
                    what: "HSS",
                    detail: e.to_string(),
                })?,
        ),
        stop: Mutex::new(watch::channel(false).0),
    };
    hss_cx.serve(cx);
    let status_slot: crate::hss::admin_status::StatusSlot = Arc::default();
    tokio::spawn(admin::serve(
        admin_listener,
        crate::http_server::HttpLimits::from(&config.http),
        hss,
        ctx.recorder.clone(),
        config.default_ifc.clone(),
        admin_token.clone(),
        status_slot.clone(),
        ctx.shut.clone(),
    ));
    Ok(HssNode {
        cx: hss_cx,
        admin_token,
        status_slot,
    })
}

/// The MSRP relay of an application server (RFC 4975 §7 relaying, O-IM and T-IM).
fn hub(
    ctx: &Ctx<'_>,
    what: &'static str,
    listener: TcpListener,
    unbound: crate::im::relay::Unbound,
    manual_ready_b: bool,
) -> Result<
    (
        crate::im::relay::Hub,
        mpsc::UnboundedReceiver<crate::im::relay::HubEvent>,
    ),
    LabError,
> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let opts = crate::im::relay::HubOptions {
        unbound,
        manual_ready_b,
        limits: ctx.config.im.msrp_limits(),
    };
    let (h, rx) = crate::im::relay::Hub::start(listener, ctx.trace.clone(), opts, ctx.shut.clone())
        .map_err(|source| LabError::Bind { what, addr, source })?;
    h.set_metrics(ctx.metrics.msrp(if what.starts_with("O-IM") {
        "O-IM"
    } else {
        "T-IM"
    }));
    Ok((h, rx))
}

/// O-IM, the originating messaging AS (TS 24.229 §5.7.4), with its MSRP relay on `msrp`.
pub(crate) fn start_oim(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    msrp: TcpListener,
) -> Result<Arc<crate::im::ImServer>, LabError> {
    let (h, hub_rx) = hub(
        ctx,
        "O-IM MSRP",
        msrp,
        crate::im::relay::Unbound::Reject,
        false,
    )?;
    let oim = crate::im::ImServer::new(
        ep,
        ctx.resolver.clone(),
        crate::im::ImRole::Originating,
        &format!("oim.{}", ctx.domain),
        h,
        None,
        Duration::from_secs(ctx.config.im.store_ttl_secs),
    );
    tokio::spawn(oim.clone().run(rx, hub_rx, ctx.shut.clone()));
    Ok(oim)
}

/// T-IM, the terminating messaging AS (TS 24.229 §5.7.5), storing in `store`'s sled db, with
/// its MSRP relay on `msrp` and its history endpoint on `http` (token in
/// `DIR/history.token`). Returns it with the history token.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_tim(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    msrp: TcpListener,
    http: TcpListener,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<(Arc<crate::im::ImServer>, String), LabError> {
    let (h, hub_rx) = hub(
        ctx,
        "T-IM MSRP",
        msrp,
        crate::im::relay::Unbound::Store,
        true,
    )?;
    let im_store = crate::im::store::ImStore::open(store.db(), store.commit().clone())
        .map_err(|source| LabError::Store {
            dir: data_dir.display().to_string(),
            source,
        })?
        .with_history_cap(ctx.config.im.history_per_conversation);
    let history_token = token(data_dir, crate::im::history_api::TOKEN_FILE)?;
    tokio::spawn(crate::im::history_api::serve(
        http,
        crate::http_server::HttpLimits::from(&ctx.config.http),
        im_store.clone(),
        history_token.clone(),
        ctx.shut.clone(),
    ));
    let tim = crate::im::ImServer::new(
        ep,
        ctx.resolver.clone(),
        crate::im::ImRole::Terminating,
        &format!("tim.{}", ctx.domain),
        h,
        Some(im_store),
        Duration::from_secs(ctx.config.im.store_ttl_secs),
    );
    tim.set_scscf(peers.scscf, &ctx.domain);
    tokio::spawn(tim.clone().run(rx, hub_rx, ctx.shut.clone()));
    Ok((tim, history_token))
}

/// PS, the presence server (TS 24.141, RFC 3856), an AS the S-CSCF reaches by iFC, and the
/// RLS (RFC 4662), keeping the lists written to it in `store`'s sled db; it trusts the
/// S-CSCFs of `peers`.
pub(crate) fn start_ps(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<Arc<crate::ps::PresenceServer>, LabError> {
    // Requests reach the PS over ISC from the S-CSCFs only (the iFC, reg-event NOTIFYs):
    // its trust domain.
    ep.trust(peers.scscf_addrs().collect());
    let ps = crate::ps::PresenceServer::new(
        ep,
        ctx.resolver.clone(),
        &format!("ps.{}", ctx.domain),
        &ctx.config.presence,
        Some((store.db(), store.commit().clone())),
    )
    .map_err(|source| LabError::Store {
        dir: data_dir.display().to_string(),
        source,
    })?;
    tokio::spawn(ps.clone().run(rx, ctx.shut.clone()));
    Ok(ps)
}

/// CONF, the group-chat conference focus (OMA SIMPLE IM 1.0 §7, GSMA RCC.07 §3.4, RFC 4579),
/// an AS the S-CSCF reaches by iFC for the conference factory and each group's conference URI;
/// members' MSRP sessions connect to `msrp`, and groups and their history are kept in `store`'s
/// sled db. It trusts the S-CSCFs of `peers` and sends the INVITEs it originates to the first.
pub(crate) fn start_conf(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    msrp: TcpListener,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<Arc<crate::focus::Focus>, LabError> {
    // Requests reach CONF over ISC from the S-CSCFs only (the iFC): its trust domain.
    ep.trust(peers.scscf_addrs().collect());
    let focus = crate::focus::Focus::new(
        ep,
        ctx.resolver.clone(),
        &format!("conf.{}", ctx.domain),
        msrp,
        ctx.trace.clone(),
        (store.db(), store.commit().clone()),
        focus_settings(&ctx.config.group),
    )
    .map_err(|source| LabError::Focus {
        dir: data_dir.display().to_string(),
        source,
    })?;
    focus.set_scscf(peers.scscf);
    tokio::spawn(focus.clone().run(rx, ctx.shut.clone()));
    Ok(focus)
}

/// The SMS centre and its IP-SM-GW (TS 24.341), an AS the S-CSCF reaches by iFC for
/// `application/vnd.3gpp.sms` MESSAGEs and third-party REGISTERs; it keeps its messages in
/// `store`'s sled db, trusts the S-CSCFs of `peers` and sends what it originates to the I-CSCF.
pub(crate) fn start_smsc(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    smpp: TcpListener,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<Arc<crate::smsc::Smsc>, LabError> {
    ep.trust(peers.scscf_addrs().collect());
    let s = &ctx.config.smsc;
    let settings = crate::smsc::SmscSettings {
        address: format!("+{}", s.digits()),
        validity: Duration::from_secs(s.validity_secs),
        max_validity: Duration::from_secs(s.max_validity_secs),
        retry: Duration::from_secs(s.retry_secs),
        ack_timeout: Duration::from_secs(s.ack_timeout_secs),
        max_stored: s.max_stored,
        max_parts: s.max_parts,
        short_codes: s
            .accounts
            .iter()
            .flat_map(|a| {
                a.short_codes
                    .iter()
                    .map(|c| (c.trim_start_matches('+').to_string(), a.system_id.clone()))
            })
            .collect(),
    };
    let smsc = crate::smsc::Smsc::new(
        ep,
        ctx.resolver.clone(),
        &format!("ipsmgw.{}", ctx.domain),
        store.db(),
        store.commit().clone(),
        settings,
    )
    .map_err(|e| LabError::Smsc {
        dir: data_dir.display().to_string(),
        source: e,
    })?;
    smsc.set_icscf(peers.icscf);
    tokio::spawn(smsc.clone().run(rx, ctx.shut.clone()));
    let smpp_settings = crate::smsc::smpp::SmppSettings {
        accounts: s
            .accounts
            .iter()
            .map(|a| crate::smsc::smpp::SmppAccount {
                system_id: a.system_id.clone(),
                password: a.password.clone(),
            })
            .collect(),
        max_connections: s.smpp_max_connections,
        window: s.smpp_window,
        bind_timeout: Duration::from_secs(s.smpp_bind_timeout_secs),
        idle_timeout: Duration::from_secs(s.smpp_idle_timeout_secs),
        response_timeout: Duration::from_secs(s.smpp_response_timeout_secs),
        max_bind_failures: s.smpp_max_bind_failures,
        bind_block: Duration::from_secs(s.smpp_bind_block_secs),
        max_pdu: crate::smpp::DEFAULT_MAX_PDU,
    };
    smsc.serve_smpp(
        smpp_settings,
        smpp,
        Some(ctx.trace.clone()),
        ctx.shut.clone(),
    );
    Ok(smsc)
}

/// `[group]` as the focus takes it (here, not in `config`: a codec layer imports no node).
fn focus_settings(g: &crate::config::GroupSection) -> crate::focus::FocusSettings {
    crate::focus::FocusSettings {
        max_members: g.max_members,
        factory: g.factory.clone(),
        max_message_size: g.max_message_size,
        idle_timeout: (g.idle_timeout > 0).then(|| std::time::Duration::from_secs(g.idle_timeout)),
    }
}

/// S-CSCF (TS 24.229 §5.4): registrar and session routing with iFC; its own Cx link to the
/// HSS at `peers.hss`, as `which` (one of `peers.scscfs`: its ladder name and Origin-Host).
pub(crate) async fn start_scscf(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    peers: &Peers,
    which: &ScscfAt,
    wait_hss: bool,
) -> Result<(Arc<Scscf>, DiameterClient), LabError> {
    let config = ctx.config;
    let cx = crate::cscf::scscf::ScscfCx::default();
    let link = ctx
        .cx_link_as(
            which.label,
            which.origin_host.clone(),
            ep.local_addr(),
            crate::diameter::metered::metered(
                ctx.metrics.diameter_answered(which.label),
                Arc::new(cx.clone()),
            ),
            peers.hss,
            wait_hss,
        )
        .await?;
    let scscf = Scscf::new(
        ep,
        link.clone(),
        crate::cscf::scscf::ScscfSettings {
            domain: ctx.domain.clone(),
            origin_host: which.origin_host.clone(),
            registrar: config.registrar.clone(),
            default_scheme: config.auth.default_scheme.clone(),
            mw: ctx.mw,
            resolver: ctx.resolver.clone(),
            auth: config.auth.limits(),
        },
    );
    cx.attach(&scscf);
    tokio::spawn(scscf.clone().run(rx, ctx.shut.clone()));
    scscf.set_icscf(peers.icscf);
    scscf.set_as_wait(ctx.timers.t1 * 32);
    Ok((scscf, link))
}

/// I-CSCF (TS 24.229 §5.3): asks the HSS (UAR, LIR) and forwards to the S-CSCF it names; it
/// follows a Route only to nodes of the network (no open relay).
pub(crate) async fn start_icscf(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    peers: &Peers,
    wait_hss: bool,
) -> Result<DiameterClient, LabError> {
    let link = ctx
        .cx_link(
            "I-CSCF",
            ep.local_addr(),
            crate::diameter::metered::metered(
                ctx.metrics.diameter_answered("I-CSCF"),
                Arc::new(crate::cscf::scscf::CxClientHandler),
            ),
            peers.hss,
            wait_hss,
        )
        .await?;
    ep.trust(
        [peers.pcscf, peers.oim, peers.tim, peers.ps, peers.conf]
            .into_iter()
            .chain(peers.scscf_addrs())
            .collect(),
    );
    // The S-CSCFs it may choose from when the HSS answers Server-Capabilities (TS 29.228
    // §6.1.1.1), with what each offers, in lab order.
    let icscf = Icscf::new(
        ep,
        link.clone(),
        ctx.resolver.clone(),
        &ctx.domain,
        &format!("icscf.{}", ctx.domain),
        peers
            .scscfs
            .iter()
            .map(|s| (scscf_name(s.addr, ctx.mw), s.capabilities.clone()))
            .collect(),
    );
    tokio::spawn(icscf.run(rx));
    Ok(link)
}

/// P-CSCF (TS 24.229 §5.2): the UEs' first hop; the per-source limit faces UEs, the core's
/// nodes are trusted.
pub(crate) fn start_pcscf(ctx: &Ctx<'_>, ep: Endpoint, rx: SipRx, peers: &Peers) -> Arc<Pcscf> {
    ep.trust(
        [peers.icscf, peers.oim, peers.tim, peers.ps, peers.conf]
            .into_iter()
            .chain(peers.scscf_addrs())
            .collect(),
    );
    let pcscf = Pcscf::new(ep, peers.icscf, ctx.mw, ctx.resolver.clone(), &ctx.domain);
    pcscf.set_subscribe_reg(ctx.config.pcscf.subscribe_reg);
    tokio::spawn(pcscf.clone().run(rx));
    pcscf
}

/// Where the content server keeps its files and its grant token: `[content] dir`, else
/// `content/` under `data_dir`.
pub(crate) fn content_dir(config: &LabConfig, data_dir: &Path) -> std::path::PathBuf {
    if config.content.dir.is_empty() {
        data_dir.join("content")
    } else {
        std::path::PathBuf::from(&config.content.dir)
    }
}

/// The bearer secret of CS's grant API: `[content] grant_secret`, else the token in
/// [`content_dir`] (made at the first start of whichever node needs it first: CS, or T-IM
/// and CONF, which present it).
pub(crate) fn content_secret(config: &LabConfig, data_dir: &Path) -> Result<String, LabError> {
    if !config.content.grant_secret.is_empty() {
        return Ok(config.content.grant_secret.clone());
    }
    let dir = content_dir(config, data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Store {
        dir: dir.display().to_string(),
        source: crate::store::StoreError::Invalid(format!("cannot make the directory: {e}")),
    })?;
    token(&dir, crate::content::GRANT_TOKEN_FILE)
}

/// How a messaging server (`name`: T-IM, CONF) grants file recipients at CS: CS's address,
/// the base of its URLs (`[content] public_url`, else `http://<address>`), the grant secret
/// (beside CS's files under the lab's `data_dir`), and a 2 s wait.
pub(crate) fn grant_client(
    ctx: &Ctx<'_>,
    data_dir: &Path,
    peers: &Peers,
    name: &str,
) -> Result<crate::content::GrantClient, LabError> {
    let c = &ctx.config.content;
    let base_url = if c.public_url.is_empty() {
        format!("http://{}", peers.content)
    } else {
        c.public_url.trim_end_matches('/').to_string()
    };
    Ok(crate::content::GrantClient::new(
        crate::content::GrantSettings {
            addr: peers.content,
            base_url,
            secret: content_secret(ctx.config, data_dir)?,
            wait: crate::content::grant_client::GRANT_WAIT,
        },
        ctx.trace.clone(),
        name,
    ))
}

/// CS, the FT content server (GSMA RCC.07 File Transfer via HTTP): HTTP on `listener`, files
/// under [`content_dir`], its index in `store`'s sled db, and (with `[content] auth`) its own
/// Cx link to the HSS as `content.<domain>`, for the Digest HA1 of the users it authenticates,
/// opened at the first upload or download that needs it (until then, no Cx traffic from CS).
pub(crate) async fn start_content(
    ctx: &Ctx<'_>,
    listener: TcpListener,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<Arc<crate::content::ContentServer>, LabError> {
    let config = ctx.config;
    let dir = content_dir(config, data_dir);
    let err = |source: crate::content::ContentStartError| LabError::Content {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| {
        err(crate::content::ContentStartError::Dir {
            dir: dir.display().to_string(),
            source,
        })
    })?;
    let secret = content_secret(config, data_dir)?;
    let addr = listener.local_addr().map_err(|source| LabError::Bind {
        what: "CS",
        addr: config.nodes.content_or_default(),
        source,
    })?;
    let connect: Option<crate::content::HssConnector> = config.content.auth.then(|| {
        let (origin_host, _) = config.content_peer();
        let opts = ctx.cx_options("CS", origin_host, addr, peers.hss);
        let (trace, shut) = (ctx.trace.clone(), ctx.shut.clone());
        let metrics = ctx.metrics.diameter_sent("CS");
        let f: crate::content::HssConnector = Box::new(move || {
            let link = DiameterClient::start(
                opts.clone(),
                Arc::new(crate::content::CxRefuser),
                trace.clone(),
                shut.clone(),
            );
            link.set_metrics(metrics.clone());
            link
        });
        f
    });
    let cs = crate::content::ContentServer::new(
        crate::content::ContentSettings::from_section(&config.content, &ctx.domain, secret),
        &dir.join("files"),
        store.db(),
        store.commit().clone(),
        connect,
        ctx.trace.clone(),
        ctx.shut.clone(),
    )
    .map_err(err)?;
    let c = &config.content;
    let limits = crate::http_server::HttpLimits {
        header_timeout: Duration::from_millis(config.http.header_timeout_ms),
        idle_timeout: Duration::from_secs(c.idle_timeout_secs),
        body_timeout: Duration::from_secs(c.body_timeout_secs),
        max_connections: c.max_connections,
    };
    tokio::spawn(cs.clone().serve(listener, limits));
    Ok(cs)
}

/// WebRSF, the web gateway (the WebRSF paper): an HTTP server on `listener` whose web users
/// register through the P-CSCF like UEs; `GET History` asks T-IM through `history`.
pub(crate) fn start_webrsf(
    ctx: &Ctx<'_>,
    listener: TcpListener,
    peers: &Peers,
    history: HistoryClient,
    data_dir: &Path,
) -> Result<Arc<crate::webrsf::Gateway>, LabError> {
    let web_addr = listener.local_addr().map_err(|source| LabError::Bind {
        what: "WebRSF",
        addr: ctx.config.nodes.webrsf,
        source,
    })?;
    let namer = ctx.recorder.clone();
    let webrsf = crate::webrsf::Gateway::new(
        ctx.config.webrsf.clone(),
        &ctx.domain,
        peers.pcscf,
        ctx.trace.clone(),
        Arc::new(move |a, name| namer.name(a, name)),
        ctx.shut.clone(),
    );
    webrsf.set_http_addr(web_addr);
    webrsf.set_history(history);
    // Web users' files go to CS as their UEs' do; uploads wait under the data dir meanwhile.
    let c = &ctx.config.content;
    webrsf.set_files(crate::webrsf::FileSettings {
        content_server: if c.public_url.is_empty() {
            format!("http://{}", peers.content)
        } else {
            c.public_url.trim_end_matches('/').to_string()
        },
        max_file_size: c.max_file_size,
        dir: data_dir.join("webrsf").join("uploads"),
        upload_timeout: Duration::from_secs(c.body_timeout_secs),
    });
    tokio::spawn(crate::webrsf::http::serve(
        webrsf.clone(),
        listener,
        crate::http_server::HttpLimits::from(&ctx.config.http),
    ));
    Ok(webrsf)
}

/// The patent's RTCWeb gateway (seed 001): its page and WebSocket on `listener`, its SIP
/// endpoint `ep`, with which it registers web users through the P-CSCF.
pub(crate) fn start_rtcweb(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    rx: SipRx,
    listener: TcpListener,
    peers: &Peers,
) -> Arc<crate::rtcweb::node::RtcwebGateway> {
    let gw = crate::rtcweb::node::RtcwebGateway::new(
        ctx.config.rtcweb.clone(),
        &ctx.domain,
        ep,
        ctx.resolver.clone(),
        peers.pcscf,
        ctx.trace.clone(),
    );
    if let Ok(a) = listener.local_addr() {
        gw.set_http_addr(a);
    }
    tokio::spawn(gw.clone().run(rx, ctx.shut.clone()));
    tokio::spawn(crate::rtcweb::node::ws::serve(
        gw.clone(),
        listener,
        crate::http_server::HttpLimits::from(&ctx.config.http),
        ctx.shut.clone(),
    ));
    gw
}
