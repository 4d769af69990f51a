//! The open Diameter connections of a node (RFC 6733 §2.1: a peer is a node with a direct
//! transport connection), kept per connection: two nodes that present the same Origin-Host
//! (our S-CSCF and a foreign one configured alike) stay two peers, each reachable over its own
//! connection.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::diameter::peer::Peer;

/// One transport connection, unique for the life of the process. Peers are told apart by
/// connection, not only by Origin-Host: two nodes configured with the same Diameter identity
/// (our S-CSCF and a foreign one, say) are still two peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    pub(crate) fn next() -> ConnId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Most connections the table keeps; beyond this a new peer is refused at CER (RFC 6733
/// §5.3: DIAMETER_UNABLE_TO_COMPLY) rather than growing without bound.
pub const MAX_PEERS: usize = 1024;

/// Open connections, by connection. Several may present the same Origin-Host: RFC 6733
/// §5.6.4 election only applies to two connections between the *same* pair of peers, so two
/// different nodes that happen to share an identity are both kept (with a warning), and a
/// request to one of them goes over the connection it used ([`PeerTable::by_conn`]).
#[derive(Clone, Default)]
pub struct PeerTable {
    peers: Arc<Mutex<HashMap<ConnId, Peer>>>,
}

impl PeerTable {
    /// The open connection to `origin_host` when exactly one presents it (the newest one, with
    /// a warning, when several do).
    pub fn get(&self, origin_host: &str) -> Option<Peer> {
        let mut all = self.by_origin_host(origin_host);
        if all.len() > 1 {
            tracing::warn!(
                origin_host,
                connections = all.len(),
                "several Diameter peers present this Origin-Host; using the newest connection"
            );
        }
        all.pop()
    }
    /// Every open connection whose peer presents `origin_host`, oldest first.
    pub fn by_origin_host(&self, origin_host: &str) -> Vec<Peer> {
        let mut v: Vec<Peer> = self
            .all()
            .into_iter()
            .filter(|p| p.remote().origin_host.eq_ignore_ascii_case(origin_host))
            .collect();
        v.sort_by_key(|p| p.remote().conn);
        v
    }
    /// The connection `conn`, while it is open.
    pub fn by_conn(&self, conn: ConnId) -> Option<Peer> {
        self.peers
            .lock()
            .ok()?
            .get(&conn)
            .filter(|p| p.is_open())
            .cloned()
    }
    /// All open connections.
    pub fn all(&self) -> Vec<Peer> {
        self.peers
            .lock()
            .map(|p| p.values().filter(|p| p.is_open()).cloned().collect())
            .unwrap_or_default()
    }
    /// True when there is room for one more connection (closed ones are dropped first).
    pub(crate) fn has_room(&self) -> bool {
        self.peers
            .lock()
            .map(|mut m| {
                m.retain(|_, p| p.is_open());
                m.len() < MAX_PEERS
            })
            .unwrap_or(false)
    }
    pub(crate) fn insert(&self, p: Peer) {
        let Ok(mut m) = self.peers.lock() else { return };
        m.retain(|_, q| q.is_open());
        let me = p.remote();
        for q in m.values() {
            let other = q.remote();
            if other.origin_host.eq_ignore_ascii_case(&me.origin_host) {
                tracing::warn!(
                    origin_host = %me.origin_host,
                    new = %me.addr, new_conn = %me.conn,
                    existing = %other.addr, existing_conn = %other.conn,
                    "two Diameter peers present the same Origin-Host: keeping both connections; \
                     requests to a user's S-CSCF go over the connection that served the user"
                );
            }
        }
        m.insert(me.conn, p);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::*;
    use crate::diameter::codec::{Avp, Message, AVP_RESULT_CODE};
    use crate::diameter::cx::APP_ID_CX;
    use crate::diameter::peer::{serve, BoxFuture, DiameterHandler, LocalPeer, PeerInfo};
    use crate::trace::Trace;

    struct Ok2001;
    impl DiameterHandler for Ok2001 {
        fn handle(&self, _from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
            Box::pin(async move {
                let mut a = Message::answer_to(&request);
                a.push(Avp::u32(AVP_RESULT_CODE, None, true, 2001));
                a
            })
        }
    }

    fn local(name: &str) -> LocalPeer {
        LocalPeer {
            origin_host: name.into(),
            origin_realm: "ims.lab".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            product_name: "test".into(),
            watchdog_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(2),
        }
    }

    async fn server() -> (std::net::SocketAddr, PeerTable, watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let table = PeerTable::default();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(
            l,
            local("hss.ims.lab"),
            Arc::new(Ok2001),
            table.clone(),
            Trace::disabled(),
            rx,
        ));
        (addr, table, tx)
    }

    #[tokio::test]
    async fn two_peers_with_one_origin_host_are_both_kept_and_reached_by_connection() {
        let (addr, table, _stop) = server().await;
        let a = Peer::connect(
            addr,
            local("scscf.ims.lab"),
            Arc::new(Ok2001),
            Trace::disabled(),
        )
        .await
        .unwrap();
        let b = Peer::connect(
            addr,
            local("scscf.ims.lab"),
            Arc::new(Ok2001),
            Trace::disabled(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let both = table.by_origin_host("scscf.ims.lab");
        assert_eq!(both.len(), 2, "neither connection shadows the other");
        // Each server-side connection leads back to its own client.
        let ports: Vec<u16> = both.iter().map(|p| p.remote().addr.port()).collect();
        assert!(ports.contains(&a.local_addr().port()) && ports.contains(&b.local_addr().port()));
        for p in &both {
            let back = table.by_conn(p.remote().conn).expect("open by connection");
            assert_eq!(back.remote().addr, p.remote().addr);
        }
        // One goes away: the other stays reachable.
        a.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = table.by_origin_host("scscf.ims.lab");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].remote().addr.port(), b.local_addr().port());
        let r = left[0]
            .request(Message::request(305, APP_ID_CX))
            .await
            .unwrap();
        assert_eq!(r.result_code(), Some(2001));
    }
}
