//! The RTCWeb steps of a lab file (patent KR101499354B1, figures 7, 8 and 9): a browser page
//! of the gateway, played by a WebSocket client that sends the patent's frames.
//!
//! - `page-login`: `user`'s page opens `/ws` and sends `REGISTER` with the user's password
//!   (the gateway registers them in IMS).
//! - `page-call`: `user`'s page calls `to`, a registered UE that answers as figure 8 draws it
//!   (a reliable 183 the gateway PRACKs, a reliable 180 the page PRANSWERs, then 200; the
//!   page's ANSWER becomes the ACK). The call stays up. The page's media is a WebRTC peer
//!   ([`WebRtcPeer`]: its offer is a real ICE + DTLS-SRTP one) and the UE's a plain RTP
//!   socket named in its SDP answer, so the call crosses the gateway's media bridge.
//! - `page-talk`: the page's peer connects (ICE, DTLS) to the bridge and `count` PCMU packets
//!   (default 50, one per 20 ms) go each way between it and the UE's socket; the lab's notes
//!   say how many arrived.
//! - `page-reload`: `user`'s page goes away and a new one comes back with the resume token
//!   and `RELOAD` (figure 7 InCall -> Reloading -> InCall); the IMS side hears nothing.
//! - `page-hangup`: `user`'s page sends `BYE`; the callee answers the SIP BYE.
//! - `page-subscribe`: `user`'s page subscribes to `to`'s presence (figure 9) and waits for
//!   the first `NOTIFY`.
//! - `jssip-register`: a browser with JsSIP (not the gateway: SIP itself over the P-CSCF's
//!   WebSocket, RFC 7118) registers `user`: challenge-first, `.invalid` hosts, outbound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use tokio::net::UdpSocket;

use crate::lab::Lab;
use crate::media::peer::WebRtcPeer;
use crate::media::rtp::{self, PlainPacket, RtpFields};
use crate::sip::{IncomingRequest, Method};
use crate::ue::{audio_sdp, uas_response, Ue};

/// How long a page or a UE waits for the next message.
const WAIT: Duration = Duration::from_secs(5);

/// Why an RTCWeb step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum PageStepError {
    #[error("{0}")]
    Ws(String),
    #[error("'{0}' has no page (page-login first)")]
    NoPage(String),
    #[error("'{0}' has not registered")]
    NotRegistered(String),
    #[error("'{0}' has no call")]
    NoCall(String),
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: String, got: String },
    #[error("no {0} within 5 s")]
    Missing(String),
    #[error("media: {0}")]
    Media(String),
    #[error("unknown action '{0}'")]
    Unknown(String),
    #[error("{0} needs `{1}`")]
    Needs(String, &'static str),
}

type R<T> = Result<T, PageStepError>;

struct Page {
    ws: WebSocketStream<TcpStream>,
    token: String,
}

/// A page's call: the callee UE (out of the lab's UEs while the call is up) and its INVITE.
struct PageCall {
    session: String,
    callee: (String, Ue),
    contact: String,
    media: CallMedia,
}

/// Both ends of a page's call media: the page's WebRTC peer and the UE's RTP socket, and
/// where the UE's SDP was told to send (the media bridge's plain side).
struct CallMedia {
    peer: WebRtcPeer,
    phone: UdpSocket,
    to: Option<std::net::SocketAddr>,
}

/// The pages of a lab run.
#[derive(Default)]
pub(super) struct Pages {
    pages: HashMap<String, Page>,
    calls: HashMap<String, PageCall>,
    /// How many pages were opened (each names its socket `Page USER`, `Page USER (2)`...).
    opened: HashMap<String, usize>,
    /// JsSIP-shaped clients, kept connected until the ladder is taken.
    jssips: Vec<crate::ue::jssip::JsSipClient>,
}

impl Pages {
    async fn open(&mut self, lab: &Lab, user: &str) -> R<Page> {
        let addr: SocketAddr = lab.addrs.rtcweb;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| PageStepError::Ws(format!("connect {addr}: {e}")))?;
        let local = tcp
            .local_addr()
            .map_err(|e| PageStepError::Ws(e.to_string()))?;
        let n = self.opened.entry(user.to_string()).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            format!("Page {user}")
        } else {
            format!("Page {user} ({n})")
        };
        lab.name_addr(local, &name);
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
            .await
            .map_err(|e| PageStepError::Ws(format!("WebSocket upgrade: {e}")))?;
        Ok(Page {
            ws,
            token: String::new(),
        })
    }

    fn page(&mut self, user: &str) -> R<&mut Page> {
        self.pages
            .get_mut(user)
            .ok_or_else(|| PageStepError::NoPage(user.into()))
    }

    /// `page-login`.
    pub(super) async fn login(&mut self, lab: &Lab, user: &str, password: &str) -> R<()> {
        let mut p = self.open(lab, user).await?;
        let aor = format!("sip:{user}@{}", lab.config.lab.domain);
        send(
            &mut p,
            json!({"type": "REGISTER", "from": aor, "password": password}),
        )
        .await?;
        let ok = expect(&mut p, "OK").await?;
        p.token = ok["body"].as_str().unwrap_or("").to_string();
        self.pages.insert(user.to_string(), p);
        Ok(())
    }

    /// `jssip-register`: `user` registers over the P-CSCF's WebSocket as JsSIP does.
    pub(super) async fn jssip_register(&mut self, lab: &Lab, user: &str, password: &str) -> R<()> {
        let domain = &lab.config.lab.domain;
        let mut c = crate::ue::jssip::JsSipClient::connect(lab.addrs.pcscf_ws, user, domain)
            .await
            .map_err(|e| PageStepError::Ws(e.to_string()))?;
        lab.name_addr(c.local, &format!("JsSIP {user}"));
        let r = c
            .register(password)
            .await
            .map_err(|e| PageStepError::Ws(e.to_string()))?;
        if r.status != 200 {
            return Err(PageStepError::Unexpected {
                expected: "200".into(),
                got: format!("{} {}", r.status, r.reason),
            });
        }
        self.jssips.push(c);
        Ok(())
    }

    /// `page-call`: figure 8 with `to`'s UE answering reliably.
    pub(super) async fn call(
        &mut self,
        lab: &Lab,
        ues: &mut Vec<(String, Ue)>,
        user: &str,
        to: &str,
        domain: &str,
    ) -> R<()> {
        let at = ues
            .iter()
            .position(|(u, _)| u == to)
            .ok_or_else(|| PageStepError::NotRegistered(to.into()))?;
        let ip = lab.addrs.rtcweb_sip.ip();
        let media_err = |e: &dyn std::fmt::Display| PageStepError::Media(e.to_string());
        let mut peer = WebRtcPeer::new(ip, 1024).await.map_err(|e| media_err(&e))?;
        let offer = peer.offer().await.map_err(|e| media_err(&e))?;
        let phone = UdpSocket::bind((ip, 0)).await.map_err(|e| media_err(&e))?;
        let phone_port = phone.local_addr().map_err(|e| media_err(&e))?.port();
        let (name, mut ue) = ues.remove(at);
        let contact = ue.contact();
        let session = format!("call-{user}");
        let mut answer = None;
        let mut bridge_at = None;
        let r = async {
            let p = self.page(user)?;
            send(
                p,
                json!({"type": "OFFER", "session": session, "to": format!("sip:{to}@{domain}"), "sdp": offer}),
            )
            .await?;
            expect(p, "WAITING").await?;
            let inv = next(&mut ue, Method::Invite).await?;
            bridge_at = std::str::from_utf8(&inv.request.body)
                .ok()
                .and_then(|b| crate::media::sdp::parse_plain(b).ok())
                .and_then(|a| Some(std::net::SocketAddr::new(a.addr?, a.port)));
            let reliable = |status: u16, rseq: u32| {
                let mut r = uas_response(
                    &inv.request,
                    status,
                    "lab",
                    &contact,
                    Some(&audio_sdp(phone_port)),
                );
                r.headers.push("Require", "100rel");
                r.headers.push("RSeq", rseq.to_string());
                r
            };
            inv.tx.respond(reliable(183, 1));
            let prack = next(&mut ue, Method::Prack).await?;
            prack
                .tx
                .respond(uas_response(&prack.request, 200, "lab", &contact, None));
            super::settle().await;
            inv.tx.respond(reliable(180, 2));
            let p = self.page(user)?;
            let ringing = expect(p, "Ringing").await?;
            answer = ringing["sdp"].as_str().map(str::to_string);
            send(p, json!({"type": "PRANSWER", "session": session})).await?;
            let prack = next(&mut ue, Method::Prack).await?;
            prack
                .tx
                .respond(uas_response(&prack.request, 200, "lab", &contact, None));
            let p = self.page(user)?;
            expect(p, "OK").await?;
            super::settle().await;
            inv.tx.respond(uas_response(
                &inv.request,
                200,
                "lab",
                &contact,
                Some(&audio_sdp(phone_port)),
            ));
            let p = self.page(user)?;
            let ok = expect(p, "OK").await?;
            if let Some(sdp) = ok["sdp"].as_str() {
                answer.get_or_insert_with(|| sdp.to_string());
            }
            send(p, json!({"type": "ANSWER", "session": session})).await?;
            next(&mut ue, Method::Ack).await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            ues.push((name, ue));
            return Err(e);
        }
        let answer = answer.ok_or_else(|| PageStepError::Missing("SDP answer".into()))?;
        let accepted = peer.accept_answer(&answer).await;
        self.calls.insert(
            user.to_string(),
            PageCall {
                session,
                callee: (name, ue),
                contact,
                media: CallMedia {
                    peer,
                    phone,
                    to: bridge_at,
                },
            },
        );
        accepted.map_err(|e| media_err(&e))
    }

    /// `page-talk`: `count` packets each way between the page's peer and the UE's socket.
    pub(super) async fn talk(&mut self, lab: &Lab, user: &str, count: u16) -> R<()> {
        let call = self
            .calls
            .get_mut(user)
            .ok_or_else(|| PageStepError::NoCall(user.into()))?;
        let m = &mut call.media;
        let media_err = |e: &dyn std::fmt::Display| PageStepError::Media(e.to_string());
        let to =
            m.to.ok_or_else(|| PageStepError::Media("the phone was offered no plain RTP".into()))?;
        m.peer
            .run(Duration::from_secs(10), |p| p.is_connected())
            .await
            .map_err(|e| media_err(&e))?;
        if !m.peer.is_connected() {
            return Err(PageStepError::Missing("ICE + DTLS with the bridge".into()));
        }
        let before = m.peer.received().len();
        let (mut to_phone, mut buf, mut pkt) = (0usize, [0u8; 2048], Vec::new());
        for i in 0..count {
            let ts = u32::from(i) * 160;
            let frame = [0xd5u8; 160];
            m.peer
                .send(i, ts, i == 0, &frame)
                .await
                .map_err(|e| media_err(&e))?;
            let f = RtpFields {
                marker: i == 0,
                pt: 0,
                seq: i,
                timestamp: ts,
                ssrc: 0x1ab0_0001,
            };
            rtp::write(&f, &frame, &mut pkt);
            m.phone.send_to(&pkt, to).await.map_err(|e| media_err(&e))?;
            m.peer
                .run(Duration::from_millis(20), |_| false)
                .await
                .map_err(|e| media_err(&e))?;
            while let Ok((n, _)) = m.phone.try_recv_from(&mut buf) {
                to_phone += usize::from(matches!(rtp::read(&buf[..n]), PlainPacket::Rtp(..)));
            }
        }
        m.peer
            .run(Duration::from_millis(300), |_| false)
            .await
            .map_err(|e| media_err(&e))?;
        while let Ok((n, _)) = m.phone.try_recv_from(&mut buf) {
            to_phone += usize::from(matches!(rtp::read(&buf[..n]), PlainPacket::Rtp(..)));
        }
        let to_page = m.peer.received().len() - before;
        let (callee, node) = (call.callee.0.clone(), lab.addrs.rtcweb_sip);
        lab.trace.note(node, || {
            format!("media: {to_page} of {count} PCMU packets reached {user}'s page (SRTP) and {to_phone} of {count} reached {callee}'s phone (plain RTP at {to})")
        });
        if to_page < usize::from(count) || to_phone < usize::from(count) {
            return Err(PageStepError::Media(format!(
                "{to_page}/{count} packets reached the page, {to_phone}/{count} the phone"
            )));
        }
        Ok(())
    }

    /// The page steps of a lab file (see the module).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn step(
        &mut self,
        lab: &Lab,
        ues: &mut Vec<(String, Ue)>,
        action: &str,
        user: &str,
        to: Option<&str>,
        password: Option<String>,
        domain: &str,
    ) -> R<()> {
        let needs = |what: &'static str| PageStepError::Needs(action.to_string(), what);
        match action {
            "page-login" | "jssip-register" => {
                let password = password.ok_or_else(|| needs("user (a subscriber of the lab)"))?;
                if action == "page-login" {
                    self.login(lab, user, &password).await
                } else {
                    self.jssip_register(lab, user, &password).await
                }
            }
            "page-call" => {
                let to = to.ok_or_else(|| needs("to"))?;
                self.call(lab, ues, user, to, domain).await
            }
            "page-subscribe" => {
                let to = to.ok_or_else(|| needs("to"))?;
                self.subscribe(user, to, domain).await
            }
            "page-talk" => self.talk(lab, user, 50).await,
            "page-reload" => self.reload(lab, user).await,
            "page-hangup" => self.hangup(ues, user).await,
            other => Err(PageStepError::Unknown(other.to_string())),
        }
    }

    /// `page-reload`: the page goes, a new one re-attaches the call.
    pub(super) async fn reload(&mut self, lab: &Lab, user: &str) -> R<()> {
        let old = self
            .pages
            .remove(user)
            .ok_or_else(|| PageStepError::NoPage(user.into()))?;
        let session = self
            .calls
            .get(user)
            .map(|c| c.session.clone())
            .ok_or_else(|| PageStepError::NoCall(user.into()))?;
        let token = old.token.clone();
        drop(old);
        let gone = tokio::time::Instant::now() + WAIT;
        while lab.rtcweb.call_state(&session)
            != Some(crate::rtcweb::message::ClientState::Reloading)
        {
            if tokio::time::Instant::now() > gone {
                return Err(PageStepError::Missing("Reloading".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        super::settle().await;
        let mut p = self.open(lab, user).await?;
        let aor = format!("sip:{user}@{}", lab.config.lab.domain);
        send(
            &mut p,
            json!({"type": "REGISTER", "from": aor, "password": token}),
        )
        .await?;
        let ok = expect(&mut p, "OK").await?;
        p.token = ok["body"].as_str().unwrap_or("").to_string();
        send(&mut p, json!({"type": "RELOAD", "session": session})).await?;
        let st = expect(&mut p, "STATE").await?;
        if st["state"] != "InCall" {
            return Err(PageStepError::Unexpected {
                expected: "STATE InCall".into(),
                got: st.to_string(),
            });
        }
        if lab.rtcweb.media_leg(&session).is_some() {
            // The media bridge offers the reloaded page new media in the same call.
            let media_err = |e: &dyn std::fmt::Display| PageStepError::Media(e.to_string());
            let offer = expect(&mut p, "OFFER").await?;
            let sdp = offer["sdp"].as_str().unwrap_or("").to_string();
            let ip = lab.addrs.rtcweb_sip.ip();
            let mut peer = WebRtcPeer::new(ip, 1024).await.map_err(|e| media_err(&e))?;
            let answer = peer.answer(&sdp).await.map_err(|e| media_err(&e))?;
            send(
                &mut p,
                json!({"type": "ANSWER", "session": session, "sdp": answer}),
            )
            .await?;
            expect(&mut p, "OK").await?;
            if let Some(c) = self.calls.get_mut(user) {
                c.media.peer = peer;
            }
        }
        self.pages.insert(user.to_string(), p);
        Ok(())
    }

    /// `page-hangup`: BYE from the page; the callee answers; its UE goes back to the lab's.
    pub(super) async fn hangup(&mut self, ues: &mut Vec<(String, Ue)>, user: &str) -> R<()> {
        let mut call = self
            .calls
            .remove(user)
            .ok_or_else(|| PageStepError::NoCall(user.into()))?;
        let r = async {
            let p = self.page(user)?;
            send(p, json!({"type": "BYE", "session": call.session})).await?;
            let bye = next(&mut call.callee.1, Method::Bye).await?;
            bye.tx
                .respond(uas_response(&bye.request, 200, "lab", &call.contact, None));
            let p = self.page(user)?;
            expect(p, "OK").await?;
            Ok(())
        }
        .await;
        ues.push(call.callee);
        r
    }

    /// `page-subscribe`: figure 9 up to the first NOTIFY.
    pub(super) async fn subscribe(&mut self, user: &str, to: &str, domain: &str) -> R<()> {
        let p = self.page(user)?;
        send(
            p,
            json!({"type": "SUBSCRIBE", "to": format!("sip:{to}@{domain}")}),
        )
        .await?;
        expect(p, "OK").await?;
        let mut seen_ok = false;
        let mut seen_notify = false;
        while !(seen_ok && seen_notify) {
            let v = recv(p).await?;
            match v["type"].as_str() {
                Some("OK") => seen_ok = true,
                Some("NOTIFY") => seen_notify = true,
                _ => {
                    return Err(PageStepError::Unexpected {
                        expected: "OK and NOTIFY".into(),
                        got: v.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}

async fn send(p: &mut Page, v: Value) -> R<()> {
    p.ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| PageStepError::Ws(e.to_string()))
}

async fn recv(p: &mut Page) -> R<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, p.ws.next())
            .await
            .map_err(|_| PageStepError::Missing("frame".into()))?
            .ok_or_else(|| PageStepError::Ws("the gateway closed the page".into()))?
            .map_err(|e| PageStepError::Ws(e.to_string()))?;
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).map_err(|e| PageStepError::Ws(e.to_string()));
        }
    }
}

async fn expect(p: &mut Page, kind: &str) -> R<Value> {
    let v = recv(p).await?;
    if v["type"] == kind {
        Ok(v)
    } else {
        Err(PageStepError::Unexpected {
            expected: kind.into(),
            got: v.to_string(),
        })
    }
}

async fn next(ue: &mut Ue, method: Method) -> R<IncomingRequest> {
    let inc = ue
        .next_request(WAIT)
        .await
        .ok_or_else(|| PageStepError::Missing(method.as_str().to_string()))?;
    if inc.request.method == method {
        Ok(inc)
    } else {
        Err(PageStepError::Unexpected {
            expected: method.as_str().to_string(),
            got: inc.request.method.as_str().to_string(),
        })
    }
}
