//! The gateway's media: where a call's SDP crosses the WebRTC media bridge ([`MediaBridge`],
//! the eIMS-AGW of TS 24.371) and where it passes untouched.
//!
//! - A page calls a phone (the callee is not one of this gateway's web users): the INVITE
//!   leaves with the bridge's plain RTP/AVP offer instead of the page's WebRTC offer
//!   ([`MediaBridge::web_offer`]); the phone's SDP answer (in a 18x or the 200) becomes the
//!   bridge's WebRTC answer for the page ([`MediaBridge::ims_answer`]), and every later
//!   response carrying the same answer gets the same translation.
//! - A phone calls a page (the INVITE's offer is not WebRTC): the page is offered the bridge's
//!   WebRTC offer ([`MediaBridge::ims_offer`]); its `ANSWER` becomes the plain answer in the
//!   200 ([`MediaBridge::web_answer`]).
//! - A page calls a page (through the core, figure 6), or a WebRTC offer comes from IMS (a
//!   JsSIP browser): both SDPs pass end to end.
//!
//! The bridge's calls are async (str0m makes a DTLS certificate); they run in the task that
//! sends the request or before the frame reaches the call's core, never under the state lock.
//! A bridge that refuses (no G.711, bridge full, bad SDP) ends the call cleanly: 488 to a
//! phone's INVITE, a hang-up from the page's side otherwise, and an `ERROR` frame with the
//! reason to the page. A call's media leg is closed when its core finishes.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Action, Core, Entry, RtcwebGateway, State};
use crate::media::{LegId, MediaBridge};
use crate::rtcweb::message::{Kind, WebMessage};
use crate::sip::{Method, Request, Response};

/// One call's media through the bridge.
#[derive(Debug, Default)]
pub(super) struct MediaLeg {
    /// The bridge's call, once it was opened.
    leg: Option<LegId>,
    /// The bridge's plain offer for the phone (the same again if the INVITE goes again,
    /// e.g. without 100rel after a 420).
    offer: Option<String>,
    /// The translated answer (for the page when it called, for the phone when it was called);
    /// every message carrying the answer again gets this one.
    answer: Option<String>,
    /// The phone called the page (its offer already went through the bridge).
    incoming: bool,
    /// The page's answer is in the bridge now.
    answering: bool,
    /// A reloaded page was sent a new offer for the call: its `ANSWER` is for the bridge.
    reoffered: bool,
}

/// See [`RtcwebGateway::page_answer`].
pub(super) enum PageAnswer {
    Direct,
    Bridge(LegId),
    /// The answer of a reloaded page to the bridge's new offer.
    Reattach(LegId),
    Busy,
}

/// Whether `body` is a WebRTC SDP (DTLS-SRTP with ICE): what a browser can take as it is.
pub(super) fn is_webrtc(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| crate::media::sdp::parse_webrtc(s).is_ok())
}

fn sdp_of(body: &Bytes) -> Option<String> {
    (!body.is_empty())
        .then(|| String::from_utf8(body.to_vec()).ok())
        .flatten()
}

impl RtcwebGateway {
    /// The bridge, when the gateway runs one.
    pub fn bridge(&self) -> Option<&Arc<MediaBridge>> {
        self.bridge.as_ref()
    }

    /// The bridge's call carrying session `id`'s media, if it crosses the bridge.
    pub fn media_leg(&self, id: &str) -> Option<LegId> {
        self.st.lock().ok()?.media.get(id)?.leg
    }

    /// Every call's bridge leg now: session id and leg.
    pub fn media_legs(&self) -> Vec<(String, LegId)> {
        self.st.lock().map_or_else(
            |_| Vec::new(),
            |st| {
                st.media
                    .iter()
                    .filter_map(|(id, m)| Some((id.clone(), m.leg?)))
                    .collect()
            },
        )
    }

    /// Session `id` (a page's call to `to`) is to cross the bridge if `to` is not one of our
    /// web users.
    pub(super) fn mark_outgoing_media(&self, st: &mut State, id: &str, to_web: bool) {
        if self.bridge.is_some() && !to_web {
            st.media.insert(id.to_string(), MediaLeg::default());
        }
    }

    /// A finished session's media leg is closed.
    pub(super) fn forget_media(&self, st: &mut State, id: &str) {
        if let (Some(m), Some(b)) = (st.media.remove(id), &self.bridge) {
            if let Some(leg) = m.leg {
                b.close(leg);
            }
        }
    }

    /// Before an INVITE of a page's call leaves: the page's offer becomes the bridge's plain
    /// offer. `Err` carries the response the call's core is to get instead (488).
    pub(super) async fn bridge_invite(&self, r: &mut Request) -> Result<(), Response> {
        let Some(bridge) = &self.bridge else {
            return Ok(());
        };
        if r.method != Method::Invite || crate::sip::dialog::in_dialog(r) {
            return Ok(());
        }
        let Some(id) = self.session_of_request(r) else {
            return Ok(());
        };
        let Some(web_sdp) = sdp_of(&r.body) else {
            return Ok(());
        };
        let again = self
            .st
            .lock()
            .ok()
            .and_then(|st| st.media.get(&id)?.offer.clone());
        if let Some(plain) = again {
            r.body = Bytes::from(plain);
            return Ok(());
        }
        match bridge.web_offer(&web_sdp).await {
            Ok((leg, plain)) => {
                let kept = self.st.lock().ok().is_some_and(|mut st| {
                    st.media
                        .get_mut(&id)
                        .map(|m| {
                            m.leg = Some(leg);
                            m.offer = Some(plain.clone());
                        })
                        .is_some()
                });
                if !kept {
                    bridge.close(leg);
                    return Ok(());
                }
                let to = r.uri.clone();
                let addr = addr_of(&plain);
                self.ep.note(|| {
                    format!("media bridge {leg}: the page's WebRTC offer goes to {to} as plain RTP/AVP at {addr} (eIMS-AGW, TS 24.371)")
                });
                r.body = Bytes::from(plain);
                Ok(())
            }
            Err(e) => {
                let reason = e.to_string();
                self.ep
                    .note(|| format!("media bridge refused the page's offer: {reason}"));
                let user = self
                    .st
                    .lock()
                    .ok()
                    .and_then(|st| Some(st.sessions.get(&id)?.user.clone()));
                if let Some(user) = user {
                    let why = format!("media: {reason}");
                    self.to_page(&user, WebMessage::error(Some(&id), Some(Kind::Offer), why));
                }
                let mut no = not_acceptable(r, &reason);
                no.headers.remove("Via");
                Err(no)
            }
        }
    }

    /// A response to a bridged INVITE: its SDP answer is translated for the page (once; the
    /// same translation for every later copy). `Err` names the call to end (its user and
    /// session) and the bridge's reason.
    pub(super) async fn bridge_answer(
        &self,
        resp: &Response,
    ) -> Result<(), (String, String, String)> {
        let Some(bridge) = &self.bridge else {
            return Ok(());
        };
        let Some(ims_sdp) = sdp_of(&resp.body) else {
            return Ok(());
        };
        let from_tag = crate::rtcweb::call::tag_of(resp.headers.get("From"));
        let call_id = resp.headers.get("Call-ID").unwrap_or("");
        let (leg, user, id) = {
            let Ok(st) = self.st.lock() else {
                return Ok(());
            };
            let Some(id) = super::sip::session_of(&st, call_id, from_tag) else {
                return Ok(());
            };
            let leg = match st.media.get(&id) {
                Some(m) if !m.incoming && m.answer.is_none() => m.leg,
                _ => None,
            };
            let user = st
                .sessions
                .get(&id)
                .map(|e| e.user.clone())
                .unwrap_or_default();
            (leg, user, id)
        };
        let Some(leg) = leg else {
            return Ok(());
        };
        match bridge.ims_answer(leg, &ims_sdp).await {
            Ok(web) => {
                if let Ok(mut st) = self.st.lock() {
                    if let Some(m) = st.media.values_mut().find(|m| m.leg == Some(leg)) {
                        m.answer = Some(web);
                    }
                }
                let stats = bridge.stats(leg);
                let codec = stats
                    .as_ref()
                    .and_then(|s| s.codec)
                    .map_or("?", |c| c.name());
                let peer = stats
                    .and_then(|s| s.ims_peer)
                    .map_or_else(|| "?".into(), |a| a.to_string());
                self.ep.note(|| {
                    format!("media bridge {leg}: the phone answers {codec} at {peer}; the page gets the bridge's WebRTC answer (ICE-lite, DTLS-SRTP)")
                });
                Ok(())
            }
            Err(e) => {
                let why = format!("media: {e}");
                self.ep
                    .note(|| format!("media bridge refused the phone's answer: {why}"));
                Err((user, id, why))
            }
        }
    }

    /// What the page sees of a response: a bridged call's SDP is the translated answer (or
    /// none, if the bridge has none).
    pub(super) fn page_view_of(&self, st: &State, resp: &mut Response) {
        if resp.body.is_empty() || st.media.is_empty() {
            return;
        }
        let from_tag = crate::rtcweb::call::tag_of(resp.headers.get("From"));
        let call_id = resp.headers.get("Call-ID").unwrap_or("");
        let Some(id) = super::sip::session_of(st, call_id, from_tag) else {
            return;
        };
        if let Some(m) = st.media.get(&id).filter(|m| !m.incoming) {
            resp.body = m.answer.clone().map(Bytes::from).unwrap_or_default();
        }
    }

    /// What the phone sees of our response: a bridged call's SDP is the bridge's plain answer
    /// (or none before the page's answer went through the bridge).
    pub(super) fn phone_view_of(&self, resp: &mut Response) {
        if resp.body.is_empty() {
            return;
        }
        let Ok(st) = self.st.lock() else { return };
        if st.media.is_empty() {
            return;
        }
        let to_tag = crate::rtcweb::call::tag_of(resp.headers.get("To"));
        let call_id = resp.headers.get("Call-ID").unwrap_or("");
        let Some(id) = super::sip::session_of(&st, call_id, to_tag) else {
            return;
        };
        if let Some(m) = st.media.get(&id).filter(|m| m.incoming) {
            resp.body = m.answer.clone().map(Bytes::from).unwrap_or_default();
        }
    }

    /// A phone's INVITE to a page whose offer is plain RTP: the page is offered the bridge's
    /// WebRTC offer. `Err` is the 488 for the phone.
    pub(super) async fn bridge_incoming(
        &self,
        req: &mut Request,
    ) -> Result<Option<LegId>, crate::media::BridgeError> {
        let Some(bridge) = &self.bridge else {
            return Ok(None);
        };
        let Some(plain) = sdp_of(&req.body).filter(|_| !is_webrtc(&req.body)) else {
            return Ok(None);
        };
        match bridge.ims_offer(&plain).await {
            Ok((leg, web)) => {
                let from = req.headers.get("From").unwrap_or("").to_string();
                let at = addr_of(&plain);
                self.ep.note(|| {
                    format!("media bridge {leg}: the plain RTP offer of {from} (at {at}) reaches the page as the bridge's WebRTC offer")
                });
                req.body = Bytes::from(web);
                Ok(Some(leg))
            }
            Err(e) => Err(e),
        }
    }

    /// Notes the leg of an incoming call now that its session is open (or closes it).
    pub(super) fn keep_incoming_leg(&self, st: &mut State, id: Option<&str>, leg: LegId) {
        match id {
            Some(id) => {
                st.media.insert(
                    id.to_string(),
                    MediaLeg {
                        leg: Some(leg),
                        incoming: true,
                        ..MediaLeg::default()
                    },
                );
            }
            None => {
                if let Some(b) = &self.bridge {
                    b.close(leg);
                }
            }
        }
    }

    /// What to do with the page's `ANSWER` in session `id`: straight to the call, through
    /// the bridge first (the phone called; marked as under way), or refused while a first
    /// `ANSWER` is still in the bridge.
    pub(super) fn page_answer(&self, st: &mut State, id: &str) -> PageAnswer {
        match st.media.get_mut(id) {
            Some(m) if m.reoffered => match m.leg {
                Some(leg) => {
                    m.reoffered = false;
                    PageAnswer::Reattach(leg)
                }
                None => PageAnswer::Direct,
            },
            Some(m) if m.incoming && m.answer.is_none() => match m.leg {
                Some(_) if m.answering => PageAnswer::Busy,
                Some(leg) => {
                    m.answering = true;
                    PageAnswer::Bridge(leg)
                }
                None => PageAnswer::Direct,
            },
            _ => PageAnswer::Direct,
        }
    }

    /// The page's `ANSWER` to a phone's call: through the bridge first; the call's core gets
    /// it only if the bridge took it, else the page's side declines the call.
    pub(super) async fn bridge_page_answer(
        self: Arc<Self>,
        page: u64,
        user: String,
        leg: LegId,
        msg: WebMessage,
    ) {
        let Some(bridge) = self.bridge.clone() else {
            return;
        };
        let session = msg.session.clone().unwrap_or_default();
        let web = msg.sdp.clone().unwrap_or_default();
        match bridge.web_answer(leg, &web).await {
            Ok(plain) => {
                if let Ok(mut st) = self.st.lock() {
                    if let Some(m) = st.media.get_mut(&session) {
                        m.answer = Some(plain);
                    }
                }
                self.on_frame(page, Some(&user), msg);
            }
            Err(e) => {
                let reason = format!("media: {e}");
                self.ep
                    .note(|| format!("media bridge refused {user}'s answer: {reason}"));
                self.end_for_media(&user, &session, &reason);
            }
        }
    }

    /// A reloaded page took its call back (figure 7 Reloading -> InCall): if the call's
    /// media crosses the bridge, the page gets a new `OFFER` in the same session from the
    /// bridge (a new ICE + DTLS-SRTP side on the same port); the IMS side sees nothing.
    pub(super) async fn media_reattach(self: Arc<Self>, user: String, session: String) {
        let Some(bridge) = self.bridge.clone() else {
            return;
        };
        let (leg, peer) = {
            let Ok(st) = self.st.lock() else { return };
            let Some(leg) = st.media.get(&session).and_then(|m| m.leg) else {
                return;
            };
            let peer = match st.sessions.get(&session).map(|e| &e.core) {
                Some(Core::Call(c)) if c.state() == crate::rtcweb::message::ClientState::InCall => {
                    c.peer().to_string()
                }
                _ => return,
            };
            (leg, peer)
        };
        match bridge.web_reoffer(leg).await {
            Ok(offer) => {
                if let Ok(mut st) = self.st.lock() {
                    if let Some(m) = st.media.get_mut(&session) {
                        m.reoffered = true;
                    }
                }
                self.ep.note(|| {
                    format!("media bridge {leg}: {user}'s reloaded page gets a new WebRTC offer in its call; the phone keeps its RTP, the IMS side sees nothing")
                });
                let mut o = WebMessage::for_session(Kind::Offer, &session).with_sdp(Some(&offer));
                o.from = Some(peer);
                self.to_page(&user, o);
            }
            Err(e) => {
                let why = format!("media: {e}");
                self.ep.note(|| {
                    format!("media bridge: no new offer for {user}'s reloaded page: {why}")
                });
                self.to_page(
                    &user,
                    WebMessage::error(Some(&session), Some(Kind::Reload), why),
                );
            }
        }
    }

    /// A reloaded page's `ANSWER` to the bridge's new offer: `OK` when the bridge took it.
    pub(super) async fn media_reanswer(self: Arc<Self>, user: String, leg: LegId, msg: WebMessage) {
        let Some(bridge) = self.bridge.clone() else {
            return;
        };
        let session = msg.session.clone().unwrap_or_default();
        let reply = match bridge
            .web_reanswer(leg, msg.sdp.as_deref().unwrap_or(""))
            .await
        {
            Ok(()) => WebMessage::ok(Some(&session), Kind::Answer),
            Err(e) => WebMessage::error(Some(&session), Some(Kind::Answer), format!("media: {e}")),
        };
        self.to_page(&user, reply);
    }

    /// The bridge could not carry call `session`'s media: the page is told why and the call
    /// ends as if the page had hung up (CANCEL, BYE or a decline, as its state asks).
    pub(super) fn end_for_media(&self, user: &str, session: &str, reason: &str) {
        let now = Instant::now();
        let mut acts = vec![Action::Web(
            user.to_string(),
            WebMessage::error(Some(session), None, reason),
        )];
        {
            let Ok(mut st) = self.st.lock() else { return };
            let st = &mut *st;
            if let Some(Entry {
                core: Core::Call(c),
                ..
            }) = st.sessions.get_mut(session)
            {
                let mut bye = WebMessage::for_session(Kind::Bye, session);
                bye.reason = Some("media".into());
                c.handle_web(now, &bye);
            }
            self.drain(st, session, &mut acts);
        }
        self.perform(acts);
    }

    /// The session an outgoing request belongs to (its Call-ID and our From tag).
    fn session_of_request(&self, r: &Request) -> Option<String> {
        let st = self.st.lock().ok()?;
        let from_tag = crate::rtcweb::call::tag_of(r.headers.get("From"));
        let call_id = r.headers.get("Call-ID")?;
        super::sip::session_of(&st, call_id, from_tag)
    }
}

/// 488 for a request whose media the bridge refused, the reason in a Warning (RFC 3261
/// §20.43, code 399: miscellaneous).
pub(super) fn not_acceptable(r: &Request, reason: &str) -> Response {
    let mut no = r.response(488, Some("Not Acceptable Here"));
    no.headers.push(
        "Warning",
        format!("399 rtcweb \"{}\"", reason.replace('"', "'")),
    );
    no
}

/// `ip:port` of an SDP's audio, for trace notes.
fn addr_of(sdp: &str) -> String {
    match crate::media::sdp::parse_audio(sdp) {
        Ok(a) => format!(
            "{}:{}",
            a.addr.map_or_else(|| "?".into(), |ip| ip.to_string()),
            a.port
        ),
        Err(_) => "?".into(),
    }
}
