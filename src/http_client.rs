//! The lab's one HTTP/1.1 client (RFC 9112), on hyper's connection API: the admin API's client
//! (`rcslab subscriber`, `rcslab trace`, `rcslab status`), the WebRSF gateway's calls to
//! T-IM's history endpoint and to push webhooks, and the web client of labs and benchmarks
//! all open their connections here.
//!
//! A connection is opened per caller and driven by a task of its own; callers that keep one
//! open (a notification channel, a benchmark sender) hold its [`Sender`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, ToSocketAddrs};

/// The sending half of one HTTP/1.1 connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens an HTTP/1.1 connection to `addr` and drives it on a task until both ends are done;
/// returns its sender.
pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    handshake(stream).await
}

/// HTTP/1.1 over a connection the caller opened (to learn its local address first, say),
/// driven on a task until both ends are done; its requests carry bodies of type `B` (a
/// streamed upload's, say).
pub async fn handshake<B>(
    stream: TcpStream,
) -> io::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `req` as it is (its own Host, Origin, Authorization…) on `sender` and reads the whole
/// answer: status and body.
pub async fn exchange(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
) -> io::Result<(u16, Vec<u8>)> {
    sender.ready().await.map_err(io::Error::other)?;
    let resp = sender.send_request(req).await.map_err(io::Error::other)?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok((status, body.to_vec()))
}

/// One request on a new connection to `addr`, connecting, sending and reading the whole
/// answer within `timeout` (else an error of kind [`io::ErrorKind::TimedOut`]).
pub async fn send(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let go = async {
        let mut sender = connect(addr).await?;
        exchange(&mut sender, req).await
    };
    tokio::time::timeout(timeout, go).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("HTTP request to {addr} timed out"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_request_gets_status_and_body_and_a_silent_server_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            // First connection: a whole answer. Second: read and never answer.
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /x HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno")
                .await
                .unwrap();
            let (mut s2, _) = l.accept().await.unwrap();
            let _ = s2.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let req = || {
            Request::builder()
                .uri("/x")
                .header("host", addr.to_string())
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let got = send(addr, req(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, (404, b"no".to_vec()));
        let e = send(addr, req(), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
