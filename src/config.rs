//! The lab's topology, timers and subscribers, from TOML.
//!
//! The default lab (`labs/default.toml`) is compiled in; a `--config` file is merged over it
//! table by table, so a file only needs to say what it changes (arrays replace whole).

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod scscfs;
pub use scscfs::{Assignment, MoreScscf, ScscfSection, MAX_MORE_SCSCFS, SCSCF_LABELS};

/// The compiled-in default lab.
pub const DEFAULT_LAB: &str = include_str!("../labs/default.toml");

/// Errors loading a lab file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or does not match the lab schema.
    #[error("invalid lab configuration: {0}")]
    Invalid(String),
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (every section refuses keys it does not
/// know: a misspelt one used to be ignored, and the lab ran on defaults) with the nearest
/// valid key named: "...; did you mean `b`?".
pub fn with_suggestion(msg: &str) -> String {
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg.to_string();
    };
    let Some((unknown, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let best = expected
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len() / 2).max(2));
    match best {
        Some((_, k)) => format!("{}; did you mean `{k}`?", msg.trim_end()),
        None => msg.to_string(),
    }
}

/// Levenshtein distance (small strings: config keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A whole lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    /// Domain-wide settings.
    pub lab: LabSection,
    /// Listening addresses.
    pub nodes: Nodes,
    /// HSS identity.
    pub hss: HssSection,
    /// The CSCFs' Diameter links to the HSS.
    #[serde(default)]
    pub diameter: DiameterSection,
    /// S-CSCF registrar limits.
    pub registrar: Registrar,
    /// Authentication policy.
    pub auth: AuthSection,
    /// P-CSCF behaviour.
    #[serde(default)]
    pub pcscf: PcscfSection,
    /// SIP timers and limits of every node.
    #[serde(default)]
    pub sip: SipSection,
    /// The flight recorder's bounds.
    #[serde(default)]
    pub trace: TraceSection,
    /// O-IM / T-IM behaviour.
    #[serde(default)]
    pub im: ImSection,
    /// The WebRSF gateway.
    #[serde(default)]
    pub webrsf: WebRsfSection,
    /// Limits of every HTTP listener (WebRSF, the HSS admin API).
    #[serde(default)]
    pub http: HttpSection,
    /// Subscribers provisioned at start-up (existing ones in the store are kept as they are).
    #[serde(default)]
    pub subscribers: Vec<SubscriberConfig>,
    /// The iFC every subscriber gets unless it lists its own `ifc`.
    #[serde(default)]
    pub default_ifc: Vec<IfcConfig>,
    /// The first S-CSCF's capabilities.
    #[serde(default)]
    pub scscf: ScscfSection,
    /// S-CSCFs besides the first ([`scscfs`]); none in the default lab.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scscfs: Vec<MoreScscf>,
}

/// One initial filter criterion in TOML (TS 29.228 Annex B):
///
/// ```toml
/// [[default_ifc]]
/// priority = 10
/// server_name = "sip:oim.ims.lab;transport=tcp"
/// default_handling = "continue"    # or "terminate"
/// condition = "cnf"                # groups ANDed, SPTs of a group ORed ("dnf": the reverse)
/// spt = [ { group = 0, method = "INVITE" }, { group = 0, method = "MESSAGE" },
///         { group = 1, session_case = "originating" },
///         { group = 2, header = "Accept-Contact", content = ".*oma\\.cpm.*" } ]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfcConfig {
    /// Lower runs first.
    pub priority: i32,
    /// The application server's SIP URI.
    pub server_name: String,
    /// `continue` (SESSION_CONTINUED) or `terminate` (SESSION_TERMINATED) when the AS fails.
    #[serde(default = "default_handling")]
    pub default_handling: String,
    /// `cnf` or `dnf`.
    #[serde(default = "default_condition")]
    pub condition: String,
    /// Service point triggers; none means "always".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spt: Vec<SptConfig>,
    /// Free text passed to the AS.
    #[serde(default)]
    pub service_info: Option<String>,
    /// 0 registered, 1 unregistered.
    #[serde(default)]
    pub profile_part: Option<u32>,
}

/// One service point trigger: exactly one of `method`, `request_uri`, `header`,
/// `session_case`, `sdp_line`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SptConfig {
    /// Group number.
    #[serde(default)]
    pub group: u32,
    /// ConditionNegated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
    /// SIP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Request-URI regex.
    #[serde(default)]
    pub request_uri: Option<String>,
    /// Header name (with optional `content` regex).
    #[serde(default)]
    pub header: Option<String>,
    /// Regex for `header` or `sdp_line`.
    #[serde(default)]
    pub content: Option<String>,
    /// `originating`, `terminating`, `terminating_unregistered`, `originating_unregistered`.
    #[serde(default)]
    pub session_case: Option<String>,
    /// SDP line type (`m`, `c`...).
    #[serde(default)]
    pub sdp_line: Option<String>,
    /// For REGISTER: 0 initial, 1 re-registration, 2 de-registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registration_type: Vec<u32>,
}

fn default_handling() -> String {
    "continue".into()
}
fn default_condition() -> String {
    "cnf".into()
}

impl IfcConfig {
    /// The TS 29.228 form.
    pub fn to_profile(&self) -> Result<crate::profile::InitialFilterCriteria, ConfigError> {
        use crate::profile::{
            ApplicationServer, InitialFilterCriteria, Spt, SptKind, TriggerPoint,
        };
        let bad = |why: String| ConfigError::Invalid(format!("iFC {}: {why}", self.server_name));
        let mut spts = Vec::new();
        for s in &self.spt {
            let kind = match (&s.method, &s.request_uri, &s.header, &s.session_case, &s.sdp_line) {
                (Some(m), None, None, None, None) => SptKind::Method(m.to_ascii_uppercase()),
                (None, Some(r), None, None, None) => SptKind::RequestUri(r.clone()),
                (None, None, Some(h), None, None) => SptKind::SipHeader { header: h.clone(), content: s.content.clone() },
                (None, None, None, Some(c), None) => SptKind::SessionCase(match c.as_str() {
                    "originating" => 0,
                    "terminating" | "terminating_registered" => 1,
                    "terminating_unregistered" => 2,
                    "originating_unregistered" => 3,
                    "originating_cdiv" => 4,
                    other => return Err(bad(format!("unknown session_case '{other}'"))),
                }),
                (None, None, None, None, Some(l)) => SptKind::SessionDescription { line: l.clone(), content: s.content.clone() },
                _ => return Err(bad("each spt needs exactly one of method, request_uri, header, session_case, sdp_line".into())),
            };
            if let Some(c) = &s.content {
                regex::Regex::new(c).map_err(|e| bad(format!("bad regex '{c}': {e}")))?;
            }
            if let Some(r) = &s.request_uri {
                regex::Regex::new(r).map_err(|e| bad(format!("bad regex '{r}': {e}")))?;
            }
            spts.push(Spt {
                condition_negated: s.negated,
                group: vec![s.group],
                kind,
                registration_type: s.registration_type.clone(),
            });
        }
        let default_handling = match self.default_handling.as_str() {
            "continue" | "session_continued" => 0,
            "terminate" | "session_terminated" => 1,
            other => {
                return Err(bad(format!(
                    "default_handling '{other}' (continue or terminate)"
                )))
            }
        };
        let cnf = match self.condition.as_str() {
            "cnf" => true,
            "dnf" => false,
            other => return Err(bad(format!("condition '{other}' (cnf or dnf)"))),
        };
        Ok(InitialFilterCriteria {
            priority: self.priority,
            trigger_point: (!spts.is_empty()).then_some(TriggerPoint {
                condition_type_cnf: cnf,
                spts,
            }),
            application_server: ApplicationServer {
                server_name: self.server_name.clone(),
                default_handling,
                service_info: self.service_info.clone(),
                include_register_request: false,
                include_register_response: false,
            },
            profile_part_indicator: self.profile_part,
        })
    }

    /// The TOML form of a TS 29.228 iFC, as `rcslab subscriber show` / `ifc` print it: what
    /// [`IfcConfig::to_profile`] turns back into the same iFC (an SPT in several groups
    /// becomes one `spt` per group, which TS 29.228 Annex B evaluates the same way).
    pub fn from_profile(i: &crate::profile::InitialFilterCriteria) -> IfcConfig {
        use crate::profile::SptKind;
        let mut spt = Vec::new();
        let (cnf, spts) = match &i.trigger_point {
            Some(tp) => (tp.condition_type_cnf, tp.spts.as_slice()),
            None => (true, &[][..]),
        };
        for s in spts {
            let mut c = SptConfig {
                negated: s.condition_negated,
                registration_type: s.registration_type.clone(),
                ..SptConfig::default()
            };
            match &s.kind {
                SptKind::Method(m) => c.method = Some(m.clone()),
                SptKind::RequestUri(r) => c.request_uri = Some(r.clone()),
                SptKind::SipHeader { header, content } => {
                    c.header = Some(header.clone());
                    c.content = content.clone();
                }
                SptKind::SessionCase(n) => {
                    c.session_case = Some(
                        match n {
                            0 => "originating",
                            1 => "terminating",
                            2 => "terminating_unregistered",
                            3 => "originating_unregistered",
                            _ => "originating_cdiv",
                        }
                        .into(),
                    )
                }
                SptKind::SessionDescription { line, content } => {
                    c.sdp_line = Some(line.clone());
                    c.content = content.clone();
                }
            }
            let groups = if s.group.is_empty() {
                vec![0]
            } else {
                s.group.clone()
            };
            for g in groups {
                spt.push(SptConfig {
                    group: g,
                    ..c.clone()
                });
            }
        }
        IfcConfig {
            priority: i.priority,
            server_name: i.application_server.server_name.clone(),
            default_handling: if i.application_server.default_handling == 1 {
                "terminate".into()
            } else {
                "continue".into()
            },
            condition: if cnf { "cnf" } else { "dnf" }.into(),
            spt,
            service_info: i.application_server.service_info.clone(),
            profile_part: i.profile_part_indicator,
        }
    }
}

/// `[lab]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSection {
    /// Home domain, e.g. `ims.lab`.
    pub domain: String,
    /// Transport between the CSCFs (the Mw reference point): `tcp` (default: no
    /// retransmissions, no lingering transactions) or `udp`.
    #[serde(default = "default_mw_transport")]
    pub mw_transport: String,
}

fn default_mw_transport() -> String {
    "tcp".into()
}

/// `[nodes]`: where each node listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nodes {
    /// P-CSCF SIP (UDP and TCP).
    pub pcscf: SocketAddr,
    /// I-CSCF SIP.
    pub icscf: SocketAddr,
    /// S-CSCF SIP.
    pub scscf: SocketAddr,
    /// HSS Diameter.
    pub hss: SocketAddr,
    /// HSS provisioning REST API.
    pub admin: SocketAddr,
    /// O-IM application server (originating instant messaging).
    #[serde(default = "default_oim")]
    pub oim: SocketAddr,
    /// T-IM application server (terminating instant messaging).
    #[serde(default = "default_tim")]
    pub tim: SocketAddr,
    /// O-IM's MSRP listener.
    #[serde(default = "default_oim_msrp")]
    pub oim_msrp: SocketAddr,
    /// T-IM's MSRP listener.
    #[serde(default = "default_tim_msrp")]
    pub tim_msrp: SocketAddr,
    /// The WebRSF gateway's HTTP listener.
    #[serde(default = "default_webrsf")]
    pub webrsf: SocketAddr,
    /// T-IM's history endpoint (HTTP, token in T-IM's `history.token`), which the WebRSF
    /// gateway reads `GET History` from ([`crate::im::history_api`]). Unset: `rcslab up` binds
    /// a free port on T-IM's address (only its own gateway uses it), and `rcslab run tim` /
    /// `rcslab run webrsf` use [`Nodes::tim_http_or_default`] (port 8081 on T-IM's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tim_http: Option<SocketAddr>,
}

impl Nodes {
    /// T-IM's history endpoint as separate processes find it: `tim_http`, or port 8081 on
    /// T-IM's address.
    pub fn tim_http_or_default(&self) -> SocketAddr {
        self.tim_http
            .unwrap_or_else(|| SocketAddr::new(self.tim.ip(), 8081))
    }
}

fn default_webrsf() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[webrsf]`: the web gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRsfSection {
    /// Scheme and authority that instance URLs start with (paper Table 1:
    /// `https://{host}/webrsf/v1/...`). Empty: `https://` and the bound address.
    #[serde(default)]
    pub public_url: String,
    /// Seconds between keep-alive chunks on an idle notification channel.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
    /// Notification channels one user may hold open at once (more get 429).
    #[serde(default = "default_max_channels")]
    pub max_channels_per_user: usize,
    /// Largest request body accepted (bytes; larger gets 413).
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Events kept per user for replay from a cursor / Last-Event-ID.
    #[serde(default = "default_event_buffer")]
    pub event_buffer: usize,
    /// Registration lifetime asked for web users (re-registered at half-life).
    #[serde(default = "default_web_expires")]
    pub register_expires: u32,
    /// Push webhooks: user id (`bob`) -> URL that gets a POST when an event arrives while
    /// the user has no channel open.
    #[serde(default)]
    pub webhooks: std::collections::BTreeMap<String, String>,
    /// A token unused this long (no request, no notification channel open) expires: the
    /// user is de-registered and forgotten.
    #[serde(default = "default_token_idle")]
    pub token_idle_secs: u64,
    /// A bearer token ends this long after it was issued (`PUT /Session` gives a new one).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Failed logins of one user within ten minutes before it gets 429 with Retry-After (an
    /// address gets four times as many, its users together).
    #[serde(default = "default_login_failures")]
    pub login_max_failures: u32,
    /// The first 429 lasts this long; each further one doubles (up to 30 times it).
    #[serde(default = "default_login_block")]
    pub login_block_secs: u64,
    /// Web users logged in at once (more get 503).
    #[serde(default = "default_max_users")]
    pub max_users: usize,
    /// Received messages waiting for `GET Chat/Media` per user; past it the oldest go.
    #[serde(default = "default_max_media")]
    pub max_media_per_user: usize,
    /// Chat instances kept per user; past it the oldest closed one goes (else the oldest).
    #[serde(default = "default_max_instances")]
    pub max_instances_per_user: usize,
    /// A notification channel ends after this long; the client reconnects from its cursor.
    #[serde(default = "default_channel_max")]
    pub channel_max_secs: u64,
}

fn default_keepalive() -> u64 {
    15
}
fn default_max_channels() -> usize {
    4
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_event_buffer() -> usize {
    1024
}
fn default_web_expires() -> u32 {
    600
}
fn default_token_idle() -> u64 {
    3600
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_login_failures() -> u32 {
    5
}
fn default_login_block() -> u64 {
    30
}
fn default_max_users() -> usize {
    1000
}
fn default_max_media() -> usize {
    1000
}
fn default_max_instances() -> usize {
    256
}
fn default_channel_max() -> u64 {
    3600
}

impl Default for WebRsfSection {
    fn default() -> Self {
        WebRsfSection {
            public_url: String::new(),
            keepalive_secs: default_keepalive(),
            max_channels_per_user: default_max_channels(),
            max_body: default_max_body(),
            event_buffer: default_event_buffer(),
            register_expires: default_web_expires(),
            webhooks: Default::default(),
            token_idle_secs: default_token_idle(),
            token_lifetime_secs: default_token_lifetime(),
            login_max_failures: default_login_failures(),
            login_block_secs: default_login_block(),
            max_users: default_max_users(),
            max_media_per_user: default_max_media(),
            max_instances_per_user: default_max_instances(),
            channel_max_secs: default_channel_max(),
        }
    }
}

/// `[http]`: what every HTTP listener of the lab (WebRSF, the HSS admin API) allows one
/// client, each listener on its own (RFC 9112 §9.8 lets a server close idle connections).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Time a client has to send a whole request head, counted from when the connection
    /// starts waiting for one: a new connection, or a keep-alive one after its last response
    /// (so this is also how long an idle keep-alive connection stays open).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// A connection on which no byte moved either way for this long is closed (a stalled
    /// upload, a client that stops reading, a silent WebSocket). WebRSF uses at least twice
    /// `[webrsf] keepalive_secs`, so keep-alives hold idle notification channels open.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Time a client has to send a whole request body once its head arrived (else 408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Connections one listener serves at once; one more gets `503` and is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    1024
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            header_timeout_ms: default_header_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            body_timeout_ms: default_body_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl LabConfig {
    /// Refuses limits that cannot work (zero caps and timeouts).
    fn check_limits(&self) -> Result<(), ConfigError> {
        let (h, w) = (&self.http, &self.webrsf);
        let zero = [
            ("http.header_timeout_ms", h.header_timeout_ms as usize),
            ("http.idle_timeout_ms", h.idle_timeout_ms as usize),
            ("http.body_timeout_ms", h.body_timeout_ms as usize),
            ("http.max_connections", h.max_connections),
            ("webrsf.token_idle_secs", w.token_idle_secs as usize),
            ("webrsf.max_users", w.max_users),
            ("webrsf.max_media_per_user", w.max_media_per_user),
            ("webrsf.max_instances_per_user", w.max_instances_per_user),
            ("webrsf.channel_max_secs", w.channel_max_secs as usize),
            (
                "im.msrp_partial_timeout_secs",
                self.im.msrp_partial_timeout_secs as usize,
            ),
            (
                "im.msrp_max_partials_per_conn",
                self.im.msrp_max_partials_per_conn,
            ),
            (
                "im.msrp_max_partial_bytes_per_conn",
                self.im.msrp_max_partial_bytes_per_conn as usize,
            ),
            ("im.msrp_max_queued_bytes", self.im.msrp_max_queued_bytes),
            (
                "im.msrp_idle_timeout_secs",
                self.im.msrp_idle_timeout_secs as usize,
            ),
            ("im.msrp_max_connections", self.im.msrp_max_connections),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be above 0")));
        }
        Ok(())
    }
}

fn default_oim_msrp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2855))
}
fn default_tim_msrp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2856))
}

/// `[im]`: the messaging servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImSection {
    /// Seconds T-IM keeps a message nobody collected before reporting it failed.
    #[serde(default = "default_ttl")]
    pub store_ttl_secs: u64,
    /// Largest chat message accepted over MSRP (bytes; larger gets MSRP 413).
    #[serde(default = "default_max_msg")]
    pub max_message_size: u64,
    /// Messages T-IM keeps per conversation for history (the oldest delivered ones go;
    /// 0 keeps all).
    #[serde(default = "default_history")]
    pub history_per_conversation: usize,
    /// MSRP (RFC 4975 §7.1.1): a partial message that gets no chunk for this long is dropped
    /// (its sender gets a REPORT with Status 408).
    #[serde(default = "default_partial_timeout")]
    pub msrp_partial_timeout_secs: u64,
    /// Partial messages one MSRP connection may have open at once (413 for one more).
    #[serde(default = "default_max_partials")]
    pub msrp_max_partials_per_conn: usize,
    /// Bytes of partial messages one MSRP connection may have buffered (413 past it).
    #[serde(default = "default_partial_bytes")]
    pub msrp_max_partial_bytes_per_conn: u64,
    /// Bytes queued for an MSRP peer (or a leg not yet up) that does not read; past it the
    /// connection (or leg) is dropped.
    #[serde(default = "default_queued_bytes")]
    pub msrp_max_queued_bytes: usize,
    /// An MSRP connection that binds no session for this long is closed.
    #[serde(default = "default_msrp_idle")]
    pub msrp_idle_timeout_secs: u64,
    /// MSRP connections each listener (O-IM, T-IM) holds at once; more are closed at accept.
    #[serde(default = "default_msrp_conns")]
    pub msrp_max_connections: usize,
}

impl ImSection {
    /// The MSRP bounds of O-IM's and T-IM's relays.
    pub fn msrp_limits(&self) -> crate::msrp::limits::MsrpLimits {
        crate::msrp::limits::MsrpLimits {
            max_size: self.max_message_size,
            partial_timeout: std::time::Duration::from_secs(self.msrp_partial_timeout_secs),
            max_partials_per_conn: self.msrp_max_partials_per_conn,
            max_partial_bytes_per_conn: self.msrp_max_partial_bytes_per_conn,
            max_queued_bytes: self.msrp_max_queued_bytes,
            idle_timeout: std::time::Duration::from_secs(self.msrp_idle_timeout_secs),
            max_connections: self.msrp_max_connections,
        }
    }
}

fn default_history() -> usize {
    1000
}
fn default_partial_timeout() -> u64 {
    30
}
fn default_max_partials() -> usize {
    32
}
fn default_partial_bytes() -> u64 {
    4 << 20
}
fn default_queued_bytes() -> usize {
    4 << 20
}
fn default_msrp_idle() -> u64 {
    30
}
fn default_msrp_conns() -> usize {
    10_000
}

fn default_ttl() -> u64 {
    7 * 24 * 3600
}
fn default_max_msg() -> u64 {
    1 << 20
}

impl Default for ImSection {
    fn default() -> Self {
        ImSection {
            store_ttl_secs: default_ttl(),
            max_message_size: default_max_msg(),
            history_per_conversation: default_history(),
            msrp_partial_timeout_secs: default_partial_timeout(),
            msrp_max_partials_per_conn: default_max_partials(),
            msrp_max_partial_bytes_per_conn: default_partial_bytes(),
            msrp_max_queued_bytes: default_queued_bytes(),
            msrp_idle_timeout_secs: default_msrp_idle(),
            msrp_max_connections: default_msrp_conns(),
        }
    }
}

fn default_oim() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5090))
}
fn default_tim() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5091))
}

/// `[hss]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HssSection {
    /// Diameter Origin-Host of the HSS.
    pub origin_host: String,
    /// Diameter Origin-Realm of the HSS.
    pub origin_realm: String,
    /// Server-Name answered in UAA/LIA for a user no S-CSCF serves yet (TS 29.228 §6.1.1.1),
    /// e.g. a foreign S-CSCF's `sip:127.0.0.3:6060`. Unset: the lab's own S-CSCF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scscf_name: Option<String>,
    /// Answer Server-Capabilities instead (the I-CSCF picks an S-CSCF from its own list);
    /// used when `scscf_name` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_capabilities: Option<ServerCapabilitiesSection>,
    /// How a user no S-CSCF serves yet gets one when the lab has several ([`Assignment`]):
    /// `name` (Server-Name, one of the lab's S-CSCFs by a hash of the IMPI) or `capabilities`
    /// (Server-Capabilities from `server_capabilities`; the I-CSCF chooses). Unset: as
    /// `scscf_name` / `server_capabilities` say, else the first S-CSCF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// The Diameter peers the HSS accepts (RFC 6733 §5.3; others get 3010 DIAMETER_UNKNOWN_PEER).
    /// Empty: the lab's own I-CSCF and S-CSCF (`icscf.<domain>`, `scscf.<domain>`) from their
    /// nodes' addresses, any loopback address when those are on loopback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<HssPeer>,
}

/// One `[[hss.peers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HssPeer {
    /// The peer's Origin-Host.
    pub origin_host: String,
    /// Where it connects from: an IP address or a network (`127.0.0.0/8`).
    pub address: String,
}

/// `[hss.server_capabilities]` (TS 29.229 §6.3.4 Server-Capabilities).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCapabilitiesSection {
    /// Mandatory-Capability values.
    #[serde(default)]
    pub mandatory: Vec<u32>,
    /// Optional-Capability values.
    #[serde(default)]
    pub optional: Vec<u32>,
    /// Server-Name values (preferred S-CSCFs).
    #[serde(default)]
    pub server_names: Vec<String>,
}

impl HssSection {
    /// The Diameter peers the HSS accepts: `[[hss.peers]]`, or the lab's own I-CSCF and S-CSCF
    /// (their Origin-Hosts, from their nodes' addresses; from any loopback address when those
    /// are on loopback, as Kamailio CSCFs on 127.0.0.x are in labs/interop).
    pub fn peer_policy(
        &self,
        domain: &str,
        icscf: SocketAddr,
        scscf: SocketAddr,
    ) -> Result<crate::diameter::peer_policy::PeerPolicy, ConfigError> {
        self.peer_policy_with(domain, icscf, &[(format!("scscf.{domain}"), scscf)])
    }

    /// [`HssSection::peer_policy`] for a lab with several S-CSCFs: (Origin-Host, address) each.
    pub fn peer_policy_with(
        &self,
        domain: &str,
        icscf: SocketAddr,
        scscfs: &[(String, SocketAddr)],
    ) -> Result<crate::diameter::peer_policy::PeerPolicy, ConfigError> {
        use crate::diameter::peer_policy::{parse_network, AllowedPeer, PeerPolicy};
        if !self.peers.is_empty() {
            let list = self
                .peers
                .iter()
                .map(|p| {
                    Ok(AllowedPeer {
                        origin_host: p.origin_host.clone(),
                        network: parse_network(&p.address)
                            .map_err(|e| ConfigError::Invalid(format!("[[hss.peers]]: {e}")))?,
                    })
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            return Ok(PeerPolicy::only(list));
        }
        let from = |a: SocketAddr| {
            if a.ip().is_loopback() || a.ip().is_unspecified() {
                parse_network(if a.is_ipv4() {
                    "127.0.0.0/8"
                } else {
                    "::1/128"
                })
            } else {
                parse_network(&a.ip().to_string())
            }
            .map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        let mut allowed = vec![AllowedPeer {
            origin_host: format!("icscf.{domain}"),
            network: from(icscf)?,
        }];
        for (name, addr) in scscfs {
            allowed.push(AllowedPeer {
                origin_host: name.clone(),
                network: from(*addr)?,
            });
        }
        Ok(PeerPolicy::only(allowed))
    }

    /// What the HSS names for a first registration; `own_scscfs` are the Server-Names of the
    /// lab's S-CSCFs, the first S-CSCF first.
    pub fn scscf_selection(&self, own_scscfs: &[String]) -> ScscfSelection {
        use ScscfSelection as S;
        let own_scscf = own_scscfs.first().cloned().unwrap_or_default();
        match self.assignment {
            Some(Assignment::Name) => return S::ByImpi(own_scscfs.to_vec()),
            Some(Assignment::Capabilities) => {
                let c = self.server_capabilities.clone().unwrap_or_default();
                return S::Capabilities(crate::diameter::cx::ServerCapabilities {
                    mandatory: c.mandatory,
                    optional: c.optional,
                    server_names: c.server_names,
                });
            }
            None => {}
        }
        match (&self.scscf_name, &self.server_capabilities) {
            (Some(n), _) if !n.trim().is_empty() => S::ServerName(n.trim().to_string()),
            (_, Some(c)) => S::Capabilities(crate::diameter::cx::ServerCapabilities {
                mandatory: c.mandatory.clone(),
                optional: c.optional.clone(),
                server_names: c.server_names.clone(),
            }),
            _ => S::ServerName(own_scscf),
        }
    }
}

/// `[diameter]`: how the CSCFs reach the HSS and keep the link up (RFC 6733 §5.6, RFC 3539).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiameterSection {
    /// Where the CSCFs reach the HSS. Unset: the lab's own HSS (`[nodes] hss`); set it for an
    /// external HSS or a proxy in front of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hss_address: Option<SocketAddr>,
    /// RFC 3539 Tw: a DWR after this much quiet; no DWA for two more Tw closes the connection.
    #[serde(default = "default_watchdog")]
    pub watchdog_secs: u64,
    /// First reconnect delay after a failure; it doubles on each failed attempt...
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// ...up to this (RFC 6733 Tc, 30 s in the RFC).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Allowed for the TCP connect and for the CEA.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// How long a Cx request waits for its answer.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
}

fn default_watchdog() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    2000
}
fn default_request_timeout() -> u64 {
    5000
}

impl Default for DiameterSection {
    fn default() -> Self {
        DiameterSection {
            hss_address: None,
            watchdog_secs: default_watchdog(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_ms: default_reconnect_max(),
            connect_timeout_ms: default_connect_timeout(),
            request_timeout_ms: default_request_timeout(),
        }
    }
}

impl DiameterSection {
    /// The state machine's timers (zero values are raised to 1 ms / 1 s).
    pub fn timers(&self) -> crate::diameter::client::PeerTimers {
        let ms = |v: u64| std::time::Duration::from_millis(v.max(1));
        crate::diameter::client::PeerTimers {
            tw: std::time::Duration::from_secs(self.watchdog_secs.max(1)),
            tc_min: ms(self.reconnect_min_ms),
            tc_max: ms(self.reconnect_max_ms.max(self.reconnect_min_ms)),
            ts: ms(self.connect_timeout_ms),
        }
    }
}

/// `[registrar]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registrar {
    /// Granted when the REGISTER asks for nothing.
    pub default_expires: u32,
    /// Shorter requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are cut to this.
    pub max_expires: u32,
}

/// `[trace]`: the flight recorder (`rcslab up --trace`, tests) is a ring: past these bounds the
/// oldest messages go first, counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSection {
    /// Messages kept.
    #[serde(default = "default_trace_capacity")]
    pub capacity: usize,
    /// Message bytes kept.
    #[serde(default = "default_trace_bytes")]
    pub max_bytes: usize,
    /// `HOST:PORT` of a HEPv3 collector (sngrep, Homer) that gets every SIP and Diameter
    /// message live, as `rcslab up --hep` does (the flag wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hep: Option<String>,
}

fn default_trace_capacity() -> usize {
    100_000
}
fn default_trace_bytes() -> usize {
    256 << 20
}

impl Default for TraceSection {
    fn default() -> Self {
        TraceSection {
            capacity: default_trace_capacity(),
            max_bytes: default_trace_bytes(),
            hep: None,
        }
    }
}

impl TraceSection {
    /// The recorder's limits.
    pub fn limits(&self) -> crate::trace::TraceLimits {
        crate::trace::TraceLimits {
            capacity: self.capacity.max(1),
            max_bytes: self.max_bytes.max(1),
        }
    }

    /// The HEP collector of `hep` (checked when the lab file is read).
    pub fn hep_target(&self) -> Option<SocketAddr> {
        self.hep
            .as_deref()
            .and_then(|s| crate::trace::hep::parse_target(s).ok())
    }
}

/// `[sip]`: the RFC 3261 timers every node uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// T1, the round-trip estimate (ms).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// T2, the longest retransmit interval (ms).
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// T4, how long a message may stay in the network (ms).
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// Timer C (RFC 3261 §16.6): how long a proxied INVITE may ring without a final answer
    /// before it is CANCELled and the caller gets 408 (ms, more than 180000 by the RFC).
    #[serde(default = "default_timer_c")]
    pub timer_c_ms: u64,
    /// Server transactions a node takes on at once for out-of-dialog requests; more get 503
    /// with Retry-After (in-dialog requests may use twice this).
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// At the P-CSCF: transactions one source address (ip:port) may hold at once (0: no
    /// limit), so one flooding client cannot starve the others.
    #[serde(default = "default_per_source")]
    pub max_transactions_per_source: usize,
    /// The Retry-After of those 503s (seconds).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
    /// Messages read but not yet handled per node; datagrams beyond are dropped.
    #[serde(default = "default_inbound_queue")]
    pub inbound_queue: usize,
    /// Bytes of those messages at most per node.
    #[serde(default = "default_inbound_bytes")]
    pub inbound_queue_bytes: usize,
    /// Open TCP connections per node; more are closed at once.
    #[serde(default = "default_max_tcp")]
    pub max_tcp_connections: usize,
    /// A TCP connection idle this long is closed (seconds).
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout_secs: u64,
    /// A message must complete within this once its first byte came (ms).
    #[serde(default = "default_tcp_message_timeout")]
    pub tcp_message_timeout_ms: u64,
    /// A TCP connect may take this long (ms).
    #[serde(default = "default_tcp_connect_timeout")]
    pub tcp_connect_timeout_ms: u64,
    /// Completed server transactions a node keeps to answer retransmissions (each waits out
    /// Timer J, 32 s over UDP); past it the oldest go first.
    #[serde(default = "default_max_completed")]
    pub max_completed: usize,
}

fn default_max_completed() -> usize {
    50_000
}

fn default_max_transactions() -> usize {
    2000
}
fn default_per_source() -> usize {
    500
}
fn default_retry_after() -> u32 {
    2
}
fn default_inbound_queue() -> usize {
    4096
}
fn default_inbound_bytes() -> usize {
    32 << 20
}
fn default_max_tcp() -> usize {
    4096
}
fn default_tcp_idle() -> u64 {
    600
}
fn default_tcp_message_timeout() -> u64 {
    10_000
}
fn default_tcp_connect_timeout() -> u64 {
    3000
}

fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4000
}
fn default_t4() -> u64 {
    5000
}
fn default_timer_c() -> u64 {
    180_000
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            t1_ms: default_t1(),
            t2_ms: default_t2(),
            t4_ms: default_t4(),
            timer_c_ms: default_timer_c(),
            max_transactions: default_max_transactions(),
            max_transactions_per_source: default_per_source(),
            retry_after_secs: default_retry_after(),
            inbound_queue: default_inbound_queue(),
            inbound_queue_bytes: default_inbound_bytes(),
            max_tcp_connections: default_max_tcp(),
            tcp_idle_timeout_secs: default_tcp_idle(),
            tcp_message_timeout_ms: default_tcp_message_timeout(),
            tcp_connect_timeout_ms: default_tcp_connect_timeout(),
            max_completed: default_max_completed(),
        }
    }
}

impl SipSection {
    /// The timers as the transaction layer takes them.
    pub fn timers(&self) -> crate::sip::transaction::TimerConfig {
        use std::time::Duration;
        crate::sip::transaction::TimerConfig {
            t1: Duration::from_millis(self.t1_ms.max(1)),
            t2: Duration::from_millis(self.t2_ms.max(1)),
            t4: Duration::from_millis(self.t4_ms),
            c: Duration::from_millis(self.timer_c_ms.max(1)),
        }
    }

    /// The limits of a node's endpoint; `edge`: the P-CSCF, which limits each source.
    pub fn limits(&self, edge: bool) -> crate::sip::limits::SipLimits {
        use std::time::Duration;
        crate::sip::limits::SipLimits {
            max_transactions: self.max_transactions.max(1),
            max_transactions_per_source: if edge {
                self.max_transactions_per_source
            } else {
                0
            },
            retry_after_secs: self.retry_after_secs,
            inbound_queue: self.inbound_queue.max(1),
            inbound_bytes: self.inbound_queue_bytes,
            max_tcp_connections: self.max_tcp_connections.max(1),
            tcp_idle_timeout: Duration::from_secs(self.tcp_idle_timeout_secs.max(1)),
            tcp_message_timeout: Duration::from_millis(self.tcp_message_timeout_ms.max(1)),
            tcp_connect_timeout: Duration::from_millis(self.tcp_connect_timeout_ms.max(1)),
            max_completed: self.max_completed.max(1),
            ..crate::sip::limits::SipLimits::default()
        }
    }
}

/// `[pcscf]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcscfSection {
    /// Subscribe to each registered user's reg event (TS 24.229 §5.2.3).
    #[serde(default = "yes")]
    pub subscribe_reg: bool,
}

impl Default for PcscfSection {
    fn default() -> Self {
        PcscfSection {
            subscribe_reg: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `digest` or `aka`: used when the UE gives no hint.
    pub default_scheme: String,
    /// Failed answers of one IMPI within `failure_window_secs` that block it.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Failed answers from one UE address within the window that block the address.
    #[serde(default = "default_max_failures_per_address")]
    pub max_failures_per_address: u32,
    /// How long failed answers are remembered.
    #[serde(default = "default_failure_window")]
    pub failure_window_secs: u64,
    /// The first block (403 with Retry-After); each further one doubles.
    #[serde(default = "default_block")]
    pub block_secs: u64,
    /// The longest block.
    #[serde(default = "default_max_block")]
    pub max_block_secs: u64,
}

/// Limits, from the lab file's `[auth]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures of one IMPI inside `window` that block it.
    pub max_failures: u32,
    /// Failures from one address inside `window` that block it (higher: UEs share addresses,
    /// on a lab's loopback all of them do).
    pub max_failures_per_address: u32,
    /// How long failures are remembered.
    pub window: std::time::Duration,
    /// The first block; each further one doubles.
    pub backoff: std::time::Duration,
    /// The longest block.
    pub max_backoff: std::time::Duration,
    /// Entries per table at most.
    pub max_entries: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            max_failures: 4,
            max_failures_per_address: 16,
            window: std::time::Duration::from_secs(600),
            backoff: std::time::Duration::from_secs(30),
            max_backoff: std::time::Duration::from_secs(900),
            max_entries: 100_000,
        }
    }
}

/// What the HSS answers for a user no S-CSCF serves yet (TS 29.228 §6.1.1.1 UAR, §6.1.4.1
/// LIR): TS 29.229 §6.1.2/§6.1.6 allow either a Server-Name or Server-Capabilities, from which
/// the I-CSCF picks an S-CSCF itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScscfSelection {
    /// Server-Name: this S-CSCF's SIP URI, which the I-CSCF uses as its next hop.
    ServerName(String),
    /// Server-Capabilities.
    Capabilities(crate::diameter::cx::ServerCapabilities),
    /// Server-Name: one of these S-CSCFs, chosen by [`crate::diameter::cx::pick_by_key`] over the IMPI, so a user
    /// gets the same one at every first registration and users spread over all of them.
    ByImpi(Vec<String>),
}

impl AuthSection {
    /// The S-CSCF's failed-authentication limits.
    pub fn limits(&self) -> AuthLimits {
        AuthLimits {
            max_failures: self.max_failures.max(1),
            max_failures_per_address: self.max_failures_per_address.max(1),
            window: std::time::Duration::from_secs(self.failure_window_secs),
            backoff: std::time::Duration::from_secs(self.block_secs),
            max_backoff: std::time::Duration::from_secs(self.max_block_secs.max(self.block_secs)),
            ..Default::default()
        }
    }
}

fn default_max_failures() -> u32 {
    4
}
fn default_max_failures_per_address() -> u32 {
    16
}
fn default_failure_window() -> u64 {
    600
}
fn default_block() -> u64 {
    30
}
fn default_max_block() -> u64 {
    900
}

/// One `[[subscribers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    /// Private identity; defaults to `user@domain` of the first public identity.
    #[serde(default)]
    pub impi: Option<String>,
    /// Public identities, the first being the default one (sip: and tel: URIs).
    pub impu: Vec<String>,
    /// Digest password.
    pub password: String,
    /// AKA subscriber key K, hex.
    #[serde(default)]
    pub k: Option<String>,
    /// AKA OPc, hex.
    #[serde(default)]
    pub opc: Option<String>,
    /// AKA AMF, hex (2 bytes).
    #[serde(default)]
    pub amf: Option<String>,
    /// AKA sequence number to start from.
    #[serde(default)]
    pub sqn: Option<u64>,
    /// This subscriber's iFC; absent means the lab's `default_ifc`.
    #[serde(default)]
    pub ifc: Option<Vec<IfcConfig>>,
}

impl LabConfig {
    /// The compiled-in default lab.
    pub fn default_lab() -> LabConfig {
        // The embedded file is checked by a unit test; failing here would be a build defect.
        Self::from_toml_str("").unwrap_or_else(|e| panic!("embedded default lab is invalid: {e}"))
    }

    /// The default lab with `text` merged over it.
    pub fn from_toml_str(text: &str) -> Result<LabConfig, ConfigError> {
        let mut base: toml::Value = toml::from_str(DEFAULT_LAB)
            .map_err(|e| ConfigError::Invalid(format!("default lab: {e}")))?;
        let over: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        merge(&mut base, over);
        let c: LabConfig = base
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(with_suggestion(&e.to_string())))?;
        c.check_limits()?;
        if let Some(h) = &c.trace.hep {
            crate::trace::hep::parse_target(h)
                .map_err(|e| ConfigError::Invalid(format!("[trace] hep: {e}")))?;
        }
        c.check_scscfs()?;
        c.hss.peer_policy_with(
            &c.lab.domain,
            c.nodes.icscf,
            &c.scscf_list()
                .into_iter()
                .map(|s| (s.1, s.2))
                .collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    /// Loads a lab file merged over the default lab.
    pub fn load(path: &Path) -> Result<LabConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The same lab with every port set to 0 (ephemeral), as tests use it.
    pub fn with_ephemeral_ports(mut self) -> LabConfig {
        for a in [
            &mut self.nodes.pcscf,
            &mut self.nodes.icscf,
            &mut self.nodes.scscf,
            &mut self.nodes.hss,
            &mut self.nodes.admin,
            &mut self.nodes.oim,
            &mut self.nodes.tim,
            &mut self.nodes.oim_msrp,
            &mut self.nodes.tim_msrp,
            &mut self.nodes.webrsf,
        ] {
            a.set_port(0);
        }
        if let Some(a) = &mut self.nodes.tim_http {
            a.set_port(0);
        }
        for s in &mut self.scscfs {
            s.address.set_port(0);
        }
        self
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, everything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn ifc_toml_round_trips_through_the_profile_form() {
        let lab = LabConfig::default_lab();
        assert!(!lab.default_ifc.is_empty());
        for i in &lab.default_ifc {
            let p = i.to_profile().unwrap();
            let back = IfcConfig::from_profile(&p);
            assert_eq!(back.to_profile().unwrap(), p);
            // And through TOML text, as `subscriber ifc` prints it and `--set` reads it.
            let text = toml::to_string(&back).unwrap();
            let again: IfcConfig = toml::from_str(&text).unwrap();
            assert_eq!(again.to_profile().unwrap(), p, "{text}");
        }
    }
    use super::*;

    #[test]
    fn a_misspelt_key_or_section_is_an_error_naming_the_nearest_one() {
        let e = LabConfig::from_toml_str("[nodes]\npcsf = \"127.0.0.1:5060\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `pcsf`") && e.contains("did you mean `pcscf`?"),
            "{e}"
        );
        let e = LabConfig::from_toml_str("[registar]\nmin_expires = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `registrar`?"), "{e}");
        let e = LabConfig::from_toml_str("[auth]\nmax_failure = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `max_failures`?"), "{e}");
        assert_eq!(
            with_suggestion("unknown field `zzzzzzzz`, expected `a` or `b`"),
            "unknown field `zzzzzzzz`, expected `a` or `b`",
            "nothing near: no guess"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn default_lab_parses_with_three_subscribers() {
        let c = LabConfig::default_lab();
        assert_eq!(c.lab.domain, "ims.lab");
        assert_eq!(c.nodes.pcscf.port(), 5060);
        let users: Vec<_> = c.subscribers.iter().map(|s| s.impu[0].clone()).collect();
        assert_eq!(
            users,
            ["sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"]
        );
    }

    #[test]
    fn hss_names_its_own_scscf_a_configured_one_or_capabilities() {
        use ScscfSelection as S;
        let own = "sip:127.0.0.1:5080;transport=tcp";
        let sel = |extra: &str| {
            LabConfig::from_toml_str(extra)
                .expect("valid")
                .hss
                .scscf_selection(&[own.to_string()])
        };
        assert_eq!(sel(""), S::ServerName(own.into()));
        assert_eq!(
            sel("[hss]\nscscf_name = \"sip:127.0.0.3:6060\"\n"),
            S::ServerName("sip:127.0.0.3:6060".into())
        );
        let S::Capabilities(c) = sel("[hss]\nserver_capabilities = { optional = [1, 2] }\n") else {
            panic!("capabilities expected");
        };
        assert_eq!((c.mandatory, c.optional), (vec![], vec![1, 2]));
        // A name wins over capabilities; the HSS section still has its identity.
        let both = "[hss]\nscscf_name = \"sip:s\"\nserver_capabilities = { mandatory = [1] }\n";
        assert_eq!(sel(both), S::ServerName("sip:s".into()));
        assert_eq!(
            LabConfig::from_toml_str(both).unwrap().hss.origin_host,
            "hss.ims.lab"
        );
    }

    #[test]
    fn override_merges_tables_and_replaces_arrays() {
        let c = LabConfig::from_toml_str(
            "[nodes]\npcscf = \"127.0.0.1:6060\"\n[[subscribers]]\nimpu=[\"sip:x@ims.lab\"]\npassword=\"p\"\n",
        )
        .expect("valid");
        assert_eq!(c.nodes.pcscf.port(), 6060);
        assert_eq!(
            c.nodes.icscf.port(),
            5070,
            "untouched keys keep their defaults"
        );
        assert_eq!(c.subscribers.len(), 1);
    }

    #[test]
    fn http_limits_have_defaults_and_are_checked() {
        let c = LabConfig::default_lab();
        assert_eq!(c.http.max_connections, 1024);
        assert_eq!(c.webrsf.token_idle_secs, 3600);
        let c = LabConfig::from_toml_str("[http]\nheader_timeout_ms = 300\n").expect("valid");
        assert_eq!(
            (c.http.header_timeout_ms, c.http.idle_timeout_ms),
            (300, 60_000)
        );
        for bad in [
            "[http]\nmax_connections = 0\n",
            "[http]\nheader_timeot_ms = 5\n",
            "[webrsf]\nmax_user = 5\n",
        ] {
            assert!(LabConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn diameter_section_defaults_and_overrides() {
        let d = LabConfig::default_lab().diameter;
        assert_eq!(d.hss_address, None);
        let t = d.timers();
        assert_eq!(
            (t.tw.as_secs(), t.tc_min.as_millis(), t.tc_max.as_millis()),
            (30, 500, 10_000)
        );
        let c = LabConfig::from_toml_str(
            "[diameter]\nhss_address = \"127.0.0.1:3999\"\nreconnect_max_ms = 2000\n",
        )
        .expect("valid");
        assert_eq!(c.diameter.hss_address.unwrap().port(), 3999);
        assert_eq!(c.diameter.timers().tc_max.as_millis(), 2000);
        assert_eq!(c.diameter.watchdog_secs, 30, "the rest keep their defaults");
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        assert!(LabConfig::from_toml_str("[nodes]\npcscf = 5").is_err());
        assert!(LabConfig::from_toml_str("not toml [").is_err());
    }
}
