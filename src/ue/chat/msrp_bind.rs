//! The MSRP side of the driver: connecting to the far end's path and binding with an empty
//! SEND (RFC 4975 §5.4, the connection's first request), then handing the connection's
//! events to the actor.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::actor::Internal;
use crate::msrp::conn::{MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::{MsrpMessage, MsrpUri};
use crate::rcs;
use crate::trace::Trace;

/// Connects to the far end's MSRP URI, binds with an empty SEND (RFC 4975 §5.4) and waits for
/// its 200; returns the connection and the rest of its events.
pub(super) async fn bind(
    to: &str,
    my_uri: &str,
    trace: Trace,
    sip_addr: SocketAddr,
) -> Result<(MsrpConn, MsrpEvents), String> {
    let uri = MsrpUri::parse(to).map_err(|e| e.to_string())?;
    let addr = tokio::net::lookup_host(uri.authority())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{} does not resolve", uri.authority()))?;
    let (conn, mut rx) = MsrpConn::connect(addr, trace.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Ladders name the UE, not its ephemeral MSRP port.
    trace.alias(conn.local_addr(), sip_addr);
    let bind = MsrpMessage::request("SEND", &rcs::new_id()[..12], to, my_uri);
    conn.send(&bind).map_err(|e| e.to_string())?;
    let ok = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = rx.recv().await {
            match ev {
                MsrpEvent::Message(m) if m.transaction_id == bind.transaction_id => {
                    return m.status == 200;
                }
                MsrpEvent::Message(_) => {}
                MsrpEvent::Closed(_) => return false,
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err("MSRP bind refused".into());
    }
    Ok((conn, rx))
}

/// Hands a bound connection's events to the actor.
pub(super) fn forward_events(
    mut rx: MsrpEvents,
    internal: mpsc::UnboundedSender<Internal>,
    peer: String,
) {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let closed = matches!(ev, MsrpEvent::Closed(_));
            if internal
                .send(Internal::Msrp {
                    peer: peer.clone(),
                    ev,
                })
                .is_err()
                || closed
            {
                break;
            }
        }
    });
}
