//! `rcslab ue`: an RCS client against a running lab (see `rcslab::ue::chat`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use rcslab::config::LabConfig;
use rcslab::ue::UeConfig;

use super::{CliError, Result};

/// Who the UE is and where it connects.
#[derive(Args)]
pub struct UeArgs {
    /// The user: the user part of an identity of the lab file (`alice`), or a whole IMPU
    /// (`sip:u1@ims.lab`) with `--password` for a subscriber added by `rcslab subscriber add`.
    #[arg(long)]
    pub user: String,
    /// Digest password (default: the lab file's password for the user).
    #[arg(long)]
    pub password: Option<String>,
    /// Private identity (default: the lab file's, or user@domain of the IMPU).
    #[arg(long)]
    pub impi: Option<String>,
    /// The P-CSCF to use (default: the lab config's P-CSCF).
    #[arg(long, value_name = "HOST:PORT")]
    pub lab: Option<SocketAddr>,
    /// Local SIP port (UDP and TCP) of the UE (default: any free port).
    #[arg(long, value_name = "PORT")]
    pub local_port: Option<u16>,
    /// Lab file the credentials come from (default: the compiled-in default lab).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum UeCmd {
    /// Send one message, wait for its IMDN, print `delivered` (or `displayed`, or the
    /// failure); exit code 1 on failure.
    Send {
        /// The recipient (`sip:bob@ims.lab`, or just `bob`).
        to: String,
        /// The text.
        text: String,
        /// Seconds to wait for the IMDN.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Tap a chatbot's suggested reply (GSMA RCC.07 §3.6.10.4: a chat message of type
    /// `application/vnd.gsma.botsuggestion.response.v1.0+json` carrying the reply's text and
    /// the chatbot's postback data); prints what `send` prints.
    Tap {
        /// The chatbot (`sip:ums@ims.lab`, or just `ums`).
        to: String,
        /// The suggestion's text as `listen` showed it (`Yes` of `[Yes]`).
        text: String,
        /// The postback data the chatbot set (default: the text, as the UMS sets it).
        #[arg(long)]
        postback: Option<String>,
        /// Seconds to wait for the IMDN.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Send a short message over IP (3GPP TS 24.341: SIP MESSAGEs to the service centre
    /// carrying RP-DATA / SMS-SUBMIT, a status report asked for each part; a text over 160
    /// GSM 7-bit or 70 UCS-2 characters goes in concatenated parts, at most 2,000
    /// characters). Prints `delivered` once status reports say every part arrived,
    /// `failed: REASON` (an RP-ERROR, a refused MESSAGE, a failed TP-Status; exit code 1),
    /// or `pending: ...` when no report came in time (exit code 1).
    Sms {
        /// The recipient's number: `tel:+15550002`, `+15550002` or
        /// `sip:+15550002@ims.lab;user=phone`.
        to: String,
        /// The text.
        text: String,
        /// Seconds to wait for the status reports once the service centre took every part.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// The service centre's number (the Request-URI `tel:NUMBER` and RP-DA).
        #[arg(long, value_name = "NUMBER", default_value = rcslab::ue::sms::DEFAULT_SMSC)]
        smsc: String,
    },
    /// Send a file (GSMA RCC.07 file transfer via HTTP): upload it to the lab's content
    /// server (with a thumbnail for a JPEG or PNG image), send its file-info in a chat
    /// message, wait for the recipient's IMDN (sent once they downloaded it) and print
    /// `delivered` (or `displayed`, `stored`, `failed: REASON`, `pending: …` as `send` does);
    /// exit code 1 unless delivered, displayed or stored. With `--msrp`, RFC 5547 instead:
    /// the file offered in an INVITE and sent in MSRP chunks, `delivered` once the recipient
    /// answered the last one.
    #[command(name = "sendfile")]
    SendFile {
        /// The recipient (`sip:bob@ims.lab`, or just `bob`).
        to: String,
        /// The file.
        file: PathBuf,
        /// Seconds to wait for the IMDN once the file-info message is sent (the recipient
        /// downloads the file first).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Send with MSRP file transfer (RFC 5547) instead: the file offered in an INVITE of
        /// its own and sent in MSRP chunks; `delivered` once the recipient's client answered
        /// the last chunk (the whole file checked and saved).
        #[arg(long)]
        msrp: bool,
        /// The content server, `http://HOST:PORT` (default: the lab file's `[content]
        /// public_url`, else `http://` and its `[nodes] content` address).
        #[arg(long, value_name = "URL")]
        content_server: Option<String>,
    },
    /// Stay registered; print each message as `FROM: TEXT` (a short message too, FROM its
    /// sender's `tel:` URI, its parts put together), save each file sent to us into DIR and
    /// print `FROM: FILE NAME (SIZE bytes, SHA256)`, and answer with IMDNs.
    Listen {
        /// Where received files are saved (never over an existing file: `name-1.ext`).
        #[arg(long, value_name = "DIR", default_value = ".")]
        files: PathBuf,
    },
    /// Publish my presence (RFC 3903 PUBLISH to the presence server through the core):
    /// `open`, `away`, `busy` or `offline`, with an optional note; it stays published for
    /// `--expires` seconds after the command exits.
    Status {
        /// open | away | busy | offline.
        status: String,
        /// A note shown to watchers (`"in a meeting"`).
        note: Option<String>,
        /// Seconds the publication lasts.
        #[arg(long, default_value_t = 3600)]
        expires: u32,
    },
    /// Watch other users' presence (SUBSCRIBE to `presence`): print each change as
    /// `USER: open away (note)` / `USER: closed (last seen TIME)` / `USER: pending` until
    /// Ctrl-C. With `--list`, one subscription to your buddy list at the RLS (RFC 4662)
    /// watches all its members.
    #[command(arg_required_else_help = true)]
    Watch {
        /// Users to watch (`sip:bob@ims.lab`, or just `bob`).
        targets: Vec<String>,
        /// Watch your resource list NAME (`sip:USER;pres-list=NAME@DOMAIN`; without NAME,
        /// `rcs`, the list each buddy-group member has).
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "rcs")]
        list: Option<String>,
    },
    /// Group chats through the lab's conference focus: `create`, `send`, `add`, `remove`,
    /// `leave`, `list` (`group create` prints the new group's id alone on its last line; the
    /// others take it).
    Group {
        #[command(subcommand)]
        cmd: super::group::GroupCmd,
    },
    /// Ask another user what they can do (SIP OPTIONS through the core, GSMA RCC.07): print
    /// their feature tags one per line as their Contact carried them; when the answer is not
    /// 200 (480: not registered, 404: no such user), say so on stderr and exit 1.
    Caps {
        /// The user asked (`sip:bob@ims.lab`, or just `bob`).
        target: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

/// `ue send`: sends one message and waits for what becomes of it: prints `delivered`,
/// `displayed`, `delivered (pager mode)` (T-IM fell back to a SIP MESSAGE), `stored` (the
/// recipient is offline; T-IM keeps it and reports later by IMDN), `failed: REASON`, or
/// `pending: ...` when no report came in time (exit 1: not delivered, but not lost either).
async fn send_one(
    chat: &mut rcslab::ue::chat::ChatUe,
    to: &str,
    text: &str,
    timeout: u64,
) -> Result<()> {
    let id = chat.send(to, text).await;
    await_report(chat, &id, timeout, KEPT).await
}

/// Leaves no contact registered behind us (TS 24.229 §5.1.1.6: REGISTER with Expires 0),
/// whatever the outcome of the command, also after Ctrl-C.
async fn leave(chat: &rcslab::ue::chat::ChatUe) {
    if !matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), chat.deregister()).await,
        Ok(true)
    ) {
        eprintln!("rcslab ue: de-registration got no 200; the contact lapses by itself");
    }
}

/// `ue sendfile`: uploads `file` to `content_server`, sends its file-info to `to` and waits
/// for what becomes of it, printed as [`send_one`] prints it.
async fn send_file(
    chat: &mut rcslab::ue::chat::ChatUe,
    to: &str,
    file: &std::path::Path,
    content_server: &str,
    timeout: u64,
) -> Result<()> {
    let sent = match chat.send_file(to, file, content_server).await {
        Ok(s) => s,
        Err(e) => {
            println!("failed: {e}");
            return Err(CliError::FileTransfer(e.to_string()));
        }
    };
    await_report(chat, &sent.message_id, timeout, KEPT).await
}

/// `ue sendfile --msrp`: offers `file` to `to` in an RFC 5547 session and waits (`timeout`,
/// counted from the offer) for its end, printed as [`send_one`] prints a message's:
/// `delivered` once the recipient answered the last chunk, `failed: REASON` when it declined
/// or the network refused.
async fn send_file_msrp(
    chat: &mut rcslab::ue::chat::ChatUe,
    to: &str,
    file: &std::path::Path,
    timeout: u64,
) -> Result<()> {
    let sent = match chat.send_file_msrp(to, file).await {
        Ok(s) => s,
        Err(e) => {
            println!("failed: {e}");
            return Err(CliError::FileTransfer(e.to_string()));
        }
    };
    await_report(
        chat,
        &sent.message_id,
        timeout,
        "the MSRP transfer did not end in time",
    )
    .await
}

/// What `pending:` adds for a message T-IM took.
const KEPT: &str = "T-IM keeps the message, retries and reports by IMDN";

/// Waits up to `timeout` seconds for the fate of our message `id` and prints it (`pending`
/// says what becomes of it when nothing came).
async fn await_report(
    chat: &mut rcslab::ue::chat::ChatUe,
    id: &str,
    timeout: u64,
    pending: &str,
) -> Result<()> {
    use rcslab::cpim::ImdnStatus;
    use rcslab::ue::chat::ChatEvent;
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match chat.next_event(left).await {
            Some(ChatEvent::Status {
                message_id,
                status,
                note,
                ..
            }) if message_id == id => {
                let pager = note.as_deref() == Some("pager-mode");
                return match status {
                    ImdnStatus::Failed => {
                        let why = note
                            .map(|n| n.trim_start_matches("failed: ").to_string())
                            .unwrap_or_else(|| "the network reports the message failed".into());
                        println!("failed: {why}");
                        Err(CliError::NotDelivered(why))
                    }
                    ImdnStatus::Delivered if pager => {
                        println!("delivered (pager mode)");
                        Ok(())
                    }
                    ImdnStatus::Delivered => {
                        println!("delivered");
                        Ok(())
                    }
                    ImdnStatus::Displayed => {
                        println!("displayed");
                        Ok(())
                    }
                };
            }
            Some(ChatEvent::Stored { message_id, .. }) if message_id == id => {
                println!("stored");
                return Ok(());
            }
            Some(ChatEvent::SendFailed { message_id, reason }) if message_id == id => {
                println!("failed: {reason}");
                return Err(CliError::NotDelivered(reason));
            }
            Some(_) => {}
            None => {
                // Accepted (no SendFailed) but not reported yet: the recipient is registered
                // yet does not answer, and T-IM keeps retrying. Not delivered, not lost.
                println!("pending: no delivery report within {timeout} s ({pending})");
                return Err(CliError::NotDelivered("timeout".into()));
            }
        }
    }
}

/// A UE that stays registered says so: it publishes itself available (open) for as long as
/// the PS allows; when it de-registers, the PS shows it offline and when it was last seen.
pub(super) async fn publish_online(ue: &mut rcslab::ue::Ue) {
    use rcslab::ue::presence::Status;
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        ue.publish(Status::Open, None, 86_400, None),
    )
    .await;
    match r {
        Ok(r) if r.status == 200 => {}
        Ok(r) => eprintln!(
            "rcslab ue: presence not published ({} {}): watchers see no state",
            r.status, r.reason
        ),
        Err(_) => eprintln!("rcslab ue: presence not published (no answer in 5 s)"),
    }
}

/// `rcslab ue`: a registered RCS client (see `rcslab::ue::chat`).
pub async fn run(args: UeArgs, cmd: Option<UeCmd>) -> Result<()> {
    use rcslab::cpim::ImdnStatus;
    use rcslab::ue::chat::{ChatEvent, ChatOptions, ChatUe};
    use std::time::Duration;
    let cfg = match &args.config {
        Some(p) => LabConfig::load(p)?,
        None => LabConfig::default_lab(),
    };
    let pcscf = args.lab.unwrap_or(cfg.nodes.pcscf);
    let domain = cfg.lab.domain.clone();
    // What can be refused before registering is.
    match &cmd {
        Some(UeCmd::SendFile { file, .. }) => {
            let readable = std::fs::File::open(file).and_then(|f| f.metadata());
            match readable {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(CliError::FileTransfer(format!(
                        "{} is not a regular file",
                        file.display()
                    )))
                }
                Err(e) => {
                    return Err(CliError::FileTransfer(format!(
                        "cannot read {}: {e}",
                        file.display()
                    )))
                }
            }
        }
        Some(UeCmd::Listen { files }) => files_dir_usable(files)?,
        Some(UeCmd::Sms { to, text, smsc, .. }) => {
            rcslab::ue::sms::check(to, text, smsc).map_err(|e| CliError::Sms(e.to_string()))?
        }
        _ => {}
    }
    let ue_cfg = ue_config(&args, &cfg, pcscf)?;
    let (_stop, shut) = tokio::sync::watch::channel(false);
    let trace = rcslab::trace::Trace::disabled();
    let bind = SocketAddr::new(
        rcslab::ue::local_ip_towards(pcscf),
        args.local_port.unwrap_or(0),
    );
    let mut ue = rcslab::ue::Ue::start_at(ue_cfg, bind, trace.clone(), shut)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => CliError::UeStart(format!(
                "cannot bind {bind}: the port is in use (choose another --local-port)"
            )),
            _ => CliError::UeStart(format!("cannot bind {bind}: {e}")),
        })?;
    let reg = tokio::time::timeout(Duration::from_secs(10), ue.register(600))
        .await
        .map_err(|_| {
            CliError::UeStart(format!(
                "no answer from the P-CSCF at {pcscf} (is `rcslab up` running?)"
            ))
        })??;
    // `listen` and the interactive client run for hours: they re-register at half-life.
    let keep = ChatOptions {
        refresh_registration: Some(reg.expires.max(60)),
        ..ChatOptions::default()
    };
    let target = |to: &str| {
        if to.contains(':') {
            to.to_string()
        } else {
            format!("sip:{to}@{domain}")
        }
    };
    match cmd {
        Some(UeCmd::Status {
            status,
            note,
            expires,
        }) => {
            use rcslab::ue::presence::{describe, document, Status};
            let st = Status::parse(&status).ok_or_else(|| {
                CliError::Presence(format!(
                    "unknown status '{status}' (open, away, busy or offline)"
                ))
            })?;
            // RFC 3903 §4.4: a client modifies its own publication by its entity-tag rather
            // than adding one more; the tag of the last `status` is kept in a file per user
            // and P-CSCF, and a tag the PS no longer knows (412) means publishing afresh.
            let tag_file = std::env::temp_dir().join(format!(
                "rcslab-ue-presence-{}-{}.etag",
                ue.cfg.impu.replace([':', '@', '/'], "_"),
                pcscf.to_string().replace([':', '[', ']'], "_")
            ));
            let old = std::fs::read_to_string(&tag_file).ok();
            let mut resp = ue
                .publish(st, note.as_deref(), expires, old.as_deref().map(str::trim))
                .await;
            if old.is_some() && resp.status == 412 {
                resp = ue.publish(st, note.as_deref(), expires, None).await;
            }
            if let Some(tag) = resp.headers.get("SIP-ETag") {
                let _ = std::fs::write(&tag_file, tag);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), ue.register(0)).await;
            if resp.status != 200 {
                return Err(CliError::Presence(format!(
                    "status: {} {}",
                    resp.status, resp.reason
                )));
            }
            // The PS shows a user offline once no contact of theirs is registered (it watches
            // the reg event): with no other registration, this one ending says "offline".
            if reg.contacts.len() <= 1 {
                eprintln!(
                    "rcslab ue: {} has no other registration: the presence server shows them offline (last seen now) once this command de-registers; keep `rcslab ue --user {} listen` running to stay online",
                    ue.cfg.impu, args.user
                );
            }
            let doc = document(&ue.cfg.impu, &ue.contact(), st, note.as_deref());
            let granted = resp.headers.get("Expires").unwrap_or("?").to_string();
            println!("published: {} for {granted} s", describe(&doc));
            Ok(())
        }
        Some(UeCmd::Watch { targets, list }) => {
            let targets: Vec<String> = targets.iter().map(|t| target(t)).collect();
            super::watch::watch(ue, reg.expires, &targets, list.as_deref()).await
        }
        Some(UeCmd::Caps {
            target: to,
            timeout,
        }) => {
            use rcslab::ue::caps::Capabilities;
            let found = ue
                .capabilities(&target(&to), Duration::from_secs(timeout))
                .await;
            // Leave no contact registered behind us (TS 24.229 §5.1.1.6).
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), ue.register(0)).await,
                Ok(Ok(_))
            ) {
                eprintln!("rcslab ue: de-registration got no 200; the contact lapses by itself");
            }
            match found {
                Capabilities::Found(tags) => {
                    for t in tags {
                        println!("{t}");
                    }
                    Ok(())
                }
                Capabilities::Failed { status, reason } => {
                    Err(CliError::NoCapabilities(format!("{status} {reason}")))
                }
            }
        }
        Some(UeCmd::Group { cmd }) => super::group::run(ue, trace, &domain, cmd).await,
        Some(UeCmd::Send { to, text, timeout }) => {
            let mut chat = ChatUe::start(ue, trace, ChatOptions::default());
            let to = target(&to);
            let outcome = tokio::select! {
                r = send_one(&mut chat, &to, &text, timeout) => r,
                _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            };
            leave(&chat).await;
            outcome
        }
        Some(UeCmd::Tap {
            to,
            text,
            postback,
            timeout,
        }) => {
            let mut chat = ChatUe::start(ue, trace, ChatOptions::default());
            let to = target(&to);
            let reply = rcslab::rcs::chatbot::Reply {
                display_text: text.clone(),
                postback: Some(rcslab::rcs::chatbot::Postback {
                    data: postback.unwrap_or(text),
                }),
            };
            let outcome = tokio::select! {
                r = async {
                    let id = chat.tap(&to, &reply).await;
                    await_report(&mut chat, &id, timeout, KEPT).await
                } => r,
                _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            };
            leave(&chat).await;
            outcome
        }
        Some(UeCmd::Sms {
            to,
            text,
            timeout,
            smsc,
        }) => super::sms::run(ue, trace, &to, &text, timeout, smsc).await,
        Some(UeCmd::SendFile {
            to,
            file,
            timeout,
            content_server,
            msrp,
        }) => {
            let cs = content_server.unwrap_or_else(|| content_server_of(&cfg));
            let mut chat = ChatUe::start(ue, trace, ChatOptions::default());
            let to = target(&to);
            let send = async {
                if msrp {
                    send_file_msrp(&mut chat, &to, &file, timeout).await
                } else {
                    send_file(&mut chat, &to, &file, &cs, timeout).await
                }
            };
            let outcome = tokio::select! {
                r = send => r,
                _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            };
            leave(&chat).await;
            outcome
        }
        Some(UeCmd::Listen { files }) => {
            let keep = ChatOptions {
                files: Some(files),
                ..keep
            };
            publish_online(&mut ue).await;
            // Rosters of the groups we are in (RFC 4575), on their own subscriptions.
            let roster_parts = rcslab::ue::chat::roster::RosterParts::take(&mut ue);
            let (roster, mut rosters) =
                rcslab::ue::chat::roster::RosterWatcher::start(roster_parts);
            // Short messages (TS 24.341) as `FROM: TEXT` too, FROM the sender's tel: URI.
            let mut sms = rcslab::ue::sms::SmsUe::start(&mut ue, Default::default());
            let mut chat = ChatUe::start(ue, trace, keep);
            let mut watched = std::collections::HashSet::new();
            for gid in super::group::known_ids(&chat.impu, pcscf) {
                let uri = super::group::group_uri(&gid, &domain);
                roster.watch(&uri);
                watched.insert(uri);
            }
            eprintln!(
                "rcslab ue: {} registered, listening (Ctrl-C stops)",
                chat.impu
            );
            loop {
                tokio::select! {
                    Some(ev) = rosters.recv() => {
                        if let rcslab::ue::chat::roster::RosterEvent::Info { group, info } = ev {
                            for l in super::group::roster_lines(&super::group::group_id(&group), &info) {
                                println!("{l}");
                            }
                        }
                    }
                    Some(ev) = sms.next_event(Duration::from_secs(3600)) => {
                        // A status report while only listening is acknowledged, not shown.
                        if let Some(line) = ev.received_line() {
                            println!("{line}");
                        }
                    }
                    ev = chat.next_event(Duration::from_secs(3600)) => {
                        match ev {
                            Some(ChatEvent::Message { from, text, message_id }) => {
                                println!("{from}: {text}");
                                // Printed is shown: IMDN displayed (delivered went out on receipt).
                                chat.displayed(&message_id);
                            }
                            // A chatbot's card: `FROM: TEXT [Yes] [No]` (`tap FROM Yes` answers).
                            Some(ChatEvent::BotMessage { from, card, message_id }) => {
                                println!("{from}: {}", card.one_line());
                                chat.displayed(&message_id);
                            }
                            // A file, saved in the files directory: `FROM: FILE NAME (SIZE
                            // bytes, SHA256)` (a group's as `GROUP/FROM: …`), NAME as saved.
                            Some(ChatEvent::File { from, group, path, size, sha256, message_id, .. }) => {
                                let who = match group {
                                    Some(g) => format!("{}/{from}", super::group::group_id(&g)),
                                    None => from,
                                };
                                println!("{}", file_line(&who, &path, size, &sha256));
                                chat.displayed(&message_id);
                            }
                            Some(ChatEvent::FileFailed { from, name, reason, .. }) => {
                                eprintln!("rcslab ue: the file {name} from {from} was not received: {reason}");
                            }
                            // A group's messages as `GROUP/FROM: TEXT` (GROUP: the id `group`
                            // commands take).
                            Some(ChatEvent::GroupMessage { group, from, text, message_id }) => {
                                let gid = super::group::group_id(&group);
                                super::group::remember(&chat.impu, pcscf, &gid, None);
                                println!("{gid}/{from}: {text}");
                                chat.displayed(&message_id);
                            }
                            Some(ChatEvent::Session { peer, status, reason }) if peer.starts_with("sip:chat-") => {
                                let gid = super::group::group_id(&peer);
                                if status == rcslab::ue::chat::SessionStatus::Accepted {
                                    let cid = chat.group_contribution(&peer).await;
                                    super::group::remember(&chat.impu, pcscf, &gid, cid.as_deref());
                                    println!("{gid}: joined");
                                    if watched.len() < 256 && watched.insert(peer.clone()) {
                                        roster.watch(&peer);
                                    }
                                } else {
                                    println!("{gid}: session {}{}{reason}", status.as_str(), if reason.is_empty() { "" } else { ": " });
                                }
                            }
                            _ => {}
                        }
                    }
                    _ = tokio::signal::ctrl_c() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                        return Ok(());
                    }
                }
            }
        }
        None => {
            publish_online(&mut ue).await;
            // Files sent to us go into the current directory, as with `listen`.
            let keep = ChatOptions {
                files: Some(PathBuf::from(".")),
                ..keep
            };
            let mut sms = rcslab::ue::sms::SmsUe::start(&mut ue, Default::default());
            let mut chat = ChatUe::start(ue, trace, keep);
            println!(
                "rcslab ue: {} registered. Type `PEER TEXT` (e.g. `bob Hello?`), `/typing PEER`, `/quit`.",
                chat.impu
            );
            let mut lines =
                tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
            let mut sent: std::collections::HashMap<String, String> = Default::default();
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let line = match line {
                            Ok(Some(l)) if l.trim() != "/quit" => l,
                            _ => {
                                let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                                return Ok(());
                            }
                        };
                        let line = line.trim();
                        if let Some(peer) = line.strip_prefix("/typing ") {
                            chat.composing(&target(peer.trim()), true);
                            continue;
                        }
                        let Some((peer, text)) = line.split_once(' ') else { continue };
                        let id = chat.send(&target(peer), text).await;
                        sent.insert(id, text.to_string());
                    }
                    _ = tokio::signal::ctrl_c() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), chat.deregister()).await;
                        return Ok(());
                    }
                    Some(ev) = sms.next_event(Duration::from_secs(3600)) => {
                        if let Some(line) = ev.received_line() {
                            println!("{line}");
                        }
                    }
                    ev = chat.next_event(Duration::from_secs(3600)) => match ev {
                        Some(ChatEvent::Message { from, text, message_id }) => {
                            println!("{from}: {text}");
                            chat.displayed(&message_id);
                        }
                        Some(ChatEvent::BotMessage { from, card, message_id }) => {
                            println!("{from}: {}", card.one_line());
                            chat.displayed(&message_id);
                        }
                        Some(ChatEvent::Status { message_id, status, note, .. }) => {
                            let tick = match status {
                                ImdnStatus::Delivered => "✓ delivered",
                                ImdnStatus::Displayed => "✓✓ displayed",
                                ImdnStatus::Failed => "✗ failed",
                            };
                            let what = sent.get(&message_id).cloned().unwrap_or(message_id);
                            match note {
                                Some(n) => println!("  {tick} ({n}): {what}"),
                                None => println!("  {tick}: {what}"),
                            }
                        }
                        Some(ChatEvent::File { from, path, size, sha256, message_id, .. }) => {
                            println!("{}", file_line(&from, &path, size, &sha256));
                            chat.displayed(&message_id);
                        }
                        Some(ChatEvent::FileFailed { from, name, reason, .. }) => {
                            println!("  ✗ the file {name} from {from} was not received: {reason}");
                        }
                        Some(ChatEvent::Composing { from, active: true }) => println!("  ({from} is typing...)"),
                        Some(ChatEvent::SendFailed { reason, .. }) => println!("  ✗ {reason}"),
                        Some(ChatEvent::Stored { message_id, .. }) => {
                            let what = sent.get(&message_id).cloned().unwrap_or(message_id);
                            println!("  … stored (recipient offline): {what}");
                        }
                        Some(ChatEvent::Session { peer, status, reason }) => {
                            println!("  (session with {peer} {}{}{reason})", status.as_str(), if reason.is_empty() { "" } else { ": " });
                        }
                        Some(_) | None => {}
                    }
                }
            }
        }
    }
}

/// The line `listen` prints for a file it saved: `FROM: FILE NAME (SIZE bytes, SHA256)`,
/// NAME being the name it was saved under (a contract scripts rely on).
fn file_line(from: &str, path: &std::path::Path, size: u64, sha256: &str) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    format!("{from}: FILE {name} ({size} bytes, {sha256})")
}

/// The content server of the lab file: `[content] public_url`, else `http://` and its
/// `[nodes] content` address.
fn content_server_of(cfg: &LabConfig) -> String {
    if cfg.content.public_url.is_empty() {
        format!("http://{}", cfg.nodes.content_or_default())
    } else {
        cfg.content.public_url.clone()
    }
}

/// `--files DIR` must be a directory files can be created in.
fn files_dir_usable(dir: &std::path::Path) -> Result<()> {
    let bad = |why: String| CliError::FilesDir(dir.to_path_buf(), why);
    let m = std::fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
    if !m.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let probe = dir.join(format!(".rcslab-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| bad(format!("cannot write there: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The UE's identity: from the lab file, with `--password` / `--impi` over it; a user the lab
/// file does not know needs `--password` (a subscriber added with `rcslab subscriber add`).
fn ue_config(args: &UeArgs, cfg: &LabConfig, pcscf: SocketAddr) -> Result<UeConfig> {
    let from_file = UeConfig::from_lab(cfg, &args.user, pcscf);
    let mut ue = match (from_file, &args.password) {
        (Some(ue), _) => ue,
        (None, Some(password)) => {
            let impu = if args.user.contains(':') {
                args.user.clone()
            } else if args.user.contains('@') {
                format!("sip:{}", args.user)
            } else {
                format!("sip:{}@{}", args.user, cfg.lab.domain)
            };
            let impi = match &args.impi {
                Some(i) => i.clone(),
                None => rcslab::store::default_impi(&impu)?,
            };
            UeConfig {
                impu,
                impi,
                password: password.clone(),
                k: [0; 16],
                opc: [0; 16],
                sqn_ms: 0,
                pcscf,
                transport: rcslab::sip::Transport::Udp,
                domain: cfg.lab.domain.clone(),
                auth: rcslab::ue::AuthMode::Digest,
                extra_tags: String::new(),
            }
        }
        (None, None) => return Err(CliError::UnknownUser(args.user.clone())),
    };
    if let Some(p) = &args.password {
        ue.password = p.clone();
    }
    if let Some(i) = &args.impi {
        ue.impi = i.clone();
    }
    Ok(ue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(user: &str, password: Option<&str>, impi: Option<&str>) -> UeArgs {
        UeArgs {
            user: user.into(),
            password: password.map(Into::into),
            impi: impi.map(Into::into),
            lab: None,
            local_port: None,
            config: None,
        }
    }

    #[test]
    fn identity_from_the_lab_file_the_flags_or_both() {
        let cfg = LabConfig::default_lab();
        let p = cfg.nodes.pcscf;
        let a = ue_config(&args("alice", None, None), &cfg, p).unwrap();
        assert_eq!(
            (a.impu.as_str(), a.impi.as_str(), a.password.as_str()),
            ("sip:alice@ims.lab", "alice@ims.lab", "alice-secret")
        );
        let a = ue_config(&args("alice", Some("new"), None), &cfg, p).unwrap();
        assert_eq!(a.password, "new");
        let u = ue_config(&args("u1", Some("pw1"), None), &cfg, p).unwrap();
        assert_eq!(
            (u.impu.as_str(), u.impi.as_str(), u.password.as_str()),
            ("sip:u1@ims.lab", "u1@ims.lab", "pw1")
        );
        let u = ue_config(&args("sip:u2@ims.lab", Some("pw"), Some("priv2")), &cfg, p).unwrap();
        assert_eq!(
            (u.impu.as_str(), u.impi.as_str()),
            ("sip:u2@ims.lab", "priv2")
        );
        let e = ue_config(&args("nobody", None, None), &cfg, p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no user 'nobody' in the lab file; for a subscriber added with `rcslab subscriber add`, give --password (and --impi if it is not user@domain)"
        );
    }
}
