//! `rcslab run NODE`: one node of a lab as its own process (issue 15). It binds that node's
//! sockets at the lab file's `[nodes]` addresses and reaches every other node at its `[nodes]`
//! address, through the same wire protocols as in `rcslab up` (SIP, Diameter Cx, MSRP, and
//! HTTP for T-IM's history), so ten `rcslab run` processes (one per node of [`NODE_NAMES`]) on the default lab make the same
//! lab as `rcslab up`, and a lab can span hosts. `rcslab run scscf2` (… `scscf9`) runs an
//! S-CSCF of `[[scscfs]]` (several S-CSCFs behind one I-CSCF, TS 24.229 §5.3.1.2), with its
//! own Origin-Host and Cx link; `rcslab run scscf` stays the first.
//!
//! Start order does not matter: the CSCFs' Cx links to the HSS reconnect with backoff
//! (RFC 6733 §5.6, `[diameter] reconnect_*_ms`) and answer 480 until the HSS is there; SIP and
//! MSRP peers are reached per request.
//!
//! Data: the nodes that store keep it in a sub-directory of `--data-dir`, one sled db per
//! process (sled allows one process per db): the HSS in `DIR/hss` (subscribers, AKA SQN, its
//! `admin.token` and `admin.addr`), T-IM in `DIR/tim` (messages, and `history.token`), the PS in
//! `DIR/ps` (resource lists), CONF in `DIR/conf` (groups and their history) and the content
//! server CS in `DIR/content` (its index, `files/`, and `grants.token`), the UMS in `DIR/ums`
//! (templates and messages, `api.token`, `operator.token`, `api.addr`). The
//! WebRSF gateway reads `DIR/tim/history.token` to ask T-IM for history; on another host, copy
//! that file there. The other nodes keep nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::nodes::{self, Ctx, Peers};
use super::{LabAddrs, LabError, LabOptions, Recorder};
use crate::config::LabConfig;
use crate::im::history_api::{HistoryClient, HistoryToken};
use crate::store::Store;
use crate::trace::Trace;

/// A node that `rcslab run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// P-CSCF.
    Pcscf,
    /// I-CSCF.
    Icscf,
    /// S-CSCF (the first, at `[nodes] scscf`).
    Scscf,
    /// S-CSCF number N = 2..=9: the (N-1)-th `[[scscfs]]` entry (`rcslab run scscf2`).
    MoreScscf(u8),
    /// HSS (Diameter Cx and the provisioning API).
    Hss,
    /// O-IM.
    Oim,
    /// T-IM (and its history endpoint).
    Tim,
    /// The WebRSF gateway.
    Webrsf,
    /// The presence server PS.
    Ps,
    /// The group-chat conference focus CONF.
    Conf,
    /// The patent's RTCWeb gateway.
    Rtcweb,
    /// The FT content server CS.
    Content,
    /// The SMS centre: its IP-SM-GW (SIP) and SMPP listener.
    Smsc,
    /// The unified-messaging gateway UMS (its API; an SMPP application of the SMSC).
    Ums,
}

/// The node names `rcslab run` takes, in the order of a REGISTER's path.
pub const NODE_NAMES: [&str; 13] = [
    "pcscf", "icscf", "scscf", "hss", "oim", "tim", "webrsf", "ps", "conf", "rtcweb", "content",
    "smsc", "ums",
];

/// A node name `rcslab run` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node '{0}': rcslab run takes one of pcscf, icscf, scscf, hss, oim, tim, webrsf, ps, conf, rtcweb, content, smsc, ums (or scscf2 … scscf9 for the [[scscfs]] entries)")]
pub struct UnknownNode(pub String);

impl std::str::FromStr for Node {
    type Err = UnknownNode;

    fn from_str(s: &str) -> Result<Node, UnknownNode> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "pcscf" => Node::Pcscf,
            "icscf" => Node::Icscf,
            "scscf" => Node::Scscf,
            "hss" => Node::Hss,
            "oim" => Node::Oim,
            "tim" => Node::Tim,
            "webrsf" => Node::Webrsf,
            "ps" => Node::Ps,
            "conf" => Node::Conf,
            "rtcweb" => Node::Rtcweb,
            "content" | "cs" => Node::Content,
            "smsc" | "ipsmgw" | "ip-sm-gw" => Node::Smsc,
            "ums" => Node::Ums,
            other => match other
                .strip_prefix("scscf")
                .and_then(|n| n.parse::<u8>().ok())
            {
                Some(n) if (2..=crate::config::MAX_MORE_SCSCFS as u8 + 1).contains(&n) => {
                    Node::MoreScscf(n)
                }
                _ => return Err(UnknownNode(s.to_string())),
            },
        })
    }
}

impl Node {
    /// Its name as ladders show it.
    pub fn label(self) -> &'static str {
        match self {
            Node::Pcscf => "P-CSCF",
            Node::Icscf => "I-CSCF",
            Node::Scscf => "S-CSCF",
            Node::MoreScscf(n) => crate::config::SCSCF_LABELS
                .get(usize::from(n).saturating_sub(1))
                .copied()
                .unwrap_or("S-CSCF"),
            Node::Hss => "HSS",
            Node::Oim => "O-IM",
            Node::Tim => "T-IM",
            Node::Webrsf => "WebRSF",
            Node::Ps => "PS",
            Node::Conf => "CONF",
            Node::Rtcweb => "RTCWeb",
            Node::Content => "CS",
            Node::Smsc => "IP-SM-GW",
            Node::Ums => "UMS",
        }
    }

    /// Where it keeps data under `--data-dir`, if it keeps any.
    pub fn data_dir(self, base: &Path) -> Option<PathBuf> {
        match self {
            Node::Hss => Some(base.join("hss")),
            Node::Tim => Some(base.join("tim")),
            Node::Content => Some(base.join("content")),
            Node::Ums => Some(base.join("ums")),
            _ => None,
        }
    }
}

/// One running node.
pub struct RunningNode {
    /// Which.
    pub node: Node,
    /// What it listens on: name, address, protocol.
    pub listening: Vec<(&'static str, SocketAddr, &'static str)>,
    /// Its data directory, if it stores.
    pub data_dir: Option<PathBuf>,
    /// Its flight recorder (enabled with `--trace`).
    pub trace: Trace,
    recorder: Recorder,
    store: Option<Arc<Store>>,
    shutdown: watch::Sender<bool>,
    /// The node's handles, kept for its lifetime (its tasks hold their own clones).
    _handles: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl RunningNode {
    /// The recorder with every node's address named as in `[nodes]`.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Stops the node, flushes its store and removes the admin address file (HSS).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_file(d.join("admin.addr"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(s) = &self.store {
            let _ = s.durable().await;
        }
    }
}

/// Starts `node` of `config` alone; `data_dir` is the base directory (see the module doc).
pub async fn start(
    node: Node,
    config: &LabConfig,
    data_dir: &Path,
    opts: LabOptions,
) -> Result<RunningNode, LabError> {
    let super::Wiring {
        trace,
        timers,
        shutdown,
        shut_rx,
        metrics,
        recorder,
    } = super::Wiring::new(config, &opts);
    let n = config.nodes.clone();
    let scscfs = nodes::ScscfAt::all(config);
    for s in scscfs.iter().skip(1) {
        recorder.name(s.addr, s.label);
    }
    recorder.name_all(&LabAddrs {
        pcscf: n.pcscf,
        pcscf_ws: n.pcscf_ws_or_default(),
        icscf: n.icscf,
        scscf: n.scscf,
        hss: n.hss,
        admin: n.admin,
        oim: n.oim,
        tim: n.tim,
        ps: n.ps,
        conf: n.conf,
        oim_msrp: n.oim_msrp,
        tim_msrp: n.tim_msrp,
        conf_msrp: n.conf_msrp,
        ipsmgw: n.ipsmgw,
        smsc: n.smsc,
        webrsf: n.webrsf,
        tim_http: n.tim_http_or_default(),
        rtcweb: n.rtcweb_or_default(),
        rtcweb_sip: n.rtcweb_sip_or_default(),
        content: n.content_or_default(),
        ums: n.ums,
    });
    let ctx = Ctx::new(config, recorder.clone(), metrics, shut_rx, timers);
    let mut peers = Peers::from_config(config);
    if let Some(h) = config.diameter.hss_address {
        peers.hss = h;
    }
    let dir = node.data_dir(data_dir);
    let mut store = None;
    let mut listening = Vec::new();
    let mut handles: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
    match node {
        Node::Hss => {
            let d = data_dir.join("hss");
            let s = Arc::new(nodes::open_store(&d)?);
            let (cx, cx_addr) = nodes::bind_tcp("HSS", n.hss).await?;
            let (admin, admin_addr) = nodes::bind_tcp("admin API", n.admin).await?;
            let hss = nodes::start_hss(&ctx, &s, &d, cx, admin, &peers.scscfs)?;
            handles.push(Box::new(hss.cx.stop));
            let _ = std::fs::write(d.join("admin.addr"), admin_addr.to_string());
            listening.push(("HSS", cx_addr, "Diameter Cx (TCP)"));
            listening.push(("HSS-API", admin_addr, "HTTP (provisioning)"));
            store = Some(s);
        }
        Node::Scscf | Node::MoreScscf(_) => {
            let i = match node {
                Node::MoreScscf(k) => usize::from(k) - 1,
                _ => 0,
            };
            let Some(which) = scscfs.get(i) else {
                return Err(LabError::NoSuchScscf {
                    node: format!("scscf{}", i + 1),
                    more: config.scscfs.len(),
                });
            };
            let (ep, rx) = ctx.bind_sip(which.label, which.addr).await?;
            let a = ep.local_addr();
            handles.push(Box::new(
                nodes::start_scscf(&ctx, ep, rx, &peers, which, false).await?,
            ));
            listening.push((which.label, a, "SIP UDP+TCP"));
        }
        Node::Icscf => {
            let (ep, rx) = ctx.bind_sip("I-CSCF", n.icscf).await?;
            let a = ep.local_addr();
            handles.push(Box::new(
                nodes::start_icscf(&ctx, ep, rx, &peers, false).await?,
            ));
            listening.push(("I-CSCF", a, "SIP UDP+TCP"));
        }
        Node::Pcscf => {
            let (ep, rx) = ctx.bind_sip("P-CSCF", n.pcscf).await?;
            let a = ep.local_addr();
            let ws = nodes::listen_ws(&ep, n.pcscf_ws_or_default()).await?;
            handles.push(Box::new(nodes::start_pcscf(&ctx, ep, rx, &peers)));
            listening.push(("P-CSCF", a, "SIP UDP+TCP"));
            listening.push(("P-CSCF", ws, "SIP over WebSocket (ws://, subprotocol sip)"));
        }
        Node::Oim => {
            let (ep, rx) = ctx.bind_sip("O-IM", n.oim).await?;
            let a = ep.local_addr();
            let (msrp, msrp_addr) = nodes::bind_tcp("O-IM MSRP", n.oim_msrp).await?;
            handles.push(Box::new(nodes::start_oim(&ctx, ep, rx, msrp)?));
            listening.push(("O-IM", a, "SIP (ISC, RCS messaging AS)"));
            listening.push(("O-IM", msrp_addr, "MSRP (TCP)"));
        }
        Node::Tim => {
            let d = data_dir.join("tim");
            let s = Arc::new(nodes::open_store(&d)?);
            let (ep, rx) = ctx.bind_sip("T-IM", n.tim).await?;
            let a = ep.local_addr();
            let (msrp, msrp_addr) = nodes::bind_tcp("T-IM MSRP", n.tim_msrp).await?;
            let (http, http_addr) = nodes::bind_tcp("T-IM history", peers.tim_http).await?;
            let tim = nodes::start_tim(&ctx, ep, rx, msrp, http, &s, &d, &peers)?.0;
            tim.set_grants(nodes::grant_client(&ctx, data_dir, &peers, "T-IM")?);
            handles.push(Box::new(tim));
            listening.push(("T-IM", a, "SIP (ISC, RCS messaging AS)"));
            listening.push(("T-IM", msrp_addr, "MSRP (TCP)"));
            listening.push(("T-IM", http_addr, "HTTP (history, token in history.token)"));
            store = Some(s);
        }
        Node::Ps => {
            let d = data_dir.join("ps");
            let s = Arc::new(nodes::open_store(&d)?);
            let (ep, rx) = ctx.bind_sip("PS", n.ps).await?;
            let a = ep.local_addr();
            handles.push(Box::new(nodes::start_ps(&ctx, ep, rx, &s, &d, &peers)?));
            listening.push(("PS", a, "SIP (ISC, presence server and RLS)"));
            store = Some(s);
        }
        Node::Conf => {
            let d = data_dir.join("conf");
            let s = Arc::new(nodes::open_store(&d)?);
            let (ep, rx) = ctx.bind_sip("CONF", n.conf).await?;
            let a = ep.local_addr();
            let (msrp, msrp_addr) = nodes::bind_tcp("CONF MSRP", n.conf_msrp).await?;
            let conf = nodes::start_conf(&ctx, ep, rx, msrp, &s, &d, &peers)?;
            conf.set_grants(nodes::grant_client(&ctx, data_dir, &peers, "CONF")?);
            handles.push(Box::new(conf));
            listening.push(("CONF", a, "SIP (ISC, group chat focus)"));
            listening.push(("CONF", msrp_addr, "MSRP (TCP)"));
            store = Some(s);
        }
        Node::Smsc => {
            let d = data_dir.join("smsc");
            let s = Arc::new(nodes::open_store(&d)?);
            let (ep, rx) = ctx.bind_sip("IP-SM-GW", n.ipsmgw).await?;
            let a = ep.local_addr();
            let (smpp, smpp_addr) = nodes::bind_tcp("SMSC", n.smsc).await?;
            handles.push(Box::new(nodes::start_smsc(
                &ctx, ep, rx, smpp, &s, &d, &peers,
            )?));
            listening.push(("IP-SM-GW", a, "SIP (ISC, SMS over IP, TS 24.341)"));
            listening.push(("SMSC", smpp_addr, "SMPP 3.4 (TCP, applications bind here)"));
            store = Some(s);
        }
        Node::Ums => {
            let d = data_dir.join("ums");
            let s = Arc::new(nodes::open_store(&d)?);
            let (l, a) = nodes::bind_tcp("UMS", n.ums).await?;
            handles.push(Box::new(super::start_ums::start_ums(
                &ctx, l, n.smsc, &s, data_dir, &peers,
            )?));
            listening.push(("UMS", a, "HTTP (business messaging API /ums/v1)"));
            store = Some(s);
        }
        Node::Webrsf => {
            let (l, a) = nodes::bind_tcp("WebRSF", n.webrsf).await?;
            let history =
                HistoryClient::new(peers.tim_http, HistoryToken::File(data_dir.join("tim")));
            handles.push(Box::new(nodes::start_webrsf(
                &ctx, l, &peers, history, data_dir,
            )?));
            listening.push(("WebRSF", a, "HTTP (REST + notification channel)"));
        }
        Node::Content => {
            let d = data_dir.join("content");
            let s = Arc::new(nodes::open_store(&d)?);
            let (l, a) = nodes::bind_tcp("CS", n.content_or_default()).await?;
            handles.push(Box::new(
                nodes::start_content(&ctx, l, &s, data_dir, &peers).await?,
            ));
            listening.push(("CS", a, "HTTP (FT content server, RCC.07)"));
            store = Some(s);
        }
        Node::Rtcweb => {
            let (l, a) = nodes::bind_tcp("RTCWeb", n.rtcweb_or_default()).await?;
            let (ep, rx) = ctx.bind_sip("RTCWeb", n.rtcweb_sip_or_default()).await?;
            let sip = ep.local_addr();
            handles.push(Box::new(nodes::start_rtcweb(&ctx, ep, rx, l, &peers)));
            listening.push(("RTCWeb", a, "HTTP + WebSocket /ws (patent gateway)"));
            listening.push(("RTCWeb", sip, "SIP UDP+TCP (registers web users)"));
        }
    }
    Ok(RunningNode {
        node,
        listening,
        data_dir: dir,
        trace,
        recorder,
        store,
        shutdown,
        _handles: handles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_parse_and_an_unknown_one_lists_the_valid_ones() {
        for name in NODE_NAMES {
            let n: Node = name.parse().expect(name);
            let label = match n {
                Node::Content => "content".to_string(),
                // One process, two listeners: the IP-SM-GW (SIP) and the SMSC (SMPP).
                Node::Smsc => "smsc".to_string(),
                _ => n.label().to_ascii_lowercase().replace('-', ""),
            };
            assert_eq!(label, name);
        }
        assert_eq!("content".parse::<Node>().map(Node::label), Ok("CS"));
        assert_eq!("scscf2".parse::<Node>(), Ok(Node::MoreScscf(2)));
        assert_eq!(Node::MoreScscf(2).label(), "S-CSCF2");
        assert_eq!("SCSCF9".parse::<Node>(), Ok(Node::MoreScscf(9)));
        for bad in ["scscf1", "scscf10", "scscf0", "scscfx"] {
            assert!(bad.parse::<Node>().is_err(), "{bad}");
        }
        let e = "bgcf".parse::<Node>().unwrap_err().to_string();
        assert!(e.contains("unknown node 'bgcf'"), "{e}");
        for name in NODE_NAMES {
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn the_hss_t_im_and_cs_keep_data_each_in_its_own_sub_directory() {
        let base = Path::new("/d");
        assert_eq!(Node::Hss.data_dir(base), Some(PathBuf::from("/d/hss")));
        assert_eq!(Node::Tim.data_dir(base), Some(PathBuf::from("/d/tim")));
        assert_eq!(
            Node::Content.data_dir(base),
            Some(PathBuf::from("/d/content"))
        );
        for n in [
            Node::Pcscf,
            Node::Icscf,
            Node::Scscf,
            Node::Oim,
            Node::Webrsf,
            Node::Ps,
            Node::Conf,
            Node::Rtcweb,
            Node::Smsc,
        ] {
            assert_eq!(n.data_dir(base), None);
        }
    }
}
