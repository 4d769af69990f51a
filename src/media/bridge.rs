//! The call table of the media bridge: offers and answers in, SDP out, a [`CallTask`] per call
//! and the port pool. The per-call states (RFC 3264 offer/answer, in either direction):
//!
//! ```text
//!  web_offer ──> AwaitImsAnswer ──ims_answer──┐
//!                                             ├──> Running ──close / idle / Rtc dead──> end
//!  ims_offer ──> AwaitWebAnswer ──web_answer──┘
//! ```
//!
//! A refused answer (bad SDP, no codec in common) leaves the call in its waiting state; the
//! caller closes it. A failure inside str0m while applying an answer ends the call.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::CryptoProvider;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::call::{CallTask, Cmd, Session, WebSide};
use super::sdp::{self, AudioSection, G711};
use super::{BridgeConfig, BridgeError, LegId, LegStats};

/// Commands waiting for one call's task: only `Start`, once.
const CMD_QUEUE: usize = 2;

/// The WebRTC ⇄ plain RTP media bridge; see the module docs of [`crate::media`].
pub struct MediaBridge {
    cfg: BridgeConfig,
    table: Arc<Mutex<Table>>,
    next_id: AtomicU64,
}

/// What the tasks share with the bridge. Tasks hold it weakly: dropping the bridge drops the
/// table, whose command senders then close every task.
pub(super) struct Table {
    calls: HashMap<LegId, Entry>,
    /// Ports of the configured range this bridge holds.
    ports: BTreeSet<u16>,
    /// Where the next port search starts, so that a just-freed port is not reused at once.
    cursor: u16,
}

struct Entry {
    phase: Phase,
    cmd: mpsc::Sender<Cmd>,
    stats: Arc<Mutex<LegStats>>,
    web_addr: SocketAddr,
    ims_addr: SocketAddr,
}

enum Phase {
    AwaitImsAnswer {
        web_sdp: String,
        web: AudioSection,
        offered: Vec<G711>,
    },
    AwaitWebAnswer(Box<OfferToWeb>),
    Running,
    /// Running, with a new offer out to a new browser (its page was reloaded).
    Reoffered(Box<Reoffer>),
}

/// A new browser side being negotiated for a running call.
struct Reoffer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    mid: Mid,
    codec: G711,
}

struct OfferToWeb {
    rtc: Rtc,
    pending: SdpPendingOffer,
    mid: Mid,
    codec: G711,
    ims_pt: u8,
    ims_peer: SocketAddr,
}

/// Ports of the range held by one call; dropping it (when the task ends and its sockets are
/// closed) gives them back. It takes the table's lock: never drop a non-empty one under it.
pub(super) struct PortLease {
    table: Weak<Mutex<Table>>,
    ports: Vec<u16>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if self.ports.is_empty() {
            return;
        }
        if let Some(t) = self.table.upgrade() {
            let mut t = lock(&t);
            for p in &self.ports {
                t.ports.remove(p);
            }
        }
    }
}

fn lock(t: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic elsewhere while holding the lock leaves a table that is still consistent
    // (every change is a single insert or remove).
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a call from the table (its task ending on its own: idle timeout, DTLS gone).
pub(super) fn forget(table: &Weak<Mutex<Table>>, id: LegId) {
    if let Some(t) = table.upgrade() {
        lock(&t).calls.remove(&id);
    }
}

fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

/// The str0m configuration of a call's browser side: ICE-lite, RTP mode (packets in and out,
/// no depacketizing), exactly one codec.
fn rtc_for(codec: G711) -> Rtc {
    let cfg = RtcConfig::new()
        .set_crypto_provider(crypto())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs();
    let cfg = match codec {
        G711::Pcmu => cfg.enable_pcmu(true, false),
        G711::Pcma => cfg.enable_pcma(true, false),
    };
    cfg.build(Instant::now())
}

/// A new browser side offering one sendrecv audio m-line with `codec`, its one candidate
/// `web_addr` (ICE-lite, `a=setup:actpass`).
fn offer_to_web(
    web_addr: SocketAddr,
    codec: G711,
) -> Result<(Rtc, SdpOffer, SdpPendingOffer, Mid), BridgeError> {
    let mut rtc = rtc_for(codec);
    rtc.add_local_candidate(Candidate::host(web_addr, "udp")?);
    drain(&mut rtc)?;
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let Some((offer, pending)) = change.apply() else {
        return Err(BridgeError::WebRtc(str0m::RtcError::RemoteSdp(
            "str0m made no offer".into(),
        )));
    };
    drain(&mut rtc)?;
    Ok((rtc, offer, pending, mid))
}

/// A browser's answer, read by us and by str0m.
fn read_web_answer(web_sdp: &str) -> Result<(AudioSection, SdpAnswer), BridgeError> {
    let web = sdp::parse_webrtc(web_sdp).map_err(BridgeError::bad_web)?;
    let answer = SdpAnswer::from_sdp_string(web_sdp).map_err(str0m::RtcError::Sdp)?;
    Ok((web, answer))
}

/// The payload type the browser's answer gives `codec`.
fn web_pt_of(web: &AudioSection, codec: G711) -> Result<u8, BridgeError> {
    web.pt_of(codec).ok_or_else(|| BridgeError::NoCommonCodec {
        side: "web",
        offered: web.encodings(),
    })
}

/// Drains str0m after a mutation outside the call task (str0m's single-mutation invariant);
/// nothing can be due to the network before the remote description is in.
fn drain(rtc: &mut Rtc) -> Result<(), BridgeError> {
    for _ in 0..1000 {
        if let Output::Timeout(_) = rtc.poll_output()? {
            return Ok(());
        }
    }
    Ok(())
}

impl MediaBridge {
    pub fn new(cfg: BridgeConfig) -> Arc<MediaBridge> {
        Arc::new(MediaBridge {
            table: Arc::new(Mutex::new(Table {
                calls: HashMap::new(),
                ports: BTreeSet::new(),
                cursor: cfg.port_min,
            })),
            cfg,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    /// web → IMS: the browser's WebRTC offer; gives the call's id and the plain RTP/AVP offer
    /// for the IMS side (the browser's G.711 codecs, its order).
    pub async fn web_offer(&self, web_sdp: &str) -> Result<(LegId, String), BridgeError> {
        let web = sdp::parse_webrtc(web_sdp).map_err(BridgeError::bad_web)?;
        let offered: Vec<G711> = web.g711().into_iter().map(|(c, _)| c).collect();
        if offered.is_empty() {
            return Err(BridgeError::NoCommonCodec {
                side: "web",
                offered: web.encodings(),
            });
        }
        // What str0m will read at answer time must read now, before the INVITE goes out.
        SdpOffer::from_sdp_string(web_sdp).map_err(str0m::RtcError::Sdp)?;
        let codecs: Vec<(G711, u8)> = offered.iter().map(|c| (*c, c.static_pt())).collect();
        let phase = Phase::AwaitImsAnswer {
            web_sdp: web_sdp.to_string(),
            web,
            offered,
        };
        let (id, _, ims_addr) = self.open(phase)?;
        let offer = sdp::plain_sdp(self.cfg.ip, ims_addr.port(), id.get(), &codecs);
        Ok((id, offer))
    }

    /// The IMS answer to [`MediaBridge::web_offer`]'s offer; gives the WebRTC answer for the
    /// browser. Media flows from here.
    pub async fn ims_answer(&self, id: LegId, ims_sdp: &str) -> Result<String, BridgeError> {
        let ims = sdp::parse_plain(ims_sdp).map_err(BridgeError::bad_ims)?;
        let (web_sdp, web_addr, codec, ims_pt, web_pt) = {
            let t = lock(&self.table);
            let entry = t.calls.get(&id).ok_or(BridgeError::UnknownLeg(id))?;
            let Phase::AwaitImsAnswer {
                web_sdp,
                web,
                offered,
            } = &entry.phase
            else {
                return Err(BridgeError::WrongState {
                    id,
                    expected: "an IMS answer",
                });
            };
            // The answerer's choice: its first codec among those offered (RFC 3264 §6.1).
            let choice = ims
                .g711()
                .into_iter()
                .find(|(c, _)| offered.contains(c))
                .and_then(|(c, ims_pt)| Some((c, ims_pt, web.pt_of(c)?)));
            let Some((codec, ims_pt, web_pt)) = choice else {
                return Err(BridgeError::NoCommonCodec {
                    side: "IMS",
                    offered: ims.encodings(),
                });
            };
            (web_sdp.clone(), entry.web_addr, codec, ims_pt, web_pt)
        };
        // str0m outside the lock: making the DTLS certificate takes a moment.
        let negotiated = (|| {
            let mut rtc = rtc_for(codec);
            rtc.add_local_candidate(Candidate::host(web_addr, "udp")?);
            drain(&mut rtc)?;
            let offer = SdpOffer::from_sdp_string(&web_sdp).map_err(str0m::RtcError::Sdp)?;
            let answer = rtc.sdp_api().accept_offer(offer)?;
            Ok::<_, BridgeError>((rtc, answer))
        })();
        let mut t = lock(&self.table);
        let (rtc, answer) = match negotiated {
            Ok(x) => x,
            Err(e) => {
                t.calls.remove(&id);
                return Err(e);
            }
        };
        let entry = t.calls.get_mut(&id).ok_or(BridgeError::UnknownLeg(id))?;
        if !matches!(entry.phase, Phase::AwaitImsAnswer { .. }) {
            // Another answer won the race.
            return Err(BridgeError::WrongState {
                id,
                expected: "an IMS answer",
            });
        }
        let session = Session::new(rtc, None, web_pt, ims_pt, peer_of(&ims));
        start(entry, session, codec);
        Ok(answer.to_sdp_string())
    }

    /// IMS → web: the IMS side's plain offer; gives the call's id and a WebRTC offer for the
    /// browser (ICE-lite, `a=setup:actpass`, the IMS offer's first G.711 codec only).
    pub async fn ims_offer(&self, ims_sdp: &str) -> Result<(LegId, String), BridgeError> {
        let ims = sdp::parse_plain(ims_sdp).map_err(BridgeError::bad_ims)?;
        let Some(&(codec, ims_pt)) = ims.g711().first() else {
            return Err(BridgeError::NoCommonCodec {
                side: "IMS",
                offered: ims.encodings(),
            });
        };
        let ims_peer = peer_of(&ims);
        // The sockets first: the offer names the browser-side port.
        let (id, web_addr, _) = self.open(Phase::Running)?;
        let made = offer_to_web(web_addr, codec);
        let mut t = lock(&self.table);
        let (rtc, offer, pending, mid) = match made {
            Ok(x) => x,
            Err(e) => {
                t.calls.remove(&id);
                return Err(e);
            }
        };
        let entry = t.calls.get_mut(&id).ok_or(BridgeError::UnknownLeg(id))?;
        entry.phase = Phase::AwaitWebAnswer(Box::new(OfferToWeb {
            rtc,
            pending,
            mid,
            codec,
            ims_pt,
            ims_peer,
        }));
        Ok((id, offer.to_sdp_string()))
    }

    /// The browser's answer to [`MediaBridge::ims_offer`]'s offer; gives the plain answer for
    /// the IMS side. Media flows from here.
    pub async fn web_answer(&self, id: LegId, web_sdp: &str) -> Result<String, BridgeError> {
        let (web, answer) = read_web_answer(web_sdp)?;
        let mut t = lock(&self.table);
        let entry = t.calls.get_mut(&id).ok_or(BridgeError::UnknownLeg(id))?;
        let Phase::AwaitWebAnswer(o) = &entry.phase else {
            return Err(BridgeError::WrongState {
                id,
                expected: "a web answer",
            });
        };
        let web_pt = web_pt_of(&web, o.codec)?;
        let o = match std::mem::replace(&mut entry.phase, Phase::Running) {
            Phase::AwaitWebAnswer(o) => o,
            // Checked just above under the same lock; put it back all the same.
            other => {
                entry.phase = other;
                return Err(BridgeError::WrongState {
                    id,
                    expected: "a web answer",
                });
            }
        };
        let OfferToWeb {
            mut rtc,
            pending,
            mid,
            codec,
            ims_pt,
            ims_peer,
        } = *o;
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            t.calls.remove(&id);
            return Err(e.into());
        }
        let ims_port = entry.ims_addr.port();
        let session = Session::new(rtc, Some(mid), web_pt, ims_pt, ims_peer);
        start(entry, session, codec);
        Ok(sdp::plain_sdp(
            self.cfg.ip,
            ims_port,
            id.get(),
            &[(codec, ims_pt)],
        ))
    }

    /// A running call's browser went away (a reloaded page): a new WebRTC offer for the new
    /// browser, on the same port, with the call's codec; the IMS side is untouched and keeps
    /// its socket, peer and numbering. [`MediaBridge::web_reanswer`] takes its answer. A
    /// second re-offer replaces the first.
    pub async fn web_reoffer(&self, id: LegId) -> Result<String, BridgeError> {
        let (web_addr, codec) = {
            let t = lock(&self.table);
            let entry = t.calls.get(&id).ok_or(BridgeError::UnknownLeg(id))?;
            let codec = entry.stats.lock().unwrap_or_else(|e| e.into_inner()).codec;
            match (&entry.phase, codec) {
                (Phase::Running | Phase::Reoffered(_), Some(c)) => (entry.web_addr, c),
                _ => {
                    return Err(BridgeError::WrongState {
                        id,
                        expected: "a running call",
                    })
                }
            }
        };
        let (rtc, offer, pending, mid) = offer_to_web(web_addr, codec)?;
        let mut t = lock(&self.table);
        let entry = t.calls.get_mut(&id).ok_or(BridgeError::UnknownLeg(id))?;
        entry.phase = Phase::Reoffered(Box::new(Reoffer {
            rtc,
            pending,
            mid,
            codec,
        }));
        Ok(offer.to_sdp_string())
    }

    /// The new browser's answer to [`MediaBridge::web_reoffer`]: the call's task relays with
    /// the new browser from now on.
    pub async fn web_reanswer(&self, id: LegId, web_sdp: &str) -> Result<(), BridgeError> {
        let (web, answer) = read_web_answer(web_sdp)?;
        let mut t = lock(&self.table);
        let entry = t.calls.get_mut(&id).ok_or(BridgeError::UnknownLeg(id))?;
        let Phase::Reoffered(r) = &entry.phase else {
            return Err(BridgeError::WrongState {
                id,
                expected: "a web answer to a re-offer",
            });
        };
        let web_pt = web_pt_of(&web, r.codec)?;
        let Phase::Reoffered(r) = std::mem::replace(&mut entry.phase, Phase::Running) else {
            return Err(BridgeError::WrongState {
                id,
                expected: "a web answer to a re-offer",
            });
        };
        let Reoffer {
            mut rtc,
            pending,
            mid,
            ..
        } = *r;
        rtc.sdp_api().accept_answer(pending, answer)?;
        entry
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .web_connected = false;
        // The queue holds at most this one command; a full or closed one means the task ended.
        let _ = entry
            .cmd
            .try_send(Cmd::Replace(Box::new(WebSide { rtc, mid, web_pt })));
        Ok(())
    }

    /// Ends a call now: its task stops and its ports are released (unknown ids are ignored).
    pub fn close(&self, id: LegId) {
        // Dropping the entry drops the command sender, which ends the task.
        lock(&self.table).calls.remove(&id);
    }

    /// The counters of an open call.
    pub fn stats(&self, id: LegId) -> Option<LegStats> {
        let t = lock(&self.table);
        let e = t.calls.get(&id)?;
        let s = e.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Some(s)
    }

    /// Calls open (offered or running).
    pub fn calls(&self) -> usize {
        lock(&self.table).calls.len()
    }

    /// Reserves a place in the table, binds the two sockets and starts the call's task.
    fn open(&self, phase: Phase) -> Result<(LegId, SocketAddr, SocketAddr), BridgeError> {
        let mut t = lock(&self.table);
        if t.calls.len() >= self.cfg.max_calls {
            return Err(BridgeError::Full(t.calls.len()));
        }
        let mut lease = PortLease {
            table: Arc::downgrade(&self.table),
            ports: Vec::with_capacity(2),
        };
        let bound = (|| {
            let web = self.bind(&mut t, &mut lease)?;
            let ims = self.bind(&mut t, &mut lease)?;
            let addrs = (web.local_addr()?, ims.local_addr()?);
            Ok::<_, BridgeError>((web, ims, addrs))
        })();
        let (web, ims, (web_addr, ims_addr)) = match bound {
            Ok(x) => x,
            Err(e) => {
                // Under the lock the lease cannot free its ports itself.
                for p in lease.ports.drain(..) {
                    t.ports.remove(&p);
                }
                return Err(e);
            }
        };
        let id = LegId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CMD_QUEUE);
        let stats = Arc::new(Mutex::new(LegStats {
            web_addr: Some(web_addr),
            ims_addr: Some(ims_addr),
            ..LegStats::default()
        }));
        t.calls.insert(
            id,
            Entry {
                phase,
                cmd: tx,
                stats: stats.clone(),
                web_addr,
                ims_addr,
            },
        );
        drop(t);
        let task = CallTask {
            id,
            web,
            ims,
            web_addr,
            cmd: rx,
            stats,
            idle: self.cfg.idle_timeout,
            table: Arc::downgrade(&self.table),
            lease,
        };
        tokio::spawn(task.run());
        tracing::debug!(%id, %web_addr, %ims_addr, "media call opened");
        Ok((id, web_addr, ims_addr))
    }

    /// Binds one UDP socket on the configured IP: an ephemeral port when `port_min` is 0,
    /// else the next free port of the range after the cursor.
    fn bind(&self, t: &mut Table, lease: &mut PortLease) -> Result<UdpSocket, BridgeError> {
        let ip = self.cfg.ip;
        let (min, max) = (self.cfg.port_min, self.cfg.port_max);
        if min == 0 {
            return Ok(udp(SocketAddr::new(ip, 0))?);
        }
        if max < min {
            return Err(BridgeError::NoPort { ip, min, max });
        }
        let span = u32::from(max - min) + 1;
        for _ in 0..span {
            let port = if t.cursor < min || t.cursor > max {
                min
            } else {
                t.cursor
            };
            t.cursor = if port >= max { min } else { port + 1 };
            if t.ports.contains(&port) {
                continue;
            }
            // A port someone else holds is skipped, like one of ours.
            if let Ok(s) = udp(SocketAddr::new(ip, port)) {
                t.ports.insert(port);
                lease.ports.push(port);
                return Ok(s);
            }
        }
        Err(BridgeError::NoPort { ip, min, max })
    }
}

fn udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Where the IMS side's RTP goes until its source is latched: `c=` and the m-line's port.
fn peer_of(ims: &AudioSection) -> SocketAddr {
    // parse_plain guarantees the address.
    let ip = ims.addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    SocketAddr::new(ip, ims.port)
}

/// Hands the negotiated session to the call's task.
fn start(entry: &mut Entry, session: Session, codec: G711) {
    {
        let mut s = entry.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.codec = Some(codec);
        s.ims_peer = Some(session.ims_peer);
    }
    entry.phase = Phase::Running;
    // The queue is empty (one Start per call); a full or closed one means the task ended.
    let _ = entry.cmd.try_send(Cmd::Start(Box::new(session)));
}

#[cfg(test)]
#[path = "bridge_tests.rs"]
mod tests;
