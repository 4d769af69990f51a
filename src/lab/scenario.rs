//! Teaching scenarios (`labs/*.toml`): a lab configuration, a list of steps simulated UEs
//! perform, and the ladder the steps must produce. `rcslab lab run` prints the ladder,
//! `rcslab lab check` compares it with the expected one.
//!
//! ```toml
//! title = "Registration with SIP Digest"
//! teaches = "REGISTER, 401, REGISTER, 200 and the Cx behind them"
//! [config]                       # merged over the default lab
//! default_ifc = []
//! [[step]]
//! do = "register"                # register | message | call | caps | subscribe | publish
//!                                # | subscribe_list | deregister
//!                                # | remove | clear-ifc | clear | chat | web-login | web-channel
//!                                # | group-create | group-watch | group-send | group-add
//!                                # | group-remove | wait | sendfile | sms | sms-wait | smpp
//! user = "alice"
//! auth = "digest"                # or "aka"; sqn_ms = N forces an AKA sync failure
//! expected = ["UE alice -> P-CSCF SIP REGISTER", "..."]
//! ```

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use crate::cpim::ImdnStatus;
use crate::lab::{Lab, LabOptions};
use crate::ue::chat::{ChatEvent, ChatOptions, ChatUe};
use crate::ue::{audio_sdp, uas_response, AuthMode, Ue, UeConfig, UeError};
use crate::webrsf::client::WebClient;
use crate::LabConfig;

mod compare;
mod file;
mod group;
mod presence;
mod rtcweb;
mod sms;
mod ums;

pub use compare::{align, diff};

/// One lab file.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// Short title.
    pub title: String,
    /// What it teaches.
    #[serde(default)]
    pub teaches: String,
    /// Lab configuration merged over the default lab.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Steps, in order.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
    /// The ladder the steps must produce (`FROM -> TO PROTO SUMMARY`, SIP summaries cut to the
    /// method or status code).
    #[serde(default)]
    pub expected: Vec<String>,
    /// The same flow in the paper's view (O-CSCF / T-CSCF, no HSS), when the lab gives it.
    #[serde(default)]
    pub expected_paper: Vec<String>,
    /// For labs that follow a figure of the paper: the figure's step number of each line of
    /// `expected` (0: a message the figure leaves out, such as an ACK). `lab run` prints it
    /// beside the matching line; `lab check` does not compare it.
    #[serde(default)]
    pub figure_steps: Vec<u32>,
}

/// What one run of a lab produced: each view's ladder with the time of every line, and the
/// nodes' notes on their decisions (see [`crate::lab::teach`] for how `lab run` prints it).
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Every node ([`format_lines`]), with each line's recorder time.
    pub full: Vec<(Duration, String)>,
    /// The paper's view.
    pub paper: Vec<(Duration, String)>,
    /// Every node, CSCFs named by session case.
    pub roles: Vec<(Duration, String)>,
    /// The nodes' notes: recorder time and `[NODE] text`.
    pub notes: Vec<(Duration, String)>,
    /// The run exported in the format asked for (`text`, `html`, `mermaid`, `pcap`), the
    /// messages filtered as the ladders are (no watchdogs, capability exchanges, 100 Trying).
    pub export: Option<Vec<u8>>,
}

fn untimed(v: Vec<(Duration, String)>) -> Vec<String> {
    v.into_iter().map(|(_, l)| l).collect()
}

/// One thing the UEs or the operator do.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// `register`, `message`, `call`, `remove`, `clear-ifc`; `clear` (the ladder starts
    /// after it); `chat` (an RCS chat message from `user` to `to`, over the session when one
    /// is up, else in an INVITE; waits for the IMDN "delivered"); `web-login` (`user` logs in
    /// to WebRSF with their password: the gateway registers them); `web-channel` (`user` opens
    /// the notification channel and answers events as the paper's client does); `page-login`,
    /// `page-call`, `page-talk`, `page-reload`, `page-hangup`, `page-subscribe` (the RTCWeb
    /// gateway's page),
    /// `jssip-register` (SIP over WebSocket as JsSIP writes it): [`rtcweb`]; `group-create`,
    /// `group-watch`, `group-send`, `group-add`, `group-remove` (group chat through CONF):
    /// [`group`]; `wait` (`secs`: the lab's timers run, an idle group's teardown);
    /// `sendfile` (`user` sends a file of `size` bytes named `file` to `to`, over HTTP or
    /// with `msrp = true` over MSRP; waits until it is delivered and saved): [`file`];
    /// `sms`, `sms-wait` (SMS over IP, TS 24.341) and `smpp` (an application over SMPP):
    /// [`sms`].
    #[serde(rename = "do")]
    pub action: String,
    /// The acting user (user part of a default-lab identity).
    #[serde(default)]
    pub user: Option<String>,
    /// The other user.
    #[serde(default)]
    pub to: Option<String>,
    /// `digest` or `aka`.
    #[serde(default)]
    pub auth: Option<String>,
    /// For AKA: the USIM's highest accepted SQN (set high to force a sync failure).
    #[serde(default)]
    pub sqn_ms: Option<u64>,
    /// For message: the text.
    #[serde(default)]
    pub text: Option<String>,
    /// For message: carry the OMA CPM chat feature tag (iFC send it via O-IM / T-IM). For
    /// register: the user's RCS client (with a group roster watcher) takes the UE at once.
    #[serde(default)]
    pub chat: bool,
    /// For publish: the note shown to watchers (`text` is the status).
    #[serde(default)]
    pub note: Option<String>,
    /// For group-create and group-add: the members (user names).
    #[serde(default)]
    pub members: Vec<String>,
    /// For wait: how long, in seconds (at most [`MAX_WAIT_SECS`]).
    #[serde(default)]
    pub secs: Option<u64>,
    /// For sendfile: over MSRP (RFC 5547) instead of HTTP.
    #[serde(default)]
    pub msrp: bool,
    /// For sendfile: the file's size in bytes (default 20000).
    #[serde(default)]
    pub size: Option<u64>,
    /// For sendfile: the file's name (default `notes.txt`; its extension gives its type).
    #[serde(default)]
    pub file: Option<String>,
    /// For register: the user's SMS client takes the UE before it registers.
    #[serde(default)]
    pub sms: bool,
    /// For sms and sms-wait: the outcome waited for (`delivered`, `accepted`, `failed`).
    #[serde(default)]
    pub expect: Option<String>,
    /// UMS steps: a template's id.
    #[serde(default)]
    pub template: Option<String>,
    /// UMS steps: the template's variables.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// UMS steps: replies suggested to RCS recipients.
    #[serde(default)]
    pub suggestions: Vec<String>,
    /// `ums-phone`: the chat client leaves chats unanswered.
    #[serde(default)]
    pub hold: bool,
}

/// The longest `wait` step.
pub const MAX_WAIT_SECS: u64 = 60;

/// Errors running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file is not a valid scenario.
    #[error("{0}")]
    Invalid(String),
    /// A step did not do what it should.
    #[error("step {step} ({action}): {why}")]
    Step {
        /// 1-based index.
        step: usize,
        /// The action.
        action: String,
        /// What went wrong.
        why: String,
    },
}

impl Scenario {
    /// Loads a lab file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Invalid(format!("{}: {e}", path.display())))?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses a lab file's text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Invalid(format!("{origin}: {e}")))
    }

    /// Runs the steps on a fresh lab (ephemeral ports, temporary data) and returns the ladder.
    pub async fn run(&self) -> Result<Vec<String>, ScenarioError> {
        self.run_views().await.map(|(full, _)| full)
    }

    /// Runs the steps and returns the ladder in both views: every node, and the paper's.
    pub async fn run_views(&self) -> Result<(Vec<String>, Vec<String>), ScenarioError> {
        self.run_all_views()
            .await
            .map(|(full, paper, _)| (full, paper))
    }

    /// Runs the steps and returns the full, the paper's and the roles view.
    pub async fn run_all_views(
        &self,
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>), ScenarioError> {
        let r = self.run_report(None).await?;
        Ok((untimed(r.full), untimed(r.paper), untimed(r.roles)))
    }

    /// Runs the steps and returns every view with times, the notes, and the run exported in
    /// `export` (`text`, `html`, `mermaid` or `pcap`) when given.
    pub async fn run_report(&self, export: Option<&str>) -> Result<RunReport, ScenarioError> {
        let extra = match &self.config {
            Some(v) => toml::to_string(v).map_err(|e| ScenarioError::Invalid(e.to_string()))?,
            None => String::new(),
        };
        let mut cfg = LabConfig::from_toml_str(&extra)
            .map_err(|e| ScenarioError::Invalid(e.to_string()))?
            .with_ephemeral_ports();
        // The UMS's chatbot registers itself in the default lab; a lab about something else
        // teaches its flow without that REGISTER in its ladder (a lab about the UMS's RCS
        // channel sets `[ums] rcs_user`).
        if !extra.contains("rcs_user") {
            cfg.ums.rcs_user.clear();
        }
        let dir = std::env::temp_dir().join(format!(
            "rcslab-lab-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let lab = Lab::start(
            cfg,
            &dir,
            LabOptions {
                trace: true,
                timers: None,
                hep: None,
            },
        )
        .await
        .map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        // The pages and the RCS clients stay until the ladder is taken (a page that goes
        // ends its subscriptions, a client that goes drops its group sessions, a phone that
        // goes refuses the chat it held: not part of the flow).
        let (r, pages) = match self.steps_on(&lab).await {
            Ok(p) => (Ok(()), Some(p)),
            Err(e) => (Err(e), None),
        };
        let rec = lab.recorder();
        let name = |a| rec.name_of(a);
        let report = RunReport {
            full: format_timed(crate::lab::views::timed_ladder_of(&lab.trace, name)),
            paper: format_timed(crate::lab::views::timed_ladder_view(
                &lab.trace,
                name,
                crate::lab::views::View::Paper,
            )),
            roles: format_timed(crate::lab::views::timed_ladder_view(
                &lab.trace,
                name,
                crate::lab::views::View::Roles,
            )),
            notes: crate::lab::timed_notes(&lab.trace, name),
            export: export.and_then(|f| {
                rec.export_filtered(
                    f,
                    &crate::trace::filter::TraceFilter {
                        ladder_only: true,
                        ..Default::default()
                    },
                )
            }),
        };
        lab.shutdown().await;
        drop(pages);
        let _ = std::fs::remove_dir_all(&dir);
        r.map(|_| report)
    }

    async fn steps_on(
        &self,
        lab: &Lab,
    ) -> Result<(rtcweb::Pages, group::Groups, ums::UmsPhones), ScenarioError> {
        let (_stop, shut) = watch::channel(false);
        let mut ues: Vec<(String, Ue)> = Vec::new();
        let mut chats: std::collections::HashMap<String, ChatUe> = Default::default();
        let mut webs: std::collections::HashMap<String, WebClient> = Default::default();
        // (watcher, presentity) of the `subscribe` steps.
        let mut watching: Vec<(String, String)> = Vec::new();
        let mut pages = rtcweb::Pages::default();
        let mut groups = group::Groups::default();
        // The RCS clients of `sendfile` steps (they save files).
        let mut file_clients: std::collections::HashMap<String, ChatUe> = Default::default();
        let mut phones = sms::Phones::default();
        let mut ums_phones = ums::UmsPhones::default();
        let domain = lab.config.lab.domain.clone();
        for (i, s) in self.steps.iter().enumerate() {
            let fail = |why: String| ScenarioError::Step {
                step: i + 1,
                action: s.action.clone(),
                why,
            };
            let user = s.user.clone().unwrap_or_default();
            match s.action.as_str() {
                "register" => {
                    let mut cfg = UeConfig::from_lab(&lab.config, &user, lab.addrs.pcscf)
                        .ok_or_else(|| fail(format!("no user '{user}' in the lab")))?;
                    cfg.auth = match s.auth.as_deref() {
                        Some("aka") => AuthMode::Aka,
                        _ => AuthMode::Digest,
                    };
                    cfg.sqn_ms = s.sqn_ms.unwrap_or(0);
                    let mut ue = Ue::start(cfg, lab.trace.clone(), shut.clone())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    lab.name_addr(ue.local_addr(), &format!("UE {user}"));
                    if s.sms {
                        phones.adopt(&user, &mut ue);
                    }
                    // A lab started on a busy machine may shed a REGISTER (503: the P-CSCF's
                    // inbound queue lagged); the UE sends it again after the lab's
                    // Retry-After (RFC 3261 §21.5.4), twice at most.
                    let retry = Duration::from_secs(lab.config.sip.retry_after_secs.min(5).into());
                    let mut shed = 0;
                    loop {
                        match ue.register(600).await {
                            Err(UeError::Rejected(503, _)) if shed < 2 => {
                                shed += 1;
                                tokio::time::sleep(retry).await;
                            }
                            r => break r.map(|_| ()).map_err(|e| fail(e.to_string()))?,
                        }
                    }
                    if s.chat {
                        groups.adopt(&user, ue, lab.trace.clone());
                        groups
                            .registered(lab, &user)
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                        continue;
                    }
                    settle().await;
                    ues.push((user, ue));
                }
                "message" | "call" => {
                    let to = s.to.clone().ok_or_else(|| fail("needs `to`".into()))?;
                    let callee_at = ues.iter().position(|(u, _)| *u == to);
                    let callee = callee_at.map(|p| ues.remove(p));
                    let caller_at = ues
                        .iter()
                        .position(|(u, _)| *u == user)
                        .ok_or_else(|| fail(format!("'{user}' has not registered")))?;
                    let method = s.action.clone();
                    let answer = tokio::spawn(async move {
                        let (name, mut ue) = callee?;
                        let contact = ue.contact();
                        let wait = Duration::from_secs(5);
                        if let Some(inc) = ue.next_request(wait).await {
                            if method == "call" {
                                inc.tx.respond(uas_response(
                                    &inc.request,
                                    180,
                                    "lab",
                                    &contact,
                                    None,
                                ));
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                inc.tx.respond(uas_response(
                                    &inc.request,
                                    200,
                                    "lab",
                                    &contact,
                                    Some(&audio_sdp(5002)),
                                ));
                                for _ in 0..2 {
                                    // ACK, then BYE.
                                    if let Some(n) = ue.next_request(wait).await {
                                        if n.request.method == crate::sip::Method::Bye {
                                            n.tx.respond(uas_response(
                                                &n.request, 200, "lab", &contact, None,
                                            ));
                                        }
                                    }
                                }
                            } else {
                                inc.tx.respond(uas_response(
                                    &inc.request,
                                    200,
                                    "lab",
                                    &contact,
                                    None,
                                ));
                            }
                        }
                        Some((name, ue))
                    });
                    let target = format!("sip:{to}@{}", lab.config.lab.domain);
                    let caller = &mut ues[caller_at].1;
                    if s.action == "message" {
                        let text = s.text.clone().unwrap_or_else(|| "Hello?".into());
                        let extra: &[(&str, &str)] = if s.chat {
                            &[("Accept-Contact", "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg\"")]
                        } else {
                            &[]
                        };
                        let r = caller.message_with(&target, &text, extra).await;
                        settle().await;
                        if r.status >= 300 && callee_at.is_some() {
                            return Err(fail(format!("answered {} {}", r.status, r.reason)));
                        }
                    } else {
                        let (r, d) = caller.invite(&target, &audio_sdp(4000)).await;
                        let Some(mut d) = d else {
                            return Err(fail(format!("answered {} {}", r.status, r.reason)));
                        };
                        settle().await;
                        let bye = caller.bye(&mut d).await;
                        if bye.status != 200 {
                            return Err(fail(format!("BYE answered {}", bye.status)));
                        }
                    }
                    if let Ok(Some(back)) = answer.await {
                        ues.push(back);
                    }
                    settle().await;
                }
                "subscribe" => {
                    let to = s.to.clone().ok_or_else(|| fail("needs `to`".into()))?;
                    presence::subscribe(&mut ues, &user, &to, &lab.config.lab.domain)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    watching.push((user.clone(), to));
                    settle().await;
                }
                "subscribe_list" => {
                    let name = s.text.as_deref().unwrap_or("rcs");
                    let members = presence::subscribe_list(&mut ues, &user, name)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    watching.extend(members.into_iter().map(|m| (user.clone(), m)));
                    settle().await;
                }
                "deregister" => {
                    presence::deregister(&mut ues, &watching, &user)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    settle().await;
                }
                "publish" => {
                    let status = s.text.as_deref().unwrap_or("open");
                    presence::publish(&mut ues, &watching, &user, status, s.note.as_deref())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    settle().await;
                }
                "caps" => {
                    // RCC.07 capability discovery: OPTIONS to `to`, answered by its UE (when
                    // registered here) with its feature tags; 480 / 404 otherwise.
                    let to = s.to.clone().ok_or_else(|| fail("needs `to`".into()))?;
                    let callee_at = ues.iter().position(|(u, _)| *u == to);
                    let callee = callee_at.map(|p| ues.remove(p));
                    let caller_at = ues
                        .iter()
                        .position(|(u, _)| *u == user)
                        .ok_or_else(|| fail(format!("'{user}' has not registered")))?;
                    let answer = tokio::spawn(async move {
                        let (name, mut ue) = callee?;
                        if let Some(inc) = ue.next_request(Duration::from_secs(5)).await {
                            let ok = ue.answer_options(&inc.request);
                            inc.tx.respond(ok);
                        }
                        Some((name, ue))
                    });
                    let target = format!("sip:{to}@{}", lab.config.lab.domain);
                    let found = ues[caller_at]
                        .1
                        .capabilities(&target, Duration::from_secs(5))
                        .await;
                    settle().await;
                    if let (crate::ue::caps::Capabilities::Failed { status, reason }, Some(_)) =
                        (&found, callee_at)
                    {
                        return Err(fail(format!("answered {status} {reason}")));
                    }
                    if let Ok(Some(back)) = answer.await {
                        ues.push(back);
                    }
                }
                "remove" => {
                    let path = format!(
                        "/subscribers/{}",
                        crate::hss::admin::percent_encode(&format!(
                            "{user}@{}",
                            lab.config.lab.domain
                        ))
                    );
                    let (st, body) = lab
                        .admin
                        .call(hyper::Method::DELETE, &path, None)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    if st != 200 {
                        return Err(fail(body));
                    }
                    settle().await;
                }
                "clear-ifc" => {
                    let path = format!(
                        "/subscribers/{}/ifc",
                        crate::hss::admin::percent_encode(&format!(
                            "sip:{user}@{}",
                            lab.config.lab.domain
                        ))
                    );
                    let (st, text) = lab
                        .admin
                        .call(hyper::Method::PUT, &path, Some("[]".into()))
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    if st != 200 {
                        return Err(fail(text));
                    }
                    settle().await;
                }
                "clear" => {
                    settle().await;
                    lab.trace.clear();
                }
                "chat" => {
                    let to = s.to.clone().ok_or_else(|| fail("needs `to`".into()))?;
                    for who in [&user, &to] {
                        if chats.contains_key(who) || webs.contains_key(who) {
                            continue;
                        }
                        let at = ues
                            .iter()
                            .position(|(u, _)| u == who)
                            .ok_or_else(|| fail(format!("'{who}' has not registered")))?;
                        let (_, ue) = ues.remove(at);
                        chats.insert(
                            who.clone(),
                            ChatUe::start(ue, lab.trace.clone(), ChatOptions::default()),
                        );
                    }
                    let sender = chats
                        .get_mut(&user)
                        .ok_or_else(|| fail(format!("'{user}' is not an RCS client")))?;
                    let text = s.text.clone().unwrap_or_else(|| "Hello?".into());
                    let target = format!("sip:{to}@{}", lab.config.lab.domain);
                    let id = sender.send(&target, &text).await;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    loop {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match sender.next_event(left).await {
                            Some(ChatEvent::Status {
                                message_id,
                                status: ImdnStatus::Delivered,
                                ..
                            }) if message_id == id => break,
                            Some(ChatEvent::SendFailed { reason, .. }) => return Err(fail(reason)),
                            Some(_) => {}
                            None => return Err(fail("no IMDN delivered within 5 s".into())),
                        }
                    }
                    settle().await;
                }
                "web-login" => {
                    let password = password_of(lab, &user)
                        .ok_or_else(|| fail(format!("no user '{user}' in the lab")))?;
                    let c = WebClient::login(lab.addrs.webrsf, &user, &password)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    settle().await;
                    webs.insert(user.clone(), c);
                }
                "web-channel" => {
                    let c = webs
                        .get(&user)
                        .cloned()
                        .ok_or_else(|| fail(format!("'{user}' has not logged in (web-login)")))?;
                    let mut rx = c.channel(0).await.map_err(|e| fail(e.to_string()))?;
                    tokio::spawn(async move {
                        while let Some(ev) = rx.recv().await {
                            if let Err(e) = c.answer(&ev).await {
                                tracing::warn!(error = %e, "lab web client");
                            }
                        }
                    });
                    settle().await;
                }
                action if action.starts_with("group-") => {
                    groups
                        .step(lab, &mut ues, action, s)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                "sendfile" => {
                    file::send_file(lab, &mut ues, &mut file_clients, s)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                "sms" | "sms-wait" | "smpp" => {
                    phones
                        .step(lab, &mut ues, s)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                "ums-phone" | "ums-template" | "ums-send" => {
                    ums_phones
                        .step(lab, s, &shut)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                "wait" => {
                    let secs = s.secs.ok_or_else(|| fail("needs `secs`".into()))?;
                    if secs > MAX_WAIT_SECS {
                        return Err(fail(format!("secs = {secs}: at most {MAX_WAIT_SECS}")));
                    }
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    group::quiet(lab).await;
                }
                action if action.starts_with("page-") || action == "jssip-register" => {
                    let password = password_of(lab, &user);
                    let to = s.to.as_deref();
                    pages
                        .step(lab, &mut ues, action, &user, to, password, &domain)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    settle().await;
                }
                other => return Err(fail(format!("unknown action '{other}'"))),
            }
        }
        Ok((pages, groups, ums_phones))
    }
}

/// The password of `user` of the lab's subscribers.
fn password_of(lab: &Lab, user: &str) -> Option<String> {
    let aor = format!("sip:{user}@{}", lab.config.lab.domain);
    lab.config
        .subscribers
        .iter()
        .find(|x| x.impu.contains(&aor))
        .map(|x| x.password.clone())
}

/// Lets in-flight messages land before the next step (the ladder reads step by step).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// The lab's ladder in the scenario format, without watchdogs, capability exchanges and the
/// hop-by-hop 100 Trying (which races the forwarded INVITE).
pub fn ladder_lines(lab: &Lab) -> Vec<String> {
    format_lines(lab.ladder())
}

/// Ladder lines in the scenario format (see [`ladder_lines`]).
pub fn format_lines(lines: Vec<crate::lab::LadderLine>) -> Vec<String> {
    untimed(format_timed(
        lines.into_iter().map(|l| (Duration::ZERO, l)).collect(),
    ))
}

/// [`format_lines`] keeping each line's time.
pub fn format_timed(lines: Vec<(Duration, crate::lab::LadderLine)>) -> Vec<(Duration, String)> {
    lines
        .into_iter()
        .filter(|(_, l)| !l.is_upkeep())
        .map(|(at, l)| {
            let s = &l.summary;
            let summary = if let Some(rest) = s.strip_prefix("SIP/2.0 ") {
                rest.split_whitespace().next().unwrap_or("").to_string()
            } else if l.protocol == "SIP" {
                s.split_whitespace().next().unwrap_or("").to_string()
            } else if l.protocol == "HTTP" {
                short_http(s)
            } else {
                s.clone()
            };
            (
                at,
                short_msrp(format!("{} -> {} {} {}", l.from, l.to, l.protocol, summary)),
            )
        })
        .filter(|(_, l)| !l.ends_with(" SIP 100"))
        .collect()
}

/// HTTP summaries without what changes from run to run: the status line's version, chat
/// instance ids (`/Chat/{id}`) and message ids (`chunk message {mid}`).
pub fn short_http(s: &str) -> String {
    let s = s.strip_prefix("HTTP/1.1 ").unwrap_or(s);
    if let Some(rest) = s.strip_prefix("chunk message ") {
        let _ = rest;
        return "chunk message {mid}".into();
    }
    // A content server's file ids are random (file transfer via HTTP).
    if let Some(i) = s.find("/files/") {
        let after = &s[i + 7..];
        let tail = &after[after.find('/').unwrap_or(after.len())..];
        return format!("{}/files/{{id}}{tail}", &s[..i]);
    }
    match s.find("/Chat/") {
        Some(i) => {
            let after = &s[i + 6..];
            let (seg, tail) = after.split_at(after.find('/').unwrap_or(after.len()));
            if seg == "Media" || seg.is_empty() {
                s.to_string()
            } else {
                format!("{}/Chat/{{id}}{tail}", &s[..i])
            }
        }
        None => s.to_string(),
    }
}

/// Cuts MSRP summaries (`MSRP <tid> SEND`, `MSRP <tid> 200 OK`) to the method or status, like
/// SIP lines: transaction ids are random.
pub fn short_msrp(line: String) -> String {
    match line.split_once(" MSRP MSRP ") {
        Some((head, rest)) => {
            let mut w = rest.split_whitespace();
            let _tid = w.next();
            format!("{head} MSRP {}", w.next().unwrap_or(""))
        }
        None => line,
    }
}
