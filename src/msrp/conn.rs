//! MSRP connections over TCP (RFC 4975 §6): framing on read, one writer per connection, every
//! message recorded in the flight recorder. A stream that cannot be framed is closed
//! (§7.1 leaves no way to resynchronise).

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::msrp::{frame, Frame, MsrpMessage};
use crate::trace::{first_line, Direction, Protocol, Trace};

/// What a connection delivers.
#[derive(Debug)]
pub enum MsrpEvent {
    /// A whole message.
    Message(MsrpMessage),
    /// The connection ended (peer closed, or a framing error: the reason).
    Closed(Option<String>),
}

/// The sending half of an MSRP connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MsrpConn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    local: SocketAddr,
    remote: SocketAddr,
    trace: Trace,
}

impl MsrpConn {
    /// Connects to an MSRP endpoint or relay.
    pub async fn connect(
        addr: SocketAddr,
        trace: Trace,
    ) -> std::io::Result<(MsrpConn, mpsc::UnboundedReceiver<MsrpEvent>)> {
        let s = TcpStream::connect(addr).await?;
        Ok(Self::adopt(s, trace))
    }

    /// Wraps an accepted or connected stream.
    pub fn adopt(
        stream: TcpStream,
        trace: Trace,
    ) -> (MsrpConn, mpsc::UnboundedReceiver<MsrpEvent>) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let remote = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (mut rd, mut wr) = stream.into_split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Whatever queued while the last write ran goes out in one write (one syscall for
            // a burst of relayed chunks and their 200s). An empty buffer is `close()`.
            let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
            'writer: while let Some(b) = out_rx.recv().await {
                if b.is_empty() {
                    break;
                }
                batch.clear();
                batch.extend_from_slice(&b);
                let mut closing = false;
                while batch.len() < 64 * 1024 {
                    match out_rx.try_recv() {
                        Ok(more) if more.is_empty() => {
                            closing = true;
                            break;
                        }
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&batch).await.is_err() || closing {
                    break 'writer;
                }
            }
            let _ = wr.shutdown().await;
        });
        let tr = trace.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(8192);
            let reason = loop {
                match frame(&buf) {
                    Ok(Frame::Message(n)) => {
                        let raw = buf.split_to(n);
                        tr.record(
                            Direction::Received,
                            Protocol::Msrp,
                            local,
                            remote,
                            &raw,
                            || first_line(&raw),
                        );
                        match MsrpMessage::parse(&raw) {
                            Ok(m) => {
                                if ev_tx.send(MsrpEvent::Message(m)).is_err() {
                                    break None;
                                }
                            }
                            Err(e) => break Some(e.to_string()),
                        }
                        continue;
                    }
                    Ok(Frame::Incomplete) => {}
                    Err(e) => break Some(e.to_string()),
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break None,
                    Ok(_) => {}
                }
            };
            if let Some(r) = &reason {
                tracing::warn!(%remote, error = %r, "closing MSRP connection");
            }
            let _ = ev_tx.send(MsrpEvent::Closed(reason));
        });
        (
            MsrpConn {
                out,
                local,
                remote,
                trace,
            },
            ev_rx,
        )
    }

    /// Sends one message. Fails when the connection is gone.
    pub fn send(&self, m: &MsrpMessage) -> Result<(), crate::msrp::MsrpError> {
        let bytes = m.to_bytes();
        self.trace.record(
            Direction::Sent,
            Protocol::Msrp,
            self.local,
            self.remote,
            &bytes,
            || first_line(&bytes),
        );
        self.out
            .send(bytes)
            .map_err(|_| crate::msrp::MsrpError::Malformed("connection closed".into()))
    }

    /// Closes the connection (after what was already queued): our side sends FIN, the peer
    /// closes, and both readers end.
    pub fn close(&self) {
        let _ = self.out.send(Vec::new());
    }

    /// Our end.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }
}

/// Accepts MSRP connections, handing each to `on_conn`.
pub async fn accept_loop(
    listener: TcpListener,
    trace: Trace,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    on_conn: impl Fn(MsrpConn, mpsc::UnboundedReceiver<MsrpEvent>) + Send + 'static,
) {
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        if let Ok((s, _)) = r {
            let (c, rx) = MsrpConn::adopt(s, trace.clone());
            on_conn(c, rx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msrp::{chunk, Reassembly, CHUNK_SIZE};

    #[tokio::test]
    async fn a_chunked_message_crosses_a_connection_and_each_chunk_gets_its_200() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_stop, shut) = tokio::sync::watch::channel(false);
        // The far end: reassembles and answers every SEND with 200 (Failure-Report: yes).
        tokio::spawn(accept_loop(l, Trace::disabled(), shut, |conn, mut rx| {
            tokio::spawn(async move {
                let mut r = Reassembly::default();
                while let Some(MsrpEvent::Message(m)) = rx.recv().await {
                    let _ = conn.send(&m.response_to(200, "OK"));
                    if let Ok(Some(body)) = r.add(&m, 1 << 20) {
                        let mut done = MsrpMessage::request(
                            "SEND",
                            "done1",
                            "msrp://a:1/x;tcp",
                            "msrp://b:2/y;tcp",
                        );
                        done.headers.push((
                            "Byte-Range".into(),
                            format!("1-{}/{}", body.len(), body.len()),
                        ));
                        let _ = conn.send(&done);
                    }
                }
            });
        }));
        let trace = Trace::enabled();
        let (c, mut rx) = MsrpConn::connect(addr, trace.clone()).await.unwrap();
        let body: Vec<u8> = (0..100 * 1024).map(|i| (i % 253) as u8).collect();
        let mut n = 0;
        let chunks = chunk(
            "msrp://b:2/y;tcp",
            "msrp://a:1/x;tcp",
            "m1",
            "message/cpim",
            &body,
            CHUNK_SIZE,
            || {
                n += 1;
                format!("c{n}")
            },
        );
        for ch in &chunks {
            c.send(ch).unwrap();
        }
        let mut oks = 0;
        let mut total = None;
        while total.is_none() || oks < chunks.len() {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
                Ok(Some(MsrpEvent::Message(m))) if m.status == 200 => oks += 1,
                Ok(Some(MsrpEvent::Message(m))) => total = m.byte_range().and_then(|b| b.total),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(oks, 50);
        assert_eq!(
            total,
            Some(100 * 1024),
            "reassembled byte for byte on the far side"
        );
        assert!(trace
            .events()
            .iter()
            .any(|e| e.protocol == Protocol::Msrp && e.summary.starts_with("MSRP c1 SEND")));
    }

    #[tokio::test]
    async fn garbage_closes_the_connection() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, mut closed) = mpsc::unbounded_channel();
        let (_stop, shut) = tokio::sync::watch::channel(false);
        tokio::spawn(accept_loop(
            l,
            Trace::disabled(),
            shut,
            move |_conn, mut rx| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        if let MsrpEvent::Closed(r) = ev {
                            let _ = tx.send(r);
                        }
                    }
                });
            },
        ));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let reason = tokio::time::timeout(std::time::Duration::from_secs(5), closed.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(reason.unwrap_or_default().contains("not MSRP"));
    }
}
