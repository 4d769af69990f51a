//! One call's driver: a tokio task owning the browser-side socket (fed to str0m's sans-IO
//! `Rtc`), the IMS-side socket (plain RTP) and the call's timers. It follows str0m's run loop
//! (mutate once, drain `poll_output` to `Timeout`, wait) with the IMS socket, the command
//! channel and the idle timer as further wake-ups.
//!
//! ```text
//!  wait for Start ──(none within idle_timeout / sender dropped)──> end
//!       │
//!       v
//!  relay: browser ⇄ str0m ⇄ bridge ⇄ IMS peer ──(close / idle)──> end
//!       ^                                  │
//!       └──── Replace (a new browser) ─────┘ browser gone: the IMS side waits for one
//! ```
//! A browser whose WebRTC session dies (its page closed or reloaded) does not end the call:
//! the IMS side is kept (the gateway decides when the call ends) until a new browser side
//! comes (`Replace`) or nothing crosses for the idle timeout.
//! Ending drops both sockets and the port lease, and removes the call from the table.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::bridge::{forget, PortLease, Table};
use super::rtp::{self, PlainPacket, RtpFields, SeqExtender};
use super::{LegId, LegStats};

/// Largest datagram read on either side (an MTU-sized packet fits; a longer one is cut and
/// then fails SRTP authentication or RTP parsing).
const RECV_BUF: usize = 2048;
/// Most `poll_output` steps in one drain: a bound on work per wake-up.
const MAX_DRAIN: usize = 10_000;

/// What the bridge sends a call's task.
pub(super) enum Cmd {
    /// The offer/answer is done: relay with this session.
    Start(Box<Session>),
    /// A new browser took the call (a reloaded page): relay with its side from now on.
    Replace(Box<WebSide>),
}

/// A browser side negotiated again for a running call.
pub(super) struct WebSide {
    pub(super) rtc: Rtc,
    pub(super) mid: Mid,
    pub(super) web_pt: u8,
}

/// The negotiated call: the browser side's str0m instance and the two payload types.
pub(super) struct Session {
    rtc: Rtc,
    /// The audio m-line; learnt from str0m's `MediaAdded` when the browser offered.
    mid: Option<Mid>,
    web_pt: u8,
    ims_pt: u8,
    /// Where RTP for the IMS side goes: the SDP's address, then the latched source.
    pub(super) ims_peer: SocketAddr,
    latched: bool,
    seq: SeqExtender,
    /// The IMS source's SSRC, and what is added to its extended sequence numbers so that the
    /// browser sees one unbroken numbering when the phone restarts its stream.
    in_ssrc: Option<u32>,
    seq_offset: i64,
    /// The last extended sequence number sent to the browser.
    last_out: Option<u64>,
}

impl Session {
    pub(super) fn new(
        rtc: Rtc,
        mid: Option<Mid>,
        web_pt: u8,
        ims_pt: u8,
        ims_peer: SocketAddr,
    ) -> Self {
        Session {
            rtc,
            mid,
            web_pt,
            ims_pt,
            ims_peer,
            latched: false,
            seq: SeqExtender::default(),
            in_ssrc: None,
            seq_offset: 0,
            last_out: None,
        }
    }
}

/// A call's task and everything it owns.
pub(super) struct CallTask {
    pub(super) id: LegId,
    pub(super) web: UdpSocket,
    pub(super) ims: UdpSocket,
    pub(super) web_addr: SocketAddr,
    pub(super) cmd: mpsc::Receiver<Cmd>,
    pub(super) stats: Arc<Mutex<LegStats>>,
    pub(super) idle: Duration,
    pub(super) table: Weak<Mutex<Table>>,
    pub(super) lease: PortLease,
}

/// Why a call's task woke up.
enum Wake {
    Closed,
    Web(std::io::Result<(usize, SocketAddr)>),
    Ims(std::io::Result<(usize, SocketAddr)>),
    Timer,
}

impl CallTask {
    pub(super) async fn run(mut self) {
        let why = self.relay().await;
        tracing::debug!(id = %self.id, why, "media call ended");
        forget(&self.table, self.id);
        // Close the sockets before the range's ports count as free again.
        let CallTask {
            web, ims, lease, ..
        } = self;
        drop((web, ims));
        drop(lease);
    }

    fn stats(&self) -> MutexGuard<'_, LegStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the call; returns why it ended.
    async fn relay(&mut self) -> &'static str {
        let answer_by = tokio::time::Instant::now() + self.idle;
        let mut s = tokio::select! {
            c = self.cmd.recv() => match c {
                Some(Cmd::Start(s)) => s,
                // The bridge replaces only a running call's browser side.
                Some(Cmd::Replace(_)) => return "a new browser side before the answer",
                None => return "closed before the answer",
            },
            _ = tokio::time::sleep_until(answer_by) => return "no answer within the idle timeout",
        };
        let mut web_buf = vec![0u8; RECV_BUF];
        let mut ims_buf = vec![0u8; RECV_BUF];
        let mut out = Vec::with_capacity(RECV_BUF);
        let mut last_media = Instant::now();
        let mut web_gone = false;
        loop {
            let mut next = Instant::now() + self.idle;
            if !web_gone {
                match self.drain(&mut s, &mut out, &mut last_media).await {
                    Ok(t) => next = t,
                    Err(why) => {
                        tracing::debug!(id = %self.id, why, "browser side lost");
                        web_gone = true;
                    }
                }
                if !s.rtc.is_alive() {
                    web_gone = true;
                }
                if web_gone {
                    self.stats().web_connected = false;
                    tracing::debug!(id = %self.id, "the browser side ended; waiting for a new one");
                }
            }
            let idle_at = last_media + self.idle;
            if Instant::now() >= idle_at {
                return "idle: no RTP either way";
            }
            let wake_at = tokio::time::Instant::from_std(next.min(idle_at));
            let wake = tokio::select! {
                c = self.cmd.recv() => match c {
                    // A second Start cannot happen (the table sends one); ignore it.
                    Some(Cmd::Start(_)) => Wake::Timer,
                    Some(Cmd::Replace(w)) => {
                        let WebSide { rtc, mid, web_pt } = *w;
                        s.rtc = rtc;
                        s.mid = Some(mid);
                        s.web_pt = web_pt;
                        // A new SRTP context starts its rollover counter at 0 (RFC 3711
                        // §3.3.1): the numbering towards the new browser starts again from
                        // the phone's next sequence number.
                        s.in_ssrc = None;
                        s.last_out = None;
                        web_gone = false;
                        tracing::debug!(id = %self.id, "a new browser side");
                        Wake::Timer
                    }
                    None => Wake::Closed,
                },
                r = self.web.recv_from(&mut web_buf) => Wake::Web(r),
                r = self.ims.recv_from(&mut ims_buf) => Wake::Ims(r),
                _ = tokio::time::sleep_until(wake_at) => Wake::Timer,
            };
            let now = Instant::now();
            let input_result = match wake {
                Wake::Closed => return "closed",
                Wake::Web(Ok(_)) if web_gone => {
                    self.stats().web.dropped += 1;
                    Ok(())
                }
                Wake::Timer if web_gone => Ok(()),
                Wake::Timer => s.rtc.handle_input(Input::Timeout(now)),
                Wake::Web(Ok((n, source))) => {
                    let buf = &web_buf[..n];
                    match Receive::new(Protocol::Udp, source, self.web_addr, buf) {
                        Ok(r) => s.rtc.handle_input(Input::Receive(now, r)),
                        Err(_) => {
                            self.stats().web.dropped += 1;
                            Ok(())
                        }
                    }
                }
                Wake::Ims(Ok((n, source))) => {
                    self.relay_from_ims(&mut s, &ims_buf[..n], source, now, &mut last_media);
                    Ok(())
                }
                // ICMP port unreachable from an earlier send shows up here on Linux; the
                // socket itself is fine.
                Wake::Web(Err(e)) | Wake::Ims(Err(e)) => {
                    tracing::trace!(id = %self.id, "media socket: {e}");
                    Ok(())
                }
            };
            if let Err(e) = input_result {
                tracing::debug!(id = %self.id, "str0m input: {e}");
            }
        }
    }

    /// Plain RTP from the IMS side into str0m's send stream.
    fn relay_from_ims(
        &self,
        s: &mut Session,
        buf: &[u8],
        source: SocketAddr,
        now: Instant,
        last_media: &mut Instant,
    ) {
        let mut st = self.stats();
        if s.latched && source != s.ims_peer {
            st.ims.dropped += 1;
            return;
        }
        let (f, payload) = match rtp::read(buf) {
            PlainPacket::Rtp(f, p) => (f, p),
            PlainPacket::Rtcp | PlainPacket::Invalid => {
                st.ims.dropped += 1;
                return;
            }
        };
        // Symmetric RTP (RFC 4961): the first RTP packet's source is the peer from now on.
        if !s.latched {
            s.latched = true;
            s.ims_peer = source;
            st.ims_peer = Some(source);
            st.ims_latched = true;
        }
        *last_media = now;
        st.ims.packets_in += 1;
        st.ims.bytes_in += payload.len() as u64;
        if f.pt != s.ims_pt || payload.is_empty() || !s.rtc.is_connected() {
            st.ims.dropped += 1;
            return;
        }
        let Some(mid) = s.mid else {
            st.ims.dropped += 1;
            return;
        };
        if s.in_ssrc != Some(f.ssrc) {
            // A new source (the phone restarted its stream): go on from the browser's last
            // index, which SRTP would otherwise drop as replays (RFC 3711 §3.3.2).
            s.in_ssrc = Some(f.ssrc);
            s.seq = SeqExtender::default();
            let first = i64::from(f.seq);
            s.seq_offset = s.last_out.map_or(0, |l| l as i64 + 1 - first);
        }
        let Ok(seq) = u64::try_from(s.seq.extend(f.seq) as i64 + s.seq_offset) else {
            // Older than the restart point.
            st.ims.dropped += 1;
            return;
        };
        s.last_out = Some(s.last_out.map_or(seq, |l| l.max(seq)));
        let mut api = s.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            st.ims.dropped += 1;
            return;
        };
        let w = RtpWrite::new(Pt::from(s.web_pt), seq.into(), f.timestamp, now, payload)
            .marker(f.marker);
        tx.write_rtp(w);
        st.web.packets_out += 1;
        st.web.bytes_out += payload.len() as u64;
    }

    /// Drains str0m to its next timeout: datagrams to the browser, RTP to the IMS side.
    async fn drain(
        &self,
        s: &mut Session,
        out: &mut Vec<u8>,
        last_media: &mut Instant,
    ) -> Result<Instant, &'static str> {
        for _ in 0..MAX_DRAIN {
            let output = match s.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(id = %self.id, "str0m: {e}");
                    return Err("WebRTC error");
                }
            };
            match output {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if let Err(e) = self.web.send_to(&t.contents, t.destination).await {
                        tracing::trace!(id = %self.id, "web send: {e}");
                    }
                }
                Output::Event(Event::RtpPacket(p)) => {
                    *last_media = Instant::now();
                    self.relay_to_ims(s, &p, out).await;
                }
                Output::Event(Event::MediaAdded(m)) => {
                    s.mid.get_or_insert(m.mid);
                }
                Output::Event(Event::Connected) => {
                    self.stats().web_connected = true;
                }
                Output::Event(Event::IceConnectionStateChange(state)) => {
                    tracing::debug!(id = %self.id, ?state, "ICE");
                }
                Output::Event(_) => {}
            }
        }
        // Never seen in practice; leaves the rest for the next wake-up.
        Ok(Instant::now() + Duration::from_millis(1))
    }

    /// One RTP packet from the browser (SRTP already removed) to the IMS side.
    async fn relay_to_ims(&self, s: &mut Session, p: &RtpPacket, out: &mut Vec<u8>) {
        let len = p.payload.len() as u64;
        {
            let mut st = self.stats();
            st.web.packets_in += 1;
            st.web.bytes_in += len;
            if *p.header.payload_type != s.web_pt || len == 0 {
                st.web.dropped += 1;
                return;
            }
        }
        let f = RtpFields {
            marker: p.header.marker,
            pt: s.ims_pt,
            seq: p.header.sequence_number,
            timestamp: p.header.timestamp,
            ssrc: *p.header.ssrc,
        };
        rtp::write(&f, &p.payload, out);
        match self.ims.send_to(out, s.ims_peer).await {
            Ok(_) => {
                let mut st = self.stats();
                st.ims.packets_out += 1;
                st.ims.bytes_out += len;
            }
            Err(e) => tracing::trace!(id = %self.id, "IMS send: {e}"),
        }
    }
}
