//! The flight recorder names a user's MSRP connection after the user once they bind their leg.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Hub, HubOptions, Side, Unbound};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::MsrpMessage;
use crate::trace::Trace;

#[tokio::test]
async fn a_bound_leg_names_its_connection_after_its_owner() {
    let trace = Trace::enabled();
    let (_stop, shut) = watch::channel(false);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = HubOptions {
        unbound: Unbound::Reject,
        manual_ready_b: false,
        limits: MsrpLimits::default(),
    };
    let (hub, _events) = Hub::start(l, trace.clone(), opts, shut).unwrap();
    let (pair, uri_a, _) = hub.new_pair();
    hub.set_owner(pair, Side::A, "UE alice");
    let mut s = TcpStream::connect(hub.local_addr()).await.unwrap();
    let me = s.local_addr().unwrap();
    assert_eq!(trace.peer_name(me), None);
    let bind = MsrpMessage::request("SEND", "t1", &uri_a, &format!("msrp://{me}/u1;tcp"));
    s.write_all(&bind.to_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("MSRP t1 200"),
        "bound"
    );
    assert_eq!(trace.peer_name(me).as_deref(), Some("UE alice"));
}
