//! MSRP file transfer (RFC 5547) at the client, as rcsjta's `OriginatingMsrpFileSharingSession`
//! and `TerminatingMsrpFileSharingSession` do it.
//!
//! Sending: an INVITE with one `application/sdp` body, MSRP media `a=sendonly` with
//! `a=accept-types:` the file's type, `a=file-selector` (name, type, size, `hash:sha-1`),
//! `a=file-transfer-id`, `a=file-disposition` (`render` for images, else `attachment`) and
//! `a=file-range`; the CPM file-transfer ICSI and `+g.oma.sip-im` as feature tags
//! ([`crate::rcs::ft`]). Once the 200 (`a=recvonly`) is in: ACK, bind to the path, then the
//! file itself — not CPIM-wrapped, no IMDN asked, as rcsjta sends it — read from disk one
//! chunk at a time ([`FILE_CHUNK_SIZE`], rcsjta's `CHUNK_MAX_SIZE`) in SENDs with one
//! Message-ID and a Byte-Range each, `+` on all but the last, each sent when the one before
//! got its 200 (so a ladder of the flow is the same every time). The relays pass each 200 on
//! only when the next hop answered, and the recipient answers the last chunk only once the
//! whole file is saved and its size and SHA-1 checked: that 200 is the delivery report (rcsjta
//! marks the transfer done on it, `msrpDataTransferred`); the sender then ends the session
//! with a BYE and reports [`ChatEvent::Status`] "delivered" about the file-transfer-id.
//!
//! Receiving: the 200 answers `a=recvonly` with the same file attributes; after the ACK the
//! client binds to the path it was offered and writes the chunks, in order, to a part file in
//! [`ChatOptions::files`](super::super::ChatOptions::files) while hashing them; the file then
//! takes its name as a file sent over HTTP does ([`crate::ue::ft::safe_file_name`], `-1`…
//! when taken) and is reported as [`ChatEvent::File`]. Without a files directory (or for a
//! file over [`ChatOptions::max_file_size`](super::super::ChatOptions::max_file_size)) the
//! INVITE is declined with 603 and a Warning saying why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use sha1::Digest as _;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::dialog::{build_in_dialog, dialog_from};
use super::{aor_of, Actor};
use crate::msrp::conn::{MsrpConn, MsrpEvent, MsrpEvents};
use crate::msrp::file_sdp::{FileDirection, FileHash, FileRange, FileSelector, FileTransferSdp};
use crate::msrp::limits::FILE_CHUNK_SIZE;
use crate::msrp::sdp::MsrpSdp;
use crate::msrp::{ByteRange, Continuation, MsrpMessage};
use crate::rcs;
use crate::rcs::ft::{FileOffer, ACCEPT_FT, FT_CONTACT_TAGS, ICSI_FT};
use crate::sip::{new_call_id, new_tag, Endpoint, IncomingRequest, Method, Request, SipMessage};
use crate::trace::Trace;
use crate::ue::chat::msrp_bind::bind;
use crate::ue::chat::ChatEvent;
use crate::ue::ft::{FtError, SavedFile};

/// How long the sender waits for the INVITE's final answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// How long the receiver waits for the next chunk (and the sender for a chunk's 200).
const CHUNK_WAIT: Duration = crate::msrp::session::TRANSACTION_TIMEOUT;
/// How long the receiver waits for the ACK before it binds anyway.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// The read buffer while hashing a file to send.
const HASH_BUF: usize = 64 * 1024;

/// A file read and hashed, ready to be offered ([`prepare`]).
#[derive(Debug, Clone)]
pub(in crate::ue::chat) struct OutgoingFile {
    path: PathBuf,
    name: String,
    content_type: String,
    size: u64,
    sha1: Vec<u8>,
    /// `a=file-transfer-id`, also the MSRP Message-ID and the id the outcome is reported by.
    pub(in crate::ue::chat) transfer_id: String,
}

impl OutgoingFile {
    /// The file's name as offered.
    pub(in crate::ue::chat) fn name(&self) -> &str {
        &self.name
    }
    /// Its MIME type (by extension).
    pub(in crate::ue::chat) fn content_type(&self) -> &str {
        &self.content_type
    }
    /// Its size.
    pub(in crate::ue::chat) fn size(&self) -> u64 {
        self.size
    }
}

/// Reads `path` once to learn its size and SHA-1 (RFC 5547 §6 `hash:sha-1`), never holding
/// more than [`HASH_BUF`] of it.
pub(in crate::ue::chat) async fn prepare(path: &Path) -> Result<OutgoingFile, FtError> {
    let read_err = |source| FtError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = tokio::fs::File::open(path).await.map_err(read_err)?;
    let meta = f.metadata().await.map_err(read_err)?;
    if !meta.is_file() {
        return Err(FtError::Protocol(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut hash = sha1::Sha1::new();
    let mut buf = vec![0u8; HASH_BUF];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".into());
    Ok(OutgoingFile {
        path: path.to_path_buf(),
        name,
        content_type: crate::ue::ft::content_type_of(path).to_string(),
        size,
        sha1: hash.finalize().to_vec(),
        transfer_id: rcs::new_id(),
    })
}

/// Why a file we sent over MSRP did not arrive; the text is [`ChatEvent::SendFailed`]'s
/// reason.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// The INVITE got a final answer other than 2xx.
    #[error("INVITE answered {status} {reason}{}", warning.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Refused {
        status: u16,
        reason: String,
        warning: Option<String>,
    },
    /// No final answer in time.
    #[error("no answer to the INVITE within {0} s")]
    NoAnswer(u64),
    /// The answer does not read as an RFC 5547 answer.
    #[error("the answer is not a file transfer answer: {0}")]
    Answer(#[from] rcs::ft::FileOfferError),
    /// The MSRP side did not come up.
    #[error(transparent)]
    Bind(#[from] crate::ue::chat::msrp_bind::BindError),
    /// A chunk got an error status.
    #[error("MSRP {status} {comment} for bytes {range}")]
    Chunk {
        status: u16,
        comment: String,
        range: String,
    },
    /// A chunk got no answer in time, or the connection closed.
    #[error("no MSRP answer for bytes {0}")]
    ChunkLost(String),
    /// The file cannot be read (or changed size under us).
    #[error(transparent)]
    File(#[from] FtError),
}

/// What a sending task needs of the client.
struct Sender {
    ep: Endpoint,
    pcscf: std::net::SocketAddr,
    transport: crate::sip::Transport,
    impu: String,
    contact: String,
    trace: Trace,
}

impl Actor {
    /// Sends `file` to `peer` over MSRP in a task of its own; the outcome comes as
    /// [`ChatEvent::Status`] "delivered" or [`ChatEvent::SendFailed`] about its transfer id.
    pub(in crate::ue::chat) fn send_file_msrp(&mut self, peer: String, file: OutgoingFile) {
        let s = Sender {
            ep: self.ep.clone(),
            pcscf: self.cfg.pcscf,
            transport: self.cfg.transport,
            impu: self.cfg.impu.clone(),
            contact: self.contact.clone(),
            trace: self.trace.clone(),
        };
        let events = self.events.clone();
        tokio::spawn(async move {
            let id = file.transfer_id.clone();
            let ev = match s.send(&peer, &file).await {
                Ok(()) => ChatEvent::Status {
                    message_id: id,
                    status: crate::cpim::ImdnStatus::Delivered,
                    from: peer,
                    note: None,
                },
                Err(e) => ChatEvent::SendFailed {
                    message_id: id,
                    reason: e.to_string(),
                },
            };
            let _ = events.send(ev);
        });
    }

    /// An RFC 5547 INVITE from the network: declined (603) without a files directory or
    /// over our size limit, else answered `a=recvonly` and received in a task of its own.
    pub(super) fn on_ft_invite(&mut self, inc: IncomingRequest) {
        let req = inc.request.clone();
        let peer = aor_of(&req);
        let refuse = |status: u16, why: &str| {
            let mut r = req.response(status, None);
            r.ensure_to_tag();
            if !why.is_empty() {
                r.headers.push(
                    "Warning",
                    format!("399 rcslab-ue \"{}\"", why.replace('"', "'")),
                );
            }
            inc.tx.respond(r);
        };
        let offer = match FileOffer::parse(req.headers.get("Content-Type"), &req.body) {
            Ok(o) => o,
            Err(e) => return refuse(488, &e.to_string()),
        };
        let Some(dir) = self.opts.files.clone() else {
            return refuse(603, "this client takes no files (no files directory)");
        };
        let Some(size) = offer.file.selector.size else {
            return refuse(488, "a file-selector without size");
        };
        if size > self.opts.max_file_size {
            let why = format!(
                "the file is {size} bytes; this client takes files of up to {} bytes",
                self.opts.max_file_size
            );
            return refuse(603, &why);
        }
        let Some(peer_uri) = offer.media.path.last().cloned() else {
            return refuse(488, "no a=path");
        };
        let ip = self.ep.local_addr().ip().to_string();
        let my_uri = format!("msrp://{ip}:9/{};tcp", &rcs::new_id()[..12]);
        let answer = FileOffer {
            media: MsrpSdp {
                host: ip,
                port: 9,
                path: vec![my_uri.clone()],
                accept_types: offer.media.accept_types.clone(),
                accept_wrapped_types: Vec::new(),
                setup: Some("active".into()),
                session_id: u64::from(rand::random::<u32>()),
            },
            file: FileTransferSdp {
                direction: Some(FileDirection::Receive),
                ..offer.file.clone()
            },
        };
        let contact = format!("<{}>;{FT_CONTACT_TAGS}", self.contact);
        let mut ok = crate::sip::uas_response_with(&req, 200, &new_tag(), &contact);
        ok.headers.remove("Content-Type");
        ok.headers.push("Content-Type", "application/sdp");
        ok.body = Bytes::from(answer.to_sdp());
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        let (ack_tx, ack_rx) = oneshot::channel();
        self.pending_acks.insert(call_id, ack_tx);
        let (trace, sip_addr) = (self.trace.clone(), self.ep.local_addr());
        let events = self.events.clone();
        let want = Incoming {
            name: offer
                .file
                .selector
                .name
                .clone()
                .unwrap_or_else(|| "file".into()),
            content_type: offer
                .file
                .selector
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            size,
            sha1: offer
                .file
                .selector
                .hash
                .clone()
                .filter(|h| h.algorithm == "sha-1"),
        };
        let transfer_id = offer.file.transfer_id.clone();
        tokio::spawn(async move {
            inc.tx.respond(ok);
            let _ = tokio::time::timeout(ACK_WAIT, ack_rx).await;
            let got = match bind(&peer_uri, &my_uri, trace, sip_addr).await {
                Ok((conn, rx)) => {
                    let r = receive(&conn, rx, &dir, &want).await;
                    conn.close();
                    r
                }
                Err(e) => Err(ReceiveError::Bind(e.to_string())),
            };
            let ev = match got {
                Ok(saved) => ChatEvent::File {
                    from: peer,
                    group: None,
                    name: want.name,
                    path: saved.path,
                    size: saved.size,
                    sha256: saved.sha256,
                    content_type: want.content_type,
                    message_id: transfer_id,
                },
                Err(e) => ChatEvent::FileFailed {
                    from: peer,
                    group: None,
                    name: want.name,
                    message_id: transfer_id,
                    reason: e.to_string(),
                },
            };
            let _ = events.send(ev);
        });
    }
}

impl Sender {
    async fn send(&self, peer: &str, file: &OutgoingFile) -> Result<(), SendError> {
        let ip = self.ep.local_addr().ip().to_string();
        let my_uri = format!("msrp://{ip}:9/{};tcp", &rcs::new_id()[..12]);
        let offer = offer_of(&ip, &my_uri, file);
        let req = self.invite(peer, &offer);
        let (pcscf, t) = (self.pcscf, self.transport);
        let answer = tokio::time::timeout(
            ANSWER_WAIT,
            self.ep.send_request(req.clone(), pcscf, t).final_response(),
        )
        .await;
        let Ok(resp) = answer else {
            // Given up: CANCEL it (RFC 3261 §9.1), bounded.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                crate::sip::dialog::cancel_forwarded(&self.ep, &req, pcscf, t),
            )
            .await;
            return Err(SendError::NoAnswer(ANSWER_WAIT.as_secs()));
        };
        if !resp.is_success() {
            return Err(SendError::Refused {
                status: resp.status,
                reason: resp.reason.clone(),
                warning: resp.headers.get("Warning").map(str::to_string),
            });
        }
        let d = dialog_from(&req, &resp);
        let ack = build_in_dialog(&self.ep, t, &d, Method::Ack, d.cseq);
        self.ep
            .send_stateless(&SipMessage::Request(ack), pcscf, t)
            .await;
        let sent = async {
            let answer = FileOffer::parse(resp.headers.get("Content-Type"), &resp.body)?;
            let to = answer
                .media
                .path
                .last()
                .cloned()
                .ok_or(SendError::Answer(rcs::ft::FileOfferError::NotAFile))?;
            let (conn, mut rx) =
                bind(&to, &my_uri, self.trace.clone(), self.ep.local_addr()).await?;
            let r = send_chunks(&conn, &mut rx, &to, &my_uri, file).await;
            conn.close();
            r
        }
        .await;
        // RFC 5547 §8 / rcsjta: the sender ends the session once the file is through (or
        // when it failed).
        let bye = build_in_dialog(&self.ep, t, &d, Method::Bye, d.cseq + 1);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.ep.send_request(bye, pcscf, t).final_response(),
        )
        .await;
        sent
    }

    fn invite(&self, peer: &str, offer: &FileOffer) -> Request {
        let mut req = Request::new(Method::Invite, peer.to_string());
        req.headers.push("Via", self.ep.new_via(self.transport));
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", self.impu, new_tag()));
        req.headers.push("To", format!("<{peer}>"));
        req.headers.push(
            "Call-ID",
            new_call_id(&self.ep.local_addr().ip().to_string()),
        );
        req.headers.push("CSeq", "1 INVITE");
        req.headers
            .push("Contact", format!("<{}>;{FT_CONTACT_TAGS}", self.contact));
        req.headers.push("Accept-Contact", ACCEPT_FT);
        req.headers.push("P-Preferred-Service", ICSI_FT);
        req.headers.push("Contribution-ID", rcs::new_id());
        req.headers.push("Conversation-ID", rcs::new_id());
        req.headers.push("User-Agent", "rcslab-ue");
        req.headers.push("Content-Type", "application/sdp");
        req.body = Bytes::from(offer.to_sdp());
        req
    }
}

/// The RFC 5547 offer of `file`.
fn offer_of(ip: &str, my_uri: &str, file: &OutgoingFile) -> FileOffer {
    let disposition = if file.content_type.starts_with("image/") {
        "render"
    } else {
        "attachment"
    };
    FileOffer {
        media: MsrpSdp {
            host: ip.to_string(),
            port: 9,
            path: vec![my_uri.to_string()],
            accept_types: vec![file.content_type.clone()],
            accept_wrapped_types: Vec::new(),
            setup: Some("active".into()),
            session_id: u64::from(rand::random::<u32>()),
        },
        file: FileTransferSdp {
            selector: FileSelector {
                name: Some(file.name.clone()),
                content_type: Some(file.content_type.clone()),
                size: Some(file.size),
                hash: Some(FileHash {
                    algorithm: "sha-1".into(),
                    value: file.sha1.clone(),
                }),
            },
            transfer_id: file.transfer_id.clone(),
            disposition: Some(disposition.into()),
            date: None,
            range: (file.size > 0).then_some(FileRange {
                start: 1,
                stop: Some(file.size),
            }),
            direction: Some(FileDirection::Send),
        },
    }
}

/// Sends the file in chunks, each once the one before got its 200.
async fn send_chunks(
    conn: &MsrpConn,
    rx: &mut MsrpEvents,
    to: &str,
    me: &str,
    file: &OutgoingFile,
) -> Result<(), SendError> {
    let read_err = |source| {
        SendError::File(FtError::Read {
            path: file.path.display().to_string(),
            source,
        })
    };
    let mut f = tokio::fs::File::open(&file.path).await.map_err(read_err)?;
    let mut buf = vec![0u8; FILE_CHUNK_SIZE];
    let mut start = 1u64;
    loop {
        // Fill the buffer (or reach the end of the file).
        let left = file.size.saturating_sub(start - 1);
        let want = (left.min(FILE_CHUNK_SIZE as u64)) as usize;
        let mut n = 0;
        while n < want {
            let r = f.read(&mut buf[n..want]).await.map_err(read_err)?;
            if r == 0 {
                return Err(SendError::File(FtError::Protocol(format!(
                    "{} shrank while it was being sent",
                    file.path.display()
                ))));
            }
            n += r;
        }
        let last = start - 1 + n as u64 >= file.size;
        let mut m = MsrpMessage::request("SEND", &rcs::new_id()[..16], to, me);
        m.set_header("Message-ID", &file.transfer_id);
        let range = ByteRange {
            start,
            end: Some(if n == 0 { 0 } else { start + n as u64 - 1 }),
            total: Some(file.size),
        };
        m.set_header("Byte-Range", range.to_string());
        if n > 0 {
            m.set_header("Content-Type", &file.content_type);
            m.body = Bytes::copy_from_slice(&buf[..n]);
        }
        m.continuation = if last {
            Continuation::End
        } else {
            Continuation::More
        };
        let shown = range.to_string();
        conn.send(&m)
            .map_err(|_| SendError::ChunkLost(shown.clone()))?;
        let status = tokio::time::timeout(CHUNK_WAIT, async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    MsrpEvent::Message(r)
                        if r.method.is_none() && r.transaction_id == m.transaction_id =>
                    {
                        return Some((r.status, r.comment));
                    }
                    MsrpEvent::Message(_) => {}
                    MsrpEvent::Closed(_) => return None,
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        match status {
            Some((200, _)) => {}
            Some((status, comment)) => {
                return Err(SendError::Chunk {
                    status,
                    comment,
                    range: shown,
                })
            }
            None => return Err(SendError::ChunkLost(shown)),
        }
        if last {
            return Ok(());
        }
        start += n as u64;
    }
}

/// What the offer said about the file we receive.
struct Incoming {
    name: String,
    content_type: String,
    size: u64,
    sha1: Option<FileHash>,
}

/// Why a file offered to us over MSRP was not received; the text is
/// [`ChatEvent::FileFailed`]'s reason.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("MSRP bind: {0}")]
    Bind(String),
    #[error("nothing came for {} s after {got} of {want} bytes", CHUNK_WAIT.as_secs())]
    Stalled { got: u64, want: u64 },
    #[error("the MSRP connection closed after {got} of {want} bytes")]
    Closed { got: u64, want: u64 },
    #[error("the sender aborted the file after {0} bytes")]
    Aborted(u64),
    #[error("a chunk at byte {got_at} where byte {want_at} was due")]
    OutOfOrder { got_at: u64, want_at: u64 },
    #[error("more than the announced {0} bytes")]
    TooLong(u64),
    #[error("the file ended at {got} bytes where {want} were announced")]
    Short { got: u64, want: u64 },
    #[error("the file's SHA-1 is not the one announced")]
    Hash,
    #[error(transparent)]
    Save(#[from] FtError),
}

impl ReceiveError {
    /// The MSRP status the chunk that showed the error gets.
    fn status(&self) -> (u16, &'static str) {
        match self {
            ReceiveError::TooLong(_) => (413, "Too Large"),
            ReceiveError::Save(_) => (500, "Could Not Save"),
            _ => (400, "Bad Request"),
        }
    }
}

/// Receives the chunks of one file into a part file in `dir`, checks its size and SHA-1 and
/// gives it its name; the last chunk's 200 goes out only then.
async fn receive(
    conn: &MsrpConn,
    mut rx: MsrpEvents,
    dir: &Path,
    want: &Incoming,
) -> Result<SavedFile, ReceiveError> {
    let name = crate::ue::ft::safe_file_name(&want.name);
    let part = dir.join(format!(".{name}.{:08x}.part", rand::random::<u32>()));
    let save_err = |p: &Path, source| {
        ReceiveError::Save(FtError::Save {
            path: p.display().to_string(),
            source,
        })
    };
    let f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .await
        .map_err(|e| save_err(&part, e))?;
    let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, f);
    let (mut sha1, mut sha256) = (sha1::Sha1::new(), sha2::Sha256::new());
    let mut got = 0u64;
    let result = loop {
        let ev = match tokio::time::timeout(CHUNK_WAIT, rx.recv()).await {
            Err(_) => {
                break Err(ReceiveError::Stalled {
                    got,
                    want: want.size,
                })
            }
            Ok(None | Some(MsrpEvent::Closed(_))) => {
                break Err(ReceiveError::Closed {
                    got,
                    want: want.size,
                })
            }
            Ok(Some(MsrpEvent::Message(m))) => m,
        };
        if ev.method.as_deref() != Some("SEND") {
            continue;
        }
        let m = ev;
        let at = m.byte_range().map(|b| b.start).unwrap_or(1);
        let step = async {
            if !m.body.is_empty() && at != got + 1 {
                return Err(ReceiveError::OutOfOrder {
                    got_at: at,
                    want_at: got + 1,
                });
            }
            if got + m.body.len() as u64 > want.size {
                return Err(ReceiveError::TooLong(want.size));
            }
            w.write_all(&m.body).await.map_err(|e| save_err(&part, e))?;
            sha1.update(&m.body);
            sha256.update(&m.body);
            got += m.body.len() as u64;
            Ok(())
        }
        .await;
        if let Err(e) = step {
            let (s, c) = e.status();
            let _ = conn.send(&m.response_to(s, c));
            break Err(e);
        }
        match m.continuation {
            Continuation::More => {
                if crate::msrp::session::wants_200(&m) {
                    let _ = conn.send(&m.response_to(200, "OK"));
                }
            }
            Continuation::Abort => break Err(ReceiveError::Aborted(got)),
            Continuation::End => {
                let done = finish(&mut w, got, want, &sha1, &part, dir, &name).await;
                let reply = match &done {
                    Ok(_) => m.response_to(200, "OK"),
                    Err(e) => {
                        let (s, c) = e.status();
                        m.response_to(s, c)
                    }
                };
                let _ = conn.send(&reply);
                break done.map(|path| SavedFile {
                    path,
                    size: got,
                    sha256: hex::encode(sha256.clone().finalize()),
                });
            }
        }
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    } else {
        // The sender's BYE ends the session; the connection goes with it (bounded wait).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(ev) = rx.recv().await {
                if matches!(ev, MsrpEvent::Closed(_)) {
                    break;
                }
            }
        })
        .await;
    }
    result
}

/// The last chunk is in: size and SHA-1 checked, the part file on disk and named.
async fn finish(
    w: &mut tokio::io::BufWriter<tokio::fs::File>,
    got: u64,
    want: &Incoming,
    sha1: &sha1::Sha1,
    part: &Path,
    dir: &Path,
    name: &str,
) -> Result<PathBuf, ReceiveError> {
    if got != want.size {
        return Err(ReceiveError::Short {
            got,
            want: want.size,
        });
    }
    if let Some(h) = &want.sha1 {
        if sha1.clone().finalize().as_slice() != h.value.as_slice() {
            return Err(ReceiveError::Hash);
        }
    }
    let save_err = |source| FtError::Save {
        path: part.display().to_string(),
        source,
    };
    w.flush().await.map_err(save_err)?;
    w.get_ref().sync_all().await.map_err(save_err)?;
    Ok(crate::ue::ft::place(dir, name, part).await?)
}

#[cfg(test)]
#[path = "msrp_ft_tests.rs"]
mod tests;
