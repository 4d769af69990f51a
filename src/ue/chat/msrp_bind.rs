//! The MSRP side of the driver: connecting to the far end's path and binding with an empty
//! SEND (RFC 4975 §5.4, the connection's first request), then handing the connection's
//! events to the actor.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::actor::Internal;
use crate::msrp::conn::{MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::{MsrpError, MsrpMessage, MsrpUri};
use crate::rcs;
use crate::trace::Trace;

/// Why the MSRP side of a session did not come up ([`bind`]); the text becomes the session's
/// failure reason.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The far end's path is not an MSRP URI (RFC 4975 §9).
    #[error(transparent)]
    Uri(MsrpError),
    /// The URI's authority does not resolve to an address.
    #[error("{authority} does not resolve")]
    Unresolved {
        /// `host:port` of the URI.
        authority: String,
    },
    /// No TCP connection to the far end (the text is the socket error's alone, as web
    /// clients have always been told).
    #[error("{source}")]
    Connect {
        /// Where the URI pointed.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The binding SEND did not go out (the connection closed).
    #[error(transparent)]
    Send(MsrpError),
    /// The binding SEND got no 200 within 5 s (another status, or the connection closed).
    #[error("MSRP bind refused")]
    Refused,
}

/// Connects to the far end's MSRP URI, binds with an empty SEND (RFC 4975 §5.4) and waits for
/// its 200; returns the connection and the rest of its events.
pub(super) async fn bind(
    to: &str,
    my_uri: &str,
    trace: Trace,
    sip_addr: SocketAddr,
) -> Result<(MsrpConn, MsrpEvents), BindError> {
    let uri = MsrpUri::parse(to).map_err(BindError::Uri)?;
    let addr = tokio::net::lookup_host(uri.authority())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BindError::Unresolved {
            authority: uri.authority(),
        })?;
    let (conn, mut rx) = MsrpConn::connect(addr, trace.clone())
        .await
        .map_err(|source| BindError::Connect { addr, source })?;
    // Ladders name the UE, not its ephemeral MSRP port.
    trace.alias(conn.local_addr(), sip_addr);
    let bind = MsrpMessage::request("SEND", &rcs::new_id()[..12], to, my_uri);
    conn.send(&bind).map_err(BindError::Send)?;
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
        return Err(BindError::Refused);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason web clients are told when a session's MSRP side does not come up.
    #[tokio::test]
    async fn a_far_end_that_does_not_listen_fails_with_the_socket_error_alone() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let to = format!("msrp://{addr}/s1;tcp");
        let me = "msrp://127.0.0.1:9/me;tcp";
        let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        match bind(&to, me, Trace::disabled(), sip).await {
            Err(BindError::Connect { addr: a, source }) => {
                assert_eq!(a, addr);
                let text = BindError::Connect { addr, source }.to_string();
                assert!(text.contains("refused"), "{text}");
                assert!(!text.contains(&addr.to_string()), "{text}");
            }
            Err(e) => panic!("expected a connect error, got {e}"),
            Ok(_) => panic!("bound to nobody"),
        }
        assert_eq!(BindError::Refused.to_string(), "MSRP bind refused");
    }
}
