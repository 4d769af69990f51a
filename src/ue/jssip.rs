//! A SIP-over-WebSocket client (RFC 7118) that writes what JsSIP writes: a made-up `.invalid`
//! host in Via and Contact, a `transport=ws` Contact with `reg-id` and `+sip.instance` (RFC
//! 5626 outbound), no Authorization on the first REGISTER, then the Digest answer with
//! `authorization_user` `user@domain`. The lab's JsSIP registration lab and the WebSocket
//! tests drive the P-CSCF with it; JsSIP itself runs in `scripts/test-jssip.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::auth::digest;
use crate::sip::{Response, SipMessage};

/// How long a client waits for the next message.
const WAIT: Duration = Duration::from_secs(5);

/// Why the client could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum JsSipError {
    /// The connection or the upgrade failed.
    #[error("WebSocket: {0}")]
    Ws(String),
    /// Nothing came in time.
    #[error("no answer within 5 s")]
    Timeout,
    /// A frame that is not one SIP message, or not the one expected.
    #[error("{0}")]
    Unexpected(String),
}

/// One browser's SIP-over-WebSocket connection.
pub struct JsSipClient {
    /// The connection.
    pub ws: WebSocketStream<TcpStream>,
    /// Its local socket.
    pub local: SocketAddr,
    /// The user part (`alice`).
    pub user: String,
    /// The domain (`ims.lab`).
    pub domain: String,
    /// The random `.invalid` host of Via and Contact.
    pub host: String,
    /// The Contact URI (`sip:xyz@abc.invalid;transport=ws`).
    pub contact: String,
    cseq: u32,
    call_id: String,
    tag: String,
}

impl JsSipClient {
    /// Opens `ws://addr/` with subprotocol `sip`.
    pub async fn connect(addr: SocketAddr, user: &str, domain: &str) -> Result<Self, JsSipError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| JsSipError::Ws(e.to_string()))?;
        let local = tcp
            .local_addr()
            .map_err(|e| JsSipError::Ws(e.to_string()))?;
        let mut req = format!("ws://{addr}/")
            .into_client_request()
            .map_err(|e| JsSipError::Ws(e.to_string()))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("sip"),
        );
        let (ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(|e| JsSipError::Ws(e.to_string()))?;
        let host = format!("{}{user}.invalid", &crate::sip::new_tag()[..6]);
        Ok(JsSipClient {
            ws,
            local,
            contact: format!("sip:{}@{host};transport=ws", &crate::sip::new_tag()[..8]),
            host,
            user: user.into(),
            domain: domain.into(),
            cseq: 0,
            call_id: crate::sip::new_tag(),
            tag: crate::sip::new_tag(),
        })
    }

    /// The public identity.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// The last group of the `+sip.instance` UUID: the user, zero-padded to 12 characters.
    fn uuid_tail(&self) -> String {
        format!("{:0>12}", self.user)
    }

    /// Sends one SIP message as a text frame.
    pub async fn send(&mut self, text: String) -> Result<(), JsSipError> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| JsSipError::Ws(e.to_string()))
    }

    /// The next SIP message (pings are answered by tungstenite), within 5 s.
    pub async fn recv(&mut self) -> Result<SipMessage, JsSipError> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| JsSipError::Timeout)?
                .ok_or_else(|| JsSipError::Ws("closed".into()))?
                .map_err(|e| JsSipError::Ws(e.to_string()))?;
            let bytes = match m {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return Err(JsSipError::Unexpected(format!("frame {other:?}"))),
            };
            return SipMessage::parse(&bytes).map_err(|e| JsSipError::Unexpected(e.to_string()));
        }
    }

    /// The next message, which must be a response.
    pub async fn response(&mut self) -> Result<Response, JsSipError> {
        match self.recv().await? {
            SipMessage::Response(r) => Ok(r),
            SipMessage::Request(r) => Err(JsSipError::Unexpected(format!(
                "expected a response, got {}",
                r.method.as_str()
            ))),
        }
    }

    /// A REGISTER as JsSIP writes it.
    pub fn register_text(&mut self, authorization: Option<String>) -> String {
        self.cseq += 1;
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: SIP/2.0/WS {host};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 69\r\n\
             To: <{aor}>\r\n\
             From: <{aor}>;tag={tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {auth}\
             Contact: <{contact}>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:0e1d4a1b-5c7e-4b53-9a1e-{uuid}>\";expires=600\r\n\
             Expires: 600\r\n\
             Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
             Supported: path,gruu,outbound\r\n\
             User-Agent: JsSIP 3.10.1\r\n\
             Content-Length: 0\r\n\r\n",
            domain = self.domain,
            host = self.host,
            branch = crate::sip::new_tag(),
            aor = self.aor(),
            tag = self.tag,
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact,
            uuid = self.uuid_tail(),
        )
    }

    /// REGISTER without credentials, the 401, the Digest answer (authorization_user
    /// `user@domain`); the final answer.
    pub async fn register(&mut self, password: &str) -> Result<Response, JsSipError> {
        let first = self.register_text(None);
        self.send(first).await?;
        let challenge = self.response().await?;
        if challenge.status != 401 {
            return Ok(challenge);
        }
        let ch = challenge
            .headers
            .get("WWW-Authenticate")
            .and_then(|v| digest::Challenge::parse(v).ok())
            .ok_or_else(|| JsSipError::Unexpected("401 without a Digest challenge".into()))?;
        let username = format!("{}@{}", self.user, self.domain);
        let ha1 = digest::ha1_hex(&username, &ch.realm, password.as_bytes());
        let cnonce = digest::new_cnonce();
        let qop = ch.qop.as_deref().map(|_| "auth");
        let nc = qop.map(|_| "00000001");
        let uri = format!("sip:{}", self.domain);
        let resp = digest::response_hex(
            &ha1,
            &ch.nonce,
            nc,
            qop.map(|_| cnonce.as_str()),
            qop,
            "REGISTER",
            &uri,
        );
        let mut a = format!(
            "Digest algorithm=MD5, username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\"",
            ch.realm, ch.nonce
        );
        if let Some(o) = &ch.opaque {
            a.push_str(&format!(", opaque=\"{o}\""));
        }
        if qop.is_some() {
            a.push_str(&format!(", qop=auth, cnonce=\"{cnonce}\", nc=00000001"));
        }
        let second = self.register_text(Some(a));
        self.send(second).await?;
        self.response().await
    }

    /// A pager-mode MESSAGE (RFC 3428) as JsSIP writes it.
    pub async fn message(&mut self, to: &str, body: &str) -> Result<(), JsSipError> {
        self.cseq += 1;
        let text = format!(
            "MESSAGE {to} SIP/2.0\r\n\
             Via: SIP/2.0/WS {host};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 69\r\n\
             To: <{to}>\r\n\
             From: <{aor}>;tag={tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} MESSAGE\r\n\
             Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
             Supported: outbound\r\n\
             User-Agent: JsSIP 3.10.1\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            host = self.host,
            branch = crate::sip::new_tag(),
            aor = self.aor(),
            tag = crate::sip::new_tag(),
            call_id = crate::sip::new_tag(),
            cseq = self.cseq,
            len = body.len(),
        );
        self.send(text).await
    }
}
