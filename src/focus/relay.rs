//! The focus's MSRP side: members connect to its listener and bind their leg with a first
//! SEND (RFC 4975 §5.4, To-Path naming the leg); messages are put in order per group (one
//! at a time: sequence number, history, flush), answered, and fanned out; a leg that binds
//! gets what its member missed first, so it sees the group's messages once and in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cpim::Cpim;
use crate::msrp::conn::{accept_loop, MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::limits::MsrpLimits;
use crate::msrp::{chunk, session, MsrpMessage, Reassembly, CHUNK_SIZE};
use crate::rcs;

use super::group::MemberState;
use super::{lock, Focus, Tracked};

/// Partial messages one connection may have open.
const MAX_PARTIALS: usize = 32;
/// A connection that binds no leg within this is closed.
const BIND_WAIT: Duration = Duration::from_secs(30);
/// How long a lost MSRP connection waits for its BYE before the member is taken as away.
const LOST_GRACE: Duration = Duration::from_secs(2);
/// Missed messages sent at once to a leg that binds.
const MAX_BACKLOG: usize = 10_000;

/// The member a disposition report (CPIM carrying `message/imdn+xml`) is for: its CPIM To.
fn report_for(c: &Cpim) -> Option<String> {
    let inner = c.content_type()?.to_ascii_lowercase();
    if !inner.starts_with(rcs::IMDN_TYPE) {
        return None;
    }
    c.header("To").map(|t| {
        t.trim()
            .trim_matches(|ch| ch == '<' || ch == '>')
            .to_string()
    })
}

/// Answers `m` as its Failure-Report asks (RFC 4975 §7.1.1-7.1.2): nothing for `no`, only
/// failures for `partial`.
fn reply(conn: &MsrpConn, m: &MsrpMessage, status: u16, comment: &str) {
    let wanted = if status == 200 {
        session::wants_200(m)
    } else {
        session::expects_response(m)
    };
    if wanted {
        let _ = conn.send(&m.response_to(status, comment));
    }
}

/// The id of the leg an MSRP URI names (`msrp://host:port/ID;tcp`).
fn leg_id(uri: &str) -> Option<&str> {
    let path = uri.rsplit('/').next()?;
    Some(path.split(';').next().unwrap_or(path))
}

/// Accepts members' MSRP connections until `shutdown`.
pub(super) async fn accept(focus: Arc<Focus>, l: TcpListener, shutdown: watch::Receiver<bool>) {
    let limits = MsrpLimits {
        max_size: focus.settings.max_message_size,
        ..MsrpLimits::default()
    };
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let trace = focus.trace.clone();
    accept_loop(l, trace, shutdown, limits, live, move |conn, rx| {
        tokio::spawn(focus.clone().serve(conn, rx));
    })
    .await;
}

impl Focus {
    /// One member connection: bind, then messages until it closes.
    async fn serve(self: Arc<Self>, conn: MsrpConn, mut rx: MsrpEvents) {
        let mut leg: Option<String> = None;
        let mut partials: HashMap<String, Reassembly> = HashMap::new();
        loop {
            let ev = if leg.is_none() {
                match tokio::time::timeout(BIND_WAIT, rx.recv()).await {
                    Ok(ev) => ev,
                    Err(_) => {
                        conn.abort("no leg bound");
                        return;
                    }
                }
            } else {
                rx.recv().await
            };
            let m = match ev {
                Some(MsrpEvent::Message(m)) => m,
                Some(MsrpEvent::Closed(_)) | None => break,
            };
            if !m.is_request() {
                self.on_member_response(&m).await;
                continue;
            }
            if m.method.as_deref() != Some("SEND") {
                if m.method.as_deref() != Some("REPORT") {
                    let _ = conn.send(&m.response_to(501, "Not Implemented"));
                }
                continue;
            }
            let to = m
                .header("To-Path")
                .and_then(|p| p.split_whitespace().last())
                .and_then(leg_id)
                .map(str::to_string);
            let Some(to) = to else {
                reply(&conn, &m, 400, "Bad Request");
                continue;
            };
            match &leg {
                Some(l) if *l == to => {}
                Some(_) => {
                    reply(&conn, &m, 481, "Session Does Not Exist");
                    continue;
                }
                None => {
                    if !self.bind(&to, &conn, &m).await {
                        reply(&conn, &m, 481, "Session Does Not Exist");
                        continue;
                    }
                    leg = Some(to.clone());
                    if m.body.is_empty() {
                        // `bind` answered it, before the backlog.
                        continue;
                    }
                }
            }
            // The message itself, whole.
            let mid = m.header("Message-ID").unwrap_or("").to_string();
            if m.body.is_empty() && m.byte_range().is_none_or(|r| r.total == Some(0)) {
                reply(&conn, &m, 200, "OK");
                continue;
            }
            if !partials.contains_key(&mid) && partials.len() >= MAX_PARTIALS {
                reply(&conn, &m, 413, "Too many partial messages");
                continue;
            }
            let r = partials.entry(mid.clone()).or_default();
            match r.add(&m, self.settings.max_message_size) {
                Err(_) => {
                    partials.remove(&mid);
                    reply(&conn, &m, 413, "Message Too Large");
                }
                Ok(None) if r.aborted() => {
                    partials.remove(&mid);
                }
                Ok(None) => {
                    reply(&conn, &m, 200, "OK");
                }
                Ok(Some(body)) => {
                    let ct = r.content_type().unwrap_or("").to_string();
                    partials.remove(&mid);
                    // The 200 goes before the fan-out: the sender hears "stored" first. A
                    // sender that wants no 200 is promised nothing, so a report of its
                    // may go straight to its member.
                    let answered = session::wants_200(&m);
                    self.on_message(&to, &ct, body, answered, |status| {
                        let comment = if status == 200 { "OK" } else { "Not Accepted" };
                        reply(&conn, &m, status, comment);
                    })
                    .await;
                }
            }
        }
        if let Some(l) = leg {
            self.leg_lost(&l).await;
        }
    }

    /// The first SEND on a connection binds leg `id` (RFC 4975 §5.4; an empty one is answered
    /// here): what the member missed goes out next, in order, with the group's order lock
    /// held.
    async fn bind(self: &Arc<Self>, id: &str, conn: &MsrpConn, first: &MsrpMessage) -> bool {
        let Some(gid) = lock(&self.legs).get(id).map(|l| l.gid.clone()) else {
            return false;
        };
        let order = self.order_of(&gid);
        let _turn = order.lock().await;
        let (member, local, remote) = {
            let mut legs = lock(&self.legs);
            let Some(l) = legs.get_mut(id) else {
                return false;
            };
            if l.conn.is_some() {
                return false;
            }
            // Its From-Path is where it listens on this connection.
            let from = first
                .header("From-Path")
                .and_then(|p| p.split_whitespace().next())
                .map(str::to_string);
            if let Some(f) = from {
                l.remote = Some(f);
            }
            l.conn = Some(conn.clone());
            (
                l.member.clone(),
                l.local.clone(),
                l.remote.clone().unwrap_or_default(),
            )
        };
        // The 200 for an empty binding SEND goes first: a client takes nothing on a leg
        // before its binding is answered.
        if first.body.is_empty() {
            let _ = conn.send(&first.response_to(200, "OK"));
        }
        let after = self
            .group(&gid)
            .and_then(|g| g.member(&member).map(|m| m.delivered_seq))
            .unwrap_or(0);
        for (seq, cpim) in self.store.messages_after(&gid, after, MAX_BACKLOG) {
            // Messages go to everyone but their writer; a report only to the member it is
            // for.
            let for_me = Cpim::parse(&cpim)
                .ok()
                .map(|c| match report_for(&c) {
                    Some(to) => to.eq_ignore_ascii_case(&member),
                    None => !c
                        .from_uri()
                        .is_some_and(|f| f.eq_ignore_ascii_case(&member)),
                })
                .unwrap_or(false);
            if !for_me {
                if let Some(g) = lock(&self.groups).get_mut(&gid) {
                    g.delivered(&member, seq);
                }
                self.mark_dirty(&gid);
                continue;
            }
            let track = Tracked {
                gid: gid.clone(),
                member: member.clone(),
                seq,
                leg: id.to_string(),
                held: None,
            };
            self.send_to(conn, &remote, &local, &cpim, Some(track));
        }
        tracing::debug!(%gid, %member, "member leg bound");
        true
    }

    /// A bound leg's connection went. A client that ends its session closes MSRP and sends a
    /// BYE, in either order: after [`LOST_GRACE`] without one (the client died, or lost its
    /// network) the dialog goes and the member is away until it comes back (rejoin, or a
    /// registration).
    pub(super) async fn leg_lost(self: &Arc<Self>, id: &str) {
        let Some(l) = lock(&self.legs).remove(id) else {
            return;
        };
        self.forget_sent(id);
        tokio::time::sleep(LOST_GRACE).await;
        let mut had_dialog = false;
        lock(&self.dialogs).retain(|_, d| {
            let ours = d.leg == id;
            had_dialog |= ours;
            !ours
        });
        if !had_dialog {
            // Its BYE came: on_bye did what was to be done.
            return;
        }
        let still_here = lock(&self.legs)
            .of_group(&l.gid)
            .any(|(_, x)| x.member == l.member && x.conn.is_some());
        if still_here {
            return;
        }
        let g = lock(&self.groups).get_mut(&l.gid).and_then(|g| {
            (g.member(&l.member).map(|m| m.state) == Some(MemberState::Connected)
                && g.set_state(&l.member, MemberState::Away, None))
            .then(|| g.clone())
        });
        if let Some(g) = g {
            tracing::debug!(gid = %l.gid, member = %l.member, "member's MSRP connection lost: away");
            self.persist(&g).await;
            self.roster_changed(&l.gid, std::slice::from_ref(&l.member))
                .await;
        }
    }

    /// The per-group lock that puts the group's messages and bindings in one order.
    pub(super) fn order_of(&self, gid: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.order)
            .entry(gid.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    /// A whole message from the member of leg `leg`; `answer` gets the MSRP status.
    async fn on_message(
        self: &Arc<Self>,
        leg: &str,
        content_type: &str,
        body: Bytes,
        answered: bool,
        answer: impl FnOnce(u16) + Send,
    ) {
        let Some((gid, member)) = lock(&self.legs)
            .get(leg)
            .map(|l| (l.gid.clone(), l.member.clone()))
        else {
            return answer(481);
        };
        self.group_message(&gid, &member, content_type, body, answered, answer)
            .await
    }

    /// A whole message `member` sent to group `gid` (over its leg, or in the body of its
    /// INVITE): `answer` gets the status to answer, once it is stored and before the members
    /// get it. With `answered` false its sender wants no 200 (`Failure-Report: no` or
    /// `partial`): a disposition report then goes straight to the member it is for when that
    /// member's leg is up, and into the history only if it does not take it.
    pub(super) async fn group_message(
        self: &Arc<Self>,
        gid: &str,
        member: &str,
        content_type: &str,
        body: Bytes,
        answered: bool,
        answer: impl FnOnce(u16) + Send,
    ) {
        let (gid, member) = (gid.to_string(), member.to_string());
        if !content_type
            .to_ascii_lowercase()
            .starts_with("message/cpim")
        {
            // is-composing and the like, not wrapped: to everyone else, as it came.
            answer(200);
            self.fan_out(&gid, &member, content_type, &body, None);
            return;
        }
        let Ok(mut cpim) = Cpim::parse(&body) else {
            return answer(400);
        };
        // The sender is who the leg belongs to, whatever the CPIM said.
        let from = format!("<{member}>");
        match cpim
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("From"))
        {
            Some(h) => h.1 = from,
            None => cpim.headers.insert(0, ("From".into(), from)),
        }
        let inner = cpim.content_type().unwrap_or("").to_ascii_lowercase();
        // A disposition report goes to the member whose message it is about, through the
        // history like a message (so one whose leg is down gets it when it is back).
        let report_to = report_for(&cpim);
        if report_to.as_deref().is_some_and(|to| {
            !lock(&self.groups)
                .get(&gid)
                .is_some_and(|g| g.is_member(to))
        }) {
            return answer(200);
        }
        if inner.starts_with(rcs::ISCOMPOSING_TYPE) {
            answer(200);
            self.fan_out(&gid, &member, "message/cpim", &cpim.to_bytes(), None);
            return;
        }
        if let Some(to) = report_to.as_deref().filter(|_| !answered) {
            let report = Bytes::from(cpim.to_bytes());
            if self.report_straight(&gid, to, &report) {
                answer(200);
                self.touch(&gid);
                return;
            }
        }
        let order = self.order_of(&gid);
        let _turn = order.lock().await;
        let bytes = cpim.to_bytes();
        let Some(seq) = lock(&self.groups).get_mut(&gid).and_then(|g| {
            // The sender's own cursor stays: what it missed before still goes to it (its own
            // messages are skipped then).
            g.is_member(&member).then(|| g.take_seq())
        }) else {
            return answer(403);
        };
        // The history keeps the sequence number; the group itself is written lazily.
        self.mark_dirty(&gid);
        let stored = self.store.put_message(&gid, seq, &bytes).is_ok();
        if !stored || self.store.durable().await.is_err() {
            tracing::error!(%gid, seq, "group message not stored");
            return answer(500);
        }
        if report_to.is_none() {
            self.grant_members(&gid, &member, &cpim).await;
        }
        answer(200);
        self.touch(&gid);
        match report_to {
            Some(to) => self.send_to_member(&gid, &to, &bytes, seq),
            None => self.fan_out(&gid, &member, "message/cpim", &bytes, Some(seq)),
        }
    }

    /// A file sent to group `gid` by `sender` (a file-info message, RCC.07 §3.2.5): every
    /// other current member may download it (the content server's `POST /grants`). Bounded by
    /// the grant's wait; the message goes out whatever the outcome.
    async fn grant_members(&self, gid: &str, sender: &str, cpim: &Cpim) {
        let Some(client) = self.grants.get() else {
            return;
        };
        let rcs::Content::File(info) = rcs::content(cpim) else {
            return;
        };
        let members: Vec<String> = lock(&self.groups)
            .get(gid)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|m| {
                        m.state != super::group::MemberState::Departed
                            && !m.uri.eq_ignore_ascii_case(sender)
                    })
                    .map(|m| m.uri.clone())
                    .collect()
            })
            .unwrap_or_default();
        if members.is_empty() {
            return;
        }
        let url = info.file.url;
        match client.grant(&url, &members).await {
            Ok(()) => self.ep.note(|| {
                format!("granted the members of {gid} the file {url} at the content server")
            }),
            Err(e) => {
                crate::warn_limited!("conf.grant", %gid, error = %e, "file not granted; the message goes out");
                self.ep
                    .note(|| format!("file {url} not granted to {gid}'s members ({e}): sent"));
            }
        }
    }

    /// The bound legs of `gid` whose member passes `which`: connection, the member's path,
    /// ours, the member, the leg id.
    fn up_legs(
        &self,
        gid: &str,
        which: impl Fn(&str) -> bool,
    ) -> Vec<(MsrpConn, String, String, String, String)> {
        lock(&self.legs)
            .of_group(gid)
            .filter(|(_, l)| which(&l.member))
            .filter_map(|(id, l)| {
                Some((
                    l.conn.clone()?,
                    l.remote.clone()?,
                    l.local.clone(),
                    l.member.clone(),
                    id.clone(),
                ))
            })
            .collect()
    }

    /// Sends to every member of `gid` but `except` whose leg is up.
    fn fan_out(&self, gid: &str, except: &str, ct: &str, body: &[u8], seq: Option<u64>) {
        let targets = self.up_legs(gid, |m| !m.eq_ignore_ascii_case(except));
        for (conn, to, from, member, leg) in targets {
            let track = seq.map(|seq| Tracked {
                gid: gid.to_string(),
                member,
                seq,
                leg,
                held: None,
            });
            self.send_to_ct(&conn, &to, &from, ct, body, track);
        }
    }

    /// Sends `cpim` to member `to` of `gid` if its leg is up.
    fn send_to_member(&self, gid: &str, to: &str, cpim: &[u8], seq: u64) {
        let targets = self.up_legs(gid, |m| m.eq_ignore_ascii_case(to));
        for (conn, remote, local, member, leg) in targets {
            let track = Tracked {
                gid: gid.to_string(),
                member,
                seq,
                leg,
                held: None,
            };
            self.send_to(&conn, &remote, &local, cpim, Some(track));
        }
    }

    fn send_to(&self, conn: &MsrpConn, to: &str, from: &str, cpim: &[u8], track: Option<Tracked>) {
        self.send_to_ct(conn, to, from, "message/cpim", cpim, track);
    }

    /// Sends `report` (a disposition report nobody was promised) to member `to` of `gid`
    /// when exactly one leg of its is up, awaiting its 200 with the report held: if the
    /// member does not take it, it goes into the history ([`Focus::keep_report`]). False
    /// when it could not go that way (no leg up or several, too many awaited, the send
    /// failed): the caller stores it as a message.
    fn report_straight(&self, gid: &str, to: &str, report: &Bytes) -> bool {
        let mut up = self.up_legs(gid, |m| m.eq_ignore_ascii_case(to));
        if up.len() != 1 {
            return false;
        }
        let Some((conn, remote, local, member, leg)) = up.pop() else {
            return false;
        };
        if !self.hold(report.len()) {
            return false;
        }
        let track = Tracked {
            gid: gid.to_string(),
            member,
            seq: 0,
            leg,
            held: Some(report.clone()),
        };
        self.send_to_ct(&conn, &remote, &local, "message/cpim", report, Some(track))
    }

    /// A report its member did not take ([`Focus::report_straight`]): into the group's
    /// history like a message, in the group's order, and to the member's leg if one is up
    /// by now (a leg binding later gets it from the history). Not flushed on its own: its
    /// sender was promised nothing.
    pub(super) async fn keep_report(self: &Arc<Self>, gid: &str, member: &str, report: &[u8]) {
        let order = self.order_of(gid);
        let _turn = order.lock().await;
        let Some(seq) = lock(&self.groups).get_mut(gid).map(|g| g.take_seq()) else {
            return;
        };
        self.mark_dirty(gid);
        if let Err(e) = self.store.put_message(gid, seq, report) {
            tracing::warn!(%gid, seq, error = %e, "report not kept");
            return;
        }
        self.send_to_member(gid, member, report, seq);
    }

    fn send_to_ct(
        &self,
        conn: &MsrpConn,
        to: &str,
        from: &str,
        ct: &str,
        body: &[u8],
        track: Option<Tracked>,
    ) -> bool {
        let mid = rcs::new_id();
        let chunks = chunk(to, from, &mid, ct, body, CHUNK_SIZE, || {
            rcs::new_id()[..12].to_string()
        });
        let held = track.as_ref().and_then(|t| t.held.as_ref()).map(Bytes::len);
        let mut tracked = None;
        if let (Some(t), Some(last)) = (track, chunks.last()) {
            let mut sent = lock(&self.sent);
            if sent.len() < super::MAX_TRACKED {
                tracked = Some(last.transaction_id.clone());
                sent.insert(last.transaction_id.clone(), t);
            }
        }
        // A held report must be awaited, or it could be lost: the caller stores it instead.
        let gone = |tracked: Option<String>| {
            if let Some(tid) = tracked {
                lock(&self.sent).remove(&tid);
            }
            if let Some(n) = held {
                self.held_released(n);
            }
            false
        };
        if held.is_some() && tracked.is_none() {
            return gone(None);
        }
        for c in &chunks {
            if conn.send(c).is_err() {
                return gone(tracked);
            }
        }
        true
    }

    /// A member's answer to our SEND: a 200 says it has that message (its cursor moves on);
    /// a report it refused goes into the history.
    async fn on_member_response(self: &Arc<Self>, m: &MsrpMessage) {
        let Some(t) = lock(&self.sent).remove(&m.transaction_id) else {
            return;
        };
        if let Some(report) = &t.held {
            self.held_released(report.len());
        }
        match t.held {
            Some(report) if m.status != 200 => {
                self.keep_report(&t.gid, &t.member, &report).await;
            }
            Some(_) => {}
            None if m.status == 200 => {
                if let Some(g) = lock(&self.groups).get_mut(&t.gid) {
                    g.delivered(&t.member, t.seq);
                }
                self.mark_dirty(&t.gid);
            }
            None => {}
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod relay_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leg_is_named_by_the_last_segment_of_its_uri() {
        assert_eq!(leg_id("msrp://127.0.0.1:2857/abc123;tcp"), Some("abc123"));
        assert_eq!(leg_id("msrp://127.0.0.1:2857/abc123"), Some("abc123"));
    }
}
